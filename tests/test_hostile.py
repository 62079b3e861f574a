"""Hostile and unusual input on every subcommand: exit 0 with the right output, or exit 2 with exactly one
line on stderr naming the problem and nothing on stdout — within seconds and bounded memory.

Most cases run ``costmodel.cli.main`` in a forked child of this process (a fresh process per case, with
its own address-space cap and a wall-clock timeout, cheap because the imports are already done); the
cases about the process itself (a closed stdout, a full disk, a broken pipe) run ``python -m costmodel``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SPECS, _forked

BASE = "input: {channels: 4, height: 8, width: 8}\nlayers:\n  - kind: mbconv\n    out_channels: 4\n    expansion: 6\n"
SEED = str(SPECS / "seed_mbconv.yaml")
SYM = str(SPECS / "symbolic_mbconv.yaml")
CAP = 1 << 30  # address space each case may add to what this process already maps
TIMEOUT = 8.0


@pytest.fixture(scope="module", autouse=True)
def _preload():
    """Import what the commands import, once, so that each forked case starts warm."""
    import sympy  # noqa: F401
    import tabulate  # noqa: F401

    import costmodel.api
    import costmodel.cli
    from costmodel.spec.fields import _reserved_names

    _reserved_names()
    costmodel.api.analyze(SYM)


def cli(*args: str, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """``costmodel ARGS`` in a forked child under a memory cap and a timeout: (status, stdout, stderr)."""
    return _forked(args, ROOT, timeout, CAP)


def refused(*args: str, match: str, line: int | None = None) -> str:
    """Assert that ``costmodel ARGS`` exits 2 with one stderr line containing ``match``; return the line."""
    code, out, err = cli(*args)
    assert (code, out) == (2, ""), (code, out[:300], err[-1000:])
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("costmodel: error: "), err[-2000:]
    assert match in lines[0], lines[0]
    assert "{" not in lines[0].split(": error: ", 1)[1].replace("{kind", ""), lines[0]  # no raw templates
    if line is not None:
        assert f":{line}: " in lines[0], lines[0]
    return lines[0]


def ok(*args: str) -> str:
    code, out, err = cli(*args)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    return out


@pytest.fixture
def spec(tmp_path):
    """Write a spec text to a file; its path."""
    n = iter(range(1000))

    def write(text: str | bytes) -> str:
        path = tmp_path / f"spec{next(n)}.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def profile(rate: str) -> str:
    return f"name: x\nsource: test\npeak_flops: {{float32: {rate}}}\nbandwidth: 1.0e9\n"


def no_nonfinite(text: str) -> object:
    """json.loads that fails on NaN / Infinity (not JSON)."""

    def bad(name: str) -> None:
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=bad)


# ------------------------------------------------------------------------------------ 1. aliases, depth

LAUGHS = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


def test_billion_laughs(spec):
    refused("table", spec(LAUGHS), match="YAML aliases (*a) are not allowed", line=2)


def test_alias_list_beside_a_valid_spec(spec):
    refused("table", spec(BASE + "x: &x [1, 2, 3]\ny: [*x, *x, *x]\n"), match="aliases", line=7)


def test_list_containing_itself(spec):
    refused("memory", spec("a: &a [*a]\n" + BASE), match="aliases (*a)", line=1)


def test_mapping_containing_itself(spec):
    refused("formula", spec("a: &a {b: *a}\n"), match="aliases", line=1)


def test_alias_for_a_layer(spec):
    refused(
        "table", spec(BASE.replace("  - kind", "  - &l\n    kind") + "  - *l\n"), match=":7: layers[1]: YAML aliases"
    )


def test_anchor_without_alias_is_fine(spec):
    out = ok("table", spec(BASE.replace("layers:", "layers: &all")), "--format", "json")
    # expansion 4·24 + depthwise 24·9 + projection 24·4 = 408 weights, BatchNorm 2·(24 + 24 + 4) = 104
    assert no_nonfinite(out)["totals"]["params"] == 408 + 104


def test_merge_key(spec):
    refused("table", spec(BASE + "    <<: {kernel: 5}\n"), match="merge keys", line=6)


def test_flow_nesting_5000_deep(spec):
    refused("table", spec("[" * 5000 + "]" * 5000), match="nesting depth")


def test_block_nesting_deeper_than_the_bound(spec):
    text = "".join(" " * i + "a:\n" for i in range(40)) + " " * 40 + "b: 1\n"
    refused("table", spec(text), match="nest more than 32 levels", line=33)


def test_library_json_nested_5000_deep():
    import costmodel
    from costmodel.errors import SpecError

    with pytest.raises(SpecError, match="nesting depth"):
        costmodel.loads('{"input": ' + "[" * 5000 + "]" * 5000 + "}")
    deep: object = {}
    for _ in range(5000):
        deep = {"a": deep}
    from costmodel.spec import loader

    with pytest.raises(SpecError, match="input"):
        loader.validate({"input": deep, "layers": [deep]}, loader.Source("<dict>"))


# ----------------------------------------------------------------------------------- 2. unbounded reads


def test_dev_zero_is_refused_unread():
    refused("table", "/dev/zero", match="/dev/zero: larger than 4 MiB")


def test_huge_file(spec):
    refused("formula", spec("#" + "x" * (5 * 2**20) + "\n" + BASE), match="larger than 4 MiB")


def test_hardware_profile_dev_zero():
    refused("roofline", SEED, "--hardware", "/dev/zero", match="larger than 1 MiB")


def test_hardware_profile_directory(tmp_path):
    refused("roofline", SEED, "--hardware", str(tmp_path), match="is a directory")


def test_directory_spec():
    refused("memory", str(SPECS), match="is a directory")


def test_dev_null_is_empty():
    refused("table", "/dev/null", match="the file is empty")


# ------------------------------------------------------------------------------------ 3. huge values


def test_repeat_a_billion(spec):
    refused("table", spec(BASE + "    repeat: 1000000000\n"), match="layers[0].repeat: must be at most 10,000", line=6)


def test_repeats_summing_past_the_block_bound(spec):
    layer = "  - {kind: dwsep, out_channels: 4, repeat: 10000}\n"
    refused("table", spec(BASE + layer * 11), match="layers[10].repeat: the layers expand to more than 100,000")


def test_depth_scaling_past_the_block_bound(spec):
    text = BASE + "    repeat: 5000\nscaling: {depth: 50}\n"
    refused("table", spec(text), match="more than 100,000 blocks")


def test_too_many_layers(spec):
    refused("table", spec("input: {channels: 4, height: 8, width: 8}\nlayers:\n" + "- ~\n" * 100_001),
            match="100,001 layers; a spec may have at most 100,000")  # fmt: skip


def test_channels_ten_to_the_200(spec):
    text = BASE.replace("out_channels: 4", f"out_channels: {10**200}")
    for args in (("table",), ("memory",), ("roofline", "--hardware", "a100")):
        refused(*args, spec(text), match="layers[0].out_channels: an integer of 201 digits is out of range")


def test_channels_ten_to_the_30(spec):
    text = BASE.replace("out_channels: 4", f"out_channels: {10**30}")
    refused(
        "memory",
        spec(text),
        match="layers[0].out_channels: must be at most 2**31 - 1 = 2,147,483,647, got an integer of about 31 digits",
    )


def test_channels_with_5000_digits(spec):
    refused("roofline", spec(BASE.replace("out_channels: 4", "out_channels: " + "9" * 5000)), "--hardware", "a100",
            match="an integer of 5,000 digits is out of range", line=4)  # fmt: skip


def test_largest_values_stay_exact_and_finite(spec):
    big = 2**31 - 1
    text = (
        f"input: {{channels: {big}, height: {big}, width: {big}, batch: {big}}}\n"
        f"layers:\n  - {{kind: conv, out_channels: {big}, kernel: 1}}\n"
    )
    out = no_nonfinite(ok("table", spec(text), "--format", "json"))
    assert out["totals"]["macs"] == big**5  # batch·H·W·C_in·C_out, 1×1 kernel
    assert no_nonfinite(ok("memory", spec(text), "--format", "json"))
    assert no_nonfinite(ok("roofline", spec(text), "--hardware", "a100", "--format", "json"))


def test_set_with_5000_digits():
    refused("table", SYM, "--set", "C=" + "1" * 5000, match="must be a positive integer below 2**31")


def test_set_just_past_the_bound():
    refused("table", SYM, "--set", "C=2147483648,H=8,W=8,t=6,k=3", match="input.channels: must be at most 2**31 - 1")


def test_rate_of_400_digits(spec):
    refused(
        "roofline",
        SEED,
        "--hardware",
        spec(profile("1" + "0" * 400)),
        match="peak_flops.float32: an integer of 401 digits is out of range",
    )


def test_rate_of_40_digits(spec):
    refused(
        "roofline", SEED, "--hardware", spec(profile("1" + "0" * 40)), match="peak_flops.float32: must be at most 1e30"
    )


def test_rate_below_one(spec):
    refused(
        "roofline",
        SEED,
        "--hardware",
        spec(profile("1.0e-300")),
        match="peak_flops.float32: must be a finite number in [1, 1e30]",
    )


def test_huge_budget_exponent():
    refused(
        "solve", SYM, "--for", "C", "--set", "H=8,W=8,t=6,k=3", "--budget", "macs<=1e99999999", match="out of range"
    )


def test_huge_depth_argument():
    refused("table", SEED, "--depth", "1000000", match="--depth 1000000: expected 1 (layers) to 4 (ops)")


# -------------------------------------------------------------------------------- 4. non-finite numbers


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf", "1e999"])
def test_nonfinite_scaling_width(spec, value):
    refused(
        "table",
        spec(BASE + f"scaling: {{width: {value}}}\n"),
        match="scaling.width: must be a finite number in (0, 100]",
        line=6,
    )


@pytest.mark.parametrize("field", ["depth", "width"])
def test_scaling_factor_past_the_bound(spec, field):
    refused("table", spec(BASE + f"scaling: {{{field}: 1000}}\n"), match=f"scaling.{field}: must be a finite number")


def test_nonfinite_width_floor(spec):
    refused("memory", spec(BASE + "    width_floor: .nan\n"), match="layers[0].width_floor: must be a finite number")


def test_nan_se(spec):
    refused("table", spec(BASE + "    se: .nan\n"), match="layers[0].se: must be in (0, 1], got nan")


def test_inf_dropout(spec):
    refused(
        "table", spec(BASE + "  - {kind: dropout, p: .inf}\n"), match="layers[1].p: must be a number in [0, 1), got inf"
    )


@pytest.mark.parametrize("rate", [".inf", ".nan"])
def test_nonfinite_rates(spec, rate):
    refused("roofline", SEED, "--hardware", spec(profile(rate)), match="peak_flops.float32: must be a finite number")


def test_nonfinite_bandwidth(spec):
    text = profile("1.0e9").replace("bandwidth: 1.0e9", "bandwidth: .inf")
    refused("roofline", SEED, "--hardware", spec(text), match="bandwidth: must be a finite number")


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "1e9"])
def test_calibrate_seconds(seconds):
    refused("calibrate", "--seconds", seconds, match="--seconds must be")


def test_calibrate_library_arguments():
    from costmodel.analysis.hardware import calibrate
    from costmodel.errors import UsageError

    for kwargs in ({"seconds": float("inf")}, {"seconds": float("nan")}, {"matmul_n": 0}, {"copy_mib": 10**9}):
        with pytest.raises(UsageError):
            calibrate(**kwargs)  # type: ignore[arg-type]


def test_json_outputs_are_finite(spec):
    text = BASE + "  - {kind: pool}\n  - {kind: dropout, p: 0.2}\n  - {kind: linear, out_features: 10}\n"
    path = spec(text)
    for args in (
        ("table", path, "--format", "json"),
        ("memory", path, "--format", "json"),
        ("roofline", path, "--hardware", "microcontroller", "--format", "json"),
        ("roofline", path, "--hardware", "a100", "--format", "json", "--by", "stage"),
        ("compare", path, SEED, "--format", "json"),
        ("explain", path, "--vs", "thop", "--format", "json"),
    ):
        assert no_nonfinite(ok(*args)), args


def test_json_outputs_of_symbolic_commands_are_finite():
    assert no_nonfinite(ok("sweep", SYM, "--vary", "t=1,2", "--set", "C=4,k=3,H=8,W=8", "--format", "json"))
    assert no_nonfinite(ok("formula", SYM, "--at", "C=4,t=6,k=3,H=8,W=8", "--format", "json"))
    assert no_nonfinite(
        ok("solve", SYM, "--for", "C", "--set", "H=8,W=8,t=6,k=3", "--budget", "macs<=1e6", "--format", "json")
    )


# ---------------------------------------------------------------------------------- 5. YAML 1.1 forms


@pytest.mark.parametrize(
    ("value", "reading"),
    [("017", "octal"), ("0x10", "hexadecimal"), ("0b101", "binary"), ("0o17", "octal (YAML 1.2)"), ("1:20", "base 60"),
     ("1_000", "_ separators"), ("-017", "octal"), ("00", "octal")],
)  # fmt: skip
def test_ambiguous_number_forms(spec, value, reading):
    line = refused("table", spec(BASE.replace("out_channels: 4", f"out_channels: {value}")), match=reading, line=4)
    assert "layers[0].out_channels" in line and "not a plain decimal number" in line


def test_octal_under_yaml_1_2_directive(spec):
    refused("table", spec("%YAML 1.2\n---\n" + BASE.replace("channels: 4,", "channels: 017,")), match="octal", line=3)


def test_sexagesimal_name_is_refused_and_quoted_is_text(spec):
    refused("table", spec("name: 1:20\n" + BASE), match="name: '1:20' is not a plain decimal number", line=1)
    assert "1:20" in ok("table", spec('name: "1:20"\n' + BASE))


def test_plain_decimal_and_exponent_forms(spec):
    out = no_nonfinite(ok("table", spec(BASE.replace("out_channels: 4", "out_channels: 17")), "--format", "json"))
    assert out["output"] == [17, 8, 8]
    # YAML 1.2 reads 1e9 (no exponent sign) as a number, as a hardware profile writes it
    assert no_nonfinite(
        ok(
            "roofline",
            SEED,
            "--hardware",
            SEED.replace("seed_mbconv.yaml", "nope") if False else "a100",
            "--format",
            "json",
        )
    )


def test_float_in_integer_field(spec):
    refused(
        "table",
        spec(BASE.replace("expansion: 6", "expansion: 1e3")),
        match="layers[0].expansion: must be an integer, got the float 1000.0",
    )


# ------------------------------------------------------------------------------------------ 6. memory


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # pragma: no cover


def test_analyze_does_not_grow():
    import costmodel

    for _ in range(30):
        costmodel.analyze(SEED)
    before = _rss_kib()
    for _ in range(300):
        costmodel.analyze(SEED)
    assert _rss_kib() - before < 2048  # KiB; the old loader kept every node: ~10 KiB a call on this spec


@pytest.mark.slow
def test_analyze_mobilenet_v2_3000_times_grows_less_than_5_mb():
    import costmodel

    path = SPECS / "networks" / "mobilenet_v2.yaml"
    for _ in range(50):
        costmodel.analyze(path)
    before = _rss_kib()
    for _ in range(3000):
        costmodel.analyze(path)
    assert _rss_kib() - before < 5 * 1024


# ----------------------------------------------------------------------------------------- 7. symbols


@pytest.mark.parametrize("name", ["max", "abs", "eval", "print", "exec", "lambda", "E", "Symbol", "__import__", "min"])
def test_names_sympy_reads_otherwise(spec, name):
    refused(
        "table",
        spec(BASE.replace("expansion: 6", f"expansion: {name}")),
        match=f"layers[0].expansion: bad symbol name: {name!r}",
    )


def test_symbol_rule_agrees_with_sympy_parser():
    """Every accepted name parses back as Symbol(name); parse_expr is called here, in the test only."""
    import builtins
    import keyword

    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    from costmodel.spec.fields import IDENTIFIER, symbol_name_problem

    names = {*sympy.__all__, *dir(builtins), *keyword.kwlist, *keyword.softkwlist, "C", "t", "k", "H", "W", "lam"}
    names = {n for n in names if IDENTIFIER.match(n)}
    for name in sorted(names):
        if symbol_name_problem(name) is None:
            assert parse_expr(name) == sympy.Symbol(name), name
    for name in ("C", "t", "width", "type", "match", "_"):
        assert symbol_name_problem(name) is None, name


def test_long_symbol_name(spec):
    refused("table", spec(BASE.replace("expansion: 6", "expansion: " + "a" * 100)), match="at most 64 characters")


# ---------------------------------------------------------------------------------------- 8. messages


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('    se: "0.25"\n', "layers[0].se: must be a number in (0, 1], got the quoted numeral '0.25'"),
        ('  - {kind: dropout, p: "0.1"}\n', "layers[1].p: must be a number in [0, 1), got the quoted numeral '0.1'"),
        ('scaling: {width: "1.0"}\n', "scaling.width: must be a positive number, got the quoted numeral '1.0'"),
        ('scaling: {divisor: "8"}\n', "scaling.divisor: must be a positive integer, got the quoted numeral '8'"),
        ("    residual: 5\n", "layers[0].residual: must be auto, true or false, got 5"),
        ('    kernel: "3"\n', "layers[0].kernel: got the quoted numeral '3'"),
        ("    se: [1]\n", "layers[0].se: must be a number in (0, 1], got a list"),
    ],
)
def test_messages_have_no_raw_templates(spec, text, match):
    refused("table", spec(BASE + text), match=match)


def test_quoted_rate_numeral_is_read_and_text_rate_is_refused(spec):
    assert no_nonfinite(ok("roofline", SEED, "--hardware", spec(profile('"19.5e12"')), "--format", "json"))
    refused("roofline", SEED, "--hardware", spec(profile('"fast"')), match="must be a positive number, got 'fast'")


# ------------------------------------------------------------------------------------ 9. output errors


def _python_m(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "costmodel", *args], cwd=ROOT, env=env, timeout=30, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_schema_to_a_full_disk():
    with open("/dev/full", "w") as full:
        proc = _python_m("schema", stdout=full, stderr=subprocess.PIPE)
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr.decode()
    assert "cannot write the output: No space left on device" in lines[0]


def test_closed_stdout():
    proc = subprocess.run(
        f"{sys.executable} -m costmodel table {SEED} >&-", shell=True, cwd=ROOT, capture_output=False,
        stderr=subprocess.PIPE, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and lines == ["costmodel: error: cannot write the output: stdout is closed"], lines


def test_broken_pipe_is_quiet():
    proc = subprocess.run(
        f"{sys.executable} -m costmodel table {SPECS / 'networks' / 'efficientnet_b0.yaml'} --by op | head -c 0",
        shell=True, cwd=ROOT, capture_output=True, timeout=30,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), executable="/bin/bash",
    )  # fmt: skip
    assert proc.stderr == b"" and proc.stdout == b""


def test_plot_to_an_unwritable_path(tmp_path):
    pytest.importorskip("matplotlib")
    refused("table", SEED, "--plot", str(tmp_path / "no" / "such" / "dir" / "x.png"), match="No such file or directory")


def test_plot_to_an_unknown_format(tmp_path):
    pytest.importorskip("matplotlib")
    refused("table", SEED, "--plot", str(tmp_path / "x.nosuchformat"), match="--plot")


# ------------------------------------------------------------------------------ 10. anything else


def test_binary_file(spec):
    refused("table", spec(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), match="not a text file")


def test_not_utf8(spec):
    refused("formula", spec(b"name: \xff\xfe\n"), match="not UTF-8 text")


def test_control_character(spec):
    refused("table", spec("name: a\x01b\n" + BASE), match="unacceptable character #x0001")


def test_empty_and_comment_only(spec):
    refused("table", spec(""), match="the file is empty")
    refused("table", spec("# nothing here\n"), match="the file is empty")


@pytest.mark.parametrize(("text", "match"), [("- 1\n- 2\n", "got list"), ("42\n", "got int"), ("~\n", "got NoneType")])
def test_spec_not_a_mapping(spec, text, match):
    refused("table", spec(text), match=match)


@pytest.mark.parametrize(
    "tag", ["!!python/object:os.system", "!!python/name:os.system", "!!binary", "!!set", "!custom", "!!timestamp"]
)
def test_tags(spec, tag):
    refused("table", spec(f"name: {tag} x\n" + BASE), match="YAML tag", line=1)


def test_collection_tag(spec):
    refused("table", spec("name: !!omap [a: 1]\n" + BASE), match="YAML tag 'tag:yaml.org,2002:omap'", line=1)


def test_keys_must_be_text(spec):
    refused("table", spec(BASE + "1: x\n"), match="keys must be text, got 1", line=6)
    refused("table", spec(BASE + "? [a]\n: x\n"), match="keys must be text, got a list", line=6)


def test_duplicate_key(spec):
    refused(
        "table",
        spec(BASE + "    expansion: 4\n"),
        match="layers[0].expansion: duplicate key 'expansion' (first on line 5)",
        line=6,
    )


def test_two_documents(spec):
    refused("table", spec(BASE + "---\n" + BASE), match="holds several", line=6)


def test_tab_indentation(spec):
    refused("table", spec(BASE.replace("    out_channels", "\tout_channels")), match="YAML syntax error")


def test_timestamp_reads_as_text(spec):
    out = ok("table", spec("name: 2020-01-01\n" + BASE))
    assert "2020-01-01" in out


def test_unicode_and_bom(spec):
    out = ok("table", spec("\ufeffname: réseau ✓\n" + BASE))
    assert "réseau ✓" in out


@pytest.mark.parametrize(
    "args",
    [
        ("table", SEED, "--format", "junk"),
        ("memory", SEED, "--format", "junk"),
        ("roofline", SEED, "--hardware", "a100", "--format", "junk"),
        ("compare", SEED, SEED, "--format", "junk"),
        ("explain", SEED, "--vs", "thop", "--format", "junk"),
        ("sweep", SYM, "--vary", "t=1,2", "--set", "C=4,k=3,H=8,W=8", "--format", "junk"),
        ("formula", SYM, "--format", "junk"),
        ("solve", SYM, "--for", "C", "--budget", "macs<=1e6", "--set", "H=8,W=8,t=6,k=3", "--format", "junk"),
    ],
)
def test_format_junk(args):
    refused(*args, match="junk")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("nosuchcommand",), "invalid choice"),
        (("table",), "required"),
        (("table", SEED, "--by", "nothing"), "--by"),
        (("table", SEED, "--convention", "nothing"), "nothing"),
        (("memory", SEED, "--dtype", "float128"), "--dtype"),
        (("roofline", SEED, "--hardware", "nosuchdevice"), "no hardware profile named 'nosuchdevice'"),
        (("roofline", SEED, "--hardware", "desktop_cpu_core", "--dtype", "int8"), "gives no peak for int8"),
        (("explain", SEED, "--vs", "nobody"), "nobody"),
        (("compare", SEED), "at least two"),
        (("sweep", SYM, "--vary", "t=", "--set", "C=4,k=3,H=8,W=8"), "--vary"),
        (("sweep", SYM, "--vary", "t=1:100000000000000000000000", "--set", "C=4,k=3,H=8,W=8"), "--vary"),
        (("solve", SYM, "--for", "Z", "--budget", "macs<=1e6", "--set", "H=8,W=8,t=6,k=3"), "no free symbol 'Z'"),
        (("solve", SYM, "--for", "C", "--budget", "macs<=1e6;import os", "--set", "H=8,W=8,t=6,k=3"), "--budget"),
        (("formula", SYM, "--diff", "__import__"), "--diff"),
        (("table", SYM, "--set", "C=__import__('os')"), "--set"),
        (("table", SYM, "--set", "C=-4"), "--set"),
        (("table", SEED, "--set", "Z=3"), "no symbol named 'Z'"),
        (("table", "no/such/file.yaml"), "no such file"),
    ],
)
def test_bad_arguments(args, match):
    refused(*args, match=match)


def test_schema_is_json():
    schema = no_nonfinite(ok("schema"))
    assert isinstance(schema, dict) and "properties" in schema


def test_unknown_kind_and_key(spec):
    refused(
        "table", spec(BASE.replace("kind: mbconv", "kind: transformer")), match="unknown kind 'transformer'", line=3
    )
    refused("table", spec(BASE + "    colour: red\n"), match="layers[0].colour: unknown key", line=6)


def test_very_long_line(spec):
    refused("table", spec("name: " + "x" * 3_000_000 + "\n" + BASE + "bad: 1\n"), match="bad: unknown key")


def test_deep_but_allowed_nesting_in_a_string_field(spec):
    refused("table", spec("name: " + "[" * 30 + "]" * 30 + "\n" + BASE), match="name")


def test_hardware_profile_with_alias(spec):
    text = "name: x\nsource: s\npeak_flops: &p {float32: 1.0e12}\nbandwidth: 1.0e9\nnotes: *p\n"
    refused("roofline", SEED, "--hardware", spec(text), match="aliases", line=5)


def test_closed_stderr_with_warnings():
    """roofline warns on stderr (tensors past the microcontroller's on-chip memory); with stderr closed
    the table still comes out."""
    spec = SPECS / "networks" / "mobilenet_v2.yaml"
    proc = subprocess.run(
        f"{sys.executable} -m costmodel roofline {spec} --hardware microcontroller --format csv 2>&-",
        shell=True, cwd=ROOT, stdout=subprocess.PIPE, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.decode().count("\n") > 10
