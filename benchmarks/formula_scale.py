"""Formula scale (issue 10): ``costmodel formula`` on stacks of N identical symbolic MBConv blocks, each a
whole process; prints a Markdown table.

    PYTHONPATH=. python benchmarks/formula_scale.py [--baseline PATH] [--sizes 1000,2000,5000,10000]

Each row is one spec of N layers ``{kind: mbconv, out_channels: C, expansion: t, kernel: k}`` on a
C×H×H input (benchmarks/sweep_scale.py's long spec); the time should grow linearly with N (target:
10,000 layers under 2 s). ``--baseline PATH`` runs another checkout of costmodel (e.g. the main
branch) on the same specs in the same run, for a ratio that the machine's load affects less. The last
row is an ordinary network: EfficientNet-B7 with a symbolic resolution R.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_scale import long_spec  # noqa: E402


def run(code: Path, args: list[str]) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds (user + system) and peak RSS of this child (MiB, from wait4), exit status
    and stdout of ``python -m costmodel ARGS`` with ``code`` first on the path (run from a neutral
    directory). Under load the CPU time is the steadier figure."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "costmodel", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, help="another costmodel checkout to run side by side")
    p.add_argument("--sizes", default="1000,2000,5000,10000")
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    codes = [("this", ROOT)] + ([("baseline", a.baseline.resolve())] if a.baseline else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for n in sizes:
            path = Path(tmp, f"stack{n}.yaml")
            path.write_text(long_spec(n, True))
            specs.append((f"{n:,} identical symbolic MBConv layers", path))
        b7 = yaml.safe_load((ROOT / "specs" / "networks" / "efficientnet_b7.yaml").read_text())
        b7["input"]["height"] = b7["input"]["width"] = "R"
        path = Path(tmp, "b7.yaml")
        path.write_text(yaml.safe_dump(b7, sort_keys=False))
        specs.append(("efficientnet_b7, resolution R", path))
        for what, path in specs:
            cells = [what]
            outs = []
            for _, code in codes:
                wall, cpu, rss, status, out = run(code, ["formula", str(path)])
                cells.append(
                    f"{wall:.2f} s wall, {cpu:.2f} s CPU, {rss:.0f} MiB" + ("" if status == 0 else f" (exit {status})")
                )
                outs.append(out)
            if len(outs) == 2:
                cells.append("same" if outs[0] == outs[1] else "differs")
            rows.append(cells)
    head = ["what", *(f"`formula` ({name})" for name, _ in codes)] + (["output"] if len(codes) == 2 else [])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
