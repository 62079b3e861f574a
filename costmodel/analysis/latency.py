"""Latency you can trust: per-op-class efficiency models calibrated by measurement, and a predictor.

A roofline (analysis/hardware.py) is a lower bound: real kernels reach a fraction of peak that
depends on the op — depthwise convs, small 1×1 convs, elementwise ops and per-kernel dispatch are far
from it. Here every op of a report is its own kernel (eager PyTorch: fusion none) and its time is

    t(op) = a₀[c] + a_macs[c] · MACs + a_bytes[c] · bytes

for its op class c (pointwise conv, depthwise conv by kernel and stride, dense k×k conv, grouped conv,
each norm, each activation, pool, add, mul, linear, dropout): a₀ the per-kernel dispatch overhead,
a_macs the inverse of the achieved MAC rate, a_bytes the inverse of the achieved bandwidth (bytes:
activations read + weights read + output written, float32). The coefficients are fitted, non-negative,
to measured times of each class over a grid of shapes (costmodel/calibration.py, `costmodel calibrate
--torch`), minimising the relative error. Where a calibration holds a measured entry for the very op
(same class, shapes, kernel, stride, groups and batch: `calibrate --torch --spec NET.yaml`), that
measurement is used instead — the per-spec lookup table of FBNet and ProxylessNAS. A prediction names
the term that dominates each op: ``overhead``, ``compute`` or ``memory``.

Calibrations are stored in a hardware profile's ``latency`` list, one per thread count and dtype; a
prediction for N threads uses the calibration made at N threads.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from ..engine.ops import numel
from ..engine.report import Report, Row
from ..errors import SpecError, UsageError
from ..spec.names import ACTIVATIONS as _ACTIVATIONS

FLOAT32_BYTES = 4
ACTIVATION_NAMES = frozenset(_ACTIVATIONS)


# ----------------------------------------------------------------------------------------- op classes


def op_class(row: Row) -> str:
    """The op class a row's time is modelled by, e.g. ``conv_pw``, ``conv_dw_k3_s2``, ``norm_batchnorm2d``
    (a graph node: :func:`graph_op_class`)."""
    op = row.op
    if op.graph is not None:
        return graph_op_class(row)
    if op.category == "conv":
        k, s, g = op.attrs.get("kernel", 1), op.attrs.get("stride", 1), op.attrs.get("groups", 1)
        cin = op.input[0]
        if g == 1:
            return "conv_pw" if k == 1 and s == 1 else f"conv_dense_k{k}"
        if g == cin and op.output[0] == cin:
            return f"conv_dw_k{k}_s{s}"
        return "conv_grouped"
    if op.category == "norm":
        return f"norm_{op.name}"
    if op.category == "act":
        return f"act_{op.name}"
    return op.category  # pool, add, mul, linear, dropout


#: Graph ops that are views (no kernel: their class is the block kinds' flatten's, ``reshape``).
GRAPH_VIEWS = frozenset({"reshape", "flatten", "permute", "transpose", "expand", "select", "slice"})


def graph_op_class(row: Row) -> str:
    """The class of a graph node where it is the op a class was calibrated on, else a UsageError naming it: a 2-D
    conv with its own square weight (the conv classes, channels = dim 1), batch_norm on (N, C, H, W), the
    activations, a same-shape add, an (N, C, H, W) × (N, C, 1, 1) multiply, global adaptive_avg_pool (``pool``), a
    linear on (N, F) (``linear``), and the views (``reshape``, as flatten). Token linears, layer norms, matmul,
    attention, copies (cat, pad, roll, repeat) and the rest were never calibrated."""
    op, g = row.op, row.op.graph
    assert g is not None
    name, shapes = op.name, g.shapes
    x = shapes[0] if shapes else ()
    node = g.node
    ok = False
    if name == "conv" and len(x) == 4 and len(shapes) == 1 and not node.get("transposed"):
        k = node.get("kernel")
        d = node.get("dilation")
        square = isinstance(k, int) or len(set(k)) == 1
        ok = square and (d == 1 or (isinstance(d, list) and set(d) == {1}))
        if ok:
            kernel, s, groups = op.attrs["kernel"], op.attrs["stride"], op.attrs["groups"]
            if groups == 1:
                return "conv_pw" if kernel == 1 and s == 1 else f"conv_dense_k{kernel}"
            if groups == x[1] and op.output[1] == x[1]:
                return f"conv_dw_k{kernel}_s{s}"
            return "conv_grouped"
    elif name == "batch_norm" and len(x) == 4:
        return "norm_batchnorm2d"
    elif op.category == "act" and name in ACTIVATION_NAMES:
        return f"act_{name}"
    elif name == "add" and len(shapes) == 2 and shapes[0] == shapes[1] and all(g.batched):
        return "add"
    elif name == "mul" and len(shapes) == 2 and len(x) == 4 and shapes[1] == (*x[:2], 1, 1) and all(g.batched):
        return "mul"
    elif name == "adaptive_avg_pool" and len(x) == 4 and list(node.get("size")) == [1, 1]:
        return "pool"
    elif name == "linear" and len(x) == 2 and len(shapes) == 1:
        return "linear"
    elif name in GRAPH_VIEWS:
        return "reshape"
    label = f"node {node.id!r}" if node.id is not None else "a node"
    raise UsageError(
        f"latency: {label} ({name}) of layer {row.layer} is no op the latency classes were calibrated on "
        "(docs/roofline.md, Latency)"
    )


def op_bytes(row: Row, batch: int) -> int:
    """Bytes an eager kernel moves for one instance of ``row`` in float32: inputs read (both operands of an
    add, the gate of a multiply, attention's q, k and v), weights and inference state read, output written."""
    op = row.op
    if op.graph is not None:  # every tensor read (batched ones × the batch), weights, output
        g = op.graph
        reads = sum(numel(s) * (batch if b else 1) for s, b in zip(g.shapes, g.batched, strict=True))
        return int(FLOAT32_BYTES * (reads + row.costs["params"] + op.state + row.costs["activations"]))
    inputs = batch * numel(op.input)
    if op.category == "add":
        inputs *= 2
    elif op.category == "mul":
        inputs += batch * op.input[0]
    elif op.category == "attention":  # q is op.input; k and v: kv_heads × keys × (dk + dv)
        a = op.attrs
        inputs += batch * a["kv_heads"] * a["keys"] * (a["key_dim"] + a["value_dim"])
    weights = row.costs["params"] + op.state
    return int(FLOAT32_BYTES * (inputs + weights + row.costs["activations"]))


def op_key(row: Row, batch: int) -> str:
    """The lookup-table key of an op: class, batch, input and output shape, kernel/stride/groups."""
    op = row.op
    attrs = ",".join(f"{k}{v}" for k, v in sorted(op.attrs.items()))
    shape = "x".join(str(s) for s in op.input)
    out = "x".join(str(s) for s in op.output)
    return f"{op_class(row)}|n{batch}|{shape}->{out}|{attrs}|{'bias' if op.bias else ''}"


# ------------------------------------------------------------------------------------- profile format

#: The most threads a calibration may be made at (a profile field; ``calibrate --threads`` is also held to
#: this machine's CPU count).
MAX_THREADS = 1024
#: Bounds of a profile's coefficients: every time in seconds (overheads, per-op terms, measured entries)
#: lies in [0, MAX_SECONDS], every per-MAC and per-byte time in [0, MAX_SECONDS_PER_UNIT], every scale in
#: (0, MAX_SCALE] and every relative error in [0, MAX_SCALE] — finite, so no prediction is inf or nan.
MAX_SECONDS = 3600.0
MAX_SECONDS_PER_UNIT = 1.0
MAX_SCALE = 1e6

_NUMERAL = re.compile(r"^[+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?$")


def _bounded(low: float, high: float, low_open: bool = False) -> Any:
    """A BeforeValidator: a real number (int, float or a quoted decimal numeral, never a bool) in the range,
    finite — YAML's .inf and a numeral that overflows to inf (1.0e400) are refused by name."""

    def check(value: Any) -> float:
        if isinstance(value, str) and len(value) <= 100 and _NUMERAL.match(value.strip()):
            value = float(value.strip().replace("_", ""))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
            raise PydanticCustomError("number", "must be a number, got {v}", {"v": shown})
        if isinstance(value, int) and abs(value) > high:
            raise PydanticCustomError("number", "must be at most {hi}, got an integer of {n} digits",
                                      {"hi": high, "n": len(str(abs(value)))})  # fmt: skip
        v = float(value)
        if not math.isfinite(v):
            raise PydanticCustomError("number", "must be a finite number, got {v}", {"v": repr(v)})
        if v < low or (low_open and v == low) or v > high:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise PydanticCustomError("number", "must lie in {i}, got {v}", {"i": interval, "v": repr(v)})
        return v

    return BeforeValidator(check)


Seconds = Annotated[float, _bounded(0.0, MAX_SECONDS), WithJsonSchema({"type": "number", "minimum": 0})]
PerUnit = Annotated[float, _bounded(0.0, MAX_SECONDS_PER_UNIT), WithJsonSchema({"type": "number", "minimum": 0})]
Scale = Annotated[float, _bounded(0.0, MAX_SCALE, low_open=True), WithJsonSchema({"type": "number"})]
RelError = Annotated[float, _bounded(0.0, MAX_SCALE), WithJsonSchema({"type": "number", "minimum": 0})]


class ClassModel(BaseModel):
    """t = overhead_s + s_per_mac · MACs + s_per_byte · bytes, fitted to ``samples`` measurements."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overhead_s: Seconds
    s_per_mac: PerUnit
    s_per_byte: PerUnit
    samples: int = Field(ge=1, le=10**9, strict=True)
    median_rel_error: RelError = Field(description="median |fit − measured| / measured over the samples")


class LatencyCalibration(BaseModel):
    """One measured calibration: the per-class models and the per-op lookup table, at a thread count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(ge=1, le=MAX_THREADS, strict=True)
    dtype: str = "float32"
    framework: str = Field(description="what was measured, e.g. 'torch 2.13.0 eager, CPU'")
    classes: dict[str, ClassModel]
    default_overhead_s: Seconds = Field(description="dispatch time of an op whose class was not measured")
    table: dict[str, Seconds] = Field(default_factory=dict, description="measured seconds per op key (--spec)")
    network_scale: Scale = Field(1.0, description="in-network time / isolated class-model time (fitted)")
    per_op_s: Seconds = Field(0.0, description="in-network time per op beyond the class model (fitted)")
    table_scale: Scale = Field(1.0, description="in-network time / isolated measured time (fitted)")
    table_per_op_s: Seconds = Field(0.0, description="in-network time per op beyond its measurement (fitted)")
    noise: RelError | None = Field(
        None, description="median relative spread (interquartile range / median) of the repeated timings"
    )
    warnings: list[str] = Field(
        default_factory=list, description="what calibrate found implausible or unstable, and what it did about it"
    )
    rejected: dict[str, str] = Field(
        default_factory=dict, description="op classes whose fit was rejected as implausible, and why"
    )

    @field_validator("table")
    @classmethod
    def _positive_times(cls, v: dict[str, float]) -> dict[str, float]:
        for key, t in v.items():
            if not t > 0:
                raise ValueError(f"table entry {key!r}: must be a positive finite time, got {t}")
        return v


def pick(calibrations: Sequence[LatencyCalibration], threads: int | None, dtype: str) -> LatencyCalibration:
    """The calibration for ``threads`` (or the only one) and ``dtype``; a clear error if there is none."""
    if not calibrations:
        raise SpecError("this hardware profile has no latency calibration: run costmodel calibrate --torch")
    fits = [c for c in calibrations if c.dtype == dtype and (threads is None or c.threads == threads)]
    if not fits:
        have = ", ".join(f"{c.threads} threads/{c.dtype}" for c in calibrations)
        want = f"{threads} threads/{dtype}" if threads is not None else dtype
        how = " (calibrate --runtime litert)" if dtype == "int8" else ""
        raise UsageError(f"no latency calibration for {want} in this profile (it has {have}); calibrate at it{how}")
    if threads is None and len(fits) > 1:
        have = ", ".join(str(c.threads) for c in fits)
        raise UsageError(f"the profile is calibrated at several thread counts ({have}): pick one with --threads")
    return fits[0]


# --------------------------------------------------------------------------------------------- fitting


def fit_context(samples: Sequence[tuple[float, int, float]]) -> tuple[float, float]:
    """(scale, per-op seconds) ≥ 0 with measured ≈ scale · isolated + per_op · ops, minimising the relative
    error over ``samples`` of ``(isolated prediction, op count, measured network time)``: what running ops
    inside a network adds to timing them alone (cold caches, module nesting), fitted on synthetic networks."""
    import numpy as np

    data = np.asarray(samples, dtype=float)
    w = 1.0 / data[:, 2]
    x = np.column_stack([data[:, 0], data[:, 1]]) * w[:, None]
    y = np.ones(len(data))
    best: tuple[float, tuple[float, float]] | None = None
    for cols in ((0,), (0, 1)):
        coef, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
        if (coef < 0).any():
            continue
        full = np.zeros(2)
        full[list(cols)] = coef
        err = float(((x @ full - y) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, (float(full[0]), float(full[1])))
    return best[1] if best is not None and best[1][0] > 0 else (1.0, 0.0)


def fit(samples: Sequence[tuple[float, float, float]]) -> ClassModel:
    """Non-negative (overhead, s/MAC, s/byte) minimising the relative squared error over ``samples``
    of ``(macs, bytes, seconds)``: every subset of the three terms is solved by least squares and the
    best solution with all coefficients ≥ 0 kept (the exact NNLS answer for three unknowns)."""
    import numpy as np

    if not samples:
        raise UsageError("no samples to fit")
    data = np.asarray(samples, dtype=float)
    t = data[:, 2]
    w = 1.0 / t
    features = np.column_stack([np.ones(len(t)), data[:, 0], data[:, 1]])
    scale = features.max(axis=0)
    scale[scale == 0] = 1.0
    x = features / scale * w[:, None]
    y = np.ones(len(t))  # t·w
    best: tuple[float, Any] | None = None
    for size in (1, 2, 3):
        for cols in combinations(range(3), size):
            coef, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
            if (coef < 0).any():
                continue
            full = np.zeros(3)
            full[list(cols)] = coef
            err = float(((x @ full - y) ** 2).sum())
            if best is None or err < best[0]:
                best = (err, full)
    assert best is not None  # the overhead-only fit is never negative
    coef = best[1] / scale
    predicted = features @ coef
    rel = np.abs(predicted - t) / t
    return ClassModel(
        overhead_s=float(coef[0]),
        s_per_mac=float(coef[1]),
        s_per_byte=float(coef[2]),
        samples=len(t),
        median_rel_error=float(np.median(rel)),
    )


# --------------------------------------------------------------------------------------- plausibility

#: A fit whose median relative error reaches this is refused (the model does not describe the timings).
MAX_FIT_ERROR = 0.5
#: A per-kernel overhead may pass the fastest measured kernel of its class by at most this factor: a fit to
#: noisy timings puts it a little above (3.35 µs against 2.61 µs for an idle machine's hardsigmoid); 48.7 ms
#: for a 1×1 conv whose kernels take microseconds is a busy machine's measurement.
OVERHEAD_SLACK = 2.0
#: The in-network scale must lie in this range: running ops inside a network changes their time by a
#: factor near 1 (cold caches, module nesting); 0.0026 means the isolated timings were not of this machine
#: at rest.
NETWORK_SCALE_RANGE = (0.1, 10.0)


def implausible_fit(model: ClassModel, samples: Sequence[tuple[float, float, float]]) -> str | None:
    """Why a class's fit cannot be right, or None. ``samples`` are the ``(macs, bytes, seconds)`` it was
    fitted to. Refused: a per-kernel overhead above OVERHEAD_SLACK × the fastest measured kernel of the
    class (every kernel's time includes the overhead, so a₀ ≤ min t up to the fit's noise), and a median
    relative error ≥ MAX_FIT_ERROR."""
    fastest = min(t for _, _, t in samples)
    if model.overhead_s > OVERHEAD_SLACK * fastest:
        return (
            f"its per-kernel overhead {model.overhead_s * 1e3:.3g} ms is more than {OVERHEAD_SLACK:g} × its fastest "
            f"measured kernel ({fastest * 1e3:.3g} ms)"
        )
    if model.median_rel_error >= MAX_FIT_ERROR:
        error = model.median_rel_error
        return f"its fit misses the measured times by {error:.0%} (median; below {MAX_FIT_ERROR:.0%} needed)"
    return None


def implausible_context(scale: float, per_op_s: float, samples: Sequence[tuple[float, int, float]]) -> str | None:
    """Why an in-network correction cannot be right, or None. ``samples`` are ``(isolated prediction, op
    count, measured network time)``. Refused: a scale outside NETWORK_SCALE_RANGE, a per-op term that
    alone passes a measured network time, and a median relative error ≥ MAX_FIT_ERROR."""
    lo, hi = NETWORK_SCALE_RANGE
    if not lo <= scale <= hi:
        return f"the in-network scale {scale:.3g} is outside [{lo:g}, {hi:g}]"
    if any(per_op_s * n > whole for _, n, whole in samples):
        return f"its per-op term ({per_op_s * 1e3:.3g} ms × ops) passes a whole network's measured time"
    median = statistics.median(abs(scale * p + per_op_s * n - whole) / whole for p, n, whole in samples)
    if median >= MAX_FIT_ERROR:
        return f"it misses the measured network times by {median:.0%} (median; below {MAX_FIT_ERROR:.0%} needed)"
    return None


# ------------------------------------------------------------------------------------------ predicting


@dataclass
class OpTime:
    """The predicted time of one op (one instance) and what dominates it."""

    row: Row
    op_class: str
    seconds: float
    bound: str  # overhead | compute | memory | measured
    source: str  # "table", "class" or "default"

    @property
    def total_s(self) -> float:
        """Seconds for all the instances the row stands for."""
        return float(self.row.times) * self.seconds


def predict(report: Report, calibration: LatencyCalibration) -> list[OpTime]:
    """The predicted eager time of every op of a numeric report under ``calibration``; for an int8 (LiteRT)
    calibration, the time of every op of the int8 graph (:func:`int8_ops`)."""
    if report.symbolic:
        raise UsageError("latency needs numbers: bind the spec's symbols with --set")
    if calibration.dtype == "int8":
        return _predict_int8(report, calibration)
    batch = int(report.batch)
    out = []
    for row in report.rows:
        cls = op_class(row)
        measured = calibration.table.get(op_key(row, batch))
        if measured is not None:
            t = calibration.table_scale * measured + calibration.table_per_op_s
            out.append(OpTime(row, cls, t, "measured", "table"))
            continue
        model = calibration.classes.get(cls)
        if model is None:
            t = calibration.network_scale * calibration.default_overhead_s + calibration.per_op_s
            out.append(OpTime(row, cls, t, "overhead", "default"))
            continue
        terms = {
            "overhead": model.overhead_s,
            "compute": model.s_per_mac * float(row.costs["macs"]),
            "memory": model.s_per_byte * op_bytes(row, batch),
        }
        t = calibration.network_scale * sum(terms.values()) + calibration.per_op_s
        out.append(OpTime(row, cls, t, max(terms, key=lambda k: terms[k]), "class"))
    return out


def total_seconds(times: Sequence[OpTime]) -> float:
    """The predicted time of the whole network: the ops run one after another."""
    return sum(t.total_s for t in times)


# ------------------------------------------------------------------------------ int8 graphs (LiteRT)


@dataclass(frozen=True)
class Int8Op:
    """One op of the int8 graph a converter writes (analysis/deploy.lower, the TFLite graph): the row it
    stands for (the conv of a conv → BatchNorm → ReLU group), its TFLite op, class, MACs and int8 bytes,
    and the shapes an isolated timing needs (calibration.py builds the one-op model from them)."""

    row: Row
    kind: str  # the TFLite op: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MEAN, ADD, MUL, HARD_SWISH, …
    op_class: str
    macs: int
    bytes: int
    inputs: tuple[tuple[int, ...], ...]  # (C, H, W) of each tensor read, or (C,) for a flat one
    output: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    clamp: bool = False  # a conv whose requantization clamps (ReLU/ReLU6 folded in)

    @property
    def key(self) -> str:
        """The lookup-table key: class, TFLite op, shapes, kernel and stride (batch 1)."""
        shapes = ",".join("x".join(map(str, s)) for s in self.inputs)
        out = "x".join(map(str, self.output))
        return f"int8|{self.op_class}|{self.kind}|{shapes}->{out}|k{self.kernel}s{self.stride}"


_INT8_CLASSES = {"FULLY_CONNECTED": "linear", "MEAN": "pool", "AVERAGE_POOL_2D": "pool", "MAX_POOL_2D": "pool"}
_INT8_CLASSES |= {"ADD": "add", "MUL": "mul", "HARD_SWISH": "act_hardswish", "LOGISTIC": "act_sigmoid"}
_INT8_CLASSES |= {"RELU": "act_relu", "RELU6": "act_relu6"}


def int8_ops(report: Report) -> list[Int8Op]:
    """The ops of the report's full-integer int8 graph as TensorFlow's converter writes it (the graph
    ``deploy --runtime tflm`` lowers, checked op by op against the converter), batch 1. Each op's bytes are
    what its kernel moves: every int8 tensor it reads, its int8 weights and int32 biases, its int8 output.
    Its class is the torch class of its row for convs (``conv_pw``, ``conv_dw_k3_s2``, …) and ``linear``,
    ``pool``, ``add``, ``mul``, ``act_…`` for the others. Folded rows (BatchNorm, a clamping ReLU) and
    dropout have no op of their own."""
    from .deploy import lower, tensor_bytes

    if report.symbolic or any(r.times != 1 for r in report.rows):
        raise UsageError("latency needs numbers: bind the spec's symbols with --set")
    if report.batch != 1:
        raise UsageError(f"int8 latency is modelled at batch 1 (the exported .tflite's), got batch {report.batch}")
    steps = lower(report, "tflm")
    sizes = tensor_bytes(report, steps)
    shapes: dict[int, tuple[int, ...]] = {0: tuple(int(x) for x in report.input)}
    index = {r.tensor: i for i, r in enumerate(report.rows)}
    out: list[Int8Op] = []
    for s in steps:
        kind = s.label.rsplit(" ", 1)[-1]
        at = index[abs(s.writes)]
        inputs = tuple(shapes[t] for t in s.reads)
        shapes[s.writes] = s.shape
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            row = report.rows[at - (len(s.ops) - 1)]
            cls = op_class(row) if kind != "FULLY_CONNECTED" else "linear"
            k, st = int(row.op.attrs.get("kernel", 1)), int(row.op.attrs.get("stride", 1))
            clamp = any(o in ("relu", "relu6", "hardsigmoid") for o in s.ops[1:])
        else:
            row, cls, k, st, clamp = report.rows[at], _INT8_CLASSES[kind], 1, 1, False
        moved = sum(sizes[t] for t in s.reads) + s.weight_bytes + s.bias_bytes + sizes[s.writes]
        out.append(Int8Op(row, kind, cls, s.macs, moved, inputs, s.shape, k, st, clamp))
    return out


def _predict_int8(report: Report, calibration: LatencyCalibration) -> list[OpTime]:
    out = []
    for op in int8_ops(report):
        measured = calibration.table.get(op.key)
        if measured is not None:
            t = calibration.table_scale * measured + calibration.table_per_op_s
            out.append(OpTime(op.row, op.op_class, t, "measured", "table"))
            continue
        model = calibration.classes.get(op.op_class)
        if model is None:
            t = calibration.network_scale * calibration.default_overhead_s + calibration.per_op_s
            out.append(OpTime(op.row, op.op_class, t, "overhead", "default"))
            continue
        terms = {
            "overhead": model.overhead_s,
            "compute": model.s_per_mac * op.macs,
            "memory": model.s_per_byte * op.bytes,
        }
        t = calibration.network_scale * sum(terms.values()) + calibration.per_op_s
        out.append(OpTime(op.row, op.op_class, t, max(terms, key=lambda k: terms[k]), "class"))
    return out
