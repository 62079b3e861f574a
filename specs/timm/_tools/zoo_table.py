"""Print docs/zoo.md's timm table from figures.jsonl and status.json (both written by figures.py / convert.py).

python specs/timm/_tools/zoo_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

# (prefix or exact name, family), first match wins.
FAMILIES = [
    ("efficientnet_cc_", "EfficientNet-CondConv"),
    ("tf_efficientnet_cc_", "EfficientNet-CondConv"),
    ("efficientnet_lite", "EfficientNet-Lite"),
    ("tf_efficientnet_lite", "EfficientNet-Lite"),
    ("efficientnet_e", "EfficientNet-EdgeTPU"),
    ("tf_efficientnet_e", "EfficientNet-EdgeTPU"),
    ("efficientnet_x_", "EfficientNet-X"),
    ("efficientnet_h_", "EfficientNet-H"),
    ("efficientnetv2", "EfficientNetV2"),
    ("tf_efficientnetv2", "EfficientNetV2"),
    ("efficientnet_", "EfficientNet"),
    ("tf_efficientnet_", "EfficientNet"),
    ("test_efficientnet", "EfficientNet (test)"),
    ("mobilenet_edgetpu_v2", "MobileNet-EdgeTPU-V2"),
    ("mobilenet_edgetpu", "MobileNet-EdgeTPU"),
    ("mobilenetv1", "MobileNetV1"),
    ("mobilenetv2", "MobileNetV2"),
    ("mobilenetv3", "MobileNetV3"),
    ("tf_mobilenetv3", "MobileNetV3"),
    ("mobilenetv4_hybrid", "MobileNetV4-Hybrid"),
    ("mobilenetv4", "MobileNetV4"),
    ("mobilenetv5", "MobileNetV5"),
    ("mixnet", "MixNet"),
    ("tf_mixnet", "MixNet"),
    ("mnasnet", "MnasNet"),
    ("semnasnet", "MnasNet (SE)"),
    ("spnasnet", "Single-Path NAS"),
    ("fbnetc", "FBNet"),
    ("fbnetv3", "FBNetV3"),
    ("lcnetv2", "PP-LCNetV2"),
    ("lcnet", "PP-LCNet"),
    ("tinynet", "TinyNet"),
    ("ghostnetv2", "GhostNetV2"),
    ("ghostnetv3", "GhostNetV3"),
    ("ghostnet", "GhostNet"),
    ("repghost", "RepGhostNet"),
    ("hardcorenas", "HardCoRe-NAS"),
]


def family(name: str) -> str:
    return next(f for p, f in FAMILIES if name.startswith(p))


def main() -> None:
    status = json.loads((HERE / "status.json").read_text())
    rows = [json.loads(line) for line in (HERE / "figures.jsonl").read_text().splitlines()]
    print("| model | family | status | input | params | MACs | spec |")
    print("|---|---|---|---|---:|---:|---|")
    for r in rows:
        name = r["model"]
        st = status[name]
        d = r["default"]
        size = "×".join(str(x) for x in d["input_size"][1:])
        if st == "shipped":
            cell, spec = "shipped-exact", f"`specs/timm/{name}.yaml`"
        else:
            needs = [x.removeprefix("needs ") for x in st.split("; ")]
            cell, spec = "needs " + " + ".join(needs), ""
        print(f"| `{name}` | {family(name)} | {cell} | {size} | {d['params']:,} | {d['macs']:,} | {spec} |")


if __name__ == "__main__":
    main()
