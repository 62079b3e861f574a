"""Stages in an imported spec: consecutive equal blocks become one layer with ``repeat``, named after the stage.

The recogniser writes one layer per block, named by its module (``blocks.3.0``, ``blocks.3.1``, …). A layer's
``repeat`` means the same block again with stride 1 and in = out channels (spec.md), so blocks that differ only in
the first one's stride (and, through it, its input width and its residual) are one layer: this post-pass on the
spec data groups them, as the shipped specs are written. It groups only blocks of one parent module (one stage:
``blocks.3.*``, ``features.4.*``, or torchvision's flat ``features.N`` run), and only where the data says every
copy is the first one's repeat:

* the layer dicts are equal but for ``name`` and the first one's ``stride`` (the others have none, i.e. 1);
* ``residual``: equal in all, or the kinds whose residual defaults to false (``dwsep``, ``rep_dwsep``), where the
  copies say ``residual: auto`` and the first says nothing because auto gives false for it (stride ≠ 1 or
  in ≠ out); the group then says ``residual: auto``.

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
    """The group's ``residual`` if ``d`` is a repeat of ``first`` ("" for no change), else None."""
    if d.get("stride", 1) != 1 or _parent(d) != _parent(first) or d.get("kind") != first.get("kind"):
        return None
    a = {k: v for k, v in first.items() if k not in ("name", "stride", "repeat", "residual")}
    b = {k: v for k, v in d.items() if k not in ("name", "stride", "residual")}
    if a != b:
        return None
    ra, rb = first.get("residual"), d.get("residual")
    if ra == rb:
        return ""
    auto_false = first.get("stride", 1) != 1 or first_in != first.get("out_channels")
    if first["kind"] in _RESIDUAL_OFF and ra is None and rb == "auto" and auto_false:
        return "auto"
    return None


def group_stages(data: dict[str, Any]) -> None:
    """Group ``data["layers"]`` in place (see the module docstring)."""
    layers: list[dict[str, Any]] = data["layers"]
    ins: list[Any] = []
    c: Any = data["input"]["channels"]
    for layer in layers:
        ins.append(c)
        c = layer.get("out_channels", layer.get("out_features", c))
    groups: list[tuple[int, list[dict[str, Any]], str]] = []  # (first index, blocks, residual)
    for i, layer in enumerate(layers):
        if groups and _parent(layer) is not None and _repeatable(layer):
            start, blocks, residual = groups[-1]
            if _repeatable(blocks[0]):
                res = _copy_of(blocks[0], layer, ins[start])
                if res is not None and (res == residual or not residual or not res):
                    blocks.append(layer)
                    groups[-1] = (start, blocks, residual or res)
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
        if residual:
            d["residual"] = residual
        out.append(d)
    layers[:] = out
