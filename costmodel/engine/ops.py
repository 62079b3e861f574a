"""One formula per primitive op. Each works on ints and on sympy expressions alike.

Every op returns an :class:`Op`: learnable params, buffers, MACs, FLOPs and the output shape.
Shapes are ``(C, H, W)`` per sample; ``n`` is the batch size, which MACs, FLOPs and activation
sizes scale with. The costmodel convention (docs/conventions.md):

* **params** — what ``sum(p.numel() for p in module.parameters())`` gives: weights, conv/linear bias,
  BatchNorm γ and β.
* **buffers** — BatchNorm's running mean and variance (C each) and ``num_batches_tracked`` (1), as
  ``sum(b.numel() for b in module.buffers())`` gives.
* **macs** — multiply-accumulates of conv and linear layers only, bias excluded; what
  ``FlopCounterMode`` reports divided by 2. Padded positions count as full kernels, as in torch.
* **flops** — every floating-point operation at inference: 2 per MAC, 1 per bias add, and per output
  element: BatchNorm 2 (folded to a·x + b), relu 1, relu6 2, sigmoid 4 (neg, exp, add, divide),
  silu 5, hardsigmoid 4 (add, max, min, divide), hardswish 5, gelu 5, global average pool 1 per input
  element, residual add and SE multiply 1; GroupNorm and LayerNorm 8, EvoNorm-S0 13, EvoNorm-B0 10 (see
  each op). Dropout and flatten cost nothing at inference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..spec import names as _names
from . import metrics as _metrics
from .symbols import Num, floordiv

Shape = tuple[Num, ...]  # (C, H, W) for feature maps, (F,) after a linear layer


def numel(shape: Shape) -> Num:
    """Elements of one sample of this shape."""
    return math.prod(shape)  # 1 · s0 · s1 · …, left to right, for ints and sympy alike


#: FLOPs per element of each activation (and gate), under the costmodel convention (spec/names.py).
ACTIVATION_FLOPS: dict[str, int] = {name: a.flops for name, a in _names.ACTIVATIONS.items()}

BN_FLOPS_PER_ELEMENT = 2  # inference BatchNorm folds to a·x + b

#: What each activation (and gate) hands autograd for backward, as measured with
#: ``torch.autograd.graph.saved_tensors_hooks`` (torch 2.13, out-of-place modules; spec/names.py): relu and
#: sigmoid save their output (the derivative is a function of it), the others their input.
ACTIVATION_SAVES: dict[str, tuple[str, ...]] = {name: a.saves for name, a in _names.ACTIVATIONS.items()}

SAVES = (
    *("input", "inputs", "output", "weight", "weight_t", "stats", "mask", "rms", "attention"),
    *("padded", "moments", "mixed"),
)
"""The tokens of an op's saving rule (``Op.saves``): what autograd keeps for backward in train mode.

* ``input`` — its (first) input tensor; ``inputs`` — each input, kept when another input requires grad
  (``x · gate`` keeps the gate for x's gradient and x for the gate's);
* ``output`` — its output tensor;
* ``moments`` — GroupNorm's and LayerNorm2d's per-sample statistics, mean and 1/σ, float32 even under
  autocast: ``attrs["moments"]`` values each per sample (GroupNorm: its G groups; LayerNorm2d: H × W
  positions, ``native_layer_norm`` on the channels-last view);
* ``mixed`` — CondConv's conv, ``F.conv2d(x, w)`` with the per-sample weights w = r @ experts: w, a new
  tensor of ``attrs["mixed"]`` values per sample (Cout·Cin/g·k²; the mixed bias is not saved), kept beside
  its input (float32 only; under autocast refused);
* ``padded`` — (a conv marked ``variant="same"``: timm's Conv2dSame, and torchref's) the zero-padded copy of
  its input that ``F.pad`` makes before the conv — C × (H + pad_h) × (W + pad_w) per sample, a new tensor
  even when both pads are 0 — instead of the input itself (under autocast, its half copy);
* ``weight`` — its weight, always (a parameter: not an activation in float32; under autocast the half
  copy autocast makes, which is a new tensor); ``weight_t`` — the same, kept only when the input
  requires grad (linear's ``addmm`` keeps ``weight.t()`` for the input's gradient only);
* ``stats`` — BatchNorm's four C-vectors: running mean and variance as handed to autograd, and the
  batch mean and inverse std it computed (float32 even under autocast);
* ``mask`` — dropout's noise: on CPU a tensor like its input (``bernoulli_`` then ``input * noise``),
  on CUDA a 1-byte boolean mask;
* ``rms`` — RMSNorm's ``y = x · rsqrt(mean_c(x²) + ε)`` then ``y · γ``: the input (pow and the first
  multiply), the rsqrt result (1 × H × W per sample) and y (for γ's gradient); only y when the input
  needs no grad.

* ``attention`` — multi-query attention run as matmuls (q·kᵀ/√dk, softmax, ·v): q / √dk (a new tensor),
  the softmax output (h × L × P per sample), and k and v as the batched matmuls read them — with h > 1
  heads, copies broadcast to the heads (h·dk·P and h·P·dv), with one head the key and value tensors
  themselves (float32 only; multi-head attention and autocast are refused).

``()`` saves nothing: adds, reshapes, ``torch.cat`` and slicing, nearest and bilinear ``F.interpolate``
(their backward needs only sizes).

An op whose inputs need no grad and which has no parameters records no backward node and saves nothing.
The rules are analysed in costmodel/analysis/training.py and listed in docs/training.md.
"""


@dataclass(slots=True)
class Op:
    """The cost of one primitive op applied to one input.

    ``costs`` holds the per-op metrics (engine/metrics.py OP_METRICS). ``category`` says what the op is
    to the execution models (conv, norm, act, pool, add, mul, linear, dropout); ``state`` is the
    non-learnable state it reads at inference (BatchNorm's running mean and variance), and ``folds``
    whether it folds into the conv before it for deployment.
    """

    name: str  # conv2d, batchnorm2d, relu6, avgpool, add, mul, linear, …
    detail: str  # short human description, e.g. "1×1 4→24" or "3×3 dw s2"
    costs: dict[str, Num]
    input: Shape
    output: Shape
    category: str
    bias: bool = False
    # how the op is implemented, where counters tell them apart (docs/conventions.md): pool module/functional/mean;
    # timm's classes: conv2d same (Conv2dSame) / cond (CondConv2d), norms act (BatchNormAct2d …), linear timm
    variant: str = ""
    state: Num = 0
    folds: bool = False
    attrs: dict[str, Num] = field(default_factory=dict)  # conv: kernel, stride, groups
    saves: tuple[str, ...] | None = None  # what autograd saves in train mode (tokens of SAVES); None: not modelled
    # whether the output scales with the batch (graph ops on parameters alone do not: engine/graph_ops.py)
    batched: bool = True

    def __post_init__(self) -> None:
        # every per-op metric is given, none is made up: a metric an op forgets is an error, never a silent 0
        if len(self.costs) != len(_metrics.OP_METRICS) or any(m not in self.costs for m in _metrics.OP_METRICS):
            missing = [m for m in _metrics.OP_METRICS if m not in self.costs]
            extra = [m for m in self.costs if m not in _metrics.OP_METRICS]
            raise ValueError(
                f"op {self.name} ({self.detail}): costs must hold exactly the per-op metrics "
                f"{', '.join(_metrics.OP_METRICS)} (engine/metrics.py); missing {missing}, unknown {extra}"
            )


def activation_elements(op: Op, n: Num) -> Num:
    """The activations (output elements, batch n included) of ``op``: n·numel(output) for a batched output,
    numel(output) for one computed from parameters alone, 0 for a parameter or buffer itself (a graph's
    ``param`` / ``buffer`` node, category ``param``: its tensor is a weight, not an activation)."""
    if op.batched:
        return n * numel(op.output)
    return 0 if op.category == "param" else numel(op.output)


def _costs(params: Num, buffers: Num, macs: Num, flops: Num) -> dict[str, Num]:
    return {"params": params, "buffers": buffers, "macs": macs, "flops": flops}


def spatial_out(size: Num, stride: Num, kernel: Num = 1, padding: Num | str | None = None, dilation: Num = 1) -> Num:
    """Output size of a conv or pool along one axis.

    * default padding p = d(k − 1)/2 (odd kernels) and ``same`` (timm's Conv2dSame, TensorFlow 'SAME':
      out = ceil(H/s), total pad max((out − 1)s + d(k − 1) + 1 − H, 0)): floor((H − 1)/s) + 1 = ceil(H/s);
      the kernel drops out (a symbolic kernel is taken as odd);
    * explicit padding p (``valid``: 0): floor((H + 2p − d(k − 1) − 1)/s) + 1, torch's formula.
    """
    if padding is None or padding == "same":
        if isinstance(stride, int) and stride == 1:
            return size
        return floordiv(size - 1, stride) + 1
    p: Num = 0 if padding == "valid" or isinstance(padding, str) else padding
    return floordiv(size + 2 * p - dilation * (kernel - 1) - 1, stride) + 1


def same_pad(size: int, stride: int, kernel: int, dilation: int = 1) -> int:
    """The total 'SAME' pad along one axis (timm's get_same_padding, TensorFlow):
    max((ceil(H/s) − 1)·s + d(k − 1) + 1 − H, 0); Conv2dSame puts pad // 2 before and the rest after.
    Numbers only: the pad depends on H mod s."""
    out = -(-size // stride)
    return max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)


def mark_same(op: Op, dilation: Num = 1) -> Op:
    """``op`` (a conv) marked as timm's Conv2dSame: ``F.pad`` to 'SAME' (asymmetric where odd), then the conv
    unpadded. Records the dilation for the padded tensor it saves in training (SAVES ``padded``)."""
    op.variant = "same"
    op.saves = ("padded", "weight")
    if dilation != 1:
        op.attrs["dilation"] = dilation
    return op


def conv2d(
    inp: Shape,
    n: Num,
    out_channels: Num,
    kernel: Num,
    stride: Num = 1,
    groups: Num = 1,
    bias: bool = False,
    padding: Num | str | None = None,
    dilation: Num = 1,
    kernel_w: Num | None = None,
) -> Op:
    """kh×kw convolution with ``groups``, ``padding`` (default d(k − 1)/2; see :func:`spatial_out`) and
    ``dilation``; kw = ``kernel_w``, default kh (square; GhostNetV2's (1, 5) and (5, 1) depthwise convs).

    params = Cout·(Cin/g)·kh·kw (+ Cout bias); MACs = N·Cout·Ho·Wo·(Cin/g)·kh·kw (each output sums
    Cin/g·kh·kw products, padded positions included, as torch counts); FLOPs = 2·MACs (+ N·Cout·Ho·Wo bias
    adds). Dilation spreads the taps and changes only Ho, Wo.
    """
    c, h, w = inp
    kw = kernel if kernel_w is None else kernel_w
    ho = spatial_out(h, stride, kernel, padding, dilation)
    wo = spatial_out(w, stride, kw, padding, dilation)
    per_out = (c // groups if isinstance(c, int) and isinstance(groups, int) else c / groups) * kernel * kw
    weights = out_channels * per_out
    macs = n * out_channels * ho * wo * per_out
    flops = 2 * macs + (n * out_channels * ho * wo if bias else 0)
    kind = "" if groups == 1 else ("dw " if groups == c else f"g{groups} ")
    detail = f"{kernel}×{kw} {kind}{c}→{out_channels}" + (f" s{stride}" if stride != 1 else "")
    detail += (f" d{dilation}" if dilation != 1 else "") + (f" p{padding}" if padding is not None else "")
    return Op(
        "conv2d",
        detail,
        _costs(weights + (out_channels if bias else 0), 0, macs, flops),
        inp,
        (out_channels, ho, wo),
        "conv",
        bias,
        attrs={"kernel": kernel, "stride": stride, "groups": groups}
        | ({} if kernel_w is None else {"kernel_w": kernel_w}),
        saves=("input", "weight"),  # convolution_backward(grad, input, weight, …)
    )


def batchnorm2d(inp: Shape, n: Num) -> Op:
    """BatchNorm2d: params γ, β = 2C; buffers running mean/var + num_batches_tracked = 2C + 1; FLOPs 2 per element.

    At inference it reads γ, β and the running mean and variance (4C values) unless folded into the conv.
    """
    c = inp[0]
    return Op(
        "batchnorm2d",
        f"{c}",
        _costs(2 * c, 2 * c + 1, 0, BN_FLOPS_PER_ELEMENT * n * numel(inp)),
        inp,
        inp,
        "norm",
        state=2 * c,
        folds=True,
        saves=("input", "stats"),  # input, γ (a parameter), running mean/var, batch mean and invstd
    )


NORM_STAT_FLOPS = 4  # per element, statistics at inference: mean 1 (add), variance 3 (subtract, square, add)


def groupnorm(inp: Shape, n: Num, groups: Num = 1) -> Op:
    """GroupNorm (torch nn.GroupNorm, timm GroupNormAct) with ``groups`` groups over C×H×W: params γ, β = 2C;
    no buffers; FLOPs 8 per element (statistics 4: mean and variance per sample and group; normalize 2:
    subtract, multiply by 1/σ; affine 2). FlopCounterMode counts none of it (no MACs).

    Its statistics come from the input, so it cannot fold into the conv before it.
    """
    c = inp[0]
    flops = (NORM_STAT_FLOPS + 4) * n * numel(inp)
    return Op(
        "groupnorm",
        f"{c} g{groups}",
        _costs(2 * c, 0, 0, flops),
        inp,
        inp,
        "norm",
        attrs={"groups": groups, "moments": groups},
        saves=("input", "moments"),  # native_group_norm: input, γ (a parameter), mean and rstd (N × G each)
    )


def layernorm2d(inp: Shape, n: Num) -> Op:
    """LayerNorm over the channels at each position (timm LayerNorm2d: nn.LayerNorm(C) on N·H·W vectors):
    params γ, β = 2C; no buffers; FLOPs 8 per element, as :func:`groupnorm`. FlopCounterMode counts 0.
    """
    c = inp[0]
    flops = (NORM_STAT_FLOPS + 4) * n * numel(inp)
    return Op(
        "layernorm2d",
        f"{c}",
        _costs(2 * c, 0, 0, flops),
        inp,
        inp,
        "norm",
        attrs={"moments": inp[1] * inp[2]},
        saves=("input", "moments"),  # native_layer_norm: input (a view), γ, β (parameters), mean and rstd (N·H·W)
    )


def evonorm_s0(inp: Shape, n: Num, groups: Num = 1, act: bool = True) -> Op:
    """EvoNorm-S0 (timm EvoNorm2dS0), which replaces norm + activation: y = x·σ(v·x) / std_group(x) · γ + β.

    params γ, β, v = 3C (without its nonlinearity, timm's ``apply_act=False``: y = x · γ + β — timm 1.0.31
    skips the group std too — 2C); no buffers; FLOPs per element 13 (v·x 1, sigmoid 4, multiply 1, group std 4,
    divide 1, affine 2), 2 without the nonlinearity (the affine alone). FlopCounterMode counts 0.
    """
    c = inp[0]
    return Op(
        "evonorm_s0",
        f"{c} g{groups}" + ("" if act else " no act"),
        _costs((3 if act else 2) * c, 0, 0, (13 if act else 2) * n * numel(inp)),
        inp,
        inp,
        "norm",
        attrs={"groups": groups, "stats": groups if act else 0},  # stats: group std's computed per sample
    )


def evonorm_b0(inp: Shape, n: Num, groups: Num = 1, act: bool = True) -> Op:
    """EvoNorm-B0 (timm EvoNorm2dB0), which replaces norm + activation; at inference
    y = x / max(√(running_var + ε), v·x + std_instance(x)) · γ + β.

    params γ, β, v = 3C (2C without its nonlinearity, timm's ``apply_act=False``: y = x · γ + β — timm 1.0.31
    skips the running-variance division too); buffers running_var = C (kept either way); FLOPs per element 10
    (v·x 1, instance std 4, add 1, max 1, divide 1, affine 2), 2 without the nonlinearity. FlopCounterMode
    counts 0.
    """
    c = inp[0]
    return Op(
        "evonorm_b0",
        f"{c}" + ("" if act else " no act"),
        _costs((3 if act else 2) * c, c, 0, (10 if act else 2) * n * numel(inp)),
        inp,
        inp,
        "norm",
        state=c,
    )


def _bn(inp: Shape, n: Num, groups: Num = 1, act: bool = False) -> Op:
    return batchnorm2d(inp, n)


def _gn(inp: Shape, n: Num, groups: Num = 1, act: bool = False) -> Op:
    return groupnorm(inp, n, groups)


def _ln(inp: Shape, n: Num, groups: Num = 1, act: bool = False) -> Op:
    return layernorm2d(inp, n)


NORMS: dict[str, Callable[[Shape, Num, Num, bool], Op]] = {
    "batchnorm": _bn,
    "groupnorm": _gn,
    "layernorm": _ln,
    "evonorm_s0": evonorm_s0,
    "evonorm_b0": evonorm_b0,
}
"""One op per norm a layer's ``norm`` can name (``none``: no op); each takes (input, batch, groups, act)."""

GROUPED_NORMS = frozenset(name for name, x in _names.NORMS.items() if x.grouped)
"""The norms whose statistics are taken over channel groups (``defaults.norm_groups`` / ``norm_group_size``)."""

ACTIVATING_NORMS = frozenset(name for name, x in _names.NORMS.items() if x.activating)
"""The norms that replace norm + activation: they take the activation's place (no separate activation op)."""


def norm(name: str, inp: Shape, n: Num, groups: Num = 1, act: bool = False) -> Op:
    """The norm op called ``name`` on ``inp`` (``groups``: for the grouped norms; ``act``: whether an
    activating norm applies its nonlinearity)."""
    return NORMS[name](inp, n, groups, act)


def blur_padding(stride: Num, size: int = 3) -> Num:
    """The padding timm's BlurPool2d puts on each side: get_padding(k, s) = ((s − 1) + (k − 1)) // 2
    (k = 3: 1 at stride 2, 2 at stride 3 and 4), reflecting the map's edge."""
    return floordiv(stride - 1 + size - 1, 2)


def blur(inp: Shape, n: Num, stride: Num = 2, size: int = 3) -> Op:
    """timm's BlurPool2d: a fixed binomial k×k filter (k = 3: [1, 2, 1]ᵀ[1, 2, 1] / 16) applied depthwise at
    ``stride``, after reflect-padding p = ((s − 1) + (k − 1)) // 2 on each side (:func:`blur_padding`); no params;
    buffers = the filter, C·k² (non-persistent, but ``module.buffers()`` lists it); MACs = N·C·Ho·Wo·k²
    (FlopCounterMode sees an F.conv2d); Ho = floor((H + 2p − k)/s) + 1 (s = 2: floor((H − 1)/2) + 1).
    """
    c, h, w = inp
    p = blur_padding(stride, size)
    ho, wo = spatial_out(h, stride, size, p), spatial_out(w, stride, size, p)
    macs = n * c * ho * wo * size * size
    return Op(
        "blurpool",
        f"{size}×{size} blur s{stride}",
        _costs(0, c * size * size, macs, 2 * macs),
        inp,
        (c, ho, wo),
        "conv",
        attrs={"kernel": size, "stride": stride, "groups": c, "padding": p},
        # not modelled (refused): timm's 'blur' reflect-pads (reflection_pad2d saves its input), its 'blurpc' — what
        # the shipped timm blur models use — pads with zeros (saves nothing); the spec's ``aa: blur`` names neither
        saves=None,
    )


def avgpool(inp: Shape, n: Num, stride: Num = 2) -> Op:
    """nn.AvgPool2d(s) — timm's ``aa_layer='avg'`` (MobileNetV4-AA builds ``nn.AvgPool2d(stride)``: kernel = stride
    s, no padding, floor mode): no params, no MACs (FlopCounterMode counts no pooling); FLOPs = one add per
    window input plus one divide per output, N·C·(Ho·Wo·s² + Ho·Wo). Output floor((H − s)/s) + 1 = floor(H/s).
    """
    c, h, w = inp
    ho, wo = floordiv(h, stride), floordiv(w, stride)
    flops = n * c * ho * wo * (stride * stride + 1)
    detail = f"{stride}×{stride} avg s{stride}"
    return Op("avgpool2d", detail, _costs(0, 0, 0, flops), inp, (c, ho, wo), "pool", variant="module", saves=("input",))


def activation(inp: Shape, n: Num, name: str) -> Op:
    """An elementwise activation or gate: no params, no MACs; FLOPs = ACTIVATION_FLOPS[name] per element."""
    return Op(
        name,
        "",
        _costs(0, 0, 0, ACTIVATION_FLOPS[name] * n * numel(inp)),
        inp,
        inp,
        "act",
        saves=ACTIVATION_SAVES[name],
    )


def global_avgpool(inp: Shape, n: Num, implementation: str = "module") -> Op:
    """Global average pool to C×1×1: no MACs; FLOPs = one add-or-divide per input element (N·C·H·W)."""
    c, h, w = inp
    return Op(
        "avgpool",
        f"{h}×{w}→1×1",
        _costs(0, 0, 0, n * c * h * w),
        inp,
        (c, 1, 1),
        "pool",
        variant=implementation,
        saves=(),
    )


def add(inp: Shape, n: Num, detail: str = "") -> Op:
    """Elementwise add of two same-shape tensors (the residual): FLOPs = N·C·H·W."""
    return Op("add", detail, _costs(0, 0, 0, n * numel(inp)), inp, inp, "add", saves=())


def mul(inp: Shape, n: Num, detail: str = "") -> Op:
    """Elementwise multiply by a broadcast C×1×1 gate (SE's scale): FLOPs = N·C·H·W."""
    return Op("mul", detail, _costs(0, 0, 0, n * numel(inp)), inp, inp, "mul", saves=("inputs",))


def linear(inp: Shape, n: Num, out_features: Num, bias: bool = True) -> Op:
    """Fully connected layer on the flattened input (in = C·H·W features), giving a flat (out,) vector.

    params = in·out (+ out); MACs = N·in·out; FLOPs = 2·MACs (+ N·out).
    """
    in_features = numel(inp)
    macs = n * in_features * out_features
    return Op(
        "linear",
        f"{in_features}→{out_features}",
        _costs(
            in_features * out_features + (out_features if bias else 0),
            0,
            macs,
            2 * macs + (n * out_features if bias else 0),
        ),
        inp,
        (out_features,),
        "linear",
        bias,
        saves=("input", "weight_t"),  # addmm keeps mat1 (the flattened input) and, for its gradient, weight.t()
    )


def dropout(inp: Shape, n: Num, p: float) -> Op:
    """Dropout: the identity at inference; no params, MACs or FLOPs."""
    return Op("dropout", f"p={p:g}", _costs(0, 0, 0, 0), inp, inp, "dropout", saves=("mask",))


def concat(inputs: tuple[Shape, ...], n: Num, keep: Num | None = None) -> Op:
    """Concatenate feature maps along channels (``torch.cat``), keeping the first ``keep`` channels.

    Output (min(ΣCᵢ, keep), H, W): a copy, no params, MACs or FLOPs (FlopCounterMode counts nothing).
    The Ghost module's ``cat([x1, x2])[:, :out]`` and MixConv's ``cat`` of its kernel groups.
    """
    total: Num = 0
    for s in inputs:
        total = total + s[0]
    out = total if keep is None else keep
    h, w = inputs[0][1], inputs[0][2]
    detail = "+".join(str(s[0]) for s in inputs) + (f"→{keep}" if keep is not None else "")
    return Op("concat", detail, _costs(0, 0, 0, 0), (total, h, w), (out, h, w), "concat", saves=())


def avgpool2d(inp: Shape, n: Num, kernel: Num | tuple[Num, Num], stride: Num | tuple[Num, Num]) -> Op:
    """Local kh×kw average pool, stride sh×sw, no padding (one number: square): Ho = floor((H − kh)/sh) + 1,
    Wo likewise; FLOPs = N·C·Ho·Wo·kh·kw (kh·kw − 1 adds and a divide per output). FlopCounterMode counts no
    MACs (GhostNetV2's F.avg_pool2d(x, 2, 2), MobileNetV5's adapter pool)."""
    c, h, w = inp
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    ho, wo = floordiv(h - kh, sh) + 1, floordiv(w - kw, sw) + 1
    label = f"{kh}×{kw} s{sh}" if (kh, sh) == (kw, sw) else f"{kh}×{kw} s{sh}×{sw}"
    return Op(
        "avgpool2d",
        label,
        _costs(0, 0, 0, n * c * ho * wo * kh * kw),
        inp,
        (c, ho, wo),
        "pool",
        variant="functional",
        saves=("input",),  # avg_pool2d_backward(grad, self, …)
    )


def maxpool2d(inp: Shape, n: Num, kernel: Num, stride: Num, padding: Num) -> Op:
    """Local k×k max pool, stride s, zero padding p (``nn.MaxPool2d``): Ho = floor((H + 2p − k)/s) + 1, Wo
    likewise; no params, no MACs (FlopCounterMode counts none); FLOPs = N·C·Ho·Wo·(k² − 1) comparisons."""
    c, h, w = inp
    ho, wo = floordiv(h + 2 * padding - kernel, stride) + 1, floordiv(w + 2 * padding - kernel, stride) + 1
    label = f"{kernel}×{kernel} max s{stride}" + (f" p{padding}" if padding else "")
    flops = n * c * ho * wo * (kernel * kernel - 1)
    return Op("maxpool2d", label, _costs(0, 0, 0, flops), inp, (c, ho, wo), "pool", variant="module", saves=("input",))


def upsample(inp: Shape, n: Num, size: tuple[Num, Num]) -> Op:
    """Nearest-neighbour resize to ``size`` (F.interpolate mode='nearest'): a gather, no FLOPs or MACs."""
    c, h, w = inp
    label = f"{h}×{w}→{size[0]}×{size[1]}"
    return Op("upsample", label, _costs(0, 0, 0, 0), inp, (c, size[0], size[1]), "upsample", saves=())


BILINEAR_FLOPS = 7  # a bilinear output element: 4 weighted neighbours (4 multiplies, 3 adds)


def bilinear(inp: Shape, n: Num, size: tuple[Num, Num]) -> Op:
    """Bilinear resize to ``size`` (F.interpolate mode='bilinear', align_corners=False): no params or MACs
    (FlopCounterMode counts none); FLOPs = BILINEAR_FLOPS (4 multiplies + 3 adds) per output element,
    N·C·h·w·7."""
    c, h, w = inp
    out = (c, size[0], size[1])
    return Op(
        "upsample",
        f"{h}×{w}→{size[0]}×{size[1]} bilinear",
        _costs(0, 0, 0, BILINEAR_FLOPS * n * numel(out)),
        inp,
        out,
        "upsample",
        variant="bilinear",
        saves=(),  # upsample_bilinear2d_backward needs only sizes
    )


def flatten(inp: Shape, n: Num) -> Op:
    """(C, H, W) → (C·H·W,) (nn.Flatten(1)): a view, no cost."""
    return Op("flatten", "", _costs(0, 0, 0, 0), inp, (numel(inp),), "reshape", saves=())


def layer_scale(inp: Shape, n: Num) -> Op:
    """LayerScale: x · γ with a learnable γ per channel: params C; FLOPs N·C·H·W; no MACs (an elementwise mul,
    which FlopCounterMode does not count)."""
    return Op("layer_scale", f"{inp[0]}", _costs(inp[0], 0, 0, n * numel(inp)), inp, inp, "mul", saves=("input",))


def expert_mix(routing: Shape, n: Num, weight_numel: Num) -> Op:
    """CondConv's expert mixing ``torch.matmul(routing_weights, experts)``: the (N, E) routing weights times the
    (E, P) expert weights give each sample its own P weights (P = one conv's weight numel, + Cout with bias).

    params = E·P (the experts, timm's CondConv2d.weight and .bias); MACs = N·E·P (FlopCounterMode counts the
    mm); FLOPs = 2·MACs. Output: P per sample.
    """
    experts = routing[0]
    macs = n * experts * weight_numel
    return Op(
        "expert_mix",
        f"{experts}×{weight_numel}",
        _costs(experts * weight_numel, 0, macs, 2 * macs),
        routing,
        (weight_numel,),
        "linear",
        saves=("input", "weight_t"),  # mm(r, experts): r for the experts' gradient; the experts are parameters
    )


ATTENTION_SOFTMAX_FLOPS = 6  # per logit: scale 1, softmax 5 (max, subtract, exp, sum, divide)


def attention(query: Shape, keys: Num, n: Num, heads: Num, key_dim: Num, value_dim: Num, kv_heads: Num = 1) -> Op:
    """Scaled dot-product attention o = softmax(q·kᵀ/√dk)·v of ``heads`` query heads over the L = H·W positions
    of ``query`` (h·dk, H, W), against ``keys`` = P key/value positions with ``kv_heads`` key and value heads
    (multi-query: 1, shared by every query head; MHSA: h).

    No params; MACs = N·h·L·P·(dk + dv) (q·kᵀ: h·L·P·dk, attention·v: h·L·P·dv) — what FlopCounterMode's
    sdpa formula gives (CUDA's flash / efficient / cudnn kernels; the meta device; the bmm / matmul of the
    unfused path), *not* what it gives on the CPU, where F.scaled_dot_product_attention dispatches to
    ``aten._scaled_dot_product_flash_attention_for_cpu``, which torch 2.14 has no formula for (0; see
    docs/conventions.md). FLOPs = 2·MACs + 6·N·h·L·P (scale and softmax per logit). Output (h·dv, H, W).
    """
    _, h, w = query
    positions = h * w
    logits = n * heads * positions * keys
    macs = logits * (key_dim + value_dim)
    detail = f"{'mqa' if kv_heads == 1 else 'mhsa'} h{heads} {h}×{w}·{keys} d{key_dim}"
    return Op(
        "attention",
        detail + (f" v{value_dim}" if value_dim != key_dim else ""),
        _costs(0, 0, macs, 2 * macs + ATTENTION_SOFTMAX_FLOPS * logits),
        query,
        (heads * value_dim, h, w),
        "attention",
        attrs={"heads": heads, "keys": keys, "key_dim": key_dim, "value_dim": value_dim, "kv_heads": kv_heads},
        saves=("attention",) if kv_heads == 1 else None,  # MHSA's training memory is not modelled (refused)
    )


def rmsnorm2d(inp: Shape, n: Num, groups: Num = 1, act: bool = False) -> Op:
    """RMSNorm over the channels at each position (timm RmsNorm2d, MobileNetV5's norm):
    y = x / √(mean_c(x²) + ε) · γ. params γ = C (no β); no buffers; no MACs (FlopCounterMode counts none of its
    pow, mean, rsqrt and multiplies); FLOPs 4 per element (square, sum, normalize, scale) + 3 per position
    (divide by C, add ε, rsqrt). Its statistics come from the input, so it does not fold into the conv before it.
    """
    c, h, w = inp
    flops = 4 * n * numel(inp) + 3 * n * h * w
    return Op("rmsnorm2d", f"{c}", _costs(c, 0, 0, flops), inp, inp, "norm", saves=("rms",))


NORMS["rmsnorm"] = rmsnorm2d

if set(NORMS) != set(_names.NORMS):  # one op function per norm of the name table
    raise ImportError(f"norms without an op (or ops of no norm): {sorted(set(NORMS) ^ set(_names.NORMS))}")
