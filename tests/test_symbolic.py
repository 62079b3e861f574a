"""Closed forms against hand-derived expressions."""

from __future__ import annotations

import sympy

import costmodel
from conftest import SPECS

C, D, H, W, t, k, n = sympy.symbols("C D H W t k n", positive=True, integer=True)


def test_symbolic_mbconv_closed_forms():
    r = costmodel.analyze(SPECS / "symbolic_mbconv.yaml")
    assert sympy.expand(r.formula("params") - t * C * (2 * C + k**2)) == 0
    assert sympy.expand(r.formula("macs") - H * W * t * C * (2 * C + k**2)) == 0
    # per stage: expansion C·tC, depthwise tC·k², projection tC·C
    assert sympy.expand(r.formula("params", "expansion") - C * t * C) == 0
    assert sympy.expand(r.formula("params", "depthwise") - t * C * k**2) == 0
    assert sympy.expand(r.formula("macs", "projection") - H * W * t * C * C) == 0
    assert r.output == (C, H, W)


def spec(**layer):
    base = {"kind": "mbconv", "out_channels": "C", "expansion": "t", "kernel": "k"}
    base.update(layer)
    return costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": "C", "height": "H", "width": "W"},
            "defaults": {"norm": "none", "bias": False},
            "layers": [base],
        }
    )


def test_stride_two_output_size_is_floor_form():
    r = costmodel.analyze(spec(stride=2, residual=False))
    # odd kernel, same padding: floor((H − 1)/2) + 1
    assert r.output == (C, sympy.floor((H - 1) / 2) + 1, sympy.floor((W - 1) / 2) + 1)
    assert r.output[1].subs(H, 7) == 4 and r.output[1].subs(H, 8) == 4


def test_symbolic_batch_scales_macs_not_params():
    s = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 4, "height": 8, "width": 8, "batch": "n"},
            "defaults": {"norm": "none"},
            "layers": [{"kind": "mbconv", "out_channels": 4, "expansion": 6}],
        }
    )
    r = costmodel.analyze(s)
    assert r.totals["params"] == 408
    assert sympy.expand(r.formula("macs") - 26_112 * n) == 0


def test_symbolic_repeat_counts_copies():
    s = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 4, "height": 8, "width": 8},
            "defaults": {"norm": "none"},
            "layers": [{"kind": "mbconv", "out_channels": 4, "expansion": 6, "repeat": "n"}],
        }
    )
    r = costmodel.analyze(s)
    assert sympy.expand(r.formula("params") - 408 * n) == 0
    assert costmodel.analyze(s, n=3).totals["params"] == 3 * 408


def test_se_width_is_floor_of_block_input():
    # SE with ratio 1/4 on in = C: squeeze S = max(1, floor(C/4)); SE params = tC·S + S + S·tC + tC
    r = costmodel.analyze(spec(se=0.25))
    S = sympy.Max(1, sympy.floor(C / 4))
    expected = t * C * S + S + S * t * C + t * C
    assert sympy.simplify(r.formula("params", "se") - expected) == 0
