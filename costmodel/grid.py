"""Sweeps: a closed form compiled once, evaluated exactly over a whole grid of design points.

A formula (a sympy expression from the engine) is compiled into a tree of numpy operations — no
code is generated or evaluated. Every rational is turned into exact integer arithmetic: an
expression is rewritten as P / Q with Q an integer constant and computed as P // Q (exact, since
counts are integers), and ``floor(p / q)`` likewise. Before evaluating in int64, exact interval
arithmetic on the inputs' ranges bounds every intermediate; if any bound passes the int64 range, the
grid is evaluated with exact Python integers instead (slower, never wrong). Nothing overflows silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from .errors import UsageError

INT64_MAX = 2**63 - 1
MAX_POINTS = 10**8

Arrays = Mapping[str, Any]
Interval = tuple[int, int]


class NotCompilable(Exception):
    """The formula holds a function the sweep compiler does not know; the sweep falls back to sympy."""


class _Node:
    """One operation of a compiled formula: exact evaluation on arrays, and exact bounds on intervals."""

    def evaluate(self, env: Arrays) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def bounds(self, ranges: Mapping[str, Interval], peak: list[int]) -> Interval:  # pragma: no cover
        raise NotImplementedError


def _seen(iv: Interval, peak: list[int]) -> Interval:
    peak[0] = max(peak[0], abs(iv[0]), abs(iv[1]))
    return iv


class _Const(_Node):
    def __init__(self, value: int) -> None:
        self.value = value

    def evaluate(self, env: Arrays) -> Any:
        return self.value

    def bounds(self, ranges: Mapping[str, Interval], peak: list[int]) -> Interval:
        return _seen((self.value, self.value), peak)


class _Var(_Node):
    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, env: Arrays) -> Any:
        return env[self.name]

    def bounds(self, ranges: Mapping[str, Interval], peak: list[int]) -> Interval:
        return _seen(ranges[self.name], peak)


class _Fold(_Node):
    """A sum or product of several parts, accumulated in place in one fresh array."""

    def __init__(self, parts: list[_Node], product: bool) -> None:
        # constants last: one scalar multiply or add at the end
        self.parts = sorted(parts, key=lambda p: isinstance(p, _Const))
        self.product = product

    def evaluate(self, env: Arrays) -> Any:
        import numpy as np

        ufunc = np.multiply if self.product else np.add
        acc = self.parts[0].evaluate(env)
        owned = False
        for part in self.parts[1:]:
            v = part.evaluate(env)
            if owned:
                ufunc(acc, v, out=acc)
            else:
                acc = ufunc(acc, v)
                owned = isinstance(acc, np.ndarray)
        return acc

    def bounds(self, ranges: Mapping[str, Interval], peak: list[int]) -> Interval:
        lo, hi = self.parts[0].bounds(ranges, peak)
        for part in self.parts[1:]:
            a, b = part.bounds(ranges, peak)
            if self.product:
                corners = (lo * a, lo * b, hi * a, hi * b)
                lo, hi = min(corners), max(corners)
            else:
                lo, hi = lo + a, hi + b
            _seen((lo, hi), peak)
        return lo, hi


class _Pow(_Node):
    def __init__(self, base: _Node, exp: int) -> None:
        self.base, self.exp = base, exp

    def evaluate(self, env: Arrays) -> Any:
        return self.base.evaluate(env) ** self.exp

    def bounds(self, ranges: Mapping[str, Interval], peak: list[int]) -> Interval:
        lo, hi = self.base.bounds(ranges, peak)
        ends = (lo**self.exp, hi**self.exp)
        low = 0 if lo < 0 < hi and self.exp % 2 == 0 else min(ends)
        return _seen((low, max(ends)), peak)


class _FloorDiv(_Node):
    """floor(p / q) for a positive integer q: exact integer division."""

    def __init__(self, p: _Node, q: int) -> None:
        self.p, self.q = p, q

    def evaluate(self, env: Arrays) -> Any:
        return self.p.evaluate(env) // self.q

    def bounds(self, ranges: Mapping[str, Interval], peak: list[int]) -> Interval:
        lo, hi = self.p.bounds(ranges, peak)
        return _seen((lo // self.q, hi // self.q), peak)


class _Extreme(_Node):
    def __init__(self, parts: list[_Node], largest: bool) -> None:
        self.parts, self.largest = parts, largest

    def evaluate(self, env: Arrays) -> Any:
        import numpy as np

        pick = np.maximum if self.largest else np.minimum
        return reduce(pick, [p.evaluate(env) for p in self.parts])

    def bounds(self, ranges: Mapping[str, Interval], peak: list[int]) -> Interval:
        ivs = [p.bounds(ranges, peak) for p in self.parts]
        pick = max if self.largest else min
        return pick(a for a, _ in ivs), pick(b for _, b in ivs)


def _has_fraction(expr: Any) -> bool:
    """Whether a non-integer rational appears outside function arguments (inside floor() it is handled there)."""
    if expr.is_Rational:
        return not expr.is_Integer
    if expr.is_Add or expr.is_Mul:
        return any(_has_fraction(a) for a in expr.args)
    if expr.is_Pow:
        return bool(_has_fraction(expr.args[0]) or not expr.args[1].is_Integer)
    return False


def _compile(expr: Any) -> _Node:
    """Exact integer evaluation of an integer-valued sympy expression: P / Q becomes P // Q."""
    import sympy

    if expr.is_Integer:
        return _Const(int(expr))
    if expr.is_Symbol:
        return _Var(expr.name)
    if _has_fraction(expr):
        num, den = sympy.fraction(sympy.together(expr))
        if not den.is_Integer or int(den) < 1:
            raise NotCompilable(f"denominator {den} is not a positive constant")
        return _FloorDiv(_compile(sympy.expand(num)), int(den)) if int(den) != 1 else _compile(num)
    if expr.is_Add or expr.is_Mul:
        return _Fold([_compile(a) for a in expr.args], product=expr.is_Mul)
    if expr.is_Pow:
        base, exp = expr.args
        if not (exp.is_Integer and int(exp) >= 1):
            raise NotCompilable(f"power {expr}")
        return _Pow(_compile(base), int(exp))
    if isinstance(expr, sympy.floor):
        num, den = sympy.fraction(sympy.together(expr.args[0]))
        if not den.is_Integer or int(den) < 1:
            raise NotCompilable(f"floor of {expr.args[0]}")
        return _FloorDiv(_compile(sympy.expand(num)), int(den))
    if isinstance(expr, (sympy.Max, sympy.Min)):
        return _Extreme([_compile(a) for a in expr.args], largest=isinstance(expr, sympy.Max))
    raise NotCompilable(f"{type(expr).__name__} in {expr}")


@dataclass
class Compiled:
    """A metric's closed form, compiled once; call it with arrays (or ints) of each symbol.

    Before evaluating in int64, exact interval arithmetic over the inputs' ranges bounds every
    intermediate; if any bound passes the int64 range, exact Python integers are used instead.
    """

    expr: Any
    symbols: tuple[str, ...]
    _node: _Node | None = None

    def __post_init__(self) -> None:
        try:
            self._node = _compile(self.expr)
        except NotCompilable:
            self._node = None

    def __call__(self, **values: Any) -> Any:
        """Exact values at the given points: an int for scalars, an int64 or object array for arrays."""
        import numpy as np

        missing = [s for s in self.symbols if s not in values]
        if missing:
            raise UsageError(f"no value for {', '.join(missing)}")
        arrays = {k: np.asarray(v) for k, v in values.items()}
        scalar = all(a.ndim == 0 for a in arrays.values())
        if self._node is None:
            out = self._fallback(arrays)
        else:
            ranges = {k: (int(a.min()), int(a.max())) for k, a in arrays.items() if a.size}
            peak = [0]
            if len(ranges) == len(arrays):
                self._node.bounds(ranges, peak)
            dtype: Any = np.int64 if peak[0] <= INT64_MAX else object
            out = self._node.evaluate({k: a.astype(dtype, copy=False) for k, a in arrays.items()})
        out = np.asarray(out)
        if out.ndim == 0 and not scalar:
            out = np.broadcast_to(out, np.broadcast(*arrays.values()).shape)
        return int(out) if scalar else out

    def _fallback(self, arrays: Mapping[str, Any]) -> Any:
        """Point by point with sympy: exact, slow; for formulas the compiler does not know."""
        import numpy as np

        from .symbols import symbol

        shape = np.broadcast(*arrays.values()).shape if arrays else ()
        flat = {k: np.broadcast_to(a, shape).ravel() for k, a in arrays.items()}
        syms = {k: symbol(k) for k in arrays}
        size = int(np.prod(shape)) if shape else 1
        out = np.empty(size, dtype=object)
        for i in range(size):
            out[i] = int(self.expr.xreplace({syms[k]: int(v[i]) for k, v in flat.items()}))
        return out.reshape(shape)


_RANGE = re.compile(r"^(\d+):(\d+)(?::(\d+))?$")


def parse_values(text: str, name: str = "") -> list[int]:
    """``"1,2,4,6"`` or ``"3:7:2"`` (start:stop[:step], stop included) or a mix → positive ints."""
    where = f"--vary {name}={text}" if name else repr(text)
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if m:
            start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if step < 1 or stop < start:
                raise UsageError(f"{where}: a range is start:stop[:step] with start ≤ stop and step ≥ 1")
            if (stop - start) // step + 1 > MAX_POINTS:
                raise UsageError(f"{where}: more than {MAX_POINTS:,} values")
            out += range(start, stop + 1, step)
        elif part.isdigit():
            out.append(int(part))
        else:
            raise UsageError(f"{where}: expected integers like 1,2,4 or a range like 3:7:2")
    if not out or min(out) < 1:
        raise UsageError(f"{where}: values must be positive integers")
    return out


def parse_vary(items: Sequence[str]) -> dict[str, list[int]]:
    """``["t=1,2,4", "k=3:7:2"]`` → ``{"t": [1, 2, 4], "k": [3, 5, 7]}``."""
    axes: dict[str, list[int]] = {}
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

    The grid is the Cartesian product of the axes, the last axis varying fastest.
    """

    axes: dict[str, list[int]]
    fixed: dict[str, int]
    columns: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def _repr_html_(self) -> str:
        from .render import render_sweep

        head = render_sweep(self.head(50), "html")
        more = f"<p>{len(self) - 50:,} more points</p>" if len(self) > 50 else ""
        return head + more

    def head(self, n: int) -> SweepResult:
        """The first ``n`` design points."""
        return SweepResult(self.axes, self.fixed, {k: v[:n] for k, v in self.columns.items()}, self.metrics)

    def records(self) -> Iterator[dict[str, int]]:
        """One dict per design point: each axis's value and each metric."""
        names = list(self.columns)
        for i in range(len(self)):
            yield {n: int(self.columns[n][i]) for n in names}


CHUNK = 2_000_000


def run(
    report: Any,
    axes: Mapping[str, Sequence[int]],
    metrics: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    reanalyze: Callable[[dict[str, int]], Any] | None = None,
) -> SweepResult:
    """Evaluate ``metrics`` of a symbolic report over the grid of ``axes`` (every free symbol must be an axis).

    The formulas assume what the report's ``assumptions`` say (a symbolic expansion ≠ 1, a symbolic
    kernel odd). An even kernel value is refused; grid points where an expansion symbol is 1 are
    evaluated with the formula ``reanalyze({name: 1})`` derives, so every point is exact.
    Large grids are evaluated in chunks; ``progress(done, total)`` is called after each (the CLI draws
    a bar with it; the library prints nothing).
    """
    import numpy as np

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
    size = 1
    for axis in axes.values():
        size *= len(axis)
    if size > MAX_POINTS:
        raise UsageError(f"the grid has {size:,} points; the limit is {MAX_POINTS:,}")
    ones: list[str] = []
    for name, rule in report.assumptions:
        axis = axes.get(name, ())
        if rule == "odd" and any(v % 2 == 0 for v in axis):
            raise UsageError(f"--vary {name}: a kernel must be odd, and {name} takes even values")
        if rule == "ne1" and 1 in axis and name not in ones:
            ones.append(name)
    if ones and reanalyze is None:
        raise UsageError(f"--vary {ones[0]} includes 1, where the block has no expansion conv")
    names = list(axes)
    mesh = np.meshgrid(*[np.asarray(axes[n], dtype=np.int64) for n in names], indexing="ij")
    grid = {n: m.ravel() for n, m in zip(names, mesh, strict=True)}
    result = SweepResult({n: list(axes[n]) for n in names}, {}, dict(grid), tuple(metrics))
    # one piece of the grid per pattern of "expansion symbol is 1", each with its own formulas
    pieces = []
    for mask_bits in range(2 ** len(ones)):
        bound = {n: 1 for i, n in enumerate(ones) if mask_bits >> i & 1}
        mask = np.ones(size, dtype=bool)
        for n in ones:
            mask &= (grid[n] == 1) if n in bound else (grid[n] != 1)
        if mask.any():
            sub = report if not bound else reanalyze(bound)  # type: ignore[misc]
            pieces.append((mask, [sub.compile(m) for m in metrics]))
    done = 0
    for metric_index, metric in enumerate(metrics):
        column: Any = None
        for mask, compiled in pieces:
            idx = np.flatnonzero(mask) if len(pieces) > 1 else None
            outs = []
            count = size if idx is None else len(idx)
            for start in range(0, count, CHUNK):
                sel = slice(start, start + CHUNK) if idx is None else idx[start : start + CHUNK]
                outs.append(compiled[metric_index](**{n: a[sel] for n, a in grid.items()}))
                done += len(outs[-1])
                if progress is not None and size * len(metrics) > CHUNK:
                    progress(done, size * len(metrics))
            values = outs[0] if len(outs) == 1 else np.concatenate(outs)
            if idx is None:
                column = values
            else:
                if column is None or (values.dtype == object and column.dtype != object):
                    column = (
                        np.zeros(size, dtype=object if values.dtype == object else np.int64)
                        if column is None
                        else column.astype(object)
                    )
                column[idx] = values
        result.columns[metric] = column
    return result
