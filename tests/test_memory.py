"""Memory, peak activations, BN folding, hardware profiles, roofline and calibration."""

from __future__ import annotations

import json

import pytest

import costmodel
from conftest import NETWORKS, SPECS
from costmodel.analysis.hardware import load_profile, roofline
from costmodel.analysis.memory import fold_bn, kernels, peak_activations


def test_seed_mbconv_bytes_by_hand():
    r = costmodel.analyze(SPECS / "seed_mbconv.yaml")  # 4→24→4 on 8×8, no bias, no BN, float32
    ks = {k.label: k for k in kernels(r, "float32", "none")}
    exp = ks["0.0 expansion conv2d"]
    assert (exp.input_bytes, exp.weight_bytes, exp.output_bytes) == (4 * 64 * 4, 96 * 4, 24 * 64 * 4)
    dw = ks["0.0 depthwise conv2d"]
    assert (dw.input_bytes, dw.weight_bytes, dw.output_bytes) == (24 * 64 * 4, 216 * 4, 24 * 64 * 4)
    add = ks["0.0 residual add"]
    assert add.input_bytes == 2 * 4 * 64 * 4  # F(x) and x
    assert [k.intensity for k in [dw]] == [27_648 / (6144 + 864 + 6144)]


def test_expanded_tensor_is_the_peak_and_block_fusion_removes_it():
    r = costmodel.analyze(SPECS / "seed_mbconv.yaml")
    none = peak_activations(r, "float32", "none")
    # input x (kept for the residual) + the expanded tensor in + the expanded tensor out: (256 + 1536 + 1536) × 4
    assert none.bytes == (4 * 64 + 24 * 64 + 24 * 64) * 4 == 13_312
    assert none.kernel == "0.0 expansion relu6"  # the expanded tensor in and out, with x kept for the residual
    block = peak_activations(r, "float32", "block")
    assert block.bytes == (4 * 64 + 4 * 64) * 4 == 2048  # only the block's input and output
    assert peak_activations(r, "int8", "none").bytes == 13_312 // 4


def test_efficientnet_b0_peak():
    r = costmodel.analyze(NETWORKS / "efficientnet_b0.yaml")
    none = peak_activations(r, "float32", "none")
    # block 2.0: 16×112×112 expands to 96×112×112; its input is not kept (stride 2, no residual), so the
    # peak is the expanded tensor read and written by the expansion's BatchNorm
    assert none.bytes == (96 * 112 * 112 * 2) * 4
    assert none.kernel.startswith("2.0 expansion")
    block = peak_activations(r, "float32", "block")
    assert block.bytes < none.bytes
    assert block.bytes == (32 * 112 * 112 + 16 * 112 * 112) * 4  # MBConv 1: 32×112² in, 16×112² out


def test_se_input_is_kept_until_the_gate():
    spec = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 8, "height": 4, "width": 4},
            "defaults": {"norm": "none", "activation": "none"},
            "layers": [{"kind": "mbconv", "out_channels": 8, "expansion": 1, "se": 0.25}],
        }
    )
    r = costmodel.analyze(spec)
    peak = peak_activations(r, "float32", "none")
    # at the SE multiply: block input (kept for the residual) + SE input x + gate (8) + output
    assert peak.bytes == (128 + 128 + 8 + 128) * 4
    assert "mul" in peak.kernel


def test_fold_bn_deployment_params_match_torch():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from costmodel.torchref import build

    spec = costmodel.load(SPECS / "seed_mbconv_bn.yaml")
    folded = fold_bn(costmodel.analyze(spec))
    model, _ = build(spec)
    model.eval()
    count = 0
    for seq in model.modules():
        if isinstance(seq, torch.nn.Sequential):
            mods = list(seq.children())
            for a, b in zip(mods, mods[1:], strict=False):
                if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
                    count += sum(p.numel() for p in fuse_conv_bn_eval(a, b).parameters())
    # 4352 − BN γ/β (192 + 192 + 32) + biases (96 + 96 + 16) = 4144
    assert folded.totals["params"] == count == 4144


def test_table_json_reports_the_peak(run_cli):
    code, out, _ = run_cli("table", str(SPECS / "seed_mbconv.yaml"), "--format", "json", "--fusion", "block")
    data = json.loads(out)
    assert data["totals"]["peak_activation_bytes"] == 2048
    code, out, _ = run_cli("table", str(SPECS / "seed_mbconv_bn.yaml"), "--fold-bn", "--format", "json")
    assert json.loads(out)["totals"]["params"] == 4144


def test_memory_cli(run_cli):
    code, out, err = run_cli("memory", str(SPECS / "seed_mbconv.yaml"))
    assert code == 0, err
    assert "peak activation memory: 13,312 B" in out
    code, out, _ = run_cli("memory", str(NETWORKS / "efficientnet_b0.yaml"), "--fusion", "block", "--format", "json")
    data = json.loads(out)
    assert data["totals"]["peak_activation_bytes"] == (32 * 112 * 112 + 16 * 112 * 112) * 4


@pytest.fixture
def unit_profile(tmp_path):
    p = tmp_path / "unit.yaml"
    p.write_text("name: unit\npeak_flops: {float32: 1.0e+9}\nbandwidth: 1.0e+9\non_chip_bytes: 4096\nsource: test\n")
    return p


def test_roofline_by_hand(unit_profile):
    r = costmodel.analyze(SPECS / "seed_mbconv.yaml")
    est = {e.kernel.label: e for e in roofline(kernels(r), load_profile(unit_profile), "float32")}
    dw = est["0.0 depthwise conv2d"]  # 27,648 FLOPs, 13,152 bytes at 1 GFLOP/s and 1 GB/s
    assert dw.compute_s == pytest.approx(27_648e-9) and dw.memory_s == pytest.approx(13_152e-9)
    assert dw.bound == "compute" and dw.time_s == pytest.approx(27_648e-9)
    assert est["0.0 residual add"].bound == "memory"


def test_every_shipped_profile_gives_times_and_bounds(run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    from costmodel.present.plot import _pyplot

    _pyplot()  # pyplot imported here once (1 s), not in each forked run below
    for name in ("a100", "desktop_cpu_core", "mobile_soc", "microcontroller"):
        plot = tmp_path / f"{name}.png"
        code, out, err = run_cli("roofline", str(NETWORKS / "efficientnet_b0.yaml"), "--hardware", name,
                                 "--format", "json", "--plot", str(plot))  # fmt: skip
        assert code == 0, err
        data = json.loads(out)
        assert data["totals"]["time_s"] > 0 and {r["bound"] for r in data["rows"]} <= {"compute", "memory"}
        assert plot.read_bytes()[:4] == b"\x89PNG"


def test_on_chip_warning(run_cli, unit_profile):
    code, out, err = run_cli("roofline", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(unit_profile))
    assert code == 0 and "warning" in err and "4,096 bytes of on-chip memory" in err  # 6,144-byte tensors


@pytest.mark.parametrize(
    "text,line,field",
    [
        ("name: x\npeak_flops: {float32: -1}\nbandwidth: 1\nsource: s\n", 2, "peak_flops.float32"),
        ("name: x\npeak_flops: {fp8: 1}\nbandwidth: 1\nsource: s\n", 2, "peak_flops"),
        ("name: x\npeak_flops: {float32: 1}\nbandwidth: 1\nsource: s\ncolour: red\n", 5, "colour"),
        ("name: x\npeak_flops: {float32: 1}\nbandwidth: fast\nsource: s\n", 3, "bandwidth"),
        ("name: x\npeak_flops: {float32: 1}\nbandwidth: 1\n", 1, "source"),
    ],
)
def test_bad_profiles(run_cli, tmp_path, text, line, field):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    code, out, err = run_cli("roofline", str(SPECS / "seed_mbconv.yaml"), "--hardware", str(p))
    assert code == 2 and out == "" and err.startswith(f"costmodel: error: {p}:{line}: {field}"), err


def test_bad_roofline_arguments(run_cli):
    for args, needle in [
        (["--hardware", "quantum"], "no hardware profile named"),
        (["--hardware", "desktop_cpu_core", "--dtype", "int8"], "no peak for int8"),
    ]:
        code, out, err = run_cli("roofline", str(SPECS / "seed_mbconv.yaml"), *args)
        assert code == 2 and out == "" and needle in err, err
    code, out, err = run_cli("memory", str(SPECS / "symbolic_mbconv.yaml"))
    assert code == 2 and "bind" in err


def test_calibrate_writes_a_loadable_profile(run_cli, tmp_path):
    out_path = tmp_path / "me.yaml"
    code, out, err = run_cli("calibrate", "--seconds", "0.05", "--out", str(out_path))
    assert code == 0, err
    profile = load_profile(out_path)
    assert profile.peak("float32") > 0 and profile.bandwidth > 0


def test_roofline_of_a_huge_resize_is_exact_or_refused(run_cli, tmp_path, monkeypatch):
    """A resize past the field's bound (10³⁰) is refused by the spec; at the bound, a bilinear resize of 3×8×8
    to (2³¹−1)×(2³¹−1) has FLOPs = 7 per output element × 3·(2³¹−1)² = 21 × 4,611,686,014,132,420,609 =
    96,845,406,296,780,832,789 exactly (by hand); summed in floats it printed 96,845,406,296,780,832,768."""
    path = tmp_path / "resize.yaml"
    path.write_text(f"input: {{channels: 3, height: 8, width: 8}}\nlayers:\n  - {{kind: resize, size: {10**30}, "
                    "mode: bilinear}\n")  # fmt: skip
    code, out, err = run_cli("roofline", str(path), "--hardware", "a100")
    assert code == 2 and out == "" and "layers[0].size" in err and len(err.strip().splitlines()) == 1, err
    path.write_text("input: {channels: 3, height: 8, width: 8}\nlayers:\n  - {kind: resize, size: 2147483647, "
                    "mode: bilinear}\n")  # fmt: skip
    code, out, err = run_cli("roofline", str(path), "--hardware", "a100", "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["flops"] == 96_845_406_296_780_832_789
    code, out, err = run_cli("roofline", str(path), "--hardware", "a100")
    assert code == 0 and "96,845,406,296,780,832,789" in out
    # past 2^MAX_ROOFLINE_BITS a float time cannot be computed: refused in one line, no traceback (the count
    # has 67 bits, so a bound of 60 refuses it)
    from costmodel.analysis import hardware

    monkeypatch.setattr(hardware, "MAX_ROOFLINE_BITS", 60)
    code, out, err = run_cli("roofline", str(path), "--hardware", "a100")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "0.0 resize" in err, err
