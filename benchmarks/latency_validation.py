"""Is the calibrated latency model right? Measured eager torch latency vs costmodel's prediction, this CPU.

    python benchmarks/latency_validation.py [--threads 2] [--source torchvision|torchref] [--quick]

One run: calibrate the per-op-class models on this machine (costmodel.calibration.calibrate, the same
measurement as `costmodel calibrate --torch`), then time whole networks end to end (eval, no_grad,
float32, median of repeats after warm-up) at batch 1 and batch 4, and 30 single blocks at batch 1, and
compare each with `costmodel latency`'s prediction from the calibration made in this run. Networks are
the shipped torchvision specs, built by torchvision itself when it is installed (else by
costmodel.torchref, whose modules are exact in params, MACs and shapes). Prints a Markdown report:
median and worst |error|, Spearman rank correlation, per network.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import costmodel
from costmodel.analysis.latency import predict, total_seconds
from costmodel.calibration import calibrate, measure_spec
from costmodel.torchref import build

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = [
    ("mobilenet_v3_small", 224),
    ("mobilenet_v3_large", 224),
    ("mobilenet_v2", 224),
    ("mnasnet0_5", 224),
    ("mnasnet0_75", 224),
    ("mnasnet1_0", 224),
    ("mnasnet1_3", 224),
    ("efficientnet_b0", 224),
    ("efficientnet_b1", 240),
    ("efficientnet_b2", 288),
    ("efficientnet_b3", 300),
    ("efficientnet_v2_s", 384),
]


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (no ties expected among latencies)."""

    def ranks(x: list[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return r

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def time_model(model: Any, x: Any, budget_s: float, min_runs: int = 5) -> float:
    """Median seconds of ``model(x)`` after warm-up, over at least ``min_runs`` runs within about ``budget_s``."""
    with torch.no_grad():
        for _ in range(2):
            model(x)
        times = []
        end = time.perf_counter() + budget_s
        while len(times) < min_runs or (time.perf_counter() < end and len(times) < 50):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def real_model(name: str, source: str) -> Any:
    if source == "torchvision":
        from torchvision import models

        return getattr(models, name)(weights=None).eval()
    return None


def spec_at(name: str, batch: int) -> costmodel.NetworkSpec:
    spec = costmodel.load(ROOT / "specs" / "networks" / f"{name}.yaml")
    data = spec.model_dump(mode="python")
    data["input"]["batch"] = batch
    return costmodel.loads(__import__("yaml").safe_dump(data), name)


def block_specs() -> list[tuple[str, costmodel.NetworkSpec]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from roofline_validation import configs

    out = []
    for label, layer, channels, res in configs():
        text = __import__("yaml").safe_dump(
            {"input": {"channels": channels, "height": res, "width": res}, "layers": [layer]}
        )
        out.append((label, costmodel.loads(text, label)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--source", choices=["torchvision", "torchref"], default=None)
    p.add_argument("--budget", type=float, default=2.0, help="seconds of timing per network (default 2)")
    p.add_argument("--quick", action="store_true", help="small calibration grid, fewer networks")
    args = p.parse_args()
    source = args.source
    if source is None:
        try:
            import torchvision  # noqa: F401

            source = "torchvision"
        except ImportError:
            source = "torchref"
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cal = calibrate(args.threads, quick=args.quick)
    cal_s = time.perf_counter() - t0
    nets = NETWORKS[:4] if args.quick else NETWORKS
    rows = []
    for batch in (1, 4):
        for name, _ in nets:
            spec = spec_at(name, batch)
            report = costmodel.analyze(spec)
            if batch > 1 and int(report.totals["macs"]) > 2_000_000_000:
                continue
            model = real_model(name, source)
            if model is None:
                model = build(spec)[0].eval()
            n, c, h, w = batch, *[int(v) for v in report.input]
            measured = time_model(model, torch.zeros(n, c, h, w), args.budget)
            predicted = total_seconds(predict(report, cal))
            table_cal = measure_spec([report], cal)
            looked_up = total_seconds(predict(report, table_cal))
            rows.append((f"{name} b{batch}", measured, predicted, looked_up))
    blocks = []
    for label, spec in block_specs():
        report = costmodel.analyze(spec)
        model = build(spec)[0].eval()
        x = torch.zeros(1, *[int(v) for v in report.input])
        blocks.append((label, time_model(model, x, 0.3), total_seconds(predict(report, cal))))

    def summary(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
        errs = [abs(pr - me) / me for me, pr in pairs]
        return statistics.median(errs), max(errs), spearman([m for m, _ in pairs], [p for _, p in pairs])

    med, worst, rho = summary([(m, p) for _, m, p, _ in rows])
    tmed, tworst, trho = summary([(m, t) for _, m, _, t in rows])
    bmed, bworst, brho = summary([(m, p) for _, m, p in blocks])
    print(f"torch {torch.__version__}, {args.threads} threads, networks from {source}; calibration {cal_s:.0f} s\n")
    print(f"- whole networks ({len(rows)}), class models: median |error| **{100 * med:.1f}%**, worst "
          f"**{100 * worst:.1f}%**, Spearman **{rho:.3f}**")  # fmt: skip
    print(f"- whole networks, per-spec lookup table: median |error| {100 * tmed:.1f}%, worst {100 * tworst:.1f}%, "
          f"Spearman {trho:.3f}")  # fmt: skip
    print(f"- single blocks ({len(blocks)}), class models: median |error| {100 * bmed:.1f}%, worst "
          f"{100 * bworst:.1f}%, Spearman {brho:.3f}\n")  # fmt: skip
    print("| network | measured [ms] | predicted [ms] | error | lookup table [ms] | error |")
    print("|---|---|---|---|---|---|")
    for label, m, p, t in rows:
        print(f"| {label} | {m * 1e3:.2f} | {p * 1e3:.2f} | {100 * (p - m) / m:+.1f}% | {t * 1e3:.2f} | "
              f"{100 * (t - m) / m:+.1f}% |")  # fmt: skip
    print("\n| block | measured [µs] | predicted [µs] | error |")
    print("|---|---|---|---|")
    for label, m, p in blocks:
        print(f"| {label} | {m * 1e6:.1f} | {p * 1e6:.1f} | {100 * (p - m) / m:+.1f}% |")
    if not math.isfinite(med):
        sys.exit(1)


if __name__ == "__main__":
    main()
