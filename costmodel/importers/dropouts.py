"""Dropout in an imported spec: the layers that cost nothing at inference but change what training saves.

The trace runs the model in eval mode, where ``F.dropout`` returns its input and dispatches no op; the torch
importer records each call instead (its ``p``, the module it ran in, and ``mark``: the id the next traced tensor
would get, so every op with a smaller output id ran before it). This post-pass, on the spec as plain data, puts
each one back as a ``kind: dropout`` layer between the two layers it ran between: before the first layer whose
first op (the smallest output id among the ops of its module) comes after it. In a training step on CPU a dropout
saves its noise, a tensor like its input (``costmodel train``: ``mask``), which is what ``saved_tensors_hooks``
sees on the model.

A dropout that ran inside a layer (its module inside the layer's), and dropout variants the spec has no kind for
(``dropout2d``, ``alpha_dropout``, …), cannot be said: each is named as a problem.

Stochastic depth (torchvision's ``StochasticDepth``, timm's ``DropPath``) is the spec's network-level
``drop_path: {rate, schedule}`` (spec/network.py ``DropPath``): ``write_drop_path`` reads each block's p (the
module inside the block's layer, before stages are grouped; none: p 0) and fits p_i = rate × i / B over the
spec's B blocks (``linear``: rate = p_1 × B, every p_i checked to 1e-9 relative), else p_i = rate
(``constant``). A module outside the blocks must sit in a layer without a residual (timm's last ``ConvBnAct`` of
a MobileNetV3: it never applies it). At inference it is the identity, so every inference figure stays exact;
where no schedule fits, a note says a training step's saved bytes miss its noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..spec.network import layer_model
from .recognise import Node, Problem


@dataclass(frozen=True)
class Dropout:
    """One dropout call the trace saw: ``function`` (``dropout``, ``dropout2d``, …), ``p``, the module path it
    ran in, and ``mark``, the output id the next traced op would get."""

    function: str
    p: float
    scope: str
    mark: int


def _inside(scope: str, name: str) -> bool:
    return scope == name or scope.startswith(name + ".")


def insert_dropouts(
    data: dict[str, Any], drops: Sequence[Dropout], nodes: Sequence[Node], problems: list[Problem]
) -> None:
    """Put each recorded dropout (p > 0) into ``data["layers"]`` as ``{kind: dropout, p, name}`` where it ran;
    one that cannot be said is appended to ``problems``."""
    layers: list[dict[str, Any]] = data["layers"]
    spans: list[tuple[int, int] | None] = []
    for layer in layers:
        name = layer.get("name")
        ids = [n.out for n in nodes if name and _inside(n.scope, name)]
        spans.append((min(ids), max(ids)) if ids else None)
    placed: list[tuple[int, dict[str, Any]]] = []
    for d in drops:
        if d.p <= 0:
            continue
        if d.function != "dropout":
            problems.append(Problem(d.function, d.scope, f"{d.function}(p={d.p:g}) has no spec kind (training memory)"))
            continue
        host = next((i for i, s in enumerate(spans) if s is not None and s[0] < d.mark <= s[1]), None)
        if host is not None:  # it ran between two ops of one layer
            where = layers[host].get("name")
            problems.append(
                Problem(d.function, d.scope, f"dropout(p={d.p:g}) inside the layer {where} (training memory not said)")
            )
            continue
        at = next((i for i, s in enumerate(spans) if s is not None and s[0] >= d.mark), len(layers))
        placed.append((at, {"kind": "dropout", "p": d.p, **({"name": d.scope} if d.scope else {})}))
    out: list[dict[str, Any]] = []
    for i in range(len(layers) + 1):
        out += [layer for at, layer in placed if at == i]
        if i < len(layers):
            out.append(layers[i])
    layers[:] = out


def _has_residual(layer: dict[str, Any]) -> bool:
    model = layer_model(str(layer.get("kind")))
    return model is not None and "residual" in model.model_fields


def write_drop_path(data: dict[str, Any], found: Sequence[tuple[str, str, float]]) -> bool:
    """Write ``data["drop_path"]`` for the stochastic-depth modules ``(class, module path, p)`` with p > 0, on the
    ungrouped spec data (one layer per block, named by its module); False where no schedule fits them."""
    if not found:
        return True
    layers: list[dict[str, Any]] = data["layers"]
    blocks = [layer for layer in layers if _has_residual(layer)]
    ps = [0.0] * len(blocks)
    for _, path, p in found:
        at = next((j for j, b in enumerate(blocks) if b.get("name") and _inside(path, str(b["name"]))), None)
        if at is None:
            host = next((x for x in layers if x.get("name") and _inside(path, str(x["name"]))), None)
            if host is None or _has_residual(host) or host.get("kind") != "conv":
                return False
            continue
        if ps[at] or any(b.get("repeat", 1) != 1 for b in blocks):
            return False
        ps[at] = p
    n = len(blocks)

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)

    if n >= 2 and ps[0] == 0 and ps[1] > 0:
        rate = float(f"{ps[1] * n:.12g}")
        if rate < 1 and all(close(p, rate * i / n) for i, p in enumerate(ps)):
            data["drop_path"] = {"rate": rate, "schedule": "linear"}
            return True
    if ps and ps[0] > 0 and all(close(p, ps[0]) for p in ps):
        data["drop_path"] = {"rate": ps[0], "schedule": "constant"}
        return True
    return False


def drop_path_note(found: Sequence[tuple[str, str, float]]) -> str | None:
    """One note for the stochastic-depth modules ``(class, module path, p)`` with p > 0 (None: there are none):
    the spec cannot say them, which matters to training only."""
    if not found:
        return None
    kinds = sorted({k for k, _, _ in found})
    ps = [p for _, _, p in found]
    where = found[0][1] if len(found) == 1 else f"{found[0][1]} … {found[-1][1]}"
    return (
        f"stochastic depth ({', '.join(kinds)}) in {len(found)} block(s), {where}, p {min(ps):g} to {max(ps):g}: the "
        "identity at inference (the figures above are exact), but its p's fit no drop_path schedule of the spec "
        "(linear over the blocks, or constant), so a training step's saved bytes miss its noise, N floats per block"
    )
