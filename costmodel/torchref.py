"""Spec → equivalent ``torch.nn.Module``, for tests and for users who want to verify a count.

Needs the optional extra (``pip install 'costmodel[torch]'``). This module is written from the
spec format's rules directly, with plain torch layers, and shares no counting code with the engine:
what torch says about the module it builds is an independent check of the engine.

    >>> from costmodel import load
    >>> from costmodel.torchref import build, measure
    >>> measure(load("specs/seed_mbconv.yaml"))["params"]
    408
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from .engine.kinds import KINDS
from .engine.kinds import resolve as _part
from .errors import UsageError
from .spec import NetworkSpec, se_ratio, symbol_uses
from .spec.layers_graph import OPS as GRAPH_OPS
from .spec.names import ACTIVATIONS, NORMS
from .spec.scaling import make_divisible, resolve

_ACT: dict[str, Any] = {
    name: functools.partial(getattr(nn, a.torch), **dict(a.torch_kwargs)) if a.torch_kwargs else getattr(nn, a.torch)
    for name, a in ACTIVATIONS.items()
}
"""The torch module of each activation and gate (spec/names.py ACTIVATIONS: its ``torch.nn`` class)."""


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an N×C×H×W map (timm's LayerNorm2d): γ, β of C each."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _group_std(x: torch.Tensor, groups: int, eps: float = 1e-5) -> torch.Tensor:
    b, c, h, w = x.shape
    xg = x.reshape(b, groups, c // groups, h, w)
    std = xg.var(dim=(2, 3, 4), unbiased=False, keepdim=True).add(eps).sqrt()
    return std.expand(xg.shape).reshape(b, c, h, w)


class EvoNormS0(nn.Module):
    """EvoNorm-S0 (timm EvoNorm2dS0): x·σ(v·x) / std over channel groups · γ + β; params γ, β, v (3C); without
    its nonlinearity (apply_act=False) x·γ + β (2C)."""

    def __init__(self, channels: int, groups: int, apply_act: bool = True) -> None:
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels)) if apply_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        y = x  # timm's apply_act=False: the affine alone
        if self.v is not None:
            y = x * (x * self.v.view(shape)).sigmoid() / _group_std(x, self.groups)
        return y * self.weight.view(shape) + self.bias.view(shape)


class EvoNormB0(nn.Module):
    """EvoNorm-B0 (timm EvoNorm2dB0), inference form: x / max(√(running_var + ε), v·x + instance std) · γ + β;
    params γ, β, v (3C); buffer running_var (C)."""

    def __init__(self, channels: int, apply_act: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels)) if apply_act else None
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        running_var: torch.Tensor = self.running_var  # type: ignore[assignment]
        y = x  # timm's apply_act=False: the affine alone
        if self.v is not None:
            left = running_var.view(shape).add(1e-5).sqrt()
            y = x / left.max(x * self.v.view(shape) + _group_std(x, x.shape[1]))
        return y * self.weight.view(shape) + self.bias.view(shape)


class RmsNorm2d(nn.Module):
    """RMSNorm over the channels at each position (timm's RmsNorm2d): x / √(mean_c(x²) + ε) · γ, γ of C."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)
        return y * self.weight.view(1, -1, 1, 1)


def _norm(name: str, channels: int, cfg: _Cfg, act: bool = False) -> nn.Module:
    """The norm module ``name`` on ``channels`` (groups from the spec's defaults, as the engine takes them)."""
    if name == "batchnorm":
        return nn.BatchNorm2d(channels)
    if name == "layernorm":
        return LayerNorm2d(channels)
    if name == "evonorm_b0":
        return EvoNormB0(channels, act)
    if name == "rmsnorm":
        return RmsNorm2d(channels)
    groups = channels // cfg.norm_group_size if cfg.norm_group_size else (cfg.norm_groups or 32)
    if name == "groupnorm":
        return nn.GroupNorm(groups, channels)
    if name == "evonorm_s0":
        return EvoNormS0(channels, groups, act)
    raise UsageError(f"torchref has no module for the norm {name!r}")  # a norm of spec/names.py missed here


_NORM: dict[str, Any] = {
    "batchnorm": nn.BatchNorm2d,
    "groupnorm": nn.GroupNorm,
    "layernorm": LayerNorm2d,
    "evonorm_s0": EvoNormS0,
    "evonorm_b0": EvoNormB0,
    "rmsnorm": RmsNorm2d,
}
"""The torch module of each norm name (built by ``_norm`` with its groups)."""

if set(_NORM) != set(NORMS):  # one module per norm of the name table (spec/names.py)
    raise ImportError(f"torchref: norms without a module (or modules of no norm): {sorted(set(_NORM) ^ set(NORMS))}")


def _act(name: str) -> nn.Module:
    return nn.Identity() if name == "none" else _ACT[name]()


class Conv2dSame(nn.Conv2d):
    """A conv with TensorFlow 'SAME' padding (timm's Conv2dSame): out = ceil(H/s); the total pad
    max((out − 1)s + d(k − 1) + 1 − H, 0) is split with the extra pixel at the bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        dims = zip(x.shape[2:], self.kernel_size, self.stride, self.dilation, strict=True)
        for size, k, s, d in reversed(list(dims)):
            out = -(-int(size) // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - int(size), 0)
            pads += [total // 2, total - total // 2]
        return nn.functional.conv2d(
            nn.functional.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
        )


class BlurPool(nn.Module):
    """timm's BlurPool2d: the fixed 3×3 binomial filter ([1, 2, 1]ᵀ[1, 2, 1] / 16) as a C×1×3×3 buffer, applied
    depthwise at the stride after reflect-padding ((s − 1) + 2) // 2 (timm's get_padding(3, s))."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        c = torch.tensor([1.0, 2.0, 1.0]) / 4
        self.register_buffer("filt", (c[:, None] * c[None, :]).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = (self.stride - 1 + 2) // 2
        padded = nn.functional.pad(x, [p, p, p, p], mode="reflect")
        filt: torch.Tensor = self.filt  # type: ignore[assignment]
        return nn.functional.conv2d(padded, filt, stride=self.stride, groups=x.shape[1])


class _Cfg:
    """What a torch builder reads besides its layer: the layer's activation, norm and bias after the spec's
    defaults, the norm groups, and ``channels``, the output channels of each earlier named layer."""

    def __init__(self, layer: Any, spec: NetworkSpec, channels: dict[str, int] | None = None) -> None:
        d = spec.defaults
        self.channels: dict[str, int] = {} if channels is None else channels
        self.act: str = getattr(layer, "activation", None) or d.activation
        self.norm: str = getattr(layer, "norm", None) or d.norm
        bias = getattr(layer, "bias", None)
        self.bias: bool = d.bias if bias is None else bias
        self.norm_groups: int | None = d.norm_groups
        self.norm_group_size: int | None = d.norm_group_size
        #: a dry run of the modules built so far: (their output at batch 1, the named outputs); set by build
        self.probe: Any = None


def conv_bn_act(
    cfg: _Cfg,
    cin: int,
    cout: int,
    k: int,
    s: int = 1,
    g: int = 1,
    act: bool = True,
    *,
    padding: int | str | None = None,
    dilation: int = 1,
    aa: str | None = None,
    activation: str | None = None,
) -> nn.Sequential:
    """Conv2d (padding d(k − 1)/2, or ``padding``: same → Conv2dSame, valid → 0, N) → norm (if any) → activation
    (if act; ``activation`` overrides the layer's) → [blur pool / nn.AvgPool2d(s) at the stride, with ``aa``
    and s > 1, the conv then at stride 1]."""
    anti = aa is not None and s > 1
    cs = 1 if anti else s
    conv: nn.Module
    static = cs == 1 and dilation * (k - 1) % 2 == 0  # timm's is_static_pad: 'same' is then plain symmetric padding
    if padding == "same" and not static:
        conv = Conv2dSame(cin, cout, k, cs, 0, dilation, groups=g, bias=cfg.bias)
    else:
        p = dilation * (k - 1) // 2 if padding in (None, "same") else (0 if padding == "valid" else int(padding))
        conv = nn.Conv2d(cin, cout, k, cs, p, dilation, groups=g, bias=cfg.bias)
    mods: list[nn.Module] = [conv]
    name = cfg.act if activation is None else activation
    with_act = act and name != "none"
    if cfg.norm != "none":
        mods.append(_norm(cfg.norm, cout, cfg, with_act))
        with_act = with_act and not cfg.norm.startswith("evonorm")  # EvoNorm is the activation too
    if with_act:
        mods.append(_act(name))
    if anti:
        mods.append(BlurPool(cout, s) if aa == "blur" else nn.AvgPool2d(s))
    return nn.Sequential(*mods)


def _kxk(layer: Any) -> dict[str, Any]:
    return {"padding": layer.padding, "dilation": layer.dilation, "aa": layer.aa}


class SqueezeExcite(nn.Module):
    """avgpool → 1×1 conv(bias) → act → 1×1 conv(bias) → gate → x · gate."""

    def __init__(self, channels: int, squeeze: int, act: str, gate: str, bias: bool = True) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1, bias=bias)
        self.act = _act(act)
        self.fc2 = nn.Conv2d(squeeze, channels, 1, bias=bias)
        self.gate = _act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale: torch.Tensor = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * scale


def _se(layer: Any, cfg: _Cfg, channels: int, block_in: int) -> nn.Module:
    if layer.se_channels is not None:
        squeeze = int(layer.se_channels)
    else:
        ratio = se_ratio(layer.se)
        base = block_in if layer.se_base == "input" else channels
        if layer.se_round == "round":
            exact = base * ratio.numerator / ratio.denominator
            squeeze = max(1, round(exact)) if not layer.se_divisor else 0
        else:
            exact = squeeze = base * ratio.numerator // ratio.denominator
        if layer.se_divisor:
            squeeze = make_divisible(exact, layer.se_divisor, round_limit=layer.se_round_limit)
        else:
            squeeze = max(1, squeeze)
    return SqueezeExcite(channels, squeeze, layer.se_activation or cfg.act, layer.se_gate, layer.se_bias)


def _expanded(layer: Any, cin: int) -> int:
    if layer.expanded_channels is not None:
        return int(layer.expanded_channels)
    e = cin * layer.expansion
    return make_divisible(e, layer.expanded_divisor) if layer.expanded_divisor else int(e)


class _Pool(nn.Module):
    """Global average pooling the way the reference model does it (module, functional or mean)."""

    def __init__(self, implementation: str) -> None:
        super().__init__()
        self.implementation = implementation
        self.pool = nn.AdaptiveAvgPool2d(1) if implementation == "module" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            out: torch.Tensor = self.pool(x)
            return out
        if self.implementation == "functional":
            return nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return x.mean((2, 3), keepdim=True)


class Block(nn.Module):
    """body(x) (+ shortcut(x)) (→ post activation)."""

    def __init__(
        self,
        body: nn.Module,
        residual: bool,
        shortcut: nn.Module | None = None,
        post: nn.Module | None = None,
    ):
        super().__init__()
        self.body = body
        self.residual = residual
        self.shortcut = shortcut
        self.post = post
        self.drop_path = 0.0  # the spec's drop_path p of this block (build sets it): x · noise / (1 − p) in train mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        if self.residual:
            if self.training and self.drop_path > 0:  # torchvision's stochastic_depth(mode="row"), timm's drop_path
                keep = 1.0 - self.drop_path
                noise = out.new_empty((out.shape[0],) + (1,) * (out.ndim - 1)).bernoulli_(keep).div_(keep)
                out = out * noise
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        if self.post is not None:
            out = self.post(out)
        return out


def _residual(setting: Any, stride: int, cin: int, cout: int) -> bool:
    shape_kept = stride == 1 and cin == cout
    if setting == "auto":
        return shape_kept
    if setting and not shape_kept:
        raise UsageError("residual: true with a shape change")
    return bool(setting)


def _block(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    """The module of ``layer`` and its output channels, from its kind's registered torch builder."""
    entry = KINDS.get(layer.kind)
    if entry is None or entry.torch is None:
        raise UsageError(f"torchref cannot build kind {layer.kind!r}: register it with a torch= builder")
    built: tuple[nn.Module, int] = _part(entry.torch)(layer, cfg, cin, stride)
    return built


# ------------------------------------------------------------------- the builders of the core kinds
# Each is ``(layer, cfg, cin, stride) -> (module, out channels)``, registered in engine/kinds.py.


def _pool(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return _Pool(layer.implementation), cin


def _dropout(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return nn.Dropout(layer.p), cin


def _linear(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    head: list[nn.Module] = [nn.Flatten(1), nn.Linear(cin, layer.out_features, bias=layer.bias)]
    if layer.activation != "none":
        head.append(_act(layer.activation))
    return nn.Sequential(*head), layer.out_features


def _conv(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    return conv_bn_act(cfg, cin, cout, layer.kernel, stride, layer.groups, **_kxk(layer)), cout


def _dwsep(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mods: list[nn.Module] = [conv_bn_act(cfg, cin, cin, layer.kernel, stride, cin, **_kxk(layer))]
    if layer.has_se:
        mods.append(_se(layer, cfg, cin, cin))
    mods.append(conv_bn_act(cfg, cin, cout, 1, activation=layer.pw_activation))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


def _basic(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    k: int = layer.kernel
    resnet = bool(layer.resnet)
    body = nn.Sequential(
        conv_bn_act(cfg, cin, cout, k, stride, **_kxk(layer)),
        conv_bn_act(cfg, cout, cout, k, padding=layer.padding, dilation=layer.dilation, act=not resnet),
    )
    if resnet:  # ResNet's BasicBlock: act(body(x) + shortcut(x))
        shortcut = None if stride == 1 and cin == cout else conv_bn_act(cfg, cin, cout, 1, stride, act=False)
        return Block(body, True, shortcut, _act(cfg.act)), cout
    return Block(body, _residual(layer.residual, stride, cin, cout)), cout


def _mbconv(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mid = _expanded(layer, cin)
    mods: list[nn.Module] = []
    if mid != cin or layer.expand_always:
        mods.append(conv_bn_act(cfg, cin, mid, 1))
    groups = mid // layer.group_size if layer.group_size else mid
    mods.append(conv_bn_act(cfg, mid, mid, layer.kernel, stride, groups, **_kxk(layer)))
    if layer.has_se:
        mods.append(_se(layer, cfg, mid, cin))
    mods.append(conv_bn_act(cfg, mid, cout, 1, act=False))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


def _fused_mbconv(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    k: int = layer.kernel
    mid = _expanded(layer, cin)
    groups = mid // layer.group_size if layer.group_size else 1  # of the expanded width (timm's EdgeResidual)
    mods: list[nn.Module]
    if mid == cin and not layer.keep_projection:
        mods = [conv_bn_act(cfg, cin, cout, k, stride, groups, **_kxk(layer))]
        if layer.has_se:
            mods.append(_se(layer, cfg, cout, cin))
    else:
        mods = [conv_bn_act(cfg, cin, mid, k, stride, groups, **_kxk(layer))]
        if layer.has_se:
            mods.append(_se(layer, cfg, mid, cin))
        mods.append(conv_bn_act(cfg, mid, cout, 1, act=False))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


def _bottleneck(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mid = layer.mid_channels if layer.mid_channels is not None else cout // 4
    body = nn.Sequential(
        conv_bn_act(cfg, cin, mid, 1),
        conv_bn_act(cfg, mid, mid, layer.kernel, stride, **_kxk(layer)),
        conv_bn_act(cfg, mid, cout, 1, act=False),
    )
    shortcut = None if stride == 1 and cin == cout else conv_bn_act(cfg, cin, cout, 1, stride, act=False)
    return Block(body, True, shortcut, _act(cfg.act)), cout


def _spatial(blocks: list[nn.Module], names: list[str | None], inp: Any) -> int:
    """H·W of the tensor the modules built so far produce (a dry run on a zero input)."""
    with torch.no_grad():
        y = Network(blocks, names).eval()(torch.zeros(1, inp.channels, inp.height, inp.width))
    return int(math.prod(y.shape[2:]))


class Concat(nn.Module):
    """Channel concat of earlier named outputs (the ``concat`` kind): each input with a smaller H or W is
    resized to the first one's with F.interpolate(mode), then torch.cat(dim=1)."""

    def __init__(self, inputs: list[str], mode: str) -> None:
        super().__init__()
        self.inputs = list(inputs)
        self.mode = mode

    def forward(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        xs = [outputs[name] for name in self.inputs]
        size = xs[0].shape[-2:]
        xs = [
            nn.functional.interpolate(x, size=size, mode=self.mode)
            if x.shape[-2] < size[0] or x.shape[-1] < size[1]
            else x
            for x in xs
        ]
        return torch.cat(xs, dim=1)


class Resize(nn.Module):
    """The ``resize`` kind: avg = F.avg_pool2d(k = H/h, stride k); bilinear / nearest = F.interpolate;
    timm = nothing at size, avg when divisible, else bilinear (MobileNetV5's adapter)."""

    def __init__(self, size: tuple[int, int], mode: str) -> None:
        super().__init__()
        self.size = size
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        th, tw = self.size
        mode = self.mode
        if mode == "timm":
            if (h, w) == (th, tw):
                return x
            mode = "avg" if h % th == 0 and w % tw == 0 else "bilinear"
        if mode == "avg":
            k = (h // th, w // tw)
            return nn.functional.avg_pool2d(x, kernel_size=k, stride=k)
        return nn.functional.interpolate(x, size=(th, tw), mode=mode)


class Network(nn.Module):
    """The blocks in order, keeping each named block's output for the concat blocks that read it."""

    def __init__(self, blocks: list[nn.Module], names: list[str | None]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.names = list(names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: dict[str, torch.Tensor] = {}
        for block, name in zip(self.blocks, self.names, strict=True):
            x = _call(block, x, outputs)
            if name is not None:
                outputs[name] = x
        return x


def _call(block: nn.Module, x: torch.Tensor, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """One block of a Network on the running tensor ``x`` (a concat: on the named outputs; a graph: on both)."""
    if isinstance(block, Concat):
        return block(outputs)  # type: ignore[no-any-return]
    if isinstance(block, GraphModule):
        return block(x, outputs)  # type: ignore[no-any-return]
    return block(x)  # type: ignore[no-any-return]


def _concat(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return Concat(layer.inputs, layer.resize), sum(cfg.channels[name] for name in layer.inputs)


def _resize(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return Resize(layer.hw(), layer.mode), cin


def _norm_kind(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return _norm(cfg.norm, cin, cfg), cin


def _maxpool(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    k: int = layer.kernel
    return nn.MaxPool2d(k, layer.stride if layer.stride is not None else k, layer.padding), cin


def _flatten(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return nn.Flatten(1), cin


def build(spec: NetworkSpec) -> tuple[nn.Module, tuple[int, int, int, int]]:
    """The torch module equivalent to ``spec`` and the input shape (N, C, H, W) it takes (an
    nn.Sequential, or a :class:`Network` keeping named outputs when the spec has a concat or a graph)."""
    uses = symbol_uses(spec)
    if uses:
        path, name = uses[0]
        raise UsageError(f"{'.'.join(map(str, path))} is the symbol {name!r}: bind it before building a torch module")
    spec = resolve(spec)
    blocks: list[nn.Module] = []
    names: list[str | None] = []
    channels: dict[str, int] = {}
    inp: Any = spec.input  # every integer field is an int here (checked above)
    c: int = inp.channels
    flat = False
    probe = _Probe(blocks, names, inp)  # what a graph layer reads, for its weights' shapes
    dropped: list[nn.Module] = []  # the blocks drop_path counts (layers with a residual field, repeats expanded)
    for layer in spec.layers:
        if type(layer).flattens and not flat:
            c = c * _spatial(blocks, names, inp)  # Flatten: the linear layer sees C·H·W features
            flat = True
        cfg = _Cfg(layer, spec, channels)
        cfg.probe = probe
        lay: Any = layer
        for r in range(getattr(lay, "repeat", 1)):
            block, c = _block(layer, cfg, c, getattr(lay, "stride", 1) if r == 0 else 1)
            blocks.append(block)
            names.append(None)
            if "residual" in type(layer).model_fields:
                dropped.append(block)
        if layer.name is not None:
            names[-1] = layer.name
            channels[layer.name] = c
    if spec.drop_path is not None and spec.drop_path.rate > 0:
        for i, block in enumerate(dropped):
            p = spec.drop_path.rate * (i / len(dropped) if spec.drop_path.schedule == "linear" else 1.0)
            if p > 0 and not isinstance(block, Block):
                raise UsageError(f"drop_path on a {type(block).__name__} block is not built yet")
            if isinstance(block, Block):
                block.drop_path = p
    if any(isinstance(b, (Concat, GraphModule)) for b in blocks):
        return Network(blocks, names), (inp.batch, inp.channels, inp.height, inp.width)
    return nn.Sequential(*blocks), (inp.batch, inp.channels, inp.height, inp.width)


def measure(spec: NetworkSpec) -> dict[str, Any]:
    """What torch itself says of the equivalent module.

    params = sum of ``parameters()`` numel; buffers = sum of ``buffers()`` numel; macs =
    ``FlopCounterMode`` total / 2 on one eval-mode forward pass; output = that pass's (C, H, W).
    """
    from torch.utils.flop_counter import FlopCounterMode

    model, shape = build(spec)
    model.eval()
    x = torch.zeros(shape)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(x)
    flops = counter.get_total_flops()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "buffers": sum(b.numel() for b in model.buffers()),
        "macs": flops // 2,
        "macs_exact_half": flops % 2 == 0,
        "output": tuple(y.shape[1:]),
    }


# ----------------------------------------------------------------------------------- the zoo's kinds


def _split(c: int, g: int) -> list[int]:
    """timm's _split_channels: g equal parts, the first taking the remainder."""
    parts = [c // g] * g
    parts[0] += c - sum(parts)
    return parts


class MixedConv(nn.Module):
    """Channels split into groups, one conv per group (kernel kᵢ, padding kᵢ//2), outputs concatenated."""

    def __init__(self, cin: int, cout: int, kernels: list[int], stride: int, depthwise: bool, bias: bool) -> None:
        super().__init__()
        self.splits = _split(cin, len(kernels))
        outs = _split(cout, len(kernels))
        self.convs = nn.ModuleList(
            nn.Conv2d(ci, co, k, stride, k // 2, groups=ci if depthwise else 1, bias=bias)
            for k, ci, co in zip(kernels, self.splits, outs, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = torch.split(x, self.splits, 1)
        return torch.cat([c(xi) for c, xi in zip(self.convs, xs, strict=True)], 1)


def _mixed_bn_act(cfg: _Cfg, cin: int, cout: int, kernels: list[int], s: int, dw: bool, act: bool) -> nn.Module:
    return nn.Sequential(MixedConv(cin, cout, kernels, s, dw, cfg.bias), *_norm_act(cfg, cout, act))


def _norm_act(cfg: _Cfg, c: int, act: bool) -> list[nn.Module]:
    """norm → activation after a conv, as conv_bn_act puts them: the spec's norm groups; EvoNorm is the
    activation too."""
    mods: list[nn.Module] = []
    with_act = act and cfg.act != "none"
    if cfg.norm != "none":
        mods.append(_norm(cfg.norm, c, cfg, with_act))
        with_act = with_act and not cfg.norm.startswith("evonorm")
    if with_act:
        mods.append(_act(cfg.act))
    return mods


def _mixconv(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mid = _expanded(layer, cin)
    mods: list[nn.Module] = []
    if mid != cin:
        mods.append(_mixed_bn_act(cfg, cin, mid, [1] * layer.expansion_groups, 1, False, True))
    mods.append(_mixed_bn_act(cfg, mid, mid, list(layer.kernels), stride, True, True))
    if layer.has_se:
        mods.append(_se(layer, cfg, mid, cin))
    mods.append(_mixed_bn_act(cfg, mid, cout, [1] * layer.projection_groups, 1, False, False))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


def _bn(cfg: _Cfg, c: int) -> nn.Module:
    return _norm(cfg.norm, c, cfg) if cfg.norm != "none" else nn.Identity()


class RepConv(nn.Module):
    """A re-parameterisable conv: train — ``branches`` k×k conv (no bias) → BN, [1×1 conv → BN], [BN of the
    input], summed; deploy — one k×k conv with bias. Then the activation (``act``)."""

    def __init__(
        self, cin: int, cout: int, k: int, s: int, g: int, branches: int, scale: bool, identity: bool, act: str,
        deploy: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.fused = nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=True) if deploy else None
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout))
            for _ in range(0 if deploy else branches)
        )
        if scale and not deploy:
            self.convs.append(nn.Sequential(nn.Conv2d(cin, cout, 1, s, 0, groups=g, bias=False), nn.BatchNorm2d(cout)))
        self.skip = nn.BatchNorm2d(cin) if identity and not deploy else None
        self.act = _act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            out: torch.Tensor = self.fused(x)
        else:
            out = sum((c(x) for c in self.convs), self.skip(x) if self.skip is not None else torch.zeros(()))
        return self.act(out)  # type: ignore[no-any-return]


class GhostModule(nn.Module):
    """GhostNet's module: primary conv to ceil(out/ratio), cheap grouped conv on it, cat, keep ``out``;
    with ``dfc``, × sigmoid(DFC(avgpool 2×2 of the input)) upsampled (GhostNetV2); with ``rep`` branches
    (GhostNetV3) both convs are :class:`RepConv` (the cheap one with a 1×1 scale and a BN identity branch)."""

    def __init__(
        self, cfg: _Cfg, cin: int, cout: int, k: int, ratio: int, dw: int, stride: int, act: bool, dfc: bool,
        rep: int | None = None, deploy: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        init = -(-cout // ratio)
        self.cout = cout
        self.primary: nn.Module
        self.cheap: nn.Module
        if rep is not None:
            a = cfg.act if act else "none"
            self.primary = RepConv(cin, init, k, stride, 1, rep, False, False, a, deploy)
            self.cheap = RepConv(init, init, dw, 1, init, rep, True, True, a, deploy)
        else:
            self.primary = conv_bn_act(cfg, cin, init, k, stride, act=act)
            self.cheap = conv_bn_act(cfg, init, init * (ratio - 1), dw, 1, init, act=act)
        self.short: nn.Module | None = None
        if dfc:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, k, stride, k // 2, bias=cfg.bias),
                _bn(cfg, cout),
                nn.Conv2d(cout, cout, (1, 5), 1, (0, 2), groups=cout, bias=cfg.bias),
                _bn(cfg, cout),
                nn.Conv2d(cout, cout, (5, 1), 1, (2, 0), groups=cout, bias=cfg.bias),
                _bn(cfg, cout),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary(x)
        out = torch.cat([x1, self.cheap(x1)], 1)[:, : self.cout]
        if self.short is None:
            return out
        gate = torch.sigmoid(self.short(nn.functional.avg_pool2d(x, 2, 2)))
        return out * nn.functional.interpolate(gate, size=out.shape[-2:], mode="nearest")


def _ghost(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    dfc = layer.attention == "dfc"
    rep = (layer.rep_branches, layer.form == "deployed")
    k, d = layer.kernel, layer.dw_kernel
    mod = GhostModule(cfg, cin, cout, k, layer.ratio, d, stride, layer.activation_cheap, dfc, *rep)
    return mod, cout


def _ghost_bottleneck(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mid: int = layer.mid_channels
    k: int = layer.kernel
    rep = (layer.rep_branches, layer.form == "deployed")
    mods: list[nn.Module] = [
        GhostModule(cfg, cin, mid, 1, layer.ratio, layer.dw_kernel, 1, True, layer.attention == "dfc", *rep)
    ]
    if stride > 1 and layer.rep_branches is not None:
        mods.append(RepConv(mid, mid, k, stride, mid, layer.rep_branches, True, False, "none", rep[1]))
    elif stride > 1:
        mods.append(conv_bn_act(cfg, mid, mid, k, stride, mid, act=False))
    if layer.has_se:
        mods.append(_se(layer, cfg, mid, cin))
    mods.append(GhostModule(cfg, mid, cout, 1, layer.ratio, layer.dw_kernel, 1, False, False, *rep))
    shortcut = None
    if stride > 1 or cin != cout:
        shortcut = nn.Sequential(
            conv_bn_act(cfg, cin, cin, k, stride, cin, act=False), conv_bn_act(cfg, cin, cout, 1, act=False)
        )
    return Block(nn.Sequential(*mods), True, shortcut), cout


class LayerScale(nn.Module):
    """x · γ, γ a learnable vector of C."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((c,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


def _uir(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    if layer.expanded_channels is not None:
        mid = int(layer.expanded_channels)
    else:
        mid = make_divisible(cin * layer.expansion, 8)
    mods: list[nn.Module] = []
    if layer.start_kernel:
        s = stride if not layer.mid_kernel else 1
        mods.append(conv_bn_act(cfg, cin, cin, layer.start_kernel, s, cin, act=False, aa=layer.aa))
    mods.append(conv_bn_act(cfg, cin, mid, 1))
    if layer.mid_kernel:
        mods.append(conv_bn_act(cfg, mid, mid, layer.mid_kernel, stride, mid, aa=layer.aa))
    mods.append(conv_bn_act(cfg, mid, cout, 1, act=False))
    if layer.layer_scale:
        mods.append(LayerScale(cout))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


class CondConv(nn.Module):
    """Conv with ``experts`` expert weights mixed per sample (timm's CondConv2d): w = r @ experts, then one conv
    with groups N·g on the (1, N·Cin, H, W) reshaped input."""

    def __init__(self, cin: int, cout: int, k: int, s: int, g: int, bias: bool, experts: int) -> None:
        super().__init__()
        self.shape = (cout, cin // g, k, k)
        self.s, self.g, self.p = s, g, (k - 1) // 2
        self.weight = nn.Parameter(torch.randn(experts, cout * (cin // g) * k * k) * 0.1)
        self.bias = nn.Parameter(torch.zeros(experts, cout)) if bias else None

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weight = torch.matmul(r, self.weight).view(n * self.shape[0], *self.shape[1:])
        bias = torch.matmul(r, self.bias).view(-1) if self.bias is not None else None
        out = nn.functional.conv2d(x.reshape(1, n * c, h, w), weight, bias, self.s, self.p, 1, self.g * n)
        return out.view(n, self.shape[0], out.shape[-2], out.shape[-1])


class CondConvBlock(nn.Module):
    """r = sigmoid(linear(avgpool(x))); CondConv 1×1 → norm-act → CondConv k×k dw → norm-act → [SE] → CondConv
    1×1 → norm (+ x)."""

    def __init__(self, layer: Any, cfg: _Cfg, cin: int, stride: int) -> None:
        super().__init__()
        cout: int = layer.out_channels
        mid = _expanded(layer, cin)
        e = layer.experts
        self.routing = nn.Linear(cin, e)
        self.convs = nn.ModuleList(
            [
                CondConv(cin, mid, 1, 1, 1, cfg.bias, e),
                CondConv(mid, mid, layer.kernel, stride, mid, cfg.bias, e),
                CondConv(mid, cout, 1, 1, 1, cfg.bias, e),
            ]
        )
        self.post = nn.ModuleList(
            nn.Sequential(*_norm_act(cfg, c, act)) for c, act in ((mid, True), (mid, True), (cout, False))
        )
        self.se = _se(layer, cfg, mid, cin) if layer.has_se else nn.Identity()
        self.skip = _residual(layer.residual, stride, cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.sigmoid(self.routing(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)))
        out = x
        for i, (conv, post) in enumerate(zip(self.convs, self.post, strict=True)):
            out = post(conv(out, r))
            if i == 1:
                out = self.se(out)
        return out + x if self.skip else out


def _condconv(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return CondConvBlock(layer, cfg, cin, stride), int(layer.out_channels)


class RepDepthwise(nn.Module):
    """PP-LCNetV2's re-parameterisable depthwise conv: the training form sums depthwise conv-norm branches of
    kernels k, k − 2, …, 1 (no 1×1 at a stride ≠ 1), then the activation; the deployed form is one k×k
    depthwise conv with bias, then the activation."""

    def __init__(self, cfg: _Cfg, c: int, k: int, stride: int, deployed: bool) -> None:
        super().__init__()
        kernels = [k] if deployed else [ki for ki in range(k, 0, -2) if stride == 1 or ki != 1]
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, ki, stride, ki // 2, groups=c, bias=True))
            if deployed
            else conv_bn_act(cfg, c, c, ki, stride, c, act=False)
            for ki in kernels
        )
        self.act = _act(cfg.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return self.act(out)  # type: ignore[no-any-return]


def _rep_dwsep(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mods: list[nn.Module] = [RepDepthwise(cfg, cin, layer.kernel, stride, layer.form == "deployed")]
    if layer.has_se:
        mods.append(_se(layer, cfg, cin, cin))
    if layer.mid_channels is not None:
        mods += [conv_bn_act(cfg, cin, layer.mid_channels, 1), conv_bn_act(cfg, layer.mid_channels, cout, 1)]
    else:
        mods.append(conv_bn_act(cfg, cin, cout, 1))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


class Attention(nn.Module):
    """timm's MobileAttention from the spec rules: norm → multi-query attention (query 1×1 C → h·dk; key and value
    [k×k dw conv (kv_stride, padding ((s − 1) + (k − 1))//2) → norm] → 1×1 to dk / dv) or MHSA (1×1 C → 3C, h
    heads of C/h) → 1×1 output projection → [layer scale] (+ x). The attention runs as explicit matmuls
    (q·kᵀ/√dk, softmax, ·v), which FlopCounterMode counts on every device (the CPU's fused SDPA it does not)."""

    def __init__(self, layer: Any, cfg: _Cfg, cin: int) -> None:
        super().__init__()
        cout: int = layer.out_channels
        self.heads: int = layer.heads
        self.mq: bool = layer.multi_query
        self.norm = self._norm(cfg, cin)
        if self.mq:
            self.dk: int = layer.key_dim
            self.dv: int = layer.value_dim or layer.key_dim
            self.query = nn.Conv2d(cin, self.heads * self.dk, 1, bias=cfg.bias)
            self.key = self._kv(layer, cfg, cin, self.dk)
            self.value = self._kv(layer, cfg, cin, self.dv)
            width = self.heads * self.dv
        else:
            self.dk = self.dv = cin // self.heads
            self.qkv = nn.Conv2d(cin, 3 * cin, 1, bias=cfg.bias)
            width = cin
        self.output = nn.Conv2d(width, cout, 1, bias=cfg.bias)
        self.scale = LayerScale(cout) if layer.layer_scale else nn.Identity()
        self.skip = _residual(layer.residual, 1, cin, cout)

    @staticmethod
    def _norm(cfg: _Cfg, c: int) -> nn.Module:
        return nn.Identity() if cfg.norm == "none" else _norm(cfg.norm, c, cfg)

    @staticmethod
    def _kv(layer: Any, cfg: _Cfg, cin: int, out: int) -> nn.Module:
        s, k = int(layer.kv_stride), int(layer.kv_kernel)
        mods: list[nn.Module] = []
        if s > 1:
            conv = nn.Conv2d(cin, cin, k, s, ((s - 1) + (k - 1)) // 2, groups=cin, bias=False)
            mods += [
                conv,
                nn.Identity() if cfg.norm == "none" else _norm(cfg.norm, cin, cfg, True),
            ]  # timm: norm_layer(C)
        return nn.Sequential(*mods, nn.Conv2d(cin, out, 1, bias=cfg.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        y = self.norm(x)
        if self.mq:
            q = self.query(y).reshape(n, self.heads, self.dk, h * w).transpose(-1, -2)  # N, h, L, dk
            k = self.key(y).flatten(2).unsqueeze(1)  # N, 1, dk, P
            v = self.value(y).flatten(2).transpose(-1, -2).unsqueeze(1)  # N, 1, P, dv
        else:
            q, k, v = self.qkv(y).reshape(n, 3, self.heads, self.dk, h * w).unbind(1)  # N, h, d, L each
            q, v = q.transpose(-1, -2), v.transpose(-1, -2)
        attn = torch.softmax(torch.matmul(q * self.dk**-0.5, k), dim=-1)
        o = torch.matmul(attn, v)  # N, h, L, dv
        o = o.transpose(-1, -2).reshape(n, self.heads * self.dv, h, w)
        out: torch.Tensor = self.scale(self.output(o))
        return out + x if self.skip else out


def _attention(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    return Attention(layer, cfg, cin), int(layer.out_channels)


class RepGhostModule(nn.Module):
    """RepGhostNet's module: x1 = act(BN(k×k conv, Cin → C)); act(BN(d×d dw conv(x1)) [+ BN(x1)]); deploy:
    act(d×d dw conv with bias (x1)) (timm's switch_to_deploy, only with the identity branch)."""

    def __init__(self, cfg: _Cfg, cin: int, cout: int, k: int, d: int, s: int, act: bool, reparam: bool, deploy: bool):
        super().__init__()
        self.primary = conv_bn_act(cfg, cin, cout, k, s, act=act)
        if deploy and reparam:
            self.cheap: nn.Module = nn.Conv2d(cout, cout, d, 1, d // 2, groups=cout, bias=True)
        else:
            self.cheap = nn.Sequential(nn.Conv2d(cout, cout, d, 1, d // 2, groups=cout, bias=False), _bn(cfg, cout))
        self.skip = _bn(cfg, cout) if reparam and not deploy else None
        self.act = _act(cfg.act if act else "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary(x)
        out = self.cheap(x1)
        if self.skip is not None:
            out = out + self.skip(x1)
        return self.act(out)  # type: ignore[no-any-return]


def _repghost(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    deploy = layer.form == "deployed"
    args = (layer.kernel, layer.dw_kernel, stride, layer.activation_cheap, layer.reparam, deploy)
    return RepGhostModule(cfg, cin, cout, *args), cout


def _repghost_bottleneck(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mid: int = layer.mid_channels
    k: int = layer.kernel
    rep = (layer.reparam, layer.form == "deployed")
    mods: list[nn.Module] = [RepGhostModule(cfg, cin, mid, 1, layer.dw_kernel, 1, True, *rep)]
    if stride > 1:
        mods.append(conv_bn_act(cfg, mid, mid, k, stride, mid, act=False))
    if layer.has_se:
        mods.append(_se(layer, cfg, mid, cin))
    mods.append(RepGhostModule(cfg, mid, cout, 1, layer.dw_kernel, 1, False, *rep))
    shortcut = None
    if stride > 1 or cin != cout:
        shortcut = nn.Sequential(
            conv_bn_act(cfg, cin, cin, k, stride, cin, act=False), conv_bn_act(cfg, cin, cout, 1, act=False)
        )
    return Block(nn.Sequential(*mods), True, shortcut), cout


# ------------------------------------------------------------------- op-level graphs (the `graph` kind)
# One small torch function per op of the vocabulary (spec/layers_graph.py OPS), written from torch's own
# functions: a node's weights are created from its input shapes on the dry run at build time (batch 1) and are
# nn.Parameters / buffers of a holder module per node. At batch N a batched tensor's dim 0 holds N × its
# batch-1 size, so literal shapes of batched outputs (reshape, expand, aten) scale their dim 0 by N.


class _GraphCall:
    """What a node's torch function reads besides its inputs: the holder of its weights, whether it may
    create them (the dry run), the batch factor N and whether its output is batched."""

    def __init__(self, hold: nn.Module, create: bool, n: int, batched: bool) -> None:
        self.hold, self.create, self.n, self.batched = hold, create, n, batched

    def param(self, name: str, shape: Any, fill: float = 0.0) -> torch.Tensor:
        if self.create:
            self.hold.register_parameter(name, nn.Parameter(torch.full(tuple(shape), fill)))
        return getattr(self.hold, name)  # type: ignore[no-any-return]

    def buffer(self, name: str, value: torch.Tensor) -> torch.Tensor:
        if self.create:
            self.hold.register_buffer(name, value)
        return getattr(self.hold, name)  # type: ignore[no-any-return]

    def shape(self, shape: Any) -> list[int]:
        """A literal batch-1 shape at batch N: dim 0 × N for a batched output."""
        out = list(shape)
        if self.batched and out and out[0] != -1:
            out[0] *= self.n
        return out


def _tuple(v: Any, d: int) -> tuple[int, ...]:
    return tuple(v) * d if isinstance(v, list) and len(v) == 1 else tuple(v) if isinstance(v, list) else (v,) * d


def _g_conv(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    x = xs[0]
    d = x.dim() - 2
    cin, cout, g = x.shape[1], nd.get("out"), nd.get("groups")
    k = _tuple(nd.get("kernel"), d)
    if len(xs) > 1:
        w = xs[1]
    else:
        w = c.param("weight", (cin, cout // g, *k) if nd.get("transposed") else (cout, cin // g, *k))
    b = xs[2] if len(xs) > 2 else c.param("bias", (cout,)) if nd.get("bias") else None
    s, p, dil = (_tuple(nd.get(f), d) for f in ("stride", "padding", "dilation"))
    if nd.get("transposed"):
        fn = getattr(nn.functional, f"conv_transpose{d}d")
        return fn(x, w, b, s, p, _tuple(nd.get("output_padding"), d), g, dil)  # type: ignore[no-any-return]
    return getattr(nn.functional, f"conv{d}d")(x, w, b, s, p, dil, g)  # type: ignore[no-any-return]


def _g_linear(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    out = nd.get("out")
    w = xs[1] if len(xs) > 1 else c.param("weight", (out, xs[0].shape[-1]))
    b = xs[2] if len(xs) > 2 else c.param("bias", (out,)) if nd.get("bias") else None
    return nn.functional.linear(xs[0], w, b)


def _g_sdpa(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    """softmax(q·kᵀ/√D (+ mask))·v, as F.scaled_dot_product_attention's math path: FlopCounterMode counts its two
    matmuls on the CPU too (the fused CPU kernel it would dispatch to has no formula there; on CUDA and the meta
    device the sdpa formula gives the same count)."""
    q, k, v = xs[:3]
    logits = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    if len(xs) > 3:
        logits = logits + xs[3]
    return torch.matmul(logits.softmax(-1), v)


def _g_batch_norm(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    ch = xs[0].shape[1]
    mean, var = c.buffer("running_mean", torch.zeros(ch)), c.buffer("running_var", torch.ones(ch))
    if nd.get("tracked"):
        c.buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
    w, b = (c.param("weight", (ch,), 1.0), c.param("bias", (ch,))) if nd.get("affine") else (None, None)
    return nn.functional.batch_norm(xs[0], mean, var, w, b, False)


def _g_layer_norm(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    shape = tuple(xs[0].shape[xs[0].dim() - nd.get("normalized") :])
    w = c.param("weight", shape, 1.0) if nd.get("affine") else None
    b = c.param("bias", shape) if nd.get("affine") and nd.get("bias") else None
    return nn.functional.layer_norm(xs[0], shape, w, b)


def _g_group_norm(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    ch = xs[0].shape[1]
    w, b = (c.param("weight", (ch,), 1.0), c.param("bias", (ch,))) if nd.get("affine") else (None, None)
    return nn.functional.group_norm(xs[0], nd.get("groups"), w, b)


def _g_rms_norm(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    shape = tuple(xs[0].shape[xs[0].dim() - nd.get("normalized") :])
    w = c.param("weight", shape, 1.0) if nd.get("affine") else None
    return nn.functional.rms_norm(xs[0], shape, w)


def _g_pool(kind: str) -> Any:
    def run(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
        x, kernel = xs[0], nd.get("kernel")
        d = len(kernel) if isinstance(kernel, list) and len(kernel) > 1 else x.dim() - 2
        k = _tuple(kernel, d)
        s = _tuple(nd.get("stride"), d) if nd.get("stride") is not None else k
        p = _tuple(nd.get("padding"), d)
        if kind == "max":
            fn = getattr(nn.functional, f"max_pool{d}d")
            return fn(x, k, s, p, _tuple(nd.get("dilation"), d), ceil_mode=nd.get("ceil"))  # type: ignore[no-any-return]
        return getattr(nn.functional, f"avg_pool{d}d")(x, k, s, p, ceil_mode=nd.get("ceil"))  # type: ignore[no-any-return]

    return run


def _g_adaptive(kind: str) -> Any:
    def run(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
        size = nd.get("size")
        return getattr(nn.functional, f"adaptive_{kind}_pool{len(size)}d")(xs[0], size)  # type: ignore[no-any-return]

    return run


def _g_reduce(fn: Any) -> Any:
    def run(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
        d = nd.get("dim")
        dims = tuple(range(xs[0].dim())) if d is None else (d if isinstance(d, int) else tuple(d))
        return fn(xs[0], dims, nd.get("keepdim"))  # type: ignore[no-any-return]

    return run


def _g_fold(fn: Any, scalar: float) -> Any:
    def run(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
        if len(xs) == 1:
            return fn(xs[0], torch.tensor(scalar))  # type: ignore[no-any-return]
        return functools.reduce(fn, xs)

    return run


def _g_where(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    other = [*xs[1:], torch.tensor(0.0), torch.tensor(0.0)]
    return torch.where(xs[0] > 0, other[0] if len(xs) > 1 else xs[0], other[1])


def _g_clamp(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    if len(xs) == 1:
        return xs[0].clamp(0.0, 6.0)
    return torch.clamp(xs[0], xs[1], xs[2] if len(xs) > 2 else None)


def _g_cat(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    return torch.cat(xs, nd.get("dim"))


def _g_slice(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    d = nd.get("dim") % xs[0].dim()
    return xs[0][(slice(None),) * d + (slice(nd.get("start"), nd.get("end"), nd.get("step")),)]


def _g_expand(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    return xs[0].expand(*c.shape(nd.get("shape")))


def _g_aten(nd: Any, xs: list[torch.Tensor], c: _GraphCall) -> torch.Tensor:
    return torch.zeros(c.shape(nd.get("shape")))


def _one(fn: Any) -> Any:
    return lambda nd, xs, c: fn(xs[0])


_G_ACTS: dict[str, Any] = {
    **{name: _one(lambda x, m=module: m()(x)) for name, module in _ACT.items()},
    **{name: _one(getattr(torch, name)) for name in ("tanh", "exp", "log", "sqrt", "rsqrt", "neg", "abs")},
    "reciprocal": _one(torch.reciprocal),
    "erf": _one(torch.erf),
    **{name: _one(getattr(nn.functional, name)) for name in ("softplus", "mish", "leaky_relu", "elu")},
}

_GRAPH_OPS: dict[str, Any] = {
    "param": lambda nd, xs, c: c.param("weight", nd.get("shape")),
    "buffer": lambda nd, xs, c: c.buffer("value", torch.zeros(tuple(nd.get("shape")))),
    "conv": _g_conv,
    "linear": _g_linear,
    "matmul": lambda nd, xs, c: torch.matmul(xs[0], xs[1]),
    "bmm": lambda nd, xs, c: torch.bmm(xs[0], xs[1]),
    "einsum": lambda nd, xs, c: torch.einsum(nd.get("equation"), *xs),
    "sdpa": _g_sdpa,
    "batch_norm": _g_batch_norm,
    "layer_norm": _g_layer_norm,
    "group_norm": _g_group_norm,
    "rms_norm": _g_rms_norm,
    **_G_ACTS,
    "softmax": lambda nd, xs, c: torch.softmax(xs[0], nd.get("dim")),
    "log_softmax": lambda nd, xs, c: torch.log_softmax(xs[0], nd.get("dim")),
    "avg_pool": _g_pool("avg"),
    "max_pool": _g_pool("max"),
    "adaptive_avg_pool": _g_adaptive("avg"),
    "adaptive_max_pool": _g_adaptive("max"),
    "mean": _g_reduce(torch.mean),
    "sum": _g_reduce(torch.sum),
    "amax": _g_reduce(torch.amax),
    "var": _g_reduce(lambda x, d, k: torch.var(x, d, unbiased=False, keepdim=k)),
    "add": _g_fold(torch.add, 1.0),
    "sub": _g_fold(torch.sub, 1.0),
    "mul": _g_fold(torch.mul, 2.0),
    "div": _g_fold(torch.div, 2.0),
    "pow": _g_fold(torch.pow, 2.0),
    "maximum": _g_fold(torch.maximum, 0.0),
    "minimum": _g_fold(torch.minimum, 0.0),
    "where": _g_where,
    "clamp": _g_clamp,
    "reshape": lambda nd, xs, c: xs[0].reshape(c.shape(nd.get("shape"))),
    "permute": lambda nd, xs, c: xs[0].permute(*nd.get("dims")),
    "transpose": lambda nd, xs, c: xs[0].transpose(*nd.get("dims")),
    "flatten": lambda nd, xs, c: xs[0].flatten(*nd.get("dim")),
    "expand": _g_expand,
    "cat": _g_cat,
    "slice": _g_slice,
    "select": lambda nd, xs, c: xs[0].select(nd.get("dim"), nd.get("index")),
    "pad": lambda nd, xs, c: nn.functional.pad(xs[0], nd.get("pads"), nd.get("mode")),
    "roll": lambda nd, xs, c: torch.roll(xs[0], nd.get("size"), nd.get("dims")),
    "repeat": lambda nd, xs, c: xs[0].repeat(*nd.get("shape")),
    "tile": lambda nd, xs, c: xs[0].tile(nd.get("shape")),
    "interpolate": lambda nd, xs, c: nn.functional.interpolate(xs[0], size=nd.get("size"), mode=nd.get("mode")),
    "aten": _g_aten,
}
"""One torch function per op of the graph vocabulary: ``fn(node, inputs, call) -> tensor``."""

if set(_GRAPH_OPS) != set(GRAPH_OPS):  # one function per op of the vocabulary (spec/layers_graph.py)
    raise ImportError(f"torchref: graph ops without a function: {sorted(set(_GRAPH_OPS) ^ set(GRAPH_OPS))}")


class GraphModule(nn.Module):
    """A ``graph`` layer: its nodes run in order on ``in`` (the layer input) and the named earlier outputs it
    reads (``inputs``); each node's weights live in ``nodes[j]``. Built by a dry run at batch 1 on ``x`` and
    ``sources`` (the tensors the layer reads), which creates the weights from the input shapes."""

    def __init__(self, layer: Any, x: torch.Tensor, sources: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.layer = layer
        self.inputs = list(layer.inputs or [])
        self.nodes = nn.ModuleList(nn.Module() for _ in layer.nodes)
        with torch.no_grad():
            self._run(x, sources, create=True)

    def _run(self, x: torch.Tensor, sources: dict[str, torch.Tensor], create: bool = False) -> torch.Tensor:
        n = x.shape[0]
        env: dict[str, tuple[torch.Tensor, bool]] = {"in": (x, True)}
        for name in self.inputs:
            env[name] = (sources[name], True)
        prev = env["in"]
        for nd, hold in zip(self.layer.nodes, self.nodes, strict=True):
            if nd.inputs is not None:
                args = [env[name] for name in nd.inputs]
            else:
                args = [] if nd.op in ("param", "buffer") else [prev]
            batched = any(b for _, b in args)
            xs = [t for t, _ in args]
            if nd.op == "cat" and batched and n > 1:  # a batch-1 leading 1 of a parameter input grows to N (expand(B))
                xs = [t if b or t.shape[0] != 1 else t.expand(n, *t.shape[1:]) for t, b in args]
            y = _GRAPH_OPS[nd.op](nd, xs, _GraphCall(hold, create, n, batched))
            prev = (y, batched)
            if nd.id is not None:
                env[nd.id] = prev
        return env[self.layer.output][0] if self.layer.output is not None else prev[0]

    def forward(self, x: torch.Tensor, outputs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self._run(x, outputs or {})


class _Probe:
    """A dry run of the modules ``build`` has made so far, at batch 1 on zeros: what a graph layer reads (the
    running tensor and the named outputs). Incremental: each call runs only the blocks added since the last one,
    in eval mode, leaving each block's mode as it was."""

    def __init__(self, blocks: list[nn.Module], names: list[str | None], inp: Any) -> None:
        self.blocks, self.names = blocks, names
        self.outs: list[torch.Tensor] = []
        self.x = torch.zeros(1, inp.channels, inp.height, inp.width)

    def __call__(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            for block in self.blocks[len(self.outs) :]:
                named = {n: self.outs[i] for i, n in enumerate(self.names[: len(self.outs)]) if n is not None}
                mode = block.training
                self.x = _call(block.eval(), self.x, named)
                block.train(mode)
                self.outs.append(self.x)
        return self.x, {n: self.outs[i] for i, n in enumerate(self.names) if n is not None and i < len(self.outs)}


def _graph(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    if cfg.probe is None:
        raise UsageError("a graph layer is built by torchref.build (it needs the shapes of what it reads)")
    x, outputs = cfg.probe()
    module = GraphModule(layer, x, outputs)
    with torch.no_grad():
        y = module(x, outputs)
    return module, int(y.shape[1]) if y.dim() > 1 else int(y.numel())


def export_onnx(spec: NetworkSpec, path: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Write ``spec``'s torch module (:func:`build`, eval mode, torch's default random initialisation) to
    ``path`` as ONNX with torch's TorchScript exporter (``dynamo=False``, opset 17; BatchNorm folded into
    the convs by the exporter) at the spec's input shape. Returns the input and output shapes. Needs the
    onnx package besides torch; a failed export leaves no file behind."""
    import os
    import warnings

    try:
        import onnx  # noqa: F401  (the exporter serialises through it)
    except ImportError:
        raise UsageError("export --onnx needs the onnx package: pip install 'costmodel[torch,onnx]'") from None
    model, shape = build(spec)
    model.eval()
    x = torch.zeros(*shape)
    with torch.no_grad():
        out = model(x)
    try:
        with warnings.catch_warnings():  # the legacy exporter's deprecation notice: the library never prints
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["input"],
                              output_names=["output"])  # fmt: skip
    except OSError as e:
        if os.path.exists(path):
            os.remove(path)
        raise UsageError(f"export --onnx {path}: {e.strerror or e}") from None
    except Exception:
        if os.path.exists(path):
            os.remove(path)
        raise
    return tuple(shape), tuple(out.shape)
