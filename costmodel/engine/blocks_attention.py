"""Block function of the attention kind (spec/layers_attention.py): timm's MobileAttention with multi-query
attention (MultiQueryAttention2d) or multi-head self-attention (Attention2d). Registered in engine/kinds.py.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError
from . import ops
from .blocks import BlockArgs, Flow, implemented, norm_groups, residual
from .symbols import Num, divides, floordiv, value


def kv_padding(kernel: int, stride: int) -> int:
    """timm's default padding of the key/value downsampling conv (create_conv2d, padding ''):
    p = ((s − 1) + (k − 1)) // 2, so Hk = floor((H + 2p − k)/s) + 1 (= floor((H − 1)/s) + 1 for s = 2)."""
    return ((stride - 1) + (kernel - 1)) // 2


def _norm(f: Flow, a: BlockArgs, stage: str, src: int, timm_class: bool = False) -> int:
    """norm on ``src``; ``timm_class``: MobileAttention's own norm, timm's norm + act class (BatchNormAct2d with
    apply_act=False) under ``implementation: timm`` — the key/value norms are the plain norm_layer (nn.BatchNorm2d),
    built with its defaults: an activating norm (EvoNorm) there applies its nonlinearity (timm's apply_act=True)."""
    shape = f.shape(src)
    if a.norm == "none":
        return src
    g = norm_groups(a, shape[0]) if a.norm in ops.GROUPED_NORMS else 1
    op = ops.norm(a.norm, shape, a.n, g, not timm_class)
    return f.add(stage, implemented(op, a) if timm_class else op, (src,))


def _kv(f: Flow, a: BlockArgs, stage: str, src: int, out: Num, kernel: int, stride: int) -> int:
    """key or value: [k×k dw conv (stride, no bias) → norm] → 1×1 conv to ``out``."""
    if stride != 1:
        c = f.shape(src)[0]
        p = kv_padding(kernel, stride)
        pad = None if p == kernel // 2 else p
        f.add(stage, ops.conv2d(f.shape(src), a.n, c, kernel, stride, c, False, pad), (src,))
        src = _norm(f, a, stage, f.last)
    return f.add(stage, ops.conv2d(f.shape(src), a.n, out, 1, bias=a.bias), (src,))


def attention(layer: Any, a: BlockArgs) -> Flow:
    """MobileAttention: norm(x) → attention → 1×1 output projection → [x·γ] → [+ x].

    Multi-query (h heads, dk, dv; Hk = floor((H + 2p − k)/s) + 1 with s = kv_stride, p = ((s − 1) + (k − 1))//2,
    P = Hk·Wk, L = H·W):
    params = C·h·dk + 2·[C·k² + norm] + C·(dk + dv) + h·dv·Cout (+ Cout with layer scale) + norm;
    MACs = N·(L·C·h·dk + 2·P·C·k²·[s > 1] + P·C·(dk + dv) + h·L·P·(dk + dv) + L·h·dv·Cout).

    MHSA (h heads of d = C/h): params = 3C² + C·Cout (+ biases) + norm; MACs = N·(3·L·C² + h·L²·2d + L·C·Cout)
    = N·(3·L·C² + 2·L²·C + L·C·Cout). The attention term is quadratic in H·W.
    """
    f = Flow(a.inp)
    c = a.inp[0]
    cout = value(layer.out_channels)
    heads = layer.heads
    x = _norm(f, a, "norm", 0, timm_class=True)
    if layer.multi_query:
        dk = layer.key_dim
        dv = layer.value_dim or dk
        q = f.add("query", ops.conv2d(f.shape(x), a.n, heads * dk, 1, bias=a.bias), (x,))
        k = _kv(f, a, "key", x, dk, value(layer.kv_kernel), layer.kv_stride)
        v = _kv(f, a, "value", x, dv, value(layer.kv_kernel), layer.kv_stride)
        _, hk, wk = f.shape(k)
        f.add("attention", ops.attention(f.shape(q), hk * wk, a.n, heads, dk, dv), (q, k, v))
    else:
        ok = divides(heads, c)
        if ok is not True:
            raise SpecError(f"MHSA needs heads ({heads}) to divide the {c} input channels", (*a.path, "heads"))
        d = floordiv(c, heads)
        qkv = f.add("qkv", ops.conv2d(f.shape(x), a.n, 3 * c, 1, bias=a.bias), (x,))
        _, h, w = a.inp
        mhsa = ops.attention((c, h, w), h * w, a.n, heads, d, d, heads)
        mhsa.saves = None  # MHSA's training memory is not modelled (refused), one head included
        f.add("attention", mhsa, (qkv,))
    f.add("output", ops.conv2d(f.output, a.n, cout, 1, bias=a.bias))
    if layer.layer_scale:
        f.add("layer_scale", ops.layer_scale(f.output, a.n))
    residual(f, a, layer.residual)
    return f
