"""The attention kind (timm's MobileAttention: multi-query attention with key/value downsampling, MHSA, layer
scale): hand arithmetic, symbolic forms in H and W, refusals; then against torch (costmodel.torchref.measure:
params, buffers, FlopCounterMode / 2, output shape) and against timm's own MobileAttention and MobileNetV4-Hybrid
models, including what FlopCounterMode counts on the CPU when timm runs its fused attention."""

from __future__ import annotations

from typing import Any

import pytest

import costmodel
from conftest import small_spec as spec
from conftest import totals
from costmodel.errors import SpecError

MQA = {"kind": "attention", "heads": 4, "key_dim": 8, "kv_stride": 2, "out_channels": 16, "layer_scale": True}


def test_mqa_by_hand():
    # 16×9×9 input, 4 query heads of dk = dv = 8, key/value 3×3 dw stride 2 (pad 1) → 5×5: L = 81, P = 25.
    params = (
        2 * 16  # pre-norm γ, β
        + 16 * 32  # query 1×1 16 → h·dk = 32
        + 2 * (16 * 9 + 2 * 16 + 16 * 8)  # key and value: dw 3×3, norm, 1×1 16 → 8
        + 32 * 16  # output 1×1 h·dv = 32 → 16
        + 16  # layer scale γ
    )
    buffers = 3 * (2 * 16 + 1)  # pre-norm and the two key/value norms
    macs = (
        81 * 16 * 32  # query
        + 2 * (25 * 16 * 9 + 25 * 16 * 8)  # key and value: dw on the 5×5 output, 1×1
        + 4 * 81 * 25 * (8 + 8)  # q·kᵀ and attention·v, every query head against the one key / value head
        + 81 * 32 * 16  # output projection
    )
    assert totals(spec([MQA])) == (params, buffers, macs, (16, 9, 9))


def test_mqa_attention_row_and_flops():
    r = costmodel.analyze(spec([MQA]))
    (row,) = [x for x in r.rows if x.op.name == "attention"]
    logits = 4 * 81 * 25
    assert row.costs["macs"] == logits * 16
    assert row.costs["flops"] == 2 * logits * 16 + 6 * logits  # 2 per MAC, scale + softmax 6 per logit
    assert row.op.output == (32, 9, 9) and len(row.inputs) == 3  # reads q, k and v
    assert r.rows[-1].op.name == "add"  # in == out: the residual


def test_mhsa_by_hand():
    # 16×7×7, 4 heads of d = 4, qkv 1×1 16 → 48, output 16 → 24 (no residual: in ≠ out), no layer scale.
    s = spec([{"kind": "attention", "heads": 4, "multi_query": False, "out_channels": 24}], h=7)
    params = 2 * 16 + 16 * 48 + 16 * 24
    macs = 49 * 16 * 48 + 4 * 49 * 49 * (4 + 4) + 49 * 16 * 24
    assert totals(s) == (params, 2 * 16 + 1, macs, (24, 7, 7))


def test_bias_applies_to_projections_only():
    # defaults.bias: the 1×1 projections get one; the key/value downsampling conv never does (timm's create_conv2d)
    plain, biased = totals(spec([MQA])), totals(spec([MQA], bias=True))
    assert biased[0] - plain[0] == 32 + 8 + 8 + 16


def test_kv_stride_that_does_not_divide():
    # 11×7 input, kv stride 3, 3×3: timm pads ((3 − 1) + (3 − 1)) // 2 = 2, so Hk = floor((11 + 4 − 3)/3) + 1 = 5,
    # Wk = floor((7 + 4 − 3)/3) + 1 = 3: P = 15 (not ceil(11/3)·ceil(7/3) = 12 — padding k//2 would give 4×3).
    layer = {**MQA, "kv_stride": 3}
    r = costmodel.analyze(spec([layer], h=11, w=7))
    dw = [x for x in r.rows if x.stage == "key" and x.op.name == "conv2d"][0]
    assert dw.op.output == (16, 5, 3)
    (att,) = [x for x in r.rows if x.op.name == "attention"]
    assert att.costs["macs"] == 4 * 77 * 15 * 16


def test_symbolic_attention_is_quadratic_in_hw():
    sym = spec([{"kind": "attention", "heads": 4, "key_dim": 8, "out_channels": 16}], h="H", w="W")
    expr = costmodel.analyze(sym).totals["macs"]
    names = {s.name: s for s in expr.free_symbols}
    hs, ws = names["H"], names["W"]
    # no kv stride: P = L = H·W, so the attention term is 4·(H·W)²·16 and the convs are linear in H·W
    conv = 16 * 32 + 16 * 8 + 16 * 8 + 32 * 16
    assert (expr - (4 * 16 * (hs * ws) ** 2 + conv * hs * ws)).expand() == 0
    for h, w in ((9, 9), (13, 8), (193, 5)):
        s = spec([{"kind": "attention", "heads": 4, "key_dim": 8, "out_channels": 16}], h=h, w=w)
        assert int(expr.subs({hs: h, ws: w})) == totals(s)[2]


def test_symbolic_kv_stride_matches_numbers():
    sym = costmodel.analyze(spec([MQA], h="H")).totals["macs"]
    (hs,) = sym.free_symbols
    for h in (8, 9, 17, 33):
        assert int(sym.subs(hs, h)) == totals(spec([MQA], h=h))[2]


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"kind": "attention", "heads": 4, "out_channels": 16}, "key_dim"),
        ({"kind": "attention", "heads": 4, "multi_query": False, "key_dim": 4, "out_channels": 16}, "key_dim"),
        ({"kind": "attention", "heads": 4, "multi_query": False, "kv_stride": 2, "out_channels": 16}, "kv_stride"),
        ({"kind": "attention", "heads": 4, "key_dim": 8, "kv_kernel": 4, "out_channels": 16}, "kv_kernel"),
        ({"kind": "attention", "heads": 0, "key_dim": 8, "out_channels": 16}, "heads"),
        ({"kind": "attention", "heads": 4, "key_dim": 8, "out_channels": 16, "stride": 2}, "stride"),
    ],
)
def test_refusals_name_the_field(layer, field):
    with pytest.raises(Exception, match=field):
        spec([layer])


def test_mhsa_heads_must_divide_channels():
    with pytest.raises(SpecError, match="heads"):
        totals(spec([{"kind": "attention", "heads": 5, "multi_query": False, "out_channels": 16}]))


def test_residual_true_needs_same_width():
    with pytest.raises(SpecError, match="residual"):
        totals(spec([{**MQA, "out_channels": 24, "residual": True}]))


def test_memory_and_roofline_run_on_attention():
    r = costmodel.analyze(spec([MQA, MQA], h=14))
    mem = costmodel.memory(r)
    (att, _) = [k for k in mem.kernels if any(x.op.name == "attention" for x in k.rows)]
    # the attention kernel reads q (32×14×14), k and v (8×7×7 each) and writes o (32×14×14), float32
    assert att.input_bytes == 4 * (32 * 196 + 2 * 8 * 49)
    assert att.output_bytes == 4 * 32 * 196
    assert att.weight_bytes == 0
    for fusion in ("none", "block"):
        roof = costmodel.roofline(r, "a100", fusion=fusion)
        assert roof.time_s > 0


def test_conventions_on_attention():
    # torch: FlopCounterMode's sdpa / bmm formulas (meta, CUDA, unfused); the module-hook tools see no attention
    att = 4 * 81 * 25 * 16
    for name, want in (("costmodel", att), ("torch", att), ("fvcore", 0), ("ptflops", 0), ("thop", 0)):
        rows = costmodel.count(spec([MQA]), convention=name).rows
        assert [x.costs["macs"] for x in rows if x.op.name == "attention"] == [want], name


# --------------------------------------------------------------------------------------------- torch

CASES = {
    "mqa": {"kind": "attention", "heads": 4, "key_dim": 8, "out_channels": 16},
    "mqa_kv2_ls": MQA,
    "mqa_kv3_k5_dv": {
        "kind": "attention",
        "heads": 2,
        "key_dim": 8,
        "value_dim": 12,
        "kv_stride": 3,
        "kv_kernel": 5,
        "out_channels": 24,
    },  # fmt: skip
    "mhsa": {"kind": "attention", "heads": 4, "multi_query": False, "out_channels": 16, "layer_scale": True},
    "mhsa_wide": {"kind": "attention", "heads": 2, "multi_query": False, "out_channels": 24},
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("h", "w"), [(9, 9), (10, 7), (13, 11)])
@pytest.mark.parametrize(("bias", "norm"), [(False, "batchnorm"), (True, "batchnorm"), (False, "layernorm"),
                                            (True, "none")])  # fmt: skip
def test_attention_matches_torch(case, h, w, bias, norm):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    layers = [CASES[case], {"kind": "pool"}, {"kind": "linear", "out_features": 5}]
    s = spec(layers, h=h, w=w, bias=bias, norm=norm)
    m = measure(s)
    assert totals(s) == (m["params"], m["buffers"], m["macs"], m["output"])


# ---------------------------------------------------------------------------------------------- timm


def _timm_block(cin: int, cout: int, mq: bool, heads: int, dim: int, kv: int, k: int, fused: bool) -> Any:
    timm = pytest.importorskip("timm")
    from timm.models._efficientnet_blocks import MobileAttention

    timm.layers.set_fused_attn(fused)
    try:
        return MobileAttention(cin, cout, dw_kernel_size=k, num_heads=heads, key_dim=dim, value_dim=dim,
                               use_multi_query=mq, kv_stride=kv, layer_scale_init_value=1e-5).eval()  # fmt: skip
    finally:
        timm.layers.set_fused_attn(False)  # tests/test_timm.py's setting


def _count(model: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(1, *shape))
    params = sum(p.numel() for p in model.parameters())
    return params, sum(b.numel() for b in model.buffers()), counter.get_total_flops() // 2, tuple(y.shape[1:])


TIMM_BLOCKS = [  # (cin, cout, multi_query, heads, key_dim, kv_stride, kv kernel)
    (160, 160, True, 4, 64, 2, 3),  # mobilenetv4_hybrid_medium, stage 2
    (192, 192, True, 8, 48, 2, 3),  # mobilenetv4_hybrid_large, stage 2
    (256, 256, True, 4, 64, 1, 3),  # mobilenetv4_hybrid_medium, stage 3
    (48, 64, True, 2, 16, 3, 5),
    (64, 64, False, 4, 0, 1, 3),  # MHSA (timm's mha blocks)
]


@pytest.mark.timm
@pytest.mark.parametrize("block", TIMM_BLOCKS, ids=lambda b: "-".join(map(str, b)))
@pytest.mark.parametrize(("h", "w"), [(14, 14), (15, 9), (7, 13)])
def test_attention_matches_timm_block(block, h, w):
    cin, cout, mq, heads, dim, kv, k = block
    layer: dict[str, Any] = {"kind": "attention", "heads": heads, "out_channels": cout, "layer_scale": True}
    layer |= {"key_dim": dim, "kv_stride": kv, "kv_kernel": k} if mq else {"multi_query": False}
    ours = totals(spec([layer], c=cin, h=h, w=w))
    assert ours == _count(_timm_block(cin, cout, mq, heads, dim or 64, kv, k, fused=False), (cin, h, w))


@pytest.mark.timm
@pytest.mark.parametrize("block", TIMM_BLOCKS[:3], ids=lambda b: "-".join(map(str, b)))
def test_cpu_fused_attention_is_not_counted(block):
    # timm's default: F.scaled_dot_product_attention, on the CPU aten._scaled_dot_product_flash_attention_for_cpu,
    # which FlopCounterMode (torch 2.14) has no formula for: its figure lacks exactly the attention op's MACs.
    cin, cout, mq, heads, dim, kv, k = block
    layer = {"kind": "attention", "heads": heads, "key_dim": dim, "kv_stride": kv, "out_channels": cout,
             "layer_scale": True}  # fmt: skip
    r = costmodel.analyze(spec([layer], c=cin, h=15, w=11))
    att = sum(x.costs["macs"] for x in r.rows if x.op.name == "attention")
    assert att > 0
    fused = _count(_timm_block(cin, cout, mq, heads, dim, kv, k, fused=True), (cin, 15, 11))
    assert fused[2] == r.totals["macs"] - att


@pytest.mark.timm
@pytest.mark.parametrize(
    "name",
    [
        "mobilenetv4_hybrid_medium",
        "mobilenetv4_hybrid_medium_075",
        "mobilenetv4_hybrid_large",
        "mobilenetv4_hybrid_large_075",
    ],
)
@pytest.mark.parametrize("resolution", [321, 97])
def test_hybrid_specs_at_odd_sizes(name, resolution):
    # tests/test_timm.py checks the default size and 193; here 321 and 97, on the meta device (the same
    # FlopCounterMode formulas, attention included, nothing allocated).
    timm = pytest.importorskip("timm")
    from conftest import SPECS

    s = costmodel.load(SPECS / "timm" / f"{name}.yaml")
    s = s.model_copy(update={"input": s.input.model_copy(update={"height": resolution, "width": resolution})})
    r = costmodel.analyze(s)
    model = timm.create_model(name, pretrained=False, device="meta").eval()
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(1, 3, resolution, resolution, device="meta"))
    theirs = (sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:]))
    assert (r.totals["params"], r.totals["macs"], r.output) == theirs


def test_latency_reads_q_k_and_v():
    from costmodel.analysis.latency import LatencyCalibration, op_bytes, op_class, predict

    r = costmodel.analyze(spec([MQA], h=14))
    (att,) = [x for x in r.rows if x.op.name == "attention"]
    assert op_class(att) == "attention"
    assert op_bytes(att, 1) == 4 * (32 * 196 + 2 * 8 * 49 + 32 * 196)  # q, k, v read; o written
    mhsa = costmodel.analyze(spec([CASES["mhsa"]], h=7))
    (att,) = [x for x in mhsa.rows if x.op.name == "attention"]
    assert op_bytes(att, 1) == 4 * (3 * 16 * 49 + 16 * 49)  # q, k, v (the qkv tensor) read; o written
    cal = LatencyCalibration.model_validate(
        {"threads": 1, "framework": "test", "classes": {}, "default_overhead_s": 1e-6}
    )
    times = predict(r, cal)
    assert len(times) == len(r.rows) and all(t.seconds > 0 for t in times)


# ------------------------------------------------------------------------------------------ RMSNorm


def test_rmsnorm_by_hand():
    # conv 3×3 16 → 24 on 9×9, RMSNorm (γ only: 24 params, no buffers), gelu
    s = spec([{"kind": "conv", "out_channels": 24, "activation": "gelu"}], norm="rmsnorm")
    r = costmodel.analyze(s)
    assert totals(s) == (16 * 24 * 9 + 24, 0, 81 * 16 * 24 * 9, (24, 9, 9))
    (norm,) = [x for x in r.rows if x.op.name == "rmsnorm2d"]
    assert norm.costs["flops"] == 4 * 24 * 81 + 3 * 81
    assert not norm.op.folds


@pytest.mark.parametrize(
    "layer",
    [
        {"kind": "conv", "out_channels": 24, "stride": 2},
        {"kind": "uir", "start_kernel": 3, "mid_kernel": 5, "expansion": 4, "out_channels": 16, "layer_scale": True},
        MQA,
    ],
    ids=["conv", "uir", "attention"],
)
def test_rmsnorm_matches_torch(layer):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    s = spec([layer], h=11, w=8, norm="rmsnorm")
    m = measure(s)
    assert totals(s) == (m["params"], m["buffers"], m["macs"], m["output"])


@pytest.mark.timm
def test_rmsnorm_matches_timm():
    pytest.importorskip("timm")
    from timm.layers import ConvNormAct, RmsNorm2d

    mod = ConvNormAct(16, 24, 3, stride=2, norm_layer=RmsNorm2d, act_layer="gelu").eval()
    s = spec([{"kind": "conv", "out_channels": 24, "stride": 2, "activation": "gelu"}], h=11, w=8, norm="rmsnorm")
    assert totals(s) == _count(mod, (16, 11, 8))
