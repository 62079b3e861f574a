"""The library's entry points: load a spec, analyse it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from . import loader
from .errors import UsageError
from .network import analyze_spec
from .report import Report
from .spec import NetworkSpec

if TYPE_CHECKING:
    from .grid import SweepResult


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


def analyze(spec: NetworkSpec | str | os.PathLike[str], **values: int) -> Report:
    """Analyse a spec (a NetworkSpec or a YAML path), binding symbols in ``values`` first.

    Returns a :class:`Report` with per-op rows, ``totals``, grouped views and ``formula()``.
    """
    bind = _check_values(values)
    if isinstance(spec, NetworkSpec):
        if bind:
            src = spec._source or loader.Source("<spec>")
            spec = loader.validate(spec.model_dump(mode="python"), src, bind)
    elif isinstance(spec, (str, os.PathLike)):
        spec = loader.load(spec, bind=bind)
    else:
        raise UsageError(f"analyze() takes a NetworkSpec or a path, got {type(spec).__name__}")
    return analyze_spec(spec)


def sweep(
    spec: NetworkSpec | str | os.PathLike[str],
    metrics: Sequence[str] = ("params", "macs", "flops"),
    convention: str = "costmodel",
    progress: Callable[[int, int], None] | None = None,
    **values: int | Iterable[int],
) -> SweepResult:
    """Exact costs over a grid: each keyword is a symbol, with one value (fixed) or many (an axis).

    ``costmodel.sweep("specs/symbolic_mbconv.yaml", t=range(1, 9), k=[3, 5, 7], C=16, H=32, W=32)["macs"]``
    is an array in the grid's order (the last axis varies fastest). Every point is exact; see grid.run.
    """
    from .conventions import apply
    from .grid import run

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
    report = apply(analyze(spec, **fixed), convention)

    def reanalyze(bound: dict[str, int]) -> Report:
        return apply(analyze(spec, **fixed, **bound), convention)

    result = run(report, axes, metrics, progress, reanalyze)
    result.fixed = fixed
    return result
