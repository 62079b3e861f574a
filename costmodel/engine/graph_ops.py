"""The graph kind's op registry: one entry per op of the vocabulary (spec/layers_graph.py ``OPS``), its formula.

A formula takes the node, its inputs' shapes (full torch shapes at batch 1: ``(1, 197, 384)``,
``(1, 64, 56, 56)``), whether the output is *batched* (derived from the layer input or an earlier layer's
output, not from parameters alone) and the batch n, and gives an :class:`~costmodel.engine.ops.Op`: params,
buffers, MACs, FLOPs, the output shape, a category and a detail text. MACs and FLOPs are the op's batch-1
costs × n when the output is batched, × 1 otherwise; params and buffers never scale.

MACs are what ``FlopCounterMode`` counts for the same torch op, divided by 2: convolutions (transposed too),
``mm`` / ``addmm`` / ``bmm`` / ``baddbmm`` (linear, matmul, bmm, einsum's pairwise contraction) and the fused
scaled-dot-product attention kernels; every other op is 0 MACs. Shapes may hold sympy symbols (an input size
``H``) where the arithmetic is exact (convs, pools, elementwise ops); a literal shape that no longer fits
(a reshape, a concat) is a SpecError naming the node's field. docs/spec.md lists every formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import SpecError, UndecidableError
from ..spec import layers_graph as _spec
from ..spec.fields import MAX_INT
from ..spec.layers_graph import OpNode
from . import ops
from .ops import Op, Shape
from .symbols import Num, divides, equal, floordiv, is_symbolic

CATEGORIES = ("conv", "linear", "matmul", "norm", "act", "pool", "add", "mul", "data", "param", "other")
"""What a graph op is to the execution models (``Op.category``); ``data``: 0-cost data movement; ``param``: a
parameter or buffer node (no activation: its tensor is a weight)."""


@dataclass(frozen=True)
class Node:
    """What a formula reads: the node, its inputs' shapes and batched flags, the batch, and where it is."""

    node: OpNode
    shapes: tuple[Shape, ...]
    batch_dims: tuple[int | None, ...]  # where each input holds the batch: None unbatched, UNKNOWN folded elsewhere
    n: Num
    path: tuple[str | int, ...]  # ("layers", i, "nodes", j)

    @property
    def batched(self) -> bool:
        """Whether the output is batched: any input is."""
        return any(b is not None for b in self.batch_dims)

    @property
    def label(self) -> str:
        """How messages name the node: ``node 'qkv' (linear)`` or ``node 3 (reshape)``."""
        j = self.path[-1]
        return self.node.label(j if isinstance(j, int) else 0)

    @property
    def scale(self) -> Num:
        """What batch-1 MACs, FLOPs scale by: n for a batched output, else 1."""
        return self.n if self.batched else 1

    def get(self, name: str) -> Any:
        """The node's field ``name`` (or the op's default)."""
        return self.node.get(name)

    def fail(self, message: str, field: str = "op") -> NoReturn:
        """Refuse the node: a SpecError naming ``layers[i].nodes[j].field``."""
        raise SpecError(f"{self.label}: {message}", (*self.path, field))

    def op(
        self,
        out: Shape,
        category: str,
        detail: str = "",
        *,
        params: Num = 0,
        buffers: Num = 0,
        macs: Num = 0,
        flops: Num = 0,
        batched: bool | None = None,
        bias: bool = False,
        attrs: dict[str, Num] | None = None,
    ) -> Op:
        """The Op of this node from its batch-1 costs (MACs and FLOPs × :attr:`scale`)."""
        b = self.batched if batched is None else batched
        s = self.n if b else 1
        if any(getattr(v, "is_nonpositive", False) is True or (isinstance(v, int) and v < 1) for v in out):
            field = "kernel" if "kernel" in _spec.OPS[self.node.op].fields else "op"
            self.fail(
                f"would output {_shape_text(tuple(out))} from its {_shape_text(self.shapes[0])} input: every size must "
                "be at least 1 (the kernel does not fit the padded input)",
                field,
            )
        return Op(
            self.node.op,
            detail,
            {"params": params, "buffers": buffers, "macs": s * macs, "flops": s * flops},
            self.shapes[0] if self.shapes else (),
            tuple(out),
            category,
            bias,
            attrs=attrs or {},
            batched=b,
        )


Formula = Callable[[Node], Op]


@dataclass(frozen=True)
class GraphOp:
    """One op of the vocabulary: its formula and the category of what it does."""

    formula: Formula
    category: str


def _ints(v: Any, rank: int, what: str, c: Node) -> tuple[int, ...]:
    """A per-dimension setting (one int for every dim, or a list of ``rank``)."""
    if isinstance(v, int):
        return (v,) * rank
    if len(v) == 1:
        return (v[0],) * rank
    if len(v) != rank:
        c.fail(f"{what} has {len(v)} entries, the input has {rank} spatial dims", what)
    return tuple(v)


def _dim(d: int, rank: int, c: Node, field: str = "dim") -> int:
    """A dim index (negative from the end) in [0, rank)."""
    if not -rank <= d < rank:
        c.fail(f"dim {d} is out of range for a rank-{rank} input", field)
    return d % rank


def _same(a: Num, b: Num, c: Node, field: str, what: str) -> None:
    ok = equal(a, b)
    if ok is False:
        c.fail(what, field)
    if ok is None:
        raise UndecidableError(f"{c.label}: cannot decide whether {what.split(':')[0]}", (*c.path, field))


def _shape_text(s: Shape) -> str:
    return "×".join(str(x) for x in s) if s else "scalar"


def broadcast(shapes: Sequence[Shape], c: Node, field: str = "inputs") -> Shape:
    """torch's broadcasting: shapes aligned on the right, each dim equal across inputs or 1."""
    rank = max(len(s) for s in shapes)
    out: list[Num] = []
    for k in range(rank):
        size: Num = 1
        for s in shapes:
            j = len(s) - rank + k
            if j < 0 or s[j] == 1:
                continue
            if size == 1:
                size = s[j]
            elif equal(size, s[j]) is not True:
                c.fail(f"shapes {', '.join(_shape_text(x) for x in shapes)} do not broadcast", field)
        out.append(size)
    return tuple(out)


# ------------------------------------------------------------------------------------------ params, buffers


def _param(c: Node) -> Op:
    """A parameter tensor: params = numel(shape); unbatched; no activation."""
    shape = tuple(c.get("shape"))
    if any(x < 1 for x in shape):
        c.fail("a parameter's shape holds sizes ≥ 1", "shape")
    return c.op(shape, "param", _shape_text(shape) + (" unread" if c.get("unread") else ""), params=math.prod(shape))


def _buffer(c: Node) -> Op:
    """A buffer tensor: buffers = numel(shape); unbatched; no activation."""
    shape = tuple(c.get("shape"))
    if any(x < 1 for x in shape):
        c.fail("a buffer's shape holds sizes ≥ 1", "shape")
    return c.op(shape, "param", _shape_text(shape) + (" unread" if c.get("unread") else ""), buffers=math.prod(shape))


# --------------------------------------------------------------------------------------------- conv, linear


def _conv(c: Node) -> Op:
    """Convolution (1-D/2-D/3-D by the input's rank) on x = (1, C, *spatial), ``out`` channels, ``groups`` g.

    Output size per dim: floor((X + 2p − d(k − 1) − 1)/s) + 1; transposed: (X − 1)s − 2p + d(k − 1) + op + 1.
    params = out·C/g·∏k (+ out with ``bias``) when it owns its weight (one input; a 2nd input is the weight, a
    3rd the bias); MACs = numel(out)·(C/g)·∏k (transposed: numel(x)·(out/g)·∏k), FlopCounterMode's convolution
    formula; FLOPs = 2·MACs + numel(out) with a bias."""
    x = c.shapes[0]
    rank = len(x) - 2
    if not 1 <= rank <= 3:
        c.fail(f"conv takes a (1, C, *spatial) input with 1 to 3 spatial dims, got {_shape_text(x)}", "inputs")
    cin, cout, g = x[1], c.get("out"), c.get("groups")
    k = _ints(c.get("kernel"), rank, "kernel", c)
    s = _ints(c.get("stride"), rank, "stride", c)
    p = _ints(c.get("padding"), rank, "padding", c)
    d = _ints(c.get("dilation"), rank, "dilation", c)
    transposed = c.get("transposed")
    op_ = _ints(c.get("output_padding"), rank, "output_padding", c)
    if not transposed and any(op_):
        c.fail("output_padding is for a transposed conv", "output_padding")
    if any(o >= max(si, di) for o, si, di in zip(op_, s, d, strict=True)):
        c.fail("output_padding must be smaller than the stride or the dilation (torch refuses it)", "output_padding")
    for width, what in ((cin, "input"), (cout, "output")):
        if divides(g, width) is False:
            c.fail(f"groups {g} does not divide the {what} channels {width}", "groups")
    per = floordiv(cin, g) if not transposed else floordiv(cout, g)
    weight = (cin, per, *k) if transposed else (cout, per, *k)
    if len(c.shapes) > 1:
        w = c.shapes[1]
        if len(w) != len(weight) or any(equal(a, b) is False for a, b in zip(w, weight, strict=True)):
            c.fail(f"the weight input is {_shape_text(w)}, the conv needs {_shape_text(weight)}", "inputs")
    if len(c.shapes) > 2 and c.get("bias"):
        c.fail("the bias is the third input here: leave bias out", "bias")
    has_bias = bool(c.get("bias")) or len(c.shapes) > 2
    if transposed:
        sizes = [
            (xi - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
            for xi, si, pi, di, ki, oi in zip(x[2:], s, p, d, k, op_, strict=True)
        ]
    else:
        sizes = [ops.spatial_out(xi, si, ki, pi, di) for xi, si, ki, pi, di in zip(x[2:], s, k, p, d, strict=True)]
    out = (x[0], cout, *sizes)
    taps = math.prod(k)
    macs = ops.numel(x) * per * taps if transposed else ops.numel(out) * floordiv(cin, g) * taps
    params = (math.prod(weight) if len(c.shapes) == 1 else 0) + (cout if c.get("bias") else 0)
    flops = 2 * macs + (ops.numel(out) if has_bias else 0)
    kind = "" if g == 1 else ("dw " if g == cin else f"g{g} ")
    detail = f"{'×'.join(map(str, k))} {kind}{cin}→{cout}" + (" T" if transposed else "")
    detail += f" s{s[0]}" if any(v != 1 for v in s) else ""
    attrs: dict[str, Num] = {"kernel": k[0], "stride": s[0], "groups": g}
    return c.op(out, "conv", detail, params=params, macs=macs, flops=flops, bias=has_bias, attrs=attrs)


def _linear(c: Node) -> Op:
    """x·Wᵀ (+ b) on x = (…, K): output (…, out); params K·out (+ out with ``bias``) when it owns its weight (a
    2nd input is the weight (out, K), a 3rd the bias); MACs = numel(x)/K·K·out = numel(x)·out (FlopCounterMode's
    mm / addmm); FLOPs = 2·MACs + numel(out) with a bias."""
    x = c.shapes[0]
    if not x:
        c.fail("linear needs an input of rank ≥ 1", "inputs")
    k, out_f = x[-1], c.get("out")
    if len(c.shapes) > 1:
        w = c.shapes[1]
        if len(w) != 2 or equal(w[0], out_f) is False or equal(w[1], k) is False:
            c.fail(f"the weight input is {_shape_text(w)}, linear needs {out_f}×{k}", "inputs")
    if len(c.shapes) > 2 and c.get("bias"):
        c.fail("the bias is the third input here: leave bias out", "bias")
    has_bias = bool(c.get("bias")) or len(c.shapes) > 2
    out = (*x[:-1], out_f)
    macs = ops.numel(x) * out_f
    params = (k * out_f if len(c.shapes) == 1 else 0) + (out_f if c.get("bias") else 0)
    flops = 2 * macs + (ops.numel(out) if has_bias else 0)
    return c.op(out, "linear", f"{k}→{out_f}", params=params, macs=macs, flops=flops, bias=has_bias)


# --------------------------------------------------------------------------------------- matmul, attention


def _matmul(c: Node) -> Op:
    """torch.matmul(a, b) with its broadcasting (a 1-D operand gains a dim of 1, removed after): output
    (*broadcast batch, m, n); FLOPs = 2·∏batch·m·k·n. MACs = ∏batch·m·k·n, as FlopCounterMode counts the mm / bmm
    torch runs — except where b is 1-D: torch runs ``dot`` / ``mv``, which FlopCounterMode does not count (0)."""
    a, b = c.shapes
    if not a or not b:
        c.fail("matmul needs inputs of rank ≥ 1", "inputs")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    _same(a2[-1], b2[-2], c, "inputs", f"the inner sizes differ: {_shape_text(a)} @ {_shape_text(b)}")
    batch = broadcast([a2[:-2], b2[:-2]], c) if len(a2) > 2 or len(b2) > 2 else ()
    m, k, n = a2[-2], a2[-1], b2[-1]
    out = (*batch, *((m,) if len(a) > 1 else ()), *((n,) if len(b) > 1 else ()))
    work = math.prod(batch) * m * k * n
    macs = 0 if len(b) == 1 else work
    detail = f"{_shape_text(a)}@{_shape_text(b)}" + (" mv (uncounted)" if len(b) == 1 else "")
    return c.op(out, "matmul", detail, macs=macs, flops=2 * work)


def _bmm(c: Node) -> Op:
    """torch.bmm(a, b) on (B, m, k) @ (B, k, n): output (B, m, n); MACs = B·m·k·n; FLOPs 2·MACs."""
    a, b = c.shapes
    if len(a) != 3 or len(b) != 3:
        c.fail(f"bmm takes two rank-3 inputs, got {_shape_text(a)} and {_shape_text(b)}", "inputs")
    _same(a[0], b[0], c, "inputs", f"the batch sizes differ: {a[0]} and {b[0]}")
    _same(a[2], b[1], c, "inputs", f"the inner sizes differ: {a[2]} and {b[1]}")
    macs = a[0] * a[1] * a[2] * b[2]
    return c.op((a[0], a[1], b[2]), "matmul", f"{_shape_text(a)}@{_shape_text(b)}", macs=macs, flops=2 * macs)


def _einsum(c: Node) -> Op:
    """torch.einsum(equation, a[, b]) (no ellipsis). Two operands: indices in one operand only and not in the
    output are summed first; the rest contract as one bmm of ∏ over every remaining index — MACs (FlopCounterMode's
    bmm), FLOPs 2·MACs — unless no index is summed, where torch multiplies (0 MACs, FLOPs numel(out)). One
    operand: a sum or permutation, 0 MACs."""
    eq = c.get("equation").replace(" ", "")
    if "..." in eq or eq.count("->") != 1:
        c.fail("einsum takes an explicit equation `ab,bc->ac` (with ->, without ...)", "equation")
    lhs, rhs = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != len(c.shapes) or not all(t.isalpha() for t in terms) or not (rhs.isalpha() or rhs == ""):
        c.fail(f"the equation names {len(terms)} operands, the node reads {len(c.shapes)}", "equation")
    sizes: dict[str, Num] = {}
    for t, s in zip(terms, c.shapes, strict=True):
        if len(t) != len(s) or len(set(t)) != len(t):
            c.fail(f"operand {t!r} does not fit the input {_shape_text(s)} (one letter per dim)", "equation")
        for ch, size in zip(t, s, strict=True):
            if ch in sizes and size != 1 and sizes[ch] != 1 and equal(sizes[ch], size) is not True:
                c.fail(f"index {ch!r} has the sizes {sizes[ch]} and {size}", "equation")
            sizes[ch] = size if ch not in sizes or sizes[ch] == 1 else sizes[ch]
    if any(ch not in sizes for ch in rhs) or len(set(rhs)) != len(rhs):
        c.fail("the output names an index no operand has (or one twice)", "equation")
    out = tuple(sizes[ch] for ch in rhs)
    if len(terms) == 1:
        return c.op(out, "data" if len(rhs) == len(terms[0]) else "pool", eq, flops=0)
    a, b = (set(t) for t in terms)
    kept = (a | b) - ((a ^ b) - set(rhs))  # indices in one operand only and not in the output are summed first
    summed = (a & b) - set(rhs)
    work = math.prod(sizes[ch] for ch in sorted(kept))
    if not summed:
        return c.op(out, "mul", eq + " (elementwise)", flops=ops.numel(out))
    return c.op(out, "matmul", eq, macs=work, flops=2 * work)


def _sdpa(c: Node) -> Op:
    """F.scaled_dot_product_attention(q, k, v[, mask]) on q (…, Sq, D), k (…, Sk, D), v (…, Sk, Dv): output
    (…, Sq, Dv); MACs = ∏batch·Sq·Sk·(D + Dv) (FlopCounterMode's sdpa formula: q·kᵀ and attention·v); FLOPs =
    2·MACs + 6 per logit (scale, softmax: ops.ATTENTION_SOFTMAX_FLOPS) + 1 per logit with a mask."""
    q, k, v = c.shapes[:3]
    if min(len(q), len(k), len(v)) < 2:
        c.fail("sdpa takes q, k, v of rank ≥ 2", "inputs")
    _same(q[-1], k[-1], c, "inputs", f"q's and k's last sizes differ: {q[-1]} and {k[-1]}")
    _same(k[-2], v[-2], c, "inputs", f"k and v hold {k[-2]} and {v[-2]} positions")
    batch = broadcast([q[:-2], k[:-2], v[:-2]], c)
    sq, sk, d, dv = q[-2], k[-2], q[-1], v[-1]
    if len(c.shapes) > 3:
        scores = (*batch, sq, sk)
        if len(broadcast([c.shapes[3], scores], c)) != len(scores) or any(
            equal(a, b) is False for a, b in zip(broadcast([c.shapes[3], scores], c), scores, strict=True)
        ):
            c.fail(
                f"the mask {_shape_text(c.shapes[3])} does not broadcast to the scores {_shape_text(scores)}", "inputs"
            )
    logits = math.prod(batch) * sq * sk
    macs = logits * (d + dv)
    flops = 2 * macs + (ops.ATTENTION_SOFTMAX_FLOPS + (1 if len(c.shapes) > 3 else 0)) * logits
    return c.op((*batch, sq, dv), "matmul", f"{sq}·{sk} d{d}" + (f" v{dv}" if dv != d else ""), macs=macs, flops=flops)


# ------------------------------------------------------------------------------------------------ norms


def _norm_flops(affine_weight: bool, affine_bias: bool) -> int:
    """Per element: statistics ops.NORM_STAT_FLOPS (4), normalize 2 (subtract, multiply by 1/σ), affine 1 + 1."""
    return ops.NORM_STAT_FLOPS + 2 + int(affine_weight) + int(affine_bias)


def _batch_norm(c: Node) -> Op:
    """Inference BatchNorm over dim 1 (C): params 2C (``affine``), buffers 2C (+ 1 num_batches_tracked with
    ``tracked``); FLOPs ops.BN_FLOPS_PER_ELEMENT (2: folded a·x + b) per element; 0 MACs."""
    x = c.shapes[0]
    if len(x) < 2:
        c.fail(f"batch_norm normalizes dim 1 of a rank ≥ 2 input, got {_shape_text(x)}", "inputs")
    ch = x[1]
    params = 2 * ch if c.get("affine") else 0
    buffers = 2 * ch + (1 if c.get("tracked") else 0)
    flops = ops.BN_FLOPS_PER_ELEMENT * ops.numel(x)
    op = c.op(x, "norm", f"{ch}", params=params, buffers=buffers, flops=flops)
    op.state, op.folds = 2 * ch, True
    return op


def _layer_norm(c: Node) -> Op:
    """LayerNorm over the last ``normalized`` dims (M = their product): params M (``affine``) + M (``bias``);
    FLOPs per element 4 (statistics) + 2 (normalize) + 1 per affine term (8 with both, as ops.layernorm2d)."""
    x, m = c.shapes[0], c.get("normalized")
    if m > len(x):
        c.fail(f"normalized {m} is more dims than the input {_shape_text(x)} has", "normalized")
    size = math.prod(x[len(x) - m :])
    w, b = bool(c.get("affine")), bool(c.get("affine")) and bool(c.get("bias"))
    flops = _norm_flops(w, b) * ops.numel(x)
    return c.op(x, "norm", _shape_text(x[len(x) - m :]), params=size * (int(w) + int(b)), flops=flops)


def _group_norm(c: Node) -> Op:
    """GroupNorm with ``groups`` over (1, C, *): params 2C (``affine``); FLOPs 8 per element (6 without affine),
    as ops.groupnorm."""
    x, g = c.shapes[0], c.get("groups")
    if len(x) < 2:
        c.fail(f"group_norm takes a (1, C, …) input, got {_shape_text(x)}", "inputs")
    if divides(g, x[1]) is False:
        c.fail(f"groups {g} does not divide the {x[1]} channels", "groups")
    a = bool(c.get("affine"))
    return c.op(x, "norm", f"{x[1]} g{g}", params=2 * x[1] if a else 0, flops=_norm_flops(a, a) * ops.numel(x))


def _rms_norm(c: Node) -> Op:
    """RMSNorm over the last ``normalized`` dims (M): x / √(mean(x²) + ε) (· γ); params M (``affine``);
    FLOPs per element 3 (square, sum, normalize) + 1 with γ, + 3 per normalized vector (divide by M, add ε,
    rsqrt) — ops.rmsnorm2d's 4 + 3."""
    x, m = c.shapes[0], c.get("normalized")
    if m > len(x):
        c.fail(f"normalized {m} is more dims than the input {_shape_text(x)} has", "normalized")
    size = math.prod(x[len(x) - m :])
    a = bool(c.get("affine"))
    flops = (3 + int(a)) * ops.numel(x) + 3 * floordiv(ops.numel(x), size)
    return c.op(x, "norm", _shape_text(x[len(x) - m :]), params=size if a else 0, flops=flops)


# ----------------------------------------------------------------------------------------- activations

ELEMENTWISE_FLOPS: dict[str, int] = {
    **ops.ACTIVATION_FLOPS,  # relu 1, relu6 2, sigmoid 4, silu 5, hardsigmoid 4, hardswish 5, gelu 5, gelu_tanh 9
    "tanh": 1,
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "rsqrt": 1,
    "neg": 1,
    "abs": 1,
    "reciprocal": 1,
    "erf": 1,
    "softplus": 3,  # log(1 + exp(x)): exp, add, log
    "mish": 5,  # x · tanh(softplus(x)): softplus 3, tanh, multiply
    "leaky_relu": 2,  # x > 0 ? x : a·x: compare, multiply
    "elu": 4,  # x > 0 ? x : a·(exp(x) − 1): compare, exp, subtract, multiply
}
"""FLOPs per element of each one-input elementwise op (the activations of spec/names.py and the math ops)."""

SOFTMAX_FLOPS = ops.ATTENTION_SOFTMAX_FLOPS - 1  # per element: max, subtract, exp, sum, divide (5)


def _elementwise(name: str) -> Formula:
    def formula(c: Node) -> Op:
        x = c.shapes[0]
        return c.op(x, "act", "", flops=ELEMENTWISE_FLOPS[name] * ops.numel(x))

    formula.__doc__ = f"{name}: output = input shape; FLOPs {ELEMENTWISE_FLOPS[name]} per element; 0 MACs."
    return formula


def _softmax(c: Node) -> Op:
    """softmax / log_softmax along ``dim``: FLOPs 5 per element (max, subtract, exp, sum, divide or log)."""
    x = c.shapes[0]
    d = c.get("dim")
    if not isinstance(d, int):
        c.fail("softmax takes one dim", "dim")
    d = _dim(d, len(x), c)
    return c.op(x, "act", f"dim {d}", flops=SOFTMAX_FLOPS * ops.numel(x))


# ------------------------------------------------------------------------------------------------ pools


def _pool_size(c: Node, x: Num, k: int, s: int, p: int, d: int, ceil: bool) -> Num:
    """torch's pooling output size: floor or ceil((X + 2p − d(k − 1) − 1)/s) + 1, and with ceil the last window
    must start inside the padded input ((out − 1)·s < X + p)."""
    if 2 * p > d * (k - 1) + 1:
        c.fail(f"padding {p} is more than half the (dilated) kernel {d * (k - 1) + 1} (torch refuses it)", "padding")
    span = x + 2 * p - d * (k - 1) - 1
    if not ceil:
        return floordiv(span, s) + 1
    if is_symbolic(x):
        raise UndecidableError(f"{c.label}: ceil needs a numeric input size", (*c.path, "ceil"))
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= x + p else out


def _local_pool(c: Node, is_max: bool) -> Op:
    x = c.shapes[0]
    kernel = c.get("kernel")
    rank = len(kernel) if isinstance(kernel, list) and len(kernel) > 1 else len(x) - 2
    if not 1 <= rank <= 3 or len(x) < rank + 1:
        c.fail(f"a pool takes (…, C, *spatial) with 1 to 3 spatial dims, got {_shape_text(x)}", "inputs")
    k = _ints(kernel, rank, "kernel", c)
    s = _ints(c.get("stride") if c.get("stride") is not None else list(k), rank, "stride", c)
    p = _ints(c.get("padding"), rank, "padding", c)
    d = _ints(c.get("dilation"), rank, "dilation", c) if is_max else (1,) * rank
    ceil = bool(c.get("ceil"))
    lead = x[: len(x) - rank]
    sizes = [
        _pool_size(c, xi, ki, si, pi, di, ceil)
        for xi, ki, si, pi, di in zip(x[len(x) - rank :], k, s, p, d, strict=True)
    ]
    out = (*lead, *sizes)
    taps = math.prod(k)
    flops = ops.numel(out) * (taps - 1 if is_max else taps)
    detail = f"{'×'.join(map(str, k))} {'max' if is_max else 'avg'}" + (f" s{s[0]}" if any(v != 1 for v in s) else "")
    return c.op(out, "pool", detail, flops=flops)


def _avg_pool(c: Node) -> Op:
    """avg_pool (1-D/2-D/3-D by ``kernel`` or the input's rank): torch's output size (``ceil``: ceil_mode);
    FLOPs = numel(out)·∏k (∏k − 1 adds and a divide per output, as ops.avgpool2d); 0 MACs."""
    return _local_pool(c, False)


def _max_pool(c: Node) -> Op:
    """max_pool: torch's output size (dilation, ceil_mode); FLOPs = numel(out)·(∏k − 1) comparisons; 0 MACs."""
    return _local_pool(c, True)


def _window_sum(c: Node, x: Num, o: int) -> Num:
    """Σ over the o adaptive windows along a dim of size x of their lengths (window i: floor(i·x/o) …
    ceil((i + 1)·x/o)); x when the windows tile it (o divides x), a symbolic x only then."""
    if o == 1 or divides(o, x) is True:
        return x
    if is_symbolic(x):
        raise UndecidableError(
            f"{c.label}: adaptive windows of a symbolic size {x} into {o}: bind it with --set",
            (*c.path, "size"),
        )
    return sum(-(-(i + 1) * x // o) - (i * x) // o for i in range(o))


def _adaptive(c: Node, is_max: bool) -> Op:
    x = c.shapes[0]
    size = c.get("size")
    rank = len(size)
    if rank > 3 or len(x) < rank + 1 or any(v < 1 for v in size):
        c.fail(f"size {size} does not fit the input {_shape_text(x)} (1 to 3 positive sizes)", "size")
    lead = x[: len(x) - rank]
    out = (*lead, *size)
    reads = ops.numel(lead) * math.prod(_window_sum(c, xi, o) for xi, o in zip(x[len(x) - rank :], size, strict=True))
    flops = reads - ops.numel(out) if is_max else reads
    return c.op(out, "pool", "→" + "×".join(map(str, size)), flops=flops)


def _adaptive_avg_pool(c: Node) -> Op:
    """adaptive_avg_pool to ``size``: FLOPs = Σ of the window sizes (numel(x) when the windows tile the input, as
    ops.global_avgpool); 0 MACs."""
    return _adaptive(c, False)


def _adaptive_max_pool(c: Node) -> Op:
    """adaptive_max_pool to ``size``: FLOPs = Σ window sizes − numel(out) comparisons; 0 MACs."""
    return _adaptive(c, True)


def _reduce(name: str) -> Formula:
    def formula(c: Node) -> Op:
        x = c.shapes[0]
        d = c.get("dim")
        dims = sorted({_dim(v, len(x), c) for v in ([d] if isinstance(d, int) else d)}) if d is not None else []
        if d is None:
            dims = list(range(len(x)))
        keep = bool(c.get("keepdim"))
        out = tuple(1 if k in dims else s for k, s in enumerate(x) if keep or k not in dims)
        reads = ops.numel(x)
        flops = {"mean": reads, "sum": reads - ops.numel(out), "amax": reads - ops.numel(out)}.get(
            name, ops.NORM_STAT_FLOPS * reads
        )
        return c.op(out, "pool", "dims " + ",".join(map(str, dims)), flops=flops)

    formula.__doc__ = (
        f"{name} over ``dim`` (all dims when unset), ``keepdim``: FLOPs "
        + {"mean": "numel(x)", "sum": "numel(x) − numel(out)", "amax": "numel(x) − numel(out)"}.get(name, "4·numel(x)")
        + "; 0 MACs."
    )
    return formula


# ------------------------------------------------------------------------------------------ elementwise


def _binary(name: str, category: str) -> Formula:
    def formula(c: Node) -> Op:
        out = broadcast(c.shapes, c)
        return c.op(out, category, "", flops=ops.numel(out) * max(1, len(c.shapes) - 1))

    formula.__doc__ = (
        f"{name} of broadcast inputs (one input: with a scalar): output the broadcast shape; "
        "FLOPs numel(out)·max(1, inputs − 1); 0 MACs."
    )
    return formula


# ------------------------------------------------------------------------------------------- data movement


def _data(c: Node, out: Shape, detail: str = "") -> Op:
    return c.op(out, "data", detail)


def _reshape(c: Node) -> Op:
    """reshape / view to ``shape`` (one −1 inferred): numel must stay; 0 cost."""
    x, want = c.shapes[0], list(c.get("shape"))
    if 0 in want:
        c.fail("shape holds a 0", "shape")
    if want.count(-1) > 1:
        c.fail("shape holds −1 more than once", "shape")
    known = math.prod(v for v in want if v != -1)
    total = ops.numel(x)
    if -1 in want:
        if divides(known, total) is not True:
            c.fail(f"shape {want} does not fit the {_shape_text(x)} input ({total} elements)", "shape")
        want[want.index(-1)] = floordiv(total, known)
    else:
        _same(known, total, c, "shape", f"shape {want} does not fit the {_shape_text(x)} input ({total} elements)")
    return _data(c, tuple(want), _shape_text(tuple(want)))


def _permute(c: Node) -> Op:
    """permute by ``dims`` (a permutation of the input's dims); 0 cost."""
    x, dims = c.shapes[0], c.get("dims")
    if sorted(v % len(x) if -len(x) <= v < len(x) else -1 for v in dims) != list(range(len(x))):
        c.fail(f"dims {dims} is no permutation of the {len(x)} dims of {_shape_text(x)}", "dims")
    return _data(c, tuple(x[v] for v in dims), ",".join(map(str, dims)))


def _transpose(c: Node) -> Op:
    """transpose the two ``dims``; 0 cost."""
    x, dims = c.shapes[0], c.get("dims")
    if len(dims) != 2:
        c.fail("transpose takes two dims", "dims")
    a, b = (_dim(v, len(x), c, "dims") for v in dims)
    out = list(x)
    out[a], out[b] = out[b], out[a]
    return _data(c, tuple(out), f"{a},{b}")


def _flatten(c: Node) -> Op:
    """flatten dims ``dim: [start, end]`` (default [0, −1]) into one; 0 cost."""
    x, d = c.shapes[0], c.get("dim")
    if isinstance(d, int) or len(d) != 2:
        c.fail("flatten takes dim: [start, end]", "dim")
    if not x:
        return _data(c, (1,))
    a, b = (_dim(v, len(x), c) for v in d)
    if a > b:
        c.fail(f"start {a} is after end {b}", "dim")
    return _data(c, (*x[:a], ops.numel(x[a : b + 1]), *x[b + 1 :]), f"{a}..{b}")


def _expand(c: Node) -> Op:
    """expand to ``shape`` (−1 keeps a dim; new leading dims allowed; only size-1 dims grow); 0 cost."""
    x, want = c.shapes[0], c.get("shape")
    if 0 in want:
        c.fail("shape holds a 0", "shape")
    if len(want) < len(x):
        c.fail(f"shape {want} has fewer dims than the input {_shape_text(x)}", "shape")
    lead = len(want) - len(x)
    out: list[Num] = []
    for k, v in enumerate(want):
        old = x[k - lead] if k >= lead else None
        if v == -1:
            if old is None:
                c.fail("−1 in a new leading dim", "shape")
            out.append(old)
        elif old is None or old == 1 or equal(old, v) is True:
            out.append(v)
        else:
            c.fail(f"cannot expand {_shape_text(x)} to {want}", "shape")
    return _data(c, tuple(out), _shape_text(tuple(out)))


def _cat(c: Node) -> Op:
    """torch.cat along ``dim``: the other dims equal; 0 cost (a copy)."""
    first = c.shapes[0]
    d = c.get("dim")
    if not isinstance(d, int):
        c.fail("cat takes one dim", "dim")
    d = _dim(d, len(first), c)
    for j, s in enumerate(c.shapes):
        if len(s) != len(first) or any(
            equal(a, b) is False for k, (a, b) in enumerate(zip(s, first, strict=True)) if k != d
        ):
            c.fail(f"input {j} is {_shape_text(s)}, the first {_shape_text(first)}: only dim {d} may differ", "inputs")
    total: Num = 0
    for s in c.shapes:
        total = total + s[d]
    return _data(c, (*first[:d], total, *first[d + 1 :]), f"dim {d}")


def _slice(c: Node) -> Op:
    """x[start:end:step] along ``dim`` (Python's slice rule); 0 cost."""
    x = c.shapes[0]
    d = _dim(c.get("dim"), len(x), c)
    start, end, step = c.get("start"), c.get("end"), c.get("step")
    size = x[d]
    if is_symbolic(size):
        if (start, end, step) != (0, MAX_INT, 1):
            raise UndecidableError(
                f"{c.label}: a slice of the symbolic size {size}: bind it with --set",
                (*c.path, "start"),
            )
        length: Num = size
    else:
        length = len(range(*slice(start, end, step).indices(size)))
    if length == 0:
        c.fail(f"the slice {start}:{end}:{step} of {size} is empty", "start")
    return _data(c, (*x[:d], length, *x[d + 1 :]), f"dim {d} {start}:{end}:{step}")


def _select(c: Node) -> Op:
    """x.select(dim, index): dim removed; 0 cost."""
    x = c.shapes[0]
    d = _dim(c.get("dim"), len(x), c)
    i = c.get("index")
    if isinstance(x[d], int) and not -x[d] <= i < x[d]:
        c.fail(f"index {i} is out of range for size {x[d]}", "index")
    return _data(c, (*x[:d], *x[d + 1 :]), f"dim {d} [{i}]")


def _pad(c: Node) -> Op:
    """F.pad(x, pads, mode): pads are (before, after) pairs from the last dim back; 0 cost (no FLOPs)."""
    x, pads = c.shapes[0], c.get("pads")
    if len(pads) % 2 or len(pads) // 2 > len(x):
        c.fail(f"pads {pads} is no list of (before, after) pairs for the {len(x)} dims", "pads")
    if c.get("mode") not in ("constant", "reflect", "replicate", "circular"):
        c.fail("mode is constant, reflect, replicate or circular", "mode")
    if c.get("mode") != "constant":
        for k, v in enumerate(pads):
            size = x[len(x) - 1 - k // 2]
            if v < 0 or (c.get("mode") == "reflect" and isinstance(size, int) and v >= size):
                c.fail(f"a {c.get('mode')} pad of {v} does not fit the size {size} (torch refuses it)", "pads")
    out = list(x)
    for k in range(len(pads) // 2):
        out[len(x) - 1 - k] = out[len(x) - 1 - k] + pads[2 * k] + pads[2 * k + 1]
    if any(isinstance(v, int) and v < 1 for v in out):
        c.fail(f"pads {pads} leave no elements", "pads")
    return _data(c, tuple(out), f"{c.get('mode')} {pads}")


def _roll(c: Node) -> Op:
    """torch.roll(x, shifts=size, dims): same shape, 0 cost."""
    x = c.shapes[0]
    dims = c.get("dims")
    if len(dims) != len(c.get("size")):
        c.fail("size (the shifts) and dims have different lengths", "dims")
    for v in dims:
        _dim(v, len(x), c, "dims")
    return _data(c, x)


def _repeat(tile: bool) -> Formula:
    def formula(c: Node) -> Op:
        x, reps = c.shapes[0], list(c.get("shape"))
        if any(v < 1 for v in reps):
            c.fail("the repeats are positive", "shape")
        if len(reps) < len(x):
            if not tile:
                c.fail(f"repeat needs at least {len(x)} repeats (one per dim)", "shape")
            reps = [1] * (len(x) - len(reps)) + reps
        lead = len(reps) - len(x)
        out = tuple(r * (x[k - lead] if k >= lead else 1) for k, r in enumerate(reps))
        return _data(c, out, "×" + ",".join(map(str, reps)))

    formula.__doc__ = ("tile" if tile else "repeat") + " by ``shape`` (the repeats per dim); 0 cost (a copy)."
    return formula


BICUBIC_FLOPS = 31  # a bicubic output element: 16 weighted neighbours (16 multiplies, 15 adds)
_INTERPOLATE_FLOPS = {"nearest": 0, "bilinear": ops.BILINEAR_FLOPS, "bicubic": BICUBIC_FLOPS}


def _interpolate(c: Node) -> Op:
    """F.interpolate to ``size`` (the spatial dims after (1, C)), mode nearest (0 FLOPs, as ops.upsample),
    bilinear (7 per output element, ops.bilinear) or bicubic (31: 16 multiplies, 15 adds); 0 MACs."""
    x, size, mode = c.shapes[0], c.get("size"), c.get("mode")
    if mode not in _INTERPOLATE_FLOPS:
        c.fail(f"mode is one of {', '.join(_INTERPOLATE_FLOPS)}", "mode")
    if len(size) != len(x) - 2 or any(v < 1 for v in size) or (mode != "nearest" and len(size) != 2):
        c.fail(f"size {size} does not fit the {_shape_text(x)} input ({mode})", "size")
    out = (*x[:2], *size)
    return c.op(out, "data" if mode == "nearest" else "other", mode, flops=_INTERPOLATE_FLOPS[mode] * ops.numel(out))


COUNTED_ATEN = frozenset(
    {
        "mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "einsum", "convolution", "_convolution",
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "cudnn_convolution",
        "scaled_dot_product_attention", "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_flash_attention_for_cpu", "_flash_attention_forward", "_efficient_attention_forward",
        "_scaled_mm",
    }
)  # fmt: skip
"""aten functions FlopCounterMode counts (or that decompose to what it counts): an ``aten`` node may not name them."""


def _aten(c: Node) -> Op:
    """An op outside the vocabulary, by its aten name ``fn``: output ``shape`` as given, 0 params, 0 MACs,
    0 FLOPs — refused for the functions FlopCounterMode counts (write those as their op)."""
    fn = c.get("fn")
    base = fn.removeprefix("aten.").split(".")[0]
    if base in COUNTED_ATEN:
        c.fail(f"fn {fn!r} has MACs FlopCounterMode counts: write it as its op (conv, linear, matmul, sdpa …)", "fn")
    shape = tuple(c.get("shape"))
    if any(v < 1 for v in shape):
        c.fail("shape holds sizes ≥ 1", "shape")
    return c.op(shape, "other", fn)


# ------------------------------------------------------------------------------------------- the registry

REGISTRY: dict[str, GraphOp] = {
    "param": GraphOp(_param, "param"),
    "buffer": GraphOp(_buffer, "param"),
    "conv": GraphOp(_conv, "conv"),
    "linear": GraphOp(_linear, "linear"),
    "matmul": GraphOp(_matmul, "matmul"),
    "bmm": GraphOp(_bmm, "matmul"),
    "einsum": GraphOp(_einsum, "matmul"),
    "sdpa": GraphOp(_sdpa, "matmul"),
    "batch_norm": GraphOp(_batch_norm, "norm"),
    "layer_norm": GraphOp(_layer_norm, "norm"),
    "group_norm": GraphOp(_group_norm, "norm"),
    "rms_norm": GraphOp(_rms_norm, "norm"),
    **{name: GraphOp(_elementwise(name), "act") for name in ELEMENTWISE_FLOPS},
    "softmax": GraphOp(_softmax, "act"),
    "log_softmax": GraphOp(_softmax, "act"),
    "avg_pool": GraphOp(_avg_pool, "pool"),
    "max_pool": GraphOp(_max_pool, "pool"),
    "adaptive_avg_pool": GraphOp(_adaptive_avg_pool, "pool"),
    "adaptive_max_pool": GraphOp(_adaptive_max_pool, "pool"),
    **{name: GraphOp(_reduce(name), "pool") for name in ("mean", "sum", "amax", "var")},
    "add": GraphOp(_binary("add", "add"), "add"),
    "sub": GraphOp(_binary("sub", "add"), "add"),
    **{name: GraphOp(_binary(name, "mul"), "mul") for name in ("mul", "div", "pow")},
    **{name: GraphOp(_binary(name, "other"), "other") for name in ("maximum", "minimum", "where", "clamp")},
    "reshape": GraphOp(_reshape, "data"),
    "permute": GraphOp(_permute, "data"),
    "transpose": GraphOp(_transpose, "data"),
    "flatten": GraphOp(_flatten, "data"),
    "expand": GraphOp(_expand, "data"),
    "cat": GraphOp(_cat, "data"),
    "slice": GraphOp(_slice, "data"),
    "select": GraphOp(_select, "data"),
    "pad": GraphOp(_pad, "data"),
    "roll": GraphOp(_roll, "data"),
    "repeat": GraphOp(_repeat(False), "data"),
    "tile": GraphOp(_repeat(True), "data"),
    "interpolate": GraphOp(_interpolate, "other"),
    "aten": GraphOp(_aten, "other"),
}
"""Every op of the vocabulary: its formula (docs/spec.md, Graph layers, lists them)."""

if set(REGISTRY) != set(_spec.OPS):  # one formula per op of the spec's field table, no more
    raise ImportError(f"graph ops without a formula (or formulas of no op): {sorted(set(REGISTRY) ^ set(_spec.OPS))}")


def evaluate(
    node: OpNode, shapes: tuple[Shape, ...], batch_dims: tuple[int | None, ...], n: Num, path: Any
) -> tuple[Op, int | None]:
    """The Op of ``node`` reading tensors of ``shapes`` (batch 1) that hold the batch in ``batch_dims`` (None:
    unbatched), at batch ``n``; and where its output holds the batch (:func:`batch_position`)."""
    c = Node(node, shapes, batch_dims, n, path)
    op = REGISTRY[node.op].formula(c)
    return op, batch_position(c, op.output)


# ------------------------------------------------------------------------------------- where the batch is

UNKNOWN = -1
"""The batch position of a tensor whose batch is folded into a dim with others in a way the graph does not say
(a reshape of a tensor whose batch is not its outermost dim): its costs still scale with n."""

_LEADING_BATCH = frozenset(
    {
        "conv",
        "avg_pool",
        "max_pool",
        "adaptive_avg_pool",
        "adaptive_max_pool",
        "interpolate",
        "batch_norm",
        "group_norm",
    }
)
_REDUCTIONS = frozenset({"mean", "sum", "amax", "var"})


def batch_position(c: Node, out: Shape) -> int | None:
    """Which dim of the output holds the batch (None: unbatched; :data:`UNKNOWN`: folded where the graph does not
    say), followed through permutes, transposes, selects, reductions, reshapes (a batch in the outermost dim stays
    there, folded: Swin's windows) and broadcasting (right-aligned). An op that would mix samples — a reduction,
    softmax, select, slice or roll along the batch, a contraction over it, a conv or pool whose batch is not dim 0
    — is refused: at batch n it is no n copies of batch 1's op, so its cost is not batch 1's × n."""
    if not c.batched:
        return None
    op = c.node.op
    first = next(j for j, b in enumerate(c.batch_dims) if b is not None)
    s0, b0 = c.shapes[first], c.batch_dims[first]
    if b0 is None or b0 == UNKNOWN:
        return UNKNOWN
    if op == "aten":  # the last resort: an op that keeps a leading batch keeps it (0 cost either way)
        return 0 if b0 == 0 and out and out[0] == 1 else UNKNOWN
    others = {b + len(out) - len(s) for s, b in zip(c.shapes, c.batch_dims, strict=True) if b is not None}

    def mixes(what: str, field: str = "dim") -> None:
        c.fail(f"{what} along the batch (dim {b0} here): it mixes samples, so its cost is not batch 1's × n", field)

    def dims_of(v: Any) -> list[int]:
        return [d % len(s0) for d in ([v] if isinstance(v, int) else v)] if v is not None else list(range(len(s0)))

    if op in _LEADING_BATCH:
        if b0 != 0:
            c.fail(f"its input holds the batch in dim {b0}, not dim 0", "inputs")
        return 0
    if op == "permute":
        return [d % len(s0) for d in c.get("dims")].index(b0)
    if op == "transpose":
        a, b = (d % len(s0) for d in c.get("dims"))
        return b if b0 == a else a if b0 == b else b0
    if op in ("select", "slice", "softmax", "log_softmax"):
        d = c.get("dim") % len(s0)
        if d == b0 and not (op == "slice" and equal(out[d], s0[d]) is True):
            mixes(f"a {op}")
        return b0 - 1 if op == "select" and d < b0 else b0
    if op in _REDUCTIONS:
        dims = dims_of(c.get("dim"))
        if b0 in dims:
            mixes(f"a {op}")
        return b0 if c.get("keepdim") else b0 - sum(d < b0 for d in dims)
    if op == "roll":
        if b0 in dims_of(c.get("dims")):
            mixes("a roll", "dims")
        return b0
    if op in ("layer_norm", "rms_norm"):
        if b0 >= len(s0) - c.get("normalized"):
            mixes(f"a {op}", "normalized")
        return b0
    if op == "reshape":
        return 0 if b0 == 0 else UNKNOWN
    if op == "flatten":
        a, b = dims_of(c.get("dim"))
        return b0 if b0 < a else a if b0 == a else b0 - (b - a) if b0 > b else UNKNOWN
    if op == "cat":
        d = c.get("dim") % len(s0)
        if d == b0 and not all(b is not None for b in c.batch_dims):
            mixes("a concat of batched and unbatched tensors")
        return b0 if len(others) == 1 else UNKNOWN
    if op == "einsum":
        terms: list[str] = c.get("equation").replace(" ", "").split("->")
        letter = terms[0].split(",")[first][b0]
        if letter not in terms[1]:
            mixes("an einsum summing", "equation")
        return terms[1].index(letter)
    for j, (s, b) in enumerate(zip(c.shapes, c.batch_dims, strict=True)):
        if b is None or op not in ("linear", "matmul", "bmm", "sdpa"):
            continue
        last = len(s) - 1
        summed = (
            b == last
            if op == "linear" or j == 0
            else (b >= last - 1 if op == "sdpa" and j < 3 else b == max(last - 1, 0) if j == 1 else False)
        )
        if summed:
            mixes(f"a {op} contracting or attending", "inputs")
    if op == "expand" and equal(out[b0 + len(out) - len(s0)], s0[b0]) is False:
        mixes("an expand", "shape")
    if op == "matmul":  # out = (*batch, m if a is not 1-D, n if b is not 1-D)
        a, b = c.shapes
        nb = len(out) - (len(a) > 1) - (len(b) > 1)
        if first == 0:
            return b0 + nb - (len(a) - 2) if b0 < len(a) - 2 else nb
        return b0 + nb - (len(b) - 2) if b0 < len(b) - 2 else len(out) - 1
    pos = b0 + len(out) - len(s0)  # broadcasting and shape-keeping ops: right-aligned
    return pos if len(others) == 1 and 0 <= pos < len(out) else UNKNOWN
