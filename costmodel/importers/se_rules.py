"""One squeeze-excitation rule for a whole imported model, where one fits every block.

The recogniser reads each SE's squeeze width S and writes the first rule that gives it (``se: r`` of the block
input, of the expanded width, rounded to 8 or 4, recognise.py ``se_fields``): every rule it writes gives S, so the
figures are exact either way, but neighbouring blocks of one model may then say different rules where the model
has one (MobileNetV3: 0.25 of the expanded width made divisible by 8; a block whose raw width is already a multiple
of 8 reads as the plain rule). This post-pass, on the spec data before stages are grouped, picks one rule
(``se_base``, ``se_divisor``) that gives every SE block of the model its S, and writes it on all of them; where no
one rule fits all, nothing changes. Preference: divisor 8, then 4, then none; the base most blocks were read with
first (in a model of dwsep blocks only, where both are one width, the expanded: the SE reads the depthwise
conv's output). The squeeze width of a rule is the recogniser's: raw = floor(base × r), S = make_divisible(raw, d)
with a divisor d, else max(1, raw).

timm's EfficientNet and MobileNetV3 classes instead get each block's form as their shipped specs write it
(``timm_se``: the converter's order of forms per class), so the imported spec says the shipped spec's fields.
"""

from __future__ import annotations

import math
from typing import Any

from ..spec.scaling import make_divisible

#: the kinds whose expanded width this pass can read (expansion × in, expanded_channels; dwsep: in; the ghost
#: bottlenecks: mid_channels)
_EXPANDING = frozenset({"mbconv", "mixconv", "condconv", "fused_mbconv"})


def _squeeze(ratio: float, base: int, divisor: int | None) -> int:
    raw = math.floor(base * ratio)
    if divisor is None:
        return max(1, raw)
    return make_divisible(raw, divisor) if raw >= 1 else -1


def _bases(layer: dict[str, Any], cin: Any) -> dict[str, int] | None:
    """The block input and expanded widths of an SE block (None where this pass cannot read them)."""
    if not isinstance(cin, int):
        return None
    kind = layer.get("kind")
    if kind == "dwsep":
        return {"input": cin, "expanded": cin}
    if kind in ("ghost_bottleneck", "repghost_bottleneck"):
        mid = layer.get("mid_channels")
        return {"input": cin, "expanded": mid} if isinstance(mid, int) else None
    if kind not in _EXPANDING:
        return None
    mid = layer.get("expanded_channels")
    if mid is None:
        t = layer.get("expansion")
        mid = t * cin if isinstance(t, int) else None
    return {"input": cin, "expanded": mid} if isinstance(mid, int) else None


#: timm's classes whose shipped specs' converter (specs/timm/_tools/convert.py ``se_fields``) reads each SE as
#: the first of these (``se_base``, ``se_divisor``) forms that gives its width, for r in 0.25, 0.5, 0.125, 1, 1/16
#: (else ``se_channels``)
TIMM_ORDERS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "EfficientNet": (("input", None), ("expanded", None), ("expanded", 8), ("input", 8)),
    "MobileNetV3": (("expanded", 8), ("expanded", None), ("input", None), ("input", 8)),
}
_RATIOS = (0.25, 0.5, 0.125, 1.0, 0.0625)


def timm_se(data: dict[str, Any], family: str) -> bool:
    """Each SE block of a timm model of class ``family`` (a key of TIMM_ORDERS) in the form the shipped timm specs
    write: the first of the family's forms that gives its squeeze width, else ``se_channels``. False (nothing
    changed) for another class."""
    order = TIMM_ORDERS.get(family)
    if order is None:
        return False
    c: Any = data["input"]["channels"]
    for layer in data["layers"]:
        bases = _bases(layer, c) if ("se" in layer or "se_channels" in layer) else None
        c = layer.get("out_channels", layer.get("out_features", c))
        if bases is None or layer.get("repeat", 1) != 1:
            continue
        if "se_channels" in layer:
            width = layer["se_channels"]
        else:
            width = _squeeze(layer["se"], bases[layer.get("se_base", "input")], layer.get("se_divisor"))
        form = next(
            ((r, b, d) for r in _RATIOS for b, d in order if _squeeze(r, bases[b], d) == width),
            None,
        )
        for key in ("se", "se_base", "se_divisor", "se_channels"):
            layer.pop(key, None)
        if form is None:
            layer["se_channels"] = width
            continue
        layer["se"] = form[0]
        if form[1] != "input":
            layer["se_base"] = form[1]
        if form[2] is not None:
            layer["se_divisor"] = form[2]
    return True


def harmonise_se(data: dict[str, Any]) -> None:
    """Write one (``se_base``, ``se_divisor``) on every SE block of ``data["layers"]`` where one rule gives each
    block its squeeze width (see the module docstring)."""
    blocks: list[tuple[dict[str, Any], dict[str, int], int]] = []  # (layer, bases, squeeze width)
    c: Any = data["input"]["channels"]
    for layer in data["layers"]:
        if "se" in layer:
            bases = _bases(layer, c)
            ratio = layer["se"]
            if bases is None or not isinstance(ratio, (int, float)) or layer.get("repeat", 1) != 1:
                return  # an SE block this pass cannot read: leave the model as read
            base = bases[layer.get("se_base", "input")]
            blocks.append((layer, bases, _squeeze(ratio, base, layer.get("se_divisor"))))
        c = layer.get("out_channels", layer.get("out_features", c))
    if len(blocks) < 2:
        return
    read = [layer.get("se_base", "input") for layer, _, _ in blocks]
    if all(layer["kind"] == "dwsep" for layer, _, _ in blocks):
        read = ["expanded"]  # the same width in a dwsep: the SE reads the depthwise conv's output
    order = sorted(("input", "expanded"), key=lambda b: -read.count(b))
    for divisor in (8, 4, None):
        for rule in order:
            if all(_squeeze(layer["se"], bases[rule], divisor) == s for layer, bases, s in blocks):
                for layer, _, _ in blocks:
                    layer.pop("se_base", None)
                    layer.pop("se_divisor", None)
                    if rule != "input":
                        layer["se_base"] = rule
                    if divisor is not None:
                        layer["se_divisor"] = divisor
                return
