"""The library's entry points: load a spec, analyse it, and every design question the CLI asks.

The CLI calls exactly these functions; a user calls the same ones. Results are plain objects with
numbers (``Report``, ``Sweep``, ``Comparison``, ``Solution``, ``Memory``, ``Roofline``); their
``table()`` / ``to_dict()`` methods and the ``present`` package turn them into text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .engine.report import Report as _EngineReport
from .engine.walk import analyze_spec
from .errors import UsageError
from .spec import loader
from .spec.network import NetworkSpec, symbol_uses

if TYPE_CHECKING:
    from .analysis.design import Budget, Comparison, Elasticity, Solution
    from .analysis.hardware import Estimate, HardwareProfile
    from .analysis.memory import Kernel, Peak
    from .analysis.sweep import SweepResult

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

    def table(self, fmt: str = "github", by: str = "auto", depth: int | None = None) -> str:
        """The report as text: a tabulate table in ``fmt``, or ``json`` / ``csv`` (present/report.py)."""
        from .present.report import render

        return render(self, fmt, by, depth)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: totals, output, rows (counts as ints, symbolic ones as sympy-parseable text)."""
        from .present.report import to_dict

        return to_dict(self)

    def _repr_latex_(self) -> str:
        import sympy

        parts = [rf"\text{{{m}}} = {sympy.latex(self.formula(m))}" for m in ("params", "macs", "flops")]
        return "$" + r",\quad ".join(parts) + "$"

    def _repr_html_(self) -> str:
        return self.table("html")


def _check_values(values: Mapping[str, object]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise UsageError(f"{name}={v!r}: a symbol's value must be an integer")
        out[name] = v
    return out


def load(path: str | os.PathLike[str], **values: int) -> NetworkSpec:
    """Load and validate a YAML spec; ``values`` bind symbols (``C=16``) before validation."""
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


def _sweep_class() -> type[SweepResult]:
    from .analysis.sweep import SweepResult

    class Sweep(SweepResult):
        """A sweep's grid and exact results (analysis/sweep.py), rendered as HTML in notebooks."""

        def _repr_html_(self) -> str:
            from .present.sweep import render_sweep

            head = render_sweep(self.head(50), "html", self.convention)
            more = f"<p>{len(self) - 50:,} more points</p>" if len(self) > 50 else ""
            return head + more

    return Sweep


def sweep(
    spec: SpecLike,
    metrics: Sequence[str] = ("params", "macs", "flops"),
    convention: str = "costmodel",
    progress: Callable[[int, int], None] | None = None,
    **values: int | Iterable[int],
) -> SweepResult:
    """Exact costs over a grid: each keyword is a symbol, with one value (fixed) or many (an axis).

    ``costmodel.sweep("specs/symbolic_mbconv.yaml", t=range(1, 9), k=[3, 5, 7], C=16, H=32, W=32)["macs"]``
    is an array in the grid's order (the last axis varies fastest). Every point is exact; see
    analysis/sweep.py.
    """
    from .analysis.sweep import run

    fixed: dict[str, int] = {}
    axes: dict[str, list[int]] = {}
    for name, v in values.items():
        if isinstance(v, int) and not isinstance(v, bool):
            fixed[name] = v
        else:
            items = list(v)  # type: ignore[arg-type]
            if not items or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in items):
                raise UsageError(f"{name}: the values of an axis must be positive integers")
            axes[name] = items
    both = sorted(set(axes) & set(fixed))
    if both:
        raise UsageError(f"{both[0]} is given both as an axis and as a fixed value")
    report = _count(spec, convention, fixed)

    def reanalyze(bound: dict[str, int]) -> Report:
        return _count(spec, convention, {**fixed, **bound})

    result = run(report, axes, metrics, progress, reanalyze, _sweep_class())
    result.fixed = fixed
    result.convention = report.convention
    return result


def compare(
    specs: Sequence[SpecLike], convention: str = "costmodel", names: Sequence[str] | None = None, **values: int
) -> Comparison:
    """Several specs side by side (the first is the baseline); ``values`` bind symbols in the specs that
    have them, and a value no spec uses is refused."""
    from .analysis.design import compare as build

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
    return build(reports, labels)


def solve(
    spec: SpecLike,
    symbol: str,
    budgets: Sequence[Budget | str],
    convention: str = "costmodel",
    smallest: bool = False,
    **values: int,
) -> Solution:
    """The largest (or smallest) value of ``symbol`` meeting every budget (``'macs<=3e8'`` …), the other
    symbols bound by ``values``; see analysis/design.py."""
    from .analysis.design import parse_budget
    from .analysis.design import solve as search

    parsed = [b if not isinstance(b, str) else parse_budget(b) for b in budgets]
    if symbol in values:
        raise UsageError(f"--for {symbol} is also given with --set")
    report = _count(spec, convention, values)

    def reanalyze(bound: dict[str, int]) -> Report:
        return _count(spec, convention, {**values, **bound})

    return search(report, symbol, parsed, reanalyze, smallest)


def sensitivity(spec: SpecLike, at: Mapping[str, int], metrics: Sequence[str], **values: int) -> list[Elasticity]:
    """At the point ``at``: each metric's value, partial derivative and elasticity in each free symbol."""
    from .analysis.design import elasticities

    return elasticities(analyze(spec, **values), _check_values(at), metrics)


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


def memory(spec: SpecLike | Report, dtype: str = "float32", fusion: str = "none", **values: int) -> Memory:
    """Bytes each kernel moves and the peak activation memory, under an execution model."""
    from .analysis.memory import kernels, peak_activations

    report = spec if isinstance(spec, Report) else analyze(spec, **values)
    ks = kernels(report, dtype, fusion)
    return Memory(report, ks, peak_activations(report, dtype, fusion, ks), dtype, fusion)


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


def hardware_profiles() -> list[str]:
    """The names of the shipped hardware profiles."""
    from .analysis.hardware import shipped_profiles

    return shipped_profiles()


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
) -> NetworkSpec:
    """The spec of ``timm:NAME`` (pretrained=False), ``torchvision:NAME`` (weights=None),
    ``package.module:callable`` (imports and runs the user's code) or a ``.onnx`` path; ``input`` defaults
    to timm's ``pretrained_cfg['input_size']`` and is required where the model has none."""
    from .importers.sources import is_onnx, load_module

    if is_onnx(source):
        return from_onnx(source, symbolic_resolution=symbolic_resolution)
    model, default, name = load_module(source, dict(kwargs or {}))
    size = input or default
    if size is None:
        raise UsageError(f"{source} has no default input size: give --input CxHxW (e.g. --input 3x224x224)")
    return from_torch(model, size, name=name, symbolic_resolution=symbolic_resolution)


def import_report(spec: NetworkSpec) -> Any:
    """The ``ImportReport`` of a spec ``from_torch`` / ``from_onnx`` returned: the source's and the spec's
    params, buffers, MACs and output, every op left out, and notes; None for a spec read from YAML."""
    from .importers.core import report_of

    return report_of(spec)
