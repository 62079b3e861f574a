"""Where a model to import comes from: ``timm:NAME``, ``torchvision:NAME``, ``package.module:callable``
or a path to an ``.onnx`` file; and the ``--kwargs`` grammar.

``--kwargs 'k=v,…'`` is parsed by a small grammar of our own, never evaluated: each value is an int
(``12``, ``-3``), a float (``0.2``, ``1e-3``), a bool (``true``/``false``, ``True``/``False``), ``none``
or a string (anything else, or quoted with ``'`` or ``"``).

``package.module:callable`` imports the user's module (the current directory is importable, searched
after the installed packages so that a file there cannot shadow one of costmodel's own dependencies) and
calls the callable with the kwargs: this runs the user's code, by design.

Bounds (refused past them, before anything is built): ``--input`` sizes are integers 1 … 65,536
(``MAX_INPUT_SIZE``, also for a model's ``pretrained_cfg['input_size']``); ``--kwargs`` is at most 10,000
characters, its integers at most 30 digits and its floats finite. Constructor arguments that load files or
weights (``pretrained``, ``checkpoint_path``, ``weights``, …: see ``_LOADING``) are refused by name.
"""

from __future__ import annotations

import importlib
import inspect
import math
import operator
import os
import re
import sys
from typing import Any

from ..errors import UsageError

#: The largest channel count, height or width ``--input`` (and a model's own default input size) may give.
MAX_INPUT_SIZE = 65_536
#: The longest ``--kwargs`` text, and the most digits one of its integers may have.
MAX_KWARGS_CHARS = 10_000
MAX_KWARGS_DIGITS = 30
#: Constructor arguments that would make timm / torchvision read a file, a checkpoint or downloaded weights
#: (timm's ``create_model`` calls ``torch.load`` on ``checkpoint_path``): refused by name, and so is any name
#: with one of ``_LOADING_WORDS`` among its ``_``-separated words or ending in one of ``_LOADING_ENDS``
#: (``drop_path_rate`` is not refused: it neither holds such a word nor ends so).
_LOADING = frozenset({"pretrained", "weights", "checkpoint_path", "cache_dir", "progress", "model_source"})
_LOADING_WORDS = frozenset({"pretrained", "checkpoint", "weights", "cache", "url", "hub", "download", "load"})
_LOADING_ENDS = ("path", "file", "dir", "url", "filename")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+)$")


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``"num_classes=10,drop_rate=0.2,act='relu'"`` → ``{"num_classes": 10, "drop_rate": 0.2, "act": "relu"}``."""
    out: dict[str, Any] = {}
    if not text:
        return out
    if len(text) > MAX_KWARGS_CHARS:
        raise UsageError(f"--kwargs: {len(text):,} characters; at most {MAX_KWARGS_CHARS:,}")
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
        out[key] = _value(key, raw)
    return out


def _value(key: str, raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if _INT.match(raw):
        if len(raw.lstrip("+-")) > MAX_KWARGS_DIGITS:
            raise UsageError(
                f"--kwargs {key}: an integer of {len(raw.lstrip('+-')):,} digits; at most {MAX_KWARGS_DIGITS}"
            )
        return int(raw)
    if _FLOAT.match(raw):
        value = float(raw)
        if not math.isfinite(value) or len(raw) > 100:
            raise UsageError(f"--kwargs {key}: {printable(raw, 40)} is not a finite number of at most 100 characters")
        return value
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    return raw


def printable(text: object, limit: int = 500) -> str:
    """``text`` on one line of printable characters: a newline, ESC or any other control or format
    character becomes its escape (``\\n``, ``\\x1b``, ``\\u2028``), and more than ``limit`` characters
    are cut with ``…``. Every module path, node name and message of the user's code goes through it before
    it is printed or written into a spec, so none can forge a line of costmodel's output."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "…"
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def parse_input(text: str | None) -> tuple[int, int, int] | None:
    """``"3x224x224"`` → ``(3, 224, 224)``; each size an integer in 1 … ``MAX_INPUT_SIZE`` (65,536)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]{1,30})\s*[xX×]\s*([0-9]{1,30})\s*[xX×]\s*([0-9]{1,30})\s*", text[:200])
    if not m or len(text) > 200 or any(int(g) < 1 for g in m.groups()):
        raise UsageError(
            f"--input {printable(text, 60)!r}: expected CxHxW, three integers in 1 … {MAX_INPUT_SIZE:,}, e.g. 3x224x224"
        )
    c, h, w = (int(g) for g in m.groups())
    if max(c, h, w) > MAX_INPUT_SIZE:
        raise UsageError(
            f"--input {text.strip()}: each of channels, height and width must be at most {MAX_INPUT_SIZE:,}"
        )
    return c, h, w


def check_size(value: Any, where: str, hint: str = "") -> tuple[int, int, int]:
    """``value`` as (C, H, W): three integers (not bools) in 1 … ``MAX_INPUT_SIZE``, else a UsageError
    that says ``where`` it came from (and ``hint``, what to do)."""
    try:
        items = list(value) if isinstance(value, (tuple, list)) else None
    except Exception:  # noqa: BLE001 - any odd object
        items = None
    if (
        items is None
        or len(items) != 3
        or any(isinstance(v, bool) or not hasattr(v, "__index__") for v in items)
        or any(not 1 <= operator.index(v) <= MAX_INPUT_SIZE for v in items)
    ):
        raise UsageError(
            f"{where} is {printable(repr(value), 80)}: not (channels, height, width), three integers in "
            f"1 … {MAX_INPUT_SIZE:,}{hint}"
        )
    c, h, w = (operator.index(v) for v in items)
    return c, h, w


def _refuse_loading(source: str, kwargs: dict[str, Any]) -> None:
    """Refuse, by name, constructor arguments that would read a file or load weights."""
    for key in kwargs:
        low = key.lower()
        words = set(low.split("_"))
        if low in _LOADING or words & _LOADING_WORDS or low.endswith(_LOADING_ENDS):
            raise UsageError(
                f"--kwargs {key}: refused: costmodel builds {source} without weights and reads no file "
                "(pretrained, checkpoint, weights, cache, path and file arguments are not passed on)"
            )


def is_onnx(source: str) -> bool:
    """Whether SOURCE names an ONNX file."""
    return source.lower().endswith(".onnx")


def load_module(
    source: str, kwargs: dict[str, Any], *, need_size: bool = True
) -> tuple[Any, tuple[int, int, int] | None, str]:
    """The ``nn.Module`` SOURCE names, its default input size (timm's ``pretrained_cfg['input_size']``,
    torchvision's default weights' crop size) if it has one, and a name for the spec. timm builds with
    ``pretrained=False``, torchvision with ``weights=None``: no weights are downloaded, and constructor
    arguments that would load a file or weights are refused by name.

    A default size that is not three integers in 1 … ``MAX_INPUT_SIZE`` is refused when ``need_size``
    (no ``--input`` given), else ignored."""
    kind, sep, name = source.partition(":")
    if not sep or not name:
        raise UsageError(
            f"SOURCE {printable(source, 200)!r}: expected timm:NAME, torchvision:NAME, package.module:callable "
            "or a .onnx file"
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
            raise UsageError(f"SOURCE {printable(source, 200)!r}: timm has no model named {printable(name, 200)!r}")
        _refuse_loading(source, kwargs)
        try:
            model = timm.create_model(name, pretrained=False, device="meta", **kwargs)
        except Exception as exc:  # noqa: BLE001 - TypeError, KeyError, ValueError, AssertionError …: the kwargs
            raise UsageError(f"--kwargs: timm.create_model({name!r}) refused them: {_why(exc)}") from None
        return model, _default_size(model, f"{name}'s pretrained_cfg['input_size']", need_size), name
    if kind == "torchvision":
        try:
            import torchvision
        except ImportError:
            raise UsageError("torchvision:NAME needs torchvision installed: pip install torchvision") from None
        if name not in torchvision.models.list_models():
            raise UsageError(
                f"SOURCE {printable(source, 200)!r}: torchvision has no model named {printable(name, 200)!r}"
            )
        _refuse_loading(source, kwargs)
        if name in _DETECTOR_TRUNKS:  # its post-processing cannot run on meta: point to the parts that can
            raise UsageError(
                f"torchvision:{name} is a detector whose post-processing (anchors, box decoding, torch.nonzero, "
                "NMS) has no meta kernel and is not counted: import its countable parts with `costmodel import "
                f"costmodel.importers.dense:{name}_trunk`{_DETECTOR_TRUNKS[name]}, or use the shipped spec "
                f"dense/{name} (docs/import.md, Dense prediction)"
            )
        try:
            builder = torchvision.models.get_model_builder(name)
            if "weights_backbone" in inspect.signature(builder).parameters:  # detection models: no backbone weights
                kwargs = {**kwargs, "weights_backbone": None}
            try:
                with torch.device("meta"):
                    model = torchvision.models.get_model(name, weights=None, **kwargs)
            except NotImplementedError as exc:
                if "meta" not in str(exc):
                    raise
                # a builder that reads a value while it builds (torchvision's RegNets: .item() of a width
                # computation) cannot build on meta: build it on the CPU (random init, no weights)
                model = torchvision.models.get_model(name, weights=None, **kwargs)
        except Exception as exc:  # noqa: BLE001 - whatever the builder raises on bad kwargs
            raise UsageError(f"--kwargs: torchvision's {name} refused them: {_why(exc)}") from None
        return model, _torchvision_size(torchvision, name), name
    if not all(_KEY.match(p) for p in kind.split(".")) or not _KEY.match(name):
        raise UsageError(f"SOURCE {printable(source, 200)!r}: expected package.module:callable")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)  # after the installed packages: a sympy.py here cannot shadow costmodel's own
    try:
        mod = importlib.import_module(kind)
    except ImportError as exc:
        raise UsageError(f"SOURCE {source!r}: cannot import {kind!r}: {_why(exc)}") from None
    except SystemExit as exc:
        raise UsageError(f"SOURCE {source!r}: importing {kind} called sys.exit({_code(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed as it was imported
        raise UsageError(f"SOURCE {source!r}: importing {kind} failed: {_why(exc)}") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise UsageError(f"SOURCE {source!r}: {kind} has no callable {name!r}")
    try:
        model = fn(**kwargs)
    except SystemExit as exc:  # the user's code called sys.exit: not a model, and not costmodel's exit
        raise UsageError(f"SOURCE {source!r}: calling {name}() called sys.exit({_code(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - the user's code failed
        raise UsageError(f"SOURCE {source!r}: calling {name}() failed: {_why(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"SOURCE {source!r}: {name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model, _default_size(model, f"{name}()'s pretrained_cfg['input_size']", need_size), name


def _why(exc: BaseException) -> str:
    """``TypeName: message`` of an exception from code costmodel does not own, on one printable line."""
    return printable(f"{type(exc).__name__}: {exc}", 300)


def _code(exc: SystemExit) -> str:
    return printable(repr(exc.code), 60)


def _default_size(model: Any, where: str, need: bool) -> tuple[int, int, int] | None:
    """A model's own default input size (``model.pretrained_cfg['input_size']``), checked
    (:func:`check_size`); not read when an input was given."""
    if not need:
        return None
    try:
        cfg = getattr(model, "pretrained_cfg", None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
    except Exception as exc:  # noqa: BLE001 - a property of the user's model that fails
        raise UsageError(f"{where}: reading it failed: {_why(exc)} (give --input CxHxW)") from None
    if size is None:
        return None
    return check_size(size, where, "; give --input CxHxW instead")


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


#: torchvision detectors whose countable parts costmodel.importers.dense makes importable (and the RoI head's hint)
_DETECTOR_TRUNKS = {
    "ssdlite320_mobilenet_v3_large": "",
    "fasterrcnn_mobilenet_v3_large_fpn": " and its RoI heads with `costmodel.importers.dense:fasterrcnn_roi_head`",
    "fasterrcnn_mobilenet_v3_large_320_fpn": " and its RoI heads with `costmodel.importers.dense:fasterrcnn_roi_head`",
}


def _torchvision_size(torchvision: Any, name: str) -> tuple[int, int, int] | None:
    """The crop size of the model's default weights' transforms (metadata only; nothing is downloaded)."""
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        crop = weights.transforms().crop_size
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    return 3, int(crop[0]), int(crop[-1])
