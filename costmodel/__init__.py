"""costmodel: static, exact costs of mobile CNN blocks (MBConv and relatives) from a spec.

    >>> import costmodel
    >>> report = costmodel.analyze("specs/seed_mbconv.yaml")
    >>> report.totals["params"], report.totals["macs"]
    (408, 26112)

Counting conventions are in docs/conventions.md; the spec format in docs/spec.md.
"""

from __future__ import annotations

from .api import analyze, load, loads, sweep
from .errors import CostModelError, SpecError, UndecidableError, UsageError
from .report import Report, Row
from .spec import (
    BasicLayer,
    BottleneckLayer,
    ConvLayer,
    Defaults,
    DWSepLayer,
    FusedMBConvLayer,
    Input,
    MBConvLayer,
    NetworkSpec,
)

__version__ = "0.1.0"

__all__ = [
    "BasicLayer",
    "BottleneckLayer",
    "ConvLayer",
    "CostModelError",
    "DWSepLayer",
    "Defaults",
    "FusedMBConvLayer",
    "Input",
    "MBConvLayer",
    "NetworkSpec",
    "Report",
    "Row",
    "SpecError",
    "UndecidableError",
    "UsageError",
    "analyze",
    "load",
    "loads",
    "sweep",
]
