"""Stages in an imported spec: consecutive equal blocks become one layer with ``repeat``, named after the stage.

The recogniser writes one layer per block, named by its module (``blocks.3.0``, ``blocks.3.1``, …). A layer's
``repeat`` means the same block again with stride 1 and in = out channels (spec.md), so blocks that differ only in
the first one's stride (and, through it, its input width and its residual) are one layer: this post-pass on the
spec data groups them, as the shipped specs are written. It groups only blocks of one parent module (one stage:
``blocks.3.*``, ``features.4.*``, or torchvision's flat ``features.N`` run), and only where the data says every
copy is the first one's repeat:

* the layer dicts are equal but for ``name`` and the first one's ``stride`` and ``aa`` (the others have neither:
  stride 1, where anti-aliasing does nothing);
* an expansion ``t`` of a copy equal to the first one's ``expanded_channels`` (t × out: a copy's input is its
  output width) is that width (timm's EfficientNet-EdgeTPU: a first block 40 → 128 → 32, then 32 → 128 → 32);
* ``residual``: equal in all; or, where auto gives false for the first (stride ≠ 1 or in ≠ out) and it says
  nothing, the copies all say ``residual: auto`` in the kinds whose residual defaults to false (``dwsep``,
  ``rep_dwsep``: the group says ``residual: auto``), or all ``residual: false`` in the others (a stage without
  skips: the group says ``residual: false``).

The group is named after the stage: the parent module where the group is all of its blocks (``blocks.3``), else
``first-last`` (``features.4-6``). Every figure is unchanged: the engine expands the repeat into the same blocks.
"""

from __future__ import annotations

from typing import Any

from ..spec.network import layer_model

#: kinds whose ``residual`` defaults to false (spec/layers.py dwsep, spec/layers_lcnet.py rep_dwsep)
_RESIDUAL_OFF = frozenset({"dwsep", "rep_dwsep"})


def _parent(layer: dict[str, Any]) -> str | None:
    name = layer.get("name")
    return name.rsplit(".", 1)[0] if isinstance(name, str) and "." in name else None


def _repeatable(layer: dict[str, Any]) -> bool:
    model = layer_model(str(layer.get("kind")))
    return model is not None and "repeat" in model.model_fields and layer.get("kind") != "conv"


def _copy_of(first: dict[str, Any], d: dict[str, Any], first_in: Any) -> str | None:
    """How the group says ``residual`` if ``d`` is a repeat of ``first``: "" (as ``first`` says it), "auto" or
    "false"; None if it is not a repeat."""
    if d.get("stride", 1) != 1 or "aa" in d or _parent(d) != _parent(first) or d.get("kind") != first.get("kind"):
        return None
    a = {k: v for k, v in first.items() if k not in ("name", "stride", "aa", "repeat", "residual")}
    b = {k: v for k, v in d.items() if k not in ("name", "stride", "aa", "residual")}
    mid, t = a.get("expanded_channels"), b.get("expansion")
    if isinstance(mid, int) and isinstance(t, int) and t * b.get("out_channels", 0) == mid:
        b = {**{k: v for k, v in b.items() if k != "expansion"}, "expanded_channels": mid}  # one expanded width
    if a != b:
        return None
    ra, rb = first.get("residual"), d.get("residual")
    if ra == rb:
        return ""
    auto_false = first.get("stride", 1) != 1 or first_in != first.get("out_channels")
    if ra is None and auto_false and rb == "auto" and first["kind"] in _RESIDUAL_OFF:
        return "auto"
    if ra is None and auto_false and rb is False and first["kind"] not in _RESIDUAL_OFF:
        return "false"  # a stage without skips: false for every copy (auto gives false for the first)
    return None


def group_stages(data: dict[str, Any]) -> None:
    """Group ``data["layers"]`` in place (see the module docstring)."""
    layers: list[dict[str, Any]] = data["layers"]
    ins: list[Any] = []
    c: Any = data["input"]["channels"]
    for layer in layers:
        ins.append(c)
        c = layer.get("out_channels", layer.get("out_features", c))
    groups: list[tuple[int, list[dict[str, Any]], str]] = []  # (first index, blocks, residual token)
    for i, layer in enumerate(layers):
        if groups and _parent(layer) is not None and _repeatable(layer):
            start, blocks, residual = groups[-1]
            if _repeatable(blocks[0]):
                res = _copy_of(blocks[0], layer, ins[start])
                if res is not None and (len(blocks) == 1 or res == residual):  # every copy says it one way
                    blocks.append(layer)
                    groups[-1] = (start, blocks, res)
                    continue
        groups.append((i, [layer], ""))
    siblings: dict[str, int] = {}
    for layer in layers:
        p = _parent(layer)
        if p is not None:
            siblings[p] = siblings.get(p, 0) + 1
    out: list[dict[str, Any]] = []
    for _, blocks, residual in groups:
        if len(blocks) == 1:
            out.append(blocks[0])
            continue
        d = dict(blocks[0])
        parent = _parent(d)
        assert parent is not None
        last = str(blocks[-1]["name"]).rsplit(".", 1)[1]
        d["name"] = parent if siblings[parent] == len(blocks) else f"{d['name']}-{last}"
        d["repeat"] = len(blocks)
        if residual == "auto":
            d["residual"] = "auto"
        elif residual == "false":
            d["residual"] = False
        out.append(d)
    layers[:] = out
