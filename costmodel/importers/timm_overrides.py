"""timm's module classes in an imported spec: ``implementation`` at the top and on the layers timm builds from
torch.nn, so the peer-counter presets (``--convention fvcore|ptflops|thop|torchinfo``) count the imported spec as
each tool counts the timm model (docs/conventions.md, "The presets on timm models").

The figures of the default convention do not depend on it; the presets do, because the hook-based tools tell
classes apart by exact type (timm's ``BatchNormAct2d``, ``Linear``, ``Conv2dSame`` get no hook) and timm's SE pools
with ``x.mean``. The rules are the shipped specs' (specs/timm/_tools/set_implementation.py), read off the built
modules:

* ``implementation: timm``, or ``{library: timm, pad_type: same}`` where the stem conv is a ``Conv2dSame``
  (timm's ``pad_type='same'``, the tf_ ports);
* ``implementation: torch`` on the first layer where the stem's norm is a plain ``nn.BatchNorm2d`` (GhostNet);
* ``implementation: torch`` on the last linear layer where the classifier is an ``nn.Linear`` (timm's
  create_classifier, EfficientNet) rather than timm's own ``Linear`` (MobileNetV3, GhostNet);
* ``implementation: torch`` on a linear layer before it (timm's ``conv_head``, a 1×1 ``nn.Conv2d`` on the pooled
  map, which every tool counts as the ``nn.Linear`` the spec writes).

This module does not import timm or torch: it reads class names and the module's ``__module__``.
"""

from __future__ import annotations

from typing import Any


def is_timm(module: Any) -> bool:
    """Whether ``module`` is a model timm built (its class lives in the ``timm`` package)."""
    return type(module).__module__.split(".")[0] == "timm"


def _cls(module: Any) -> str:
    return f"{type(module).__module__}.{type(module).__name__}" if module is not None else ""


def _torch_nn(module: Any, name: str) -> bool:
    """Whether ``module`` is exactly the torch.nn class ``name`` (not a timm subclass of it)."""
    return _cls(module) in (f"torch.nn.modules.{m}.{name}" for m in ("batchnorm", "linear", "conv"))


def apply(data: dict[str, Any], model: Any) -> None:
    """Set ``implementation`` on the spec data of the timm model ``model`` (see the module docstring)."""
    stem = getattr(model, "conv_stem", None)
    pad_same = type(stem).__name__ == "Conv2dSame"
    data["implementation"] = {"library": "timm", "pad_type": "same"} if pad_same else {"library": "timm"}
    layers: list[dict[str, Any]] = data["layers"]
    if not layers:
        return
    if _torch_nn(getattr(model, "bn1", None), "BatchNorm2d"):
        layers[0]["implementation"] = "torch"
    linears = [layer for layer in layers if layer.get("kind") == "linear"]
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    for layer in linears:
        last = layer is linears[-1]
        built = _torch_nn(classifier, "Linear") if last else _torch_nn(getattr(model, "conv_head", None), "Conv2d")
        if built:
            layer["implementation"] = "torch"


def fusion_resize(data: dict[str, Any], model: Any) -> None:
    """Write the output resize of timm's MobileNetV5 multi-scale fusion adapter where the trace has none.

    ``MobileNetV5MultiScaleFusionAdapter.forward`` resizes its FFN's H×W output to ``output_resolution`` h×w
    before its norm only where H×W ≠ h×w: a k×k average pool, stride k, where h | H and w | W, else bilinear —
    the spec's ``resize`` with ``mode: timm``, which does nothing where H×W = h×w. Traced at a size where the
    map is already h×w (mobilenetv5_base at 256: 16×16) the trace holds no resize, and without this the spec
    would run none at 193 either, where timm resizes 13×13 to 16×16 (bilinear: no MACs, but FLOPs and the
    presets' counts). So the layer is written before the adapter's ``norm`` layer, as the shipped spec has it;
    at the traced size it changes no figure. Where the trace resized (another input size), the importer wrote the
    layer already and nothing is added."""
    layers: list[dict[str, Any]] = data["layers"]
    for path, m in model.named_modules():
        if type(m).__name__ != "MobileNetV5MultiScaleFusionAdapter" or not is_timm(m):
            continue
        inside = [
            i for i, layer in enumerate(layers) if (n := str(layer.get("name", ""))) == path or n.startswith(f"{path}.")
        ]
        if any(layers[i].get("kind") == "resize" for i in inside):
            continue
        at = next((i for i in inside if layers[i].get("name") == f"{path}.norm"), None)
        size = getattr(m, "output_resolution", None)
        if at is None or not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(x, int) for x in size)):
            continue  # not the adapter's layout: the trace's figures stand (and the import says what it left out)
        h, w = size
        layers.insert(at, {"kind": "resize", "name": path, "size": h if h == w else [h, w], "mode": "timm"})
