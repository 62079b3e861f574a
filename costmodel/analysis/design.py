"""Design-space tools: compare specs, solve for a symbol under budgets, sensitivity of a cost.

* ``compare`` — totals side by side, ratios to the first spec, each stage's share.
* ``solve`` — the largest (or smallest) integer value of one symbol meeting every budget. A closed-form
  root from sympy gives the candidate where sympy finds one; the answer is always confirmed (or found)
  by exact integer evaluation, assuming each budgeted metric is non-decreasing in the symbol (true of
  every count of positive sizes).
* ``elasticities`` — at a point, ∂f/∂x and the elasticity (x / f) · ∂f/∂x of a metric for each symbol:
  how many percent the cost moves per percent of x, for the closed form taken as continuous.

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


def solve(
    report: Report,
    symbol: str,
    budgets: Sequence[Budget],
    reanalyze: Callable[[dict[str, int]], Report],
    smallest: bool = False,
) -> Solution:
    """The largest (or, with ``smallest``, the smallest) positive integer value of ``symbol`` meeting all budgets.

    ``report`` must have ``symbol`` as its only free symbol; ``reanalyze({symbol: n})`` gives the
    numeric report at n, which is what every candidate is checked against.
    """
    import sympy

    from ..engine.symbols import symbol as sym

    if not budgets:
        raise UsageError("solve needs at least one --budget")
    if symbol not in report.symbols:
        raise UsageError(f"--for {symbol}: the spec has no free symbol {symbol!r} (free: {', '.join(report.symbols)})")
    others = [s for s in report.symbols if s != symbol]
    if others:
        raise UsageError(f"bind the other symbols with --set: {', '.join(others)}")
    if not smallest and not any(b.upper for b in budgets):
        raise UsageError("the largest value is unbounded without a ceiling budget (<= or <); use --smallest")
    cache: dict[int, dict[str, int]] = {}

    def totals(n: int) -> dict[str, int]:
        if n not in cache:
            cache[n] = {m: int(v) for m, v in reanalyze({symbol: n}).totals.items()}
        return cache[n]

    # closed-form roots of metric(symbol) = limit, where sympy finds them
    roots: dict[str, Any] = {}
    x = sym(symbol)
    real_x = sympy.Symbol(symbol, positive=True)  # the root of the continuous equation need not be an integer
    for b in budgets:
        expr = report.expression(b.metric).xreplace({x: real_x})
        if len(expr.atoms(sympy.Function)) or sympy.degree(sympy.expand(expr), real_x) > 4:
            continue  # floor/Max or high degree: leave it to the exact search
        try:
            limit = sympy.Rational(b.limit.numerator, b.limit.denominator)
            sols = sympy.solve(sympy.Eq(expr, limit), real_x)
        except (NotImplementedError, ValueError, TypeError):
            sols = []
        real = [s for s in sols if s.is_real and s.is_positive]
        if real:
            roots[str(b)] = real[0]

    method = "integer search"
    # the feasible set is an interval [lo, hi] when every metric is non-decreasing in the symbol
    floors = [b for b in budgets if not b.upper]
    ceilings = [b for b in budgets if b.upper]

    def meets(n: int, group: list[Budget]) -> bool:
        t = totals(n)
        return all(b.holds(t[b.metric]) for b in group)

    def first_true(pred: Callable[[int], bool], start: int = 1) -> int | None:
        """Smallest n ≥ start with pred(n), for a predicate false then true (exponential then binary search)."""
        if pred(start):
            return start
        lo, hi = start, start * 2
        while not pred(hi):
            lo, hi = hi, hi * 2
            if hi > SEARCH_CAP:
                return None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if pred(mid):
                hi = mid
            else:
                lo = mid
        return hi

    lo = first_true(lambda n: meets(n, floors)) if floors else 1
    if lo is None or not meets(lo, ceilings):
        return Solution(symbol, None, {}, method, roots)
    value: int | None
    if smallest:
        value = lo
    else:
        # candidate from a closed-form root, confirmed exactly; otherwise the exact search
        candidates = [int(sympy.floor(r)) for r in roots.values() if r.is_real]
        value = None
        for c in sorted(candidates):
            if c >= lo and meets(c, ceilings) and not meets(c + 1, ceilings):
                value, method = c, "closed form, confirmed by exact evaluation"
                break
        if value is None:
            beyond = first_true(lambda n: not meets(n, ceilings), lo)
            if beyond is None:
                raise UsageError(f"no ceiling is reached below {SEARCH_CAP:,}: the budgets do not bound {symbol}")
            value = beyond - 1
    assert value is not None
    return Solution(symbol, value, totals(value), method, roots)


# ------------------------------------------------------------------------------------------ sensitivity


def derivative(report: Report, metric: str, name: str) -> Any:
    """∂metric/∂name of the report's closed form, factored."""
    import sympy

    from ..engine.symbols import symbol

    if name not in report.symbols:
        raise UsageError(f"--diff {name}: the spec has no free symbol {name!r} (free: {', '.join(report.symbols)})")
    return sympy.factor(sympy.diff(report.expression(metric), symbol(name)))


@dataclass
class Elasticity:
    """At a point: the value of a metric, its partial derivative in ``name`` and its elasticity."""

    metric: str
    name: str
    at: int
    value: Any
    partial: Any
    elasticity: Any


def elasticities(report: Report, point: Mapping[str, int], metrics: Sequence[str]) -> list[Elasticity]:
    """For each metric and each free symbol: f, ∂f/∂x and (x / f)·∂f/∂x at ``point`` (every symbol bound)."""
    import sympy

    from ..engine.symbols import symbol

    missing = [s for s in report.symbols if s not in point]
    if missing:
        raise UsageError(f"--at needs a value for every free symbol; missing {', '.join(missing)}")
    extra = sorted(set(point) - set(report.symbols))
    if extra:
        raise UsageError(f"--at {extra[0]}: the spec has no free symbol {extra[0]!r}")
    subs = {symbol(k): v for k, v in point.items()}
    out = []
    for metric in metrics:
        expr = report.expression(metric)
        f = sympy.nsimplify(expr.xreplace(subs))
        for name in report.symbols:
            d = sympy.diff(expr, symbol(name)).xreplace(subs)
            d = sympy.nsimplify(d.doit()) if d.free_symbols == set() else d
            e = sympy.nsimplify(d * point[name] / f) if f != 0 and d.free_symbols == set() else sympy.nan
            out.append(Elasticity(metric, name, point[name], f, d, e))
    return out
