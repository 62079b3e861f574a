"""Bytes per kernel (activations read, weights read, output written), FLOPs, intensity; the peak."""

from __future__ import annotations

from typing import Any

from ..analysis.memory import Kernel, Peak, memory_totals
from ..engine.report import Report
from .emit import Cell, Column, Table, emit
from .report import block_id


def memory_payload(report: Report, ks: list[Kernel], peak: Peak, dtype: str, fusion: str) -> dict[str, Any]:
    """The memory view as JSON: totals, the peak and what is alive at it, every kernel."""
    return {
        "name": report.name,
        "dtype": dtype,
        "fusion": fusion,
        "totals": memory_totals(ks, peak),
        "peak": {
            "bytes": peak.bytes,
            "kernel": peak.kernel,
            "alive": [{"tensor": t, "bytes": b} for t, b in peak.alive],
        },
        "kernels": [
            {
                "kernel": k.label,
                "block": block_id(k.rows[0].layer, k.rows[0].repeat),
                "index": k.block,
                "stage": k.stage,
                "ops": [r.op.name for r in k.rows],
                "flops": k.flops,
                "input_bytes": k.input_bytes,
                "weight_bytes": k.weight_bytes,
                "output_bytes": k.output_bytes,
                "bytes_moved": k.bytes_moved,
                "intensity": round(k.intensity, 4),
            }
            for k in ks
        ],
    }


def _intensity(x: float) -> Cell:
    return Cell(f"{x:.2f}", round(x, 4))


def memory_table(report: Report, ks: list[Kernel], peak: Peak, dtype: str, fusion: str) -> Table:
    """One row per kernel and a total row; the peak in the footer."""
    totals = memory_totals(ks, peak)
    cols = [
        Column("kernel", "kernel", "left"),
        Column("input_bytes", "activations read [B]"),
        Column("weight_bytes", "weights read [B]"),
        Column("output_bytes", "output written [B]"),
        Column("bytes_moved", "bytes moved [B]"),
        Column("flops", "FLOPs (costmodel conv.)"),
        Column("intensity", "FLOP/byte"),
    ]
    body: list[list[Any]] = [
        [k.label, k.input_bytes, k.weight_bytes, k.output_bytes, k.bytes_moved, k.flops, _intensity(k.intensity)]
        for k in ks
    ]
    moved = totals["bytes_moved"]
    body.append(
        [
            "total",
            totals["input_bytes"],
            totals["weight_bytes"],
            totals["output_bytes"],
            moved,
            totals["flops"],
            _intensity(float(totals["flops"]) / float(moved)) if moved else "",
        ]
    )
    alive = ", ".join(f"{t} {b:,} B" for t, b in peak.alive)
    title = f"{report.name or 'spec'}: {dtype}, fusion {fusion} "
    title += "(each kernel reads its inputs and weights, writes its output)"
    footer = f"peak activation memory: {peak.bytes:,} B at {peak.kernel} (alive: {alive})"
    return Table(cols, body, title, footer)


def render_memory(report: Report, ks: list[Kernel], peak: Peak, fmt: str, dtype: str, fusion: str) -> str:
    """The memory view in ``fmt``."""
    return emit(
        lambda: memory_table(report, ks, peak, dtype, fusion),
        fmt,
        lambda: memory_payload(report, ks, peak, dtype, fusion),
    )
