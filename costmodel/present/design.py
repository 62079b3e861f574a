"""What ``solve`` found, and the sensitivity table of ``formula --at``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..analysis.design import Budget, Elasticity, Solution
from ..engine.metrics import TABLE_METRICS
from .emit import Column, Table, emit, emit_text


def solution_payload(sol: Solution, budgets: Sequence[Budget], smallest: bool = False) -> dict[str, Any]:
    """The solution as JSON: the symbol, its value, which end was sought, the budgets, the costs there, how
    it was found and the closed-form roots."""
    return {
        "symbol": sol.symbol,
        "value": sol.value,
        "which": "smallest" if smallest else "largest",
        "budgets": [str(b) for b in budgets],
        "totals": sol.totals,
        "method": sol.method,
        "roots": {k: str(v) for k, v in sol.roots.items()},
    }


def render_solution(sol: Solution, budgets: Sequence[Budget], fmt: str = "text", smallest: bool = False) -> str:
    """The value ``solve`` found and the costs there (text or JSON)."""
    return emit_text(
        lambda: solution_text(sol, budgets, smallest), fmt, lambda: solution_payload(sol, budgets, smallest)
    )


def solution_text(sol: Solution, budgets: Sequence[Budget], smallest: bool = False) -> str:
    """The solution as lines of text."""
    which = "smallest" if smallest else "largest"
    conds = " and ".join(str(b) for b in budgets)
    if sol.value is None:
        return f"no positive integer {sol.symbol} meets {conds}"
    lines = [f"{which} {sol.symbol} with {conds}: {sol.symbol} = {sol.value}"]
    lines += [f"  {m} = {sol.totals[m]:,}" for m in TABLE_METRICS]
    for k, v in sol.roots.items():
        equation = re.sub(r" (<=|<|>=|>) ", " = ", k)
        lines.append(f"  closed-form root of {equation}: {sol.symbol} = {v} ≈ {float(v):.6g}")
    lines.append(f"  found by: {sol.method}")
    return "\n".join(lines)


def _num(x: Any) -> Any:
    try:
        return int(x) if x.is_Integer else float(x)
    except (TypeError, AttributeError):
        return str(x)


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    v = _num(x)
    return f"{v:,}" if isinstance(v, int) else (f"{v:.6g}" if isinstance(v, float) else str(v))


def elasticity_table(items: Sequence[Elasticity]) -> tuple[Table, list[dict[str, Any]]]:
    """Value, partial derivative (and how it was taken) and elasticity of each metric in each symbol;
    and the JSON records."""
    return _elasticity_table(items), elasticity_payload(items)


def _elasticity_table(items: Sequence[Elasticity]) -> Table:
    cols = [
        Column("metric", "metric", "left"),
        Column("symbol", "symbol", "left"),
        Column("at", "at", "left"),
        Column("value", "value", "left"),
        Column("partial", "∂metric/∂symbol", "left"),
        Column("elasticity", "elasticity (% per %)", "left"),
        Column("method", "∂ taken as", "left"),
    ]
    body = [
        [
            e.metric,
            e.name,
            e.at,
            _fmt(e.value),
            _fmt(e.partial),
            f"{float(e.elasticity):.4f}" if e.elasticity.is_number and e.elasticity.is_finite else "—",
            e.method,
        ]
        for e in items
    ]
    return Table(cols, body)


def elasticity_payload(items: Sequence[Elasticity]) -> list[dict[str, Any]]:
    """The sensitivity records as JSON: value, partial (text and number), elasticity, method."""
    return [
        {
            "metric": e.metric,
            "symbol": e.name,
            "at": e.at,
            "value": _num(e.value),
            "partial": None if e.partial is None else str(e.partial),
            "partial_value": None if e.partial is None else _num(e.partial),
            "elasticity": str(e.elasticity),
            "elasticity_value": _num(e.elasticity) if e.elasticity.is_finite else None,
            "method": e.method,
        }
        for e in items
    ]


def render_elasticities(items: Sequence[Elasticity], fmt: str = "github") -> str:
    """The sensitivity table in ``fmt``."""
    return emit(lambda: _elasticity_table(items), fmt, lambda: elasticity_payload(items))
