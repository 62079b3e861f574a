"""The ``graph`` layer kind: op nodes that read named tensors (a DAG), for what the block kinds cannot say.

A node is one torch op (``conv``, ``linear``, ``layer_norm``, ``sdpa``, ``reshape`` …) with the fields its op
takes. The vocabulary's *field table* (:data:`OPS`: which op takes which fields, which are required, their
defaults and how many tensor inputs the op reads) lives here, so the spec refuses a node the engine could
not count; the formulas live in engine/graph_ops.py (one entry per op, checked against this table at import).
Registered with its block function in engine/kinds.py (block: engine/blocks_graph.py). docs/spec.md,
"Graph layers (op nodes)", has the format and every op's formulas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from . import names
from .fields import MAX_INT, Repeat, _int_check, _int_schema
from .layers import Layer, Model

#: The most nodes one graph layer may hold.
MAX_NODES = 100_000
#: The most tensor inputs one node may read (a ``cat`` of many tensors).
MAX_NODE_INPUTS = 4096
#: The most entries of a node's list field (``shape``, ``dims``, ``size``, ``pads`` …): torch's tensors have at
#: most 64 dimensions; ``pads`` holds two per dimension.
MAX_RANK = 128
#: The longest name, module path, equation or aten function name a node may hold.
MAX_TEXT = 1000

IN = "in"
"""The reserved name of the layer's input tensor inside ``nodes``."""

REQUIRED: Any = object()
"""The default of a field an op cannot do without (:data:`OPS`)."""

Positive = Annotated[int, BeforeValidator(_int_check(1, MAX_INT)), WithJsonSchema(_int_schema(1, MAX_INT))]
NonNegative = Annotated[int, BeforeValidator(_int_check(0, MAX_INT)), WithJsonSchema(_int_schema(0, MAX_INT))]
Signed = Annotated[int, BeforeValidator(_int_check(-MAX_INT, MAX_INT)), WithJsonSchema(_int_schema(-MAX_INT, MAX_INT))]
Extent = Annotated[int, BeforeValidator(_int_check(-1, MAX_INT)), WithJsonSchema(_int_schema(-1, MAX_INT))]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
PositiveList = Annotated[list[Positive], Field(max_length=MAX_RANK)]
NonNegativeList = Annotated[list[NonNegative], Field(max_length=MAX_RANK)]
SignedList = Annotated[list[Signed], Field(max_length=MAX_RANK)]


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise PydanticCustomError("strict_bool", "must be true or false, got {v}", {"v": repr(value)})
    return value


Bool = Annotated[bool, BeforeValidator(_strict_bool)]


@dataclass(frozen=True)
class OpFields:
    """What one op of the vocabulary takes: ``fields`` maps each op-specific field it accepts to its default
    (:data:`REQUIRED`: it must be given); ``arity`` is the (least, most) number of tensor inputs it reads
    (most None: any number)."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    arity: tuple[int, int | None] = (1, 1)


_CONV = {
    "out": REQUIRED,
    "kernel": REQUIRED,
    "stride": 1,
    "padding": 0,
    "dilation": 1,
    "groups": 1,
    "bias": False,
    "transposed": False,
    "output_padding": 0,
}
_POOL = {"kernel": REQUIRED, "stride": None, "padding": 0, "ceil": False}
_REDUCE = {"dim": None, "keepdim": False}
_ELEMENTWISE_ACTS = ("tanh", "exp", "log", "sqrt", "rsqrt", "neg", "abs", "reciprocal", "erf", "softplus", "mish")
_MORE_ACTS = (*_ELEMENTWISE_ACTS, "leaky_relu", "elu")

OPS: dict[str, OpFields] = {
    "param": OpFields({"shape": REQUIRED, "unread": False}, (0, 0)),
    "buffer": OpFields({"shape": REQUIRED, "unread": False}, (0, 0)),
    "conv": OpFields(_CONV, (1, 3)),
    "linear": OpFields({"out": REQUIRED, "bias": False}, (1, 3)),
    "matmul": OpFields({}, (2, 2)),
    "bmm": OpFields({}, (2, 2)),
    "einsum": OpFields({"equation": REQUIRED}, (1, 2)),
    "sdpa": OpFields({}, (3, 4)),
    "batch_norm": OpFields({"affine": True, "tracked": True}),
    "layer_norm": OpFields({"normalized": 1, "affine": True, "bias": True}),
    "group_norm": OpFields({"groups": REQUIRED, "affine": True}),
    "rms_norm": OpFields({"normalized": 1, "affine": True}),
    **{name: OpFields() for name in names.ACTIVATIONS},
    **{name: OpFields() for name in _MORE_ACTS},
    "softmax": OpFields({"dim": REQUIRED}),
    "log_softmax": OpFields({"dim": REQUIRED}),
    "avg_pool": OpFields(_POOL),
    "max_pool": OpFields({**_POOL, "dilation": 1}),
    "adaptive_avg_pool": OpFields({"size": REQUIRED}),
    "adaptive_max_pool": OpFields({"size": REQUIRED}),
    "mean": OpFields(_REDUCE),
    "sum": OpFields(_REDUCE),
    "amax": OpFields(_REDUCE),
    "var": OpFields(_REDUCE),
    **{name: OpFields({}, (1, None)) for name in ("add", "sub", "mul", "div", "pow", "maximum", "minimum")},
    "where": OpFields({}, (1, 3)),
    "clamp": OpFields({}, (1, 3)),
    "reshape": OpFields({"shape": REQUIRED}),
    "permute": OpFields({"dims": REQUIRED}),
    "transpose": OpFields({"dims": REQUIRED}),
    "flatten": OpFields({"dim": [0, -1]}),
    "expand": OpFields({"shape": REQUIRED}),
    "cat": OpFields({"dim": 0}, (1, None)),
    "slice": OpFields({"dim": REQUIRED, "start": 0, "end": MAX_INT, "step": 1}),
    "select": OpFields({"dim": REQUIRED, "index": REQUIRED}),
    "pad": OpFields({"pads": REQUIRED, "mode": "constant"}),
    "roll": OpFields({"size": REQUIRED, "dims": REQUIRED}),
    "repeat": OpFields({"shape": REQUIRED}),
    "tile": OpFields({"shape": REQUIRED}),
    "interpolate": OpFields({"size": REQUIRED, "mode": "nearest"}),
    "aten": OpFields({"fn": REQUIRED, "shape": REQUIRED}, (0, None)),
}
"""The vocabulary: every op a node may name, with the fields it takes (docs/spec.md lists each op's formulas)."""

COMMON = ("id", "op", "inputs", "module")
"""The fields every node may have."""


class OpNode(Model):
    """One op of a graph layer: ``op`` names it in the vocabulary (:data:`OPS`), ``inputs`` the tensors it reads
    (default: the previous node's, the first node's: ``in``), ``id`` the name later nodes read it by, ``module``
    the module path it belongs to (relative to the layer's ``name``, for tables). The other fields are the op's;
    a field the op does not take is refused, and so is a missing required one."""

    id: Text | None = Field(None, description="the name later nodes read this node's tensor by (unique, not `in`)")
    op: str = Field(description="the op, a name of the vocabulary (docs/spec.md: Graph layers)")
    inputs: list[Text] | None = Field(
        None, max_length=MAX_NODE_INPUTS, description="the tensors read: `in`, earlier ids, the layer's inputs"
    )
    module: Text | None = Field(None, description="the module path (relative to the layer's name) for tables")
    shape: list[Extent] | None = Field(None, max_length=MAX_RANK)
    out: Positive | None = None
    kernel: Positive | PositiveList | None = None
    stride: Positive | PositiveList | None = None
    padding: NonNegative | NonNegativeList | None = None
    dilation: Positive | PositiveList | None = None
    groups: Positive | None = None
    bias: Bool | None = None
    transposed: Bool | None = None
    output_padding: NonNegative | NonNegativeList | None = None
    dim: Signed | SignedList | None = None
    dims: list[Signed] | None = Field(None, max_length=MAX_RANK)
    keepdim: Bool | None = None
    start: Signed | None = None
    end: Signed | None = None
    step: Positive | None = None
    index: Signed | None = None
    size: list[Signed] | None = Field(None, max_length=MAX_RANK)
    mode: Text | None = None
    equation: Text | None = None
    affine: Bool | None = None
    tracked: Bool | None = None
    normalized: Positive | None = None
    pads: list[Signed] | None = Field(None, max_length=MAX_RANK)
    ceil: Bool | None = None
    fn: Text | None = None
    unread: Bool | None = None

    @model_validator(mode="after")
    def _fields_of_the_op(self) -> OpNode:
        entry = OPS.get(self.op)
        if entry is None:
            shown = self.op if len(self.op) <= 40 else self.op[:40] + "…"
            raise PydanticCustomError(
                "unknown_op",
                "unknown op '{op}'; the vocabulary: {ops} (docs/spec.md, Graph layers)",
                {"op": shown, "ops": ", ".join(OPS), "field": "op"},
            )
        for name in type(self).model_fields:
            if name in COMMON or getattr(self, name) is None:
                continue
            if name not in entry.fields:
                takes = ", ".join(entry.fields) or "no fields besides id, op, inputs, module"
                raise PydanticCustomError(
                    "op_field",
                    "the op {op} takes no field {f} (it takes: {takes})",
                    {"op": self.op, "f": name, "takes": takes, "field": name},
                )
        for name, default in entry.fields.items():
            if default is REQUIRED and getattr(self, name) is None:
                raise PydanticCustomError(
                    "op_field_missing",
                    "the op {op} needs the field {f}",
                    {"op": self.op, "f": name, "field": name},
                )
        return self

    def get(self, name: str) -> Any:
        """The value of the op field ``name``: the node's own, else the op's default (:data:`OPS`)."""
        v = getattr(self, name)
        return OPS[self.op].fields.get(name) if v is None else v

    def label(self, j: int) -> str:
        """How messages name this node: its id, else ``node j (op)``."""
        return f"node {self.id!r} ({self.op})" if self.id is not None else f"node {j} ({self.op})"


class GraphLayer(Layer):
    """Op nodes reading named tensors: ``in`` (the layer input, the walk's per-sample shape with a leading 1),
    earlier nodes' ids and the outputs of the earlier named layers in ``inputs``. Each node is one row; the
    layer's output is the ``output`` node's tensor (default: the last node's), which must have leading dim 1.

    Not feature-map-bound: a graph may follow a flat vector, and any layer may follow a graph whose output is
    a (C, H, W) map.
    """

    spatial: ClassVar[bool] = False

    kind: Literal["graph"]
    nodes: list[OpNode] = Field(min_length=1, max_length=MAX_NODES, description="the op nodes, in order")
    inputs: list[Text] | None = Field(
        None, max_length=MAX_NODE_INPUTS, description="names of earlier layers whose outputs the nodes read"
    )
    output: Text | None = Field(None, description="the node id whose tensor leaves the layer (default: the last)")
    repeat: Repeat = Field(1, description="copies 2… read the previous copy's output")

    @model_validator(mode="after")
    def _names_resolve(self) -> GraphLayer:
        external = list(self.inputs or [])
        for k, name in enumerate(external):
            if name == IN:
                raise PydanticCustomError(
                    "graph_name", "`in` is the layer input inside nodes; a layer named `in` cannot be read here",
                    {"field": ("inputs", k)},
                )  # fmt: skip
        if len(set(external)) != len(external):
            raise PydanticCustomError("graph_name", "inputs names a layer twice", {"field": "inputs"})
        known: set[str] = {IN, *external}
        for j, node in enumerate(self.nodes):
            arity = OPS[node.op].arity
            reads = node.inputs if node.inputs is not None else ([] if arity[1] == 0 else ["<previous>"])
            lo, hi = arity
            if not (lo <= len(reads) and (hi is None or len(reads) <= hi)):
                want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
                raise PydanticCustomError(
                    "graph_arity",
                    "the op {op} reads {want} tensors, got {n}",
                    {"op": node.op, "want": want, "n": len(reads), "field": ("nodes", j, "inputs")},
                )
            for k, name in enumerate(node.inputs or []):
                if name not in known:
                    raise PydanticCustomError(
                        "graph_name",
                        "'{name}' names no tensor before this node (`in`, an earlier node's id or one of the "
                        "layer's inputs)",
                        {"name": name, "field": ("nodes", j, "inputs", k)},
                    )
            if node.id is not None:
                if node.id == IN:
                    raise PydanticCustomError(
                        "graph_name", "`in` is reserved for the layer input", {"field": ("nodes", j, "id")}
                    )
                if node.id in known:
                    what = "one of the layer's inputs" if node.id in external else "an earlier node's id"
                    raise PydanticCustomError(
                        "graph_name",
                        "id '{id}' is {what} already: ids are unique within the layer",
                        {"id": node.id, "what": what, "field": ("nodes", j, "id")},
                    )
                known.add(node.id)
        if self.output is not None and self.output not in {n.id for n in self.nodes if n.id is not None}:
            raise PydanticCustomError(
                "graph_name", "output '{o}' names no node of this layer", {"o": self.output, "field": "output"}
            )
        return self

    def __hash__(self) -> int:
        # the lists make pydantic's field hash fail; equal layers (field by field) still hash alike, so the walk's
        # memo shares one flow among a graph's repeated copies, as among any kind's
        return hash((self.kind, self.name, len(self.nodes), self.output, tuple(self.inputs or ()), self.repeat))

    def extra_settings(self) -> list[str]:
        """The node count, e.g. ``12 ops``, and the inputs read."""
        out = [f"{len(self.nodes)} ops"]
        if self.inputs:
            out.append(f"reads({','.join(self.inputs)})")
        return out
