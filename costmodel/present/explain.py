"""Op by op, what two conventions count and why; the differences sum to the gap in totals."""

from __future__ import annotations

from typing import Any

from ..analysis.conventions import Difference, convention
from ..engine.report import Report
from ..engine.symbols import total
from .emit import Column, Table, emit, jsonable


def explain_table(report: Report, a: str, b: str, diffs: list[Difference]) -> tuple[Table, dict[str, Any]]:
    """The explain table and its JSON payload."""
    return _explain_table(report, a, b, diffs), explain_payload(a, b, diffs)


def _explain_table(report: Report, a: str, b: str, diffs: list[Difference]) -> Table:
    total_a = total(d.count_a for d in diffs)
    total_b = total(d.count_b for d in diffs)
    cols = [
        Column("op", "op", "left"),
        Column("rule_a", f"{a} rule", "left"),
        Column("rule_b", f"{b} rule", "left"),
        Column("count_a", f"{a}"),
        Column("count_b", f"{b}"),
        Column("difference", f"{b} − {a}"),
        Column("why_b", f"why ({b})", "left"),
    ]
    body: list[list[Any]] = [
        [d.op, d.rule_a.text(), d.rule_b.text(), d.count_a, d.count_b, d.diff, d.rule_b.why]
        for d in diffs
        if d.diff != 0 or d.count_a != 0
    ]
    body.append(["total", "", "", total_a, total_b, total_b - total_a, ""])
    title = (
        f"{report.name or 'spec'}: {convention(a).title} vs {convention(b).title} "
        "(quantities: macs, bias adds, input/output elements, batch × params)"
    )
    return Table(cols, body, title)


def explain_payload(a: str, b: str, diffs: list[Difference]) -> dict[str, Any]:
    """The explanation as JSON: both totals and every op's counts, difference, rules and reasons."""
    total_a = total(d.count_a for d in diffs)
    total_b = total(d.count_b for d in diffs)
    return {
        "a": a,
        "b": b,
        "total_a": jsonable(total_a),
        "total_b": jsonable(total_b),
        "ops": [
            {
                "op": d.op,
                "count_a": jsonable(d.count_a),
                "count_b": jsonable(d.count_b),
                "difference": jsonable(d.diff),
                "rule_a": d.rule_a.text(),
                "rule_b": d.rule_b.text(),
                "why_a": d.rule_a.why,
                "why_b": d.rule_b.why,
            }
            for d in diffs
        ],
    }


def render_explain(report: Report, a: str, b: str, diffs: list[Difference], fmt: str = "github") -> str:
    """The explain view in ``fmt``."""
    return emit(lambda: _explain_table(report, a, b, diffs), fmt, lambda: explain_payload(a, b, diffs))
