"""MobileNetV5 without its multi-scale fusion adapter: the stem and every block as a spec, against timm.

    cd specs/timm/_tools && PYTHONPATH=../../.. python probe_mobilenetv5_body.py mobilenetv5_base 256 [out.yaml]

MobileNetV5's stem (3×3 conv with bias, RMSNorm, GELU) and blocks (Fused-MBConv, UIR, multi-query attention with
RMSNorm, layer scale) are all spec kinds; convert_mobilenetv5.py adds the MultiScaleFusionAdapter and the head
(concat, uir, resize, norm, pool, flatten, linear) to this body and writes the shipped specs. This
writes the body's spec (convert_attention.py's block mapping) and compares params, MACs and output shape with
``nn.Sequential(model.conv_stem, model.blocks)`` under FlopCounterMode on the meta device.
"""

from __future__ import annotations

import sys
from pathlib import Path

import convert as base
import convert_attention as ca
import timm
import torch
import torch.nn as nn
import yaml
from torch.utils.flop_counter import FlopCounterMode

import costmodel


def body_spec(name: str, res: int) -> dict:
    m = timm.create_model(name, pretrained=False, device="meta").eval()
    base.NORMS_SEEN.clear()
    st = m.conv_stem
    stem = {"name": "stem", "kind": "conv", "kernel": st.conv.kernel_size[0], "stride": st.conv.stride[0],
            "out_channels": st.conv.out_channels, "bias": st.conv.bias is not None,
            "activation": ca.rms_norm_act(st.bn)}  # fmt: skip
    layers = [stem]
    for stage in m.blocks:
        layers += base.group_blocks([d for b in stage for d in ca.block_layer(b, True)])
    for d in layers:
        for key in ("_mid", "_in", "_skip", "_auto"):
            d.pop(key, None)
        if d.get("activation") == ca._SENTINEL:
            del d["activation"]
    norms = {n for n, _ in base.NORMS_SEEN}
    if norms != {"rmsnorm"}:
        raise base.Unsupported(f"needs mixed norms {sorted(norms)}")
    return {
        "name": f"{name}_body",
        "input": {"channels": 3, "height": res, "width": res},
        "defaults": {"activation": "gelu", "norm": "rmsnorm", "bias": False},
        "layers": layers,
    }


def main() -> None:
    name, res = sys.argv[1], int(sys.argv[2])
    text = yaml.safe_dump(body_spec(name, res), sort_keys=False)
    if len(sys.argv) > 3:
        Path(sys.argv[3]).write_text(text)
    r = costmodel.analyze(costmodel.loads(text))
    m = timm.create_model(name, pretrained=False, device="meta").eval()
    body = nn.Sequential(m.conv_stem, m.blocks)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = body(torch.zeros(1, 3, res, res, device="meta"))
    ours = (r.totals["params"], r.totals["macs"], tuple(r.output))
    theirs = (sum(p.numel() for p in body.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:]))
    print(f"{name} body at {res}: spec {ours}, timm {theirs}: {'exact' if ours == theirs else 'MISMATCH'}")


if __name__ == "__main__":
    main()
