"""Search spaces: every answer on small spaces equals brute force over costmodel.analyze of each
concrete sub-network (the independent check), sampling is uniform (chi-square), Dask agrees."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import pytest

import costmodel
from costmodel.analysis.memory import peak_activations
from costmodel.cli import main
from costmodel.spec.space import LayerPick, SubNet, load_space

SPACES = Path(__file__).resolve().parent.parent / "specs" / "spaces"

TINY = """\
name: tiny space
input: {channels: 3, resolution: {choice: [16, 24]}}
defaults: {activation: relu6}
scaling: {width: {choice: [0.5, 1.0]}, divisor: 8}
layers:
  - {kind: conv, out_channels: 16, kernel: 3, stride: 2}
  - kind: mbconv
    out_channels: {choice: [8, 16]}
    expansion: {choice: [3, 6]}
    kernel: {choice: [3, 5]}
    stride: 2
    repeat: {choice: [1, 2]}
  - kind: mbconv
    out_channels: 24
    expansion: 4
    kernel: 7
    se: {choice: [null, 0.25]}
    repeat: {choice: [1, 2]}
  - {kind: conv, out_ratio: 2, kernel: 1}
  - {kind: pool}
  - {kind: linear, out_features: 10}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("space") / "tiny.yaml"
    p.write_text(TINY)
    return p


def every_subnet(sp):  # independent of the analysis: the definition of the space, spelled out
    per_layer = []
    for ls in sp.layers:
        picks = []
        for o in ls.outs:
            if not ls.expanded:
                picks.append(LayerPick(o))
                continue
            for d in ls.depths:
                for blocks in itertools.product(range(len(ls.options)), repeat=d):
                    picks.append(LayerPick(o, blocks))
        per_layer.append(picks)
    for r in sp.resolutions:
        for w in sp.widths or (None,):
            for picks in itertools.product(*per_layer):
                yield SubNet(r, w, picks)


@pytest.fixture(scope="module")
def brute(tiny: Path):
    sp = load_space(tiny)
    rows = []
    for sub in every_subnet(sp):
        report = costmodel.analyze(sp.concrete(sub))
        t = report.totals
        rows.append((sub, t["params"], t["macs"], t["flops"], peak_activations(report).bytes))
    return sp, rows


def test_size_and_stats_equal_brute_force(tiny: Path, brute) -> None:
    sp, rows = brute
    # 2 resolutions × 2 widths × layer 1: 2 outs × (4 + 4²) × layer 2: (2 + 2²) = 960
    assert len(rows) == 2 * 2 * (2 * (4 + 16)) * (2 + 4) == 960
    s = costmodel.space(tiny)
    assert s.size == 960
    st = s.stats()
    for i, m in enumerate(("params", "macs", "flops"), 1):
        vals = [r[i] for r in rows]
        mean = Fraction(sum(vals), len(vals))
        var = Fraction(sum(v * v for v in vals), len(vals)) - mean**2
        got = st.metrics[m]
        assert (got.min, got.max, got.mean, got.variance) == (min(vals), max(vals), mean, var)
        # the arg-min / arg-max sub-networks have those costs when analysed on their own
        assert costmodel.analyze(sp.concrete(got.argmin)).totals[m] == min(vals)
        assert costmodel.analyze(sp.concrete(got.argmax)).totals[m] == max(vals)
    peaks = [r[4] for r in rows]
    assert st.peak[:2] == (min(peaks), max(peaks))


@pytest.mark.parametrize(
    "budgets",
    [["macs<=200000"], ["macs<=300000", "params<=9000"], ["peak_activation_bytes<=20000"],
     ["flops<500000", "peak_activation_bytes<=30000"], ["macs<=1"]],
)  # fmt: skip
def test_count_equals_brute_force(tiny: Path, brute, budgets: list[str]) -> None:
    _, rows = brute
    import re

    idx = {"params": 1, "macs": 2, "flops": 3, "peak_activation_bytes": 4}
    caps = [re.fullmatch(r"(\w+)(<=|<)(\d+)", b).groups() for b in budgets]

    def ok(r):
        return all(r[idx[m]] <= int(v) if op == "<=" else r[idx[m]] < int(v) for m, op, v in caps)

    want = sum(1 for r in rows if ok(r))
    c = costmodel.space(tiny).count(budgets)
    assert (c.lower, c.upper, c.exact) == (want, want, want)
    assert c.method.startswith("exact")


def test_bracket_contains_the_true_count(tiny: Path, brute, monkeypatch: pytest.MonkeyPatch) -> None:
    from costmodel.analysis import space as A

    _, rows = brute
    monkeypatch.setattr(A, "EXACT_WORK", 3)  # force the bucket bracket
    for cap in (150_000, 300_000, 600_000):
        want = sum(1 for r in rows if r[2] <= cap)
        c = costmodel.space(tiny).count([f"macs<={cap}"], buckets=64)
        assert c.method.startswith("bracket")
        assert c.lower <= want <= c.upper
        assert c.lower < c.upper  # a coarse grid really is a bracket here
    c = costmodel.space(tiny).count(["macs<=300000"], buckets=1 << 20)
    want = sum(1 for r in rows if r[2] <= 300_000)
    assert c.lower <= want <= c.upper and c.upper - c.lower <= want // 20


def test_pareto_equals_brute_force(tiny: Path, brute) -> None:
    _, rows = brute
    for a, b, sa, sb, ia, ib in (("macs", "max:params", 1, -1, 2, 1), ("flops", "params", 1, 1, 3, 1)):
        pts = {(r[ia] * sa, r[ib] * sb) for r in rows}
        front = sorted(p for p in pts if not any(q != p and q[0] <= p[0] and q[1] <= p[1] for q in pts))
        got = costmodel.space(tiny).pareto(a, b)
        assert [(x * sa, y * sb) for x, y, _ in got.points] == front
        sp = load_space(tiny)
        for x, y, sub in got.points:
            t = costmodel.analyze(sp.concrete(sub)).totals
            assert (t[a.removeprefix("max:")], t[b.removeprefix("max:")]) == (x, y)


def test_sample_meets_budgets_and_is_uniform(tiny: Path, brute) -> None:
    _, rows = brute
    s = costmodel.space(tiny)
    keep = [r for r in rows if r[2] <= 300_000]
    subs = s.sample(len(keep) * 20, seed=1, budgets=["macs<=300000"])
    counts: dict[SubNet, int] = {}
    for sub in subs:
        counts[sub] = counts.get(sub, 0) + 1
    assert set(counts) <= {r[0] for r in keep}
    k = len(keep)
    expected = len(subs) / k
    chi2 = sum((counts.get(r[0], 0) - expected) ** 2 / expected for r in keep)
    # chi-square critical value at p = 0.001 for k − 1 degrees of freedom (Wilson–Hilferty approximation,
    # written out here rather than taken from scipy)
    df = k - 1
    z = 3.0902  # the standard normal's 0.999 quantile
    crit = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    assert chi2 < crit
    assert s.sample(5, seed=7) == s.sample(5, seed=7)


def test_enumeration_chunks_agree_with_exact(tiny: Path, brute) -> None:
    from costmodel.analysis import space as A

    _, rows = brute
    sp = load_space(tiny)
    t = A.Tables(sp)
    ct = A.compile_tables(t)
    got = A.evaluate_range(ct, 0, sp.size)
    assert sorted(map(tuple, got.tolist())) == sorted((r[1], r[2], r[3], r[4]) for r in rows)
    part = A.reduce_chunk(ct, 100, 900, [(1, 300_000)], [0, 10**9])
    assert part["count"] == sum(1 for row in got[100:900] if row[1] <= 300_000)


@pytest.mark.slow
def test_dask_local_cluster_agrees(tiny: Path, brute) -> None:
    pytest.importorskip("dask.distributed")
    _, rows = brute
    s = costmodel.space(tiny)
    e = s.enumerate(budgets=["macs<=300000"], workers=2, chunk=500)
    assert e.workers == 2 and e.chunks == 2
    assert e.count == sum(1 for r in rows if r[2] <= 300_000)
    assert e.min["macs"] == min(r[2] for r in rows) and e.max["params"] == max(r[1] for r in rows)
    assert e.mean("macs") == Fraction(sum(r[2] for r in rows), len(rows))
    assert sum(e.histogram) == len(rows)


def test_enumerate_without_dask_exits_2(tiny: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    assert main(["space", str(tiny), "--enumerate"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "pip install" in err and err.count("\n") == 1


def test_cli_json(tiny: Path, brute, capsys: pytest.CaptureFixture[str]) -> None:
    _, rows = brute
    assert main(["space", str(tiny), "--format", "json", "--budget", "macs<=300000"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["size"] == 960
    assert data["macs"]["min"] == min(r[2] for r in rows) and data["params"]["max"] == max(r[1] for r in rows)
    assert set(data["flops"]) >= {"min", "max", "mean", "std"}
    assert data["count"] == {"exact": sum(1 for r in rows if r[2] <= 300_000)}


def test_cli_sample_out_and_table(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.jsonl"
    assert main(["space", str(tiny), "--sample", "4", "--seed", "3", "--out", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 4
    sp = load_space(tiny)
    for rec in lines:
        t = costmodel.analyze(sp.concrete(sp.from_json(rec["choices"]))).totals
        assert rec["costs"]["macs"] == t["macs"] and rec["costs"]["params"] == t["params"]
    d = tmp_path / "specs"
    d.mkdir()
    assert main(["space", str(tiny), "--sample", "2", "--seed", "3", "--out", str(d)]) == 0
    files = sorted(d.glob("*.yaml"))
    assert len(files) == 2
    assert costmodel.analyze(files[0]).totals["macs"] == lines[0]["costs"]["macs"]
    capsys.readouterr()
    assert main(["space", str(tiny), "--table", "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].split(",")[:3] == ["layer", "instance", "width"]


@pytest.mark.parametrize(
    "text, where",
    [
        ("kernel: {choice: [3, 4]}", "layers[0].kernel.choice[1]: choice value 4 is not an odd kernel size"),
        ("kernel: {choice: []}", "layers[0].kernel.choice: a choice is a non-empty list"),
        ("stride: {choice: [1, 2]}", "layers[0].stride: cannot be a choice"),
        ("expansion: {choice: [3, true]}", "layers[0].expansion.choice[1]: choice value True is not a positive"),
        ("kernel: {choice: [3, 3]}", "layers[0].kernel.choice: a choice lists a value twice"),
        ("kernel: {choice: [3], other: 1}", "layers[0].kernel.other: unknown key"),
    ],
)
def test_bad_spaces_exit_2_with_file_line_field(tmp_path: Path, capsys, text: str, where: str) -> None:
    p = tmp_path / "bad.yaml"
    extra = "" if text.startswith("expansion") else "    expansion: 4\n"
    p.write_text(f"input: {{channels: 3, resolution: 16}}\nlayers:\n  - kind: mbconv\n    out_channels: 8\n"
                 f"    {text}\n{extra}")  # fmt: skip
    assert main(["space", str(p)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"costmodel: error: {p}:5: {where}"), err


def test_ofa_space_size_and_extremes() -> None:
    s = costmodel.space(SPACES / "ofa_mobilenetv3.yaml")
    # 25 resolutions × (Σ_{d=2..4} 9^d)^5 stages; OFA's paper: "about 2 × 10^19" sub-networks per resolution
    assert s.size == 25 * (81 + 729 + 6561) ** 5
    st = s.stats()
    for which in ("argmin", "argmax"):
        sub = getattr(st.metrics["macs"], which)
        assert costmodel.analyze(s.spec.concrete(sub)).totals["macs"] == getattr(st.metrics["macs"], which[3:])


# ------------------------------------------------------------------ bounded work (issue 24)


def _one_block_space(tmp_path: Path, fields: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(f"input: {{channels: 8, resolution: 8}}\nlayers:\n  - {{kind: mbconv, out_channels: 8, {fields}}}\n")
    return p


def test_block_options_are_counted_before_they_are_listed(tmp_path: Path, capsys) -> None:
    import time

    odd = list(range(1, 128, 2))  # 64 odd kernels
    ints = list(range(1, 65))
    # 64 × 64 × 64 = 262,144 options on one block (as many sub-networks): refused at load, with the bound
    three = _one_block_space(tmp_path, f"kernel: {{choice: {odd}}}, expansion: {{choice: {ints}}}, "
                                       f"se_channels: {{choice: {ints}}}")  # fmt: skip
    start = time.perf_counter()
    assert main(["space", str(three)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "262,144 = 64 × 64 × 64 block options" in err and "4,096" in err
    # 64⁵ = 1,073,741,824 options: the product is never built (it would need tens of GB)
    five = _one_block_space(tmp_path, f"kernel: {{choice: {odd}}}, expansion: {{choice: {ints}}}, "
                                      f"se_channels: {{choice: {ints}}}, dilation: {{choice: {ints}}}, "
                                      f"group_size: {{choice: {ints}}}", "five.yaml")  # fmt: skip
    assert main(["space", str(five)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "1,073,741,824" in err
    assert time.perf_counter() - start < 20
    # 64 × 64 = 4,096 is allowed: 4,096 sub-networks, each block analysed once
    ok = _one_block_space(tmp_path, f"kernel: {{choice: {odd[:16]}}}, expansion: {{choice: {ints}}}, "
                                    "se_channels: {choice: [1, 2, 3, 4]}", "ok.yaml")  # fmt: skip
    assert costmodel.space(ok).size == 16 * 64 * 4


def test_every_value_of_every_field_is_validated_at_load(tmp_path: Path, capsys) -> None:
    # the second se_channels value passes 2³¹ − 1: found although no single option pairs it with kernel 5
    p = _one_block_space(tmp_path, "kernel: {choice: [3, 5, 7]}, expansion: 4, se_channels: {choice: [2, 3000000000]}")
    assert main(["space", str(p)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "se_channels" in err, err


def test_depth_choices_and_table_analyses_are_bounded(tmp_path: Path, capsys, monkeypatch) -> None:
    from costmodel.analysis import space as analysis

    p = _one_block_space(tmp_path, "kernel: {choice: [3, 5]}, expansion: 4, repeat: {choice: [1, 1000000000]}")
    assert main(["space", str(p)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "repeat.choice[1]" in err and "10,000" in err
    # tiny's tables hold more than 10 blocks: refused before the step that would pass the bound
    monkeypatch.setattr(analysis, "MAX_UNITS", 10)
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY)
    assert main(["space", str(p)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "more than 10 engine analyses" in err


def test_sample_is_bounded(tiny: Path, capsys, monkeypatch) -> None:
    from costmodel.analysis import space as analysis
    from costmodel.errors import UsageError

    assert main(["space", str(tiny), "--sample", str(10**12)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "1,000" in err
    s = costmodel.space(tiny)
    with pytest.raises(UsageError, match="100,000"):
        s.sample(10**12)
    with pytest.raises(UsageError, match="integer"):
        s.sample(True)
    # nothing meets macs <= 1: refused once the pilot draws found none (not after 10⁷ draws)
    monkeypatch.setattr(analysis, "PILOT", 10)
    with pytest.raises(UsageError, match="no sub-network meets"):
        s.sample(3, budgets=["macs<=1"])
    # the expected draws n × size / count pass MAX_DRAWS: refused up front
    monkeypatch.setattr(analysis, "MAX_DRAWS", 100)
    with pytest.raises(UsageError, match="more than 100 draws"):
        s.sample(1_000, budgets=["macs<=300000"])
    # a deadline stops what the count allows but the clock does not
    monkeypatch.setattr(analysis, "MAX_DRAWS", 10**7)
    monkeypatch.setattr(analysis, "SAMPLE_SECONDS", 0.0)
    with pytest.raises(UsageError, match="sampling stopped"):
        s.sample(5_000, budgets=["macs<=300000"])


def test_pareto_work_is_refused_before_it_is_built(tiny: Path, capsys, monkeypatch) -> None:
    from costmodel.analysis import space as analysis

    assert main(["space", str(tiny), "--pareto", "macs,max:macs"]) == 0  # small: fine
    capsys.readouterr()
    monkeypatch.setattr(analysis, "PARETO_WORK", 50)
    assert main(["space", str(tiny), "--pareto", "macs,max:macs"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "more than 50 combinations" in err


@pytest.mark.slow
def test_pareto_of_a_metric_against_itself_is_refused_fast_and_small() -> None:
    import resource
    import subprocess
    import sys
    import time

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "costmodel", "space", str(SPACES / "mcunet_tinynas.yaml"),
                           "--pareto", "macs,max:macs"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "" and "combinations" in proc.stderr
    assert time.perf_counter() - start < 60
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2 * 2**20  # KiB: under 2 GB
