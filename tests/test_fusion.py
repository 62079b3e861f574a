"""The fusion and map-shaping kinds (concat, resize, norm, flatten) and gelu_tanh: hand arithmetic, the tensors
a concat reads, the refusals (exit 2, one line) and, with torch, costmodel.torchref's modules."""

from __future__ import annotations

import pytest

import costmodel
from conftest import small_spec, totals
from costmodel.errors import SpecError

A = {"name": "a", "kind": "conv", "kernel": 1, "out_channels": 8}  # 16×8×8 → 8×8×8
B = {"name": "b", "kind": "conv", "kernel": 1, "stride": 2, "out_channels": 4}  # → 4×4×4


def _spec(layers, c=16, h=8, **defaults):
    return small_spec(layers, c=c, h=h, **defaults)


def _rows(spec, kind):
    return [row for row in costmodel.analyze(spec).rows if row.kind == kind]


def test_concat_nearest_counts_and_tensors():
    s = _spec([A, B, {"kind": "concat", "inputs": ["a", "b"]}])
    # a: 16·8 weights + BN γβ 2·8 = 144 params, 2·8 + 1 buffers (running stats, num_batches_tracked),
    # 8·8·16·8 = 8192 MACs; b: 8·4 + 2·4 = 40, 2·4 + 1 buffers, 4·4·8·4 = 512 MACs; concat: 8 + 4 channels at
    # a's 8×8, no cost
    assert totals(s) == (184, 17 + 9, 8704, (12, 8, 8))
    resize, cat = _rows(s, "concat")
    # tensors: a's conv/bn/relu write 1, 2, 3; b's 4, 5, 6; the nearest resize of b reads 6, writes 7
    assert (resize.op.name, resize.inputs, resize.tensor, resize.costs["flops"]) == ("upsample", (6,), 7, 0)
    assert (cat.inputs, cat.tensor, cat.op.output) == ((3, 7), 8, (12, 8, 8))


def test_concat_order_and_previous_layer():
    s = _spec(
        [A, {"name": "c", "kind": "conv", "kernel": 1, "out_channels": 2}, {"kind": "concat", "inputs": ["c", "a"]}]
    )
    (cat,) = _rows(s, "concat")
    assert (cat.inputs, cat.op.output) == ((6, 3), (10, 8, 8))  # c (the previous layer) first, then a


def test_concat_bilinear_flops():
    s = _spec([A, B, {"kind": "concat", "inputs": ["a", "b"], "resize": "bilinear"}])
    resize, _ = _rows(s, "concat")
    assert resize.costs["flops"] == 7 * 4 * 8 * 8  # 4 multiplies + 3 adds per output element of 4×8×8
    assert resize.costs["macs"] == 0


def test_resize_modes():
    divisible = _spec([{"kind": "resize", "size": 4}], c=4, h=8)
    (pool,) = _rows(divisible, "resize")
    assert (pool.op.name, pool.costs["flops"], pool.op.output) == ("avgpool2d", 4 * 4 * 4 * 2 * 2, (4, 4, 4))
    odd = _spec([{"kind": "resize", "size": 4}], c=4, h=9)
    (bil,) = _rows(odd, "resize")
    assert (bil.op.name, bil.costs["flops"], bil.op.output) == ("upsample", 7 * 4 * 4 * 4, (4, 4, 4))
    assert _rows(_spec([{"kind": "resize", "size": 8}], c=4, h=8), "resize") == []  # at size: nothing
    pair = _spec([{"kind": "resize", "size": [2, 4], "mode": "avg"}], c=4, h=8)
    assert totals(pair) == (0, 0, 0, (4, 2, 4))
    near = _spec([{"kind": "resize", "size": 16, "mode": "nearest"}], c=4, h=8)
    assert totals(near) == (0, 0, 0, (4, 16, 16))


def test_norm_and_flatten():
    rms = _spec([{"kind": "norm", "norm": "rmsnorm"}], c=4, h=8)
    (row,) = _rows(rms, "norm")
    assert (row.costs["params"], row.costs["flops"]) == (4, 4 * 4 * 64 + 3 * 64)  # γ; 4/element + 3/position
    bn = _spec([{"kind": "norm"}], c=4, h=8)  # the default norm: batchnorm, γβ params; running mean/var + count
    assert totals(bn)[:2] == (8, 8 + 1)
    flat = _spec([{"kind": "flatten"}, {"kind": "linear", "out_features": 3}], c=4, h=2)
    assert totals(flat) == (4 * 2 * 2 * 3 + 3, 0, 16 * 3, (3,))
    assert _rows(flat, "flatten")[0].op.output == (16,)


def test_gelu_tanh_flops():
    s = _spec([{"kind": "conv", "kernel": 1, "out_channels": 2, "norm": "none"}], c=1, h=2, activation="gelu_tanh")
    (act,) = [row for row in costmodel.analyze(s).rows if row.op.name == "gelu_tanh"]
    assert act.costs["flops"] == 9 * 2 * 2 * 2


def test_symbolic_concat_equal_sizes_and_bilinear():
    s = _spec([A, {"kind": "concat", "inputs": ["a", "a"]}, {"kind": "resize", "size": 4, "mode": "bilinear"}])
    s = s.model_copy(update={"input": s.input.model_copy(update={"height": "H", "width": "H"})})
    r = costmodel.analyze(s)
    assert r.output == (16, 4, 4)


@pytest.mark.parametrize(
    ("layers", "h", "where"),
    [
        ([A, {"kind": "concat", "inputs": ["a", "z"]}], 8, "layers[1].inputs[1]"),
        ([{"kind": "concat", "inputs": ["a"]}, A], 8, "layers[0].inputs[0]"),  # a later layer
        ([A, B, {"kind": "concat", "inputs": ["b", "a"]}], 8, "layers[2].inputs[1]"),  # a larger input
        ([{"kind": "resize", "size": 3, "mode": "avg"}], 8, "layers[0].size"),
        ([{"kind": "resize", "size": 4}], "H", "layers[0].mode"),  # mode timm on a symbolic size
    ],
)
def test_refusals(layers, h, where, tmp_path, run_cli):
    s = _spec(layers, h=h)
    with pytest.raises(SpecError):
        costmodel.analyze(s)
    path = tmp_path / "s.yaml"
    path.write_text(s.model_dump_json(exclude_none=True, exclude_defaults=True))
    status, out, err = run_cli("table", str(path))
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert where in err


def test_torchref_matches():
    torch = pytest.importorskip("torch")
    from costmodel import torchref

    specs = [
        _spec([A, B, {"kind": "concat", "inputs": ["a", "b"]}, {"kind": "resize", "size": 3}, {"kind": "norm"}]),
        _spec([A, B, {"kind": "concat", "inputs": ["a", "b"], "resize": "bilinear"}, {"kind": "resize", "size": 4}]),
        _spec([{"kind": "norm", "norm": "rmsnorm"}, {"kind": "pool"}, {"kind": "flatten"}], activation="gelu_tanh"),
        _spec([{"kind": "conv", "out_channels": 4}, {"kind": "flatten"}, {"kind": "linear", "out_features": 5}]),
    ]
    for s in specs:
        m = torchref.measure(s)
        assert (m["params"], m["buffers"], m["macs"], m["output"]) == totals(s)
    model, _ = torchref.build(specs[0])
    assert isinstance(model, torchref.Network)
    act = torchref._act("gelu_tanh")
    assert isinstance(act, torch.nn.GELU) and act.approximate == "tanh"


def test_memory_keeps_a_named_input_alive():
    # 2×8×8 → a (8×8×8) → b (4×4×4) → concat [a, b]: at the concat, a's output is still alive though b ran after it.
    s = _spec([A, B, {"kind": "concat", "inputs": ["a", "b"]}], c=2, norm="none", activation="none")
    peak = costmodel.memory(s).peak
    # float32: a's 8·8·8 = 512 elements, b resized to 4·8·8 = 256, the concat's 12·8·8 = 768 → 1536 · 4 bytes
    assert peak.bytes == (512 + 256 + 768) * 4
    assert "concat" in peak.kernel
    assert any(name.startswith("0.0 ") for name, _ in peak.alive)  # a's output, by its block


@pytest.mark.slow
def test_torchref_builds_mobilenetv5_base():
    # torchref's modules for the shipped spec at 193 agree with timm's mobilenetv5_base (timm 1.0.31,
    # pretrained=False: params = sum(p.numel()), MACs = FlopCounterMode // 2 on the meta device, output (1000,)).
    pytest.importorskip("torch")
    from conftest import SPECS
    from costmodel import torchref

    spec = costmodel.load(SPECS / "timm" / "mobilenetv5_base.yaml")
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"height": 193, "width": 193})})
    m = torchref.measure(spec)
    assert (m["params"], m["macs"], m["output"]) == (82_647_976, 12_845_005_632, (1000,))


def test_out_ratio_after_concat_reads_the_concatenated_channels():
    # concat(a: 8, b: 4) gives 12 channels; out_ratio 2 → 24 out channels (it used to scale the stale 4 of b → 8).
    # The 1×1 conv after it: 12·24 weights + BN 2·24 = 336 params; 8·8·12·24 = 18432 MACs.
    s = _spec([A, B, {"kind": "concat", "inputs": ["a", "b"]}, {"kind": "conv", "kernel": 1, "out_ratio": 2}])
    conv = [r for r in costmodel.analyze(s).rows if r.layer == 3 and r.op.name == "conv2d"]
    assert conv[0].op.output == (24, 8, 8)
    assert (conv[0].costs["params"], conv[0].costs["macs"]) == (12 * 24, 8 * 8 * 12 * 24)
