"""--resolution, --width-mult, --depth-mult and --batch (costmodel.configure): input and scaling overridden
without editing the YAML, validated like the YAML, the same through the CLI and the library."""

from __future__ import annotations

import csv
import io
import json

import pytest

import costmodel
from conftest import NETWORKS, SPECS
from costmodel.cli import main

MOBILENET_V2 = NETWORKS / "mobilenet_v2.yaml"


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_mobilenet_v2_width_035_at_96():
    # torchvision 0.29.1: mobilenet_v2(width_mult=0.35) at 1×3×96×96 has sum(p.numel()) = 1,677,128 and
    # FlopCounterMode total / 2 = 11,934,128 (tests/test_torchvision.py checks it against torch itself).
    r = costmodel.analyze(costmodel.configure(MOBILENET_V2, resolution=96, width_mult=0.35))
    assert (r.totals["params"], r.totals["macs"]) == (1_677_128, 11_934_128)
    assert r.input == (3, 96, 96)


def test_cli_table_equals_torchvision_numbers(capsys):
    code, out, err = cli(capsys, "table", str(MOBILENET_V2), "--resolution", "96", "--width-mult", "0.35", "-f", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["totals"]["params"], data["totals"]["macs"], data["input"]) == (1_677_128, 11_934_128, [3, 96, 96])


def test_resolution_pair_and_batch():
    # seed_mbconv: 4 channels, t=6, k=3, no bias, no BN. MACs per image = H·W·(4·24 + 24·9 + 24·4) = H·W·408;
    # at 16×12: 192 · 408 = 78,336 per image, × batch 3 = 235,008. Params do not depend on H, W or batch: 408.
    r = costmodel.analyze(costmodel.configure(SPECS / "seed_mbconv.yaml", resolution=(16, 12), batch=3))
    assert r.input == (4, 16, 12)
    assert r.batch == 3
    assert (r.totals["params"], r.totals["macs"]) == (408, 235_008)


def test_width_on_a_spec_without_scaling():
    # seed_mbconv has no `scaling`; width 0.5 adds scaling: {width: 0.5}: make_divisible(4 × 0.5, 8) = 8
    # channels out, input channels stay 4 (the input is not scaled), so expanded = 4 × 6 = 24:
    # params = 4·24 + 24·9 + 24·8 = 96 + 216 + 192 = 504 (no residual: 4 ≠ 8).
    spec = costmodel.configure(SPECS / "seed_mbconv.yaml", width_mult=0.5)
    assert spec.scaling is not None and spec.scaling.width == 0.5
    assert costmodel.analyze(spec).totals["params"] == 504


def test_depth_mult():
    # MobileNetV2's 17 inverted residuals (1+2+3+4+3+3+1) with depth 2: ceil(r·2) = 2+4+6+8+6+6+2 = 34 blocks,
    # + stem, head, pool, dropout, linear = 39 block instances.
    r = costmodel.analyze(costmodel.configure(MOBILENET_V2, depth_mult=2.0))
    assert len(r.blocks) == 39


def test_unchanged_without_overrides():
    spec = costmodel.load(MOBILENET_V2)
    assert costmodel.configure(spec) is spec


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resolution": 0},
        {"resolution": 96.0},
        {"resolution": (96,)},
        {"resolution": True},
        {"width_mult": float("nan")},
        {"width_mult": float("inf")},
        {"width_mult": 0},
        {"width_mult": "0.5"},
        {"depth_mult": -1.0},
        {"batch": 0},
        {"batch": 2.0},
    ],
)
def test_library_refuses_bad_values(kwargs):
    with pytest.raises(costmodel.UsageError):
        costmodel.configure(MOBILENET_V2, **kwargs)


@pytest.mark.parametrize(
    "args",
    [
        ["--resolution", "0"],
        ["--resolution", "96x"],
        ["--resolution", "-5"],
        ["--resolution", "1" * 40],
        ["--width-mult", "nan"],
        ["--width-mult", "inf"],
        ["--width-mult", "0"],
        ["--depth-mult", "x"],
        ["--batch", "0"],
        ["--batch", "2.5"],
    ],
)
def test_cli_refuses_bad_values(capsys, args):
    code, out, err = cli(capsys, "table", str(MOBILENET_V2), *args)
    assert code == 2
    assert out == ""
    assert err.startswith("costmodel: error: argument ") and err.count("\n") == 1


def test_symbolic_resolution_overridden(capsys):
    # symbolic_mbconv's input is C × H × W; --resolution 8 binds H and W, so --set H=… is then refused.
    spec = str(SPECS / "symbolic_mbconv.yaml")
    code, out, err = cli(capsys, "formula", spec, "--resolution", "8", "--metric", "macs")
    assert (code, err) == (0, "")
    # MACs = H·W·C·t·(2C + k²) at H = W = 8.
    assert out.strip() == "64*C*t*(2*C + k**2)"
    code, out, err = cli(capsys, "formula", spec, "--resolution", "8", "--set", "H=8")
    assert code == 2 and out == ""
    assert "H" in err


COMMANDS = {
    "table": [],
    "formula": [],
    "explain": ["--vs", "thop"],
    "memory": [],
    "roofline": ["--hardware", "mobile_soc"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_spec_command_takes_the_flags(capsys, command):
    base = [command, str(SPECS / "seed_mbconv.yaml"), *COMMANDS[command]]
    code, plain, _ = cli(capsys, *base)
    assert code == 0
    shape = ["--resolution", "16", "--width-mult", "2", "--depth-mult", "2", "--batch", "2"]
    code, changed, _ = cli(capsys, *base, *shape)
    assert code == 0
    assert changed != plain


def test_solve_and_sweep_take_the_flags(capsys):
    spec = str(SPECS / "symbolic_mbconv.yaml")
    # MACs = H·W·C·t·(2C + k²): at C=4, k=3, 8×8: 64·4·17·t = 4,352·t; ≤ 100,000 → t = 22 (95,744).
    budget = ["--budget", "macs<=1e5", "--set", "C=4,k=3", "--resolution", "8"]
    code, out, _ = cli(capsys, "solve", spec, "--for", "t", *budget)
    assert code == 0
    assert "t = 22" in out
    code, out, _ = cli(capsys, "sweep", spec, "--vary", "t=1,2", "--set", "C=4,k=3", "--resolution", "8", "-f", "csv")
    assert code == 0
    assert out.splitlines()[1:] == ["1,52,3328,7424", "2,136,8704,19712"]


def test_compare_applies_to_every_spec(capsys):
    a, b = str(SPECS / "seed_mbconv.yaml"), str(SPECS / "seed_two_conv.yaml")
    code, out, err = cli(capsys, "compare", a, b, "--resolution", "16", "-f", "json")
    assert code == 0
    assert err.startswith("costmodel: warning: the specs have different inputs")  # channels differ: 4 vs 16
    assert "--resolution" in err
    assert err.count("\n") == 1
    data = json.loads(out)
    assert [s["input"] for s in data["specs"]] == [[4, 16, 16], [16, 16, 16]]


def test_compare_warns_on_different_inputs(capsys):
    # the README's first compare example: seed_mbconv and seed_dwsep are 4×8×8, seed_two_conv is 16×32×32
    specs = [str(SPECS / f"{n}.yaml") for n in ("seed_mbconv", "seed_dwsep", "seed_two_conv")]
    code, out, err = cli(capsys, "compare", *specs)
    assert code == 0
    assert err.startswith("costmodel: warning: the specs have different inputs (")
    assert "16×32×32" in err and "--resolution" in err
    assert out.splitlines()[0].split("|")[2].strip() == "input"


def test_compare_same_inputs_no_warning(capsys):
    specs = [str(SPECS / f"{n}.yaml") for n in ("seed_mbconv", "seed_dwsep")]
    code, out, err = cli(capsys, "compare", *specs, "-f", "csv")
    assert (code, err) == (0, "")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["spec", "input", "output"]
    assert rows[1][1:3] == ["4x8x8", "4x8x8"]
    assert rows[2][4] == "0.12745098039215685"  # params ratio 52 / 408 as a number, not "0.127×"
