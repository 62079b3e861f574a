"""Calibration by measurement (needs torch): time each op class on this machine, fit its efficiency model.

``calibrate(threads=N)`` times, with torch in eager mode (eval, no_grad, float32, CPU, N threads), every
op class of analysis/latency.py over a grid of shapes typical of mobile CNNs (pointwise, depthwise by
kernel and stride, dense and grouped convs; BatchNorm; each activation; SE's pool, add, mul; linear),
at batch 1 and 4, and fits t = a₀ + a_macs·MACs + a_bytes·bytes per class (analysis/latency.fit). Each
sample is the median of repeated runs after warm-up. ``measure_spec`` times exactly the distinct ops of
a network (the per-spec lookup table). Shapes come from costmodel's own rows, so what is timed is what
is predicted.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .analysis.latency import ClassModel, LatencyCalibration, fit, op_bytes, op_class, op_key
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


def time_call(fn: Callable[..., Any], args: tuple[Any, ...], repeats: int = 15, budget_s: float = 0.25) -> float:
    """Median seconds of ``fn(*args)`` over up to ``repeats`` runs (at most ``budget_s``), after warm-up."""
    torch = _torch()
    with torch.no_grad():
        for _ in range(3):
            fn(*args)
        times: list[float] = []
        end = time.perf_counter() + budget_s
        while len(times) < repeats and (len(times) < 5 or time.perf_counter() < end):
            start = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def _samples(reports: Iterable[Report], repeats: int) -> dict[str, list[tuple[float, float, float]]]:
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
            t = time_call(fn, args, repeats)
            by_class.setdefault(op_class(row), []).append((float(row.costs["macs"]), float(op_bytes(row, batch)), t))
    return by_class


def calibrate(threads: int = 1, quick: bool = False, repeats: int = 15) -> LatencyCalibration:
    """Measure every op class on this machine at ``threads`` threads and fit its latency model.

    ``quick`` uses a small grid (for tests); the full grid takes about a minute on 2 cores.
    """
    from .engine.walk import analyze_spec
    from .spec.loader import loads

    torch = _torch()
    if threads < 1:
        raise UsageError("--threads must be at least 1")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        reports: list[Report] = [analyze_spec(loads(text, "<calibration grid>")) for text in _grid_specs(quick)]
        by_class = _samples(reports, repeats)
    finally:
        torch.set_num_threads(before)
    classes: dict[str, ClassModel] = {c: fit(s) for c, s in sorted(by_class.items())}
    elementwise = [m.overhead_s for c, m in classes.items() if c.startswith("act_") or c in ("add", "mul")]
    cal = LatencyCalibration(
        threads=threads,
        framework=f"torch {torch.__version__} eager, CPU, float32",
        classes=classes,
        default_overhead_s=statistics.median(elementwise) if elementwise else 5e-6,
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
    from .analysis.latency import fit_context, predict, total_seconds
    from .engine.walk import analyze_spec
    from .spec.loader import loads
    from .torchref import build

    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(cal.threads)
    class_samples: list[tuple[float, int, float]] = []
    table_samples: list[tuple[float, int, float]] = []
    try:
        for text in _synthetic_networks(quick):
            spec = loads(text, "<synthetic network>")
            report: Report = analyze_spec(spec)
            model, shape = build(spec)
            model.eval()
            whole = time_call(model, (torch.zeros(shape),), repeats=9 if quick else 15, budget_s=0.5)
            isolated = measure_spec([report], cal.model_copy(update={"table": {}}), repeats)
            n = len(report.rows)
            class_samples.append((total_seconds(predict(report, cal)), n, whole))
            table_samples.append((total_seconds(predict(report, isolated)), n, whole))
    finally:
        torch.set_num_threads(before)
    scale, per_op = fit_context(class_samples)
    tscale, tper_op = fit_context(table_samples)
    return cal.model_copy(
        update={"network_scale": scale, "per_op_s": per_op, "table_scale": tscale, "table_per_op_s": tper_op}
    )


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
