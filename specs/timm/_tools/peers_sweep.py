"""Every timm spec's presets against the real tools: fvcore, ptflops, thop, torchinfo and FlopCounterMode.

Each model runs in a subprocess of its own (``timm.create_model(name, pretrained=False)``, batch 1, eval mode) at
timm's default input size, or at ``--big-res`` for the specs above ``--big-macs`` MACs (the same rules; CPU time).
One JSON line per model goes to OUT: the size, each tool's figure and each preset's; then a summary per tool.
tests/test_peers_timm.py checks a representative set; this is the whole zoo (docs/conventions.md).

    nice -n 10 python specs/timm/_tools/peers_sweep.py OUT.jsonl [NAME ...] [--big-macs 1e10] [--big-res 193]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

TIMM = Path(__file__).resolve().parent.parent
ROOT = TIMM.parent.parent
PEERS = ("torch", "fvcore", "ptflops", "thop", "torchinfo")


def one(name: str, res: int | None) -> dict[str, object]:
    """The tools' figures and the presets' for one timm model."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    import fvcore.nn as fvcore_nn
    import ptflops
    import thop
    import timm
    import torch
    import torchinfo
    from torch.utils.flop_counter import FlopCounterMode

    import costmodel
    from costmodel.analysis.conventions import apply

    m = timm.create_model(name, pretrained=False).eval()
    size = tuple(m.pretrained_cfg["input_size"])
    if res is not None:
        size = (size[0], res, res)
    x = torch.zeros(1, *size)
    peer: dict[str, int] = {}
    quiet = contextlib.redirect_stdout(io.StringIO())
    with torch.no_grad(), quiet:
        counter = FlopCounterMode(display=False)
        with counter:
            m(x)
        peer["torch"] = counter.get_total_flops() // 2
        peer["torchinfo"] = torchinfo.summary(m, input_size=(1, *size), verbose=0).total_mult_adds
        f = fvcore_nn.FlopCountAnalysis(m, x)
        f.unsupported_ops_warnings(False)
        f.uncalled_modules_warnings(False)
        peer["fvcore"] = int(f.total())
        peer["ptflops"] = int(
            ptflops.get_model_complexity_info(m, size, as_strings=False, print_per_layer_stat=False, verbose=False)[0]
        )
        fresh = timm.create_model(name, pretrained=False).eval()  # thop leaves its buffers on the model
        peer["thop"] = int(thop.profile(fresh, inputs=(x,), verbose=False)[0])
    spec = costmodel.load(TIMM / f"{name}.yaml")
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"height": size[1], "width": size[2]})})
    report = costmodel.analyze(spec)
    preset = {p: int(apply(report, p).totals["macs"]) for p in PEERS}
    return {"name": name, "size": size, "peer": peer, "preset": preset}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("names", nargs="*")
    ap.add_argument("--big-macs", type=float, default=1e10)
    ap.add_argument("--big-res", type=int, default=193)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        res = None if args.one[1] == "default" else int(args.one[1])
        print(json.dumps(one(args.one[0], res)))
        return 0
    sys.path.insert(0, str(ROOT))
    import costmodel

    names = args.names or sorted(p.stem for p in TIMM.glob("*.yaml"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    tally = {p: [0, 0] for p in PEERS}
    for name in names:
        macs = costmodel.analyze(costmodel.load(TIMM / f"{name}.yaml")).totals["macs"]
        res = str(args.big_res) if macs > args.big_macs else "default"
        start = time.time()
        cmd = [sys.executable, __file__, args.out, "--one", name, res]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            rec: dict[str, object] = {"name": name, "error": proc.stderr[-2000:]}
        else:
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            for p in PEERS:
                tally[p][rec["preset"][p] == rec["peer"][p]] += 1  # type: ignore[index]
        rec["seconds"] = round(time.time() - start, 1)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    for p, (wrong, exact) in tally.items():
        print(f"{p:10s} exact {exact}, not {wrong}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
