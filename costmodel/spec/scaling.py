"""Compound scaling and channel resolution: a spec with ``scaling`` and ``out_ratio`` → a concrete spec.

The rules are the reference implementations' own, computed in floating point exactly as they do:

* channels: ``make_divisible(c × width, divisor)`` — torchvision's ``_make_divisible`` (and MnasNet's
  ``_round_to_multiple_of``, the same rule);
* a layer's ``width_floor`` scales by ``max(width_floor, width)`` (MobileNetV2's head);
* repeats of layers with ``scale_depth``: ``ceil(repeat × depth)`` (torchvision), or with
  ``depth_rounding: round``, ``max(1, round(repeat × depth))`` (timm's ``depth_trunc='round'``; Python's
  round, halves to even). timm scales a *stage* (several arch-string entries) as one total and splits it
  back (``_scale_stage_depth``); a stage written as one layer is the same rule;
* ``out_ratio: r``: r × the (already scaled) input channels.

Both the engine and the torch reference builder analyse the resolved spec.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import SpecError
from .fields import channel_fields
from .network import NetworkSpec, Scaling


def make_divisible(v: float, divisor: int, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """torchvision's ``_make_divisible``: the multiple of ``divisor`` nearest ``v``, at least ``min_value``
    (default ``divisor``), and one ``divisor`` more if rounding lost more than 10% of ``v`` (timm's
    ``round_limit``: below ``round_limit × v``; FBNetV3 uses 0.95)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def scaled_depth(repeat: int, depth: float, rounding: str = "ceil") -> int:
    """A layer's scaled repeat count: ceil(repeat × depth) (torchvision, timm's default ``depth_trunc='ceil'``)
    or max(1, round(repeat × depth)) (``round``; Python's round, which rounds halves to even, as timm)."""
    if rounding == "round":
        return max(1, round(repeat * depth))
    return int(math.ceil(repeat * depth))


def stage_depths(repeats: list[int], depth: float, rounding: str = "ceil") -> list[int]:
    """timm's ``_scale_stage_depth``: a stage's repeats scaled as one total, then split back over its entries.

    total' = ceil(Σr × depth) (or round); then from the last entry to the first,
    r_i' = max(1, round(r_i / remaining × remaining')), and both remainders drop by r_i and r_i'.
    """
    total = sum(repeats)
    scaled = scaled_depth(total, depth, rounding) if rounding == "round" else int(math.ceil(total * depth))
    out: list[int] = []
    for r in reversed(repeats):
        rs = max(1, round(r / total * scaled))
        out.append(rs)
        total -= r
        scaled -= rs
    return out[::-1]


def _scaled(value: Any, factor: float, divisor: int, path: tuple[str | int, ...]) -> int:
    if isinstance(value, str):
        raise SpecError(f"cannot scale the symbol {value!r}: width scaling needs numeric channels", path)
    return make_divisible(value * factor, divisor)


def needs_resolution(spec: NetworkSpec) -> bool:
    """Whether the spec has scaling, ratios or channel checks to resolve before analysis."""
    return spec.scaling is not None or any(
        getattr(layer, "out_ratio", None) is not None or layer.in_channels is not None for layer in spec.layers
    )


def resolve(spec: NetworkSpec) -> NetworkSpec:
    """The concrete spec: channels scaled, repeats scaled, ``out_ratio`` turned into ``out_channels``,
    ``in_channels`` checked against the channels that actually arrive. ``scaling`` is removed."""
    scaling = spec.scaling or Scaling()
    layers = []
    channels: int | str | None = spec.input.channels
    for i, layer in enumerate(spec.layers):
        path: tuple[str | int, ...] = ("layers", i)
        update: dict[str, Any] = {}
        if spec.scaling is not None and layer.scale_width:
            factor = max(layer.width_floor or 0.0, scaling.width)
            for name in channel_fields(type(layer)):
                value = getattr(layer, name, None)
                if value is not None:
                    update[name] = _scaled(value, factor, scaling.divisor, (*path, name))
        if spec.scaling is not None and getattr(layer, "scale_depth", False):
            repeat = getattr(layer, "repeat", 1)
            if isinstance(repeat, str):
                raise SpecError(f"cannot depth-scale the symbolic repeat {repeat!r}", (*path, "repeat"))
            update["repeat"] = scaled_depth(repeat, scaling.depth, scaling.depth_rounding)
        expected = update.get("in_channels", layer.in_channels)
        if channels is None and (expected is not None or getattr(layer, "out_ratio", None) is not None):
            field = "in_channels" if expected is not None else "out_ratio"
            raise SpecError(
                "the channels a graph layer outputs are known only to the walk: give out_channels (and leave "
                "in_channels out) after one",
                (*path, field),
            )
        if expected is not None and expected != channels:  # both are ints or symbol names here
            raise SpecError(
                f"this layer expects {expected} input channels but the previous layer gives {channels}",
                (*path, "in_channels"),
            )
        ratio = getattr(layer, "out_ratio", None)
        if ratio is not None and channels is not None:  # (None: refused above)
            update["out_channels"] = _mul(ratio, channels, (*path, "out_ratio"))
            update["out_ratio"] = None
        update["in_channels"] = None
        layer = layer.model_copy(update=update)
        layers.append(layer)
        out = getattr(layer, "out_channels", None) or getattr(layer, "out_features", None)
        if out is not None:
            channels = out
        elif getattr(layer, "nodes", None) is not None:  # a graph layer: its output channels come from its ops
            channels = None
    return spec.model_copy(update={"layers": layers, "scaling": None})


def _mul(ratio: int | str, channels: int | str, path: tuple[str | int, ...]) -> int | str:
    if isinstance(ratio, int) and isinstance(channels, int):
        return ratio * channels
    if ratio == 1:
        return channels
    raise SpecError("out_ratio needs numeric channels and ratio; give out_channels instead", path)
