"""Memory: bytes each op moves, arithmetic intensity, and the peak of live activations.

Dropout is the identity at inference: it is no kernel in any execution model (zero bytes, zero time),
and the op after it reads the dropout's input tensor.

Execution models (``fusion``):

* ``none`` — every op is a kernel of its own: it reads its inputs and weights from memory and writes
  its output. BatchNorm reads γ, β and the running mean and variance (4C values).
* ``conv-bn-act`` — a norm is folded into the conv (its weights, plus a Cout bias) and the activation
  is applied in place before the write: conv → norm → act is one kernel.
* ``block`` — each block (an MBConv, a Fused-MBConv, …) is one kernel: it reads the block input and all
  its (folded) weights and writes the block output; the expanded tensor never goes to memory.

Peak activation memory is for inference executed kernel by kernel (one at a time). The tensors come
from the blocks' own dataflow declarations (engine/blocks.py): every row says which tensors it reads
and which it writes. At each kernel, the tensors alive are its inputs, its output, and every tensor
written earlier that a later kernel still reads (the block input until the residual add, the SE
input until the SE multiply, the main path while a shortcut conv runs). Weights are not counted in
the peak.

Element sizes (``dtype``): float32 4 bytes, float16 and bfloat16 2, int8 1; weights use the same dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..engine.ops import numel
from ..engine.report import Report, Row
from ..engine.symbols import Num, total
from ..errors import UsageError

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
    """One kernel of the execution model: the rows it runs, the tensors it reads and writes, and what it
    moves and computes."""

    label: str  # e.g. "3.1 expansion conv2d+batchnorm2d+silu"
    block: int
    stage: str
    rows: list[Row]
    flops: Num
    input_bytes: Num  # activations read (every input tensor)
    weight_bytes: Num
    output_bytes: Num
    times: Num = 1
    reads: tuple[int, ...] = ()  # tensor ids
    writes: int = 0

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
    """Elements of weights a kernel reads for this row: params plus inference state (BatchNorm's running
    statistics); a folded norm reads nothing (it lives in the conv's weights and bias)."""
    if fold and row.op.folds:
        return 0
    return row.costs["params"] + row.op.state


def graph_aliases(report: Report) -> tuple[dict[int, int], dict[int, Num]]:
    """For a report with graph layers: each view's tensor → the tensor owning its storage (analysis/graph_tensors.py:
    torch's views, reshape only where the strides allow), and each param / buffer node's tensor (or a view of one)
    → its elements (a weight, read as weight bytes). Empty for block kinds alone."""
    if not any(r.op.graph is not None for r in report.rows):
        return {}, {}
    from .graph_tensors import track

    tensors = track(report, "memory")
    alias = {t: info.storage for t, info in tensors.items() if info.storage != t}
    owners = {r.tensor: r for r in report.rows if r.op.category == "param"}
    weights: dict[int, Num] = {}
    for t, info in tensors.items():
        if info.weight and info.storage == t:
            row = owners[t]
            weights[t] = row.costs["params"] + row.costs["buffers"]
    return alias, weights


def tensor_elements(report: Report) -> dict[int, Num]:
    """Elements (batch included) of every tensor of the report, by id; 0 is the network input."""
    sizes: dict[int, Num] = {0: report.batch * numel(report.input)}
    for r in report.rows:
        sizes[r.tensor] = r.costs["activations"]
    return sizes


def _chain(rows: list[Row], i: int) -> int:
    """How many rows from ``i`` form one conv → norm → activation kernel (1 if rows[i] is not a conv)."""
    row = rows[i]
    if row.op.category != "conv":
        return 1
    j = i + 1
    while (
        j < len(rows)
        and rows[j].block == row.block
        and rows[j].stage == row.stage
        and rows[j].op.category in ("norm", "act")
        and rows[j].inputs == (rows[j - 1].tensor,)
    ):
        j += 1
    return j - i


def check_kernels(report: Report, fusion: str) -> None:
    """Refuse an unknown execution model, or a report with free symbols."""
    if fusion not in FUSIONS:
        raise UsageError(f"unknown fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
    if report.symbolic:
        raise UsageError("memory and roofline need numbers: bind the spec's symbols with --set")


def kernels(report: Report, dtype: str = "float32", fusion: str = "none") -> list[Kernel]:
    """The report's ops grouped into the kernels of an execution model, with bytes and FLOPs."""
    check_kernels(report, fusion)
    size = element_size(dtype)
    sizes = tensor_elements(report)
    out: list[Kernel] = []
    groups: list[list[Row]] = []
    if fusion == "block":
        by_block: dict[int, list[Row]] = {}
        for r in report.rows:
            by_block.setdefault(r.block, []).append(r)
        groups = list(by_block.values())
    elif fusion == "conv-bn-act":
        rows = report.rows
        i = 0
        while i < len(rows):
            length = _chain(rows, i)
            groups.append(rows[i : i + length])
            i += length
    # Dropout is the identity at inference: no kernel, no bytes; its output is its input tensor. A graph's views
    # are no kernels either (their output is their input's storage), and its param / buffer nodes are weights:
    # a kernel reading one reads weight bytes, not an activation.
    alias, weights = graph_aliases(report)
    for r in report.rows:
        if r.op.category == "dropout" and r.inputs:
            alias[r.tensor] = alias.get(r.inputs[0], r.inputs[0])
    if fusion == "none":  # one kernel per op: the loop below, with each group one row
        for r in report.rows:
            op = r.op
            if op.category == "dropout" or r.tensor in alias or r.tensor in weights:
                continue
            ins = r.inputs
            if len(ins) == 1 and not alias and not weights:  # the common case, without the general dedup below
                reads: tuple[int, ...] = () if ins[0] == r.tensor else ins
                read_weights: Num = 0
            else:
                reads = tuple(dict.fromkeys(alias.get(t, t) for t in ins if t != r.tensor))
                read_weights = total(weights[t] for t in reads if t in weights)
                reads = tuple(t for t in reads if t not in weights)
            costs = r.costs
            out.append(
                Kernel(
                    f"{r.layer}.{r.repeat} {r.stage} {op.name}",
                    r.block,
                    r.stage,
                    [r],
                    0 + costs["flops"],
                    (0 + sizes[reads[0]] if len(reads) == 1 else total(sizes[t] for t in reads)) * size,
                    (0 + (costs["params"] + op.state) + read_weights) * size,  # _inference_weights(r, fold=False)
                    sizes[r.tensor] * size,
                    r.times,
                    reads,
                    r.tensor,
                )
            )
        return out
    for whole in groups:
        group = [r for r in whole if r.op.category != "dropout" and r.tensor not in alias and r.tensor not in weights]
        if not group:
            continue
        first, last = group[0], group[-1]
        written = {r.tensor for r in group}
        reads = tuple(dict.fromkeys(alias.get(t, t) for r in group for t in r.inputs if alias.get(t, t) not in written))
        read_weights = total(weights[t] for t in reads if t in weights)
        reads = tuple(t for t in reads if t not in weights)
        fold = len(group) > 1
        flops = total(r.costs["flops"] for r in (fold_rows(group) if fold else group))
        weight_elements = total(_inference_weights(r, fold) for r in (fold_rows(group) if fold else group))
        if fusion == "block":
            info = report.blocks[first.block]
            label, stage = f"{info.layer}.{info.repeat} {info.kind}", "block"
        else:
            label = f"{first.layer}.{first.repeat} {first.stage} " + "+".join(r.op.name for r in group)
            stage = first.stage
        out.append(
            Kernel(
                label,
                first.block,
                stage,
                group,
                flops,
                total(sizes[t] for t in reads) * size,
                (weight_elements + read_weights) * size,
                sizes[last.tensor] * size,
                first.times,
                reads,
                last.tensor,
            )
        )
    return out


def fold_rows(rows: list[Row]) -> list[Row]:
    """Rows with each foldable norm folded into the conv before it, as deployed for inference.

    The conv gains a bias (Cout params, one add per output) if it had none; the norm row keeps no
    params and no FLOPs (its γ, β, mean and var are baked into the conv's weights and bias).
    """
    out: list[Row] = []
    for r in rows:
        if r.op.folds and out and out[-1].op.category == "conv" and out[-1].block == r.block:
            conv = out[-1]
            if not conv.op.bias:
                cout = conv.op.output[1] if conv.op.graph is not None else conv.op.output[0]  # a graph's (1, C, …)
                costs = dict(conv.costs)
                costs["params"] = costs["params"] + cout
                costs["flops"] = costs["flops"] + costs["activations"]
                out[-1] = replace(conv, op=replace(conv.op, bias=True), costs=costs)
            out.append(replace(r, costs={**r.costs, "params": 0, "buffers": 0, "flops": 0}))
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

    Live at kernel k: its reads, its output, and every tensor written before k that a later kernel
    reads. ``ks`` may pass the kernels ``kernels(report, dtype, fusion)`` already gave.
    """
    size = element_size(dtype)
    io: list[tuple[tuple[int, ...], int]]  # (reads, writes) of each kernel
    if ks is None and fusion == "none":  # one kernel per op: read off the rows, no Kernel objects
        check_kernels(report, fusion)
        rows = report.rows
        if any(r.op.category == "dropout" or r.op.graph is not None for r in rows):
            ks = kernels(report, dtype, fusion)  # dropout's output is its input, a graph's views: the general rules
        else:  # the reads of each kernel as kernels() gives them (no aliases here)
            io = [
                (r.inputs, r.tensor)
                if len(r.inputs) == 1 and r.inputs[0] != r.tensor
                else (tuple(dict.fromkeys(t for t in r.inputs if t != r.tensor)), r.tensor)
                for r in rows
            ]

            def label(i: int) -> str:
                r = rows[i]
                return f"{r.layer}.{r.repeat} {r.stage} {r.op.name}"

    elif ks is None:
        ks = kernels(report, dtype, fusion)
    if ks is not None:
        kernel_list = ks
        io = [(k.reads, k.writes) for k in ks]

        def label(i: int) -> str:
            return kernel_list[i].label

    sizes = tensor_elements(report)
    writer: dict[int, int] = {}
    last_read: dict[int, int] = {}
    for i, (reads, writes) in enumerate(io):
        writer[writes] = i
        for t in reads:
            last_read[t] = i
    best, at, best_alive = -1, -1, [0]
    # tensors written before kernel i and read at i or later, kept incrementally (linear in the kernels)
    pending: set[int] = set()
    expire: dict[int, list[int]] = {}
    if last_read.get(0, -1) >= 0:
        pending.add(0)
        expire.setdefault(last_read[0], []).append(0)
    exact = all(type(v) is int for v in sizes.values())
    held = sum(sizes[t] for t in pending) if exact else 0  # elements of the pending tensors, kept as they change
    for i, (reads, writes) in enumerate(io):
        gone = expire.pop(i - 1, None)
        if gone:
            for t in gone:
                if t in pending:
                    pending.discard(t)
                    held -= sizes[t] if exact else 0
        if exact:  # ints: the live sum by parts, the same number as summing the live set
            live = held
            for t in reads:
                if t not in pending:
                    live += sizes[t]
            if writes not in pending and writes not in reads:
                live += sizes[writes]
            live *= size
            if live > best:
                alive = pending.union(reads)
                alive.add(writes)
                best, at, best_alive = live, i, sorted(alive)
        else:
            alive = pending.union(reads)
            alive.add(writes)
            live = sum([sizes[t] for t in alive]) * size
            if not isinstance(live, int):
                raise UsageError("peak memory needs numbers: bind the spec's symbols with --set")
            if live > best:
                best, at, best_alive = live, i, sorted(alive)
        last = last_read.get(writes, -1)
        if last >= i + 1:
            if exact and writes not in pending:
                held += sizes[writes]
            pending.add(writes)
            expire.setdefault(last, []).append(writes)
    if at < 0:
        return Peak(-1, "")

    def name(t: int) -> str:
        return "network input" if t == 0 and t not in writer else f"{label(writer[t])} output"

    return Peak(best, label(at), [(name(t), sizes[t] * size) for t in best_alive])


def memory_totals(ks: list[Kernel], peak: Peak) -> dict[str, Num]:
    """Summed over kernels: FLOPs, activation bytes read, weight bytes read, output bytes written, bytes
    moved (their sum); and the peak of live activation bytes."""
    totals: dict[str, Num] = {
        "flops": total(k.times * k.flops for k in ks),
        "input_bytes": total(k.times * k.input_bytes for k in ks),
        "weight_bytes": total(k.times * k.weight_bytes for k in ks),
        "output_bytes": total(k.times * k.output_bytes for k in ks),
    }
    totals["bytes_moved"] = totals["input_bytes"] + totals["weight_bytes"] + totals["output_bytes"]
    totals["peak_activation_bytes"] = peak.bytes
    return totals
