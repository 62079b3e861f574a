"""Search-space benchmarks (issue #13): exact size/min/max/mean of the OFA MobileNetV3 space, a
bracketed count under a MACs budget, sampling rate, and Dask enumeration throughput on 1 and 2 workers.

    PYTHONPATH=$PWD /work/venv-full/bin/python benchmarks/space_bench.py

Prints one line per figure (wall seconds; the process's CPU seconds beside, since a loaded machine
stretches wall time). The enumeration runs on the MCUNet-style space restricted to a small slice
(--enumerate needs a space of at most 2**62 sub-networks; throughput is per sub-network).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import costmodel  # noqa: E402

OFA = "specs/spaces/ofa_mobilenetv3.yaml"

SLICE = """\
name: enumeration slice (OFA stage widths, one resolution)
input: {channels: 3, resolution: {choice: [160, 192, 224]}}
defaults: {activation: hardswish}
layers:
  - {kind: conv, out_channels: 16, kernel: 3, stride: 2}
  - {kind: mbconv, out_channels: 24, stride: 2, expanded_divisor: 8, repeat: {choice: [2, 3, 4]},
     kernel: {choice: [3, 5, 7]}, expansion: {choice: [3, 4, 6]}}
  - {kind: mbconv, out_channels: 40, stride: 2, expanded_divisor: 8, repeat: {choice: [1, 2]},
     kernel: {choice: [3, 5, 7]}, expansion: {choice: [3, 4, 6]}}
  - {kind: conv, out_channels: 960, kernel: 1}
  - {kind: pool}
  - {kind: linear, out_features: 1000}
"""


def timed(label: str, f):  # type: ignore[no-untyped-def]
    w, c = time.perf_counter(), time.process_time()
    out = f()
    print(f"{label}: {time.perf_counter() - w:.2f} s wall, {time.process_time() - c:.2f} s CPU", flush=True)
    return out


def main() -> None:
    s = timed("OFA load", lambda: costmodel.space(OFA))
    st = timed("OFA size/min/max/mean/std (exact)", lambda: s.stats(peak=False))
    print(f"  size {s.size:,}; MACs {st.metrics['macs'].min:,} … {st.metrics['macs'].max:,}, "
          f"mean {float(st.metrics['macs'].mean):,.1f}")  # fmt: skip
    c = timed("OFA count macs<=3e8", lambda: s.count(["macs<=3e8"]))
    print(f"  [{c.lower:,}, {c.upper:,}] ({c.method})")
    subs = timed("OFA sample 2000 (macs<=3e8, from the tables)", lambda: s.sample(2000, 1, ["macs<=3e8"]))
    del subs
    timed("OFA 20 samples with exact engine costs", lambda: [s.costs(x) for x in s.sample(20, 2)])
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        print("dask not installed: enumeration skipped")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(SLICE)
    e_space = costmodel.space(fh.name)
    e_space.stats(peak=True)
    print(f"enumeration slice: {e_space.size:,} sub-networks")
    rates = {}
    for n in (1, 2):
        w = time.perf_counter()
        e = e_space.enumerate(["macs<=3e8"], workers=n, chunk=1 << 16)
        dt = time.perf_counter() - w
        rates[n] = e.size / dt
        print(
            f"  {n} worker(s): {dt:.2f} s wall incl. cluster start, {rates[n]:,.0f} sub-networks/s; count {e.count:,}"
        )  # noqa: E501
    print(f"  scaling 2 vs 1 workers: {rates[2] / rates[1]:.2f}x")
    os.unlink(fh.name)


if __name__ == "__main__":
    main()
