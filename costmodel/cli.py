"""The command-line tool: parse, call the library API, print.

This is the only place that turns the library's errors into a message on stderr and exit status 2.
Output is built whole before anything is printed, so a failure never leaves half a table.

Each command is one :class:`Command` entry: its own options, the shared option groups it takes, and a
handler that makes one call of the library API (api.py) and returns that result's view in ``--format``.
The shared groups (SPEC, --set, --format, --convention, --dtype/--fusion, --resolution/--width-mult/
--depth-mult/--batch) are declared once in ``SHARED`` and applied once, for every command, by
:func:`apply_shared` before the handler runs: --format is checked, --set parsed into ``args.values``, and
the shape options applied to ``args.spec`` (``args.specs``), so no handler can read a spec without them.
Choices come from the library's own constants and registries.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import yaml

from . import api
from ._version import __version__
from .analysis.conventions import CONVENTIONS
from .analysis.design import difference, parse_budget
from .analysis.memory import DTYPES, FUSIONS
from .analysis.profiles import ROOFLINE_VIEWS, shipped_profiles
from .engine.kinds import KINDS
from .engine.metrics import METRIC_NAMES
from .engine.symbols import readable
from .errors import CostModelError, UsageError
from .present import emit
from .present.report import UNITS, VIEW_NAMES
from .spec import NetworkSpec

_SET = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$")

SPEC_HELP = (
    "a YAML spec file (input, optional scaling, layers: docs/spec.md) or a shipped spec's name, from any "
    "directory: e.g. mobilenet_v2, timm/mixnet_s, specs/networks/efficientnet_b0.yaml (`costmodel list`)"
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


# ---- the shared option groups: declared once, applied once (apply_shared) ----------------------------


def _spec_option(p: _Parser) -> None:
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)


def _values_option(p: _Parser) -> None:
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="bind a symbol (repeatable, or a,b=…)")


def _format_option(p: _Parser) -> None:
    p.add_argument(
        "--format", "-f", default="github", help="json, csv or any tabulate format (default github; sweep: also jsonl)"
    )


def _convention_option(p: _Parser) -> None:
    p.add_argument(
        "--convention",
        default="costmodel",
        metavar="NAME",
        help=f"count MACs as this tool does: {', '.join(CONVENTIONS)} (docs/conventions.md)",
    )


def _memory_options(p: _Parser) -> None:
    p.add_argument("--dtype", default="float32", choices=list(DTYPES), help="element size (default float32)")
    p.add_argument(
        "--fusion",
        default="none",
        choices=FUSIONS,
        help="execution model: every op a kernel, conv+norm+act fused, or whole blocks (default none)",
    )


def _shape_options(p: _Parser) -> None:
    p.add_argument(
        "--resolution",
        type=_resolution,
        metavar="N|HxW",
        help="override the input size: N for N×N or HxW, e.g. 96 or 160x128 (input.height, input.width)",
    )
    p.add_argument(
        "--width-mult",
        type=_positive_float,
        metavar="W",
        help="set scaling.width (channels → make_divisible(c × W, divisor)), e.g. 0.35 as torchvision's width_mult",
    )
    p.add_argument(
        "--depth-mult", type=_positive_float, metavar="D", help="set scaling.depth (repeats → ceil(repeat × D))"
    )
    p.add_argument("--batch", type=_positive_int, metavar="N", help="override the batch size (input.batch)")


SHARED: dict[str, Callable[[_Parser], None]] = {
    "spec": _spec_option,
    "format": _format_option,
    "convention": _convention_option,
    "memory": _memory_options,
    "values": _values_option,
    "shape": _shape_options,
}
"""The option groups several commands share, each declared once (a command lists those it takes)."""

SHAPE = ("resolution", "width_mult", "depth_mult", "batch")
"""The shape options' destinations: api.configure's keywords."""


def apply_shared(args: argparse.Namespace, command: Command) -> None:
    """The one post-processing step of the shared options, run before every handler: refuse a bad
    --format (before any spec is read), parse --set into ``args.values``, and replace ``args.spec`` (and
    each of ``args.specs``) by the spec with the shape options applied (``api.configure``); the paths as
    given stay in ``args.path`` / ``args.paths``."""
    shared = command.shared
    if "format" in shared and args.format not in command.streamed:
        emit.decide(args.format)  # the emitter's one decision; refuses an unknown format
    if "values" in shared:
        args.values = parse_set(args.set)
    if "spec" in shared:
        args.path = args.spec
    if "shape" in shared:
        if "spec" in shared:
            args.spec = _configured(args, args.spec)
        else:
            args.paths = list(args.specs)
            args.specs = [_configured(args, s) for s in args.specs]


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
    over = {k: getattr(args, k, None) for k in SHAPE}
    if all(v is None for v in over.values()):
        return path
    return api.configure(path, **over)


Handler = Callable[[argparse.Namespace], Any]


@dataclass(frozen=True)
class Command:
    """One command: its help line and example, the shared option groups it takes (in help order), a
    function adding its own options, and its handler (one API call and its view)."""

    name: str
    help: str
    example: str
    shared: tuple[str, ...]
    options: Callable[[_Parser], None]
    run: Handler
    streamed: tuple[str, ...] = ()  # formats besides the emitter's (sweep: jsonl)


# ---- each command's own options ------------------------------------------------------------------


def _table_options(t: _Parser) -> None:
    t.add_argument(
        "--by",
        default="auto",
        choices=VIEW_NAMES,
        help="rows: one per op, per stage, per block instance, per layer or per module path (layer name + graph node"
        " module; auto: op for one block, else block)",
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


def _formula_options(f: _Parser) -> None:
    f.add_argument("--metric", choices=METRIC_NAMES, help="one metric (default params, macs, flops)")
    f.add_argument("--stage", help="sum only this stage over all layers (e.g. depthwise)")
    f.add_argument("--format", "-f", default="text", help="text, latex or python (with --at: a table format or json)")
    f.add_argument("--diff", metavar="NAME", help="the partial derivative in this symbol")
    f.add_argument("--at", metavar="NAME=VALUE,...", help="a point: print each metric's elasticity in each symbol")
    f.add_argument("--training", action="store_true", help="training MACs and saved bytes (docs/training.md)")


def _compare_options(c: _Parser) -> None:
    c.add_argument("specs", metavar="SPEC", nargs="+", help="two or more YAML spec files; the first is the baseline")


def _solve_options(v: _Parser) -> None:
    v.add_argument("--for", dest="symbol", required=True, metavar="NAME", help="the symbol to solve for")
    v.add_argument("--budget", action="append", required=True, metavar="EXPR", help="e.g. 'macs<=3e8' (repeatable)")
    v.add_argument("--smallest", action="store_true", help="the smallest value instead of the largest")
    v.add_argument("--format", "-f", default="text", choices=["text", "json"], help="text (default) or json")
    v.add_argument(
        "--max", type=int, default=4096, metavar="N", help="search every valid value 1…N exhaustively (default 4096)"
    )


def _explain_options(e: _Parser) -> None:
    e.add_argument(
        "--vs",
        action="append",
        metavar="PEER",
        required=True,
        help=f"one PEER: costmodel vs PEER; twice: the first vs the second ({', '.join(CONVENTIONS)})",
    )


def _sweep_options(s: _Parser) -> None:
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


def _no_options(p: _Parser) -> None:
    pass


def _deploy_options(dp: _Parser) -> None:
    dp.add_argument(
        "--runtime",
        required=True,
        choices=("tinyengine", "tflm", "litert", "onnxruntime"),
        help="whose memory rules (docs/deploy.md)",
    )
    dp.add_argument("--dtype", default="int8", choices=("int8",), help="element size (int8 only)")
    dp.add_argument("--patch", type=_resolution, metavar="PxQ", help="tinyengine: patch-based inference, e.g. 4x4")
    dp.add_argument("--patch-until", metavar="BLOCK", help="the last block run patch by patch (LAYER.REPEAT, e.g. 3.0)")
    dp.add_argument("--no-input", action="store_true", help="tinyengine: leave the input image out of SRAM")
    dp.add_argument("--sram", metavar="SIZE", help="with --solve: an SRAM budget for the peak / arena, e.g. 320KiB")
    dp.add_argument("--flash", metavar="SIZE", help="with --solve: a Flash budget, e.g. 1MiB")
    dp.add_argument("--solve", choices=("resolution", "width"),
                    help="the largest resolution (every N from 32 to the spec's) or width multiplier "
                    "(0.05 … 2.00 by 0.05) that fits --sram/--flash")  # fmt: skip


def _export_options(x: _Parser) -> None:
    x.add_argument(
        "--onnx", metavar="FILE", help="write the network as ONNX (opset 17, random weights; needs torch, onnx)"
    )
    x.add_argument("--tflite", metavar="FILE", help="write it as a full-integer int8 .tflite (needs costmodel[deploy])")


def _roofline_options(r: _Parser) -> None:
    r.add_argument(
        "--hardware",
        required=True,
        metavar="PROFILE",
        help=f"a shipped profile ({', '.join(shipped_profiles())}) or a profile YAML path",
    )
    r.add_argument("--by", default="auto", choices=ROOFLINE_VIEWS, help="rows (auto: kernel for one block)")
    r.add_argument("--plot", metavar="PATH", help="also draw the roofline chart, one point per stage")


def _calibrate_options(k: _Parser) -> None:
    k.add_argument("--out", metavar="PATH", help="write the profile here (default: print it); with --torch, an "
                   "existing profile there keeps its other calibrations")  # fmt: skip
    k.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement (default 2)")
    k.add_argument("--torch", action="store_true", help="also time each op class with torch and fit its latency model")
    k.add_argument("--threads", type=int, default=1, help="threads for --torch / --runtime (default 1)")
    k.add_argument("--runtime", choices=("litert",), help="instead of --torch: time the int8 graph's op classes and "
                   "networks on LiteRT's interpreter (needs costmodel[deploy])")  # fmt: skip
    k.add_argument("--spec", action="append", metavar="SPEC", help="with --torch: also time exactly the distinct ops "
                   "of this network (repeatable), for lookup-table predictions")  # fmt: skip
    k.add_argument("--quick", action="store_true", help="with --torch: a small grid (seconds, less accurate)")


def _latency_options(lt: _Parser) -> None:
    from .present.latency import LATENCY_VIEWS

    lt.add_argument("--hardware", required=True, metavar="PROFILE", help="a profile made by calibrate --torch")
    lt.add_argument("--threads", type=int, help="use the calibration made at this many threads")
    lt.add_argument("--by", default="auto", choices=LATENCY_VIEWS, help="rows (auto: op for one block)")
    lt.add_argument("--runtime", default="torch", choices=("torch", "litert"),
                    help="torch: eager float32 (calibrate --torch); litert: the int8 graph on LiteRT "
                    "(calibrate --runtime litert)")  # fmt: skip


def _train_options(t: _Parser) -> None:
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


def _space_options(sp: _Parser) -> None:
    """The ``space`` command's options (docs/spaces.md)."""
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
    sp.add_argument("--sram", metavar="SIZE", help="deployment budget: int8 peak SRAM / arena, e.g. 320KiB")
    sp.add_argument("--flash", metavar="SIZE", help="deployment budget: int8 Flash, e.g. 1MiB")
    sp.add_argument(
        "--runtime", choices=("tinyengine", "tflm", "litert"), help="whose rules --sram/--flash use (docs/deploy.md)"
    )


def _import_options(i: _Parser) -> None:
    i.add_argument("source", metavar="SOURCE", help="timm:NAME, torchvision:NAME, package.module:callable or FILE.onnx")
    i.add_argument("--input", metavar="CxHxW", help="input size (default: timm's pretrained_cfg input_size)")
    i.add_argument("--out", metavar="FILE", help="write the spec here (default: print it)")
    i.add_argument("--symbolic-resolution", action="store_true", help="write height: H, width: W (for formulas)")
    i.add_argument(
        "--partial", action="store_true", help="write the spec even where it is not exact (default: exit status 2)"
    )
    i.add_argument(
        "--kwargs", metavar="K=V,...", help="constructor arguments: ints, floats, bools, strings (not evaluated)"
    )


# ---- the handlers: one API call, one view ---------------------------------------------------------


def _table(a: argparse.Namespace) -> str:
    report = api.count(a.spec, a.convention, a.fold_bn, **a.values)
    by = a.by
    if a.block is not None:
        report = report.block(a.block)
        if by == "auto" and a.depth is None:
            by = "op"
    text = report.table(a.format, by, a.depth, a.units, a.dtype, a.fusion)
    if a.plot:
        from .present.plot import plot_stages

        plot_stages(report, a.plot)
    return text


def _compare(a: argparse.Namespace) -> str:
    cmp = api.compare(a.specs, a.convention, a.paths, **a.values)
    text = cmp.table(a.format)
    warning = cmp.input_warning()
    if warning:
        _say(f"costmodel: warning: {warning}")
    return text


def _solve(a: argparse.Namespace) -> str:
    budgets = [parse_budget(b) for b in a.budget]
    return api.solve(a.spec, a.symbol, budgets, a.convention, a.smallest, a.max, **a.values).table(a.format)


def _explain(a: argparse.Namespace) -> str:
    if len(a.vs) > 2:
        raise UsageError("--vs: give one peer (compared with costmodel) or two")
    return api.explain(a.spec, *a.vs, **a.values).table(a.format)


def _memory(a: argparse.Namespace) -> str:
    return api.memory(a.spec, a.dtype, a.fusion, **a.values).table(a.format)


def _budget(text: str | None, flag: str) -> int | None:
    from .analysis.training import parse_bytes

    if text is None:
        return None
    try:
        return parse_bytes(text)
    except UsageError as e:  # parse_bytes names --memory: name the flag given
        raise UsageError(str(e).replace("--memory", flag, 1)) from None


def _deploy(a: argparse.Namespace) -> str:
    sram, flash = _budget(a.sram, "--sram"), _budget(a.flash, "--flash")
    if a.solve is None and (sram is not None or flash is not None):
        raise UsageError("--sram/--flash are budgets for --solve resolution|width")
    if a.solve is not None:
        if getattr(a, "resolution" if a.solve == "resolution" else "width_mult") is not None:
            raise UsageError(f"--solve {a.solve} finds the {a.solve}: drop --{a.solve.replace('width', 'width-mult')}")
        solved = api.deploy_solve(
            a.spec, a.solve, a.runtime, sram=sram, flash=flash, include_input=not a.no_input,
            patch=a.patch, patch_until=a.patch_until, **a.values,
        )  # fmt: skip
        return solved.table(a.format)
    result = api.deploy(
        a.spec,
        a.runtime,
        a.dtype,
        include_input=not a.no_input,
        patch=a.patch,
        patch_until=a.patch_until,
        **a.values,
    )
    return result.table(a.format)


def _export(a: argparse.Namespace) -> str:
    if (a.onnx is None) == (a.tflite is None):
        raise UsageError("export: give one of --onnx FILE or --tflite FILE")
    if a.tflite is not None:
        size = api.export_tflite(a.spec, a.tflite, **a.values)
        return f"wrote {a.tflite}: int8 .tflite, {size:,} bytes"
    shape_in, shape_out = api.export_onnx(a.spec, a.onnx, **a.values)
    dims = "×".join
    return f"wrote {a.onnx}: ONNX opset 17, input {dims(map(str, shape_in))}, output {dims(map(str, shape_out))}"


def _roofline(a: argparse.Namespace) -> str:
    result = api.roofline(a.spec, a.hardware, a.dtype, a.fusion, **a.values)
    text = result.table(a.format, a.by)
    if a.plot:
        from .present.plot import plot_roofline

        plot_roofline(result.estimates, result.profile, a.dtype, a.fusion, a.plot, result.memory.report.name or a.path)
    warnings = result.warnings()
    shown = warnings[:5] + ([f"… and {len(warnings) - 5} more"] if len(warnings) > 5 else [])
    for w in shown:
        _say(f"costmodel: warning: {w}")
    return text


def _latency(a: argparse.Namespace) -> str:
    result = api.latency(a.spec, a.hardware, a.threads, "int8" if a.runtime == "litert" else "float32", **a.values)
    for w in result.calibration.warnings[:3]:  # what calibrate found implausible, kept in the profile
        _say(f"costmodel: warning: calibration at {result.calibration.threads} threads: {w}")
    return result.table(a.format, a.by)


def _train(a: argparse.Namespace) -> str:
    if (a.solve is None) != (a.memory is None):
        raise UsageError("--solve batch and --memory go together")
    settings = (a.optimizer, a.dtype, a.checkpoint)
    if a.vs:
        return api.train_vs_torch(a.spec, a.batch, *settings, a.device, **a.values).table(a.format)
    if a.solve:
        if a.batch is not None:
            raise UsageError("--solve batch finds the batch: drop --batch")
        from .analysis.training import parse_bytes

        _, step = api.largest_batch(a.spec, parse_bytes(a.memory), *settings, a.device, a.convention, **a.values)
        return step.table(a.format, a.by)
    return api.train(a.spec, a.batch, *settings, a.convention, a.device, **a.values).table(a.format, a.by)


def _schema(a: argparse.Namespace) -> str:
    return json.dumps(NetworkSpec.model_json_schema(), indent=2)


def _list(a: argparse.Namespace) -> str:
    from .present.shipped import render_shipped

    return render_shipped(api.shipped(), a.format)


def _space(a: argparse.Namespace) -> str:
    from .analysis.space import CLI_SAMPLES, parse_budgets

    s = api.space(a.spec)
    budgets = a.budget or []
    parse_budgets(budgets)  # refuse a bad budget first
    if a.sample is not None and not 1 <= a.sample <= CLI_SAMPLES:  # each is analysed by the engine
        raise UsageError(f"--sample {a.sample}: expected an integer from 1 to {CLI_SAMPLES:,}")
    sram, flash = _budget(a.sram, "--sram"), _budget(a.flash, "--flash")
    if (a.runtime is None) != (sram is None and flash is None):
        raise UsageError("--sram/--flash and --runtime go together")
    if a.runtime is not None:
        if a.enumerate or a.table or a.pareto or a.peak or a.plot:
            raise UsageError("--sram/--flash count (or, with --sample, draw) sub-networks: drop the other modes")
        if a.sample is None:
            return s.deploy_count(a.runtime, sram, flash, budgets).table(a.format)
        drawn = s.deploy_draw(a.sample, a.runtime, sram, flash, a.seed, budgets)
        if a.out:
            _write_samples(s, drawn.samples, a.out)
        return drawn.table(a.format)
    if a.enumerate:
        return s.enumeration(budgets, a.scheduler, a.workers, progress=_space_progress).table(a.format)
    if a.table:
        return s.blocks().table(a.format)
    if a.pareto:
        names = [x.strip() for x in a.pareto.split(",")]
        if len(names) != 2:
            raise UsageError("--pareto: give two metrics, e.g. macs,params")
        return s.front(names[0], names[1]).table(a.format)
    if a.sample is not None:
        drawn = s.draw(a.sample, a.seed, budgets)
        if a.out:
            _write_samples(s, drawn.samples, a.out)
        return drawn.table(a.format)
    summary = s.summary(budgets, a.peak)
    text = summary.table(a.format)
    if a.plot:
        from .analysis.space import cdf
        from .present.space import plot_cdf

        plot_cdf(cdf(s.fast), a.plot, f"{s.spec.name or os.path.basename(a.spec)}: CDF of MACs")
    return text


def _formula(a: argparse.Namespace) -> str:
    import sympy

    if a.training:
        return _formula_training(a)
    metrics = [a.metric] if a.metric else ["params", "macs", "flops"]
    if a.at:
        if a.format != "text":
            emit.decide(a.format)
        items = api.sensitivity(a.spec, parse_set([a.at]), metrics, **a.values)
        return items.table("github" if a.format == "text" else a.format)
    _formula_format(a.format)
    if a.diff and a.stage:
        raise UsageError("--diff and --stage cannot be combined")

    lines = []
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 8000))  # sympy builds and prints nested floors recursively (one per stride)
    try:
        report = api.analyze(a.spec, **a.values)
        for m in metrics:
            if a.diff:
                expr, method = difference(report, m, a.diff)
                if method != "exact":
                    sys.stderr.write(f"costmodel: note: {m}: {method}\n")
            else:
                expr = report.formula(m, a.stage)
            text = sympy.latex(expr) if a.format == "latex" else sympy.sstr(expr)
            lines.append(text if a.metric else f"{m} = {text}")
    except RecursionError:
        raise UsageError(
            "the formula nests too deeply for sympy (one floor per symbolic stride); bind some symbols with --set"
        ) from None
    finally:
        sys.setrecursionlimit(limit)
    return "\n".join(lines)


def _formula_format(fmt: str) -> None:
    if fmt not in ("text", "latex", "python"):
        raise UsageError(f"--format {fmt!r}: expected text, latex or python")


def _formula_training(a: argparse.Namespace) -> str:
    """``formula --training``: training MACs and saved-activation bytes in the spec's symbols, printed as
    ``formula`` prints (``ceiling(H/32)``, not ``floor(H/32 - 1/32) + 1``: engine/symbols.py ``readable``)."""
    import sympy

    if a.at or a.diff or a.stage or a.metric:
        raise UsageError("--training takes no --at, --diff, --stage or --metric")
    _formula_format(a.format)
    totals = api.train(a.spec, None, "sgd", "float32", "none", "costmodel", "cpu", **a.values).totals
    lines = []
    for m in ("training_macs", "saved_bytes"):
        expr = sympy.factor(readable(sympy.Integer(0) + totals[m]))
        text = sympy.latex(expr) if a.format == "latex" else sympy.sstr(expr)
        lines.append(f"{m} = {text}")
    return "\n".join(lines)


def _sweep(a: argparse.Namespace) -> Any:
    from .analysis.sweep import CHUNK, parse_vary
    from .present.sweep import check_size, streamed

    axes = parse_vary(a.vary)
    both = sorted(set(axes) & set(a.values))
    if both:
        raise UsageError(f"{both[0]} is given both --vary and --set")
    plan = api._sweep_plan(a.spec, a.metric or ["params", "macs", "flops"], a.convention, {**a.values, **axes})
    check_size(plan.size, a.format)
    progress = _progress(a) if plan.size > CHUNK else None
    if a.plot:
        if plan.size > 10**6:
            raise UsageError(f"--plot draws at most 1,000,000 points; the grid has {plan.size:,}")
        from .present.plot import plot_sweep

        plot_sweep(_whole(plan), a.plot, plan.convention)
    if streamed(a.format):
        return _invalid_note(plan, a.format, progress, a.spec)
    result = _whole(plan, progress)
    text = result.table(a.format)
    if result.checked:
        bad = [i for i, ok in enumerate(result["valid"]) if not ok]
        _warn_invalid(plan, len(bad), bad[0] if bad else None, a.spec)
    return text


def _calibrate(args: argparse.Namespace) -> str:
    from .analysis.hardware import calibrate

    if not args.seconds > 0 or args.seconds == float("inf"):
        raise UsageError("--seconds must be a positive finite number")
    if args.spec and not args.torch:
        raise UsageError("--spec needs --torch")
    if args.torch and args.runtime:
        raise UsageError("--torch and --runtime each make a latency calibration: give one")
    if args.torch or args.runtime:  # refused before any measurement
        from .calibration import check_threads

        check_threads(args.threads)
    if args.runtime:
        from .tflite import litert_version

        litert_version()
    profile = calibrate(args.seconds)
    if args.runtime:
        profile["latency"] = api.latency_calibration(args.threads, (), args.quick, args.out, runtime=args.runtime)
        for w in profile["latency"][-1].get("warnings", []):
            _say(f"costmodel: warning: {w}")
    if args.torch:
        profile["latency"] = api.latency_calibration(args.threads, args.spec or (), args.quick, args.out)
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


def _space_progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        sys.stderr.write(f"\renumerate: {done:,}/{total:,} chunks{end}")
        sys.stderr.flush()


def _write_samples(s: Any, done: list[Any], out: str) -> None:
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
    from .importers.core import to_yaml
    from .importers.sources import parse_input, parse_kwargs

    size, kwargs = parse_input(args.input), parse_kwargs(args.kwargs)
    with contextlib.redirect_stdout(sys.stderr):  # the user's code may print: stdout is the spec's alone
        spec = api.import_model(args.source, size, kwargs, args.symbolic_resolution, partial=True)
    report = api.import_report(spec)
    header = [f"Imported by costmodel import {args.source}" + (f" --input {args.input}" if args.input else "")]
    traced = spec.provenance.input if spec.provenance is not None else None
    if traced:
        header.append(f"traced at {traced} (--input CxHxW traces at another size)")
        print(f"costmodel: traced at {traced}", file=sys.stderr)
    if report is not None:
        src, got = report.source, report.spec
        header.append(
            "source: "
            + ", ".join(f"{k} {v}" for k, v in src.items())
            + " | spec: "
            + ", ".join(f"{k} {v}" for k, v in got.items())
        )
        header.append("exact: every figure equal" if report.exact else "NOT exact: see the warnings below")
        warnings = report.warnings(coverage=False)
        header.extend(f"warning: {line}" for line in warnings)  # all of them, in the spec's header
        header.append(report.coverage_line())
        shown = warnings[:_IMPORT_WARNINGS_SHOWN]
        if len(warnings) > len(shown):
            shown.append(f"… and {len(warnings) - len(shown):,} more, listed in the spec's header")
        for line in shown:
            print(f"costmodel: warning: {line}", file=sys.stderr)
        if not report.exact and not args.partial:  # never a silently partial spec: warnings, then refused
            raise UsageError(report.refusal())
        print(f"costmodel: {report.coverage_line()}", file=sys.stderr)  # always the last line
    text = to_yaml(spec, header)
    return _write_out(text, args.out)


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
    point = plan.point(first)
    reason = "table --set refuses it"
    try:
        api.count(spec, "costmodel", False, **plan.fixed, **point)
    except CostModelError as err:
        reason = str(err)
    where = ",".join(f"{k}={v}" for k, v in point.items())
    sys.stderr.write(
        f"costmodel: warning: {bad:,} of {plan.size:,} points are invalid (valid=false, metrics left empty); "
        f"the first, {where}: {reason}\n"
    )


_IMPORT_HELP = "a PyTorch / timm / torchvision model or an ONNX file → a YAML spec"
_IMPORT_DESCRIPTION = (
    "Trace a model on the meta device (or read an ONNX graph) and write the spec that describes it "
    "exactly; what the spec cannot say is named on stderr with the share of MACs and params covered, and "
    "the import exits with status 2 writing nothing unless --partial is given. "
    "SOURCE is timm:NAME (pretrained=False), torchvision:NAME (weights=None), package.module:callable "
    "(IMPORTS AND RUNS that Python code; the current directory is importable) or a path to a .onnx file "
    "(needs only the onnx package)."
)
_READS = ("spec", "values", "shape")  # every command that reads one network spec takes these
COMMANDS: tuple[Command, ...] = (
    Command("table", "per-op, per-stage or per-block cost table with totals",
            "costmodel table specs/seed_mbconv.yaml --by stage",
            ("spec", "format", "convention", "memory", "values", "shape"), _table_options, _table),
    Command("formula", "closed-form formulas of each metric in the spec's symbols",
            "costmodel formula specs/symbolic_mbconv.yaml --metric macs", _READS, _formula_options, _formula),
    Command("compare", "specs side by side: totals, ratios to the first, stage shares",
            "costmodel compare specs/seed_mbconv.yaml specs/seed_dwsep.yaml",
            ("format", "convention", "values", "shape"), _compare_options, _compare),
    Command("solve", "the largest (or smallest) value of a symbol meeting budgets",
            "costmodel solve specs/symbolic_mbconv.yaml --for t --budget 'macs<=1e5' --set C=4,k=3,H=8,W=8",
            ("spec", "convention", "values", "shape"), _solve_options, _solve),
    Command("explain", "op by op, where two counting conventions differ",
            "costmodel explain specs/networks/efficientnet_b0.yaml --vs thop",
            ("spec", "format", "values", "shape"), _explain_options, _explain),
    Command("sweep", "exact costs over a grid of symbol values",
            "costmodel sweep specs/symbolic_mbconv.yaml --vary t=1,2,4,6 --set C=16,k=3,H=32,W=32",
            ("spec", "format", "convention", "values", "shape"), _sweep_options, _sweep, ("jsonl",)),
    Command("memory", "bytes each kernel moves, arithmetic intensity, peak activation memory",
            "costmodel memory specs/seed_mbconv.yaml --fusion block",
            ("spec", "format", "memory", "values", "shape"), _no_options, _memory),
    Command("deploy", "int8 on a microcontroller runtime: peak SRAM or arena, Flash, live-tensor timeline",
            "costmodel deploy mobilenet_v2 --runtime tinyengine --patch 4x4 --patch-until 3.0",
            ("spec", "format", "values", "shape"), _deploy_options, _deploy),
    Command("export", "write the spec's network (random weights) as ONNX or int8 .tflite, to run on a real runtime",
            "costmodel export mobilenet_v2 --resolution 96 --onnx m.onnx && costmodel import m.onnx",
            ("spec", "values", "shape"), _export_options, _export),
    Command("roofline", "roofline time per kernel on a hardware profile; compute- or memory-bound",
            "costmodel roofline specs/networks/efficientnet_b0.yaml --hardware mobile_soc",
            ("spec", "format", "memory", "values", "shape"), _roofline_options, _roofline),
    Command("calibrate", "measure this machine (numpy roofline, or per-op latency with --torch); write a profile",
            "costmodel calibrate --torch --threads 2 --out my_machine.yaml", (), _calibrate_options, _calibrate),
    Command("latency", "predicted eager latency per op, block and total, from a calibrated profile",
            "costmodel latency specs/networks/mobilenet_v2.yaml --hardware my_machine.yaml --threads 2",
            ("spec", "format", "values", "shape"), _latency_options, _latency),
    Command("schema", "JSON Schema of the spec format", "costmodel schema > costmodel.schema.json",
            (), _no_options, _schema),
    Command("list", "the shipped specs: each name works as SPEC from any directory", "costmodel list -f json",
            ("format",), _no_options, _list),
    Command("train", "costs of one training step: forward + backward MACs, saved activations, memory, batch",
            "costmodel train specs/networks/efficientnet_b4.yaml --batch 64 --optimizer adamw",
            ("spec", "format", "values", "shape"), _train_options, _train),
    Command("space", "exact analysis of a search space: size, min/max/mean/std, budget counts, sampling",
            "costmodel space specs/spaces/ofa_mobilenetv3.yaml --budget 'macs<=3e8'",
            ("spec", "format"), _space_options, _space),
    Command("import", _IMPORT_HELP,
            "costmodel import torchvision:mobilenet_v3_small > m.yaml && costmodel table m.yaml",
            (), _import_options, _import),
)  # fmt: skip
"""Every command, in the order ``--help`` lists them."""

_BY_NAME = {c.name: c for c in COMMANDS}


def _kinds() -> str:
    """The registered layer kinds, for the help (engine/kinds.py's registry: a new kind appears here)."""

    return ", ".join(KINDS)


def _parser(only: str | None = None) -> _Parser:
    """The whole command line; with ``only`` (the command being run), only that command is declared: the
    others appear only in the program's help and in the error for an unknown command, which are built
    without ``only`` (each parser costs a few ms of argparse set-up at every start)."""

    p = _Parser(prog="costmodel", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"costmodel {__version__}")
    if only is None:  # the program's own help: built only when it may be shown
        description = (
            "Static, exact costs of mobile CNNs from a YAML spec: params, MACs, FLOPs, shapes, formulas, "
            "memory and latency.\n\n"
            "SPEC is a YAML file describing a network or a block: its input (channels, height, width, batch), "
            f"optional scaling, and a list of layers of any registered kind ({_kinds()}); integers may be "
            "symbol names bound with --set. Format: docs/spec.md; shipped specs work by name from any directory "
            "(mobilenet_v2, timm/mixnet_s; `costmodel list` shows them), `costmodel schema` for the JSON Schema."
        )
        epilog = (
            "conventions (--convention, explain --vs): "
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
            "  costmodel CMD --help   (each command's options and an example)"
        )
        p.description = "\n\n".join(textwrap.fill(part, 79) for part in description.split("\n\n"))
        p.epilog = "\n".join(
            textwrap.fill(line, 79, subsequent_indent="  ") if not line.startswith("  ") else line
            for line in epilog.split("\n")
        )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for c in COMMANDS:
        if only is not None and c.name != only:  # never shown nor consulted when ``only`` runs
            continue
        described = _IMPORT_DESCRIPTION if c.name == "import" else c.help
        s = sub.add_parser(c.name, help=c.help, description=described, epilog=f"example: {c.example}")
        for group in c.shared:
            SHARED[group](s)
        c.options(s)
    return p


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Command]:
    """Parse a command line and apply the shared options (:func:`apply_shared`); the namespace and its
    command. Raises UsageError on bad input."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = _parser(words[0] if words and words[0] in _BY_NAME else None).parse_args(argv)
    command = _BY_NAME[args.command]
    apply_shared(args, command)
    return args, command


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

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _tune_gc() -> None:
    """Let the cyclic garbage collector run rarely in this short process: a long spec builds ~10⁶ objects
    (rows, ops, JSON records) that live to the end, and the default thresholds traverse them over and over
    (half the time of a 10,000-layer table). Everything imported so far is frozen out of its scans."""

    gc.freeze()
    gc.set_threshold(200_000, 30, 30)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input or output that cannot be written)."""
    if argv is None:  # the program itself (console script, python -m costmodel), not a caller's process
        _tune_gc()
    try:
        args, command = parse(argv)
        out = command.run(args)
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
