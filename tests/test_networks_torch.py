"""Whole networks against the torch reference builder (costmodel.torchref): params, buffers, MACs and output
shape of the built module agree with the engine (needs torch; the torch-free checks are in test_networks.py)."""

from __future__ import annotations

import pytest

import costmodel
from conftest import NETWORKS, REFERENCE, edited

torch = pytest.importorskip("torch")
from costmodel.torchref import measure  # noqa: E402


def agree(spec):
    r = costmodel.analyze(spec)
    m = measure(spec)
    got = (r.totals["params"], r.totals["buffers"], r.totals["macs"], r.output)
    assert got == (m["params"], m["buffers"], m["macs"], m["output"])
    return r


# The large networks (over 1 GMAC at their resolution) run with -m slow; the default run keeps the small ones.
SMALL = {"mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "mnasnet1_0", "efficientnet_b0", "efficientnet_b1"}
BY_SIZE = [n if n in SMALL else pytest.param(n, marks=pytest.mark.slow) for n in sorted(REFERENCE)]


@pytest.mark.parametrize("name", BY_SIZE)
def test_builder_agrees_at_shipped_resolution(name):
    agree(costmodel.load(NETWORKS / f"{name}.yaml"))


@pytest.mark.parametrize("name", BY_SIZE)
@pytest.mark.parametrize("resolution", [97, pytest.param(225, marks=pytest.mark.slow)])
def test_builder_agrees_at_odd_resolutions(name, resolution):
    agree(edited(name, resolution))


@pytest.mark.parametrize(
    "width", [0.5, pytest.param(0.75, marks=pytest.mark.slow), pytest.param(1.4, marks=pytest.mark.slow)]
)
def test_builder_agrees_on_mobilenet_v2_widths(width):
    agree(edited("mobilenet_v2", 161, width=width))


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_large", "mnasnet1_0"])
@pytest.mark.parametrize(
    "width", [pytest.param(0.35, marks=pytest.mark.slow), 0.5, pytest.param(1.3, marks=pytest.mark.slow)]
)
def test_builder_agrees_on_other_widths(name, width):
    agree(edited(name, 129, width=width))
