"""Snapshot every CLI output on the shipped specs, to prove a refactor leaves all figures byte-identical.

    python benchmarks/golden.py OUT_DIR            # write one file per (command, spec)
    python benchmarks/golden.py OUT_DIR --quick    # a representative subset (seconds, not minutes)
    diff -r BEFORE_DIR AFTER_DIR                   # nothing printed = identical

Each case runs ``costmodel.cli.main`` in this process with stdout/stderr captured; the file holds the exit
status, stdout and stderr. The cases cover table (text, by stage, json, csv, conventions, --resolution,
--width-mult), formula, explain, memory, roofline, train, compare, sweep, solve and space.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cases(quick: bool) -> list[tuple[str, list[str]]]:
    specs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "specs").rglob("*.yaml") if "_tools" not in p.parts)
    nets = [s for s in specs if "/spaces/" not in s and not s.startswith("specs/symbolic")]
    spaces = [s for s in specs if "/spaces/" in s]
    if quick:
        keep = (
            "seed_",
            "mobilenet_v2",
            "efficientnet_b0.yaml",
            "mixnet_s",
            "ghostnetv2_100",
            "mobilenetv4_hybrid_medium",
            "lcnetv2_small",
            "repghostnet_100",
            "mobilenetv5_base",
            "efficientnet_cc_b0_4e",
            "tf_efficientnet_b0.yaml",
        )
        nets = [s for s in nets if any(k in s for k in keep)]
    out: list[tuple[str, list[str]]] = []
    for s in nets:
        out += [
            ("table", ["table", s]),
            ("stage", ["table", s, "--by", "stage"]),
            ("json", ["table", s, "-f", "json"]),
            ("csv", ["table", s, "-f", "csv", "--depth", "3"]),
            ("r193", ["table", s, "--resolution", "193", "-f", "json"]),
            ("thop", ["table", s, "--convention", "thop", "-f", "json"]),
            ("fvcore", ["table", s, "--convention", "fvcore", "-f", "json"]),
            ("ptflops", ["table", s, "--convention", "ptflops", "-f", "json"]),
            ("torchinfo", ["table", s, "--convention", "torchinfo", "-f", "json"]),
            ("explain", ["explain", s, "--vs", "thop"]),
            ("memory", ["memory", s, "--fusion", "block"]),
            ("roofline", ["roofline", s, "--hardware", "mobile_soc"]),
            ("train", ["train", s, "-f", "json"]),
        ]
        if "/networks/" in s:
            out += [
                ("w05", ["table", s, "--width-mult", "0.5", "-f", "json"]),
                ("d12", ["table", s, "--depth-mult", "1.2", "--resolution", "160x128", "-f", "json"]),
            ]
    out += [
        ("formula", ["formula", "specs/symbolic_mbconv.yaml"]),
        ("formula_macs", ["formula", "specs/symbolic_mbconv.yaml", "--metric", "macs", "--format", "python"]),
        ("formula_dw", ["formula", "specs/symbolic_mbconv.yaml", "--stage", "depthwise", "--format", "latex"]),
        ("set", ["table", "specs/symbolic_mbconv.yaml", "--set", "C=4,t=6,k=3,H=8,W=8"]),
        ("compare", ["compare", "specs/seed_mbconv.yaml", "specs/seed_dwsep.yaml", "specs/seed_two_conv.yaml"]),
        (
            "sweep",
            [
                "sweep",
                "specs/symbolic_mbconv.yaml",
                "--vary",
                "t=1,2,4,6",
                "--vary",
                "k=3:7:2",
                "--set",
                "C=16,H=32,W=32",
            ],
        ),
        (
            "solve",
            ["solve", "specs/symbolic_mbconv.yaml", "--for", "t", "--budget", "macs<=1e5", "--set", "C=4,k=3,H=8,W=8"],
        ),
        ("formula_at", ["formula", "specs/symbolic_mbconv.yaml", "--metric", "macs", "--at", "t=6,k=3,C=16,H=32,W=32"]),
        ("formula_b0", ["formula", "specs/networks/efficientnet_b0.yaml", "--metric", "macs"]),
    ]
    for s in spaces:
        out.append(("space", ["space", s, "--budget", "macs<=3e8"]))
    return out


def run(argv: list[str]) -> str:
    from costmodel.cli import main

    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            rc = main(argv)
        except SystemExit as x:  # --help and friends
            rc = x.code if isinstance(x.code, int) else 1
        except Exception as x:  # noqa: BLE001 - a traceback is an output too
            rc = f"EXC {type(x).__name__}: {x}"
    return f"rc={rc}\n--- stdout\n{o.getvalue()}--- stderr\n{e.getvalue()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("-k", default="", help="only cases whose file name contains this")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for tag, argv in cases(a.quick):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{tag}__{argv[1] if len(argv) > 1 else ''}")
        if a.k and a.k not in name:
            continue
        (out / f"{name}.txt").write_text(run(argv))
        n += 1
    print(f"{n} outputs written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
