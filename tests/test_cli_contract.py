"""The CLI's contract with the library, for every command (issue #21 items 3–4):

- its JSON equals ``to_dict()`` of the same api call's result;
- results pickle (module-level classes) and two results of one call share a type;
- one emitter decision (present/emit.py ``decide``) routes every format of every command;
- the shape options reach every command that reads a spec: the output equals that of the YAML edited by
  hand (``--resolution`` and ``--width-mult``), and differs from the unedited spec's;
- ``--help`` lists every registered kind.

Every run here is ``costmodel.cli.main(argv)`` in this process (no interpreter start).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
from pathlib import Path

import pytest
import yaml

import costmodel
from conftest import ROOT, SPECS
from costmodel import api
from costmodel.cli import COMMANDS, main
from costmodel.present import emit

SEED = str(SPECS / "seed_mbconv.yaml")
NET = str(SPECS / "networks" / "mobilenet_v2.yaml")
DEPLOY_SPACE = str(ROOT / "tests" / "deploy_fixtures" / "tiny_space.yaml")
SYM = str(SPECS / "symbolic_mbconv.yaml")
TINY_SPACE = """\
name: tiny space
input: {channels: 3, resolution: {choice: [16, 24]}}
defaults: {activation: relu6}
scaling: {width: {choice: [0.5, 1.0]}, divisor: 8}
layers:
  - {kind: conv, out_channels: 16, kernel: 3, stride: 2}
  - {kind: mbconv, out_channels: {choice: [8, 16]}, expansion: {choice: [3, 6]}, kernel: {choice: [3, 5]}, stride: 2,
     repeat: {choice: [1, 2]}}
  - {kind: conv, out_ratio: 2, kernel: 1}
  - {kind: pool}
  - {kind: linear, out_features: 10}
"""
PROFILE = {
    "name": "test machine",
    "peak_flops": {"float32": 1e11},
    "bandwidth": 1e10,
    "source": "a test",
    "latency": [
        {
            "threads": 2,
            "framework": "torch test",
            "default_overhead_s": 2e-6,
            "classes": {
                "conv_pw": {
                    "overhead_s": 5e-6,
                    "s_per_mac": 1e-10,
                    "s_per_byte": 1e-10,
                    "samples": 3,
                    "median_rel_error": 0.1,
                },
            },
        }
    ],
}


def cli(*argv: str) -> tuple[int, str, str]:
    """``costmodel ARGV`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", autouse=True)
def space_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A small search space (seconds, not minutes); the shipped ones are covered by test_space.py."""
    global SPACE
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(TINY_SPACE)
    SPACE = str(path)


SPACE = ""


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("profile") / "machine.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    return str(path)


# ---- 1. the JSON of each command is the library's to_dict() of the same call ------------------------

SWEEP_SET = {"C": 4, "k": 3, "H": 8, "W": 8}


def _cases(profile: str) -> list[tuple[list[str], object]]:
    """(argv, a function giving the library's dict of the same call)."""
    return [
        (["table", NET], lambda: api.count(NET).to_dict()),
        (["table", NET, "--dtype", "float16", "--fusion", "block", "--convention", "thop"],
         lambda: api.count(NET, "thop").to_dict("float16", "block")),
        (["table", NET, "--fold-bn"], lambda: api.count(NET, fold_bn=True).to_dict()),
        (["table", NET, "--block", "3.1"], lambda: api.count(NET).block("3.1").to_dict()),
        (["table", SYM], lambda: api.count(SYM).to_dict()),
        (["memory", NET, "--fusion", "conv-bn-act"], lambda: api.memory(NET, fusion="conv-bn-act").to_dict()),
        (["roofline", NET, "--hardware", "mobile_soc", "--by", "stage"],
         lambda: api.roofline(NET, "mobile_soc").to_dict("stage")),
        (["roofline", SEED, "--hardware", "a100"], lambda: api.roofline(SEED, "a100").to_dict()),
        (["latency", NET, "--hardware", profile], lambda: api.latency(NET, profile).to_dict()),
        (["latency", NET, "--hardware", profile, "--by", "stage"],
         lambda: api.latency(NET, profile).to_dict("stage")),
        (["train", NET, "--optimizer", "adamw", "--by", "op"],
         lambda: api.train(NET, optimizer="adamw").to_dict("op")),
        (["train", SEED], lambda: api.train(SEED).to_dict()),
        (["train", NET, "--solve", "batch", "--memory", "4GiB"], lambda: api.largest_batch(NET, "4GiB")[1].to_dict()),
        (["train", NET, "--solve", "batch", "--memory", "4GiB", "--convention", "torch"],
         lambda: api.largest_batch(NET, "4GiB", convention="torch")[1].to_dict()),
        (["train", NET, "--vs", "torch"], lambda: api.train_vs_torch(NET).to_dict()),
        (["compare", SEED, NET], lambda: api.compare([SEED, NET], names=[SEED, NET]).to_dict()),
        (["sweep", SYM, "--vary", "t=1,2,4", "--set", "C=4,k=3,H=8,W=8"],
         lambda: api.sweep(SYM, t=[1, 2, 4], **SWEEP_SET).to_dict()),
        (["solve", SYM, "--for", "t", "--budget", "macs<=1e5", "--set", "C=4,k=3,H=8,W=8"],
         lambda: api.solve(SYM, "t", ["macs<=1e5"], C=4, k=3, H=8, W=8).to_dict()),
        (["explain", NET, "--vs", "thop"], lambda: api.explain(NET, "thop").to_dict()),
        (["explain", NET, "--vs", "fvcore", "--vs", "ptflops"],
         lambda: api.explain(NET, "fvcore", "ptflops").to_dict()),
        (["formula", SYM, "--at", "t=6,k=3,C=16,H=32,W=32", "--metric", "macs"],
         lambda: api.sensitivity(SYM, {"t": 6, "k": 3, "C": 16, "H": 32, "W": 32}, ["macs"]).to_dict()),
        (["space", SPACE, "--budget", "macs<=3e5"], lambda: api.space(SPACE).summary(["macs<=3e5"]).to_dict()),
        (["space", SPACE, "--pareto", "macs,params"], lambda: api.space(SPACE).front("macs", "params").to_dict()),
        (["space", SPACE, "--sample", "3", "--seed", "1"], lambda: api.space(SPACE).draw(3, 1).to_dict()),
        (["space", SPACE, "--table"], lambda: api.space(SPACE).blocks().to_dict()),
        (["list"], lambda: [s.to_dict() for s in api.shipped()]),
        (["deploy", NET, "--runtime", "tflm"], lambda: api.deploy(NET, "tflm").to_dict()),
        (["deploy", NET, "--runtime", "tinyengine", "--patch", "4x4", "--patch-until", "3.0"],
         lambda: api.deploy(NET, "tinyengine", patch=(4, 4), patch_until="3.0").to_dict()),
        (["deploy", NET, "--runtime", "tflm", "--sram", "64KiB", "--solve", "resolution"],
         lambda: api.deploy_solve(NET, "resolution", "tflm", sram=64 * 1024).to_dict()),
        (["space", DEPLOY_SPACE, "--runtime", "tinyengine", "--sram", "20KiB"],
         lambda: api.space(DEPLOY_SPACE).deploy_count("tinyengine", 20 * 1024).to_dict()),
    ]  # fmt: skip


_IDS = [f"{i:02d}-{argv[0]}" for i, (argv, _) in enumerate(_cases("PROFILE"))]


@pytest.mark.parametrize("case", range(len(_IDS)), ids=_IDS)
def test_command_json_is_the_librarys_to_dict(profile, case):
    argv, library = _cases(profile)[case]
    code, out, err = cli(*argv, "-f", "json")
    assert code == 0, (argv, err)
    assert json.loads(out) == library()  # type: ignore[operator]


def test_every_command_with_a_json_output_is_covered():
    covered = {argv[0] for argv, _ in _cases("PROFILE")}
    # calibrate, schema and import write YAML or a JSON Schema, not a result's JSON; export writes a model file
    assert covered == {c.name for c in COMMANDS} - {"calibrate", "schema", "import", "export"}


def test_table_json_keeps_its_peak_and_the_library_has_it_too():
    """The keys ``table -f json`` always had beyond ``analyze().to_dict()`` now come from the library: the
    peak activation memory (float32, no fusion: the largest live set, by analysis/memory.py)."""
    d = costmodel.analyze(SEED).to_dict()
    code, out, _ = cli("table", SEED, "-f", "json")
    assert json.loads(out) == d
    peak = api.memory(SEED).peak
    assert d["totals"]["peak_activation_bytes"] == peak.bytes > 0
    assert d["peak"] == {"bytes": peak.bytes, "kernel": peak.kernel, "dtype": "float32", "fusion": "none"}
    assert out.rstrip("\n") == costmodel.analyze(SEED).table("json")  # the same text, byte for byte


# ---- 2. picklable, module-level result classes ------------------------------------------------------


def _results(profile: str) -> dict[str, object]:
    space = api.space(SPACE)
    return {
        "analyze": api.analyze(SEED),
        "sweep": api.sweep(SYM, t=[1, 2], **SWEEP_SET),
        "train": api.train(SEED),
        "largest_batch": api.largest_batch(SEED, "1MiB")[1],
        "space": space,
        "space_summary": space.summary(),
        "memory": api.memory(SEED),
        "roofline": api.roofline(SEED, "mobile_soc"),
        "compare": api.compare([SEED, NET]),
        "latency": api.latency(SEED, profile),
        "solve": api.solve(SYM, "t", ["macs<=1e5"], C=4, k=3, H=8, W=8),
        "explain": api.explain(SEED, "thop"),
        "sensitivity": api.sensitivity(SYM, {"t": 6}, ["macs"], C=4, k=3, H=8, W=8),
    }


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    if hasattr(a, "to_dict"):
        assert a.to_dict() == b.to_dict()  # type: ignore[attr-defined]
    else:  # a Space: its size and stats
        assert a.size == b.size and a.stats(peak=False) == b.stats(peak=False)  # type: ignore[attr-defined]


def test_results_pickle_and_round_trip_equal(profile):
    for name, r in _results(profile).items():
        back = pickle.loads(pickle.dumps(r))
        _same(back, r)
        assert "<locals>" not in type(r).__qualname__, name
    a = api.analyze(SEED)
    assert pickle.loads(pickle.dumps(a)) == a  # a Report compares equal as a dataclass too


def test_two_results_of_one_call_share_a_type():
    assert type(api.sweep(SYM, t=[1], **SWEEP_SET)) is type(api.sweep(SYM, t=[2, 3], **SWEEP_SET))
    assert type(api.train(SEED)) is type(api.train(NET))
    assert type(api.compare([SEED, SEED])) is type(api.compare([NET, SEED]))


# ---- 3. one emitter decision for every format of every command --------------------------------------


def _format_runs(profile: str) -> list[list[str]]:
    """One argv (without --format) per command and mode with a table/JSON output."""
    return [
        ["table", SEED],
        ["memory", SEED],
        ["roofline", SEED, "--hardware", "mobile_soc"],
        ["latency", SEED, "--hardware", profile],
        ["train", SEED],
        ["train", SEED, "--vs", "torch"],
        ["compare", SEED, str(SPECS / "seed_dwsep.yaml")],
        ["sweep", SYM, "--vary", "t=1,2", "--set", "C=4,k=3,H=8,W=8"],
        ["explain", SEED, "--vs", "thop"],
        ["formula", SYM, "--at", "t=6", "--set", "C=4,k=3,H=8,W=8", "--metric", "macs"],
        ["space", SPACE],
        ["space", SPACE, "--pareto", "macs,params"],
        ["space", SPACE, "--sample", "2"],
        ["space", SPACE, "--table"],
        ["list"],
        ["deploy", SEED, "--runtime", "tflm"],
    ]


_API_CALLS = ("deploy", "count", "memory", "roofline", "latency", "train", "train_vs_torch", "compare", "_sweep_plan",
              "explain", "sensitivity", "space")  # fmt: skip


def _memo(f):  # type: ignore[no-untyped-def]
    seen: dict[str, object] = {}

    def once(*args, **kwargs):  # type: ignore[no-untyped-def]
        key = repr((args, sorted(kwargs.items())))
        if key not in seen:
            seen[key] = f(*args, **kwargs)
        return seen[key]

    return once


def test_every_format_of_every_command_goes_through_one_decision(profile, monkeypatch):
    """``decide(fmt)`` is asked for every run, and its answer alone says what is written: patched so that a
    new format ``toy`` means the payload, every command writes for ``-f toy`` exactly its ``-f json``."""
    from tabulate import tabulate_formats

    real = emit.decide
    seen: list[str] = []

    def spy(fmt: str) -> str:
        seen.append(fmt)
        return emit.PAYLOAD if fmt == "toy" else real(fmt)

    monkeypatch.setattr(emit, "decide", spy)
    for name in _API_CALLS:  # each analysis once per argv: the formats only change what is written
        monkeypatch.setattr(api, name, _memo(getattr(api, name)))
    runs = _format_runs(profile)
    assert {r[0] for r in runs} == {c.name for c in COMMANDS} - {"calibrate", "schema", "import", "solve", "export"}
    for argv in runs:
        json_code, json_out, _ = cli(*argv, "-f", "json")
        seen.clear()
        code, out, err = cli(*argv, "-f", "toy")
        assert (code, out) == (json_code, json_out), argv
        assert "toy" in seen, argv
        seen.clear()
        code, out, err = cli(*argv, "-f", "csv")
        assert code == 0 and "csv" in seen and out.count("\n") >= 2, (argv, err)
        for fmt in sorted(tabulate_formats):
            seen.clear()
            code, out, err = cli(*argv, "-f", fmt)
            assert code == 0 and fmt in seen, (argv, fmt, err)
    # solve writes text or JSON: its JSON goes through the same decision
    seen.clear()
    code, out, _ = cli("solve", SYM, "--for", "t", "--budget", "macs<=1e5", "--set", "C=4,k=3,H=8,W=8", "-f", "json")
    # MACs = H·W·t·C·(2C + k²) = 8·8·t·4·(2·4 + 9) = 4352·t ≤ 10⁵ → t = 22
    assert code == 0 and seen == ["json"] and json.loads(out)["value"] == 22


def test_no_view_module_decides_the_format_itself():
    """Only emit.py compares a format with "json" (a new format then reaches every command alike)."""
    views = (ROOT / "costmodel" / "present").glob("*.py")
    offenders = [p.name for p in views if p.name != "emit.py" and '== "json"' in p.read_text()]
    offenders += [p for p in ("cli.py", "api.py", "results.py") if '== "json"' in (ROOT / "costmodel" / p).read_text()]
    assert offenders == []


# ---- 4. the shape options reach every command that reads a spec -------------------------------------

NETWORK = """\
name: shape test
input: {channels: 3, height: 64, width: 64}
layers:
  - {kind: conv, out_channels: 32, kernel: 3, stride: 2}
  - {kind: mbconv, out_channels: 24, expansion: t, kernel: 3, stride: 2}
  - {kind: mbconv, out_channels: 40, expansion: 4, kernel: 5, stride: 2, repeat: 2}
  - {kind: conv, out_channels: 96, kernel: 1}
  - {kind: pool}
  - {kind: dropout, p: 0.2}
  - {kind: linear, out_features: 10}
"""


def _spec_files(tmp_path: Path) -> tuple[str, str]:
    """The spec, and the same spec edited by hand: input 96×80 and scaling.width 0.5."""
    plain = tmp_path / "plain.yaml"
    plain.write_text(NETWORK)
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        NETWORK.replace("height: 64, width: 64", "height: 96, width: 80").replace(
            "layers:", "scaling: {width: 0.5}\nlayers:"
        )
    )
    return str(plain), str(edited)


SHAPE = ("--resolution", "96x80", "--width-mult", "0.5")


def _shape_runs(spec: str, profile: str) -> list[list[str]]:
    """Every command and mode that reads a spec, with the symbol t bound or solved for."""
    t = ("--set", "t=6")
    return [
        ["table", spec, *t, "-f", "json"],
        ["table", spec, *t, "--by", "stage"],
        ["formula", spec, "--metric", "macs"],
        ["formula", spec, "--training"],
        ["formula", spec, "--at", "t=6", "--metric", "macs", "-f", "json"],
        ["formula", spec, "--diff", "t", "--metric", "flops"],
        ["compare", spec, spec, *t, "-f", "json"],
        ["solve", spec, "--for", "t", "--budget", "macs<=1e7", "-f", "json"],
        ["explain", spec, "--vs", "thop", *t, "-f", "json"],
        ["sweep", spec, "--vary", "t=2,4,6", "-f", "json"],
        ["memory", spec, *t, "-f", "json"],
        ["deploy", spec, "--runtime", "tinyengine", *t, "-f", "json"],
        ["roofline", spec, "--hardware", "mobile_soc", *t, "-f", "json"],
        ["latency", spec, "--hardware", profile, *t, "-f", "json"],
        ["train", spec, *t, "-f", "json"],
        ["train", spec, *t, "--vs", "torch", "-f", "json"],
        ["train", spec, *t, "--solve", "batch", "--memory", "64MiB", "-f", "json"],
    ]


def test_resolution_and_width_mult_reach_every_command(tmp_path, profile):
    plain, edited = _spec_files(tmp_path)
    runs = _shape_runs(plain, profile)
    # export needs torch and onnx (tests/test_export.py)
    reading = {c.name for c in COMMANDS if "spec" in c.shared or c.name == "compare"} - {"space", "export"}
    assert {r[0] for r in runs} == reading
    for argv in runs:
        code, with_options, err = cli(*argv, *SHAPE)
        assert code == 0, (argv, err)
        hand = [edited if a == plain else a for a in argv]
        code, by_hand, err = cli(*hand)
        assert code == 0, (hand, err)
        assert with_options.replace(plain, "SPEC") == by_hand.replace(edited, "SPEC"), argv
        code, unchanged, _ = cli(*argv)
        assert unchanged != with_options, argv  # the options changed the output


def test_train_solve_batch_honours_resolution(tmp_path):
    """#24 item 9: ``train --solve batch`` ignored --resolution. At 32×32 instead of 64×64 every activation
    is a quarter, so more samples fit: the batch found equals the one found on the edited YAML."""
    plain, _ = _spec_files(tmp_path)
    small = tmp_path / "small.yaml"
    small.write_text(NETWORK.replace("height: 64, width: 64", "height: 32, width: 32"))
    args = ("--set", "t=6", "--solve", "batch", "--memory", "64MiB", "-f", "json")
    at64 = json.loads(cli("train", plain, *args)[1])["solve"]["batch"]
    at32 = json.loads(cli("train", plain, *args, "--resolution", "32")[1])["solve"]["batch"]
    assert at32 == json.loads(cli("train", str(small), *args)[1])["solve"]["batch"]
    assert at32 > 3 * at64


# ---- 5. the help lists every registered kind ---------------------------------------------------------


def test_help_lists_every_registered_kind():
    from costmodel.engine.kinds import KINDS

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(out.getvalue().split())
    missing = [k for k in KINDS if k not in text]
    assert len(KINDS) >= 22 and missing == []


# ---- 6. the console script itself (the rest of this file runs main() in this process) ---------------


def test_the_console_script_prints_what_main_prints():
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "costmodel", "table", SEED, "-f", "json", "--resolution", "16"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == cli("table", SEED, "-f", "json", "--resolution", "16")[1]
    proc = subprocess.run(
        [sys.executable, "-m", "costmodel", "table", SEED, "--set", "x"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "costmodel: error: --set 'x': expected NAME=INTEGER, e.g. --set C=16\n"
