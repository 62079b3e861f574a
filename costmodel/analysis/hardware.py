"""Hardware profiles and the roofline model.

A profile gives peak compute per dtype (FLOP/s), memory bandwidth (bytes/s) and, optionally, on-chip
memory (bytes). The roofline estimate of a kernel is

    time = max(FLOPs / peak[dtype], bytes moved / bandwidth)

and the kernel is compute-bound when the first term is the larger, memory-bound otherwise. Its
arithmetic intensity is FLOPs / bytes; the ridge point peak / bandwidth separates the two regimes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from ..errors import SpecError, UsageError
from .latency import LatencyCalibration
from .memory import Kernel
from .profiles import PROFILES, ROOFLINE_VIEWS, shipped_profiles

__all__ = [
    "PROFILES",
    "ROOFLINE_VIEWS",
    "Estimate",
    "HardwareProfile",
    "Summary",
    "calibrate",
    "load_profile",
    "on_chip_warnings",
    "per_core_cache",
    "roofline",
    "shipped_profiles",
    "summarize",
]

Dtype = Literal["float32", "float16", "bfloat16", "int8"]

_NUMERAL = re.compile(r"^[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?$")
#: Every rate and size in a profile lies in [1, MAX_RATE]: finite, and every time computed from it too.
MAX_RATE = 1e30


def _rate(value: Any) -> float:
    """A positive finite number in [1, MAX_RATE] (FLOP/s, bytes/s or bytes); a quoted decimal numeral is
    read as the number it writes (parsed, never evaluated)."""
    if isinstance(value, str) and len(value) <= 100 and _NUMERAL.match(value.strip()):
        value = float(value.strip().replace("_", ""))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = (
            repr(value if len(value) <= 40 else value[:40] + "…") if isinstance(value, str) else type(value).__name__
        )
        raise PydanticCustomError("rate", "must be a positive number, got {v}", {"v": shown})
    if isinstance(value, int) and value > MAX_RATE:  # float() of a 400-digit integer overflows
        raise PydanticCustomError("rate", "must be at most 1e30, got an integer of {n} digits", {"n": len(str(value))})
    if not 1 <= value <= MAX_RATE:  # also refuses nan and inf
        raise PydanticCustomError("rate", "must be a finite number in [1, 1e30], got {v}", {"v": repr(float(value))})
    return float(value)


Rate = Annotated[float, BeforeValidator(_rate), WithJsonSchema({"type": "number", "exclusiveMinimum": 0})]


class HardwareProfile(BaseModel):
    """A device for the roofline: peak compute per dtype, memory bandwidth, optional on-chip memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    peak_flops: dict[Dtype, Rate] = Field(description="peak FLOP/s per dtype (for int8: operations/s)")
    bandwidth: Rate = Field(description="memory bandwidth, bytes/s")
    on_chip_bytes: Rate | None = Field(None, description="on-chip memory (cache, SRAM), bytes")
    source: str = Field(description="where the figures come from (datasheet, derivation or measurement)")
    notes: str | None = None
    latency: list[LatencyCalibration] = Field(
        default_factory=list, description="measured per-op-class latency models (costmodel calibrate --torch)"
    )

    @field_validator("latency")
    @classmethod
    def _one_per_thread_count(cls, v: list[LatencyCalibration]) -> list[LatencyCalibration]:
        """Two calibrations at the same thread count and dtype: which one a prediction used was arbitrary."""
        seen: dict[tuple[int, str], int] = {}
        for i, c in enumerate(v):
            j = seen.setdefault((c.threads, c.dtype), i)
            if j != i:
                raise PydanticCustomError(
                    "duplicate",
                    "entries {j} and {i} are both calibrations at {t} threads/{d}; keep one",
                    {"i": i, "j": j, "t": c.threads, "d": c.dtype},
                )
        return v

    def peak(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype``."""
        try:
            return self.peak_flops[dtype]  # type: ignore[index]
        except KeyError:
            raise SpecError(
                f"profile {self.name!r} gives no peak for {dtype} (it has {', '.join(self.peak_flops)})",
                ("peak_flops",),
            ) from None


def load_profile(name_or_path: str | os.PathLike[str]) -> HardwareProfile:
    """A shipped profile by name (``a100``, see costmodel/data/hardware/) or a profile YAML file by path."""
    from ..spec.loader import parse_yaml, read_text, validate_model

    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PROFILES / f"{name_or_path}.yaml"
        if not path.exists():
            raise SpecError(
                f"no hardware profile named {str(name_or_path)!r}; shipped: {', '.join(shipped_profiles())}"
            )
    text = read_text(path, limit=2**20)
    data, src = parse_yaml(text, str(path))
    profile: HardwareProfile = validate_model(HardwareProfile, data, src)
    return profile


#: The largest FLOP or byte count (times its instances) a roofline time is computed from: 2⁹⁰⁰ ≈ 8·10²⁷⁰,
#: so float() cannot overflow and a sum over 10⁷ such kernels stays finite.
MAX_ROOFLINE_BITS = 900


@dataclass
class Estimate:
    """The roofline estimate of one kernel."""

    kernel: Kernel
    compute_s: float
    memory_s: float

    @property
    def time_s(self) -> float:
        """max(compute time, memory time), for one instance."""
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        """``compute`` or ``memory``: which roof limits the kernel."""
        return "compute" if self.compute_s >= self.memory_s else "memory"


def roofline(ks: list[Kernel], profile: HardwareProfile, dtype: str) -> list[Estimate]:
    """The roofline estimate of every kernel on ``profile``."""
    peak = profile.peak(dtype)
    out = []
    for k in ks:
        flops, moved = int(k.flops), int(k.bytes_moved)
        for n, what in ((flops, "FLOPs"), (moved * int(k.times), "bytes moved"), (flops * int(k.times), "FLOPs")):
            if n.bit_length() > MAX_ROOFLINE_BITS:  # float() would overflow, or a sum of the times reach inf
                raise UsageError(
                    f"roofline: {k.label} has about 10^{int(n.bit_length() * 0.30103)} {what}, past the "
                    f"2^{MAX_ROOFLINE_BITS} a time is computed from (in floating point); the spec is too large"
                )
        out.append(Estimate(k, float(flops) / peak, float(moved) / profile.bandwidth))
    return out


def on_chip_warnings(ks: list[Kernel], profile: HardwareProfile) -> list[str]:
    """A warning for each kernel whose input or output tensor alone exceeds the profile's on-chip memory."""
    if profile.on_chip_bytes is None:
        return []
    limit = profile.on_chip_bytes
    out = []
    for k in ks:
        biggest = max(float(k.input_bytes), float(k.output_bytes))
        if biggest > limit:
            out.append(
                f"{k.label}: a {biggest:,.0f}-byte tensor exceeds {profile.name}'s {limit:,.0f} bytes of on-chip memory"
            )
    return out


#: The longest ``calibrate`` spends on each measurement, in seconds.
MAX_SECONDS = 600.0


def calibrate(seconds: float = 2.0, matmul_n: int = 2048, copy_mib: int = 256) -> dict[str, Any]:
    """Measure this machine: float32 matmul FLOP/s (numpy BLAS) and copy bandwidth; a profile as a dict.

    compute = 2·n³ / best time of an n×n float32 matmul; bandwidth = 2 × array bytes / best time of a
    copy (one read, one write). Each is repeated for about ``seconds``; the best run counts.
    """
    import datetime
    import math
    import platform

    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise UsageError(f"--seconds must be a number in (0, {MAX_SECONDS:g}], got {seconds!r}")
    for name, v, top in (("matmul_n", matmul_n, 2**14), ("copy_mib", copy_mib, 2**14)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
            raise UsageError(f"{name} must be an integer in [1, {top}], got {v!r}")
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency, but say so plainly if missing
        raise SpecError("calibrate needs numpy: pip install numpy") from None

    a = np.ones((matmul_n, matmul_n), dtype=np.float32)
    b = np.ones((matmul_n, matmul_n), dtype=np.float32)
    best_mm = _best(lambda: a @ b, seconds)
    src = np.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best_copy = _best(lambda: np.copyto(dst, src), seconds)
    flops = 2 * matmul_n**3 / best_mm
    bandwidth = 2 * src.nbytes / best_copy
    cache = _largest_cache()
    profile: dict[str, Any] = {
        "name": f"{platform.node() or 'this machine'} ({platform.machine()}, {os.cpu_count()} cores), "
        f"calibrated {datetime.date.today().isoformat()}",
        "peak_flops": {"float32": float(f"{flops:.4g}")},
        "bandwidth": float(f"{bandwidth:.4g}"),
        "source": f"measured by costmodel calibrate: numpy float32 matmul {matmul_n}³ (best of repeats) and a "
        f"{copy_mib} MiB copy (read + write); all BLAS threads",
    }
    if cache:
        profile["on_chip_bytes"] = cache
    profile["notes"] = "Only float32 is measured: numpy has no fast fp16/bf16/int8 matmul to time."
    return profile


def _best(fn: Any, seconds: float) -> float:
    import time

    fn()  # warm up
    best = float("inf")
    end = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > end:
            return best


def _cpu_count(cpu_list: str) -> int:
    """``"0-3,8"`` → 5: the number of CPUs in a Linux cpu list (at least 1)."""
    n = 0
    for part in cpu_list.strip().split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi.isdigit() or not hi):
            n += int(hi or lo) - int(lo) + 1
    return max(n, 1)


def per_core_cache(cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int | None:
    """The on-chip memory one core can count on, in bytes, from what Linux reports for cpu0 (None
    elsewhere): the largest data or unified cache, each level's size divided by the CPUs that share it
    (``shared_cpu_list``), so a 32 MiB L3 shared by 16 cores counts 2 MiB and a private 1 MiB L2 counts
    1 MiB; instruction caches are skipped. A VM that reports a host's whole L3 (480 MiB) as one core's
    would otherwise make every tensor fit on chip and silence the on-chip warnings."""
    sizes = []
    for index in cache_dir.glob("index*"):
        try:
            text = (index / "size").read_text().strip()
            kind = (index / "type").read_text().strip() if (index / "type").exists() else "Unified"
            shared = (index / "shared_cpu_list").read_text() if (index / "shared_cpu_list").exists() else "0"
        except OSError:
            continue
        if kind == "Instruction":
            continue
        unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        number = text[:-1] if text[-1:] in "KMG" else text
        if number.isdigit():
            sizes.append(int(number) * unit // _cpu_count(shared))
    return max(sizes) if sizes else None


def _largest_cache() -> int | None:
    """calibrate's on-chip figure: :func:`per_core_cache` (kept under this name for callers)."""
    return per_core_cache()


@dataclass
class Summary:
    """Roofline estimates summed over one item of a view (a kernel, a block or a stage)."""

    item: str
    flops: int  # exact
    bytes: int  # exact
    time_s: float
    compute_s: float  # the part of time_s spent in compute-bound kernels

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.bytes if self.bytes else float("inf")  # int / int: correctly rounded

    @property
    def compute_bound_share(self) -> float:
        """The share of the time spent in compute-bound kernels."""
        return self.compute_s / self.time_s if self.time_s else 0.0

    @property
    def bound(self) -> str:
        """``compute`` when compute-bound kernels take at least half the time, else ``memory``."""
        return "compute" if self.compute_s >= self.time_s - self.compute_s else "memory"


def summarize(report: Any, estimates: list[Estimate], by: str = "kernel") -> list[Summary]:
    """Estimates grouped by ``kernel``, ``block`` or ``stage`` (in order of first appearance), each summed
    (instances counted ``times`` over)."""
    groups: dict[Any, Summary] = {}
    for e in estimates:
        k = e.kernel
        key = {"kernel": k.label, "block": k.block, "stage": k.stage}[by]
        s = groups.get(key)
        if s is None:
            label = str(key)
            if by == "block":
                info = report.blocks[key]
                label = f"{info.layer}.{info.repeat} {info.name or info.kind}"
            s = groups[key] = Summary(label, 0, 0, 0.0, 0.0)
        times = float(k.times)
        s.flops += int(k.times) * int(k.flops)  # exact: a float sum rounds past 2⁵³
        s.bytes += int(k.times) * int(k.bytes_moved)
        s.time_s += times * e.time_s
        if e.bound == "compute":
            s.compute_s += times * e.time_s
    return list(groups.values())
