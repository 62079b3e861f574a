"""The training view: per block (or op / stage) MACs of a step and saved bytes, then the step's memory."""

from __future__ import annotations

from typing import Any

from ..analysis.training import OPTIMIZERS, Training, TrainRow
from ..engine.symbols import Num, total
from ..errors import UsageError
from .emit import Column, Table, emit, jsonable
from .report import shape_text

TRAIN_VIEWS = ("auto", "op", "stage", "block")
_FIGURES = ("forward_macs", "grad_input_macs", "grad_weight_macs", "training_macs", "saved_bytes")
_TITLES = {
    "forward_macs": "forward MACs",
    "grad_input_macs": "input-grad MACs",
    "grad_weight_macs": "weight-grad MACs",
    "training_macs": "training MACs",
    "saved_bytes": "saved bytes",
}
_MEMORY = (
    ("param_bytes", "parameters (float32)"),
    ("grad_bytes", "gradients (float32)"),
    ("optimizer_bytes", "optimizer state (float32)"),
    ("buffer_bytes", "buffers (BatchNorm running stats)"),
    ("saved_bytes", "saved activations"),
    ("transient_bytes", "transient: 2 × the largest activation"),
    ("peak_bytes", "peak of the step (running stats counted once)"),
)


def _sums(rows: list[TrainRow]) -> list[Num]:
    return [total(t.total(f) for t in rows) for f in _FIGURES]


def _groups(tr: Training, by: str) -> tuple[list[Column], list[list[Any]]]:
    rows = tr.rows
    if by == "auto":
        by = "op" if len(tr.report.blocks) == 1 else "block"
    body: list[list[Any]] = []
    if by == "op":
        cols = [Column(k, k, "left") for k in ("layer", "stage", "op", "detail", "output", "input grad")]
        for t in rows:
            r = t.row
            label = f"{r.layer}.{r.repeat}" + (f" (×{r.times})" if r.times != 1 else "")
            body.append([label, r.stage, r.op.name, r.op.detail, shape_text(r.op.output), t.input_grad, *_sums([t])])
    elif by == "stage":
        cols = [Column("stage", "stage", "left")]
        stages: dict[str, list[TrainRow]] = {}
        for t in rows:
            stages.setdefault(t.row.stage, []).append(t)
        body = [[s, *_sums(g)] for s, g in stages.items()]
    elif by == "block":
        cols = [Column(k, k, "left") for k in ("block", "kind", "settings", "output")]
        blocks: dict[int, list[TrainRow]] = {}
        for t in rows:
            blocks.setdefault(t.row.block, []).append(t)
        for b, g in blocks.items():
            info = tr.report.blocks[b]
            label = f"{info.layer}.{info.repeat}" + (f" (×{info.times})" if info.times != 1 else "")
            body.append([label, info.kind, info.settings, shape_text(info.output), *_sums(g)])
    else:
        raise UsageError(f"unknown view {by!r}; expected one of {', '.join(TRAIN_VIEWS)}")
    return cols, body


def _settings(tr: Training) -> str:
    ck = ", checkpoint blocks" if tr.checkpoint == "blocks" else ""
    return (
        f"batch {tr.batch}, {tr.optimizer}, {tr.precision}, {tr.device}{ck}, "
        f"MACs as {'FlopCounterMode counts (torch)' if tr.convention == 'torch' else 'costmodel counts'}"
    )


def training_tables(tr: Training, by: str = "auto", extra: dict[str, Any] | None = None) -> list[Table]:
    """The per-row table (with a total row) and the memory table of a training step; ``extra["solve"]`` (a
    solved batch) adds its row to the memory table."""
    cols, body = _groups(tr, by)
    lead = len(cols)
    cols += [Column(f, _TITLES[f]) for f in _FIGURES]
    totals = tr.totals
    body.append(["total"] + [""] * (lead - 1) + [total(t.total(f) for t in tr.rows) for f in _FIGURES])
    notes = []
    if tr.checkpoint == "blocks":
        notes.append(
            f"checkpoint blocks: + {totals['recompute_macs']:,} recompute MACs → {totals['training_macs']:,} "
            f"training MACs; saved {totals['saved_bytes']:,} bytes (block inputs + one block recomputed)"
            if isinstance(totals["training_macs"], int)
            else f"checkpoint blocks: training MACs {totals['training_macs']}, saved {totals['saved_bytes']}"
        )
    notes.append("definitions and saving rules: docs/training.md")
    name = tr.report.name or "spec"
    main = Table(cols, body, f"{name}: one training step ({_settings(tr)})", "\n".join(notes))
    mem_rows: list[list[Any]] = [[title, totals[key]] for key, title in _MEMORY]
    if "training_flops" in totals:
        mem_rows.append(["training FLOPs (costmodel convention)", totals["training_flops"]])
    mem_rows.insert(0, ["training MACs", totals["training_macs"]])
    if extra and "solve" in extra:
        s = extra["solve"]
        mem_rows.append([f"largest batch in {s['budget']:,} bytes", s["batch"]])
    mem = Table([Column("item", "item", "left"), Column("value", "bytes / count")], mem_rows, "memory of the step")
    return [main, mem]


def training_payload(tr: Training, by: str = "block", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training view as JSON: settings, totals and the rows of ``by`` (``auto``: block), then ``extra``'s
    entries (e.g. a solved batch)."""
    cols, body = _groups(tr, "block" if by == "auto" else by)
    keys = [c.key for c in cols] + list(_FIGURES)
    return {
        "name": tr.report.name,
        "batch": jsonable(tr.batch),
        "optimizer": tr.optimizer,
        "optimizer_state_per_param": OPTIMIZERS[tr.optimizer],
        "dtype": tr.precision,
        "device": tr.device,
        "checkpoint": tr.checkpoint,
        "convention": tr.convention,
        "totals": {k: jsonable(v) for k, v in tr.totals.items()},
        "rows": [{k: jsonable(v) for k, v in zip(keys, row, strict=True)} for row in body],
        **(extra or {}),
    }


def render_training(tr: Training, fmt: str = "github", by: str = "auto", extra: dict[str, Any] | None = None) -> str:
    """The training view in ``fmt``; ``extra`` adds entries to the JSON payload (e.g. a solved batch)."""
    return emit(lambda: training_tables(tr, by, extra), fmt, lambda: training_payload(tr, by, extra))


def vs_torch_table(ours: Training, torch: Training) -> Table:
    """Op by op (conv by groups), training MACs as costmodel and as FlopCounterMode count, and the gap."""
    keys: dict[str, list[Num]] = {}
    for a, b in zip(ours.rows, torch.rows, strict=True):
        op = a.row.op
        g = op.attrs.get("groups", 1)
        key = op.name if g == 1 else (f"{op.name} depthwise" if g == op.input[0] else f"{op.name} groups")
        acc = keys.setdefault(key, [0, 0])
        acc[0] = acc[0] + a.total("training_macs")
        acc[1] = acc[1] + b.total("training_macs")
    why = {
        "conv2d depthwise": "FlopCounterMode's convolution_backward: weight gradient counted × groups (= C)",
        "conv2d groups": "FlopCounterMode's convolution_backward: weight gradient counted × groups",
    }
    body = [[k, a, b, b - a, why.get(k, "")] for k, (a, b) in keys.items() if a or b]
    ta, tb = total(v[0] for v in keys.values()), total(v[1] for v in keys.values())
    body.append(["total", ta, tb, tb - ta, ""])
    cols = [
        Column("op", "op", "left"),
        Column("costmodel", "costmodel training MACs"),
        Column("torch", "FlopCounterMode / 2"),
        Column("difference", "torch − costmodel"),
        Column("why", "why", "left"),
    ]
    return Table(cols, body, f"{ours.report.name or 'spec'}: training MACs, costmodel vs torch FlopCounterMode")
