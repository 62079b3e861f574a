"""Design-space tools: compare specs, solve for a symbol under budgets, sensitivity of a cost.

* ``compare`` — totals side by side, ratios to the first spec, each stage's share.
* ``solve`` — the largest (or smallest) valid value of one symbol meeting every budget: an exhaustive
  exact search over 1 … ``--max`` (default 4096; odd values for kernels), confirmed by re-analysis;
  past the range only where the costs are proven non-decreasing in the symbol (see :func:`solve`).
* ``elasticities`` — at a point, ∂f/∂x and the elasticity (x / f) · ∂f/∂x of a metric for each symbol:
  how many percent the cost moves per percent of x; the exact derivative where the formula is smooth
  in x, a difference on the integer lattice where it has floor/max (stated in each row).

Budgets are parsed by a small grammar of our own (``METRIC OP NUMBER``), never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from ..engine.report import METRICS, Report
from ..errors import UsageError

# ---------------------------------------------------------------------------------------------- compare


@dataclass
class Comparison:
    """Several reports side by side: totals, ratios to the first, and each stage's share of each metric."""

    names: list[str]
    reports: list[Report]

    def ratio(self, i: int, metric: str) -> Fraction | None:
        """Report ``i``'s ``metric`` over the first report's, exactly (None if not numeric or the first is 0)."""
        a, b = self.reports[0].totals[metric], self.reports[i].totals[metric]
        if not (isinstance(a, int) and isinstance(b, int)) or a == 0:
            return None
        return Fraction(b, a)

    def stages(self) -> list[str]:
        """Every stage that occurs in any report, in order of first appearance."""
        return list(dict.fromkeys(s for r in self.reports for s in r.stages()))

    def share(self, i: int, stage: str, metric: str) -> Fraction | None:
        """The fraction of report ``i``'s ``metric`` that ``stage`` holds."""
        report = self.reports[i]
        total = report.totals[metric]
        part = report.by_stage().get(stage, {}).get(metric, 0)
        if not (isinstance(total, int) and isinstance(part, int)) or total == 0:
            return None
        return Fraction(part, total)


def compare(reports: Sequence[Report], names: Sequence[str]) -> Comparison:
    """Compare analysed specs; the first is the baseline of every ratio."""
    if len(reports) < 2:
        raise UsageError("compare needs at least two specs")
    return Comparison(list(names), list(reports))


# ------------------------------------------------------------------------------------------------ solve

_BUDGET = re.compile(
    r"^\s*(?P<metric>[a-z]+)\s*(?P<op><=|<|>=|>)\s*(?P<num>[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE]\+?[0-9]+)?)\s*"
    r"(?P<suffix>[kKMGT]?)\s*$"
)
#: The largest budget accepted is below 10 ** (BUDGET_MAX_EXPONENT + 1), before a k/M/G/T suffix.
BUDGET_MAX_EXPONENT = 100
_SUFFIX = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class Budget:
    """``metric op limit``, e.g. macs <= 300000000; the limit is an exact fraction."""

    metric: str
    op: str
    limit: Fraction

    def holds(self, value: int) -> bool:
        """Whether ``value`` meets this budget."""
        return {
            "<=": value <= self.limit,
            "<": value < self.limit,
            ">=": value >= self.limit,
            ">": value > self.limit,
        }[self.op]

    @property
    def upper(self) -> bool:
        """True for a ceiling (<=, <), False for a floor (>=, >)."""
        return self.op in ("<=", "<")

    def __str__(self) -> str:
        limit = self.limit.numerator if self.limit.denominator == 1 else float(self.limit)
        return f"{self.metric} {self.op} {limit:,}" if isinstance(limit, int) else f"{self.metric} {self.op} {limit}"


def parse_budget(text: str) -> Budget:
    """``'macs<=3e8'``, ``'params < 5.3M'``, ``'flops>=1_000_000'`` → a Budget; anything else is refused."""
    m = _BUDGET.match(text)
    if not m:
        raise UsageError(
            f"--budget {text!r}: expected METRIC OP NUMBER, e.g. 'macs<=3e8' or 'params<5.3M' "
            f"(METRIC: {', '.join(METRICS)}; OP: <=, <, >=, >)"
        )
    if m["metric"] not in METRICS:
        raise UsageError(f"--budget {text!r}: unknown metric {m['metric']!r}; expected one of {', '.join(METRICS)}")
    digits = m["num"].replace("_", "")
    try:
        decimal = Decimal(digits)
    except (InvalidOperation, ValueError):  # pragma: no cover - the pattern admits only valid decimals
        raise UsageError(f"--budget {text!r}: bad number") from None
    # bound the number before making it exact: 1e99999999 would be a hundred-million-digit integer
    if len(digits) > 100 or decimal.adjusted() > BUDGET_MAX_EXPONENT:
        raise UsageError(f"--budget: the number is out of range (at most 1e{BUDGET_MAX_EXPONENT}, 100 characters)")
    number = Fraction(decimal)
    return Budget(m["metric"], m["op"], number * _SUFFIX[m["suffix"]])


@dataclass
class Solution:
    """The answer of ``solve``: the value found (None if none meets the budgets) and the costs there."""

    symbol: str
    value: int | None
    totals: dict[str, int]
    method: str
    roots: dict[str, Any]


SEARCH_CAP = 2**62
SEARCH_MAX = 4096
"""``solve`` searches every valid value 1 … SEARCH_MAX exhaustively (``--max`` changes it)."""


def _nondecreasing(expr: Any, x: Any) -> bool:
    """Proven non-decreasing in x > 0: a polynomial in x (no floor/max) with every coefficient ≥ 0."""
    import sympy

    try:
        poly = sympy.Poly(sympy.expand(expr), x)
    except (sympy.PolynomialError, sympy.GeneratorsNeeded, ValueError, TypeError):
        return bool(expr.free_symbols.isdisjoint({x}))
    return all(c.is_number and c >= 0 for c in poly.all_coeffs())


def _meets(values: dict[str, Any], budgets: Sequence[Budget]) -> Any:
    """Elementwise: every budget holds (exact: integer thresholds from the fractional limits)."""
    import math

    import numpy as np

    ok: Any = None
    for b in budgets:
        v = values[b.metric]
        lim = b.limit
        if b.op == "<=":
            hit = v <= _clip(math.floor(lim), v)
        elif b.op == "<":
            hit = v <= _clip(math.ceil(lim) - 1, v)
        elif b.op == ">=":
            hit = v >= _clip(math.ceil(lim), v)
        else:
            hit = v >= _clip(math.floor(lim) + 1, v)
        hit = np.asarray(hit, dtype=bool)
        ok = hit if ok is None else ok & hit
    return ok


def _clip(threshold: int, v: Any) -> int:
    if getattr(v, "dtype", None) is not None and v.dtype != object:
        return max(-(2**63), min(2**63 - 1, threshold))
    return threshold


def solve(
    report: Report,
    symbol: str,
    budgets: Sequence[Budget],
    reanalyze: Callable[[dict[str, int]], Report],
    smallest: bool = False,
    maximum: int = SEARCH_MAX,
) -> Solution:
    """The largest (or, with ``smallest``, the smallest) valid value of ``symbol`` meeting all budgets.

    ``report`` must have ``symbol`` as its only free symbol; ``reanalyze({symbol: n})`` gives the
    numeric report at n (what ``table --set`` gives). The search:

    1. every valid value 1 … ``maximum`` (odd ones only for a kernel) is evaluated exactly with the
       compiled formula (analysis/sweep.py: the expansion-1 formula where the symbol is 1, and points
       ``table`` refuses, such as a zero bottleneck width, are skipped) — correct for any shape of
       the costs in the symbol (strides make them decrease, floors make them step);
    2. the best feasible value is confirmed by ``reanalyze`` (a value the spec refuses is skipped);
    3. only where every budgeted metric is *proven* non-decreasing in the symbol (a polynomial with
       non-negative coefficients, no floor or max) does the search go past ``maximum``, by exponential
       then binary search on exact values, up to 2⁶².
    """
    import sympy

    from ..engine.symbols import symbol as sym
    from ..errors import CostModelError
    from .sweep import prepare

    if not budgets:
        raise UsageError("solve needs at least one --budget")
    if symbol not in report.symbols:
        raise UsageError(f"--for {symbol}: the spec has no free symbol {symbol!r} (free: {', '.join(report.symbols)})")
    others = [s for s in report.symbols if s != symbol]
    if others:
        raise UsageError(f"bind the other symbols with --set: {', '.join(others)}")
    if isinstance(maximum, bool) or not isinstance(maximum, int) or not 1 <= maximum <= 10**7:
        raise UsageError(f"--max {maximum!r}: expected an integer from 1 to 10,000,000")
    x = sym(symbol)
    odd = (symbol, "odd") in report.assumptions
    step = 2 if odd else 1
    metrics = list(dict.fromkeys(b.metric for b in budgets))
    monotone = all(_nondecreasing(report.expression(m), x) for m in metrics)
    if not smallest and not any(b.upper for b in budgets) and monotone:
        raise UsageError("the largest value is unbounded without a ceiling budget (<= or <); use --smallest")

    # closed-form roots of metric(symbol) = limit, where sympy finds them (shown, never trusted)
    roots: dict[str, Any] = {}
    real_x = sympy.Symbol(symbol, positive=True)
    for b in budgets:
        expr = report.expression(b.metric).xreplace({x: real_x})
        if len(expr.atoms(sympy.Function)) or sympy.degree(sympy.expand(expr), real_x) > 4:
            continue
        try:
            limit = sympy.Rational(b.limit.numerator, b.limit.denominator)
            sols = sympy.solve(sympy.Eq(expr, limit), real_x)
        except (NotImplementedError, ValueError, TypeError):
            sols = []
        real = [r for r in sols if r.is_real and r.is_positive]
        if real:
            roots[str(b)] = real[0]

    cache: dict[int, dict[str, int] | None] = {}

    def totals(n: int) -> dict[str, int] | None:
        """The exact totals at n, or None where the spec refuses n."""
        if n not in cache:
            try:
                cache[n] = {m: int(v) for m, v in reanalyze({symbol: n}).totals.items()}
            except CostModelError:
                cache[n] = None
        return cache[n]

    def ok(n: int) -> bool:
        t = totals(n)
        return t is not None and bool(_meets(t, budgets))

    # 1. exhaustive over the valid values 1 … maximum
    plan = prepare(report, {symbol: range(1, maximum + 1, step)}, metrics, reanalyze)
    feasible: list[int] = []
    for chunk in plan.chunks():
        hit = _meets({m: chunk[m] for m in metrics}, budgets)
        if chunk.checked:
            hit &= chunk["valid"]
        feasible += chunk[symbol][hit].tolist()
    order = feasible if smallest else feasible[::-1]
    value: int | None = None
    for n in order:  # 2. confirmed by re-analysis
        if ok(n):
            value = n
            break
    top = maximum if (maximum - 1) % step == 0 else maximum - 1
    method = f"exhaustive search of {symbol} = 1…{maximum}" + (" (odd values)" if odd else "")
    method += " with the compiled formula, confirmed by re-analysis"
    # 3. past the range, only where monotonicity is proven
    if monotone and ((not smallest and value == top) or (smallest and value is None)):
        method += f"; beyond {maximum}, exponential then binary search (the budgeted metrics are polynomials "
        method += f"in {symbol} with non-negative coefficients, so non-decreasing)"

        def first(pred: Callable[[int], bool], j0: int) -> int | None:
            """Smallest index j ≥ j0 with pred(1 + step·j), pred false then true."""
            if pred(1 + step * j0):
                return j0
            lo, hi = j0, max(1, j0) * 2
            while not pred(1 + step * hi):
                lo, hi = hi, hi * 2
                if 1 + step * hi > SEARCH_CAP:
                    return None
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if pred(1 + step * mid):
                    hi = mid
                else:
                    lo = mid
            return hi

        floors = [b for b in budgets if not b.upper]
        ceilings = [b for b in budgets if b.upper]
        j_top = (top - 1) // step
        if smallest:
            j = first(lambda n: (t := totals(n)) is not None and bool(_meets(t, floors)), j_top)
            if j is not None and ok(1 + step * j):
                value = 1 + step * j
        else:
            j = first(lambda n: (t := totals(n)) is None or not bool(_meets(t, ceilings)), j_top)
            if j is None:
                raise UsageError(f"no ceiling is reached below {SEARCH_CAP:,}: the budgets do not bound {symbol}")
            value = 1 + step * (j - 1)
            if not ok(value):  # pragma: no cover - feasible at top and monotone
                value = None
    elif value == top and not smallest:
        method += f"; larger values were not searched (raise --max beyond {maximum})"
    if value is None:
        return Solution(symbol, None, {}, method, roots)
    found = totals(value)
    assert found is not None
    return Solution(symbol, value, found, method, roots)


# ------------------------------------------------------------------------------------------ sensitivity


def _smooth(expr: Any, x: Any) -> bool:
    """Whether x enters ``expr`` only through +, ×, powers (no floor, max or other function)."""
    import sympy

    return not any(x in f.free_symbols for f in expr.atoms(sympy.Function))


#: The longest period of the floor steps that a lattice difference spans (a product of strides past it
#: is not a design the difference can describe; the one-step difference is given instead).
PERIOD_MAX = 2**20


def _shift(e: Any, x: Any, q: int) -> Any:
    """e(x + q) − e(x) where that is the same for every x (e linear in x and in floors of such), else None."""
    import sympy

    if x not in e.free_symbols:
        return sympy.Integer(0)
    if e == x:
        return sympy.Integer(q)
    if e.is_Add:
        parts = [_shift(a, x, q) for a in e.args]
        return None if any(p is None for p in parts) else sympy.Add(*parts)
    if e.is_Mul:
        dep = [a for a in e.args if x in a.free_symbols]
        if len(dep) != 1:
            return None
        s = _shift(dep[0], x, q)
        return None if s is None else sympy.Mul(*[a for a in e.args if x not in a.free_symbols], s)
    if isinstance(e, (sympy.floor, sympy.ceiling)):
        s = _shift(e.args[0], x, q)
        return s if s is not None and s.is_integer else None
    return None


def _linear(e: Any, x: Any) -> bool:
    """Whether x enters e only through sums, products with one factor in x, floor and ceiling."""
    import sympy

    if x not in e.free_symbols or e == x:
        return True
    if e.is_Add:
        return all(_linear(a, x) for a in e.args)
    if e.is_Mul:
        dep = [a for a in e.args if x in a.free_symbols]
        return len(dep) == 1 and _linear(dep[0], x)
    return isinstance(e, (sympy.floor, sympy.ceiling)) and _linear(e.args[0], x)


def lattice_period(expr: Any, x: Any, step: int = 1) -> int | None:
    """The period of the floor steps of ``expr`` in x: the least multiple q of ``step`` such that x → x + q
    moves the argument of every floor/ceiling containing x by a whole number (so over any window of q
    every floor steps by a whole number and none is straddled part-way); None where a floor's argument is
    not linear in x with rational coefficients (x in a denominator, a power, Max), or q would pass
    PERIOD_MAX.

    For a network whose strides multiply to 32 (five stride-2 stages) the MACs hold floor((H − 1)/2^i)
    for i = 1 … 5, and the period in H is 32.
    """
    import math

    import sympy

    nodes = [f for f in expr.atoms(sympy.Function) if x in f.free_symbols]
    if any(not isinstance(f, (sympy.floor, sympy.ceiling)) or not _linear(f.args[0], x) for f in nodes):
        return None
    q = step
    while q <= PERIOD_MAX:
        need, waiting = 1, False
        for f in nodes:
            s = _shift(f.args[0], x, q)
            if s is None:  # an inner floor does not step whole yet
                waiting = True
            elif not s.is_Rational:
                return None
            else:
                need = math.lcm(need, int(s.q))
        if need == 1:
            return None if waiting else q
        q *= need
    return None


def difference(report: Report, metric: str, name: str) -> tuple[Any, str]:
    """∂metric/∂name as a formula, and how it was taken.

    Where ``name`` enters only through sums, products and powers: the exact derivative (method
    ``"exact"``). Where it enters through floor or max (strides, SE widths, symbolic resolutions) the
    derivative does not exist; the central difference on the integer lattice is given instead,
    (f(x + h) − f(x − h)) / 2h with h one period of the floor steps in x (:func:`lattice_period`: 32 in H
    for strides multiplying to 32, so the window never holds part of a step), else h = 1 (2 for a kernel,
    whose values are odd). Either is printed as formulas are (:func:`~costmodel.engine.symbols.readable`:
    ``ceiling(H/32)`` for ``floor(H/32 - 1/32) + 1``, the same value).
    """
    import sympy

    from ..engine.report import tidy
    from ..engine.symbols import readable, symbol

    if name not in report.symbols:
        raise UsageError(f"--diff {name}: the spec has no free symbol {name!r} (free: {', '.join(report.symbols)})")
    x = symbol(name)
    expr = report.expression(metric)
    if _smooth(expr, x):
        return tidy(readable(sympy.diff(expr, x))), "exact"
    step = 2 if (name, "odd") in report.assumptions else 1
    period = lattice_period(expr, x, step)
    h = period or step
    d = readable((expr.xreplace({x: x + h}) - expr.xreplace({x: x - h})) / (2 * h))
    return d, (
        f"{name} enters through floor/max, so this is the central difference (f({name}+{h}) - f({name}-{h}))/{2 * h} "
        "on the integer lattice, not a derivative"
        + (f" ({h} is the period of the floor steps in {name}: no step is straddled part-way)" if h > step else "")
    )


def derivative(report: Report, metric: str, name: str) -> Any:
    """∂metric/∂name of the report's closed form, factored; a lattice difference where it has floor/max
    (see :func:`difference`)."""
    return difference(report, metric, name)[0]


@dataclass
class Elasticity:
    """At a point: the value of a metric, its partial derivative in ``name`` and its elasticity.

    ``partial`` is exact (a sympy Rational) or None where no neighbour is valid; ``method`` says
    whether it is the exact derivative or a difference on the integer lattice.
    """

    metric: str
    name: str
    at: int
    value: Any
    partial: Any
    elasticity: Any
    method: str = "exact derivative"


def elasticities(
    report: Report,
    point: Mapping[str, int],
    metrics: Sequence[str],
    reanalyze: Callable[[dict[str, int]], Report] | None = None,
) -> list[Elasticity]:
    """For each metric and each free symbol: f, ∂f/∂x and (x / f)·∂f/∂x at ``point`` (every symbol bound).

    f is what ``table --set`` gives at the point (``reanalyze(point)``: the expansion-1 and odd-kernel
    rules apply; a point the spec refuses is refused). ∂f/∂x is the exact derivative of the formula in
    force at the point where x enters it smoothly; where x enters through floor or max, or x is an
    expansion at 1 (the formula changes there), it is the difference on the integer lattice:
    central (f(x+h) − f(x−h))/2h, one-sided (f(x+h) − f(x))/h or (f(x) − f(x−h))/h at the edge of the
    valid values, with h one period of the floor steps in x (the other symbols bound; see
    :func:`lattice_period`), else h = 1 (2 for kernels), each f from ``reanalyze``.
    """
    import sympy

    from ..engine.symbols import symbol
    from ..errors import CostModelError

    missing = [s for s in report.symbols if s not in point]
    if missing:
        raise UsageError(f"--at needs a value for every free symbol; missing {', '.join(missing)}")
    extra = sorted(set(point) - set(report.symbols))
    if extra:
        raise UsageError(f"--at {extra[0]}: the spec has no free symbol {extra[0]!r}")
    if reanalyze is None:
        raise UsageError("elasticities needs reanalyze (costmodel.sensitivity passes it)")
    cache: dict[tuple[tuple[str, int], ...], dict[str, int] | None] = {}

    def at(p: Mapping[str, int], strict: bool = False) -> dict[str, int] | None:
        key = tuple(sorted(p.items()))
        if key not in cache:
            try:
                cache[key] = {m: int(v) for m, v in reanalyze(dict(p)).totals.items()}
            except CostModelError:
                if strict:
                    raise
                cache[key] = None
        return cache[key]

    base = at(point, strict=True)
    assert base is not None
    ones = {n: 1 for n, rule in report.assumptions if rule == "ne1" and point.get(n) == 1}
    piece = reanalyze(ones) if ones else report
    subs = {symbol(k): v for k, v in point.items()}

    def others(name: str) -> dict[Any, int]:
        return {symbol(k): v for k, v in point.items() if k != name}

    out = []
    for metric in metrics:
        f = base[metric]
        expr = piece.expression(metric)
        for name in report.symbols:
            x = symbol(name)
            partial: Any = None
            if name not in ones and _smooth(expr, x):
                partial = sympy.nsimplify(sympy.diff(expr, x).xreplace(subs))
                method = "exact derivative"
            else:
                step = 2 if (name, "odd") in report.assumptions else 1
                # a window of one period of the floor steps: a one-step difference at H = 160 of a network
                # with strides 32 spans the step at 161 alone (elasticity 7.7 where +20% H gives +20% MACs)
                period = None if name in ones else lattice_period(expr.xreplace(others(name)), x, step)
                h = period or step
                v = point[name]
                up = at({**point, name: v + h})
                down = at({**point, name: v - h}) if v - h >= 1 else None
                over = f", over one period ({h}) of the floor steps in {name}" if h > step else ""
                if up is not None and down is not None:
                    partial = sympy.Rational(up[metric] - down[metric], 2 * h)
                    method = f"central difference (f({name}+{h}) - f({name}-{h}))/{2 * h} on the integer lattice"
                elif up is not None:
                    partial = sympy.Rational(up[metric] - f, h)
                    method = f"forward difference (f({name}+{h}) - f({name}))/{h} on the integer lattice"
                elif down is not None:
                    partial = sympy.Rational(f - down[metric], h)
                    method = f"backward difference (f({name}) - f({name}-{h}))/{h} on the integer lattice"
                else:
                    method = "no valid neighbour on the integer lattice"
                method += over
            e = sympy.nan if partial is None or f == 0 else sympy.nsimplify(partial * point[name] / f)
            out.append(Elasticity(metric, name, point[name], sympy.Integer(f), partial, e, method))
    return out
