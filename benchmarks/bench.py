"""costmodel's benchmarks, each comparison measured side by side in one run (not part of the tests).

    python benchmarks/bench.py --peer-python /path/to/venv-with-torchvision-and-peers/bin/python

1. cold: `costmodel table specs/networks/efficientnet_b7.yaml --format json` as a whole process, against
   FlopCounterMode, fvcore, ptflops, thop and torchinfo counting torchvision's efficientnet_b7 at 600×600
   (each a whole process: import, build, count); wall and CPU time (medians of --repeats), peak RSS.
   Targets (issue 10): ≥ 40× faster than FlopCounterMode, ≥ 20× than the fastest peer.
1b. long: `costmodel table --format json` of a 10,000-layer spec (benchmarks/sweep_scale.py's), a whole
   process; target < 1 s.
2. warm: in-process analysis of EfficientNet-B7 (spec already loaded), median per call.
3. sweep: params and MACs of one MBConv over 10⁷ design points, against a per-point loop over the engine
   and against FlopCounterMode per point (torch in this interpreter; skipped without it).
4. symbolic: EfficientNet-B7 with a symbolic resolution R: analysis and the closed form of its MACs.

Peers whose packages are missing from --peer-python are skipped with a note. Prints a Markdown report.
``--sections cold,long`` runs only those sections, ``--peers flopcountermode`` only that peer. On a loaded
machine compare the CPU columns (user + system seconds of each process) as well as the wall ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
B7 = ROOT / "specs" / "networks" / "efficientnet_b7.yaml"
PEERS = ["flopcountermode", "fvcore", "ptflops", "thop", "torchinfo"]
PEER_MODULE = {
    "flopcountermode": "torch",
    "fvcore": "fvcore",
    "ptflops": "ptflops",
    "thop": "thop",
    "torchinfo": "torchinfo",
}


def run_process(cmd: list[str]) -> tuple[float, int, str, float]:
    """Wall seconds, peak RSS (KiB), stdout and CPU seconds (user + system) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{cmd} exited with {status}")
    return wall, usage.ru_maxrss, out.decode(), usage.ru_utime + usage.ru_stime


CPU: dict[str, float] = {}  # the median CPU seconds of each command last timed, by its text


def median_run(cmd: list[str], repeats: int) -> tuple[float, int, str]:
    runs = [run_process(cmd) for _ in range(repeats)]
    CPU[" ".join(cmd)] = statistics.median(r[3] for r in runs)
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def load_text() -> str:
    """The machine's load average, for the figures beside it."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}, torchvision"], capture_output=True).returncode == 0


def cold(costmodel_cmd: list[str], peer_python: str | None, repeats: int, peers: list[str]) -> list[str]:
    import json

    lines = ["## 1. Cold start: the whole network, as a whole process", "", f"Measured at {load_text()}.", ""]
    own = [*costmodel_cmd, "table", str(B7), "--format", "json"]
    t, rss, out = median_run(own, repeats)
    macs = json.loads(out)["totals"]["macs"]
    rows = [("costmodel (spec → JSON table)", t, CPU[" ".join(own)], rss, macs)]
    notes = []
    for peer in peers:
        if peer_python is None or not has_module(peer_python, PEER_MODULE[peer]):
            notes.append(f"- {peer}: skipped (not installed in the peer interpreter)")
            continue
        cmd = [peer_python, str(ROOT / "benchmarks" / "peer_count.py"), peer, "600"]
        pt, prss, pout = median_run(cmd, repeats)
        rows.append((f"{peer} (torchvision efficientnet_b7 @600)", pt, CPU[" ".join(cmd)], prss, int(pout.split()[-1])))
    lines += [
        "| process | wall (median) | CPU (median) | peak RSS | figure it reports | costmodel faster by (wall, CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for name, wall, cpu, mem, figure in rows:
        ratio = "" if name.startswith("costmodel") else f"{wall / t:.1f}×, {cpu / rows[0][2]:.1f}×"
        lines.append(f"| {name} | {wall:.3f} s | {cpu:.3f} s | {mem / 1024:.0f} MiB | {figure:,} | {ratio} |")
    flop = [r for r in rows[1:] if r[0].startswith("flopcountermode")]
    if flop:
        lines += ["", f"Against FlopCounterMode: **{flop[0][1] / t:.1f}×** wall (target ≥ 40×)."]
    fastest_peer = min((r[1] for r in rows[1:]), default=None)
    if fastest_peer:
        lines += ["", f"Against the fastest peer: **{fastest_peer / t:.1f}×** (target ≥ 20×)."]
    return lines + [""] + notes


def long_table(costmodel_cmd: list[str], repeats: int) -> list[str]:
    """A 10,000-layer spec (benchmarks/sweep_scale.py's), ``table --format json``, as a whole process."""
    import tempfile

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from sweep_scale import long_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "long.yaml")
        path.write_text(long_spec(10_000, False))
        cmd = [*costmodel_cmd, "table", str(path), "--format", "json"]
        t, rss, out = median_run(cmd, repeats)
    rows = len(out) and out.count('"block":')
    return [
        "## 1b. A 10,000-layer spec, `table --format json`, as a whole process",
        "",
        f"Measured at {load_text()}.",
        "",
        "| what | wall (median) | CPU (median) | peak RSS | rows |",
        "|---|---|---|---|---|",
        f"| 10,000 MBConv layers → JSON | {t:.3f} s (target < 1 s) | {CPU[' '.join(cmd)]:.3f} s | {rss / 1024:.0f} MiB "
        f"| {rows:,} |",
    ]


def warm() -> list[str]:
    import costmodel

    spec = costmodel.load(B7)
    for _ in range(5):
        costmodel.analyze(spec)
    times = []
    for _ in range(50):
        start = time.perf_counter()
        costmodel.analyze(spec)
        times.append(time.perf_counter() - start)
    load_times = []
    for _ in range(20):
        start = time.perf_counter()
        costmodel.analyze(costmodel.load(B7))
        load_times.append(time.perf_counter() - start)
    med = statistics.median(times)
    return [
        "## 2. Warm analysis of EfficientNet-B7 (in process)",
        "",
        "| what | median per call |",
        "|---|---|",
        f"| `analyze(spec)` — 815 op rows, totals | {med * 1000:.2f} ms (target < 5 ms) |",
        f"| `analyze(load(path))` — YAML, validation and analysis | {statistics.median(load_times) * 1000:.2f} ms |",
    ]


def sweep_bench() -> list[str]:
    import numpy as np

    import costmodel

    spec = ROOT / "specs" / "symbolic_mbconv.yaml"
    axes = dict(t=range(2, 12), k=[3, 5, 7, 9, 11], C=range(8, 808, 8), H=range(8, 808, 8), W=range(7, 147, 7))
    points = 10 * 5 * 100 * 100 * 20
    start = time.perf_counter()
    result = costmodel.sweep(spec, metrics=("params", "macs"), **axes)
    sweep_s = time.perf_counter() - start
    assert len(result) == points
    rate = points / sweep_s
    # per-point loop over the engine: the same metrics, one analysis per point
    rng = np.random.default_rng(0)
    sample = [{n: int(rng.choice(list(v))) for n, v in axes.items()} for _ in range(300)]
    start = time.perf_counter()
    for p in sample:
        costmodel.analyze(spec, **p).totals["macs"]
    loop_rate = len(sample) / (time.perf_counter() - start)
    lines = [
        "## 3. Sweep throughput: one MBConv's params and MACs",
        "",
        "| method | design points / s | costmodel sweep is faster by |",
        "|---|---|---|",
        f"| `costmodel.sweep` over {points:,} points (compile once, exact int64) | {rate:,.0f} (target ≥ 10⁷) | |",
        f"| per-point loop over `costmodel.analyze` (300 points) | {loop_rate:,.0f} | {rate / loop_rate:,.0f}× |",
    ]
    try:
        from costmodel.torchref import measure
    except ImportError:
        lines.append("| FlopCounterMode per point | skipped: no torch in this interpreter | |")
    else:
        import torch

        torch.set_num_threads(1)
        small = [dict(p, C=min(p["C"], 64), H=min(p["H"], 64), W=min(p["W"], 64)) for p in sample[:20]]
        start = time.perf_counter()
        for p in small:
            measure(costmodel.load(spec, **p))
        torch_rate = len(small) / (time.perf_counter() - start)
        lines.append(
            f"| FlopCounterMode per point (build + forward, sizes capped at 64, 1 thread) | {torch_rate:,.1f} | "
            f"{rate / torch_rate:,.0f}× |"
        )
    return lines


def symbolic() -> list[str]:
    from costmodel import analyze
    from costmodel.spec import loader

    data, src = loader.parse_yaml(B7.read_text(), str(B7))
    data["input"]["height"] = data["input"]["width"] = "R"
    start = time.perf_counter()
    report = analyze(loader.validate(data, src))
    expr = report.formula("macs")
    took = time.perf_counter() - start
    from costmodel.engine.symbols import symbol

    at600 = int(expr.xreplace({symbol("R"): 600}))
    return [
        "## 4. Symbolic network: EfficientNet-B7 with resolution R",
        "",
        f"Analysis and the factored closed form of its MACs: **{took:.2f} s** (target < 2 s); "
        f"at R = 600 it gives {at600:,}.",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-python", help="interpreter with torch, torchvision and the peers")
    ap.add_argument("--costmodel", default=None, help="command that runs costmodel (default: this python -m costmodel)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sections", default="cold,long,warm,sweep,symbolic", help="which sections, comma-separated")
    ap.add_argument("--peers", default=",".join(PEERS), help="which peers, comma-separated")
    args = ap.parse_args()
    costmodel_cmd = args.costmodel.split() if args.costmodel else [sys.executable, "-m", "costmodel"]
    peers = [p for p in args.peers.split(",") if p in PEERS]
    sections = {
        "cold": lambda: cold(costmodel_cmd, args.peer_python, args.repeats, peers),
        "long": lambda: long_table(costmodel_cmd, args.repeats),
        "warm": warm,
        "sweep": sweep_bench,
        "symbolic": symbolic,
    }
    print(f"# Benchmarks ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})\n")
    for name in args.sections.split(","):
        print("\n".join(sections[name]()) + "\n")


if __name__ == "__main__":
    main()
