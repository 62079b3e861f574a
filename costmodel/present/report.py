"""The cost table of one report: one row per op, stage, block or layer, or a nested tree; and its JSON."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from ..engine.convention import Convention
from ..engine.metrics import METRICS, TABLE_METRICS
from ..engine.report import Group, Report, Row
from ..engine.symbols import Num, total
from ..errors import UsageError
from .emit import Cell, Column, Table, dim_text, dumps, emit, jsonable, shape_cell

VIEW_NAMES = ("auto", "op", "stage", "block", "layer", "module")


def shape_text(shape: tuple[Num, ...]) -> str:
    """``(24, 8, 8)`` → ``24×8×8`` (symbolic sizes as :func:`emit.dim_text` prints them)."""
    return "×".join(dim_text(s) for s in shape)


def block_id(layer: int, repeat: int) -> str:
    """The one id of a block instance in every output: ``LAYER.REPEAT`` (layer index in the spec, repeat
    within the layer, both from 0), e.g. ``4.0``; a layer on its own is ``LAYER``."""
    return f"{layer}.{repeat}"


def column_title(metric: str, convention: Convention | None = None) -> str:
    """A metric's column title with its unit and convention (MACs name the tool whose rules they follow)."""
    if metric == "macs" and convention is not None:
        return convention.macs_title
    m = METRICS.get(metric)
    return m.header if m is not None else metric


def metric_columns(report: Report, metrics: tuple[str, ...] = TABLE_METRICS) -> list[Column]:
    """One right-aligned column per metric, titled with unit and convention."""
    return [Column(m, column_title(m, report.convention)) for m in metrics]


def descriptions(report: Report) -> dict[str, str]:
    """What each metric includes, under the report's convention."""
    out = {name: m.description for name, m in METRICS.items()}
    out["macs"] = report.convention.macs_description
    return out


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: totals, output, and every per-op row."""

    metrics = tuple(METRICS)

    def row(r: Row) -> dict[str, Any]:
        op = r.op
        d: dict[str, Any] = {
            "block": block_id(r.layer, r.repeat),
            "index": r.block,
            "layer": r.layer,
            "repeat": r.repeat,
            "kind": r.kind,
            "stage": r.stage,
            "op": op.name,
            "detail": op.detail,
        }
        if r.times != 1:
            d["times"] = jsonable(r.times)
        costs = r.costs
        for m in metrics:
            v = costs[m]
            d[m] = v if type(v) is int else jsonable(v)  # an int stays an int (jsonable's first case)
        d["input"] = _shape_list(op.input)
        d["output"] = _shape_list(op.output)
        return d

    head = _head(report)
    head["rows"] = [row(r) for r in report.rows]
    return head


def _head(report: Report) -> dict[str, Any]:
    """Everything of ``to_dict`` but the rows, in the same order."""
    return {
        "name": report.name,
        "convention": report.convention.name,
        "input": [jsonable(s) for s in report.input],
        "batch": jsonable(report.batch),
        "output": [jsonable(s) for s in report.output],
        "symbols": list(report.symbols),
        "conventions": descriptions(report),
        "totals": {m: jsonable(v) for m, v in report.totals.items()},
    }


def to_json(report: Report, totals: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> str:
    """The text ``dumps(to_dict(report))`` gives, with ``totals`` added to its totals and ``extra``'s keys after
    the rows, byte for byte; built without a dict per row: a row is its block id, index, layer and repeat,
    then a tail (kind, stage, op, costs, shapes) that a long spec repeats, encoded once per distinct tail."""
    data = _head(report)
    data["totals"].update(totals or {})
    tails: dict[tuple[Any, ...], str] = {}
    metrics = tuple(METRICS)
    values = itemgetter(*metrics)
    pieces: list[str] = []
    for r in report.rows:
        layer, repeat, index = r.layer, r.repeat, r.block
        if not (type(layer) is int and type(repeat) is int and type(index) is int):
            return _slow_json(report, totals, extra)
        op = r.op
        key = (id(op), r.kind, r.stage, r.times, values(r.costs))
        try:
            tail = tails.get(key)
        except TypeError:  # a value that cannot be hashed
            return _slow_json(report, totals, extra)
        if tail is None:
            d: dict[str, Any] = {"kind": r.kind, "stage": r.stage, "op": op.name, "detail": op.detail}
            if r.times != 1:
                d["times"] = jsonable(r.times)
            for m in metrics:
                d[m] = jsonable(r.costs[m])
            d["input"] = _shape_list(op.input)
            d["output"] = _shape_list(op.output)
            try:
                tail = tails[key] = _dumps_strict(d)[1:]
            except ValueError:  # a NaN or an infinity: dumps writes null for it, on the whole payload
                return _slow_json(report, totals, extra)
        # the block id is block_id(layer, repeat), written out here: this loop runs once per op
        pieces.append(f'{{"block":"{layer}.{repeat}","index":{index},"layer":{layer},"repeat":{repeat},{tail}')
    try:
        head = _dumps_strict(data)[:-1]
        more = _dumps_strict(extra)[1:-1] if extra else ""
    except ValueError:
        return _slow_json(report, totals, extra)
    return "".join([head, ',"rows":[', ",".join(pieces), "]", "," if more else "", more, "}"])


def _dumps_strict(payload: Any) -> str:
    """``dumps`` without its NaN fallback: raises ValueError where a NaN or an infinity is."""
    import json

    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _slow_json(report: Report, totals: dict[str, Any] | None, extra: dict[str, Any] | None) -> str:
    data = to_dict(report)
    data["totals"].update(totals or {})
    data.update(extra or {})
    return dumps(data)


def _shape_list(shape: tuple[Num, ...]) -> list[Any]:
    """A shape as a JSON list: its ints as they are, symbolic sizes as text (``jsonable``)."""
    out = list(shape)
    for i, s in enumerate(out):
        if type(s) is not int:
            out[i] = jsonable(s)
    return out


def _pct(part: Num, whole: Num) -> str:
    if isinstance(part, int) and isinstance(whole, int) and whole:
        return f"{100 * part / whole:.1f}"
    return ""


def _sums(rows: list[Row]) -> list[Num]:
    group = Group((), rows)
    return [group.total(m) for m in TABLE_METRICS]


def _label(layer: int, repeat: int, times: Num) -> Cell:
    """The block id; a row that stands for ``times`` repeats says so in tables (CSV and JSON: the id)."""
    bid = block_id(layer, repeat)
    return Cell(bid + (f" (×{times})" if times != 1 else ""), bid)


def _kind_text(name: str | None, kind: str) -> str:
    return f"{name} ({kind})" if name else kind


def _tree(report: Report, depth: int) -> tuple[list[Column], list[list[Any]]]:
    """Nested rows: layers (depth 1), their blocks (2), the blocks' stages (3), the stages' ops (4)."""
    cols = [Column("item", "item", "left"), Column("kind", "kind / op", "left")]
    cols += [Column("settings", "settings", "left"), Column("output", "output", "left")]
    body: list[list[Any]] = []
    for layer in report.group("layer"):
        infos = [report.blocks[b] for b in dict.fromkeys(r.block for r in layer.rows)]
        first = infos[0]
        count = f" ×{total(info.times for info in infos)}" if len(infos) > 1 or first.times != 1 else ""
        body.append(
            [
                f"{first.layer}",
                _kind_text(first.name, first.kind) + count,
                first.settings,
                shape_cell(infos[-1].output),
                *_sums(layer.rows),
            ]
        )
        if depth < 2:
            continue
        for info in infos:
            rows = [r for r in layer.rows if r.block == info.index]
            times = f" (×{info.times})" if info.times != 1 else ""
            body.append(
                [
                    f"· {block_id(info.layer, info.repeat)}{times}",
                    info.kind,
                    info.settings,
                    shape_cell(info.output),
                    *_sums(rows),
                ]
            )
            if depth < 3:
                continue
            for stage in dict.fromkeys(r.stage for r in rows):
                srows = [r for r in rows if r.stage == stage]
                body.append(["· · " + stage, "", "", shape_cell(srows[-1].op.output), *_sums(srows)])
                if depth < 4:
                    continue
                for r in srows:
                    body.append(["· · · " + r.op.name, "", r.op.detail, shape_cell(r.op.output), *_sums([r])])
    return cols, body


def _flat(report: Report, by: str) -> tuple[list[Column], list[list[Any]]]:
    def left(*keys: str) -> list[Column]:
        return [Column(k, k, "left") for k in keys]

    body: list[list[Any]] = []
    if by == "op":
        cols = left("block", "stage", "op", "detail", "output")
        for r in report.rows:
            body.append(
                [_label(r.layer, r.repeat, r.times), r.stage, r.op.name, r.op.detail, shape_cell(r.op.output)]
                + [r.total(m) for m in TABLE_METRICS]
            )
    elif by == "stage":
        cols = left("stage")
        body = [[g.key[0], *_sums(g.rows)] for g in report.group("stage")]
    elif by == "module":
        cols = left("module", "ops")
        for g in report.group("module"):
            body.append([g.key[0], "+".join(dict.fromkeys(r.op.name for r in g.rows)), *_sums(g.rows)])
    elif by == "block":
        cols = left("block", "kind", "settings", "output")
        for g in report.group("block"):
            info = report.blocks[g.key[0]]
            body.append(
                [
                    _label(info.layer, info.repeat, info.times),
                    _kind_text(info.name, info.kind),
                    info.settings,
                    shape_cell(info.output),
                    *_sums(g.rows),
                ]
            )
    elif by == "layer":
        cols = left("layer", "kind", "blocks", "output")
        for g in report.group("layer"):
            infos = [report.blocks[b] for b in dict.fromkeys(r.block for r in g.rows)]
            first = infos[0]
            body.append(
                [
                    first.layer,
                    _kind_text(first.name, first.kind),
                    total(info.times for info in infos),
                    shape_cell(infos[-1].output),
                    *_sums(g.rows),
                ]
            )
    else:
        raise UsageError(f"unknown view {by!r}; expected one of op, stage, block, layer, module")
    return cols, body


def select_block(report: Report, bid: str) -> Report:
    """The report restricted to one block instance (``LAYER.REPEAT``, e.g. ``4.1``) or to every block of
    one layer (``LAYER``): its rows, its input and output, totals over those rows only."""
    from dataclasses import replace

    text = bid.strip()
    infos = [b for b in report.blocks if text in (block_id(b.layer, b.repeat), str(b.layer))]
    if not infos:
        ids = [block_id(b.layer, b.repeat) for b in report.blocks]
        shown = ", ".join(ids[:6]) + (f", … {ids[-1]}" if len(ids) > 6 else "")
        raise UsageError(f"--block {bid!r}: no such block; the ids are LAYER.REPEAT ({shown}) or a LAYER")
    keep = {b.index for b in infos}
    rows = [r for r in report.rows if r.block in keep]
    label = f"block {text}" if len(infos) == 1 else f"layer {text}"
    first = infos[0]
    name = f"{report.name or 'spec'}, {label}: {_kind_text(first.name, first.kind)} {first.settings}".rstrip()
    return replace(report, name=name, input=first.input, output=infos[-1].output, rows=rows, _totals=None)


def resolve_view(report: Report, by: str) -> str:
    """``auto`` is ``op`` for a spec of one block instance and ``block`` otherwise."""
    if by != "auto":
        return by
    return "op" if len(report.blocks) == 1 else "block"


def report_table(report: Report, by: str = "auto", depth: int | None = None) -> Table:
    """The cost table: rows grouped ``by`` a view (op, stage, block, layer, module; auto = op for one block, else
    block) or, with ``depth`` 1–4, nested (layers, blocks, stages, ops); a total row; % of MACs."""
    if depth is not None:
        if not 1 <= depth <= 4:
            raise UsageError(f"--depth {depth}: expected 1 (layers) to 4 (ops)")
        cols, body = _tree(report, depth)
    else:
        cols, body = _flat(report, resolve_view(report, by))
    lead = len(cols)
    cols += metric_columns(report)
    macs_total = report.totals["macs"]
    share = isinstance(macs_total, int)
    if share:
        mi = lead + TABLE_METRICS.index("macs")
        cols.append(Column("macs_percent", "% MACs"))
        body = [b + [_pct(b[mi], macs_total)] for b in body]
    last: list[Any] = ["total"] + [""] * (lead - 1) + [report.totals[m] for m in TABLE_METRICS]
    if share:
        last.append("100.0" if macs_total else "")
    body.append(last)
    batch = f", batch {report.batch}" if report.batch != 1 else ""
    title = f"{report.name or 'spec'}: input {shape_text(report.input)}{batch} → output {shape_text(report.output)}"
    conv = report.convention
    macs = "MACs = FlopCounterMode/2" if conv.name == "costmodel" else f"MACs as {conv.title} counts"
    footer = f"conventions: docs/conventions.md (params learnable only; {macs})"
    return Table(cols, body, title, footer)


def render(
    report: Report,
    fmt: str = "github",
    by: str = "auto",
    depth: int | None = None,
    units: str = "exact",
    totals: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """The report as one string in ``fmt`` (a tabulate format, ``json`` or ``csv``); ``units="si"`` writes
    table counts as K/M/G/T (3–4 significant digits; tables only, CSV and JSON stay exact). ``totals`` and
    ``extra`` add entries to the JSON's totals and after its rows (:func:`to_json`)."""
    return emit(
        lambda: report_table(report, by, depth),
        fmt,
        encoded=lambda: to_json(report, totals, extra),
        grid=lambda t: si_table(t, units),
    )


UNITS = ("exact", "si")


def si_text(n: int) -> str:
    """``300774272`` → ``300.8M``: n / 10³ᵏ to 4 significant digits with K, M, G, T (below 1000: exact)."""
    for power, suffix in ((12, "T"), (9, "G"), (6, "M"), (3, "K")):
        if abs(n) >= 10**power:
            return f"{n / 10**power:.4g}{suffix}"
    return str(n)


def si_table(table: Table, units: str) -> Table:
    """The table with every integer cell written as :func:`si_text` (``units="si"``) or unchanged."""
    if units not in UNITS:
        raise UsageError(f"--units {units!r}: expected exact or si")
    if units == "exact":
        return table

    def cell(c: Any) -> Any:
        return Cell(si_text(c), c) if isinstance(c, int) and not isinstance(c, bool) else c

    return Table(table.columns, [[cell(c) for c in row] for row in table.rows], table.title, table.footer)
