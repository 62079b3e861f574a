"""Import a ``torch.nn.Module`` as a spec: trace it on the meta device, recognise its layers, check the counts.

The trace runs the module's own forward once, on ``meta`` tensors (shapes only, no compute, no weights
copied: the parameters are substituted with ``torch.func.functional_call``), under a dispatch mode that
records every aten op with the tensors it reads and writes, and module hooks that record the module
path each op runs in. Conv / batch-norm / activation / add / mul / mean / addmm … become
:class:`~costmodel.importers.recognise.Node`; views, flattens and dropout are aliases. The same pass
runs ``FlopCounterMode``, whose total / 2 is the MAC figure the import is checked against.

This module imports torch at the top; import it only when torch is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import CostModelError, UsageError
from ..spec import names as _names
from . import timm_overrides
from .dropouts import Dropout, drop_path_note, insert_dropouts, write_drop_path
from .families import recognise_scaling
from .recognise import Node
from .se_rules import harmonise_se, timm_se
from .sources import MAX_INPUT_SIZE, printable
from .stages import group_stages
from .tracing import leaves, scopes

_ALIASES = frozenset(
    {
        "view",
        "_unsafe_view",
        "reshape",
        "flatten",
        "clone",
        "contiguous",
        "detach",
        "alias",
        "squeeze",
        "unsqueeze",
        "expand",
        "dropout",
        "native_dropout",
        "feature_dropout",
        "lift_fresh",
        "_to_copy",
        "to",
        "permute",
        "as_strided",
        "transpose",
        "t",
    }
)
_ACTS = {
    **{aten: name for name, a in _names.ACTIVATIONS.items() for aten in a.aten},  # the spec's (spec/names.py)
    # activations the spec cannot name, recognised to be reported as such
    "tanh": "tanh",
    "elu": "elu",
    "leaky_relu": "leaky_relu",
    "mish": "mish",
    "softplus": "softplus",
    "prelu": "prelu",
    "_prelu_kernel": "prelu",
}
_NORMS = {aten: name for name, x in _names.NORMS.items() for aten in x.aten}  # spec/names.py
#: timm's channel-first RMS norms (MobileNetV5): x · rsqrt(mean_c(x²) + eps) · weight, run as small ops
_RMS_NORMS = frozenset({"RmsNorm2d", "RmsNormAct2d"})
#: Whether ``from_torch`` imports a model the block kinds do not say exactly as op graphs (importers/graph.py);
#: tests of the block recogniser's own reporting switch it off.
GRAPH_FALLBACK = True
_IGNORED = frozenset(
    {"empty", "zeros", "ones", "full", "scalar_tensor", "arange", "empty_like", "zeros_like", "_local_scalar_dense"}
)


@dataclass
class Trace:
    """What one meta-device forward pass recorded."""

    nodes: list[Node]
    output: int
    output_shape: tuple[int, ...]
    macs: int  # FlopCounterMode total / 2
    macs_odd: bool  # FlopCounterMode's total was odd (it never is for conv/linear)
    params_used: set[str]
    scope_types: dict[str, str]
    drops: list[Dropout]


def _pair(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return v[0] if len(set(v)) == 1 else tuple(v)
    return v


class _Recorder(TorchDispatchMode):  # type: ignore[no-untyped-call]
    def __init__(self, params: dict[int, tuple[str, int]], scope: list[str]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.params = params  # id(tensor) → (param name, numel)
        self.tensors: dict[int, int] = {}
        self.keep: list[Any] = []
        self.nodes: list[Node] = []
        self.scope = scope
        self.next = 1
        self.used: set[str] = set()
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.function: str = ""  # the torch-function-level call running now (see _Functions)
        self.drops: list[Dropout] = []  # F.dropout calls: no op at all in eval mode (see dropouts.py)

    def track(self, t: Any, tid: int) -> None:
        self.tensors[id(t)] = tid
        self.keep.append(t)
        self.shapes.setdefault(tid, tuple(t.shape))

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
        flat = [x for x in [*leaves(list(args)), *leaves(list(kwargs.values()))] if isinstance(x, torch.Tensor)]
        data = [self.tensors[id(x)] for x in flat if id(x) in self.tensors]
        params = [self.params[id(x)] for x in flat if id(x) in self.params]
        first = next(iter(leaves(out))) if isinstance(out, (list, tuple)) else out
        if not isinstance(first, torch.Tensor):
            return out
        for p, _ in params:  # read by a traced op: used, whether or not the op also reads activations
            self.used.add(p)  # (an index into a relative-position table, a norm of a weight, …)
        if not data:
            if params and base in ("t", "view", "transpose", "permute", "expand", "alias", "detach", "_to_copy"):
                self.params[id(first)] = params[0]
                self.keep.append(first)
            return out
        if base in _ALIASES or base == "slice" and tuple(first.shape) == tuple(flat[0].shape):
            self.track(first, data[0])
            return out
        x = next(t for t in flat if id(t) in self.tensors)
        if base in ("split", "split_with_sizes", "unbind", "chunk") and isinstance(out, (list, tuple)):
            sizes = [int(t.shape[1]) for t in out]
            for i, t in enumerate(out):
                node = self._node("split", str(func), args, data[:1], [], t, tuple(x.shape))
                node.op, node.attrs = "split", {"index": i, "sizes": sizes, "dim": len(x.shape) - len(t.shape) or 1}
                self.nodes.append(node)
                self.track(t, node.out)
            return out
        node = self._node(base, str(func), args, data, params, first, tuple(x.shape))
        if base == "gelu" and kwargs.get("approximate", "none") != "none":
            node.attrs["name"] = "gelu_tanh"  # not the spec's gelu (the erf form)
        self.nodes.append(node)
        self.track(first, node.out)
        return out

    def _node(
        self,
        base: str,
        full: str,
        args: Any,
        data: list[int],
        params: list[tuple[str, int]],
        out: Any,
        in_shape: tuple[int, ...],
    ) -> Node:
        tid = self.next
        self.next += 1
        shape = tuple(out.shape)
        scope = self.scope[-1] if self.scope else ""
        n_params = sum(n for _, n in params)
        ins = tuple(dict.fromkeys(data))
        attrs: dict[str, Any] = {}
        op = "other"
        if base == "convolution" and not args[6] and len(in_shape) == 4 and args[1].dim() == 4:
            w = args[1]
            if not params and len(data) == 1:
                attrs["fixed"] = True  # a fixed filter held in a buffer (timm's BlurPool2d)
            kh, kw = w.shape[2], w.shape[3]
            attrs = {
                **attrs,
                "kernel": kh if kh == kw else (kh, kw),
                "stride": _pair(args[3]),
                "padding": _pair(args[4]),
                "dilation": _pair(args[5]),
                "groups": int(args[8]),
                "bias": args[2] is not None,
                "in_channels": in_shape[1],
            }
            op = "conv"
        elif base in _NORMS:
            op = "norm"
            attrs = {"name": _NORMS[base], "affine": len(args) > 1 and args[1] is not None}
            if base == "native_group_norm":
                attrs["groups"] = int(args[6])
            shape = self.shapes.get(data[0], in_shape)  # LayerNorm2d permutes: the NCHW shape it normalises
            in_shape = shape
        elif base == "hardtanh":
            lo = args[1] if len(args) > 1 else -1.0
            hi = args[2] if len(args) > 2 else 1.0
            op, attrs = "act", {"name": "relu6" if (lo, hi) == (0.0, 6.0) else "hardtanh"}
        elif base in _ACTS:
            op, attrs = "act", {"name": _ACTS[base]}
        elif base in ("add", "mul") and len(data) == 2 and len(ins) >= 1:
            op = base
        elif base == "mul" and len(data) == 1 and params and len(in_shape) == 4:
            op = "scale"  # x · γ per channel (timm's LayerScale2d)
        elif _is_global_pool(base, args, in_shape, shape):
            fn = "functional" if "adaptive_avg_pool2d" in self.function else "mean"
            op, attrs = "pool", {"implementation": fn}
        elif base == "avg_pool2d" and len(in_shape) == 4:
            op, attrs = "avgpool", {"kernel": _pair(args[1]), "stride": _pair(args[2]) if len(args) > 2 else None}
        elif base == "max_pool2d_with_indices" and len(in_shape) == 4:
            k, st = _pair(args[1]), _pair(args[2]) if len(args) > 2 and args[2] else _pair(args[1])
            pad = _pair(args[3]) if len(args) > 3 else 0
            dil = _pair(args[4]) if len(args) > 4 else 1
            ceil = bool(args[5]) if len(args) > 5 else False
            op, attrs = "maxpool", {"kernel": k, "stride": st, "padding": pad, "dilation": dil, "ceil": ceil}
        elif base == "cat":
            op = "cat"
        elif base == "slice" and len(in_shape) == 4 and args[1] == 1:
            op = "slice" if shape != in_shape else "other"
        elif base in ("upsample_nearest2d", "upsample_bilinear2d", "_upsample_nearest_exact2d"):
            op = "upsample"
        elif base in ("reflection_pad2d", "replication_pad2d") and len(in_shape) == 4:
            op, attrs = "pad", {"pads": list(args[1]), "mode": base.split("_")[0]}
        elif base in ("addmm", "mm", "linear") and params:
            op, attrs = "linear", {"bias": base == "addmm" or (base == "linear" and len(params) > 1)}
        elif base == "constant_pad_nd" and len(in_shape) == 4:
            pads = list(args[1])
            op, attrs = "pad", {"pads": pads}
        return Node(op, ins, tid, shape, in_shape, scope, full, attrs, n_params)


_DROPOUTS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"})


class _Functions(TorchFunctionMode):
    """Tells the recorder which torch-level function is running, so a global pool can say how the model
    calls it: ``F.adaptive_avg_pool2d`` (inside an ``nn.AdaptiveAvgPool2d`` module or not) or ``x.mean``;
    and records each ``F.dropout`` call (``nn.Dropout`` and timm's head call it), which dispatches nothing in
    eval mode."""

    def __init__(self, rec: _Recorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in _DROPOUTS:
            kw = kwargs or {}
            p = kw.get("p", args[1] if len(args) > 1 else 0.5)
            scope = self.rec.scope[-1] if self.rec.scope else ""
            self.rec.drops.append(Dropout(name, float(p), scope, self.rec.next))
        outer = self.rec.function
        if name in ("adaptive_avg_pool2d", "mean"):
            self.rec.function = name
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.rec.function = outer


def _is_global_pool(base: str, args: Any, in_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """``x.mean((2, 3))`` / ``adaptive_avg_pool2d(x, 1)`` on an N×C×H×W tensor."""
    if base == "mean":
        return len(in_shape) == 4 and _hw(args[1] if len(args) > 1 else None)
    return base in ("_adaptive_avg_pool2d", "adaptive_avg_pool2d") and tuple(shape[2:]) == (1, 1)


def _hw(dims: Any) -> bool:
    if dims is None:
        return False
    return sorted(int(d) % 4 for d in dims) == [2, 3]


def trace(module: nn.Module, input: tuple[int, ...]) -> Trace:
    """Run ``module`` once on a meta tensor of shape (1, *input) in eval mode and record its op graph,
    its FlopCounterMode MACs and its output shape. The module itself is left as it was."""
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    subs: dict[str, torch.Tensor] = {}
    ids: dict[int, tuple[str, int]] = {}
    # one substitute per distinct tensor: functional_call ties the other names of a shared (tied) weight to it
    for n, p in module.named_parameters():
        t = torch.empty_like(p, device="meta")
        subs[n] = t
        ids[id(t)] = (n, p.numel())
    for n, b in module.named_buffers():
        subs[n] = torch.empty_like(b, device="meta")
    was = {m: m.training for m in module.modules()}
    stack: list[str] = []
    rec = _Recorder(ids, stack)
    x = torch.empty((1, *input), device="meta")
    rec.track(x, 0)
    counter = FlopCounterMode(display=False)
    module.eval()
    try:
        with torch.no_grad(), scopes(module, stack) as types, counter, rec, _Functions(rec):
            y = functional_call(module, subs, (x,), strict=False)
    except SystemExit as exc:  # the user's forward called sys.exit: not costmodel's exit status
        raise UsageError(
            f"the model's forward pass called sys.exit({printable(repr(exc.code), 60)}) on a meta tensor of shape "
            f"{(1, *input)}"
        ) from None
    except Exception as exc:  # the user's forward failed on a meta tensor
        why = printable(f"{type(exc).__name__}: {exc}", 300)
        raise UsageError(f"the model's forward pass failed on a meta tensor of shape {(1, *input)}: {why}") from None
    finally:
        for m, flag in was.items():
            m.train(flag)
    out = next((t for t in leaves(list(y.values()) if isinstance(y, dict) else y) if isinstance(t, torch.Tensor)), None)
    if out is None:
        raise UsageError("the model's forward returned no tensor")
    if id(out) not in rec.tensors:
        raise UsageError("the model's output does not depend on its input")
    flops = int(counter.get_total_flops())
    return Trace(
        nodes=rec.nodes,
        output=rec.tensors[id(out)],
        output_shape=tuple(out.shape[1:]),
        macs=flops // 2,
        macs_odd=flops % 2 == 1,
        params_used=rec.used,
        scope_types=types,
        drops=rec.drops,
    )


def _fold_modules(module: nn.Module, tr: Trace) -> None:
    """Norms that run as many small ops (timm's EvoNorm2dS0 / B0, RmsNorm2d / RmsNormAct2d) become one norm
    node each, read off the module: its groups and whether it applies its nonlinearity."""
    mods = dict(module.named_modules())
    out: list[Node] = []
    i = 0
    nodes = tr.nodes
    while i < len(nodes):
        n = nodes[i]
        kind = tr.scope_types.get(n.scope, "")
        if kind in _RMS_NORMS:  # timm's RmsNorm2d runs as pow, mean, add, rsqrt, mul, mul (its act is a child)
            j = i
            while j < len(nodes) and nodes[j].scope == n.scope:
                j += 1
            m = mods[n.scope]
            attrs = {"name": "rmsnorm", "affine": getattr(m, "weight", None) is not None}
            params = sum(x.params for x in nodes[i:j])
            last = nodes[j - 1]
            out.append(Node("norm", n.inputs[:1], last.out, last.shape, n.in_shape, n.scope, kind, attrs, params))
            i = j
            continue
        if kind.startswith("EvoNorm2d") and kind[9:11] in ("S0", "B0"):
            j = i
            while j < len(nodes) and nodes[j].scope == n.scope:
                j += 1
            m = mods[n.scope]
            name = "evonorm_" + kind[9:11].lower()
            attrs = {"name": name, "affine": True, "act": bool(getattr(m, "apply_act", True))}
            if hasattr(m, "groups"):
                attrs["groups"] = int(m.groups)
            params = sum(x.params for x in nodes[i:j])
            last = nodes[j - 1]
            out.append(Node("norm", n.inputs[:1], last.out, last.shape, n.in_shape, n.scope, kind, attrs, params))
            i = j
            continue
        out.append(n)
        i += 1
    tr.nodes = out


def totals(module: nn.Module) -> tuple[int, int]:
    """``(sum(p.numel() for p in parameters()), sum(b.numel() for b in buffers()))``."""
    return sum(p.numel() for p in module.parameters()), sum(b.numel() for b in module.buffers())


def _check_input(input: Any) -> tuple[int, int, int]:
    if (
        not isinstance(input, (tuple, list))
        or len(input) != 3
        or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_INPUT_SIZE for v in input)
    ):
        raise UsageError(
            f"input must be (channels, height, width), three integers in 1 … {MAX_INPUT_SIZE:,}; "
            f"got {printable(repr(input), 80)}"
        )
    return int(input[0]), int(input[1]), int(input[2])


def _post(
    data: dict[str, Any],
    problems: list[Any],
    module: nn.Module,
    tr: Trace,
    depth: list[tuple[str, str, float]],
    notes: list[str],
) -> None:
    """The post-passes on the spec data: dropouts where they ran; stochastic depth as ``drop_path`` (else a
    note); timm's classes (``implementation``) and the MobileNetV5 adapter's resize (timm_overrides.py); one SE
    rule for the model where one fits (se_rules.py); equal
    consecutive blocks of a stage as one layer with ``repeat`` (stages.py); the scaling rules of a recognised
    family (families.py)."""
    insert_dropouts(data, tr.drops, tr.nodes, problems)
    if not write_drop_path(data, depth):
        note = drop_path_note(depth)
        if note:
            notes.append(note)
    timm = timm_overrides.is_timm(module)
    if timm:
        timm_overrides.apply(data, module)
        timm_overrides.fusion_resize(data, module)
    if not (timm and timm_se(data, type(module).__name__)):
        harmonise_se(data)
    group_stages(data)
    recognise_scaling(data, module)


def from_torch(
    module: nn.Module,
    input: tuple[int, int, int] = (3, 224, 224),
    *,
    name: str | None = None,
    origin: str = "<torch>",
    symbolic_resolution: bool = False,
    input_from: str | None = None,
) -> Any:
    """The spec of ``module`` traced at ``input`` = (C, H, W), with its ImportReport attached
    (``costmodel.importers.report_of(spec)``). ``input_from`` says where ``input`` came from (the spec's
    ``provenance.input``; default: given to from_torch). See ``costmodel.from_torch``."""
    if not isinstance(module, nn.Module):
        raise UsageError(f"expected a torch.nn.Module, got {type(module).__name__}")
    shape = _check_input(input)
    where = f"{'x'.join(map(str, shape))} from {input_from or 'the input given to from_torch'}"
    try:
        spec = _from_torch_blocks(module, shape, name, origin, symbolic_resolution, where)
    except CostModelError as exc:  # the block kinds cannot say it (or the recorder cannot trace it): op graphs can
        blocks_error: CostModelError | None = exc
        spec = None
    else:
        blocks_error = None
        from .core import report_of

        report = report_of(spec)
        if report is None or report.exact:
            return spec  # the block kinds are exact: the readable spec, unchanged
    if symbolic_resolution:  # op graphs hold literal shapes at the traced size: the block import's answer
        if spec is not None:
            return spec
        assert blocks_error is not None
        raise blocks_error
    if not GRAPH_FALLBACK:
        if spec is not None:
            return spec
        assert blocks_error is not None
        raise blocks_error
    from .graph import InternalError, graph_spec

    try:
        return graph_spec(module, shape, name=name, origin=origin, input_from=where)
    except InternalError:
        raise
    except CostModelError as exc:  # the op graph could not be traced or said: the block import's partial spec
        if spec is None:
            raise
        from .core import report_of
        from .recognise import Problem

        report = report_of(spec)
        if report is not None:
            why = printable(str(exc), 400)
            report.problems.insert(0, Problem("graph", "", f"the op-graph fallback failed: {why}"))
        return spec


def _from_torch_blocks(
    module: nn.Module,
    shape: tuple[int, int, int],
    name: str | None,
    origin: str,
    symbolic_resolution: bool,
    where: str,
) -> Any:
    """The block-kind import (recognise.py): the spec with its report, exact or partial."""
    from .core import build

    tr = trace(module, shape)
    for node in tr.nodes:
        pooled = node.op == "pool" and node.attrs["implementation"] == "functional"
        if pooled and tr.scope_types.get(node.scope, "").endswith("Pool2d"):  # nn.AdaptiveAvgPool2d, timm's Select…
            node.attrs["implementation"] = "module"
    _fold_modules(module, tr)
    params, buffers = totals(module)
    names = {n for n, _ in module.named_parameters()}
    unused = sorted(names - tr.params_used)
    notes: list[str] = []
    every = dict(module.named_parameters(remove_duplicate=False))
    if len(every) > len(names):
        first = {id(p): k for k, p in reversed(list(every.items()))}
        tied = sorted(f"{k} is {first[id(p)]}" for k, p in every.items() if k not in names)
        notes.append(
            printable(
                f"{len(tied)} parameter name{' is' if len(tied) == 1 else 's are'} tied to another's tensor "
                f"({', '.join(tied[:3])}"
                f"{', …' if len(tied) > 3 else ''}): torch counts a tied tensor once, the spec once per layer "
                "that reads it",
                600,
            )
        )
    depth = [
        (type(m).__name__, n, float(p))
        for n, m in module.named_modules()
        if type(m).__name__ in ("StochasticDepth", "DropPath")
        and (p := getattr(m, "p", getattr(m, "drop_prob", 0.0)) or 0.0) > 0
    ]
    source = {"params": params, "buffers": buffers, "macs": tr.macs, "output": tr.output_shape}
    spec = build(
        tr.nodes,
        tr.output,
        shape,
        origin,
        name,
        source,
        notes,
        symbolic_resolution,
        input_from=where,
        post=lambda data, problems: _post(data, problems, module, tr, depth, notes),
    )
    if unused:
        from .core import report_of
        from .recognise import Problem

        report = report_of(spec)
        if report is not None:
            n = sum(p.numel() for k, p in module.named_parameters() if k in set(unused))
            report.problems.append(
                Problem(
                    "parameters",
                    printable(unused[0], 200),
                    f"{len(unused)} parameter tensors ({n} elements) the forward never reads",
                )
            )
    return spec
