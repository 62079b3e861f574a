"""Read a built timm GhostNetV3 or RepGhostNet model and write its costmodel spec.

    cd specs/timm/_tools && PYTHONPATH=../../.. python convert_repghost.py figures.jsonl ghostnetv3_100 ...

writes specs/timm/<model>.yaml: GhostNetV3's GhostBottleneckV3 as ``ghost_bottleneck`` with ``rep_branches``,
RepGhostNet's RepGhostBottleneck as ``repghost_bottleneck``, both in timm's training form (the form
``create_model`` builds and ``parameters()`` counts).

Like convert_ghost.py, it walks the built modules, refuses anything it does not recognise, and checks the spec
against figures.jsonl at the default size and at 193 before writing it. It also checks the spec with ``form:
deployed`` on every block against the model after ``timm.utils.reparameterize_model`` (on the CPU)
and writes those figures into the header.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import timm
import torch
import torch.nn as nn
from convert import ORDER, OUT, Unsupported, analyze_text
from convert_ghost import conv_of
from timm.utils.model import reparameterize_model
from torch.utils.flop_counter import FlopCounterMode

from costmodel.spec.scaling import make_divisible

KEYS = [*ORDER[: ORDER.index("attention") + 1], "rep_branches", "reparam", "form", *ORDER[ORDER.index("bias") :]]


def flow(d: dict) -> str:
    """One layer as a YAML flow mapping, keys in convert.py's order (with this converter's keys)."""
    parts = []
    for k in sorted(d, key=KEYS.index):
        v = d[k]
        parts.append(f"{k}: {('true' if v else 'false') if isinstance(v, bool) else v}")
    return "{" + ", ".join(parts) + "}"


def act_of(m: nn.Module) -> bool:
    name = type(m).__name__
    if name not in ("ReLU", "Identity"):
        raise Unsupported(f"needs activation {name}")
    return name == "ReLU"


def conv_bn(cbn: nn.Module, groups: int = 1) -> tuple[int, int]:
    """A timm ConvBnAct without activation: conv (no bias) → BatchNormAct2d(act=Identity)."""
    if type(cbn).__name__ != "ConvBnAct" or type(cbn.bn1.act).__name__ != "Identity" or cbn.has_skip:
        raise Unsupported(f"unexpected branch {cbn}")
    return conv_of(cbn.conv, groups)


def ghost_v3(g: nn.Module, act: bool) -> dict:
    """GhostModuleV3: b primary 1×1 conv-BN branches; cheap b 3×3 dw conv-BN + 1×1 dw conv-BN + BN identity."""
    if type(g).__name__ != "GhostModuleV3" or g.infer_mode:
        raise Unsupported("not a training-form GhostModuleV3")
    b = g.num_conv_branches
    if len(g.primary_rpr_conv) != b or len(g.cheap_rpr_conv) != b:
        raise Unsupported("uneven branch counts")
    if g.primary_rpr_scale is not None or g.primary_rpr_skip is not None:
        raise Unsupported("needs a primary scale / identity branch")
    init = math.ceil(g.out_chs / 2)
    for br in g.primary_rpr_conv:
        if conv_bn(br) != (1, 1) or br.conv.out_channels != init:
            raise Unsupported("needs a non-default primary conv")
    for br in g.cheap_rpr_conv:
        if conv_bn(br, init) != (3, 1) or br.conv.out_channels != init:
            raise Unsupported("needs a non-default cheap conv")
    if conv_bn(g.cheap_rpr_scale, init) != (1, 1) or not isinstance(g.cheap_rpr_skip, nn.BatchNorm2d):
        raise Unsupported("needs a non-default cheap scale / identity branch")
    if act_of(g.primary_activation) != act or act_of(g.cheap_activation) != act:
        raise Unsupported("unexpected Ghost activation")
    if g.out_chs % 2:
        raise Unsupported("odd ghost width (timm's V3 keeps 2·ceil(out/2) channels)")
    d: dict = {"rep_branches": b}
    if g.mode == "shortcut":
        d["attention"] = "dfc"
    elif g.mode != "original":
        raise Unsupported(f"mode {g.mode}")
    return d


def repghost_module(g: nn.Module, act: bool) -> dict:
    """RepGhostModule: 1×1 primary conv-BN-act to out, 3×3 dw cheap conv-BN, [BN identity], act."""
    if type(g).__name__ != "RepGhostModule" or not isinstance(g.cheap_operation, nn.Sequential):
        raise Unsupported("not a training-form RepGhostModule")
    primary, cheap = g.primary_conv[0], g.cheap_operation[0]
    if conv_of(primary) != (1, 1) or conv_of(cheap, primary.out_channels) != (3, 1):
        raise Unsupported("needs a non-default RepGhost module")
    if cheap.out_channels != primary.out_channels or primary.out_channels != g.out_chs:
        raise Unsupported("unexpected RepGhost widths")
    if act_of(g.primary_conv[2]) != act or act_of(g.relu) != act:
        raise Unsupported("unexpected RepGhost activation")
    n = len(g.fusion_bn)
    if n > 1 or len(g.fusion_conv) != n or (n and not isinstance(g.fusion_conv[0], nn.Identity)):
        raise Unsupported("needs fusion branches other than one BN identity")
    return {} if n else {"reparam": False}


def se_of(b: nn.Module, mid: int) -> dict:
    if b.se is None or isinstance(b.se, nn.Identity):
        return {}
    rd = b.se.conv_reduce.out_channels
    for ratio in (0.25, 0.5, 0.125):
        if make_divisible(math.floor(mid * ratio), 4) == rd:
            break
    else:
        raise Unsupported(f"needs SE width rule (rd={rd}, mid={mid})")
    if type(b.se.act1).__name__ != "ReLU" or type(b.se.gate).__name__ != "Hardsigmoid":
        raise Unsupported("SE act / gate")
    return {"se": ratio, "se_base": "expanded", "se_divisor": 4, "se_gate": "hardsigmoid"}


def bottleneck(b: nn.Module) -> dict:
    name = type(b).__name__
    mid = b.ghost1.out_chs
    cout = b.ghost2.out_chs
    k = 3
    if name == "GhostBottleneckV3":
        cin = b.ghost1.primary_rpr_conv[0].conv.in_channels
        d: dict = {"kind": "ghost_bottleneck", "mid_channels": mid, "out_channels": cout, "_in": cin}
        d.update(ghost_v3(b.ghost1, True))
        two = ghost_v3(b.ghost2, False)
        if two.get("attention") or two["rep_branches"] != d["rep_branches"]:
            raise Unsupported("ghost2 differs from ghost1")
        if b.stride > 1:
            if len(b.dw_rpr_conv) != d["rep_branches"] or b.dw_rpr_skip is not None:
                raise Unsupported("unexpected depthwise branches")
            ks = {conv_bn(br, mid) for br in b.dw_rpr_conv}
            if len(ks) != 1 or conv_bn(b.dw_rpr_scale, mid) != (1, next(iter(ks))[1]):
                raise Unsupported("unexpected depthwise branches")
            k, d["stride"] = ks.pop()
    elif name == "RepGhostBottleneck":
        cin = b.ghost1.primary_conv[0].in_channels
        d = {"kind": "repghost_bottleneck", "mid_channels": mid, "out_channels": cout, "_in": cin}
        d.update(repghost_module(b.ghost1, True))
        if repghost_module(b.ghost2, False) != {k: v for k, v in d.items() if k == "reparam"}:
            raise Unsupported("ghost2 differs from ghost1")
        if b.conv_dw is not None:
            k, d["stride"] = conv_of(b.conv_dw, mid)
    else:
        raise Unsupported(f"needs {name}")
    if isinstance(b.shortcut, nn.Sequential) and len(b.shortcut):
        k2, _ = conv_of(b.shortcut[0], cin)
        if d.get("stride", 1) > 1 and k2 != k:
            raise Unsupported("shortcut kernel ≠ dw kernel")
        k = k2
    d["kernel"] = k
    d.setdefault("stride", 1)
    d.update(se_of(b, mid))
    return d


def convert(name: str) -> dict:
    m = timm.create_model(name, pretrained=False, device="meta")
    family = type(m).__name__
    if family not in ("GhostNet", "RepGhostNet"):
        raise Unsupported(f"not a GhostNet / RepGhostNet: {family}")
    k, s = conv_of(m.conv_stem)
    layers: list[dict] = [
        {"name": "stem", "kind": "conv", "kernel": k, "stride": s, "out_channels": m.conv_stem.out_channels}
    ]
    for d in (bottleneck(b) for stage in m.blocks[:-1] for b in stage):  # equal blocks with in == out → repeat
        prev = layers[-1]
        same = {x: y for x, y in d.items() if x != "_in"} == {
            x: y for x, y in prev.items() if x not in ("_in", "repeat")
        }
        if prev["kind"] == d["kind"] and same and d["_in"] == d["out_channels"] and d["stride"] == 1:
            prev["repeat"] = prev.get("repeat", 1) + 1
        else:
            layers.append(d)
    for d in layers:
        d.pop("_in", None)
    head = m.blocks[-1][0]
    layers.append({"kind": "conv", "kernel": conv_of(head.conv)[0], "out_channels": head.conv.out_channels})
    layers.append({"kind": "pool"})
    layers.append({"name": "head", "kind": "linear", "out_features": m.conv_head.out_channels, "activation": "relu"})
    if m.drop_rate:
        layers.append({"kind": "dropout", "p": m.drop_rate})
    layers.append({"kind": "linear", "out_features": m.classifier.out_features})
    return {"name": name, "family": family, "input": m.pretrained_cfg["input_size"], "layers": layers}


def deployed_figures(name: str) -> list:
    """timm's re-parameterised model (reparameterize_model; on the CPU: GhostNetV3 fuses into CPU tensors)."""
    m = reparameterize_model(timm.create_model(name, pretrained=False).eval())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = m(torch.zeros(1, *m.pretrained_cfg["input_size"]))
    return [sum(p.numel() for p in m.parameters()), counter.get_total_flops() // 2, list(y.shape[1:])]


def deploy(text: str) -> str:
    """The spec with ``form: deployed`` on every re-parameterisable block."""
    return re.sub(r"(kind: (?:ghost_bottleneck|repghost_bottleneck), [^}]*)}", r"\1, form: deployed}", text)


def main() -> None:
    figures = {json.loads(x)["model"]: json.loads(x) for x in Path(sys.argv[1]).read_text().splitlines()}
    for name in sys.argv[2:]:
        try:
            spec = convert(name)
        except Unsupported as exc:
            print(f"{name}: {exc}")
            continue
        fd, f193 = figures[name]["default"], figures[name]["r193"]
        c, h, w = spec["input"]
        family = {"GhostNet": "GhostNetV3", "RepGhostNet": "RepGhostNet"}[spec["family"]]
        body = [f"name: {name}", f"input: {{channels: {c}, height: {h}, width: {w}}}"]
        body += ["defaults: {activation: relu, norm: batchnorm, bias: false}", "layers:"]
        body += ["  - " + flow(d) for d in spec["layers"]]
        text = "\n".join(body) + "\n"
        got = [analyze_text(text), analyze_text(text, 193)]
        want = [[f["params"], f["macs"], f["output"]] for f in (fd, f193)]
        dep_got, dep_want = list(analyze_text(deploy(text))), deployed_figures(name)
        if [list(g) for g in got] != want or dep_got != dep_want:
            print(f"{name}: MISMATCH got {got} {dep_got} want {want} {dep_want}")
            continue
        header = [
            f"timm {timm.__version__} `{name}` ({family}), built with timm.create_model('{name}', pretrained=False),",
            "in its training form (parallel conv-BN branches, which parameters() counts).",
            f"Matches it exactly at {h}×{w}: params {fd['params']:,}, MACs {fd['macs']:,} (FlopCounterMode ÷ 2), "
            f"output {tuple(fd['output'])};",
            f"and at 193×193: MACs {f193['macs']:,}.",
            f"With form: deployed on every {spec['layers'][1]['kind']} it matches the model after",
            f"timm.utils.reparameterize_model: params {dep_want[0]:,}, MACs {dep_want[1]:,}.",
            "Generated by specs/timm/_tools/convert_repghost.py from the built modules; checked by tests/test_timm.py.",
        ]
        (OUT / f"{name}.yaml").write_text("\n".join(f"# {x}" for x in header) + "\n" + text)
        print(f"{name}: shipped")


if __name__ == "__main__":
    main()
