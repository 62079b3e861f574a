"""Whole networks: the shipped specs against torchvision's figures, the torch reference builder, and errors."""

from __future__ import annotations

import pytest

import costmodel
from conftest import NETWORKS, REFERENCE, edited
from costmodel.spec.scaling import make_divisible


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_shipped_network_matches_torchvision_reference(name):
    res, params, macs = REFERENCE[name]
    spec = costmodel.load(NETWORKS / f"{name}.yaml")
    assert (spec.input.height, spec.input.width) == (res, res)
    r = costmodel.analyze(spec)
    assert (r.totals["params"], r.totals["macs"]) == (params, macs)
    assert r.output == (1000,)


def test_make_divisible_is_torchvisions_rule():
    assert make_divisible(32 * 0.75, 8) == 24  # 24 is a multiple already
    assert make_divisible(16 * 0.35, 8) == 8  # int(5.6 + 4) // 8 * 8 = 8, at least the divisor
    assert make_divisible(24 * 1.1, 8) == 24  # 26.4 → int(30.4) // 8 * 8 = 24 ≥ 0.9 · 26.4
    assert make_divisible(40 * 1.1, 8) == 48  # 44 → int(48) // 8 * 8 = 48
    assert make_divisible(83, 8) == 80 and make_divisible(84, 8) == 88  # MnasNet's docstring example
    assert make_divisible(1280 * 1.4, 8) == 1792
    assert make_divisible(11, 8) == 16  # 8 < 0.9 · 11 = 9.9, so one divisor more


def test_efficientnet_b4_widths_and_depths():
    r = costmodel.analyze(NETWORKS / "efficientnet_b4.yaml")
    stem = r.blocks[0]
    assert stem.output[0] == 48  # make_divisible(32 · 1.4 = 44.8, 8) = 48
    mb = [b for b in r.blocks if b.kind == "mbconv"]
    # depths ceil(n · 1.8): 1→2, 2→4, 2→4, 3→6, 3→6, 4→8, 1→2
    assert len(mb) == 2 + 4 + 4 + 6 + 6 + 8 + 2
    head = next(b for b in r.blocks if b.name == "head")
    assert head.output[0] == 4 * 448  # last stage: make_divisible(320 · 1.4 = 448, 8) = 448; head = 4×


def test_mobilenet_v2_head_floor():
    half = costmodel.analyze(edited("mobilenet_v2", width=0.5))
    head = next(b for b in half.blocks if b.name == "head")
    assert head.output[0] == 1280  # 1280 · max(1.0, 0.5)
    wide = costmodel.analyze(edited("mobilenet_v2", width=1.4))
    assert next(b for b in wide.blocks if b.name == "head").output[0] == 1792  # 1280 · 1.4
