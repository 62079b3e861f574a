"""Does the roofline rank real latencies right? Measured torch latency vs predicted time, on this CPU.

    python benchmarks/roofline_validation.py [--threads 2] [--repeats 30] [--profile PATH]

For each single-block config: the torch module costmodel.torchref builds (eval mode, batch 1, a fixed
thread count) is timed (median of --repeats after warm-up), and costmodel's roofline time is computed
under a profile calibrated in the same run (`costmodel calibrate`'s measurement) with fusion none —
the execution model of eager PyTorch, where every op is a kernel. Prints a Markdown report: Spearman
rank correlation, median absolute error, and the configs the model misjudges most.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import numpy as np
import torch

import costmodel
from costmodel.analysis.hardware import HardwareProfile, calibrate, load_profile, roofline
from costmodel.analysis.memory import kernels
from costmodel.torchref import build


def configs() -> list[tuple[str, dict[str, Any], int, int]]:
    """(label, layer, channels, resolution) — 30 single blocks."""
    out = []
    for t in (1, 3, 6):
        for k in (3, 5):
            for s in (1, 2):
                out.append(
                    (
                        f"mbconv t{t} k{k} s{s} 32ch 56²",
                        {"kind": "mbconv", "expansion": t, "kernel": k, "stride": s, "out_channels": 32},
                        32,
                        56,
                    )
                )
    for res in (28, 112):
        out.append(
            (
                f"mbconv t6 k3 s1 se 32ch {res}²",
                {"kind": "mbconv", "expansion": 6, "se": 0.25, "out_channels": 32, "activation": "silu"},
                32,
                res,
            )
        )
        out.append(
            (
                f"mbconv t6 k7 s1 64ch {res}²",
                {"kind": "mbconv", "expansion": 6, "kernel": 7, "out_channels": 64},
                64,
                res,
            )
        )
    for c, res in ((16, 112), (64, 56), (128, 28)):
        out.append((f"dwsep k3 {c}ch {res}²", {"kind": "dwsep", "out_channels": c}, c, res))
        out.append(
            (
                f"fused_mbconv t4 k3 {c}ch {res}²",
                {"kind": "fused_mbconv", "expansion": 4, "out_channels": c, "activation": "silu"},
                c,
                res,
            )
        )
        out.append(
            (f"basic conv block k3 {c}ch {res}²", {"kind": "basic", "out_channels": c, "activation": "relu"}, c, res)
        )
    out.append(("mbconv t6 k3 s1 16ch 224²", {"kind": "mbconv", "expansion": 6, "out_channels": 16}, 16, 224))
    out.append(
        ("mbconv t4 k3 s2 96ch 14²", {"kind": "mbconv", "expansion": 4, "stride": 2, "out_channels": 96}, 96, 14)
    )
    out.append(("bottleneck k3 256ch 28²", {"kind": "bottleneck", "out_channels": 256}, 256, 28))
    return out


def measure(spec: costmodel.NetworkSpec, repeats: int) -> float:
    model, shape = build(spec)
    model.eval()
    x = torch.randn(shape)
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(v: list[float]) -> np.ndarray:
        order = np.argsort(v)
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--profile", help="a hardware profile YAML (default: calibrate now)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    profile = load_profile(args.profile) if args.profile else HardwareProfile.model_validate(calibrate(2.0))
    rows = []
    for label, layer, channels, res in configs():
        spec = costmodel.NetworkSpec.model_validate(
            {"input": {"channels": channels, "height": res, "width": res}, "layers": [layer]}
        )
        report = costmodel.analyze(spec)
        predicted = sum(e.time_s for e in roofline(kernels(report, "float32", "none"), profile, "float32"))
        measured = measure(spec, args.repeats)
        n_kernels = len(kernels(report))
        dw = sum(float(r.flops) for r in report.rows if r.op == "conv2d" and "dw" in r.detail)
        rows.append((label, measured, predicted, n_kernels, dw / float(report.totals["flops"])))
    measured = [r[1] for r in rows]
    predicted = [r[2] for r in rows]
    rho = spearman(measured, predicted)
    abs_err = statistics.median(abs(m - p) for m, p in zip(measured, predicted, strict=True))
    ratios = [m / p for m, p in zip(measured, predicted, strict=True)]
    print(f"# Roofline validation ({len(rows)} single blocks, torch {torch.__version__}, {args.threads} threads)\n")
    print(
        f"Profile: {profile.name}: {profile.peak('float32'):.4g} FLOP/s float32, {profile.bandwidth:.4g} B/s "
        f"({profile.source}).\n"
    )
    print(f"- Spearman rank correlation, measured vs predicted: **{rho:.3f}** (target ≥ 0.9)")
    print(
        f"- median absolute error: {abs_err * 1e6:,.1f} µs; median measured / predicted: "
        f"{statistics.median(ratios):.2f}× (range {min(ratios):.2f}× – {max(ratios):.2f}×)\n"
    )
    print("| config | kernels | depthwise share of FLOPs | measured [µs] | predicted [µs] | measured / predicted |")
    print("|---|---|---|---|---|---|")
    for label, m, p, nk, dws in sorted(rows, key=lambda r: r[1]):
        print(f"| {label} | {nk} | {100 * dws:.0f}% | {m * 1e6:,.1f} | {p * 1e6:,.1f} | {m / p:.2f}× |")
    worst = sorted(rows, key=lambda r: -abs(math.log(r[1] / r[2])))[:5]
    print("\nMost misjudged (largest |log(measured / predicted)|):\n")
    for label, m, p, nk, dws in worst:
        print(
            f"- {label}: measured {m * 1e6:,.1f} µs, predicted {p * 1e6:,.1f} µs ({m / p:.2f}×), "
            f"{nk} kernels, depthwise {100 * dws:.0f}% of FLOPs"
        )


if __name__ == "__main__":
    main()
