"""Issue #24, "silent wrong numbers": each figure the engine got wrong on the zoo kinds, pinned by hand arithmetic
written beside the number, and where timm ships the block, by timm's own module class (skipped without timm):
params = sum(p.numel()), MACs = FlopCounterMode total // 2, the output shape of a forward pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import costmodel
from costmodel.errors import SpecError


def spec(layers: list[dict[str, Any]], c: int = 8, h: int | str = 8, w: int | str | None = None, **defaults: Any):
    data: dict[str, Any] = {"input": {"channels": c, "height": h, "width": w or h}, "layers": layers}
    if defaults:
        data["defaults"] = defaults
    return costmodel.NetworkSpec.model_validate(data)


def totals(s: Any) -> tuple[Any, Any, tuple[Any, ...]]:
    r = costmodel.analyze(s)
    return r.totals["params"], r.totals["macs"], tuple(r.output)


def timm_counts(module: Any, inp: tuple[int, int, int]) -> tuple[int, int, tuple[int, ...]]:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = module(torch.zeros(1, *inp))
    return sum(p.numel() for p in module.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:])


# ---------------------------------------------------------------------------- 1. mixconv's se_channels


MIX = {"kind": "mixconv", "out_channels": 8, "expansion": 2, "kernels": [3, 5]}


def test_mixconv_counts_se_channels():
    # in 8 → E 16 (BN 32) → dw 3×3 on 8 + 5×5 on 8 = 72 + 200 (BN 32) → SE 16→2→16 (bias) → 1×1 16→8 (BN 16)
    plain = 16 * 8 + 32 + 72 + 200 + 32 + 16 * 8 + 16
    assert plain == 608
    se = 16 * 2 + 2 + 2 * 16 + 16
    assert totals(spec([{**MIX, "se_channels": 2}]))[0] == plain + se == 690
    assert totals(spec([MIX]))[0] == 608


def test_mixconv_se_channels_equals_timm():
    pytest.importorskip("timm")
    from functools import partial

    from timm.models._efficientnet_blocks import InvertedResidual, SqueezeExcite

    block = InvertedResidual(8, 8, [3, 5], exp_ratio=2, se_layer=partial(SqueezeExcite, rd_channels=2))
    s = spec([{**MIX, "se_channels": 2}], activation="relu", norm="batchnorm", bias=False)
    assert totals(s) == timm_counts(block, (8, 8, 8))


def test_ghost_bottleneck_counts_se_channels():
    base = {"kind": "ghost_bottleneck", "out_channels": 8, "mid_channels": 16}
    # SE on the mid width 16 with 4 squeeze channels: 16·4 + 4 + 4·16 + 16 = 148 params
    assert totals(spec([{**base, "se_channels": 4}]))[0] - totals(spec([base]))[0] == 148


# ------------------------------------------------------------------ 2. residual across different shapes


def test_auto_residual_across_a_shrinking_padding_is_refused():
    # k3, padding 0 on 16×16: the depthwise output is 14×14, the input 16×16 (timm's has_skip is true: it raises)
    layer = {"kind": "mbconv", "out_channels": 8, "expansion": 2, "kernel": 3, "padding": 0}
    with pytest.raises(SpecError, match=r"residual.*height 14 differs from the shortcut's 16"):
        costmodel.analyze(spec([layer], h=16))
    with pytest.raises(SpecError, match="residual: true"):
        costmodel.analyze(spec([{**layer, "residual": True}], h=16))
    assert totals(spec([{**layer, "residual": False}], h=16))[2] == (8, 14, 14)


def test_residual_keeps_working_where_the_shape_is_kept():
    layer = {"kind": "mbconv", "out_channels": 8, "expansion": 2, "kernel": 3, "padding": 1, "residual": True}
    assert totals(spec([layer], h=16))[2] == (8, 16, 16)


def test_bottleneck_shortcut_across_different_sizes_is_refused():
    layer = {"kind": "bottleneck", "out_channels": 8, "kernel": 3, "padding": 0}
    with pytest.raises(SpecError, match="shortcut"):
        costmodel.analyze(spec([layer], h=9))


def test_mbconv_padding_zero_equals_timm_refusal():
    pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    from timm.models._efficientnet_blocks import InvertedResidual

    block = InvertedResidual(8, 8, 3, pad_type=0, exp_ratio=2).eval()
    with pytest.raises(RuntimeError):
        block(torch.zeros(1, 8, 16, 16))


# ------------------------------------------------------------------------------ 3. sizes ≤ 0 refused


def test_output_size_below_one_is_refused():
    # 1×1 input, k5, padding 1: floor((1 + 2 − 5)/1) + 1 = −1
    with pytest.raises(SpecError, match=r"layers\[0\].*2×-1×-1.*at least 1"):
        costmodel.analyze(spec([{"kind": "conv", "out_channels": 2, "kernel": 5, "padding": 1}], c=3, h=1))


def test_output_size_zero_is_refused_on_a_later_layer():
    # 4×4 → k3 valid → 2×2 → k3 valid → 0×0
    layers = [{"kind": "conv", "out_channels": 4, "kernel": 3, "padding": "valid"}] * 2
    with pytest.raises(SpecError, match=r"layers\[1\]"):
        costmodel.analyze(spec(layers, c=3, h=4))


def test_output_size_one_and_symbolic_sizes_still_count():
    # 5×5, k5, padding 0: a 1×1 output, 2·3·25 = 150 MACs
    assert totals(spec([{"kind": "conv", "out_channels": 2, "kernel": 5, "padding": 0}], c=3, h=5))[1:] == (
        150,
        (2, 1, 1),
    )
    r = costmodel.analyze(spec([{"kind": "conv", "out_channels": 2, "kernel": 5, "padding": 1}], c=3, h="H"))
    assert str(r.output[1]) == "H - 2"


def test_cli_refuses_a_negative_size(tmp_path):
    from conftest import ROOT, _forked

    path = tmp_path / "neg.yaml"
    path.write_text(
        "input: {channels: 3, height: 1, width: 1}\nlayers:\n  - {kind: conv, out_channels: 2, kernel: 5, padding: 1}\n"
    )
    code, out, err = _forked(("table", str(path)), ROOT, 20.0, 1 << 30)
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1 and err.startswith("costmodel: error: ") and "layers[0]" in err


# ------------------------------------------------------------------------------- 4. blur at any stride


@pytest.mark.parametrize(
    ("stride", "size", "out"),
    [
        (2, 6, 3),  # p = ((2 − 1) + 2)//2 = 1: floor((6 + 2 − 3)/2) + 1 = 3
        (3, 6, 3),  # p = ((3 − 1) + 2)//2 = 2: floor((6 + 4 − 3)/3) + 1 = 3
        (3, 7, 3),  # floor((7 + 4 − 3)/3) + 1 = 3
        (4, 9, 3),  # p = ((4 − 1) + 2)//2 = 2: floor((9 + 4 − 3)/4) + 1 = 3
    ],
)
def test_blur_pads_as_timm(stride: int, size: int, out: int):
    layer = {"kind": "conv", "out_channels": 8, "kernel": 3, "stride": stride, "aa": "blur"}
    params, macs, shape = totals(spec([layer], h=size))
    assert shape == (8, out, out)
    # conv 8·8·9 at stride 1 on size², then the blur 9 MACs per output element
    assert macs == size * size * 8 * 8 * 9 + out * out * 8 * 9


def test_blur_padding_larger_than_the_map_is_refused():
    # stride 3 reflect-pads 2: a 2×2 map cannot be reflected by 2 (torch raises)
    layer = {"kind": "conv", "out_channels": 8, "kernel": 3, "stride": 3, "aa": "blur"}
    with pytest.raises(SpecError, match="reflect-pads 2"):
        costmodel.analyze(spec([layer], h=2))


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_blur_equals_timm_blurpool(stride: int):
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import DepthwiseSeparableConv

    block = DepthwiseSeparableConv(8, 8, 3, stride, aa_layer="blur")
    s = spec([{"kind": "dwsep", "out_channels": 8, "stride": stride, "aa": "blur"}], h=11, activation="relu")
    assert totals(s) == timm_counts(block, (8, 11, 11))


# ------------------------------------------------------------------------ 5. fused_mbconv's group_size


def test_fused_group_size_counts_channels_of_the_expanded_width():
    # in 8, E 32, group_size 8: 32 / 8 = 4 groups, each conv output sums 8/4 · 9 = 18 products: 32·18 = 576
    layer = {"kind": "fused_mbconv", "out_channels": 8, "expansion": 4, "group_size": 8, "residual": False}
    params = totals(spec([layer], h=4))[0]
    assert params == 32 * 2 * 9 + 64 + 32 * 8 + 16


def test_fused_group_size_equals_timm_edge_residual():
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import EdgeResidual

    block = EdgeResidual(16, 16, 3, group_size=16, exp_ratio=4)
    layer = {"kind": "fused_mbconv", "out_channels": 16, "expansion": 4, "group_size": 16}
    assert totals(spec([layer], c=16, h=7, activation="relu")) == timm_counts(block, (16, 7, 7))


def test_fused_groups_must_divide_the_input():
    # E 24 (in 8 × 3), group_size 2: 12 groups, which do not divide the 8 input channels
    layer = {"kind": "fused_mbconv", "out_channels": 8, "expansion": 3, "group_size": 2}
    with pytest.raises(SpecError, match="input channels 8"):
        costmodel.analyze(spec([layer]))


# --------------------------------------------------------------------------- 6. ghost kinds' SE width


def _se_width(layer: dict[str, Any]) -> int:
    r = costmodel.analyze(spec([layer], c=16))
    return next(row.op.output[0] for row in r.rows if row.stage == "se" and row.op.name == "conv2d")


@pytest.mark.parametrize("kind", ["ghost_bottleneck", "repghost_bottleneck"])
def test_ghost_se_width_is_timms_make_divisible(kind: str):
    se = {"se": 0.25, "se_base": "expanded", "se_divisor": 4, "se_gate": "hardsigmoid"}
    # mid 18: timm's make_divisible(18 × 0.25 = 4.5, 4) = max(4, int(4.5 + 2) // 4 · 4) = 4 < 0.9 · 4.5 → 4 + 4 = 8
    assert _se_width({"kind": kind, "out_channels": 16, "mid_channels": 18, **se}) == 8
    # mid 72: 18 → make_divisible(18, 4) = 20
    assert _se_width({"kind": kind, "out_channels": 16, "mid_channels": 72, **se}) == 20
    # se_round: floor keeps the floor-first rule: make_divisible(floor(4.5) = 4, 4) = 4
    assert _se_width({"kind": kind, "out_channels": 16, "mid_channels": 18, **se, "se_round": "floor"}) == 4


def test_ghost_se_equals_timm():
    pytest.importorskip("timm")
    from timm.models.ghostnet import GhostBottleneck
    from timm.models.repghost import RepGhostBottleneck

    se = {"se": 0.25, "se_base": "expanded", "se_divisor": 4, "se_gate": "hardsigmoid"}
    for cls, kind in ((GhostBottleneck, "ghost_bottleneck"), (RepGhostBottleneck, "repghost_bottleneck")):
        layer = {"kind": kind, "out_channels": 16, "mid_channels": 18, **se}
        assert totals(spec([layer], c=16, activation="relu")) == timm_counts(cls(16, 18, 16, se_ratio=0.25), (16, 8, 8))


# ------------------------------------------------------------------------------ 7. integer fields


ATT = {"kind": "attention", "out_channels": 16, "heads": 2, "key_dim": 8}
BAD_FIELDS = [
    ({**ATT, "heads": True}, "heads", "boolean"),
    ({**ATT, "heads": 2.0}, "heads", "integer"),
    ({**ATT, "heads": "2"}, "heads", "quoted numeral"),
    ({**ATT, "heads": 2**31}, "heads", "2**31 - 1"),
    ({**ATT, "key_dim": True}, "key_dim", "boolean"),
    ({**ATT, "kv_stride": 2.5}, "kv_stride", "integer"),
    ({"kind": "resize", "size": 2.0}, "size", "integer"),
    ({"kind": "resize", "size": [True, 2]}, "size", "boolean"),
    ({"kind": "resize", "size": 2**40}, "size", "2**31 - 1"),
    ({"kind": "ghost", "out_channels": 8, "ratio": "2"}, "ratio", "quoted numeral"),
    ({"kind": "ghost", "out_channels": 8, "ratio": 1}, "ratio", "[2, 2**31 - 1]"),
    ({"kind": "ghost", "out_channels": 8, "ratio": True}, "ratio", "boolean"),
    ({"kind": "ghost", "out_channels": 8, "rep_branches": 1_000_000}, "rep_branches", "[1, 64]"),
    ({"kind": "condconv", "out_channels": 8, "expansion": 2, "experts": 4.0}, "experts", "integer"),
    ({"kind": "condconv", "out_channels": 8, "expansion": 2, "experts": 2**31}, "experts", "2**31 - 1"),
    ({"kind": "uir", "out_channels": 8, "expansion": True}, "expansion", "boolean"),
    ({"kind": "uir", "out_channels": 8, "expansion": "4"}, "expansion", "quoted numeral"),
    ({"kind": "uir", "out_channels": 8, "expansion": 1e300}, "expansion", "(0, 256]"),
    ({"kind": "uir", "out_channels": 8, "expansion": float("nan")}, "expansion", "(0, 256]"),
    ({**MIX, "kernels": [-3]}, "kernels", "[1, 2**31 - 1]"),
    ({**MIX, "kernels": [True]}, "kernels", "boolean"),
    ({**MIX, "kernels": ["3"]}, "kernels", "quoted numeral"),
    ({**MIX, "kernels": [3.0]}, "kernels", "integer"),
    ({**MIX, "kernels": [4]}, "kernels", "odd"),
    ({**MIX, "expansion_groups": True}, "expansion_groups", "boolean"),
    ({**MIX, "projection_groups": 0}, "projection_groups", "[1, 2**31 - 1]"),
]


@pytest.mark.parametrize(("layer", "field", "rule"), BAD_FIELDS)
def test_integer_rules_on_the_newer_fields(layer: dict[str, Any], field: str, rule: str):
    with pytest.raises(ValidationError) as err:
        spec([layer], c=16)
    text = str(err.value)
    assert field in text and rule in text, text


def test_mixconv_more_groups_than_channels_is_refused():
    # E 16 split in 3 for 3 kernels is fine; in 2 channels cannot take 3 expansion groups
    with pytest.raises(SpecError, match="expansion_groups"):
        costmodel.analyze(spec([{**MIX, "expansion_groups": 3, "expansion": 4}], c=2))
    with pytest.raises(SpecError, match="kernels"):
        costmodel.analyze(spec([{**MIX, "expansion": 1, "kernels": [3, 5, 7]}], c=2))


def test_uir_fractional_expansion_is_timms():
    # in 16 × 2.5 = 40 = make_divisible(40, 8): expansion 16·40 + BN 80, projection 40·8 + BN 16
    layer = {"kind": "uir", "out_channels": 8, "expansion": 2.5}
    assert totals(spec([layer], c=16, h=4))[0] == 16 * 40 + 80 + 40 * 8 + 16


# ---------------------------------------------------------------------------- 8. concat's names


def test_concat_of_a_repeated_name_is_refused():
    layers = [
        {"kind": "conv", "out_channels": 4, "name": "a"},
        {"kind": "conv", "out_channels": 6, "name": "a"},
        {"kind": "concat", "inputs": ["a"]},
    ]
    with pytest.raises(SpecError, match=r"'a' names more than one earlier layer \(layers 0, 1\)"):
        costmodel.analyze(spec(layers))


def test_repeated_names_no_concat_reads_still_count():
    layers = [
        {"kind": "conv", "out_channels": 4, "name": "block"},
        {"kind": "conv", "out_channels": 6, "name": "block"},
        {"kind": "conv", "out_channels": 4, "name": "x"},
        {"kind": "concat", "inputs": ["x"]},
    ]
    assert totals(spec(layers))[2] == (4, 8, 8)


# ----------------------------------------------------------------- 9b. torchref with grouped norms


GROUPED = [
    {"kind": "mixconv", "out_channels": 16, "expansion": 2, "kernels": [3, 5], "expansion_groups": 2, "se": 0.25},
    {"kind": "ghost", "out_channels": 16, "attention": "dfc"},
    {"kind": "ghost_bottleneck", "out_channels": 16, "mid_channels": 32, "stride": 2, "se": 0.25},
    {"kind": "uir", "out_channels": 16, "expansion": 2, "start_kernel": 3, "mid_kernel": 3, "stride": 2},
    {"kind": "condconv", "out_channels": 16, "expansion": 2, "experts": 4},
    {"kind": "attention", "out_channels": 16, "heads": 2, "key_dim": 8, "kv_stride": 2},
    {"kind": "fused_mbconv", "out_channels": 16, "expansion": 2, "group_size": 8},
]


@pytest.mark.parametrize("norm", ["groupnorm", "evonorm_s0", "evonorm_b0"])
@pytest.mark.parametrize("layer", GROUPED, ids=lambda layer: layer["kind"])
def test_torchref_builds_grouped_norms(layer: dict[str, Any], norm: str):
    pytest.importorskip("torch")
    from costmodel import torchref

    s = spec([layer], c=16, norm=norm, norm_groups=4, activation="relu")
    t = torchref.measure(s)
    assert totals(s) == (t["params"], t["macs"], t["output"])


# ---- EvoNorm without its nonlinearity: timm computes the affine alone ----------------------------------


@pytest.mark.parametrize("norm", ["evonorm_s0", "evonorm_b0"])
def test_evonorm_without_its_nonlinearity_is_the_affine_alone(norm):
    """timm 1.0.31's EvoNorm2dS0/B0 with apply_act=False return x·γ + β (no group std, no running-variance
    division): on an 8×4×4 map, FLOPs = 2 per element × 8·4·4 = 256 (by hand; 7 and 3 per element were
    counted), params γ, β = 2·8 = 16; B0 keeps its running_var buffer, 8."""
    spec = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 8, "height": 4, "width": 4},
            "defaults": {"norm": norm, "norm_groups": 2},
            "layers": [{"kind": "conv", "out_channels": 8, "kernel": 1, "activation": "none"}],
        }
    )
    (row,) = [r for r in costmodel.analyze(spec).rows if r.op.name == norm]
    assert row.costs["flops"] == 256
    assert row.costs["params"] == 16
    assert row.costs["buffers"] == (8 if norm == "evonorm_b0" else 0)


@pytest.mark.parametrize("norm", ["evonorm_s0", "evonorm_b0"])
def test_torchref_evonorm_without_act_computes_what_timm_does(norm):
    torch = pytest.importorskip("torch")
    evo = pytest.importorskip("timm.layers.evo_norm")
    from costmodel import torchref

    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 5)
    if norm == "evonorm_s0":
        ours, theirs = torchref.EvoNormS0(8, 2, apply_act=False), evo.EvoNorm2dS0(8, groups=2, apply_act=False)
    else:
        ours, theirs = torchref.EvoNormB0(8, apply_act=False), evo.EvoNorm2dB0(8, apply_act=False)
    for m in (ours, theirs):
        with torch.no_grad():
            m.weight.copy_(torch.linspace(0.5, 1.5, 8))
            m.bias.copy_(torch.linspace(-1, 1, 8))
    assert torch.allclose(ours.eval()(x), theirs.eval()(x))
    assert torch.allclose(theirs.eval()(x), x * ours.weight.view(1, -1, 1, 1) + ours.bias.view(1, -1, 1, 1))
