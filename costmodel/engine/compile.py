"""A closed form compiled once into exact numpy evaluation over whole arrays of design points.

A formula (a sympy expression from the engine) is compiled into a tree of numpy operations — no
code is generated or evaluated. Every rational is turned into exact integer arithmetic: an
expression is rewritten as P / Q with Q an integer constant and computed as P // Q (exact, since
counts are integers), and ``floor(p / q)`` likewise. Before evaluating in int64, exact interval
arithmetic on the inputs' ranges bounds every intermediate; if any bound passes the int64 range, the
grid is evaluated with exact Python integers instead (slower, never wrong). Nothing overflows silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from typing import Any

from ..errors import UsageError

INT64_MAX = 2**63 - 1

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
        _seen((self.q, self.q), peak)  # the divisor is an operand too
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

    def lower(self, ranges: Mapping[str, Interval]) -> int | None:
        """A lower bound of the formula over the box ``ranges`` (exact interval arithmetic); None if unknown."""
        if self._node is None or any(s not in ranges for s in self.symbols):
            return None
        return self._node.bounds(ranges, [0])[0]

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
