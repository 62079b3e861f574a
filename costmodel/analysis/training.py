"""Training costs of one step ``model(x).sum().backward()``: MACs, saved activations, memory, batch.

The step, in train mode, with ``x`` not requiring grad and every parameter requiring grad:

* **training MACs** = forward MACs + backward MACs. The backward of a conv or linear computes the
  weight gradient (its forward MACs again) and, when its input requires grad, the input gradient (its
  forward MACs again): the first conv, whose input is the network input, computes no input gradient.
  Attention's two matmuls (q·kᵀ, attention·v) compute the gradient of both operands: twice its forward
  MACs, all input gradients.
  Other ops' backward is elementwise (no MACs). Under ``convention="torch"`` the weight gradient of a
  conv with ``groups = g`` costs ``g ×`` its forward MACs: FlopCounterMode's ``convolution_backward``
  rule (torch/utils/flop_counter.py, torch 2.13–2.14) ignores groups there, so a depthwise conv's
  weight gradient is counted C times over.
* **training FLOPs** (costmodel convention) = forward FLOPs (the inference ``flops`` metric) + 2 per
  backward MAC + 1 per output element for each bias gradient + every other op's forward FLOPs once more
  for its backward (a stated convention: an elementwise backward costs what its forward does); for
  attention, its forward FLOPs (2 per MAC, scale and softmax) + 2 per forward MAC.
* **saved activations**: the distinct non-parameter tensors autograd saves in the forward pass,
  deduplicated by tensor, as ``torch.autograd.graph.saved_tensors_hooks`` sees them (each op's saving
  rule is ``Op.saves``, engine/ops.py). A tensor requires grad when an op with parameters, or one
  reading a tensor that requires grad, produced it; an op with neither records nothing and saves
  nothing. Float32 by default; under autocast (``bf16-mixed`` / ``fp16-mixed``) conv and linear write
  2-byte tensors, every other op keeps its input's dtype (an add of a float32 and a half tensor gives
  float32), conv and linear save a half copy of a float32 input and of their weight, BatchNorm's
  statistics stay float32.
* **memory of a step**: parameters (float32; under mixed precision they are the master weights),
  gradients (float32, one per parameter), optimizer state (``OPTIMIZERS``: 0, 1 or 2 × the parameters,
  float32), buffers, saved activations, and a transient term: twice the largest activation tensor.
  The stated model of the peak is the start of backward: everything saved is alive, and the backward of
  one op holds the gradient flowing in and the one it produces, neither larger than the largest
  activation; the same bound covers the live unsaved input and output of any forward op. BatchNorm's
  running statistics are buffers: they appear in the saved bytes (autograd is handed them) but count
  once in the peak.
* **gradient checkpointing** (``checkpoint="blocks"``, ``torch.utils.checkpoint`` around every block,
  non-reentrant): the forward keeps only each block's input; backward recomputes one block at a time,
  so the saved bytes are the distinct block inputs plus the largest one block saves (its input
  excluded). The recompute costs every block's forward MACs once more.

Everything here is affine in the batch N (per-sample sizes × N, plus C-sized statistics and the
weights), so the largest batch fitting a budget is solved exactly by ``largest_batch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.ops import ACTIVATION_SAVES, same_pad
from ..engine.report import Report, Row
from ..engine.symbols import Num, maximum, total
from ..errors import UsageError
from ..spec.fields import MAX_INT
from ..spec.network import layer_model
from .memory import tensor_elements

OPTIMIZERS: dict[str, int] = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""Optimizer state per parameter, in float32 values: plain SGD none, SGD with momentum its buffer,
Adam and AdamW the first and second moments."""

PRECISIONS: dict[str, int] = {"float32": 4, "bf16-mixed": 2, "fp16-mixed": 2}
"""Bytes of a tensor conv and linear write under each precision (mixed: torch.autocast)."""

DEVICES = ("cpu", "cuda")
CHECKPOINTS = ("none", "blocks")
TRAIN_CONVENTIONS = ("costmodel", "torch")
FLOAT32 = 4
INT64 = 8
RUNNING = "running mean/var"


def _choice(name: str, value: str, options: Any) -> None:
    if value not in options:
        raise UsageError(f"unknown {name} {value!r}; expected one of {', '.join(options)}")


def _nonzero(x: Num) -> bool:
    return not (isinstance(x, int) and x == 0)


@dataclass
class TrainRow:
    """One op of one block instance in a training step (values for one instance; ``row.times`` of them).

    ``grad_input_macs`` is 0 when the op's input needs no grad; ``saved`` lists what this op saves that
    no earlier op saved already, as ``(what, bytes)``; ``saved_bytes`` is their sum.
    """

    row: Row
    forward_macs: Num
    grad_input_macs: Num
    grad_weight_macs: Num
    backward_flops: Num
    input_grad: bool  # whether the op's input requires grad
    saved: list[tuple[str, Num]] = field(default_factory=list)

    @property
    def backward_macs(self) -> Num:
        """Input gradient + weight gradient MACs."""
        return self.grad_input_macs + self.grad_weight_macs

    @property
    def training_macs(self) -> Num:
        """Forward + backward MACs."""
        return self.forward_macs + self.backward_macs

    @property
    def saved_bytes(self) -> Num:
        """Bytes of the tensors this op saves first."""
        return total(b for _, b in self.saved)

    def total(self, name: str) -> Num:
        """``name`` (an attribute) times the instances the row stands for."""
        v = getattr(self, name)
        return v if self.row.times == 1 else self.row.times * v


@dataclass
class Training:
    """A training step's rows and totals (see the module docstring for every definition)."""

    report: Report
    rows: list[TrainRow]
    batch: Num
    optimizer: str
    precision: str
    checkpoint: str
    convention: str
    device: str
    saved_buffer_bytes: Num  # BatchNorm running mean/var among the saved bytes (they are buffers)
    checkpoint_saved_bytes: Num | None = None
    largest_tensor_bytes: Num = 0
    output_element_bytes: int = FLOAT32  # the network output's element size (2 under autocast after a linear)

    def sum(self, name: str) -> Num:
        """``name`` summed over every row, repeats included."""
        return total(t.total(name) for t in self.rows)

    @property
    def totals(self) -> dict[str, Num]:
        """Every figure of the step; memory figures in bytes. ``peak_bytes`` needs numbers."""
        params = self.report.totals["params"]
        forward = self.sum("forward_macs")
        recompute = forward if self.checkpoint == "blocks" else 0
        saved_all = self.sum("saved_bytes")
        saved = saved_all if self.checkpoint_saved_bytes is None else self.checkpoint_saved_bytes
        n_bn = total(r.times for r in self.report.rows if r.op.name == "batchnorm2d" or _tracked_bn(r))
        buffers = self.report.totals["buffers"]
        out: dict[str, Num] = {
            "forward_macs": forward,
            "grad_input_macs": self.sum("grad_input_macs"),
            "grad_weight_macs": self.sum("grad_weight_macs"),
            "backward_macs": self.sum("backward_macs"),
            "recompute_macs": recompute,
            "training_macs": self.sum("training_macs") + recompute,
            "training_flops": self.report.totals["flops"] + self.sum("backward_flops"),
            "params": params,
            "param_bytes": FLOAT32 * params,
            "grad_bytes": FLOAT32 * params,
            "optimizer_bytes": FLOAT32 * OPTIMIZERS[self.optimizer] * params,
            "buffer_bytes": FLOAT32 * (buffers - n_bn) + INT64 * n_bn,
            "saved_bytes_no_checkpoint": saved_all,
            "saved_bytes": saved,
            "transient_bytes": 2 * self.largest_tensor_bytes,
        }
        if self.convention == "torch":
            out.pop("training_flops")
        static = out["param_bytes"] + out["grad_bytes"] + out["optimizer_bytes"] + out["buffer_bytes"]
        out["static_bytes"] = static
        out["peak_bytes"] = static + saved - self.saved_buffer_bytes + out["transient_bytes"]
        return out


def _key_bytes(sizes: dict[int, Num], dtypes: dict[int, int], t: int) -> Num:
    return sizes[t] * dtypes[t]


def training(
    report: Report,
    optimizer: str = "sgd",
    precision: str = "float32",
    checkpoint: str = "none",
    convention: str = "costmodel",
    device: str = "cpu",
) -> Training:
    """The training step of ``report``'s network: every row's MACs and saved tensors, and the totals."""
    _choice("optimizer", optimizer, OPTIMIZERS)
    _choice("dtype", precision, PRECISIONS)
    _choice("checkpoint", checkpoint, CHECKPOINTS)
    _choice("convention", convention, TRAIN_CONVENTIONS)
    _choice("device", device, DEVICES)
    half = PRECISIONS[precision]
    mixed = precision != "float32"
    sizes = tensor_elements(report)
    for r in report.rows:  # cat(…)[:, :keep] is a view: what it keeps alive, and what is saved of it, is all of cat
        if r.op.name == "concat" and r.op.input[0] != r.op.output[0]:
            sizes[r.tensor] = sizes[r.tensor] // r.op.output[0] * r.op.input[0]
    grad: dict[int, bool] = {0: False}
    dtypes: dict[int, int] = {0: FLOAT32}
    seen: set[Any] = set()
    rows: list[TrainRow] = []
    largest: Num = sizes[0] * FLOAT32
    dropped = drop_path_blocks(report)
    tensors = None
    if any(r.op.graph is not None for r in report.rows):
        if mixed:
            raise UsageError("training memory of graph layers under autocast is not modelled yet")
        if checkpoint == "blocks":
            raise UsageError("--checkpoint blocks on graph layers is not modelled yet")
        from .graph_tensors import track

        tensors = track(report, "training memory")
    for i, r in enumerate(report.rows):
        op = r.op
        ins = r.inputs
        if op.graph is not None and tensors is not None:
            train_row = _graph_row(i, r, tensors, sizes, grad, dtypes, seen, report.batch, device, convention)
            largest = maximum(largest, sizes[r.tensor] * FLOAT32)
            rows.append(train_row)
            continue
        in_grad = any(grad[t] for t in ins)
        node = in_grad or _nonzero(r.costs["params"])
        grad[r.tensor] = node
        gemm = op.category in ("conv", "linear")
        dtypes[r.tensor] = half if gemm and mixed else max(dtypes[t] for t in ins)
        out_bytes = sizes[r.tensor] * dtypes[r.tensor]
        largest = maximum(largest, out_bytes)
        saved: list[tuple[str, Num]] = []

        def keep(key: Any, what: str, nbytes: Num, saved: list[tuple[str, Num]] = saved) -> None:
            if key not in seen:
                seen.add(key)
                saved.append((what, nbytes))

        def tensor(t: int, what: str, gemm: bool = gemm, i: int = i) -> None:
            if gemm and mixed and dtypes[t] == FLOAT32:  # autocast casts a float32 input: a new half tensor
                keep(("cast", i, t), f"{what} ({half}-byte copy)", sizes[t] * half)
            else:
                keep(t, what, _key_bytes(sizes, dtypes, t))

        if node:
            if op.saves is None:
                raise UsageError(f"training memory of the op {op.name!r} is not modelled yet (no saving rule)")
            for token in op.saves:
                if token == "input":
                    tensor(ins[0], "input")
                elif token == "inputs":
                    for j, t in enumerate(ins):
                        if any(grad[u] for k, u in enumerate(ins) if k != j):
                            tensor(t, f"input {j}")
                elif token == "output":
                    keep(r.tensor, "output", out_bytes)
                elif token in ("weight", "weight_t") and op.name == "expert_mix" and mixed:
                    raise UsageError("training memory of CondConv under autocast is not modelled yet")
                elif token in ("weight", "weight_t"):
                    if mixed and (token == "weight" or in_grad):
                        weights = r.costs["params"] - (op.output[0] if op.bias else 0)
                        keep(("weight", i), f"weight ({half}-byte copy)", weights * half)
                elif token == "padded":  # Conv2dSame: F.pad's copy, then the conv saves that (engine/ops.py SAVES)
                    width = half if mixed else dtypes[ins[0]]
                    keep(("padded", i), "padded input", _padded(op) * report.batch * width)
                elif token == "mixed":  # CondConv: the per-sample weights r @ experts (engine/ops.py SAVES)
                    if mixed:
                        raise UsageError("training memory of CondConv under autocast is not modelled yet")
                    per = op.attrs["mixed"]
                    keep(ins[1], "mixed weights", report.batch * per * FLOAT32)
                elif token == "moments":  # GroupNorm / LayerNorm2d: mean and 1/σ, float32 (engine/ops.py SAVES)
                    keep(("moments", i), "mean/rstd", 2 * report.batch * op.attrs["moments"] * FLOAT32)
                elif token == "stats":
                    c = op.input[0]
                    keep(("running", i), RUNNING, 2 * c * FLOAT32)
                    keep(("batch", i), "batch mean/invstd", 2 * c * FLOAT32)
                elif token == "rms":  # y = x · rsqrt(mean_c(x²) + ε); y · γ (engine/ops.py SAVES)
                    t = ins[0]
                    if in_grad:
                        tensor(t, "input")
                        keep(("rsqrt", i), "rsqrt(mean(x²) + ε)", sizes[t] // op.input[0] * dtypes[t])
                    keep(("normalized", i), "x · rsqrt(…)", sizes[t] * dtypes[t])
                elif token == "attention":  # multi-query, as matmuls (engine/ops.py SAVES)
                    if mixed:
                        raise UsageError("training memory of attention under autocast is not modelled yet")
                    a, per = op.attrs, report.batch * FLOAT32
                    heads, positions = a["heads"], op.output[1] * op.output[2]
                    keep(("scaled q", i), "q / √dk", per * heads * positions * a["key_dim"])
                    keep(("softmax", i), "softmax(q·kᵀ/√dk)", per * heads * positions * a["keys"])
                    if heads == 1:  # the matmuls read k and v as they are
                        tensor(ins[1], "input 1")
                        tensor(ins[2], "input 2")
                    else:  # broadcast to the heads: copies
                        keep(("k heads", i), "k broadcast to the heads", per * heads * a["key_dim"] * a["keys"])
                        keep(("v heads", i), "v broadcast to the heads", per * heads * a["keys"] * a["value_dim"])
                elif token == "mask":
                    t = ins[0]
                    per = dtypes[t] if device == "cpu" else 1
                    keep(("mask", i), "dropout mask" if device == "cuda" else "dropout noise", sizes[t] * per)
                else:  # pragma: no cover - tokens are fixed data
                    raise UsageError(f"unknown saving rule {token!r} of {op.name}")
            if r.block in dropped and op.name == "add" and r.stage == "residual":  # x · noise / keep, then + x
                keep(("drop path", i), "drop-path noise", report.batch * dtypes[ins[0]])
        attn = op.category == "attention"  # two matmuls, both operands of each needing grad
        fwd = r.costs["macs"] if gemm or attn else 0
        gi = fwd if gemm and in_grad else 2 * fwd if attn else 0
        gw: Num = fwd
        if gemm and convention == "torch" and op.category == "conv":
            # CondConv's mixed conv runs as one conv with groups N·g: FlopCounterMode multiplies by all of them
            gw = fwd * op.attrs.get("groups", 1) * (report.batch if op.variant == "cond" else 1)
        if not gemm:
            gw = 0
        bias_grad = r.costs["activations"] if gemm and op.bias else 0
        bflops = 2 * (gi + gw) + bias_grad if gemm else (r.costs["flops"] if node else 0)
        if attn:  # the matmuls' gradients (2 FLOPs per MAC) and the scale and softmax once more
            bflops = r.costs["flops"] + 2 * fwd
        rows.append(TrainRow(r, fwd, gi, gw, bflops, in_grad, saved))
    result = Training(
        report,
        rows,
        report.batch,
        optimizer,
        precision,
        checkpoint,
        convention,
        device,
        total(t.row.times * b for t in rows for what, b in t.saved if what == RUNNING),
        largest_tensor_bytes=largest,
        output_element_bytes=dtypes[report.rows[-1].tensor] if report.rows else FLOAT32,
    )
    if checkpoint == "blocks":
        result.checkpoint_saved_bytes, result.saved_buffer_bytes = _checkpointed(result, sizes, dtypes)
    return result


def _tracked_bn(r: Row) -> bool:
    """A graph batch_norm with its int64 num_batches_tracked (8 bytes, not 4)."""
    return r.op.graph is not None and r.op.name == "batch_norm" and bool(r.op.graph.node.get("tracked"))


GRAPH_SAVES = (
    *("linear", "conv", "layer_norm", "batch_norm", "softmax", "log_softmax", "matmul", "bmm", "sdpa"),
    *("add", "sub", "mul", "div", "avg_pool", "max_pool", "mean", "sum", "param", "buffer"),
)
"""The graph ops whose saved tensors are modelled (beside every activation of spec/names.py and the data-movement
ops, which save nothing); each measured with ``torch.autograd.graph.saved_tensors_hooks`` (torch 2.13, CPU)."""
_NOTHING = frozenset({"reshape", "flatten", "permute", "transpose", "expand", "select", "slice", "cat", "pad", "roll"})
_NOTHING |= frozenset({"repeat", "tile", "add", "sub", "mean", "sum"})


def _graph_row(
    i: int,
    r: Row,
    tensors: dict[int, Any],
    sizes: dict[int, Num],
    grad: dict[int, bool],
    dtypes: dict[int, int],
    seen: set[Any],
    batch: Num,
    device: str,
    convention: str,
) -> TrainRow:
    """One graph node of the step (float32): what it saves, by storage (a view saved keeps its whole base, as
    saved_tensors_hooks sees it; parameters are not activations), and its backward MACs. A node whose saving rule
    was not measured is refused in one line naming it."""
    from .graph_tensors import cpu_flash, view_strides

    op = r.op
    g = op.graph
    assert g is not None
    name, ins = op.name, r.inputs
    dtypes[r.tensor] = FLOAT32
    if op.category == "param":
        grad[r.tensor] = name == "param"
        return TrainRow(r, 0, 0, 0, 0, False, [])
    in_grad = any(grad[t] for t in ins)
    node = in_grad or _nonzero(r.costs["params"])
    grad[r.tensor] = node
    saved: list[tuple[str, Num]] = []
    label = f"node {g.node.id!r}" if g.node.id is not None else f"a {name} node"

    def refuse(why: str) -> UsageError:
        return UsageError(f"training memory of {label} ({name}) of layer {r.layer}: {why}")

    def keep(key: Any, what: str, nbytes: Num) -> None:
        if key not in seen:
            seen.add(key)
            saved.append((what, nbytes))

    def tensor(t: int, what: str) -> None:  # the storage t lives in (a parameter's is not an activation)
        s = tensors[t].storage
        if tensors[s].weight == "buffer":  # a buffer is no parameter: saving it counts (float32 taken)
            keep(s, what, math.prod(tensors[s].shape) * FLOAT32)
        elif tensors[s].weight != "param":
            keep(s, what, sizes[s] * FLOAT32)

    def new(what: str, elements: Num, width: int = FLOAT32) -> None:
        keep((what, i), what, elements * width)

    def reshaped(t: int, shape: tuple[int, ...], old: tuple[int, ...], strides: tuple[int, ...], what: str) -> None:
        """torch saves ``t`` (seen as ``old`` with ``strides``) reshaped to ``shape``: its storage where that is a
        view, else a new copy."""
        if view_strides(old, strides, shape) is not None:
            tensor(t, what)
        else:
            new(f"{what} (copy)", math.prod(shape))

    if node and name not in _NOTHING:
        x = tensors[ins[0]]
        if name in ("linear", "conv"):
            if len(ins) > 1 and tensors[tensors[ins[1]].storage].weight != "param":
                raise refuse("its weight is an activation, not a parameter (not modelled)")
            if name == "linear" and len(x.shape) >= 3:  # matmul folds x to (−1, K): a view, or a copy
                reshaped(ins[0], (math.prod(x.shape[:-1]), x.shape[-1]), x.shape, x.strides, "input")
            else:
                tensor(ins[0], "input")
        elif name == "layer_norm":
            tensor(ins[0], "input")
            rows = math.prod(x.shape[: len(x.shape) - g.node.get("normalized")])
            new("mean/rstd", 2 * rows)
        elif name == "batch_norm":
            c = x.shape[1]
            tensor(ins[0], "input")
            keep(("running", i), RUNNING, 2 * c * FLOAT32)
            keep(("batch", i), "batch mean/invstd", 2 * c * FLOAT32)
        elif name in ACTIVATION_SAVES:
            for token in ACTIVATION_SAVES[name]:
                if token == "input":
                    tensor(ins[0], "input")
                else:
                    keep(tensors[r.tensor].storage, "output", sizes[r.tensor] * FLOAT32)
        elif name in ("softmax", "log_softmax"):
            keep(r.tensor, "output", sizes[r.tensor] * FLOAT32)
        elif name in ("mul", "div"):
            if len(ins) != 2:
                if name == "div" or len(ins) > 2:
                    raise refuse("a multiply of other than two tensors is not modelled")
            else:
                a, b = ins
                if name == "mul" or grad[b]:
                    if grad[b]:
                        tensor(a, "input 0")
                    if grad[a] or name == "div":
                        tensor(b, "input 1")
                elif grad[a]:
                    tensor(b, "input 1")
        elif name in ("avg_pool", "max_pool"):
            tensor(ins[0], "input")
            if name == "max_pool":
                new("max indices", math.prod(tensors[r.tensor].shape), INT64)
        elif name in ("matmul", "bmm"):
            _matmul_saves(r, tensors, grad, tensor, reshaped, refuse)
        elif name == "sdpa":
            if device != "cpu":
                raise refuse("scaled_dot_product_attention's saved tensors are modelled on the CPU only")
            q, k, v = (tensors[t] for t in ins[:3])
            if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
                raise refuse("q, k and v with broadcast batch dims are not modelled")
            if cpu_flash([q, k, v]):
                for j in range(len(ins)):  # the CPU flash kernel: q, k, v, the mask, its output and the log-sum-exp
                    tensor(ins[j], f"input {j}")
                keep(r.tensor, "output", sizes[r.tensor] * FLOAT32)
                new("logsumexp", math.prod(q.shape[:-1]))
            else:  # the math path: q·√s and k·√s (copies), softmax(q·kᵀ·s), v
                gq, gk, gv = (grad[t] for t in ins[:3])
                if gk:
                    new("q scaled", math.prod(q.shape))
                if gq:
                    new("k scaled", math.prod(k.shape))
                new("attention", math.prod(q.shape[:-1]) * k.shape[-2])
                if gq or gk:
                    tensor(ins[2], "input 2")
        elif name == "adaptive_avg_pool":
            if set(g.node.get("size")) != {1}:
                raise refuse("saved tensors of an adaptive pool to more than 1×1 were not measured")
        elif name not in GRAPH_SAVES:
            raise refuse("its saved tensors were not measured (not modelled)")
    fwd = r.costs["macs"]
    gi: Num = 0
    gw: Num = 0
    if name in ("conv", "linear"):
        gi = fwd if in_grad else 0
        gw = fwd
        if convention == "torch" and name == "conv":
            gw = fwd * op.attrs.get("groups", 1)
    elif name in ("matmul", "bmm", "einsum") and _nonzero(fwd):
        if len(ins) != 2:
            raise refuse("backward MACs of a one-operand einsum are not modelled")
        for t in ins:
            if grad[t]:
                if tensors[tensors[t].storage].weight == "param":
                    gw = gw + fwd
                else:
                    gi = gi + fwd
    elif name == "sdpa" and node:
        if not all(grad[t] for t in ins[:3]):
            raise refuse("backward MACs of attention with q, k or v needing no grad are not modelled")
        gi = 2 * fwd
    bias_grad = r.costs["activations"] if name in ("conv", "linear") and op.bias else 0
    if name == "sdpa":
        bflops = (r.costs["flops"] + 2 * fwd) if node else 0
    elif name in ("conv", "linear", "matmul", "bmm", "einsum") and _nonzero(fwd):
        bflops = 2 * (gi + gw) + bias_grad
    else:
        bflops = r.costs["flops"] if node else 0
    return TrainRow(r, fwd, gi, gw, bflops, in_grad, saved)


def _matmul_saves(
    r: Row, tensors: dict[int, Any], grad: dict[int, bool], tensor: Any, reshaped: Any, refuse: Any
) -> None:
    """torch.matmul / bmm: each operand is saved when the other needs grad — as torch hands it to mm / bmm: a
    (…, m, k) @ (k, n) folds a to (−1, k); batched operands are expanded to the broadcast batch and reshaped to
    (B, m, k) / (B, k, n), a view of their storage or a copy."""
    a_id, b_id = r.inputs
    a, b = tensors[a_id], tensors[b_id]
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise refuse("a 1-D operand (dot, mv) is not modelled")
    if r.op.name == "bmm" or (len(a.shape) == 2 and len(b.shape) == 2):
        if grad[b_id]:
            tensor(a_id, "input 0")
        if grad[a_id]:
            tensor(b_id, "input 1")
        return
    if len(b.shape) == 2:  # fold a to (−1, k) (torch folds whenever b needs grad)
        if grad[b_id]:
            reshaped(a_id, (math.prod(a.shape[:-1]), a.shape[-1]), a.shape, a.strides, "input 0")
        if grad[a_id]:
            tensor(b_id, "input 1")
        return
    if len(a.shape) == 2:
        raise refuse("a 2-D @ batched matmul (torch folds it transposed) is not modelled")
    rank = max(len(a.shape), len(b.shape)) - 2
    batch: list[int] = []
    for k in range(rank):
        sizes = [s.shape[len(s.shape) - 2 - rank + k] for s in (a, b) if len(s.shape) - 2 - rank + k >= 0]
        batch.append(max(sizes))
    flat = math.prod(batch)
    for t_id, t, other, inner in ((a_id, a, b_id, a.shape[-2:]), (b_id, b, a_id, b.shape[-2:])):
        if not grad[other]:
            continue
        lead = rank - (len(t.shape) - 2)
        strides = (
            tuple(
                0 if k < lead or (t.shape[k - lead] == 1 and batch[k] != 1) else t.strides[k - lead]
                for k in range(rank)
            )
            + t.strides[-2:]
        )
        reshaped(t_id, (flat, *inner), (*batch, *inner), strides, f"input {0 if t_id == a_id else 1}")


def drop_path_blocks(report: Report) -> set[int]:
    """The block instances (``Row.block``) whose residual branch is dropped in train mode under the spec's
    ``drop_path``: the blocks are the instances of layers with a ``residual`` field, in network order; block i has
    p_i = rate × i / B (linear: every block but the first, when rate > 0) or p_i = rate (constant)."""
    if report.drop_path is None or report.drop_path[0] <= 0:
        return set()
    counted = [b.index for b in report.blocks if _has_residual(b.kind)]
    return set(counted[1:] if report.drop_path[1] == "linear" else counted)


def _has_residual(kind: str) -> bool:
    model = layer_model(kind)
    return model is not None and "residual" in model.model_fields


def _padded(op: Any) -> Num:
    """Elements per sample of the padded input a Conv2dSame saves: C × (H + pad_h) × (W + pad_w)."""
    c, h, w = op.input
    a = op.attrs
    k, kw, s, d = a["kernel"], a.get("kernel_w", a["kernel"]), a["stride"], a.get("dilation", 1)
    if not all(isinstance(v, int) for v in (h, w, k, kw, s, d)):
        raise UsageError(
            f"training memory of the 'same'-padded conv {op.detail} (Conv2dSame) with a symbolic size or kernel "
            "is not modelled (its pad depends on the size modulo the stride)"
        )
    return c * (h + same_pad(h, s, k, d)) * (w + same_pad(w, s, kw, d))


def _checkpointed(tr: Training, sizes: dict[int, Num], dtypes: dict[int, int]) -> tuple[Num, Num]:
    """Saved bytes with every block checkpointed: the distinct block inputs (kept by the checkpoint), plus
    the largest that one block saves when it is recomputed in backward (its input excluded); and the
    running statistics among them (those of the block at the maximum, for the peak)."""
    inputs: dict[int, Num] = {}
    per_block: dict[int, list[TrainRow]] = {}
    first_read: dict[int, int] = {}
    for t in tr.rows:
        per_block.setdefault(t.row.block, []).append(t)
    for b, trs in per_block.items():
        produced = {t.row.tensor for t in trs}
        ext = [u for t in trs for u in t.row.inputs if u not in produced]
        src = ext[0] if ext else 0
        first_read.setdefault(src, b)
        if src not in inputs:
            inputs[src] = trs[0].row.times * sizes[src] * dtypes[src]
    kept = total(inputs.values())
    worst: Num = 0
    worst_running: Num = 0
    for trs in per_block.values():
        own = _block_saved(trs)
        if isinstance(own, int) and isinstance(worst, int):
            if own > worst:
                worst, worst_running = own, _block_saved(trs, RUNNING)
        else:
            worst = maximum(worst, own)
    return kept + worst, worst_running


def _block_saved(trs: list[TrainRow], only: str | None = None) -> Num:
    """What one block instance saves when recomputed alone, its input (kept by the checkpoint) excluded.

    The rows' first saves dedup within the block; a tensor an earlier block saved first is this block's
    input, which the checkpoint keeps anyway. ``only`` keeps just the entries of that name.
    """
    return total(
        b for t in trs for what, b in t.saved if not _is_block_input(t, what, trs) and (only is None or what == only)
    )


def _is_block_input(t: TrainRow, what: str, trs: list[TrainRow]) -> bool:
    produced = {x.row.tensor for x in trs}
    if not what.startswith("input"):
        return False
    if what.startswith("input") and "copy" in what:
        return False
    idx = 0 if what == "input" else int(what.split()[1])
    return t.row.inputs[idx] not in produced


def largest_batch(measure: Callable[[int], Num], budget: int) -> tuple[int, Num, Num]:
    """The largest batch N with ``measure(N) <= budget``, where ``measure`` is affine in N.

    From m(1) and m(2): slope b = m(2) − m(1) and m(N) = m(1) + (N − 1)·b, so N = 1 + floor((budget −
    m(1)) / b); the answer is then checked exactly: m(N) ≤ budget < m(N + 1). Returns (N, m(N), m(N + 1)).
    """
    m1, m2 = measure(1), measure(2)
    if not isinstance(m1, int) or not isinstance(m2, int):
        raise UsageError("--solve batch needs numbers: bind the spec's symbols with --set")
    if m1 > budget:
        raise UsageError(f"even batch 1 needs {m1:,} bytes, more than the budget of {budget:,}")
    slope = m2 - m1
    if slope <= 0:  # pragma: no cover - every network has an input that scales with N
        raise UsageError("the step's memory does not grow with the batch")
    n = 1 + (budget - m1) // slope
    if n + 1 > MAX_INT:  # the spec refuses such a batch: name the budget, which the user wrote
        raise UsageError(
            f"--memory {budget:,} bytes: the largest batch would be {n:,}, past what a spec's input.batch "
            f"allows (at most {MAX_INT:,}, and the batch above it is checked too); give a smaller budget"
        )
    at, above = measure(n), measure(n + 1)
    while at > budget:  # pragma: no cover - affine: the first guess is exact
        n -= 1
        at, above = measure(n), at
    while above <= budget:  # pragma: no cover
        n += 1
        at, above = above, measure(n + 1)
    return n, at, above


#: ``--memory`` is at most MAX_SIZE_CHARS characters and MAX_MEMORY = 2⁸⁰ bytes (1 YiB).
MAX_SIZE_CHARS = 40
MAX_MEMORY = 2**80
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})


def parse_bytes(text: str) -> int:
    """``24GiB`` → 25,769,803,776; ``16GB`` → 16·10⁹; plain digits are bytes. Decimal numbers allowed
    (``1.5GiB``), read exactly as decimals."""
    import re
    from fractions import Fraction

    if len(text) > MAX_SIZE_CHARS:  # before any conversion: a 5,000-digit integer is not converted
        raise UsageError(f"--memory: expected a size such as 24GiB, at most {MAX_SIZE_CHARS} characters")
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise UsageError(f"--memory {text!r}: expected a size such as 24GiB, 16GB or 80000000000")
    value = Fraction(m.group(1)) * _UNITS[m.group(2).upper()]
    if value < 1:
        raise UsageError(f"--memory {text!r}: the budget must be at least one byte")
    if value > MAX_MEMORY:
        raise UsageError(f"--memory {text!r}: the budget must be at most 2**80 bytes (1 YiB)")
    return int(value)
