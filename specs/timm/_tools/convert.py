"""Read a built timm MBConv-family model and write the costmodel spec that describes it, or say why it can't.

This walks the *built* modules (not the arch strings), so every channel count, kernel, stride, SE width
and activation in the spec is the one timm actually built. A model is refused with the first feature the
spec format lacks (``Unsupported("needs MixConv")`` …). Then the spec is checked against the model's
figures at its default size and at 193 (figures.jsonl from figures.py).

    PYTHONPATH=. python specs/timm/_tools/convert.py figures.jsonl [model ...]   # writes specs/timm/<model>.yaml

A helper for writing the YAML files once; not part of the tests (tests/test_timm.py checks the files).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import timm
import torch.nn as nn

import costmodel
from costmodel.spec.scaling import make_divisible

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "specs" / "timm"


class Unsupported(Exception):
    pass


ACTS = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "SiLU": "silu",
    "Swish": "silu",
    "Hardswish": "hardswish",
    "HardSwish": "hardswish",
    "Identity": "none",
    "GELU": "gelu",
}
GATES = {"Sigmoid": "sigmoid", "Hardsigmoid": "hardsigmoid", "HardSigmoid": "hardsigmoid"}


def act_of(mod) -> str:
    name = type(mod).__name__
    if name not in ACTS:
        raise Unsupported(f"needs {name}")
    return ACTS[name]


NORMS_SEEN: list[tuple[str, int | None]] = []  # (norm name, channels per group) of every norm of the model


def norm_act(bn) -> str:
    """The activation of a timm norm(+act) layer; records which norm it is (NORMS_SEEN)."""
    name = type(bn).__name__
    if name in ("BatchNormAct2d", "GroupNormAct", "LayerNormAct2d"):
        if bn.drop is not None and not isinstance(bn.drop, nn.Identity):
            raise Unsupported("needs dropblock")
        norm = {"BatchNormAct2d": "batchnorm", "GroupNormAct": "groupnorm", "LayerNormAct2d": "layernorm"}[name]
        NORMS_SEEN.append((norm, bn.num_channels // bn.num_groups if norm == "groupnorm" else None))
        return act_of(bn.act)
    if name == "BatchNorm2d":
        NORMS_SEEN.append(("batchnorm", None))
        return "none"
    if name in ("EvoNorm2dS0", "EvoNorm2dB0"):
        c = bn.weight.shape[0]
        NORMS_SEEN.append(("evonorm_s0" if name.endswith("S0") else "evonorm_b0", c // getattr(bn, "groups", c)))
        return "silu" if bn.v is not None else "none"  # EvoNorm is its own activation (the spec's: not none)
    raise Unsupported(f"needs norm {name}")


def aa_of(mod) -> str | None:
    name = type(mod).__name__
    if mod is None or name == "Identity":
        return None
    if name == "BlurPool2d":
        if mod.filt_size != 3:
            raise Unsupported("needs blur filter size != 3")
        return "blur"
    if name == "AvgPool2d":
        return "avg"
    raise Unsupported(f"needs aa {name}")


def check_conv(conv, *, depthwise=False, where: str = "", extra: dict | None = None) -> tuple[int, int]:
    """(kernel, stride) of a plain or 'same'-padded conv; padding/dilation/groups the spec must state go to
    ``extra`` (padding, dilation, group_size) when given, else they are refused."""
    cname = type(conv).__name__
    if cname == "MixedConv2d":
        raise Unsupported("needs MixConv")
    if cname == "CondConv2d":
        raise Unsupported("needs CondConv")
    if cname not in ("Conv2d", "Conv2dSame"):
        raise Unsupported(f"needs conv {cname}")
    k, k2 = conv.kernel_size
    s, s2 = conv.stride
    if k != k2 or s != s2:
        raise Unsupported("needs non-square kernels/strides")
    d = conv.dilation[0]
    fields: dict = {}
    if conv.dilation != (d, d):
        raise Unsupported("needs non-square dilation")
    if d != 1:
        fields["dilation"] = d
    if cname == "Conv2dSame":
        if k % 2 == 0 or d != 1:
            fields["padding"] = "same"
    else:
        p = conv.padding
        if p[0] != p[1]:
            raise Unsupported("needs non-square padding")
        if k % 2 == 0 or p[0] != d * (k - 1) // 2:
            fields["padding"] = p[0]
    if conv.padding_mode != "zeros":
        raise Unsupported("needs padding mode")
    if depthwise:
        if not (conv.in_channels == conv.out_channels):
            raise Unsupported("needs dw in != out")
        if conv.groups != conv.in_channels:
            fields["group_size"] = conv.in_channels // conv.groups
    elif conv.groups != 1:
        if extra is None or "fused" not in where.lower():
            raise Unsupported(f"needs grouped conv{where}")
        fields["group_size"] = conv.out_channels // conv.groups  # fused_mbconv: of the expanded width (timm's)
    if fields:
        if extra is None:
            raise Unsupported(f"needs {', '.join(fields)} here{where}")
        extra.update(fields)
    return k, s


def no_bias(*convs):
    for c in convs:
        if c.bias is not None:
            raise Unsupported("needs conv bias in blocks")


def identity(mod, feature: str):
    if mod is not None and not isinstance(mod, nn.Identity):
        raise Unsupported(feature)


def se_fields(se, block_in: int, mid: int, prefer_expanded: bool) -> dict:
    """SE fields reproducing timm's squeeze width rd, in the family's natural form, or refuse."""
    if isinstance(se, nn.Identity):
        return {}
    if type(se).__name__ != "SqueezeExcite":
        raise Unsupported(f"needs attention {type(se).__name__}")
    rd = se.conv_reduce.out_channels
    fields: dict = {}
    cands = []
    for ratio in (0.25, 0.5, 0.125, 1.0, 0.0625):
        inp = {"se": ratio}
        exp = {"se": ratio, "se_base": "expanded"}
        expd = {"se": ratio, "se_base": "expanded", "se_divisor": 8}
        inpd = {"se": ratio, "se_divisor": 8}
        order = [expd, exp, inp, inpd] if prefer_expanded else [inp, exp, expd, inpd]
        for c in order:
            base = block_in if c.get("se_base", "input") == "input" else mid
            raw = math.floor(base * c["se"])
            got = make_divisible(raw, 8) if "se_divisor" in c else max(1, raw)
            if got == rd:
                cands.append(c)
    if cands:
        fields.update(cands[0])
    else:
        fields["se_channels"] = rd
    fields["se_activation"] = act_of(se.act1)
    fields["se_gate"] = GATES.get(type(se.gate).__name__) or "?"
    if fields["se_gate"] == "?":
        raise Unsupported(f"needs SE gate {type(se.gate).__name__}")
    if se.conv_reduce.bias is None or se.conv_expand.bias is None:
        raise Unsupported("needs SE without bias")
    return fields


def s2d_layer(b, act_default_in: int) -> list[dict]:
    """EfficientNet-X/H's space-to-depth: conv_s2d (2×2 stride 2, 'same') + its norm-act, as a conv layer."""
    if b.conv_s2d is None:
        return []
    extra: dict = {}
    k, s = check_conv(b.conv_s2d, extra=extra)
    no_bias(b.conv_s2d)
    return [
        {
            "kind": "conv",
            "kernel": k,
            "stride": s,
            **extra,
            "out_channels": b.conv_s2d.out_channels,
            "activation": norm_act(b.bn_s2d),
            "_in": b.conv_s2d.in_channels,
            "_skip": False,
            "_auto": False,
        }
    ]


def mixed_of(conv, *, depthwise: bool) -> tuple[list[int], int]:
    """(kernel per group, stride) of a MixedConv2d or a plain conv, checking timm's even channel split."""
    if type(conv).__name__ != "MixedConv2d":
        k, s = check_conv(conv, depthwise=depthwise)
        return [k], s
    kernels, strides = [], set()
    for c in conv.values():
        k, s = check_conv(c, depthwise=depthwise)
        kernels.append(k)
        strides.add(s)
    if len(strides) != 1:
        raise Unsupported("needs MixConv with mixed strides")
    return kernels, strides.pop()


def mixconv_layer(b, prefer_expanded: bool) -> dict:
    """A MixNet InvertedResidual (MixedConv2d in any of its three convs) → a `mixconv` layer."""
    identity(b.conv_s2d, "needs space-to-depth")
    identity(b.aa, "needs blur pool (anti-aliased stride)")
    ke, _ = mixed_of(b.conv_pw, depthwise=False)
    kernels, s = mixed_of(b.conv_dw, depthwise=True)
    kp, _ = mixed_of(b.conv_pwl, depthwise=False)
    if set(ke) != {1} or set(kp) != {1}:
        raise Unsupported("needs k×k expansion/projection in MixConv")
    cin, mid, cout = b.conv_pw.in_channels, b.conv_pw.out_channels, b.conv_pwl.out_channels
    if mid == cin:
        raise Unsupported("needs MBConv keeping its 1×1 expansion at t = 1 (ir_e1)")
    act = norm_act(b.bn1)
    if norm_act(b.bn2) != act or norm_act(b.bn3) != "none":
        raise Unsupported("needs mixed activations in a block")
    d = {"kind": "mixconv", "kernels": kernels, "stride": s, "out_channels": cout, "activation": act}
    if len(ke) > 1:
        d["expansion_groups"] = len(ke)
    if len(kp) > 1:
        d["projection_groups"] = len(kp)
    d.update({"_in": cin, "_mid": mid})
    d.update(se_fields(b.se, cin, mid, prefer_expanded))
    d["_skip"], d["_auto"] = b.has_skip, s == 1 and cin == cout
    return d


UIR_RATIOS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 0.5, 1.5, 2.5, 3.5)


def uir_layer(b) -> dict:
    """A MobileNetV4 UniversalInvertedResidual → a `uir` layer: dw_start (norm, no act) / dw_mid (norm, act)
    present or not, pw_exp → pw_proj, layer scale, has_skip; aa (avg | blur) on the strided dw conv."""
    identity(b.se, "needs SE in UIR")
    identity(b.dw_end, "needs UIR dw_end")
    d: dict = {"kind": "uir"}
    stride = 1
    aa = None
    for key, unit in (("start_kernel", b.dw_start), ("mid_kernel", b.dw_mid)):
        if isinstance(unit, nn.Identity):
            continue
        k, s = check_conv(unit.conv, depthwise=True, where=" in UIR")
        no_bias(unit.conv)
        a = aa_of(unit.aa)
        if a:
            aa, s = a, unit.aa.stride
        stride = max(stride, s)
        d[key] = k
        d["_act_" + key] = norm_act(unit.bn)
    ke, _ = check_conv(b.pw_exp.conv)
    kp, _ = check_conv(b.pw_proj.conv)
    if ke != 1 or kp != 1:
        raise Unsupported("needs k×k expansion/projection in UIR")
    no_bias(b.pw_exp.conv, b.pw_proj.conv)
    act = norm_act(b.pw_exp.bn)
    if d.pop("_act_start_kernel", "none") != "none" or d.pop("_act_mid_kernel", act) != act:
        raise Unsupported("needs UIR activations other than timm's")
    if norm_act(b.pw_proj.bn) != "none":
        raise Unsupported("needs UIR projection activation")
    cin, mid, cout = b.pw_exp.conv.in_channels, b.pw_exp.conv.out_channels, b.pw_proj.conv.out_channels
    ratio = next((r for r in UIR_RATIOS if make_divisible(cin * r, 8) == mid), None)
    if ratio is None:
        d["expanded_channels"] = mid
    else:
        d["expansion"] = int(ratio) if ratio == int(ratio) else ratio
    d.update({"stride": stride, "out_channels": cout, "activation": act})
    if aa:
        d["aa"] = aa
    ls = b.layer_scale
    if not isinstance(ls, nn.Identity):
        if type(ls).__name__ != "LayerScale2d" or ls.gamma.shape != (cout,):
            raise Unsupported(f"needs layer scale {type(ls).__name__}")
        d["layer_scale"] = True
    d.update({"_in": cin, "_mid": mid, "_skip": b.has_skip, "_auto": stride == 1 and cin == cout})
    return d


def cond_conv(conv, *, depthwise: bool) -> tuple[int, int]:
    """(kernel, stride) of a CondConv2d the condconv kind describes: square odd kernel, no dilation, no bias,
    depthwise or plain; 'same' (dynamic) padding counts as k // 2 with an odd kernel (ceil(H / s) either way)."""
    k, k2 = conv.kernel_size
    s, s2 = conv.stride
    if k != k2 or s != s2 or k % 2 == 0 or conv.dilation != (1, 1) or conv.bias is not None:
        raise Unsupported("needs CondConv with uneven kernels, dilation or bias")
    if not conv.dynamic_padding and conv.padding != ((k - 1) // 2,) * 2:
        raise Unsupported("needs CondConv padding")
    if conv.groups != (conv.in_channels if depthwise else 1):
        raise Unsupported("needs grouped CondConv")
    return k, s


def condconv_layer(b, prefer_expanded: bool) -> dict:
    """A timm CondConvResidual → a `condconv` layer."""
    if b.conv_s2d is not None or not isinstance(b.aa, nn.Identity):
        raise Unsupported("needs s2d / aa in CondConvResidual")
    if cond_conv(b.conv_pw, depthwise=False)[0] != 1 or cond_conv(b.conv_pwl, depthwise=False)[0] != 1:
        raise Unsupported("needs k×k expansion/projection in CondConv")
    k, s = cond_conv(b.conv_dw, depthwise=True)
    experts = {c.num_experts for c in (b.conv_pw, b.conv_dw, b.conv_pwl)}
    if len(experts) != 1 or b.routing_fn.out_features not in experts or b.routing_fn.bias is None:
        raise Unsupported("needs per-conv expert counts")
    cin, mid, cout = b.conv_pw.in_channels, b.conv_pw.out_channels, b.conv_pwl.out_channels
    act = norm_act(b.bn1)
    if norm_act(b.bn2) != act or norm_act(b.bn3) != "none":
        raise Unsupported("needs mixed activations in a block")
    d = {
        "kind": "condconv",
        "experts": experts.pop(),
        "kernel": k,
        "stride": s,
        "out_channels": cout,
        "activation": act,
        "_in": cin,
        "_mid": mid,
    }
    if mid == cin:
        d["expansion"] = 1
    d.update(se_fields(b.se, cin, mid, prefer_expanded))
    d["_skip"], d["_auto"] = b.has_skip, s == 1 and cin == cout
    return d


def block_layer(b, prefer_expanded: bool) -> list[dict]:
    """One timm block → spec layer dicts (with in_channels recorded for grouping)."""
    t = type(b).__name__
    if t == "DepthwiseSeparableConv":
        pre = s2d_layer(b, 0)
        extra: dict = {}
        k, s = check_conv(b.conv_dw, depthwise=True, extra=extra)
        aa = aa_of(b.aa)
        if aa:
            extra["aa"] = aa
            s = b.aa.stride if aa == "blur" else b.aa.stride
        kp, _ = check_conv(b.conv_pw)
        if kp != 1:
            raise Unsupported("needs k×k pointwise")
        no_bias(b.conv_dw, b.conv_pw)
        block_in = b.conv_s2d.in_channels if pre else b.conv_dw.in_channels
        cin, cout = b.conv_dw.in_channels, b.conv_pw.out_channels
        act = norm_act(b.bn1)
        pw_act = norm_act(b.bn2)
        se = se_fields(b.se, block_in, cin, prefer_expanded)
        if pre and se and "se_channels" not in se:  # SE widths count from the block input, before s2d
            se = {k2: v for k2, v in se.items() if not k2.startswith("se") or k2 in ("se_activation", "se_gate")}
            se["se_channels"] = b.se.conv_reduce.out_channels
        if b.has_pw_act:
            d = {
                "kind": "dwsep",
                "kernel": k,
                "stride": s,
                **extra,
                "out_channels": cout,
                "activation": act,
                "_in": cin,
                "_skip": b.has_skip,
                "_auto": s == 1 and cin == cout,
            }
            if pw_act != act:
                d["pw_activation"] = pw_act
            d.update(se)
            return [*pre, d]
        if pw_act != "none":
            raise Unsupported("unexpected pw act")
        d = {
            "kind": "mbconv",
            "expansion": 1,
            "kernel": k,
            "stride": s,
            **extra,
            "out_channels": cout,
            "activation": act,
            "_in": cin,
            "_mid": cin,
        }
        d.update(se)
        d["_skip"], d["_auto"] = b.has_skip, s == 1 and cin == cout
        return [*pre, d]
    if t == "CondConvResidual":
        return [condconv_layer(b, prefer_expanded)]
    if t == "InvertedResidual" and any(type(c).__name__ == "MixedConv2d" for c in (b.conv_pw, b.conv_dw, b.conv_pwl)):
        return [mixconv_layer(b, prefer_expanded)]
    if t == "InvertedResidual":
        pre = s2d_layer(b, 0)
        ke, _ = check_conv(b.conv_pw)
        if ke != 1:
            raise Unsupported("needs k×k expansion in MBConv")
        extra = {}
        k, s = check_conv(b.conv_dw, depthwise=True, extra=extra)
        aa = aa_of(b.aa)
        if aa:
            extra["aa"] = aa
            s = b.aa.stride
        kp, _ = check_conv(b.conv_pwl)
        if kp != 1:
            raise Unsupported("needs k×k projection in MBConv")
        no_bias(b.conv_pw, b.conv_dw, b.conv_pwl)
        cin, mid, cout = b.conv_pw.in_channels, b.conv_pw.out_channels, b.conv_pwl.out_channels
        if pre:
            raise Unsupported("needs s2d in InvertedResidual")
        act = norm_act(b.bn1)
        if norm_act(b.bn2) != act or norm_act(b.bn3) != "none":
            raise Unsupported("needs mixed activations in a block")
        d = {
            "kind": "mbconv",
            "kernel": k,
            "stride": s,
            **extra,
            "out_channels": cout,
            "activation": act,
            "_in": cin,
            "_mid": mid,
        }
        if mid == cin:
            d["expansion"] = 1
            d["expand_always"] = True
        d.update(se_fields(b.se, cin, mid, prefer_expanded))
        d["_skip"], d["_auto"] = b.has_skip, s == 1 and cin == cout
        return [d]
    if t == "EdgeResidual":
        extra = {}
        k, s = check_conv(b.conv_exp, where=" in Fused-MBConv", extra=extra)
        aa = aa_of(b.aa)
        if aa:
            extra["aa"] = aa
            s = b.aa.stride
        kp, _ = check_conv(b.conv_pwl)
        if kp != 1:
            raise Unsupported("needs k×k projection in Fused-MBConv")
        no_bias(b.conv_exp, b.conv_pwl)
        cin, mid, cout = b.conv_exp.in_channels, b.conv_exp.out_channels, b.conv_pwl.out_channels
        act = norm_act(b.bn1)
        if norm_act(b.bn2) != "none":
            raise Unsupported("unexpected act")
        d = {
            "kind": "fused_mbconv",
            "kernel": k,
            "stride": s,
            **extra,
            "out_channels": cout,
            "activation": act,
            "_in": cin,
            "_mid": mid,
        }
        if mid == cin:
            d["expansion"] = 1
            d["keep_projection"] = True
        d.update(se_fields(b.se, cin, mid, prefer_expanded))
        d["_skip"], d["_auto"] = b.has_skip, s == 1 and cin == cout
        return [d]
    if t == "ConvBnAct":
        extra = {}
        k, s = check_conv(b.conv, extra=extra)
        aa = aa_of(b.aa)
        if aa:
            extra["aa"] = aa
            s = b.aa.stride
        no_bias(b.conv)
        cin, cout = b.conv.in_channels, b.conv.out_channels
        act = norm_act(b.bn1)
        if b.has_skip:
            return [
                {
                    "kind": "fused_mbconv",
                    "expansion": 1,
                    "kernel": k,
                    "stride": s,
                    **extra,
                    "out_channels": cout,
                    "activation": act,
                    "_in": cin,
                    "_mid": cin,
                    "_skip": True,
                    "_auto": True,
                }
            ]
        return [
            {
                "kind": "conv",
                "kernel": k,
                "stride": s,
                **extra,
                "out_channels": cout,
                "activation": act,
                "_in": cin,
                "_skip": False,
                "_auto": False,
            }
        ]
    if t == "CondConvResidual":
        raise Unsupported("needs CondConv")
    if t == "UniversalInvertedResidual":
        return [uir_layer(b)]
    if t == "MobileAttention":
        raise Unsupported("needs attention")
    raise Unsupported(f"needs block {t}")


def expansion_form(group: list[dict]) -> dict:
    """Write the expanded width as `expansion: t, expanded_divisor: 8` when that reproduces every copy."""
    first = group[0]
    if first["kind"] not in ("mbconv", "fused_mbconv", "mixconv", "condconv") or "expansion" in first:
        return {}
    for t in range(2, 13):
        if all(make_divisible(g["_in"] * t, 8) == g["_mid"] for g in group):
            exact = all(g["_in"] * t == g["_mid"] for g in group)
            return {"expansion": t} if exact else {"expansion": t, "expanded_divisor": 8}
    return None


def same_but_input(a: dict, b: dict) -> bool:
    keys = set(a) | set(b)
    skip = {"_in", "_mid", "_skip", "_auto", "stride", "residual", "aa"}
    return all(a.get(k) == b.get(k) for k in keys - skip) and b.get("stride") == 1


def group_blocks(layers: list[dict]) -> list[dict]:
    """Consecutive identical blocks → one layer with repeat (copies use stride 1 and in = out)."""
    out: list[list[dict]] = []
    for d in layers:
        prev = out[-1] if out else None
        if (
            prev
            and d["kind"] not in ("conv",)
            and same_but_input(prev[0], d)
            and d["_in"] == prev[-1]["out_channels"]
            and d["_in"] == d["out_channels"]
        ):
            trial = prev + [d]
            # One residual setting must describe every copy: auto, or false for all (noskip stages).
            skips = {x["_skip"] for x in trial}
            auto_ok = all(x["_skip"] == x["_auto"] for x in trial) or skips == {False}
            # Group copies only when one expansion rule describes them all (integer t), or, when the first
            # block's width is no integer t of its input (MobileNetV3's 200, 184 …; EdgeTPU's fc), when every
            # copy has the same expanded width.
            ef = expansion_form(trial)
            mids_equal = len({x.get("_mid") for x in trial}) == 1
            fractional = expansion_form([trial[0]]) is None
            if auto_ok and (ef is not None or (mids_equal and fractional)):
                prev.append(d)
                continue
        out.append([d])
    result = []
    for g in out:
        d = dict(g[0])
        d.pop("residual", None)
        if not all(x["_skip"] == x["_auto"] for x in g):
            d["residual"] = g[0]["_skip"]
        elif d["kind"] == "dwsep" and any(x["_skip"] for x in g):
            d["residual"] = "auto"
        if d["kind"] == "dwsep" and d.get("residual") is False:
            d.pop("residual")
        if d["kind"] in ("mbconv", "fused_mbconv", "mixconv", "condconv") and "expansion" not in d:
            ef = expansion_form(g)
            if ef is not None:
                d.update(ef)
            else:
                d["expanded_channels"] = d["_mid"]
        if len(g) > 1:
            d["repeat"] = len(g)
        result.append(d)
    return result


def head_layers(m, cls: str) -> list[dict]:
    tail: list[dict] = []
    gp = m.global_pool
    if getattr(gp, "pool_type", "avg") != "avg":
        raise Unsupported(f"needs pool {gp.pool_type}")
    if cls == "EfficientNet":
        if isinstance(m.conv_head, nn.Identity):
            pass
        else:
            k, s = check_conv(m.conv_head)
            no_bias(m.conv_head)
            tail.append(
                {
                    "name": "head",
                    "kind": "conv",
                    "out_channels": m.conv_head.out_channels,
                    "kernel": k,
                    "activation": norm_act(m.bn2),
                }
            )
        tail.append({"kind": "pool"})
        if m.drop_rate:
            tail.append({"kind": "dropout", "p": m.drop_rate})
    else:
        tail.append({"kind": "pool"})
        if not isinstance(m.conv_head, nn.Identity) and not isinstance(m.norm_head, nn.Identity):
            # MobileNetV4: pool → 1×1 conv → norm → act on the C×1×1 map: a conv layer after the pool
            k, s = check_conv(m.conv_head)
            no_bias(m.conv_head)
            act = norm_act(m.norm_head)
            if act != "none" or not isinstance(m.act2, nn.Identity):
                act = act if act != "none" else act_of(m.act2)
            tail.append(
                {
                    "name": "head",
                    "kind": "conv",
                    "out_channels": m.conv_head.out_channels,
                    "kernel": k,
                    "activation": act,
                }
            )
        elif not isinstance(m.conv_head, nn.Identity):
            k, s = check_conv(m.conv_head)
            if k != 1:
                raise Unsupported("needs k×k head after pooling")
            d = {
                "name": "head",
                "kind": "linear",
                "out_features": m.conv_head.out_channels,
                "activation": act_of(m.act2),
            }
            if m.conv_head.bias is None:
                d["bias"] = False
            tail.append(d)
        if m.drop_rate:
            tail.append({"kind": "dropout", "p": m.drop_rate})
    cl = m.classifier
    if not isinstance(cl, nn.Linear):
        raise Unsupported(f"needs classifier {type(cl).__name__}")
    tail.append({"kind": "linear", "out_features": cl.out_features, **({} if cl.bias is not None else {"bias": False})})

    return tail


def _ghost(m) -> str:
    kinds = {type(x).__name__ for x in m.modules()}
    out = ["needs Ghost module"]
    if "GhostModuleV2" in kinds:
        out.append("needs DFC attention")
    if "GhostModuleV3" in kinds or "RepGhostModule" in kinds:
        out.append("needs re-parameterized branches")
    return "; ".join(out)


# Model classes not built by the EfficientNet builder, and what the spec format lacks for each (from their
# modules: ghostnet.py, repghost.py, lcnetv2.py, mobilenetv5.py).
OTHER_CLASSES = {
    "GhostNet": _ghost,
    "RepGhostNet": _ghost,
    "LCNetV2": lambda m: "needs re-parameterized multi-branch depthwise (RepDepthwiseSeparable); needs dwsep with SE",
    "MobileNetV5": lambda m: (
        "needs UIR kind; needs attention; needs RMSNorm; needs GELU; needs layer scale; "
        "needs multi-scale fusion adapter"
    ),
    "MobileNetV5Encoder": lambda m: (
        "needs UIR kind; needs attention; needs RMSNorm; needs GELU; needs layer scale; "
        "needs multi-scale fusion adapter"
    ),
}


def convert(name: str) -> tuple[dict, dict]:
    """(spec dict, notes) for timm model ``name``; raises Unsupported."""
    m = timm.create_model(name, pretrained=False, device="meta")
    NORMS_SEEN.clear()
    cls = type(m).__name__
    if cls not in ("EfficientNet", "MobileNetV3"):
        raise Unsupported(OTHER_CLASSES[cls](m) if cls in OTHER_CLASSES else f"needs model class {cls}")
    size = m.pretrained_cfg["input_size"]
    prefer_expanded = cls == "MobileNetV3"
    stem_extra: dict = {}
    try:
        k, s = check_conv(m.conv_stem, extra=stem_extra)
        no_bias(m.conv_stem)
        stem_act = norm_act(m.bn1)
    except Unsupported as exc:
        missing0 = [str(exc)]
        k, s, stem_act = 3, 2, "relu"
    else:
        missing0 = []
    stem = {
        "name": "stem",
        "kind": "conv",
        "out_channels": m.conv_stem.out_channels,
        "kernel": k,
        "stride": s,
        **stem_extra,
        "activation": stem_act,
    }
    blocks: list[dict] = []
    missing: list[str] = missing0
    for stage in m.blocks:
        sb = []
        for b in stage:
            try:
                sb.extend(block_layer(b, prefer_expanded))
            except Unsupported as exc:
                if str(exc) not in missing:
                    missing.append(str(exc))
        blocks += group_blocks(sb)
    try:
        tail = head_layers(m, cls)
    except Unsupported as exc:
        missing.append(str(exc))
    if missing:
        missing = ["needs explicit SE width" if m.startswith("needs SE width rule") else m for m in missing]
        raise Unsupported("; ".join(dict.fromkeys(missing)))

    acts = Counter(d["activation"] for d in blocks)
    default_act = acts.most_common(1)[0][0]
    body = [stem, *blocks, *[t for t in tail if t["kind"] == "conv"]]
    for d in body:
        if d.get("activation") == default_act:
            d.pop("activation")
        if d.get("se_activation") == (d.get("activation") or default_act):
            d.pop("se_activation")
        if d.get("se_gate") == "sigmoid":
            d.pop("se_gate")
    for d in blocks:
        for key in ("_mid", "_in", "_skip", "_auto"):
            d.pop(key, None)
    for d in tail:
        if d["kind"] == "linear" and d.get("activation") == "none":
            d.pop("activation")
    norms = {n for n, _ in NORMS_SEEN}
    if len(norms) != 1:
        raise Unsupported(f"needs mixed norms {sorted(norms)}")
    (norm,) = norms
    defaults = {"activation": default_act, "norm": norm, "bias": False}
    sizes = {g for _, g in NORMS_SEEN}
    if norm in ("groupnorm", "evonorm_s0"):
        if len(sizes) != 1:
            raise Unsupported(f"needs per-layer norm groups {sorted(sizes)}")
        defaults["norm_group_size"] = sizes.pop()
    spec = {
        "name": name,
        "input": {"channels": size[0], "height": size[1], "width": size[2]},
        "defaults": defaults,
        "layers": [stem, *blocks, *tail],
    }
    notes = {"class": cls, "pad": "same" if any(type(c).__name__ == "Conv2dSame" for c in m.modules()) else ""}
    return spec, notes


ORDER = [
    "name",
    "kind",
    "expansion",
    "expand_always",
    "keep_projection",
    "expanded_channels",
    "expanded_divisor",
    "kernel",
    "start_kernel",
    "mid_kernel",
    "mid_channels",
    "kernels",
    "experts",
    "expansion_groups",
    "projection_groups",
    "stride",
    "padding",
    "dilation",
    "group_size",
    "aa",
    "out_channels",
    "out_features",
    "repeat",
    "activation",
    "se",
    "se_base",
    "se_divisor",
    "se_activation",
    "se_gate",
    "se_channels",
    "pw_activation",
    "layer_scale",
    "residual",
    "attention",
    "bias",
    "p",
]


def flow(d: dict) -> str:
    parts = []
    for k in sorted(d, key=ORDER.index):
        v = d[k]
        if isinstance(v, bool):
            v = "true" if v else "false"
        parts.append(f"{k}: {v}")
    return "{" + ", ".join(parts) + "}"


def to_yaml(spec: dict, header: list[str]) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append(f"name: {spec['name']}")
    i = spec["input"]
    lines.append(f"input: {{channels: {i['channels']}, height: {i['height']}, width: {i['width']}}}")
    d = spec["defaults"]
    extra = f", norm_group_size: {d['norm_group_size']}" if "norm_group_size" in d else ""
    lines.append(f"defaults: {{activation: {d['activation']}, norm: {d['norm']}{extra}, bias: false}}")
    lines.append("layers:")
    lines += [f"  - {flow(layer)}" for layer in spec["layers"]]
    return "\n".join(lines) + "\n"


def analyze_text(text: str, res: int | None = None):
    if res is not None:
        import re

        text = re.sub(r"height: \d+, width: \d+", f"height: {res}, width: {res}", text, count=1)
    r = costmodel.analyze(costmodel.loads(text))
    return r.totals["params"], r.totals["macs"], list(r.output)


def main() -> None:
    figures = {}
    for line in Path(sys.argv[1]).read_text().splitlines():
        row = json.loads(line)
        figures[row["model"]] = row
    names = sys.argv[2:] or list(figures)
    status = {}
    for name in names:
        try:
            spec, notes = convert(name)
        except Unsupported as exc:
            status[name] = str(exc)
            print(f"{name}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001
            status[name] = f"ERROR {type(exc).__name__}: {exc}"
            print(f"{name}: ERROR {exc}")
            continue
        fd, f193 = figures[name]["default"], figures[name]["r193"]
        h = spec["input"]["height"]
        header = [
            f"timm {timm.__version__} `{name}` ({notes['class']}), "
            f"built with timm.create_model('{name}', pretrained=False).",
            f"Matches it exactly at {h}×{h}: params {fd['params']:,}, MACs {fd['macs']:,} (FlopCounterMode ÷ 2), "
            f"output {tuple(fd['output'])};",
            f"and at 193×193: MACs {f193['macs']:,}.",
        ]
        if notes["pad"]:
            header.append("timm pads its stride-2 convs 'same' (Conv2dSame); with odd kernels that gives the same")
            header.append("output size, ceil(H / s), and the same counts as padding k // 2.")
        header.append(
            "Generated by specs/timm/_tools/convert.py from the built modules; checked by tests/test_timm.py."
        )
        text = to_yaml(spec, header)
        try:
            got_d = analyze_text(text)
            got_193 = analyze_text(text, 193)
        except Exception as exc:  # noqa: BLE001
            status[name] = f"SPECERROR {exc}"
            print(f"{name}: SPECERROR {exc}")
            continue
        want_d = (fd["params"], fd["macs"], fd["output"])
        want_193 = (f193["params"], f193["macs"], f193["output"])
        if (got_d[0], got_d[1], tuple(got_d[2])) == (want_d[0], want_d[1], tuple(want_d[2])) and (
            got_193[0],
            got_193[1],
            tuple(got_193[2]),
        ) == (want_193[0], want_193[1], tuple(want_193[2])):
            (OUT / f"{name}.yaml").write_text(text)
            status[name] = "shipped"
            print(f"{name}: shipped")
        else:
            status[name] = f"MISMATCH got {got_d} {got_193} want {want_d} {want_193}"
            print(f"{name}: MISMATCH got {got_d} {got_193} want {want_d} {want_193}")
    if not sys.argv[2:]:  # a full run records every model's status for docs/zoo.md (zoo_table.py)
        (Path(__file__).parent / "status.json").write_text(json.dumps(status, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
