"""Formulas of long symbolic specs stay fast and never crash (factoring is bounded; deep floors print)."""

from __future__ import annotations

import time

import sympy

import costmodel


def _spec(n: int, kind: str = "conv") -> costmodel.NetworkSpec:
    """n layers, each with its own symbolic width C_i, kernel k_i and stride s_i."""
    layers = []
    for i in range(1, n + 1):
        if kind == "conv":
            layers.append({"kind": "conv", "out_channels": f"C{i}", "kernel": f"k{i}", "stride": f"s{i}"})
        else:
            layers.append({"kind": "mbconv", "out_channels": f"C{i}", "expansion": f"t{i}", "kernel": f"k{i}",
                           "stride": f"s{i}", "residual": False, "se": 0.25})  # fmt: skip
    return costmodel.NetworkSpec.model_validate(
        {"input": {"channels": "C0", "height": "H", "width": "H"}, "layers": layers}
    )


def test_thirty_symbolic_layers_factor_quickly_and_keep_the_value():
    r = costmodel.analyze(_spec(30))
    start = time.perf_counter()
    f = r.formula("params")
    assert time.perf_counter() - start < 20  # one sympy.factor call on the whole sum took 86 s
    # params of conv i: C_{i-1}·C_i·k_i² + BN 2·C_i
    expected = sum(sympy.Symbol(f"C{i - 1}") * sympy.Symbol(f"C{i}") * sympy.Symbol(f"k{i}") ** 2
                   + 2 * sympy.Symbol(f"C{i}") for i in range(1, 31))  # fmt: skip
    names = {s.name: s for s in f.free_symbols}
    assert sympy.expand(f - expected.xreplace({sympy.Symbol(n): names[n] for n in names})) == 0


def test_deep_strides_do_not_crash_the_cli(run_cli, tmp_path):
    import json

    spec = _spec(40, "mbconv").model_dump(mode="json", exclude_none=True)
    path = tmp_path / "deep.yaml"
    path.write_text(json.dumps(spec))
    code, out, err = run_cli("formula", str(path), "--metric", "params")
    assert code == 0, err[-500:]
    assert out.count("C40") >= 1


def test_single_block_is_still_factored():
    r = costmodel.analyze(costmodel.load(str(costmodel.__path__[0]) + "/../specs/symbolic_mbconv.yaml"))
    assert str(r.formula("params")) in ("C*t*(2*C + k**2)", "C*t*(k**2 + 2*C)")


def _stack(n: int) -> costmodel.NetworkSpec:
    """n identical MBConv blocks C → C (expansion t, kernel k, BatchNorm, stride 1) on H×H."""
    layer = {"kind": "mbconv", "out_channels": "C", "expansion": "t", "kernel": "k"}
    return costmodel.NetworkSpec.model_validate(
        {"input": {"channels": "C", "height": "H", "width": "H"}, "layers": [dict(layer) for _ in range(n)]}
    )


def test_identical_layers_are_built_once(monkeypatch):
    from costmodel.engine import kinds

    calls = []
    real = kinds.KINDS["mbconv"]

    def counted(layer, args):
        calls.append(args.path)
        return real.block(layer, args)

    monkeypatch.setitem(kinds.KINDS, "mbconv", kinds.Kind(real.name, real.model, counted, real.torch))
    r = costmodel.analyze(_stack(500))
    assert len(calls) == 1  # the other 499 share its flow: same fields, same input shape
    assert len(r.rows) == 500 * len([x for x in r.rows if x.layer == 0])
    assert len({x.layer for x in r.rows}) == 500


def test_a_long_stack_is_factored_once_and_exact(monkeypatch):
    calls = []
    factor = sympy.factor

    def counted(e, *a, **k):
        calls.append(e)
        return factor(e, *a, **k)

    monkeypatch.setattr(sympy, "factor", counted)
    r = costmodel.analyze(_stack(3000))
    f = r.formula("params")
    # one block: expand C·Ct + BN 2Ct; depthwise Ct·k² + BN 2Ct; project Ct·C + BN 2C = C·(2Ct + k²t + 4t + 2)
    C, t, k = (sympy.Symbol(n, positive=True, integer=True) for n in "Ctk")
    assert sympy.expand(f - 3000 * C * (2 * C * t + k**2 * t + 4 * t + 2)) == 0
    assert str(f) == "3000*C*(2*C*t + k**2*t + 4*t + 2)"
    assert len(calls) <= 2  # the one distinct layer, then the counted sum (was one call per layer, up to 1 s)


def test_identical_but_for_one_field_are_not_shared():
    """Layers that differ only in activation or bias must not share a cached block (hand arithmetic:
    a 3×3 conv 4 → 4 on 8×8, no norm: params 144, MACs 4·4·9·64 = 9,216, FLOPs 2·9,216 + the activation
    per output element (relu 1, relu6 2, 256 elements) + 256 bias adds with bias)."""
    conv = {"kind": "conv", "out_channels": 4, "kernel": 3}
    spec = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 4, "height": 8, "width": 8},
            "defaults": {"norm": "none", "bias": False},
            "layers": [
                {**conv, "activation": "relu"},
                {**conv, "activation": "relu6"},
                {**conv, "activation": "relu", "bias": True},
                {**conv, "activation": "relu"},
            ],
        }
    )
    r = costmodel.analyze(spec)
    per_layer = [
        (sum(x.costs["params"] for x in r.rows if x.layer == i), sum(x.costs["flops"] for x in r.rows if x.layer == i))
        for i in range(4)
    ]
    assert per_layer == [(144, 18_432 + 256), (144, 18_432 + 512), (148, 18_432 + 256 + 256), (144, 18_432 + 256)]
