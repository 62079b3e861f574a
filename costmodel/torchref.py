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

from typing import Any

import torch
from torch import nn

from .engine.kinds import KINDS
from .errors import UsageError
from .spec import NetworkSpec, se_ratio, symbol_uses
from .spec.scaling import make_divisible, resolve

_ACT: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
}


_NORM: dict[str, type[nn.Module]] = {"batchnorm": nn.BatchNorm2d}


def _act(name: str) -> nn.Module:
    return nn.Identity() if name == "none" else _ACT[name]()


class _Cfg:
    def __init__(self, layer: Any, spec: NetworkSpec) -> None:
        d = spec.defaults
        self.act: str = getattr(layer, "activation", None) or d.activation
        self.norm: str = getattr(layer, "norm", None) or d.norm
        bias = getattr(layer, "bias", None)
        self.bias: bool = d.bias if bias is None else bias


def conv_bn_act(cfg: _Cfg, cin: int, cout: int, k: int, s: int = 1, g: int = 1, act: bool = True) -> nn.Sequential:
    """Conv2d(padding k//2) → BatchNorm2d (if norm) → activation (if act)."""
    mods: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=cfg.bias)]
    if cfg.norm != "none":
        mods.append(_NORM[cfg.norm](cout))
    if act and cfg.act != "none":
        mods.append(_act(cfg.act))
    return nn.Sequential(*mods)


class SqueezeExcite(nn.Module):
    """avgpool → 1×1 conv(bias) → act → 1×1 conv(bias) → gate → x · gate."""

    def __init__(self, channels: int, squeeze: int, act: str, gate: str) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.act = _act(act)
        self.fc2 = nn.Conv2d(squeeze, channels, 1, bias=True)
        self.gate = _act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale: torch.Tensor = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * scale


def _se(layer: Any, cfg: _Cfg, channels: int, block_in: int) -> nn.Module:
    ratio = se_ratio(layer.se)
    base = block_in if layer.se_base == "input" else channels
    squeeze = base * ratio.numerator // ratio.denominator
    squeeze = make_divisible(squeeze, layer.se_divisor) if layer.se_divisor else max(1, squeeze)
    return SqueezeExcite(channels, squeeze, layer.se_activation or cfg.act, layer.se_gate)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        if self.residual:
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
    kind = layer.kind
    own = KINDS[kind].torch if kind in KINDS else None
    if own is not None:
        built: tuple[nn.Module, int] = own(layer, cfg, cin, stride)
        return built
    if kind in _ZOO:
        zoo: tuple[nn.Module, int] = _ZOO[kind](layer, cfg, cin, stride)
        return zoo
    if kind == "pool":
        return _Pool(layer.implementation), cin
    if kind == "dropout":
        return nn.Dropout(layer.p), cin
    if kind == "linear":
        head: list[nn.Module] = [nn.Flatten(1), nn.Linear(cin, layer.out_features, bias=layer.bias)]
        if layer.activation != "none":
            head.append(_act(layer.activation))
        return nn.Sequential(*head), layer.out_features
    cout: int = layer.out_channels
    k: int = layer.kernel
    if kind == "conv":
        return conv_bn_act(cfg, cin, cout, k, stride, layer.groups), cout
    if kind == "dwsep":
        body = nn.Sequential(conv_bn_act(cfg, cin, cin, k, stride, cin), conv_bn_act(cfg, cin, cout, 1))
        return body, cout
    if kind == "basic":
        body = nn.Sequential(conv_bn_act(cfg, cin, cout, k, stride), conv_bn_act(cfg, cout, cout, k))
        return Block(body, _residual(layer.residual, stride, cin, cout)), cout
    if kind == "mbconv":
        mid = _expanded(layer, cin)
        mods: list[nn.Module] = []
        if mid != cin:
            mods.append(conv_bn_act(cfg, cin, mid, 1))
        mods.append(conv_bn_act(cfg, mid, mid, k, stride, mid))
        if layer.se is not None:
            mods.append(_se(layer, cfg, mid, cin))
        mods.append(conv_bn_act(cfg, mid, cout, 1, act=False))
        return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout
    if kind == "fused_mbconv":
        mid = _expanded(layer, cin)
        if mid == cin:
            mods = [conv_bn_act(cfg, cin, cout, k, stride)]
            if layer.se is not None:
                mods.append(_se(layer, cfg, cout, cin))
        else:
            mods = [conv_bn_act(cfg, cin, mid, k, stride)]
            if layer.se is not None:
                mods.append(_se(layer, cfg, mid, cin))
            mods.append(conv_bn_act(cfg, mid, cout, 1, act=False))
        return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout
    if kind == "bottleneck":
        mid = layer.mid_channels if layer.mid_channels is not None else cout // 4
        body = nn.Sequential(
            conv_bn_act(cfg, cin, mid, 1),
            conv_bn_act(cfg, mid, mid, k, stride),
            conv_bn_act(cfg, mid, cout, 1, act=False),
        )
        shortcut = None if stride == 1 and cin == cout else conv_bn_act(cfg, cin, cout, 1, stride, act=False)
        return Block(body, True, shortcut, _act(cfg.act)), cout
    raise UsageError(f"torchref cannot build kind {kind!r}: register it with a torch= builder")


def _spatial(blocks: list[nn.Module], inp: Any) -> int:
    """H·W of the tensor the modules built so far produce (a dry run on a zero input)."""
    with torch.no_grad():
        y = nn.Sequential(*blocks).eval()(torch.zeros(1, inp.channels, inp.height, inp.width))
    return int(y.shape[2] * y.shape[3])


def build(spec: NetworkSpec) -> tuple[nn.Module, tuple[int, int, int, int]]:
    """The torch module equivalent to ``spec`` and the input shape (N, C, H, W) it takes."""
    uses = symbol_uses(spec)
    if uses:
        path, name = uses[0]
        raise UsageError(f"{'.'.join(map(str, path))} is the symbol {name!r}: bind it before building a torch module")
    spec = resolve(spec)
    blocks: list[nn.Module] = []
    inp: Any = spec.input  # every integer field is an int here (checked above)
    c: int = inp.channels
    flat = False
    for layer in spec.layers:
        if type(layer).flattens and not flat:
            c = c * _spatial(blocks, inp)  # Flatten: the linear layer sees C·H·W features
            flat = True
        cfg = _Cfg(layer, spec)
        lay: Any = layer
        for r in range(getattr(lay, "repeat", 1)):
            block, c = _block(layer, cfg, c, getattr(lay, "stride", 1) if r == 0 else 1)
            blocks.append(block)
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
    mods: list[nn.Module] = [MixedConv(cin, cout, kernels, s, dw, cfg.bias)]
    if cfg.norm != "none":
        mods.append(_NORM[cfg.norm](cout))
    if act and cfg.act != "none":
        mods.append(_act(cfg.act))
    return nn.Sequential(*mods)


def _mixconv(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mid = _expanded(layer, cin)
    mods: list[nn.Module] = []
    if mid != cin:
        mods.append(_mixed_bn_act(cfg, cin, mid, [1] * layer.expansion_groups, 1, False, True))
    mods.append(_mixed_bn_act(cfg, mid, mid, list(layer.kernels), stride, True, True))
    if layer.se is not None:
        mods.append(_se(layer, cfg, mid, cin))
    mods.append(_mixed_bn_act(cfg, mid, cout, [1] * layer.projection_groups, 1, False, False))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


def _bn(cfg: _Cfg, c: int) -> nn.Module:
    return _NORM[cfg.norm](c) if cfg.norm != "none" else nn.Identity()


class GhostModule(nn.Module):
    """GhostNet's module: primary conv to ceil(out/ratio), cheap grouped conv on it, cat, keep ``out``;
    with ``dfc``, × sigmoid(DFC(avgpool 2×2 of the input)) upsampled (GhostNetV2)."""

    def __init__(
        self, cfg: _Cfg, cin: int, cout: int, k: int, ratio: int, dw: int, stride: int, act: bool, dfc: bool
    ) -> None:
        super().__init__()
        init = -(-cout // ratio)
        self.cout = cout
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
    mod = GhostModule(cfg, cin, cout, layer.kernel, layer.ratio, layer.dw_kernel, stride, layer.activation_cheap, dfc)
    return mod, cout


def _ghost_bottleneck(layer: Any, cfg: _Cfg, cin: int, stride: int) -> tuple[nn.Module, int]:
    cout: int = layer.out_channels
    mid: int = layer.mid_channels
    k: int = layer.kernel
    mods: list[nn.Module] = [
        GhostModule(cfg, cin, mid, 1, layer.ratio, layer.dw_kernel, 1, True, layer.attention == "dfc")
    ]
    if stride > 1:
        mods.append(conv_bn_act(cfg, mid, mid, k, stride, mid, act=False))
    if layer.se is not None:
        mods.append(_se(layer, cfg, mid, cin))
    mods.append(GhostModule(cfg, mid, cout, 1, layer.ratio, layer.dw_kernel, 1, False, False))
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
        mods.append(conv_bn_act(cfg, cin, cin, layer.start_kernel, s, cin, act=False))
    mods.append(conv_bn_act(cfg, cin, mid, 1))
    if layer.mid_kernel:
        mods.append(conv_bn_act(cfg, mid, mid, layer.mid_kernel, stride, mid))
    mods.append(conv_bn_act(cfg, mid, cout, 1, act=False))
    if layer.layer_scale:
        mods.append(LayerScale(cout))
    return Block(nn.Sequential(*mods), _residual(layer.residual, stride, cin, cout)), cout


_ZOO: dict[str, Any] = {
    "mixconv": _mixconv,
    "ghost": _ghost,
    "ghost_bottleneck": _ghost_bottleneck,
    "uir": _uir,
}
"""Builders of the zoo's kinds (costmodel/spec/layers_zoo.py), written from the spec rules, not the engine."""
