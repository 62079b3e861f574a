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
  silu 5, hardsigmoid 4 (add, max, min, divide), hardswish 5, global average pool 1 per input
  element, residual add and SE multiply 1. Dropout and flatten cost nothing at inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .symbols import Num, floordiv

Shape = tuple[Num, ...]  # (C, H, W) for feature maps, (F,) after a linear layer


def numel(shape: Shape) -> Num:
    """Elements of one sample of this shape."""
    total: Num = 1
    for s in shape:
        total = total * s
    return total


#: FLOPs per element of each activation (and gate), under the costmodel convention.
ACTIVATION_FLOPS: dict[str, int] = {
    "relu": 1,  # max(x, 0)
    "relu6": 2,  # min(max(x, 0), 6)
    "sigmoid": 4,  # 1 / (1 + exp(-x)): neg, exp, add, divide
    "silu": 5,  # x · sigmoid(x)
    "hardsigmoid": 4,  # min(max(x + 3, 0), 6) / 6: add, max, min, divide
    "hardswish": 5,  # x · hardsigmoid(x)
}

BN_FLOPS_PER_ELEMENT = 2  # inference BatchNorm folds to a·x + b


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
    variant: str = ""  # how the op is implemented, where counters tell them apart (pool: module/functional/mean)
    state: Num = 0
    folds: bool = False
    attrs: dict[str, Num] = field(default_factory=dict)  # conv: kernel, stride, groups


def _costs(params: Num, buffers: Num, macs: Num, flops: Num) -> dict[str, Num]:
    return {"params": params, "buffers": buffers, "macs": macs, "flops": flops}


def spatial_out(size: Num, stride: Num) -> Num:
    """Output size of an odd kernel with same padding p = k//2: floor((H + 2p − k)/s) + 1 = floor((H − 1)/s) + 1.

    With an odd kernel, 2p − k = −1 whatever k is, so the kernel drops out (a symbolic kernel is taken
    as odd). This is what torch computes for odd sizes and stride 2 too.
    """
    if isinstance(stride, int) and stride == 1:
        return size
    return floordiv(size - 1, stride) + 1


def conv2d(
    inp: Shape,
    n: Num,
    out_channels: Num,
    kernel: Num,
    stride: Num = 1,
    groups: Num = 1,
    bias: bool = False,
    kernel_w: Num | None = None,
) -> Op:
    """kh×kw convolution with ``groups``, same padding (kh//2, kw//2); kw = ``kernel_w``, default kh (square).

    params = Cout·(Cin/g)·kh·kw (+ Cout bias); MACs = N·Cout·Ho·Wo·(Cin/g)·kh·kw (each output sums
    Cin/g·kh·kw products); FLOPs = 2·MACs (+ N·Cout·Ho·Wo bias adds). Odd kh and kw keep Ho, Wo as in
    :func:`spatial_out` (GhostNetV2's (1, 5) and (5, 1) depthwise convs).
    """
    c, h, w = inp
    kw = kernel if kernel_w is None else kernel_w
    ho, wo = spatial_out(h, stride), spatial_out(w, stride)
    per_out = (c // groups if isinstance(c, int) and isinstance(groups, int) else c / groups) * kernel * kw
    weights = out_channels * per_out
    macs = n * out_channels * ho * wo * per_out
    flops = 2 * macs + (n * out_channels * ho * wo if bias else 0)
    kind = "" if groups == 1 else ("dw " if groups == c else f"g{groups} ")
    detail = f"{kernel}×{kw} {kind}{c}→{out_channels}" + (f" s{stride}" if stride != 1 else "")
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
    )


NORMS: dict[str, Callable[[Shape, Num], Op]] = {"batchnorm": batchnorm2d}
"""One op per norm a layer's ``norm`` can name (``none``: no op)."""


def norm(name: str, inp: Shape, n: Num) -> Op:
    """The norm op called ``name`` on ``inp``."""
    return NORMS[name](inp, n)


def activation(inp: Shape, n: Num, name: str) -> Op:
    """An elementwise activation or gate: no params, no MACs; FLOPs = ACTIVATION_FLOPS[name] per element."""
    return Op(name, "", _costs(0, 0, 0, ACTIVATION_FLOPS[name] * n * numel(inp)), inp, inp, "act")


def global_avgpool(inp: Shape, n: Num, implementation: str = "module") -> Op:
    """Global average pool to C×1×1: no MACs; FLOPs = one add-or-divide per input element (N·C·H·W)."""
    c, h, w = inp
    return Op("avgpool", f"{h}×{w}→1×1", _costs(0, 0, 0, n * c * h * w), inp, (c, 1, 1), "pool", variant=implementation)


def add(inp: Shape, n: Num, detail: str = "") -> Op:
    """Elementwise add of two same-shape tensors (the residual): FLOPs = N·C·H·W."""
    return Op("add", detail, _costs(0, 0, 0, n * numel(inp)), inp, inp, "add")


def mul(inp: Shape, n: Num, detail: str = "") -> Op:
    """Elementwise multiply by a broadcast C×1×1 gate (SE's scale): FLOPs = N·C·H·W."""
    return Op("mul", detail, _costs(0, 0, 0, n * numel(inp)), inp, inp, "mul")


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
    )


def dropout(inp: Shape, n: Num, p: float) -> Op:
    """Dropout: the identity at inference; no params, MACs or FLOPs."""
    return Op("dropout", f"p={p:g}", _costs(0, 0, 0, 0), inp, inp, "dropout")


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
    return Op("concat", detail, _costs(0, 0, 0, 0), (total, h, w), (out, h, w), "concat")


def avgpool2d(inp: Shape, n: Num, kernel: int, stride: int) -> Op:
    """Local k×k average pool, stride s, no padding: Ho = floor((H − k)/s) + 1; FLOPs = N·C·Ho·Wo·k²
    (k² − 1 adds and a divide per output). FlopCounterMode counts no MACs (GhostNetV2's F.avg_pool2d(x, 2, 2))."""
    c, h, w = inp
    ho, wo = floordiv(h - kernel, stride) + 1, floordiv(w - kernel, stride) + 1
    return Op(
        "avgpool2d",
        f"{kernel}×{kernel} s{stride}",
        _costs(0, 0, 0, n * c * ho * wo * kernel * kernel),
        inp,
        (c, ho, wo),
        "pool",
    )


def upsample(inp: Shape, n: Num, size: tuple[Num, Num]) -> Op:
    """Nearest-neighbour resize to ``size`` (F.interpolate mode='nearest'): a gather, no FLOPs or MACs."""
    c, h, w = inp
    return Op("upsample", f"{h}×{w}→{size[0]}×{size[1]}", _costs(0, 0, 0, 0), inp, (c, size[0], size[1]), "upsample")


def layer_scale(inp: Shape, n: Num) -> Op:
    """LayerScale: x · γ with a learnable γ per channel: params C; FLOPs N·C·H·W; no MACs (an elementwise mul,
    which FlopCounterMode does not count)."""
    return Op("layer_scale", f"{inp[0]}", _costs(inp[0], 0, 0, n * numel(inp)), inp, inp, "mul")
