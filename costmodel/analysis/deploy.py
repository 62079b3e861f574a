"""Deployment on microcontrollers: int8 peak SRAM, Flash and the live-tensor timeline under a runtime's rules.

The graph is lowered as int8 converters lower it: conv → BatchNorm → ReLU/ReLU6 is one op (the norm folded
into the conv's weights and int32 bias, the activation clamped in the requantization); any other activation
is an op of its own (TFLM: hardsigmoid after a conv becomes its clamp and a MUL by 1/6); dropout is gone
(its output is its input); a residual add, the SE multiply, a pool and the classifier are ops. Tensors are
int8: one byte per element.

Runtimes (``runtime``):

* ``tinyengine`` (MCUNet, MCUNetV2): each op needs its inputs and its output at once, plus every tensor
  written before and read later (the block input until the residual add). In place: a depthwise conv writes
  over its input (it needs max(in, out)), the residual add is fused into the projection conv, which writes
  over the block input (it needs expanded + max(shortcut, out)), and an elementwise op (an activation, the SE
  multiply) writes over its first input; in place only where that input is read by no later op. The
  per-channel temporary buffer of TinyEngine's in-place depthwise conv is not counted. The input image is
  counted as the first op's input unless ``include_input=False``. Flash: int8 weights, and per output
  channel an int32 bias, an int32 requantization multiplier and an int32 shift (12 B per channel).
  Patch-based inference (MCUNetV2, ``patch=(ph, pw)``, ``patch_until=BLOCK``): the output of BLOCK is
  split into ph×pw patches; each is computed through the blocks up to BLOCK from the region of each tensor it
  needs (the receptive field: a k×k conv of stride s and padding k//2 needs input rows
  [a·s − k//2, b·s − k//2 + k − 1] for output rows [a, b], clipped to the tensor), while BLOCK's whole output
  stays allocated. Overlapping regions are computed more than once: the recomputed MACs.
* ``tflm`` (TensorFlow Lite for Microcontrollers): every non-constant tensor gets its own buffer, its size
  rounded up to 16 bytes, alive from the op that writes it to the last op that reads it (the model input from
  time 0, the model output to the end); op ``i`` runs at time ``i + 1``. A global average pool is MEAN, which
  asks for three scratch buffers (an int32 accumulator per output element, 4 × rank of the input and 4 × the
  number of axes bytes), alive during that op. GreedyMemoryPlanner places buffers by size, largest first
  (ties in the reverse of the order they are added: tensors in op order, then scratch buffers in request
  order), each at the lowest offset whose gap to the next buffer alive at the same time is large enough; the
  arena is the highest end. Flash: int8 weights and int32
  biases (the constant buffers, conv and fully connected alike), MEAN's int32 axes (8 B) and hardsigmoid's
  int8 1/6 (1 B), each stored once (the converter shares identical constant buffers); the quantization
  parameters (per output channel a float32 scale and an int64 zero point, for the weights and for the bias;
  one of each for fully connected, which converters quantize per tensor) are counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..engine.report import Report, Row
from ..errors import UsageError

RUNTIMES = ("tinyengine", "tflm", "litert", "onnxruntime")
ORT_QPARAM_BYTES = 5  # a QDQ tensor's float32 scale + int8 zero point (weights and activations, per tensor)
ORT_BIAS_QPARAM_BYTES = 8  # an int32 bias's float32 scale + int32 zero point
UNOBSERVABLE_ARENA = (
    "onnxruntime's arena is not observable (its Python API reports no allocation figures): only Flash is modelled"
)
FUSED_ACTS = ("relu", "relu6")  # folded into the conv's requantization clamp
TFLM_ACTS = {"hardswish": ("HARD_SWISH",), "sigmoid": ("LOGISTIC",), "silu": ("LOGISTIC", "MUL"), "relu": ("RELU",)}
TFLM_ACTS |= {"relu6": ("RELU6",), "swish": ("LOGISTIC", "MUL")}
ALIGN = 16  # TFLM's MicroArenaBufferAlignment()
TINYENGINE_CHANNEL_BYTES = 12  # int32 bias + int32 multiplier + int32 shift per output channel
TFLM_QUANT_BYTES = 12  # float32 scale + int64 zero point


@dataclass
class Step:
    """One op of the deployed graph: what it reads and writes, what is alive then, its Flash and MACs."""

    label: str
    block: str  # LAYER.REPEAT
    index: int  # the block instance
    ops: tuple[str, ...]  # the source ops (conv2d+batchnorm2d+relu6) or, for tflm, the TFLite op
    reads: tuple[int, ...]
    writes: int
    shape: tuple[int, ...]  # of the output
    inplace: int | None = None  # the input whose buffer the output overwrites
    depthwise: bool = False
    geometry: tuple[int, int] | None = None  # (kernel, stride) of a conv with odd square kernel, padding k//2
    macs: int = 0
    weight_bytes: int = 0
    bias_bytes: int = 0
    quant_bytes: int = 0  # tinyengine: multiplier + shift; tflm: scales and zero points
    const_bytes: int = 0  # other constants (MEAN's axes)
    scratch: tuple[int, ...] = ()  # tflm scratch buffers requested by this op, bytes
    live_bytes: int = 0
    alive: list[tuple[str, int]] = field(default_factory=list)

    @property
    def flash_bytes(self) -> int:
        """What this op keeps in Flash: weights + biases + quantization parameters + other constants."""
        return self.weight_bytes + self.bias_bytes + self.quant_bytes + self.const_bytes


@dataclass
class Buffer:
    """A TFLM arena buffer: a tensor (or a scratch buffer), its aligned size, lifetime and planned offset."""

    name: str
    size: int  # rounded up to 16
    first: int
    last: int
    offset: int = 0


@dataclass
class PatchPlan:
    """Patch-based inference of the blocks up to ``until``: the peak inside the patch stage, the MACs of the
    overlapping regions computed again, and the region each patch needs of each tensor."""

    grid: tuple[int, int]
    until: str
    peak_bytes: int
    peak_step: str
    peak_patch: tuple[int, int]
    alive: list[tuple[str, int]]
    stage_macs: int  # the stage's MACs computed once, layer by layer
    patch_macs: int  # summed over the patches
    output_bytes: int  # the stage output, allocated whole

    @property
    def recomputed_macs(self) -> int:
        """MACs computed more than once because the patches' receptive fields overlap."""
        return self.patch_macs - self.stage_macs


@dataclass
class Deployment:
    """The int8 deployment of a network on a runtime: steps with their live bytes, the peak, Flash."""

    name: str
    runtime: str
    steps: list[Step]
    peak_bytes: int  # tinyengine: peak SRAM; tflm: the planned arena
    peak_step: str
    alive: list[tuple[str, int]]
    include_input: bool = True
    buffers: list[Buffer] = field(default_factory=list)  # tflm plan
    patch: PatchPlan | None = None
    layer_peak_bytes: int = 0  # tinyengine with patches: the per-layer peak without them
    arena_observable: bool = True  # False for onnxruntime: peak_bytes and live bytes are not figures (0)

    def flash(self) -> dict[str, int]:
        """Flash bytes by kind and in total."""
        out = {
            "weight_bytes": sum(s.weight_bytes for s in self.steps),
            "bias_bytes": sum(s.bias_bytes for s in self.steps),
            "quant_bytes": sum(s.quant_bytes for s in self.steps),
            "const_bytes": sum(s.const_bytes for s in self.steps),
        }
        out["flash_bytes"] = sum(out.values())
        return out


def _int(x: object, what: str) -> int:
    if type(x) is not int:
        raise UsageError(f"deploy needs numbers ({what}): bind the spec's symbols with --set")
    return x


def _check(report: Report, runtime: str, dtype: str) -> None:
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    if dtype != "int8":
        raise UsageError(f"deploy models int8 graphs only (got dtype {dtype!r})")
    if report.symbolic:
        raise UsageError("deploy needs numbers: bind the spec's symbols with --set")
    if any(r.times != 1 for r in report.rows):
        raise UsageError("deploy needs numbers: bind the spec's symbols with --set")
    graph = next((r for r in report.rows if r.op.graph is not None), None)
    if graph is not None:
        node = graph.op.graph.node  # type: ignore[union-attr]
        name = f"node {node.id!r}" if node.id is not None else "its first node"
        raise UsageError(
            f"deploy does not model graph layers: layer {graph.layer} is one ({name}, {graph.op.name}); the int8 "
            "lowering knows the block kinds' ops only"
        )


def _label(r: Row, names: str) -> str:
    return f"{r.layer}.{r.repeat} {r.stage} {names}"


def _is_depthwise(r: Row) -> bool:
    g = r.op.attrs.get("groups", 1)
    return r.op.category == "conv" and g != 1 and g == r.op.input[0] and r.op.output[0] == r.op.input[0]


def _conv_flash(r: Row, runtime: str) -> tuple[int, int, int]:
    """(weight, bias, quantization) bytes of a conv or linear row as the runtime stores it."""
    cout = _int(r.op.output[0], "channels")
    params = _int(r.costs["params"], "params")
    weights = params - (cout if r.op.bias else 0)
    bias = 4 * cout
    if runtime == "tinyengine":
        return weights, bias, (TINYENGINE_CHANNEL_BYTES - 4) * cout
    channels = 1 if r.op.category == "linear" else cout
    return weights, bias, 2 * TFLM_QUANT_BYTES * channels


def lower(report: Report, runtime: str) -> list[Step]:
    """The report's rows as the ops of the deployed int8 graph (see the module docstring)."""
    rows = [r for r in report.rows]
    alias: dict[int, int] = {}
    readers: dict[int, int] = {}
    for r in rows:
        for t in r.inputs:
            readers[t] = readers.get(t, 0) + 1

    def src(t: int) -> int:
        return alias.get(t, t)

    steps: list[Step] = []
    i = 0
    while i < len(rows):
        r = rows[i]
        cat = r.op.category
        bid = f"{r.layer}.{r.repeat}"
        reads = tuple(dict.fromkeys(src(t) for t in r.inputs))
        shape = tuple(_int(x, "shape") for x in r.op.output)
        if cat == "dropout":
            alias[r.tensor] = reads[0]
            i += 1
            continue
        if cat in ("conv", "linear"):
            group = [r]
            j = i + 1
            # the norm folds into the conv; ReLU/ReLU6 is the requantization clamp
            while j < len(rows) and rows[j].block == r.block and rows[j].inputs == (group[-1].tensor,):
                nxt = rows[j]
                if readers.get(group[-1].tensor, 0) != 1:
                    break
                folds = nxt.op.category == "norm" and nxt.op.folds and all(g.op.category != "act" for g in group)
                clamps = nxt.op.category == "act" and group[-1].op.category != "act"
                clamps = clamps and (nxt.op.name in FUSED_ACTS or (runtime == "tflm" and nxt.op.name == "hardsigmoid"))
                if not (folds or clamps):
                    break
                group.append(nxt)
                j += 1
            w, b, q = _conv_flash(r, runtime)
            if runtime == "tflm":
                names = (
                    "FULLY_CONNECTED" if cat == "linear" else ("DEPTHWISE_CONV_2D" if _is_depthwise(r) else "CONV_2D")
                )
                if r.op.attrs.get("groups", 1) not in (1, r.op.input[0]):
                    raise UsageError(f"{_label(r, r.op.name)}: a grouped conv is not one TFLite op (not modelled)")
            else:
                names = "+".join(g.op.name for g in group)
            last = group[-1]
            # hardsigmoid = relu6(x + 3) / 6: the + 3 goes into the bias, relu6 is the clamp, / 6 a MUL by an
            # int8 scalar constant (1 B) writing a tensor of its own
            hsig = last.op.name == "hardsigmoid"
            steps.append(
                Step(
                    _label(r, names),
                    bid,
                    r.block,
                    tuple(g.op.name for g in group),
                    reads,
                    -last.tensor if hsig else last.tensor,
                    tuple(_int(x, "shape") for x in last.op.output),
                    macs=_int(r.costs["macs"], "macs"),
                    weight_bytes=w,
                    bias_bytes=b,
                    quant_bytes=q,
                    depthwise=_is_depthwise(r),
                    geometry=_geometry(r),
                )
            )
            if hsig:
                shape = tuple(_int(x, "shape") for x in last.op.output)
                steps.append(
                    Step(
                        _label(last, "MUL"), bid, r.block, ("MUL",), (-last.tensor,), last.tensor, shape, const_bytes=1
                    )
                )
            i = j
            continue
        if cat == "norm":
            raise UsageError(f"{_label(r, r.op.name)}: a norm that does not fold into a conv before it (not modelled)")
        if cat == "act":
            if runtime == "tflm":
                if r.op.name not in TFLM_ACTS:
                    raise UsageError(f"{_label(r, r.op.name)}: no TFLite int8 op modelled for {r.op.name}")
                kinds = TFLM_ACTS[r.op.name]
                if len(kinds) == 2:  # x·σ(x): LOGISTIC writes σ(x), MUL writes the product
                    sig = -r.tensor  # a tensor id of its own (ids of rows are positive)
                    steps.append(Step(_label(r, kinds[0]), bid, r.block, (kinds[0],), reads, sig, shape))
                    steps.append(Step(_label(r, kinds[1]), bid, r.block, (kinds[1],), (reads[0], sig), r.tensor, shape))
                else:
                    steps.append(Step(_label(r, kinds[0]), bid, r.block, kinds, reads, r.tensor, shape))
            else:
                steps.append(Step(_label(r, r.op.name), bid, r.block, (r.op.name,), reads, r.tensor, shape))
            i += 1
            continue
        if cat in ("add", "mul"):
            name = ("ADD" if cat == "add" else "MUL") if runtime == "tflm" else r.op.name
            steps.append(Step(_label(r, name), bid, r.block, (r.op.name,), reads, r.tensor, shape))
            i += 1
            continue
        if cat == "pool":
            whole = all(x == 1 for x in shape[1:])
            if runtime == "tflm":
                if whole and r.op.name == "avgpool":
                    rank = 4
                    scratch = (4 * shape[0], 4 * rank, 4 * 2)
                    steps.append(
                        Step(
                            _label(r, "MEAN"),
                            bid,
                            r.block,
                            ("MEAN",),
                            reads,
                            r.tensor,
                            shape,
                            const_bytes=8,
                            scratch=scratch,
                        )
                    )
                else:
                    name = "AVERAGE_POOL_2D" if r.op.name == "avgpool" else "MAX_POOL_2D"
                    steps.append(Step(_label(r, name), bid, r.block, (name,), reads, r.tensor, shape))
            else:
                steps.append(Step(_label(r, r.op.name), bid, r.block, (r.op.name,), reads, r.tensor, shape))
            i += 1
            continue
        raise UsageError(f"{_label(r, r.op.name)}: op category {cat!r} is not modelled for deployment")
    return steps


def _fuse_residual(steps: list[Step]) -> list[Step]:
    """TinyEngine: a residual add right after the conv that makes one of its operands (and that nothing
    else reads) is done by that conv, which writes the sum over the other operand (the shortcut)."""
    readers: dict[int, int] = {}
    for s in steps:
        for t in s.reads:
            readers[t] = readers.get(t, 0) + 1
    out: list[Step] = []
    for s in steps:
        prev = out[-1] if out else None
        if (
            s.ops == ("add",)
            and prev is not None
            and len(s.reads) == 2
            and prev.writes in s.reads
            and readers[prev.writes] == 1
            and prev.block == s.block
            and prev.ops[0] == "conv2d"
            and prev.shape == s.shape
        ):
            shortcut = s.reads[0] if s.reads[1] == prev.writes else s.reads[1]
            reads = tuple(dict.fromkeys((*prev.reads, shortcut)))
            out[-1] = replace(prev, label=prev.label + "+add", ops=(*prev.ops, "add"), reads=reads, writes=s.writes)
            out[-1].inplace = shortcut
        else:
            out.append(s)
    return out


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for x in shape:
        n *= x
    return n


def tensor_bytes(report: Report, steps: list[Step]) -> dict[int, int]:
    """int8 bytes of every tensor: its elements (batch included)."""
    sizes = {0: _int(report.batch, "batch") * _elements(tuple(_int(x, "input") for x in report.input))}
    for s in steps:
        sizes[s.writes] = _int(report.batch, "batch") * _elements(s.shape)
    return sizes


def _names(report: Report, steps: list[Step]) -> dict[int, str]:
    out = {0: "input"}
    for s in steps:
        out[s.writes] = s.label
    return out


def _mark_inplace(steps: list[Step]) -> None:
    """TinyEngine's in-place ops: a depthwise conv, an elementwise op, over an input read by no later op."""
    last: dict[int, int] = {}
    for i, s in enumerate(steps):
        for t in s.reads:
            last[t] = i
    for i, s in enumerate(steps):
        if s.inplace is not None:
            if last.get(s.inplace, -1) != i:
                s.inplace = None  # the shortcut is read again later: no overwrite
            continue
        if not s.reads or last.get(s.reads[0], -1) != i:
            continue
        if s.depthwise:
            s.inplace = s.reads[0]
        elif s.ops[0] == "conv2d":
            continue
        elif s.ops[0] in ("mul", "add") or (len(s.ops) == 1 and s.ops[0] not in ("avgpool", "maxpool", "linear")):
            s.inplace = s.reads[0]


def live_timeline(
    steps: list[Step], sizes: dict[int, int], names: dict[int, str], first: int = 0, keep: frozenset[int] = frozenset()
) -> None:
    """Fill each step's live bytes and alive list (TinyEngine's rules): its inputs, its output (over its
    in-place input: the larger of the two), and every tensor written before it and read after it; the
    tensors in ``keep`` (allocated whole elsewhere) are left out."""
    last: dict[int, int] = {}
    for i, s in enumerate(steps):
        for t in s.reads:
            last[t] = i
    written = {0} | {s.writes for s in steps[:first]}
    for i, s in enumerate(steps):
        if i < first:
            continue
        alive = ({t for t in written if last.get(t, -1) > i} | set(s.reads)) - keep
        alive.discard(s.writes)
        parts: list[tuple[str, int]] = []
        for t in sorted(alive, key=lambda t: (t != 0, abs(t))):
            if t == s.inplace and s.writes not in keep:
                continue
            parts.append((names[t], sizes[t]))
        if s.inplace is not None and s.writes not in keep:
            parts.append((f"{names[s.writes]} over {names[s.inplace]}", max(sizes[s.writes], sizes[s.inplace])))
        elif s.writes not in keep:
            parts.append((names[s.writes], sizes[s.writes]))
        s.alive = parts
        s.live_bytes = sum(b for _, b in parts)
        written.add(s.writes)


def _geometry(r: Row) -> tuple[int, int] | None:
    """(kernel, stride) of a conv row whose kernel is odd and square and whose padding is k//2, else None."""
    if r.op.category != "conv":
        return None
    k = r.op.attrs.get("kernel", 1)
    st = r.op.attrs.get("stride", 1)
    if not (type(k) is int and type(st) is int) or "kernel_w" in r.op.attrs or k % 2 == 0:
        return None
    h_in, h_out = r.op.input[1], r.op.output[1]
    w_in, w_out = r.op.input[2], r.op.output[2]
    if not all(type(x) is int for x in (h_in, h_out, w_in, w_out)):
        return None
    if h_out != (h_in + 2 * (k // 2) - k) // st + 1 or w_out != (w_in + 2 * (k // 2) - k) // st + 1:
        return None
    return k, st


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """``n`` rows in ``parts`` patches: patch i is rows [i·n // parts, (i + 1)·n // parts − 1]."""
    if parts > n:
        raise UsageError(f"--patch: {parts} patches along an axis of {n} pixels")
    return [(i * n // parts, (i + 1) * n // parts - 1) for i in range(parts)]


def patch_plan(
    report: Report,
    steps: list[Step],
    sizes: dict[int, int],
    names: dict[int, str],
    grid: tuple[int, int],
    until: str,
    include_input: bool,
) -> tuple[PatchPlan, int]:
    """Patch-based inference of the steps up to the last step of block ``until``; returns the plan and how
    many steps it covers."""
    ends = [i for i, s in enumerate(steps) if s.block == until]
    if not ends:
        known = ", ".join(dict.fromkeys(s.block for s in steps))
        raise UsageError(f"--patch-until {until!r}: no such block; blocks: {known}")
    n = ends[-1] + 1
    stage = steps[:n]
    out_t = stage[-1].writes
    for s in steps[n:]:
        inner = [t for t in s.reads if t != out_t and (t == 0 or any(p.writes == t for p in stage))]
        if inner:
            raise UsageError(f"--patch-until {until}: {s.label} reads {names[inner[0]]} from inside the patch stage")
    shapes: dict[int, tuple[int, ...]] = {0: tuple(_int(x, "input") for x in report.input)}
    for s in stage:
        if s.ops[0] in ("avgpool", "maxpool", "linear") or (len(s.shape) != 3):
            raise UsageError(f"--patch-until {until}: {s.label} is not a spatial op; patches end before it")
        shapes[s.writes] = s.shape
    geometry: dict[int, tuple[int, int]] = {}
    for s in stage:
        if s.ops[0] == "conv2d":
            if s.geometry is None:
                raise UsageError(f"{s.label}: patch-based inference needs odd square kernels with padding k//2")
            geometry[s.writes] = s.geometry
        elif any(shapes[t][1:] != s.shape[1:] for t in s.reads):
            raise UsageError(f"{s.label}: patch-based inference needs same-size operands (an SE gate is global)")
    batch = _int(report.batch, "batch")
    oh, ow = shapes[out_t][1], shapes[out_t][2]
    rows_p, cols_p = _split(oh, grid[0]), _split(ow, grid[1])
    stage_macs = sum(s.macs for s in stage)
    best = (-1, "", (0, 0), [])  # type: tuple[int, str, tuple[int, int], list[tuple[str, int]]]
    patch_macs = 0
    full_out = sizes[out_t]
    for pi, rr in enumerate(rows_p):
        for pj, cc in enumerate(cols_p):
            region: dict[int, tuple[tuple[int, int], tuple[int, int]]] = {out_t: (rr, cc)}
            for s in reversed(stage):
                if s.writes not in region:
                    raise UsageError(f"--patch-until {until}: {s.label} does not lead to the patch stage's output")
                (a, b), (c, d) = region[s.writes]
                k, st = geometry.get(s.writes, (1, 1))
                p = k // 2
                for t in s.reads:
                    h, w = shapes[t][1], shapes[t][2]
                    need = (
                        (max(a * st - p, 0), min(b * st - p + k - 1, h - 1)),
                        (
                            max(c * st - p, 0),
                            min(d * st - p + k - 1, w - 1),
                        ),
                    )
                    if t in region:
                        (a0, b0), (c0, d0) = region[t]
                        need = (min(a0, need[0][0]), max(b0, need[0][1])), (min(c0, need[1][0]), max(d0, need[1][1]))
                    region[t] = need
            psizes = dict(sizes)
            for t, ((a, b), (c, d)) in region.items():
                psizes[t] = batch * shapes[t][0] * (b - a + 1) * (d - c + 1)
            if not include_input:
                psizes[0] = 0
            for s in stage:
                (a, b), (c, d) = region[s.writes]
                patch_macs += s.macs * (b - a + 1) * (d - c + 1) // (s.shape[1] * s.shape[2])
            psizes[out_t] = full_out
            patched = [Step(s.label, s.block, s.index, s.ops, s.reads, s.writes, s.shape, s.inplace) for s in stage]
            # the stage output is the whole buffer the patches are written into: counted once, below
            live_timeline(patched, psizes, names, keep=frozenset({out_t}))
            for s in patched:
                total = s.live_bytes + full_out
                if total > best[0]:
                    best = (total, s.label, (pi, pj), [*s.alive, (f"{names[out_t]} (whole)", full_out)])
    plan = PatchPlan(grid, until, best[0], best[1], best[2], best[3], stage_macs, patch_macs, full_out)
    return plan, n


def tflm_plan(steps: list[Step], sizes: dict[int, int], names: dict[int, str]) -> list[Buffer]:
    """TFLM's lifetimes and GreedyMemoryPlanner's offsets (greedy_memory_planner.cc)."""
    n = len(steps)
    first: dict[int, int] = {0: 0}
    last: dict[int, int] = {0: 0}
    order = [0]
    for i, s in enumerate(steps):
        time = i + 1
        if s.writes not in first:
            first[s.writes] = time
            order.append(s.writes)
        for t in s.reads:
            last[t] = time
        last[s.writes] = time
    last[steps[-1].writes] = n  # the model output lives to the end
    buffers = [Buffer(names[t], -(-sizes[t] // ALIGN) * ALIGN, first[t], last[t]) for t in order if sizes[t]]
    for i, s in enumerate(steps):
        for k, b in enumerate(s.scratch):
            buffers.append(Buffer(f"{s.label} scratch {k}", -(-b // ALIGN) * ALIGN, i + 1, i + 1))
    place(buffers)
    return buffers


def place(buffers: list[Buffer]) -> None:
    """GreedyMemoryPlanner: set each buffer's offset, largest first, at the lowest gap that fits among the
    buffers alive at the same time."""
    # CalculateOffsetsIfNeeded fills its list from the tail (the last buffer added first), then sorts it by
    # size, largest first, with a bubble sort that swaps only strictly smaller neighbours: a stable sort, so
    # buffers of equal size are placed in the reverse of the order they were added
    ranked = sorted(reversed(range(len(buffers))), key=lambda k: -buffers[k].size)
    placed: list[Buffer] = []  # by offset; a new one goes after those with an equal offset
    for rank, k in enumerate(ranked):
        want = buffers[k]
        offset = 0
        if rank:
            prior: Buffer | None = None
            for nxt in [e for e in placed if not (e.first > want.last or want.first > e.last)] + [None]:
                if prior is not None:
                    offset = max(offset, prior.offset + prior.size)
                if nxt is None or nxt.offset - offset >= want.size:
                    break
                prior = nxt
        want.offset = offset
        at = len(placed)
        for j, e in enumerate(placed):
            if e.offset > offset:
                at = j
                break
        placed.insert(at, want)


LITERT_ALIGN = 64  # TFLite's kDefaultTensorAlignment: every arena tensor starts at a multiple of 64
LITERT_INPLACE = ("ADD", "MUL")  # kernels whose output may take over an input's buffer (inplace_operator)


def litert_plan(steps: list[Step], sizes: dict[int, int], names: dict[int, str]) -> list[Buffer]:
    """TFLite's ArenaPlanner over the int8 graph run by LiteRT's built-in kernels (arena_planner.cc,
    simple_memory_arena.cc): every non-constant tensor at its exact size, alive from the node that writes it
    to the last node that reads it (node i is op i; the model input from node 0 and the model output to the
    end, never freed); a kernel's temporaries during its node: CONV_2D's im2col (batch·H_out·W_out·C_in·k²
    int8 bytes, unless the conv is 1×1 with stride 1) and MEAN's three (int32 per input dimension, per axis,
    per output element: 16, 8, 4·C B). Placement: the model input first, then by size, largest first (ties
    by the node that allocates them, then by tensor index: the converter's order, temporaries after), each
    at the best-fitting gap (the smallest one that is large enough) among the tensors alive at the same
    time, every offset a multiple of 64; the arena is the highest end."""
    n = len(steps)
    never = n  # TFLite's kNodeNotAssigned: never freed
    readers: dict[int, int] = {}
    for s in steps:
        for t in s.reads:
            readers[t] = readers.get(t, 0) + 1
    output = steps[-1].writes
    shared: dict[int, int] = {}  # an in-place op's output → the tensor whose buffer it takes over
    for s in steps:
        if s.label.rsplit(" ", 1)[-1] in LITERT_INPLACE:
            for t in s.reads:
                if t != 0 and readers[t] == 1 and sizes[t] == sizes[s.writes] and s.writes != output:
                    shared[s.writes] = shared.get(t, t)
                    s.inplace = t
                    break
    first: dict[int, int] = {0: 0}
    last: dict[int, int] = {0: never}
    order = [0]
    for i, s in enumerate(steps):
        w = shared.get(s.writes, s.writes)
        if w not in first:
            first[w] = i
            last[w] = i
            order.append(w)
        last[w] = max(last[w], i)
        for t in s.reads:
            t = shared.get(t, t)
            if t != 0:
                last[t] = max(last[t], i)
    last[output] = never
    buffers = [Buffer(names[t], sizes[t], first[t], last[t]) for t in order]
    for i, s in enumerate(steps):
        kind = s.label.rsplit(" ", 1)[-1]
        temps: tuple[int, ...] = ()
        if kind == "CONV_2D":
            if s.geometry is None:
                raise UsageError(f"{s.label}: LiteRT's im2col is modelled for odd square kernels with padding k//2")
            k, st = s.geometry
            if (k, st) != (1, 1):
                temps = (s.macs // s.shape[0],)  # MACs = C_out · (batch·H_out·W_out·C_in·k²)
        elif kind == "MEAN":
            temps = (16, 8, 4 * s.shape[0])
        elif kind not in ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "HARD_SWISH", "LOGISTIC", "RELU",
                          "RELU6"):  # fmt: skip
            raise UsageError(f"{s.label}: LiteRT's temporaries of {kind} are not modelled")
        for k, b in enumerate(temps):
            buffers.append(Buffer(f"{s.label} temporary {k}", b, i, i))
    pinned = [b for b in buffers if b.first == 0 and b.last == never]
    rest = sorted((b for b in buffers if not (b.first == 0 and b.last == never)), key=lambda b: (-b.size, b.first))
    placed: list[Buffer] = []  # by offset; a new one goes after those with an equal offset
    for want in pinned + rest:
        best, best_fit, current = -1, -1, 0
        for e in placed:
            if e.last < want.first or e.first > want.last:
                continue
            aligned = -(-current // LITERT_ALIGN) * LITERT_ALIGN
            if aligned + want.size <= e.offset and (best_fit < 0 or e.offset - aligned < best_fit):
                best, best_fit = aligned, e.offset - current
            current = max(current, e.offset + e.size)
            if best_fit == 0:
                break
        want.offset = best if best >= 0 else -(-current // LITERT_ALIGN) * LITERT_ALIGN
        at = len(placed)
        for j, e in enumerate(placed):
            if e.offset > want.offset:
                at = j
                break
        placed.insert(at, want)
    return buffers


def deploy(
    report: Report,
    runtime: str = "tinyengine",
    dtype: str = "int8",
    include_input: bool = True,
    patch: tuple[int, int] | None = None,
    patch_until: str | None = None,
) -> Deployment:
    """Peak SRAM (tinyengine) or planned arena (tflm), Flash and the live-tensor timeline of the int8 graph."""
    _check(report, runtime, dtype)
    if (patch is None) != (patch_until is None):
        raise UsageError("--patch and --patch-until go together")
    if patch is not None and runtime != "tinyengine":
        raise UsageError("patch-based inference is modelled for --runtime tinyengine")
    if not include_input and runtime != "tinyengine":
        raise UsageError(
            "--no-input is a tinyengine rule: TFLM and LiteRT always allocate the model input in their arena"
        )
    if runtime == "onnxruntime":
        return _onnxruntime(report)
    steps = lower(report, "tflm" if runtime == "litert" else runtime)  # LiteRT runs the same .tflite graph
    if not steps:
        raise UsageError("deploy: the network has no ops")
    sizes = tensor_bytes(report, steps)
    names = _names(report, steps)
    if runtime in ("tflm", "litert"):
        seen: set[str] = set()
        for s in steps:  # MEAN's axes are always [1, 2], hardsigmoid's 1/6 always the same int8: the converter
            if s.const_bytes:  # stores identical constant buffers once
                kind = s.label.split(" ")[-1]
                s.const_bytes = 0 if kind in seen else s.const_bytes
                seen.add(kind)
        buffers = tflm_plan(steps, sizes, names) if runtime == "tflm" else litert_plan(steps, sizes, names)
        for i, s in enumerate(steps):
            time = i + 1 if runtime == "tflm" else i  # litert: op i is node i
            alive = [b for b in buffers if b.first <= time <= b.last]
            s.alive = [(b.name, b.size) for b in sorted(alive, key=lambda b: b.offset)]
            s.live_bytes = sum(b.size for b in alive)
        arena = max((b.offset + b.size for b in buffers), default=0)
        top = max(buffers, key=lambda b: (b.offset + b.size, -b.first))
        return Deployment(report.name or "spec", runtime, steps, arena, top.name, [], include_input, buffers)
    steps = _fuse_residual(steps)
    _mark_inplace(steps)
    if not include_input:
        sizes[0] = 0
    live_timeline(steps, sizes, names)
    layer_peak = max(steps, key=lambda s: s.live_bytes)
    plan = None
    best = layer_peak
    if patch is not None and patch_until is not None:
        plan, n = patch_plan(report, steps, sizes, names, patch, patch_until, include_input)
        rest = steps[n:]
        best_rest = max(rest, key=lambda s: s.live_bytes) if rest else None
        if best_rest is None or plan.peak_bytes >= best_rest.live_bytes:
            return Deployment(
                report.name or "spec", runtime, steps, plan.peak_bytes, f"{plan.peak_step} (patch {plan.peak_patch})",
                plan.alive, include_input, patch=plan, layer_peak_bytes=layer_peak.live_bytes
            )  # fmt: skip
        best = best_rest
    return Deployment(
        report.name or "spec",
        runtime,
        steps,
        best.live_bytes,
        best.label,
        best.alive,
        include_input,
        patch=plan,
        layer_peak_bytes=layer_peak.live_bytes,
    )


def _onnxruntime(report: Report) -> Deployment:
    """Flash of the QDQ int8 ONNX graph onnxruntime runs (tflite.qdq_onnx: torch's exporter, BatchNorm folded,
    onnxruntime's quantize_static, per-tensor int8): its initializers. Per conv / linear: int8 weights, an
    int32 bias per output channel (a conv with a folded BatchNorm or a bias; a linear with a bias), the
    weights' float32 scale and int8 zero point (5 B) and the bias's float32 scale and int32 zero point (8 B);
    per quantized activation tensor a float32 scale and an int8 zero point (5 B): the input and every op's
    output (a ReLU / ReLU6 after a conv is removed, its output is the conv's; SiLU is Sigmoid then Mul, two
    tensors; Flatten shares its input's). The arena is not observable: not modelled."""
    steps = lower(report, "tinyengine")
    if not steps:
        raise UsageError("deploy: the network has no ops")
    rows = report.rows
    index = {r.tensor: i for i, r in enumerate(rows)}
    for s in steps:
        if s.ops[0] in ("avgpool", "maxpool") and not all(x == 1 for x in s.shape[1:]):
            raise UsageError(f"{s.label}: a windowed pool's QDQ form is not modelled for onnxruntime")
        if s.ops[0] in ("conv2d", "linear"):
            at = index[s.writes] - (len(s.ops) - 1)  # the group's rows are consecutive: conv, norm, activation
            first = rows[at]
            has_bias = first.op.bias or any(g.op.category == "norm" for g in rows[at : at + len(s.ops)])
            cout = _int(first.op.output[0], "channels")
            s.bias_bytes = 4 * cout if has_bias else 0
            s.quant_bytes = ORT_QPARAM_BYTES + (ORT_BIAS_QPARAM_BYTES if has_bias else 0)
        else:
            s.bias_bytes = s.quant_bytes = 0
        tensors = 2 if s.ops[0] in ("silu", "swish") else 1
        s.quant_bytes += ORT_QPARAM_BYTES * tensors
    steps[0].quant_bytes += ORT_QPARAM_BYTES  # the model input's
    return Deployment(report.name or "spec", "onnxruntime", steps, 0, "", [], True, arena_observable=False)
