"""costmodel deploy: int8 peak SRAM (TinyEngine, patch-based inference), TFLM's planned arena, Flash.

Every expectation is hand arithmetic written beside it (MCUNet/MCUNetV2's published figures, TFLM's greedy
planner worked by hand); the real-runtime comparison is in test_deploy_runtime.py (-m deploy).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import costmodel
from costmodel.cli import main
from costmodel.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
MBV2 = str(ROOT / "specs/networks/mobilenet_v2.yaml")
THREE = str(ROOT / "tests/deploy_fixtures/three_layer.yaml")

TWO_CONV = """
name: two 3x3 convs
input: {channels: 2, height: 8, width: 8}
defaults: {activation: relu, norm: batchnorm, bias: false}
layers:
  - {kind: conv, out_channels: 4, kernel: 3}
  - {kind: conv, out_channels: 3, kernel: 3}
"""


def test_mcunetv2_mobilenetv2_per_layer_peak() -> None:
    # MCUNetV2, Fig. 1: MobileNetV2 (224², int8) peaks at 1,372 kB = (16 + 96)·112² B in KiB: block 2.0's
    # expansion conv reads the 16-channel 112² tensor and writes the 96-channel one; its depthwise conv (s2)
    # then works in place, needing only max(96·112², 96·56²) = 1,204,224 B.
    d = costmodel.deploy(MBV2, "tinyengine")
    assert d.peak_bytes == (16 + 96) * 112 * 112 == 1_404_928 == 1372 * 1024
    assert d.peak_step == "2.0 expansion conv2d+batchnorm2d+relu6"
    dw = next(s for s in d.steps if s.label.startswith("2.0 depthwise"))
    assert dw.inplace is not None and dw.live_bytes == 96 * 112 * 112
    # the stem counts the image: 3·224² + 32·112² = 150,528 + 401,408 (MCUNetV2 quotes 539 kB)
    assert d.steps[0].live_bytes == 3 * 224 * 224 + 32 * 112 * 112 == 551_936
    # without in-place depthwise (costmodel memory --dtype int8 --fusion conv-bn-act) it would be
    # 96·112² + 96·56² = 1,505,280: the rule is what takes 1,470 KiB down to 1,372
    assert costmodel.memory(MBV2, "int8", "conv-bn-act").peak.bytes == 96 * 112 * 112 + 96 * 56 * 56
    assert costmodel.deploy(MBV2, "tinyengine", include_input=False).steps[0].live_bytes == 32 * 112 * 112


def test_mcunetv2_mobilenetv2_patch_peak() -> None:
    # 4×4 patches through block 3.0 (stem + the first four MBConv blocks, MCUNetV2's "first 5 blocks"):
    # after them the peak is block 3.1's expansion, 32·28² in + 192·28² out = 175,616 B = 171.5 KiB, the
    # "172 kB" of MCUNetV2 (KiB, rounded).
    d = costmodel.deploy(MBV2, "tinyengine", patch=(4, 4), patch_until="3.0")
    assert d.peak_bytes == (32 + 192) * 28 * 28 == 175_616
    assert round(d.peak_bytes / 1024) == 172
    assert d.layer_peak_bytes == 1_404_928
    p = d.patch
    assert p is not None
    # an interior output patch is 7×7 of 28²; back through 3.0's depthwise (s2): 15 rows of 56²; 2.1's
    # depthwise (s1): 17; 2.0's depthwise (s2): (17 − 1)·2 + 3 = 35 rows of 112². Block 2.0's expansion
    # holds 16·35² in and 96·35² out, while block 3.0's whole output (32·28²) stays allocated:
    assert p.peak_bytes == (16 + 96) * 35 * 35 + 32 * 28 * 28 == 162_288
    assert p.peak_step == "2.0 expansion conv2d+batchnorm2d+relu6"
    assert p.output_bytes == 32 * 28 * 28


def test_patch_recomputed_macs_by_hand() -> None:
    # 2→4→3 channels, two 3×3 convs (padding 1) on 8×8, 2×2 patches of the 8×8 output (4×4 each).
    # Each patch needs of conv 1's output rows [0, 4] (or [3, 7]): 5×5; of the input 6×6.
    # conv 1 MACs per output pixel 2·9·4 = 72, conv 2: 4·9·3 = 108.
    d = costmodel.deploy(costmodel.loads(TWO_CONV), "tinyengine", patch=(2, 2), patch_until="1.0")
    p = d.patch
    assert p is not None
    assert p.stage_macs == 72 * 64 + 108 * 64
    assert p.patch_macs == 4 * (72 * 25 + 108 * 16)
    assert p.recomputed_macs == 4 * 72 * 25 - 72 * 64 == 2_592
    # per patch: the input patch 2·6² + conv 1's 4·5² (its first op), then 4·5² + the whole 3·8² output
    assert p.peak_bytes == max(2 * 36 + 4 * 25 + 3 * 64, 4 * 25 + 3 * 64) == 364
    q = costmodel.deploy(costmodel.loads(TWO_CONV), "tinyengine", include_input=False, patch=(2, 2), patch_until="1.0")
    assert q.patch is not None and q.patch.peak_bytes == 4 * 25 + 3 * 64


def test_tinyengine_residual_add_in_place_and_flash() -> None:
    d = costmodel.deploy(MBV2, "tinyengine")
    # block 2.1 (24 → 144 → 24 on 56², residual): the projection conv adds the shortcut and writes over it,
    # needing the expanded 144·56² + max(24·56², 24·56²)
    proj = next(s for s in d.steps if s.label.startswith("2.1 projection"))
    assert proj.label.endswith("+add") and proj.live_bytes == (144 + 24) * 56 * 56
    # Flash rule: int8 weights + per output channel int32 bias, int32 multiplier, int32 shift (12 B).
    # The stem: 32·3·3·3 = 864 weights, 32 channels: 864 + 12·32
    assert d.steps[0].flash_bytes == 864 + 12 * 32
    # the classifier: 1280·1000 weights (its own bias replaced by the int32 one) + 12·1000
    assert d.steps[-1].flash_bytes == 1280 * 1000 + 12 * 1000


def test_tflm_three_layer_arena_by_hand() -> None:
    # TFLM, by hand (docs/deploy.md): tensors rounded up to 16 B, op i at time i + 1.
    #   input 3·9·9 = 243 → 256, [0, 1]     conv1 8·5·5 = 200 → 208, [1, 2]    conv2 12·5·5 = 300 → 304, [2, 3]
    #   MEAN 12 → 16, [3, 4]                FC 10 → 16, [4, 4] (the output lives to the end)
    #   MEAN's scratch, [3, 3]: 4·12 = 48, 4·rank 4 = 16, 4·2 axes = 8 → 16
    # largest first, equal sizes in the reverse of the order added (tensors in op order, then scratch):
    # conv2 at 0; the input at 0 (not alive with conv2); conv1 meets both: after conv2, 304; scratch 48 at 304
    # (conv1 is dead by time 3); scratch 2 at 352, scratch 1 at 368; FC at 0 (alone at time 4); MEAN, alive with
    # conv2, FC, and the scratches: 384.
    d = costmodel.deploy(THREE, "tflm")
    plan = {b.name: (b.size, b.first, b.last, b.offset) for b in d.buffers}
    assert plan["input"] == (256, 0, 1, 0)
    assert plan["0.0 conv CONV_2D"] == (208, 1, 2, 304)
    assert plan["1.0 conv CONV_2D"] == (304, 2, 3, 0)
    assert plan["2.0 pool MEAN"] == (16, 3, 4, 384)
    assert plan["3.0 classifier FULLY_CONNECTED"] == (16, 4, 4, 0)
    assert [plan[f"2.0 pool MEAN scratch {k}"][3] for k in range(3)] == [304, 368, 352]
    assert d.peak_bytes == 304 + 208 == 512
    f = d.flash()
    # weights 8·3·9 + 12·8 + 10·12 = 216 + 96 + 120; int32 biases 4·(8 + 12 + 10); MEAN's axes int32[2]
    assert (f["weight_bytes"], f["bias_bytes"], f["const_bytes"]) == (432, 120, 8)
    # quantization parameters: 24 B per channel (float32 scale + int64 zero point, weights and bias), conv per
    # channel, fully connected per tensor
    assert f["quant_bytes"] == 24 * 8 + 24 * 12 + 24 * 1


def test_tflm_mobilenetv2_arena_figure() -> None:
    # MobileNetV2 ×0.35 at 96: TFLM's interpreter reported this head (planned) arena for the converted model
    # (tflite-micro 0.dev20261023, tensorflow-cpu 2.21.0; benchmarks/deploy_validation.py): 138,240 B. The
    # tensors at its top: block 2.0's depthwise output 48·24² = 27,648 placed above the expanded 48·48² = 110,592.
    d = costmodel.deploy(costmodel.configure(MBV2, resolution=(96, 96), width_mult=0.35), "tflm")
    assert d.peak_bytes == 48 * 48 * 48 + 48 * 24 * 24 == 138_240


def test_deploy_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["deploy", MBV2, "--runtime", "tinyengine", "--patch", "4x4", "--patch-until", "3.0", "-f", "json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["peak_bytes"] == 175_616 and out["layer_peak_bytes"] == 1_404_928
    assert out["patch"]["grid"] == [4, 4]
    assert main(["deploy", THREE, "--runtime", "tflm"]) == 0
    text = capsys.readouterr().out
    assert "arena (planned tensors and scratch buffers): 512 B" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--runtime", "tflm", "--patch", "4x4", "--patch-until", "3.0"], "patch-based inference is modelled for"),
        (["--runtime", "tinyengine", "--patch", "4x4"], "--patch and --patch-until go together"),
        (["--runtime", "tflm", "--no-input"], "--no-input is a tinyengine rule"),
        (["--runtime", "tinyengine", "--patch", "4x", "--patch-until", "3.0"], "expected a positive integer N or HxW"),
        (["--runtime", "tinyengine", "--patch", "4x4", "--patch-until", "99.0"], "no such block"),
        (["--runtime", "tinyengine", "--patch", "4x4", "--patch-until", "9.0"], "not a spatial op"),
        (["--runtime", "tinyengine", "--patch", "64x64", "--patch-until", "3.0"], "64 patches along an axis of 28"),
    ],
)
def test_deploy_refusals(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", MBV2, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("costmodel: error: ") and message in captured.err
    assert captured.err.count("\n") == 1


def test_deploy_refuses_unmodelled() -> None:
    with pytest.raises(UsageError, match="int8 graphs only"):
        costmodel.deploy(MBV2, "tinyengine", dtype="float32")
    with pytest.raises(UsageError, match="unknown runtime"):
        costmodel.deploy(MBV2, "tvm")
    # MixNet's mixed kernels concatenate channel groups; a GroupNorm has statistics of its own: neither is modelled
    with pytest.raises(UsageError, match="2.0 expansion concat: op category 'concat' is not modelled"):
        costmodel.deploy(str(ROOT / "specs/timm/mixnet_s.yaml"), "tflm")
    with pytest.raises(UsageError, match="0.0 conv groupnorm: a norm that does not fold"):
        costmodel.deploy(str(ROOT / "specs/timm/efficientnet_b0_gn.yaml"), "tinyengine")


def test_tflm_hardsigmoid_is_clamp_and_mul() -> None:
    # MobileNetV3's SE gate: conv → hardsigmoid becomes CONV_2D (+3 in the bias, relu6 clamp) and MUL by the
    # int8 scalar 1/6 (what TensorFlow's converter writes); the scalar, like MEAN's axes, is stored once
    d = costmodel.deploy(str(ROOT / "specs/networks/mobilenet_v3_small.yaml"), "tflm")
    gate = [i for i, s in enumerate(d.steps) if s.label == "1.0 se MUL" and s.reads[0] < 0]
    assert len(gate) == 1 and d.steps[gate[0] - 1].label == "1.0 se CONV_2D"
    assert d.steps[gate[0]].shape == (16, 1, 1)
    assert d.flash()["const_bytes"] == 8 + 1
