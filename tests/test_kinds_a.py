"""Issue #11, part A: the fields, norms, activations and ops added to the existing kinds, against torch.

Each case is checked three ways: hand arithmetic written beside a pinned number (torch-free), torch itself
on costmodel.torchref's module (params = sum(p.numel()), buffers = sum(b.numel()), MACs = FlopCounterMode / 2,
output = a forward pass), and where timm ships the layer, timm's own module (skipped without timm).
"""

from __future__ import annotations

from typing import Any

import pytest
import sympy

import costmodel
from conftest import totals
from costmodel.engine import ops
from costmodel.errors import SpecError
from costmodel.spec.scaling import make_divisible, scaled_depth, stage_depths


def spec(layers: list[dict[str, Any]], c: int = 8, h: int = 9, w: int | None = None, **defaults: Any):
    data: dict[str, Any] = {"input": {"channels": c, "height": h, "width": w or h}, "layers": layers}
    if defaults:
        data["defaults"] = defaults
    return costmodel.NetworkSpec.model_validate(data)


# ------------------------------------------------------------------------------ hand arithmetic (no torch)


def test_fbnet_expand_always_keeps_the_1x1():
    # in 16, t = 1, k3: expansion 16·16 = 256 + BN 32; dw 16·9 = 144 + BN 32; projection 16·16 = 256 + BN 32
    s = spec([{"kind": "mbconv", "out_channels": 16, "expansion": 1, "expand_always": True}], c=16, h=5)
    p, b, m, out = totals(s)
    assert p == 256 + 32 + 144 + 32 + 256 + 32
    assert m == 25 * (256 + 144 + 256)
    off = spec([{"kind": "mbconv", "out_channels": 16, "expansion": 1}], c=16, h=5)
    assert totals(off)[0] == 144 + 32 + 256 + 32


def test_fused_keep_projection():
    # er_e1: 3×3 16→16 = 2304 + BN 32, then 1×1 16→24 = 384 + BN 48; no residual (24 ≠ 16)
    s = spec([{"kind": "fused_mbconv", "out_channels": 24, "expansion": 1, "keep_projection": True}], c=16, h=5)
    p, _, m, out = totals(s)
    assert (p, m, out) == (2304 + 32 + 384 + 48, 25 * (2304 + 384), (24, 5, 5))


def test_group_size():
    # mbconv E = 32, group_size 8: 4 groups, each output sums 8·9 products: 32·8·9 = 2304 weights
    s = spec([{"kind": "mbconv", "out_channels": 8, "expansion": 4, "group_size": 8}], c=8, h=5)
    rows = costmodel.analyze(s).rows
    dw = [r for r in rows if r.stage == "depthwise" and r.op.name == "conv2d"][0]
    assert dw.costs["params"] == 32 * 8 * 9
    assert dw.op.attrs["groups"] == 4
    with pytest.raises(SpecError, match="group_size"):
        costmodel.analyze(spec([{"kind": "mbconv", "out_channels": 8, "expansion": 4, "group_size": 5}], c=8))


def test_explicit_padding_output_sizes():
    # floor((H + 2p − d(k−1) − 1)/s) + 1, with H = 9
    assert ops.spatial_out(9, 2, 2, "valid") == 4  # (9 − 1 − 1)//2 + 1
    assert ops.spatial_out(9, 1, 3, 0, 2) == 5  # 9 − 4
    assert ops.spatial_out(9, 2, 4, 1) == 4  # (9 + 2 − 3 − 1)//2 + 1
    assert ops.spatial_out(9, 2, 2, "same") == 5  # ceil(9/2)
    assert ops.spatial_out(9, 1, 2, "same") == 9
    h = sympy.Symbol("H", positive=True, integer=True)
    assert ops.spatial_out(h, 2, 3, 0) == sympy.floor((h - 3) / 2) + 1


def test_even_kernel_needs_padding():
    with pytest.raises(ValueError, match="kernel must be odd"):
        spec([{"kind": "conv", "out_channels": 8, "kernel": 2}])
    s = spec([{"kind": "conv", "out_channels": 32, "kernel": 2, "stride": 2, "padding": "same"}], c=8, h=9)
    # space-to-depth: 32·8·4 = 1024 weights, ceil(9/2) = 5
    assert totals(s)[0] == 1024 + 64
    assert totals(s)[3] == (32, 5, 5)


def test_norm_costs():
    inp = (32, 9, 9)
    assert (ops.groupnorm(inp, 1, 8).costs["params"], ops.groupnorm(inp, 1, 8).costs["buffers"]) == (64, 0)
    assert (ops.layernorm2d(inp, 1).costs["params"], ops.layernorm2d(inp, 1).costs["buffers"]) == (64, 0)
    assert (ops.evonorm_s0(inp, 1, 8).costs["params"], ops.evonorm_s0(inp, 1, 8).costs["buffers"]) == (96, 0)
    assert (ops.evonorm_b0(inp, 1).costs["params"], ops.evonorm_b0(inp, 1).costs["buffers"]) == (96, 32)
    # without their nonlinearity (timm apply_act=False, where the unit has no activation): γ, β only
    assert ops.evonorm_s0(inp, 1, 8, act=False).costs["params"] == 64
    assert ops.evonorm_b0(inp, 1, act=False).costs["params"] == 64
    assert ops.groupnorm(inp, 1, 8).costs["flops"] == 8 * 32 * 81
    assert ops.activation(inp, 1, "gelu").costs["flops"] == 5 * 32 * 81
    # blur pool: C·9 filter buffer; MACs C·Ho·Wo·9 = 32·5·5·9
    assert (ops.blur(inp, 1).costs["buffers"], ops.blur(inp, 1).costs["macs"]) == (288, 7200)


def test_norm_groups_must_divide():
    s = spec([{"kind": "conv", "out_channels": 12}], norm="groupnorm", norm_group_size=8)
    with pytest.raises(SpecError, match="norm_group_size"):
        costmodel.analyze(s)


def test_se_variants():
    # se_channels: the width itself; se_round: round(20 × 0.25 = 5.0) vs floor; round(18 × 0.25 = 4.5) = 4 (to even)
    base = {"kind": "mbconv", "out_channels": 18, "expansion": 1}
    rows = costmodel.analyze(spec([{**base, "se_channels": 7}], c=18)).rows
    assert [r.op.output[0] for r in rows if r.stage == "se" and r.op.name == "conv2d"] == [7, 18]
    for ratio, rnd, want in [(0.3, "floor", 5), (0.3, "round", 5), (0.35, "floor", 6), (0.35, "round", 6)]:
        rows = costmodel.analyze(spec([{**base, "se": ratio, "se_round": rnd}], c=18)).rows
        assert [r.op.output[0] for r in rows if r.stage == "se" and r.op.name == "conv2d"][0] == want
    rows = costmodel.analyze(spec([{**base, "se": 0.25, "se_round": "round"}], c=18)).rows
    assert [r.op.output[0] for r in rows if r.stage == "se" and r.op.name == "conv2d"][0] == 4
    # FBNetV3's 95% floor: make_divisible(76, 8) = 80 either way; make_divisible(20, 8) = 24 ≥ 0.9·20 but 16 < 0.95·20?
    assert make_divisible(20, 8) == 24 and make_divisible(20, 8, round_limit=0.95) == 24
    assert make_divisible(21, 8) == 24 and make_divisible(37, 8) == 40
    assert make_divisible(35, 8) == 32 and make_divisible(35, 8, round_limit=0.95) == 40  # 32 < 0.95 × 35


def test_dwsep_se_residual_pw_activation():
    # LCNet-style: dw 3×3 on 16 (144 + BN 32), SE 16→4→16 (64+4 + 64+16), pw 16→16 (256 + BN 32), residual
    layer = {"kind": "dwsep", "out_channels": 16, "se": 0.25, "residual": "auto", "pw_activation": "none"}
    r = costmodel.analyze(spec([layer], c=16, h=5))
    assert r.totals["params"] == 144 + 32 + 68 + 80 + 256 + 32
    assert [row.stage for row in r.rows][-1] == "residual"
    assert [row.op.name for row in r.rows if row.stage == "pointwise"] == ["conv2d", "batchnorm2d"]


def test_depth_rounding():
    assert scaled_depth(3, 1.1) == 4 and scaled_depth(3, 1.1, "round") == 3
    assert scaled_depth(1, 0.4, "round") == 1
    # timm's _scale_stage_depth on [1, 2] (ds, ir ×2) at depth 1.4: total ceil(4.2) = 5; last 2 → round(2/3·5) = 3,
    # first gets the remaining 2
    assert stage_depths([1, 2], 1.4) == [2, 3]
    s = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 8, "height": 9, "width": 9},
            "scaling": {"depth": 1.1, "depth_rounding": "round"},
            "layers": [{"kind": "mbconv", "out_channels": 8, "expansion": 2, "repeat": 3}],
        }
    )
    assert len(costmodel.analyze(s).blocks) == 3


def test_conv_norm_head_on_the_pooled_map():
    # MobileNetV4's head: pool → 1×1 conv (no bias) → BN → act → linear: a conv on a C×1×1 map
    s = spec(
        [{"kind": "pool"}, {"kind": "conv", "out_channels": 32, "kernel": 1}, {"kind": "linear", "out_features": 10}]
    )
    p, b, m, out = totals(s)
    assert (p, b, m, out) == (8 * 32 + 64 + 32 * 10 + 10, 65, 8 * 32 + 320, (10,))


# ----------------------------------------------------------------------------------------- against torch

CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("expand_always", [{"kind": "mbconv", "out_channels": 8, "expansion": 1, "expand_always": True}], {}),
    ("keep_projection", [{"kind": "fused_mbconv", "out_channels": 12, "expansion": 1, "keep_projection": True}], {}),
    ("mb_group", [{"kind": "mbconv", "out_channels": 8, "expansion": 4, "group_size": 8, "stride": 2, "se": 0.25}], {}),
    ("fused_group", [{"kind": "fused_mbconv", "out_channels": 8, "expansion": 4, "group_size": 4, "stride": 2}], {}),
    ("se_channels", [{"kind": "mbconv", "out_channels": 8, "expansion": 3, "se_channels": 5}], {}),
    ("se_round", [{"kind": "mbconv", "out_channels": 8, "expansion": 3, "se": 0.3, "se_round": "round"}], {}),
    (
        "se_limit",
        [
            {
                "kind": "mbconv",
                "out_channels": 8,
                "expansion": 3,
                "se": 0.25,
                "se_base": "expanded",
                "se_divisor": 8,
                "se_round_limit": 0.95,
                "se_round": "round",
            }
        ],
        {},
    ),
    ("dwsep_se", [{"kind": "dwsep", "out_channels": 8, "se": 0.25, "se_divisor": 8, "residual": "auto"}], {}),
    ("dwsep_pw_none", [{"kind": "dwsep", "out_channels": 12, "pw_activation": "none", "stride": 2}], {}),
    ("pad_same_even", [{"kind": "conv", "out_channels": 32, "kernel": 2, "stride": 2, "padding": "same"}], {}),
    ("pad_same_k4", [{"kind": "conv", "out_channels": 8, "kernel": 4, "stride": 1, "padding": "same"}], {}),
    ("pad_valid", [{"kind": "conv", "out_channels": 8, "kernel": 3, "stride": 2, "padding": "valid"}], {}),
    ("pad_n", [{"kind": "conv", "out_channels": 8, "kernel": 5, "stride": 2, "padding": 1}], {}),
    ("dilation", [{"kind": "mbconv", "out_channels": 8, "expansion": 2, "dilation": 2}], {}),
    ("dilation_pad", [{"kind": "conv", "out_channels": 8, "kernel": 3, "dilation": 2, "padding": 1}], {}),
    ("mb_dw_even_same", [{"kind": "mbconv", "out_channels": 8, "expansion": 1, "kernel": 2, "padding": "same"}], {}),
    ("aa_blur", [{"kind": "mbconv", "out_channels": 8, "expansion": 2, "stride": 2, "aa": "blur", "se": 0.25}], {}),
    ("aa_avg", [{"kind": "fused_mbconv", "out_channels": 8, "expansion": 2, "stride": 2, "aa": "avg"}], {}),
    ("aa_conv", [{"kind": "conv", "out_channels": 8, "stride": 2, "aa": "blur"}], {}),
    (
        "groupnorm",
        [{"kind": "mbconv", "out_channels": 16, "expansion": 2, "se": 0.25}],
        {"norm": "groupnorm", "norm_group_size": 8},
    ),
    ("groupnorm_n", [{"kind": "conv", "out_channels": 16}], {"norm": "groupnorm", "norm_groups": 4}),
    ("layernorm", [{"kind": "fused_mbconv", "out_channels": 16, "expansion": 2}], {"norm": "layernorm"}),
    (
        "evonorm_s0",
        [{"kind": "mbconv", "out_channels": 16, "expansion": 2}],
        {"norm": "evonorm_s0", "norm_group_size": 8},
    ),
    ("evonorm_b0", [{"kind": "dwsep", "out_channels": 16}], {"norm": "evonorm_b0"}),
    ("gelu", [{"kind": "mbconv", "out_channels": 8, "expansion": 2, "activation": "gelu", "se": 0.25}], {}),
    (
        "head",
        [{"kind": "pool"}, {"kind": "conv", "out_channels": 32, "kernel": 1}, {"kind": "linear", "out_features": 10}],
        {},
    ),
]


@pytest.mark.parametrize("size", [9, 12])
@pytest.mark.parametrize("name,layers,defaults", CASES, ids=[c[0] for c in CASES])
def test_against_torch(name, layers, defaults, size):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    s = spec(layers, c=8, h=size, w=size + 2, **defaults)
    m = measure(s)
    assert m["macs_exact_half"]
    assert totals(s) == (m["params"], m["buffers"], m["macs"], m["output"])


def test_flop_counter_counts_no_norm():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from costmodel.torchref import EvoNormB0, EvoNormS0, LayerNorm2d

    x = torch.randn(1, 16, 7, 7)
    for mod in [torch.nn.GroupNorm(2, 16), LayerNorm2d(16), EvoNormS0(16, 2), EvoNormB0(16), torch.nn.GELU()]:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            mod.eval()(x)
        assert counter.get_total_flops() == 0, mod


# ------------------------------------------------------------------------------ against timm's own layers


def _torch_count(mod, x):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = mod.eval()(x)
    return (
        sum(p.numel() for p in mod.parameters()),
        sum(b.numel() for b in mod.buffers()),
        counter.get_total_flops() // 2,
        tuple(y.shape[1:]),
    )


@pytest.mark.timm
def test_timm_layers():
    torch = pytest.importorskip("torch")
    layers = pytest.importorskip("timm.layers")
    x = torch.randn(1, 32, 9, 11)
    inp = (32, 9, 11)
    for mod, op in [
        (layers.GroupNormAct(32, 4), ops.groupnorm(inp, 1, 4)),
        (layers.LayerNorm2d(32), ops.layernorm2d(inp, 1)),
        (layers.EvoNorm2dS0(32), ops.evonorm_s0(inp, 1, 32)),
        (layers.EvoNorm2dB0(32), ops.evonorm_b0(inp, 1)),
        (layers.EvoNorm2dS0(32, group_size=8, apply_act=False), ops.evonorm_s0(inp, 1, 4, act=False)),
        (layers.EvoNorm2dB0(32, apply_act=False), ops.evonorm_b0(inp, 1, act=False)),
        (layers.BlurPool2d(32, filt_size=3, stride=2), ops.blur(inp, 1)),
        (layers.create_aa("avg", 32, stride=2), ops.avgpool(inp, 1)),
        (layers.create_conv2d(32, 64, 2, stride=2, padding="same"), ops.conv2d(inp, 1, 64, 2, 2, padding="same")),
    ]:
        ours = (op.costs["params"], op.costs["buffers"], op.costs["macs"], op.output)
        assert ours == _torch_count(mod, x), mod
