"""The engine against torch itself: params = sum(p.numel()), buffers = sum(b.numel()),
MACs = FlopCounterMode total / 2, output shape = a real forward pass."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import costmodel

torch = pytest.importorskip("torch")
from costmodel.torchref import measure  # noqa: E402


def check(data: dict[str, Any]) -> None:
    spec = costmodel.NetworkSpec.model_validate(data)
    r = costmodel.analyze(spec)
    m = measure(spec)
    assert m["macs_exact_half"]
    got = (r.totals["params"], r.totals["buffers"], r.totals["macs"], r.output)
    want = (m["params"], m["buffers"], m["macs"], m["output"])
    assert got == want, data


KINDS = ["conv", "mbconv", "fused_mbconv", "dwsep", "basic", "bottleneck"]


def layer_for(kind: str, cin: int, cout: int, k: int, s: int, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": kind, "out_channels": cout, "kernel": k, "stride": s}
    if kind in ("mbconv", "fused_mbconv"):
        d["expansion"] = extra.pop("expansion", 4)
    if kind == "basic" and s == 1 and cin == cout:
        d["residual"] = True
    d.update(extra)
    return d


GRID = list(
    itertools.product(
        KINDS,
        [(8, 8), (8, 12)],  # (in, out) channels
        [1, 3, 5],  # kernel
        [1, 2],  # stride
        [7, 10],  # odd and even input size
    )
)


@pytest.mark.parametrize("kind,chans,k,s,size", GRID)
def test_grid_every_kind(kind, chans, k, s, size):
    cin, cout = chans
    check(
        {
            "input": {"channels": cin, "height": size, "width": size + 1},
            "layers": [layer_for(kind, cin, cout, k, s)],
        }
    )


@pytest.mark.parametrize("kind", ["mbconv", "fused_mbconv"])
@pytest.mark.parametrize("expansion", [1, 3, 6])
@pytest.mark.parametrize("se", [None, 0.25, 0.5])
@pytest.mark.parametrize("gate,act", [("sigmoid", "silu"), ("hardsigmoid", "hardswish")])
def test_grid_expansion_and_se(kind, expansion, se, gate, act):
    layer = {"kind": kind, "out_channels": 6, "expansion": expansion, "se_gate": gate, "activation": act}
    if se is not None:
        layer["se"] = se
    check({"input": {"channels": 6, "height": 9, "width": 9}, "layers": [layer]})


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("norm", ["batchnorm", "none"])
@pytest.mark.parametrize("activation", ["relu", "relu6", "silu", "hardswish", "none"])
def test_grid_defaults(bias, norm, activation):
    check(
        {
            "input": {"channels": 3, "height": 11, "width": 5, "batch": 2},
            "defaults": {"bias": bias, "norm": norm, "activation": activation},
            "layers": [
                {"kind": "conv", "out_channels": 8, "stride": 2},
                {"kind": "mbconv", "out_channels": 8, "expansion": 6, "se": 0.25, "repeat": 2},
                {"kind": "bottleneck", "out_channels": 16, "stride": 2},
                {"kind": "basic", "out_channels": 16, "residual": True, "repeat": 2},
                {"kind": "fused_mbconv", "out_channels": 12, "expansion": 1, "stride": 2, "repeat": 3},
                {"kind": "dwsep", "out_channels": 4},
            ],
        }
    )


def test_grouped_conv_and_explicit_mid_width():
    check(
        {
            "input": {"channels": 12, "height": 13, "width": 13},
            "layers": [
                {"kind": "conv", "out_channels": 18, "groups": 3, "kernel": 5},
                {"kind": "bottleneck", "out_channels": 18, "mid_channels": 7, "stride": 2},
            ],
        }
    )


# --- property-based: random stacks of every kind --------------------------------------------------

ACTS = ["relu", "relu6", "silu", "hardswish", "none"]


@st.composite
def random_spec(draw: st.DrawFn) -> dict[str, Any]:
    cin = draw(st.integers(1, 12))
    size_h = draw(st.integers(1, 17))
    size_w = draw(st.integers(1, 17))
    c = cin
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(KINDS))
        cout = draw(st.one_of(st.just(c), st.integers(1, 16)))
        s = draw(st.sampled_from([1, 2]))
        k = draw(st.sampled_from([1, 3, 5]))
        layer: dict[str, Any] = {"kind": kind, "out_channels": cout, "kernel": k, "stride": s}
        layer["repeat"] = draw(st.integers(1, 2))
        for key, strat in (
            ("activation", st.sampled_from(ACTS)),
            ("norm", st.sampled_from(["batchnorm", "none"])),
            ("bias", st.booleans()),
        ):
            if draw(st.booleans()):
                layer[key] = draw(strat)
        if kind in ("mbconv", "fused_mbconv"):
            layer["expansion"] = draw(st.integers(1, 4))
            if draw(st.booleans()):
                layer["se"] = draw(st.sampled_from([0.25, 0.5, 1.0, 0.1]))
                layer["se_gate"] = draw(st.sampled_from(["sigmoid", "hardsigmoid"]))
            layer["residual"] = draw(st.sampled_from(["auto", False]))
        if kind == "conv":
            import math

            g = math.gcd(c, cout)
            layer["groups"] = draw(st.sampled_from([d for d in range(1, g + 1) if g % d == 0]))
        if kind == "basic":
            layer["residual"] = s == 1 and c == cout and draw(st.booleans())
        if kind == "bottleneck" and (cout < 4 or draw(st.booleans())):
            layer["mid_channels"] = draw(st.integers(1, 8))
        layers.append(layer)
        c = cout
    return {
        "input": {"channels": cin, "height": size_h, "width": size_w, "batch": draw(st.integers(1, 2))},
        "defaults": {
            "activation": draw(st.sampled_from(ACTS)),
            "norm": draw(st.sampled_from(["batchnorm", "none"])),
            "bias": draw(st.booleans()),
        },
        "layers": layers,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_spec())
def test_random_specs_agree_with_torch(data):
    check(data)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_spec())
def test_many_random_specs_agree_with_torch(data):
    """The same property over 300 specs (-m slow)."""
    check(data)
