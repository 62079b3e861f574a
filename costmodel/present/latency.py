"""Predicted latency per op, per block or per stage, with the term that bounds each, and the total."""

from __future__ import annotations

from typing import Any

from ..analysis.latency import LatencyCalibration, OpTime, total_seconds
from ..engine.report import Report
from .emit import Column, Table, emit

LATENCY_VIEWS = ("auto", "op", "block", "stage")


def resolve_view(report: Report, by: str) -> str:
    """``auto`` is ``op`` for a spec of one block instance and ``block`` otherwise."""
    return ("op" if len(report.blocks) == 1 else "block") if by == "auto" else by


def _groups(report: Report, times: list[OpTime], by: str) -> list[tuple[str, list[OpTime]]]:
    groups: dict[Any, list[OpTime]] = {}
    for t in times:
        r = t.row
        key = {"op": id(t), "block": r.block, "stage": r.stage}[by]
        groups.setdefault(key, []).append(t)
    out = []
    for key, ts in groups.items():
        r = ts[0].row
        if by == "op":
            label = f"{r.layer}.{r.repeat} {r.stage} {r.op.name}"
        elif by == "block":
            info = report.blocks[key]
            label = f"{info.layer}.{info.repeat} {info.name or info.kind}"
        else:
            label = str(key)
        out.append((label, ts))
    return out


def latency_payload(report: Report, cal: LatencyCalibration, times: list[OpTime], by: str) -> dict[str, Any]:
    """JSON: the calibration used, totals.time_s, and one record per item of the view."""
    total = total_seconds(times)
    return {
        "name": report.name,
        "threads": cal.threads,
        "dtype": cal.dtype,
        "framework": cal.framework,
        "batch": report.batch,
        "totals": {"time_s": total, "measured_ops": sum(1 for t in times if t.source == "table")},
        "rows": [
            {
                "item": label,
                "time_s": sum(t.total_s for t in ts),
                "bound": _bound(ts),
                "classes": sorted({t.op_class for t in ts}),
            }
            for label, ts in _groups(report, times, by)
        ],
    }


def _bound(ts: list[OpTime]) -> str:
    shares: dict[str, float] = {}
    for t in ts:
        shares[t.bound] = shares.get(t.bound, 0.0) + t.total_s
    return max(shares, key=lambda k: shares[k])


def latency_table(report: Report, cal: LatencyCalibration, times: list[OpTime], by: str) -> Table:
    """One row per item: predicted time, share of the total, the dominating term and the op classes."""
    total = total_seconds(times)
    cols = [
        Column(by, by, "left"),
        Column("time_us", "predicted time [µs]"),
        Column("time_percent", "% of time"),
        Column("bound", "bound (overhead / compute / memory / measured)", "left"),
        Column("classes", "op classes", "left"),
    ]
    body: list[list[Any]] = []
    for label, ts in _groups(report, times, by):
        t = sum(x.total_s for x in ts)
        body.append(
            [
                label,
                f"{t * 1e6:,.2f}",
                f"{100 * t / total:.1f}" if total else "",
                _bound(ts),
                " ".join(sorted({x.op_class for x in ts})),
            ]
        )
    body.append(["total", f"{total * 1e6:,.2f}", "100.0", "", ""])
    measured = sum(1 for t in times if t.source == "table")
    kind = "int8" if cal.dtype == "int8" else "eager"
    title = (
        f"{report.name or 'spec'}: predicted {kind} latency, {cal.framework}, {cal.threads} thread(s), "
        f"batch {report.batch}; {measured} of {len(times)} ops from measured entries"
    )
    return Table(
        cols, body, title, "model: docs/roofline.md (latency); t = overhead + s/MAC·MACs + s/byte·bytes per op class"
    )


def render_latency(report: Report, cal: LatencyCalibration, times: list[OpTime], fmt: str, by: str = "auto") -> str:
    """The latency view in ``fmt``."""
    view = resolve_view(report, by)
    return emit(lambda: latency_table(report, cal, times, view), fmt, lambda: latency_payload(report, cal, times, view))
