"""Sweep and long-spec scale benchmarks (issue 10), each a whole process; prints a Markdown table.

    PYTHONPATH=. python benchmarks/sweep_scale.py [--quick]

1. a 10⁸-point sweep (t = 1…10⁸ of specs/symbolic_mbconv.yaml), streamed as CSV to /dev/null: wall
   time and peak RSS (target < 500 MB);
2. a 10⁷-point CSV sweep to /dev/null: wall time (target < 10 s on 2 cores);
3. the default table format at 10⁶ points is refused in well under a second (tables are built whole);
4. a 10,000-layer numeric spec, ``table --format json``; a 10,000-layer symbolic spec, ``formula``;
5. cold start: ``table specs/networks/efficientnet_b7.yaml --format json``.

``--quick`` divides the sweep sizes by 100 (a smoke run). Figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYM = ROOT / "specs" / "symbolic_mbconv.yaml"


def run(args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB; the largest of the children so far, so rows after a big one can only
    show at least it), exit status."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        code = subprocess.run([sys.executable, "-m", "costmodel", *args], stdout=null, stderr=null, env=env).returncode
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(rss, before) / 1024, code


def long_spec(n: int, symbolic: bool) -> str:
    c = "C" if symbolic else 16
    head = f"input: {{channels: {c}, height: {'H' if symbolic else 32}, width: {'H' if symbolic else 32}}}"
    t, k = ("t", "k") if symbolic else (6, 3)
    layer = f"  - {{kind: mbconv, out_channels: {c}, expansion: {t}, kernel: {k}}}"
    return "\n".join(["name: long", head, "layers:", *[layer] * n]) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    scale = 100 if a.quick else 1
    fixed = ["--set", "C=16,k=3,H=32,W=32"]
    rows = []
    n8, n7 = 10**8 // scale, 10**7 // scale
    w, r, c = run(["sweep", str(SYM), "--vary", f"t=1:{n8}", *fixed, "--format", "csv"])
    rows.append((f"sweep, {n8:,} points, CSV to /dev/null", w, r, c, "RSS < 500 MiB"))
    w, r, c = run(["sweep", str(SYM), "--vary", f"t=1:{n7}", *fixed, "--format", "csv"])
    rows.append((f"sweep, {n7:,} points, CSV to /dev/null", w, r, c, "< 10 s"))
    w, r, c = run(["sweep", str(SYM), "--vary", f"t=1:{n7}", *fixed, "--format", "jsonl"])
    rows.append((f"sweep, {n7:,} points, JSON lines to /dev/null", w, r, c, ""))
    w, r, c = run(["sweep", str(SYM), "--vary", "t=1:1000000", *fixed])
    rows.append(("sweep, 10⁶ points, default table format (refused: exit 2)", w, r, c, "refused fast"))
    with tempfile.TemporaryDirectory() as tmp:
        num, sym = Path(tmp, "n.yaml"), Path(tmp, "s.yaml")
        num.write_text(long_spec(10_000, False))
        sym.write_text(long_spec(10_000, True))
        w, r, c = run(["table", str(num), "--format", "json"])
        rows.append(("10,000-layer spec, table --format json", w, r, c, "< 1 s"))
        w, r, c = run(["formula", str(sym)])
        rows.append(("10,000-layer symbolic spec, formula", w, r, c, "< 2 s"))
    w, r, c = run(["table", str(ROOT / "specs" / "networks" / "efficientnet_b7.yaml"), "--format", "json"])
    rows.append(("cold: table efficientnet_b7 --format json", w, r, c, "≥ 40× FlopCounterMode (bench.py)"))
    print("| what | wall | peak RSS | exit | target |")
    print("|---|---|---|---|---|")
    for what, wall, rss, code, target in rows:
        print(f"| {what} | {wall:.2f} s | {rss:.0f} MiB | {code} | {target} |")


if __name__ == "__main__":
    main()
