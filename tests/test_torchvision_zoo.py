"""The torchvision specs added with the zoo (docs/zoo.md) against torchvision's own models (skipped without it).

params = sum(p.numel()), MACs = FlopCounterMode total // 2, output shape = a forward pass, batch 1, eval mode,
``weights=None``: at each model's evaluation crop, at 193 and, in the slow run (``-m slow``), at 321. The pinned
figures are torchvision 0.29.1's; the engine-only check of them needs no torch. Models over 20 GMACs at the
resolution tested are built and run on the meta device (the same modules and FlopCounterMode formulas, nothing
allocated), as tests/test_timm.py does.
"""

from __future__ import annotations

import pytest

import costmodel
from conftest import NETWORKS

# name: (resolution, params, MACs at resolution, MACs at 193), measured on torchvision 0.29.1
ZOO = {
    "efficientnet_v2_m": (480, 54_139_356, 24_582_460_384, 4_655_987_016),
    "efficientnet_v2_l": (480, 118_515_272, 56_079_699_008, 10_577_083_680),
    "mnasnet0_5": (224, 2_218_512, 104_455_968, 91_721_880),
    "mnasnet0_75": (224, 3_170_208, 215_493_104, 188_597_576),
    "mnasnet1_3": (224, 6_282_256, 526_362_432, 465_913_464),
}


def spec_at(name: str, resolution: int) -> costmodel.NetworkSpec:
    spec = costmodel.load(NETWORKS / f"{name}.yaml")
    edited = spec.input.model_copy(update={"height": resolution, "width": resolution})
    return spec.model_copy(update={"input": edited})


@pytest.mark.parametrize("name", sorted(ZOO))
def test_pinned(name):
    res, params, macs, macs_193 = ZOO[name]
    spec = costmodel.load(NETWORKS / f"{name}.yaml")
    assert spec.input.height == spec.input.width == res
    r = costmodel.analyze(spec)
    assert (r.totals["params"], r.totals["macs"], r.output) == (params, macs, (1000,))
    assert costmodel.analyze(spec_at(name, 193)).totals["macs"] == macs_193


CPU_MAX_MACS = 20_000_000_000


@pytest.mark.torchvision
@pytest.mark.parametrize(
    "resolution", [None, 193, pytest.param(321, marks=pytest.mark.slow)], ids=["shipped", "193", "321"]
)
@pytest.mark.parametrize("name", sorted(ZOO))
def test_against_torchvision(name, resolution):
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    from torch.utils.flop_counter import FlopCounterMode

    res = resolution or ZOO[name][0]
    spec = spec_at(name, res)
    r = costmodel.analyze(spec)
    device = "cpu" if r.totals["macs"] <= CPU_MAX_MACS else "meta"
    with torch.device(device):
        model = getattr(models, name)(weights=None).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(1, 3, res, res, device=device))
    theirs = (sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:]))
    assert (r.totals["params"], r.totals["macs"], r.output) == theirs
