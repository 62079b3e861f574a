"""Symbols, declared once with their assumptions, and the few helpers that treat ints and sympy alike.

Every symbol costmodel makes is ``positive=True, integer=True``: sizes, channel counts, kernels,
strides, expansions and repeats are all positive integers. sympy is imported only when a spec holds a
symbol, so the numeric path never pays for it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

Num = Any  # int, or a sympy expression when the spec is symbolic


@cache
def symbol(name: str) -> Any:
    """The one sympy Symbol for ``name``: positive and integer."""
    import sympy

    return sympy.Symbol(name, positive=True, integer=True)


def value(x: int | str) -> Num:
    """A spec's integer field as a number: the int itself, or the sympy symbol of that name."""
    return x if isinstance(x, int) else symbol(x)


def is_symbolic(x: Num) -> bool:
    """True when ``x`` is a sympy object rather than a plain int."""
    return not isinstance(x, int)


def equal(a: Num, b: Num) -> bool | None:
    """Whether ``a == b``: True, False, or None when the symbols do not settle it."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    diff = a - b
    if isinstance(diff, int):
        return diff == 0
    return diff.is_zero  # type: ignore[no-any-return]


def floordiv(a: Num, b: Num) -> Num:
    """``floor(a / b)`` for ints and sympy expressions alike."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    import sympy

    if isinstance(a, sympy.floor) and isinstance(b, int) and b > 0:
        return sympy.floor(a.args[0] / b)  # floor(floor(x) / n) = floor(x / n) for a positive integer n
    return sympy.floor(sympy.Integer(a) / b if isinstance(a, int) else a / b)


def readable(expr: Num) -> Num:
    """``expr`` with every floor that is a ceiling in disguise written as the ceiling: the same value, the
    form a reader expects (``ceiling(H/32)`` for ``floor(H/32 - 1/32) + 1``).

    A stride-s conv or pool with 'same' or k//2 padding outputs floor((H + 2p − k)/s) + 1 = floor((H − 1)/s) + 1
    rows, and for an integer P and a positive integer s, floor((P − 1)/s) + 1 = ceil(P/s) (write P = qs + r,
    0 ≤ r < s: both sides are q + 1 when r > 0 and q when r = 0). More generally floor((P + c)/s) =
    ceil(P/s) + m − 1 when c + 1 = m·s. Floors are rewritten innermost first, and ceil(ceil(x)/n) = ceil(x/n)
    for a positive integer n flattens the nest a chain of symbolic strides leaves. A floor whose argument is
    not of that form (floor(H/2) of a 2×2 pool, floor(C/g) of a channel split) is kept; nothing else changes.
    Where a floor was rewritten the result is expanded, so that (ceil − 1)·(ceil − 1) + … collapses.
    """
    if isinstance(expr, int) or not expr.has(_sympy().floor):
        return expr
    sympy = _sympy()

    def rewrite(f: Any) -> Any:
        num, den = sympy.fraction(sympy.together(f.args[0]))
        if not (den.is_integer and den.is_positive):
            return f
        c, p = num.as_coeff_Add()
        if not (c.is_Integer and p.is_integer) or p == 0:
            return f
        if den.is_Integer:
            m, r = divmod(int(c) + 1, int(den))
            if r:
                return f
        elif c != -1:
            return f
        else:
            m = 0
        inner = p.args[0] / den if isinstance(p, sympy.ceiling) else p / den
        return sympy.ceiling(inner) + m - 1

    out = expr.replace(lambda e: isinstance(e, sympy.floor), rewrite)
    return sympy.expand(out) if out != expr else expr


def shown(x: Num) -> str:
    """``x`` as a message prints it: an int as itself, an expression in :func:`readable` form
    (``ceiling(H/2)``, not ``floor(H/2 - 1/2) + 1``), the form formulas print, with the same value."""
    return str(x) if isinstance(x, int) else str(readable(x))


def _sympy() -> Any:
    import sympy

    return sympy


def maximum(a: Num, b: Num) -> Num:
    """``max(a, b)`` for ints and sympy expressions alike."""
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    import sympy

    return sympy.Max(a, b)


def divides(d: Num, n: Num) -> bool | None:
    """Whether ``d`` divides ``n``: True, False, or None when the symbols do not settle it."""
    if isinstance(d, int) and isinstance(n, int):
        return n % d == 0
    import sympy

    return (sympy.Integer(n) / d if isinstance(n, int) else n / d).is_integer  # type: ignore[no-any-return]


def total(values: Any) -> Num:
    """The sum of ints or sympy values, kept exact (no float, no sympy when every value is an int)."""
    out: Num = 0
    for v in values:
        out = out + v
    return out


def to_int_or_expr(x: Num) -> Num:
    """A sympy Integer becomes a Python int; anything else is returned as is."""
    if isinstance(x, int):
        return x
    if getattr(x, "is_Integer", False):
        return int(x)
    return x
