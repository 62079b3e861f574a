"""The network walk: layers in order, repeats, shape propagation, and the rows each op adds.

Repeats after the first use stride 1, and their input is the previous output, so in = out. With a
symbolic repeat count ``n``, the repeated copies are identical: their rows stand once with
``times = n − 1``.
"""

from __future__ import annotations

from .blocks import BLOCKS, BlockArgs, value
from .errors import SpecError
from .report import Report, Row
from .spec import NetworkSpec, symbol_uses
from .symbols import Num, to_int_or_expr


def analyze_spec(spec: NetworkSpec) -> Report:
    """Walk the spec's layers and build the report: one row per op of every block instance."""
    src = spec._source
    try:
        return _walk(spec)
    except SpecError as err:
        if src is not None:
            src.locate(err)
        raise


def _walk(spec: NetworkSpec) -> Report:
    inp = spec.input
    n = value(inp.batch)
    shape = (value(inp.channels), value(inp.height), value(inp.width))
    start = shape
    d = spec.defaults
    rows: list[Row] = []
    for i, layer in enumerate(spec.layers):
        block = BLOCKS[layer.kind]
        reps = value(layer.repeat)
        activation = layer.activation or d.activation
        norm = (layer.norm or d.norm) == "batchnorm"
        bias = d.bias if layer.bias is None else layer.bias
        instances: list[tuple[int, Num]] = (
            [(r, 1) for r in range(reps)] if isinstance(reps, int) else [(0, 1), (1, reps - 1)]
        )
        for r, times in instances:
            args = BlockArgs(
                inp=shape,
                n=n,
                stride=value(layer.stride) if r == 0 else 1,
                activation=activation,
                norm=norm,
                bias=bias,
                path=("layers", i),
            )
            staged, out = block(layer, args)
            for stage, op in staged:
                c, h, w = op.output
                rows.append(
                    Row(
                        layer=i,
                        repeat=r,
                        kind=layer.kind,
                        stage=stage,
                        op=op.op,
                        detail=op.detail,
                        params=to_int_or_expr(op.params),
                        buffers=to_int_or_expr(op.buffers),
                        macs=to_int_or_expr(op.macs),
                        flops=to_int_or_expr(op.flops),
                        input=op.input,
                        output=op.output,
                        activations=to_int_or_expr(n * c * h * w),
                        times=times,
                    )
                )
            shape = out
    return Report(
        name=spec.name,
        input=start,
        batch=n,
        output=shape,
        rows=rows,
        symbols=tuple(dict.fromkeys(name for _, name in symbol_uses(spec))),
    )
