"""The library's entry points: load a spec, analyse it, and every design question the CLI asks.

The CLI calls exactly these functions; a user calls the same ones. Results are plain objects with
numbers (``Report``, ``Sweep``, ``Comparison``, ``Solution``, ``Memory``, ``Roofline``, ``Latency``,
``Training`` …), module-level and picklable; ``to_dict()`` is exactly the JSON the CLI prints for the same
call and ``table(fmt)`` the same view in any format (the ``present`` package). The classes that extend an
analysis result live in results.py, imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .engine.report import Report as _EngineReport
from .engine.walk import analyze_spec
from .errors import SpecError, UndecidableError, UsageError
from .spec import loader
from .spec.network import NetworkSpec, symbol_uses

if TYPE_CHECKING:
    from .analysis.design import Budget
    from .analysis.hardware import Estimate, HardwareProfile
    from .analysis.memory import Kernel, Peak
    from .results import (
        Comparison,
        DeployCount,
        Deployment,
        DeploySolution,
        Explanation,
        Sensitivity,
        Solution,
        SpaceBlocks,
        SpaceEnumeration,
        SpaceFront,
        SpaceSamples,
        SpaceSummary,
        Sweep,
        Training,
        TrainingGap,
    )
    from .spec.shipped import Shipped

SpecLike = NetworkSpec | str | os.PathLike[str]


class Report(_EngineReport):
    """Rows, totals and views of one analysed spec (see engine/report.py), with its presentations."""

    def under(self, convention: str) -> Report:
        """This report with ``macs`` counted as the named tool counts them (analysis/conventions.py)."""
        from .analysis.conventions import apply

        out: Report = apply(self, convention)  # type: ignore[assignment]
        return out

    def folded(self) -> Report:
        """The deployment view: every BatchNorm folded into its conv."""
        from .analysis.memory import fold_bn

        out: Report = fold_bn(self)  # type: ignore[assignment]
        return out

    def table(
        self,
        fmt: str = "github",
        by: str = "auto",
        depth: int | None = None,
        units: str = "exact",
        dtype: str = "float32",
        fusion: str = "none",
    ) -> str:
        """The report as text: a tabulate table in ``fmt``, or ``json`` / ``csv`` (present/report.py);
        ``units="si"`` writes table counts as K/M/G (tables only). ``json`` is :meth:`to_dict` (``dtype``
        and ``fusion`` set its peak activation memory)."""
        from .present.report import render

        totals, extra = self._peak(dtype, fusion)
        return render(self, fmt, by, depth, units, totals, extra)

    def block(self, bid: str) -> Report:
        """This report restricted to one block instance ``"LAYER.REPEAT"`` (e.g. ``"4.1"``) or one layer
        ``"LAYER"``: its rows, input, output and totals (present/report.py ``select_block``)."""
        from .present.report import select_block

        out: Report = select_block(self, bid)  # type: ignore[assignment]
        out._part = True
        return out

    _part = False
    """True for a part of a network (:meth:`block`): its JSON has no peak activation memory."""

    def _peak(self, dtype: str, fusion: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The peak activation memory's entries of the JSON: in ``totals``, and a ``peak`` record (None, None
        for a symbolic report or a part of one)."""
        if self.symbolic or self._part:
            return None, None
        from .analysis.memory import peak_activations

        peak = peak_activations(self, dtype, fusion)
        return (
            {"peak_activation_bytes": peak.bytes},
            {"peak": {"bytes": peak.bytes, "kernel": peak.kernel, "dtype": dtype, "fusion": fusion}},
        )

    def to_dict(self, dtype: str = "float32", fusion: str = "none") -> dict[str, Any]:
        """A JSON-ready dict: totals, output, rows (counts as ints, symbolic ones as sympy-parseable text);
        for a numeric whole network also the peak activation memory (``dtype``, ``fusion``;
        analysis/memory.py): ``totals["peak_activation_bytes"]`` and ``peak`` (bytes, kernel, dtype,
        fusion) — what ``costmodel table -f json`` prints."""
        from .present.report import to_dict

        out = to_dict(self)
        totals, extra = self._peak(dtype, fusion)
        out["totals"].update(totals or {})
        out.update(extra or {})
        return out

    def _repr_latex_(self) -> str:
        import sympy

        parts = [rf"\text{{{m}}} = {sympy.latex(self.formula(m))}" for m in ("params", "macs", "flops")]
        return "$" + r",\quad ".join(parts) + "$"

    def _repr_html_(self) -> str:
        return self.table("html")


def _as_int(name: str, v: object) -> int:
    """A Python int from an int or a numpy integer scalar (or 0-d integer array); bools and the rest refused."""
    if isinstance(v, bool):
        raise UsageError(f"{name}={v!r}: a symbol's value must be an integer")
    if isinstance(v, int):
        return v
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    if kind in ("i", "u") and getattr(v, "ndim", 0) == 0:
        return int(v)  # type: ignore[call-overload,no-any-return]
    raise UsageError(f"{name}={v!r}: a symbol's value must be an integer")


def _check_values(values: Mapping[str, object]) -> dict[str, int]:
    """Symbol values as Python ints: ints and numpy integer scalars are accepted, anything else refused."""
    return {name: _as_int(name, v) for name, v in values.items()}


def _axis_or_value(name: str, v: object) -> int | Sequence[int]:
    """One keyword of ``sweep``: a single int (fixed) or many (an axis: a list, range or numpy integer array)."""
    from .analysis.sweep import Axis

    if isinstance(v, (range, Axis)):
        axis = Axis.of(v)
        if not len(axis) or axis.lo() < 1:
            raise UsageError(f"{name}: the values of an axis must be positive integers")
        return axis
    if isinstance(v, (bool, int)) or getattr(v, "ndim", None) == 0:
        return _as_int(name, v)
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    if kind is not None:
        if kind not in ("i", "u") or getattr(v, "ndim", 1) != 1:
            raise UsageError(f"{name}: the values of an axis must be positive integers (a 1-d integer array)")
        if not v.size or v.min() < 1:  # type: ignore[attr-defined]
            raise UsageError(f"{name}: the values of an axis must be positive integers")
        return Axis.of(v)
    else:
        try:
            items = [_as_int(name, i) for i in v]  # type: ignore[attr-defined]
        except TypeError:
            raise UsageError(f"{name}={v!r}: expected an integer or a sequence of integers") from None
        except UsageError:
            raise UsageError(f"{name}: the values of an axis must be positive integers") from None
    if not items or min(items) < 1:
        raise UsageError(f"{name}: the values of an axis must be positive integers")
    return items


def load(path: str | os.PathLike[str], **values: int) -> NetworkSpec:
    """Load and validate a YAML spec; ``values`` bind symbols (``C=16``) before validation.

    ``path`` is a file or a shipped spec's name: ``load("efficientnet_b0")`` (torchvision's),
    ``load("timm/mixnet_s")``, ``load("specs/networks/mobilenet_v2.yaml")`` work from any directory; a path
    that exists is read as a path first (the rule: spec/shipped.py; the names: :func:`shipped`). Every
    function here that takes a spec path takes a name as well."""
    return loader.load(path, bind=_check_values(values))


def loads(text: str, file: str = "<spec>", **values: int) -> NetworkSpec:
    """Validate a spec given as YAML text; ``values`` bind symbols before validation."""
    return loader.loads(text, file, bind=_check_values(values))


def _spec(spec: SpecLike, bind: Mapping[str, int]) -> NetworkSpec:
    if isinstance(spec, NetworkSpec):
        if bind:
            src = spec._source or loader.Source("<spec>")
            return loader.validate(spec.model_dump(mode="python"), src, bind)
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return loader.load(spec, bind=bind)
    raise UsageError(f"expected a NetworkSpec or a path, got {type(spec).__name__}")


def configure(
    spec: SpecLike,
    resolution: int | Sequence[int] | None = None,
    width_mult: float | None = None,
    depth_mult: float | None = None,
    batch: int | None = None,
) -> NetworkSpec:
    """A spec (a NetworkSpec or a YAML path) with its input and scaling overridden, validated like the YAML.

    ``resolution`` sets input.height and input.width (an integer, or a pair (H, W)); ``width_mult`` and
    ``depth_mult`` set scaling.width and scaling.depth (replacing the spec's values; channels become
    make_divisible(c × width, divisor), repeats ceil(repeat × depth)); ``batch`` sets input.batch.
    ``costmodel.analyze(costmodel.configure("specs/networks/mobilenet_v2.yaml", resolution=96,
    width_mult=0.35))`` is torchvision's ``mobilenet_v2(width_mult=0.35)`` at 96×96. See spec/configure.py.
    """
    from .spec.configure import configure as override

    return override(_spec(spec, {}), resolution, width_mult, depth_mult, batch)


def analyze(spec: SpecLike, **values: int) -> Report:
    """Analyse a spec (a NetworkSpec or a YAML path), binding symbols in ``values`` first.

    Returns a :class:`Report` with per-op rows, ``totals``, grouped views and ``formula()``.
    """
    return analyze_spec(_spec(spec, _check_values(values)), Report)


def count(spec: SpecLike, convention: str = "costmodel", fold_bn: bool = False, **values: int) -> Report:
    """``analyze`` with MACs counted under ``convention`` and, with ``fold_bn``, BatchNorm folded."""
    return _count(spec, convention, values, fold_bn)


def _count(spec: SpecLike, convention: str, values: Mapping[str, int], fold_bn: bool = False) -> Report:
    from .analysis.conventions import convention as lookup

    lookup(convention)  # refuse an unknown name before reading the spec
    report = analyze(spec, **values).under(convention)
    return report.folded() if fold_bn else report


def _sweep_plan(spec: SpecLike, metrics: Sequence[str], convention: str, values: Mapping[str, object]) -> Any:
    from .analysis.conventions import convention as lookup
    from .analysis.sweep import limits, prepare

    fixed: dict[str, int] = {}
    axes: dict[str, Sequence[int]] = {}
    for name, v in values.items():
        got = _axis_or_value(name, v)
        if isinstance(got, int):
            fixed[name] = got
        else:
            axes[name] = got
    both = sorted(set(axes) & set(fixed))
    if both:  # pragma: no cover - keywords are unique
        raise UsageError(f"{both[0]} is given both as an axis and as a fixed value")
    lookup(convention)  # refuse an unknown name before reading the spec
    loaded = _spec(spec, fixed)

    def reanalyze(bound: dict[str, int]) -> Report:
        return _count(spec, convention, {**fixed, **bound})

    from .results import Sweep

    try:
        report = _count(loaded, convention, {})
    except UndecidableError:
        if not any(layer.kind == "graph" for layer in loaded.layers):
            raise
        # a graph layer's literal shapes fit some values only: no one formula, so each point is analysed
        from .analysis.sweep import prepare_pointwise

        free = {name for _, name in symbol_uses(loaded)}
        unknown = sorted(set(axes) - free)
        if unknown:
            raise UsageError(
                f"--vary {unknown[0]}: the spec has no free symbol {unknown[0]!r} (free: {', '.join(sorted(free))})"
            ) from None
        missing = sorted(free - set(axes))
        if missing:
            raise UsageError(f"no values for {', '.join(missing)}: give --vary or --set for each free symbol") from None
        pplan = prepare_pointwise(axes, list(metrics), reanalyze, lookup(convention), Sweep)
        pplan.fixed = fixed
        return pplan

    plan = prepare(report, axes, list(metrics), reanalyze, Sweep, limits(loaded))
    plan.fixed = fixed
    return plan


def sweep(
    spec: SpecLike,
    metrics: Sequence[str] = ("params", "macs", "flops"),
    convention: str = "costmodel",
    progress: Callable[[int, int], None] | None = None,
    **values: int | Iterable[int],
) -> Sweep:
    """Exact costs over a grid: each keyword is a symbol, with one value (fixed) or many (an axis).

    ``costmodel.sweep("specs/symbolic_mbconv.yaml", t=range(1, 9), k=[3, 5, 7], C=16, H=32, W=32)["macs"]``
    is an array in the grid's order (the last axis varies fastest). Values may be ints, numpy integer
    scalars, lists, ranges or 1-d numpy integer arrays. Every point is exact; see analysis/sweep.py.
    At most ``MAX_IN_MEMORY`` (10⁷) points are returned whole; stream bigger grids with
    :func:`sweep_chunks`. Where some point may be one ``table --set`` refuses, ``result["valid"]`` marks them.
    """
    import numpy as np

    from .analysis.sweep import CHUNK, MAX_IN_MEMORY

    plan = _sweep_plan(spec, metrics, convention, values)
    if plan.size > MAX_IN_MEMORY:
        raise UsageError(
            f"the grid has {plan.size:,} points; costmodel.sweep returns at most {MAX_IN_MEMORY:,} in memory: "
            "stream it with costmodel.sweep_chunks"
        )
    parts = list(plan.chunks(CHUNK, progress if plan.size > CHUNK else None))
    columns = {n: np.concatenate([p.columns[n] for p in parts]) for n in plan.columns}
    result: Sweep = plan.result_class(
        {n: list(a) for n, a in plan.axes.items()}, dict(plan.fixed), columns, plan.metrics, plan.convention
    )
    return result


def sweep_chunks(
    spec: SpecLike,
    metrics: Sequence[str] = ("params", "macs", "flops"),
    convention: str = "costmodel",
    chunk: int = 1 << 18,
    progress: Callable[[int, int], None] | None = None,
    **values: int | Iterable[int],
) -> Iterator[Sweep]:
    """``sweep`` for grids of any size (up to 10⁸ points): yields the grid's results ``chunk`` points at a
    time, in order, each a SweepResult (``.start`` is its first point's flat index). Memory stays
    bounded by ``chunk``; everything is validated before the first chunk is returned (this function
    is not a generator: errors are raised at the call)."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise UsageError(f"chunk={chunk!r}: expected a positive integer")
    plan = _sweep_plan(spec, metrics, convention, values)
    chunks: Iterator[Sweep] = plan.chunks(chunk, progress)
    return chunks


def compare(
    specs: Sequence[SpecLike], convention: str = "costmodel", names: Sequence[str] | None = None, **values: int
) -> Comparison:
    """Several specs side by side (the first is the baseline); ``values`` bind symbols in the specs that
    have them, and a value no spec uses is refused."""
    from .analysis.design import compare as build
    from .results import Comparison

    bind = _check_values(values)
    reports = []
    used: set[str] = set()
    for s in specs:
        spec = _spec(s, {})
        have = {name for _, name in symbol_uses(spec)}
        used |= have
        reports.append(_count(spec, convention, {k: v for k, v in bind.items() if k in have}))
    unused = sorted(set(bind) - used)
    if unused:
        raise UsageError(f"--set {unused[0]}: no spec has a symbol named {unused[0]!r}")
    labels = (
        list(names)
        if names is not None
        else [str(s) if not isinstance(s, NetworkSpec) else (s.name or f"spec {i}") for i, s in enumerate(specs)]
    )
    return Comparison(**vars(build(reports, labels)))


def solve(
    spec: SpecLike,
    symbol: str,
    budgets: Sequence[Budget | str],
    convention: str = "costmodel",
    smallest: bool = False,
    maximum: int = 4096,
    **values: int,
) -> Solution:
    """The largest (or smallest) valid value of ``symbol`` meeting every budget (``'macs<=3e8'`` …), the
    other symbols bound by ``values``: an exact exhaustive search over 1 … ``maximum`` (odd values for
    a kernel; values the spec refuses skipped), extended past it only where the costs are proven
    non-decreasing in the symbol; see analysis/design.py."""
    from .analysis.design import parse_budget
    from .analysis.design import solve as search
    from .results import Solution

    parsed = [b if not isinstance(b, str) else parse_budget(b) for b in budgets]
    bound = _check_values(values)
    if symbol in bound:
        raise UsageError(f"--for {symbol} is also given with --set")
    report = _count(spec, convention, bound)

    def reanalyze(b: dict[str, int]) -> Report:
        return _count(spec, convention, {**bound, **b})

    found = search(report, symbol, parsed, reanalyze, smallest, _as_int("maximum", maximum))
    return Solution(**vars(found), budgets=parsed, smallest=smallest)


def sensitivity(spec: SpecLike, at: Mapping[str, int], metrics: Sequence[str], **values: int) -> Sensitivity:
    """At the point ``at``: each metric's value (what ``table --set`` gives there), its partial derivative
    and elasticity in each free symbol — exact where the formula is smooth in the symbol, a difference
    on the integer lattice where it has floor/max (each row says which); see analysis/design.py."""
    from .analysis.design import elasticities
    from .results import Sensitivity

    bound = _check_values(values)
    point = _check_values(at)

    def reanalyze(b: dict[str, int]) -> Report:
        return analyze(spec, **bound, **b)

    return Sensitivity(elasticities(analyze(spec, **bound), point, metrics, reanalyze))


def explain(spec: SpecLike, a: str, b: str | None = None, **values: int) -> Explanation:
    """Op by op, where two counting conventions differ: ``a`` vs ``b``, or costmodel vs ``a`` when ``b`` is
    None; every op's count under each rule, the difference and why (analysis/conventions.py). The
    differences sum to the gap between the totals under the two conventions."""
    from .analysis.conventions import convention
    from .analysis.conventions import explain as differences
    from .results import Explanation

    first, second = ("costmodel", a) if b is None else (a, b)
    convention(first), convention(second)  # refuse an unknown name before reading the spec
    report = analyze(spec, **values)
    return Explanation(report, first, second, differences(report, first, second))


@dataclass
class Memory:
    """The kernels of an execution model, with bytes and FLOPs, and the peak of live activations."""

    report: Report
    kernels: list[Kernel]
    peak: Peak
    dtype: str
    fusion: str

    @property
    def totals(self) -> dict[str, Any]:
        """Bytes read and written, bytes moved, FLOPs and the peak (analysis/memory.py)."""
        from .analysis.memory import memory_totals

        return memory_totals(self.kernels, self.peak)

    def to_dict(self) -> dict[str, Any]:
        """Totals, the peak and what is alive at it, every kernel: what ``costmodel memory -f json`` prints."""
        from .present.memory import memory_payload

        return memory_payload(self.report, self.kernels, self.peak, self.dtype, self.fusion)

    def table(self, fmt: str = "github") -> str:
        """One row per kernel and a total row, the peak in the footer (or :meth:`to_dict` as JSON)."""
        from .present.memory import render_memory

        return render_memory(self.report, self.kernels, self.peak, fmt, self.dtype, self.fusion)


def memory(spec: SpecLike | Report, dtype: str = "float32", fusion: str = "none", **values: int) -> Memory:
    """Bytes each kernel moves and the peak activation memory, under an execution model."""
    from .analysis.memory import kernels, peak_activations

    report = spec if isinstance(spec, Report) else analyze(spec, **values)
    ks = kernels(report, dtype, fusion)
    return Memory(report, ks, peak_activations(report, dtype, fusion, ks), dtype, fusion)


def deploy(
    spec: SpecLike | Report,
    runtime: str = "tinyengine",
    dtype: str = "int8",
    *,
    include_input: bool = True,
    patch: tuple[int, int] | None = None,
    patch_until: str | None = None,
    **values: int,
) -> Deployment:
    """Peak SRAM (``tinyengine``, with optional patch-based inference) or the planned arena (``tflm``), Flash
    and the live-tensor timeline of the spec's int8 graph under a runtime's rules (docs/deploy.md)."""
    from .analysis.deploy import deploy as plan
    from .results import Deployment as Result

    report = spec if isinstance(spec, Report) else analyze(spec, **values)
    d = plan(report, runtime, dtype, include_input, patch, patch_until)
    return Result(**vars(d))


DEPLOY_COUNT_LIMIT = 2_000
"""The most sub-networks ``Space.deploy_count`` plans one by one (about 6 ms each: 12 s)."""
DEPLOY_DRAWS = 2_000
"""The most candidates ``Space.deploy_draw`` plans before refusing."""
DEPLOY_MIN_RESOLUTION = 32
"""``deploy --solve resolution`` tries every integer N from this to the spec's own size (N×N)."""
DEPLOY_WIDTHS: tuple[float, ...] = tuple(k / 20 for k in range(1, 41))
"""``deploy --solve width`` tries the width multipliers 0.05, 0.10, …, 2.00 (multiples of 0.05)."""


def _observable(runtime: str, what: str) -> None:
    """Refuse budgets on a runtime whose arena is not observable (onnxruntime): the peak is not a figure."""
    from .analysis.deploy import UNOBSERVABLE_ARENA

    if runtime == "onnxruntime":
        raise UsageError(f"{what} with --runtime onnxruntime: {UNOBSERVABLE_ARENA}")


def _fits(d: Deployment, sram: int | None, flash: int | None) -> bool:
    return (sram is None or d.peak_bytes <= sram) and (flash is None or d.flash()["flash_bytes"] <= flash)


def deploy_solve(
    spec: SpecLike,
    solve: str,
    runtime: str = "tinyengine",
    *,
    sram: int | None = None,
    flash: int | None = None,
    include_input: bool = True,
    patch: tuple[int, int] | None = None,
    patch_until: str | None = None,
    **values: int,
) -> DeploySolution:
    """The largest input resolution (``solve="resolution"``) or width multiplier (``"width"``) whose int8
    graph fits the budgets: peak SRAM (tinyengine) or arena (tflm) ≤ ``sram`` and Flash ≤ ``flash``.

    The peak of a greedy or in-place plan is not monotonic in the resolution or the width (the arena
    can shrink when the input grows: buffers may pack better, make_divisible rounds channels), so every
    point of the grid is computed and the largest that fits is reported, not the end of a bisection. The
    grid: resolutions N×N for every integer N from DEPLOY_MIN_RESOLUTION (32) to the spec's own size;
    width multipliers 0.05·k for k = 1 … 40 (0.05 to 2.00). A point whose network the engine refuses (a
    feature map shrunk to nothing) is recorded as invalid, never as fitting."""
    from .results import DeploySolution

    if solve not in ("resolution", "width"):
        raise UsageError(f"--solve {solve!r}: expected resolution or width")
    _observable(runtime, "--solve")
    if sram is None and flash is None:
        raise UsageError("--solve needs a budget: --sram SIZE and/or --flash SIZE")
    base = _spec(spec, {})
    grid: list[Any]
    if solve == "resolution":
        h, w = base.input.height, base.input.width
        if not isinstance(h, int) or not isinstance(w, int) or h != w:
            raise UsageError(f"--solve resolution: the spec's input must be square and numeric, got {h}x{w}")
        if h < DEPLOY_MIN_RESOLUTION:
            raise UsageError(f"--solve resolution: the spec's input {h}x{w} is below {DEPLOY_MIN_RESOLUTION}")
        grid = list(range(DEPLOY_MIN_RESOLUTION, h + 1))
    else:
        grid = list(DEPLOY_WIDTHS)
    points: list[dict[str, Any]] = []
    for v in grid:
        try:
            s = configure(base, resolution=v) if solve == "resolution" else configure(base, width_mult=v)
            d = deploy(analyze(s, **values), runtime, include_input=include_input, patch=patch, patch_until=patch_until)
        except SpecError as e:
            points.append({"value": v, "invalid": str(e)})
            continue
        fl = d.flash()["flash_bytes"]
        points.append({"value": v, "peak_bytes": d.peak_bytes, "flash_bytes": fl, "fits": _fits(d, sram, flash)})
    if not any("invalid" not in p for p in points):
        raise UsageError(f"--solve {solve}: no point of the grid is a valid network ({points[0]['invalid']})")
    return DeploySolution(base.name or "spec", runtime, solve, sram, flash, points)


@dataclass
class Roofline:
    """Roofline estimates of every kernel on a hardware profile."""

    memory: Memory
    profile: HardwareProfile
    estimates: list[Estimate]

    @property
    def time_s(self) -> float:
        """The predicted total time, in seconds."""
        return sum(float(e.kernel.times) * e.time_s for e in self.estimates)

    def warnings(self) -> list[str]:
        """A warning for each kernel whose input or output alone exceeds the profile's on-chip memory."""
        from .analysis.hardware import on_chip_warnings

        return on_chip_warnings(self.memory.kernels, self.profile)

    def to_dict(self, by: str = "auto") -> dict[str, Any]:
        """Totals (time, compute-bound share) and one record per kernel, block or stage (``by``; auto: kernel
        for one block, else block): what ``costmodel roofline -f json`` prints."""
        from .analysis.hardware import summarize
        from .present.roofline import resolve_view, roofline_payload

        m = self.memory
        items = summarize(m.report, self.estimates, resolve_view(m.report, by))
        return roofline_payload(m.report, self.estimates, items, self.profile, m.dtype, m.fusion)

    def table(self, fmt: str = "github", by: str = "auto") -> str:
        """One row per item and a total row (or :meth:`to_dict` as JSON)."""
        from .present.roofline import render_roofline

        m = self.memory
        return render_roofline(m.report, self.estimates, self.profile, fmt, m.dtype, m.fusion, by)


def roofline(
    spec: SpecLike | Report, hardware: str, dtype: str = "float32", fusion: str = "none", **values: int
) -> Roofline:
    """Roofline time per kernel on a shipped hardware profile (by name) or a profile YAML (by path)."""
    from .analysis.hardware import load_profile
    from .analysis.hardware import roofline as estimate

    profile = load_profile(hardware)
    profile.peak(dtype)  # refuse a dtype the profile has no peak for
    mem = memory(spec, dtype, fusion, **values)
    return Roofline(mem, profile, estimate(mem.kernels, profile, dtype))


def shipped() -> list[Shipped]:
    """The specs that ship with the package: ``name`` (what to pass as a spec, e.g. ``mobilenet_v2`` or
    ``timm/efficientnet_b0``), ``group`` (seed, network, timm, reference, dense, space) and ``file``
    (``specs/...yaml``), as ``costmodel list`` prints them. Directory listings only: fast."""
    from .spec.shipped import shipped as listing

    return listing()


def hardware_profiles() -> list[str]:
    """The names of the shipped hardware profiles."""
    from .analysis.hardware import shipped_profiles

    return shipped_profiles()


def _with_batch(spec: SpecLike, batch: int | None, values: Mapping[str, int]) -> NetworkSpec:
    """The spec (symbols bound by ``values``) with its input batch set to ``batch`` (unchanged if None)."""
    s = _spec(spec, _check_values(values))
    return s if batch is None else configure(s, batch=batch)


def train(
    spec: SpecLike,
    batch: int | None = None,
    optimizer: str = "sgd",
    dtype: str = "float32",
    checkpoint: str = "none",
    convention: str = "costmodel",
    device: str = "cpu",
    **values: int,
) -> Training:
    """The costs of one training step ``model(x).sum().backward()`` (analysis/training.py).

    training MACs = forward + backward (each conv/linear: weight gradient = its forward MACs, input
    gradient = its forward MACs unless its input needs no grad; ``convention="torch"``: a conv's weight
    gradient × groups, as FlopCounterMode counts it); saved activations (bytes autograd keeps, by
    ``saved_tensors_hooks``); parameters, gradients, optimizer state (``optimizer``: sgd 0, momentum 1×,
    adam/adamw 2× the parameters, float32) and the peak of a step. ``batch`` replaces the spec's
    ``input.batch``; ``dtype`` is float32, bf16-mixed or fp16-mixed (autocast); ``checkpoint="blocks"``
    recomputes every block in backward. ``train(...).totals`` holds every figure; ``.rows`` each op's.
    """
    from .analysis.training import training
    from .results import Training

    report = analyze(_with_batch(spec, batch, values))
    return Training(**vars(training(report, optimizer, dtype, checkpoint, convention, device)))


def train_vs_torch(
    spec: SpecLike,
    batch: int | None = None,
    optimizer: str = "sgd",
    dtype: str = "float32",
    checkpoint: str = "none",
    device: str = "cpu",
    **values: int,
) -> TrainingGap:
    """Training MACs op by op as costmodel counts them and as FlopCounterMode does (``convention="torch"``:
    a grouped conv's weight gradient × groups), with the gap and why (``costmodel train --vs torch``)."""
    from .results import TrainingGap

    ours = train(spec, batch, optimizer, dtype, checkpoint, "costmodel", device, **values)
    return TrainingGap(ours, train(spec, batch, optimizer, dtype, checkpoint, "torch", device, **values))


def largest_batch(
    spec: SpecLike,
    memory: int | str,
    optimizer: str = "sgd",
    dtype: str = "float32",
    checkpoint: str = "none",
    device: str = "cpu",
    convention: str = "costmodel",
    **values: int,
) -> tuple[int, Training]:
    """The largest batch N whose training-step peak (``train(...).totals["peak_bytes"]``) fits in
    ``memory`` bytes (an int, or text such as ``"24GiB"`` / ``"16GB"``), and the step at that batch (its
    MACs counted under ``convention``; its ``solved`` holds the budget, N and the peak).

    The peak is affine in N, m(N) = m(1) + (N − 1)·(m(2) − m(1)), so N = 1 + floor((budget − m(1)) /
    (m(2) − m(1))), checked exactly by m(N) ≤ budget < m(N + 1).
    """
    from .analysis.training import largest_batch as search
    from .analysis.training import parse_bytes

    budget = parse_bytes(memory) if isinstance(memory, str) else memory
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise UsageError(f"memory {memory!r}: expected a positive number of bytes")
    base = _spec(spec, _check_values(values))
    steps: dict[int, Training] = {}

    def measure(n: int) -> Any:
        steps[n] = train(base, n, optimizer, dtype, checkpoint, "costmodel", device)
        return steps[n].totals["peak_bytes"]

    n, _, _ = search(measure, budget)
    step = steps[n] if convention == "costmodel" else train(base, n, optimizer, dtype, checkpoint, convention, device)
    step.solved = {"budget": budget, "batch": n, "peak_bytes": step.totals["peak_bytes"]}
    return n, step


@dataclass
class Latency:
    """Predicted eager latency of every op under a measured calibration (analysis/latency.py)."""

    report: Report
    calibration: Any
    times: list[Any]

    @property
    def time_s(self) -> float:
        """The predicted total time, in seconds."""
        from .analysis.latency import total_seconds

        return total_seconds(self.times)

    def to_dict(self, by: str = "auto") -> dict[str, Any]:
        """The calibration used, the total time and one record per op, block or stage (``by``; auto: op for
        one block, else block): what ``costmodel latency -f json`` prints."""
        from .present.latency import latency_payload, resolve_view

        return latency_payload(self.report, self.calibration, self.times, resolve_view(self.report, by))

    def table(self, fmt: str = "github", by: str = "auto") -> str:
        """One row per item and a total row (or :meth:`to_dict` as JSON)."""
        from .present.latency import render_latency

        return render_latency(self.report, self.calibration, self.times, fmt, by)


def latency(
    spec: SpecLike | Report, hardware: str, threads: int | None = None, dtype: str = "float32", **values: int
) -> Latency:
    """Predicted latency per op on a hardware profile calibrated by ``costmodel calibrate --torch``, using
    the calibration made at ``threads`` threads (the profile's only one when None). ``dtype="int8"``: the
    int8 graph on LiteRT, from ``calibrate --runtime litert`` (docs/deploy.md)."""
    from .analysis.hardware import load_profile
    from .analysis.latency import pick, predict

    profile = load_profile(hardware)
    cal = pick(profile.latency, threads, dtype)
    report = spec if isinstance(spec, Report) else analyze(spec, **values)
    return Latency(report, cal, predict(report, cal))


def latency_calibration(
    threads: int,
    specs: Sequence[SpecLike] = (),
    quick: bool = False,
    existing: str | None = None,
    runtime: str = "torch",
) -> list[dict[str, Any]]:
    """Measure the per-op-class latency models at ``threads`` threads (``runtime`` torch: eager float32;
    ``litert``: the int8 graph on LiteRT's interpreter, dtype int8), plus lookup-table entries for the
    distinct ops of ``specs`` (torch); returns the profile's ``latency`` list, keeping the calibrations at
    other thread counts or dtypes of the profile file ``existing`` if it exists."""
    from .analysis.hardware import load_profile
    from .calibration import calibrate, calibrate_litert, measure_spec

    if runtime not in ("torch", "litert"):
        raise UsageError(f"unknown latency runtime {runtime!r}; expected torch or litert")
    if runtime == "litert" and specs:
        raise UsageError("--spec lookup-table entries are measured with --torch only")
    cal = calibrate(threads, quick) if runtime == "torch" else calibrate_litert(threads, quick)
    if specs:
        cal = measure_spec([analyze(s) for s in specs], cal)
    keep: list[dict[str, Any]] = []
    if existing is not None and os.path.exists(existing):
        old = load_profile(existing)
        keep = [c.model_dump() for c in old.latency if (c.threads, c.dtype) != (cal.threads, cal.dtype)]
    return [*keep, cal.model_dump()]


class Space:
    """A search space (spec/space.py) and its exact answers (analysis/space.py): ``size``, ``stats()``,
    ``count(budgets)``, ``sample(n, seed, budgets)``, ``pareto(a, b)``, ``table()``, ``enumerate(…)``.
    The per-block tables are built once, on first use, and shared by every answer."""

    def __init__(self, spec: Any) -> None:
        from .analysis.space import Tables

        self.spec = spec
        self.fast = Tables(spec, peak=False)  # params, MACs, FLOPs only
        self._full: Any = None

    @property
    def tables(self) -> Any:
        """The per-block tables with the peak activation bytes too (built on first use)."""
        if self._full is None:
            from .analysis.space import Tables

            self._full = Tables(self.spec)
        return self._full

    def _for(self, budgets: Sequence[Any]) -> Any:
        return self.tables if any(b.metric == "peak_activation_bytes" for b in budgets) else self.fast

    @property
    def size(self) -> int:
        """The exact number of sub-networks: Π over the choices (a layer: |outs| × Σ_d P^d)."""
        n: int = self.spec.size
        return n

    def stats(self, peak: bool = True) -> Any:
        """Exact min / max (with arg-min / arg-max), mean and variance of params, MACs and FLOPs; with
        ``peak``, also the min / max peak activation bytes (float32, no fusion; about twice the time)."""
        from .analysis.space import stats

        return stats(self.tables if peak else self.fast)

    def count(self, budgets: Sequence[Any], buckets: int | None = None) -> Any:
        """How many sub-networks meet every budget (``'macs<=3e8'`` …): exact, or a rigorous bracket."""
        from .analysis.space import BUCKETS, count, parse_budgets

        parsed = parse_budgets(budgets)
        return count(self._for(parsed), parsed, buckets or BUCKETS)

    def costs(self, sub: Any) -> dict[str, int]:
        """The exact costs of one sub-network, from the engine's analysis of its concrete spec."""
        from .analysis.memory import peak_activations

        report = analyze(self.spec.concrete(sub))
        out = {m: int(report.totals[m]) for m in ("params", "macs", "flops")}
        out["peak_activation_bytes"] = peak_activations(report).bytes
        return out

    def sample(self, n: int, seed: int = 0, budgets: Sequence[Any] = ()) -> list[Any]:
        """``n`` sub-networks drawn exactly uniformly among those meeting the budgets."""
        from .analysis.space import parse_budgets, sample

        parsed = parse_budgets(budgets)
        return sample(self._for(parsed), n, seed, parsed)

    def pareto(self, a: str = "macs", b: str = "params") -> Any:
        """The exact Pareto front over two metrics (minimised; ``max:params`` maximises)."""
        from .analysis.space import pareto

        return pareto(self.tables if "peak_activation_bytes" in a + b else self.fast, a, b)

    def table(self) -> list[dict[str, Any]]:
        """The per-block cost table: block position × choice × input shape → params, MACs, FLOPs, peak."""
        from .analysis.space import table_rows

        return table_rows(self.tables)

    def enumerate(
        self,
        budgets: Sequence[Any] = (),
        scheduler: str | None = None,
        workers: int = 2,
        chunk: int = 1 << 15,
        progress: Callable[[int, int], None] | None = None,
    ) -> Any:
        """Brute force on Dask (a LocalCluster of ``workers`` processes, or the ``scheduler`` address)."""
        from .analysis.space import enumerate_space, parse_budgets

        return enumerate_space(self.tables, parse_budgets(budgets), scheduler, workers, chunk, progress=progress)

    def subnets(self) -> Iterator[Any]:
        """Every sub-network, in order: resolution, width, then each layer's out-channel value, depth and
        per-instance options (a product; use only on a small space)."""
        from itertools import product

        from .spec.space import LayerPick, SubNet

        per_layer: list[list[Any]] = []
        for ls in self.spec.layers:
            if not ls.expanded:
                per_layer.append([LayerPick(out) for out in ls.outs])
                continue
            opts = range(len(ls.options))
            per_layer.append(
                [LayerPick(out, blocks) for out in ls.outs for d in ls.depths for blocks in product(opts, repeat=d)]
            )
        widths = self.spec.widths or (None,)
        for res, width in product(self.spec.resolutions, widths):
            for picks in product(*per_layer):
                yield SubNet(res, width, tuple(picks))

    def deployed(self, sub: Any, runtime: str, include_input: bool = True) -> Deployment:
        """One sub-network's int8 deployment (:func:`deploy` on its concrete spec)."""
        return deploy(self.spec.concrete(sub), runtime, include_input=include_input)

    def deploy_count(
        self,
        runtime: str,
        sram: int | None = None,
        flash: int | None = None,
        budgets: Sequence[str] = (),
        include_input: bool = True,
    ) -> DeployCount:
        """How many sub-networks fit peak SRAM (tinyengine) or arena (tflm) ≤ ``sram`` and Flash ≤ ``flash``
        (and the additive ``budgets``), exactly. The deployment peak is a max over a planned graph, not a
        sum of per-block figures, so it is not bracketed like ``count``: every sub-network is enumerated
        and planned; refused above DEPLOY_COUNT_LIMIT sub-networks (use ``deploy_draw`` there)."""
        from .analysis.space import meets, parse_budgets
        from .results import DeployCount

        if sram is None and flash is None:
            raise UsageError("--runtime counts sub-networks against --sram and/or --flash: give one")
        _observable(runtime, "space --runtime")
        parsed = parse_budgets(budgets)
        if self.size > DEPLOY_COUNT_LIMIT:
            raise UsageError(
                f"--sram/--flash: counting plans every sub-network's int8 graph, at most {DEPLOY_COUNT_LIMIT:,}; "
                f"this space has {self.size:,} (use --sample N to draw sub-networks that fit)"
            )
        n = 0
        peaks: list[int] = []
        flashes: list[int] = []
        for sub in self.subnets():
            d = self.deployed(sub, runtime, include_input)
            peaks.append(d.peak_bytes)
            flashes.append(d.flash()["flash_bytes"])
            if _fits(d, sram, flash) and (not parsed or meets(self.costs(sub), parsed)):
                n += 1
        return DeployCount(self.spec, runtime, sram, flash, [str(b) for b in budgets], n, min(peaks), min(flashes))

    def deploy_draw(
        self,
        n: int,
        runtime: str,
        sram: int | None = None,
        flash: int | None = None,
        seed: int = 0,
        budgets: Sequence[str] = (),
        include_input: bool = True,
    ) -> SpaceSamples:
        """``n`` sub-networks drawn exactly uniformly among those meeting ``budgets`` and fitting the
        deployment budgets: :meth:`sample` draws uniformly among those meeting ``budgets``, and each draw is
        kept when its planned int8 graph fits (rejection keeps uniformity). Each record's costs add
        ``deploy_peak_bytes`` and ``flash_bytes``. Refused after DEPLOY_DRAWS planned candidates."""
        import random

        from .results import SpaceSamples

        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UsageError("--sample must be a positive number")
        _observable(runtime, "space --runtime")
        rng = random.Random(seed)
        out: list[tuple[Any, dict[str, int]]] = []
        tried = 0
        while len(out) < n:
            batch = self.sample(min(DEPLOY_DRAWS, 4 * n), rng.randrange(2**63), budgets)
            for sub in batch:
                tried += 1
                d = self.deployed(sub, runtime, include_input)
                if _fits(d, sram, flash):
                    costs = self.costs(sub)
                    costs["deploy_peak_bytes"] = d.peak_bytes
                    costs["flash_bytes"] = d.flash()["flash_bytes"]
                    out.append((sub, costs))
                    if len(out) == n:
                        break
                if tried >= DEPLOY_DRAWS:
                    raise UsageError(
                        f"--sram/--flash: {len(out):,} of {tried:,} planned sub-networks fit, {n:,} asked for; "
                        "loosen the budgets or ask for fewer"
                    )
        return SpaceSamples(self.spec, out)

    # The answers of ``costmodel space``, each a result with ``to_dict()`` (its JSON) and ``table(fmt)``.

    def summary(self, budgets: Sequence[str] = (), peak: bool = False) -> SpaceSummary:
        """:meth:`stats` and, with ``budgets``, :meth:`count` (``costmodel space [--budget …] [--peak]``)."""
        from .analysis.space import parse_budgets
        from .results import SpaceSummary

        parsed = parse_budgets(budgets)
        st = self.stats(peak=peak)
        return SpaceSummary(self.spec, st, self.count(parsed) if parsed else None, [str(b) for b in budgets])

    def front(self, a: str = "macs", b: str = "params") -> SpaceFront:
        """:meth:`pareto` with its sub-networks described (``costmodel space --pareto A,B``)."""
        from .results import SpaceFront

        return SpaceFront(self.spec, self.pareto(a, b))

    def draw(self, n: int, seed: int = 0, budgets: Sequence[Any] = ()) -> SpaceSamples:
        """:meth:`sample` with each sub-network's exact costs (``costmodel space --sample N``)."""
        from .results import SpaceSamples

        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UsageError("--sample must be a positive number")
        return SpaceSamples(self.spec, [(sub, self.costs(sub)) for sub in self.sample(n, seed, budgets)])

    def blocks(self) -> SpaceBlocks:
        """:meth:`table` as a result (``costmodel space --table``)."""
        from .results import SpaceBlocks

        return SpaceBlocks(self.table())

    def enumeration(
        self,
        budgets: Sequence[str] = (),
        scheduler: str | None = None,
        workers: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> SpaceEnumeration:
        """:meth:`enumerate` as a result (``costmodel space --enumerate``)."""
        from .results import SpaceEnumeration

        return SpaceEnumeration(self.enumerate(budgets, scheduler, workers, progress=progress), list(budgets))


def space(spec: str | os.PathLike[str]) -> Space:
    """Load a search space (a spec whose fields may be ``{choice: [...]}``; docs/spaces.md)."""
    from .spec.space import load_space

    if not isinstance(spec, (str, os.PathLike)):
        raise UsageError(f"expected a path to a search-space YAML, got {type(spec).__name__}")
    return Space(load_space(spec))


def from_torch(
    module: Any,
    input: tuple[int, int, int] = (3, 224, 224),
    *,
    name: str | None = None,
    symbolic_resolution: bool = False,
) -> NetworkSpec:
    """The validated spec of a ``torch.nn.Module``, traced once at ``input`` = (C, H, W) on the meta device.

    The spec's params equal ``sum(p.numel() for p in module.parameters())``, its buffers
    ``sum(b.numel() for b in module.buffers())``, its MACs ``FlopCounterMode`` total / 2 and its output the
    forward pass's — at the traced resolution and at any other set on the spec — when every op is one the
    spec can say; otherwise ``import_report(spec)`` names each op left out, with its module path, and the
    fraction of MACs and params covered. ``symbolic_resolution``: ``height: H, width: W``. Needs torch.
    """
    try:
        from .importers.torch import from_torch as _from_torch
    except ImportError:
        raise UsageError("from_torch needs torch: pip install torch") from None
    spec: NetworkSpec = _from_torch(module, input, name=name, symbolic_resolution=symbolic_resolution)
    return spec


def export_onnx(spec: SpecLike, path: str | os.PathLike[str], **values: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Write the spec's network (torchref.build, random weights) to ``path`` as an ONNX graph (torch's
    TorchScript exporter, opset 17), so it can be run on a real runtime; ``costmodel import FILE.onnx``
    reads it back with the spec's MACs and output shape. Returns (input shape, output shape). Needs
    ``pip install 'costmodel[torch,onnx]'``."""
    try:
        from .torchref import export_onnx as write
    except ImportError:
        raise UsageError("export --onnx needs torch: pip install 'costmodel[torch,onnx]'") from None
    return write(_spec(spec, _check_values(values)), os.fspath(path))


def export_tflite(spec: SpecLike | Report, path: str | os.PathLike[str], seed: int = 0, **values: int) -> int:
    """Write the spec's network as a full-integer int8 ``.tflite`` (costmodel/tflite.py: the equivalent Keras
    model with random weights, TensorFlow's converter, random calibration data from ``seed``): the graph
    ``deploy --runtime tflm`` plans. Returns the file's size in bytes. Needs ``pip install 'costmodel[deploy]'``."""
    from .tflite import export_tflite as write

    report = spec if isinstance(spec, Report) else analyze(spec, **values)
    return write(report, os.fspath(path), seed)


def from_onnx(path: str | os.PathLike[str], *, symbolic_resolution: bool = False) -> NetworkSpec:
    """The validated spec of an ONNX file's graph (read with the ``onnx`` package only, no torch).

    MACs and output shape equal the exported model's; params equal the elements of the graph's weight
    initializers (exporters fold BatchNorm into the convs: the spec then has conv bias and no norm, and
    ``import_report(spec)`` says so). Needs ``pip install onnx``.
    """
    try:
        from .importers.onnx import from_onnx as _from_onnx
    except ImportError:
        raise UsageError("from_onnx needs the onnx package: pip install onnx") from None
    spec: NetworkSpec = _from_onnx(os.fspath(path), symbolic_resolution=symbolic_resolution)
    return spec


def import_model(
    source: str,
    input: tuple[int, int, int] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    symbolic_resolution: bool = False,
    partial: bool = False,
) -> NetworkSpec:
    """The spec of ``timm:NAME`` (pretrained=False), ``torchvision:NAME`` (weights=None),
    ``package.module:callable`` (imports and runs the user's code) or a ``.onnx`` path; ``input`` defaults
    to timm's ``pretrained_cfg['input_size']`` (torchvision's: the default weights' crop size) and is required
    where the model has none; the spec's ``provenance.input`` says which size was used and where it came from.

    The spec is exact (params, buffers, MACs and output equal the model's, nothing left out) or refused: an
    ``ImportFailure`` (a ``UsageError``) names the first uncovered module path and the coverage
    (spec / model MACs and params). ``partial=True`` returns the partial spec instead, with its
    ``import_report`` saying what it leaves out."""
    spec = _import_model(source, input, kwargs, symbolic_resolution)
    from .importers.core import report_of
    from .importers.recognise import ImportFailure

    report = report_of(spec)
    if not partial and report is not None and not report.exact:
        raise ImportFailure(report.refusal(), report.problems)
    return spec


def _import_model(
    source: str,
    input: tuple[int, int, int] | None,
    kwargs: Mapping[str, Any] | None,
    symbolic_resolution: bool,
) -> NetworkSpec:
    from .importers.sources import input_origin, is_onnx, load_module

    if is_onnx(source):
        given = [what for what, v in (("--input (input)", input), ("--kwargs (kwargs)", kwargs)) if v]
        if given:
            raise UsageError(
                f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to an ONNX file: its graph "
                "fixes the input shape and the network; export it again with the size or options wanted"
            )
        return from_onnx(source, symbolic_resolution=symbolic_resolution)
    model, default, name = load_module(source, dict(kwargs or {}), need_size=input is None)
    size = input or default
    if size is None:
        raise UsageError(f"{source} has no default input size: give --input CxHxW (e.g. --input 3x224x224)")
    from .importers.torch import from_torch as _from_torch

    where = "--input" if input else input_origin(source, model)
    origin = source + "".join(f" {k}={v!r}" for k, v in (kwargs or {}).items())  # the builder's arguments too
    spec: NetworkSpec = _from_torch(
        model, size, name=name, origin=origin, symbolic_resolution=symbolic_resolution, input_from=where
    )
    return spec


def import_report(spec: NetworkSpec) -> Any:
    """The ``ImportReport`` of a spec ``from_torch`` / ``from_onnx`` returned: the source's and the spec's
    params, buffers, MACs and output, every op left out, and notes; None for a spec read from YAML."""
    from .importers.core import report_of

    return report_of(spec)
