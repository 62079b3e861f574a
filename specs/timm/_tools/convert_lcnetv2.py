"""Read a built timm PP-LCNetV2 model and write its costmodel spec (rep_dwsep layers).

    PYTHONPATH=. python specs/timm/_tools/convert_lcnetv2.py [lcnetv2_small lcnetv2_base lcnetv2_large]

writes specs/timm/<model>.yaml. Like convert.py it walks the *built* modules (timm.create_model(name,
pretrained=False), no weights), refuses what the spec format lacks, groups equal consecutive blocks into
``repeat``, and writes a spec only when costmodel's params, MACs and output equal the model's (measured here
with FlopCounterMode ÷ 2 on the meta device) at the default size, at 193 and at 321.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import costmodel

OUT = Path(__file__).resolve().parents[1]
NAMES = ["lcnetv2_small", "lcnetv2_base", "lcnetv2_large"]
ORDER = ["name", "kind", "form", "kernel", "stride", "out_channels", "mid_channels", "repeat", "residual", "se",
         "out_features", "activation", "bias"]  # fmt: skip


class Unsupported(Exception):
    pass


def conv_of(conv: nn.Module, groups: int = 1) -> tuple[int, int]:
    """(kernel, stride) of a plain square conv with padding k // 2, no bias, ``groups``."""
    if type(conv) is not nn.Conv2d:
        raise Unsupported(f"unexpected conv {type(conv).__name__}")
    k, k2 = conv.kernel_size
    s, s2 = conv.stride
    if k != k2 or s != s2 or conv.padding != (k // 2, k // 2) or conv.dilation != (1, 1):
        raise Unsupported(f"unexpected conv {conv}")
    if conv.groups != groups or conv.bias is not None:
        raise Unsupported(f"unexpected conv groups/bias {conv}")
    return k, s


def conv_norm_act(cna: nn.Module, groups: int = 1, act: bool = True) -> tuple[int, int, int]:
    """(kernel, stride, out) of a timm ConvNormAct: conv → BatchNormAct2d with ReLU (or none, ``act`` false)."""
    k, s = conv_of(cna.conv, groups)
    bn = cna.bn
    if type(bn).__name__ != "BatchNormAct2d" or not isinstance(bn.drop, nn.Identity):
        raise Unsupported(f"unexpected norm {type(bn).__name__}")
    want = nn.ReLU if act else nn.Identity
    if type(bn.act) is not want:
        raise Unsupported(f"unexpected activation {type(bn.act).__name__}")
    return k, s, cna.conv.out_channels


def block(b: nn.Module) -> dict:
    """One RepDepthwiseSeparable as a layer: dwsep when it has no branches, no SE and no split, else rep_dwsep."""
    if type(b).__name__ != "RepDepthwiseSeparable":
        raise Unsupported(f"unexpected block {type(b).__name__}")
    cin = b.in_chs
    rep = b.dw_conv_list is not None
    if rep:
        kernels = [conv_norm_act(br, cin, act=False)[0] for br in b.dw_conv_list]
        strides = {conv_norm_act(br, cin, act=False)[1] for br in b.dw_conv_list}
        k = b.dw_kernel_size
        s = b.stride
        want = [ki for ki in range(k, 0, -2) if s == 1 or ki != 1]
        if kernels != want or strides != {s}:
            raise Unsupported(f"unexpected branches {kernels}")
        if type(b.dw_act) is not nn.ReLU:
            raise Unsupported("unexpected dw activation")
    else:
        k, s, _ = conv_norm_act(b.dw_conv, cin)
        if not isinstance(b.dw_act, nn.Identity):
            raise Unsupported("unexpected dw activation")
    d: dict = {"kind": "rep_dwsep" if rep else "dwsep", "kernel": k, "stride": s}
    if isinstance(b.pw_conv, nn.Sequential):
        _, _, mid = conv_norm_act(b.pw_conv[0])
        _, _, cout = conv_norm_act(b.pw_conv[1])
        d["mid_channels"] = mid
    else:
        _, _, cout = conv_norm_act(b.pw_conv)
    d["out_channels"] = cout
    if not isinstance(b.se, nn.Identity):
        se = b.se
        rd = se.fc1.out_channels
        if (
            rd != cin // 4
            or type(se.act) is not nn.ReLU
            or type(se.gate).__name__ != "Sigmoid"
            or type(se.bn) is not nn.Identity
        ):
            raise Unsupported("unexpected SE")
        d["se"] = 0.25
    if b.use_shortcut:
        d["residual"] = "auto"
    if not rep and ("se" in d or "mid_channels" in d):
        raise Unsupported("a single-branch block with SE or a split pointwise conv")
    d["_in"] = cin
    return d


def convert(name: str) -> dict:
    m = timm.create_model(name, pretrained=False, device="meta")
    if type(m).__name__ != "LCNetV2":
        raise Unsupported(f"not an LCNetV2: {type(m).__name__}")
    k, s, c = conv_norm_act(m.stem[0])
    layers: list[dict] = [{"name": "stem", "kind": "conv", "kernel": k, "stride": s, "out_channels": c}]
    loose = ("_in", "repeat", "name", "stride", "residual")
    for d in [block(m.stem[1])] + [block(b) for stage in m.stages for b in stage]:
        prev = layers[-1]
        same = {x: y for x, y in d.items() if x not in loose} == {x: y for x, y in prev.items() if x not in loose}
        # a repeat is stride 1 with in == out; the group's first block may change the shape (stride, width), and
        # then timm's use_shortcut, which needs the shape kept, says nothing of it: it takes the repeats' residual
        first_kept = prev.get("stride") == 1 and prev.get("_in") == prev.get("out_channels")
        residual_ok = d.get("residual") == prev.get("residual") or not (first_kept or prev.get("repeat", 1) > 1)
        if same and residual_ok and d["_in"] == d["out_channels"] and d["stride"] == 1 and "name" not in prev:
            prev["repeat"] = prev.get("repeat", 1) + 1
            if "residual" in d:
                prev["residual"] = d["residual"]
        else:
            layers.append(d)
    for d in layers:
        d.pop("_in", None)
    if m.global_pool.pool_type != "avg":
        raise Unsupported("unexpected pool")
    layers.append({"kind": "pool"})
    k, s = conv_of(m.conv_head)
    if k != 1 or type(m.act2) is not nn.ReLU:
        raise Unsupported("unexpected head")
    layers.append({"name": "head", "kind": "linear", "out_features": m.conv_head.out_channels, "activation": "relu",
                   "bias": False})  # fmt: skip
    if m.drop_rate:
        layers.append({"kind": "dropout", "p": m.drop_rate})
    layers.append({"kind": "linear", "out_features": m.classifier.out_features})
    return {"name": name, "input": tuple(m.pretrained_cfg["input_size"]), "layers": layers}


def flow(d: dict) -> str:
    parts = []
    for key in sorted(d, key=ORDER.index):
        v = d[key]
        parts.append(f"{key}: {('true' if v else 'false') if isinstance(v, bool) else v}")
    return "{" + ", ".join(parts) + "}"


def measure(name: str, res: int | None) -> tuple[int, int, list[int]]:
    """The timm model's params, FlopCounterMode ÷ 2 and output shape (meta device, batch 1, eval)."""
    m = timm.create_model(name, pretrained=False, device="meta").eval()
    size = tuple(m.pretrained_cfg["input_size"])
    if res is not None:
        size = (size[0], res, res)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = m(torch.zeros(1, *size, device="meta"))
    return sum(p.numel() for p in m.parameters()), counter.get_total_flops() // 2, list(y.shape[1:])


def ours(text: str, res: int | None) -> tuple[int, int, list[int]]:
    if res is not None:
        text = re.sub(r"height: \d+, width: \d+", f"height: {res}, width: {res}", text, count=1)
    r = costmodel.analyze(costmodel.loads(text))
    return r.totals["params"], r.totals["macs"], list(r.output)


def main() -> None:
    for name in sys.argv[1:] or NAMES:
        try:
            spec = convert(name)
        except Unsupported as exc:
            print(f"{name}: {exc}")
            continue
        c, h, w = spec["input"]
        want = {res: measure(name, res) for res in (None, 193, 321)}
        header = [
            f"timm {timm.__version__} `{name}` (LCNetV2), built with timm.create_model('{name}', pretrained=False).",
            f"Matches it exactly at {h}×{w}: params {want[None][0]:,}, MACs {want[None][1]:,} (FlopCounterMode ÷ 2), "
            f"output {tuple(want[None][2])};",
            f"and at 193×193: MACs {want[193][1]:,}; at 321×321: MACs {want[321][1]:,}.",
            "This is the training form timm builds (parallel depthwise conv-BN branches 5×5, 3×3 [, 1×1]); set",
            "`form: deployed` on the rep_dwsep layers for the form after timm's reparameterize_model(model).",
            "Generated by specs/timm/_tools/convert_lcnetv2.py from the built modules; checked by tests/test_timm.py.",
        ]
        lines = [f"# {x}" for x in header]
        lines += [f"name: {name}", f"input: {{channels: {c}, height: {h}, width: {w}}}"]
        lines += ["defaults: {activation: relu, norm: batchnorm, bias: false}", "layers:"]
        lines += ["  - " + flow(d) for d in spec["layers"]]
        text = "\n".join(lines) + "\n"
        got = {res: ours(text, res) for res in want}
        if got == want:
            (OUT / f"{name}.yaml").write_text(text)
            print(f"{name}: shipped")
        else:
            print(f"{name}: MISMATCH got {got} want {want}")


if __name__ == "__main__":
    main()
