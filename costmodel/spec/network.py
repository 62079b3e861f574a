"""The whole spec: input, defaults, scaling and layers, and the registry of layer models.

The ``layers`` list is a discriminated union over every registered layer model (tag: ``kind``);
``register_layer_model`` adds a model and rebuilds the union, so a new kind needs no edit here.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError

from .fields import (
    ODD_KERNEL_SCHEMA,
    Activation,
    Divisor,
    IntOrSym,
    Norm,
    PositiveFloat,
    activation_alias,
    is_symbol_field,
)
from .layers import BUILTIN_LAYERS, Layer, Model, kind_of

LAYER_MODELS: dict[str, type[Layer]] = {kind_of(m): m for m in BUILTIN_LAYERS}
"""Every layer model by its ``kind``."""


class Input(Model):
    """The input tensor: channels × height × width, with an optional batch size."""

    channels: IntOrSym
    height: IntOrSym
    width: IntOrSym
    batch: IntOrSym = 1


class Defaults(Model):
    """Values every layer takes unless it sets the key itself."""

    activation: Activation = "relu6"
    norm: Norm = "batchnorm"
    bias: bool = False
    norm_groups: Divisor | None = Field(None, description="groupnorm / evonorm_s0: the number of groups")
    norm_group_size: Divisor | None = Field(
        None, description="groupnorm / evonorm_s0: channels per group instead (timm's group_size; groups = C / it)"
    )

    _swish = field_validator("activation")(activation_alias)


class Scaling(Model):
    """Compound scaling, as the reference implementations apply it.

    Channels: make_divisible(c × width, divisor) (torchvision's rule: nearest multiple of the divisor,
    at least the divisor, never below 90% of c × width). Repeats: ceil(repeat × depth), or with
    ``depth_rounding: round`` Python's round(repeat × depth) (timm's ``depth_trunc='round'``), at least 1.
    """

    width: PositiveFloat = 1.0
    depth: PositiveFloat = 1.0
    divisor: Divisor = 8
    depth_rounding: Literal["ceil", "round"] = "ceil"


LIBRARIES = ("torch", "timm")
"""The libraries whose module classes a spec can say the reference model is built from (``implementation``)."""


class Implementation(Model):
    """Which module classes build the reference model, where the peer counters (fvcore, ptflops, thop,
    torchinfo) tell them apart; costs are the same either way (docs/conventions.md).

    ``library: torch`` (default): torch.nn's classes, as torchvision builds its models. ``library: timm``: timm's
    own (BatchNormAct2d and the other norm + act layers, SqueezeExcite pooling by ``x.mean``, timm's Linear,
    Conv2dSame). ``pad_type: same``: timm's TensorFlow padding (the ``tf_`` ports), so that every conv timm cannot
    pad statically (stride > 1 or an even kernel) is a Conv2dSame. A bare string is the library:
    ``implementation: timm``. A layer may say ``implementation: torch`` where timm builds it from torch.nn.
    """

    library: Literal["torch", "timm"] = "torch"
    pad_type: Literal["", "same"] = Field("", description="timm's pad_type: same = TensorFlow padding (tf_ models)")


class Provenance(Model):
    """Where an imported spec came from (``costmodel import`` writes it; a hand-written spec has none).

    ``model``: the SOURCE it was imported from (``timm:efficientnet_b2``, ``torchvision:mobilenet_v2``,
    ``pkg.mod:build``, ``net.onnx``, ``<torch>`` for ``from_torch``), with the builder's kwargs. ``input``: the input
    size it was traced at and where that size came from (timm's ``pretrained_cfg`` ``input_size``, torchvision's
    default weights' crop, ``--input``, …). ``scaling``: which multipliers the spec's ``scaling`` rules apply as
    the model's builder does. ``unknown`` (an import of a family the importer does not recognise: each block one
    layer as traced, with no rule for how the builder rounds scaled channels or repeats): ``scaling``,
    ``--width-mult`` and ``--depth-mult`` are refused, since the generic rules could describe a network the builder
    never makes. ``width``: the width rule is the builder's, depth is refused (torchvision's mobilenet_v2 has no
    depth multiplier; timm's mobilenetv3 has one the spec cannot say). ``spec``: both are.
    """

    model: str = Field(min_length=1, description="the SOURCE the spec was imported from")
    input: str | None = Field(None, description="the traced input size and where it came from")
    scaling: Literal["unknown", "width", "spec"] = Field(
        "unknown",
        description="unknown: width and depth scaling refused; width: depth refused; spec: the spec's scaling rules "
        "are the model's builder's",
    )


class DropPath(Model):
    """Stochastic depth (torchvision's ``StochasticDepth``, timm's ``DropPath``) on each block's residual branch.

    The blocks are the layers of a kind with a ``residual`` field, repeats expanded, in network order: block i of
    B drops its residual branch with p_i = ``rate`` × i / B (``schedule: linear``: torchvision's
    ``stochastic_depth_prob × block_idx / total_blocks``, timm's ``drop_path_rate × block_idx / block_count``; the
    first block has p 0) or p_i = ``rate`` (``constant``). In train mode a block with p_i > 0 and a residual add
    computes ``x · noise / (1 − p_i)`` with ``noise`` an N × 1 × 1 × 1 Bernoulli tensor of x's dtype: autograd saves
    that noise (N values), nothing else (x needs no saving: the noise needs no gradient). The identity at inference:
    no params, MACs, FLOPs or inference memory; only ``costmodel train``'s saved bytes change (docs/training.md).
    """

    rate: float = Field(ge=0.0, lt=1.0, description="the drop probability the schedule scales (0 ≤ rate < 1)")
    schedule: Literal["linear", "constant"] = Field(
        "linear", description="linear: p_i = rate × i / B (block i of B); constant: p_i = rate"
    )


def scaling_refusal(provenance: Provenance | None, width: bool = True, depth: bool = True) -> str | None:
    """Why a width (``width``) or depth (``depth``) multiplier cannot apply to a spec with this provenance (None:
    it can)."""
    if provenance is None or provenance.scaling == "spec" or (provenance.scaling == "width" and not depth):
        return None
    if provenance.scaling == "width" and provenance.model.startswith("timm:"):
        return (
            f"this spec was imported from {provenance.model}, whose depth multiplier it cannot say "
            "(provenance.scaling: width): timm scales each stage's repeats as one total split back over the stage's "
            "blocks of different expansions, which no per-layer rule does; only the width scales"
        )
    if provenance.scaling == "width":
        return (
            f"this spec was imported from {provenance.model}, whose builder has no depth multiplier "
            "(provenance.scaling: width); only the width scales"
        )
    return (
        f"this spec was imported from {provenance.model} and does not know how that model's builder scales "
        "channels and repeats (provenance.scaling: unknown); build the model at that multiplier and import it"
    )


def _library_shorthand(value: Any) -> Any:
    return {"library": value} if isinstance(value, str) else value


class _AnyLayer:
    """Validates a layer as the union of every registered layer model, discriminated by ``kind`` (the
    union is built when the spec model is, and rebuilt when a kind is registered)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        union: Any = Union[tuple(LAYER_MODELS.values())]  # noqa: UP007 - built from a tuple at run time
        return handler.generate_schema(Annotated[union, Discriminator("kind")])


AnyLayer = Annotated[Layer, _AnyLayer()]


class NetworkSpec(Model):
    """A whole spec: an input, optional defaults and a non-empty list of layers."""

    name: str | None = None
    input: Input
    defaults: Defaults = Defaults()
    scaling: Scaling | None = None
    implementation: Implementation = Field(
        Implementation(), description="the module classes of the reference model (timm | torch): docs/conventions.md"
    )
    provenance: Provenance | None = Field(
        None, description="where an imported spec came from (costmodel import writes it): docs/import.md"
    )
    drop_path: DropPath | None = Field(
        None, description="stochastic depth on the blocks' residual branches: training memory only (docs/spec.md)"
    )
    layers: list[AnyLayer] = Field(min_length=1)

    # Where the spec came from (file name and line of each key), for error messages.
    _source: Any = PrivateAttr(default=None)

    _library = field_validator("implementation", mode="before")(_library_shorthand)

    @model_validator(mode="after")
    def _scaling_known(self) -> NetworkSpec:
        if self.scaling is None:
            return self
        why = scaling_refusal(self.provenance, width=True, depth=self.scaling.depth != 1.0)
        if why is not None:
            raise PydanticCustomError("scaling_unknown", "cannot be applied: {why}", {"why": why, "field": "scaling"})
        return self

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON Schema of the spec format, as strict as JSON Schema can say: beside each field's type,
        the model-level rules "exactly one of expansion and expanded_channels" and "exactly one of
        out_channels and out_ratio" (``oneOf`` of ``required``)."""
        schema = super().model_json_schema(*args, **kwargs)
        for d in schema.get("$defs", {}).values():
            props = d.get("properties", {})
            for pair in (("expansion", "expanded_channels"), ("out_channels", "out_ratio")):
                if all(p in props for p in pair):
                    d["oneOf"] = [{"required": [p]} for p in pair]
            kernel = props.get("kernel")
            # the odd-kernel rule is the block kinds' (same padding k//2), named in their kernel's description;
            # a graph op node's conv / pool kernel may be even (ConvNeXt's 4×4 stem)
            odd_rule = isinstance(kernel, dict) and str(kernel.get("description", "")).startswith("kernel size; odd")
            if isinstance(kernel, dict) and "anyOf" in kernel and odd_rule:
                odd = {**kernel, "anyOf": [ODD_KERNEL_SCHEMA, *kernel["anyOf"][1:]]}
                if "padding" in props:  # an even kernel needs an explicit padding
                    no_padding = {
                        "anyOf": [{"not": {"required": ["padding"]}}, {"properties": {"padding": {"type": "null"}}}]
                    }
                    d["if"] = no_padding
                    d["then"] = {"properties": {"kernel": odd}}
                else:
                    props["kernel"] = odd
        impl = schema.get("properties", {}).get("implementation")
        if isinstance(impl, dict) and "$ref" in impl:  # the bare-string shorthand: implementation: timm
            ref = impl.pop("$ref")
            impl["anyOf"] = [{"$ref": ref}, {"enum": list(LIBRARIES)}]
        return schema


def register_layer_model(model: type[Layer]) -> str:
    """Add a layer model to the spec format (its ``kind`` tag must be new); returns the kind."""
    if not issubclass(model, Layer):
        raise TypeError(f"{model.__name__} must subclass costmodel.spec.layers.Layer")
    kind = kind_of(model)
    if kind in LAYER_MODELS:
        if LAYER_MODELS[kind] is not model:
            raise ValueError(f"a layer kind {kind!r} is registered already")
        return kind
    LAYER_MODELS[kind] = model
    if NetworkSpec.__pydantic_complete__:  # built already (a spec was read): rebuild the union now
        NetworkSpec.model_rebuild(force=True)
    return kind


def layer_model(kind: str) -> type[Layer] | None:
    """The model class for a layer ``kind``, or None for an unknown kind."""
    return LAYER_MODELS.get(kind)


@cache
def integer_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that take an integer or a symbol name (typed with IntOrSym)."""
    return frozenset(name for name, f in model.model_fields.items() if is_symbol_field(f.annotation, f.metadata))


_PLAIN = frozenset({int, float, bool})


@cache
def _field_kinds(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """``(field, takes a symbol)`` for every field of ``model``, in order."""
    ints = integer_fields(model)
    return tuple((name, name in ints) for name in model.model_fields)


def symbol_uses(model: BaseModel, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """Every integer field of ``model`` (recursively) that holds a symbol: ``[(path, name), …]``."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    values = model.__dict__
    for name, is_int in _field_kinds(type(model)):
        v = values[name] if name in values else getattr(model, name)
        if v is None or type(v) in _PLAIN:  # the common case: nothing to look into
            continue
        if isinstance(v, str):
            if is_int:
                out.append(((*path, name), v))
        elif isinstance(v, BaseModel):
            out += symbol_uses(v, (*path, name))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, BaseModel):
                    out += symbol_uses(item, (*path, name, i))
    return out
