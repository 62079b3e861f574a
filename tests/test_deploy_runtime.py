"""costmodel deploy --runtime tflm against the real runtime: TensorFlow's int8 converter and TFLM's interpreter.

Needs the [deploy] extra (tflite-micro, tensorflow-cpu); skipped without it. Run with ``-m deploy``. Each case
converts a model (tens of seconds): the arena costmodel plans must equal the head TFLM allocates, and the
weights + biases + constants costmodel counts must equal the bytes of the .tflite's constant buffers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[1]


def _validation() -> Any:
    pytest.importorskip("tflite_micro")
    pytest.importorskip("tensorflow")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import deploy_validation

    return deploy_validation


CASES = [
    "three-layer net (docs/deploy.md)",
    "MobileNetV2 ×0.35 at 96",
    "MobileNetV2 ×0.35 at 144",
    "EfficientNet-lite0 at 128",
    "MobileNetV3-small at 96",
    "MCUNet TinyNAS space, sample 0",
]


@pytest.mark.parametrize("title", CASES)
def test_tflm_arena_and_flash_to_the_byte(title: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dv = _validation()
    monkeypatch.chdir(ROOT)
    (path, shape) = next((p, s) for t, p, s in dv.CASES if t == title)
    r = dv.measure(path, **shape)
    assert r["costmodel_ops"] == r["tflite_ops"]
    assert r["costmodel_arena"] == r["tflm_head"]
    assert r["costmodel_weights_biases"] == r["tflite_const_bytes"]


def test_export_tflite_is_the_graph_tflm_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # costmodel export --tflite writes the int8 graph deploy --runtime tflm plans. The three-layer net of
    # docs/deploy.md, worked by hand there: arena 512 B; constants 8·3·9 + 12·8 + 10·12 = 432 weights,
    # 4·(8 + 12 + 10) = 120 bias, MEAN's axes 8 = 560 B; ops CONV_2D, CONV_2D, MEAN, FULLY_CONNECTED.
    dv = _validation()
    from costmodel.cli import main

    out = tmp_path / "three.tflite"
    assert main(["export", str(ROOT / "tests/deploy_fixtures/three_layer.yaml"), "--tflite", str(out)]) == 0
    data = out.read_bytes()
    assert capsys.readouterr().out == f"wrote {out}: int8 .tflite, {len(data):,} bytes\n"
    facts = dv.tflite_facts(data)
    assert facts["ops"] == ["CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert facts["const_bytes"] == 432 + 120 + 8
    assert dv.tflm_allocations(data)["head"] == 512


LITERT_CASES = [
    "three-layer net (docs/deploy.md)",
    "MobileNetV2 ×0.35 at 96",
    "MobileNetV3-small at 96",
    "MnasNet-small at 96",
    "OFA MobileNetV3 space, sample 0",
]


@pytest.mark.parametrize("title", LITERT_CASES)
def test_litert_arena_and_flash_to_the_byte(title: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # deploy --runtime litert: the arena of LiteRT's built-in kernels as its interpreter exposes it (every
    # non-constant tensor's buffer address, temporaries included), tensor by tensor; Flash: the .tflite's
    # constant buffers
    pytest.importorskip("ai_edge_litert")
    dv = _validation()
    monkeypatch.chdir(ROOT)
    (path, shape) = next((p, s) for t, p, s in dv.CASES if t == title)
    r = dv.measure_litert(path, **shape)
    assert r["costmodel_arena"] == r["litert_arena"]
    assert r["costmodel_layout"] == r["litert_layout"]
    assert r["costmodel_weights_biases"] == r["tflite_const_bytes"]


def test_litert_three_layer_arena_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    # docs/deploy.md's three-layer net on LiteRT (offsets multiples of 64; the input first, then largest first,
    # best fit): input 243 at 0; conv 1's im2col 5·5·27 = 675 at 256; conv 2's output 300 at 256 (im2col is
    # dead); conv 1's output 200 after both, at 960; arena = 960 + 200 = 1,160 B.
    pytest.importorskip("ai_edge_litert")
    dv = _validation()
    import costmodel

    d = costmodel.deploy(ROOT / "tests/deploy_fixtures/three_layer.yaml", "litert")
    assert d.peak_bytes == 1_160
    report = costmodel.analyze(ROOT / "tests/deploy_fixtures/three_layer.yaml")
    assert dv.litert_arena(dv.to_tflite(dv.keras_model(report)))["arena"] == 1_160


ORT_CASES = [
    "three-layer net (docs/deploy.md)",
    "MobileNetV2 ×0.35 at 96",
    "MobileNetV3-small at 96",
    "MnasNet-small at 96",
    "EfficientNet-B0 at 64 (SiLU)",
]


@pytest.mark.parametrize("title", ORT_CASES)
def test_onnxruntime_flash_is_the_qdq_initializers(title: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # deploy --runtime onnxruntime: Flash = the initializer bytes of the QDQ int8 ONNX graph onnxruntime's
    # quantize_static writes from torch's export (the graph also loads and runs on onnxruntime)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    dv = _validation()
    monkeypatch.chdir(ROOT)
    (path, shape) = next((p, s) for t, p, s in dv.CASES + dv.ORT_EXTRA if t == title)
    r = dv.measure_onnxruntime(path, **shape)
    assert r["costmodel_flash"] == r["initializer_bytes"]
