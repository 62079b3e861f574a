"""Read a built timm GhostNet / GhostNetV2 model and write its costmodel spec (ghost_bottleneck layers).

    cd specs/timm/_tools && PYTHONPATH=../../.. python convert_ghost.py figures.jsonl ghostnet_100 ...

writes specs/timm/<model>.yaml.

Like convert.py, it walks the built modules and checks the spec against figures.jsonl at the default size and
at 193 before writing it. GhostNetV3 (GhostBottleneckV3, re-parameterised branches) is refused.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import timm
import torch.nn as nn
from convert import OUT, Unsupported, analyze_text, flow

from costmodel.spec.scaling import make_divisible


def conv_of(conv: nn.Conv2d, groups: int = 1) -> tuple[int, int]:
    k, k2 = conv.kernel_size
    if k != k2 or conv.padding != (k // 2, k // 2) or conv.groups != groups or conv.bias is not None:
        raise Unsupported(f"unexpected conv {conv}")
    return k, conv.stride[0]


def ghost_module(g, act: bool) -> dict:
    """Check a GhostModule(V2) is timm's standard one (1×1 primary, 3×3 cheap, ratio 2)."""
    primary, cheap = g.primary_conv[0], g.cheap_operation[0]
    if conv_of(primary) != (1, 1) or conv_of(cheap, primary.out_channels) != (3, 1):
        raise Unsupported("needs a non-default Ghost module")
    if cheap.out_channels != primary.out_channels or primary.out_channels != math.ceil(g.out_chs / 2):
        raise Unsupported("needs Ghost ratio ≠ 2")
    has_act = not isinstance(g.primary_conv[2], nn.Identity)
    if has_act != act:
        raise Unsupported("unexpected Ghost activation")
    if has_act and type(g.primary_conv[2]).__name__ != "ReLU":
        raise Unsupported("needs a Ghost activation other than relu")
    return {"attention": "dfc"} if type(g).__name__ == "GhostModuleV2" else {}


def bottleneck(b) -> dict:
    if type(b).__name__ != "GhostBottleneck":
        raise Unsupported("needs re-parameterized branches (GhostBottleneckV3)")
    cin, mid = b.ghost1.primary_conv[0].in_channels, b.ghost1.out_chs
    cout = b.ghost2.out_chs
    d: dict = {"kind": "ghost_bottleneck", "mid_channels": mid, "out_channels": cout, "_in": cin}
    d.update(ghost_module(b.ghost1, True))
    ghost_module(b.ghost2, False)
    k = 3
    if b.conv_dw is not None:
        k, s = conv_of(b.conv_dw, mid)
        d["stride"] = s
    if len(b.shortcut):
        k2, s2 = conv_of(b.shortcut[0], cin)
        if b.conv_dw is not None and k2 != k:
            raise Unsupported("shortcut kernel ≠ dw kernel")
        k = k2
    d["kernel"] = k
    d.setdefault("stride", 1)
    if b.se is not None:
        rd = b.se.conv_reduce.out_channels
        for ratio in (0.25, 0.5, 0.125):
            if make_divisible(math.floor(mid * ratio), 4) == rd:
                break
        else:
            raise Unsupported(f"needs SE width rule (rd={rd}, mid={mid})")
        if type(b.se.act1).__name__ != "ReLU":
            raise Unsupported("SE act")
        d.update({"se": ratio, "se_base": "expanded", "se_divisor": 4, "se_gate": "hardsigmoid"})
    return d


def convert(name: str) -> dict:
    m = timm.create_model(name, pretrained=False, device="meta")
    if type(m).__name__ != "GhostNet":
        raise Unsupported(f"not a GhostNet: {type(m).__name__}")
    k, s = conv_of(m.conv_stem)
    layers: list[dict] = [
        {"name": "stem", "kind": "conv", "kernel": k, "stride": s, "out_channels": m.conv_stem.out_channels}
    ]
    blocks = [bottleneck(b) for stage in m.blocks[:-1] for b in stage]
    for d in blocks:  # consecutive equal blocks with in == out → repeat
        prev = layers[-1]
        same = {x: y for x, y in d.items() if x != "_in"} == {
            x: y for x, y in prev.items() if x not in ("_in", "repeat")
        }
        if prev["kind"] == "ghost_bottleneck" and same and d["_in"] == d["out_channels"] and d["stride"] == 1:
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
    size = m.pretrained_cfg["input_size"]
    return {"name": name, "input": size, "layers": layers}


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
        header = [
            f"timm {timm.__version__} `{name}` (GhostNet), built with timm.create_model('{name}', pretrained=False).",
            f"Matches it exactly at {h}×{w}: params {fd['params']:,}, MACs {fd['macs']:,} (FlopCounterMode ÷ 2), "
            f"output {tuple(fd['output'])};",
            f"and at 193×193: MACs {f193['macs']:,}.",
            "Generated by specs/timm/_tools/convert_ghost.py from the built modules; checked by tests/test_timm.py.",
        ]
        lines = [f"# {x}" for x in header]
        lines += [f"name: {name}", f"input: {{channels: {c}, height: {h}, width: {w}}}"]
        lines += ["defaults: {activation: relu, norm: batchnorm, bias: false}", "layers:"]
        lines += ["  - " + flow(d) for d in spec["layers"]]
        text = "\n".join(lines) + "\n"
        got = [analyze_text(text), analyze_text(text, 193)]
        want = [[f["params"], f["macs"], f["output"]] for f in (fd, f193)]
        if [list(g) for g in got] == want:
            (OUT / f"{name}.yaml").write_text(text)
            print(f"{name}: shipped")
        else:
            print(f"{name}: MISMATCH got {got} want {want}")


if __name__ == "__main__":
    main()
