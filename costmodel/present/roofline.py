"""Per kernel (or per block, or per stage): FLOPs, bytes, intensity, roofline time and the bound."""

from __future__ import annotations

from typing import Any

from ..analysis.hardware import Estimate, HardwareProfile, Summary, summarize
from ..engine.report import Report
from .emit import Cell, Column, Table, emit


def resolve_view(report: Report, by: str) -> str:
    """``auto`` is ``kernel`` for a spec of one block instance and ``block`` otherwise."""
    return ("kernel" if len(report.blocks) == 1 else "block") if by == "auto" else by


def _totals(estimates: list[Estimate]) -> tuple[float, float]:
    total_s = sum(float(e.kernel.times) * e.time_s for e in estimates)
    compute_s = sum(float(e.kernel.times) * e.time_s for e in estimates if e.bound == "compute")
    return total_s, compute_s


def roofline_payload(
    report: Report, estimates: list[Estimate], items: list[Summary], profile: HardwareProfile, dtype: str, fusion: str
) -> dict[str, Any]:
    """The roofline as JSON: totals (time, compute-bound share) and one record per item."""
    total_s, compute_s = _totals(estimates)
    return {
        "name": report.name,
        "hardware": profile.name,
        "dtype": dtype,
        "fusion": fusion,
        "ridge_flop_per_byte": profile.peak(dtype) / profile.bandwidth,
        "totals": {"time_s": total_s, "compute_bound_time_share": compute_s / total_s if total_s else 0.0},
        "rows": [
            {
                "item": s.item,
                "flops": s.flops,
                "bytes": s.bytes,
                "intensity": s.intensity,
                "time_s": s.time_s,
                "compute_bound_share": s.compute_bound_share,
                "bound": s.bound,
            }
            for s in items
        ],
    }


def roofline_table(
    report: Report,
    estimates: list[Estimate],
    items: list[Summary],
    profile: HardwareProfile,
    dtype: str,
    fusion: str,
    by: str,
) -> Table:
    """One row per item and a total row; the roofline's parameters in the title."""
    total_s, compute_s = _totals(estimates)
    cols = [
        Column(by, by, "left"),
        Column("flops", "FLOPs"),
        Column("bytes", "bytes moved"),
        Column("intensity", "FLOP/byte"),
        Column("time_us", "time [µs]"),
        Column("time_percent", "% of time"),
        Column("bound", "bound", "left"),
    ]
    body: list[list[Any]] = [
        [
            s.item,
            Cell(f"{s.flops:,}", s.flops),
            Cell(f"{s.bytes:,}", s.bytes),
            Cell(f"{s.intensity:.2f}", s.intensity),
            Cell(f"{s.time_s * 1e6:,.3f}", s.time_s * 1e6),
            Cell(f"{100 * s.time_s / total_s:.1f}", 100 * s.time_s / total_s) if total_s else "",
            s.bound if by == "kernel" else Cell(f"{s.bound} ({100 * s.compute_bound_share:.0f}% compute)", s.bound),
        ]
        for s in items
    ]
    body.append(
        [
            "total",
            "",
            "",
            "",
            Cell(f"{total_s * 1e6:,.3f}", total_s * 1e6),
            Cell("100.0", 100.0),
            f"{100 * compute_s / total_s:.0f}% of time compute-bound" if total_s else "",
        ]
    )
    ridge = profile.peak(dtype) / profile.bandwidth
    title = (
        f"{report.name or 'spec'} on {profile.name}: {dtype}, fusion {fusion}; "
        f"time = max(FLOPs / {profile.peak(dtype):.4g} FLOP/s, bytes / {profile.bandwidth:.4g} B/s); "
        f"ridge at {ridge:.2f} FLOP/byte"
    )
    return Table(cols, body, title)


def render_roofline(
    report: Report, estimates: list[Estimate], profile: HardwareProfile, fmt: str, dtype: str, fusion: str, by: str
) -> str:
    """The roofline view in ``fmt``."""
    view = resolve_view(report, by)
    items = summarize(report, estimates, view)
    return emit(
        lambda: roofline_table(report, estimates, items, profile, dtype, fusion, view),
        fmt,
        lambda: roofline_payload(report, estimates, items, profile, dtype, fusion),
    )
