"""Import every torchvision 0.29.1 MBConv-family model and count it under each preset against the real tools.

The 18 classifiers (``torchvision.models.list_models(module=torchvision.models)`` whose name says mobilenet,
efficientnet or mnasnet: each has a shipped spec in specs/networks/): ``costmodel.import_model("torchvision:NAME")``
at its default size (the crop of its weights' transforms), then at that size and at 193×193 the imported spec's
MACs under each of the five presets (torch, fvcore, ptflops, thop, torchinfo) against that tool run on
torchvision's model (``weights=None``, eval, batch 1: FlopCounterMode total // 2, fvcore FlopCountAnalysis.total(),
ptflops get_model_complexity_info, thop.profile on a fresh model, torchinfo total_mult_adds), and every preset's
totals (params, buffers, MACs, FLOPs) against the shipped spec's.

The other five MBConv-family models torchvision lists are dense-prediction models (deeplabv3_mobilenet_v3_large,
lraspp_mobilenet_v3_large, fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_mobilenet_v3_large_320_fpn,
ssdlite320_mobilenet_v3_large): an import of each must be refused in one line (issue #22: dense prediction is
not covered), which the sweep records. Not part of the tests (minutes on two cores):

    PYTHONPATH=. nice -n 10 python tests/import_fixtures/tv_sweep.py out.jsonl [name ...]

Each output line: name, status (exact / mismatch / failed / refused), the tools' MACs and the presets' at each
size, and what differs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("torch", "fvcore", "ptflops", "thop", "torchinfo")
CLASSIFIERS = (
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
    "efficientnet_v2_l",
    "efficientnet_v2_m",
    "efficientnet_v2_s",
    "mnasnet0_5",
    "mnasnet0_75",
    "mnasnet1_0",
    "mnasnet1_3",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
)
DENSE = (
    "deeplabv3_mobilenet_v3_large",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "lraspp_mobilenet_v3_large",
    "ssdlite320_mobilenet_v3_large",
)


def tool_counts(name: str, res: int) -> dict[str, int]:
    """Each tool's MACs on torchvision's model ``name`` (weights=None, eval) at res × res, batch 1."""
    import fvcore.nn
    import ptflops
    import thop
    import torch
    import torchinfo
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision import models

    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    x = torch.zeros(1, 3, res, res)
    out: dict[str, int] = {}
    with torch.no_grad():
        m = models.get_model(name, weights=None).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            m(x)
        out["torch"] = counter.get_total_flops() // 2
        with contextlib.redirect_stdout(io.StringIO()):
            out["torchinfo"] = torchinfo.summary(m, input_size=(1, 3, res, res), verbose=0).total_mult_adds
        f = fvcore.nn.FlopCountAnalysis(m, x)
        f.unsupported_ops_warnings(False)
        f.uncalled_modules_warnings(False)
        out["fvcore"] = f.total()
        with contextlib.redirect_stdout(io.StringIO()):
            out["ptflops"] = ptflops.get_model_complexity_info(
                m, (3, res, res), as_strings=False, print_per_layer_stat=False, verbose=False
            )[0]
        fresh = models.get_model(name, weights=None).eval()  # thop leaves its buffers on the model
        with contextlib.redirect_stdout(io.StringIO()):
            out["thop"] = int(thop.profile(fresh, inputs=(x,), verbose=False)[0])
    return {p: int(v) for p, v in out.items()}


def preset_totals(spec, res: int | None = None) -> dict[str, dict[str, int]]:
    import costmodel

    if res is not None:
        spec = costmodel.configure(spec, resolution=res)
    shown = ("params", "buffers", "macs", "flops")
    return {p: {k: costmodel.count(spec, p).totals[k] for k in shown} for p in PRESETS}


def one(name: str) -> dict:
    import costmodel

    t0 = time.time()
    row: dict = {"model": name}
    try:
        # the dense-prediction models have no default size: 3×320×320 (ssdlite320's and fasterrcnn_320's)
        spec = costmodel.import_model(f"torchvision:{name}", input=(3, 320, 320) if name in DENSE else None)
    except Exception as exc:  # the sweep records every failure
        row.update(status="refused" if name in DENSE else "failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        row["seconds"] = round(time.time() - t0, 1)
        return row
    if name in DENSE:
        row.update(status="failed", error="imported a dense-prediction model")
        return row
    shipped = costmodel.load(ROOT / "specs" / "networks" / f"{name}.yaml")
    default = spec.input.height
    row.update(exact=costmodel.import_report(spec).exact, default=default, differs=[])
    for res in (default, 193):
        mine = preset_totals(spec, res)
        theirs = tool_counts(name, res)
        row[f"tools_{res}"] = theirs
        row[f"presets_{res}"] = {p: mine[p]["macs"] for p in PRESETS}
        row["differs"] += [
            f"{p} at {res}: {mine[p]['macs']} vs {theirs[p]}" for p in PRESETS if mine[p]["macs"] != theirs[p]
        ]
        ship = preset_totals(shipped, res)
        row["differs"] += [f"shipped {p} at {res}: {mine[p]} vs {ship[p]}" for p in PRESETS if mine[p] != ship[p]]
    row["status"] = "exact" if row["exact"] and not row["differs"] else "mismatch"
    row["seconds"] = round(time.time() - t0, 1)
    return row


def main() -> None:
    out = Path(sys.argv[1])
    names = sys.argv[2:] or [*CLASSIFIERS, *DENSE]
    with out.open("w") as fh:
        for name in names:
            row = one(name)
            fh.write(json.dumps(row) + "\n")
            fh.flush()


if __name__ == "__main__":
    main()
