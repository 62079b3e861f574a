"""A sweep as one row per design point (table or CSV), or columnar JSON."""

from __future__ import annotations

from typing import Any

from ..analysis.sweep import SweepResult
from ..engine.convention import Convention
from .emit import Column, Table, emit
from .report import column_title


def sweep_table(result: SweepResult, convention: Convention | None = None) -> Table:
    """One row per design point: each axis's value, then each metric."""
    names = list(result.columns)
    cols = [Column(n, n if n in result.axes else column_title(n, convention)) for n in names]
    rows = zip(*[result.columns[n] for n in names], strict=True)
    return Table(cols, [[int(v) for v in row] for row in rows])


def sweep_payload(result: SweepResult, convention: Convention | None = None) -> dict[str, Any]:
    """The sweep as columnar JSON: axes, fixed symbols, the convention and every column."""
    return {
        "axes": result.axes,
        "fixed": result.fixed,
        "convention": convention.name if convention else "costmodel",
        "points": len(result),
        "columns": {n: [int(v) for v in result.columns[n]] for n in result.columns},
    }


def render_sweep(result: SweepResult, fmt: str = "github", convention: Convention | None = None) -> str:
    """The sweep in ``fmt``."""
    if fmt == "json":
        return emit([], fmt, sweep_payload(result, convention))
    return emit(sweep_table(result, convention), fmt)
