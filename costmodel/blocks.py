"""Blocks: each layer kind is an ordered list of (stage, op) calls, registered by kind.

A block function takes the layer's spec, the resolved :class:`BlockArgs` (input shape, batch,
stride of this repeat, the activation/norm/bias in force) and returns its ``(stage, Op)`` list and
output shape. Decisions that symbols cannot settle raise :class:`UndecidableError` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ops
from .errors import SpecError, UndecidableError
from .ops import Op, Shape
from .scaling import make_divisible
from .spec import se_ratio
from .symbols import Num, divides, equal, floordiv, maximum, value

Staged = list[tuple[str, Op]]


@dataclass(frozen=True)
class BlockArgs:
    """What a block needs besides its own spec fields, resolved by the network walk."""

    inp: Shape
    n: Num
    stride: Num
    activation: str  # "none" for no activation
    norm: bool
    bias: bool
    path: tuple[str | int, ...]  # ("layers", i), for error messages


def conv_unit(
    a: BlockArgs,
    stage: str,
    inp: Shape,
    out_channels: Num,
    kernel: Num,
    stride: Num = 1,
    groups: Num = 1,
    act: bool = True,
) -> tuple[Staged, Shape]:
    """conv → norm (if the layer has one) → activation (if ``act`` and the layer has one)."""
    rows: Staged = [(stage, ops.conv2d(inp, a.n, out_channels, kernel, stride, groups, a.bias))]
    shape = rows[-1][1].output
    if a.norm:
        rows.append((stage, ops.batchnorm2d(shape, a.n)))
    if act and a.activation != "none":
        rows.append((stage, ops.activation(shape, a.n, a.activation)))
    return rows, shape


def se_unit(a: BlockArgs, layer: Any, inp: Shape, block_in_channels: Num) -> Staged:
    """Squeeze-excitation on ``inp``: avgpool → 1×1 conv+bias to S → act → 1×1 conv+bias back → gate → multiply.

    S = max(1, floor(base × se)) with base the block input (EfficientNet) or, with ``se_base: expanded``,
    the width SE sits on; with ``se_divisor: d``, S = make_divisible(floor(base × se), d) (MobileNetV3).
    """
    ratio = se_ratio(layer.se)
    c = inp[0]
    base = block_in_channels if layer.se_base == "input" else c
    raw = floordiv(base * ratio.numerator, ratio.denominator)
    if layer.se_divisor is not None:
        if not isinstance(raw, int):
            raise SpecError("se_divisor needs numeric channels", (*a.path, "se_divisor"))
        squeeze: Num = make_divisible(raw, layer.se_divisor)
    else:
        squeeze = maximum(1, raw)
    act = layer.se_activation or a.activation
    pooled = ops.global_avgpool(inp, a.n)
    reduce = ops.conv2d(pooled.output, a.n, squeeze, 1, 1, 1, bias=True)
    rows: Staged = [("se", pooled), ("se", reduce)]
    if act != "none":
        rows.append(("se", ops.activation(reduce.output, a.n, act)))
    expand = ops.conv2d(reduce.output, a.n, c, 1, 1, 1, bias=True)
    rows += [
        ("se", expand),
        ("se", ops.activation(expand.output, a.n, layer.se_gate)),
        ("se", ops.mul(inp, a.n, "x·gate")),
    ]
    return rows


def _need(result: bool | None, path: tuple[str | int, ...], field: str, what: str) -> bool:
    if result is None:
        raise UndecidableError(
            f"cannot decide whether {what}: it depends on symbols; bind them with --set or set the field explicitly",
            (*path, field),
        )
    return result


def residual_rows(a: BlockArgs, setting: Any, inp: Shape, out: Shape, field: str = "residual") -> tuple[Staged, bool]:
    """The residual add, if ``setting`` (auto | True | False) and the shapes call for it."""
    if setting is False:
        return [], False
    stride_one = equal(a.stride, 1)
    same_c = equal(inp[0], out[0])
    if stride_one is False or same_c is False:
        if setting == "auto":
            return [], False
        raise SpecError(
            f"residual: true needs the output shape to equal the input shape "
            f"(stride 1 and in == out channels); here stride={a.stride}, in={inp[0]}, out={out[0]}",
            (*a.path, field),
        )
    _need(stride_one, a.path, field, f"stride {a.stride} is 1 (residual: {setting})")
    _need(same_c, a.path, field, f"in channels {inp[0]} equal out channels {out[0]} (residual: {setting})")
    return [("residual", ops.add(out, a.n, "x + F(x)"))], True


def expanded_width(layer: Any, a: BlockArgs) -> tuple[Num, bool]:
    """The expanded width E and whether an expansion conv exists (E ≠ input).

    E = expanded_channels, or input × expansion, rounded with make_divisible(·, expanded_divisor) when
    that is set (EfficientNet). A symbolic expansion is taken as ≠ 1.
    """
    cin = a.inp[0]
    if layer.expanded_channels is not None:
        e = value(layer.expanded_channels)
    else:
        t = value(layer.expansion)
        e = cin * t
        if layer.expanded_divisor is not None:
            if not isinstance(e, int):
                raise SpecError("expanded_divisor needs numeric channels", (*a.path, "expanded_divisor"))
            e = make_divisible(e, layer.expanded_divisor)
        else:
            return e, t != 1  # a symbolic expansion is taken as ≠ 1
    same = _need(equal(e, cin), a.path, "expanded_channels", f"the expanded width {e} equals the input {cin}")
    return e, not same


def mbconv(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """MBConv: [1×1 expand (if E ≠ input)] → k×k depthwise (stride) → [SE] → linear 1×1 project → [+ input]."""
    cin = a.inp[0]
    k = value(layer.kernel)
    rows: Staged = []
    x = a.inp
    e, expand = expanded_width(layer, a)
    if expand:
        r, x = conv_unit(a, "expansion", x, e, 1)
        rows += r
    r, x = conv_unit(a, "depthwise", x, x[0], k, a.stride, groups=x[0])
    rows += r
    if layer.se is not None:
        rows += se_unit(a, layer, x, cin)
    r, x = conv_unit(a, "projection", x, value(layer.out_channels), 1, act=False)
    rows += r
    r, _ = residual_rows(a, layer.residual, a.inp, x)
    return rows + r, x


def fused_mbconv(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """Fused-MBConv: k×k expand (stride) → [SE] → linear 1×1 project → [+ input]; E = input: one k×k conv."""
    cin = a.inp[0]
    k = value(layer.kernel)
    cout = value(layer.out_channels)
    e, expand = expanded_width(layer, a)
    rows: Staged
    if not expand:
        rows, x = conv_unit(a, "fused", a.inp, cout, k, a.stride)
        if layer.se is not None:
            rows += se_unit(a, layer, x, cin)
    else:
        rows, x = conv_unit(a, "expansion", a.inp, e, k, a.stride)
        if layer.se is not None:
            rows += se_unit(a, layer, x, cin)
        r, x = conv_unit(a, "projection", x, cout, 1, act=False)
        rows += r
    r, _ = residual_rows(a, layer.residual, a.inp, x)
    return rows + r, x


def dwsep(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """Depthwise-separable: k×k depthwise (stride) → norm → act → 1×1 pointwise → norm → act."""
    cin = a.inp[0]
    rows, x = conv_unit(a, "depthwise", a.inp, cin, value(layer.kernel), a.stride, groups=cin)
    r, x = conv_unit(a, "pointwise", x, value(layer.out_channels), 1)
    return rows + r, x


def basic(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """Two k×k conv-norm-act (the first carries the stride); with ``residual: true``, + input at the end."""
    k = value(layer.kernel)
    cout = value(layer.out_channels)
    rows, x = conv_unit(a, "conv1", a.inp, cout, k, a.stride)
    r, x = conv_unit(a, "conv2", x, cout, k)
    rows += r
    r, _ = residual_rows(a, layer.residual, a.inp, x)
    return rows + r, x


def bottleneck(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """ResNet bottleneck: 1×1 reduce → k×k (stride) → linear 1×1 expand; + shortcut; then the activation.

    The shortcut is the identity when stride 1 and in == out, else a 1×1 conv (stride) + norm.
    """
    cin = a.inp[0]
    cout = value(layer.out_channels)
    if layer.mid_channels is not None:
        mid = value(layer.mid_channels)
    else:
        mid = floordiv(cout, 4)
        if isinstance(mid, int) and mid < 1:
            raise SpecError(
                f"the mid width out_channels // 4 = {cout} // 4 = 0; set mid_channels",
                (*a.path, "out_channels"),
            )
    rows, x = conv_unit(a, "reduce", a.inp, mid, 1)
    r, x = conv_unit(a, "conv", x, mid, value(layer.kernel), a.stride)
    rows += r
    r, x = conv_unit(a, "expand", x, cout, 1, act=False)
    rows += r
    identity = _need(equal(a.stride, 1), a.path, "stride", f"stride {a.stride} is 1 (identity shortcut)") and _need(
        equal(cin, cout),
        a.path,
        "out_channels",
        f"in channels {cin} equal out channels {cout} (identity shortcut)",
    )
    if not identity:
        r, _ = conv_unit(a, "shortcut", a.inp, cout, 1, a.stride, act=False)
        rows += r
    rows.append(("residual", ops.add(x, a.n, "F(x) + shortcut")))
    if a.activation != "none":
        rows.append(("residual", ops.activation(x, a.n, a.activation)))
    return rows, x


def conv(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """A plain k×k conv (with groups) → norm → activation."""
    cin = a.inp[0]
    cout = value(layer.out_channels)
    g = value(layer.groups)
    for channels, name in ((cin, "input"), (cout, "output")):
        ok = divides(g, channels)
        if ok is False:
            raise SpecError(f"groups={g} does not divide the {name} channels {channels}", (*a.path, "groups"))
        _need(ok, a.path, "groups", f"groups {g} divides the {name} channels {channels}")
    return conv_unit(a, "conv", a.inp, cout, value(layer.kernel), a.stride, groups=g)


def pool(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """Global average pooling to C×1×1."""
    op = ops.global_avgpool(a.inp, a.n, layer.implementation)
    return [("pool", op)], op.output


def linear(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """Fully connected layer on the flattened input, then its activation (if any)."""
    op = ops.linear(a.inp, a.n, value(layer.out_features), layer.bias)
    rows: Staged = [("classifier", op)]
    if layer.activation != "none":
        rows.append(("classifier", ops.activation(op.output, a.n, layer.activation)))
    return rows, op.output


def dropout(layer: Any, a: BlockArgs) -> tuple[Staged, Shape]:
    """Dropout: identity at inference; shown as a zero-cost row."""
    return [("classifier", ops.dropout(a.inp, a.n, layer.p))], a.inp


BLOCKS: dict[str, Callable[[Any, BlockArgs], tuple[Staged, Shape]]] = {
    "conv": conv,
    "mbconv": mbconv,
    "fused_mbconv": fused_mbconv,
    "dwsep": dwsep,
    "basic": basic,
    "bottleneck": bottleneck,
    "pool": pool,
    "linear": linear,
    "dropout": dropout,
}
"""Block formulas by layer kind."""
