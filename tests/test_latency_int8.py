"""latency --runtime litert: the int8 graph's ops, their bytes, the predictor, the CLI (no runtime needed).

The LiteRT measurements themselves (calibrate --runtime litert) are under ``-m deploy``
(tests/test_latency_litert.py); here a hand-written int8 calibration is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import costmodel
from costmodel.analysis.latency import int8_ops

ROOT = Path(__file__).resolve().parents[1]
THREE = ROOT / "tests/deploy_fixtures/three_layer.yaml"

BASE = {"name": "test machine", "peak_flops": {"float32": 1e11}, "bandwidth": 1e10, "source": "a test"}


def _class(overhead: float, mac: float, byte: float) -> dict[str, float | int]:
    return {"overhead_s": overhead, "s_per_mac": mac, "s_per_byte": byte, "samples": 3, "median_rel_error": 0.1}


def int8_calibration(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "threads": 1,
        "dtype": "int8",
        "framework": "LiteRT test",
        "classes": {"conv_dense_k3": _class(2e-6, 1e-10, 1e-9), "conv_pw": _class(1e-6, 2e-10, 0.0)},
        "default_overhead_s": 5e-7,
        "network_scale": 1.5,
        "per_op_s": 1e-7,
    }
    data.update(overrides)
    return data


def write(tmp_path: Path, *latency: dict[str, object]) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**BASE, "latency": list(latency)}))
    return path


def test_int8_ops_of_the_three_layer_net_by_hand():
    # tests/deploy_fixtures/three_layer.yaml: 3×9×9 → conv 3×3 s2 → 8 (BN, ReLU: one CONV_2D) → conv 1×1 → 12
    # → global average pool (MEAN) → linear 10 (FULLY_CONNECTED); int8 tensors, int32 biases.
    ops = int8_ops(costmodel.analyze(THREE))
    assert [o.kind for o in ops] == ["CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert [o.op_class for o in ops] == ["conv_dense_k3", "conv_pw", "pool", "linear"]
    # MACs: 8·(3·3·3)·5·5 = 5,400; 12·8·5·5 = 2,400; 0; 12·10 = 120
    assert [o.macs for o in ops] == [5_400, 2_400, 0, 120]
    # bytes = inputs + weights + 4·bias + output: 243 + 216 + 32 + 200; 200 + 96 + 48 + 300; 300 + 12;
    # 12 + 120 + 40 + 10
    assert [o.bytes for o in ops] == [691, 644, 312, 182]
    assert ops[0].inputs == ((3, 9, 9),) and ops[0].output == (8, 5, 5) and (ops[0].kernel, ops[0].stride) == (3, 2)
    assert ops[0].clamp and ops[1].clamp  # each conv's ReLU is its requantization clamp


def test_silu_is_logistic_then_mul_and_the_residual_add_is_an_op():
    text = (
        "input: {channels: 8, height: 6, width: 6}\ndefaults: {activation: silu}\n"
        "layers:\n  - {kind: mbconv, out_channels: 8, expansion: 2, kernel: 3}\n"
    )
    ops = int8_ops(costmodel.analyze(costmodel.loads(text)))
    kinds = [o.kind for o in ops]
    # expansion conv (its BN folded), SiLU = LOGISTIC + MUL, depthwise, SiLU, projection, the residual ADD
    assert kinds == ["CONV_2D", "LOGISTIC", "MUL", "DEPTHWISE_CONV_2D", "LOGISTIC", "MUL", "CONV_2D", "ADD"]
    mul, add = ops[2], ops[-1]
    assert mul.bytes == 3 * 16 * 36  # reads x and σ(x), writes x·σ(x): 16·6·6 int8 each
    assert add.bytes == 3 * 8 * 36 and add.inputs == ((8, 6, 6), (8, 6, 6))


def test_prediction_is_the_class_model_on_the_int8_graph(run_cli, tmp_path):
    path = write(tmp_path, int8_calibration())
    code, out, err = run_cli("latency", str(THREE), "--hardware", str(path), "--runtime", "litert", "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    # t = 1.5·(a₀ + a_mac·MACs + a_byte·bytes) + 1e-7 per op; MEAN and FULLY_CONNECTED are unmeasured classes:
    # 1.5·5e-7 + 1e-7 each
    conv1 = 1.5 * (2e-6 + 1e-10 * 5_400 + 1e-9 * 691) + 1e-7
    conv2 = 1.5 * (1e-6 + 2e-10 * 2_400) + 1e-7
    other = 1.5 * 5e-7 + 1e-7
    assert data["totals"]["time_s"] == pytest.approx(conv1 + conv2 + 2 * other, rel=1e-12)
    assert data["dtype"] == "int8" and data["framework"] == "LiteRT test"


def test_a_measured_entry_is_used_for_its_op(tmp_path):
    from costmodel.analysis.latency import LatencyCalibration, predict, total_seconds

    report = costmodel.analyze(THREE)
    key = int8_ops(report)[0].key
    cal = LatencyCalibration.model_validate(int8_calibration(table={key: 1e-3}, table_scale=2.0, table_per_op_s=0.0))
    times = predict(report, cal)
    assert times[0].source == "table" and times[0].seconds == pytest.approx(2e-3)
    conv2 = 1.5 * (1e-6 + 2e-10 * 2_400) + 1e-7
    assert total_seconds(times) == pytest.approx(2e-3 + conv2 + 2 * (1.5 * 5e-7 + 1e-7), rel=1e-12)


def test_int8_and_float32_calibrations_live_in_one_profile(run_cli, tmp_path):
    torch_cal = int8_calibration(dtype="float32", framework="torch test", network_scale=1.0, per_op_s=0.0)
    path = write(tmp_path, torch_cal, int8_calibration())
    code, out, err = run_cli("latency", str(THREE), "--hardware", str(path), "-f", "json")
    assert code == 0, err and json.loads(out)["dtype"] == "float32"
    code, out, err = run_cli("latency", str(THREE), "--hardware", str(path), "--runtime", "litert", "-f", "json")
    assert code == 0, err
    assert json.loads(out)["dtype"] == "int8"


def test_refusals_are_one_line(run_cli, tmp_path):
    torch_only = write(tmp_path, int8_calibration(dtype="float32"))
    code, out, err = run_cli("latency", str(THREE), "--hardware", str(torch_only), "--runtime", "litert")
    assert code == 2 and out == "" and "calibrate --runtime litert" in err and len(err.strip().splitlines()) == 1
    path = write(tmp_path, int8_calibration())
    code, out, err = run_cli("latency", str(THREE), "--hardware", str(path), "--runtime", "litert", "--batch", "2")
    assert code == 2 and out == "" and "batch 1" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_cli("calibrate", "--torch", "--runtime", "litert")
    assert code == 2 and out == "" and "--torch and --runtime" in err


def test_calibrate_runtime_litert_without_the_runtime_is_one_line(run_cli):
    try:
        from importlib.metadata import version

        version("ai-edge-litert")
    except Exception:
        code, out, err = run_cli("calibrate", "--runtime", "litert", "--quick")
        assert code == 2 and out == "" and "ai-edge-litert" in err and len(err.strip().splitlines()) == 1
    else:
        pytest.skip("ai-edge-litert is installed: the refusal is not reachable")
