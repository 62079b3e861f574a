"""Specs side by side: totals and ratios to the first; then each stage's share of params and MACs."""

from __future__ import annotations

from typing import Any

from ..analysis.design import Comparison
from ..engine.metrics import TABLE_METRICS
from .emit import Cell, Column, Table, emit, jsonable, shape_cell
from .report import column_title, shape_text


def _ratio_text(r: Any) -> str:
    return "" if r is None else f"{float(r):.3f}×"


def _share_text(r: Any) -> str:
    return "" if r is None else f"{100 * float(r):.1f}"


def compare_payload(cmp: Comparison) -> dict[str, Any]:
    """The comparison as JSON: each spec's totals, exact ratios to the first, stage shares."""
    return {
        "baseline": cmp.names[0],
        "specs": [
            {
                "spec": name,
                "name": r.name,
                "input": [jsonable(s) for s in r.input],
                "batch": jsonable(r.batch),
                "output": [jsonable(s) for s in r.output],
                "totals": {m: jsonable(r.totals[m]) for m in TABLE_METRICS},
                "ratio": {
                    m: (None if (q := cmp.ratio(i, m)) is None else {"exact": str(q), "value": float(q)})
                    for m in TABLE_METRICS
                },
                "stage_share": {
                    s: {m: (None if (q := cmp.share(i, s, m)) is None else float(q)) for m in ("params", "macs")}
                    for s in cmp.stages()
                },
            }
            for i, (name, r) in enumerate(zip(cmp.names, cmp.reports, strict=True))
        ],
    }


def input_warning(cmp: Comparison) -> str | None:
    """A warning when the specs' inputs (channels × height × width, batch) differ, so the ratios compare
    networks at different input sizes; None when every spec has the same input."""
    inputs = [(tuple(str(x) for x in r.input), str(r.batch)) for r in cmp.reports]
    if len(set(inputs)) == 1:
        return None
    shown = ", ".join(
        f"{r.name or n}: {shape_text(r.input)}" + (f" batch {r.batch}" if r.batch != 1 else "")
        for n, r in zip(cmp.names, cmp.reports, strict=True)
    )
    hint = "--resolution N (or HxW) and --batch N apply to every spec, to compare at a common input"
    return f"the specs have different inputs ({shown}): the ratios mix network and input size; {hint}"


def compare_tables(cmp: Comparison) -> list[Table]:
    """The totals-and-ratios table and the stage-share table."""
    first = cmp.reports[0]
    cols = [Column("spec", "spec", "left"), Column("input", "input", "left"), Column("output", "output", "left")]
    for m in TABLE_METRICS:
        cols += [Column(m, column_title(m, first.convention)), Column(f"{m}_ratio", "ratio")]
    body = []
    for i, (name, r) in enumerate(zip(cmp.names, cmp.reports, strict=True)):
        row: list[Any] = [r.name or name, shape_cell(r.input), shape_cell(r.output)]
        for m in TABLE_METRICS:
            q = cmp.ratio(i, m)
            row += [r.totals[m], Cell(_ratio_text(q), None if q is None else float(q))]
        body.append(row)
    base = first.name or cmp.names[0]
    totals = Table(cols, body, footer=f"ratios are to the first spec ({base})")
    share_cols = [Column("stage", "stage (% params / % MACs)", "left")] + [
        Column(n, r.name or n, "left") for n, r in zip(cmp.names, cmp.reports, strict=True)
    ]
    share_body = [
        [s]
        + [
            f"{_share_text(cmp.share(i, s, 'params'))} / {_share_text(cmp.share(i, s, 'macs'))}"
            if s in cmp.reports[i].stages()
            else "—"
            for i in range(len(cmp.reports))
        ]
        for s in cmp.stages()
    ]
    return [totals, Table(share_cols, share_body)]


def render_compare(cmp: Comparison, fmt: str = "github") -> str:
    """The comparison in ``fmt``."""
    return emit(lambda: compare_tables(cmp), fmt, lambda: compare_payload(cmp))
