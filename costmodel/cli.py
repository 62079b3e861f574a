"""The command-line tool: parse, call the library API, print.

This is the only place that turns the library's errors into a message on stderr and exit status 2.
Output is built whole before anything is printed, so a failure never leaves half a table. Options
that several commands share are declared once (parent parsers); choices come from the library's own
constants.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import CostModelError, UsageError

_SET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$")

SPEC_HELP = "a YAML spec file (see docs/spec.md; shipped ones under specs/)"


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


def _parents() -> dict[str, _Parser]:
    """The options several commands share, each declared once, with the library's own choices."""
    from .analysis.conventions import CONVENTIONS
    from .analysis.memory import DTYPES, FUSIONS

    def parent() -> _Parser:
        return _Parser(add_help=False)

    spec = parent()
    spec.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    values = parent()
    values.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol (repeatable, or a,b=…)")
    fmt = parent()
    fmt.add_argument(
        "--format", "-f", default="github", help="json, csv or any tabulate format (default github; sweep: also jsonl)"
    )
    conv = parent()
    conv.add_argument(
        "--convention",
        default="costmodel",
        metavar="NAME",
        help=f"count MACs as this tool does: {', '.join(CONVENTIONS)} (docs/conventions.md)",
    )
    mem = parent()
    mem.add_argument("--dtype", default="float32", choices=list(DTYPES), help="element size (default float32)")
    mem.add_argument(
        "--fusion",
        default="none",
        choices=FUSIONS,
        help="execution model: every op a kernel, conv+norm+act fused, or whole blocks (default none)",
    )
    return {"spec": spec, "values": values, "format": fmt, "convention": conv, "memory": mem}


def _parser() -> _Parser:
    from ._version import __version__
    from .analysis.conventions import CONVENTIONS
    from .analysis.hardware import ROOFLINE_VIEWS, shipped_profiles
    from .engine.metrics import METRIC_NAMES
    from .present.report import VIEW_NAMES

    p = _Parser(
        prog="costmodel",
        description="Static, exact costs of mobile CNNs from a YAML spec: params, MACs, FLOPs, shapes, formulas, "
        "memory and latency. SPEC is a YAML file (docs/spec.md); shipped ones are under specs/.",
        epilog="example: costmodel table specs/networks/efficientnet_b0.yaml --by stage",
    )
    p.add_argument("--version", action="version", version=f"costmodel {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    par = _parents()
    spec, values, fmt, conv, mem = (par[k] for k in ("spec", "values", "format", "convention", "memory"))

    def command(name: str, help: str, example: str, parents: list[_Parser]) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=f"example: {example}", parents=parents)

    t = command("table", "per-op, per-stage or per-block cost table with totals",
                "costmodel table specs/seed_mbconv.yaml --by stage", [spec, fmt, conv, mem, values])  # fmt: skip
    t.add_argument(
        "--by",
        default="auto",
        choices=VIEW_NAMES,
        help="rows: one per op, per stage, per block instance or per layer (auto: op for one block, else block)",
    )
    t.add_argument(
        "--depth", type=int, metavar="N", help="nested rows: 1 layers, 2 + blocks, 3 + stages, 4 + ops (overrides --by)"
    )
    t.add_argument("--plot", metavar="PATH", help="also draw stacked per-stage bars of params and MACs to PATH")
    t.add_argument("--fold-bn", action="store_true", help="deployment view: BatchNorm folded into the conv bias")

    f = command("formula", "closed-form formulas of each metric in the spec's symbols",
                "costmodel formula specs/symbolic_mbconv.yaml --metric macs", [spec, values])  # fmt: skip
    f.add_argument("--metric", choices=METRIC_NAMES, help="one metric (default params, macs, flops)")
    f.add_argument("--stage", help="sum only this stage over all layers (e.g. depthwise)")
    f.add_argument("--format", "-f", default="text", help="text, latex or python (with --at: a table format or json)")
    f.add_argument("--diff", metavar="NAME", help="the partial derivative in this symbol")
    f.add_argument("--at", metavar="NAME=VALUE,...", help="a point: print each metric's elasticity in each symbol")

    c = command("compare", "specs side by side: totals, ratios to the first, stage shares",
                "costmodel compare specs/seed_mbconv.yaml specs/seed_dwsep.yaml", [fmt, conv, values])  # fmt: skip
    c.add_argument("specs", metavar="SPEC", nargs="+", help="two or more YAML spec files; the first is the baseline")

    v = command("solve", "the largest (or smallest) value of a symbol meeting budgets",
                "costmodel solve specs/symbolic_mbconv.yaml --for t --budget 'macs<=1e5' --set C=4,k=3,H=8,W=8",
                [spec, conv, values])  # fmt: skip
    v.add_argument("--for", dest="symbol", required=True, metavar="NAME", help="the symbol to solve for")
    v.add_argument("--budget", action="append", required=True, metavar="EXPR", help="e.g. 'macs<=3e8' (repeatable)")
    v.add_argument("--smallest", action="store_true", help="the smallest value instead of the largest")
    v.add_argument("--format", "-f", default="text", choices=["text", "json"], help="text (default) or json")
    v.add_argument(
        "--max", type=int, default=4096, metavar="N", help="search every valid value 1…N exhaustively (default 4096)"
    )

    e = command("explain", "op by op, where two counting conventions differ",
                "costmodel explain specs/networks/efficientnet_b0.yaml --vs thop", [spec, fmt, values])  # fmt: skip
    e.add_argument(
        "--vs",
        action="append",
        metavar="PEER",
        required=True,
        help=f"one PEER: costmodel vs PEER; twice: the first vs the second ({', '.join(CONVENTIONS)})",
    )

    s = command("sweep", "exact costs over a grid of symbol values",
                "costmodel sweep specs/symbolic_mbconv.yaml --vary t=1,2,4,6 --set C=16,k=3,H=32,W=32",
                [spec, fmt, conv, values])  # fmt: skip
    s.add_argument(
        "--vary", action="append", required=True, metavar="NAME=VALUES", help="an axis: t=1,2,4,6 or H=32:224:32"
    )
    s.add_argument(
        "--metric",
        action="append",
        choices=METRIC_NAMES,
        help="metrics to compute (repeatable; default params, macs, flops)",
    )
    s.add_argument("--plot", metavar="PATH", help="also draw curves (one axis) or a heatmap (two) to PATH")
    s.add_argument("--progress", action="store_true", help="a progress bar on stderr even when it is not a terminal")

    m = command("memory", "bytes each kernel moves, arithmetic intensity, peak activation memory",
                "costmodel memory specs/seed_mbconv.yaml --fusion block", [spec, fmt, mem, values])  # fmt: skip
    del m

    r = command("roofline", "roofline time per kernel on a hardware profile; compute- or memory-bound",
                "costmodel roofline specs/networks/efficientnet_b0.yaml --hardware mobile_soc",
                [spec, fmt, mem, values])  # fmt: skip
    r.add_argument(
        "--hardware",
        required=True,
        metavar="PROFILE",
        help=f"a shipped profile ({', '.join(shipped_profiles())}) or a profile YAML path",
    )
    r.add_argument("--by", default="auto", choices=ROOFLINE_VIEWS, help="rows (auto: kernel for one block)")
    r.add_argument("--plot", metavar="PATH", help="also draw the roofline chart, one point per stage")

    k = command("calibrate", "measure this machine's compute and bandwidth; write a hardware profile",
                "costmodel calibrate --out my_machine.yaml", [])  # fmt: skip
    k.add_argument("--out", metavar="PATH", help="write the profile here (default: print it)")
    k.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement (default 2)")

    command("schema", "JSON Schema of the spec format", "costmodel schema > costmodel.schema.json", [])
    return p


def _table(args: argparse.Namespace) -> str:
    from .api import count
    from .present.emit import check_format

    check_format(args.format)
    report = count(args.spec, args.convention, args.fold_bn, **parse_set(args.set))
    if args.format == "json" and not report.symbolic:
        from .api import memory
        from .present.emit import dumps
        from .present.report import to_dict

        data = to_dict(report)
        peak = memory(report, args.dtype, args.fusion).peak
        data["totals"]["peak_activation_bytes"] = peak.bytes
        data["peak"] = {"bytes": peak.bytes, "kernel": peak.kernel, "dtype": args.dtype, "fusion": args.fusion}
        text = dumps(data)
    else:
        text = report.table(args.format, args.by, args.depth)
    if args.plot:
        from .present.plot import plot_stages

        plot_stages(report, args.plot)
    return text


def _formula(args: argparse.Namespace) -> str:
    import sympy

    from .analysis.design import difference
    from .api import analyze, sensitivity

    metrics = [args.metric] if args.metric else ["params", "macs", "flops"]
    if args.at:
        from .present.design import render_elasticities
        from .present.emit import check_format

        if args.format != "text":
            check_format(args.format)
        items = sensitivity(args.spec, parse_set([args.at]), metrics, **parse_set(args.set))
        return render_elasticities(items, "github" if args.format == "text" else args.format)
    if args.format not in ("text", "latex", "python"):
        raise UsageError(f"--format {args.format!r}: expected text, latex or python")
    if args.diff and args.stage:
        raise UsageError("--diff and --stage cannot be combined")
    lines = []
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 8000))  # sympy builds and prints nested floors recursively (one per stride)
    try:
        report = analyze(args.spec, **parse_set(args.set))
        for m in metrics:
            if args.diff:
                expr, method = difference(report, m, args.diff)
                if method != "exact":
                    sys.stderr.write(f"costmodel: note: {m}: {method}\n")
            else:
                expr = report.formula(m, args.stage)
            text = sympy.latex(expr) if args.format == "latex" else sympy.sstr(expr)
            lines.append(text if args.metric else f"{m} = {text}")
    except RecursionError:
        raise UsageError(
            "the formula nests too deeply for sympy (one floor per symbolic stride); bind some symbols with --set"
        ) from None
    finally:
        sys.setrecursionlimit(limit)
    return "\n".join(lines)


def _schema(args: argparse.Namespace) -> str:
    import json

    from .spec import NetworkSpec

    return json.dumps(NetworkSpec.model_json_schema(), indent=2)


def _explain(args: argparse.Namespace) -> str:
    from .analysis.conventions import explain
    from .api import analyze
    from .present.emit import check_format
    from .present.explain import render_explain

    if len(args.vs) > 2:
        raise UsageError("--vs: give one peer (compared with costmodel) or two")
    a, b = ("costmodel", args.vs[0]) if len(args.vs) == 1 else (args.vs[0], args.vs[1])
    from .analysis.conventions import convention

    convention(a), convention(b)
    check_format(args.format)
    report = analyze(args.spec, **parse_set(args.set))
    return render_explain(report, a, b, explain(report, a, b), args.format)


class _Progress:
    """A progress bar on stderr for long work (drawn with tqdm when installed, else a plain bar)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

                self.bar = tqdm(total=total, desc=self.label, unit="pt", unit_scale=True, file=sys.stderr)
            except ImportError:
                self.bar = False
        if self.bar is False:
            width = 30
            filled = width * done // total
            end = "\n" if done == total else ""
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}{end}")
            sys.stderr.flush()
        else:
            self.bar.update(done - self.shown)
            if done == total:
                self.bar.close()
        self.shown = done


def _progress(args: argparse.Namespace, label: str = "sweep") -> Any:
    """A progress callback when stderr is a terminal or ``--progress`` is given; else None."""
    if getattr(args, "progress", False) or sys.stderr.isatty():
        return _Progress(label)
    return None


def _sweep(args: argparse.Namespace) -> Any:
    from .analysis.sweep import CHUNK, parse_vary
    from .api import _sweep_plan
    from .present.emit import check_format
    from .present.sweep import STREAMED, check_size, render_sweep

    if args.format not in STREAMED:
        check_format(args.format)
    axes = parse_vary(args.vary)
    fixed = parse_set(args.set)
    both = sorted(set(axes) & set(fixed))
    if both:
        raise UsageError(f"{both[0]} is given both --vary and --set")
    plan = _sweep_plan(args.spec, args.metric or ["params", "macs", "flops"], args.convention, {**fixed, **axes})
    check_size(plan.size, args.format)
    progress = _progress(args) if plan.size > CHUNK else None
    if args.plot:
        if plan.size > 10**6:
            raise UsageError(f"--plot draws at most 1,000,000 points; the grid has {plan.size:,}")
        from .present.plot import plot_sweep

        plot_sweep(_whole(plan), args.plot, plan.convention)
    if args.format in STREAMED:
        return _invalid_note(plan, args.format, progress, args.spec)
    result = _whole(plan, progress)
    text = render_sweep(result, args.format, result.convention)
    if result.checked:
        bad = [i for i, ok in enumerate(result["valid"]) if not ok]
        _warn_invalid(plan, len(bad), bad[0] if bad else None, args.spec)
    return text


def _whole(plan: Any, progress: Any = None) -> Any:
    import numpy as np

    parts = list(plan.chunks(1 << 18, progress))
    columns = {n: np.concatenate([p.columns[n] for p in parts]) for n in plan.columns}
    return plan.result_class(
        {n: list(a) for n, a in plan.axes.items()}, dict(plan.fixed), columns, plan.metrics, plan.convention
    )


def _invalid_note(plan: Any, fmt: str, progress: Any, spec: str) -> Any:
    """Stream the sweep's text; afterwards, warn on stderr about the invalid points counted on the way."""
    from .present.sweep import stream_sweep

    tally: list[Any] = [0, None]

    def counted() -> Any:
        for chunk in plan.chunks(1 << 18, progress):
            valid = chunk.columns.get("valid")
            if valid is not None and not valid.all():
                if tally[1] is None:
                    tally[1] = chunk.start + int(valid.argmin())
                tally[0] += len(valid) - int(valid.sum())
            yield chunk

    yield from stream_sweep(counted(), plan.columns, fmt)
    _warn_invalid(plan, tally[0], tally[1], spec)


def _warn_invalid(plan: Any, bad: int, first: int | None, spec: str) -> None:
    """On stderr: how many points table --set refuses, and table's own message at the first."""
    if not bad or first is None:
        return
    from .api import count

    point = plan.point(first)
    reason = "table --set refuses it"
    try:
        count(spec, "costmodel", False, **plan.fixed, **point)
    except CostModelError as err:
        reason = str(err)
    where = ",".join(f"{k}={v}" for k, v in point.items())
    sys.stderr.write(
        f"costmodel: warning: {bad:,} of {plan.size:,} points are invalid (valid=false, metrics left empty); "
        f"the first, {where}: {reason}\n"
    )


def _compare(args: argparse.Namespace) -> str:
    from .api import compare
    from .present.compare import render_compare
    from .present.emit import check_format

    check_format(args.format)
    return render_compare(compare(args.specs, args.convention, args.specs, **parse_set(args.set)), args.format)


def _solve(args: argparse.Namespace) -> str:
    from .analysis.design import parse_budget
    from .api import solve
    from .present.design import render_solution

    budgets = [parse_budget(b) for b in args.budget]
    sol = solve(args.spec, args.symbol, budgets, args.convention, args.smallest, args.max, **parse_set(args.set))
    return render_solution(sol, budgets, args.format, args.smallest)


def _roofline(args: argparse.Namespace) -> str:
    from .api import roofline
    from .present.emit import check_format
    from .present.roofline import render_roofline

    check_format(args.format)
    result = roofline(args.spec, args.hardware, args.dtype, args.fusion, **parse_set(args.set))
    report = result.memory.report
    text = render_roofline(report, result.estimates, result.profile, args.format, args.dtype, args.fusion, args.by)
    if args.plot:
        from .present.plot import plot_roofline

        plot_roofline(result.estimates, result.profile, args.dtype, args.fusion, args.plot, report.name or args.spec)
    warnings = result.warnings()
    if warnings:
        shown = warnings[:5] + ([f"… and {len(warnings) - 5} more"] if len(warnings) > 5 else [])
        sys.stderr.write("".join(f"costmodel: warning: {w}\n" for w in shown))
    return text


def _calibrate(args: argparse.Namespace) -> str:
    import yaml

    from .analysis.hardware import calibrate

    if not args.seconds > 0:
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
    from .api import memory
    from .present.emit import check_format
    from .present.memory import render_memory

    check_format(args.format)
    result = memory(args.spec, args.dtype, args.fusion, **parse_set(args.set))
    return render_memory(result.report, result.kernels, result.peak, args.format, args.dtype, args.fusion)


_COMMANDS: dict[str, Any] = {
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
        if isinstance(out, str):
            sys.stdout.write(out + "\n")
        else:  # a streamed command (sweep --format csv/jsonl), validated whole before its first piece
            for piece in out:
                sys.stdout.write(piece)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head
        return 0
    return 0
