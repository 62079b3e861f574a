"""Recognise costmodel layers in a traced op graph: framework-neutral, shared by the torch and ONNX importers.

A tracer (importers/torch.py, importers/onnx.py) turns a model into a list of :class:`Node` in execution
order: one per counted op (conv, norm, activation, add, mul, pool, linear, pad, …), each naming the data
tensors it reads, the tensor it writes, its output shape and the module path it ran in. Shape-only ops
(view, flatten, dropout at inference) are aliases and make no node.

Recognition runs in two passes:

1. **structure** (:meth:`Graph.chain`): the graph is read as a chain from the input to the output. A
   tensor read by several ops opens a region that ends where every branch has joined; its branches are
   found by dataflow: ``add(x, F(x))`` is a residual, ``mul(x, G(x))`` with ``G`` ending in a gate is
   squeeze-excitation, ``add(F(x), S(x))`` a residual with a shortcut, ``cat(x, F(x))`` a Ghost module,
   split → convs → cat a mixed conv, ``mul(F(x), upsample(G(x)))`` a gated (DFC) module. The result is
   a list of :class:`Unit` (conv + norm + activation, SE, residual, ghost, pool, …).
2. **kinds**: the matchers of the kind registry (costmodel/engine/kinds.py, each kind's ``matchers``) turn
   units into layer dicts of the spec. Each declares the shape it consumes (a unit, a residual, a chain of
   units, a primitive) and a priority; :func:`_layers` tries them by shape and priority (chains highest-level
   first: rep_dwsep, UIR, MBConv / MixConv / CondConv, Fused-MBConv, basic, depthwise-separable, conv). A new
   block kind plugs in as one more matcher in its registry entry; nothing here names it.
   A sum of parallel conv-norm branches (re-parameterisable: PP-LCNetV2,
   RepGhostNet, GhostNetV3) is one conv unit carrying its branches (``Unit.rep``): rep_dwsep,
   repghost_bottleneck and the ghost kinds' rep_branches count them; elsewhere its heaviest conv counts.
   MobileNetV4-Hybrid's MobileAttention is read by :func:`match_attention`. ``cat([x, F(x)])`` of the
   layer before and a chain (MobileNetV5's fusion adapter) is F's layers then ``concat`` (:func:`_concat`);
   a fixed-size upsample / avg pool is ``resize``, a norm with no conv before it ``norm``.

What matches nothing is kept as a primitive where the spec can say it, else reported as a
:class:`Problem` (the op, its module path, why) — never dropped silently, and never a failure: a block
no kind says is left out whole where it keeps the shape, a sum of parallel branches no kind says keeps
its heaviest conv, and where an unsaid op changes the shape the spec stops there (every count it gives stays exact).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.kinds import Matcher, Shape, matchers, resolve
from ..errors import UsageError
from ..spec import names as _names
from ..spec.network import Defaults, layer_model
from ..spec.scaling import make_divisible

#: Activations the spec's ``activation`` can name, and the gates SE's ``se_gate`` can name (spec/names.py).
ACTIVATIONS = frozenset(name for name, a in _names.ACTIVATIONS.items() if not a.gate)
GATES = frozenset(_names.GATE_NAMES)


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

    ``kind``: ``conv`` (``nodes`` = pad?, conv, norm?, act?, anti-aliasing op?), ``act``, ``norm``,
    ``pool``, ``linear``, ``se`` (``inner`` = the gate branch), ``residual`` (``inner`` = the main branch,
    ``shortcut`` = the shortcut branch or None for the identity, ``post`` = an activation after the add),
    ``ghost`` (``inner`` = primary and cheap conv, ``branches`` = a DFC gate), ``catself`` / ``gated`` /
    ``multi`` (joins no kind says yet), ``opaque`` (a region the layer list cannot say), ``dropped``
    (branches left out of a sum), ``other``.
    """

    kind: str
    nodes: list[Node]
    inner: list[Unit] = field(default_factory=list)
    shortcut: list[Unit] | None = None
    post: Node | None = None
    branches: list[list[Unit]] = field(default_factory=list)
    #: a conv unit that is a sum of parallel branches (re-parameterisable): the other branches (each a list
    #: of units: a conv unit, a norm, or none for the identity) and the adds joining them
    rep: list[list[Unit]] | None = None
    rep_joins: list[Node] = field(default_factory=list)

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
        for b in self.branches:
            for u in b:
                out += u.all_nodes()
        for b in self.rep or []:
            for u in b:
                out += u.all_nodes()
        out += self.nodes
        out += self.rep_joins
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
        self.producer: dict[int, int] = {}
        for i, n in enumerate(self.nodes):
            self.producer[n.out] = i
            for t in dict.fromkeys(n.inputs):
                self.readers.setdefault(t, []).append(i)

    def parse(self, lo: int, hi: int, cur: int) -> tuple[list[Unit], int]:
        """The nodes ``lo..hi-1`` read as a chain from tensor ``cur``: their units and the end tensor."""
        return self.chain(list(range(lo, hi)), cur)

    def chain(self, idxs: list[int], cur: int) -> tuple[list[Unit], int]:
        """The nodes at positions ``idxs`` (in execution order) read as a chain from tensor ``cur``.

        A tensor read by one node continues the chain. A tensor read by several opens a region: its end
        is the first node after which every branch has joined (the only live tensor is that node's output);
        each input of that join is one branch, parsed on its own (by dataflow, so branches may interleave
        in execution order, as GhostNetV2's DFC gate does).
        """
        units: list[Unit] = []
        todo = list(idxs)
        inside = set(todo)
        while todo:
            readers = [q for q in self.readers.get(cur, []) if q in inside]
            if not readers:
                raise StructureError(
                    self.nodes[todo[0]], "reads a tensor that is not the running feature map (a branch)"
                )
            if len(readers) == 1:
                q = readers[0]
                node = self.nodes[q]
                if any(t != cur and self.producer.get(t, -1) in inside for t in node.inputs):
                    raise StructureError(node, "reads a tensor of a branch the chain has not joined")
                units.append(Unit("prim", [node]))
                cur = node.out
                todo.remove(q)
                inside.discard(q)
                continue
            join, body = self._region(todo, inside, cur)
            jn = self.nodes[join]
            branches: list[list[int]] = []
            for t in dict.fromkeys(jn.inputs):
                if t == cur:
                    continue
                branch = self._closure(t, body)
                branches.append(branch)
            used = [q for b in branches for q in b]
            try:
                if len(used) != len(set(used)) or set(used) != set(body):
                    raise StructureError(jn, "branches that share ops (a structure the layer list cannot say)")
                parsed: list[tuple[list[Unit], int]] = [self.chain(b, cur) for b in branches]
                identity = cur in jn.inputs
                units.append(_join_unit(jn, identity, [merge(u) for u, _ in parsed], [e for _, e in parsed]))
            except StructureError:  # a region the layer list cannot say: kept whole, reported op by op
                units.append(Unit("opaque", [self.nodes[q] for q in [*body, join]]))
            for q in [*body, join]:
                todo.remove(q)
                inside.discard(q)
            cur = jn.out
        return units, cur

    def _region(self, todo: list[int], inside: set[int], cur: int) -> tuple[int, list[int]]:
        """The join of the region opened at ``cur`` and the positions of the nodes before it."""
        live = {cur}
        pending: dict[int, int] = {cur: sum(1 for q in self.readers.get(cur, []) if q in inside)}
        body: list[int] = []
        for q in todo:
            node = self.nodes[q]
            if not any(t in live for t in node.inputs):
                continue
            for t in dict.fromkeys(node.inputs):
                if t in live:
                    pending[t] -= 1
                    if pending[t] == 0:
                        live.discard(t)
            n_read = sum(1 for r in self.readers.get(node.out, []) if r in inside)
            if not live and body:
                return q, body
            body.append(q)
            if n_read:
                live.add(node.out)
                pending[node.out] = n_read
        raise StructureError(self.nodes[todo[-1]], "branches that never join")

    def _closure(self, t: int, body: list[int]) -> list[int]:
        """The positions in ``body`` that tensor ``t`` depends on, in order."""
        inbody = set(body)
        need: set[int] = set()
        stack = [t]
        while stack:
            x = stack.pop()
            q = self.producer.get(x)
            if q is None or q not in inbody or q in need:
                continue
            need.add(q)
            stack.extend(self.nodes[q].inputs)
        return [q for q in body if q in need]


def _join_unit(join: Node, identity: bool, branches: list[list[Unit]], ends: list[int]) -> Unit:
    """The unit of a region: its join op, whether the join also reads the region's input (identity) and
    the parsed branches."""
    if join.op == "add" and identity and len(branches) == 1:
        return Unit("residual", [join], branches[0])
    if join.op == "add" and not identity and len(branches) == 2:
        main, short = sorted(range(2), key=lambda i: -sum(len(u.all_nodes()) for u in branches[i]))
        return Unit("residual", [join], branches[main], branches[short])
    if join.op == "mul" and identity and len(branches) == 1:
        return _gate_unit(join, branches[0])
    if join.op == "mul" and not identity and len(branches) == 2:
        gate = next((i for i in range(2) if branches[i] and branches[i][-1].kind == "upsample"), None)
        if gate is not None:
            return Unit("gated", [join], branches[1 - gate], branches[gate])  # shortcut: the gate
    if join.op == "cat" and identity and len(branches) == 1:
        return Unit("catself", [join], branches[0])
    if join.op == "cat" and not identity and branches and all(b and b[0].kind == "split" for b in branches):
        mixed = _mixed_conv(join, branches)
        if mixed is not None:
            return Unit("prim", [mixed])
    return Unit("multi", [join], branches=branches)


def _mixed_conv(cat: Node, branches: list[list[Unit]]) -> Node | None:
    """split → one conv per part → cat (timm's MixedConv2d) as one conv node whose ``parts`` are the
    parts' conv units."""
    parts = [b[1] for b in branches if len(b) == 2 and b[1].kind == "conv" and b[1].norm is None and b[1].act is None]
    if len(parts) != len(branches):
        return None
    convs = [u.conv for u in parts]
    split = branches[0][0].nodes[0]
    strides = {c.attrs["stride"] for c in convs}
    if len(strides) != 1:
        return None
    dw = all(c.attrs["groups"] == c.attrs["in_channels"] == c.shape[1] for c in convs)
    plain = all(c.attrs["groups"] == 1 for c in convs)
    cin = split.in_shape[1]
    attrs = {
        "kernel": convs[0].attrs["kernel"],
        "stride": convs[0].attrs["stride"],
        "padding": convs[0].attrs["padding"],
        "dilation": 1,
        "groups": cin if dw else 1 if plain else -1,
        "bias": all(c.attrs["bias"] for c in convs),
        "in_channels": cin,
        "parts": parts,
        "n": sum(len(b[0].nodes) + len(b[1].nodes) for b in branches) + 1,
    }
    scope = Unit("group", [], [b[1] for b in branches]).scope
    params = sum(c.params for c in convs)
    return Node("conv", (split.inputs[0],), cat.out, cat.shape, split.in_shape, scope, convs[0].name, attrs, params)


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
    units = list(units)
    for k in range(len(units) - 1):  # x + 0 → act: the activation belongs to the conv before
        a, b = units[k], units[k + 1]
        if a.kind == "prim" and _passive(Unit("other", a.nodes)) and b.kind == "prim" and b.nodes[0].op == "act":
            units[k], units[k + 1] = b, a
    out: list[Unit] = []
    i = 0
    while i < len(units):
        u = units[i]
        if u.kind == "residual" and i + 1 < len(units) and _is_act(units[i + 1]):
            u.post = units[i + 1].nodes[0]
            out.append(u)
            i += 2
            continue
        if u.kind == "multi" and u.nodes[0].op == "add" and u.branches:
            # parallel branches summed (re-parameterisable conv-BN branches): the heaviest is counted,
            # the others are reported
            best = max(u.branches, key=lambda b: sum(n.params for x in b for n in x.all_nodes()))
            rest = [n for b in u.branches if b is not best for x in b for n in x.all_nodes()]
            spliced = [*best, *([Unit("dropped", rest)] if rest else []), Unit("dropped", list(u.nodes))]
            units = [*units[:i], *spliced, *units[i + 1 :]]
            continue
        if u.kind == "conv" and u.act is None and i + 1 < len(units) and _is_act(units[i + 1]):
            u = Unit("conv", [*u.nodes, units[i + 1].nodes[0]])
            units = [*units[:i], u, *units[i + 2 :]]
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
            typed = ("act", "norm", "pool", "linear", "split", "upsample", "slice", "avgpool", "scale", "maxpool")
            out.append(Unit(node.op if node.op in typed else "other", [node]))
            i += 1
            continue
        if i < len(units) and units[i].kind == "prim" and units[i].nodes[0].op == "norm":
            group.append(units[i].nodes[0])
            i += 1
        if i < len(units) and _is_act(units[i]):
            group.append(units[i].nodes[0])
            i += 1
        nxt = [x.nodes[0] for x in units[i : i + 2] if x.kind == "prim"]
        if (
            nxt
            and nxt[0].op == "avgpool"
            and nxt[0].attrs.get("kernel") == 2
            and nxt[0].attrs["stride"] in (2, None, ())
        ):
            group.append(nxt[0])  # anti-aliased stride: a 2×2 average pool after the stride-1 conv
            i += 1
        elif nxt and nxt[0].op == "conv" and nxt[0].attrs.get("fixed"):
            group.append(nxt[0])  # a fixed blur filter (timm's BlurPool2d)
            i += 1
        elif len(nxt) == 2 and nxt[0].op == "pad" and nxt[1].op == "conv" and nxt[1].attrs.get("fixed"):
            group += nxt
            i += 2
        out.append(Unit("conv", group))
    return _ghosts(out)


def _rep_leaves(u: Unit) -> tuple[list[list[Unit]], list[Node]] | None:
    """The branches of a sum of parallel branches (read as a residual with a shortcut, nested; the
    identity as an empty branch) and the adds joining them, when every branch is one conv unit without an
    activation or a norm alone (the re-parameterisable branch pattern); else None."""
    if u.kind != "residual" or u.post is not None:
        return None
    parts = [u.inner, *([u.shortcut] if u.shortcut is not None else [[]])]
    leaves: list[list[Unit]] = []
    joins = list(u.nodes)
    for part in parts:
        zeros = [x for x in part if _passive(x) and _plus_zero(x.nodes[0])]  # x1 = 0; x1 += conv(x)
        part = [x for x in part if x not in zeros]
        joins = [n for z in zeros for n in z.nodes] + joins
        if any(x.kind == "dropped" or _passive(x) for x in part):
            return None
        if len(part) == 1 and part[0].kind == "residual":
            sub = _rep_leaves(part[0])
            if sub is None:
                return None
            leaves += sub[0]
            joins = sub[1] + joins
        elif len(part) == 1 and part[0].kind == "conv" and part[0].rep is not None and part[0].act is None:
            leaves += [[Unit("conv", list(part[0].nodes))], *part[0].rep]  # a sum already read as one
            joins = part[0].rep_joins + joins
        elif (
            not part
            or len(part) == 1
            and (part[0].kind == "conv" and part[0].act is None and part[0].rep is None or part[0].kind == "norm")
        ):
            leaves.append(part)
        else:
            return None
    return leaves, joins


def _plus_zero(n: Node) -> bool:
    """``t + 0`` (a Python sum started at 0): no weights, no MACs, the shape kept."""
    return n.name.split(".")[1:2] == ["add"] and len(n.inputs) == 1


def _rep_sum(u: Unit, post: Node | None = None) -> Unit | None:
    """A sum of parallel conv(-norm) branches, the identity and norm-only branches among them (timm's
    re-parameterisable branches: PP-LCNetV2, RepGhostNet, GhostNetV3), as one conv unit: its heaviest conv
    (by params) with the activation after the sum, the others in ``rep``; None when ``u`` is not one."""
    post = u.post if post is None else post
    found = _rep_leaves(Unit("residual", u.nodes, u.inner, u.shortcut)) if u.kind == "residual" else None
    if found is None:
        return None
    leaves, joins = found
    convs = [b for b in leaves if b and b[0].kind == "conv"]
    if not convs or len(leaves) < 2:
        return None
    main = max(convs, key=lambda b: b[0].conv.params)
    nodes = [*main[0].nodes, *([post] if post is not None else [])]
    return Unit("conv", nodes, rep=[b for b in leaves if b is not main], rep_joins=joins)


def _unrep(u: Unit) -> tuple[Unit, list[Node]]:
    """A conv unit without its parallel branches (its heaviest conv) and the nodes left out."""
    if u.rep is None:
        return u, []
    return Unit("conv", list(u.nodes)), [n for b in u.rep for x in b for n in x.all_nodes()] + u.rep_joins


def _sum_to_conv(u: Unit) -> tuple[Unit, list[Node]] | None:
    """A conv unit, or a sum of parallel conv branches (re-parameterisable branches, read as a residual
    with a shortcut, nested) as its heaviest conv and the nodes of the others (left out); else None."""
    if u.kind == "conv":
        return u, []  # its parallel branches, if any, stay with it (Fit.conv counts the heaviest where needed)
    if u.kind != "residual" or u.shortcut is None:
        return None
    found = []
    for part in (u.inner, u.shortcut):
        kept = [x for x in part if x.kind != "dropped" and not _passive(x)]
        r = _sum_to_conv(kept[0]) if len(kept) == 1 else None
        found.append((r, part))
    ok = [r for r, _ in found if r is not None]
    if len(ok) != len(found):  # a chain beside a conv (ResNet's projection shortcut) is no sum of parallel convs:
        return None  # the residual matchers read it (reading it as its one conv would leave the chain out)
    conv, dropped = max(ok, key=lambda x: x[0].conv.params)
    nodes = [n for _, part in found for x in part for n in x.all_nodes() if n not in conv.nodes]
    nodes += list(u.nodes)
    if u.post is not None:
        if conv.act is not None:
            return None
        conv = Unit("conv", [*conv.nodes, u.post])
    return conv, nodes


def _ghosts(units: list[Unit]) -> list[Unit]:
    """conv → cat(x, cheap(x)) [→ channel slice] is a Ghost module; a Ghost module gated by a branch from
    its input (× upsample(sigmoid(…)), GhostNetV2's DFC attention) keeps that branch in ``branches``.
    A sum of parallel conv branches becomes its heaviest conv first, the others left out."""
    reduced: list[Unit] = []
    for u in units:
        rep = _rep_sum(u) if u.kind == "residual" and u.shortcut is not None else None
        if rep is not None:
            reduced.append(rep)
            continue
        r = _sum_to_conv(u) if u.kind == "residual" else None
        reduced += [r[0], Unit("dropped", r[1])] if r is not None else [u]
    units = reduced
    out: list[Unit] = []
    i = 0
    while i < len(units):
        u = units[i]
        j = i + 1
        while j < len(units) and (units[j].kind == "dropped" or _passive(units[j])):
            j += 1
        nxt = units[j] if j < len(units) else None
        cheap = [x for x in nxt.inner if x.kind != "dropped" and not _passive(x)] if nxt is not None else []
        prim = _sum_to_conv(u) if nxt is not None and nxt.kind == "catself" else None
        cheap1 = _sum_to_conv(cheap[0]) if prim is not None and len(cheap) == 1 else None
        if prim is not None and cheap1 is not None and nxt is not None:
            u, cheap = prim[0], [cheap1[0]]
            aside = units[i + 1 : j] + [x for x in nxt.inner if x.kind == "dropped" or _passive(x)]
            aside += [Unit("dropped", d) for d in (prim[1], cheap1[1]) if d]
            nodes = list(nxt.nodes)
            i = j + 1
            if i < len(units) and units[i].kind == "slice":
                nodes += units[i].nodes
                i += 1
            out.append(Unit("ghost", nodes, [u, cheap[0]]))
            out += aside
            continue
        main = [x for x in u.inner if x.kind != "dropped" and not _passive(x)]
        if u.kind == "gated" and len(main) == 1 and main[0].kind == "ghost" and u.shortcut:
            g = main[0]
            out.append(Unit("ghost", [*g.nodes, *u.nodes], g.inner, branches=[u.shortcut]))
            out += [x for x in u.inner if x is not g]
            i += 1
            continue
        out.append(u)
        i += 1
    return out


def _is_act(u: Unit) -> bool:
    """An activation a conv unit can carry (gates and unknown activations stay units of their own)."""
    return u.kind in ("prim", "act") and u.nodes[0].op == "act" and u.nodes[0].attrs.get("name") in ACTIVATIONS


# ------------------------------------------------------------------------------------------- matchers


class Fit:
    """Checks of conv units against one block: shared norm, bias and activation; the k×k conv's padding,
    dilation and anti-aliasing (the layer's ``padding`` / ``dilation`` / ``aa``)."""

    def __init__(self) -> None:
        self.norm: str | None = None
        self.bias: bool | None = None
        self.act: str | None = None
        self.evo_act = False
        self.ok = True
        self.kx: dict[str, Any] = {}
        self.groupnorms: list[tuple[int, int]] = []
        self.dropped: list[Node] = []

    def conv(
        self,
        u: Unit,
        *,
        act: bool,
        kernel1: bool | None = None,
        depthwise: bool | None = None,
        stride1: bool = False,
        kxk: bool = False,
        grouped: bool = False,
        options: tuple[str, ...] = ("padding", "dilation", "aa"),
        rep: bool = False,
    ) -> Unit:
        """Check one conv unit; ``act``: whether it must carry the block activation; ``kxk``: it is the
        block's k×k conv, whose ``options`` the layer can say; ``grouped``: any groups (group_size);
        ``rep``: it may be a sum of parallel branches (which the matcher then checks)."""
        spec = conv_spec(u) if u.kind == "conv" else None
        if spec is None:
            self.ok = False
            return u
        if u.rep is not None and not rep:  # branches the layer cannot say: its heaviest conv is counted
            u, rest = _unrep(u)
            self.dropped += rest
        c = u.conv
        a = c.attrs
        extra = {k: v for k, v in spec.items() if k in ("padding", "dilation", "aa")}
        if extra and (not kxk or any(k not in options for k in extra)):
            self.ok = False
        if kxk:
            self.kx = extra
        norm = norm_name(u)
        if norm is None:
            self.ok = False
        if self.norm is None:
            self.norm = norm
        elif norm != self.norm:
            self.ok = False
        n = u.norm
        if n is not None and n.attrs.get("name") == "groupnorm":
            self.groupnorms.append((c.shape[1], int(n.attrs.get("groups", 32))))
        if n is not None and n.attrs.get("name", "").startswith("evonorm") and "groups" in n.attrs:
            self.groupnorms.append((c.shape[1], int(n.attrs["groups"])))
        bias = bool(a["bias"])
        if self.bias is None:
            self.bias = bias
        elif bias != self.bias:
            self.ok = False
        if kernel1 is True and a["kernel"] != 1 or kernel1 is False and a["kernel"] == 1:
            self.ok = False
        if a.get("parts") and not (depthwise is None or grouped):
            self.ok = False  # a mixed conv only where the matcher takes one
        dw = a["groups"] == a["in_channels"] == c.shape[1] and a["groups"] > 1
        if depthwise is True and not dw and not (grouped and a["groups"] > 1):
            self.ok = False
        if depthwise is False and a["groups"] != 1 and not (grouped and a["groups"] > 1):
            self.ok = False
        if stride1 and spec["stride"] != 1:
            self.ok = False
        got = u.act.attrs["name"] if u.act is not None else None
        evo = n is not None and n.attrs.get("name", "").startswith("evonorm")
        if evo:
            if bool(n.attrs.get("act")) != act or got is not None:  # type: ignore[union-attr]
                self.ok = False
            if act:
                self.evo_act = True
        elif act:
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
        """The block's activation, norm and bias fields (and the k×k conv's options)."""
        act = self.act or ("silu" if self.evo_act else "none")
        out = {"activation": act, "norm": self.norm or "none", "bias": bool(self.bias), **self.kx}
        if self.groupnorms:
            out["_gn"] = list(self.groupnorms)
        if self.dropped:
            out["_dropped"] = list(self.dropped)
        return out


def norm_name(u: Unit) -> str | None:
    """The spec's name for the norm of a conv unit (``none`` without one), or None if it has none."""
    n = u.norm
    if n is None:
        return "none"
    name = n.attrs.get("name")
    if name in ("batchnorm", "groupnorm", "layernorm") and n.attrs.get("affine", True):
        return str(name)
    if name in ("evonorm_s0", "evonorm_b0"):
        return str(name)
    if name == "rmsnorm" and n.attrs.get("affine", True):
        return "rmsnorm"
    return None


def conv_spec(u: Unit) -> dict[str, Any] | None:
    """The spec's fields for this conv unit's conv (kernel, stride, and padding / dilation / aa where they
    differ from the defaults), or None if the spec's conv cannot give its output size at every resolution.

    The spec pads dilation × (k − 1) / 2 by default (odd kernels), ``padding: same`` is timm's Conv2dSame
    (a pad op before a conv of padding 0: output ceil(H / s)), ``padding: N`` any symmetric padding; ``aa``
    is a stride-1 conv followed by a fixed 3×3 blur (blur) or a 2×2 average pool (avg) at the stride.
    """
    c = u.conv
    a = c.attrs
    parts: list[Unit] = a.get("parts") or []
    if parts:
        specs = [conv_spec(p) for p in parts]
        if any(s is None or set(s) != {"kernel", "stride"} for s in specs):
            return None
        return {"kernel": a["kernel"], "stride": a["stride"]}
    k, s, d = a["kernel"], a["stride"], a.get("dilation", 1)
    if not isinstance(k, int) or not isinstance(s, int) or not isinstance(d, int):
        return None
    ci = u.nodes.index(c)
    pad = next((n for n in u.nodes[:ci] if n.op == "pad"), None)
    out: dict[str, Any] = {"kernel": k, "stride": s}
    p = a.get("padding")
    if pad is not None:
        h, w = pad.in_shape[2], pad.in_shape[3]
        same = p == 0 and c.shape[2] == -(-h // s) and c.shape[3] == -(-w // s) and pad.attrs.get("mode") is None
        if not same:
            return None
        if k % 2 == 0 or d != 1:  # odd kernels: k // 2 gives ceil(H / s) too
            out["padding"] = "same"
    elif not isinstance(p, int):
        return None
    elif k % 2 == 0 or p != d * (k - 1) // 2:
        out["padding"] = p
    if d != 1:
        out["dilation"] = d
    aa = [n for n in u.nodes[ci + 1 :] if n.op in ("avgpool", "conv", "pad")]
    if aa:
        if s != 1:
            return None
        last = aa[-1]
        if last.op == "avgpool" and len(aa) == 1 and last.attrs.get("kernel") == last.attrs.get("stride"):
            out["aa"], out["stride"] = "avg", last.attrs["kernel"]
        elif last.op == "conv" and last.attrs.get("fixed") and last.attrs["kernel"] == 3:
            out["aa"], out["stride"] = "blur", last.attrs["stride"]
        else:
            return None
    return out


def conv_expressible(u: Unit) -> bool:
    """Whether the spec's conv gives this conv's output size at every resolution (see :func:`conv_spec`)."""
    return conv_spec(u) is not None


def se_fields(se: Unit, block_in: int, width: int, rounding: str = "floor") -> dict[str, Any] | None:
    """SE fields giving this SE unit's squeeze width, or None if the spec's SE cannot say it.

    The spec's SE: avgpool → 1×1 conv+bias → act → 1×1 conv+bias → gate → x · gate. The squeeze width S
    is written as the family's own rule where one fits (0.25 of the block input, 0.25 of the expanded
    width rounded to 8, …), else as ``se_channels: S``. ``rounding`` is the kind's default ``se_round``:
    floor (S = max(1, floor(base × se)), make_divisible of that) or round (the ghost kinds, timm's rule:
    max(1, round(base × se)), make_divisible of the unrounded base × se).
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
        biases = (reduce.conv.attrs["bias"], expand.conv.attrs["bias"])
        squeeze = reduce.conv.shape[1]
        act = reduce.act.attrs["name"] if reduce.act is not None else "none"
        gate_name = gate.nodes[0].attrs.get("name")
    else:
        fc1, a1, fc2, gate = inner[1], inner[2], inner[3], inner[4]
        biases = (fc1.nodes[0].attrs.get("bias"), fc2.nodes[0].attrs.get("bias"))
        squeeze = fc1.nodes[0].shape[-1]
        act = a1.nodes[0].attrs.get("name", "")
        gate_name = gate.nodes[0].attrs.get("name")
    if len(set(map(bool, biases))) != 1:
        return None  # the spec's SE has both biases or neither
    if gate_name not in GATES or act not in ACTIVATIONS | {"none"}:
        return None
    out: dict[str, Any] = {"se_activation": act, "se_gate": gate_name}
    if not biases[0]:
        out["se_bias"] = False  # e.g. the ONNX dynamo exporter removed all-zero biases
    for ratio in (0.25, 0.5, 0.125, 1.0, 0.0625):
        for base_name, base in (("input", block_in), ("expanded", width)):
            exact = base * ratio
            raw = math.floor(exact) if rounding == "floor" else round(exact)
            if max(1, raw) == squeeze:
                return {"se": ratio, "se_base": base_name, **out}
            for d in (8, 4):
                if raw >= 1 and make_divisible(raw if rounding == "floor" else exact, d) == squeeze:
                    return {"se": ratio, "se_base": base_name, "se_divisor": d, **out}
    return {"se_channels": squeeze, **out}


def _expansion(cin: int, mid: int) -> dict[str, Any]:
    if mid % cin == 0:
        return {"expansion": mid // cin}
    return {"expanded_channels": mid}


def _conv_fields(u: Unit) -> dict[str, Any]:
    spec = conv_spec(u) or {}
    return {"kernel": u.conv.attrs["kernel"], "stride": spec.get("stride", u.conv.attrs["stride"])}


Layer = dict[str, Any]
BodyMatcher = Callable[[list[Unit], bool], Layer | None]


def _is_dw(u: Unit) -> bool:
    return u.kind == "conv" and u.conv.attrs["groups"] > 1


def _group_size(u: Unit, depthwise: bool) -> dict[str, Any]:
    """``group_size`` when the k×k conv's groups are not the kind's default (depthwise / a full conv)."""
    a = u.conv.attrs
    g, cin = a["groups"], a["in_channels"]
    if a.get("parts") or g == (cin if depthwise else 1) and (not depthwise or cin == u.conv.shape[1]):
        return {}
    return {"group_size": cin // g}


def _mixed(u: Unit) -> list[Unit]:
    return list(u.conv.attrs.get("parts") or []) if u.kind == "conv" else []


def _acts(u: Unit) -> bool:
    """Whether a conv unit applies an activation (its own, or an activating norm's)."""
    n = u.norm
    return (
        u.act is not None
        or n is not None
        and n.attrs.get("name", "").startswith("evonorm")
        and bool(n.attrs.get("act"))
    )


def match_mbconv(units: list[Unit], residual: bool) -> Layer | None:
    """[1×1 expand + act] → k×k depthwise + act → [SE] → 1×1 linear projection (MBConv); with mixed convs
    (split → convs → cat) MixConv, with expert-mixed convs CondConv."""
    f = Fit()
    us = list(units)
    expand = None
    if len(us) >= 3 and us[0].kind == "conv" and us[1].kind == "conv" and _is_dw(us[1]):
        expand = f.conv(us.pop(0), act=True, kernel1=True, depthwise=False, stride1=True, grouped=True)
    if len(us) < 2 or us[0].kind != "conv":
        return None
    dw = f.conv(us.pop(0), act=True, depthwise=True, kxk=True, grouped=True)
    se = us.pop(0) if us and us[0].kind == "se" else None
    if len(us) != 1:
        return None
    proj = f.conv(us[0], act=False, kernel1=True, depthwise=False, stride1=True, grouped=True)
    if not f.ok:
        return None
    convs = [u for u in (expand, dw, proj) if u is not None]
    cin = expand.conv.attrs["in_channels"] if expand else dw.conv.attrs["in_channels"]
    mid = dw.conv.shape[1]
    experts = {u.conv.attrs.get("experts") for u in convs}
    if experts != {None}:
        if len(experts) != 1 or expand is None or dw.conv.attrs["groups"] != mid or f.kx:
            return None
        layer: Layer = {"kind": "condconv", **_expansion(cin, mid), **_conv_fields(dw), "experts": experts.pop()}
        layer["out_channels"] = proj.conv.shape[1]
        return _finish(layer, f, se, cin, mid, residual)
    mixed = [_mixed(u) for u in convs]
    if any(mixed) or any(u.conv.attrs["groups"] not in (1, u.conv.attrs["in_channels"]) for u in (expand, proj) if u):
        return _mixconv(expand, dw, proj, f, se, cin, mid, residual)
    if dw.conv.attrs["groups"] != mid and dw.conv.attrs["in_channels"] == mid:
        pass  # group_size below
    elif dw.conv.attrs["groups"] != mid:
        return None
    layer = {"kind": "mbconv", **_expansion(cin, mid), **_conv_fields(dw), **_group_size(dw, True)}
    if expand is not None and mid == cin:
        layer["expand_always"] = True
    layer["out_channels"] = proj.conv.shape[1]
    return _finish(layer, f, se, cin, mid, residual)


def _mixconv(
    expand: Unit | None, dw: Unit, proj: Unit, f: Fit, se: Unit | None, cin: int, mid: int, residual: bool
) -> Layer | None:
    """MixNet's block: the expansion and projection 1×1 convs in groups of channels, the depthwise conv
    mixed (one kernel per channel group, timm's _split_channels)."""
    if f.kx or (expand is not None and mid == cin):
        return None

    def groups(u: Unit) -> int | None:
        parts = _mixed(u)
        if not parts:
            return 1 if u.conv.attrs["groups"] == 1 else None
        if any(p.conv.attrs["kernel"] != 1 or p.conv.attrs["groups"] != 1 for p in parts):
            return None
        return _split_ok(u, len(parts))

    parts = _mixed(dw) or [dw]
    kernels = [p.conv.attrs["kernel"] for p in parts]
    if any(not (p.conv.attrs["groups"] == p.conv.attrs["in_channels"] == p.conv.shape[1]) for p in parts):
        return None
    if len(parts) > 1 and _split_ok(dw, len(parts)) is None:
        return None
    eg = groups(expand) if expand is not None else 1
    pg = groups(proj)
    if eg is None or pg is None:
        return None
    layer: Layer = {"kind": "mixconv", **_expansion(cin, mid), "kernels": kernels, "stride": _conv_fields(dw)["stride"]}
    if eg != 1:
        layer["expansion_groups"] = eg
    if pg != 1:
        layer["projection_groups"] = pg
    layer["out_channels"] = proj.conv.shape[1]
    return _finish(layer, f, se, cin, mid, residual)


def _split_ok(u: Unit, g: int) -> int | None:
    """g when the mixed conv's input and output parts are timm's _split_channels(C, g), else None."""
    parts = _mixed(u)
    cin, cout = u.conv.attrs["in_channels"], u.conv.shape[1]

    def split(c: int) -> list[int]:
        return [c - (g - 1) * (c // g)] + [c // g] * (g - 1)

    if [p.conv.attrs["in_channels"] for p in parts] != split(cin) or [p.conv.shape[1] for p in parts] != split(cout):
        return None
    return g


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
    if not us or us[0].kind != "conv" or _mixed(us[0]):
        return None
    exp = f.conv(us.pop(0), act=True, depthwise=False, kxk=True, grouped=True)
    se = us.pop(0) if us and us[0].kind == "se" else None
    cin = exp.conv.attrs["in_channels"]
    mid = exp.conv.shape[1]
    gs = _group_size(exp, False)
    if gs:  # fused_mbconv's group_size counts channels of the expanded width (timm's EdgeResidual)
        gs = {"group_size": mid // exp.conv.attrs["groups"]}
    if not us:
        if not residual and se is None:
            return None  # a plain conv: the conv matcher says it better
        layer: Layer = {"kind": "fused_mbconv", "expansion": 1, **_conv_fields(exp), **gs, "out_channels": mid}
        if mid != cin:
            return None
    elif len(us) == 1 and us[0].kind == "conv":  # (a norm after the act, ConvMixer's, is no projection)
        proj = f.conv(us[0], act=False, kernel1=True, depthwise=False, stride1=True)
        layer = {"kind": "fused_mbconv", **_expansion(cin, mid), **_conv_fields(exp), **gs}
        if mid == cin:
            layer["keep_projection"] = True
        layer["out_channels"] = proj.conv.shape[1]
    else:
        return None
    if not f.ok:
        return None
    return _finish(layer, f, se, cin, mid, residual)


def match_dwsep(units: list[Unit], residual: bool) -> Layer | None:
    """k×k depthwise + act → [SE] → 1×1 pointwise + act (the same activation)."""
    if len(units) not in (2, 3):
        return None
    se = units[1] if len(units) == 3 and units[1].kind == "se" else None
    if len(units) == 3 and se is None:
        return None
    f = Fit()
    dw = f.conv(units[0], act=True, depthwise=True, kxk=True)
    f.conv(units[-1], act=True, kernel1=True, depthwise=False, stride1=True)
    if not f.ok:
        return None
    cin = dw.conv.attrs["in_channels"]
    layer: Layer = {"kind": "dwsep", **_conv_fields(dw), "out_channels": units[-1].conv.shape[1]}
    if se is not None:
        fields = se_fields(se, cin, cin)
        if fields is None:
            return None
        layer.update(fields)
    return {**layer, **f.fields(), "residual": residual}


def _rep_kernels(u: Unit, f: Fit, *, depthwise: bool) -> list[int] | None:
    """The kernels of a sum of parallel conv-norm branches (``u`` a conv unit with ``rep``), each branch one
    conv of the main conv's stride, groups and widths with the fitted norm and bias and no activation, padded
    k // 2; None when a branch is anything else (an identity or a norm alone)."""
    c = u.conv
    kernels = [c.attrs["kernel"]]
    for b in u.rep or []:
        if len(b) != 1 or b[0].kind != "conv":
            return None
        x = b[0]
        spec = conv_spec(x)
        a = x.conv.attrs
        if spec is None or set(spec) != {"kernel", "stride"} or x.act is not None or x.rep is not None:
            return None
        if norm_name(x) != f.norm or bool(a["bias"]) != bool(f.bias) or a["stride"] != c.attrs["stride"]:
            return None
        if (a["groups"], a["in_channels"], x.conv.shape[1]) != (c.attrs["groups"], c.attrs["in_channels"], c.shape[1]):
            return None
        if depthwise and a["groups"] != a["in_channels"]:
            return None
        kernels.append(a["kernel"])
    return kernels


def match_rep_dwsep(units: list[Unit], residual: bool) -> Layer | None:
    """PP-LCNetV2's RepDepthwiseSeparable (``kind: rep_dwsep``, training form): parallel depthwise conv-norm
    branches k, k − 2, …, 1 (no 1×1 at a stride ≠ 1), summed, + act → [SE] → 1×1 + act [→ 1×1 + act]."""
    if not 2 <= len(units) <= 4 or units[0].kind != "conv" or units[0].rep is None:
        return None
    us = list(units)
    f = Fit()
    dw = f.conv(us.pop(0), act=True, depthwise=True, kxk=True, options=(), rep=True)
    se = us.pop(0) if us and us[0].kind == "se" else None
    if not us or len(us) > 2:
        return None
    pws = [f.conv(x, act=True, kernel1=True, depthwise=False, stride1=True) for x in us]
    kernels = _rep_kernels(dw, f, depthwise=True) if f.ok else None
    if kernels is None:
        return None
    k, s = dw.conv.attrs["kernel"], dw.conv.attrs["stride"]
    if sorted(kernels, reverse=True) != [x for x in range(k, 0, -2) if s == 1 or x != 1]:
        return None
    cin = dw.conv.attrs["in_channels"]
    layer: Layer = {"kind": "rep_dwsep", "kernel": k, "stride": s, "out_channels": pws[-1].conv.shape[1]}
    if len(pws) == 2:
        layer["mid_channels"] = pws[0].conv.shape[1]
    if se is not None:
        fields = se_fields(se, cin, cin)
        if fields is None:
            return None
        layer.update(fields)
    return {**layer, **f.fields(), "residual": residual}


def match_basic(units: list[Unit], residual: bool) -> Layer | None:
    """Two k×k conv + act of the same kernel and width (the first strided)."""
    if len(units) != 2:
        return None
    f = Fit()
    a = f.conv(units[0], act=True, depthwise=False, kxk=True, options=("dilation",))
    b = f.conv(units[1], act=True, depthwise=False, stride1=True)
    if not f.ok or a.conv.attrs["kernel"] != b.conv.attrs["kernel"] or a.conv.shape[1] != b.conv.shape[1]:
        return None
    return {"kind": "basic", **_conv_fields(a), "out_channels": b.conv.shape[1], **f.fields(), "residual": residual}


def match_resnet_basic(u: Unit) -> Layer | None:
    """ResNet's BasicBlock (``basic`` with ``resnet: true``): residual of k×k conv + act → k×k conv (same kernel
    and width, no act), shortcut the identity or a 1×1 conv + norm, and the activation after the add."""
    main = u.inner
    if len(main) != 2 or u.post is None or u.post.attrs.get("name") not in ACTIVATIONS:
        return None
    f = Fit()
    a = f.conv(main[0], act=True, depthwise=False, kxk=True, options=("dilation",))
    b = f.conv(main[1], act=False, depthwise=False, stride1=True)
    if u.shortcut:
        if len(u.shortcut) != 1:
            return None
        f.conv(u.shortcut[0], act=False, kernel1=True, depthwise=False)
    if not f.ok or f.act != u.post.attrs["name"]:
        return None
    if a.conv.attrs["kernel"] != b.conv.attrs["kernel"] or a.conv.shape[1] != b.conv.shape[1]:
        return None
    return {"kind": "basic", **_conv_fields(a), "out_channels": b.conv.shape[1], **f.fields(), "resnet": True}


def match_uir(units: list[Unit], residual: bool) -> Layer | None:
    """MobileNetV4's universal inverted residual with a start depthwise conv, or its FFN form:
    [k×k dw + norm] → 1×1 expand + act → [k×k dw + act] → 1×1 projection (+ residual). (Without the start
    conv the block is an MBConv, which the mbconv matcher says.)"""
    us = list(units)
    scale = bool(us) and us[-1].kind == "scale"
    if scale:
        us.pop()
    f = Fit()
    start = mid = None
    if us and us[0].kind == "conv" and _is_dw(us[0]) and us[0].act is None:
        start = f.conv(us.pop(0), act=False, depthwise=True, kxk=True, options=("aa",))
    if len(us) < 2:
        return None
    exp = f.conv(us.pop(0), act=True, kernel1=True, depthwise=False, stride1=True)
    if len(us) == 2:
        if start is None and not scale:
            return None  # 1×1 → dw → 1×1 is an MBConv
        mid = f.conv(us.pop(0), act=True, depthwise=True, kxk=True, options=("aa",))
    if len(us) != 1 or start is None and mid is None and not residual:
        return None
    proj = f.conv(us[0], act=False, kernel1=True, depthwise=False, stride1=True)
    if not f.ok:
        return None
    cin = exp.conv.attrs["in_channels"]
    e = exp.conv.shape[1]
    strides = [_conv_fields(u)["stride"] for u in (start, mid) if u is not None]
    stride = next((s for s in strides if s != 1), 1)
    if len([s for s in strides if s != 1]) > 1 or mid is not None and start is not None and strides[0] != 1:
        return None
    layer: Layer = {"kind": "uir"}
    t = e / cin
    layer.update({"expansion": t} if make_divisible(cin * t, 8) == e else {"expanded_channels": e})
    if start is not None:
        layer["start_kernel"] = start.conv.attrs["kernel"]
    if mid is not None:
        layer["mid_kernel"] = mid.conv.attrs["kernel"]
    layer.update(stride=stride, out_channels=proj.conv.shape[1], **f.fields(), residual=residual)
    if scale:
        layer["layer_scale"] = True
    return layer


def match_conv(units: list[Unit], residual: bool) -> Layer | None:
    """One conv + norm + act, any groups; no residual."""
    if residual or len(units) != 1:
        return None
    u = units[0]
    if _mixed(u):
        return None
    f = Fit()
    f.conv(u, act=_acts(u), kxk=True, grouped=True)
    if not f.ok:
        return None
    a = u.conv.attrs
    layer: Layer = {"kind": "conv", **_conv_fields(u), "out_channels": u.conv.shape[1], **f.fields()}
    if a["groups"] != 1:
        layer["groups"] = a["groups"]
    return layer


def _rep_shape(u: Unit, f: Fit, *, scale: bool, identity: bool) -> int | None:
    """GhostNetV3's branch set on a conv unit: b convs of the main conv's kernel, [one 1×1 scale conv], [one
    norm alone (identity)], every conv of the main conv's stride, groups and widths with the fitted norm and
    no bias or activation: b, or None when the branches are anything else (or there are none)."""
    if u.rep is None:
        return None
    c = u.conv
    convs = [b for b in u.rep if b and b[0].kind == "conv"]
    norms = [b for b in u.rep if b and b[0].kind == "norm"]
    if len(norms) != int(identity) or len(convs) + len(norms) != len(u.rep) or any(len(b) != 1 for b in u.rep):
        return None
    if identity and (norm_name(norms[0][0]) != f.norm or norms[0][0].nodes[0].inputs[0] != c.inputs[0]):
        return None
    ones = [b for b in convs if b[0].conv.attrs["kernel"] == 1 and c.attrs["kernel"] != 1]
    if len(ones) != int(scale):
        return None
    for b in convs:
        x = b[0]
        a = x.conv.attrs
        spec = conv_spec(x)
        if spec is None or set(spec) != {"kernel", "stride"} or x.act is not None or x.rep is not None:
            return None
        if norm_name(x) != f.norm or a["bias"] or a["stride"] != c.attrs["stride"] or x.conv.inputs != c.inputs:
            return None
        if (a["groups"], a["in_channels"], x.conv.shape[1]) != (c.attrs["groups"], c.attrs["in_channels"], c.shape[1]):
            return None
        if b not in ones and a["kernel"] != c.attrs["kernel"]:
            return None
    return len(convs) - len(ones) + 1


def _ghost_fields(g: Unit, act: bool) -> Layer | None:
    """The Ghost module's fields (primary k×k conv → cheap depthwise conv, concatenated, sliced to the
    output width), or None when this one is not the spec's. With GhostNetV3's branches (b primary conv-norm
    branches; b cheap ones + a 1×1 scale + a norm identity) ``rep_branches: b``; other branches: the heaviest
    conv is counted, the rest named."""
    primary, cheap = g.inner
    reps: int | None = None
    if primary.rep is not None and cheap.rep is not None:
        f = Fit()
        f.conv(primary, act=act, depthwise=False, rep=True)
        f.conv(cheap, act=act, depthwise=True, grouped=True, rep=True)
        bp = _rep_shape(primary, f, scale=False, identity=False) if f.ok else None
        bc = _rep_shape(cheap, f, scale=True, identity=True) if f.ok else None
        if bp is not None and bp == bc and f.ok:
            reps = bp
    if reps is None:
        f = Fit()
        f.conv(primary, act=act, depthwise=False)
        f.conv(cheap, act=act, depthwise=True, grouped=True)
    if not f.ok or cheap.conv.attrs["groups"] != primary.conv.shape[1] or cheap.conv.attrs["stride"] != 1:
        return None
    p, c = primary.conv.shape[1], cheap.conv.shape[1]
    if c % p:
        return None
    ratio = c // p + 1
    out = g.nodes[-1].shape[1] if not g.branches else g.nodes[-2].shape[1]
    if -(-out // ratio) != p:
        return None
    layer: Layer = {"kernel": primary.conv.attrs["kernel"], "stride": primary.conv.attrs["stride"], "out_channels": out}
    if ratio != 2:
        layer["ratio"] = ratio
    if cheap.conv.attrs["kernel"] != 3:
        layer["dw_kernel"] = cheap.conv.attrs["kernel"]
    if g.branches:
        gate = g.branches[0]
        kinds = [x.kind for x in gate]
        if kinds != ["avgpool", "conv", "conv", "conv", "act", "upsample"]:
            return None
        if [x.conv.attrs["kernel"] for x in gate[1:4]] != [primary.conv.attrs["kernel"], (1, 5), (5, 1)]:
            return None
        layer["attention"] = "dfc"
    if reps is not None:
        layer["rep_branches"] = reps
    return {**layer, **f.fields()}


def match_ghost(u: Unit) -> Layer | None:
    """A Ghost module on its own (``kind: ghost``): both convs with the activation, or neither."""
    for act in (True, False):
        fields = _ghost_fields(u, act)
        if fields is not None:
            if not act:
                fields["activation_cheap"] = False
            return {"kind": "ghost", **fields}
    return None


def _ghost_shortcut(u: Unit, f: Fit, cin: Any, cout: Any, stride: Any, kernel: Any) -> tuple[bool, Any]:
    """GhostNet's shortcut, shared by the ghost and repghost bottlenecks: none where the block keeps its shape,
    else a k×k dw conv at the block's stride (and kernel, if known) → 1×1 conv. Returns (fits, kernel)."""
    if not u.shortcut:
        return stride == 1 and cin == cout, kernel
    if len(u.shortcut) != 2:
        return False, kernel
    sd = f.conv(u.shortcut[0], act=False, depthwise=True)
    f.conv(u.shortcut[1], act=False, kernel1=True, depthwise=False, stride1=True)
    if not f.ok or sd.conv.attrs["stride"] != stride or kernel not in (None, sd.conv.attrs["kernel"]):
        return False, kernel
    return True, sd.conv.attrs["kernel"]


def match_ghost_bottleneck(u: Unit) -> Layer | None:
    """GhostNet's bottleneck: ghost + act → [k×k dw (stride) + norm] → [SE] → ghost without act, + the
    identity or a shortcut k×k dw (stride) + norm → 1×1 + norm."""
    us = list(u.inner)
    if u.post is not None or len(us) < 2 or us[0].kind != "ghost" or us[-1].kind != "ghost":
        return None
    g1 = _ghost_fields(us.pop(0), True)
    g2 = _ghost_fields(us.pop(), False)
    if g1 is None or g2 is None or g2.get("attention") or g1["stride"] != 1 or g2["stride"] != 1:
        return None
    f = Fit()
    reps = g1.get("rep_branches")
    first = us[0] if us and us[0].kind == "conv" else None
    rep_dw = reps is not None and first is not None and first.rep is not None
    dw = f.conv(us.pop(0), act=False, depthwise=True, rep=rep_dw) if first is not None else None
    if rep_dw and dw is not None and _rep_shape(dw, f, scale=True, identity=False) != reps:
        return None
    se = us.pop(0) if us and us[0].kind == "se" else None
    if us:
        return None
    mid = g1["out_channels"]
    cin = u.inner[0].inner[0].conv.attrs["in_channels"]
    cout = g2["out_channels"]
    stride = dw.conv.attrs["stride"] if dw is not None else 1
    kernel = dw.conv.attrs["kernel"] if dw is not None else None
    fits, kernel = _ghost_shortcut(u, f, cin, cout, stride, kernel)
    if not fits:
        return None
    if not f.ok or (dw is not None and stride == 1):
        return None
    dropped = [*g1.pop("_dropped", []), *g2.pop("_dropped", []), *f.dropped]
    if any(g1.get(k) != g2.get(k) for k in ("ratio", "dw_kernel", "norm", "bias", "rep_branches")):
        return None
    if f.norm is not None and (f.norm != g1["norm"] or bool(f.bias) != g1["bias"]):
        return None
    layer: Layer = {"kind": "ghost_bottleneck", "kernel": kernel or 3, "mid_channels": mid, "stride": stride}
    layer["out_channels"] = cout
    for k in ("ratio", "dw_kernel", "attention", "rep_branches"):
        if k in g1:
            layer[k] = g1[k]
    if se is not None:
        fields = se_fields(se, cin, mid, "round")
        if fields is None:
            return None
        layer.update(fields)
    layer.update(activation=g1["activation"], norm=g1["norm"], bias=g1["bias"])
    return {**layer, "_dropped": dropped} if dropped else layer


def _repghost_module(primary: Unit, cheap: Unit, f: Fit, act: bool) -> tuple[int, int] | None:
    """timm's RepGhostModule in its training form: primary k×k conv → norm [→ act]; cheap d×d depthwise conv
    → norm on it, plus a norm alone on the primary output (the identity branch), summed [→ act]: the
    primary kernel and d, or None when it is not one."""
    if primary.kind != "conv" or cheap.kind != "conv":
        return None
    f.conv(primary, act=act, depthwise=False)
    f.conv(cheap, act=act, depthwise=True, rep=True)
    c, p = cheap.conv, primary.conv
    if not f.ok or cheap.rep is None or len(cheap.rep) != 1 or [x.kind for x in cheap.rep[0]] != ["norm"]:
        return None
    bn = cheap.rep[0][0].nodes[0]
    if bn.attrs.get("name") != f.norm or not bn.attrs.get("affine", True) or bn.inputs[0] != c.inputs[0]:
        return None
    if c.attrs["stride"] != 1 or c.attrs["groups"] != p.shape[1] or c.shape[1] != p.shape[1]:
        return None
    return p.attrs["kernel"], c.attrs["kernel"]


def match_repghost_bottleneck(u: Unit) -> Layer | None:
    """RepGhostNet's bottleneck (``kind: repghost_bottleneck``, training form with the identity branch):
    repghost + act → [k×k dw (stride) + norm] → [SE] → repghost without act, + the identity or a shortcut
    k×k dw (stride) + norm → 1×1 + norm."""
    us = list(u.inner)
    if u.post is not None or len(us) < 4:
        return None
    f = Fit()
    g1 = _repghost_module(us[0], us[1], f, True)
    f2 = Fit()
    g2 = _repghost_module(us[-2], us[-1], f2, False)
    us = us[2:-2]
    if g1 is None or g2 is None or g1 != g2 or g1[0] != 1 or (f2.norm, f2.bias) != (f.norm, f.bias):
        return None
    dw = f.conv(us.pop(0), act=False, depthwise=True) if us and us[0].kind == "conv" else None
    se = us.pop(0) if us and us[0].kind == "se" else None
    if us or dw is not None and dw.conv.attrs["stride"] == 1:
        return None
    cin = u.inner[0].conv.attrs["in_channels"]
    mid = u.inner[0].conv.shape[1]
    cout = u.inner[-1].conv.shape[1]
    stride = dw.conv.attrs["stride"] if dw is not None else 1
    kernel = dw.conv.attrs["kernel"] if dw is not None else None
    fits, kernel = _ghost_shortcut(u, f, cin, cout, stride, kernel)
    if not fits:
        return None
    if not f.ok:
        return None
    layer: Layer = {"kind": "repghost_bottleneck", "kernel": kernel or 3, "mid_channels": mid, "stride": stride}
    layer["out_channels"] = cout
    if g1[1] != 3:
        layer["dw_kernel"] = g1[1]
    if se is not None:
        fields = se_fields(se, cin, mid, "round")
        if fields is None:
            return None
        layer.update(fields)
    fields = f.fields()
    fields.pop("_gn", None)
    return {**layer, **fields}


#: ops of an attention region that read no weights and are not counted as MACs besides its two matmuls
_ATTENTION_OPS = ("bmm", "matmul", "mm", "softmax", "_safe_softmax", "mul", "div", "expand", "clone", "transpose")


def match_attention(u: Unit) -> Layer | None:
    """timm's MobileAttention with multi-query attention (``kind: attention``, MultiQueryAttention2d):
    norm → [query 1×1 C → h·dk; key and value: [k×k dw (kv_stride) → norm] → 1×1 C → dk] → q·kᵀ → softmax →
    ·v (two matmuls) → 1×1 output projection h·dk → Cout → [layer scale] + the input. The key and value widths
    must be equal (value_dim is not read from the graph). A kv down conv with 'same' padding (an explicit pad,
    timm's pad_type='same') is read where its map equals the symmetric padding's, (H + 2p − k) // s + 1."""
    us = list(u.inner)
    if u.post is not None or u.shortcut is not None or len(us) not in (3, 4):
        return None
    scale = us[-1].kind == "scale"
    if scale:
        us.pop()
    if len(us) != 3 or us[0].kind != "norm" or us[1].kind not in ("multi", "opaque") or us[2].kind != "conv":
        return None
    pre, region, proj = us[0].nodes[0], us[1], us[2]
    norm = norm_name(Unit("conv", [pre]))
    if norm not in ("batchnorm", "layernorm", "rmsnorm"):
        return None
    n, c, h, w = pre.shape
    nodes = region.all_nodes()
    convs = [x for x in nodes if x.op == "conv"]
    norms = [x for x in nodes if x.op == "norm"]
    mms = [x for x in nodes if x.op == "other" and x.name.split(".")[-2 if "." in x.name else 0] in ("bmm", "matmul")]
    pads = {x.out: x for x in nodes if x.op == "pad" and "mode" not in x.attrs}
    if any(x.op not in ("conv", "norm", "other") and x.out not in pads for x in nodes) or len(mms) != 2:
        return None
    if any(x.op == "other" and (x.params or not any(k in x.name for k in _ATTENTION_OPS)) for x in nodes):
        return None
    dws = [x for x in convs if x.attrs["groups"] != 1]
    pws = [x for x in convs if x.attrs["groups"] == 1]
    if len(pws) != 3 or len(dws) not in (0, 2) or len(norms) != len(dws):
        return None
    if any(x.attrs["kernel"] != 1 or x.attrs["stride"] != 1 or x.attrs["in_channels"] != c for x in pws):
        return None
    if any(norm_name(Unit("conv", [x])) != norm for x in norms):
        return None
    kv_stride, kv_kernel = 1, 3
    if dws:
        k, s = dws[0].attrs["kernel"], dws[0].attrs["stride"]
        for x in dws:
            a = x.attrs
            if (a["kernel"], a["stride"], a["groups"], a["in_channels"], x.shape[1]) != (k, s, c, c, c) or a["bias"]:
                return None
            p = ((s - 1) + (k - 1)) // 2
            pad = pads.get(x.inputs[0])
            if pad is not None:  # 'same' padding (F.pad, then an unpadded conv): the spec's symmetric padding
                # must give the same map at this input, which keeps every count equal
                hw = pad.in_shape[2:]
                if a.get("padding") != 0 or tuple(x.shape[2:]) != tuple((d + 2 * p - k) // s + 1 for d in hw):
                    return None
            elif a.get("padding") != p:
                return None
            if a.get("dilation", 1) != 1 or s == 1:
                return None
        kv_stride, kv_kernel = s, k
    direct = [x for x in pws if x.inputs[0] == pre.out]
    q = max(direct or pws, key=lambda x: x.shape[1])
    kv = [x for x in pws if x is not q]
    dk = kv[0].shape[1]
    if kv[1].shape[1] != dk or q.shape[1] % dk:
        return None
    heads = q.shape[1] // dk
    pk = kv[0].shape[2] * kv[0].shape[3]
    if math.prod(mms[0].shape) != n * heads * h * w * pk or math.prod(mms[1].shape) != n * heads * h * w * dk:
        return None
    f = Fit()
    f.conv(proj, act=False, kernel1=True, depthwise=False, stride1=True)
    pa = proj.conv.attrs
    if not f.ok or f.norm != "none" or pa["in_channels"] != heads * dk:
        return None
    if len({bool(x.attrs["bias"]) for x in [*pws, proj.conv]}) != 1:
        return None
    layer: Layer = {"kind": "attention", "out_channels": proj.conv.shape[1], "heads": heads, "key_dim": dk}
    if kv_stride != 1:
        layer.update(kv_stride=kv_stride, **({"kv_kernel": kv_kernel} if kv_kernel != 3 else {}))
    if scale:
        layer["layer_scale"] = True
    return {**layer, "norm": norm, "bias": bool(pa["bias"]), "residual": True}


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
    layer["_n"] = sum(n.attrs.get("n", 1) for n in nodes)
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


def _strip(units: list[Unit], problems: list[Problem]) -> list[Unit]:
    """The units without the ones left out on the side: the branches dropped from a sum of parallel
    branches, and shape-keeping elementwise ops the spec cannot say (both reported, not counted)."""
    out: list[Unit] = []
    for u in units:
        if u.kind == "dropped":
            for n in u.nodes:
                what = "the add joining parallel branches" if n.op == "add" else "on a parallel branch"
                problems.append(Problem(n.name, n.scope, f"{what} the layer list cannot say (not counted)"))
        elif _passive(u):
            n = u.nodes[0]
            problems.append(Problem(n.name, n.scope, "an elementwise op the spec cannot say (not counted)"))
        else:
            out.append(u)
    return out


def _passive(u: Unit) -> bool:
    """An op on the feature map alone that keeps its shape and reads no weights (x + 0, x · 2, …)."""
    if u.kind not in ("other", "scale") or u.inner or u.branches or len(u.nodes) != 1:
        return False
    n = u.nodes[0]
    return n.op in ("other", "scale") and len(n.inputs) == 1 and n.shape == n.in_shape and n.params == 0


def _registered(shape: Shape) -> list[tuple[Matcher, Callable[..., Any]]]:
    """The registry's matchers of ``shape`` (engine/kinds.py), in the order they are tried, resolved."""
    return [(m, resolve(m.fn)) for m, _ in matchers(shape)]


def _layers(units: list[Unit], problems: list[Problem], why: str = "") -> list[Layer]:
    """The layers a unit list says: at each position the registry's matchers are tried by shape (a unit
    matcher on its unit kind, residual matchers on a residual, chain matchers on runs of 5 … 1 units, then
    primitive matchers); what none says is reported."""
    out: list[Layer] = []
    units = _strip(units, problems)
    by_unit = _registered("unit")
    residuals = _registered("residual")
    chains = [fn for _, fn in _registered("chain")]
    primitives = _registered("primitive")
    i = 0
    while i < len(units):
        u = units[i]
        if u.kind == "residual":
            u.inner = _strip(u.inner, problems)
            if u.shortcut is not None:
                u.shortcut = _strip(u.shortcut, problems)
        readers = [fn for m, fn in by_unit if u.kind in m.units]
        if readers:
            layer = next((x for fn in readers if (x := fn(u)) is not None), None)
            if layer is not None:
                layer["name"] = u.scope
                out.append(_tag(layer, [u]))
            else:
                out += _unsaid(u, problems)
            i += 1
            continue
        if u.kind == "residual":
            layer = None
            for m, fn in residuals:
                if m.post == (u.post is not None) and (layer := fn(u)) is not None:
                    break
            post = None
            if layer is None and u.shortcut is None:
                for m_chain in chains:
                    layer = m_chain(u.inner, True)
                    if layer is not None:
                        post, u = u.post, Unit("residual", u.nodes, u.inner)
                        break
            if layer is not None:
                layer["name"] = u.scope
                out.append(_tag(layer, [u]))
                if post is not None:
                    out += _layers([Unit("act", [post])], problems)
            else:
                sub_problems: list[Problem] = []
                sub = _layers(u.inner, sub_problems)
                first = u.all_nodes()[0]
                if u.shortcut is None and not _chains(sub, first.in_shape[1:], u.nodes[0].shape[1:]):
                    # the main branch says nothing that chains: the block is left out whole, and as it keeps
                    # the shape (x + F(x)), the layers around it still chain
                    out += _unsaid(u, problems)
                    if u.post is not None:
                        out += _layers([Unit("act", [u.post])], problems)
                    i += 1
                    continue
                out += sub
                problems += sub_problems
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
        for length in (5, 4, 3, 2, 1):
            body = units[i : i + length]
            if len(body) < length or any(b.kind not in ("conv", "se") for b in body[:-1]):
                continue
            if body[-1].kind not in ("conv", "se", "scale") or body[-1].kind == "scale" and length < 3:
                continue  # a trailing layer scale belongs to the block (MobileNetV4's UIR without residual)
            for m_chain in chains:
                layer = m_chain(body, False)
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
        for m, fn in primitives:
            said = fn(units, i, out, problems) if u.kind in m.units else None
            if said is not None:
                out += said[0]
                i += said[1]
                done = True
                break
        if done:
            continue
        if (
            u.kind == "opaque"
            or u.kind in ("multi", "catself", "gated", "other")
            and (u.inner or u.branches or u.shortcut)
        ):
            out += _unsaid(u, problems)
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


# Primitive matchers (registered in engine/kinds.py): ``(units, i, before, problems) -> (layers, units
# consumed) | None`` on ``units[i]``, tried after no chain matcher said a run starting there.

Said = tuple[list[Layer], int] | None


def prim_conv(units: list[Unit], i: int, before: list[Layer], problems: list[Problem]) -> Said:
    """A conv unit no block took: a conv layer, or reported (see :func:`_primitives`)."""
    return _primitives([units[i]], problems, ""), 1


def prim_pool(units: list[Unit], i: int, before: list[Layer], problems: list[Problem]) -> Said:
    """A global average pool (``kind: pool``), with how the model computes it."""
    u = units[i]
    impl = u.nodes[0].attrs.get("implementation", "module")
    return [_tag({"kind": "pool", "name": u.scope, "implementation": impl}, [u])], 1


def prim_linear(units: list[Unit], i: int, before: list[Layer], problems: list[Problem]) -> Said:
    """A linear layer (``kind: linear``) and the activation right after it, where the spec names it."""
    u = units[i]
    n = u.nodes[0]
    layer: Layer = {"kind": "linear", "name": u.scope, "out_features": n.shape[1], "bias": bool(n.attrs.get("bias"))}
    used = [u]
    if i + 1 < len(units) and units[i + 1].kind == "act" and units[i + 1].nodes[0].attrs.get("name") in ACTIVATIONS:
        layer["activation"] = units[i + 1].nodes[0].attrs["name"]
        used.append(units[i + 1])
    return [_tag(layer, used)], len(used)


def prim_concat(units: list[Unit], i: int, before: list[Layer], problems: list[Problem]) -> Said:
    """``cat([x, F(x)])`` of the layer before and a chain: F's layers then ``kind: concat`` (:func:`_concat`)."""
    u = units[i]
    fused = _concat(u, before, problems) if u.nodes[0].op == "cat" else None
    return None if fused is None else (fused, 1)


def prim_resize(units: list[Unit], i: int, before: list[Layer], problems: list[Problem]) -> Said:
    """A fixed-size upsample or average pool (``kind: resize``, :func:`_resize`)."""
    resize = _resize(units[i])
    return None if resize is None else ([_tag(resize, [units[i]])], 1)


def prim_norm(units: list[Unit], i: int, before: list[Layer], problems: list[Problem]) -> Said:
    """A norm on a feature map with no conv before it (``kind: norm``)."""
    u = units[i]
    if len(u.nodes[0].shape) != 4:
        return None
    alone = norm_name(Unit("conv", u.nodes))
    if alone in (None, "none"):
        return None
    return [_tag({"kind": "norm", "name": u.scope, "norm": alone}, [u])], 1


def prim_maxpool(units: list[Unit], i: int, before: list[Layer], problems: list[Problem]) -> Said:
    """A square k×k max pool, one stride and padding, no dilation, floor mode (``kind: maxpool``)."""
    u = units[i]
    a = u.nodes[0].attrs
    k, s, p = a.get("kernel"), a.get("stride"), a.get("padding")
    if not all(isinstance(x, int) for x in (k, s, p)) or a.get("dilation") != 1 or a.get("ceil"):
        return None
    layer: Layer = {"kind": "maxpool", "name": u.scope, "kernel": k, "padding": p}
    if s != k:
        layer["stride"] = s
    return [_tag(layer, [u])], 1


def _resize_mode(n: Node) -> str | None:
    """``nearest`` / ``bilinear`` for an upsample node the concat and resize kinds can say."""
    if "nearest" in n.name and "exact" not in n.name:
        return "nearest"
    if "bilinear" in n.name:
        return "bilinear"
    return None


def _resize(u: Unit) -> Layer | None:
    """A map resized to a fixed h×w (``kind: resize``): an upsample (nearest / bilinear ``F.interpolate``) or a
    k×k average pool with stride k on an H×W divisible by k (MobileNetV5's adapter). Where the op is the one
    the fixed-size rule picks at this input (avg pool if h×w divides H×W, else bilinear), the mode is ``timm``,
    so the spec stays the model's at other sizes that need a resize."""
    n = u.nodes[0]
    if len(n.shape) != 4 or len(n.in_shape) != 4:
        return None
    hw = (n.shape[2], n.shape[3])
    if u.kind == "upsample":
        mode = _resize_mode(n)
    else:
        k, st = n.attrs.get("kernel"), n.attrs.get("stride")
        kh, kw = (k, k) if isinstance(k, int) else tuple(k) if isinstance(k, (list, tuple)) and len(k) == 2 else (0, 0)
        pool_ok = st in (None, (), k) and "avg_pool2d.default" in n.name
        divisible = kh > 0 and n.in_shape[2] == hw[0] * kh and n.in_shape[3] == hw[1] * kw
        mode = "avg" if pool_ok and divisible else None
    if mode is None:
        return None
    divides = n.in_shape[2] % hw[0] == 0 and n.in_shape[3] % hw[1] == 0
    if (mode == "avg") == divides and mode in ("avg", "bilinear"):
        mode = "timm"  # the fixed-size rule (avg pool where the size divides H×W, else bilinear) chose it here
    return {"kind": "resize", "name": u.scope, "size": hw[0] if hw[0] == hw[1] else list(hw), "mode": mode}


def _concat(u: Unit, before: list[Layer], problems: list[Problem]) -> list[Layer] | None:
    """``cat([x, F(x)], 1)`` where ``x`` is the output of the layer before and ``F`` a chain of layers,
    its end resized (nearest / bilinear) to x's H×W or already there (MobileNetV5's multi-scale fusion
    adapter): F's layers, then ``kind: concat`` reading the two by name, in the cat's order."""
    cat = u.nodes[0]
    if not before or not before[-1].get("name") or len(cat.inputs) != 2:
        return None
    branch = list(u.inner)
    resize = "nearest"
    tail: list[Unit] = []
    if branch and branch[-1].kind == "upsample":
        mode = _resize_mode(branch[-1].nodes[0])
        if mode is None:
            return None
        resize, tail = mode, [branch.pop()]
    ends = {n.out for x in u.inner for n in x.all_nodes()}
    if sum(t in ends for t in cat.inputs) != 1:
        return None
    sub_problems: list[Problem] = []
    sub = _layers(branch, sub_problems)
    x_shape = tuple(before[-1]["_out"])
    end = tuple(branch[-1].all_nodes()[-1].shape[1:]) if branch else ()
    if sub_problems or not _chains(sub, x_shape, end) or not sub[-1].get("name"):
        return None
    names = {cat.inputs[0]: "", cat.inputs[1]: ""}
    for t in cat.inputs:
        names[t] = sub[-1]["name"] if t in ends else before[-1]["name"]
    layer: Layer = {"kind": "concat", "inputs": [names[t] for t in cat.inputs], "resize": resize}
    tagged = _tag(layer, [*tail, Unit("prim", [cat])] if tail else [Unit("prim", [cat])])
    tagged["_in"] = sub[-1]["_out"]
    return [*sub, tagged]


def _chains(layers: list[Layer], start: tuple[int, ...], end: tuple[int, ...]) -> bool:
    """Whether the layers read ``start``, each the one before's output, and write ``end``."""
    if not layers:
        return False
    shapes = [start, *[x for layer in layers for x in (layer["_in"], layer["_out"])], end]
    return all(a == b for a, b in zip(shapes[::2], shapes[1::2], strict=False))


def _unsaid(u: Unit, problems: list[Problem]) -> list[Layer]:
    """A unit no matcher says: every op of it is reported (not counted)."""
    for n in u.all_nodes():
        problems.append(Problem(n.name, n.scope, f"in a {u.kind} structure no spec kind says (not counted)"))
    return []


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


def _reads(out: tuple[int, ...], inp: tuple[int, ...]) -> bool:
    """Whether a layer reading ``inp`` (the model's shape there) reads the ``out`` the layer before writes in the
    spec: the same shape, or a C×H×W map that the spec's linear flattens into the C·H·W features the model's
    linear reads. Anything else (e.g. a 192×14×14 map where the model's head reads 192 features of a class
    token) means the ops between were not said, and a layer written there would count the wrong input."""
    if out == inp:
        return True
    if len(inp) == 1 and len(out) == 3:
        return math.prod(out) == inp[0]
    if len(inp) == 3 and len(out) == 1:  # a flat vector read as C×1×1 (a 1×1 conv head after a pool)
        return inp == (out[0], 1, 1)
    return False


def _check_chain(layers: list[Layer], problems: list[Problem]) -> list[Layer]:
    """Each layer must read what the one before writes, else the spec would not be the model: at the first
    layer that does not, the spec stops (every count it gives stays the model's), and the layers left out
    are reported by name."""
    for i, (a, b) in enumerate(zip(layers, layers[1:], strict=False)):
        if not _reads(tuple(a["_out"]), tuple(b["_in"])):
            problems.append(
                Problem(
                    b.get("name") or b["kind"],
                    b.get("name") or "",
                    f"reads {b['_in']} but the layers the spec can say give {a['_out']}: the ops between change "
                    f"the shape in a way no spec kind says, so the spec stops here and the {len(layers) - i - 1} "
                    "layers from this one on are not counted",
                )
            )
            for c in layers[i + 2 :]:
                problems.append(Problem(c["kind"], c.get("name") or "", "after the point the spec stops (not counted)"))
            return layers[: i + 1]
    return layers


def fold_condconv(nodes: Sequence[Node]) -> list[Node]:
    """timm's CondConv2d: a conv whose weight is ``routing @ experts`` (a linear node on the routing
    weights, reading the expert parameters) becomes one conv with ``experts``, holding the experts'
    parameters; the routing (global pool → linear → sigmoid on the block input) is folded into the first
    such conv, so the block reads as a chain."""
    by_out = {n.out: n for n in nodes}
    drop: set[int] = set()
    routed: set[int] = set()
    for n in nodes:
        if n.op != "conv" or len(n.inputs) != 2:
            continue
        w = by_out.get(n.inputs[1])
        r = by_out.get(w.inputs[0]) if w is not None and w.op == "linear" and w.inputs else None
        if w is None or r is None or r.op != "act" or r.attrs.get("name") != "sigmoid":
            continue
        n.attrs["experts"] = int(w.in_shape[-1])
        n.inputs = (n.inputs[0],)
        n.params += w.params
        n.attrs["n"] = n.attrs.get("n", 1) + 1
        drop.add(w.out)
        if r.out not in routed:
            routed.add(r.out)
            chain = [r]
            while chain[-1].inputs and chain[-1].op != "pool":
                prev = by_out.get(chain[-1].inputs[0])
                if prev is None:
                    break
                chain.append(prev)
            if chain[-1].op == "pool":
                drop.update(x.out for x in chain)
                n.params += sum(x.params for x in chain)
                n.attrs["n"] += len(chain)
    return [n for n in nodes if n.out not in drop]


def recognise(nodes: Sequence[Node], output: int) -> Recognised:
    """The spec layers of a traced graph (tensor 0 the input, ``output`` the model's output tensor)."""
    g = Graph(fold_condconv(nodes))
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
    layers = _check_chain([{"_out": start, "kind": "input"}, *layers], problems)[1:]
    if not layers:
        raise ImportFailure("cannot import: the model's first layer is not one the spec can say", problems)
    _climb(layers, g.nodes)
    for layer in layers:
        layer.pop("_in")
        layer.pop("_out")
        for n in layer.pop("_dropped", []):  # parallel branches of a conv the layer counts as one conv
            what = "the add joining parallel branches" if n.op == "add" else "on a parallel branch"
            problems.append(Problem(n.name, n.scope, f"{what} the layer list cannot say (not counted)"))
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

    defaults: dict[str, Any] = {key: common(key, _DEFAULTS[key].default) for key in ("activation", "norm", "bias")}
    grouped = [cg for layer in rec.layers for cg in layer.get("_gn", [])]
    if grouped:
        if len({g for _, g in grouped}) == 1:
            if grouped[0][1] != 32:
                defaults["norm_groups"] = grouped[0][1]
        elif len({c // g for c, g in grouped}) == 1 and all(c % g == 0 for c, g in grouped):
            defaults["norm_group_size"] = grouped[0][0] // grouped[0][1]
        else:
            rec.problems.append(Problem("norm", "", "grouped norms whose groups follow no one rule (not exact)"))
    layers: list[Layer] = []
    for layer in rec.layers:
        d = dict(layer)
        d.pop("_gn", None)
        if d["kind"] not in ("pool", "linear", "dropout"):
            for key, v in defaults.items():
                if d.get(key) == v:
                    del d[key]
            if d.get("se_activation") == d.get("activation", defaults["activation"]):
                del d["se_activation"]
            for key in ("se_gate", "se_base"):
                if key in d and d[key] == _default(d["kind"], key):
                    del d[key]
            if "residual" in d:
                auto = _auto(d, layers, input_shape)
                off = _default(d["kind"], "residual") is False
                if off:  # the kind's residual defaults to false, not auto (dwsep, rep_dwsep, basic)
                    if d["residual"] is False:
                        del d["residual"]
                    elif auto and _takes_auto(d["kind"]):
                        d["residual"] = "auto"
                elif auto is not None and d["residual"] == auto:
                    del d["residual"]
        else:  # pool, linear, dropout: the fields that equal the model's defaults
            for key in [k for k in d if k not in ("kind", "name")]:
                if d[key] == _default(d["kind"], key):
                    del d[key]
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


_DEFAULTS = Defaults.model_fields
_UNSET = object()


def _default(kind: str, key: str) -> Any:
    """The default of field ``key`` of the model of ``kind`` (its Pydantic field), or a marker equal to nothing."""
    model = layer_model(kind)
    f = model.model_fields.get(key) if model is not None else None
    return _UNSET if f is None or f.is_required() else f.default


def _takes_auto(kind: str) -> bool:
    """Whether the kind's ``residual`` takes ``auto`` (basic's takes true / false only)."""
    model = layer_model(kind)
    f = model.model_fields.get("residual") if model is not None else None
    return f is not None and f.annotation is not bool


def _auto(d: Layer, previous: list[Layer], input_shape: tuple[int, int, int]) -> bool | None:
    """What ``residual: auto`` gives for this layer: stride 1 and in == out."""
    cin: Any = input_shape[0]
    for p in previous:
        cin = p.get("out_channels", p.get("out_features", cin))
    if "out_channels" not in d:
        return None
    return bool(d.get("stride", 1) == 1 and d["out_channels"] == cin)
