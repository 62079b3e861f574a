"""deploy --runtime litert: TFLite's arena planner over the int8 graph, by hand (no runtime needed).

The figures are checked against LiteRT's interpreter under ``-m deploy`` (tests/test_deploy_runtime.py).
"""

from __future__ import annotations

from pathlib import Path

import costmodel

ROOT = Path(__file__).resolve().parents[1]


def test_three_layer_arena_by_hand():
    # docs/deploy.md's three-layer net: offsets are multiples of 64; the input first, then largest first,
    # each at the best-fitting gap among the tensors alive with it. Input 243 B at 0 (alive throughout);
    # conv 1's im2col, 5·5·(3·3·3) = 675 B (node 0), at 256; conv 2's output, 5·5·12 = 300 B (nodes 1–2),
    # at 256 (the im2col is dead); conv 1's output, 200 B (nodes 0–1), alive with both: after the im2col,
    # 256 + 675 = 931 → 960. MEAN's temporaries (node 2): int32 sums 4·12 = 48 B at 576 (after conv 2's
    # output, 556 → 576), int32 index 16 B at 640, int32 axes 8 B at 768 (after MEAN's output, 12 B at 704);
    # the model output, 10 B (node 3 on), at 256. Arena = 960 + 200 = 1,160 B.
    d = costmodel.deploy(ROOT / "tests/deploy_fixtures/three_layer.yaml", "litert")
    assert d.peak_bytes == 1_160
    plan = sorted((b.size, b.offset) for b in d.buffers)
    assert plan == [(8, 768), (10, 256), (12, 704), (16, 640), (48, 576), (200, 960), (243, 0), (300, 256), (675, 256)]
    # Flash is the .tflite's (the TFLM figure): weights 432 + biases 120 + MEAN's axes 8, plus the
    # quantization parameters counted as values
    assert d.flash()["weight_bytes"] + d.flash()["bias_bytes"] + d.flash()["const_bytes"] == 560


def test_the_residual_add_takes_over_the_projection_buffer():
    # input 4×4×4 (64 B) → MBConv(expansion 2, 3×3, residual) → conv 1×1. The ADD's output takes over the
    # buffer of the projection's output (read by the ADD alone, same size); the block input is the model
    # input, never shared. Tensors: input 64 (always), expansion 128 (nodes 0–1), depthwise 128 (1–2),
    # projection + ADD 64 (2–4), output 64 (4 on). Input at 0; expansion at 64; depthwise alive with it: 192;
    # projection: the gap between the input's end (64) and the depthwise output (192) fits: 64; the output is
    # alive with the projection/ADD buffer: 128. Arena = 192 + 128 = 320 B.
    text = (
        "input: {channels: 4, height: 4, width: 4}\ndefaults: {activation: relu}\n"
        "layers:\n  - {kind: mbconv, out_channels: 4, expansion: 2, kernel: 3}\n"
        "  - {kind: conv, out_channels: 4, kernel: 1}\n"
    )
    d = costmodel.deploy(costmodel.loads(text), "litert")
    assert [s.label.rsplit(" ", 1)[-1] for s in d.steps] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "CONV_2D",
        "ADD",
        "CONV_2D",
    ]
    assert [(b.size, b.offset, b.first, b.last) for b in d.buffers] == [
        (64, 0, 0, 5), (128, 64, 0, 1), (128, 192, 1, 2), (64, 64, 2, 4), (64, 128, 4, 5)
    ]  # fmt: skip
    assert d.peak_bytes == 320
    assert d.steps[3].inplace is not None


def test_litert_cli_and_refusals(run_cli):
    code, out, err = run_cli("deploy", str(ROOT / "tests/deploy_fixtures/three_layer.yaml"), "--runtime", "litert")
    assert code == 0, err
    assert "1,160 B" in out and "XNNPACK" in out
    code, out, err = run_cli(
        "deploy", str(ROOT / "tests/deploy_fixtures/three_layer.yaml"), "--runtime", "litert", "--no-input"
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_onnxruntime_flash_by_hand_and_the_arena_is_refused(run_cli):
    # the three-layer net as a QDQ int8 ONNX graph: int8 weights 216 + 96 + 120 = 432; int32 biases (BN folded
    # into both convs, the linear's own) 4·(8 + 12 + 10) = 120; per weight a float32 scale + int8 zero point,
    # 3·5 = 15; per bias a float32 scale + int32 zero point, 3·8 = 24; per activation tensor (input, the two
    # convs' (their ReLU removed), the pool's, the output) 5·5 = 25. 432 + 120 + 15 + 24 + 25 = 616 B.
    d = costmodel.deploy(ROOT / "tests/deploy_fixtures/three_layer.yaml", "onnxruntime")
    f = d.flash()
    assert (f["weight_bytes"], f["bias_bytes"], f["quant_bytes"], f["flash_bytes"]) == (432, 120, 64, 616)
    assert not d.arena_observable
    code, out, err = run_cli("deploy", str(ROOT / "tests/deploy_fixtures/three_layer.yaml"), "--runtime",
                             "onnxruntime", "-f", "json")  # fmt: skip
    import json

    assert code == 0, err
    data = json.loads(out)
    assert data["peak_bytes"] is None and data["flash"]["flash_bytes"] == 616
    code, out, err = run_cli("deploy", "mobilenet_v2", "--runtime", "onnxruntime", "--flash", "4MiB", "--solve",
                             "width")  # fmt: skip
    assert code == 2 and out == "" and "not observable" in err and len(err.strip().splitlines()) == 1
