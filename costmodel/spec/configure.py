"""Override a spec's input and scaling without editing its YAML: resolution, width and depth multipliers,
batch size (the CLI's ``--resolution``, ``--width-mult``, ``--depth-mult`` and ``--batch``).

The result is validated exactly like the YAML would be with the same values written in it:

* ``resolution``: ``input.height`` and ``input.width`` (one integer for a square input, or a pair
  ``(H, W)``);
* ``width_mult``: ``scaling.width`` (it *replaces* the spec's value, as torchvision's ``width_mult``
  is absolute; a spec without ``scaling`` gains ``scaling: {width: W}``);
* ``depth_mult``: ``scaling.depth`` (likewise);
* ``batch``: ``input.batch``.

A spec whose scaling rules are unknown (an imported one: ``provenance.scaling: unknown``) refuses ``width_mult``
and ``depth_mult`` with one line saying why, rather than describe a network the model's builder never makes;
``provenance.scaling: width`` refuses ``depth_mult``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from ..errors import UsageError
from . import loader
from .network import NetworkSpec, scaling_refusal


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise UsageError(f"{name}={value!r}: expected a positive integer")
    try:
        n = operator.index(value)  # ints and numpy integers; never a float or a string
    except TypeError:
        raise UsageError(f"{name}={value!r}: expected a positive integer") from None
    if n < 1:
        raise UsageError(f"{name}={n}: expected a positive integer")
    return n


def _multiplier(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise UsageError(f"{name}={value!r}: expected a positive number")
    x = float(value)
    if not math.isfinite(x) or x <= 0:
        raise UsageError(f"{name}={value!r}: expected a finite positive number")
    return x


def resolution_pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``96`` → ``(96, 96)``; ``(96, 128)`` → ``(96, 128)`` (height, width); positive integers only."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise UsageError(f"resolution={value!r}: expected one integer or a pair (height, width)")
        return _positive_int(value[0], "resolution"), _positive_int(value[1], "resolution")
    n = _positive_int(value, "resolution")
    return n, n


def configure(
    spec: NetworkSpec,
    resolution: int | Sequence[int] | None = None,
    width_mult: float | None = None,
    depth_mult: float | None = None,
    batch: int | None = None,
) -> NetworkSpec:
    """``spec`` with its input and scaling overridden (None leaves a value as the spec has it).

    input.height, input.width ← resolution; scaling.width ← width_mult; scaling.depth ← depth_mult;
    input.batch ← batch. The changed data is validated again, so every rule of the spec format holds.
    """
    if resolution is None and width_mult is None and depth_mult is None and batch is None:
        return spec
    for flag, value in (("width_mult", width_mult), ("depth_mult", depth_mult)):
        why = scaling_refusal(spec.provenance, width=flag == "width_mult", depth=flag == "depth_mult")
        if value is not None and why is not None:
            raise UsageError(f"{flag} (--{flag.replace('_', '-')}): {why}")
    data = spec.model_dump(mode="python", exclude_unset=False)
    if resolution is not None:
        data["input"]["height"], data["input"]["width"] = resolution_pair(resolution)
    if batch is not None:
        data["input"]["batch"] = _positive_int(batch, "batch")
    if width_mult is not None or depth_mult is not None:
        scaling = dict(data.get("scaling") or {})
        if width_mult is not None:
            scaling["width"] = _multiplier(width_mult, "width_mult")
        if depth_mult is not None:
            scaling["depth"] = _multiplier(depth_mult, "depth_mult")
        data["scaling"] = scaling
    src = spec._source or loader.Source("<spec>")
    return loader.validate(data, src)
