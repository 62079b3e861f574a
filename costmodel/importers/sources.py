"""Where a model to import comes from: ``timm:NAME``, ``torchvision:NAME``, ``package.module:callable``
or a path to an ``.onnx`` file; and the ``--kwargs`` grammar.

``--kwargs 'k=v,…'`` is parsed by a small grammar of our own, never evaluated: each value is an int
(``12``, ``-3``), a float (``0.2``, ``1e-3``), a bool (``true``/``false``, ``True``/``False``), ``none``
or a string (anything else, or quoted with ``'`` or ``"``).

``package.module:callable`` imports the user's module (the current directory is importable) and calls
the callable with the kwargs: this runs the user's code, by design.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

from ..errors import UsageError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+)$")


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``"num_classes=10,drop_rate=0.2,act='relu'"`` → ``{"num_classes": 10, "drop_rate": 0.2, "act": "relu"}``."""
    out: dict[str, Any] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not _KEY.match(key):
            raise UsageError(f"--kwargs {part!r}: expected NAME=VALUE, e.g. --kwargs num_classes=10")
        if key in out:
            raise UsageError(f"--kwargs {key}: given twice")
        out[key] = _value(raw)
    return out


def _value(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw)
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    return raw


def parse_input(text: str | None) -> tuple[int, int, int] | None:
    """``"3x224x224"`` → ``(3, 224, 224)``."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]+)\s*[xX×]\s*([0-9]+)\s*[xX×]\s*([0-9]+)\s*", text)
    if not m or any(int(g) < 1 for g in m.groups()):
        raise UsageError(f"--input {text!r}: expected CxHxW, three positive integers, e.g. 3x224x224")
    c, h, w = (int(g) for g in m.groups())
    return c, h, w


def is_onnx(source: str) -> bool:
    """Whether SOURCE names an ONNX file."""
    return source.lower().endswith(".onnx")


def load_module(source: str, kwargs: dict[str, Any]) -> tuple[Any, tuple[int, int, int] | None, str]:
    """The ``nn.Module`` SOURCE names, its default input size (timm's ``pretrained_cfg['input_size']``,
    torchvision's default weights' crop size) if it has one, and a name for the spec. timm builds with
    ``pretrained=False``, torchvision with ``weights=None``: no weights are downloaded."""
    kind, sep, name = source.partition(":")
    if not sep or not name:
        raise UsageError(
            f"SOURCE {source!r}: expected timm:NAME, torchvision:NAME, package.module:callable or a .onnx file"
        )
    try:
        import torch
    except ImportError:
        raise UsageError("importing a PyTorch model needs torch: pip install torch") from None
    if kind == "timm":
        try:
            import timm
        except ImportError:
            raise UsageError("timm:NAME needs timm installed: pip install timm") from None
        if name not in timm.list_models():
            raise UsageError(f"SOURCE {source!r}: timm has no model named {name!r}")
        try:
            model = timm.create_model(name, pretrained=False, device="meta", **kwargs)
        except TypeError as exc:
            raise UsageError(f"--kwargs: timm.create_model({name!r}) refused them: {exc}") from None
        size = getattr(model, "pretrained_cfg", {}).get("input_size")
        return model, (tuple(int(v) for v in size) if size else None), name  # type: ignore[return-value]
    if kind == "torchvision":
        try:
            import torchvision
        except ImportError:
            raise UsageError("torchvision:NAME needs torchvision installed: pip install torchvision") from None
        if name not in torchvision.models.list_models():
            raise UsageError(f"SOURCE {source!r}: torchvision has no model named {name!r}")
        try:
            with torch.device("meta"):
                model = torchvision.models.get_model(name, weights=None, **kwargs)
        except TypeError as exc:
            raise UsageError(f"--kwargs: torchvision's {name} refused them: {exc}") from None
        return model, _torchvision_size(torchvision, name), name
    if not all(_KEY.match(p) for p in kind.split(".")) or not _KEY.match(name):
        raise UsageError(f"SOURCE {source!r}: expected package.module:callable")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(kind)
    except ImportError as exc:
        raise UsageError(f"SOURCE {source!r}: cannot import {kind!r}: {exc}") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise UsageError(f"SOURCE {source!r}: {kind} has no callable {name!r}")
    try:
        model = fn(**kwargs)
    except Exception as exc:  # the user's code failed
        raise UsageError(f"SOURCE {source!r}: calling {name}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"SOURCE {source!r}: {name}() returned {type(model).__name__}, not a torch.nn.Module")
    size = getattr(model, "pretrained_cfg", None)
    default = tuple(int(v) for v in size["input_size"]) if isinstance(size, dict) and "input_size" in size else None
    return model, default, name  # type: ignore[return-value]


def _shape(size: Any) -> str:
    return "x".join(str(int(v)) for v in size)


def input_origin(source: str, model: Any) -> str:
    """Where ``load_module``'s default input size for SOURCE came from, in words (for the spec's provenance):
    timm's ``pretrained_cfg["input_size"]`` (and its ``test_input_size`` where it has another), torchvision's
    default weights' crop size, or the user's model's ``pretrained_cfg["input_size"]``."""
    kind, _, name = source.partition(":")
    cfg = getattr(model, "pretrained_cfg", None)
    if kind == "timm":
        text = "timm's pretrained_cfg input_size"
        cfg = cfg if isinstance(cfg, dict) else {}
        test = cfg.get("test_input_size")
        if test and tuple(test) != tuple(cfg.get("input_size") or ()):
            text += f"; its test_input_size is {_shape(test)}"
        return text
    if kind == "torchvision":
        try:
            import torchvision

            weights = torchvision.models.get_model_weights(name).DEFAULT
            return f"the crop size of torchvision's {type(weights).__name__}.{weights.name} transforms"
        except (ImportError, ValueError, AttributeError, KeyError, TypeError):
            return "torchvision's default weights' crop size"
    return "the model's pretrained_cfg input_size"


def _torchvision_size(torchvision: Any, name: str) -> tuple[int, int, int] | None:
    """The crop size of the model's default weights' transforms (metadata only; nothing is downloaded)."""
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        crop = weights.transforms().crop_size
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    return 3, int(crop[0]), int(crop[-1])
