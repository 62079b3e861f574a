"""Printing a report: tabulate tables (any tabulate format), JSON and CSV.

Every table header carries the unit and the convention of its column; docs/conventions.md has the
rules behind them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from .errors import UsageError
from .report import METRICS, Group, Report, Row
from .symbols import Num, total

HEADERS = {
    "params": "params (learnable)",
    "buffers": "buffers (BN stats)",
    "macs": "MACs (conv+linear, no bias)",
    "flops": "FLOPs (costmodel conv.)",
    "activations": "activations (elements)",
}

CONVENTIONS = {
    "params": "sum(p.numel() for p in module.parameters()): weights, bias, BatchNorm gamma/beta",
    "buffers": "BatchNorm running mean/var and num_batches_tracked: sum(b.numel() for b in module.buffers())",
    "macs": "multiply-accumulates of conv and linear layers, bias excluded = FlopCounterMode total / 2",
    "flops": "2 per MAC + bias adds + BN (2/elem) + activations + pooling + SE gate multiply + residual adds",
    "activations": "output elements of each op, batch included",
}

# tabulate formats that are plain text, where a title line above the table reads well
_TITLED = {
    "plain", "simple", "github", "grid", "simple_grid", "rounded_grid", "heavy_grid", "mixed_grid",
    "double_grid", "fancy_grid", "outline", "simple_outline", "rounded_outline", "heavy_outline",
    "mixed_outline", "double_outline", "fancy_outline", "pipe", "orgtbl", "psql", "presto", "pretty", "rst",
}  # fmt: skip


def write_csv(headers: list[str], rows: Any) -> str:
    """CSV text: a header line, then one line per row (no trailing newline)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue().rstrip("\n")


def grid(headers: list[str], body: list[list[Any]], fmt: str, align: list[str] | None = None) -> str:
    """A tabulate table with ints written exactly, with thousands separators, and no number re-parsing."""
    from tabulate import tabulate

    cells = [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in body]
    return tabulate(cells, headers=headers, tablefmt=fmt, disable_numparse=True, colalign=align)


def table_formats() -> list[str]:
    """Every value ``--format`` accepts for tables: tabulate's formats, json and csv."""
    from tabulate import tabulate_formats

    return sorted({*tabulate_formats, "json", "csv"})


def check_format(fmt: str) -> None:
    """Refuse a ``--format`` that is not json, csv or a tabulate format (tabulate is imported only if needed)."""
    if fmt not in ("json", "csv") and fmt not in table_formats():
        raise UsageError(f"--format {fmt!r}: expected json, csv or a tabulate format (e.g. github, plain, latex)")


def jsonable(x: Num) -> int | str:
    """An int stays an int; a symbolic value becomes sympy-parseable text."""
    return x if isinstance(x, int) else str(x)


def shape_text(shape: tuple[Num, ...]) -> str:
    """``(24, 8, 8)`` → ``24×8×8``."""
    return "×".join(str(s) for s in shape)


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: totals, output, and every per-op row."""

    def row(r: Row) -> dict[str, Any]:
        d: dict[str, Any] = {
            "layer": r.layer,
            "repeat": r.repeat,
            "block": r.block,
            "kind": r.kind,
            "stage": r.stage,
            "op": r.op,
            "detail": r.detail,
        }
        if r.times != 1:
            d["times"] = jsonable(r.times)
        for m in METRICS:
            d[m] = jsonable(getattr(r, m))
        d["input"] = [jsonable(s) for s in r.input]
        d["output"] = [jsonable(s) for s in r.output]
        return d

    conventions = dict(CONVENTIONS)
    if report.convention != "costmodel":
        from .conventions import convention

        conv = convention(report.convention)
        conventions["macs"] = f"{conv.title} ({conv.version}): {conv.figure}"
    return {
        "name": report.name,
        "convention": report.convention,
        "input": [jsonable(s) for s in report.input],
        "batch": jsonable(report.batch),
        "output": [jsonable(s) for s in report.output],
        "symbols": list(report.symbols),
        "conventions": conventions,
        "totals": {m: jsonable(v) for m, v in report.totals.items()},
        "rows": [row(r) for r in report.rows],
    }


def _pct(part: Num, whole: Num) -> str:
    if isinstance(part, int) and isinstance(whole, int) and whole:
        return f"{100 * part / whole:.1f}"
    return ""


def _tree(report: Report, depth: int) -> tuple[list[str], list[list[Any]]]:
    """Nested rows: layers (depth 1), their blocks (2), the blocks' stages (3), the stages' ops (4)."""
    metrics = ("params", "macs", "flops")
    headers = ["item", "kind / op", "settings", "output"]
    body: list[list[Any]] = []

    def totals(rows: list[Row]) -> list[Num]:
        group = Group((), rows)
        return [group.total(m) for m in metrics]

    for layer in report.group("layer"):
        infos = [report.blocks[b] for b in dict.fromkeys(r.block for r in layer.rows)]
        first = infos[0]
        kind = f"{first.name} ({first.kind})" if first.name else first.kind
        count = f" ×{total(info.times for info in infos)}" if len(infos) > 1 or first.times != 1 else ""
        body.append([f"{first.layer}", kind + count, first.settings, shape_text(infos[-1].output), *totals(layer.rows)])
        if depth < 2:
            continue
        for info in infos:
            rows = [r for r in layer.rows if r.block == info.index]
            times = f" (×{info.times})" if info.times != 1 else ""
            body.append(
                [
                    f"· {info.layer}.{info.repeat}{times}",
                    info.kind,
                    info.settings,
                    shape_text(info.output),
                    *totals(rows),
                ]
            )
            if depth < 3:
                continue
            for stage in dict.fromkeys(r.stage for r in rows):
                srows = [r for r in rows if r.stage == stage]
                body.append(["· · " + stage, "", "", shape_text(srows[-1].output), *totals(srows)])
                if depth < 4:
                    continue
                for r in srows:
                    body.append(["· · · " + r.op, "", r.detail, shape_text(r.output), *totals([r])])
    return headers, body


def column_title(metric: str, convention_name: str = "costmodel") -> str:
    """A metric's column title with its unit and convention (MACs name the tool whose rules they follow)."""
    if metric == "macs" and convention_name != "costmodel":
        from .conventions import convention

        return f"MACs as {convention(convention_name).title} counts"
    return HEADERS.get(metric, metric)


def _headers(report: Report) -> dict[str, str]:
    return {m: column_title(m, report.convention) for m in HEADERS}


def _view(report: Report, by: str) -> tuple[list[str], list[list[Any]]]:
    titles = _headers(report)
    metrics = ("params", "macs", "flops")
    macs_total = report.totals["macs"]
    if by.startswith("depth"):
        headers, body = _tree(report, int(by.removeprefix("depth")))
    elif by == "op":
        headers = ["layer", "stage", "op", "detail", "output"]
        body = []
        for r in report.rows:
            label = f"{r.layer}" if r.repeat == 0 and r.times == 1 else f"{r.layer}.{r.repeat}"
            if r.times != 1:
                label += f" (×{r.times})"
            body.append([label, r.stage, r.op, r.detail, shape_text(r.output)] + [r.total(m) for m in metrics])
    elif by == "stage":
        headers = ["stage"]
        body = [[g.key[0]] + [g.total(m) for m in metrics] for g in report.group("stage")]
    elif by == "block":
        headers = ["block", "layer", "kind", "settings", "output"]
        body = []
        for g in report.group("block"):
            info = report.blocks[g.key[0]]
            label = f"{info.layer}" if info.repeat == 0 and info.times == 1 else f"{info.layer}.{info.repeat}"
            if info.times != 1:
                label += f" (×{info.times})"
            kind = f"{info.name} ({info.kind})" if info.name else info.kind
            body.append(
                [info.index, label, kind, info.settings, shape_text(info.output)] + [g.total(m) for m in metrics]
            )
    elif by == "layer":
        headers = ["layer", "kind", "blocks", "output"]
        body = []
        for g in report.group("layer"):
            infos = [report.blocks[b] for b in dict.fromkeys(r.block for r in g.rows)]
            first = infos[0]
            kind = f"{first.name} ({first.kind})" if first.name else first.kind
            count = total(info.times for info in infos)
            body.append([first.layer, kind, count, shape_text(infos[-1].output)] + [g.total(m) for m in metrics])
    else:
        raise UsageError(f"unknown view {by!r}; expected one of op, stage, block, layer")
    headers += [titles[m] for m in metrics]
    if isinstance(macs_total, int):
        headers.append("% MACs")
        mi = headers.index(titles["macs"])
        body = [b + [_pct(b[mi], macs_total)] for b in body]
    last = ["total"] + [""] * (len(headers) - len(metrics) - 1 - (1 if "% MACs" in headers else 0))
    last += [report.totals[m] for m in metrics]
    if "% MACs" in headers:
        last.append("100.0" if macs_total else "")
    body.append(last)
    return headers, body


def resolve_view(report: Report, by: str) -> str:
    """``auto`` is ``op`` for a spec of one block instance and ``block`` otherwise."""
    if by != "auto":
        return by
    return "op" if len(report.blocks) == 1 else "block"


def render(report: Report, fmt: str = "github", by: str = "auto", depth: int | None = None) -> str:
    """The report as one string in ``fmt`` (a tabulate format, ``json`` or ``csv``).

    Rows are grouped ``by`` a view (op, stage, block, layer; auto = op for one block, else block), or,
    with ``depth`` 1–4, nested: layers, then blocks, stages and ops down to that depth.
    """
    if fmt == "json":  # compact: the C encoder; pipe through `python -m json.tool` to read it
        return json.dumps(to_dict(report), ensure_ascii=False, separators=(",", ":"))
    from tabulate import tabulate_formats

    if depth is not None:
        if not 1 <= depth <= 4:
            raise UsageError(f"--depth {depth}: expected 1 (layers) to 4 (ops)")
        view = f"depth{depth}"
    else:
        view = resolve_view(report, by)
    headers, body = _view(report, view)
    if fmt == "csv":
        return write_csv(headers, [[jsonable(c) if not isinstance(c, str) else c for c in row] for row in body])
    if fmt not in tabulate_formats:
        raise UsageError(
            f"unknown format {fmt!r}; expected json, csv or a tabulate format ({', '.join(tabulate_formats)})"
        )
    first_metric = headers.index(HEADERS["params"])  # the same in every convention
    text = grid(headers, body, fmt, ["left"] * first_metric + ["right"] * (len(headers) - first_metric))
    if fmt in _TITLED:
        title = report.name or "spec"
        batch = f", batch {report.batch}" if report.batch != 1 else ""
        head = f"{title}: input {shape_text(report.input)}{batch} → output {shape_text(report.output)}"
        text = f"{head}\n{text}\nconventions: docs/conventions.md (params learnable only; MACs = FlopCounterMode/2)"
    return text


def render_explain(report: Report, a: str, b: str, fmt: str = "github") -> str:
    """Op by op, what conventions ``a`` and ``b`` count and why; the differences sum to the gap in totals."""
    from .conventions import convention, explain

    diffs = explain(report, a, b)
    ta, tb = convention(a).title, convention(b).title
    if fmt == "json":
        return json.dumps(
            {
                "a": a,
                "b": b,
                "total_a": jsonable(total(d.count_a for d in diffs)),
                "total_b": jsonable(total(d.count_b for d in diffs)),
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
            },
            indent=2,
            ensure_ascii=False,
        )
    headers = ["op", f"{a} rule", f"{b} rule", f"{a}", f"{b}", f"{b} − {a}", f"why ({b})"]
    body: list[list[Any]] = [
        [d.op, d.rule_a.text(), d.rule_b.text(), d.count_a, d.count_b, d.diff, d.rule_b.why]
        for d in diffs
        if d.diff != 0 or d.count_a != 0
    ]
    total_a = total(d.count_a for d in diffs)
    total_b = total(d.count_b for d in diffs)
    body.append(["total", "", "", total_a, total_b, total_b - total_a, ""])
    if fmt == "csv":
        return write_csv(headers, [[c if isinstance(c, str) else jsonable(c) for c in row] for row in body])
    text = grid(headers, body, fmt, ["left"] * 3 + ["right"] * 3 + ["left"])
    if fmt in _TITLED:
        title = report.name or "spec"
        text = f"{title}: {ta} vs {tb} (quantities: macs, bias adds, input/output elements, batch × params)\n{text}"
    return text


def render_sweep(result: Any, fmt: str = "github", convention: str = "costmodel") -> str:
    """A sweep as one row per design point (table or CSV), or columnar JSON."""
    names = list(result.columns)
    if fmt == "json":
        return json.dumps(
            {
                "axes": result.axes,
                "fixed": result.fixed,
                "convention": convention,
                "points": len(result),
                "columns": {n: [int(v) for v in result.columns[n]] for n in names},
            }
        )
    headers = [n if n in result.axes else HEADERS.get(n, n) for n in names]
    cols = [result.columns[n] for n in names]
    rows = zip(*cols, strict=True)
    if fmt == "csv":
        return write_csv(headers, ([int(v) for v in row] for row in rows))
    return grid(headers, [[int(v) for v in row] for row in rows], fmt, ["right"] * len(headers))


def _ratio_text(r: Any) -> str:
    return "" if r is None else f"{float(r):.3f}×"


def _share_text(r: Any) -> str:
    return "" if r is None else f"{100 * float(r):.1f}"


def render_compare(cmp: Any, fmt: str = "github") -> str:
    """Specs side by side: totals and ratios to the first; then each stage's share of params and MACs."""
    metrics = ("params", "macs", "flops")
    headers_ = _headers(cmp.reports[0])
    if fmt == "json":
        return json.dumps(
            {
                "baseline": cmp.names[0],
                "specs": [
                    {
                        "spec": name,
                        "name": r.name,
                        "output": [jsonable(s) for s in r.output],
                        "totals": {m: jsonable(r.totals[m]) for m in metrics},
                        "ratio": {
                            m: (None if (q := cmp.ratio(i, m)) is None else {"exact": str(q), "value": float(q)})
                            for m in metrics
                        },
                        "stage_share": {
                            s: {
                                m: (None if (q := cmp.share(i, s, m)) is None else float(q)) for m in ("params", "macs")
                            }
                            for s in cmp.stages()
                        },
                    }
                    for i, (name, r) in enumerate(zip(cmp.names, cmp.reports, strict=True))
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
    head = ["spec", "output"]
    for m in metrics:
        head += [headers_[m], "ratio"]
    body = []
    for i, (name, r) in enumerate(zip(cmp.names, cmp.reports, strict=True)):
        row: list[Any] = [r.name or name, shape_text(r.output)]
        for m in metrics:
            row += [r.totals[m], _ratio_text(cmp.ratio(i, m))]
        body.append(row)
    share_head = ["stage (% params / % MACs)"] + [r.name or n for n, r in zip(cmp.names, cmp.reports, strict=True)]
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
    if fmt == "csv":
        return write_csv(head, [[c if isinstance(c, str) else jsonable(c) for c in row] for row in body])
    first = grid(head, body, fmt, ["left", "left"] + ["right"] * 6)
    second = grid(share_head, share_body, fmt)
    base = cmp.reports[0].name or cmp.names[0]
    return f"{first}\nratios are to the first spec ({base})\n\n{second}"


def render_solution(sol: Any, budgets: Any, fmt: str = "text", smallest: bool = False) -> str:
    """The value ``solve`` found and the costs there (text or JSON)."""
    which = "smallest" if smallest else "largest"
    if fmt == "json":
        return json.dumps(
            {
                "symbol": sol.symbol,
                "value": sol.value,
                "which": which,
                "budgets": [str(b) for b in budgets],
                "totals": sol.totals,
                "method": sol.method,
                "roots": {k: str(v) for k, v in sol.roots.items()},
            },
            indent=2,
            ensure_ascii=False,
        )
    conds = " and ".join(str(b) for b in budgets)
    if sol.value is None:
        return f"no positive integer {sol.symbol} meets {conds}"
    lines = [f"{which} {sol.symbol} with {conds}: {sol.symbol} = {sol.value}"]
    lines += [f"  {m} = {sol.totals[m]:,}" for m in ("params", "macs", "flops")]
    for k, v in sol.roots.items():
        equation = re.sub(r" (<=|<|>=|>) ", " = ", k)
        lines.append(f"  closed-form root of {equation}: {sol.symbol} = {v} ≈ {float(v):.6g}")
    lines.append(f"  found by: {sol.method}")
    return "\n".join(lines)


def render_elasticities(items: Any, fmt: str = "github") -> str:
    """The sensitivity table: value, partial derivative and elasticity of each metric in each symbol."""

    def num(x: Any) -> Any:
        try:
            return int(x) if x.is_Integer else float(x)
        except (TypeError, AttributeError):
            return str(x)

    if fmt == "json":
        return json.dumps(
            [
                {
                    "metric": e.metric,
                    "symbol": e.name,
                    "at": e.at,
                    "value": num(e.value),
                    "partial": str(e.partial),
                    "elasticity": str(e.elasticity),
                    "elasticity_value": num(e.elasticity),
                }
                for e in items
            ],
            indent=2,
        )

    head = ["metric", "symbol", "at", "value", "∂metric/∂symbol", "elasticity (% per %)"]
    body = [
        [
            e.metric,
            e.name,
            e.at,
            f"{num(e.value):,}",
            str(e.partial),
            f"{float(e.elasticity):.4f}" if e.elasticity.is_number and e.elasticity.is_finite else str(e.elasticity),
        ]
        for e in items
    ]
    if fmt == "csv":
        return write_csv(head, body)
    return grid(head, body, fmt)


def render_memory(report: Report, ks: Any, peak: Any, fmt: str, dtype: str, fusion: str) -> str:
    """Bytes per kernel (activations read, weights read, output written), FLOPs, intensity; the peak."""
    totals = {
        "flops": total(k.times * k.flops for k in ks),
        "input_bytes": total(k.times * k.input_bytes for k in ks),
        "weight_bytes": total(k.times * k.weight_bytes for k in ks),
        "output_bytes": total(k.times * k.output_bytes for k in ks),
    }
    totals["bytes_moved"] = totals["input_bytes"] + totals["weight_bytes"] + totals["output_bytes"]
    totals["peak_activation_bytes"] = peak.bytes
    if fmt == "json":
        return json.dumps(
            {
                "name": report.name,
                "dtype": dtype,
                "fusion": fusion,
                "totals": totals,
                "peak": {
                    "bytes": peak.bytes,
                    "kernel": peak.kernel,
                    "alive": [{"tensor": t, "bytes": b} for t, b in peak.alive],
                },
                "kernels": [
                    {
                        "kernel": k.label,
                        "block": k.block,
                        "stage": k.stage,
                        "ops": [r.op for r in k.rows],
                        "flops": k.flops,
                        "input_bytes": k.input_bytes,
                        "weight_bytes": k.weight_bytes,
                        "output_bytes": k.output_bytes,
                        "bytes_moved": k.bytes_moved,
                        "intensity": round(k.intensity, 4),
                    }
                    for k in ks
                ],
            },
            ensure_ascii=False,
        )
    head = [
        "kernel",
        "activations read [B]",
        "weights read [B]",
        "output written [B]",
        "bytes moved [B]",
        "FLOPs (costmodel conv.)",
        "FLOP/byte",
    ]
    body: list[list[Any]] = [
        [k.label, k.input_bytes, k.weight_bytes, k.output_bytes, k.bytes_moved, k.flops, f"{k.intensity:.2f}"]
        for k in ks
    ]
    body.append(
        [
            "total",
            totals["input_bytes"],
            totals["weight_bytes"],
            totals["output_bytes"],
            totals["bytes_moved"],
            totals["flops"],
            f"{float(totals['flops']) / float(totals['bytes_moved']):.2f}" if totals["bytes_moved"] else "",
        ]
    )
    if fmt == "csv":
        return write_csv(head, body)
    text = grid(head, body, fmt, ["left"] + ["right"] * 6)
    alive = ", ".join(f"{t} {b:,} B" for t, b in peak.alive)
    lines = [
        f"{report.name or 'spec'}: {dtype}, fusion {fusion} "
        "(each kernel reads its inputs and weights, writes its output)",
        text,
        f"peak activation memory: {peak.bytes:,} B at {peak.kernel} (alive: {alive})",
    ]
    return "\n".join(lines) if fmt in _TITLED else text


def render_roofline(report: Report, estimates: Any, profile: Any, fmt: str, dtype: str, fusion: str, by: str) -> str:
    """Per kernel (or per block, or per stage): FLOPs, bytes, intensity, roofline time and the bound."""
    total_s = sum(float(e.kernel.times) * e.time_s for e in estimates)
    compute_s = sum(float(e.kernel.times) * e.time_s for e in estimates if e.bound == "compute")
    if by == "auto":
        by = "kernel" if len(report.blocks) == 1 else "block"
    groups: dict[Any, list[Any]] = {}
    for e in estimates:
        key = {"kernel": e.kernel.label, "block": e.kernel.block, "stage": e.kernel.stage}[by]
        groups.setdefault(key, []).append(e)

    def summary(key: Any, es: list[Any]) -> dict[str, Any]:
        flops = sum(float(e.kernel.times) * float(e.kernel.flops) for e in es)
        moved = sum(float(e.kernel.times) * float(e.kernel.bytes_moved) for e in es)
        t = sum(float(e.kernel.times) * e.time_s for e in es)
        t_c = sum(float(e.kernel.times) * e.time_s for e in es if e.bound == "compute")
        label = key
        if by == "block":
            info = report.blocks[key]
            label = f"{info.layer}.{info.repeat} {info.name or info.kind}"
        bound = "compute" if t_c >= t - t_c else "memory"
        return {
            "item": str(label),
            "flops": flops,
            "bytes": moved,
            "intensity": flops / moved if moved else float("inf"),
            "time_s": t,
            "compute_bound_share": t_c / t if t else 0.0,
            "bound": bound,
        }

    rows = [summary(k, v) for k, v in groups.items()]
    ridge = profile.peak(dtype) / profile.bandwidth
    if fmt == "json":
        return json.dumps(
            {
                "name": report.name,
                "hardware": profile.name,
                "dtype": dtype,
                "fusion": fusion,
                "ridge_flop_per_byte": ridge,
                "totals": {"time_s": total_s, "compute_bound_time_share": compute_s / total_s if total_s else 0.0},
                "rows": rows,
            }
        )
    head = [by, "FLOPs", "bytes moved", "FLOP/byte", "time [µs]", "% of time", "bound"]
    body = [
        [
            r["item"],
            f"{r['flops']:,.0f}",
            f"{r['bytes']:,.0f}",
            f"{r['intensity']:.2f}",
            f"{r['time_s'] * 1e6:,.3f}",
            f"{100 * r['time_s'] / total_s:.1f}" if total_s else "",
            r["bound"] if by == "kernel" else f"{r['bound']} ({100 * r['compute_bound_share']:.0f}% compute)",
        ]
        for r in rows
    ]
    body.append(
        [
            "total",
            "",
            "",
            "",
            f"{total_s * 1e6:,.3f}",
            "100.0",
            f"{100 * compute_s / total_s:.0f}% of time compute-bound" if total_s else "",
        ]
    )
    if fmt == "csv":
        return write_csv(head, body)
    text = grid(head, body, fmt, ["left"] + ["right"] * 5 + ["left"])
    if fmt in _TITLED:
        title = (
            f"{report.name or 'spec'} on {profile.name}: {dtype}, fusion {fusion}; "
            f"time = max(FLOPs / {profile.peak(dtype):.4g} FLOP/s, bytes / {profile.bandwidth:.4g} B/s); "
            f"ridge at {ridge:.2f} FLOP/byte"
        )
        text = f"{title}\n{text}"
    return text
