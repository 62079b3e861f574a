"""Reference figures of timm's MBConv-family models: params, FlopCounterMode MACs and output shape.

Builds each model with ``pretrained=False`` (on the meta device, so nothing is allocated; CPU if that
fails), one forward pass at batch 1 under FlopCounterMode, at the model's default input size and at 193.
Writes JSON lines to the file named on the command line. Not part of the tests.

    PYTHONPATH=. python specs/timm/_tools/figures.py figures.jsonl [model ...]
"""

from __future__ import annotations

import json
import sys

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

PREFIXES = (
    "efficientnet",
    "tf_efficientnet",
    "efficientnetv2",
    "tf_efficientnetv2",
    "mobilenetv1",
    "mobilenetv2",
    "mobilenetv3",
    "tf_mobilenetv3",
    "mobilenetv4",
    "mobilenetv5",
    "mixnet",
    "tf_mixnet",
    "mnasnet",
    "semnasnet",
    "spnasnet",
    "fbnet",
    "lcnet",
    "lcnetv2",
    "tinynet",
    "ghostnet",
    "hardcorenas",
    "mobilenet_edgetpu",
    "test_efficientnet",
    "repghost",
)


def family_models() -> list[str]:
    return [m for m in timm.list_models() if m.startswith(PREFIXES)]


def measure(name: str, resolution: int | None = None, device: str = "meta") -> dict:
    model = timm.create_model(name, pretrained=False, device=device).eval()
    size = tuple(model.pretrained_cfg["input_size"])
    if resolution is not None:
        size = (size[0], resolution, resolution)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(1, *size, device=device))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": counter.get_total_flops() // 2,
        "output": list(y.shape[1:]),
        "input_size": list(size),
    }


def main() -> None:
    names = sys.argv[2:] or family_models()
    with open(sys.argv[1], "a") as out:
        for name in names:
            model = timm.create_model(name, pretrained=False, device="meta")
            row: dict = {"model": name, "module": type(model).__module__}
            for key, res in (("default", None), ("r193", 193)):
                for device in ("meta", "cpu"):
                    try:
                        row[key] = measure(name, res, device)
                        row[key]["device"] = device
                        break
                    except Exception as exc:  # noqa: BLE001 - recorded, then the next device is tried
                        row[key] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(name, row["default"].get("params"), row["default"].get("macs"), flush=True)


if __name__ == "__main__":
    main()
