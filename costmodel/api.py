"""The library's entry points: load a spec, analyse it."""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import loader
from .errors import UsageError
from .network import analyze_spec
from .report import Report
from .spec import NetworkSpec


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
