"""The conventions presets on timm models (issue #11, item 4): each preset against the real tool run on the real
timm model, and the spec field they read (``implementation``, docs/conventions.md).

The peer tests are optional (markers ``peers`` and ``timm``): skipped unless torch, timm, fvcore, ptflops, thop and
torchinfo are installed, at the versions docs/conventions.md names (torch 2.14.1, timm 1.0.31, fvcore
0.1.5.post20221221, ptflops 0.7.5, thop 0.1.1.post2209072238, torchinfo 1.8.0). Models are built with
``timm.create_model(name, pretrained=False)``: no weights are downloaded. The set covers every module class the
shipped timm specs use (Conv2dSame, MixedConv2d, CondConv2d, BlurPool2d, nn.AvgPool2d, BatchNormAct2d,
GroupNormAct, LayerNormAct2d, EvoNorm2dS0, the Ghost and RepGhost modules, GhostNetV3's and PP-LCNetV2's
re-parameterisable branches, MobileAttention, timm's Linear and SqueezeExcite, nn.Hardswish, nn.ReLU6, …). The
tests without those packages check the field and the op keys it gives, by hand count.

    python -m pytest tests/test_peers_timm.py -m "peers and timm"
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from collections import Counter

import pytest

import costmodel
from conftest import SPECS
from costmodel.analysis.conventions import apply, op_key
from costmodel.errors import SpecError

TIMM_SPECS = SPECS / "timm"

# name: what it covers beyond the ones before it
REPRESENTATIVE = {
    "tf_efficientnet_b0": "Conv2dSame (pad_type same), BatchNormAct2d, SqueezeExcite's x.mean, nn.Linear",
    "efficientnet_b0": "symmetric padding: nn.Conv2d only",
    "mobilenetv3_large_100": "timm's Linear, conv_head (1×1 nn.Conv2d on the pooled map), Hardswish, Hardsigmoid",
    "mixnet_s": "MixedConv2d",
    "tf_mixnet_s": "MixedConv2d of Conv2dSame",
    "ghostnet_100": "Ghost modules from torch.nn (nn.BatchNorm2d stem), timm's SE on them",
    "ghostnetv2_100": "DFC attention: F.avg_pool2d, F.interpolate",
    "mobilenetv4_conv_small": "UniversalInvertedResidual, ConvNormAct, conv + BatchNormAct2d head",
    "mobilenetv4_conv_aa_medium": "nn.AvgPool2d anti-aliasing",
    "efficientnet_blur_b0": "BlurPool2d",
    "efficientnet_b0_gn": "GroupNormAct",
    "test_efficientnet_ln": "LayerNormAct2d",
    "test_efficientnet_evos": "EvoNorm2dS0",
    "efficientnet_cc_b0_4e": "CondConv2d: expert mixing by torch.matmul, routing by F.adaptive_avg_pool2d",
    "lcnet_100": "DepthwiseSeparableConv with SE and its own pointwise activation",
    "efficientnetv2_rw_s": "EdgeResidual (Fused-MBConv)",
    "fbnetv3_b": "Hardswish SE activation, timm's Linear on a MobileNetV3",
    "efficientnet_lite0": "nn.ReLU6",
    "efficientnet_b1_pruned": "timm's Linear on an EfficientNet (pruned model adaptation)",
    "efficientnet_x_b3": "space-to-depth Conv2dSame (2×2, padding same) on a symmetric-padding model",
    "lcnetv2_small": "RepDepthwiseSeparable: parallel dw conv branches of nn.Conv2d + BatchNormAct2d, summed",
    "repghostnet_100": "RepGhost modules of torch.nn classes (nn.BatchNorm2d fusion_bn identity branch), timm's SE",
    "ghostnetv3_050": "GhostNetV3: timm's ConvBnAct branches (BatchNormAct2d) + nn.BatchNorm2d skip, DFC shortcut",
    "mobilenetv4_hybrid_medium_075": "MobileAttention: BatchNormAct2d pre-norm, nn.BatchNorm2d key/value norms, SDPA",
    "mobilenetv4_hybrid_large_075": "timm's GELU (not nn.GELU): ptflops counts only the patched F.gelu",
    "mobilenetv5_base": "MSFA (F.interpolate nearest/bilinear, F.avg_pool2d, a leaf RmsNorm2d), nn.GELU(tanh), SDPA",
}
# models with attention: timm runs F.scaled_dot_product_attention (use_fused_attn(), the default), which
# FlopCounterMode counts on the meta device and CUDA but not in the CPU's fused kernel
ATTENTION = {"mobilenetv4_hybrid_medium_075", "mobilenetv4_hybrid_large_075", "mobilenetv5_base"}
PEERS = ("torch", "fvcore", "ptflops", "thop", "torchinfo")

# Where a peer's count cannot be reproduced from a spec: {(name, peer): reason}; each case is xfail(strict=True),
# so a case that starts to match fails until it is taken out.
# At these versions only FlopCounterMode on the CPU on attention (docs/conventions.md, "The presets on timm
# models"): the torch preset counts the attention product, as FlopCounterMode does on the meta device
# (test_torch_preset_counts_attention_as_on_meta checks it exactly).
_CPU_SDPA = (
    "FlopCounterMode on the CPU: the fused _scaled_dot_product_flash_attention_for_cpu has no flop formula and "
    "counts 0; the torch preset counts q·kᵀ + attention·v as on the meta device, CUDA or timm's unfused path"
)
IRREPRODUCIBLE: dict[tuple[str, str], str] = {(name, "torch"): _CPU_SDPA for name in ATTENTION}


def spec_at(name: str, res: int | None) -> costmodel.NetworkSpec:
    spec = costmodel.load(TIMM_SPECS / f"{name}.yaml")
    if res is None:
        return spec
    return spec.model_copy(update={"input": spec.input.model_copy(update={"height": res, "width": res})})


@functools.cache
def peer_counts(name: str, res: int | None) -> tuple[tuple[int, ...], dict[str, int]]:
    """Each tool's figure for the timm model at timm's default input size (or res × res), batch 1, eval mode."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    fvcore_nn = pytest.importorskip("fvcore.nn")
    ptflops = pytest.importorskip("ptflops")
    thop = pytest.importorskip("thop")
    torchinfo = pytest.importorskip("torchinfo")
    from torch.utils.flop_counter import FlopCounterMode

    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)

    def build():
        # timm's default, fused attention (F.scaled_dot_product_attention), whatever tests/test_timm.py set for the
        # process: MultiQueryAttention2d and Attention2d read use_fused_attn() when they are built
        was = timm.layers.use_fused_attn()
        timm.layers.set_fused_attn(True)
        try:
            return timm.create_model(name, pretrained=False).eval()
        finally:
            timm.layers.set_fused_attn(was)

    m = build()
    size = tuple(m.pretrained_cfg["input_size"])
    if res is not None:
        size = (size[0], res, res)
    x = torch.zeros(1, *size)
    out = {}
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            m(x)
        out["torch"] = counter.get_total_flops() // 2
        with contextlib.redirect_stdout(io.StringIO()):
            out["torchinfo"] = torchinfo.summary(m, input_size=(1, *size), verbose=0).total_mult_adds
        f = fvcore_nn.FlopCountAnalysis(m, x)
        f.unsupported_ops_warnings(False)
        f.uncalled_modules_warnings(False)
        out["fvcore"] = f.total()
        with contextlib.redirect_stdout(io.StringIO()):
            out["ptflops"] = ptflops.get_model_complexity_info(
                m, size, as_strings=False, print_per_layer_stat=False, verbose=False
            )[0]
        fresh = build()  # thop leaves its buffers on the model
        with contextlib.redirect_stdout(io.StringIO()):
            out["thop"] = int(thop.profile(fresh, inputs=(x,), verbose=False)[0])
    return size, {p: int(v) for p, v in out.items()}


def _cases():
    for name in REPRESENTATIVE:
        for res in (None, 193):
            for peer in PEERS:
                marks = [pytest.mark.peers, pytest.mark.timm]
                reason = IRREPRODUCIBLE.get((name, peer))
                if reason is not None:
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                yield pytest.param(name, res, peer, marks=marks, id=f"{name}-{res or 'default'}-{peer}")


@pytest.mark.parametrize("name,res,peer", list(_cases()))
def test_presets_match_the_peers_on_timm(name, res, peer):
    size, peers = peer_counts(name, res)
    spec = spec_at(name, res)
    assert (spec.input.channels, spec.input.height, spec.input.width) == size
    assert apply(costmodel.analyze(spec), peer).totals["macs"] == peers[peer]


@pytest.mark.peers
@pytest.mark.timm
@pytest.mark.parametrize("res", [None, 193], ids=["default", "193"])
@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_torch_preset_counts_attention_as_on_meta(name, res):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from torch.utils.flop_counter import FlopCounterMode

    m = timm.create_model(name, pretrained=False).eval().to("meta")
    size, cpu = peer_counts(name, res)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        m(torch.zeros(1, *size, device="meta"))
    meta = counter.get_total_flops() // 2
    assert meta > cpu["torch"]  # the CPU's fused attention counts 0
    assert apply(costmodel.analyze(spec_at(name, res)), "torch").totals["macs"] == meta


# --------------------------------------------------------------------------- the field, without torch


def keys(name: str) -> Counter[str]:
    report = costmodel.analyze(costmodel.load(TIMM_SPECS / f"{name}.yaml"))
    return Counter(k for r in report.rows for k in [op_key(r)] for _ in range(r.times))


def test_every_timm_spec_says_it_is_built_by_timm():
    # specs/timm/_tools/set_implementation.py writes the field; a spec added without it fails here
    missing = [p.stem for p in sorted(TIMM_SPECS.glob("*.yaml")) if costmodel.load(p).implementation.library != "timm"]
    assert missing == []


def test_torchvision_specs_keep_torch_classes():
    for path in sorted((SPECS / "networks").glob("*.yaml")):
        spec = costmodel.load(path)
        assert spec.implementation.library == "torch", path.name
        report = costmodel.analyze(spec)
        assert {op_key(r) for r in report.rows if ":" in op_key(r)} <= {
            "avgpool:module",
            "avgpool:functional",
            "avgpool:mean",
        }, path.name


def test_tf_efficientnet_b0_op_keys():
    k = keys("tf_efficientnet_b0")
    # pad_type same: the stride-2 convs are Conv2dSame — the stem and the first depthwise conv of the four
    # stride-2 stages (24, 40, 80, 192 channels); timm pads the stride-1 ones statically (nn.Conv2d)
    assert k["conv2d:same"] == 1 + 4
    # BatchNormAct2d: stem 1 + the expansion-1 block 2 + 15 blocks × 3 + head 1
    assert k["batchnorm2d:act"] == 1 + 2 + 15 * 3 + 1 and k["batchnorm2d"] == 0
    assert k["avgpool:mean"] == 16  # SqueezeExcite in all 16 blocks pools with x.mean((2, 3))
    assert k["avgpool:module"] == 1  # the head's SelectAdaptivePool2d holds an nn.AdaptiveAvgPool2d
    assert k["linear"] == 1 and k["linear:timm"] == 0  # EfficientNet's classifier is an nn.Linear


def test_symmetric_padding_and_overrides():
    k = keys("efficientnet_b0")
    assert k["conv2d:same"] == 0 and k["batchnorm2d:act"] == 49
    k = keys("mobilenetv3_large_100")
    assert k["linear:timm"] == 1  # the classifier: timm's Linear
    assert k["linear"] == 1  # the spec's head linear: timm's conv_head, an nn.Conv2d (implementation: torch)
    k = keys("ghostnet_100")
    # the stem (implementation: torch) and the Ghost modules, conv_dw and shortcuts are torch.nn's BatchNorm2d;
    # only the last 1×1 conv (timm's ConvBnAct) has a BatchNormAct2d
    assert k["batchnorm2d:act"] == 1 and k["batchnorm2d"] > 0


def test_implementation_field_forms():
    base = costmodel.load(TIMM_SPECS / "efficientnet_b0.yaml").model_dump(exclude_unset=True)
    for value, expected in (
        ("timm", ("timm", "")),
        ({"library": "timm", "pad_type": "same"}, ("timm", "same")),
        ({"library": "torch"}, ("torch", "")),
    ):
        spec = costmodel.NetworkSpec.model_validate({**base, "implementation": value})
        assert (spec.implementation.library, spec.implementation.pad_type) == expected
    for bad in ("keras", {"library": "timm", "pad_type": "valid"}, {"library": "timm", "padding": "same"}):
        with pytest.raises((SpecError, ValueError)):
            costmodel.NetworkSpec.model_validate({**base, "implementation": bad})


def test_rep_and_attention_blocks_op_keys():
    # RepGhostNet: RepGhostModule, conv_dw + bn_dw and the shortcut are nn.BatchNorm2d; only the final ConvBnAct
    # (1×1 to 960) has a BatchNormAct2d. 16 blocks × (primary, cheap, fusion_bn) × 2 modules + the stem's bn1 +
    # 4 strided bn_dw + 5 shortcuts × 2 (the 4 strided blocks and 80 → 112)
    k = keys("repghostnet_100")
    assert k["batchnorm2d:act"] == 1
    assert k["batchnorm2d"] == 16 * 3 * 2 + 1 + 4 + 5 * 2
    # GhostNetV3: the rep branches are timm's ConvBnAct (BatchNormAct2d): per GhostModuleV3 3 primary + 3 cheap
    # + 1 cheap scale, two modules in each of the 16 blocks, + 3 dw branches + 1 dw scale in the 4 strided ones,
    # + the final ConvBnAct. nn.BatchNorm2d: stem, cheap_rpr_skip × 2 per block, DFC short_conv's 3 in the 14
    # 'shortcut'-mode ghost1 modules, and 5 shortcuts × 2 (4 strided blocks and 40 → 56)
    k = keys("ghostnetv3_050")
    assert k["batchnorm2d:act"] == 16 * 2 * 7 + 4 * 4 + 1
    assert k["batchnorm2d"] == 1 + 16 * 2 + 14 * 3 + 5 * 2
    # MobileNetV4 hybrid: MobileAttention's norm is BatchNormAct2d (8 blocks), the key and value down_conv norms
    # nn.BatchNorm2d (the 4 blocks with kv_stride 2)
    k = keys("mobilenetv4_hybrid_medium_075")
    assert k["batchnorm2d"] == 4 * 2
    assert k["attention"] == 8
