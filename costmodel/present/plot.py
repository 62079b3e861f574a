"""Plots (optional: ``pip install 'costmodel[plot]'``): sweep curves and heatmaps, per-stage bars.

Axis labels carry the unit and the convention of each count. Only called from the CLI's ``--plot``
or by a user; the rest of the library never imports matplotlib.
"""

from __future__ import annotations

from typing import Any

from ..analysis.hardware import summarize
from ..errors import UsageError
from .report import column_title


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'costmodel[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(metric: str, convention: Any = None) -> str:
    return f"{column_title(metric, convention)} [count]"


def _save(fig: Any, path: str) -> None:
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise UsageError(f"--plot {path}: {exc}") from None


def plot_sweep(result: Any, path: str, convention: Any = None) -> None:
    """One axis: a curve per metric against it. Two axes: a heatmap of each metric. Saved to ``path``."""
    import numpy as np

    plt = _pyplot()
    axes = list(result.axes)
    metrics = list(result.metrics)
    if len(axes) not in (1, 2):
        raise UsageError(f"--plot draws one axis (curves) or two (heatmaps); this sweep has {len(axes)}")
    fig, panels = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(panels[0], metrics, strict=True):
        values = np.asarray(result[metric], dtype=float)
        if len(axes) == 1:
            ax.plot(result[axes[0]], values, marker="o")
            ax.set_xlabel(axes[0])
            ax.set_ylabel(_label(metric, convention))
        else:
            rows, cols = result.axes[axes[0]], result.axes[axes[1]]
            image = ax.imshow(values.reshape(len(rows), len(cols)), origin="lower", aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(cols)), [str(c) for c in cols])
            ax.set_yticks(range(len(rows)), [str(r) for r in rows])
            ax.set_xlabel(axes[1])
            ax.set_ylabel(axes[0])
            fig.colorbar(image, ax=ax, label=_label(metric, convention))
        ax.set_title(metric)
    fixed = ", ".join(f"{k}={v}" for k, v in result.fixed.items())
    if fixed:
        fig.suptitle(fixed, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_stages(report: Any, path: str) -> None:
    """Stacked bars of params and MACs per block, one colour per stage (expansion, depthwise, se …)."""
    plt = _pyplot()
    if report.symbolic:
        raise UsageError("--plot needs numbers: bind the spec's symbols with --set")
    stages = report.stages()
    blocks = report.blocks
    fig, panels = plt.subplots(2, 1, figsize=(max(6.0, 0.35 * len(blocks) + 2), 6.5), sharex=True)
    for ax, metric in zip(panels, ("params", "macs"), strict=True):
        bottom = [0] * len(blocks)
        for stage in stages:
            heights = [0] * len(blocks)
            for r in report.rows:
                if r.stage == stage:
                    heights[r.block] += r.total(metric)
            ax.bar(range(len(blocks)), heights, bottom=bottom, label=stage)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.set_ylabel(_label(metric, report.convention))
    labels = [b.name or f"{b.layer}.{b.repeat}" if len(blocks) > 1 else b.kind for b in blocks]
    panels[1].set_xticks(range(len(blocks)), labels, rotation=90, fontsize=7)
    panels[1].set_xlabel("block (layer.repeat)")
    panels[0].legend(fontsize=7, ncol=4)
    panels[0].set_title(report.name or "spec")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_roofline(estimates: Any, profile: Any, dtype: str, fusion: str, path: str, title: str) -> None:
    """The classic roofline: attainable FLOP/s against FLOP/byte (log-log), one point per stage."""
    plt = _pyplot()
    peak, bw = profile.peak(dtype), profile.bandwidth
    stages = summarize(None, estimates, "stage")
    points = {
        s.item: (s.flops / s.bytes, s.flops / s.time_s) for s in stages if s.bytes > 0 and s.time_s > 0 and s.flops > 0
    }
    lo = min([x for x, _ in points.values()] + [peak / bw]) / 4
    hi = max([x for x, _ in points.values()] + [peak / bw]) * 4
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(xs, [min(peak, x * bw) for x in xs], color="black", linewidth=1.5, label=f"roof ({profile.name})")
    for stage, (x, y) in points.items():
        ax.scatter([x], [y], s=40, label=stage, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axvline(peak / bw, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel(f"arithmetic intensity [FLOP/byte] (costmodel FLOPs; bytes: {dtype}, fusion {fusion})")
    ax.set_ylabel("attainable performance [FLOP/s]")
    ax.set_title(f"{title}: one point per stage", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_ylim(bottom=min(y for _, y in points.values()) / 4 if points else peak / 1e4, top=peak * 2)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
