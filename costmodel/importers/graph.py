"""Import any traceable ``torch.nn.Module`` as ``kind: graph`` layers: the aten ops of one meta-device forward pass,
each a node of the graph vocabulary (docs/spec.md, GRAPH_DESIGN), split into layers by the model's module tree.

The trace is the block importer's (importers/torch.py): ``torch.func.functional_call`` with one meta tensor per
distinct parameter object (tied weights share it), a ``TorchDispatchMode`` that records every aten op with its
literal arguments and the tensors it reads and writes, module scopes from global forward hooks, and
``FlopCounterMode`` in the same pass. Lowering (:func:`lower`):

* aliases (``detach``, ``clone``, ``_to_copy``, ``alias``, ``lift_fresh``, dropout in eval) are dropped; views,
  reshapes, permutes, transposes, expands, slices are data nodes with their literal shapes (0 cost);
* ``t(W)`` + ``addmm`` / ``mm`` with a parameter ``W`` is ``linear``; a ``view → linear → view`` around it is one
  ``linear`` on the N-D input when the views only flatten and restore the leading dims;
* a parameter read once, directly, by a conv / linear / norm is that node's own; any other read parameter is a
  ``param`` node; parameters and buffers never read are ``unread: true`` nodes; BatchNorm's ``num_batches_tracked``
  is ``tracked: true`` on its node;
* an aten op outside the vocabulary is an ``aten`` node (its output shape, 0 cost) when ``FlopCounterMode`` has no
  formula for it (``torch.utils.flop_counter.flop_registry``); one it counts is a :class:`Problem` naming it.

Segmentation (:func:`segment`) cuts the node list by the module tree (``blocks.0``, ``stages.1.blocks.2`` …),
merges a segment with the next while it hands on anything but one batched tensor, and writes equal consecutive
segments once with ``repeat`` (:func:`compact`).

This module imports torch at the top; import it only when torch is installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import SpecError, UsageError
from .graph_annotate import CALLED_OPS, Calls, add_classes, fold_linear_bias
from .recognise import Problem
from .sources import printable
from .tracing import leaves, scopes

#: aten ops that return their input's values unchanged (dropped: the reader reads the input)
_ALIASES = frozenset(
    {
        "detach",
        "clone",
        "contiguous",
        "alias",
        "lift_fresh",
        "lift_fresh_copy",
        "_to_copy",
        "to",
        "dropout",
        "feature_dropout",
        "alpha_dropout",
        "feature_alpha_dropout",
        "_conj",
        "resolve_conj",
        "resolve_neg",
        "_assert_tensor_metadata",
    }
)
#: aten activation → graph op
_ACTS = {
    "relu": "relu",
    "silu": "silu",
    "sigmoid": "sigmoid",
    "hardswish": "hardswish",
    "hardsigmoid": "hardsigmoid",
    "tanh": "tanh",
    "exp": "exp",
    "log": "log",
    "sqrt": "sqrt",
    "rsqrt": "rsqrt",
    "neg": "neg",
    "abs": "abs",
    "reciprocal": "reciprocal",
    "erf": "erf",
    "softplus": "softplus",
    "mish": "mish",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
}
#: aten elementwise op → graph op (tensor operands are its inputs; a scalar operand is not)
_ELEMENTWISE = {
    "add": "add",
    "sub": "sub",
    "rsub": "sub",
    "mul": "mul",
    "div": "div",
    "pow": "pow",
    "maximum": "maximum",
    "minimum": "minimum",
    "where": "where",
    "clamp": "clamp",
    "clamp_min": "clamp",
    "clamp_max": "clamp",
}
_UPSAMPLE = {
    "upsample_nearest1d": "nearest",
    "upsample_nearest2d": "nearest",
    "upsample_nearest3d": "nearest",
    "upsample_bilinear2d": "bilinear",
    "upsample_bicubic2d": "bicubic",
    "_upsample_bilinear2d_aa": None,
    "_upsample_bicubic2d_aa": None,
}


_PAD_MODES = {"reflection": "reflect", "replication": "replicate"}


class InternalError(UsageError):
    """A graph spec that would count more params or MACs than its model: a costmodel bug, never a figure."""


class _Ref:
    """A tensor argument of a recorded op: the traced tensor's id."""

    __slots__ = ("tid",)

    def __init__(self, tid: int) -> None:
        self.tid = tid

    def __repr__(self) -> str:
        return f"%{self.tid}"


@dataclass
class Tensor:
    """A traced tensor: the model input, a parameter, a buffer, a constant, or an op's output."""

    kind: str  # in | param | buffer | const | op
    shape: tuple[int, ...]
    name: str = ""  # the parameter's / buffer's name


@dataclass
class RawOp:
    """One aten op as dispatched: its overload packet (``convolution``), full name, arguments with tensors as
    :class:`_Ref`, the tensors it reads and writes, and the module path it ran in."""

    fn: str
    full: str
    args: list[Any]
    kwargs: dict[str, Any]
    ins: list[int]
    outs: list[int]
    scope: str
    call: str | None = None  # the outermost torch callable it ran under (graph_annotate.Calls)


@dataclass
class GraphTrace:
    """What one meta-device forward pass recorded for the graph importer."""

    tensors: list[Tensor]
    ops: list[RawOp]
    output: int
    output_shape: tuple[int, ...]
    macs: int
    params: dict[str, int]  # parameter tid → numel, one entry per distinct tensor
    buffers: dict[str, int]
    scope_types: dict[str, str]
    module_paths: list[str]
    containers: dict[str, bool]  # module path → whether the segmentation descends into it
    fused: dict[int, Any] = field(default_factory=dict)  # first op index → graph_annotate.Fused (an SDPA call)


class _Recorder(TorchDispatchMode):  # type: ignore[no-untyped-call]
    def __init__(self, scope: list[str]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.scope = scope
        self.tensors: list[Tensor] = []
        self.ids: dict[int, int] = {}
        self.keep: list[Any] = []
        self.ops: list[RawOp] = []
        self.call: str | None = None  # set by graph_annotate.Calls

    def add(self, t: Any, kind: str, name: str = "") -> int:
        tid = len(self.tensors)
        self.tensors.append(Tensor(kind, tuple(int(s) for s in t.shape), name))
        self.ids[id(t)] = tid
        self.keep.append(t)
        return tid

    def ref(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            tid = self.ids.get(id(x))
            if tid is None:  # a tensor the trace did not make: a constant the module holds
                tid = self.add(x, "const")
            return _Ref(tid)
        if isinstance(x, (list, tuple)):
            return [self.ref(v) for v in x]
        return x

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        rargs = [self.ref(a) for a in args]
        rkw = {k: self.ref(v) for k, v in kwargs.items()}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        outs = [t for t in leaves(out) if isinstance(t, torch.Tensor)]
        if not outs:
            return out
        ins = [r.tid for r in leaves([*rargs, *rkw.values()]) if isinstance(r, _Ref)]
        base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
        if base in _ALIASES and ins and len(outs) == 1:
            self.ids[id(outs[0])] = ins[0]
            self.keep.append(outs[0])
            return out
        scope = self.scope[-1] if self.scope else ""
        tids = [self.add(t, "op") for t in outs]
        self.ops.append(RawOp(base, str(func), rargs, rkw, ins, tids, scope, self.call))
        return out


_LISTS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _containers(module: nn.Module) -> dict[str, bool]:
    """Which module paths segmentation descends into: the model itself; a Sequential / ModuleList / ModuleDict
    with two or more children that have children of their own (a stage of blocks, not a conv-norm-act unit);
    and a module holding such a list (a stage: ``downsample`` + ``blocks``)."""

    def is_list(m: nn.Module) -> bool:
        return isinstance(m, _LISTS) and sum(1 for c in m.children() if any(True for _ in c.children())) >= 2

    out: dict[str, bool] = {}
    for n, m in module.named_modules():
        out[printable(n, 200)] = n == "" or is_list(m) or any(is_list(c) for c in m.children())
    return out


def trace(module: nn.Module, input: tuple[int, ...]) -> GraphTrace:
    """Run ``module`` once on a meta tensor of shape (1, *input) in eval mode; record its aten ops, its
    FlopCounterMode MACs (total // 2) and its output. A failing forward is one :class:`UsageError` naming the
    module path it failed in. The module itself is left as it was."""
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    stack: list[str] = []
    rec = _Recorder(stack)
    calls = Calls(rec)
    subs: dict[str, torch.Tensor] = {}
    params: dict[str, int] = {}
    buffers: dict[str, int] = {}
    made: dict[int, torch.Tensor] = {}  # id(original tensor) → its one meta substitute (tied names share it)
    for kind, items in (
        ("param", module.named_parameters(remove_duplicate=False)),
        ("buffer", module.named_buffers(remove_duplicate=False)),
    ):
        for n, p in items:
            t = made.get(id(p))
            if t is None:
                t = made[id(p)] = torch.empty_like(p, device="meta")
                rec.add(t, kind, printable(n, 200))
                (params if kind == "param" else buffers)[printable(n, 200)] = p.numel()
            subs[n] = t
    x = torch.empty((1, *input), device="meta")
    rec.add(x, "in")
    counter = FlopCounterMode(display=False)
    was = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad(), scopes(module, stack, remove_duplicate=False) as types, counter, rec, calls:
            y = functional_call(module, subs, (x,), strict=False, tie_weights=False)
    except SystemExit as exc:
        raise UsageError(
            f"the model's forward pass called sys.exit({printable(repr(exc.code), 60)}) on a meta tensor of shape "
            f"{(1, *input)}"
        ) from None
    except Exception as exc:  # what cannot be traced is named with its module path
        where = printable(stack[-1] if stack else "<top>", 200) or "<top>"
        why = printable(f"{type(exc).__name__}: {exc}", 300)
        raise UsageError(
            f"cannot trace the model at {where}: its forward pass failed on a meta tensor of shape {(1, *input)}: {why}"
        ) from None
    finally:
        for m, flag in was.items():
            m.train(flag)
    out = next((t for t in leaves(list(y.values()) if isinstance(y, dict) else y) if isinstance(t, torch.Tensor)), None)
    if out is None:
        raise UsageError("the model's forward returned no tensor")
    tid = rec.ids.get(id(out))
    if tid is None or rec.tensors[tid].kind != "op":
        raise UsageError("the model's output does not depend on its input")
    return GraphTrace(
        tensors=rec.tensors,
        ops=rec.ops,
        output=tid,
        output_shape=tuple(int(s) for s in out.shape),
        macs=int(counter.get_total_flops()) // 2,
        params=params,
        buffers=buffers,
        scope_types=types,
        module_paths=[printable(n, 200) for n, _ in module.named_modules()],
        containers=_containers(module),
        fused=calls.fused,
    )


# --------------------------------------------------------------------------------------------------- lowering


@dataclass
class GNode:
    """A graph node before it is written: the op, its fields, the tensors it reads (tids) and writes (``out``),
    its module path, and whether it holds its own parameters (``owns``, names)."""

    op: str
    fields: dict[str, Any]
    inputs: list[int]
    out: int
    scope: str
    owns: list[str] = field(default_factory=list)
    call: str | None = None  # the torch callable it ran as, where a tool counts by it (graph_annotate.CALLED_OPS)


def _ints(v: Any) -> Any:
    """An int for equal entries (``[3, 3]`` → 3), else the list."""
    if isinstance(v, (list, tuple)):
        vs = [int(x) for x in v]
        if vs and all(x == vs[0] for x in vs):
            return vs[0]
        return vs
    return int(v)


def _dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


def _arg(op: RawOp, i: int, name: str, default: Any = None) -> Any:
    if i < len(op.args):
        return op.args[i]
    return op.kwargs.get(name, default)


class _Lowering:
    def __init__(self, tr: GraphTrace, flop_ops: frozenset[str]) -> None:
        self.tr = tr
        self.flop_ops = flop_ops
        self.nodes: list[GNode] = []
        self.problems: list[Problem] = []
        self.fallbacks: dict[str, int] = {}
        self.reads: dict[int, int] = {}  # tid → how many recorded ops read it
        for op in tr.ops:
            for t in op.ins:
                self.reads[t] = self.reads.get(t, 0) + 1
        self.emitted: set[int] = {t for t, x in enumerate(tr.tensors) if x.kind == "in"}
        self.tposed: dict[int, int] = {}  # tid of t(W) → W's tid (W a parameter), not emitted unless read otherwise
        self.owned: set[int] = set()
        self.lazy: dict[int, RawOp] = {}
        self.empty: set[int] = set()  # empty tensors (a slice 0:0): no node can hold a size 0
        self.tracked: set[int] = set()  # num_batches_tracked buffers a batch_norm node counts

    # -- tensors ---------------------------------------------------------------------------------------------
    def shape(self, tid: int) -> tuple[int, ...]:
        return self.tr.tensors[tid].shape

    def need(self, tid: int, scope: str) -> int:
        """Make sure a node writes ``tid`` (a parameter, buffer or constant read by an op): emit it first."""
        if tid in self.emitted:
            return tid
        t = self.tr.tensors[tid]
        if t.kind in ("param", "buffer"):
            self.nodes.append(GNode(t.kind, {"shape": list(t.shape)}, [], tid, scope, [t.name]))
        elif t.kind == "const":
            self.nodes.append(GNode("aten", {"fn": "constant", "shape": list(t.shape)}, [], tid, scope))
            self.fallbacks["constant"] = self.fallbacks.get("constant", 0) + 1
        elif tid in self.lazy:
            op = self.lazy[tid]
            self.nodes.append(GNode("aten", {"fn": op.full, "shape": list(t.shape)}, [], tid, op.scope))
            self.fallbacks[op.full] = self.fallbacks.get(op.full, 0) + 1
        elif tid in self.tposed:
            w = self.need(self.tposed[tid], scope)
            self.nodes.append(GNode("transpose", {"dims": [0, 1]}, [w], tid, scope))
        else:  # an output of a multi-output op that no vocabulary node writes (max_pool's indices …)
            self.nodes.append(GNode("aten", {"fn": "output", "shape": list(t.shape)}, [], tid, scope))
        self.emitted.add(tid)
        return tid

    def own(self, tids: list[int | None], buffers: tuple[int | None, ...] = ()) -> bool:
        """Whether the parameters ``tids`` (and ``buffers``, a norm's running statistics; None: absent) are read
        once, directly, by this op alone."""
        for t in [*tids, *buffers]:
            if t is None:
                continue
            x = self.tr.tensors[t]
            want = "buffer" if t in buffers else "param"
            if x.kind != want or t in self.emitted or self.reads.get(t, 0) != 1:
                return False
        return True

    def emit(self, op: str, fields: dict[str, Any], inputs: list[int], out: int, scope: str, owns: list[int]) -> None:
        if any(t in self.empty for t in inputs):  # not said: an aten node of the output, reading the rest
            self.problems.append(Problem(op, scope, "reads an empty tensor, which no graph node can hold"))
            op, fields, owns = "aten", {"fn": op, "shape": list(self.shape(out))}, []
            inputs = [t for t in inputs if t not in self.empty]
        ins = [self.need(t, scope) for t in inputs]
        call = self.call if op in CALLED_OPS else None
        self.nodes.append(GNode(op, fields, ins, out, scope, [self.tr.tensors[t].name for t in owns], call))
        self.owned.update(owns)
        self.emitted.add(out)

    def fallback(self, op: RawOp, scope: str) -> None:
        """An ``aten`` node per output (its shape, 0 cost), or a problem when FlopCounterMode counts the op."""
        name = op.full
        if op.fn in self.flop_ops:
            self.problems.append(
                Problem(name, scope, "FlopCounterMode counts this op and the graph vocabulary has no formula for it")
            )
        self.fallbacks[name] = self.fallbacks.get(name, 0) + 1
        ins = list(dict.fromkeys(op.ins))
        for o in op.outs:
            self.emit("aten", {"fn": name, "shape": list(self.shape(o))}, ins, o, scope, [])

    def alias(self, op: RawOp) -> None:
        """The op's output is its input's values: readers read the input's node."""
        self.rename[op.outs[0]] = op.ins[0]

    # -- the ops -----------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.rename: dict[int, int] = {}
        self.call: str | None = None
        skip = 0
        for k, op in enumerate(self.tr.ops):
            if k < skip:
                continue
            fused = self.tr.fused.get(k)
            if fused is not None:  # one call written as one node (graph_annotate.Fused: SDPA)
                self.call = op.call
                self.emit(fused.op, {}, [self.rename.get(t, t) for t in fused.inputs], fused.out, op.scope, [])
                skip = fused.end
                continue
            self.call = op.call
            op.ins = [self.rename.get(t, t) for t in op.ins]
            op.args = [self._sub(a) for a in op.args]
            op.kwargs = {k: self._sub(v) for k, v in op.kwargs.items()}
            self.lower(op)

    def _sub(self, a: Any) -> Any:
        if isinstance(a, _Ref):
            return _Ref(self.rename.get(a.tid, a.tid))
        if isinstance(a, list):
            return [self._sub(v) for v in a]
        return a

    def lower(self, op: RawOp) -> None:  # noqa: C901 - one branch per aten op family
        fn, scope = op.fn, op.scope
        out = op.outs[0]
        oshape = self.shape(out)
        if op.ins and any(t in self.empty for t in op.ins) and all(0 in self.shape(o) for o in op.outs):
            self.empty.update(op.outs)  # empty in, empty out (a view or norm of no tokens)
            return
        if not op.ins and len(op.outs) == 1:  # a tensor made from nothing (empty, zeros, arange): written if read
            self.lazy[out] = op
            return
        x = tid(op.args[0]) if op.args else None
        xshape = self.shape(x) if x is not None else ()
        if fn in ("convolution", "_convolution") and x is not None:
            w, b = tid(op.args[1]), tid(op.args[2])
            wt = self.shape(w) if w is not None else ()
            transposed = bool(op.args[6])
            groups = int(op.args[8])
            fields: dict[str, Any] = {
                "out": int(wt[1]) * groups if transposed else int(wt[0]),
                "kernel": _ints(wt[2:]),
                "stride": _ints(op.args[3]),
                "padding": _ints(op.args[4]),
                "dilation": _ints(op.args[5]),
                "groups": groups,
                "bias": b is not None,
            }
            if transposed:
                fields["transposed"] = True
                fields["output_padding"] = _ints(op.args[7])
            _drop(fields, stride=1, padding=0, dilation=1, groups=1, output_padding=0)
            if w is not None and self.own([w, b]):
                self.emit("conv", fields, [x], out, scope, [t for t in (w, b) if t is not None])
            else:
                ins = [x] + [t for t in (w, b) if t is not None]
                fields.pop("bias", None)  # a bias is the third input
                self.emit("conv", fields, ins, out, scope, [])
            return
        if fn in ("mm", "addmm"):
            bias, a, m2 = (tid(op.args[0]), tid(op.args[1]), tid(op.args[2])) if fn == "addmm" else (None, x, None)
            if fn == "mm":
                m2 = tid(op.args[1])
            assert a is not None and m2 is not None
            w = self.tposed.get(m2)
            if w is not None and self.reads.get(m2) == 1:
                shp = self.shape(w)
                own_w = self.own([w])
                own_bias = bias is not None and self.own([bias]) and self.shape(bias) == (shp[0],)
                fields = {"out": int(shp[0]), "bias": own_bias}
                owns = ([w] if own_w else []) + ([bias] if own_bias and bias is not None else [])
                ins = [a] if own_w else [a, w]  # a weight read elsewhere too (tied) is a param node read here
                if bias is not None and not own_bias:
                    if own_w:
                        mid = self._temp(oshape)
                        self.emit("linear", fields, ins, mid, scope, owns)
                        self.emit("add", {}, [mid, bias], out, scope, [])
                        return
                    fields.pop("bias")
                    ins.append(bias)
                self.emit("linear", fields, ins, out, scope, owns)
                return
            if bias is not None:
                mid = self._temp(oshape)
                self.emit("matmul", {}, [a, m2], mid, scope, [])
                self.emit("add", {}, [mid, bias], out, scope, [])
            else:
                self.emit("matmul", {}, [a, m2], out, scope, [])
            return
        if fn in ("bmm", "baddbmm"):
            if fn == "bmm":
                self.emit("bmm", {}, [t for t in (x, tid(op.args[1])) if t is not None], out, scope, [])
            else:
                c, a, b2 = tid(op.args[0]), tid(op.args[1]), tid(op.args[2])
                mid = self._temp(oshape)
                self.emit("bmm", {}, [t for t in (a, b2) if t is not None], mid, scope, [])
                self.emit("add", {}, [mid] + ([c] if c is not None else []), out, scope, [])
            return
        if fn in (
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_cudnn_attention",
        ):
            qkv = [tid(a) for a in op.args[:3]]
            mask = tid(op.args[3]) if fn == "_scaled_dot_product_efficient_attention" and len(op.args) > 3 else None
            ins = [t for t in [*qkv, mask] if t is not None]
            self.emit("sdpa", {}, ins, out, scope, [])
            for o in op.outs[1:]:
                self.tr.tensors[o].kind = "op"
            return
        if fn == "t" and x is not None and self.tr.tensors[x].kind == "param" and len(xshape) == 2:
            self.tposed[out] = x  # W.t() of a linear: emitted only if something else reads it
            return
        if fn in ("_native_batch_norm_legit_no_training", "native_batch_norm", "_native_batch_norm_legit"):
            w, b = tid(op.args[1]), tid(op.args[2])
            rm, rv = tid(op.args[3]), tid(op.args[4])
            training = bool(op.args[5]) if fn != "_native_batch_norm_legit_no_training" else False
            if (
                x is not None
                and not training
                and rm is not None
                and rv is not None
                and (w is None) == (b is None)
                and self.own([w, b], (rm, rv))
            ):
                fields = {"affine": w is not None}
                nbt = self._tracked(rm)
                fields["tracked"] = nbt is not None
                _drop(fields, affine=True, tracked=True)
                if nbt is not None:
                    self.tracked.add(nbt)
                self.emit("batch_norm", fields, [x], out, scope, [t for t in (w, b, rm, rv) if t is not None])
                return
        if fn == "native_layer_norm" and x is not None:
            w, b = tid(op.args[2]), tid(op.args[3])
            if self.own([w, b]) and (w is not None or b is None):
                fields = {"normalized": len(op.args[1]), "affine": w is not None, "bias": b is not None}
                _drop(fields, normalized=1, affine=True, bias=True)
                if w is None:
                    fields.pop("bias", None)
                self.emit("layer_norm", fields, [x], out, scope, [t for t in (w, b) if t is not None])
                return
        if fn == "native_group_norm" and x is not None:
            w, b = tid(op.args[1]), tid(op.args[2])
            if self.own([w, b]) and (w is None) == (b is None):
                fields = {"groups": int(op.args[6]), "affine": w is not None}
                _drop(fields, affine=True)
                self.emit("group_norm", fields, [x], out, scope, [t for t in (w, b) if t is not None])
                return
        if fn == "_fused_rms_norm" and x is not None:
            w = tid(op.args[2]) if len(op.args) > 2 else None
            if self.own([w]):
                fields = {"normalized": len(op.args[1]), "affine": w is not None}
                _drop(fields, normalized=1, affine=True)
                self.emit("rms_norm", fields, [x], out, scope, [w] if w is not None else [])
                return
        if fn in _ACTS and x is not None and len(op.ins) == 1:
            self.emit(_ACTS[fn], {}, [x], out, scope, [])
            return
        if fn == "gelu" and x is not None:
            approx = _arg(op, 1, "approximate", "none")
            self.emit("gelu_tanh" if approx == "tanh" else "gelu", {}, [x], out, scope, [])
            return
        if fn == "hardtanh" and x is not None:
            lo, hi = _arg(op, 1, "min_val", -1.0), _arg(op, 2, "max_val", 1.0)
            self.emit("relu6" if (lo, hi) == (0.0, 6.0) else "clamp", {}, [x], out, scope, [])
            return
        if fn in ("_softmax", "_safe_softmax", "_log_softmax") and x is not None:
            d = _dim(int(op.args[1]), len(xshape))
            self.emit("log_softmax" if fn == "_log_softmax" else "softmax", {"dim": d}, [x], out, scope, [])
            return
        if fn in _ELEMENTWISE and op.ins:
            operands = [tid(a) for a in leaves([*op.args, *op.kwargs.values()])]
            self.emit(_ELEMENTWISE[fn], {}, [t for t in operands if t is not None], out, scope, [])
            return
        if fn in ("mean", "sum", "amax") and x is not None and len(op.outs) == 1:
            dims = op.args[1] if len(op.args) > 1 and isinstance(op.args[1], (int, list)) else op.kwargs.get("dim")
            keep = bool(op.args[2]) if len(op.args) > 2 and isinstance(op.args[2], bool) else False
            keep = bool(op.kwargs.get("keepdim", keep))
            if dims is None or (isinstance(dims, list) and not dims):
                dims = list(range(len(xshape)))
            ds = [_dim(int(d), len(xshape)) for d in (dims if isinstance(dims, list) else [dims])]
            fields = {"dim": ds[0] if len(ds) == 1 else ds, "keepdim": keep}
            _drop(fields, keepdim=False)
            self.emit(fn, fields, [x], out, scope, [])
            return
        if fn == "avg_pool2d" and x is not None:
            k = op.args[1]
            st = _arg(op, 2, "stride", []) or k
            fields = {
                "kernel": _ints(k),
                "stride": _ints(st),
                "padding": _ints(_arg(op, 3, "padding", 0)),
                "ceil": bool(_arg(op, 4, "ceil_mode", False)),
            }
            if _arg(op, 6, "divisor_override") is not None or not _arg(op, 5, "count_include_pad", True):
                fields["count_include_pad"] = False
            _drop(fields, padding=0, ceil=False)
            if "count_include_pad" in fields:
                self.fallback(op, scope)
                return
            self.emit("avg_pool", fields, [x], out, scope, [])
            return
        if fn in ("max_pool2d_with_indices", "max_pool2d", "max_pool3d_with_indices") and x is not None:
            k = op.args[1]
            st = _arg(op, 2, "stride", []) or k
            fields = {
                "kernel": _ints(k),
                "stride": _ints(st),
                "padding": _ints(_arg(op, 3, "padding", 0)),
                "dilation": _ints(_arg(op, 4, "dilation", 1)),
                "ceil": bool(_arg(op, 5, "ceil_mode", False)),
            }
            _drop(fields, padding=0, dilation=1, ceil=False)
            self.emit("max_pool", fields, [x], out, scope, [])
            return
        pools = ("_adaptive_avg_pool2d", "adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d")
        if fn in pools and x is not None:
            name = "adaptive_max_pool" if "max" in fn else "adaptive_avg_pool"
            self.emit(name, {"size": [int(s) for s in oshape[2:]]}, [x], out, scope, [])
            return
        views = ("view", "_unsafe_view", "reshape", "squeeze", "unsqueeze", "flatten", "unflatten", "view_as")
        if fn in views and x is not None:
            if tuple(oshape) == tuple(xshape):
                self.alias(op)
            else:
                self.emit("reshape", {"shape": list(oshape)}, [x], out, scope, [])
            return
        if fn == "permute" and x is not None:
            dims = [_dim(int(d), len(xshape)) for d in op.args[1]]
            if dims == sorted(dims):
                self.alias(op)
            else:
                self.emit("permute", {"dims": dims}, [x], out, scope, [])
            return
        if fn in ("transpose", "t") and x is not None:
            if len(xshape) < 2:
                self.alias(op)
                return
            d0, d1 = (0, 1) if fn == "t" else (_dim(int(op.args[1]), len(xshape)), _dim(int(op.args[2]), len(xshape)))
            if d0 == d1:
                self.alias(op)
            else:
                self.emit("transpose", {"dims": [d0, d1]}, [x], out, scope, [])
            return
        if fn == "expand" and x is not None:
            if tuple(oshape) == tuple(xshape):
                self.alias(op)
            else:
                self.emit("expand", {"shape": list(oshape)}, [x], out, scope, [])
            return
        if fn == "cat":
            parts = [t for t in (tid(a) for a in op.args[0]) if t not in self.empty]
            d = _dim(int(_arg(op, 1, "dim", 0)), len(oshape))
            ins2 = [t for t in parts if t is not None]
            if len(ins2) == 1:  # a cat of one tensor (and empty ones): that tensor
                self.rename[out] = ins2[0]
                return
            self.emit("cat", {"dim": d}, ins2, out, scope, [])
            return
        if fn == "linalg_vector_norm" and x is not None and float(_arg(op, 1, "ord", 2)) == 2.0:
            dims = _arg(op, 2, "dim")  # ‖x‖₂ over dims: sqrt(sum(x²)), ops the engine follows the batch through
            keep = bool(_arg(op, 3, "keepdim", False))
            ds = list(range(len(xshape))) if dims is None else [_dim(int(d), len(xshape)) for d in dims]
            sq = self._temp(xshape)
            self.emit("pow", {}, [x], sq, scope, [])
            summed = self._temp(oshape)
            fields = {"dim": ds[0] if len(ds) == 1 else ds, "keepdim": keep}
            _drop(fields, keepdim=False)
            self.emit("sum", fields, [sq], summed, scope, [])
            self.emit("sqrt", {}, [summed], out, scope, [])
            return
        if fn == "stack" and op.args and isinstance(op.args[0], list):
            pieces: list[int] = [t for t in (tid(a) for a in op.args[0]) if t is not None]
            d = _dim(int(_arg(op, 1, "dim", 0)), len(oshape))
            moved: list[int] = []
            for t in pieces:  # x.unsqueeze(d) as reshape (x, 1) → permute, so the engine follows the batch's dim
                ps = self.shape(t)
                r = self._temp((*ps, 1))
                self.emit("reshape", {"shape": [*ps, 1]}, [t], r, scope, [])
                if d < len(ps):
                    u = self._temp(tuple(oshape[:d]) + (1,) + tuple(oshape[d + 1 :]))
                    dims = [*range(d), len(ps), *range(d, len(ps))]
                    self.emit("permute", {"dims": dims}, [r], u, scope, [])
                    r = u
                moved.append(r)
            if len(moved) == 1:
                self.rename[out] = moved[0]
            else:
                self.emit("cat", {"dim": d}, moved, out, scope, [])
            return
        if fn == "slice" and x is not None:
            rank = len(xshape)
            d = _dim(int(_arg(op, 1, "dim", 0)), rank)
            if tuple(oshape) == tuple(xshape):
                self.alias(op)
                return
            n = xshape[d]
            start, end, step = _arg(op, 2, "start"), _arg(op, 3, "end"), int(_arg(op, 4, "step", 1))
            s = 0 if start is None else int(start)
            e = n if end is None else int(end)
            s = max(0, min(n, s + n if s < 0 else s))
            e = max(0, min(n, e + n if e < 0 else e))
            if e <= s:  # an empty slice (``x[:, :0]``, no prefix tokens): a cat drops it
                self.empty.add(out)
                return
            fields = {"dim": d, "start": s, "end": e, "step": step}
            _drop(fields, step=1)
            self.emit("slice", fields, [x], out, scope, [])
            return
        if fn == "select" and x is not None:
            d = _dim(int(op.args[1]), len(xshape))
            i = int(op.args[2])
            self.emit("select", {"dim": d, "index": i + xshape[d] if i < 0 else i}, [x], out, scope, [])
            return
        if fn in ("split", "split_with_sizes", "unsafe_split", "unbind", "chunk") and x is not None:
            rank = len(xshape)
            d = _dim(int(_arg(op, 2 if fn != "unbind" else 1, "dim", 0)), rank)
            pos = 0
            for i, o in enumerate(op.outs):
                oshp = self.shape(o)
                if fn == "unbind":
                    self.emit("select", {"dim": d, "index": i}, [x], o, scope, [])
                    continue
                size = oshp[d]
                fields = {"dim": d, "start": pos, "end": pos + size}
                if tuple(oshp) == tuple(xshape):
                    self.rename[o] = x
                else:
                    self.emit("slice", fields, [x], o, scope, [])
                pos += size
            return
        if fn == "constant_pad_nd" and x is not None:
            pads = [int(p) for p in op.args[1]]
            if not any(pads):
                self.alias(op)
                return
            self.emit("pad", {"pads": pads}, [x], out, scope, [])
            return
        if fn in ("reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d") and x is not None:
            self.emit(
                "pad", {"pads": [int(p) for p in op.args[1]], "mode": _PAD_MODES[fn.split("_")[0]]}, [x], out, scope, []
            )
            return
        if fn == "roll" and x is not None:
            shifts = op.args[1] if isinstance(op.args[1], list) else [op.args[1]]
            dims = _arg(op, 2, "dims", [])
            dims = dims if isinstance(dims, list) else [dims]
            self.emit("roll", {"size": [int(s) for s in shifts], "dims": [int(d) for d in dims]}, [x], out, scope, [])
            return
        if fn == "repeat" and x is not None:
            self.emit("repeat", {"shape": [int(s) for s in op.args[1]]}, [x], out, scope, [])
            return
        if fn in _UPSAMPLE and x is not None and _UPSAMPLE[fn] is not None:
            self.emit("interpolate", {"size": [int(s) for s in oshape[2:]], "mode": _UPSAMPLE[fn]}, [x], out, scope, [])
            return
        self.fallback(op, scope)

    def _temp(self, shape: tuple[int, ...]) -> int:
        self.tr.tensors.append(Tensor("op", shape))
        return len(self.tr.tensors) - 1

    def _tracked(self, rm: int) -> int | None:
        """The ``num_batches_tracked`` buffer beside a running mean buffer (``bn.running_mean``), if any."""
        name = self.tr.tensors[rm].name
        if not name.endswith("running_mean"):
            return None
        want = name[: -len("running_mean")] + "num_batches_tracked"
        for t, x in enumerate(self.tr.tensors):
            if x.kind == "buffer" and x.name == want and self.reads.get(t, 0) == 0:
                return t
        return None


def tid(a: Any) -> int | None:
    """The traced tensor an argument refers to (None: not a tensor)."""
    return a.tid if isinstance(a, _Ref) else None


def _drop(fields: dict[str, Any], **defaults: Any) -> None:
    for k, v in defaults.items():
        if k in fields and fields[k] == v:
            del fields[k]


def _fold_linear_views(nodes: list[GNode], tensors: list[Tensor], keep: set[int]) -> list[GNode]:
    """``reshape(x, [M, K]) → linear → reshape([..., out])`` with x of shape [..., K] (M = ∏ leading dims) is one
    ``linear`` on x; and a ``linear`` (no bias) whose output only an ``add`` of a 1-D parameter [out] read nowhere
    else reads is a linear with bias. ``keep``: tensors that must stay written (the model's output)."""
    readers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.inputs:
            readers.setdefault(t, []).append(i)
    producer = {n.out: i for i, n in enumerate(nodes)}
    drop: set[int] = set()
    for i, n in enumerate(nodes):
        if n.op != "linear" or not n.inputs:
            continue
        r1 = producer.get(n.inputs[0])
        if r1 is None or nodes[r1].op != "reshape" or len(readers.get(nodes[r1].out, [])) != 1:
            continue
        src = nodes[r1].inputs[0]
        sshape = tensors[src].shape
        mid = tensors[nodes[r1].out].shape
        if len(mid) != 2 or not sshape or sshape[-1] != mid[1] or math.prod(sshape[:-1]) != mid[0]:
            continue
        rd = readers.get(n.out, [])
        if len(rd) != 1 or n.out in keep or nodes[rd[0]].op != "reshape":
            continue
        r2 = rd[0]
        if tuple(tensors[nodes[r2].out].shape) != (*sshape[:-1], n.fields["out"]):
            continue
        nodes[i] = GNode("linear", n.fields, [src, *n.inputs[1:]], nodes[r2].out, n.scope, n.owns)
        drop.update({r1, r2})
    return [n for i, n in enumerate(nodes) if i not in drop]


def _unpermute_dim0(nodes: list[GNode], tensors: list[Tensor], keep: set[int]) -> list[GNode]:
    """``select`` / ``slice`` along dim 0 of ``permute(x, p)`` with p[0] ≠ 0 (``qkv.permute(2, 0, 3, 1, 4)
    .unbind(0)``, where the batch is no longer dim 0) is the same op along dim p[0] of x, then the permute of the
    remaining dims: the graph's dim 0 stays the batch's. Through a reshape that keeps dim 0 (SAM's
    ``qkv.reshape(3, B·heads, N, -1).unbind(0)``) the select / slice goes before the reshape first. A permute or
    reshape node goes when nothing else reads it."""
    producer = {n.out: n for n in nodes}
    out: list[GNode] = []

    def new(shape: tuple[int, ...]) -> int:
        tensors.append(Tensor("op", shape))
        return len(tensors) - 1

    def rewrite(n: GNode) -> list[GNode]:
        p = producer.get(n.inputs[0]) if n.inputs else None
        if p is None or n.op not in ("select", "slice") or n.fields["dim"] != 0 or not p.inputs:
            return [n]
        x = p.inputs[0]
        xs, ps, ns = tensors[x].shape, tensors[p.out].shape, tensors[n.out].shape
        if p.op == "reshape" and xs and ps and xs[0] == ps[0]:  # select / slice first, then the reshape
            moved = GNode(n.op, n.fields, [x], new((*([] if n.op == "select" else ns[:1]), *xs[1:])), n.scope)
            producer[moved.out] = moved
            return [*rewrite(moved), GNode("reshape", {"shape": list(ns)}, [moved.out], n.out, n.scope)]
        dims: list[int] | None = None
        if p.op == "permute":
            dims = list(p.fields["dims"])
        elif p.op == "transpose":
            a, b = p.fields["dims"]
            dims = list(range(len(ps)))
            dims[a], dims[b] = dims[b], dims[a]
        if dims is None or dims[0] == 0:
            return [n]
        d = dims[0]
        if n.op == "select":
            zshape = xs[:d] + xs[d + 1 :]
            rest = [v - (v > d) for v in dims[1:]]
        else:
            zshape = (*xs[:d], ns[0], *xs[d + 1 :])
            rest = dims
        z = new(tuple(zshape))
        head = GNode(n.op, {**n.fields, "dim": d}, [x], z, n.scope, n.owns)
        if rest == sorted(rest):
            return [head, GNode("reshape", {"shape": list(ns)}, [z], n.out, n.scope)]
        return [head, GNode("permute", {"dims": rest}, [z], n.out, n.scope)]

    for n in nodes:
        out += rewrite(n)
    while True:  # drop the data nodes nothing reads any more
        read = {t for n in out for t in n.inputs} | keep
        kept = [n for n in out if n.op not in ("permute", "transpose", "reshape") or n.out in read]
        if len(kept) == len(out):
            return kept
        out = kept


# --------------------------------------------------------------------------------------------------- segments


@dataclass
class Segment:
    """A run of nodes that becomes one graph layer: its module-tree key and nodes."""

    key: str
    nodes: list[GNode]


def _key(scope: str, containers: dict[str, bool]) -> str:
    """The segment a node of module path ``scope`` belongs to: descend the module tree from the model while the
    module is a container (:func:`_containers`)."""
    parts = scope.split(".") if scope else []
    path = ""
    for i in range(len(parts)):
        if not containers.get(path, False):
            break
        path = ".".join(parts[: i + 1])
    return path


_FOLDED = -1
_LEADING = frozenset({"conv", "avg_pool", "max_pool", "adaptive_avg_pool", "adaptive_max_pool", "interpolate"})
_REDUCE = frozenset({"mean", "sum", "amax", "var"})


def _batch_dim(n: GNode, pos: dict[int, int], tensors: list[Tensor]) -> int | None:
    """Which dim of the node's output holds the batch (None: unbatched; -1: folded with other dims), followed
    through permutes, selects, reductions, reshapes (only a leading batch stays leading) and broadcasting
    (right-aligned), as the engine follows it (engine/graph_ops.py ``batch_position``)."""
    first = next((t for t in n.inputs if t in pos), None)
    if first is None:
        return None
    b0, s0, out = pos[first], tensors[first].shape, tensors[n.out].shape
    if b0 == _FOLDED:
        return _FOLDED
    f = n.fields
    if n.op in _LEADING or n.op == "batch_norm" or n.op == "group_norm":
        return 0
    if n.op == "aten":
        return 0 if b0 == 0 and out and out[0] == 1 else _FOLDED
    if n.op == "permute":
        return [d % len(s0) for d in f["dims"]].index(b0)
    if n.op == "transpose":
        a, b = (d % len(s0) for d in f["dims"])
        return b if b0 == a else a if b0 == b else b0
    if n.op == "select":
        return b0 - 1 if f["dim"] % len(s0) < b0 else b0
    if n.op in _REDUCE:
        v = f.get("dim")
        dims = [d % len(s0) for d in ([v] if isinstance(v, int) else v)] if v is not None else list(range(len(s0)))
        return b0 if f.get("keepdim") else b0 - sum(d < b0 for d in dims)
    if n.op == "reshape":
        return 0 if b0 == 0 else _FOLDED
    return b0 + len(out) - len(s0)  # elementwise, linear, matmul, norms, slices …: right-aligned


def _batched(nodes: list[GNode], tensors: list[Tensor]) -> set[int]:
    """The tensors that hold the batch in dim 0 (what a layer may hand on)."""
    pos = {t: 0 for t, x in enumerate(tensors) if x.kind == "in"}
    for n in nodes:
        b = _batch_dim(n, pos, tensors)
        if b is not None:
            pos[n.out] = b
    return {t for t, b in pos.items() if b == 0}


def segment(nodes: list[GNode], tensors: list[Tensor], output: int, containers: dict[str, bool]) -> list[Segment]:
    """Split the node list by module key, then merge a segment with the next while it hands on anything but one
    batched tensor of leading dim 1 (its output: the next segment's ``in``, and what later segments read by its
    name), while a later segment reads the model input, and until the model output is the last segment's."""
    segs: list[Segment] = []
    for n in nodes:
        k = _key(n.scope, containers)
        if segs and segs[-1].key == k:
            segs[-1].nodes.append(n)
        else:
            segs.append(Segment(k, [n]))
    batched = _batched(nodes, tensors)
    inp = next(t for t, x in enumerate(tensors) if x.kind == "in")
    while True:
        where = {n.out: i for i, s in enumerate(segs) for n in s.nodes}
        where[inp] = -1
        bad = _first_bad(segs, where, batched, tensors, output)
        if bad is None:
            return segs
        i, j = bad
        merged = Segment(segs[i].key, [n for s in segs[i : j + 1] for n in s.nodes])
        segs[i : j + 1] = [merged]


def _first_bad(
    segs: list[Segment], where: dict[int, int], batched: set[int], tensors: list[Tensor], output: int
) -> tuple[int, int] | None:
    """The first run of segments (i, j) that must become one, or None."""
    last = len(segs) - 1
    handed: list[set[int]] = [set() for _ in segs]
    for j, s in enumerate(segs):
        for n in s.nodes:
            for t in n.inputs:
                i = where.get(t)
                if i is None or i == j:
                    continue
                if i == -1:
                    if j > 0:
                        return 0, j
                    continue
                handed[i].add(t)
    if where.get(output) != last:
        return where[output], last
    for i, s in enumerate(segs[:-1]):
        outs = handed[i]
        if len(outs) > 1:
            return i, i + 1
        h = next(iter(outs)) if outs else _default_out(s, batched, tensors)
        if h is None or h not in batched or not tensors[h].shape or tensors[h].shape[0] != 1:
            return i, i + 1
    return None


def _default_out(s: Segment, batched: set[int], tensors: list[Tensor]) -> int | None:
    """What a segment nothing later reads hands on: its last batched node of leading dim 1."""
    for n in reversed(s.nodes):
        if n.out in batched and tensors[n.out].shape and tensors[n.out].shape[0] == 1:
            return n.out
    return None


def _prefix(scopes: list[str]) -> str:
    parts = [s.split(".") if s else [] for s in scopes]
    if not parts:
        return ""
    out: list[str] = []
    for col in zip(*parts, strict=False):
        if len(set(col)) != 1:
            break
        out.append(col[0])
    return ".".join(out)


def layers_of(segs: list[Segment], tensors: list[Tensor], output: int) -> list[dict[str, Any]]:
    """The graph layers' plain data: name (the segment's module path), inputs (earlier layers read by name),
    output (when not the last node), nodes (ids where read out of order; inputs where not the previous node;
    module relative to the layer's name)."""
    batched = _batched([n for s in segs for n in s.nodes], tensors)
    where = {n.out: i for i, s in enumerate(segs) for n in s.nodes}
    names: list[str] = []
    used: set[str] = set()
    for s in segs:
        base = _prefix([n.scope for n in s.nodes]) or s.key or "model"
        name, k = base, 2
        while name in used:
            name, k = f"{base}~{k}", k + 1
        used.add(name)
        names.append(name)
    outs: list[int | None] = []
    for i, s in enumerate(segs):
        read = {t for j in range(i + 1, len(segs)) for n in segs[j].nodes for t in n.inputs if where.get(t) == i}
        if i == len(segs) - 1:
            outs.append(output)
        else:
            outs.append(next(iter(read)) if read else _default_out(s, batched, tensors))
    layers: list[dict[str, Any]] = []
    for i, s in enumerate(segs):
        name = names[i]
        handed = outs[i - 1] if i > 0 else next(t for t, x in enumerate(tensors) if x.kind == "in")
        assert handed is not None  # segment() merged every segment that hands on no batched tensor
        inp: int = handed
        local = {n.out: k for k, n in enumerate(s.nodes)}
        refs: dict[int, str] = {}
        ext: list[str] = []
        for n in s.nodes:
            for t in n.inputs:
                if t in local or t == inp:
                    continue
                j = where[t]
                refs[t] = names[j]
                if names[j] not in ext:
                    ext.append(names[j])
        need_id: set[int] = set()
        for k, n in enumerate(s.nodes):
            prev = s.nodes[k - 1].out if k > 0 else inp
            if n.inputs != [prev]:
                need_id.update(local[t] for t in n.inputs if t in local)
        out_t = outs[i]
        out_id = None
        if out_t is not None and out_t != s.nodes[-1].out:
            need_id.add(local[out_t])
            out_id = local[out_t]
        ids = {k: f"n{k}" for k in need_id}

        names_of: dict[int, str] = {inp: "in", **refs, **{t: ids[k] for t, k in local.items() if k in ids}}

        nodes: list[dict[str, Any]] = []
        for k, n in enumerate(s.nodes):
            d: dict[str, Any] = {}
            if k in ids:
                d["id"] = ids[k]
            d["op"] = n.op
            prev = s.nodes[k - 1].out if k > 0 else inp
            if n.inputs != [prev] and (n.inputs or n.op not in ("param", "buffer")):
                d["inputs"] = [names_of[t] for t in n.inputs]
            d.update(n.fields)
            if n.call is not None:
                d["call"] = n.call
            mod = n.scope
            if name and (mod == name or mod.startswith(name + ".")):
                mod = mod[len(name) + 1 :]
            if mod:
                d["module"] = mod
            nodes.append(d)
        layer: dict[str, Any] = {"kind": "graph", "name": name}
        if ext:
            layer["inputs"] = ext
        if out_id is not None:
            layer["output"] = ids[out_id]
        layer["nodes"] = nodes
        layers.append(layer)
    return layers


def _stem(name: str) -> str | None:
    """``blocks.3`` → ``blocks`` (the name of a run of equal blocks), None when the name ends in no index."""
    head, _, tail = name.rpartition(".")
    return head if head and tail.isdigit() else None


def _index(name: str) -> str:
    return name.rpartition(".")[2]


def compact(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Equal consecutive graph layers (same nodes, ids and relative modules included; no ``inputs``; not read by a
    later layer by name; names ``P.i``, ``P.i+1``, …) become one layer named ``P`` with ``repeat``."""
    referenced = {n for layer in layers for n in layer.get("inputs", [])}
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(layers):
        a = layers[i]
        stem = _stem(a["name"])
        j = i + 1
        if stem is not None and "inputs" not in a and a["name"] not in referenced:
            body = {k: v for k, v in a.items() if k != "name"}
            while j < len(layers):
                b = layers[j]
                if _stem(b["name"]) != stem or b["name"] in referenced or "inputs" in b:
                    break
                if {k: v for k, v in b.items() if k != "name"} != body:
                    break
                j += 1
        if j - i > 1:
            taken = {layer["name"] for layer in layers} | {layer["name"] for layer in out}
            if stem in taken:  # the stem names another layer too (dla's level2.tree1 and level2.tree1.0 …)
                stem = f"{a['name']}-{_index(layers[j - 1]['name'])}"
            out.append(
                {
                    "kind": "graph",
                    "name": stem,
                    "repeat": j - i,
                    **{k: v for k, v in a.items() if k not in ("kind", "name")},
                }
            )
        else:
            out.append(a)
        i = j
    return out


def unread_nodes(tr: GraphTrace, low: _Lowering) -> list[dict[str, Any]]:
    """``param`` / ``buffer`` nodes with ``unread: true`` for every parameter and buffer the forward never reads
    (num_batches_tracked a batch_norm node counts excepted)."""
    out: list[dict[str, Any]] = []
    for t, x in enumerate(tr.tensors):
        if x.kind in ("param", "buffer") and low.reads.get(t, 0) == 0 and t not in low.tracked:
            out.append({"op": x.kind, "shape": list(x.shape), "unread": True, "module": x.name})
    return out


@dataclass
class GraphImport:
    """The graph layers of a model and what the import found on the way."""

    layers: list[dict[str, Any]]
    whole: list[dict[str, Any]]  # the same nodes as one layer: where the engine refuses a cut between layers
    problems: list[Problem]
    fallbacks: dict[str, int]
    unread: list[str]
    macs: int
    output_shape: tuple[int, ...]


def import_graph(module: nn.Module, input: tuple[int, int, int]) -> GraphImport:
    """Trace ``module`` at ``input`` and return its graph layers (plain spec data)."""
    from torch.utils.flop_counter import flop_registry

    tr = trace(module, input)
    counted = frozenset(getattr(k, "__name__", str(k)).split(".")[-1] for k in flop_registry)
    counted = counted | frozenset(str(k).split(".")[-1] for k in flop_registry)
    low = _Lowering(tr, counted)
    low.run()
    output = low.rename.get(tr.output, tr.output)
    if output not in low.emitted:
        raise UsageError("the model's output is not written by any traced op")
    nodes = fold_linear_bias(_fold_linear_views(low.nodes, tr.tensors, {output}))
    nodes = _unpermute_dim0(nodes, tr.tensors, {output})
    segs = segment(nodes, tr.tensors, output, tr.containers)
    extra = unread_nodes(tr, low)
    layers = _with_unread(compact(add_classes(layers_of(segs, tr.tensors, output), module)), extra)
    whole = _with_unread(add_classes(layers_of([Segment("", nodes)], tr.tensors, output), module), extra)
    unread = [str(node["module"]) for node in extra]
    return GraphImport(layers, whole, low.problems, low.fallbacks, unread, tr.macs, tr.output_shape)


def _with_unread(layers: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers with the unread parameter / buffer nodes in the last one (a repeated last layer is unrolled
    once, so they are counted once)."""
    if not extra:
        return layers
    last = layers[-1]
    if last.get("repeat", 1) > 1:
        single = {k: v for k, v in last.items() if k != "repeat"}
        last["repeat"] -= 1
        if last["repeat"] == 1:
            del last["repeat"]
        single["name"] = f"{last['name']}.{last.get('repeat', 1)}"
        layers.append(single)
        last = single
    last["nodes"] = [*last["nodes"], *extra]
    if "output" not in last:
        last["output"] = _last_id(last)
    return layers


def _last_id(layer: dict[str, Any]) -> str:
    """Give the last node (before the unread ones are appended) an id for ``output``."""
    nodes = layer["nodes"]
    k = next(i for i in range(len(nodes) - 1, -1, -1) if not nodes[i].get("unread"))
    if "id" not in nodes[k]:
        nodes[k] = {"id": f"n{k}", **nodes[k]}
    return str(nodes[k]["id"])


def graph_spec(
    module: nn.Module,
    shape: tuple[int, int, int],
    *,
    name: str | None,
    origin: str,
    input_from: str,
) -> Any:
    """The validated spec of ``module`` as graph layers, with its :class:`~costmodel.importers.core.ImportReport`
    (source: ``sum(p.numel())``, ``sum(b.numel())``, FlopCounterMode // 2, the output shape). A spec that would
    count more params or MACs than the model is an internal error, never returned."""
    from ..engine.walk import analyze_spec
    from ..spec.loader import validate
    from .core import ImportReport, ImportSource

    g = import_graph(module, shape)
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    source = {"params": params, "buffers": buffers, "macs": g.macs, "output": g.output_shape[1:]}
    data: dict[str, Any] = {}
    if name:
        data["name"] = name
    data["input"] = {"channels": shape[0], "height": shape[1], "width": shape[2]}
    data["provenance"] = {"model": origin, "input": input_from, "scaling": "unknown"}
    data["layers"] = g.layers
    notes: list[str] = []
    if g.fallbacks:
        listed = ", ".join(f"{printable(k, 80)} ×{v}" for k, v in sorted(g.fallbacks.items(), key=lambda kv: -kv[1]))
        notes.append(
            printable(
                f"{sum(g.fallbacks.values())} ops outside the graph vocabulary are `aten` nodes (their output shape, "
                f"0 MACs, as FlopCounterMode counts them): {listed}",
                2000,
            )
        )
    if g.unread:
        shown = ", ".join(g.unread[:5]) + (", …" if len(g.unread) > 5 else "")
        notes.append(
            printable(
                f"{len(g.unread)} parameter or buffer tensors the forward never reads are `unread: true` nodes "
                f"(counted, as sum(p.numel()) counts them): {shown}",
                2000,
            )
        )
    kinds = {"graph": sum(int(layer.get("repeat", 1)) for layer in g.layers)}
    report = ImportReport(origin, source, {}, list(g.problems), notes, kinds)
    try:
        spec = validate(data, ImportSource(origin, report))
        r: Any = analyze_spec(spec)
    except SpecError:  # a cut the engine cannot follow (a batch it sees folded there): the graph as one layer
        data["layers"] = g.whole
        spec = validate(data, ImportSource(origin, report))
        r = analyze_spec(spec)
    report.spec = {
        "params": r.totals["params"],
        "buffers": r.totals["buffers"],
        "macs": r.totals["macs"],
        "output": tuple(r.output),
    }
    over = [k for k in ("params", "macs") if report.spec[k] > source[k]]
    if over:
        more = " and ".join(f"{k} ({report.spec[k]:,}) than the model has ({source[k]:,})" for k in over)
        raise InternalError(
            f"internal error: the graph spec imported from {printable(origin, 200)} counts more {more}; "
            "this is a costmodel bug, please report the model"
        )
    return spec
