"""costmodel latency --runtime litert against LiteRT's own measured latency, on whole int8 networks.

Calibrates (``costmodel calibrate --runtime litert``: op classes timed alone as one-op .tflite models, the
in-network correction fitted on synthetic networks; none of the networks below), or reads a profile made by
it; then, for each network below, exports the spec's int8 .tflite (``export --tflite``'s graph), times it on
LiteRT's interpreter at the same threads and compares with costmodel's prediction. Prints the per-network
table and nn-Meter's metrics: median |error|, ±10% accuracy (share of networks predicted within 10%) and RMSPE
(root mean square of the relative errors).

Needs the [deploy] extra (tensorflow-cpu, ai-edge-litert):

    PYTHONPATH=$PWD /work/deploy-venv/bin/python benchmarks/litert_latency.py [--threads 1] [--profile P.yaml]
        [--out P.yaml]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

NETWORKS: list[tuple[str, str, dict[str, Any]]] = [
    ("MobileNetV2 ×0.35 at 96", "specs/networks/mobilenet_v2.yaml", {"resolution": (96, 96), "width_mult": 0.35}),
    ("MobileNetV2 ×0.35 at 144", "specs/networks/mobilenet_v2.yaml", {"resolution": (144, 144), "width_mult": 0.35}),
    ("MobileNetV2 ×0.5 at 112", "specs/networks/mobilenet_v2.yaml", {"resolution": (112, 112), "width_mult": 0.5}),
    ("MobileNetV3-small at 96", "specs/networks/mobilenet_v3_small.yaml", {"resolution": (96, 96)}),
    ("MobileNetV3-small minimal at 96", "specs/timm/tf_mobilenetv3_small_minimal_100.yaml", {"resolution": (96, 96)}),
    ("EfficientNet-lite0 at 128", "specs/timm/efficientnet_lite0.yaml", {"resolution": (128, 128)}),
    ("SPNASNet-100 (ProxylessNAS-like) at 96", "specs/timm/spnasnet_100.yaml", {"resolution": (96, 96)}),
    ("MnasNet-small at 96", "specs/timm/mnasnet_small.yaml", {"resolution": (96, 96)}),
    ("MnasNet 0.5 at 96", "specs/networks/mnasnet0_5.yaml", {"resolution": (96, 96)}),
    ("MCUNet TinyNAS space, sample 0", "specs/spaces/mcunet_tinynas.yaml", {"sample": 0}),
    ("MCUNet TinyNAS space, sample 1", "specs/spaces/mcunet_tinynas.yaml", {"sample": 1}),
    ("MCUNet TinyNAS space, sample 2", "specs/spaces/mcunet_tinynas.yaml", {"sample": 2}),
    ("ProxylessNAS space, sample 0", "specs/spaces/proxylessnas.yaml", {"sample": 0}),
    ("ProxylessNAS space, sample 1", "specs/spaces/proxylessnas.yaml", {"sample": 1}),
    ("OFA MobileNetV3 space, sample 0", "specs/spaces/ofa_mobilenetv3.yaml", {"sample": 0}),
    ("OFA MobileNetV3 space, sample 1", "specs/spaces/ofa_mobilenetv3.yaml", {"sample": 1}),
]


def report_of(path: str, shape: dict[str, Any]) -> Any:
    """The analysed spec: a shipped network at a resolution / width, or a search space's sample (seeded)."""
    import costmodel

    if "sample" in shape:
        space = costmodel.space(str(ROOT / path))
        spec: Any = space.spec.concrete(space.sample(1, seed=shape["sample"])[0])
    else:
        spec = costmodel.configure(str(ROOT / path), **shape)
    return costmodel.analyze(spec)


def metrics(errors: list[float]) -> dict[str, float]:
    """nn-Meter's: median |error|, ±10% accuracy, RMSPE (relative errors, not percent)."""
    return {
        "median_abs_error": statistics.median(abs(e) for e in errors),
        "acc10": sum(abs(e) <= 0.10 for e in errors) / len(errors),
        "rmspe": math.sqrt(sum(e * e for e in errors) / len(errors)),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", help="a profile with an int8 (LiteRT) calibration at --threads; else calibrate")
    ap.add_argument("--out", help="write the calibration made here as a profile")
    ap.add_argument("--only", nargs="*", default=[])
    a = ap.parse_args(argv)

    from costmodel.analysis.latency import pick, predict, total_seconds
    from costmodel.calibration import time_stats
    from costmodel.tflite import litert_timer, litert_version, spec_tflite

    if a.profile:
        from costmodel.analysis.hardware import load_profile

        cal = pick(load_profile(a.profile).latency, a.threads, "int8")
    else:
        from costmodel.calibration import calibrate_litert

        start = time.time()
        cal = calibrate_litert(a.threads)
        print(f"calibrated in {time.time() - start:.0f} s", file=sys.stderr)
        if a.out:
            import yaml

            from costmodel.analysis.hardware import calibrate

            profile = calibrate(0.5)
            profile["latency"] = [cal.model_dump()]
            Path(a.out).write_text(yaml.safe_dump(profile, sort_keys=False, allow_unicode=True))
    print(f"LiteRT {litert_version()}, {a.threads} thread(s); calibration: {cal.framework}")
    print(f"in-network: scale {cal.network_scale:.3f}, per op {cal.per_op_s * 1e6:.2f} µs; warnings: {cal.warnings}")
    print()
    print("| network | ops | MACs | measured [µs] | predicted [µs] | error |")
    print("|---|---|---|---|---|---|")
    errors = []
    for title, path, shape in NETWORKS:
        if a.only and not any(o in title for o in a.only):
            continue
        report = report_of(path, shape)
        model = spec_tflite(report)
        measured = time_stats(litert_timer(model, a.threads), (), 30, 1.0, no_grad=False).fastest
        times = predict(report, cal)
        predicted = total_seconds(times)
        err = (predicted - measured) / measured
        errors.append(err)
        macs = sum(int(r.costs["macs"]) for r in report.rows)
        print(
            f"| {title} | {len(times)} | {macs / 1e6:.1f} M | {measured * 1e6:,.1f} | {predicted * 1e6:,.1f} "
            f"| {err:+.1%} |",
            flush=True,
        )
    m = metrics(errors)
    print()
    print(
        f"{len(errors)} networks: median |error| {m['median_abs_error']:.1%}, ±10% accuracy {m['acc10']:.0%}, "
        f"RMSPE {m['rmspe']:.1%}"
    )


if __name__ == "__main__":
    main()
