"""The command-line tool: parse, call the library, print.

This is the only place that turns the library's errors into a message on stderr and exit status 2.
Output is built whole before anything is printed, so a failure never leaves half a table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import CostModelError, UsageError

_SET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_set(items: Sequence[str] | None) -> dict[str, int]:
    """``["C=16", "t=6,k=3"]`` → ``{"C": 16, "t": 6, "k": 3}``; values must be positive integers."""
    out: dict[str, int] = {}
    for item in items or ():
        for part in item.split(","):
            m = _SET.match(part.strip())
            if not m:
                raise UsageError(f"--set {part!r}: expected NAME=INTEGER, e.g. --set C=16")
            name, text = m.groups()
            if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
                raise UsageError(f"--set {part!r}: the value must be a positive integer")
            if name in out:
                raise UsageError(f"--set {name}: given twice")
            out[name] = int(text)
    return out


def _parser() -> _Parser:
    p = _Parser(
        prog="costmodel",
        description="Static, exact costs of mobile CNN blocks from a YAML spec: params, MACs, FLOPs, shapes, formulas.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("table", help="per-stage cost table with totals")
    t.add_argument("spec", metavar="SPEC", help="YAML spec file")
    t.add_argument("--format", "-f", default="github", help="json, csv or any tabulate format (default github)")
    t.add_argument(
        "--by",
        default="auto",
        choices=["auto", "op", "stage", "block", "layer"],
        help="rows: one per op, per stage, per block instance or per layer (auto: op for one block, else block)",
    )
    t.add_argument(
        "--depth", type=int, metavar="N", help="nested rows: 1 layers, 2 + blocks, 3 + stages, 4 + ops (overrides --by)"
    )
    t.add_argument(
        "--convention",
        default="costmodel",
        metavar="NAME",
        help="count MACs as this tool does: costmodel, torch, torchvision, fvcore, ptflops, thop, torchinfo",
    )
    t.add_argument("--plot", metavar="PATH", help="also draw stacked per-stage bars of params and MACs to PATH")
    t.add_argument("--fold-bn", action="store_true", help="deployment view: BatchNorm folded into the conv bias")
    t.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16", "int8"],
        help="element size for the memory figures in --format json",
    )
    t.add_argument(
        "--fusion",
        default="none",
        choices=["none", "conv-bn-act", "block"],
        help="execution model for the peak activation memory in --format json",
    )
    t.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol (repeatable)")

    f = sub.add_parser("formula", help="closed-form formulas")
    f.add_argument("spec", metavar="SPEC")
    f.add_argument("--metric", choices=["params", "buffers", "macs", "flops", "activations"])
    f.add_argument("--stage", help="sum only this stage over all layers (e.g. depthwise)")
    f.add_argument("--format", "-f", default="text", help="text, latex or python (with --at: a table format or json)")
    f.add_argument("--diff", metavar="NAME", help="the partial derivative in this symbol")
    f.add_argument("--at", metavar="NAME=VALUE,...", help="a point: print each metric's elasticity in each symbol")
    f.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol (repeatable)")

    c = sub.add_parser("compare", help="specs side by side: totals, ratios to the first, stage shares")
    c.add_argument("specs", metavar="SPEC", nargs="+")
    c.add_argument("--format", "-f", default="github", help="json, csv or any tabulate format")
    c.add_argument("--convention", default="costmodel", metavar="NAME", help="count MACs as this tool does")
    c.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol in every spec (repeatable)")

    v = sub.add_parser("solve", help="the largest (or smallest) value of a symbol meeting budgets")
    v.add_argument("spec", metavar="SPEC")
    v.add_argument("--for", dest="symbol", required=True, metavar="NAME", help="the symbol to solve for")
    v.add_argument("--budget", action="append", required=True, metavar="EXPR", help="e.g. 'macs<=3e8' (repeatable)")
    v.add_argument("--smallest", action="store_true", help="the smallest value instead of the largest")
    v.add_argument("--convention", default="costmodel", metavar="NAME", help="count MACs as this tool does")
    v.add_argument("--format", "-f", default="text", choices=["text", "json"])
    v.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind the other symbols (repeatable)")

    e = sub.add_parser("explain", help="op by op, where two counting conventions differ")
    e.add_argument("spec", metavar="SPEC")
    e.add_argument(
        "--vs",
        action="append",
        metavar="PEER",
        required=True,
        help="one PEER: costmodel vs PEER; twice: the first vs the second",
    )
    e.add_argument("--format", "-f", default="github", help="json, csv or any tabulate format")
    e.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol (repeatable)")

    s = sub.add_parser("sweep", help="exact costs over a grid of symbol values")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument(
        "--vary", action="append", required=True, metavar="NAME=VALUES", help="an axis: t=1,2,4,6 or H=32:224:32"
    )
    s.add_argument(
        "--metric",
        action="append",
        choices=["params", "buffers", "macs", "flops", "activations"],
        help="metrics to compute (repeatable; default params, macs, flops)",
    )
    s.add_argument("--format", "-f", default="github", help="json, csv or any tabulate format")
    s.add_argument("--convention", default="costmodel", metavar="NAME", help="count MACs as this tool does")
    s.add_argument("--plot", metavar="PATH", help="also draw curves (one axis) or a heatmap (two) to PATH")
    s.add_argument("--set", action="append", metavar="NAME=VALUE", help="fix a symbol (repeatable)")

    m = sub.add_parser("memory", help="bytes each kernel moves, arithmetic intensity, peak activation memory")
    m.add_argument("spec", metavar="SPEC")
    m.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "int8"])
    m.add_argument("--fusion", default="none", choices=["none", "conv-bn-act", "block"])
    m.add_argument("--format", "-f", default="github", help="json, csv or any tabulate format")
    m.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol (repeatable)")

    r = sub.add_parser("roofline", help="roofline time per kernel on a hardware profile; compute- or memory-bound")
    r.add_argument("spec", metavar="SPEC")
    r.add_argument("--hardware", required=True, metavar="PROFILE", help="a shipped profile name or a profile YAML")
    r.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "int8"])
    r.add_argument("--fusion", default="none", choices=["none", "conv-bn-act", "block"])
    r.add_argument("--by", default="auto", choices=["auto", "kernel", "block", "stage"])
    r.add_argument("--format", "-f", default="github", help="json, csv or any tabulate format")
    r.add_argument("--plot", metavar="PATH", help="also draw the roofline chart, one point per stage")
    r.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol (repeatable)")

    k = sub.add_parser("calibrate", help="measure this machine's compute and bandwidth; write a hardware profile")
    k.add_argument("--out", metavar="PATH", help="write the profile here (default: print it)")
    k.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement (default 2)")

    sub.add_parser("schema", help="JSON Schema of the spec format")
    return p


def _table(args: argparse.Namespace) -> str:
    from .api import analyze
    from .render import check_format, render

    check_format(args.format)
    from .conventions import apply, convention

    convention(args.convention)  # refuse an unknown name before reading the spec
    report = apply(analyze(args.spec, **parse_set(args.set)), args.convention)
    if args.fold_bn:
        from .memory import fold_bn

        report = fold_bn(report)
    if args.format == "json" and not report.symbolic:
        from .memory import peak_activations
        from .render import to_dict

        data = to_dict(report)
        peak = peak_activations(report, args.dtype, args.fusion)
        data["totals"]["peak_activation_bytes"] = peak.bytes
        data["peak"] = {"bytes": peak.bytes, "kernel": peak.kernel, "dtype": args.dtype, "fusion": args.fusion}
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    else:
        text = render(report, args.format, args.by, args.depth)
    if args.plot:
        from .plot import plot_stages

        plot_stages(report, args.plot)
    return text


def _formula(args: argparse.Namespace) -> str:
    import sympy

    from .api import analyze
    from .design import derivative, elasticities
    from .render import check_format, render_elasticities

    metrics = [args.metric] if args.metric else ["params", "macs", "flops"]
    if args.at:
        if args.format != "text":
            check_format(args.format)
        point = parse_set([args.at])
        report = analyze(args.spec, **parse_set(args.set))
        return render_elasticities(
            elasticities(report, point, metrics), "github" if args.format == "text" else args.format
        )
    if args.format not in ("text", "latex", "python"):
        raise UsageError(f"--format {args.format!r}: expected text, latex or python")
    report = analyze(args.spec, **parse_set(args.set))
    lines = []
    for m in metrics:
        expr = derivative(report, m, args.diff) if args.diff else report.formula(m, args.stage)
        if args.diff and args.stage:
            raise UsageError("--diff and --stage cannot be combined")
        text = sympy.latex(expr) if args.format == "latex" else sympy.sstr(expr)
        lines.append(text if args.metric else f"{m} = {text}")
    return "\n".join(lines)


def _schema(args: argparse.Namespace) -> str:
    from .spec import NetworkSpec

    return json.dumps(NetworkSpec.model_json_schema(), indent=2)


def _explain(args: argparse.Namespace) -> str:
    from .api import analyze
    from .conventions import convention
    from .render import check_format, render_explain

    if len(args.vs) > 2:
        raise UsageError("--vs: give one peer (compared with costmodel) or two")
    a, b = ("costmodel", args.vs[0]) if len(args.vs) == 1 else (args.vs[0], args.vs[1])
    convention(a), convention(b)
    check_format(args.format)
    return render_explain(analyze(args.spec, **parse_set(args.set)), a, b, args.format)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        width = 30
        filled = width * done // total
        end = "\n" if done == total else ""
        sys.stderr.write(f"\rsweep [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}{end}")
        sys.stderr.flush()


def _sweep(args: argparse.Namespace) -> str:
    from .api import analyze
    from .conventions import apply, convention
    from .grid import parse_vary, run
    from .render import check_format, render_sweep

    convention(args.convention)
    check_format(args.format)
    axes = parse_vary(args.vary)
    fixed = parse_set(args.set)
    both = sorted(set(axes) & set(fixed))
    if both:
        raise UsageError(f"{both[0]} is given both --vary and --set")
    report = apply(analyze(args.spec, **fixed), args.convention)

    def reanalyze(bound: dict[str, int]) -> Any:
        return apply(analyze(args.spec, **fixed, **bound), args.convention)

    result = run(report, axes, args.metric or ["params", "macs", "flops"], _progress, reanalyze)
    result.fixed = fixed
    if args.plot:
        from .plot import plot_sweep

        plot_sweep(result, args.plot, report.convention)
    return render_sweep(result, args.format, report.convention)


def _compare(args: argparse.Namespace) -> str:
    from .api import analyze
    from .conventions import apply, convention
    from .design import compare
    from .render import check_format, render_compare

    convention(args.convention)
    check_format(args.format)
    from .api import load
    from .spec import symbol_uses

    bind = parse_set(args.set)
    reports = []
    for path in args.specs:
        spec = load(path)
        names = {name for _, name in symbol_uses(spec)}
        reports.append(apply(analyze(spec, **{k: v for k, v in bind.items() if k in names}), args.convention))
    return render_compare(compare(reports, args.specs), args.format)


def _solve(args: argparse.Namespace) -> str:
    from .api import analyze
    from .conventions import apply, convention
    from .design import parse_budget, solve
    from .render import render_solution

    convention(args.convention)
    budgets = [parse_budget(b) for b in args.budget]
    fixed = parse_set(args.set)
    if args.symbol in fixed:
        raise UsageError(f"--for {args.symbol} is also given with --set")
    report = apply(analyze(args.spec, **fixed), args.convention)

    def reanalyze(bound: dict[str, int]) -> Any:
        return apply(analyze(args.spec, **fixed, **bound), args.convention)

    sol = solve(report, args.symbol, budgets, reanalyze, args.smallest)
    return render_solution(sol, budgets, args.format, args.smallest)


def _roofline(args: argparse.Namespace) -> str:
    from .api import analyze
    from .hardware import load_profile, on_chip_warnings, roofline
    from .memory import kernels
    from .render import check_format, render_roofline

    check_format(args.format)
    profile = load_profile(args.hardware)
    profile.peak(args.dtype)  # refuse a dtype the profile has no peak for
    report = analyze(args.spec, **parse_set(args.set))
    ks = kernels(report, args.dtype, args.fusion)
    estimates = roofline(ks, profile, args.dtype)
    text = render_roofline(report, estimates, profile, args.format, args.dtype, args.fusion, args.by)
    if args.plot:
        from .plot import plot_roofline

        plot_roofline(estimates, profile, args.dtype, args.fusion, args.plot, report.name or args.spec)
    warnings = on_chip_warnings(ks, profile)
    if warnings:
        shown = warnings[:5] + ([f"… and {len(warnings) - 5} more"] if len(warnings) > 5 else [])
        sys.stderr.write("".join(f"costmodel: warning: {w}\n" for w in shown))
    return text


def _calibrate(args: argparse.Namespace) -> str:
    import yaml

    from .hardware import calibrate

    if args.seconds <= 0:
        raise UsageError("--seconds must be positive")
    text = yaml.safe_dump(calibrate(args.seconds), sort_keys=False, allow_unicode=True)
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"--out {args.out}: {exc.strerror}") from None
        return f"wrote {args.out}"
    return text.rstrip("\n")


def _memory(args: argparse.Namespace) -> str:
    from .api import analyze
    from .memory import kernels, peak_activations
    from .render import check_format, render_memory

    check_format(args.format)
    report = analyze(args.spec, **parse_set(args.set))
    ks = kernels(report, args.dtype, args.fusion)
    peak = peak_activations(report, args.dtype, args.fusion, ks)
    return render_memory(report, ks, peak, args.format, args.dtype, args.fusion)


_COMMANDS = {
    "roofline": _roofline,
    "calibrate": _calibrate,
    "memory": _memory,
    "table": _table,
    "formula": _formula,
    "explain": _explain,
    "sweep": _sweep,
    "compare": _compare,
    "solve": _solve,
    "schema": _schema,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    try:
        args = _parser().parse_args(argv)
        out = _COMMANDS[args.command](args)
    except CostModelError as err:
        print(f"costmodel: error: {err}", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head
        return 0
    return 0
