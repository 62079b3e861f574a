"""Blocks: each layer kind is a small dataflow of ops, built by its block function.

A block function takes the layer's spec and the resolved :class:`BlockArgs` (input shape, batch,
stride of this repeat, the activation/norm/bias in force) and returns a :class:`Flow`: the ordered
``(stage, op)`` steps with the tensors each reads. Tensor 0 is the block input; tensor ``i`` is the
output of step ``i``; the block's output is its last step's. Memory and peak activation read this
declaration (which tensors are alive, which are skip or SE branches) instead of guessing from names.
Decisions that symbols cannot settle raise :class:`UndecidableError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError, UndecidableError
from ..spec import se_ratio
from ..spec.scaling import make_divisible
from . import ops
from .ops import Op, Shape
from .symbols import Num, divides, equal, floordiv, maximum, value


@dataclass(frozen=True)
class BlockArgs:
    """What a block needs besides its own spec fields, resolved by the network walk."""

    inp: Shape
    n: Num
    stride: Num
    activation: str  # "none" for no activation
    norm: str  # a name in ops.NORMS, or "none"
    bias: bool
    path: tuple[str | int, ...]  # ("layers", i), for error messages
    norm_groups: int | None = None  # groupnorm / evonorm_s0: the number of groups (defaults.norm_groups)
    norm_group_size: int | None = None  # … or channels per group (defaults.norm_group_size)
    library: str = "torch"  # whose module classes build the block: torch | timm (spec implementation)
    pad_type: str = ""  # timm's pad_type: "same" (tf_ models) makes its dynamically padded convs Conv2dSame
    sources: tuple[Shape, ...] = ()  # a concat's inputs: the shapes of the earlier layers it names


@dataclass(slots=True)
class Step:
    """One op of a block, the stage it belongs to and the block-local tensors it reads."""

    stage: str
    op: Op
    inputs: tuple[int, ...]


@dataclass
class Flow:
    """A block's steps in order. ``add`` appends one and returns the id of the tensor it writes."""

    inp: Shape
    steps: list[Step] = field(default_factory=list)
    #: the tensor that leaves the block, where it is not the last step's (a graph layer's ``output``)
    result: int | None = None

    @property
    def last(self) -> int:
        """The tensor the latest step wrote (0, the block input, before any step)."""
        return len(self.steps)

    def shape(self, tensor: int) -> Shape:
        """The per-sample shape of a block-local tensor."""
        return self.inp if tensor == 0 else self.steps[tensor - 1].op.output

    @property
    def output(self) -> Shape:
        """The block's output shape: its last step's output (or ``result``'s)."""
        return self.shape(self.last if self.result is None else self.result)

    def add(self, stage: str, op: Op, inputs: tuple[int, ...] | None = None) -> int:
        """Append ``op`` reading ``inputs`` (default: the latest tensor); the id of its output tensor."""
        self.steps.append(Step(stage, op, (self.last,) if inputs is None else inputs))
        return self.last


def norm_groups(a: BlockArgs, channels: Num) -> Num:
    """The group count of a grouped norm on ``channels``: ``defaults.norm_groups``, or channels /
    ``defaults.norm_group_size`` (timm's group_size), else 32 (torch's and timm's GroupNormAct default)."""
    if a.norm_group_size is not None:
        field, divisor = "norm_group_size", a.norm_group_size
        groups = floordiv(channels, divisor)
    else:
        field = "norm_groups"
        divisor = groups = a.norm_groups or 32
    ok = divides(divisor, channels)
    if ok is False:
        raise SpecError(
            f"{a.norm}: {field} {divisor} does not divide the {channels} channels it normalizes", ("defaults", field)
        )
    _need(ok, a.path, "out_channels", f"{field} {divisor} divides the channels {channels}")
    return groups


def dynamic_same(a: BlockArgs, padding: Num | str | None, kernel: Num, stride: Num, dilation: Num = 1) -> bool:
    """Whether timm builds this conv as a Conv2dSame: padded 'same' (the layer's ``padding: same``, or its
    default padding under ``pad_type: same``) where timm cannot pad statically — stride ≠ 1 or d(k − 1) odd
    (timm's ``is_static_pad``)."""
    same = padding == "same" or (padding is None and a.library == "timm" and a.pad_type == "same")
    static = isinstance(stride, int) and stride == 1 and isinstance(kernel, int) and dilation * (kernel - 1) % 2 == 0
    return same and not static


def implemented(op: Op, a: BlockArgs) -> Op:
    """``op`` marked with the module class timm builds it from, where the peers count it differently
    (``op.variant``, read by the conventions; docs/conventions.md): under ``library: timm`` a BatchNorm,
    GroupNorm or LayerNorm is timm's norm + act class (BatchNormAct2d, GroupNormAct, LayerNormAct2d: ``act``)
    and a linear layer timm's Linear (``timm``). Under torch, nothing changes."""
    if a.library == "timm" and not op.variant:
        if op.name in ("batchnorm2d", "groupnorm", "layernorm2d"):
            op.variant = "act"
        elif op.name == "linear":
            op.variant = "timm"
    return op


def conv_unit(
    f: Flow,
    a: BlockArgs,
    stage: str,
    out_channels: Num,
    kernel: Num,
    stride: Num = 1,
    groups: Num = 1,
    act: bool = True,
    src: int | None = None,
    *,
    padding: Num | str | None = None,
    dilation: Num = 1,
    aa: str | None = None,
    activation: str | None = None,
) -> int:
    """conv → norm (if the layer has one) → activation (if ``act`` and the layer has one), reading ``src``.

    ``padding``/``dilation`` go to the conv (ops.conv2d); with ``aa`` (blur | avg) and a stride ≠ 1 the conv
    runs at stride 1 and the anti-aliasing op takes the stride after the activation (timm's aa_layer).
    ``activation`` overrides the layer's. An activating norm (EvoNorm) takes the activation's place: it
    applies its own nonlinearity where the unit has an activation, and no activation op follows.
    """
    src = f.last if src is None else src
    anti = aa is not None and not (isinstance(stride, int) and stride == 1)
    conv = ops.conv2d(f.shape(src), a.n, out_channels, kernel, 1 if anti else stride, groups, a.bias, padding, dilation)
    if dynamic_same(a, padding, kernel, 1 if anti else stride, dilation):
        ops.mark_same(conv, dilation)
    t = f.add(stage, conv, (src,))
    act_name = a.activation if activation is None else activation
    with_act = act and act_name != "none"
    if a.norm != "none":
        g = norm_groups(a, conv.output[0]) if a.norm in ops.GROUPED_NORMS else 1
        t = f.add(stage, implemented(ops.norm(a.norm, conv.output, a.n, g, with_act), a))
        if a.norm in ops.ACTIVATING_NORMS:
            with_act = False  # EvoNorm is the activation too
    if with_act:
        t = f.add(stage, ops.activation(conv.output, a.n, act_name))
    if anti:
        if aa == "blur":
            pad = ops.blur_padding(stride)
            for size in conv.output[1:]:
                if isinstance(size, int) and isinstance(pad, int) and pad >= size:
                    raise SpecError(
                        f"aa: blur at stride {stride} reflect-pads {pad} on each side, which needs the map larger "
                        f"than {pad}; the strided conv's output ({stage}) is {conv.output[1]}×{conv.output[2]}",
                        (*a.path, "aa"),
                    )
            pool = ops.blur(conv.output, a.n, stride)
        else:
            pool = ops.avgpool(conv.output, a.n, stride)
        t = f.add(stage, pool)
    return t


def kxk(layer: Any) -> dict[str, Any]:
    """The k×k conv's padding, dilation and anti-aliasing settings of a layer, as conv_unit keywords."""
    return {"padding": layer.padding, "dilation": value(layer.dilation), "aa": layer.aa}


def group_count(layer: Any, a: BlockArgs, width: Num, default: Num) -> Num:
    """Groups of a block's k×k conv on ``width`` channels: width / group_size (timm's group_size: channels per
    group), or ``default`` (depthwise: width; a full conv: 1) when group_size is unset."""
    if layer.group_size is None:
        return default
    gs = value(layer.group_size)
    ok = divides(gs, width)
    if ok is False:
        msg = f"group_size={gs} does not divide the {width} channels of the k×k conv"
        raise SpecError(msg, (*a.path, "group_size"))
    _need(ok, a.path, "group_size", f"group_size {gs} divides the channels {width}")
    return floordiv(width, gs)


def se_unit(f: Flow, a: BlockArgs, layer: Any, block_in_channels: Num) -> int:
    """Squeeze-excitation on the latest tensor x: avgpool → 1×1 conv+bias to S → act → 1×1 conv+bias back
    → gate → x · gate (both convs without bias with ``se_bias: false``).

    S = max(1, floor(base × se)) with base the block input (EfficientNet) or, with ``se_base: expanded``,
    the width SE sits on; with ``se_divisor: d``, S = make_divisible(floor(base × se), d, round_limit)
    (MobileNetV3; FBNetV3's round_limit 0.95); with ``se_round: round``, Python's round(base × se) instead
    of floor (timm's ``round``, halves to even; ``make_divisible`` then takes the unrounded base × se, as
    timm's ``round_chs_fn``); ``se_channels`` gives S itself (timm's pruned EfficientNets).
    """
    x = f.last
    inp = f.shape(x)
    c = inp[0]
    squeeze: Num
    if layer.se_channels is not None:
        squeeze = value(layer.se_channels)
    else:
        ratio = se_ratio(layer.se)
        base = block_in_channels if layer.se_base == "input" else c
        if layer.se_round == "round":
            if not isinstance(base, int):
                raise SpecError("se_round: round needs numeric channels", (*a.path, "se_round"))
            exact = base * ratio
            if layer.se_divisor is not None:
                squeeze = make_divisible(float(exact), layer.se_divisor, round_limit=layer.se_round_limit)
            else:
                squeeze = max(1, round(exact))
        else:
            raw = floordiv(base * ratio.numerator, ratio.denominator)
            if layer.se_divisor is not None:
                if not isinstance(raw, int):
                    raise SpecError("se_divisor needs numeric channels", (*a.path, "se_divisor"))
                squeeze = make_divisible(raw, layer.se_divisor, round_limit=layer.se_round_limit)
            else:
                squeeze = maximum(1, raw)
    act = layer.se_activation or a.activation
    pooled = ops.global_avgpool(inp, a.n, "mean" if a.library == "timm" else "module")  # timm: x.mean((2, 3))
    f.add("se", pooled)
    bias = bool(getattr(layer, "se_bias", True))
    reduce = ops.conv2d(pooled.output, a.n, squeeze, 1, 1, 1, bias=bias)
    f.add("se", reduce)
    if act != "none":
        f.add("se", ops.activation(reduce.output, a.n, act))
    expand = ops.conv2d(reduce.output, a.n, c, 1, 1, 1, bias=bias)
    f.add("se", expand)
    gate = f.add("se", ops.activation(expand.output, a.n, layer.se_gate))
    return f.add("se", ops.mul(inp, a.n, "x·gate"), (x, gate))


def _need(result: bool | None, path: tuple[str | int, ...], field: str, what: str) -> bool:
    if result is None:
        raise UndecidableError(
            f"cannot decide whether {what}: it depends on symbols; bind them with --set or set the field explicitly",
            (*path, field),
        )
    return result


def residual(f: Flow, a: BlockArgs, setting: Any, field: str = "residual") -> bool:
    """The residual add of the latest tensor and the block input, if ``setting`` (auto | True | False)
    and the shapes call for it."""
    if setting is False:
        return False
    inp, out = f.inp, f.output
    stride_one = equal(a.stride, 1)
    same_c = equal(inp[0], out[0])
    if stride_one is False or same_c is False:
        if setting == "auto":
            return False
        raise SpecError(
            f"residual: true needs the output shape to equal the input shape "
            f"(stride 1 and in == out channels); here stride={a.stride}, in={inp[0]}, out={out[0]}",
            (*a.path, field),
        )
    _need(stride_one, a.path, field, f"stride {a.stride} is 1 (residual: {setting})")
    _need(same_c, a.path, field, f"in channels {inp[0]} equal out channels {out[0]} (residual: {setting})")
    same_size(a, inp, out, field, "residual: " + (setting if setting == "auto" else "true"))
    f.add("residual", ops.add(out, a.n, "x + F(x)"), (f.last, 0))
    return True


def same_size(a: BlockArgs, inp: Shape, out: Shape, field: str, what: str) -> None:
    """Refuse an identity add of the block input to an output of another H×W. timm decides the skip from the
    channels and the stride alone (has_skip = in == out and stride 1), so a padding that shrinks the map makes
    its add fail at run time: there is no number to give."""
    for axis, x, y in (("height", inp[1], out[1]), ("width", inp[2], out[2])):
        ok = equal(x, y)
        if ok is False:
            raise SpecError(
                f"{what} adds to the block's output, but the output {axis} {y} differs from the shortcut's "
                f"{x} (padding or dilation changes the map size); set padding to keep it, or residual: false",
                (*a.path, field),
            )
        _need(ok, a.path, field, f"the output {axis} {y} equals the input's {x} ({what})")


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


def mbconv(layer: Any, a: BlockArgs) -> Flow:
    """MBConv: [1×1 expand (if E ≠ input, or expand_always)] → k×k depthwise (stride; groups E / group_size
    with ``group_size``) → [SE] → linear 1×1 project → [+ input]."""
    f = Flow(a.inp)
    e, expand = expanded_width(layer, a)
    if expand or layer.expand_always:
        conv_unit(f, a, "expansion", e, 1)
    width = f.output[0]
    g = group_count(layer, a, width, width)
    conv_unit(f, a, "depthwise", width, value(layer.kernel), a.stride, groups=g, **kxk(layer))
    if layer.has_se:
        se_unit(f, a, layer, a.inp[0])
    conv_unit(f, a, "projection", value(layer.out_channels), 1, act=False)
    residual(f, a, layer.residual)
    return f


def fused_mbconv(layer: Any, a: BlockArgs) -> Flow:
    """Fused-MBConv: k×k expand (stride; groups = E / group_size with ``group_size``, timm's EdgeResidual:
    channels per group of the expanded width) → [SE] → linear 1×1 project → [+ input]; E = input: one k×k conv
    (groups = input / group_size, timm's ConvBnAct), unless ``keep_projection`` (timm's er_…_e1)."""
    f = Flow(a.inp)
    k = value(layer.kernel)
    cout = value(layer.out_channels)
    e, expand = expanded_width(layer, a)
    expand = expand or layer.keep_projection
    g = group_count(layer, a, e, 1)  # E = input without expansion
    if g != 1:
        for width, what in ((a.inp[0], "input"), (e if expand else cout, "output")):
            ok = divides(g, width)
            if ok is False:
                msg = f"the {g} groups (group_size {layer.group_size}) do not divide the conv's {what} channels {width}"
                raise SpecError(msg, (*a.path, "group_size"))
            _need(ok, a.path, "group_size", f"the {g} groups divide the {what} channels {width}")
    conv_unit(f, a, "expansion" if expand else "fused", e if expand else cout, k, a.stride, g, **kxk(layer))
    if layer.has_se:
        se_unit(f, a, layer, a.inp[0])
    if expand:
        conv_unit(f, a, "projection", cout, 1, act=False)
    residual(f, a, layer.residual)
    return f


def dwsep(layer: Any, a: BlockArgs) -> Flow:
    """Depthwise-separable: k×k depthwise (stride) → norm → act → [SE] → 1×1 pointwise → norm → [pw_activation]
    → [+ input] (``residual``, default false)."""
    f = Flow(a.inp)
    cin = a.inp[0]
    conv_unit(f, a, "depthwise", cin, value(layer.kernel), a.stride, groups=cin, **kxk(layer))
    if layer.has_se:
        se_unit(f, a, layer, cin)
    conv_unit(f, a, "pointwise", value(layer.out_channels), 1, activation=layer.pw_activation)
    residual(f, a, layer.residual)
    return f


def basic(layer: Any, a: BlockArgs) -> Flow:
    """Two k×k conv-norm-act (the first carries the stride); with ``residual: true``, + input at the end."""
    f = Flow(a.inp)
    k = value(layer.kernel)
    cout = value(layer.out_channels)
    conv_unit(f, a, "conv1", cout, k, a.stride, **kxk(layer))
    if layer.resnet:  # ResNet's BasicBlock: act(conv2-norm + shortcut)
        main = conv_unit(f, a, "conv2", cout, k, padding=layer.padding, dilation=value(layer.dilation), act=False)
        _shortcut_add(f, a, a.inp[0], cout, main)
        return f
    conv_unit(f, a, "conv2", cout, k, padding=layer.padding, dilation=value(layer.dilation))
    residual(f, a, layer.residual)
    return f


def bottleneck(layer: Any, a: BlockArgs) -> Flow:
    """ResNet bottleneck: 1×1 reduce → k×k (stride) → linear 1×1 expand; + shortcut; then the activation.

    The shortcut is the identity when stride 1 and in == out, else a 1×1 conv (stride) + norm.
    """
    f = Flow(a.inp)
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
    conv_unit(f, a, "reduce", mid, 1)
    conv_unit(f, a, "conv", mid, value(layer.kernel), a.stride, **kxk(layer))
    main = conv_unit(f, a, "expand", cout, 1, act=False)
    _shortcut_add(f, a, cin, cout, main)
    return f


def _shortcut_add(f: Flow, a: BlockArgs, cin: Num, cout: Num, main: int) -> None:
    """ResNet's join: the identity when stride 1 and cin = cout, else a 1×1 conv (stride) + norm on the block
    input; F(x) + shortcut; then the activation."""
    identity = _need(equal(a.stride, 1), a.path, "stride", f"stride {a.stride} is 1 (identity shortcut)") and _need(
        equal(cin, cout),
        a.path,
        "out_channels",
        f"in channels {cin} equal out channels {cout} (identity shortcut)",
    )
    short = 0 if identity else conv_unit(f, a, "shortcut", cout, 1, a.stride, act=False, src=0)
    same_size(a, f.shape(short), f.shape(main), "padding", "the shortcut")
    f.add("residual", ops.add(f.shape(main), a.n, "F(x) + shortcut"), (main, short))
    if a.activation != "none":
        f.add("residual", ops.activation(f.output, a.n, a.activation))


def conv(layer: Any, a: BlockArgs) -> Flow:
    """A plain k×k conv (with groups) → norm → activation."""
    f = Flow(a.inp)
    cin = a.inp[0]
    cout = value(layer.out_channels)
    g = value(layer.groups)
    for channels, name in ((cin, "input"), (cout, "output")):
        ok = divides(g, channels)
        if ok is False:
            raise SpecError(f"groups={g} does not divide the {name} channels {channels}", (*a.path, "groups"))
        _need(ok, a.path, "groups", f"groups {g} divides the {name} channels {channels}")
    conv_unit(f, a, "conv", cout, value(layer.kernel), a.stride, groups=g, **kxk(layer))
    return f


def pool(layer: Any, a: BlockArgs) -> Flow:
    """Global average pooling to C×1×1."""
    f = Flow(a.inp)
    f.add("pool", ops.global_avgpool(a.inp, a.n, layer.implementation))
    return f


def linear(layer: Any, a: BlockArgs) -> Flow:
    """Fully connected layer on the flattened input, then its activation (if any)."""
    f = Flow(a.inp)
    op = implemented(ops.linear(a.inp, a.n, value(layer.out_features), layer.bias), a)
    f.add("classifier", op)
    if layer.activation != "none":
        f.add("classifier", ops.activation(op.output, a.n, layer.activation))
    return f


def dropout(layer: Any, a: BlockArgs) -> Flow:
    """Dropout: identity at inference; shown as a zero-cost row."""
    f = Flow(a.inp)
    f.add("classifier", ops.dropout(a.inp, a.n, layer.p))
    return f
