"""calibrate --runtime litert and latency --runtime litert against LiteRT itself (the [deploy] extra).

Run with ``-m deploy``; skipped without ai-edge-litert and tensorflow. A quick calibration takes a minute or
two: one-op .tflite models converted and timed, two synthetic networks converted and timed whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[1]


def test_one_op_models_convert_to_that_one_op():
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("tensorflow")
    import costmodel
    from costmodel.analysis.latency import int8_ops
    from costmodel.calibration import time_litert_op

    text = (
        "input: {channels: 16, height: 12, width: 12}\ndefaults: {activation: hardswish}\n"
        "layers:\n  - {kind: mbconv, out_channels: 16, expansion: 3, kernel: 5, se: 0.25}\n"
    )
    ops = int8_ops(costmodel.analyze(costmodel.loads(text)))
    kinds = {op.kind for op in ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MEAN", "MUL", "ADD"} <= kinds
    for op in ops:  # None would mean the converter wrote some other graph for the op
        timing = time_litert_op(op, 1, repeats=5)
        assert timing is not None and timing.median > 0, op.kind


def test_calibrate_then_latency_on_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("tensorflow")
    from costmodel.cli import main

    out = tmp_path / "p.yaml"
    assert main(["calibrate", "--runtime", "litert", "--quick", "--seconds", "0.2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"wrote {out}\n"
    assert all(line.startswith("costmodel: warning: ") for line in captured.err.splitlines()), captured.err
    cal = yaml.safe_load(out.read_text())["latency"][-1]
    assert cal["dtype"] == "int8" and cal["framework"].startswith("LiteRT ") and cal["classes"]
    spec = str(ROOT / "tests/deploy_fixtures/three_layer.yaml")
    assert main(["latency", spec, "--hardware", str(out), "--runtime", "litert", "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dtype"] == "int8" and data["totals"]["time_s"] > 0
    assert len(data["rows"]) == 4  # CONV_2D, CONV_2D, MEAN, FULLY_CONNECTED: BN and ReLU are folded
