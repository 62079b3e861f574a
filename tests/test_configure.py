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


def test_one_block_id_everywhere(capsys):
    spec = str(MOBILENET_V2)
    # by block: the first column is the block id LAYER.REPEAT; no running index, no second numbering
    code, out, _ = cli(capsys, "table", spec, "-f", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == ["block", "kind", "settings", "output"]
    assert [r[0] for r in rows[1:5]] == ["0.0", "1.0", "2.0", "2.1"]
    # by op: the same ids
    code, out, _ = cli(capsys, "table", spec, "--by", "op", "-f", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] == "block"
    assert [r[0] for r in rows[1:5]] == ["0.0", "0.0", "0.0", "1.0"]
    # JSON: the id, with the running index beside it
    code, out, _ = cli(capsys, "table", spec, "-f", "json")
    row = json.loads(out)["rows"][3]
    assert (row["block"], row["index"], row["layer"], row["repeat"]) == ("1.0", 1, 1, 0)
    # memory: the same ids in labels and JSON
    code, out, _ = cli(capsys, "memory", spec, "-f", "json")
    kernel = json.loads(out)["kernels"][8]
    assert (kernel["kernel"], kernel["block"], kernel["index"]) == ("2.0 expansion conv2d", "2.0", 2)


def test_table_block_selector(capsys):
    # block 4.1 of MobileNetV2: 64 → 384 → 64 at 14×14, stride 1, residual.
    # params: 64·384 + 2·384 + 9·384 + 2·384 + 384·64 + 2·64 = 24,576 + 768 + 3,456 + 768 + 24,576 + 128 = 54,272
    # MACs: 196·(64·384 + 9·384 + 384·64) = 196·52,608 = 10,311,168
    code, out, err = cli(capsys, "table", str(MOBILENET_V2), "--block", "4.1", "-f", "csv")
    assert (code, err) == (0, "")
    rows = list(csv.reader(io.StringIO(out)))
    assert {r[0] for r in rows[1:-1]} == {"4.1"}
    assert [r[1] for r in rows[1:-1]].count("expansion") == 3
    assert rows[-1][:1] + rows[-1][5:7] == ["total", "54272", "10311168"]
    code, out, err = cli(capsys, "table", str(MOBILENET_V2), "--block", "4.9")
    assert code == 2 and out == ""
    assert err.startswith("costmodel: error: --block '4.9': no such block")


def test_units_si_tables_only(capsys):
    code, out, _ = cli(capsys, "table", str(MOBILENET_V2), "--units", "si")
    assert code == 0
    total = [line for line in out.splitlines() if line.startswith("| total")][0]
    # 3,504,872 params, 300,774,272 MACs, 4 significant digits
    assert "3.505M" in total and "300.8M" in total
    code, out, _ = cli(capsys, "table", str(MOBILENET_V2), "--units", "si", "-f", "csv")
    assert out.splitlines()[-1].split(",")[4:6] == ["3504872", "300774272"]


def test_csv_shapes_and_numbers_are_plain(capsys):
    for args in (["table"], ["table", "--by", "op"], ["table", "--depth", "4"], ["memory"]):
        code, out, _ = cli(capsys, *[args[0], str(MOBILENET_V2), *args[1:]], "-f", "csv")
        rows = list(csv.reader(io.StringIO(out)))
        for row in rows:
            for cell in row:
                if "x" in cell and cell.replace("x", "").isdigit():
                    assert "×" not in cell
        assert not any("×" in c for r in rows for c in r if c.replace("×", "").isdigit())
    code, out, _ = cli(capsys, "roofline", str(SPECS / "seed_mbconv.yaml"), "--hardware", "mobile_soc", "-f", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[1][1:3] == ["12288", "7552"]  # expansion conv: FLOPs 2·4·24·64, bytes 4·(256 + 96 + 1,536)


def test_help_says_what_spec_is_and_lists_profiles_and_conventions(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "SPEC is a YAML file" in out
    from costmodel.analysis.conventions import CONVENTIONS
    from costmodel.analysis.hardware import shipped_profiles

    assert all(name in out for name in [*shipped_profiles(), *CONVENTIONS])


@pytest.mark.parametrize(
    "command", ["table", "formula", "compare", "solve", "explain", "sweep", "memory", "roofline", "calibrate", "schema"]
)
def test_every_command_help_has_an_example_and_every_option_a_help(capsys, command):
    from costmodel.cli import _parser

    sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
    assert (sub.epilog or "").startswith("example: costmodel " + command)
    missing = [a.option_strings or a.dest for a in sub._actions if not a.help]
    assert missing == []
