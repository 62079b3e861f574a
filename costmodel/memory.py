"""Memory: bytes each op moves, arithmetic intensity, and the peak of live activations.

Execution models (``fusion``):

* ``none`` — every op is a kernel of its own: it reads its inputs and weights from memory and writes
  its output. BatchNorm reads γ, β and the running mean and variance (4C values).
* ``conv-bn-act`` — BatchNorm is folded into the conv (its weights, plus a Cout bias) and the activation
  is applied in place before the write: conv → BN → act is one kernel.
* ``block`` — each block (an MBConv, a Fused-MBConv, …) is one kernel: it reads the block input and all
  its (folded) weights and writes the block output; the expanded tensor never goes to memory.

Peak activation memory is for inference executed op by op (one kernel of the model at a time): at each
kernel, the tensors alive are its inputs, its output, and the tensors kept for later — the block input
until the residual add (or the shortcut conv), the SE input until the SE multiply. Weights are not
counted in the peak.

Element sizes (``dtype``): float32 4 bytes, float16 and bfloat16 2, int8 1; weights use the same dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import UsageError
from .ops import numel
from .report import Report, Row
from .symbols import Num, total

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
FUSIONS = ("none", "conv-bn-act", "block")


def element_size(dtype: str) -> int:
    """Bytes per element of ``dtype``."""
    try:
        return DTYPES[dtype]
    except KeyError:
        raise UsageError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}") from None


@dataclass
class Kernel:
    """One kernel of the execution model: the rows it runs, and what it moves and computes."""

    label: str  # e.g. "3.1 expansion conv2d+batchnorm2d+silu"
    block: int
    stage: str
    rows: list[Row]
    flops: Num
    input_bytes: Num  # activations read (every input tensor)
    weight_bytes: Num
    output_bytes: Num
    times: Num = 1

    @property
    def bytes_moved(self) -> Num:
        """Activations read + weights read + output written."""
        return self.input_bytes + self.weight_bytes + self.output_bytes

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved."""
        moved = self.bytes_moved
        return float(self.flops) / float(moved) if moved else float("inf")


@dataclass
class Peak:
    """The largest sum of live activation bytes, where it happens and what is alive then."""

    bytes: Num
    kernel: str
    alive: list[tuple[str, Num]] = field(default_factory=list)


def _inference_weights(row: Row, fold: bool) -> Num:
    """Elements of weights a kernel reads for this row (BN: γ, β, mean, var; folded: nothing)."""
    if row.op == "batchnorm2d":
        return 0 if fold else 2 * row.params  # params = 2C (γ, β); the running stats are another 2C
    return row.params


def _second_input(row: Row, batch: Num) -> Num:
    """Elements of the other operand: the skip tensor of an add, the C gate of the SE multiply."""
    if row.op == "add":
        return batch * numel(row.input)
    if row.op == "mul":
        return batch * row.input[0]
    return 0


def kernels(report: Report, dtype: str = "float32", fusion: str = "none") -> list[Kernel]:
    """The report's ops grouped into the kernels of an execution model, with bytes and FLOPs."""
    if fusion not in FUSIONS:
        raise UsageError(f"unknown fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
    if report.symbolic:
        raise UsageError("memory and roofline need numbers: bind the spec's symbols with --set")
    size = element_size(dtype)
    n = report.batch
    out: list[Kernel] = []
    if fusion == "block":
        for b, rows in _by_block(report):
            info = report.blocks[b]
            folded = fold_rows(rows)
            flops = total(r.flops for r in folded)
            weights = total(_inference_weights(r, True) for r in folded)
            out.append(
                Kernel(
                    f"{info.layer}.{info.repeat} {info.kind}",
                    b,
                    "block",
                    rows,
                    flops,
                    n * numel(info.input) * size,
                    weights * size,
                    n * numel(info.output) * size,
                    rows[0].times,
                )
            )
        return out
    rows = report.rows
    i = 0
    while i < len(rows):
        row = rows[i]
        group = [row]
        if fusion == "conv-bn-act" and row.op == "conv2d":
            j = i + 1
            while (
                j < len(rows)
                and rows[j].block == row.block
                and rows[j].stage == row.stage
                and (rows[j].op == "batchnorm2d" or rows[j].op in _ACTIVATIONS)
            ):
                group.append(rows[j])
                j += 1
        i += len(group)
        if len(group) > 1:
            folded = fold_rows(group)
            flops = total(r.flops for r in folded)
            weights = total(_inference_weights(r, True) for r in folded)
        else:
            flops = row.flops
            weights = _inference_weights(row, False)
        first, last = group[0], group[-1]
        label = f"{first.layer}.{first.repeat} {first.stage} " + "+".join(r.op for r in group)
        out.append(
            Kernel(
                label,
                first.block,
                first.stage,
                group,
                flops,
                (n * numel(first.input) + _second_input(first, n)) * size,
                weights * size,
                last.activations * size,
                first.times,
            )
        )
    return out


_ACTIVATIONS = frozenset({"relu", "relu6", "silu", "hardswish", "sigmoid", "hardsigmoid"})


def _by_block(report: Report) -> list[tuple[int, list[Row]]]:
    groups: dict[int, list[Row]] = {}
    for r in report.rows:
        groups.setdefault(r.block, []).append(r)
    return list(groups.items())


def fold_rows(rows: list[Row]) -> list[Row]:
    """Rows with each BatchNorm folded into the conv before it, as deployed for inference.

    The conv gains a bias (Cout params, one add per output) if it had none; the BatchNorm row keeps no
    params and no FLOPs (its γ, β, mean and var are baked into the conv's weights and bias).
    """
    out: list[Row] = []
    for r in rows:
        if r.op == "batchnorm2d" and out and out[-1].op == "conv2d" and out[-1].block == r.block:
            conv = out[-1]
            if not conv.bias:
                cout = conv.output[0]
                out[-1] = replace(conv, params=conv.params + cout, flops=conv.flops + conv.activations, bias=True)
            out.append(replace(r, params=0, buffers=0, flops=0))
        else:
            out.append(r)
    return out


def fold_bn(report: Report) -> Report:
    """The deployment view: every BatchNorm folded into its conv (params and FLOPs as deployed)."""
    return replace(report, rows=fold_rows(report.rows), _totals=None)


def peak_activations(
    report: Report, dtype: str = "float32", fusion: str = "none", ks: list[Kernel] | None = None
) -> Peak:
    """The peak of live activation bytes over the kernels of an execution model, and the kernel at it.

    ``ks`` may pass the kernels ``kernels(report, dtype, fusion)`` already gave, so they are not rebuilt.
    """
    size = element_size(dtype)
    n = report.batch
    sizes: dict[int, Num] = {}
    names: dict[int, str] = {}

    def tensor(elements: Num, name: str) -> int:
        t = len(sizes)
        sizes[t] = elements * size
        names[t] = name
        return t

    best = Peak(-1, "")

    def consider(kernel: str, alive: set[int]) -> None:
        nonlocal best
        live = total(sizes[t] for t in sorted(alive))
        if not isinstance(live, int):
            raise UsageError("peak memory needs numbers: bind the spec's symbols with --set")
        if live > best.bytes:
            best = Peak(live, kernel, [(names[t], sizes[t]) for t in sorted(alive)])

    current = tensor(n * numel(report.input), "network input")
    if ks is None:
        ks = kernels(report, dtype, fusion)
    by_block: dict[int, list[Kernel]] = {}
    for k in ks:
        by_block.setdefault(k.block, []).append(k)
    for block_kernels in by_block.values():
        block_in = current
        rows = [r for k in block_kernels for r in k.rows]
        keeps_input = any(r.op == "add" for r in rows) or any(r.stage == "shortcut" for r in rows)
        main, short, se_x = block_in, None, None
        for k in block_kernels:
            first = k.rows[0]
            out_elems = k.output_bytes // size if isinstance(k.output_bytes, int) else k.output_bytes / size
            if fusion == "block":
                out = tensor(out_elems, f"{k.label} output")
                consider(k.label, {main, out})
                main = out
                continue
            if first.stage == "shortcut":
                inputs = {short if short is not None else block_in}
                out = tensor(out_elems, f"{k.label} output")
                short = out
            elif first.op == "avgpool" and first.stage == "se":
                se_x = main
                inputs = {main}
                out = tensor(out_elems, f"{k.label} output")
                main = out
            elif first.op == "mul" and first.stage == "se":
                inputs = {main} | ({se_x} if se_x is not None else set())
                out = tensor(out_elems, f"{k.label} output")
                main, se_x = out, None
            elif first.op == "add":
                inputs = {main, short if short is not None else block_in}
                out = tensor(out_elems, f"{k.label} output")
                main, short, keeps_input = out, None, False
            else:
                inputs = {main}
                out = tensor(out_elems, f"{k.label} output")
                main = out
            kept = {t for t in (block_in if keeps_input else None, short, se_x) if t is not None}
            consider(k.label, inputs | {out} | kept)
        current = main
    return best
