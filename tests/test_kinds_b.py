"""The zoo's block kinds (mixconv, ghost, ghost_bottleneck, uir): hand arithmetic without torch, then against
torch (costmodel.torchref.measure: params, buffers, FlopCounterMode / 2, output shape) and against timm's own
modules (MixedConv2d InvertedResidual, GhostBottleneck, UniversalInvertedResidual) on small odd shapes."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import costmodel
from conftest import small_spec as spec
from conftest import totals
from costmodel.engine.blocks_zoo import split_channels
from costmodel.errors import SpecError

# ------------------------------------------------------------------------------------ hand arithmetic


def test_split_channels_is_timms():
    # _split_channels(C, g): g × floor(C/g), the remainder on the first part
    assert split_channels(96, 2) == [48, 48]
    assert split_channels(100, 3) == [34, 33, 33]
    assert split_channels(7, 4) == [4, 1, 1, 1]


def test_mixconv_by_hand():
    # 16×9×9, expansion 6 → E = 96 in 2 groups (8→48 twice), dw [3, 5] on 48 + 48, stride 2 → 5×5,
    # projection 96 → 24 in 2 groups (48→12 twice); no residual (stride 2).
    s = spec([{"kind": "mixconv", "expansion": 6, "kernels": [3, 5], "expansion_groups": 2,
               "projection_groups": 2, "stride": 2, "out_channels": 24}])  # fmt: skip
    exp_w = 2 * 8 * 48  # 768
    dw_w = 48 * 9 + 48 * 25  # 1632
    proj_w = 2 * 48 * 12  # 1152
    bn = 2 * 96 + 2 * 96 + 2 * 24  # γ, β
    bn_buf = (2 * 96 + 1) * 2 + 2 * 24 + 1
    macs = 81 * exp_w + 25 * dw_w + 25 * proj_w
    assert totals(s) == (exp_w + dw_w + proj_w + bn, bn_buf, macs, (24, 5, 5))


def test_ghost_module_by_hand():
    # out 23, ratio 3: primary P = ceil(23/3) = 8 (1×1, 16→8), cheap 3×3 groups 8 → 16; cat 24, keep 23.
    s = spec([{"kind": "ghost", "out_channels": 23, "ratio": 3}], h=7)
    weights = 16 * 8 + 16 * 1 * 9
    assert totals(s) == (weights + 2 * 8 + 2 * 16, 2 * 8 + 1 + 2 * 16 + 1, 49 * weights, (23, 7, 7))


def test_dfc_gate_by_hand():
    # GhostNetV2 DFC on 16×9×9, out 8: avgpool 2×2 s2 → 4×4; 1×1 16→8, (1,5) dw, (5,1) dw, each + BN.
    plain = totals(spec([{"kind": "ghost", "out_channels": 8}]))
    dfc = totals(spec([{"kind": "ghost", "out_channels": 8, "attention": "dfc"}]))
    weights = 16 * 8 + 8 * 5 + 8 * 5
    assert dfc[0] - plain[0] == weights + 3 * 2 * 8
    assert dfc[2] - plain[2] == 16 * weights
    assert dfc[3] == plain[3] == (8, 9, 9)


def test_ghost_bottleneck_shortcut_by_hand():
    # 16×9×9 → mid 32 → out 24, k 3, stride 2: the shortcut is 3×3 dw (16) + BN + 1×1 16→24 + BN.
    s = spec([{"kind": "ghost_bottleneck", "mid_channels": 32, "out_channels": 24, "stride": 2}])
    g1 = 16 * 16 + 16 * 9  # ghost to 32: primary 16→16 (1×1), cheap 3×3 dw 16
    dw = 32 * 9
    g2 = 32 * 12 + 12 * 9  # ghost to 24: primary 32→12, cheap 12
    short = 16 * 9 + 16 * 24
    bn = 2 * (16 + 16) + 2 * 32 + 2 * (12 + 12) + 2 * 16 + 2 * 24
    macs = 81 * g1 + 25 * (dw + g2 + short)
    p, _, m, out = totals(s)
    assert (p, m, out) == (g1 + dw + g2 + short + bn, macs, (24, 5, 5))


def test_uir_by_hand():
    # 16×9×9: start 3×3 dw 16 (no act), 1×1 16→64 (make_divisible(16×4, 8)), mid 5×5 dw s2, 1×1 64→16,
    # layer scale γ (16); stride 2 → no residual.
    s = spec([{"kind": "uir", "start_kernel": 3, "mid_kernel": 5, "expansion": 4, "stride": 2,
               "out_channels": 16, "layer_scale": True}])  # fmt: skip
    macs = 81 * (16 * 9 + 16 * 64) + 25 * (64 * 25 + 64 * 16)
    params = 16 * 9 + 16 * 64 + 64 * 25 + 64 * 16 + 2 * (16 + 64 + 64 + 16) + 16
    p, _, m, out = totals(s)
    assert (p, m, out) == (params, macs, (16, 5, 5))


def test_symbolic_ghost_matches_numbers():
    sym = spec([{"kind": "ghost_bottleneck", "mid_channels": 32, "out_channels": 24, "stride": 2,
                 "attention": "dfc"}], h="H")  # type: ignore[arg-type]  # fmt: skip
    r = costmodel.analyze(sym)
    expr = r.totals["macs"]
    (sym_h,) = expr.free_symbols
    for h in (9, 33, 193):
        num = totals(spec([{"kind": "ghost_bottleneck", "mid_channels": 32, "out_channels": 24, "stride": 2,
                            "attention": "dfc"}], h=h))  # fmt: skip
        assert int(expr.subs(sym_h, h)) == num[2]


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"kind": "mixconv", "expansion": 6, "kernels": [3, 4], "out_channels": 8}, "kernels"),
        ({"kind": "mixconv", "expansion": 6, "kernels": [], "out_channels": 8}, "kernels"),
        ({"kind": "uir", "expansion": 4, "expanded_channels": 32, "out_channels": 8}, "expansion"),
        ({"kind": "ghost", "out_channels": 8, "dw_kernel": 2}, "dw_kernel"),
        ({"kind": "uir", "expansion": 4, "mid_kernel": 4, "out_channels": 8}, "mid_kernel"),
    ],
)
def test_bad_fields_refused(layer, field):
    with pytest.raises(Exception) as info:
        spec([layer])
    assert field in str(info.value)


def test_strided_uir_without_dw_refused():
    with pytest.raises(SpecError):
        costmodel.analyze(spec([{"kind": "uir", "expansion": 2, "stride": 2, "out_channels": 8}]))


# ------------------------------------------------------------------------------------ against torch

CASES: list[dict[str, Any]] = [
    {"kind": "mixconv", "expansion": 6, "kernels": [3, 5, 7], "expansion_groups": 2, "projection_groups": 2,
     "out_channels": 24, "se": 0.5},
    {"kind": "mixconv", "expansion": 3, "kernels": [3, 5, 7, 9], "out_channels": 16, "expanded_divisor": 8},
    {"kind": "ghost", "out_channels": 23, "ratio": 3, "kernel": 3, "attention": "dfc"},
    {"kind": "ghost", "out_channels": 20, "activation_cheap": False},
    {"kind": "ghost_bottleneck", "mid_channels": 72, "out_channels": 40, "kernel": 5, "se": 0.25,
     "se_base": "expanded", "se_divisor": 4, "se_gate": "hardsigmoid", "attention": "dfc"},
    {"kind": "ghost_bottleneck", "mid_channels": 48, "out_channels": 16},
    {"kind": "uir", "start_kernel": 3, "mid_kernel": 5, "expansion": 4, "out_channels": 16, "layer_scale": True},
    {"kind": "uir", "start_kernel": 5, "expansion": 2, "out_channels": 24},
    {"kind": "uir", "mid_kernel": 3, "expansion": 3, "out_channels": 16, "layer_scale": True},
    {"kind": "uir", "expansion": 4, "out_channels": 16},
    {"kind": "uir", "start_kernel": 3, "mid_kernel": 5, "expansion": 4, "out_channels": 16, "aa": "avg"},
    {"kind": "uir", "start_kernel": 5, "expansion": 2, "out_channels": 24, "aa": "blur"},
]  # fmt: skip


@pytest.mark.parametrize(("case", "stride", "size"), list(itertools.product(range(len(CASES)), [1, 2], [9, 17])))
def test_kind_matches_torch(case, stride, size):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    layer = dict(CASES[case])
    if stride == 2 and layer["kind"] == "uir" and not (layer.get("start_kernel") or layer.get("mid_kernel")):
        pytest.skip("a strided uir needs a depthwise conv")
    layer["stride"] = stride
    s = spec([layer], c=16, h=size, w=size + 2)
    m = measure(s)
    assert m["macs_exact_half"]
    assert totals(s) == (m["params"], m["buffers"], m["macs"], m["output"])


# ------------------------------------------------------------------------------------ against timm's modules


def _timm_count(module: Any, c: int, h: int) -> tuple[int, int, tuple[int, ...]]:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = module(torch.zeros(1, c, h, h))
    return sum(p.numel() for p in module.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:])


def _ours(layer: dict[str, Any], c: int, h: int, act: str = "relu") -> tuple[Any, ...]:
    s = costmodel.NetworkSpec.model_validate(
        {"name": "t", "input": {"channels": c, "height": h, "width": h},
         "defaults": {"activation": act, "norm": "batchnorm", "bias": False}, "layers": [layer]}
    )  # fmt: skip
    r = costmodel.analyze(s)
    return r.totals["params"], r.totals["macs"], r.output


@pytest.mark.timm
@pytest.mark.parametrize("stride", [1, 2])
def test_mixconv_matches_timm(stride):
    pytest.importorskip("timm")
    from functools import partial

    from timm.models._efficientnet_blocks import InvertedResidual
    from timm.models._efficientnet_blocks import SqueezeExcite as SE
    from torch import nn

    blk = InvertedResidual(24, 24 if stride == 1 else 40, dw_kernel_size=[3, 5, 7], stride=stride, exp_ratio=6.0,
                           exp_kernel_size=[1, 1], pw_kernel_size=[1, 1], act_layer=nn.SiLU,
                           se_layer=partial(SE, rd_ratio=0.5 / 6, act_layer=nn.SiLU))  # fmt: skip
    layer = {"kind": "mixconv", "expansion": 6, "kernels": [3, 5, 7], "expansion_groups": 2, "projection_groups": 2,
             "stride": stride, "out_channels": 24 if stride == 1 else 40, "se": 0.5}  # fmt: skip
    assert _ours(layer, 24, 19, "silu") == _timm_count(blk, 24, 19)


@pytest.mark.timm
@pytest.mark.parametrize(("stride", "mode", "se"), [(1, "original", 0.0), (2, "attn", 0.25), (1, "attn", 0.25)])
def test_ghost_bottleneck_matches_timm(stride, mode, se):
    pytest.importorskip("timm")
    from timm.models.ghostnet import GhostBottleneck

    blk = GhostBottleneck(16, 72, 24, 5, stride, se_ratio=se, mode=mode)
    layer: dict[str, Any] = {"kind": "ghost_bottleneck", "mid_channels": 72, "out_channels": 24, "kernel": 5,
                             "stride": stride}  # fmt: skip
    if se:
        layer |= {"se": se, "se_base": "expanded", "se_divisor": 4, "se_gate": "hardsigmoid"}
    if mode == "attn":
        layer["attention"] = "dfc"
    assert _ours(layer, 16, 17) == _timm_count(blk, 16, 17)


@pytest.mark.timm
@pytest.mark.parametrize(("start", "mid", "stride"), [(3, 5, 2), (5, 0, 2), (0, 3, 1), (0, 0, 1), (3, 3, 1)])
def test_uir_matches_timm(start, mid, stride):
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import UniversalInvertedResidual

    blk = UniversalInvertedResidual(32, 32, start, mid, 0, stride=stride, exp_ratio=3.0)
    layer: dict[str, Any] = {"kind": "uir", "expansion": 3, "stride": stride, "out_channels": 32, "layer_scale": True}
    if start:
        layer["start_kernel"] = start
    if mid:
        layer["mid_kernel"] = mid
    assert _ours(layer, 32, 15) == _timm_count(blk, 32, 15)


@pytest.mark.timm
@pytest.mark.parametrize(("start", "mid", "aa"), [(3, 5, "avg"), (3, 5, "blur"), (5, 0, "blur"), (0, 3, "avg")])
def test_uir_with_aa_matches_timm(start, mid, aa):
    """MobileNetV4-aa/blur: the strided dw conv (mid, else start) at stride 1, then the pool at stride 2."""
    pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import UniversalInvertedResidual

    blk = UniversalInvertedResidual(16, 24, start, mid, 0, stride=2, exp_ratio=3.0, aa_layer=aa)
    assert type(blk.dw_mid.aa if mid else blk.dw_start.aa).__name__ == ("AvgPool2d" if aa == "avg" else "BlurPool2d")
    layer: dict[str, Any] = {"kind": "uir", "expansion": 3, "stride": 2, "out_channels": 24, "aa": aa,
                             "layer_scale": True}  # fmt: skip
    if start:
        layer["start_kernel"] = start
    if mid:
        layer["mid_kernel"] = mid
    assert _ours(layer, 16, 15) == _timm_count(blk, 16, 15)


def test_uir_aa_by_hand():
    """uir mid 3, start none, 8 → 16 → 8 channels, stride 2, aa avg on 9×9: the dw conv at stride 1 (9×9), then a
    2×2 average pool to 4×4 (FlopCounterMode counts no pool MACs): MACs = 81·8·16 + 81·16·9 + 16·16·8 = 24,080,
    the same params as without aa (8·16 + 16·9 + 16·8 + 2·(16 + 16 + 8) = 480), output (8, 4, 4)."""
    s = spec([{"kind": "uir", "mid_kernel": 3, "expansion": 2, "stride": 2, "out_channels": 8, "aa": "avg"}], c=8)
    r = costmodel.analyze(s)
    assert (r.totals["params"], r.totals["macs"], r.output) == (480, 24_080, (8, 4, 4))


@pytest.mark.parametrize(
    "layer",
    [
        "{kind: uir, out_channels: 8, expansion: 2, dilation: 2}",
        "{kind: uir, out_channels: 8, expansion: 2, mid_kernel: 3, padding: 2}",
        "{kind: ghost, out_channels: 8, padding: same}",
        "{kind: ghost_bottleneck, out_channels: 8, mid_channels: 16, aa: blur, stride: 2}",
        "{kind: mixconv, out_channels: 8, expansion: 2, kernels: [3, 5], dilation: 2}",
    ],
)
def test_conv_options_the_zoo_kinds_do_not_implement_are_refused(layer):
    """padding / dilation / aa come with ConvLike; these kinds' blocks do not apply them, so they refuse them."""
    with pytest.raises(costmodel.SpecError, match="is not supported by the"):
        costmodel.loads(f"input: {{channels: 8, height: 9, width: 9}}\nlayers:\n  - {layer}\n")
