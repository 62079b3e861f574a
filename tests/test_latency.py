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
    # every class is measured; on a busy machine a fit may be rejected as implausible, and then it says so
    assert {"conv_pw", "conv_dw_k3_s1", "norm_batchnorm2d", "add", "mul", "linear"} <= set(cal.classes) | set(
        cal.rejected
    )
    assert all(any(f"fit of {c}" in w for w in cal.warnings) for c in cal.rejected)
    assert cal.noise is not None and cal.noise >= 0
    report = costmodel.analyze(SPECS / "seed_mbconv_bn.yaml")
    with_table = measure_spec([report], cal, repeats=5)
    times = predict(report, with_table)
    assert all(t.source == "table" for t in times) and all(t.seconds > 0 for t in times)
    path = tmp_path / "cal.yaml"
    path.write_text(yaml.safe_dump({**BASE, "latency": [with_table.model_dump()]}))
    assert costmodel.api.latency(SPECS / "seed_mbconv_bn.yaml", str(path)).time_s == pytest.approx(
        sum(t.seconds for t in times)
    )


# ------------------------------------------------------------------ hostile profiles (issue 24, item 11)


def _raw_profile(tmp_path, latency_yaml: str):
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: t\npeak_flops: {float32: 1e11}\nbandwidth: 1e10\nsource: x\nlatency:\n" + latency_yaml,
        encoding="utf-8",
    )
    return path


CLASS = "{conv_pw: {overhead_s: 5.0e-6, s_per_mac: 1.0e-10, s_per_byte: 0, samples: 3, median_rel_error: 0.1}}"


@pytest.mark.parametrize(
    "entry,needle",
    [
        ("{threads: 2, framework: f, default_overhead_s: .inf, classes: {}}", "default_overhead_s: must be a finite"),
        ("{threads: 2, framework: f, default_overhead_s: .nan, classes: {}}", "default_overhead_s: must be a finite"),
        # 1.0e400 overflows to inf when read (and would print as null in JSON)
        (
            "{threads: 2, framework: f, default_overhead_s: 0, classes: {conv_pw: {overhead_s: 0, s_per_mac: 1.0e400, "
            "s_per_byte: 0, samples: 3, median_rel_error: 0}}}",
            "s_per_mac: must be a finite",
        ),
        ("{threads: 2, framework: f, default_overhead_s: 0, classes: {}, network_scale: .inf}", "network_scale"),
        ("{threads: 2, framework: f, default_overhead_s: 0, classes: {}, network_scale: 0}", "network_scale"),
        ("{threads: 2, framework: f, default_overhead_s: 0, classes: {}, per_op_s: 1.0e300}", "per_op_s"),
        ("{threads: 2, framework: f, default_overhead_s: 0, classes: {}, table: {k: .inf}}", "table.k"),
        ("{threads: 2, framework: f, default_overhead_s: true, classes: {}}", "default_overhead_s: must be a number"),
        ("{threads: true, framework: f, default_overhead_s: 0, classes: {}}", "threads"),
        ("{threads: 2.0, framework: f, default_overhead_s: 0, classes: {}}", "threads"),
        ("{threads: '2', framework: f, default_overhead_s: 0, classes: {}}", "threads"),
        ("{threads: 100000, framework: f, default_overhead_s: 0, classes: {}}", "threads"),
        (
            "{threads: 2, framework: f, default_overhead_s: 0, classes: {conv_pw: {overhead_s: 0, s_per_mac: 0, "
            "s_per_byte: 0, samples: true, median_rel_error: 0}}}",
            "samples",
        ),
    ],
)
def test_profiles_with_inf_nan_or_loose_types_are_refused(run_cli, tmp_path, entry, needle):
    path = _raw_profile(tmp_path, f"  - {entry}\n")
    code, out, err = run_cli("latency", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(path), "--format", "json")
    assert code == 2 and out == "", out
    assert len(err.strip().splitlines()) == 1 and "p.yaml:" in err and "latency[0]" in err and needle in err, err


def test_two_calibrations_at_one_thread_count_are_refused(run_cli, tmp_path):
    entry = f"{{threads: 2, framework: f, default_overhead_s: 2.0e-6, classes: {CLASS}}}"
    path = _raw_profile(tmp_path, f"  - {entry}\n  - {entry.replace('2.0e-6', '9.0e-6')}\n")
    code, out, err = run_cli("latency", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(path), "--threads", "2")
    assert code == 2 and out == "" and "entries 0 and 1" in err and "2 threads/float32" in err
    assert len(err.strip().splitlines()) == 1
    # a second dtype or thread count is another calibration: accepted
    path = _raw_profile(tmp_path, f"  - {entry}\n  - {entry.replace('threads: 2', 'threads: 1')}\n")
    code, out, err = run_cli("latency", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(path), "--threads", "2")
    assert code == 0, err


# ------------------------------------------------------------------ calibration plausibility (issue 24)


def test_an_overhead_far_above_the_fastest_kernel_is_implausible():
    from costmodel.analysis.latency import implausible_fit

    # 1×1 conv kernels measured at 20 µs … 2 ms; a fitted overhead of 48.7 ms cannot be part of each
    samples = [(1e4, 1e4, 2e-5), (1e6, 1e5, 2e-4), (1e7, 1e6, 2e-3)]
    busy = ClassModel(overhead_s=48.7e-3, s_per_mac=0, s_per_byte=0, samples=3, median_rel_error=0.1)
    assert "48.7 ms" in implausible_fit(busy, samples)
    # 2 × 20 µs is the slack (OVERHEAD_SLACK): 40 µs passes, 40.1 µs does not
    ok = busy.model_copy(update={"overhead_s": 4.0e-5})
    assert implausible_fit(ok, samples) is None
    assert implausible_fit(ok.model_copy(update={"overhead_s": 4.01e-5}), samples) is not None
    assert "50%" in implausible_fit(ok.model_copy(update={"median_rel_error": 0.5}), samples)
    assert implausible_fit(ok.model_copy(update={"median_rel_error": 0.49}), samples) is None


def test_judge_keeps_good_fits_rejects_bad_ones_and_refuses_when_none_is_left():
    from costmodel.calibration import Timing, judge
    from costmodel.errors import UsageError

    truth = (3e-6, 2e-10, 5e-11)
    good = [(m, b, truth[0] + truth[1] * m + truth[2] * b) for m, b in ((1e4, 2e4), (1e6, 3e5), (5e7, 1e6))]
    # the same kernel timed five times: 1 µs twice, 10 ms three times (a busy machine). The relative
    # least-squares overhead is Σ(1/t)/Σ(1/t²) ≈ 1.00 µs, missing the 10 ms runs by ≈ 100%: median error ≈ 1
    noisy = [(1e3, 1e3, t) for t in (1e-6, 1e-6, 1e-2, 1e-2, 1e-2)]
    stable = [Timing(1e-5, 0.05, 15)] * 3
    classes, rejected, warnings = judge({"conv_pw": good, "add": noisy}, stable)
    assert set(classes) == {"conv_pw"} and set(rejected) == {"add"}
    assert "misses the measured times" in rejected["add"] and len(warnings) == 1 and "add" in warnings[0]
    # more than a quarter of the timings unsettled: said
    _, _, warnings = judge({"conv_pw": good}, [Timing(1e-5, 0.5, 60)] * 2 + stable)
    assert any("did not settle" in w and "2 of 5" in w for w in warnings)
    with pytest.raises(UsageError, match="calibration failed"):
        judge({"add": noisy})


def test_an_implausible_in_network_correction_is_not_used():
    from costmodel.calibration import recheck_overheads, with_context
    from costmodel.errors import UsageError

    cal = LatencyCalibration.model_validate(calibration())
    # whole networks measured at 0.0026 × the isolated prediction: the scale is refused, 1 is used
    samples = [(p, 100, 0.0026 * p) for p in (0.01, 0.02, 0.05)]
    fixed = with_context(cal, samples, samples)
    assert fixed.network_scale == 1.0 and fixed.per_op_s == 0.0 and fixed.table_scale == 1.0
    assert sum("in-network correction" in w for w in fixed.warnings) == 2
    # a plausible one is kept: measured = 1.5 × predicted + 2 µs per op, exactly
    samples = [(p, n, 1.5 * p + 2e-6 * n) for p, n in ((0.01, 100), (0.02, 150), (0.05, 400))]
    kept = with_context(cal, samples, samples)
    assert kept.network_scale == pytest.approx(1.5) and kept.per_op_s == pytest.approx(2e-6) and not kept.warnings
    # conv_pw's 5 µs overhead is above 2 × a 1×1 conv timed again at 2 µs: rejected; conv_dw's 4 µs is not
    rechecked = recheck_overheads(cal, {"conv_pw": 2e-6, "conv_dw_k3_s1": 2e-6})
    assert set(rechecked.classes) == {"conv_dw_k3_s1"} and set(rechecked.rejected) == {"conv_pw"}
    with pytest.raises(UsageError, match="calibration failed"):
        recheck_overheads(cal, {"conv_pw": 1e-7, "conv_dw_k3_s1": 1e-7})


def test_calibrate_threads_is_bounded_by_the_cpu_count(run_cli):
    import os

    for threads in ("0", "4096", str((os.cpu_count() or 1) + 1)):
        code, out, err = run_cli("calibrate", "--torch", "--threads", threads)
        assert code == 2 and out == "" and "--threads" in err and len(err.strip().splitlines()) == 1, err
