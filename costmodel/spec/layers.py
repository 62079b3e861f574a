"""Layer models: one Pydantic model per layer kind, told apart by ``kind``.

Every model forbids unknown keys. A model says what the network walk needs to know of its kind
(``spatial``: it takes a feature map; ``flattens``: its output is a flat vector) and how its key
settings read in a table (``settings``). Register a new kind with ``engine.kinds.register``, which
adds its model to the spec's layer union and its block function to the engine.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .fields import (
    Activation,
    AntiAlias,
    ChannelsField,
    Divisor,
    Expansion,
    Gate,
    IntOrSym,
    Kernel,
    Norm,
    Padding,
    PositiveFloat,
    Probability,
    Repeat,
    Residual,
    SERatio,
    SERound,
    StrictResidual,
    activation_alias,
)


class Model(BaseModel):
    """Base of every spec model: unknown keys refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Layer(Model):
    """Fields every layer kind shares."""

    #: the layer's input is a feature map (it cannot follow a linear layer)
    spatial: ClassVar[bool] = True
    #: the layer's output is a flat vector (a linear layer)
    flattens: ClassVar[bool] = False

    kind: str  # each kind narrows it to its Literal tag
    name: str | None = Field(None, description="a label shown in tables (e.g. stem, head)")
    in_channels: ChannelsField | None = Field(
        None, description="optional check: the channels this layer expects from the previous one (scaled like out)"
    )
    scale_width: bool = Field(True, description="whether scaling.width applies to this layer's channels")
    width_floor: PositiveFloat | None = Field(
        None, description="scale by max(width_floor, scaling.width) (MobileNetV2's head: 1.0)"
    )

    def settings(self, stride: Any) -> str:
        """A short description of the layer's key settings, e.g. ``k5 s2 e6 se0.25 silu``."""
        parts: list[str] = []
        kernel = getattr(self, "kernel", None)
        if kernel is not None:
            parts.append(f"k{kernel}")
            if stride != 1:
                parts.append(f"s{stride}")
        for attr, fmt in (("expansion", "e{}"), ("expanded_channels", "exp{}")):
            v = getattr(self, attr, None)
            if v is not None:
                parts.append(fmt.format(v))
        groups = getattr(self, "groups", 1)
        if groups != 1:
            parts.append(f"g{groups}")
        se = getattr(self, "se", None)
        if se is not None:
            parts.append(f"se{se:g}")
        parts += self.extra_settings()
        act = getattr(self, "activation", None)
        if act and act != "none":
            parts.append(act)
        return " ".join(parts)

    def extra_settings(self) -> list[str]:
        """Settings particular to a kind (overridden by kinds that have some)."""
        return []


class ConvLike(Layer):
    """Fields every convolutional layer kind shares."""

    out_channels: ChannelsField
    kernel: Kernel = 3
    stride: IntOrSym = 1
    repeat: Repeat = Field(1, description="repeats after the first use stride 1 and in = out")
    scale_depth: bool = Field(True, description="whether scaling.depth multiplies repeat (ceil(repeat × depth))")
    activation: Activation | None = Field(None, description="default: the spec's defaults.activation")
    norm: Norm | None = Field(None, description="default: the spec's defaults.norm")
    bias: bool | None = Field(None, description="conv bias; default: the spec's defaults.bias")
    padding: Padding | None = Field(
        None,
        description="padding of the k×k conv: same (timm Conv2dSame, out = ceil(H/s)), valid (0) or N; "
        "default: dilation × (k − 1) / 2 (odd kernels only)",
    )
    dilation: IntOrSym = Field(1, description="dilation of the k×k conv")
    aa: AntiAlias | None = Field(
        None,
        description="anti-aliased stride (timm aa_layer): the k×k conv at stride 1, then a fixed 3×3 blur (blur) "
        "or a 2×2 average pool (avg) at the stride, after the conv's norm and activation",
    )
    implementation: Literal["torch", "timm"] | None = Field(
        None, description="the module classes of this layer, if not the spec's implementation.library"
    )

    _swish = field_validator("activation")(activation_alias)

    @model_validator(mode="after")
    def _odd_unless_padded(self) -> ConvLike:
        if self.padding is None and isinstance(self.kernel, int) and self.kernel % 2 == 0:
            raise PydanticCustomError(
                "odd_kernel",
                "kernel must be odd (the default padding k//2 needs an odd kernel; set padding for an even one), "
                "got {v}",
                {"v": self.kernel, "field": "kernel"},
            )
        return self


class SEFields(Model):
    """Squeeze-excitation fields, shared by the kinds that take SE."""

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
    se_bias: bool = Field(
        True, description="bias on SE's two 1×1 convs (false: the ONNX dynamo exporter removes all-zero biases)"
    )
    se_channels: ChannelsField | None = Field(
        None, description="the squeeze width itself, instead of the se rule (timm's pruned EfficientNets)"
    )
    se_round: SERound = Field(
        "floor", description="base × se rounded down (floor, torchvision) or to nearest (round, timm's round())"
    )
    se_round_limit: PositiveFloat = Field(
        0.9, description="se_divisor's make_divisible adds a divisor below this fraction of the width (FBNetV3: 0.95)"
    )

    @property
    def has_se(self) -> bool:
        """Whether the block has squeeze-excitation (``se`` or ``se_channels`` set)."""
        return self.se is not None or self.se_channels is not None

    _se_swish = field_validator("se_activation")(activation_alias)


class ConvLayer(ConvLike):
    """A plain convolution → norm → activation. No residual.

    ``out_ratio: r`` instead of ``out_channels`` gives r × the input channels (EfficientNet's head is 4×
    its input, MobileNetV3's 6×), so the head follows width scaling the way the references build it.
    """

    kind: Literal["conv"]
    out_channels: ChannelsField | None = None  # type: ignore[assignment]
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


class Expanding(ConvLike, SEFields):
    """Fields of the inverted-bottleneck kinds: the expanded width, SE and the residual."""

    expansion: Expansion | None = Field(None, description="expanded width = input channels × expansion")
    expanded_channels: ChannelsField | None = Field(
        None, description="the expanded width itself, instead of expansion (MobileNetV3)"
    )
    expanded_divisor: Divisor | None = Field(
        None, description="round input × expansion with make_divisible(·, expanded_divisor) (EfficientNet: 8)"
    )
    residual: Residual = Field("auto", description="auto = stride 1 and in == out")
    group_size: IntOrSym | None = Field(
        None,
        description="channels per group of the k×k conv (timm group_size); default: depthwise in mbconv, "
        "a full conv in fused_mbconv",
    )

    @model_validator(mode="after")
    def _one_expansion(self) -> Expanding:
        if (self.expansion is None) == (self.expanded_channels is None):
            raise PydanticCustomError(
                "one_of", "give exactly one of expansion and expanded_channels", {"field": "expansion"}
            )
        return self


class MBConvLayer(Expanding):
    """Inverted bottleneck: 1×1 expansion → k×k depthwise → (SE) → linear 1×1 projection (+ residual).

    No expansion conv when the expanded width equals the input (expansion 1), as in MobileNetV2,
    MobileNetV3 and EfficientNet; ``expand_always: true`` keeps it (timm's ``ir_…_e1`` with a forced
    in → in 1×1 conv: FBNet-C).
    """

    kind: Literal["mbconv"]
    expand_always: bool = Field(False, description="keep the 1×1 expansion conv even when E equals the input")


class FusedMBConvLayer(Expanding):
    """EfficientNetV2's Fused-MBConv: k×k expansion conv → (SE) → linear 1×1 projection (+ residual).

    When the expanded width equals the input (expansion 1): a single k×k conv-norm-act to out_channels,
    unless ``keep_projection: true`` (timm's ``er_…_e1``: k×k in → in, then the 1×1 projection).
    """

    kind: Literal["fused_mbconv"]
    keep_projection: bool = Field(False, description="keep the 1×1 projection even when E equals the input")


class DWSepLayer(ConvLike, SEFields):
    """Depthwise-separable conv: k×k depthwise → norm → act → [SE] → 1×1 pointwise → norm → [act] (+ input).

    SE sits on the depthwise output (its base, input or expanded, is the block input); ``pw_activation``
    is the activation after the pointwise conv (default: the block's; ``none`` drops it); ``residual``
    defaults to false (timm's DepthwiseSeparableConv: ``auto``).
    """

    kind: Literal["dwsep"]
    residual: Residual = Field(False, description="auto = stride 1 and in == out; default false")
    pw_activation: Activation | None = Field(None, description="activation after the pointwise conv")

    _pw_swish = field_validator("pw_activation")(activation_alias)


class BasicLayer(ConvLike):
    """Two k×k conv-norm-act in a row (the seed notebook's SimpleConvBlock); residual only if asked. With
    ``resnet: true``, ResNet's BasicBlock: the second conv's activation runs after the add, and the shortcut is
    the identity when stride 1 and in = out, else a 1×1 conv (stride) + norm, as the bottleneck's."""

    kind: Literal["basic"]
    residual: StrictResidual = False
    resnet: bool = Field(
        False,
        description="ResNet's BasicBlock: conv1-norm-act → conv2-norm, + the shortcut (identity, or 1×1 conv + norm "
        "where the stride or width changes), then the activation",
    )

    @model_validator(mode="after")
    def _one_residual(self) -> BasicLayer:
        if self.resnet and self.residual:
            raise ValueError("resnet: true has its own shortcut; leave residual out")
        return self


class BottleneckLayer(ConvLike):
    """ResNet bottleneck: 1×1 reduce → k×k → linear 1×1 expand, + shortcut, then the activation."""

    kind: Literal["bottleneck"]
    mid_channels: ChannelsField | None = Field(None, description="default: out_channels // 4")


class PoolLayer(Layer):
    """Global average pooling to C×1×1.

    ``implementation`` says how the reference model pools: an ``nn.AdaptiveAvgPool2d`` module (EfficientNet,
    MobileNetV3), ``F.adaptive_avg_pool2d`` (MobileNetV2) or ``x.mean((2, 3))`` (MnasNet). The cost is the
    same; the peers' counters see them differently (docs/conventions.md).
    """

    kind: Literal["pool"]
    implementation: Literal["module", "functional", "mean"] = "module"


class LinearLayer(Layer):
    """A fully connected layer on the flattened input (C·H·W features), with an optional activation.

    Its ``bias`` defaults to true and its ``activation`` to none, whatever the spec's defaults say,
    as nn.Linear in a classifier; width scaling is off unless ``scale_width: true`` (MobileNetV3's
    hidden classifier layer).
    """

    spatial: ClassVar[bool] = False
    flattens: ClassVar[bool] = True

    kind: Literal["linear"]
    out_features: ChannelsField
    bias: bool = True
    activation: Activation = "none"
    scale_width: bool = False
    implementation: Literal["torch", "timm"] | None = Field(
        None, description="nn.Linear (torch) or timm's Linear (timm); default: the spec's implementation.library"
    )

    _swish = field_validator("activation")(activation_alias)

    def extra_settings(self) -> list[str]:
        """The output width: ``→1000``."""
        return [f"→{self.out_features}"]


class DropoutLayer(Layer):
    """Dropout: shown in tables, costs nothing at inference."""

    spatial: ClassVar[bool] = False

    kind: Literal["dropout"]
    p: Probability = 0.5

    def extra_settings(self) -> list[str]:
        """The drop probability: ``p=0.2``."""
        return [f"p={self.p:g}"]


BUILTIN_LAYERS: tuple[type[Layer], ...] = (
    ConvLayer,
    MBConvLayer,
    FusedMBConvLayer,
    DWSepLayer,
    BasicLayer,
    BottleneckLayer,
    PoolLayer,
    LinearLayer,
    DropoutLayer,
)
"""The layer models shipped with costmodel, in the order the docs list them."""


def kind_of(model: type[Layer]) -> str:
    """The ``kind`` tag a layer model declares (its ``Literal``)."""
    field = model.model_fields.get("kind")
    args: tuple[Any, ...] = getattr(field.annotation, "__args__", ()) if field is not None else ()
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{model.__name__} needs a field `kind: Literal['name']`")
    return args[0]
