"""convert.py, plus timm's MobileAttention blocks (MobileNetV4-Hybrid) as `attention` layers.

    cd specs/timm/_tools && PYTHONPATH=../../.. python convert_attention.py figures.jsonl mobilenetv4_hybrid_medium ...

writes specs/timm/<model>.yaml. It reuses convert.py's walk of the built modules (no weights; the meta device) and
adds one block mapping: MobileAttention → `kind: attention` (multi-query with key/value downsampling, or MHSA;
layer scale; the residual), refusing anything the kind does not describe (query strides, the CPE conv, biases
timm does not build). Like convert.py, a spec is written only when its params, MACs and output equal the model's
figures (figures.jsonl, measured on the meta device, where FlopCounterMode counts the attention matmuls) at the
default size and at 193.
"""

from __future__ import annotations

import convert as base
import torch.nn as nn
from convert import Unsupported, check_conv, identity, no_bias

_SENTINEL = "__attention__"  # the walk wants an activation per block; attention layers have none


def _kv(seq, cin: int, stride: int) -> tuple[int, int]:
    """(out width, kernel) of a key / value branch: [dw conv (stride) → BatchNorm2d] → 1×1 conv."""
    k = 3
    if stride > 1:
        conv = seq.down_conv
        kk, s = conv.kernel_size[0], conv.stride[0]
        pad = ((s - 1) + (kk - 1)) // 2
        # Conv2dSame (MobileNetV5's encoder): out = ceil(H / s), which is timm's default padding's for s = 2
        same = type(conv).__name__ == "Conv2dSame" and s == 2 and kk % 2 == 1
        if not same and conv.padding != (pad, pad):
            raise Unsupported(f"needs key/value downsampling conv {conv}")
        if conv.groups != cin or conv.bias is not None or conv.dilation != (1, 1):
            raise Unsupported(f"needs key/value downsampling conv {conv}")
        if s != stride or conv.kernel_size != (kk, kk):
            raise Unsupported("needs non-square key/value downsampling")
        if norm_act(seq.norm) != "none":
            raise Unsupported("needs an activation in the key/value downsampling")
        k = kk
    elif hasattr(seq, "down_conv"):
        raise Unsupported("needs key/value downsampling at stride 1")
    kp, _ = check_conv(seq.proj)
    if kp != 1:
        raise Unsupported("needs k×k key/value projection")
    no_bias(seq.proj)
    return seq.proj.out_channels, k


def attention_layer(b) -> dict:
    """A MobileAttention → an `attention` layer."""
    if b.conv_cpe_dw is not None:
        raise Unsupported("needs the CPE depthwise conv in MobileAttention")
    if norm_act(b.norm) != "none":
        raise Unsupported("needs an activation on the attention pre-norm")
    identity(b.drop_path, "needs drop path")
    a = b.attn
    t = type(a).__name__
    if t == "MultiQueryAttention2d":
        if a.has_query_strides or hasattr(a.query, "down_pool") or hasattr(a.output, "upsample"):
            raise Unsupported("needs query strides in multi-query attention")
        cin = a.query.proj.in_channels
        no_bias(a.query.proj, a.output.proj)
        dk, kk = _kv(a.key, cin, a.kv_stride)
        dv, kv_ = _kv(a.value, cin, a.kv_stride)
        if dk != a.key_dim or dv != a.value_dim or kk != kv_ or a.query.proj.out_channels != a.num_heads * dk:
            raise Unsupported("needs unequal key / value downsampling")
        d: dict = {"kind": "attention", "heads": a.num_heads, "key_dim": dk}
        if dv != dk:
            d["value_dim"] = dv
        if a.kv_stride > 1:
            d["kv_stride"] = a.kv_stride
            if kk != 3:
                d["kv_kernel"] = kk
        cout = a.output.proj.out_channels
    elif t == "Attention2d":
        cin = a.qkv.in_channels
        if a.head_first or a.qkv.out_channels != 3 * cin or a.proj.in_channels != cin:
            raise Unsupported("needs Attention2d with expand_first / head_first")
        no_bias(a.qkv, a.proj)
        d = {"kind": "attention", "heads": a.num_heads, "multi_query": False}
        cout = a.proj.out_channels
    else:
        raise Unsupported(f"needs attention {t}")
    d["out_channels"] = cout
    ls = b.layer_scale
    if not isinstance(ls, nn.Identity):
        if type(ls).__name__ != "LayerScale2d" or ls.gamma.shape != (cout,):
            raise Unsupported(f"needs layer scale {type(ls).__name__}")
        d["layer_scale"] = True
    d.update({"activation": _SENTINEL, "_in": cin, "_skip": b.has_skip, "_auto": cin == cout})
    return d


_norm_act = base.norm_act


def rms_norm_act(bn) -> str:
    """convert.py's norm_act, plus timm's RmsNorm2d / RmsNormAct2d (MobileNetV5) as `norm: rmsnorm`."""
    name = type(bn).__name__
    if name in ("RmsNorm2d", "RmsNormAct2d"):
        if getattr(bn, "drop", None) is not None and not isinstance(bn.drop, nn.Identity):
            raise Unsupported("needs dropblock")
        if bn.weight is None or tuple(bn.weight.shape) != tuple(bn.normalized_shape):
            raise Unsupported("needs RMSNorm without affine weight")
        base.NORMS_SEEN.append(("rmsnorm", None))
        return "none" if name == "RmsNorm2d" else base.act_of(bn.act)
    return _norm_act(bn)


base.norm_act = rms_norm_act
norm_act = rms_norm_act  # attention_layer's pre-norm and key/value norms

_block_layer = base.block_layer


def block_layer(b, prefer_expanded: bool) -> list[dict]:
    """convert.py's mapping, with MobileAttention → attention."""
    if type(b).__name__ == "MobileAttention":
        return [attention_layer(b)]
    return _block_layer(b, prefer_expanded)


base.block_layer = block_layer
for _key in ("heads", "key_dim", "value_dim", "multi_query", "kv_stride", "kv_kernel"):
    base.ORDER.insert(base.ORDER.index("out_channels"), _key)

_convert = base.convert


def convert(name: str) -> tuple[dict, dict]:
    """convert.py's convert, with the attention layers' placeholder activation removed."""
    spec, notes = _convert(name)
    if spec["defaults"]["activation"] == _SENTINEL:
        raise Unsupported("needs a default activation other than the attention blocks'")
    for d in spec["layers"]:
        if d.get("activation") == _SENTINEL:
            del d["activation"]
    return spec, notes


base.convert = convert

_OLD = "# Generated by specs/timm/_tools/convert.py from the built modules; checked by tests/test_timm.py.\n"
_NEW = (
    "# MACs count the attention matmuls (q·kᵀ, ·v), as FlopCounterMode does on the meta device, on CUDA and on timm's\n"
    "# unfused path; on the CPU timm's fused SDPA is not counted by it (docs/conventions.md).\n"
    "# Generated by specs/timm/_tools/convert_attention.py from the built modules; checked by tests/test_timm.py.\n"
)


def main() -> None:
    """convert.py's main, then the header of every written spec with attention layers names this tool."""
    import sys

    base.main()
    for name in sys.argv[2:]:
        path = base.OUT / f"{name}.yaml"
        text = path.read_text() if path.exists() else ""
        if "kind: attention" in text and _OLD in text:
            path.write_text(text.replace(_OLD, _NEW))


if __name__ == "__main__":
    main()
