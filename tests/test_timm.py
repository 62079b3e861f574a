"""The timm specs (specs/timm/*.yaml) against timm's own models (optional: skipped without timm).

Each spec names a timm model; the model is built with ``timm.create_model(name, pretrained=False)`` (no
weights are downloaded) and compared, at batch 1 in eval mode, on params = sum(p.numel() for p in
model.parameters()), MACs = FlopCounterMode total // 2 and output shape, at timm's default input size
(``model.pretrained_cfg['input_size']``, which the spec's ``input`` must equal), at 193×193 (the spec with
its input edited) and, in the slow run (``-m slow``), at 321×321.

Models up to 20 GMACs run on the CPU. The few larger ones (EfficientNet-B7/B8/L2, EfficientNetV2-L/XL) are
built on the meta device: the same modules and the same FlopCounterMode formulas, without allocating or
computing anything. ``COSTMODEL_TIMM_DEVICE=cpu`` runs those on the CPU too (several GB of memory).

    pip install torch==2.14.1 timm==1.0.31
    python -m pytest tests/test_timm.py
"""

from __future__ import annotations

import os

import pytest

import costmodel
from conftest import SPECS

pytestmark = [pytest.mark.timm]
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

# timm's attention blocks (MobileNetV4-Hybrid) call F.scaled_dot_product_attention, which on the CPU dispatches to
# aten._scaled_dot_product_flash_attention_for_cpu: FlopCounterMode (torch 2.14) has no formula for it and counts 0.
# Its unfused path (q @ kᵀ, attn @ v) is counted, as SDPA is on the meta device and on CUDA; the specs count the
# attention matmuls (docs/conventions.md; tests/test_attention.py pins the CPU fused figure too). Models without
# attention are unaffected.
timm.layers.set_fused_attn(False)

TIMM_SPECS = SPECS / "timm"
NAMES = sorted(p.stem for p in TIMM_SPECS.glob("*.yaml"))
CPU_MAX_MACS = 20_000_000_000


def spec_at(name: str, resolution: int | None = None) -> costmodel.NetworkSpec:
    spec = costmodel.load(TIMM_SPECS / f"{name}.yaml")
    if resolution is None:
        return spec
    edited = spec.input.model_copy(update={"height": resolution, "width": resolution})
    return spec.model_copy(update={"input": edited})


def count(name: str, resolution: int | None, device: str):
    model = timm.create_model(name, pretrained=False, device=device).eval()
    size = tuple(model.pretrained_cfg["input_size"])
    if resolution is not None:
        size = (size[0], resolution, resolution)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(1, *size, device=device))
    return size, (sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:]))


@pytest.mark.parametrize(
    "resolution", [None, 193, pytest.param(321, marks=pytest.mark.slow)], ids=["default", "193", "321"]
)
@pytest.mark.parametrize("name", NAMES)
def test_spec_matches_timm(name, resolution):
    spec = spec_at(name, resolution)
    assert spec.name == name
    r = costmodel.analyze(spec)
    ours = (r.totals["params"], r.totals["macs"], r.output)
    device = os.environ.get("COSTMODEL_TIMM_DEVICE") or ("cpu" if ours[1] <= CPU_MAX_MACS else "meta")
    size, theirs = count(name, resolution, device)
    assert (spec.input.channels, spec.input.height, spec.input.width) == size
    assert ours == theirs


def test_specs_shipped():
    # The zoo's headline models (docs/zoo.md); a regenerated set must keep them.
    for name in [
        "efficientnet_b0",
        "efficientnet_lite0",
        "efficientnet_es",
        "tf_efficientnetv2_s",
        "semnasnet_100",
        "spnasnet_100",
        "tinynet_a",
        "hardcorenas_a",
        "mobilenetv3_large_100",
        "mnasnet_100",
        "tf_efficientnet_b0",
        "mobilenetv2_100",
        "mobilenetv3_small_100",
        # issue #11 part A: written with the fields added to the existing kinds (tests/test_kinds_a.py)
        "fbnetc_100",  # mbconv expand_always
        "efficientnetv2_rw_s",  # fused_mbconv keep_projection
        "efficientnet_b1_pruned",  # se_channels
        "lcnet_100",  # dwsep with SE
        "efficientnet_b0_gn",  # groupnorm
        "test_efficientnet_ln",  # layernorm
        "test_efficientnet_evos",  # evonorm_s0
        "efficientnet_b0_g8_gn",  # group_size + groupnorm
        "mobilenet_edgetpu_v2_s",  # group_size in fused_mbconv
        "efficientnet_x_b3",  # space-to-depth: a 2×2 conv with padding: same
        "efficientnet_h_b5",
        "efficientnet_blur_b0",  # aa: blur
    ]:
        assert name in NAMES


def test_zoo_kinds_specs_shipped():
    # The specs the zoo's own kinds unlock (mixconv, ghost_bottleneck): a regenerated set must keep them.
    for name in [
        "mixnet_s",
        "mixnet_m",
        "mixnet_l",
        "mixnet_xl",
        "mixnet_xxl",
        "tf_mixnet_s",
        "tf_mixnet_m",
        "tf_mixnet_l",
        "ghostnet_050",
        "ghostnet_100",
        "ghostnet_130",
        "ghostnetv2_100",
        "ghostnetv2_130",
        "ghostnetv2_160",
    ]:
        assert name in NAMES


def test_mobilenetv4_conv_specs_shipped():
    # Every MobileNetV4 conv model timm lists (not the hybrids) has a spec: uir, its aa, the conv head on the pool.
    listed = set(timm.list_models("mobilenetv4_conv*"))
    assert len(listed) == 8
    assert listed <= set(NAMES)


def test_lcnetv2_specs_shipped():
    # PP-LCNetV2 (rep_dwsep, tests/test_lcnet.py): every lcnetv2 model timm lists has a spec.
    listed = set(timm.list_models("lcnetv2*"))
    assert listed == {"lcnetv2_small", "lcnetv2_base", "lcnetv2_large"}
    assert listed <= set(NAMES)


def test_mobilenetv5_specs_shipped():
    # MobileNetV5 (the fusion kinds, tests/test_fusion.py): every mobilenetv5 model timm lists has a spec.
    listed = set(timm.list_models("mobilenetv5*"))
    assert listed == {"mobilenetv5_300m", "mobilenetv5_300m_enc", "mobilenetv5_base"}
    assert listed <= set(NAMES)
