"""Latency models: the profile format (round trip, clear errors), the predictor's shape, a small calibration."""

from __future__ import annotations

import pytest
import yaml

import costmodel
from conftest import SPECS
from costmodel.analysis.latency import ClassModel, LatencyCalibration, fit, op_bytes, op_class, predict

BASE = {
    "name": "test machine",
    "peak_flops": {"float32": 1e11},
    "bandwidth": 1e10,
    "source": "a test",
}


def calibration(**overrides):
    classes = {
        "conv_pw": {"overhead_s": 5e-6, "s_per_mac": 1e-10, "s_per_byte": 1e-10, "samples": 3, "median_rel_error": 0.1},
        "conv_dw_k3_s1": {
            "overhead_s": 4e-6,
            "s_per_mac": 1e-9,
            "s_per_byte": 2e-10,
            "samples": 3,
            "median_rel_error": 0.1,
        },
    }
    data = {"threads": 2, "framework": "torch test", "classes": classes, "default_overhead_s": 2e-6}
    data.update(overrides)
    return data


def write(tmp_path, **latency):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**BASE, "latency": [calibration(**latency)]}))
    return path


def test_profile_round_trips(tmp_path):
    path = write(tmp_path)
    from costmodel.analysis.hardware import load_profile

    profile = load_profile(path)
    cal = profile.latency[0]
    assert cal.threads == 2 and cal.classes["conv_pw"].s_per_mac == 1e-10
    again = tmp_path / "q.yaml"
    again.write_text(yaml.safe_dump({**BASE, "latency": [cal.model_dump()]}))
    assert load_profile(again).latency[0] == cal


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"threads": 0}, "threads"),
        (
            {
                "classes": {
                    "conv_pw": {"overhead_s": -1, "s_per_mac": 0, "s_per_byte": 0, "samples": 1, "median_rel_error": 0}
                }
            },
            "overhead_s",
        ),  # fmt: skip
        (
            {
                "classes": {
                    "conv_pw": {
                        "overhead_s": 0,
                        "s_per_mac": 0,
                        "s_per_byte": 0,
                        "samples": 1,
                        "median_rel_error": 0,
                        "extra": 1,
                    }
                }
            },
            "extra",
        ),  # fmt: skip
        ({"table": {"k": -1.0}}, "table"),
        ({"framework": None}, "framework"),
    ],
)
def test_malformed_calibration_is_refused_with_file_line_field(run_cli, tmp_path, bad, needle):
    path = write(tmp_path, **bad)
    code, out, err = run_cli("latency", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "p.yaml:" in err and needle in err


def test_no_calibration_and_wrong_threads_are_clear(run_cli, tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(BASE))
    code, out, err = run_cli("latency", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(plain))
    assert code == 2 and out == "" and "calibrate --torch" in err
    code, out, err = run_cli("latency", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(write(tmp_path)),
                             "--threads", "4")  # fmt: skip
    assert code == 2 and out == "" and "4 threads" in err


def test_prediction_is_the_class_model_and_json_has_totals(run_cli, tmp_path):
    import json

    code, out, err = run_cli("latency", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(write(tmp_path)),
                             "--format", "json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    # seed MBConv (4→24→4, 8×8, no BN): expansion 1×1 conv_pw: 5e-6 + 1e-10·6,144 MACs + 1e-10·bytes, where
    # bytes = 4·(4·64 in + 96 weights + 24·64 out) = 4·1,888 = 7,552; projection 1×1: 6,144 MACs,
    # bytes = 4·(24·64 + 96 + 4·64) = 7,552; depthwise: 4e-6 + 1e-9·13,824 + 2e-10·4·(1,536 + 216 + 1,536);
    # relu6 ×2 and the add are unmeasured classes: 2e-6 each.
    pw = 5e-6 + 1e-10 * 6_144 + 1e-10 * 7_552
    dw = 4e-6 + 1e-9 * 13_824 + 2e-10 * 4 * (1_536 + 216 + 1_536)
    assert data["totals"]["time_s"] == pytest.approx(2 * pw + dw + 3 * 2e-6, rel=1e-12)


def test_op_classes_and_bytes():
    report = costmodel.analyze(SPECS / "seed_mbconv.yaml")
    classes = [op_class(r) for r in report.rows]
    assert classes == ["conv_pw", "act_relu6", "conv_dw_k3_s1", "act_relu6", "conv_pw", "add"]
    add = report.rows[-1]
    assert op_bytes(add, 1) == 4 * (2 * 256 + 256)  # two 4×8×8 operands read, one written


def test_predictor_is_monotone_in_macs_and_bytes_within_a_class():
    cal = LatencyCalibration.model_validate(calibration())
    times = []
    for c in (8, 16, 32, 64):
        spec = costmodel.loads(
            f"input: {{channels: {c}, height: 14, width: 14}}\ndefaults: {{norm: none, activation: none}}\n"
            f"layers:\n  - {{kind: conv, out_channels: {c}, kernel: 1}}\n"
        )
        (t,) = predict(costmodel.analyze(spec), cal)
        assert t.op_class == "conv_pw"
        times.append(t.seconds)
    assert times == sorted(times) and len(set(times)) == 4


def test_fit_recovers_an_exact_linear_model():
    truth = (3e-6, 2e-10, 5e-11)
    samples = [
        (m, b, truth[0] + truth[1] * m + truth[2] * b) for m, b in ((1e4, 2e4), (1e6, 3e5), (5e7, 1e6), (2e5, 8e6))
    ]
    model = fit(samples)
    assert isinstance(model, ClassModel)
    assert model.overhead_s == pytest.approx(truth[0], rel=1e-6)
    assert model.s_per_mac == pytest.approx(truth[1], rel=1e-6)
    assert model.s_per_byte == pytest.approx(truth[2], rel=1e-6)
    assert model.median_rel_error < 1e-9


def test_small_torch_calibration_runs_and_predicts(tmp_path):
    pytest.importorskip("torch")
    from costmodel.calibration import calibrate, measure_spec

    cal = calibrate(threads=1, quick=True, repeats=5)
    assert {"conv_pw", "conv_dw_k3_s1", "norm_batchnorm2d", "add", "mul", "linear"} <= set(cal.classes)
    report = costmodel.analyze(SPECS / "seed_mbconv_bn.yaml")
    with_table = measure_spec([report], cal, repeats=5)
    times = predict(report, with_table)
    assert all(t.source == "table" for t in times) and all(t.seconds > 0 for t in times)
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump({**BASE, "latency": [with_table.model_dump()]}))
    assert costmodel.api.latency(SPECS / "seed_mbconv_bn.yaml", str(path)).time_s == pytest.approx(
        sum(t.seconds for t in times)
    )
