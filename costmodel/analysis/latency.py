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

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..engine.ops import numel
from ..engine.report import Report, Row
from ..errors import SpecError, UsageError

FLOAT32_BYTES = 4


# ----------------------------------------------------------------------------------------- op classes


def op_class(row: Row) -> str:
    """The op class a row's time is modelled by, e.g. ``conv_pw``, ``conv_dw_k3_s2``, ``norm_batchnorm2d``."""
    op = row.op
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


def op_bytes(row: Row, batch: int) -> int:
    """Bytes an eager kernel moves for one instance of ``row`` in float32: inputs read (both operands of an
    add, the gate of a multiply, attention's q, k and v), weights and inference state read, output written."""
    op = row.op
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


class ClassModel(BaseModel):
    """t = overhead_s + s_per_mac · MACs + s_per_byte · bytes, fitted to ``samples`` measurements."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overhead_s: float = Field(ge=0)
    s_per_mac: float = Field(ge=0)
    s_per_byte: float = Field(ge=0)
    samples: int = Field(ge=1)
    median_rel_error: float = Field(ge=0, description="median |fit − measured| / measured over the samples")

    @field_validator("overhead_s", "s_per_mac", "s_per_byte", "median_rel_error")
    @classmethod
    def _finite(cls, v: float) -> float:
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return v


class LatencyCalibration(BaseModel):
    """One measured calibration: the per-class models and the per-op lookup table, at a thread count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(ge=1)
    dtype: str = "float32"
    framework: str = Field(description="what was measured, e.g. 'torch 2.13.0 eager, CPU'")
    classes: dict[str, ClassModel]
    default_overhead_s: float = Field(ge=0, description="dispatch time of an op whose class was not measured")
    table: dict[str, float] = Field(default_factory=dict, description="measured seconds per op key (--spec)")
    network_scale: float = Field(1.0, gt=0, description="in-network time / isolated class-model time (fitted)")
    per_op_s: float = Field(0.0, ge=0, description="in-network time per op beyond the class model (fitted)")
    table_scale: float = Field(1.0, gt=0, description="in-network time / isolated measured time (fitted)")
    table_per_op_s: float = Field(0.0, ge=0, description="in-network time per op beyond its measurement (fitted)")

    @field_validator("table")
    @classmethod
    def _positive_times(cls, v: dict[str, float]) -> dict[str, float]:
        for key, t in v.items():
            if not t > 0 or t == float("inf"):
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
        raise UsageError(f"no latency calibration for {want} in this profile (it has {have}); calibrate at it")
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
    """The predicted eager time of every op of a numeric report under ``calibration``."""
    if report.symbolic:
        raise UsageError("latency needs numbers: bind the spec's symbols with --set")
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
