"""timm's MobileNetV5 models as specs: the body (probe_mobilenetv5_body.py), its multi-scale fusion adapter and
the head, checked against timm at the default size, 193 and 321.

    cd specs/timm/_tools && PYTHONPATH=../../.. python convert_mobilenetv5.py [NAME ...]

MobileNetV5MultiScaleFusionAdapter (timm/models/mobilenetv5.py) takes the feature maps at ``msfa_indices`` of
``feature_info`` (0 is the stem, i the output of stage i), resizes the smaller ones to the first one's H×W
(``F.interpolate(mode='nearest')``), concatenates them on channels, runs a UniversalInvertedResidual (1×1
expand → 1×1 project, no depthwise convs, no skip), brings the map to ``output_resolution`` (16) — average
pooling when the size divides H and W, else bilinear — and applies RmsNorm2d. As a spec: the stage ends are
named ``stage{i}``, then ``concat`` (inputs: those names), ``uir``, ``resize`` (mode timm), ``norm``.
MobileNetV5 (not the encoder) adds global average pooling, the flatten and its classifier, if any.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import convert as base
import convert_attention as ca
import timm
import torch
from probe_mobilenetv5_body import body_spec
from torch.utils.flop_counter import FlopCounterMode

import costmodel

NAMES = ("mobilenetv5_300m", "mobilenetv5_300m_enc", "mobilenetv5_base")
OUT = Path(__file__).resolve().parent.parent
SIZES = (193, 321)


def spec_of(name: str) -> dict:
    """The spec of timm's ``name``: body, MSFA and head."""
    m = timm.create_model(name, pretrained=False, device="meta").eval()
    res = m.pretrained_cfg["input_size"][1]
    spec = body_spec(name, res)
    spec["name"] = name
    layers = spec["layers"]
    # the stage ends: body_spec writes the stem, then each stage's grouped layers in order
    ends = [0]
    count = 1
    for stage in m.blocks:
        grouped = base.group_blocks([d for b in stage for d in ca.block_layer(b, True)])
        count += len(grouped)
        ends.append(count - 1)
    names = []
    for idx in m.msfa_indices:
        layer = layers[ends[idx]]
        layer.setdefault("name", f"stage{idx}")
        names.append(layer["name"])
    msfa = m.msfa
    if msfa.interpolation_mode not in ("nearest", "bilinear"):
        raise base.Unsupported(f"MSFA interpolation {msfa.interpolation_mode}")
    layers.append({"kind": "concat", "inputs": names, "resize": msfa.interpolation_mode})
    (ffn,) = ca.block_layer(msfa.ffn, True)
    for key in ("_mid", "_in", "_skip", "_auto"):
        ffn.pop(key, None)
    if ffn.get("activation") in ("gelu", ca._SENTINEL):
        del ffn["activation"]
    ffn["name"] = "msfa"
    layers.append(ffn)
    oh, ow = msfa.output_resolution
    layers.append({"kind": "resize", "size": oh if oh == ow else [oh, ow], "mode": "timm"})
    layers.append({"kind": "norm"})
    if hasattr(m, "global_pool"):
        if m.global_pool.pool_type != "avg" or getattr(m, "conv_head", None) is not None:
            raise base.Unsupported("head other than avg pool")
        layers.append({"kind": "pool"})
        layers.append({"kind": "flatten"})
        if m.num_classes > 0:
            layers.append({"kind": "linear", "out_features": m.num_classes})
    if spec["defaults"]["activation"] != "gelu":
        raise base.Unsupported("a default activation other than GELU")
    for d in layers:  # timm's MobileNetV5 GELU is GELU(approximate='tanh') throughout: the default
        if d.get("activation") == "gelu":
            del d["activation"]
    spec["defaults"]["activation"] = "gelu_tanh"
    return spec


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def to_yaml(spec: dict, header: list[str]) -> str:
    """The spec as the zoo writes it: one flow mapping per layer."""
    lines = [f"# {h}" for h in header]
    lines.append(f"name: {spec['name']}")
    i = spec["input"]
    lines.append(f"input: {{channels: {i['channels']}, height: {i['height']}, width: {i['width']}}}")
    lines.append("implementation: timm")
    d = spec["defaults"]
    lines.append(f"defaults: {{activation: {d['activation']}, norm: {d['norm']}, bias: false}}")
    lines.append("layers:")
    for layer in spec["layers"]:
        keys = sorted(layer, key=lambda k: (base.ORDER.index(k) if k in base.ORDER else len(base.ORDER), k))
        lines.append("  - {" + ", ".join(f"{k}: {_value(layer[k])}" for k in keys) + "}")
    return "\n".join(lines) + "\n"


def ours(text: str, res: int | None = None) -> tuple[int, int, tuple[int, ...]]:
    """(params, MACs, output) of the spec text, at ``res`` if given."""
    if res is not None:
        text = re.sub(r"height: \d+, width: \d+", f"height: {res}, width: {res}", text, count=1)
    r = costmodel.analyze(costmodel.loads(text))
    return r.totals["params"], r.totals["macs"], tuple(r.output)


def theirs(name: str, res: int) -> tuple[int, int, tuple[int, ...]]:
    """(params, FlopCounterMode // 2, output) of timm's model on the meta device."""
    m = timm.create_model(name, pretrained=False, device="meta").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = m(torch.zeros(1, 3, res, res, device="meta"))
    return sum(p.numel() for p in m.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:])


def main() -> None:
    """Write each model's spec and compare it with timm at the default size, 193 and 321."""
    for name in sys.argv[1:] or NAMES:
        spec = spec_of(name)
        res = spec["input"]["height"]
        text = to_yaml(spec, [])
        results = {}
        for r in (res, *SIZES):
            a, b = ours(text, None if r == res else r), theirs(name, r)
            status = "exact" if a == b else "MISMATCH"
            print(f"{name} at {r}: spec {a}, timm {b}: {status}")
            if a != b:
                raise SystemExit(1)
            results[r] = a
        p, macs, out = results[res]
        header = [
            f"timm {timm.__version__} `{name}` (MobileNetV5), "
            f"built with timm.create_model('{name}', pretrained=False).",
            f"Matches it exactly at {res}×{res}: params {p:,}, MACs {macs:,} (FlopCounterMode ÷ 2), output {out};",
            "and at " + ", ".join(f"{r}×{r}: MACs {results[r][1]:,}" for r in SIZES) + ".",
            "The multi-scale fusion adapter: concat of the named stage ends (the smaller one resized nearest),",
            "a 1×1 UIR, resize to 16×16 (timm: avg pool when divisible, else bilinear), RmsNorm2d.",
            "Generated by specs/timm/_tools/convert_mobilenetv5.py from the built modules; "
            "checked by tests/test_timm.py.",
        ]
        (OUT / f"{name}.yaml").write_text(to_yaml(spec, header))


if __name__ == "__main__":
    main()
