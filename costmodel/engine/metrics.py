"""The metrics costmodel counts, declared once: name, unit, column title and what it includes.

Ops compute the per-op metrics (``params``, ``buffers``, ``macs``, ``flops``); the walk adds
``activations`` (output elements). Rows, totals, budgets, sweeps, renderers and CLI choices all take
their list from here, so a new metric is one declaration plus its formula in each op.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One counted quantity."""

    name: str  # the key in totals, JSON and CSV
    unit: str  # what one unit counts
    header: str  # the column title in tables
    description: str  # what is included (docs/conventions.md has the rules)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "params",
            "learnable values",
            "params (learnable)",
            "sum(p.numel() for p in module.parameters()): weights, bias, BatchNorm gamma/beta",
        ),
        Metric(
            "buffers",
            "values",
            "buffers (BN stats)",
            "BatchNorm running mean/var and num_batches_tracked: sum(b.numel() for b in module.buffers())",
        ),
        Metric(
            "macs",
            "multiply-accumulates",
            "MACs (conv+linear, no bias)",
            "multiply-accumulates of conv and linear layers, bias excluded = FlopCounterMode total / 2",
        ),
        Metric(
            "flops",
            "floating-point operations",
            "FLOPs (costmodel conv.)",
            "2 per MAC + bias adds + BN (2/elem) + activations + pooling + SE gate multiply + residual adds",
        ),
        Metric(
            "activations",
            "elements",
            "activations (elements)",
            "output elements of each op, batch included",
        ),
    )
}
"""Every metric by name, in display order."""

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
OP_METRICS: tuple[str, ...] = ("params", "buffers", "macs", "flops")
"""The metrics each op's formula gives (``activations`` comes from its output shape)."""
TABLE_METRICS: tuple[str, ...] = ("params", "macs", "flops")
"""The metrics tables show by default."""
