"""The network walk: layers in order, repeats, shape propagation, and the rows each op adds.

Scaling and ``out_ratio`` are resolved first (spec/scaling.py). Repeats after the first use stride 1,
and their input is the previous output, so in = out. With a symbolic repeat count ``n``, the repeated
copies are identical: their rows stand once with ``times = n − 1``. Each layer's kind is looked up in
the registry (engine/kinds.py); tensors get network-wide ids (0 is the input) so rows say what they read.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from ..errors import SpecError
from ..spec.fields import assumption_fields
from ..spec.network import LIBRARIES, NetworkSpec, symbol_uses
from ..spec.scaling import needs_resolution, resolve
from .blocks import BlockArgs
from .kinds import KINDS
from .metrics import OP_METRICS
from .ops import activation_elements, numel
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


def _positive_sizes(flow: Any, layer: Any, path: tuple[str | int, ...]) -> None:
    """Refuse a block with an op whose output has a size ≤ 0 (a kernel larger than the padded map): torch
    raises there, so there is no number to count. Symbolic sizes are left to their assumptions."""
    for step in flow.steps:
        out = step.op.output
        if any(getattr(x, "is_nonpositive", False) is True or (isinstance(x, int) and x < 1) for x in out):
            shown = "×".join(str(x) for x in out)
            detail = f" ({step.op.detail})" if step.op.detail else ""
            inp = "×".join(str(x) for x in step.op.input)
            field = "padding" if getattr(layer, "padding", None) is not None else "kernel"
            raise SpecError(
                f"the {step.stage} {step.op.name}{detail} would output {shown} from its {inp} input: every size "
                "must be at least 1 (the kernel does not fit the padded map; use a larger input, a smaller kernel "
                "or more padding)",
                (*path, field),
            )


def _same(x: Num) -> Num:
    return x


#: The per-op metrics of an op's ``costs``, in OP_METRICS order, in one C call.
op_metrics = itemgetter(*OP_METRICS)
#: What a block's result depends on besides its layer: every BlockArgs field except ``path``.
_memo_args = attrgetter(*(f.name for f in fields(BlockArgs) if f.name != "path"))


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
    # A block function is a pure function of its layer and arguments (the path only names the field in
    # an error, and a failure is never kept), so equal layers on equal inputs — repeats, and the copies a
    # long spec is made of — share one flow of ops. In symbolic specs the key also holds the types of
    # the input sizes, batch and stride: sympy's Integer(16) equals and hashes as 16, and the flows must
    # not mix the two.
    memo: dict[Any, list[Any]] | None = {}
    op_costs: dict[int, dict[str, Num]] = {}
    named: dict[str, tuple[Any, int]] = {}  # a named layer's output: (shape, tensor id), for concat's inputs
    named_at: dict[str, list[int]] = {}  # the indices of the layers of each name (a concat refuses a repeated one)
    for i, layer in enumerate(spec.layers):
        kind = KINDS.get(layer.kind)
        if kind is None:
            raise SpecError(f"kind {layer.kind!r} has no registered block function", ("layers", i, "kind"))
        model = type(layer)
        if flat_from is not None and model.spatial:
            raise SpecError(
                f"a {layer.kind} layer cannot follow layer {flat_from} ({spec.layers[flat_from].kind}): its input "
                "is a flat vector from there on, not a feature map",
                ("layers", i, "kind"),
            )
        if model.spatial and flat_from is None and len(shape) != 3:  # only a graph layer outputs other shapes
            raise SpecError(
                f"a {layer.kind} layer needs a (C, H, W) feature map, but the previous layer outputs "
                f"{'×'.join(map(str, shape))}",
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
        own_impl = getattr(layer, "implementation", None)  # a pool's own `implementation` is how it pools
        library = own_impl if own_impl in LIBRARIES else spec.implementation.library
        own_bias = getattr(layer, "bias", None)
        bias = d.bias if own_bias is None else own_bias
        sources: tuple[Any, ...] = ()
        source_ids: tuple[int, ...] = ()
        wanted = getattr(layer, "inputs", None)
        if isinstance(wanted, list):
            for j, want in enumerate(wanted):
                if want not in named:
                    raise SpecError(
                        f"{want!r} names no earlier layer (inputs name layers before this one by their `name`)",
                        ("layers", i, "inputs", j),
                    )
                if len(named_at[want]) > 1:
                    at = ", ".join(str(k) for k in named_at[want])
                    raise SpecError(
                        f"{want!r} names more than one earlier layer (layers {at}): give the layers a concat reads "
                        "distinct names",
                        ("layers", i, "inputs", j),
                    )
            sources = tuple(named[w][0] for w in wanted)
            source_ids = tuple(named[w][1] for w in wanted)
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
                library=library,
                pad_type=spec.implementation.pad_type,
                sources=sources,
            )
            entry = None
            if memo is not None:
                try:
                    key: Any = (layer, _memo_args(args))
                    if symbols:
                        key += (tuple(map(type, args.inp)), type(args.n), type(args.stride))
                    entry = memo.get(key)
                except TypeError:  # a field value that cannot be hashed (a list): no reuse for this layer
                    key = None
            if entry is None:
                entry = [kind.block(layer, args), None]
                _positive_sizes(entry[0], layer, args.path)
                if memo is not None and key is not None:
                    memo[key] = entry
            flow = entry[0]
            b = len(blocks)
            if r <= 1:
                if entry[1] is None:
                    entry[1] = layer.settings(stride)
                described = entry[1]
            else:
                described = blocks[-1].settings
            base = next_id - 1  # block-local tensor t > 0 is global base + t
            kind_name = layer.kind
            for step in flow.steps:
                op = step.op
                # an op shared by equal blocks is counted once (sympy arithmetic included)
                made = op_costs.get(id(op))  # ids are unique here: every op stays referenced by a row
                if made is None:
                    if symbols:
                        made = {m: clean(op.costs[m]) for m in OP_METRICS}
                        made["activations"] = clean(n * numel(op.output) if op.batched else activation_elements(op, n))
                    else:  # ints throughout: nothing to clean
                        made = dict(zip(OP_METRICS, op_metrics(op.costs), strict=True))
                        made["activations"] = n * numel(op.output) if op.batched else activation_elements(op, n)
                    op_costs[id(op)] = made
                costs = made.copy()  # each row owns its dict
                reads = step.inputs
                if source_ids:  # a concat: tensor −(j + 1) is its j-th named input
                    inputs: tuple[int, ...] = tuple(
                        source_ids[-t - 1] if t < 0 else current if t == 0 else base + t for t in reads
                    )
                elif len(reads) == 1:
                    t = reads[0]
                    inputs = (current if t == 0 else base + t,)
                else:
                    inputs = tuple(current if t == 0 else base + t for t in reads)
                rows.append(Row(i, r, b, kind_name, step.stage, op, costs, times, inputs, next_id))
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
            current = next_id - 1 if flow.result is None else base + flow.result
        if flat_from is not None and not model.flattens and len(shape) == 3:  # a graph made a map again
            flat_from = None
        if layer.name is not None:
            named[layer.name] = (shape, current)
            named_at.setdefault(layer.name, []).append(i)
    return report_class(
        name=spec.name,
        assumptions=tuple(assumptions),
        input=start,
        batch=n,
        output=shape,
        rows=rows,
        blocks=blocks,
        symbols=symbols,
        drop_path=(spec.drop_path.rate, spec.drop_path.schedule) if spec.drop_path is not None else None,
    )
