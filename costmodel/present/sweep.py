"""A sweep as one row per design point (table, CSV or JSON lines), or columnar JSON.

CSV and JSON lines are streamed chunk by chunk (:func:`stream_sweep`), so a grid of any size is
written in bounded memory. Tables and columnar JSON are built whole, so they are limited to
``TABLE_LIMIT`` and ``JSON_LIMIT`` points. At a point ``table --set`` refuses (``valid`` false), the
metric cells are empty (CSV), null (JSON) or ``invalid`` (tables).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from ..analysis.sweep import SweepResult
from ..engine.convention import Convention
from ..errors import UsageError
from . import emit as emitter
from .emit import CSV, PAYLOAD, Column, Table, emit

STREAMED = ("csv", "jsonl")
"""Formats written chunk by chunk, for grids of any size."""
TABLE_LIMIT = 100_000
"""The most points a table format prints (tables are aligned as a whole); use csv or jsonl beyond."""
JSON_LIMIT = 1_000_000
"""The most points columnar ``json`` holds (one document); use jsonl beyond."""


def streamed(fmt: str) -> bool:
    """Whether a sweep in ``fmt`` is written chunk by chunk: jsonl, and what the emitter writes as CSV."""
    return fmt == "jsonl" or emitter.decide(fmt) == CSV


def check_size(points: int, fmt: str) -> None:
    """Refuse a grid too large for a format built whole (tables, json); csv and jsonl stream any size."""
    if streamed(fmt):
        return
    limit, what = (JSON_LIMIT, f"--format {fmt}") if emitter.decide(fmt) == PAYLOAD else (TABLE_LIMIT, "a table format")
    if points > limit:
        raise UsageError(
            f"the grid has {points:,} points; {what} prints at most {limit:,}: "
            "use --format csv or --format jsonl (streamed)"
        )


def sweep_table(result: SweepResult, convention: Convention | None = None) -> Table:
    """One row per design point: each axis's value, then each metric (and ``valid`` where checked)."""
    from .report import column_title

    names = list(result.columns)
    cols = [Column(n, n if n in result.axes or n == "valid" else column_title(n, convention)) for n in names]
    rows = []
    for rec in result.records():
        rows.append(["invalid" if rec[n] is None else rec[n] for n in names])
    return Table(cols, rows)


def sweep_payload(result: SweepResult, convention: Convention | None = None) -> dict[str, Any]:
    """The sweep as columnar JSON: axes, fixed symbols, the convention and every column (null at invalid points)."""
    valid = result.columns.get("valid")

    def column(n: str) -> list[Any]:
        values = result.columns[n]
        if n == "valid":
            return [bool(v) for v in values]
        if valid is None or n in result.axes:
            return [int(v) for v in values]
        return [int(v) if ok else None for v, ok in zip(values, valid, strict=True)]

    payload = {
        "axes": {n: list(a) for n, a in result.axes.items()},
        "fixed": result.fixed,
        "convention": convention.name if convention else "costmodel",
        "points": len(result),
        "columns": {n: column(n) for n in result.columns},
    }
    if valid is not None:
        payload["invalid"] = int(len(valid) - int(valid.sum()))
    return payload


def render_sweep(result: SweepResult, fmt: str = "github", convention: Convention | None = None) -> str:
    """The sweep in ``fmt`` (built whole; for big grids use :func:`stream_sweep`)."""
    if streamed(fmt):
        return "".join(_stream([result], list(result.columns), fmt, True)).rstrip("\n")
    check_size(len(result), fmt)
    return emit(lambda: sweep_table(result, convention), fmt, lambda: sweep_payload(result, convention))


def stream_sweep(chunks: Iterator[SweepResult], columns: Sequence[str], fmt: str) -> Iterator[str]:
    """CSV (a header line, then one line per point) or JSON lines (one object per point), chunk by chunk.

    Each piece ends with a newline. The chunks come from ``Plan.chunks`` / ``costmodel.sweep_chunks``.
    """
    if fmt not in STREAMED:
        raise UsageError(f"--format {fmt!r}: only {' and '.join(STREAMED)} are streamed")
    return _stream(chunks, list(columns), fmt, True)


def _stream(chunks: Any, names: list[str], fmt: str, header: bool) -> Iterator[str]:
    if fmt == "csv" and header:
        yield ",".join(names) + "\n"
    for chunk in chunks:
        yield _lines(chunk, names, fmt)


def _lines(chunk: SweepResult, names: list[str], fmt: str) -> str:
    """One chunk as CSV or JSON-lines text: ``%d`` formatting over whole columns (exact for any int)."""
    valid = chunk.columns.get("valid")
    values = [n for n in names if n != "valid"]
    lists = [chunk.columns[n].tolist() for n in values]
    if not lists or not lists[0]:
        return ""
    if fmt == "csv":
        parts = ["%d"] * len(values)
        tail_ok, tail_bad = ",true", ",false"
        sep = ","
        pre, post = "", ""
    else:
        parts = [f"{json.dumps(n)}:%d" for n in values]
        tail_ok, tail_bad = ',"valid":true', ',"valid":false'
        sep = ","
        pre, post = "{", "}"
    if valid is None or bool(valid.all()):
        line = pre + sep.join(parts) + (tail_ok if valid is not None else "") + post
        return "\n".join(map(line.__mod__, zip(*lists, strict=True))) + "\n"
    # some points are invalid: their metric cells are empty (CSV) or null (JSON)
    axes = set(chunk.axes)
    out = []
    ok_line = pre + sep.join(parts) + tail_ok + post
    bad_parts = [p if n in axes else (p.replace("%d", "") if fmt == "csv" else p.replace("%d", "null"))
                 for n, p in zip(values, parts, strict=True)]  # fmt: skip
    bad_line = pre + sep.join(bad_parts) + tail_bad + post
    keep = [i for i, n in enumerate(values) if n in axes]
    for row, ok in zip(zip(*lists, strict=True), valid.tolist(), strict=True):
        out.append(ok_line % row if ok else bad_line % tuple(row[i] for i in keep))
    return "\n".join(out) + "\n"
