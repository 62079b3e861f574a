"""Block functions of the zoo's kinds (spec/layers_zoo.py): MixConv, Ghost, GhostNet's bottleneck and UIR.

Each returns a :class:`~costmodel.engine.blocks.Flow` like the built-in blocks; registered in engine/kinds.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import SpecError
from ..spec.scaling import make_divisible
from . import ops
from .blocks import (
    BlockArgs,
    Flow,
    conv_unit,
    dynamic_same,
    expanded_width,
    implemented,
    norm_groups,
    residual,
    se_unit,
)
from .blocks_rep import ghost_shortcut_add, need_batchnorm, rep_conv_unit
from .symbols import Num, floordiv, value


def split_channels(channels: Num, groups: int) -> list[Num]:
    """timm's ``_split_channels(C, g)``: g parts of floor(C/g), the first one taking the remainder,
    C − (g − 1)·floor(C/g)."""
    part = floordiv(channels, groups)
    return [channels - (groups - 1) * part] + [part] * (groups - 1)


def _norm_act(f: Flow, a: BlockArgs, stage: str, act: bool = True) -> int:
    """norm → activation on the latest tensor, as :func:`conv_unit` puts them after its conv: a grouped norm
    takes the spec's groups, an activating norm (EvoNorm) is the activation too."""
    shape = f.output
    with_act = act and a.activation != "none"
    if a.norm != "none":
        g = norm_groups(a, shape[0]) if a.norm in ops.GROUPED_NORMS else 1
        f.add(stage, implemented(ops.norm(a.norm, shape, a.n, g, with_act), a))
        if a.norm in ops.ACTIVATING_NORMS:
            with_act = False
    if with_act:
        f.add(stage, ops.activation(shape, a.n, a.activation))
    return f.last


def mixed_unit(
    f: Flow,
    a: BlockArgs,
    stage: str,
    out_channels: Num,
    kernels: list[int],
    stride: Num = 1,
    depthwise: bool = False,
    act: bool = True,
    field: str = "kernels",
) -> int:
    """timm's MixedConv2d (+ norm + act): input and output split into len(kernels) groups (split_channels);
    group i is a kᵢ×kᵢ conv Cinᵢ → Coutᵢ (depthwise: groups Cinᵢ); the outputs are concatenated.

    params = Σᵢ Coutᵢ·(Cinᵢ/gᵢ)·kᵢ²; MACs = N·Ho·Wo·Σᵢ Coutᵢ·(Cinᵢ/gᵢ)·kᵢ². One group is a plain conv.
    """
    src = f.last
    c, h, w = f.shape(src)
    for width, what in ((c, "input"), (out_channels, "output")):
        if isinstance(width, int) and width < len(kernels):
            raise SpecError(
                f"the {stage} conv splits its {width} {what} channels into {len(kernels)} groups (one per kernel): "
                f"a group would have no channels",
                (*a.path, field),
            )
    if len(kernels) == 1:
        return conv_unit(f, a, stage, out_channels, kernels[0], stride, c if depthwise else 1, act)
    ins, outs = split_channels(c, len(kernels)), split_channels(out_channels, len(kernels))
    parts = []
    for k, ci, co in zip(kernels, ins, outs, strict=True):
        conv = ops.conv2d((ci, h, w), a.n, co, k, stride, ci if depthwise else 1, a.bias)
        if dynamic_same(a, None, k, stride):
            ops.mark_same(conv)  # tf_mixnet: MixedConv2d of Conv2dSame
        parts.append(f.add(stage, conv, (src,)))
    f.add(stage, ops.concat(tuple(f.shape(p) for p in parts), a.n), tuple(parts))
    return _norm_act(f, a, stage, act)


def mixconv(layer: Any, a: BlockArgs) -> Flow:
    """MixNet block: [grouped 1×1 expansion (if E ≠ input)] → mixed depthwise (stride) → [SE] → grouped 1×1
    projection → [+ input]. Costs: each stage as :func:`mixed_unit`, SE as in MBConv."""
    f = Flow(a.inp)
    e, expand = expanded_width(layer, a)
    if expand:
        mixed_unit(f, a, "expansion", e, [1] * layer.expansion_groups, field="expansion_groups")
    width = f.output[0]
    mixed_unit(f, a, "depthwise", width, list(layer.kernels), a.stride, depthwise=True)
    if layer.has_se:
        se_unit(f, a, layer, a.inp[0])
    cout = value(layer.out_channels)
    mixed_unit(f, a, "projection", cout, [1] * layer.projection_groups, act=False, field="projection_groups")
    residual(f, a, layer.residual)
    return f


def dfc_attention(f: Flow, a: BlockArgs, src: int, out_channels: Num, kernel: Num, stride: Num) -> int:
    """GhostNetV2's DFC gate on block tensor ``src``: avgpool 2×2 s2 → k×k conv (stride) to C → norm → (1, 5)
    dw conv → norm → (5, 1) dw conv → norm → sigmoid → nearest upsample to the ghost output's H×W.

    On the pooled map h × w (h = floor(H/2)): MACs = N·h'·w'·(C·Cin·k² + 5C + 5C) with h', w' after the stride.
    """
    f.add("dfc", ops.avgpool2d(f.shape(src), a.n, 2, 2), (src,))
    conv_unit(f, a, "dfc", out_channels, kernel, stride, act=False)
    for kh, kw in ((1, 5), (5, 1)):
        conv = ops.conv2d(f.output, a.n, out_channels, kh, 1, out_channels, a.bias, kernel_w=kw)
        f.add("dfc", conv)
        if a.norm != "none":
            g = norm_groups(a, out_channels) if a.norm in ops.GROUPED_NORMS else 1
            f.add("dfc", ops.norm(a.norm, conv.output, a.n, g))
    f.add("dfc", ops.activation(f.output, a.n, "sigmoid"))
    return f.last


def ghost_unit(
    f: Flow, a: BlockArgs, stage: str, layer: Any, out_channels: Num, stride: Num, act: bool, attention: str
) -> int:
    """Ghost module on the latest tensor: primary k×k conv (stride) to P = ceil(out/ratio) → norm → act; cheap
    dw conv P → P·(ratio − 1), groups P → norm → act; concat; first ``out`` channels; [× DFC gate].

    params = P·Cin·k² + P(ratio−1)·d² + norms; MACs = N·Ho·Wo·(P·Cin·k² + P(ratio−1)·d²).

    With ``rep_branches: b`` (GhostNetV3, ratio 2) both convs are re-parameterisable (:func:`rep_conv_unit`):
    train MACs = N·Ho·Wo·(b·P·Cin·k² + P·(b·d² + 1)), params add b − 1 copies of each conv and its norm, the 1×1
    scale conv P + its norm and the identity norm 2P; deploy: params P·Cin·k² + P + P·d² + P, no norms, the
    plain module's MACs.

    timm builds the module from torch.nn classes (nn.Conv2d, nn.BatchNorm2d, nn.ReLU in nn.Sequential); GhostNetV3's
    conv branches are timm's ConvBnAct (nn.Conv2d, statically padded, + BatchNormAct2d), its identity branch an
    nn.BatchNorm2d.
    """
    branch = replace(a, pad_type="")  # ConvBnAct(pad_type=k // 2): static padding, the layer's library
    a = replace(a, library="torch")
    src = f.last
    ratio = layer.ratio
    primary = -floordiv(-out_channels, ratio)  # ceil(out / ratio)
    k = value(layer.kernel) if layer.kind == "ghost" else 1
    d = value(layer.dw_kernel)
    if layer.rep_branches is not None:
        need_batchnorm(a, "rep_branches")
        rep = {"branches": layer.rep_branches, "act": act, "form": layer.form}
        x1 = rep_conv_unit(f, branch, stage, src, primary, k, stride, scale=False, identity=False, **rep)
        x2 = rep_conv_unit(f, branch, stage, x1, primary, d, 1, primary, scale=True, identity=True, **rep)
    else:
        x1 = conv_unit(f, a, stage, primary, k, stride, act=act)
        x2 = conv_unit(f, a, stage, primary * (ratio - 1), d, 1, groups=primary, act=act)
    out = f.add(stage, ops.concat((f.shape(x1), f.shape(x2)), a.n, out_channels), (x1, x2))
    if attention == "dfc":
        gate = dfc_attention(f, a, src, out_channels, k, stride)
        up = f.add("dfc", ops.upsample(f.shape(gate), a.n, (f.shape(out)[1], f.shape(out)[2])), (gate,))
        out = f.add(stage, ops.mul(f.shape(out), a.n, "x·gate"), (out, up))
    return out


def ghost(layer: Any, a: BlockArgs) -> Flow:
    """A Ghost module (see :func:`ghost_unit`) as a layer."""
    f = Flow(a.inp)
    ghost_unit(f, a, "ghost", layer, value(layer.out_channels), a.stride, layer.activation_cheap, layer.attention)
    return f


def ghost_bottleneck(layer: Any, a: BlockArgs) -> Flow:
    """GhostNet bottleneck: ghost to M → [k×k dw (stride) → norm] → [SE] → ghost to Cout, no activation
    → + shortcut (identity, or k×k dw (stride) → norm → 1×1 Cin → Cout → norm).

    With ``rep_branches: b`` (GhostNetV3) the ghost modules are re-parameterisable (:func:`ghost_unit`) and so is
    the strided dw conv: train MACs N·Ho·Wo·M·(b·k² + 1), deploy one biased k×k dw conv (M·k² + M params)."""
    f = Flow(a.inp)
    cin = a.inp[0]
    mid = value(layer.mid_channels)
    cout = value(layer.out_channels)
    k = value(layer.kernel)
    strided = a.stride != 1
    if not isinstance(a.stride, int):
        raise SpecError("ghost_bottleneck needs a numeric stride", (*a.path, "stride"))
    ghost_unit(f, a, "ghost1", layer, mid, 1, True, layer.attention)
    nn = replace(a, library="torch")  # conv_dw + bn_dw and the shortcut: nn.Conv2d, nn.BatchNorm2d; SE: timm's
    if strided and layer.rep_branches is not None:  # GhostNetV3: b k×k dw branches + a 1×1 dw scale branch
        rep = {"branches": layer.rep_branches, "form": layer.form}  # dw_rpr_conv, dw_rpr_scale: ConvBnAct
        dw = replace(a, pad_type="")
        rep_conv_unit(f, dw, "depthwise", f.last, mid, k, a.stride, mid, scale=True, identity=False, act=False, **rep)
    elif strided:
        conv_unit(f, nn, "depthwise", mid, k, a.stride, groups=mid, act=False)
    if layer.has_se:
        se_unit(f, a, layer, cin)
    main = ghost_unit(f, a, "ghost2", layer, cout, 1, False, "none")
    return ghost_shortcut_add(f, a, main, cin, cout, k)


def uir(layer: Any, a: BlockArgs) -> Flow:
    """Universal inverted residual: [s×s dw → norm] → 1×1 to E → norm → act → [m×m dw (stride) → norm → act]
    → 1×1 to Cout → norm → [x·γ, C params] → [+ input]. With ``aa`` the strided dw conv runs at stride 1 and
    the blur / 2×2 average pool takes the stride after its norm (and act): see :func:`conv_unit`.

    E = make_divisible(Cin × expansion, 8) or expanded_channels. MACs = N·(Hs·Ws·Cin·s² + Ho'·Wo'·(Cin·E) +
    Ho·Wo·(E·m² + E·Cout)) with each conv at its own output size.
    """
    f = Flow(a.inp)
    cin = a.inp[0]
    if layer.expanded_channels is not None:
        e: Num = value(layer.expanded_channels)
    else:
        if not isinstance(cin, int):
            raise SpecError("uir's expansion needs numeric channels (or set expanded_channels)", (*a.path, "expansion"))
        e = make_divisible(cin * layer.expansion, 8)
    if layer.start_kernel is None and layer.mid_kernel is None and a.stride != 1:
        raise SpecError("a strided uir needs start_kernel or mid_kernel", (*a.path, "stride"))
    if layer.start_kernel is not None:
        s = a.stride if layer.mid_kernel is None else 1
        conv_unit(f, a, "start_dw", cin, value(layer.start_kernel), s, groups=cin, act=False, aa=layer.aa)
    conv_unit(f, a, "expansion", e, 1)
    if layer.mid_kernel is not None:
        conv_unit(f, a, "mid_dw", e, value(layer.mid_kernel), a.stride, groups=e, aa=layer.aa)
    conv_unit(f, a, "projection", value(layer.out_channels), 1, act=False)
    if layer.layer_scale:
        f.add("layer_scale", ops.layer_scale(f.output, a.n))
    residual(f, a, layer.residual)
    return f


def cond_conv_unit(
    f: Flow,
    a: BlockArgs,
    stage: str,
    src: int,
    route: int,
    out_channels: Num,
    kernel: Num,
    stride: Num = 1,
    groups: Num = 1,
    act: bool = True,
) -> int:
    """CondConv2d (+ norm + act) on tensor ``src``: the expert mixing (:func:`ops.expert_mix`, P =
    Cout·(Cin/g)·k² (+ Cout with bias), reading the routing weights ``route``), then the conv with the mixed
    per-sample weights, which holds no parameters of its own.

    params = E·P (+ norm); MACs = N·E·P + N·Ho·Wo·Cout·(Cin/g)·k². timm runs the per-sample convs as one
    conv with groups N·g, which FlopCounterMode counts as N convs with groups g.
    """
    conv = ops.conv2d(f.shape(src), a.n, out_channels, kernel, stride, groups, a.bias)
    mixing = ops.expert_mix(f.shape(route), a.n, conv.costs["params"])
    mixing.attrs["positions"] = conv.output[1] * conv.output[2]  # torchinfo: CondConv2d's params × N·Ho·Wo
    mix = f.add(stage, mixing, (route,))
    out = conv_unit(f, a, stage, out_channels, kernel, stride, groups, act, src)
    step = f.steps[mix]  # the conv conv_unit added right after the mixing: tensor mix + 1 is steps[mix]
    step.op.costs = dict(step.op.costs) | {"params": 0}
    step.op.detail += " mixed"
    step.op.variant = "cond"  # CondConv2d's F.conv2d with the mixed weights, inside one module with the mixing
    # in training it saves its input (or Conv2dSame's padded copy) and the mixed weights, not a parameter
    step.op.saves = tuple("mixed" if t == "weight" else t for t in step.op.saves or ())
    step.op.attrs["mixed"] = conv.costs["params"] - (out_channels if a.bias else 0)
    step.inputs = (src, mix)
    return out


def condconv(layer: Any, a: BlockArgs) -> Flow:
    """timm's CondConvResidual: routing r = sigmoid(linear(avgpool(x))) (Cin → E, with bias) → CondConv 1×1 to
    M → norm → act → CondConv k×k depthwise (stride) → norm → act → [SE] → CondConv 1×1 to Cout → norm →
    [+ input]. The expansion conv is always there (M may equal Cin).

    params = Cin·E + E + E·(Cin·M + M·k² + M·Cout) + norms + SE; MACs = N·(Cin·E + E·(Cin·M + M·k² + M·Cout)
    + H·W·Cin·M + Ho·Wo·(M·k² + M·Cout)) + SE.
    """
    f = Flow(a.inp)
    e, _ = expanded_width(layer, a)
    f.add("routing", ops.global_avgpool(a.inp, a.n, "functional"), (0,))
    f.add("routing", ops.linear(f.output, a.n, layer.experts, bias=True))
    route = f.add("routing", ops.activation(f.output, a.n, "sigmoid"))
    x = cond_conv_unit(f, a, "expansion", 0, route, e, 1)
    x = cond_conv_unit(f, a, "depthwise", x, route, e, value(layer.kernel), a.stride, groups=e)
    if layer.has_se:
        se_unit(f, a, layer, a.inp[0])
    x = cond_conv_unit(f, a, "projection", f.last, route, value(layer.out_channels), 1, act=False)
    residual(f, a, layer.residual)
    return f
