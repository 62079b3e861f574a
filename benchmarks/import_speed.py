"""Import time against one FlopCounterMode pass, side by side (issue #22: an import may take at most twice as
long as one FlopCounterMode forward over the same model).

For each model: build it once (timm ``pretrained=False`` / torchvision ``weights=None``), then time, best of
``--repeats``, (a) one ``FlopCounterMode`` forward on the meta device (the model's parameters moved to meta,
the input ``torch.empty((1, C, H, W), device="meta")``), (b) ``costmodel.from_torch(model, input)``, and
(c) ``costmodel table`` work on the imported spec in this process (``analyze`` + totals). Prints a markdown
table; docs/benchmarks.md quotes it.

    PYTHONPATH=$PWD /work/zoo/bin/python benchmarks/import_speed.py --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import time

MODELS = [
    "timm:vit_base_patch16_224",
    "timm:vit_tiny_patch16_224",
    "timm:resnet50",
    "timm:convnext_tiny",
    "timm:swin_tiny_patch4_window7_224",
    "timm:efficientvit_b0",
    "timm:mobilevit_s",
    "timm:efficientnet_b0",
    "timm:mobilenetv3_large_100",
    "torchvision:resnet18",
]


def _build(source: str):  # type: ignore[no-untyped-def]
    kind, _, name = source.partition(":")
    if kind == "timm":
        import timm

        m = timm.create_model(name, pretrained=False)
        size = tuple(m.pretrained_cfg["input_size"])
    else:
        import torchvision

        m = torchvision.models.get_model(name, weights=None)
        size = (3, 224, 224)
    return m.eval(), size


def _best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    """Time each model and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("models", nargs="*", default=MODELS)
    args = ap.parse_args()
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import costmodel

    torch.set_num_threads(1)
    print("| model | FlopCounterMode pass (s) | import (s) | ratio | analyze imported spec (s) |")
    print("|---|---|---|---|---|")
    for source in args.models:
        print(_row(source, args.repeats, torch, FlopCounterMode, costmodel), flush=True)


def _row(source: str, repeats: int, torch, FlopCounterMode, costmodel) -> str:  # type: ignore[no-untyped-def]
    model, size = _build(source)
    meta = copy.deepcopy(model).to("meta")

    def flops() -> None:
        with torch.no_grad(), FlopCounterMode(display=False):
            meta(torch.empty((1, *size), device="meta"))

    specs = []

    def imp() -> None:
        specs.append(costmodel.from_torch(model, size, name=source))

    t_f = _best(flops, repeats)
    t_i = _best(imp, repeats)
    t_a = _best(lambda: costmodel.analyze(specs[-1]).totals, repeats)
    return f"| {source} | {t_f:.3f} | {t_i:.3f} | {t_i / t_f:.2f}× | {t_a:.3f} |"


if __name__ == "__main__":
    main()
