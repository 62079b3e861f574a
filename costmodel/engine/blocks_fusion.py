"""Block functions of the fusion kinds (spec/layers_fusion.py): concat of earlier named layers, resize,
a standalone norm and flatten.

A concat reads tensors of earlier layers: the walk passes their shapes in ``BlockArgs.sources`` and the
block reads source j as the block-local tensor −(j + 1), which the walk maps to that layer's tensor id.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError, UndecidableError
from . import ops
from .blocks import BlockArgs, Flow, norm_groups
from .ops import Op, Shape
from .symbols import Num, divides, equal, floordiv, is_symbolic, shown


def _less(a: Num, b: Num, path: tuple[str | int, ...]) -> bool:
    """Whether a < b, or an UndecidableError naming ``path`` when the symbols do not settle it."""
    if not is_symbolic(a) and not is_symbolic(b):
        return bool(a < b)
    if equal(a, b) is True:
        return False
    import sympy

    rel = sympy.Lt(a, b)
    if rel in (sympy.true, sympy.false):
        return bool(rel)
    raise UndecidableError(
        f"cannot decide whether {shown(a)} < {shown(b)}: it depends on symbols; bind them with --set", path
    )


def _interpolate(inp: Shape, n: Num, size: tuple[Num, Num], mode: str) -> Op:
    return ops.upsample(inp, n, size) if mode == "nearest" else ops.bilinear(inp, n, size)


def concat(layer: Any, a: BlockArgs) -> Flow:
    """Channel concat of the named layers' outputs (a.sources, in order): each input with a smaller H or W
    is resized to the first's H₀×W₀ (nearest: 0 FLOPs; bilinear: 7 per output element), then torch.cat:
    (ΣCᵢ, H₀, W₀), no cost. A larger input is refused naming ``inputs[j]``."""
    f = Flow(a.inp)
    src = a.sources
    h0, w0 = src[0][1], src[0][2]
    reads: list[int] = []
    shapes: list[Shape] = []
    for j, s in enumerate(src):
        where = (*a.path, "inputs", j)
        if len(s) != 3:
            raise SpecError(f"input {layer.inputs[j]!r} is a flat vector, not a feature map", where)
        if _less(h0, s[1], where) or _less(w0, s[2], where):
            raise SpecError(
                f"input {layer.inputs[j]!r} is {shown(s[1])}×{shown(s[2])}, larger than the first input's "
                f"{shown(h0)}×{shown(w0)}: "
                "only smaller inputs are resized",
                where,
            )
        t = -(j + 1)
        if _less(s[1], h0, where) or _less(s[2], w0, where):
            t = f.add("resize", _interpolate(s, a.n, (h0, w0), layer.resize), (t,))
            s = f.shape(t)
        reads.append(t)
        shapes.append(s)
    f.add("concat", ops.concat(tuple(shapes), a.n), tuple(reads))
    return f


def resize(layer: Any, a: BlockArgs) -> Flow:
    """Resize to size h×w: avg = k×k average pool, stride k (k = H/h, W/w; FLOPs k² per output);
    bilinear (7 FLOPs per output) / nearest (0); timm = avg when h | H and w | W, else bilinear, and nothing
    when H×W is already h×w. 0 params, 0 MACs."""
    f = Flow(a.inp)
    c, h, w = a.inp
    th, tw = layer.hw()
    mode = layer.mode
    if mode == "timm":
        if is_symbolic(h) or is_symbolic(w):
            raise UndecidableError(
                "mode timm picks average pooling or bilinear from the input size, which is symbolic here: "
                "bind the size with --set or choose mode avg or bilinear",
                (*a.path, "mode"),
            )
        if (h, w) == (th, tw):
            return f
        mode = "avg" if h % th == 0 and w % tw == 0 else "bilinear"
    if mode == "avg":
        for d, size, axis in ((th, h, "H"), (tw, w, "W")):
            ok = divides(d, size)
            if ok is None:
                raise UndecidableError(
                    f"cannot decide whether the size {d} divides {axis} = {shown(size)}: bind the symbols with --set",
                    (*a.path, "size"),
                )
            if not ok:
                raise SpecError(
                    f"mode avg needs the size {d} to divide the input's {axis} = {shown(size)}", (*a.path, "size")
                )
        kh, kw = floordiv(h, th), floordiv(w, tw)
        f.add("resize", ops.avgpool2d(a.inp, a.n, (kh, kw), (kh, kw)))
    else:
        f.add("resize", _interpolate(a.inp, a.n, (th, tw), mode))
    return f


def norm(layer: Any, a: BlockArgs) -> Flow:
    """A standalone norm (the layer's ``norm``, else the spec's default): params/buffers/FLOPs of ops.norm,
    marked ``variant: alone`` (the peers see a leaf norm module; docs/conventions.md)."""
    f = Flow(a.inp)
    name = layer.norm or a.norm
    if name == "none":
        raise SpecError("a norm layer needs a norm (the field or defaults.norm)", (*a.path, "norm"))
    g = norm_groups(a, a.inp[0]) if name in ops.GROUPED_NORMS else 1
    op = ops.norm(name, a.inp, a.n, g, False)
    op.variant = "alone"  # a module of its own (timm's RmsNorm2d), not a conv unit's norm + act (RmsNormAct2d)
    f.add("norm", op)
    return f


def flatten(layer: Any, a: BlockArgs) -> Flow:
    """(C, H, W) → (C·H·W,): no cost."""
    f = Flow(a.inp)
    f.add("flatten", ops.flatten(a.inp, a.n))
    return f


def maxpool(layer: Any, a: BlockArgs) -> Flow:
    """Local k×k max pool, stride s (default k), padding p: Ho = floor((H + 2p − k)/s) + 1; 0 params, 0 MACs,
    N·C·Ho·Wo·(k² − 1) FLOPs (comparisons)."""
    f = Flow(a.inp)
    k = layer.kernel
    s = layer.stride if layer.stride is not None else k
    for size, axis in ((a.inp[1], "H"), (a.inp[2], "W")):
        if isinstance(size, int) and size + 2 * layer.padding < k:
            raise SpecError(f"a {k}×{k} max pool needs {axis} + 2·padding ≥ {k}, got {axis} = {size}", a.path)
    f.add("maxpool", ops.maxpool2d(a.inp, a.n, k, s, layer.padding))
    return f
