"""The network walk: layers in order, repeats, shape propagation, and the rows each op adds.

Scaling and ``out_ratio`` are resolved first (scaling.py). Repeats after the first use stride 1, and
their input is the previous output, so in = out. With a symbolic repeat count ``n``, the repeated
copies are identical: their rows stand once with ``times = n − 1``.
"""

from __future__ import annotations

from typing import Any

from .blocks import BLOCKS, BlockArgs
from .errors import SpecError
from .ops import numel
from .report import BlockInfo, Report, Row
from .scaling import needs_resolution, resolve
from .spec import NetworkSpec, symbol_uses
from .symbols import Num, to_int_or_expr, value

_SPATIAL_KINDS = frozenset({"conv", "mbconv", "fused_mbconv", "dwsep", "basic", "bottleneck", "pool"})


def analyze_spec(spec: NetworkSpec) -> Report:
    """Walk the spec's layers and build the report: one row per op of every block instance."""
    src = spec._source
    try:
        if needs_resolution(spec):
            spec = resolve(spec)
        return _walk(spec)
    except SpecError as err:
        if src is not None:
            src.locate(err)
        raise


def settings(layer: Any, stride: Num) -> str:
    """A short description of a layer's key settings, e.g. ``k5 s2 e6 se0.25``."""
    parts = []
    if hasattr(layer, "kernel"):
        parts.append(f"k{layer.kernel}")
        if stride != 1:
            parts.append(f"s{stride}")
    if getattr(layer, "expansion", None) is not None:
        parts.append(f"e{layer.expansion}")
    if getattr(layer, "expanded_channels", None) is not None:
        parts.append(f"exp{layer.expanded_channels}")
    if getattr(layer, "groups", 1) != 1:
        parts.append(f"g{layer.groups}")
    if getattr(layer, "se", None) is not None:
        parts.append(f"se{layer.se:g}")
    if layer.kind == "linear":
        parts.append(f"→{layer.out_features}")
    if layer.kind == "dropout":
        parts.append(f"p={layer.p:g}")
    act = getattr(layer, "activation", None)
    if act and act != "none":
        parts.append(act)
    return " ".join(str(p) for p in parts)


def _same(x: Num) -> Num:
    return x


def _walk(spec: NetworkSpec) -> Report:
    inp = spec.input
    n = value(inp.batch)
    shape = (value(inp.channels), value(inp.height), value(inp.width))
    start = shape
    d = spec.defaults
    rows: list[Row] = []
    blocks: list[BlockInfo] = []
    flat_from: int | None = None  # index of the linear layer after which the tensor is a flat vector
    symbols = tuple(dict.fromkeys(name for _, name in symbol_uses(spec)))
    clean = to_int_or_expr if symbols else _same
    for i, layer in enumerate(spec.layers):
        kind = layer.kind
        if flat_from is not None and kind in _SPATIAL_KINDS:
            raise SpecError(
                f"a {kind} layer cannot follow the linear layer {flat_from}: its input is a flat vector, "
                "not a feature map",
                ("layers", i, "kind"),
            )
        if kind == "linear":
            flat_from = i
        block = BLOCKS[kind]
        reps = value(getattr(layer, "repeat", 1))
        activation = getattr(layer, "activation", None) or d.activation
        norm = (getattr(layer, "norm", None) or d.norm) == "batchnorm"
        own_bias = getattr(layer, "bias", None)
        bias = d.bias if own_bias is None else own_bias
        instances: list[tuple[int, Num]] = (
            [(r, 1) for r in range(reps)] if isinstance(reps, int) else [(0, 1), (1, reps - 1)]
        )
        for r, times in instances:
            stride = value(getattr(layer, "stride", 1)) if r == 0 else 1
            args = BlockArgs(
                inp=shape, n=n, stride=stride, activation=activation, norm=norm, bias=bias, path=("layers", i)
            )
            staged, out = block(layer, args)
            b = len(blocks)
            described = settings(layer, stride) if r <= 1 else blocks[-1].settings
            for stage, op in staged:
                rows.append(
                    Row(
                        layer=i,
                        repeat=r,
                        block=b,
                        kind=kind,
                        stage=stage,
                        op=op.op,
                        detail=op.detail,
                        params=clean(op.params),
                        buffers=clean(op.buffers),
                        macs=clean(op.macs),
                        flops=clean(op.flops),
                        input=op.input,
                        output=op.output,
                        activations=clean(n * numel(op.output)),
                        times=times,
                        bias=op.bias,
                        variant=op.variant,
                    )
                )
            blocks.append(
                BlockInfo(
                    index=b,
                    layer=i,
                    repeat=r,
                    kind=kind,
                    name=layer.name,
                    settings=described,
                    input=shape,
                    output=out,
                    times=times,
                )
            )
            shape = out
    assumptions: dict[tuple[str, str], None] = {}
    for layer in spec.layers:
        kernel: Any = getattr(layer, "kernel", None)
        expansion: Any = getattr(layer, "expansion", None)
        if isinstance(kernel, str):
            assumptions[(kernel, "odd")] = None
        if isinstance(expansion, str):
            assumptions[(expansion, "ne1")] = None
    return Report(
        name=spec.name,
        assumptions=tuple(assumptions),
        input=start,
        batch=n,
        output=shape,
        rows=rows,
        blocks=blocks,
        symbols=symbols,
    )
