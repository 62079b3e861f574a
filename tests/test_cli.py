"""The command line: output formats, and clean refusal of bad input (exit 2, one line, nothing on stdout)."""

from __future__ import annotations

import csv
import json

import pytest
import sympy

from conftest import SPECS


def test_table_json_shape(run_cli):
    code, out, err = run_cli("table", str(SPECS / "seed_mbconv.yaml"), "--format", "json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["totals"]["params"] == 408 and data["totals"]["macs"] == 26_112
    assert isinstance(data["totals"]["flops"], int)
    assert data["output"] == [4, 8, 8]
    stages = [r["stage"] for r in data["rows"]]
    assert {"expansion", "depthwise", "projection", "residual"} <= set(stages)
    for row in data["rows"]:
        assert {"layer", "repeat", "stage", "op", "params", "macs", "flops", "output"} <= set(row)
        assert row["layer"] == 0


def test_table_json_symbolic_values_parse_back(run_cli):
    code, out, _ = run_cli("table", str(SPECS / "symbolic_mbconv.yaml"), "--format", "json")
    assert code == 0
    data = json.loads(out)
    C, H, W, t, k = sympy.symbols("C H W t k")
    macs = sympy.parse_expr(data["totals"]["macs"])
    assert sympy.expand(macs - H * W * t * C * (2 * C + k**2)) == 0


def test_table_text_formats(run_cli):
    for fmt in ("plain", "github", "latex", "csv", "grid"):
        code, out, err = run_cli("table", str(SPECS / "seed_mbconv.yaml"), "--format", fmt)
        assert code == 0 and err == "", fmt
        assert "408" in out, fmt
    code, out, _ = run_cli("table", str(SPECS / "seed_mbconv.yaml"))
    assert "MACs" in out and "26,112" in out and "params" in out


def test_table_by_stage(run_cli):
    code, out, _ = run_cli("table", str(SPECS / "seed_mbconv.yaml"), "--by", "stage", "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("stage,")
    assert any(line.startswith("depthwise,216,") for line in lines)


def test_formula_python_is_one_parseable_line(run_cli):
    code, out, _ = run_cli("formula", str(SPECS / "symbolic_mbconv.yaml"), "--metric", "params", "--format", "python")
    assert code == 0
    assert len(out.strip().splitlines()) == 1
    C, t, k = sympy.symbols("C t k")
    assert sympy.expand(sympy.parse_expr(out) - t * C * (2 * C + k**2)) == 0


def test_formula_stage_and_set(run_cli):
    code, out, _ = run_cli(
        "formula", str(SPECS / "symbolic_mbconv.yaml"), "--metric", "params", "--stage", "depthwise",
        "--format", "python", "--set", "k=3",
    )  # fmt: skip
    assert code == 0
    C, t = sympy.symbols("C t")
    assert sympy.expand(sympy.parse_expr(out) - 9 * t * C) == 0
    code, out, _ = run_cli("formula", str(SPECS / "symbolic_mbconv.yaml"), "--format", "latex")
    assert code == 0
    assert out.splitlines()[0] == "params = C t \\left(2 C + k^{2}\\right)"  # C·t·(2C + k²)


def test_schema(run_cli):
    code, out, _ = run_cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert "layers" in schema["properties"]
    assert "MBConvLayer" in json.dumps(schema)


BAD = {
    "even_kernel.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                         "    out_channels: 4\n    expansion: 6\n    kernel: 4\n", 6, "layers[0].kernel"),
    "negative.yaml": ("input: {channels: -4, height: 8, width: 8}\nlayers:\n  - {kind: conv, out_channels: 4}\n",
                      1, "input.channels"),
    "zero_stride.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: dwsep\n"
                         "    out_channels: 4\n    stride: 0\n", 5, "layers[0].stride"),
    "zero_expansion.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                            "    out_channels: 4\n    expansion: 0\n", 5, "layers[0].expansion"),
    "zero_repeat.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                         "    out_channels: 4\n    expansion: 6\n    repeat: 0\n", 6, "layers[0].repeat"),
    "groups.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: conv\n"
                    "    out_channels: 6\n    groups: 4\n", 5, "layers[0].groups"),
    "residual.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                      "    out_channels: 4\n    expansion: 6\n    stride: 2\n    residual: true\n",
                      7, "layers[0].residual"),
    "empty_layers.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers: []\n", 2, "layers"),
    "unknown_kind.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: transformer\n", 3,
                          "layers[0]"),
    "unknown_activation.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: conv\n"
                                "    out_channels: 4\n    activation: mish\n", 5, "layers[0].activation"),
    "unknown_key.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: conv\n"
                         "    out_channels: 4\n    dilate: 2\n", 5, "layers[0].dilate"),
    "duplicate.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: conv\n"
                       "    out_channels: 4\n    out_channels: 8\n", 5, "layers[0].out_channels"),
    "float.yaml": ("input: {channels: 4.0, height: 8, width: 8}\nlayers:\n  - {kind: conv, out_channels: 4}\n",
                   1, "input.channels"),
    "bool.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - {kind: conv, out_channels: true}\n",
                  3, "layers[0].out_channels"),
    "quoted.yaml": ("input: {channels: '4', height: 8, width: 8}\nlayers:\n  - {kind: conv, out_channels: 4}\n",
                    1, "input.channels"),
    "bad_symbol.yaml": ("input: {channels: 'C+1', height: 8, width: 8}\nlayers:\n  - {kind: conv, out_channels: 4}\n",
                        1, "input.channels"),
    "code_symbol.yaml": ("input: {channels: '__import__(\"os\")', height: 8, width: 8}\n"
                         "layers:\n  - {kind: conv, out_channels: 4}\n", 1, "input.channels"),
    "missing_field.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                           "    out_channels: 4\n", 3, "layers[0].expansion"),
    "missing_input.yaml": ("layers:\n  - {kind: conv, out_channels: 4}\n", 1, "input"),
    "se_ratio.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                      "    out_channels: 4\n    expansion: 6\n    se: 1.5\n", 6, "layers[0].se"),
    "undecidable.yaml": ("input: {channels: C, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                         "    out_channels: D\n    expansion: 6\n", 3, "layers[0].residual"),
    "syntax.yaml": ("input: {channels: 4, height: 8\nlayers: [\n", 2, None),
    "python_tag.yaml": ("input: !!python/object/apply:os.system ['echo hi']\nlayers: []\n", 1, None),
    "not_mapping.yaml": ("- 1\n- 2\n", 1, None),
    "bottleneck_mid.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: bottleneck\n"
                            "    out_channels: 2\n", 4, "layers[0].out_channels"),
    "chain_in_channels.yaml": ("input: {channels: 3, height: 32, width: 32}\nlayers:\n"
                               "  - {kind: conv, out_channels: 16, stride: 2}\n"
                               "  - {kind: mbconv, expansion: 6, in_channels: 24, out_channels: 24}\n",
                               4, "layers[1].in_channels"),
    "conv_after_linear.yaml": ("input: {channels: 3, height: 32, width: 32}\nlayers:\n"
                               "  - {kind: conv, out_channels: 16}\n  - {kind: pool}\n"
                               "  - {kind: linear, out_features: 10}\n  - {kind: conv, out_channels: 8}\n",
                               6, "layers[3].kind"),
    "both_expansions.yaml": ("input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n"
                             "    out_channels: 4\n    expansion: 6\n    expanded_channels: 24\n",
                             5, "layers[0].expansion"),
    "scaled_symbol.yaml": ("input: {channels: 3, height: H, width: H}\nscaling: {width: 0.5}\nlayers:\n"
                           "  - {kind: conv, out_channels: C}\n", 4, "layers[0].out_channels"),
    "bad_scaling.yaml": ("input: {channels: 3, height: 8, width: 8}\nscaling: {width: -1}\nlayers:\n"
                         "  - {kind: conv, out_channels: 4}\n", 2, "scaling.width"),
    "dropout_p.yaml": ("input: {channels: 3, height: 8, width: 8}\nlayers:\n"
                       "  - {kind: dropout, p: 1.5}\n", 3, "layers[0].p"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_spec_is_refused_cleanly(run_cli, tmp_path, name):
    text, line, field = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    code, out, err = run_cli("table", str(path))
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"costmodel: error: {path}:{line}:"), err
    if field:
        assert f": {field}:" in err, err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["table", "no/such/file.yaml"], "no such file"),
        (["table", "SPECS/seed_mbconv.yaml", "--format", "nope"], "--format"),
        (["table", "SPECS/symbolic_mbconv.yaml", "--set", "C"], "--set"),
        (["table", "SPECS/symbolic_mbconv.yaml", "--set", "C=four"], "--set"),
        (["table", "SPECS/symbolic_mbconv.yaml", "--set", "C=0"], "--set"),
        (["table", "SPECS/symbolic_mbconv.yaml", "--set", "Z=3"], "no symbol named 'Z'"),
        (["table", "SPECS/symbolic_mbconv.yaml", "--set", "C=__import__('os')"], "--set"),
        (["formula", "SPECS/seed_mbconv.yaml", "--stage", "nope"], "no stage"),
        (["formula", "SPECS/seed_mbconv.yaml", "--metric", "watts"], "--metric"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments(run_cli, args, needle):
    args = [a.replace("SPECS", str(SPECS)) for a in args]
    code, out, err = run_cli(*args)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err


def test_binary_and_directory(run_cli, tmp_path):
    blob = tmp_path / "blob.yaml"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff")
    for target in (blob, tmp_path):
        code, out, err = run_cli("table", str(target))
        assert code == 2 and out == "" and err.count("\n") == 1 and str(target) in err


def test_latin1_file(run_cli, tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, out, err = run_cli("table", str(p))
    assert code == 2 and out == "" and "UTF-8" in err


@pytest.mark.parametrize("view", [["--by", "op"], ["--by", "stage"], ["--by", "block"], ["--by", "layer"]])
def test_network_views_sum_to_totals(run_cli, view):
    spec = str(SPECS / "networks" / "efficientnet_b0.yaml")
    code, out, _ = run_cli("table", spec, "--format", "csv", *view)
    assert code == 0
    lines = list(csv.reader(out.splitlines()))
    header, body, total = lines[0], lines[1:-1], lines[-1]
    col = header.index("macs")
    assert total[0] == "total" and int(total[col]) == 385_814_752
    assert sum(int(r[col]) for r in body) == 385_814_752


@pytest.mark.parametrize("depth", ["1", "2", "3", "4"])
def test_depth_tree(run_cli, depth):
    spec = str(SPECS / "networks" / "mobilenet_v3_small.yaml")
    code, out, _ = run_cli("table", spec, "--format", "csv", "--depth", depth)
    assert code == 0
    lines = list(csv.reader(out.splitlines()))
    col = lines[0].index("params")
    top = [r for r in lines[1:-1] if not r[0].startswith("·")]
    assert sum(int(r[col]) for r in top) == 2_542_856 == int(lines[-1][col])


def test_network_json_keeps_every_op_row(run_cli):
    code, out, _ = run_cli("table", str(SPECS / "networks" / "mobilenet_v2.yaml"), "--format", "json")
    data = json.loads(out)
    assert data["totals"]["params"] == 3_504_872 and data["output"] == [1000]
    assert sum(r["macs"] for r in data["rows"]) == 300_774_272
    assert max(r["index"] for r in data["rows"]) == 1 + 17 + 1 + 3 - 1  # stem, 17 MBConvs, head, pool, dropout, fc
    assert data["rows"][-1]["block"] == "11.0"  # the block id: layer 11 (fc), repeat 0
