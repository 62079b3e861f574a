"""The shipped network specs against torchvision's own models (optional: skipped without torchvision).

Run with torchvision installed (x86_64: ``pip install torch==2.14.1 torchvision==0.29.1``):
params = sum(p.numel()), MACs = FlopCounterMode total / 2, output shape = a forward pass, at the shipped
resolution, odd resolutions, and edited widths (MobileNetV2's width_mult, MnasNet's alpha, and
EfficientNet / MobileNetV3 widths through torchvision's own config functions).
"""

from __future__ import annotations

import pytest

import costmodel
from conftest import NETWORKS, REFERENCE, edited

pytestmark = pytest.mark.torchvision
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from torchvision import models  # noqa: E402


def count(model, resolution):
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(1, 3, resolution, resolution))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:])


def check(spec, model):
    r = costmodel.analyze(spec)
    assert (r.totals["params"], r.totals["macs"], r.output) == count(model, spec.input.height)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_shipped_resolution(name):
    check(costmodel.load(NETWORKS / f"{name}.yaml"), getattr(models, name)())


@pytest.mark.parametrize("resolution", [193, pytest.param(321, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_odd_resolution(name, resolution):
    check(edited(name, resolution), getattr(models, name)())


@pytest.mark.parametrize("width", [0.5, 0.75, 1.4])
@pytest.mark.parametrize("resolution", [224, 161])
def test_mobilenet_v2_width_mult(width, resolution):
    check(edited("mobilenet_v2", resolution, width=width), models.mobilenet_v2(width_mult=width))


@pytest.mark.parametrize("alpha,builder", [(0.5, "mnasnet0_5"), (0.75, "mnasnet0_75"), (1.3, "mnasnet1_3")])
def test_mnasnet_alpha(alpha, builder):
    check(edited("mnasnet1_0", 224, width=alpha), getattr(models, builder)())


@pytest.mark.parametrize("width,depth", [(0.5, 1.0), (1.3, 1.5), (0.35, 0.8)])
def test_efficientnet_edited_scaling(width, depth):
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=depth)
    check(edited("efficientnet_b0", 199, width=width, depth=depth), EfficientNet(setting, 0.2, last_channel=last))


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
@pytest.mark.parametrize("width", [0.5, 0.75, 1.25])
def test_mobilenet_v3_width(name, width):
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf

    setting, last = _mobilenet_v3_conf(name, width_mult=width)
    check(edited(name, 224, width=width), MobileNetV3(setting, last))


@pytest.mark.parametrize("resolution,width", [(96, 0.35), (128, 0.5)])
def test_configure_matches_width_mult(resolution, width):
    """``configure`` (the CLI's --resolution / --width-mult) is torchvision's mobilenet_v2(width_mult=W) at R×R."""
    spec = costmodel.configure(NETWORKS / "mobilenet_v2.yaml", resolution=resolution, width_mult=width)
    check(spec, models.mobilenet_v2(width_mult=width))
