"""One emitter for every output: titled tables to any tabulate format, CSV or JSON.

Each feature builds :class:`Table` objects (columns with a machine key, a human title that carries the
unit and the convention, and an alignment; rows; an optional title line and footer) and a JSON payload;
:func:`emit` writes them the same way for every command. Tables show human titles and exact integers
with thousands separators; CSV uses the machine keys and plain integers; JSON is compact.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.symbols import shown
from ..errors import UsageError

# tabulate formats that are plain text, where a title line above the table reads well
_TITLED = {
    "plain", "simple", "github", "grid", "simple_grid", "rounded_grid", "heavy_grid", "mixed_grid",
    "double_grid", "fancy_grid", "outline", "simple_outline", "rounded_outline", "heavy_outline",
    "mixed_outline", "double_outline", "fancy_outline", "pipe", "orgtbl", "psql", "presto", "pretty", "rst",
}  # fmt: skip


@dataclass(frozen=True)
class Column:
    """One column: ``key`` for CSV and JSON, ``title`` (with unit and convention) for tables."""

    key: str
    title: str
    align: str = "right"


@dataclass(frozen=True)
class Cell:
    """A cell shown as ``text`` in tables and written as ``value`` in CSV (``csv`` if given) and JSON
    records: a shape is ``24×8×8`` in a table, ``24x8x8`` in CSV and ``[24, 8, 8]`` in JSON; a ratio is
    ``1.500×`` in a table and ``1.5`` in CSV and JSON."""

    text: str
    value: Any
    csv: str | None = None


def shape_cell(shape: Sequence[Any]) -> Cell:
    """A shape: ``24×8×8`` in tables, ``24x8x8`` in CSV, a list in JSON."""
    dims = [jsonable(s) for s in shape]
    parts = [dim_text(s) for s in shape]
    return Cell("×".join(parts), dims, "x".join(parts))


def dim_text(size: Any) -> str:
    """One size of a shape as tables print it: an int as itself, an expression in the form formulas print
    (``ceiling(H/2)``, not ``floor(H/2 - 1/2) + 1``), in parentheses when it is a sum, so that ``×`` between
    sizes cannot be misread (``32×(ceiling(H/2) + 1)``)."""
    if isinstance(size, int):
        return str(size)
    text = shown(size)
    return f"({text})" if " " in text else text


@dataclass
class Table:
    """A titled table: columns, rows of cells, an optional title line above and footer below."""

    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    title: str | None = None
    footer: str | None = None


def table_formats() -> list[str]:
    """Every value ``--format`` accepts for tables: tabulate's formats, json and csv."""
    from tabulate import tabulate_formats

    return sorted({*tabulate_formats, "json", "csv"})


def check_format(fmt: str) -> None:
    """Refuse a ``--format`` that is not json, csv or a tabulate format (tabulate is imported only if needed)."""
    if fmt not in ("json", "csv") and fmt not in table_formats():
        raise UsageError(f"--format {fmt!r}: expected json, csv or a tabulate format (e.g. github, plain, latex)")


def jsonable(x: Any) -> Any:
    """An int stays an int; a symbolic value becomes sympy-parseable text; other plain values stay."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if getattr(x, "is_Integer", False):
        return int(x)
    return str(x)


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def dumps(payload: Any) -> str:
    """Compact JSON (the C encoder), non-ASCII kept; NaN and infinities become null (JSON has neither)."""
    try:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(payload), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _cell(c: Any) -> str:
    if isinstance(c, Cell):
        return c.text
    if isinstance(c, bool):
        return str(c).lower()
    if isinstance(c, int):
        return f"{c:,}"
    if hasattr(c, "free_symbols"):  # a sympy expression: in the form formulas print (ceiling(H/2), not a floor)
        return shown(c)
    return "" if c is None else str(c)


def tabulated(table: Table, fmt: str) -> str:
    """The table as tabulate text: exact integers with separators, no number re-parsing."""
    from tabulate import tabulate

    cells = [[_cell(c) for c in row] for row in table.rows]
    return tabulate(
        cells,
        headers=[c.title for c in table.columns],
        tablefmt=fmt,
        disable_numparse=True,
        colalign=[c.align for c in table.columns],
    )


grid = tabulated  # the name it had before ``emit`` took a ``grid`` hook


def _csv_cell(c: Any) -> Any:
    if isinstance(c, Cell):
        return c.csv if c.csv is not None else jsonable(c.value)
    if hasattr(c, "free_symbols"):  # as tables print it (ceiling(H/2)); JSON keeps sympy's own text
        return shown(c)
    return c if isinstance(c, str) else jsonable(c)


def to_csv(table: Table) -> str:
    """CSV text: the column keys, then one line per row (no trailing newline)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.key for c in table.columns])
    writer.writerows([[_csv_cell(c) for c in row] for row in table.rows])
    return buf.getvalue().rstrip("\n")


def records(table: Table) -> list[dict[str, Any]]:
    """The table's rows as JSON records keyed by column key."""
    keys = [c.key for c in table.columns]
    return [{k: _record(v) for k, v in zip(keys, row, strict=True)} for row in table.rows]


def _record(v: Any) -> Any:
    if isinstance(v, Cell):
        return [jsonable(x) for x in v.value] if isinstance(v.value, list) else jsonable(v.value)
    return jsonable(v)


PAYLOAD, CSV, GRID = "payload", "csv", "grid"
"""What :func:`decide` returns for a format: the JSON payload, the first table as CSV, or tabulate text."""


def decide(fmt: str) -> str:
    """The one decision of every command's output: ``json`` writes the payload, ``csv`` the first table, and
    any other (tabulate) format every table. A new format is added here and reaches every command alike."""
    if fmt == "json":
        return PAYLOAD
    if fmt == "csv":
        return CSV
    check_format(fmt)
    return GRID


Tables = Table | Sequence[Table]
Lazy = Any  # a value, or a function of no arguments that returns it (built only when the format needs it)


def _force(x: Lazy) -> Any:
    return x() if callable(x) else x


def emit(
    tables: Lazy,
    fmt: str,
    payload: Lazy = None,
    *,
    encoded: Callable[[], str] | None = None,
    grid: Callable[[Table], Table] | None = None,
) -> str:
    """Write a view in ``fmt``: ``json`` (``payload``, default the first table's records; or ``encoded()``,
    the payload's JSON text built directly), ``csv`` (the first table) or any tabulate format (every table,
    with title and footer where the format is text; each first passed through ``grid`` when given, e.g. to
    write counts as K/M/G). ``tables`` and ``payload`` may be given as functions: only the one the format
    needs is built. Which one is :func:`decide`'s answer, the same for every command.
    """
    how = decide(fmt)
    if how == PAYLOAD:
        if encoded is not None:
            text: str = encoded()
            return text
        data = _force(payload)
        return dumps(data if data is not None else records(_group(_force(tables))[0]))
    group = _group(_force(tables))
    if how == CSV:
        return to_csv(group[0])
    parts = []
    for t in group:
        text = tabulated(grid(t) if grid is not None else t, fmt)
        if fmt in _TITLED:
            text = "\n".join(x for x in (t.title, text, t.footer) if x)
        parts.append(text)
    return "\n\n".join(parts)


def emit_text(text: Lazy, fmt: str, payload: Lazy) -> str:
    """A view whose human form is plain text (``solve``): the payload where :func:`decide` says so, else the text."""
    if fmt != "text" and decide(fmt) == PAYLOAD:
        return dumps(_force(payload))
    out: str = _force(text)
    return out


def _group(tables: Tables) -> list[Table]:
    return [tables] if isinstance(tables, Table) else list(tables)
