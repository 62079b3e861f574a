"""costmodel: static, exact costs of mobile CNN blocks (MBConv and relatives) from a spec.

    >>> import costmodel
    >>> report = costmodel.analyze("specs/seed_mbconv.yaml")
    >>> report.totals["params"], report.totals["macs"]
    (408, 26112)

Counting conventions are in docs/conventions.md; the spec format in docs/spec.md.
"""

from __future__ import annotations

from ._version import __version__
from .api import (
    Report,
    analyze,
    compare,
    configure,
    count,
    explain,
    from_onnx,
    from_torch,
    import_model,
    import_report,
    largest_batch,
    latency,
    load,
    loads,
    memory,
    roofline,
    sensitivity,
    shipped,
    solve,
    space,
    sweep,
    sweep_chunks,
    train,
    train_vs_torch,
)
from .engine.kinds import register
from .engine.report import Row
from .errors import CostModelError, SpecError, UndecidableError, UsageError
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

__all__ = [
    "__version__",
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
    "compare",
    "configure",
    "count",
    "explain",
    "largest_batch",
    "latency",
    "from_onnx",
    "from_torch",
    "import_model",
    "import_report",
    "load",
    "loads",
    "memory",
    "register",
    "roofline",
    "sensitivity",
    "shipped",
    "solve",
    "space",
    "sweep",
    "train",
    "train_vs_torch",
    "sweep_chunks",
]
