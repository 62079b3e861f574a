"""What the counting tools see of an imported graph, recorded beside the aten trace (issue #22, docs/conventions.md,
Graph layers): the torch callable each op ran as (``call``), the exact class of each module (``classes``), SDPA as
one ``sdpa`` node, and a linear's bias split off by the trace put back on the linear.

* :class:`Calls` is a ``TorchFunctionMode`` entered with the importer's dispatch recorder: it sees the outermost
  torch callable of each op (``F.gelu``, ``Tensor.add``, ``torch.matmul`` …; inner calls run with the mode off) and
  hands its name to the recorder. ``x + y`` and ``x.add(y)`` reach it as the same ``Tensor.add``: during the trace
  the operator methods (:data:`OPERATOR_METHODS`) are wrapped, as ptflops patches them, so a call by name is
  ``torch.Tensor.add``; otherwise the calling frame's ``BINARY_OP`` instruction makes it ``operator.add``
  (``operator.iadd`` for ``+=``), and anything else (builtin ``sum``) has no call: ptflops then refuses the node.
* ``F.scaled_dot_product_attention`` runs as its math decomposition on the meta device (bmm, softmax …); its window
  of recorded ops becomes one ``sdpa`` node when the window's only counted ops are its two bmm whose MACs equal the
  sdpa formula's ∏batch·Sq·Sk·(Dq + Dv) (FlopCounterMode's total is then unchanged: the import stays exact).
* :func:`fold_linear_bias`: ``linear`` (no bias) → ``add`` of a ``param`` [out], the linear's own bias read only
  there (how ``F.linear`` on a non-contiguous 3-D input is traced: matmul + add), is one ``linear`` with ``bias``.
* :func:`add_classes`: each layer's ``classes`` from ``module.named_modules()``.

This module imports torch at the top; import it only when torch is installed.
"""

from __future__ import annotations

import dis
import re
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .sources import printable

#: Graph ops whose count in some tool depends on how they were called (ptflops's patched callables; a ``mean``
#: that is ``F.adaptive_avg_pool2d``): the only nodes the importer writes ``call`` on.
CALLED_OPS = frozenset(
    {"relu", "relu6", "elu", "leaky_relu", "gelu", "gelu_tanh", "silu", "softmax", "log_softmax"}
    | {"avg_pool", "max_pool", "adaptive_avg_pool", "adaptive_max_pool", "interpolate", "matmul", "bmm"}
    | {"add", "mul", "mean"}
)

_NAMES: dict[int, str] = {}
_PATCHING = threading.RLock()
_KEEP: list[Any] = []


def _names() -> dict[int, str]:
    """id(callable) → its public name; torch.nn.functional's names win over torch.Tensor's over torch's."""
    if not _NAMES:
        owners = ((torch, "torch."), (torch.Tensor, "torch.Tensor."), (nn.functional, "torch.nn.functional."))
        for owner, prefix in owners:
            for n in dir(owner):
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__")):
                    continue
                try:
                    obj = getattr(owner, n)
                except Exception:  # noqa: BLE001 - a lazy attribute that fails to load is no callable
                    continue
                if callable(obj) and not isinstance(obj, type):
                    _NAMES[id(obj)] = prefix + n
                    _KEEP.append(obj)
    return _NAMES


#: Python's binary operator symbols (dis) → the ``operator`` module's names.
_SYMBOLS = {
    "+": "add", "-": "sub", "*": "mul", "@": "matmul", "/": "truediv", "//": "floordiv", "%": "mod", "**": "pow",
    "&": "and_", "|": "or_", "^": "xor", "<<": "lshift", ">>": "rshift",
}  # fmt: skip


def _operator(frame: FrameType | None) -> str | None:
    """``operator.add`` (``operator.iadd`` in place …) when the code at ``frame`` is at a binary operator."""
    if frame is None:
        return None
    code, at = frame.f_code.co_code, frame.f_lasti
    if not 0 <= at < len(code) - 1:
        return None
    name = dis.opname[code[at]]
    if name != "BINARY_OP":
        return None
    ops = getattr(dis, "_nb_ops", None)
    arg = code[at + 1]
    if ops is None or arg >= len(ops):
        return None
    sym = str(ops[arg][1])
    inplace = sym.endswith("=") and sym not in ("==",)
    base = _SYMBOLS.get(sym.rstrip("=") if inplace else sym)
    if base is None:
        return None
    return "operator." + ("i" + base.rstrip("_") if inplace else base)


#: Tensor methods that Python's operators reach too (``x + y`` runs ``Tensor.add`` as ``x.add(y)`` does): the
#: trace wraps them, as ptflops patches them, to see the ones called by name.
OPERATOR_METHODS = ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "matmul", "pow", "pow_")


def call_name(func: Any, frame: FrameType | None, called: str | None = None) -> str | None:
    """The public name of the torch callable ``func`` as the code at ``frame`` called it; ``called``: the
    :data:`OPERATOR_METHODS` entry the code called by name, if any. None: an operator method reached neither by
    name nor by an operator (builtin ``sum(xs)`` adds by ``nb_add``): not told."""
    name = _names().get(id(func))
    if name is None:
        mod = getattr(func, "__module__", None) or "torch"
        name = f"{mod}.{getattr(func, '__qualname__', getattr(func, '__name__', type(func).__name__))}"
        name = name.replace("torch._C.TensorBase.", "torch.Tensor.").replace("None.TensorBase.", "torch.Tensor.")
        if name.startswith("torch._C._nn."):
            name = "torch.nn.functional." + name.removeprefix("torch._C._nn.")
    if name.startswith("torch.Tensor."):
        m = re.fullmatch(r"torch\.Tensor\.__(r|i)?(\w+?)__", name)
        if m:  # a dunder reached directly (Python-defined ones: __rsub__ …)
            return "operator." + ("i" if m.group(1) == "i" else "") + m.group(2)
        method = name.removeprefix("torch.Tensor.")
        if method in OPERATOR_METHODS and called != method:
            return _operator(frame)
    return printable(name, 200)


@dataclass
class Fused:
    """A window of recorded ops (``start`` … ``end`` − 1) that one call ran, to be written as one ``op`` node
    reading ``inputs`` (tids) and writing ``out``."""

    op: str
    start: int
    end: int
    inputs: list[int]
    out: int


class Calls(TorchFunctionMode):
    """Hands the outermost torch callable of each dispatched op to ``recorder.call``; records the op windows of
    ``F.scaled_dot_product_attention`` calls (``fused``, by the window's first op index)."""

    def __init__(self, recorder: Any) -> None:
        super().__init__()
        self.rec = recorder
        self.fused: dict[int, Fused] = {}
        self.called: str | None = None  # the operator method the code called by name (its wrapper sets it)
        self.saved: dict[str, Any] = {}
        self.wrapped: dict[int, str] = {}  # id(wrapper) → the method it wraps

    def __enter__(self) -> Calls:
        _PATCHING.acquire()  # one trace at a time wraps torch.Tensor's methods (threads would restore a wrapper)
        try:
            _names()  # the original methods' names, before they are wrapped
            for m in OPERATOR_METHODS:
                self.saved[m] = torch.Tensor.__dict__.get(m)  # None: inherited from TensorBase
                original = getattr(torch.Tensor, m)
                wrapper = self._wrap(m, original)
                self.wrapped[id(wrapper)] = m
                setattr(torch.Tensor, m, wrapper)
            super().__enter__()  # type: ignore[no-untyped-call]
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)  # type: ignore[no-untyped-call]
        finally:
            self._restore()

    def _restore(self) -> None:
        for m, own in self.saved.items():
            if own is None:
                delattr(torch.Tensor, m)
            else:
                setattr(torch.Tensor, m, own)
        self.saved.clear()
        self.wrapped.clear()
        _PATCHING.release()

    def _wrap(self, method: str, original: Any) -> Any:
        def by_name(*args: Any, **kwargs: Any) -> Any:
            self.called = method
            try:
                return original(*args, **kwargs)
            finally:
                self.called = None

        return by_name

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        method = self.wrapped.get(id(func))
        if method is not None:  # an operator method, as the patched attribute (x + y looks it up too)
            name = f"torch.Tensor.{method}" if self.called == method else _operator(sys._getframe(1))
        else:
            name = call_name(func, sys._getframe(1), self.called)
        self.called = None
        before, start = self.rec.call, len(self.rec.ops)
        self.rec.call = name
        try:
            out = func(*args, **kwargs)
        finally:
            self.rec.call = before
        if name == "torch.nn.functional.scaled_dot_product_attention" and isinstance(out, torch.Tensor):
            self._sdpa(start, out, args, kwargs)
        return out

    def _sdpa(self, start: int, out: Any, args: Any, kwargs: dict[str, Any]) -> None:
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        given = dict(zip(names, args, strict=False)) | kwargs
        if given.get("dropout_p", 0.0) or given.get("enable_gqa", False):
            return
        ts = [given.get(k) for k in ("query", "key", "value")]
        mask = given.get("attn_mask")
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype == torch.bool:
                return  # a boolean mask is a where, not an add: not what the sdpa node's FLOPs say
            ts.append(mask)
        if not all(isinstance(t, torch.Tensor) for t in ts):
            return
        tids = [self.rec.ids.get(id(t)) for t in ts]
        o = self.rec.ids.get(id(out))
        if o is None or any(t is None for t in tids) or len(self.rec.ops) == start:
            return
        q, k, v = (tuple(int(s) for s in t.shape) for t in ts[:3] if t is not None)
        if len(q) < 2 or len(q) != len(k) or len(k) != len(v) or q[:-2] != k[:-2] or k[:-2] != v[:-2]:
            return
        want = 1
        for s in q[:-2]:
            want *= s
        want *= q[-2] * k[-2] * (q[-1] + v[-1])
        from torch.utils.flop_counter import flop_registry

        counted = {str(getattr(f, "__name__", f)).split(".")[-1] for f in flop_registry}
        counted |= {str(f).split(".")[-1] for f in flop_registry}
        got = 0
        for op in self.rec.ops[start:]:
            if op.fn == "bmm":
                a, b = (self.rec.tensors[op.ins[0]].shape, self.rec.tensors[op.ins[1]].shape)
                got += a[0] * a[1] * a[2] * b[2]
            elif op.fn in counted:
                return  # counted other than as bmm: the window stays as traced
        if got != want:
            return
        self.fused[start] = Fused("sdpa", start, len(self.rec.ops), [t for t in tids if t is not None], o)


def fold_linear_bias(nodes: list[Any]) -> list[Any]:
    """``linear`` without bias → ``add`` of the linear's own bias (a ``param`` [out] named like its weight, read only
    by that add) is one ``linear`` with ``bias: true``: the same params, MACs (the add counts none) and FLOPs
    (numel(out) for the bias either way)."""
    readers: dict[int, int] = {}
    for n in nodes:
        for t in n.inputs:
            readers[t] = readers.get(t, 0) + 1
    by_out = {n.out: k for k, n in enumerate(nodes)}
    drop: set[int] = set()
    for k, n in enumerate(nodes):
        if n.op != "add" or len(n.inputs) != 2:
            continue
        lk, pk = by_out.get(n.inputs[0]), by_out.get(n.inputs[1])
        if lk is None or pk is None:
            continue
        lin, par = nodes[lk], nodes[pk]
        if lin.op != "linear" or lin.fields.get("bias") is not False or len(lin.owns) != 1 or len(lin.inputs) != 1:
            continue
        if par.op != "param" or par.fields.get("shape") != [lin.fields.get("out")] or len(par.owns) != 1:
            continue
        if readers.get(lin.out) != 1 or readers.get(par.out) != 1 or lin.scope != n.scope:
            continue
        if not lin.owns[0].endswith("weight") or par.owns[0] != lin.owns[0].removesuffix("weight") + "bias":
            continue
        lin.fields["bias"] = True
        lin.owns = [*lin.owns, *par.owns]
        lin.out = n.out
        drop.update((k, pk))
    return [n for k, n in enumerate(nodes) if k not in drop]


def _qual(m: nn.Module) -> str:
    return printable(f"{type(m).__module__}.{type(m).__qualname__}", 200)


def add_classes(layers: list[dict[str, Any]], module: nn.Module) -> list[dict[str, Any]]:
    """Each layer's ``classes`` (docs/spec.md): ``/`` and ``/PATH`` the model and the modules above the layer's
    name, ``""`` the layer's own module, and each node's module and the modules between (relative to the name);
    a layer whose name is no module path (``model``, ``x~2`` of one split twice keeps ``x``) is the model's."""
    mods = {printable(n, 200): m for n, m in module.named_modules()}
    for layer in layers:
        own = re.sub(r"~\d+$", "", str(layer.get("name") or ""))
        if own not in mods:
            own = ""
        classes: dict[str, str] = {"/": _qual(module)}
        parts = own.split(".") if own else []
        for k in range(1, len(parts)):
            prefix = ".".join(parts[:k])
            if prefix in mods:
                classes["/" + prefix] = _qual(mods[prefix])
        classes[""] = _qual(mods[own])
        for node in layer["nodes"]:
            steps = str(node.get("module") or "").split(".")
            for k in range(1, len(steps) + 1):
                rel = ".".join(steps[:k])
                full = f"{own}.{rel}" if own else rel
                if rel and full in mods:
                    classes[rel] = _qual(mods[full])
        nodes = layer.pop("nodes")
        layer["classes"] = classes
        layer["nodes"] = nodes  # classes before the nodes, as docs/spec.md writes them
    return layers
