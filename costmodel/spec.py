"""The spec format: Pydantic models, one per layer kind, told apart by ``kind``.

Every model forbids unknown keys. Integer fields take a YAML integer or a symbol name (a plain
identifier); booleans, floats (even ``4.0``) and quoted numerals are refused. Symbols can be bound
before validation through the validation context (``{"bind": {"C": 16}}``), which is how ``--set``
and ``analyze(spec, C=16)`` work: nothing is ever parsed as an expression.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .symbols import IDENTIFIER, symbol_name_problem

Activation = Literal["relu", "relu6", "silu", "swish", "hardswish", "none"]
Gate = Literal["sigmoid", "hardsigmoid"]
Norm = Literal["batchnorm", "none"]


def _int_or_symbol(value: Any, info: ValidationInfo) -> int | str:
    """Accept a positive YAML integer or a symbol name; bind symbols from the context first."""
    ctx = info.context or {}
    bind: dict[str, int] = ctx.get("bind", {})
    if isinstance(value, str) and value in bind:
        ctx.setdefault("used", set()).add(value)
        value = bind[value]
    if isinstance(value, bool):
        raise PydanticCustomError(
            "int_or_symbol",
            "expected a positive integer or a symbol name, got the boolean {v}",
            {"v": str(value).lower()},
        )
    if isinstance(value, int):
        if value < 1:
            raise PydanticCustomError("positive", "must be a positive integer, got {v}", {"v": value})
        return value
    if isinstance(value, float):
        raise PydanticCustomError(
            "int_or_symbol",
            "must be an integer, got the float {v} (write it without a decimal point)",
            {"v": value},
        )
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            raise PydanticCustomError(
                "int_or_symbol",
                "got the quoted numeral '{v}'; write the integer without quotes",
                {"v": value},
            )
        problem = symbol_name_problem(value)
        if problem:
            raise PydanticCustomError("symbol_name", "bad symbol name: {p}", {"p": problem})
        return value
    raise PydanticCustomError(
        "int_or_symbol", "expected a positive integer or a symbol name, got {t}", {"t": type(value).__name__}
    )


#: A positive integer, or the name of a positive-integer symbol.
IntOrSym = Annotated[
    int | str,
    BeforeValidator(_int_or_symbol),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": IDENTIFIER.pattern, "description": "symbol name"},
            ]
        }
    ),
]


def _odd_kernel(value: int | str) -> int | str:
    if isinstance(value, int) and value % 2 == 0:
        raise PydanticCustomError(
            "odd_kernel", "kernel must be odd (same padding k//2 needs an odd kernel), got {v}", {"v": value}
        )
    return value


Kernel = Annotated[IntOrSym, Field(description="odd kernel size; padding is k//2")]


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("ratio", "must be a number in (0, 1], got {v!r}", {"v": value})
    if not 0 < value <= 1:
        raise PydanticCustomError("ratio", "must be in (0, 1], got {v}", {"v": value})
    return float(value)


SERatio = Annotated[
    float, BeforeValidator(_ratio), WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 1})
]


def _activation(value: str | None) -> str | None:
    return "silu" if value == "swish" else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Input(_Model):
    """The input tensor: channels × height × width, with an optional batch size."""

    channels: IntOrSym
    height: IntOrSym
    width: IntOrSym
    batch: IntOrSym = 1


class Defaults(_Model):
    """Values every layer takes unless it sets the key itself."""

    activation: Activation = "relu6"
    norm: Norm = "batchnorm"
    bias: bool = False

    _swish = field_validator("activation")(_activation)


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise PydanticCustomError("positive_number", "must be a positive number, got {v}", {"v": repr(value)})
    return float(value)


PositiveFloat = Annotated[
    float, BeforeValidator(_positive_number), WithJsonSchema({"type": "number", "exclusiveMinimum": 0})
]


def _strict_divisor(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PydanticCustomError("divisor", "must be a positive integer, got {v}", {"v": repr(value)})
    return value


Divisor = Annotated[int, BeforeValidator(_strict_divisor), WithJsonSchema({"type": "integer", "minimum": 1})]


class _Layer(_Model):
    """Fields every layer kind shares."""

    name: str | None = Field(None, description="a label shown in tables (e.g. stem, head)")
    in_channels: IntOrSym | None = Field(
        None, description="optional check: the channels this layer expects from the previous one (scaled like out)"
    )
    scale_width: bool = Field(True, description="whether scaling.width applies to this layer's channels")
    width_floor: PositiveFloat | None = Field(
        None, description="scale by max(width_floor, scaling.width) (MobileNetV2's head: 1.0)"
    )


class _ConvLike(_Layer):
    """Fields every convolutional layer kind shares."""

    out_channels: IntOrSym
    kernel: Kernel = 3
    stride: IntOrSym = 1
    repeat: IntOrSym = Field(1, description="repeats after the first use stride 1 and in = out")
    scale_depth: bool = Field(True, description="whether scaling.depth multiplies repeat (ceil(repeat × depth))")
    activation: Activation | None = Field(None, description="default: the spec's defaults.activation")
    norm: Norm | None = Field(None, description="default: the spec's defaults.norm")
    bias: bool | None = Field(None, description="conv bias; default: the spec's defaults.bias")

    _odd = field_validator("kernel")(_odd_kernel)
    _swish = field_validator("activation")(_activation)


class _SEFields(_Model):
    se: SERatio | None = Field(
        None,
        description="squeeze-excitation ratio; squeeze width = max(1, floor(base × se)), base = se_base's width",
    )
    se_base: Literal["input", "expanded"] = Field(
        "input", description="SE width from the block input (EfficientNet) or the expanded width (MobileNetV3)"
    )
    se_divisor: Divisor | None = Field(
        None, description="round the squeeze width with make_divisible(·, se_divisor) (MobileNetV3: 8)"
    )
    se_activation: Activation | None = Field(None, description="activation inside SE; default: the block's")
    se_gate: Gate = "sigmoid"

    _se_swish = field_validator("se_activation")(_activation)


def _residual(value: Any) -> Any:
    if value == "auto" or isinstance(value, bool):
        return value
    raise PydanticCustomError("residual", "must be auto, true or false, got '{v}'", {"v": str(value)})


def _residual_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise PydanticCustomError("residual", "must be true or false, got '{v}'", {"v": str(value)})


Residual = Annotated[
    Literal["auto"] | bool,
    BeforeValidator(_residual),
    WithJsonSchema({"anyOf": [{"const": "auto"}, {"type": "boolean"}]}),
]


class ConvLayer(_ConvLike):
    """A plain convolution → norm → activation. No residual.

    ``out_ratio: r`` instead of ``out_channels`` gives r × the input channels (EfficientNet's head is 4×
    its input, MobileNetV3's 6×), so the head follows width scaling the way the references build it.
    """

    kind: Literal["conv"]
    out_channels: IntOrSym | None = None  # type: ignore[assignment]
    out_ratio: IntOrSym | None = Field(None, description="out_channels = out_ratio × input channels")
    groups: IntOrSym = 1
    scale_depth: bool = Field(False, description="whether scaling.depth multiplies repeat (off for stems/heads)")

    @model_validator(mode="after")
    def _one_width(self) -> ConvLayer:
        if (self.out_channels is None) == (self.out_ratio is None):
            raise PydanticCustomError(
                "one_of", "give exactly one of out_channels and out_ratio", {"field": "out_channels"}
            )
        return self


class _Expanding(_ConvLike, _SEFields):
    expansion: IntOrSym | None = Field(None, description="expanded width = input channels × expansion")
    expanded_channels: IntOrSym | None = Field(
        None, description="the expanded width itself, instead of expansion (MobileNetV3)"
    )
    expanded_divisor: Divisor | None = Field(
        None, description="round input × expansion with make_divisible(·, expanded_divisor) (EfficientNet: 8)"
    )
    residual: Residual = Field("auto", description="auto = stride 1 and in == out")

    @model_validator(mode="after")
    def _one_expansion(self) -> _Expanding:
        if (self.expansion is None) == (self.expanded_channels is None):
            raise PydanticCustomError(
                "one_of", "give exactly one of expansion and expanded_channels", {"field": "expansion"}
            )
        return self


class MBConvLayer(_Expanding):
    """Inverted bottleneck: 1×1 expansion → k×k depthwise → (SE) → linear 1×1 projection (+ residual).

    No expansion conv when the expanded width equals the input (expansion 1), as in MobileNetV2,
    MobileNetV3 and EfficientNet.
    """

    kind: Literal["mbconv"]


class FusedMBConvLayer(_Expanding):
    """EfficientNetV2's Fused-MBConv: k×k expansion conv → (SE) → linear 1×1 projection (+ residual).

    When the expanded width equals the input (expansion 1): a single k×k conv-norm-act to out_channels.
    """

    kind: Literal["fused_mbconv"]


class DWSepLayer(_ConvLike):
    """Depthwise-separable conv: k×k depthwise → 1×1 pointwise, each with norm and activation."""

    kind: Literal["dwsep"]


class BasicLayer(_ConvLike):
    """Two k×k conv-norm-act in a row (the seed notebook's SimpleConvBlock); residual only if asked."""

    kind: Literal["basic"]
    residual: Annotated[bool, BeforeValidator(_residual_bool)] = False


class BottleneckLayer(_ConvLike):
    """ResNet bottleneck: 1×1 reduce → k×k → linear 1×1 expand, + shortcut, then the activation."""

    kind: Literal["bottleneck"]
    mid_channels: IntOrSym | None = Field(None, description="default: out_channels // 4")


class PoolLayer(_Layer):
    """Global average pooling to C×1×1.

    ``implementation`` says how the reference model pools: an ``nn.AdaptiveAvgPool2d`` module (EfficientNet,
    MobileNetV3), ``F.adaptive_avg_pool2d`` (MobileNetV2) or ``x.mean((2, 3))`` (MnasNet). The cost is the
    same; the peers' counters see them differently (docs/conventions.md).
    """

    kind: Literal["pool"]
    implementation: Literal["module", "functional", "mean"] = "module"


class LinearLayer(_Layer):
    """A fully connected layer on the flattened input (C·H·W features), with an optional activation.

    Its ``bias`` defaults to true and its ``activation`` to none, whatever the spec's defaults say,
    as nn.Linear in a classifier; width scaling is off unless ``scale_width: true`` (MobileNetV3's
    hidden classifier layer).
    """

    kind: Literal["linear"]
    out_features: IntOrSym
    bias: bool = True
    activation: Activation = "none"
    scale_width: bool = False

    _swish = field_validator("activation")(_activation)


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise PydanticCustomError("probability", "must be a number in [0, 1), got {v}", {"v": repr(value)})
    return float(value)


class DropoutLayer(_Layer):
    """Dropout: shown in tables, costs nothing at inference."""

    kind: Literal["dropout"]
    p: Annotated[float, BeforeValidator(_probability)] = 0.5


LayerSpec = Annotated[
    ConvLayer
    | MBConvLayer
    | FusedMBConvLayer
    | DWSepLayer
    | BasicLayer
    | BottleneckLayer
    | PoolLayer
    | LinearLayer
    | DropoutLayer,
    Field(discriminator="kind"),
]


class Scaling(_Model):
    """Compound scaling, as the reference implementations apply it.

    Channels: make_divisible(c × width, divisor) (torchvision's rule: nearest multiple of the divisor,
    at least the divisor, never below 90% of c × width). Repeats: ceil(repeat × depth).
    """

    width: PositiveFloat = 1.0
    depth: PositiveFloat = 1.0
    divisor: Divisor = 8


class NetworkSpec(_Model):
    """A whole spec: an input, optional defaults and a non-empty list of layers."""

    name: str | None = None
    input: Input
    defaults: Defaults = Defaults()
    scaling: Scaling | None = None
    layers: list[LayerSpec] = Field(min_length=1)

    # Where the spec came from (file name and line of each key), for error messages.
    _source: Any = PrivateAttr(default=None)


@cache
def se_ratio(value: float) -> Fraction:
    """The SE ratio as an exact fraction of the decimal the user wrote (0.25 → 1/4)."""
    return Fraction(repr(value))


__all__ = [
    "Activation",
    "BasicLayer",
    "BottleneckLayer",
    "ConvLayer",
    "DWSepLayer",
    "Defaults",
    "FusedMBConvLayer",
    "Input",
    "IntOrSym",
    "LayerSpec",
    "MBConvLayer",
    "NetworkSpec",
    "se_ratio",
]


_LAYER_MODELS: dict[str, type[BaseModel]] = {
    "conv": ConvLayer,
    "mbconv": MBConvLayer,
    "fused_mbconv": FusedMBConvLayer,
    "dwsep": DWSepLayer,
    "basic": BasicLayer,
    "bottleneck": BottleneckLayer,
    "pool": PoolLayer,
    "linear": LinearLayer,
    "dropout": DropoutLayer,
}


def layer_model(kind: str) -> type[BaseModel] | None:
    """The model class for a layer ``kind``, or None for an unknown kind."""
    return _LAYER_MODELS.get(kind)


def _has_symbol_validator(annotation: Any, metadata: list[Any]) -> bool:
    for m in metadata:
        if isinstance(m, BeforeValidator) and m.func is _int_or_symbol:
            return True
    for arg in get_args(annotation):  # Optional[IntOrSym] and other unions
        if get_origin(arg) is Annotated and _has_symbol_validator(None, list(get_args(arg)[1:])):
            return True
    return False


@cache
def integer_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that take an integer or a symbol name (typed with IntOrSym)."""
    return frozenset(name for name, f in model.model_fields.items() if _has_symbol_validator(f.annotation, f.metadata))


def symbol_uses(model: BaseModel, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """Every integer field of ``model`` (recursively) that holds a symbol: ``[(path, name), …]``."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    ints = integer_fields(type(model))
    for name in type(model).model_fields:
        v = getattr(model, name)
        if isinstance(v, str) and name in ints:
            out.append(((*path, name), v))
        elif isinstance(v, BaseModel):
            out += symbol_uses(v, (*path, name))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, BaseModel):
                    out += symbol_uses(item, (*path, name, i))
    return out
