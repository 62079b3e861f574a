"""Importers: a PyTorch module, a timm or torchvision model, or an ONNX file → an exact spec.

``torch.py`` traces a module on the meta device, ``onnx.py`` reads an ONNX graph (the ``onnx`` package
only), and both hand a framework-neutral op graph to ``recognise.py``, which finds the spec's layers in
it; ``core.py`` validates the spec and reports what it covers. Needs the optional packages (torch, onnx)
only when called. Imports spec and engine, never present or cli (docs/architecture.md).
"""

from __future__ import annotations

from .core import ImportReport, report_of

__all__ = ["ImportReport", "report_of"]
