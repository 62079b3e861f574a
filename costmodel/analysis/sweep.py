"""Sweeps: a closed form compiled once, evaluated exactly over a whole grid of design points, in chunks.

A formula (a sympy expression from the engine) is compiled into a tree of numpy operations — no
code is generated or evaluated (engine/compile.py). Every rational is turned into exact integer
arithmetic, and exact interval arithmetic picks int64 or Python integers per chunk, so nothing
overflows silently.

A grid is never built whole: :func:`prepare` validates everything (axes, symbols, kernels, the
expansion-1 pieces, which points may be invalid) and returns a :class:`Plan`; ``plan.chunks()``
yields the grid piece by piece (``CHUNK`` points at a time), each piece's axis values computed from
its flat indices. Memory is bounded by the chunk size whatever the grid (10⁸ points included);
:func:`run` concatenates the chunks for grids that fit in memory (``MAX_IN_MEMORY`` points).

Validity. ``table --set`` refuses some points the closed form still gives numbers for: a bottleneck
whose mid width ``out_channels // 4`` is 0 (every op width must be ≥ 1). Each symbolic op width
whose lower bound over the grid (interval arithmetic) is below 1 becomes a check; when there is one,
the sweep has a boolean ``valid`` column, False exactly where some width is 0 — where table refuses.
Metric values at invalid points are 0 and are printed empty (CSV), null (JSON) or ``invalid``.
Even kernels are refused up front, as table refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

MAX_POINTS = 10**8
"""The largest grid a sweep evaluates (streamed in chunks)."""
MAX_IN_MEMORY = 10**7
"""The largest grid :func:`run` (``costmodel.sweep``) returns whole; beyond, use ``sweep_chunks``."""
INT64_MAX = 2**63 - 1
CHUNK = 1 << 18
"""Points evaluated at a time: bounds memory (a few MB per column) whatever the grid."""

_RANGE = re.compile(r"^(\d+):(\d+)(?::(\d+))?$")


class Axis(Sequence[int]):
    """The values of one axis: ranges (a 10⁸-value range costs no memory) or an int64 array; a Sequence of ints."""

    def __init__(self, parts: Sequence[range], array: Any = None) -> None:
        self.parts = [p for p in parts if len(p)]
        self.array = array  # an int64 numpy array of the values, for axes given as lists or arrays
        self._starts: list[int] = []
        n = 0
        for p in self.parts:
            self._starts.append(n)
            n += len(p)
        self._len = n if array is None else len(array)

    @classmethod
    def of(cls, values: Any) -> Axis:
        """An axis from a range, or a list / numpy array of ints (stored as int64; a value past int64 refused)."""
        if isinstance(values, Axis):
            return values
        if isinstance(values, range):
            return cls([values])
        import numpy as np

        items = values.tolist() if hasattr(values, "tolist") else list(values)
        if items and (max(items) > INT64_MAX or min(items) < -INT64_MAX):
            raise UsageError(f"axis values must be at most 2^63 - 1 = {INT64_MAX:,}")
        array = np.asarray(items, dtype=np.int64)
        if len(array) > 1:
            steps = np.diff(array)
            if steps[0] > 0 and bool((steps == steps[0]).all()):
                return cls([range(int(array[0]), int(array[-1]) + 1, int(steps[0]))])
        return cls([], array)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._len))]
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        if self.array is not None:
            return int(self.array[i])
        from bisect import bisect_right

        k = bisect_right(self._starts, i) - 1
        return self.parts[k][i - self._starts[k]]

    def __iter__(self) -> Iterator[int]:
        if self.array is not None:
            yield from self.array.tolist()
            return
        for p in self.parts:
            yield from p

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Axis, list, tuple, range)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Axis({self.parts!r})" if self.array is None else f"Axis(array={self.array!r})"

    def lo(self) -> int:
        """The smallest value."""
        if self.array is not None:
            return int(self.array.min())
        return min(p[0] for p in self.parts)

    def hi(self) -> int:
        """The largest value."""
        if self.array is not None:
            return int(self.array.max())
        return max(p[-1] for p in self.parts)

    def evens(self) -> bool:
        """Whether some value is even (checked per range, not per value)."""
        if self.array is not None:
            return bool((self.array % 2 == 0).any())
        return any(p[0] % 2 == 0 or (len(p) > 1 and p.step % 2 == 1) for p in self.parts)

    def take(self, idx: Any) -> Any:
        """The values at the int64 index array ``idx``, as an int64 array."""
        import numpy as np

        if self.array is not None:
            return self.array[idx]
        if len(self.parts) == 1:
            p = self.parts[0]
            return p.start + idx * p.step
        starts = np.asarray(self._starts, dtype=np.int64)
        k = np.searchsorted(starts, idx, side="right") - 1
        first = np.asarray([p.start for p in self.parts], dtype=np.int64)
        step = np.asarray([p.step for p in self.parts], dtype=np.int64)
        return first[k] + (idx - starts[k]) * step[k]


def parse_values(text: str, name: str = "") -> Axis:
    """``"1,2,4,6"`` or ``"3:7:2"`` (start:stop[:step], stop included) or a mix → an :class:`Axis` of positive ints.

    Values must lie in 1 … 2⁶³ − 1 (int64, what the grid is evaluated in).
    """
    where = f"--vary {name}={text}" if name else repr(text)
    parts: list[range] = []
    count = 0
    for part in text.split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if m:
            if max(len(g) for g in m.groups() if g) > 19:
                raise UsageError(f"{where}: values must be at most 2^63 - 1 = {INT64_MAX:,}")
            start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if step < 1 or stop < start:
                raise UsageError(f"{where}: a range is start:stop[:step] with start ≤ stop and step ≥ 1")
            r = range(start, stop + 1, step)
        elif part.isdigit() and part.isascii():
            if len(part) > 19:
                raise UsageError(f"{where}: values must be at most 2^63 - 1 = {INT64_MAX:,}")
            r = range(int(part), int(part) + 1)
        else:
            raise UsageError(f"{where}: expected integers like 1,2,4 or a range like 3:7:2")
        count += len(r)
        if count > MAX_POINTS:
            raise UsageError(f"{where}: more than {MAX_POINTS:,} values")
        parts.append(r)
    axis = Axis(parts)
    if not len(axis) or axis.lo() < 1:
        raise UsageError(f"{where}: values must be positive integers")
    if axis.hi() > INT64_MAX:
        raise UsageError(f"{where}: values must be at most 2^63 - 1 = {INT64_MAX:,}")
    return axis


def parse_vary(items: Sequence[str]) -> dict[str, Axis]:
    """``["t=1,2,4", "k=3:7:2"]`` → ``{"t": [1, 2, 4], "k": [3, 5, 7]}`` (each an :class:`Axis`)."""
    axes: dict[str, Axis] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"--vary {item!r}: expected NAME=VALUES, e.g. t=1,2,4,6 or H=32:224:32")
        if name in axes:
            raise UsageError(f"--vary {name}: given twice")
        axes[name] = parse_values(values, name)
    return axes


@dataclass
class SweepResult:
    """A sweep's grid and its exact results: ``result["macs"]`` is an array in the grid's order.

    The grid is the Cartesian product of the axes, the last axis varying fastest. When some point
    may be one ``table --set`` refuses, ``result["valid"]`` is a boolean array (False there; the
    metrics hold 0 at such points) and ``"valid"`` is among the columns.
    """

    axes: dict[str, Any]
    fixed: dict[str, int]
    columns: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    convention: Any = None  # the Convention the macs column follows (None: costmodel's)
    start: int = 0  # the flat index of the first point (a chunk of a larger grid)

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def checked(self) -> bool:
        """Whether the sweep has a ``valid`` column (some point may be invalid)."""
        return "valid" in self.columns

    def head(self, n: int) -> SweepResult:
        """The first ``n`` design points."""
        return type(self)(
            self.axes,
            self.fixed,
            {k: v[:n] for k, v in self.columns.items()},
            self.metrics,
            self.convention,
            self.start,
        )

    def records(self) -> Iterator[dict[str, Any]]:
        """One dict per design point: each axis's value and each metric (None at an invalid point)."""
        names = [n for n in self.columns if n != "valid"]
        valid = self.columns.get("valid")
        for i in range(len(self)):
            ok = True if valid is None else bool(valid[i])
            rec: dict[str, Any] = {n: int(self.columns[n][i]) if ok or n in self.axes else None for n in names}
            if valid is not None:
                rec["valid"] = ok
            yield rec


@dataclass
class _Piece:
    """A part of the grid with its own formulas: one pattern of "this expansion symbol is 1"."""

    bound: dict[str, int]
    compiled: list[Any]  # one Compiled per metric
    checks: list[Any]  # Compiled widths that must be ≥ 1


@dataclass
class Plan:
    """A validated sweep, ready to stream: the axes, the metrics, and one formula set per piece."""

    axes: dict[str, Axis]
    metrics: tuple[str, ...]
    ones: list[str]
    pieces: list[_Piece]
    convention: Any
    fixed: dict[str, int] = field(default_factory=dict)
    result_class: type[SweepResult] = SweepResult

    @property
    def size(self) -> int:
        """The number of grid points."""
        n = 1
        for a in self.axes.values():
            n *= len(a)
        return n

    @property
    def checked(self) -> bool:
        """Whether the results carry a ``valid`` column."""
        return any(p.checks for p in self.pieces)

    @property
    def columns(self) -> list[str]:
        """The column names in order: axes, metrics, then ``valid`` where some point may be invalid."""
        return [*self.axes, *self.metrics, *(["valid"] if self.checked else [])]

    def point(self, index: int) -> dict[str, int]:
        """The axis values of the grid point with flat index ``index``."""
        out: dict[str, int] = {}
        for name in reversed(list(self.axes)):
            axis = self.axes[name]
            index, i = divmod(index, len(axis))
            out[name] = axis[i]
        return dict(reversed(list(out.items())))

    def grid(self, start: int, stop: int) -> dict[str, Any]:
        """The axis values of points ``start`` … ``stop − 1`` (int64 arrays; the last axis fastest)."""
        import numpy as np

        idx = np.arange(start, stop, dtype=np.int64)
        out: dict[str, Any] = {}
        stride = 1
        for name in reversed(list(self.axes)):
            axis = self.axes[name]
            out[name] = axis.take((idx // stride) % len(axis))
            stride *= len(axis)
        return {n: out[n] for n in self.axes}

    def evaluate(self, start: int, stop: int) -> SweepResult:
        """The results at points ``start`` … ``stop − 1`` as a SweepResult (a chunk of the grid)."""
        import numpy as np

        grid = self.grid(start, stop)
        count = stop - start
        columns: dict[str, Any] = dict(grid)
        values: list[Any] = [None] * len(self.metrics)
        valid = np.ones(count, dtype=bool) if self.checked else None
        for piece in self.pieces:
            if self.ones:
                mask = np.ones(count, dtype=bool)
                for n in self.ones:
                    mask &= (grid[n] == 1) if n in piece.bound else (grid[n] != 1)
                idx: Any = np.flatnonzero(mask)
                if not len(idx):
                    continue
                sub = {n: a[idx] for n, a in grid.items()}
            else:
                idx, sub = None, grid
            for i, f in enumerate(piece.compiled):
                v = np.asarray(f(**sub))
                if v.ndim == 0:
                    one = int(v)
                    v = np.full(
                        count if idx is None else len(idx), one, dtype=np.int64 if abs(one) <= INT64_MAX else object
                    )
                if idx is None:
                    values[i] = v
                    continue
                if values[i] is None:
                    values[i] = np.zeros(count, dtype=v.dtype)
                elif v.dtype == object and values[i].dtype != object:
                    values[i] = values[i].astype(object)
                values[i][idx] = v
            if valid is not None and piece.checks:
                ok = np.ones(len(sub[next(iter(sub))]), dtype=bool)
                for c in piece.checks:
                    ok &= np.asarray(c(**sub)) >= 1
                if idx is None:
                    valid = ok
                else:
                    valid[idx] = ok
        for i, metric in enumerate(self.metrics):
            col = values[i]
            if valid is not None and not valid.all():
                col = np.where(valid, col, 0).astype(col.dtype)
            columns[metric] = col
        if valid is not None:
            columns["valid"] = valid
        return self.result_class(dict(self.axes), dict(self.fixed), columns, self.metrics, self.convention, start)

    def chunks(self, size: int = CHUNK, progress: Callable[[int, int], None] | None = None) -> Iterator[SweepResult]:
        """The grid's results, ``size`` points at a time, in order; ``progress(done, total)`` after each."""
        total = self.size
        for start in range(0, total, size):
            stop = min(total, start + size)
            yield self.evaluate(start, stop)
            if progress is not None:
                progress(stop, total)


MAX_POINTWISE = 4096
"""The largest grid swept point by point (a spec whose formulas cannot be formed: a graph layer's literal shapes)."""


@dataclass
class PointPlan(Plan):
    """A sweep evaluated point by point: each point's report analysed with its values bound (a graph layer's literal
    reshape shapes fit some sizes only, so no one formula covers the grid). Every point is analysed when the plan is
    made, so a point that does not fit is refused before any result is returned."""

    results: dict[str, list[int]] = field(default_factory=dict)

    def evaluate(self, start: int, stop: int) -> SweepResult:
        """The results at points ``start`` … ``stop − 1``."""
        import numpy as np

        columns: dict[str, Any] = dict(self.grid(start, stop))
        for m in self.metrics:
            values = self.results[m][start:stop]
            big = any(abs(v) > INT64_MAX for v in values)
            columns[m] = np.array(values, dtype=object if big else np.int64)
        return self.result_class(dict(self.axes), dict(self.fixed), columns, self.metrics, self.convention, start)


def _axes(metrics: Sequence[str], axes: Mapping[str, Any]) -> dict[str, Axis]:
    """The sweep's axes, each a non-empty set of positive integers, after checking that every metric is known
    (a UsageError naming the first unknown one)."""
    from ..engine.metrics import METRIC_NAMES

    bad = [m for m in metrics if m not in METRIC_NAMES]
    if bad or not metrics:
        raise UsageError(f"unknown metric {bad[0] if bad else ''!r}; expected one of {', '.join(METRIC_NAMES)}")
    cols = {n: Axis.of(v) for n, v in axes.items()}
    for name, axis in cols.items():
        if not len(axis) or axis.lo() < 1:
            raise UsageError(f"{name}: the values of an axis must be positive integers")
    return cols


def prepare_pointwise(
    axes: Mapping[str, Sequence[int]],
    metrics: Sequence[str],
    analyze: Callable[[dict[str, int]], Any],
    convention: Any,
    result_class: type[SweepResult] | None = None,
) -> PointPlan:
    """A :class:`PointPlan` over at most ``MAX_POINTWISE`` points: ``analyze(point)`` gives each point's numeric
    report; a point it refuses is refused here in one line naming the point (``--vary R=40: …``)."""
    from ..errors import SpecError

    cols = _axes(metrics, axes)
    size = 1
    for axis in cols.values():
        size *= len(axis)
    if size > MAX_POINTWISE:
        raise UsageError(
            f"the grid has {size:,} points; a spec with graph layers is swept point by point, at most "
            f"{MAX_POINTWISE:,} (its literal shapes give no one formula)"
        )
    plan = PointPlan(cols, tuple(metrics), [], [], convention, result_class=result_class or SweepResult)
    plan.results = {m: [] for m in metrics}
    for i in range(size):
        point = plan.point(i)
        try:
            report = analyze(point)
        except SpecError as err:
            at = ", ".join(f"{k}={v}" for k, v in point.items())
            raise UsageError(f"--vary {at}: {err}") from None
        for m in metrics:
            plan.results[m].append(int(report.totals[m]))
    return plan


def _checks(report: Any, ranges: Mapping[str, tuple[int, int]]) -> list[Any]:
    """The symbolic op widths that may be below 1 on the grid, compiled: every one must be ≥ 1 at a valid point."""
    from ..engine.compile import Compiled

    seen: dict[Any, None] = {}
    for row in report.rows:
        for x in (*row.op.output[:1],):
            if not isinstance(x, int) and not getattr(x, "is_Integer", False):
                seen.setdefault(x, None)
    out = []
    for expr in seen:
        if expr.is_positive:
            continue
        c = Compiled(expr, tuple(sorted(s.name for s in expr.free_symbols)))
        low = c.lower(ranges)
        if low is None or low < 1:
            out.append(c)
    return out


def limits(spec: Any) -> dict[str, tuple[int, str]]:
    """For each free symbol of ``spec`` (a NetworkSpec): the largest value that every field holding it
    accepts — 2³¹ − 1 for an integer field, 10,000 for a repeat (spec/fields.py ``field_limit``) — and
    the path of the field that sets it. ``table --set`` refuses a value beyond; so does a sweep."""
    from ..spec.fields import field_limit
    from ..spec.network import symbol_uses

    out: dict[str, tuple[int, str]] = {}
    for path, name in symbol_uses(spec):
        owner = spec
        for step in path[:-1]:
            owner = owner[step] if isinstance(step, int) else getattr(owner, step)
        top = field_limit(type(owner), str(path[-1]))
        if name not in out or top < out[name][0]:
            out[name] = (top, ".".join(map(str, path)))
    return out


def prepare(
    report: Any,
    axes: Mapping[str, Sequence[int]],
    metrics: Sequence[str],
    reanalyze: Callable[[dict[str, int]], Any] | None = None,
    result_class: type[SweepResult] | None = None,
    bounds: Mapping[str, tuple[int, str]] | None = None,
) -> Plan:
    """Validate a sweep of ``metrics`` over the grid of ``axes`` and compile it (every free symbol an axis).

    Everything a sweep can refuse is refused here, before any point is evaluated. The formulas assume
    what the report's ``assumptions`` say (a symbolic expansion ≠ 1, a symbolic kernel odd). An even
    kernel value is refused; grid points where an expansion symbol is 1 are evaluated with the formula
    ``reanalyze({name: 1})`` derives, so every point is exact. With ``bounds`` (:func:`limits` of the
    spec), an axis value beyond what its field accepts is refused, as ``table --set`` refuses it.
    Within the bounds, intermediate products can still pass int64 (C² · k² · H² at C = 2³¹ − 1): the
    compiled evaluator bounds every intermediate first and then computes in exact Python integers
    (engine/compile.py), so no value is ever wrapped.
    """

    free = set(report.symbols)
    if not free:
        raise UsageError("the spec has no symbols to vary; write a symbol name in an integer field")
    unknown = sorted(set(axes) - free)
    if unknown:
        raise UsageError(
            f"--vary {unknown[0]}: the spec has no free symbol {unknown[0]!r} (free: {', '.join(sorted(free))})"
        )
    missing = sorted(free - set(axes))
    if missing:
        raise UsageError(f"no values for {', '.join(missing)}: give --vary or --set for each free symbol")
    cols = _axes(metrics, axes)
    size = 1
    for name, axis in cols.items():
        if axis.hi() > INT64_MAX:
            raise UsageError(f"{name}: axis values must be at most 2^63 - 1 = {INT64_MAX:,}")
        if bounds and name in bounds and axis.hi() > bounds[name][0]:
            top, where = bounds[name]
            v = axis.hi()
            raise UsageError(
                f"--vary {name}={v}: {name} is {where}, which must be at most {top:,} "
                f"(table --set {name}={v} refuses it)"
            )
        size *= len(axis)
    if size > MAX_POINTS:
        raise UsageError(f"the grid has {size:,} points; the limit is {MAX_POINTS:,}")
    ones: list[str] = []
    for name, rule in report.assumptions:
        if name not in cols:
            continue
        axis = cols[name]
        if rule == "odd" and axis.evens():
            raise UsageError(f"--vary {name}: a kernel must be odd, and {name} takes even values")
        if rule == "ne1" and axis.lo() == 1 and name not in ones:
            ones.append(name)
    if ones and reanalyze is None:
        raise UsageError(f"--vary {ones[0]} includes 1, where the block has no expansion conv")
    ranges = {n: (a.lo(), a.hi()) for n, a in cols.items()}
    pieces = []
    for mask_bits in range(2 ** len(ones)):
        bound = {n: 1 for i, n in enumerate(ones) if mask_bits >> i & 1}
        sub = report if not bound else reanalyze(bound)  # type: ignore[misc]
        sub_ranges = {n: (1, 1) if n in bound else r for n, r in ranges.items()}
        pieces.append(_Piece(bound, [sub.compile(m) for m in metrics], _checks(sub, sub_ranges)))
    return Plan(cols, tuple(metrics), ones, pieces, report.convention, result_class=result_class or SweepResult)


def run(
    report: Any,
    axes: Mapping[str, Sequence[int]],
    metrics: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    reanalyze: Callable[[dict[str, int]], Any] | None = None,
    result_class: type[SweepResult] | None = None,
) -> SweepResult:
    """Evaluate ``metrics`` of a symbolic report over the whole grid of ``axes``, in memory (see :func:`prepare`).

    Grids of more than ``MAX_IN_MEMORY`` points are refused: stream them with :func:`prepare` and
    ``Plan.chunks`` (``costmodel.sweep_chunks``). ``progress(done, total)`` is called after each chunk
    (the CLI draws a bar with it; the library prints nothing).
    """
    import numpy as np

    plan = prepare(report, axes, metrics, reanalyze, result_class)
    if plan.size > MAX_IN_MEMORY:
        raise UsageError(
            f"the grid has {plan.size:,} points; costmodel.sweep returns at most {MAX_IN_MEMORY:,} in memory: "
            "stream it with costmodel.sweep_chunks (or the CLI's --format csv / jsonl)"
        )
    parts = list(plan.chunks(max(CHUNK, 1), progress if plan.size > CHUNK else None))
    columns = {n: np.concatenate([p.columns[n] for p in parts]) for n in plan.columns}
    return plan.result_class(
        {n: list(a) for n, a in plan.axes.items()}, dict(plan.fixed), columns, plan.metrics, plan.convention
    )
