"""Which graph tensors share storage: torch's views, followed at the spec's batch (memory and training on graphs).

A graph layer's data-movement nodes are views in torch where torch makes them views: ``permute``, ``transpose``,
``expand``, ``select`` and ``slice`` always; ``reshape`` and ``flatten`` when the input's strides allow it
(ATen's ``computeStride``, ported below), else a copy. Every other node writes a new contiguous tensor. The
analyses count storages, not tensors: a view keeps its base alive and saving it keeps the whole base
(``saved_tensors_hooks`` sees the storage). Parameters and buffers (``param`` / ``buffer`` nodes) are weights.

Strides depend on the batch: a dim of size 1 at batch 1 may stop a view at batch n. Each tensor carries the dim
that holds the batch (``bdim``, as the engine follows it: engine/graph_ops.py ``batch_position``; the batch is
that dim's outermost factor, as in Swin's ``(64·N, 7, 7, 96)`` windows). Where that is not known and the batch is
not 1, a view decision is refused in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..engine.report import Report, Row
from ..errors import UsageError

VIEW_OPS = frozenset({"reshape", "flatten", "permute", "transpose", "expand", "select", "slice"})
"""Graph ops whose output is a view of their input in torch (reshape and flatten only where the strides allow)."""


@dataclass(frozen=True)
class Tensor:
    """One tensor at the spec's batch: its storage (the id of the tensor that owns it), shape, element strides,
    the dim holding the batch (None: not batched, or not known), and whether it is a parameter or buffer."""

    storage: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    bdim: int | None
    weight: str = ""  # "param" / "buffer" for a param or buffer node's tensor

    @property
    def contiguous(self) -> bool:
        """torch's is_contiguous: strides of a C-contiguous layout (size-1 dims ignored)."""
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """C-contiguous element strides of ``shape``."""
    out: list[int] = []
    step = 1
    for size in reversed(shape):
        out.append(step)
        step *= max(size, 1)
    return tuple(reversed(out))


def view_strides(old: tuple[int, ...], strides: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...] | None:
    """The strides of ``old`` (with ``strides``) viewed as ``new``, or None where torch's ``view`` is impossible and
    ``reshape`` copies: ATen's ``computeStride`` (aten/src/ATen/TensorUtils.cpp)."""
    if not old:
        return contiguous_strides(new)
    numel = math.prod(old)
    if numel == 0:
        return contiguous_strides(new)
    out = [0] * len(new)
    view_d = len(new) - 1
    chunk_base_stride = strides[-1]
    tensor_numel = 1
    view_numel = 1
    for tensor_d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[tensor_d]
        if tensor_d == 0 or (old[tensor_d - 1] != 1 and strides[tensor_d - 1] != tensor_numel * chunk_base_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                out[view_d] = view_numel * chunk_base_stride
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = strides[tensor_d - 1]
                tensor_numel = 1
                view_numel = 1
    if view_d != -1:
        return None
    return tuple(out)


def _at_batch(shape: tuple[int, ...], bdim: int | None, n: int) -> tuple[int, ...]:
    if bdim is None or n == 1:
        return shape
    return tuple(s * n if k == bdim else s for k, s in enumerate(shape))


def _refuse(row: Row, what: str, why: str) -> UsageError:
    node = row.op.graph.node if row.op.graph is not None else None
    name = f"node {node.id!r}" if node is not None and node.id is not None else "a node"
    return UsageError(f"{what} of {name} ({row.op.name}) of layer {row.layer}: {why}")


def track(report: Report, what: str) -> dict[int, Tensor]:
    """Every tensor of ``report`` at its batch: storage, shape, strides, batch dim (``what`` names the analysis in
    a refusal). Numbers only (a symbolic spec is refused before)."""
    n = report.batch
    if not isinstance(n, int):
        raise UsageError(f"{what} needs numbers: bind the spec's symbols with --set")
    shape0 = (n, *report.input)
    out: dict[int, Tensor] = {0: Tensor(0, shape0, contiguous_strides(shape0), 0)}
    for r in report.rows:
        g = r.op.graph
        if g is None:  # a block kind's op: a new contiguous (N, …) tensor
            shape = (n, *r.op.output)
            out[r.tensor] = Tensor(r.tensor, shape, contiguous_strides(shape), 0)
            continue
        out[r.tensor] = _node_tensor(r, [out[t] for t in r.inputs], n, what)
    return out


def _node_tensor(r: Row, ins: list[Tensor], n: int, what: str) -> Tensor:
    op, g = r.op, r.op.graph
    assert g is not None
    name = op.name
    shape1 = tuple(int(s) for s in op.output)
    if op.category == "param":
        return Tensor(r.tensor, shape1, contiguous_strides(shape1), None, "param" if name == "param" else "buffer")
    if not op.batched:
        return Tensor(r.tensor, shape1, contiguous_strides(shape1), None)
    x = ins[0] if ins else None
    if name in VIEW_OPS and x is not None:
        return _view(r, x, shape1, n, what)
    bdim = _out_bdim(r)
    shape = _at_batch(shape1, bdim, n)
    if name == "sdpa" and cpu_flash(ins):  # the CPU flash kernel writes (B, Sq, h, Dv) and returns its transpose
        b, h, sq, dv = shape
        return Tensor(r.tensor, shape, (sq * h * dv, dv, h * dv, 1), bdim)
    return Tensor(r.tensor, shape, contiguous_strides(shape), bdim)


def cpu_flash(ins: list[Tensor]) -> bool:
    """Whether F.scaled_dot_product_attention runs torch's CPU flash kernel (float32, torch 2.13–2.14, measured):
    q, k, v of rank 4 with one batch shape and one head size (a mask or not); else it runs the math path."""
    q, k, v = ins[:3]
    same_batch = q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
    return len(q.shape) == 4 and same_batch and q.shape[-1] == k.shape[-1] == v.shape[-1]


def _out_bdim(r: Row) -> int | None:
    """Where the node's output holds the batch, as the engine follows it (engine/graph_ops.py batch_position;
    None: unbatched, or folded with other dims)."""
    g = r.op.graph
    assert g is not None
    return g.out_dim if g.out_dim is not None and g.out_dim >= 0 else None


def _view(r: Row, x: Tensor, shape1: tuple[int, ...], n: int, what: str) -> Tensor:
    node = r.op.graph.node  # type: ignore[union-attr]
    name = r.op.name
    rank = len(x.shape)
    if name in ("reshape", "flatten"):
        bdim = _out_bdim(r)
        if n != 1 and (x.bdim is None or bdim is None):
            raise _refuse(r, what, "where the batch lies in its output is not known (reshape it at batch 1)")
        shape = _at_batch(shape1, bdim, n)
        strides = view_strides(x.shape, x.strides, shape)
        if strides is None:  # reshape copies
            return Tensor(r.tensor, shape, contiguous_strides(shape), bdim)
        return Tensor(x.storage, shape, strides, bdim, x.weight)
    if name in ("permute", "transpose"):
        if name == "permute":
            order = [v % rank for v in node.get("dims")]
        else:
            a, b = (v % rank for v in node.get("dims"))
            order = list(range(rank))
            order[a], order[b] = order[b], order[a]
        bdim = order.index(x.bdim) if x.bdim is not None else None
        return Tensor(x.storage, tuple(x.shape[k] for k in order), tuple(x.strides[k] for k in order), bdim, x.weight)
    if name == "expand":
        lead = len(shape1) - rank
        shape = _at_batch(shape1, None if x.bdim is None else x.bdim + lead, n)
        strides = tuple(
            0 if k < lead or (x.shape[k - lead] == 1 and shape[k] != 1) else x.strides[k - lead]
            for k in range(len(shape))
        )
        return Tensor(x.storage, shape, strides, None if x.bdim is None else x.bdim + lead, x.weight)
    d = node.get("dim") % rank
    if name == "select":
        bdim = x.bdim if x.bdim is None or x.bdim < d else x.bdim - 1
        shape = x.shape[:d] + x.shape[d + 1 :]
        return Tensor(x.storage, shape, x.strides[:d] + x.strides[d + 1 :], bdim, x.weight)
    # slice
    size = shape1[d] * (n if x.bdim == d else 1)
    step = node.get("step")
    strides = tuple(s * step if k == d else s for k, s in enumerate(x.strides))
    return Tensor(x.storage, x.shape[:d] + (size,) + x.shape[d + 1 :], strides, x.bdim, x.weight)


def storage_elements(report: Report, tensors: dict[int, Tensor]) -> dict[int, int]:
    """Elements of each storage (by its owner's tensor id): the owner's elements at the batch."""
    out: dict[int, int] = {}
    for t, info in tensors.items():
        if info.storage == t:
            out[t] = math.prod(info.shape)
    return out
