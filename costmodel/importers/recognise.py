"""Recognise costmodel layers in a traced op graph: framework-neutral, shared by the torch and ONNX importers.

A tracer (importers/torch.py, importers/onnx.py) turns a model into a list of :class:`Node` in execution
order: one per counted op (conv, norm, activation, add, mul, pool, linear, pad, …), each naming the data
tensors it reads, the tensor it writes, its output shape and the module path it ran in. Shape-only ops
(view, flatten, dropout at inference) are aliases and make no node.

Recognition runs in two passes:

1. **structure** (:func:`parse`): the graph is read as a chain from the input to the output. A tensor
   read by two ops opens a branch: ``add(x, F(x))`` is a residual, ``mul(x, G(x))`` with ``G`` ending in
   a gate is squeeze-excitation, and ``add(F(x), S(x))`` with two branches is a bottleneck with a
   shortcut. The result is a list of :class:`Unit` (conv + norm + activation, SE, residual, pool, …).
2. **kinds** (:data:`MATCHERS`): each matcher turns a run of units into one layer dict of the spec,
   tried highest-level first (MBConv, Fused-MBConv, bottleneck, basic, depthwise-separable, then the
   primitives conv, pool, linear). A new block kind plugs in as one more matcher.

What matches nothing is kept as a primitive where the spec can say it, else reported as a
:class:`Problem` (the op, its module path, why) — never dropped silently.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..errors import UsageError
from ..spec.fields import se_ratio
from ..spec.scaling import make_divisible

#: Activations the spec's ``activation`` can name, and the gates SE's ``se_gate`` can name.
ACTIVATIONS = frozenset({"relu", "relu6", "silu", "hardswish"})
GATES = frozenset({"sigmoid", "hardsigmoid"})


@dataclass
class Node:
    """One counted op of a traced model.

    ``op`` is one of ``conv``, ``norm``, ``act``, ``add``, ``mul``, ``pool``, ``linear``, ``pad`` or
    ``other``; ``inputs`` are the data tensors it reads (tensor 0 is the model input), ``out`` the tensor it
    writes, ``shape`` its output shape with the batch. ``attrs`` holds what the op's kind needs (conv:
    ``kernel``, ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``, ``in_channels``; act:
    ``name``; norm: ``name``, ``affine``; linear: ``bias``; pad: ``pads``). ``params`` is the number of
    learnable elements it reads; ``scope`` the module path it ran in; ``name`` the framework's op name.
    """

    op: str
    inputs: tuple[int, ...]
    out: int
    shape: tuple[int, ...]
    in_shape: tuple[int, ...]
    scope: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: int = 0


@dataclass(frozen=True)
class Problem:
    """Something of the model the spec does not express: the op, the module path and why."""

    op: str
    scope: str
    message: str

    def __str__(self) -> str:
        return f"{self.op} at {self.scope or '<top>'}: {self.message}"


class StructureError(Exception):
    """The graph has a shape the sequential layer list cannot say (e.g. an add whose skip is not the
    block input)."""

    def __init__(self, node: Node, message: str) -> None:
        super().__init__(message)
        self.node = node


@dataclass
class Unit:
    """A recognised piece of the chain.

    ``kind``: ``conv`` (``nodes`` = pad?, conv, norm?, act?), ``act``, ``norm``, ``pool``, ``linear``,
    ``se`` (``inner`` = the gate branch), ``residual`` (``inner`` = the main branch, ``shortcut`` = the
    shortcut branch or None for the identity, ``post`` = an activation after the add), ``other``.
    """

    kind: str
    nodes: list[Node]
    inner: list[Unit] = field(default_factory=list)
    shortcut: list[Unit] | None = None
    post: Node | None = None

    # conv units
    @property
    def conv(self) -> Node:
        """The conv node of a conv unit."""
        return next(n for n in self.nodes if n.op == "conv")

    @property
    def norm(self) -> Node | None:
        """The norm node of a conv unit, if any."""
        return next((n for n in self.nodes if n.op == "norm"), None)

    @property
    def act(self) -> Node | None:
        """The activation node of a conv unit, if any."""
        return next((n for n in self.nodes if n.op == "act"), None)

    def all_nodes(self) -> list[Node]:
        """Every node of the unit, nested ones included, in order."""
        out: list[Node] = []
        for u in self.inner:
            out += u.all_nodes()
        for u in self.shortcut or []:
            out += u.all_nodes()
        out += self.nodes
        if self.post is not None:
            out.append(self.post)
        return out

    @property
    def scope(self) -> str:
        """The deepest module path holding every node of the unit (the first node's, if none)."""
        scopes = [n.scope.split(".") for n in self.all_nodes() if n.scope]
        if not scopes:
            return ""
        common: list[str] = []
        for parts in zip(*scopes, strict=False):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        return ".".join(common) if common else ".".join(scopes[0])


# ----------------------------------------------------------------------------------------- structure


class Graph:
    """The nodes with, for every tensor, the positions of the nodes that read it."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = list(nodes)
        self.readers: dict[int, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in dict.fromkeys(n.inputs):
                self.readers.setdefault(t, []).append(i)

    def parse(self, lo: int, hi: int, cur: int) -> tuple[list[Unit], int]:
        """The nodes ``lo..hi-1`` read as a chain from tensor ``cur``: their units and the end tensor."""
        units: list[Unit] = []
        p = lo
        while p < hi:
            node = self.nodes[p]
            if cur not in node.inputs:
                raise StructureError(node, "reads a tensor that is not the running feature map (a branch)")
            others = [q for q in self.readers.get(cur, []) if p < q < hi]
            if not others:
                units.append(Unit("prim", [node]))
                cur = node.out
                p += 1
                continue
            q = others[0]
            join = self.nodes[q]
            if len(others) == 1 and join.op in ("add", "mul"):
                inner, end = self.parse(p, q, cur)
                if set(join.inputs) != {cur, end}:
                    raise StructureError(join, f"{join.op} does not join the branch with the block input")
                if join.op == "add":
                    units.append(Unit("residual", [join], merge(inner)))
                else:
                    units.append(_gate_unit(join, merge(inner)))
                cur = join.out
                p = q + 1
                continue
            if len(others) == 1:  # a second branch from cur: a shortcut conv, joined by an add
                main, m = self.parse(p, q, cur)
                adds = [r for r in self.readers.get(m, []) if r > q and self.nodes[r].op == "add"]
                if not adds or adds[0] >= hi:
                    raise StructureError(join, "a branch that no add joins")
                r = adds[0]
                short, s = self.parse(q, r, cur)
                if set(self.nodes[r].inputs) != {m, s}:
                    raise StructureError(self.nodes[r], "add does not join the two branches")
                unit = Unit("residual", [self.nodes[r]], merge(main), merge(short))
                cur = self.nodes[r].out
                p = r + 1
                units.append(unit)
                continue
            raise StructureError(join, f"the tensor is read by {len(others) + 1} ops (a multi-way branch)")
        return units, cur


def _gate_unit(mul: Node, inner: list[Unit]) -> Unit:
    """``x · G(x)``: SE when G is pool → … → gate; ``x · sigmoid(x)`` is SiLU, ``x · hardsigmoid(x)``
    hardswish; anything else is kept as an uncounted multiply."""
    if len(inner) == 1 and inner[0].kind == "act" and inner[0].nodes[0].attrs.get("name") in GATES:
        gate = inner[0].nodes[0]
        name = "silu" if gate.attrs["name"] == "sigmoid" else "hardswish"
        fused = Node("act", gate.inputs, mul.out, mul.shape, gate.in_shape, gate.scope, gate.name, {"name": name})
        return Unit("act", [fused])
    if inner and inner[0].kind == "pool":
        return Unit("se", [mul], inner)
    return Unit("other", [mul], inner)


def merge(units: list[Unit]) -> list[Unit]:
    """Primitive units folded into conv units (pad? → conv → norm? → act?) and typed by their op."""
    out: list[Unit] = []
    i = 0
    while i < len(units):
        u = units[i]
        if u.kind == "residual" and i + 1 < len(units) and _is_act(units[i + 1]):
            u.post = units[i + 1].nodes[0]
            out.append(u)
            i += 2
            continue
        if u.kind != "prim":
            out.append(u)
            i += 1
            continue
        node = u.nodes[0]
        if (
            node.op == "pad"
            and i + 1 < len(units)
            and units[i + 1].kind == "prim"
            and units[i + 1].nodes[0].op == "conv"
        ):
            group = [node, units[i + 1].nodes[0]]
            i += 2
        elif node.op == "conv":
            group = [node]
            i += 1
        else:
            out.append(Unit(node.op if node.op in ("act", "norm", "pool", "linear") else "other", [node]))
            i += 1
            continue
        if i < len(units) and units[i].kind == "prim" and units[i].nodes[0].op == "norm":
            group.append(units[i].nodes[0])
            i += 1
        if i < len(units) and _is_act(units[i]):
            group.append(units[i].nodes[0])
            i += 1
        out.append(Unit("conv", group))
    return out


def _is_act(u: Unit) -> bool:
    """An activation a conv unit can carry (gates and unknown activations stay units of their own)."""
    return u.kind in ("prim", "act") and u.nodes[0].op == "act" and u.nodes[0].attrs.get("name") in ACTIVATIONS


# ------------------------------------------------------------------------------------------- matchers


class Fit:
    """Checks of conv units against one block: shared norm, bias and activation."""

    def __init__(self) -> None:
        self.norm: str | None = None
        self.bias: bool | None = None
        self.act: str | None = None
        self.ok = True

    def conv(
        self,
        u: Unit,
        *,
        act: bool,
        kernel1: bool | None = None,
        depthwise: bool | None = None,
        stride1: bool = False,
    ) -> Unit:
        """Check one conv unit; ``act``: whether it must carry the block activation."""
        if u.kind != "conv" or not conv_expressible(u):
            self.ok = False
            return u
        c = u.conv
        a = c.attrs
        norm = norm_name(u)
        if norm is None:
            self.ok = False
        if self.norm is None:
            self.norm = norm
        elif norm != self.norm:
            self.ok = False
        bias = bool(a["bias"])
        if self.bias is None:
            self.bias = bias
        elif bias != self.bias:
            self.ok = False
        if kernel1 is True and a["kernel"] != 1 or kernel1 is False and a["kernel"] == 1:
            self.ok = False
        dw = a["groups"] == a["in_channels"] == c.shape[1] and a["groups"] > 1
        if depthwise is True and not dw or depthwise is False and a["groups"] != 1:
            self.ok = False
        if stride1 and a["stride"] != 1:
            self.ok = False
        got = u.act.attrs["name"] if u.act is not None else None
        if act:
            if got not in ACTIVATIONS:
                self.ok = False
            elif self.act is None:
                self.act = got
            elif got != self.act:
                self.ok = False
        elif got is not None:
            self.ok = False
        return u

    def fields(self) -> dict[str, Any]:
        """The block's activation, norm and bias fields."""
        return {"activation": self.act or "none", "norm": self.norm or "none", "bias": bool(self.bias)}


def norm_name(u: Unit) -> str | None:
    """``batchnorm``/``none`` for the norm of a conv unit, or None if the spec cannot name it."""
    n = u.norm
    if n is None:
        return "none"
    if n.attrs.get("name") == "batchnorm" and n.attrs.get("affine", True):
        return "batchnorm"
    return None


def conv_expressible(u: Unit) -> bool:
    """Whether the spec's conv (odd square kernel, same padding k//2, square stride, no dilation) gives
    this conv's output size at every resolution."""
    c = u.conv
    a = c.attrs
    k, s = a["kernel"], a["stride"]
    if not isinstance(k, int) or k % 2 == 0 or not isinstance(s, int) or a.get("dilation", 1) != 1:
        return False
    pad = next((n for n in u.nodes if n.op == "pad"), None)
    if pad is None:
        return bool(a.get("padding") == k // 2)
    # 'same' padding (timm's Conv2dSame, TF ports): output ceil(H / s), as padding k//2 gives
    h, w = pad.in_shape[2], pad.in_shape[3]
    return a.get("padding") == 0 and c.shape[2] == -(-h // s) and c.shape[3] == -(-w // s)


def se_fields(se: Unit, block_in: int, width: int) -> dict[str, Any] | None:
    """SE fields giving this SE unit's squeeze width, or None if the spec's SE cannot say it.

    The spec's SE: avgpool → 1×1 conv+bias → act → 1×1 conv+bias → gate → x · gate. The squeeze width S
    is written as the family's own rule where one fits (0.25 of the block input, 0.25 of the expanded
    width rounded to 8, …), else as an exact ratio r with floor(base × r) = S.
    """
    inner = se.inner
    kinds = [u.kind for u in inner]
    if kinds not in (["pool", "conv", "conv", "act"], ["pool", "linear", "act", "linear", "act"]):
        return None
    if kinds[1] == "conv":
        reduce, expand, gate = inner[1], inner[2], inner[3]
        if reduce.norm is not None or expand.norm is not None or expand.act is not None:
            return None
        if reduce.conv.attrs["kernel"] != 1 or expand.conv.attrs["kernel"] != 1:
            return None
        if reduce.conv.attrs["groups"] != 1 or expand.conv.attrs["groups"] != 1:
            return None
        if not (reduce.conv.attrs["bias"] and expand.conv.attrs["bias"]):
            return None
        squeeze = reduce.conv.shape[1]
        act = reduce.act.attrs["name"] if reduce.act is not None else "none"
        gate_name = gate.nodes[0].attrs.get("name")
    else:
        fc1, a1, fc2, gate = inner[1], inner[2], inner[3], inner[4]
        if not (fc1.nodes[0].attrs.get("bias") and fc2.nodes[0].attrs.get("bias")):
            return None
        squeeze = fc1.nodes[0].shape[-1]
        act = a1.nodes[0].attrs.get("name", "")
        gate_name = gate.nodes[0].attrs.get("name")
    if gate_name not in GATES or act not in ACTIVATIONS | {"none"}:
        return None
    out = {"se_activation": act, "se_gate": gate_name}
    for ratio in (0.25, 0.5, 0.125, 1.0, 0.0625):
        for base_name, base in (("input", block_in), ("expanded", width)):
            raw = math.floor(base * ratio)
            if max(1, raw) == squeeze:
                return {"se": ratio, "se_base": base_name, **out}
            if raw >= 1 and make_divisible(raw, 8) == squeeze:
                return {"se": ratio, "se_base": base_name, "se_divisor": 8, **out}
    for base_name, base in (("input", block_in), ("expanded", width)):
        if squeeze <= base:
            r = 1.0 if squeeze == base else (squeeze + 0.5) / base
            fr = se_ratio(r)
            if max(1, base * fr.numerator // fr.denominator) == squeeze and Fraction(0) < fr <= 1:
                return {"se": r, "se_base": base_name, **out}
    return None


def _expansion(cin: int, mid: int) -> dict[str, Any]:
    if mid % cin == 0:
        return {"expansion": mid // cin}
    return {"expanded_channels": mid}


def _conv_fields(u: Unit) -> dict[str, Any]:
    a = u.conv.attrs
    return {"kernel": a["kernel"], "stride": a["stride"]}


Layer = dict[str, Any]
BodyMatcher = Callable[[list[Unit], bool], Layer | None]


def match_mbconv(units: list[Unit], residual: bool) -> Layer | None:
    """[1×1 expand + act] → k×k depthwise + act → [SE] → 1×1 linear projection (MBConv)."""
    f = Fit()
    us = list(units)
    expand = None
    if len(us) >= 3 and us[0].kind == "conv" and us[1].kind == "conv" and us[1].conv.attrs["groups"] > 1:
        expand = f.conv(us.pop(0), act=True, kernel1=True, depthwise=False, stride1=True)
    if len(us) < 2 or us[0].kind != "conv":
        return None
    dw = f.conv(us.pop(0), act=True, depthwise=True)
    se = us.pop(0) if us and us[0].kind == "se" else None
    if len(us) != 1:
        return None
    proj = f.conv(us[0], act=False, kernel1=True, depthwise=False, stride1=True)
    if not f.ok:
        return None
    cin = expand.conv.attrs["in_channels"] if expand else dw.conv.attrs["in_channels"]
    mid = dw.conv.shape[1]
    if expand is not None and mid == cin:
        return None  # an expansion conv that keeps the width: today's mbconv has none at t = 1
    layer: Layer = {"kind": "mbconv", **_expansion(cin, mid), **_conv_fields(dw), "out_channels": proj.conv.shape[1]}
    return _finish(layer, f, se, cin, mid, residual)


def _finish(layer: Layer, f: Fit, se: Unit | None, cin: int, mid: int, residual: bool) -> Layer | None:
    """An expanding block's layer with its SE fields (None when no SE rule says the squeeze width), the
    fitted conv fields and the residual."""
    if se is not None:
        fields = se_fields(se, cin, mid)
        if fields is None:
            return None
        layer.update(fields)
    layer.update(f.fields())
    layer["residual"] = residual
    return layer


def match_fused(units: list[Unit], residual: bool) -> Layer | None:
    """k×k expand + act → [SE] → 1×1 linear projection (Fused-MBConv); or one k×k conv + act (t = 1)."""
    f = Fit()
    us = list(units)
    if not us or us[0].kind != "conv":
        return None
    exp = f.conv(us.pop(0), act=True, depthwise=False)
    se = us.pop(0) if us and us[0].kind == "se" else None
    cin = exp.conv.attrs["in_channels"]
    mid = exp.conv.shape[1]
    if not us:
        if not residual and se is None:
            return None  # a plain conv: the conv matcher says it better
        layer: Layer = {"kind": "fused_mbconv", "expansion": 1, **_conv_fields(exp), "out_channels": mid}
        if mid != cin:
            return None
    elif len(us) == 1:
        proj = f.conv(us[0], act=False, kernel1=True, depthwise=False, stride1=True)
        if mid == cin:
            return None  # today's fused_mbconv has no projection at t = 1
        layer = {
            "kind": "fused_mbconv",
            **_expansion(cin, mid),
            **_conv_fields(exp),
            "out_channels": proj.conv.shape[1],
        }
    else:
        return None
    if not f.ok:
        return None
    return _finish(layer, f, se, cin, mid, residual)


def match_dwsep(units: list[Unit], residual: bool) -> Layer | None:
    """k×k depthwise + act → 1×1 pointwise + act (the same activation); no residual."""
    if residual or len(units) != 2:
        return None
    f = Fit()
    dw = f.conv(units[0], act=True, depthwise=True)
    f.conv(units[1], act=True, kernel1=True, depthwise=False, stride1=True)
    if not f.ok:
        return None
    return {"kind": "dwsep", **_conv_fields(dw), "out_channels": units[1].conv.shape[1], **f.fields()}


def match_basic(units: list[Unit], residual: bool) -> Layer | None:
    """Two k×k conv + act of the same kernel and width (the first strided)."""
    if len(units) != 2:
        return None
    f = Fit()
    a = f.conv(units[0], act=True, depthwise=False)
    b = f.conv(units[1], act=True, depthwise=False, stride1=True)
    if not f.ok or a.conv.attrs["kernel"] != b.conv.attrs["kernel"] or a.conv.shape[1] != b.conv.shape[1]:
        return None
    return {"kind": "basic", **_conv_fields(a), "out_channels": b.conv.shape[1], **f.fields(), "residual": residual}


def match_conv(units: list[Unit], residual: bool) -> Layer | None:
    """One conv + norm + act, any groups; no residual."""
    if residual or len(units) != 1:
        return None
    u = units[0]
    f = Fit()
    f.conv(u, act=u.act is not None)
    if not f.ok:
        return None
    a = u.conv.attrs
    layer: Layer = {"kind": "conv", **_conv_fields(u), "out_channels": u.conv.shape[1], **f.fields()}
    if a["groups"] != 1:
        layer["groups"] = a["groups"]
    return layer


#: Body matchers, highest level first: each takes the units of one block and whether a residual add
#: wraps them, and returns a layer dict or None. Add a matcher here for a new block kind.
MATCHERS: list[BodyMatcher] = [match_mbconv, match_fused, match_basic, match_dwsep, match_conv]


def match_bottleneck(u: Unit) -> Layer | None:
    """Residual with a shortcut branch (or the identity) and an activation after the add: ResNet's
    bottleneck 1×1 reduce + act → k×k + act → 1×1 linear expand, shortcut 1×1 + norm."""
    main = u.inner
    if len(main) != 3 or u.post is None or u.post.attrs.get("name") not in ACTIVATIONS:
        return None
    f = Fit()
    f.conv(main[0], act=True, kernel1=True, depthwise=False, stride1=True)
    mid = f.conv(main[1], act=True, depthwise=False)
    f.conv(main[2], act=False, kernel1=True, depthwise=False, stride1=True)
    if u.shortcut:
        if len(u.shortcut) != 1:
            return None
        f.conv(u.shortcut[0], act=False, kernel1=True, depthwise=False)
    if not f.ok or f.act != u.post.attrs["name"]:
        return None
    return {
        "kind": "bottleneck",
        **_conv_fields(mid),
        "out_channels": main[2].conv.shape[1],
        "mid_channels": mid.conv.shape[1],
        **f.fields(),
    }


# ----------------------------------------------------------------------------------------- to layers


@dataclass
class Recognised:
    """The layers recognised in a graph and what they leave out."""

    layers: list[Layer]
    problems: list[Problem]
    kinds: Counter[str]


def _primitives(units: list[Unit], problems: list[Problem], why: str) -> list[Layer]:
    """Units that match no block, as primitive layers where the spec can say them, else reported."""
    out: list[Layer] = []
    for u in units:
        if u.kind == "conv":
            layer = match_conv([u], False)
            if layer is not None:
                layer["name"] = u.scope
                out.append(_tag(layer, [u]))
                continue
            if conv_expressible(u) and norm_name(u) is not None:  # an activation the spec cannot name
                bare = Unit("conv", [n for n in u.nodes if n.op != "act"])
                layer = match_conv([bare], False)
                if layer is not None and u.act is not None:
                    layer["name"] = u.scope
                    out.append(_tag(layer, [u]))
                    problems.append(Problem(u.act.name, u.act.scope, "activation not in the spec vocabulary"))
                    continue
            problems.append(Problem(u.conv.name, u.scope, _conv_problem(u)))
            continue
        out += _layers([u], problems, why)
    return out


def _tag(layer: Layer, units: list[Unit]) -> Layer:
    """Record on a layer dict the shapes it reads and writes and how many ops it stands for (removed
    before the spec is written)."""
    nodes = [n for u in units for n in u.all_nodes()]
    first = units[0].all_nodes()[0]
    last = units[-1].all_nodes()[-1]
    layer["_in"] = first.in_shape[1:]
    layer["_out"] = last.shape[1:]
    layer["_n"] = len(nodes)
    return layer


def _conv_problem(u: Unit) -> str:
    a = u.conv.attrs
    if not conv_expressible(u):
        return (
            f"conv kernel {a['kernel']}, stride {a['stride']}, padding {a.get('padding')}, dilation "
            f"{a.get('dilation', 1)}: the spec's conv pads k//2 (odd square kernels, no dilation)"
        )
    n = u.norm
    return f"norm {n.name if n else '?'} is not one the spec names (batchnorm with affine γ, β)"


def _layers(units: list[Unit], problems: list[Problem], why: str = "") -> list[Layer]:
    out: list[Layer] = []
    i = 0
    while i < len(units):
        u = units[i]
        if u.kind == "residual":
            layer = match_bottleneck(u) if u.post is not None else None
            post = None
            if layer is None and u.shortcut is None:
                for m in MATCHERS:
                    layer = m(u.inner, True)
                    if layer is not None:
                        post, u = u.post, Unit("residual", u.nodes, u.inner)
                        break
            if layer is not None:
                layer["name"] = u.scope
                out.append(_tag(layer, [u]))
                if post is not None:
                    out += _layers([Unit("act", [post])], problems)
            else:
                out += _primitives(u.inner, problems, "")
                if u.shortcut:
                    problems.append(
                        Problem(u.nodes[0].name, u.scope, "residual with a shortcut branch of no known block")
                    )
                    for s in u.shortcut:
                        for n in s.all_nodes():
                            problems.append(Problem(n.name, n.scope, "on a shortcut branch the layer list cannot say"))
                problems.append(
                    Problem(
                        u.nodes[0].name, u.scope, "residual add around layers that form no known block (not counted)"
                    )
                )
                if u.post is not None:
                    out += _layers([Unit("act", [u.post])], problems)
            i += 1
            continue
        done = False
        for length in (4, 3, 2, 1):
            body = units[i : i + length]
            if len(body) < length or any(b.kind not in ("conv", "se") for b in body):
                continue
            for m in MATCHERS:
                layer = m(body, False)
                if layer is not None:
                    layer["name"] = Unit("group", [], body).scope
                    out.append(_tag(layer, body))
                    i += length
                    done = True
                    break
            if done:
                break
        if done:
            continue
        if u.kind == "conv":
            out += _primitives([u], problems, why)
        elif u.kind == "pool":
            impl = u.nodes[0].attrs.get("implementation", "module")
            out.append(_tag({"kind": "pool", "name": u.scope, "implementation": impl}, [u]))
        elif u.kind == "linear":
            n = u.nodes[0]
            layer = {"kind": "linear", "name": u.scope, "out_features": n.shape[1], "bias": bool(n.attrs.get("bias"))}
            used = [u]
            if (
                i + 1 < len(units)
                and units[i + 1].kind == "act"
                and units[i + 1].nodes[0].attrs.get("name") in ACTIVATIONS
            ):
                layer["activation"] = units[i + 1].nodes[0].attrs["name"]
                i += 1
                used.append(units[i])
            out.append(_tag(layer, used))
        elif u.kind == "se":
            problems.append(Problem(u.nodes[0].name, u.scope, "squeeze-excitation outside a block the spec can say"))
            for n in u.all_nodes():
                if n.op in ("conv", "linear"):
                    problems.append(Problem(n.name, n.scope, "inside that squeeze-excitation (not counted)"))
        else:
            for n in u.all_nodes():
                problems.append(Problem(n.name, n.scope, _why(n)))
        i += 1
    return out


def _why(n: Node) -> str:
    if n.op == "act":
        return f"activation {n.attrs.get('name')} the spec cannot say here (not counted)"
    if n.op == "norm":
        return "a norm without a conv before it (not counted)"
    if n.op == "mul":
        return "multiply the spec cannot say (not counted)"
    return "op costmodel cannot count (not counted)"


def _head(units: list[Unit]) -> list[Unit]:
    """A 1×1 conv (+ bias, act) after the global pool is a linear layer (MobileNetV3 in timm)."""
    out: list[Unit] = []
    pooled = False
    for u in units:
        if u.kind == "pool":
            pooled = True
        if (
            pooled
            and u.kind == "conv"
            and u.norm is None
            and u.conv.attrs["kernel"] == 1
            and u.conv.attrs["groups"] == 1
            and u.conv.shape[2:] == (1, 1)
        ):
            c = u.conv
            lin = Node(
                "linear", c.inputs, c.out, c.shape[:2], c.in_shape, c.scope, c.name, {"bias": c.attrs["bias"]}, c.params
            )
            out.append(Unit("linear", [lin]))
            if u.act is not None:
                out.append(Unit("act", [u.act]))
            continue
        out.append(u)
    return out


class ImportFailure(UsageError):
    """The layers found do not chain into one network (an op the spec cannot say changed the shape)."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def _check_chain(layers: list[Layer], problems: list[Problem]) -> None:
    """Each layer must read what the one before writes; else the spec would not be the model."""
    for a, b in zip(layers, layers[1:], strict=False):
        if a["_out"][0] != b["_in"][0] or (len(b["_in"]) == 3 and len(a["_out"]) == 3 and a["_out"] != b["_in"]):
            raise ImportFailure(
                f"cannot import: {b.get('name') or b['kind']} reads {b['_in']} but the layer before gives "
                f"{a['_out']}; ops between them the spec cannot say: "
                + ("; ".join(str(p) for p in problems[:3]) or "none found")
                + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""),
                problems,
            )


def recognise(nodes: Sequence[Node], output: int) -> Recognised:
    """The spec layers of a traced graph (tensor 0 the input, ``output`` the model's output tensor)."""
    g = Graph(nodes)
    problems: list[Problem] = []
    try:
        units, end = g.parse(0, len(g.nodes), 0)
        if end != output:
            raise StructureError(g.nodes[-1], "the chain does not end at the model's output")
    except StructureError as err:
        units = _chain(g, problems, err)
    layers = _layers(_head(merge(units)), problems)
    start = next((n.in_shape[1:] for n in g.nodes if 0 in n.inputs), ())
    if not layers:
        raise ImportFailure("cannot import: no layer of the model is one the spec can say", problems)
    _check_chain([{"_out": start, "kind": "input"}, *layers], problems)
    _climb(layers, g.nodes)
    for layer in layers:
        layer.pop("_in")
        layer.pop("_out")
    return Recognised(layers, problems, Counter(layer["kind"] for layer in layers))


def _climb(layers: list[Layer], nodes: Sequence[Node]) -> None:
    """Name each block by the outermost module that holds its ops and nothing else (``features.1``
    rather than its inner ``features.1.block``)."""
    counts: Counter[str] = Counter()
    for n in nodes:
        parts = n.scope.split(".") if n.scope else []
        for end in range(1, len(parts) + 1):
            counts[".".join(parts[:end])] += 1
    for layer in layers:
        k = layer.pop("_n", None)
        name = layer.get("name") or ""
        while k is not None and "." in name and counts[name.rsplit(".", 1)[0]] == k:
            name = name.rsplit(".", 1)[0]
        if name:
            layer["name"] = name


def _chain(g: Graph, problems: list[Problem], err: StructureError) -> list[Unit]:
    """Fallback: the ops on the running chain from the input, reporting every op off the chain."""
    problems.append(Problem(err.node.name, err.node.scope, f"structure the layer list cannot say: {err}"))
    cur = 0
    units: list[Unit] = []
    for node in g.nodes:
        if node.inputs and node.inputs[0] == cur and (node.op not in ("add", "mul") or len(set(node.inputs)) == 1):
            units.append(Unit("prim", [node]))
            cur = node.out
        elif node.op in ("add", "mul") and cur in node.inputs:
            problems.append(Problem(node.name, node.scope, f"{node.op} of a branch (not counted)"))
            cur = node.out
        else:
            problems.append(Problem(node.name, node.scope, "off the main chain (not counted)"))
    return units


def to_spec_dict(rec: Recognised, input_shape: tuple[int, int, int], name: str | None) -> dict[str, Any]:
    """The spec as plain data: input, defaults (the most common activation, norm and bias) and layers,
    each layer without the fields that equal the defaults."""
    convs = [layer for layer in rec.layers if layer["kind"] not in ("pool", "linear", "dropout")]

    def common(key: str, fallback: Any) -> Any:
        c = Counter(layer[key] for layer in convs if key in layer)
        return c.most_common(1)[0][0] if c else fallback

    defaults = {
        "activation": common("activation", "relu6"),
        "norm": common("norm", "batchnorm"),
        "bias": common("bias", False),
    }
    layers: list[Layer] = []
    for layer in rec.layers:
        d = dict(layer)
        if d["kind"] not in ("pool", "linear", "dropout"):
            for key, v in defaults.items():
                if d.get(key) == v:
                    del d[key]
            if d.get("se_activation") == d.get("activation", defaults["activation"]):
                del d["se_activation"]
            if d.get("se_gate") == "sigmoid":
                del d["se_gate"]
            if d.get("se_base") == "input":
                del d["se_base"]
            if "residual" in d:
                auto = _auto(d, layers, input_shape)
                if auto is not None and d["residual"] == auto:
                    del d["residual"]
        else:
            if d["kind"] == "linear":
                if d.get("bias") is True:
                    del d["bias"]
                if d.get("activation") == "none":
                    del d["activation"]
            if d["kind"] == "pool" and d.get("implementation") == "module":
                del d["implementation"]
        if not d.get("name"):
            d.pop("name", None)
        layers.append(d)
    spec: dict[str, Any] = {}
    if name:
        spec["name"] = name
    spec["input"] = {"channels": input_shape[0], "height": input_shape[1], "width": input_shape[2]}
    spec["defaults"] = defaults
    spec["layers"] = layers
    return spec


def _auto(d: Layer, previous: list[Layer], input_shape: tuple[int, int, int]) -> bool | None:
    """What ``residual: auto`` gives for this layer: stride 1 and in == out."""
    cin: Any = input_shape[0]
    for p in previous:
        cin = p.get("out_channels", p.get("out_features", cin))
    if "out_channels" not in d:
        return None
    return bool(d.get("stride", 1) == 1 and d["out_channels"] == cin)
