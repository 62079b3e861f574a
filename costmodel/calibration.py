"""Calibration by measurement (needs torch): time each op class on this machine, fit its efficiency model.

``calibrate(threads=N)`` times, with torch in eager mode (eval, no_grad, float32, CPU, N threads), every
op class of analysis/latency.py over a grid of shapes typical of mobile CNNs (pointwise, depthwise by
kernel and stride, dense and grouped convs; BatchNorm; each activation; SE's pool, add, mul; linear),
at batch 1 and 4, and fits t = a₀ + a_macs·MACs + a_bytes·bytes per class (analysis/latency.fit). Each
sample is the median of repeated runs after warm-up, repeated until their spread settles (``time_stats``);
fits that cannot be right — an overhead above the class's kernels, a fit error ≥ 50%, an in-network scale
far from 1 — are rejected with a warning kept in the profile (``judge``, ``recheck_overheads``,
``with_context``). ``measure_spec`` times exactly the distinct ops of
a network (the per-spec lookup table). Shapes come from costmodel's own rows, so what is timed is what
is predicted.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .analysis.latency import (
    OVERHEAD_SLACK,
    ClassModel,
    LatencyCalibration,
    fit,
    fit_context,
    implausible_context,
    implausible_fit,
    op_bytes,
    op_class,
    op_key,
)
from .engine.report import Report, Row
from .errors import UsageError
from .spec.names import ACTIVATIONS


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise UsageError("calibrate --torch needs torch: pip install 'costmodel[torch]'") from None
    return torch


def op_callable(row: Row, batch: int) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """A torch callable that runs ``row``'s op and its inputs (zeros of the right shapes), float32 CPU."""
    torch = _torch()
    nn = torch.nn
    op = row.op
    shape = (batch, *[int(s) for s in op.input])
    x = torch.zeros(shape)
    if op.category == "conv":
        k, s, g = (int(op.attrs.get(n, d)) for n, d in (("kernel", 1), ("stride", 1), ("groups", 1)))
        pad = int(op.attrs.get("padding", k // 2))
        mod = nn.Conv2d(int(op.input[0]), int(op.output[0]), k, s, pad, groups=g, bias=op.bias).eval()
        return mod, (x,)
    if op.category == "norm":
        if op.name != "batchnorm2d":
            raise UsageError(f"calibrate cannot time the norm {op.name!r} yet")
        return nn.BatchNorm2d(int(op.input[0])).eval(), (x,)
    if op.category == "act":
        act = ACTIVATIONS.get(op.name)  # spec/names.py: its torch.nn class
        if act is None:
            raise UsageError(f"calibrate cannot time the activation {op.name!r} yet")
        return getattr(nn, act.torch)(**dict(act.torch_kwargs)), (x,)
    if op.category == "pool":
        if op.variant == "mean":
            return (lambda t: t.mean((2, 3), keepdim=True)), (x,)
        if op.variant == "functional":
            return (lambda t: nn.functional.adaptive_avg_pool2d(t, (1, 1))), (x,)
        return nn.AdaptiveAvgPool2d(1), (x,)
    if op.category == "add":
        return (lambda a, b: a + b), (x, torch.zeros(shape))
    if op.category == "mul":
        return (lambda a, b: a * b), (x, torch.zeros((batch, int(op.input[0]), 1, 1)))
    if op.category == "linear":
        flat = torch.zeros((batch, int(row.costs["macs"]) // (batch * int(op.output[0]))))
        return nn.Linear(flat.shape[1], int(op.output[0]), bias=op.bias).eval(), (flat,)
    if op.category == "dropout":
        return nn.Dropout(0.2).eval(), (x,)
    raise UsageError(f"calibrate cannot time the op {op.name!r}")


#: A timing is stable when the interquartile range of its repeats is at most this share of their median.
STABLE_SPREAD = 0.2


@dataclass(frozen=True)
class Timing:
    """Repeated timings of one call: the median, the spread (interquartile range / median) and whether the
    spread settled at or below STABLE_SPREAD."""

    median: float
    spread: float
    runs: int
    fastest: float = 0.0  # the quickest run: on a shared machine other processes only ever add time

    @property
    def stable(self) -> bool:
        """Whether the repeats agree within STABLE_SPREAD."""
        return self.spread <= STABLE_SPREAD


def spread(times: Sequence[float]) -> float:
    """(q₃ − q₁) / median of ``times``: 0 when every run took the same time."""
    if len(times) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(times)


def time_stats(
    fn: Callable[..., Any], args: tuple[Any, ...], repeats: int = 15, budget_s: float = 0.25, no_grad: bool = True
) -> Timing:
    """Seconds of ``fn(*args)`` after warm-up: at least 5 and up to ``repeats`` runs within ``budget_s``; while
    their spread is above STABLE_SPREAD, more runs (up to 4 × ``repeats``, 4 × ``budget_s``) until it settles.
    ``no_grad``: under torch.no_grad() (False for a call that is not torch's, e.g. LiteRT's invoke)."""
    import contextlib

    with _torch().no_grad() if no_grad else contextlib.nullcontext():
        for _ in range(3):
            fn(*args)
        times: list[float] = []
        begin = time.perf_counter()
        end, last = begin + budget_s, begin + 4 * budget_s
        while True:
            start = time.perf_counter()
            fn(*args)
            now = time.perf_counter()
            times.append(now - start)
            if len(times) < 5:
                continue
            enough = len(times) >= repeats or now >= end
            if enough and (spread(times) <= STABLE_SPREAD or len(times) >= 4 * repeats or now >= last):
                break
    return Timing(statistics.median(times), spread(times), len(times), min(times))


def time_call(fn: Callable[..., Any], args: tuple[Any, ...], repeats: int = 15, budget_s: float = 0.25) -> float:
    """Median seconds of ``fn(*args)`` (see :func:`time_stats`)."""
    return time_stats(fn, args, repeats, budget_s).median


def check_threads(threads: object) -> int:
    """``threads`` as a thread count calibrate can use: an integer from 1 to this machine's CPU count (at
    most MAX_THREADS); anything else is refused before any measurement."""
    import os

    from .analysis.latency import MAX_THREADS

    cpus = min(os.cpu_count() or 1, MAX_THREADS)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cpus:
        raise UsageError(f"--threads {threads!r}: expected an integer from 1 to {cpus} (this machine's CPU count)")
    return threads


def _grid_specs(quick: bool) -> list[str]:
    """Small one-layer specs (YAML) whose rows span the op classes over typical shapes."""
    rng = random.Random(0)
    specs: list[str] = []

    def spec(c: int, res: int, layer: str, batch: int) -> str:
        return (
            f"input: {{channels: {c}, height: {res}, width: {res}, batch: {batch}}}\n"
            f"defaults: {{activation: relu, norm: none}}\nlayers:\n  - {layer}\n"
        )

    widths = [16, 24, 32, 40, 64, 80, 96, 112, 144, 192, 240, 320, 480, 672, 960, 1152]
    resolutions = [7, 14, 28, 56, 112]
    n = 8 if quick else 22
    for _ in range(n):  # pointwise and dense convs, some with bias
        cin, cout, res = rng.choice(widths), rng.choice(widths), rng.choice(resolutions)
        batch = rng.choice((1, 1, 4))
        specs.append(spec(cin, res, f"{{kind: conv, out_channels: {cout}, kernel: 1, activation: none}}", batch))
    for _ in range(n // 2):  # SE-sized 1×1 convs on 1×1 maps, with bias
        cin, cout = rng.choice(widths), rng.choice(widths)
        specs.append(spec(cin, 1, f"{{kind: conv, out_channels: {cout}, kernel: 1, bias: true, activation: none}}", 1))
    for k in (3, 5, 7):
        for s in (1, 2):
            for _ in range(3 if quick else 7):
                c, res, batch = rng.choice(widths), rng.choice(resolutions), rng.choice((1, 1, 4))
                specs.append(
                    spec(c, res, f"{{kind: conv, out_channels: {c}, groups: {c}, kernel: {k}, stride: {s}}}", batch)
                )
    for k, s in ((3, 2), (3, 1), (5, 1), (1, 2)):  # stems, fused convs, strided 1×1 shortcuts
        for _ in range(2 if quick else (12 if k == 3 else 5)):
            cin = 3 if rng.random() < 0.25 else rng.choice(widths[:9])
            cout = rng.choice(widths[:11])
            res = rng.choice((24, 28, 48, 56, 96, 112, 192, 224))
            batch = rng.choice((1, 1, 2))
            specs.append(spec(cin, res, f"{{kind: conv, out_channels: {cout}, kernel: {k}, stride: {s}}}", batch))
    for _ in range(2 if quick else 4):  # grouped convs
        g = rng.choice((2, 4, 8))
        c, res = 8 * g * rng.choice((1, 2, 4)), rng.choice(resolutions)
        specs.append(spec(c, res, f"{{kind: conv, out_channels: {c}, groups: {g}, kernel: 3}}", 1))
    acts = ("relu", "relu6", "silu", "hardswish")
    for _ in range(n):  # BatchNorm + activations; SE's pool, gate, multiply; residual adds
        c, res, batch = rng.choice(widths), rng.choice(resolutions + [1]), rng.choice((1, 1, 4))
        act = rng.choice(acts)
        gate = rng.choice(("sigmoid", "hardsigmoid"))
        layer = (
            f"{{kind: mbconv, out_channels: {c}, expansion: 1, kernel: 3, norm: batchnorm, activation: {act}, "
            f"se: 0.25, se_gate: {gate}}}"
        )
        specs.append(spec(c, max(res, 2), layer, batch))
    for _ in range(3 if quick else 6):  # classifier heads
        c = rng.choice((576, 960, 1024, 1280, 1536, 2560))
        out = rng.choice((1000, 1024, 1280))
        specs.append(spec(c, rng.choice((7, 10, 12)), f"{{kind: pool}}\n  - {{kind: linear, out_features: {out}}}", 1))
    return specs


def _samples(
    reports: Iterable[Report], repeats: int, timings: list[Timing] | None = None
) -> dict[str, list[tuple[float, float, float]]]:
    by_class: dict[str, list[tuple[float, float, float]]] = {}
    seen: set[str] = set()
    for report in reports:
        batch = int(report.batch)
        for row in report.rows:
            key = op_key(row, batch)
            if key in seen:
                continue
            seen.add(key)
            fn, args = op_callable(row, batch)
            timing = time_stats(fn, args, repeats)
            if timings is not None:
                timings.append(timing)
            by_class.setdefault(op_class(row), []).append(
                (float(row.costs["macs"]), float(op_bytes(row, batch)), timing.median)
            )
    return by_class


def judge(
    by_class: dict[str, list[tuple[float, float, float]]], timings: Sequence[Timing] = ()
) -> tuple[dict[str, ClassModel], dict[str, str], list[str]]:
    """Fit each class's model and keep only the plausible ones (analysis/latency.implausible_fit): the kept
    models, the rejected classes with the reason, and the warnings for the profile and stderr (rejections,
    and timings that did not settle). Every class rejected is refused: nothing usable was measured."""
    classes: dict[str, ClassModel] = {}
    rejected: dict[str, str] = {}
    warnings: list[str] = []
    for name, samples in sorted(by_class.items()):
        model = fit(samples)
        reason = implausible_fit(model, samples)
        if reason is None:
            classes[name] = model
        else:
            rejected[name] = reason
            warnings.append(f"rejected the fit of {name}: {reason}; its ops use the default overhead")
    unstable = [t for t in timings if not t.stable]
    if timings and len(unstable) * 4 > len(timings):
        warnings.append(
            f"{len(unstable)} of {len(timings)} timings did not settle (their spread stayed above "
            f"{STABLE_SPREAD:.0%} of the median after repeating): the machine is busy; calibrate when it is idle"
        )
    if by_class and not classes:
        raise UsageError(
            "calibration failed: every op class's fit is implausible (" + "; ".join(warnings[:2]) + "); "
            "calibrate when the machine is idle"
        )
    return classes, rejected, warnings


def calibrate(threads: int = 1, quick: bool = False, repeats: int = 15) -> LatencyCalibration:
    """Measure every op class on this machine at ``threads`` threads and fit its latency model.

    ``quick`` uses a small grid (for tests); the full grid takes about a minute on 2 cores.
    """
    from .engine.walk import analyze_spec
    from .spec.loader import loads

    threads = check_threads(threads)
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    timings: list[Timing] = []
    try:
        reports: list[Report] = [analyze_spec(loads(text, "<calibration grid>")) for text in _grid_specs(quick)]
        by_class = _samples(reports, repeats, timings)
    finally:
        torch.set_num_threads(before)
    classes, rejected, warnings = judge(by_class, timings)
    elementwise = [m.overhead_s for c, m in classes.items() if c.startswith("act_") or c in ("add", "mul")]
    cal = LatencyCalibration(
        threads=threads,
        framework=f"torch {torch.__version__} eager, CPU, float32",
        classes=classes,
        default_overhead_s=statistics.median(elementwise) if elementwise else 5e-6,
        noise=statistics.median(t.spread for t in timings) if timings else None,
        warnings=warnings,
        rejected=rejected,
    )
    return _in_network(cal, quick, repeats)


def _synthetic_networks(quick: bool) -> list[str]:
    """Random MBConv-family networks (seeded; not any shipped network) for the in-network correction."""
    rng = random.Random(1)
    out = []
    for i in range(2 if quick else 8):
        res = rng.choice((48, 64) if quick else (64, 96, 128, 160, 192))
        batch = rng.choice((1, 1, 2))
        act = rng.choice(("relu", "relu6", "silu", "hardswish"))
        layers = [f"  - {{kind: conv, out_channels: {rng.choice((16, 24, 32))}, stride: 2}}"]
        c = 16
        for _ in range(rng.randint(5, 12)):
            c = min(320, c + rng.choice((0, 0, 8, 16, 24)))
            kind = rng.choice(("mbconv", "mbconv", "mbconv", "fused_mbconv", "dwsep"))
            k = rng.choice((3, 5)) if kind != "fused_mbconv" else 3
            s = rng.choice((1, 1, 1, 2))
            extra = f", expansion: {rng.choice((1, 3, 4, 6))}" if kind != "dwsep" else ""
            se = ", se: 0.25" if kind == "mbconv" and rng.random() < 0.4 else ""
            layers.append(
                f"  - {{kind: {kind}, out_channels: {c}, kernel: {k}, stride: {s}, repeat: {rng.choice((1, 2))}"
                f"{extra}{se}}}"
            )
        layers += [
            "  - {kind: conv, out_ratio: 4, kernel: 1}",
            "  - {kind: pool}",
            "  - {kind: linear, out_features: 1000}",
        ]
        out.append(
            f"name: synthetic {i}\ninput: {{channels: 3, height: {res}, width: {res}, batch: {batch}}}\n"
            f"defaults: {{activation: {act}}}\nlayers:\n" + "\n".join(layers) + "\n"
        )
    return out


def _in_network(cal: LatencyCalibration, quick: bool, repeats: int) -> LatencyCalibration:
    """``cal`` with the in-network correction fitted: synthetic networks are timed whole and op by op, and
    measured = scale · predicted + per_op · ops fitted for the class models and for measured entries."""
    from .analysis.latency import predict, total_seconds
    from .engine.walk import analyze_spec
    from .spec.loader import loads
    from .torchref import build

    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(cal.threads)
    runs: list[tuple[Report, float, LatencyCalibration]] = []
    try:
        for text in _synthetic_networks(quick):
            spec = loads(text, "<synthetic network>")
            report: Report = analyze_spec(spec)
            model, shape = build(spec)
            model.eval()
            whole = time_call(model, (torch.zeros(shape),), repeats=9 if quick else 15, budget_s=0.5)
            isolated = measure_spec([report], cal.model_copy(update={"table": {}}), repeats)
            runs.append((report, whole, isolated))
    finally:
        torch.set_num_threads(before)
    fastest: dict[str, float] = {}  # each class's fastest kernel among the networks' ops, timed again
    for report, _, isolated in runs:
        for row in report.rows:
            t = isolated.table[op_key(row, int(report.batch))]
            fastest[op_class(row)] = min(t, fastest.get(op_class(row), t))
    cal = recheck_overheads(cal, fastest)
    class_samples = [(total_seconds(predict(r, cal)), len(r.rows), whole) for r, whole, _ in runs]
    table_samples = [
        (total_seconds(predict(r, isolated.model_copy(update={"classes": cal.classes}))), len(r.rows), whole)
        for r, whole, isolated in runs
    ]
    return with_context(cal, class_samples, table_samples)


def recheck_overheads(cal: LatencyCalibration, fastest: dict[str, float]) -> LatencyCalibration:
    """``cal`` without the class models whose per-kernel overhead is above OVERHEAD_SLACK × ``fastest[class]``,
    the time of one of that class's kernels measured again (in the synthetic networks' ops): a fixed cost
    larger than a whole kernel of the class cannot be right (the grid was timed while the machine was busy).
    Each rejection is a warning; none left is refused."""
    classes = dict(cal.classes)
    rejected = dict(cal.rejected)
    warnings = list(cal.warnings)
    for name, t in sorted(fastest.items()):
        model = classes.get(name)
        if model is not None and model.overhead_s > OVERHEAD_SLACK * t:
            reason = (
                f"its per-kernel overhead {model.overhead_s * 1e3:.3g} ms is more than {OVERHEAD_SLACK:g} × a "
                f"kernel of the class timed again ({t * 1e3:.3g} ms)"
            )
            del classes[name]
            rejected[name] = reason
            warnings.append(f"rejected the fit of {name}: {reason}; its ops use the default overhead")
    if cal.classes and not classes:
        raise UsageError(
            "calibration failed: every op class's per-kernel overhead is above its kernels timed again; "
            "calibrate when the machine is idle"
        )
    return cal.model_copy(update={"classes": classes, "rejected": rejected, "warnings": warnings})


def with_context(
    cal: LatencyCalibration,
    class_samples: Sequence[tuple[float, int, float]],
    table_samples: Sequence[tuple[float, int, float]],
) -> LatencyCalibration:
    """``cal`` with the in-network corrections fitted (analysis/latency.fit_context) from ``(isolated
    prediction, ops, measured network time)`` samples; an implausible one (implausible_context) is not
    used — scale 1, no per-op term — and a warning says why."""
    warnings = list(cal.warnings)
    update: dict[str, Any] = {}
    for what, samples, keys in (
        ("class models", class_samples, ("network_scale", "per_op_s")),
        ("measured entries", table_samples, ("table_scale", "table_per_op_s")),
    ):
        scale, per_op = fit_context(samples)
        reason = implausible_context(scale, per_op, samples)
        if reason is not None:
            warnings.append(
                f"rejected the in-network correction of the {what}: {reason}; using scale 1, no per-op term"
            )
            scale, per_op = 1.0, 0.0
        update[keys[0]], update[keys[1]] = scale, per_op
    return cal.model_copy(update={**update, "warnings": warnings})


def measure_spec(reports: Sequence[Report], calibration: LatencyCalibration, repeats: int = 15) -> LatencyCalibration:
    """``calibration`` with a lookup-table entry for every distinct op of ``reports``, timed here."""
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(calibration.threads)
    table = dict(calibration.table)
    try:
        for report in reports:
            if report.symbolic:
                raise UsageError("calibrate --spec needs numbers: bind the spec's symbols first")
            batch = int(report.batch)
            for row in report.rows:
                key = op_key(row, batch)
                if key not in table:
                    fn, args = op_callable(row, batch)
                    table[key] = time_call(fn, args, repeats)
    finally:
        torch.set_num_threads(before)
    return calibration.model_copy(update={"table": table})


# ------------------------------------------------------------------------------ LiteRT (int8 graphs)


def _batch1(text: str) -> str:
    """A grid or synthetic spec at batch 1 (the exported .tflite's batch)."""
    import re

    return re.sub(r"batch: \d+", "batch: 1", text)


def _litert_ops(texts: Iterable[str]) -> list[Any]:
    """The int8 ops (analysis/latency.Int8Op) of the specs ``texts`` that the int8 graph models (a grouped
    conv is not one TFLite op: that spec is left out), each distinct op once."""
    from .analysis.latency import int8_ops
    from .engine.walk import analyze_spec
    from .spec.loader import loads

    seen: set[str] = set()
    out = []
    for text in texts:
        try:
            ops = int8_ops(analyze_spec(loads(_batch1(text), "<calibration grid>")))
        except UsageError:
            continue
        for op in ops:
            if op.key not in seen:
                seen.add(op.key)
                out.append(op)
    return out


def time_litert_op(op: Any, threads: int, repeats: int = 30) -> Timing | None:
    """LiteRT's time for one int8 op alone: its one-op model (tflite.op_model) converted and invoked; None
    when the converter does not write exactly that one op. LiteRT's figures use ``Timing.fastest``."""
    import os

    from .tflite import _quiet, convert, litert_timer, op_model, tflite_ops

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines: the library never prints
    with _quiet():  # Keras loads TensorFlow, which logs to fd 2 as it starts
        keras_op = op_model(op)
    model = convert(keras_op)
    if tflite_ops(model) != [op.kind]:
        return None
    return time_stats(litert_timer(model, threads), (), repeats, no_grad=False)


def _invoke_overhead(threads: int, repeats: int) -> float:
    """Seconds of one invoke of a model whose one op does almost nothing (ReLU over 8 int8 values): the
    fixed cost every isolated timing carries once, and a whole network once too, not once per op."""
    from .analysis.latency import Int8Op
    from .engine.report import Row

    probe = Int8Op(Row.__new__(Row), "RELU", "act_relu", 0, 16, ((8, 1, 1),), (8, 1, 1))
    timing = time_litert_op(probe, threads, 4 * repeats)
    return timing.fastest if timing is not None else 0.0


def calibrate_litert(threads: int = 1, quick: bool = False, repeats: int = 30) -> LatencyCalibration:
    """Measure every op class of the int8 graph on LiteRT's interpreter at ``threads`` threads and fit its
    latency model, as :func:`calibrate` does for eager torch: the grid's ops (batch 1, lowered to the int8
    graph) are each converted alone to a one-op .tflite and timed with LiteRT, t = a₀ + a_macs·MACs +
    a_bytes·bytes fitted per class on int8 bytes, and one invoke's fixed cost (measured on a model that does
    almost nothing) taken out of each a₀; then synthetic networks are converted whole and timed, and the in-network
    correction (scale, per-op term) fitted against them. Every LiteRT time is the fastest of the repeated
    runs (``Timing.fastest``): on a shared machine other processes only add time, and a median taken while
    they run was seen to double a network's time. Needs the ``[deploy]`` extra."""
    from .analysis.latency import predict, total_seconds
    from .engine.walk import analyze_spec
    from .spec.loader import loads
    from .tflite import litert_timer, litert_version, spec_tflite

    threads = check_threads(threads)
    version = litert_version()
    base = _invoke_overhead(threads, repeats)
    timings: list[Timing] = []
    by_class: dict[str, list[tuple[float, float, float]]] = {}
    for op in _litert_ops(_grid_specs(quick)):
        timing = time_litert_op(op, threads, repeats)
        if timing is None:
            continue
        timings.append(timing)
        by_class.setdefault(op.op_class, []).append((float(op.macs), float(op.bytes), timing.fastest))
    classes, rejected, warnings = judge(by_class, timings)
    elementwise = [m.overhead_s for c, m in classes.items() if c.startswith("act_") or c in ("add", "mul")]
    cal = LatencyCalibration(
        threads=threads,
        dtype="int8",
        framework=f"LiteRT {version} interpreter (XNNPACK), CPU, int8",
        classes=classes,
        default_overhead_s=statistics.median(elementwise) if elementwise else 1e-6,
        noise=statistics.median(t.spread for t in timings) if timings else None,
        warnings=warnings,
        rejected=rejected,
    )
    runs: list[tuple[Report, float, LatencyCalibration]] = []
    for text in _synthetic_networks(quick):
        report: Report = analyze_spec(loads(_batch1(text), "<synthetic network>"))
        whole = time_stats(litert_timer(spec_tflite(report), threads), (), repeats, 0.5, no_grad=False).fastest
        table: dict[str, float] = {}
        for op in _litert_ops_of(report):
            if op.key in table:
                continue
            timing = time_litert_op(op, threads, repeats)
            if timing is not None:
                table[op.key] = timing.fastest
        runs.append((report, whole, cal.model_copy(update={"table": table})))
    fastest: dict[str, float] = {}  # each class's fastest kernel, invoke included (an overhead above it is wrong)
    for report, _, isolated in runs:
        for op in _litert_ops_of(report):
            t = isolated.table.get(op.key)
            if t is not None:
                fastest[op.op_class] = min(t, fastest.get(op.op_class, t))
    cal = recheck_overheads(cal, fastest)
    # every isolated time carries one invoke's fixed cost, a network's only once: it comes out of each class's
    # per-kernel overhead (fitted on the raw times, so that tiny kernels keep their relative weight) and out of
    # each measured entry
    cal = cal.model_copy(
        update={
            "classes": {
                c: m.model_copy(update={"overhead_s": max(m.overhead_s - base, 0.0)}) for c, m in cal.classes.items()
            },
            "default_overhead_s": max(cal.default_overhead_s - base, 0.0),
        }
    )
    runs = [
        (r, whole, iso.model_copy(update={"table": {k: max(t - base, 0.05 * t) for k, t in iso.table.items()}}))
        for r, whole, iso in runs
    ]
    class_samples = [(total_seconds(predict(r, cal)), len(_litert_ops_of(r)), whole) for r, whole, _ in runs]
    table_samples = [
        (total_seconds(predict(r, isolated.model_copy(update={"classes": cal.classes}))), len(_litert_ops_of(r)), whole)
        for r, whole, isolated in runs
    ]
    return with_context(cal, class_samples, table_samples)


def _litert_ops_of(report: Report) -> list[Any]:
    from .analysis.latency import int8_ops

    return int8_ops(report)
