"""The command-line tool: parse, call the library API, print.

This is the only place that turns the library's errors into a message on stderr and exit status 2.
Output is built whole before anything is printed, so a failure never leaves half a table. Options
that several commands share are declared once (parent parsers); choices come from the library's own
constants.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .errors import CostModelError, UsageError

_SET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$")

SPEC_HELP = (
    "a YAML spec file: input, optional scaling, layers (docs/spec.md; shipped ones under specs/ and "
    "specs/networks/, e.g. specs/networks/mobilenet_v2.yaml)"
)


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
            if not re.fullmatch(r"[0-9]+", text) or len(text) > 30 or int(text) < 1:
                shown = part if len(part) <= 60 else part[:60] + "…"
                raise UsageError(f"--set {shown!r}: the value must be a positive integer below 2**31")
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
    shape = parent()
    shape.add_argument(
        "--resolution",
        type=_resolution,
        metavar="N|HxW",
        help="override the input size: N for N×N or HxW, e.g. 96 or 160x128 (input.height, input.width)",
    )
    shape.add_argument(
        "--width-mult",
        type=_positive_float,
        metavar="W",
        help="set scaling.width (channels → make_divisible(c × W, divisor)), e.g. 0.35 as torchvision's width_mult",
    )
    shape.add_argument(
        "--depth-mult", type=_positive_float, metavar="D", help="set scaling.depth (repeats → ceil(repeat × D))"
    )
    shape.add_argument("--batch", type=_positive_int, metavar="N", help="override the batch size (input.batch)")
    return {"spec": spec, "values": values, "format": fmt, "convention": conv, "memory": mem, "shape": shape}


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite positive number, e.g. 0.5")
    return x


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer")
    return int(text)


def _resolution(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"([0-9]{1,9})(?:[xX×]([0-9]{1,9}))?", text.strip())
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer N or HxW, e.g. 96 or 160x128")
    h = int(m.group(1))
    return h, int(m.group(2)) if m.group(2) is not None else h


def _configured(args: argparse.Namespace, path: str) -> Any:
    """The spec at ``path`` with the shape options applied (the path itself when none is given)."""
    over = {k: getattr(args, k, None) for k in ("resolution", "width_mult", "depth_mult", "batch")}
    if all(v is None for v in over.values()):
        return path
    from .api import configure

    return configure(path, **over)


class _Unused:
    """Stands for the parser of a command that is not being run: its options are not declared."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


def _parser(only: str | None = None) -> _Parser:
    """The whole command line; with ``only`` (the command being run), the other commands are named (for
    usage and errors) but their options are not declared, nor their modules imported."""
    from ._version import __version__
    from .analysis.conventions import CONVENTIONS
    from .analysis.profiles import ROOFLINE_VIEWS, shipped_profiles
    from .engine.metrics import METRIC_NAMES
    from .present.report import UNITS, VIEW_NAMES

    p = _Parser(
        prog="costmodel",
        description="Static, exact costs of mobile CNNs from a YAML spec: params, MACs, FLOPs, shapes, formulas, "
        "memory and latency.\n\n"
        "SPEC is a YAML file describing a network or a block: its input (channels, height, width, batch), "
        "optional scaling, and a list of layers (conv, mbconv, fused_mbconv, dwsep, basic, bottleneck, pool, "
        "dropout, linear); integers may be symbol names bound with --set. Format: docs/spec.md; shipped "
        "specs: specs/ (seeds) and specs/networks/ (torchvision's networks), `costmodel schema` for the "
        "JSON Schema.",
        epilog="conventions (--convention, explain --vs): "
        + ", ".join(CONVENTIONS)
        + " (docs/conventions.md; default costmodel: params learnable only, MACs = FlopCounterMode / 2)\n"
        "hardware profiles (roofline --hardware): "
        + ", ".join(shipped_profiles())
        + ", or a profile YAML (costmodel calibrate writes one)\n"
        "shape options on every command that reads a spec: --resolution N|HxW, --width-mult W, --depth-mult D, "
        "--batch N\n\n"
        "examples:\n"
        "  costmodel table specs/networks/efficientnet_b0.yaml --by stage\n"
        "  costmodel table specs/networks/mobilenet_v2.yaml --resolution 96 --width-mult 0.35\n"
        "  costmodel compare specs/seed_mbconv.yaml specs/seed_dwsep.yaml\n"
        "  costmodel roofline specs/networks/efficientnet_b0.yaml --hardware mobile_soc\n"
        "  costmodel CMD --help   (each command's options and an example)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    import textwrap

    p.description = "\n\n".join(textwrap.fill(part, 79) for part in (p.description or "").split("\n\n"))
    p.epilog = "\n".join(
        textwrap.fill(line, 79, subsequent_indent="  ") if not line.startswith("  ") else line
        for line in (p.epilog or "").split("\n")
    )
    p.add_argument("--version", action="version", version=f"costmodel {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    par = _parents()
    spec, values, fmt, conv, mem, shape = (
        par[k] for k in ("spec", "values", "format", "convention", "memory", "shape")
    )

    def command(name: str, help: str, example: str, parents: list[_Parser]) -> Any:
        if only is not None and name != only:
            sub.add_parser(name, help=help)
            return _Unused()
        return sub.add_parser(name, help=help, description=help, epilog=f"example: {example}", parents=parents)

    t = command("table", "per-op, per-stage or per-block cost table with totals",
                "costmodel table specs/seed_mbconv.yaml --by stage", [spec, fmt, conv, mem, values, shape])  # fmt: skip
    t.add_argument(
        "--by",
        default="auto",
        choices=VIEW_NAMES,
        help="rows: one per op, per stage, per block instance or per layer (auto: op for one block, else block)",
    )
    t.add_argument(
        "--depth", type=int, metavar="N", help="nested rows: 1 layers, 2 + blocks, 3 + stages, 4 + ops (overrides --by)"
    )
    t.add_argument(
        "--block",
        metavar="ID",
        help="only one block, by its id LAYER.REPEAT as the tables show it (e.g. 4.1), or one LAYER: its stages"
        " and ops, with totals over it",
    )
    t.add_argument(
        "--units",
        default="exact",
        choices=UNITS,
        help="table counts exact with separators (default) or si: K/M/G/T, 4 significant digits (tables only;"
        " CSV and JSON stay exact)",
    )
    t.add_argument("--plot", metavar="PATH", help="also draw stacked per-stage bars of params and MACs to PATH")
    t.add_argument("--fold-bn", action="store_true", help="deployment view: BatchNorm folded into the conv bias")

    f = command("formula", "closed-form formulas of each metric in the spec's symbols",
                "costmodel formula specs/symbolic_mbconv.yaml --metric macs", [spec, values, shape])  # fmt: skip
    f.add_argument("--metric", choices=METRIC_NAMES, help="one metric (default params, macs, flops)")
    f.add_argument("--stage", help="sum only this stage over all layers (e.g. depthwise)")
    f.add_argument("--format", "-f", default="text", help="text, latex or python (with --at: a table format or json)")
    f.add_argument("--diff", metavar="NAME", help="the partial derivative in this symbol")
    f.add_argument("--at", metavar="NAME=VALUE,...", help="a point: print each metric's elasticity in each symbol")

    c = command("compare", "specs side by side: totals, ratios to the first, stage shares",
                "costmodel compare specs/seed_mbconv.yaml specs/seed_dwsep.yaml",
                [fmt, conv, values, shape])  # fmt: skip
    c.add_argument("specs", metavar="SPEC", nargs="+", help="two or more YAML spec files; the first is the baseline")

    v = command("solve", "the largest (or smallest) value of a symbol meeting budgets",
                "costmodel solve specs/symbolic_mbconv.yaml --for t --budget 'macs<=1e5' --set C=4,k=3,H=8,W=8",
                [spec, conv, values, shape])  # fmt: skip
    v.add_argument("--for", dest="symbol", required=True, metavar="NAME", help="the symbol to solve for")
    v.add_argument("--budget", action="append", required=True, metavar="EXPR", help="e.g. 'macs<=3e8' (repeatable)")
    v.add_argument("--smallest", action="store_true", help="the smallest value instead of the largest")
    v.add_argument("--format", "-f", default="text", choices=["text", "json"], help="text (default) or json")
    v.add_argument(
        "--max", type=int, default=4096, metavar="N", help="search every valid value 1…N exhaustively (default 4096)"
    )

    e = command("explain", "op by op, where two counting conventions differ",
                "costmodel explain specs/networks/efficientnet_b0.yaml --vs thop",
                [spec, fmt, values, shape])  # fmt: skip
    e.add_argument(
        "--vs",
        action="append",
        metavar="PEER",
        required=True,
        help=f"one PEER: costmodel vs PEER; twice: the first vs the second ({', '.join(CONVENTIONS)})",
    )

    s = command("sweep", "exact costs over a grid of symbol values",
                "costmodel sweep specs/symbolic_mbconv.yaml --vary t=1,2,4,6 --set C=16,k=3,H=32,W=32",
                [spec, fmt, conv, values, shape])  # fmt: skip
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
                "costmodel memory specs/seed_mbconv.yaml --fusion block", [spec, fmt, mem, values, shape])  # fmt: skip
    del m

    r = command("roofline", "roofline time per kernel on a hardware profile; compute- or memory-bound",
                "costmodel roofline specs/networks/efficientnet_b0.yaml --hardware mobile_soc",
                [spec, fmt, mem, values, shape])  # fmt: skip
    r.add_argument(
        "--hardware",
        required=True,
        metavar="PROFILE",
        help=f"a shipped profile ({', '.join(shipped_profiles())}) or a profile YAML path",
    )
    r.add_argument("--by", default="auto", choices=ROOFLINE_VIEWS, help="rows (auto: kernel for one block)")
    r.add_argument("--plot", metavar="PATH", help="also draw the roofline chart, one point per stage")

    k = command("calibrate", "measure this machine (numpy roofline, or per-op latency with --torch); write a profile",
                "costmodel calibrate --torch --threads 2 --out my_machine.yaml", [])  # fmt: skip
    k.add_argument("--out", metavar="PATH", help="write the profile here (default: print it); with --torch, an "
                   "existing profile there keeps its other calibrations")  # fmt: skip
    k.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement (default 2)")
    k.add_argument("--torch", action="store_true", help="also time each op class with torch and fit its latency model")
    k.add_argument("--threads", type=int, default=1, help="torch threads for --torch (default 1)")
    k.add_argument("--spec", action="append", metavar="SPEC", help="with --torch: also time exactly the distinct ops "
                   "of this network (repeatable), for lookup-table predictions")  # fmt: skip
    k.add_argument("--quick", action="store_true", help="with --torch: a small grid (seconds, less accurate)")

    lt = command("latency", "predicted eager latency per op, block and total, from a calibrated profile",
                 "costmodel latency specs/networks/mobilenet_v2.yaml --hardware my_machine.yaml --threads 2",
                 [spec, fmt, values, par["shape"]])  # fmt: skip
    lt.add_argument("--hardware", required=True, metavar="PROFILE", help="a profile made by calibrate --torch")
    lt.add_argument("--threads", type=int, help="use the calibration made at this many threads")
    lt.add_argument(
        "--by", default="auto", choices=("auto", "op", "block", "stage"), help="rows (auto: op for one block)"
    )

    command("schema", "JSON Schema of the spec format", "costmodel schema > costmodel.schema.json", [])
    _train_parser(command, [spec, fmt, values, par["shape"]])
    f.add_argument("--training", action="store_true", help="training MACs and saved bytes (docs/training.md)")
    _space_parser(command, spec, fmt)

    import_help = "a PyTorch / timm / torchvision model or an ONNX file → a YAML spec"
    if only is not None and only != "import":
        sub.add_parser("import", help=import_help)
        return p
    i = sub.add_parser(
        "import",
        help=import_help,
        description="Trace a model on the meta device (or read an ONNX graph) and write the spec that describes it "
        "exactly; what the spec cannot say is named on stderr with the share of MACs and params covered. "
        "SOURCE is timm:NAME (pretrained=False), torchvision:NAME (weights=None), package.module:callable "
        "(IMPORTS AND RUNS that Python code; the current directory is importable) or a path to a .onnx file "
        "(needs only the onnx package).",
        epilog="example: costmodel import torchvision:mobilenet_v3_small > m.yaml && costmodel table m.yaml",
    )
    i.add_argument("source", metavar="SOURCE", help="timm:NAME, torchvision:NAME, package.module:callable or FILE.onnx")
    i.add_argument("--input", metavar="CxHxW", help="input size (default: timm's pretrained_cfg input_size)")
    i.add_argument("--out", metavar="FILE", help="write the spec here (default: print it)")
    i.add_argument("--symbolic-resolution", action="store_true", help="write height: H, width: W (for formulas)")
    i.add_argument(
        "--kwargs", metavar="K=V,...", help="constructor arguments: ints, floats, bools, strings (not evaluated)"
    )
    return p


def _train_parser(command: Any, parents: list[_Parser]) -> None:
    t = command("train", "costs of one training step: forward + backward MACs, saved activations, memory, batch",
                "costmodel train specs/networks/efficientnet_b4.yaml --batch 64 --optimizer adamw",
                parents)  # fmt: skip
    if isinstance(t, _Unused):
        return
    from .analysis.training import CHECKPOINTS, DEVICES, OPTIMIZERS, PRECISIONS, TRAIN_CONVENTIONS
    from .present.training import TRAIN_VIEWS

    t.add_argument("--optimizer", default="sgd", choices=list(OPTIMIZERS), help="optimizer state (default sgd)")
    t.add_argument("--dtype", default="float32", choices=list(PRECISIONS), help="float32 or autocast mixed")
    t.add_argument("--checkpoint", default="none", choices=CHECKPOINTS, help="recompute every block in backward")
    t.add_argument("--device", default="cpu", choices=DEVICES, help="dropout saves a float32 (cpu) or 1-byte mask")
    t.add_argument("--convention", default="costmodel", choices=TRAIN_CONVENTIONS, help="torch: as FlopCounterMode")
    t.add_argument("--by", default="auto", choices=TRAIN_VIEWS, help="rows (auto: op for one block, else block)")
    t.add_argument("--memory", metavar="SIZE", help="a memory budget, e.g. 24GiB or 16GB (with --solve batch)")
    t.add_argument("--solve", choices=["batch"], help="the largest batch whose step peak fits --memory")
    t.add_argument("--vs", choices=["torch"], help="training MACs op by op, costmodel vs FlopCounterMode")


def _space_parser(command: Any, spec: _Parser, fmt: _Parser) -> None:
    """The ``space`` command's options (docs/spaces.md)."""
    sp = command("space", "exact analysis of a search space: size, min/max/mean/std, budget counts, sampling",
                 "costmodel space specs/spaces/ofa_mobilenetv3.yaml --budget 'macs<=3e8'", [spec, fmt])  # fmt: skip
    sp.add_argument("--budget", action="append", metavar="EXPR",
                    help="count sub-networks meeting it: 'macs<=3e8', 'params<=5e6', "
                    "'peak_activation_bytes<=320000' (repeatable)")  # fmt: skip
    sp.add_argument("--peak", action="store_true", help="also min/max peak activation bytes (float32; slower)")
    sp.add_argument("--plot", metavar="PATH", help="draw the exact (or bracketed) CDF of MACs over the space")
    sp.add_argument(
        "--sample", type=int, metavar="N", help="draw N sub-networks uniformly among those meeting the budgets"
    )
    sp.add_argument("--seed", type=int, default=0, help="random seed of --sample (default 0)")
    sp.add_argument("--out", metavar="DIR|FILE", help="--sample: a directory (concrete specs) or a JSON-lines file")
    sp.add_argument("--pareto", metavar="A,B", help="the exact Pareto front over two metrics (max:NAME maximises)")
    sp.add_argument("--table", action="store_true", help="the per-block cost table (block × choice × input shape)")
    sp.add_argument("--enumerate", action="store_true", help="brute force on Dask (needs costmodel[space])")
    sp.add_argument("--scheduler", metavar="ADDRESS", help="--enumerate on this dask.distributed scheduler")
    sp.add_argument("--workers", type=int, default=2, help="--enumerate: local cluster processes (default 2)")


def _table(args: argparse.Namespace) -> str:
    from .api import count
    from .present.emit import check_format

    check_format(args.format)
    report = count(_configured(args, args.spec), args.convention, args.fold_bn, **parse_set(args.set))
    if args.block is not None:
        report = report.block(args.block)
        if args.by == "auto" and args.depth is None:
            args.by = "op"
    if args.format == "json" and not report.symbolic and args.block is None:
        from .analysis.memory import peak_activations
        from .present.report import to_json

        peak = peak_activations(report, args.dtype, args.fusion)
        text = to_json(
            report,
            {"peak_activation_bytes": peak.bytes},
            {"peak": {"bytes": peak.bytes, "kernel": peak.kernel, "dtype": args.dtype, "fusion": args.fusion}},
        )
    else:
        text = report.table(args.format, args.by, args.depth, args.units)
    if args.plot:
        from .present.plot import plot_stages

        plot_stages(report, args.plot)
    return text


def _formula(args: argparse.Namespace) -> str:
    import sympy

    from .analysis.design import difference
    from .api import analyze, sensitivity

    if args.training:
        return _formula_training(args)
    metrics = [args.metric] if args.metric else ["params", "macs", "flops"]
    if args.at:
        from .present.design import render_elasticities
        from .present.emit import check_format

        if args.format != "text":
            check_format(args.format)
        items = sensitivity(_configured(args, args.spec), parse_set([args.at]), metrics, **parse_set(args.set))
        return render_elasticities(items, "github" if args.format == "text" else args.format)
    if args.format not in ("text", "latex", "python"):
        raise UsageError(f"--format {args.format!r}: expected text, latex or python")
    if args.diff and args.stage:
        raise UsageError("--diff and --stage cannot be combined")
    lines = []
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 8000))  # sympy builds and prints nested floors recursively (one per stride)
    try:
        report = analyze(_configured(args, args.spec), **parse_set(args.set))
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


def _formula_training(args: argparse.Namespace) -> str:
    """``formula --training``: training MACs and saved-activation bytes in the spec's symbols."""
    import sympy

    from .api import train

    if args.at or args.diff or args.stage or args.metric:
        raise UsageError("--training takes no --at, --diff, --stage or --metric")
    if args.format not in ("text", "latex", "python"):
        raise UsageError(f"--format {args.format!r}: expected text, latex or python")
    totals = train(args.spec, None, "sgd", "float32", "none", "costmodel", "cpu", **parse_set(args.set)).totals
    lines = []
    for m in ("training_macs", "saved_bytes"):
        expr = sympy.factor(sympy.Integer(0) + totals[m])
        text = sympy.latex(expr) if args.format == "latex" else sympy.sstr(expr)
        lines.append(f"{m} = {text}")
    return "\n".join(lines)


def _train(args: argparse.Namespace) -> str:
    from .api import largest_batch, train
    from .present.emit import check_format, emit
    from .present.training import render_training, vs_torch_table

    check_format(args.format)
    values = parse_set(args.set)
    if (args.solve is None) != (args.memory is None):
        raise UsageError("--solve batch and --memory go together")

    def step_at(batch: int | None, convention: str) -> Any:
        return train(
            _configured(args, args.spec),
            batch,
            args.optimizer,
            args.dtype,
            args.checkpoint,
            convention,
            args.device,
            **values,
        )

    if args.vs:
        return emit(vs_torch_table(step_at(args.batch, "costmodel"), step_at(args.batch, "torch")), args.format)
    if args.solve:
        if args.batch is not None:
            raise UsageError("--solve batch finds the batch: drop --batch")
        from .analysis.training import parse_bytes

        budget = parse_bytes(args.memory)
        n, step = largest_batch(args.spec, budget, args.optimizer, args.dtype, args.checkpoint, args.device, **values)
        if args.convention != "costmodel":
            step = step_at(n, args.convention)
        solved = {"solve": {"budget": budget, "batch": n, "peak_bytes": step.totals["peak_bytes"]}}
        return render_training(step, args.format, args.by, solved)
    return render_training(step_at(args.batch, args.convention), args.format, args.by)


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
    report = analyze(_configured(args, args.spec), **parse_set(args.set))
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
    if sys.stderr is not None and (getattr(args, "progress", False) or sys.stderr.isatty()):
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
    plan = _sweep_plan(
        _configured(args, args.spec), args.metric or ["params", "macs", "flops"], args.convention, {**fixed, **axes}
    )
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
    from .present.compare import input_warning, render_compare
    from .present.emit import check_format

    check_format(args.format)
    cmp = compare([_configured(args, x) for x in args.specs], args.convention, args.specs, **parse_set(args.set))
    text = render_compare(cmp, args.format)
    warning = input_warning(cmp)
    if warning:
        sys.stderr.write(f"costmodel: warning: {warning}\n")
    return text


def _solve(args: argparse.Namespace) -> str:
    from .analysis.design import parse_budget
    from .api import solve
    from .present.design import render_solution

    budgets = [parse_budget(b) for b in args.budget]
    sol = solve(
        _configured(args, args.spec),
        args.symbol,
        budgets,
        args.convention,
        args.smallest,
        args.max,
        **parse_set(args.set),
    )
    return render_solution(sol, budgets, args.format, args.smallest)


def _roofline(args: argparse.Namespace) -> str:
    from .api import roofline
    from .present.emit import check_format
    from .present.roofline import render_roofline

    check_format(args.format)
    result = roofline(_configured(args, args.spec), args.hardware, args.dtype, args.fusion, **parse_set(args.set))
    report = result.memory.report
    text = render_roofline(report, result.estimates, result.profile, args.format, args.dtype, args.fusion, args.by)
    if args.plot:
        from .present.plot import plot_roofline

        plot_roofline(result.estimates, result.profile, args.dtype, args.fusion, args.plot, report.name or args.spec)
    warnings = result.warnings()
    if warnings:
        shown = warnings[:5] + ([f"… and {len(warnings) - 5} more"] if len(warnings) > 5 else [])
        for w in shown:
            _say(f"costmodel: warning: {w}")
    return text


def _calibrate(args: argparse.Namespace) -> str:
    import yaml

    from .analysis.hardware import calibrate

    if not args.seconds > 0 or args.seconds == float("inf"):
        raise UsageError("--seconds must be a positive finite number")
    if args.spec and not args.torch:
        raise UsageError("--spec needs --torch")
    if args.torch:  # refused before any measurement
        from .calibration import check_threads

        check_threads(args.threads)
    profile = calibrate(args.seconds)
    if args.torch:
        from .api import latency_calibration

        profile["latency"] = latency_calibration(args.threads, args.spec or (), args.quick, args.out)
        for w in profile["latency"][-1].get("warnings", []):
            _say(f"costmodel: warning: {w}")
    text = yaml.safe_dump(profile, sort_keys=False, allow_unicode=True)
    return _write_out(text, args.out)


def _write_out(text: str, out: str | None) -> str:
    """Write ``text`` to ``out`` and say so, or return it to be printed when ``out`` is None."""
    if out:
        try:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"--out {out}: {exc.strerror}") from None
        return f"wrote {out}"
    return text.rstrip("\n")


def _latency(args: argparse.Namespace) -> str:
    from .api import latency
    from .present.emit import check_format
    from .present.latency import render_latency

    check_format(args.format)
    result = latency(_configured(args, args.spec), args.hardware, args.threads, "float32", **parse_set(args.set))
    for w in result.calibration.warnings[:3]:  # what calibrate found implausible, kept in the profile
        _say(f"costmodel: warning: calibration at {result.calibration.threads} threads: {w}")
    return render_latency(result.report, result.calibration, result.times, args.format, args.by)


def _memory(args: argparse.Namespace) -> str:
    from .api import memory
    from .present.emit import check_format
    from .present.memory import render_memory

    check_format(args.format)
    result = memory(_configured(args, args.spec), args.dtype, args.fusion, **parse_set(args.set))
    return render_memory(result.report, result.kernels, result.peak, args.format, args.dtype, args.fusion)


def _space_progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        sys.stderr.write(f"\renumerate: {done:,}/{total:,} chunks{end}")
        sys.stderr.flush()


def _space(args: argparse.Namespace) -> str:
    import json
    import os

    from .api import space
    from .present import space as view
    from .present.emit import check_format

    check_format(args.format)
    budgets = args.budget or []
    s = space(args.spec)
    from .analysis.space import CLI_SAMPLES, parse_budgets

    parsed = parse_budgets(budgets)
    if args.sample is not None and not 1 <= args.sample <= CLI_SAMPLES:  # each is analysed by the engine
        raise UsageError(f"--sample {args.sample}: expected an integer from 1 to {CLI_SAMPLES:,}")
    if args.enumerate:
        e = s.enumerate(parsed, args.scheduler, args.workers, progress=_space_progress)
        return view.render(view.enumeration_table(e, budgets), args.format, view.enumeration_payload(e))
    if args.table:
        return view.render(view.block_table(s.table()), args.format)
    if args.pareto:
        names = [x.strip() for x in args.pareto.split(",")]
        if len(names) != 2:
            raise UsageError("--pareto: give two metrics, e.g. macs,params")
        p = s.pareto(names[0], names[1])
        return view.render(view.pareto_table(s.spec, p), args.format, view.pareto_payload(s.spec, p))
    if args.sample is not None:
        subs = s.sample(args.sample, args.seed, parsed)
        done = [(sub, s.costs(sub)) for sub in subs]
        if args.out:
            _write_samples(s, done, args.out)
        if args.format == "json":
            return view.render([], "json", [{"choices": s.spec.to_json(a), "costs": c} for a, c in done])
        return view.render(view.samples_table(s.spec, done), args.format)
    st = s.stats(peak=args.peak)
    cnt = s.count(parsed) if parsed else None
    text = view.render(view.stats_table(s.spec, st, cnt, budgets), args.format, view.stats_payload(s.spec, st, cnt))
    if args.plot:
        from .analysis.space import cdf

        view.plot_cdf(cdf(s.fast), args.plot, f"{s.spec.name or os.path.basename(args.spec)}: CDF of MACs")
    del json
    return text


def _write_samples(s: Any, done: list[Any], out: str) -> None:
    import json
    import os

    import yaml

    try:
        if os.path.isdir(out):
            for i, (sub, c) in enumerate(done):
                data, _, _ = s.spec.concrete_data(sub)
                head = f"# sub-network {i} of {s.spec.src.file}: {json.dumps(s.spec.to_json(sub))}\n# costs: {c}\n"
                with open(os.path.join(out, f"subnet_{i:05d}.yaml"), "w", encoding="utf-8") as fh:
                    fh.write(head + yaml.safe_dump(data, sort_keys=False))
        else:
            with open(out, "w", encoding="utf-8") as fh:
                for sub, c in done:
                    fh.write(json.dumps({"choices": s.spec.to_json(sub), "costs": c}) + "\n")
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror}") from None


_IMPORT_WARNINGS_SHOWN = 20
"""How many of an import's warnings go to stderr; the spec's header lists every one."""


def _import(args: argparse.Namespace) -> str:
    from .api import import_model, import_report
    from .importers.core import to_yaml
    from .importers.sources import parse_input, parse_kwargs

    spec = import_model(args.source, parse_input(args.input), parse_kwargs(args.kwargs), args.symbolic_resolution)
    report = import_report(spec)
    header = [f"Imported by costmodel import {args.source}" + (f" --input {args.input}" if args.input else "")]
    if report is not None:
        src, got = report.source, report.spec
        header.append(
            "source: "
            + ", ".join(f"{k} {v}" for k, v in src.items())
            + " | spec: "
            + ", ".join(f"{k} {v}" for k, v in got.items())
        )
        header.append("exact: every figure equal" if report.exact else "NOT exact: see the warnings below")
        warnings = report.warnings()
        header.extend(f"warning: {line}" for line in warnings)  # all of them, in the spec's header
        shown = warnings[:_IMPORT_WARNINGS_SHOWN]
        if len(warnings) > len(shown):
            shown.append(f"… and {len(warnings) - len(shown):,} more, listed in the spec's header")
        for line in shown:
            print(f"costmodel: warning: {line}", file=sys.stderr)
    text = to_yaml(spec, header)
    return _write_out(text, args.out)


_COMMANDS: dict[str, Any] = {
    "space": _space,
    "import": _import,
    "roofline": _roofline,
    "calibrate": _calibrate,
    "memory": _memory,
    "latency": _latency,
    "table": _table,
    "formula": _formula,
    "explain": _explain,
    "sweep": _sweep,
    "compare": _compare,
    "solve": _solve,
    "schema": _schema,
    "train": _train,
}


def _say(text: str) -> None:
    """Write one line to stderr, if there is a stderr to write to."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _tune_gc() -> None:
    """Let the cyclic garbage collector run rarely in this short process: a long spec builds ~10⁶ objects
    (rows, ops, JSON records) that live to the end, and the default thresholds traverse them over and over
    (half the time of a 10,000-layer table). Everything imported so far is frozen out of its scans."""
    import gc

    gc.freeze()
    gc.set_threshold(200_000, 30, 30)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input or output that cannot be written)."""
    if argv is None:  # the program itself (console script, python -m costmodel), not a caller's process
        _tune_gc()
    try:
        words = sys.argv[1:] if argv is None else list(argv)
        args = _parser(words[0] if words and words[0] in _COMMANDS else None).parse_args(argv)
        out = _COMMANDS[args.command](args)
    except CostModelError as err:
        _say(f"costmodel: error: {err}")
        return 2
    except OSError as exc:  # writing --plot / --out (reading a spec raises SpecError)
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"costmodel: error: cannot write {where}{exc.strerror or exc}")
        return 2
    except RecursionError:  # a last guard: inputs are bounded so that this does not happen
        _say("costmodel: error: the input nests too deeply")
        return 2
    except MemoryError:
        _say("costmodel: error: out of memory: the input is too large")
        return 2
    if sys.stdout is None:  # started with stdout closed (>&-)
        _say("costmodel: error: cannot write the output: stdout is closed")
        return 2
    try:
        if isinstance(out, str):
            sys.stdout.write(out + "\n")
        else:  # a streamed command (sweep --format csv/jsonl), validated whole before its first piece
            for piece in out:
                sys.stdout.write(piece)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: the reader wanted no more
        _quiet_stdout()
        return 0
    except (OSError, ValueError) as exc:  # e.g. ENOSPC on > /dev/full; ValueError: stdout closed under us
        _quiet_stdout()
        _say(f"costmodel: error: cannot write the output: {getattr(exc, 'strerror', None) or exc}")
        return 2
    return 0
