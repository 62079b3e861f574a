"""The network walk: layers in order, repeats, shape propagation, and the rows each op adds.

Scaling and ``out_ratio`` are resolved first (spec/scaling.py). Repeats after the first use stride 1,
and their input is the previous output, so in = out. With a symbolic repeat count ``n``, the repeated
copies are identical: their rows stand once with ``times = n − 1``. Each layer's kind is looked up in
the registry (engine/kinds.py); tensors get network-wide ids (0 is the input) so rows say what they read.
A block function is a pure function of the layer's fields and its BlockArgs: identical layers on
identical inputs (a long stack of one block) are built once and their flow and row costs shared.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import SpecError
from ..spec.fields import assumption_fields
from ..spec.network import NetworkSpec, symbol_uses
from ..spec.scaling import needs_resolution, resolve
from .blocks import BlockArgs
from .kinds import KINDS
from .metrics import OP_METRICS
from .ops import numel
from .report import BlockInfo, Report, Row
from .symbols import Num, to_int_or_expr, value

R = TypeVar("R", bound=Report)


def analyze_spec(spec: NetworkSpec, report_class: type[R] = Report) -> R:  # type: ignore[assignment]
    """Walk the spec's layers and build the report: one row per op of every block instance."""
    src = spec._source
    try:
        if needs_resolution(spec):
            spec = resolve(spec)
        return _walk(spec, report_class)
    except SpecError as err:
        if src is not None:
            src.locate(err)
        raise


def _same(x: Num) -> Num:
    return x


def _key(layer: Any, args: BlockArgs) -> Any:
    """What a block's flow depends on: the layer's field values and the walk's arguments except ``path``,
    which only locates errors (a block that raised is never remembered), each with its type — sympy's
    Integer(16) equals and hashes as 16, and the flows must not mix the two. None where some value is
    unhashable (a list field): that block is always built afresh."""
    values = tuple(layer.__dict__.values())
    key = (type(layer), tuple(map(type, values)), values, args.inp, tuple(map(type, args.inp)), args.n,
           type(args.n), args.stride, type(args.stride), args.activation, args.norm, args.bias,
           args.norm_groups, args.norm_group_size)  # fmt: skip
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _row_costs(op: Any, n: Num, clean: Any) -> dict[str, Num]:
    costs = {m: clean(op.costs[m]) for m in OP_METRICS}
    costs["activations"] = clean(n * numel(op.output))
    return costs


def _walk(spec: NetworkSpec, report_class: type[R]) -> R:
    inp = spec.input
    n = value(inp.batch)
    shape = (value(inp.channels), value(inp.height), value(inp.width))
    start = shape
    d = spec.defaults
    rows: list[Row] = []
    blocks: list[BlockInfo] = []
    flat_from: int | None = None  # index of the layer after which the tensor is a flat vector
    symbols = tuple(dict.fromkeys(name for _, name in symbol_uses(spec)))
    clean = to_int_or_expr if symbols else _same
    current = 0  # the tensor id of the running feature map (0: the network input)
    next_id = 1
    assumptions: dict[tuple[str, str], None] = {}
    seen: dict[Any, Any] = {}  # identical layers on identical inputs: one block call (see _key)
    for i, layer in enumerate(spec.layers):
        kind = KINDS.get(layer.kind)
        if kind is None:
            raise SpecError(f"kind {layer.kind!r} has no registered block function", ("layers", i, "kind"))
        model = type(layer)
        if flat_from is not None and model.spatial:
            raise SpecError(
                f"a {layer.kind} layer cannot follow the linear layer {flat_from}: its input is a flat vector, "
                "not a feature map",
                ("layers", i, "kind"),
            )
        if model.flattens:
            flat_from = i
        for field_name, rule in assumption_fields(model):
            v: Any = getattr(layer, field_name)
            if isinstance(v, str):
                assumptions[(v, rule)] = None
        reps = value(getattr(layer, "repeat", 1))
        activation = getattr(layer, "activation", None) or d.activation
        norm = getattr(layer, "norm", None) or d.norm
        own_bias = getattr(layer, "bias", None)
        bias = d.bias if own_bias is None else own_bias
        instances: list[tuple[int, Num]] = (
            [(r, 1) for r in range(reps)] if isinstance(reps, int) else [(0, 1), (1, reps - 1)]
        )
        for r, times in instances:
            stride = value(getattr(layer, "stride", 1)) if r == 0 else 1
            args = BlockArgs(
                inp=shape,
                n=n,
                stride=stride,
                activation=activation,
                norm=norm,
                bias=bias,
                path=("layers", i),
                norm_groups=d.norm_groups,
                norm_group_size=d.norm_group_size,
            )
            key = _key(layer, args)
            hit = None if key is None else seen.get(key)
            if hit is None:
                flow = kind.block(layer, args)
                hit = (flow, [_row_costs(step.op, n, clean) for step in flow.steps])
                if key is not None:
                    seen[key] = hit
            flow, step_costs = hit
            b = len(blocks)
            described = layer.settings(stride) if r <= 1 else blocks[-1].settings
            base = next_id - 1  # block-local tensor t > 0 is global base + t
            for step, costs in zip(flow.steps, step_costs, strict=True):
                op = step.op
                rows.append(
                    Row(
                        layer=i,
                        repeat=r,
                        block=b,
                        kind=layer.kind,
                        stage=step.stage,
                        op=op,
                        costs=costs,
                        times=times,
                        inputs=tuple(current if t == 0 else base + t for t in step.inputs),
                        tensor=next_id,
                    )
                )
                next_id += 1
            out = flow.output
            blocks.append(
                BlockInfo(
                    index=b,
                    layer=i,
                    repeat=r,
                    kind=layer.kind,
                    name=layer.name,
                    settings=described,
                    input=shape,
                    output=out,
                    times=times,
                )
            )
            shape = out
            current = next_id - 1
    return report_class(
        name=spec.name,
        assumptions=tuple(assumptions),
        input=start,
        batch=n,
        output=shape,
        rows=rows,
        blocks=blocks,
        symbols=symbols,
    )
