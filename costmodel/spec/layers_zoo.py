"""Layer models of the MBConv-family zoo's own blocks: MixConv, the Ghost module and GhostNet's bottleneck,
and MobileNetV4's universal inverted residual. Registered with their block functions in engine/kinds.py.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .fields import (
    MAX_KERNEL_GROUPS,
    Branches,
    ChannelsField,
    Count,
    GhostRatio,
    Kernel,
    OddKernel,
    Ratio,
    Residual,
    SERound,
    _odd_kernel,
)
from .layers import ConvLike, Expanding, SEFields


class _PlainConvOnly(ConvLike):
    """Refuses the k×k conv options these kinds' block functions do not implement (padding, dilation, aa),
    so they are never silently ignored. A kind whose block applies one lists it in ``conv_options``."""

    conv_options: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _plain(self) -> _PlainConvOnly:
        for name, default in (("padding", None), ("dilation", 1), ("aa", None)):
            if name not in self.conv_options and getattr(self, name) != default:
                raise PydanticCustomError(
                    "unsupported", "is not supported by the {kind} kind yet", {"kind": self.kind, "field": name}
                )
        return self


class MixConvLayer(Expanding, _PlainConvOnly):
    """MixNet's MBConv: [1×1 expansion in ``expansion_groups`` groups] → mixed depthwise (one group of channels
    per kernel in ``kernels``) → [SE] → 1×1 projection in ``projection_groups`` groups (+ residual).

    Channels split as timm's ``_split_channels(C, g)``: g parts of floor(C/g), the first taking the remainder.
    """

    kind: Literal["mixconv"]
    kernel: None = Field(None, description="unused: MixConv's depthwise kernels are `kernels`")  # type: ignore[assignment]
    kernels: list[OddKernel] = Field(
        min_length=1,
        max_length=MAX_KERNEL_GROUPS,
        description="the depthwise kernel of each channel group, e.g. [3, 5, 7]",
    )
    expansion_groups: Count = Field(1, description="groups of the 1×1 expansion (mixnet's exp_kernel_size)")
    projection_groups: Count = Field(1, description="groups of the 1×1 projection (mixnet's pw_kernel_size)")

    def extra_settings(self) -> list[str]:
        """The mixed kernels and the 1×1 groups: ``k3.5.7 a2 p2``."""
        out = ["k" + ".".join(map(str, self.kernels))]
        if self.expansion_groups != 1:
            out.append(f"a{self.expansion_groups}")
        if self.projection_groups != 1:
            out.append(f"p{self.projection_groups}")
        return out


Form = Literal["training", "deployed"]
"""Which form of a re-parameterisable block is counted: ``training``, the parallel conv-BN branches the model is
built and trained with (what ``parameters()`` counts), or ``deployed``, each set of branches fused into one conv
with a bias and no norm (timm's ``reparameterize_model``)."""

GHOST_SE_ROUND = (
    "timm's GhostNet/RepGhostNet SE rule (default round): max(1, round(base × se)), or with se_divisor "
    "make_divisible(base × se, se_divisor) of the unrounded product; floor: floor(base × se) first"
)

FORM_DESCRIPTION = (
    "the form counted: training (the parallel conv-BN branches timm builds; parameters() counts them) or deployed "
    "(each branch set fused into one biased conv without norm, as timm.utils.reparameterize_model)"
)


class GhostFields(_PlainConvOnly):
    """The Ghost module's own fields, and GhostNetV3's re-parameterisable branches (``rep_branches``, ``form``)."""

    ratio: GhostRatio = Field(
        2, description="output width / primary width (GhostNet: 2; at least 2: the cheap conv makes the rest)"
    )
    dw_kernel: Kernel = Field(3, description="kernel of the cheap depthwise conv")
    rep_branches: Branches | None = Field(
        None,
        description="GhostNetV3: the primary, cheap and strided depthwise convs each train as this many parallel "
        "conv-BN branches (timm: 3), the cheap and depthwise ones beside a 1×1 conv-BN scale branch and the cheap "
        "one beside a BN identity branch; none: plain convs (GhostNet, GhostNetV2)",
    )
    form: Form = Field("training", description=FORM_DESCRIPTION)

    _odd_dw = field_validator("dw_kernel")(_odd_kernel)

    @model_validator(mode="after")
    def _rep_rules(self) -> GhostFields:
        if self.rep_branches is None:
            if self.form != "training":
                raise PydanticCustomError(
                    "nothing_to_fuse", "form: deployed needs rep_branches (plain convs have nothing to fuse)",
                    {"field": "form"},
                )  # fmt: skip
            return self
        if self.ratio != 2:
            raise PydanticCustomError(
                "rep_ratio", "rep_branches needs ratio 2 (the cheap conv's BN identity branch keeps its width), "
                "got {v}", {"v": self.ratio, "field": "ratio"},
            )  # fmt: skip
        for name in ("mid_channels", "out_channels"):
            width = getattr(self, name, None)
            if isinstance(width, int) and width % 2:
                raise PydanticCustomError(
                    "rep_even", "{name} must be even with rep_branches (GhostNetV3 concatenates both halves "
                    "without cutting back to the width), got {v}", {"name": name, "v": width, "field": name},
                )  # fmt: skip
        return self

    def extra_settings(self) -> list[str]:
        """GhostNetV3's branches: ``rep3``, and ``deployed`` for the fused form."""
        if self.rep_branches is None:
            return []
        return [f"rep{self.rep_branches}"] + (["deployed"] if self.form == "deployed" else [])


class GhostLayer(GhostFields):
    """Ghost module: k×k primary conv (stride) to P = ceil(out/ratio) → norm → act; cheap dw_kernel×dw_kernel
    conv (groups P) to P·(ratio−1) → norm → act; concatenate; keep the first ``out_channels``.

    With ``attention: dfc`` (GhostNetV2), the output is multiplied by the DFC gate computed from the input.
    With ``rep_branches: b`` (GhostNetV3's GhostModuleV3) the primary conv trains as b parallel k×k conv → norm
    branches, summed, then act; the cheap conv as b dw_kernel² dw conv → norm branches + a 1×1 dw conv → norm
    scale branch + a norm identity branch, summed, then act. ``form: deployed`` counts each as one conv with bias.
    """

    kind: Literal["ghost"]
    kernel: Kernel = 1
    activation_cheap: bool = Field(True, description="activation after both convs (false: GhostNet's ghost2)")
    attention: Literal["none", "dfc"] = "none"


class GhostBottleneckLayer(GhostFields, SEFields):
    """GhostNet bottleneck: ghost (to mid_channels) → [k×k dw conv (stride) → norm, if stride > 1] → [SE] →
    ghost without activation (to out_channels) + shortcut.

    The shortcut is the identity when stride 1 and in == out, else k×k dw conv (stride) → norm → 1×1 conv →
    norm. ``attention: dfc`` puts GhostNetV2's DFC attention on the first ghost module. With ``rep_branches: b``
    (GhostNetV3's GhostBottleneckV3) both ghost modules are re-parameterisable (see :class:`GhostLayer`) and the
    strided dw conv trains as b k×k dw conv → norm branches + a 1×1 dw conv (stride) → norm scale branch, summed;
    the shortcut, SE and DFC gate are plain. ``form: deployed`` counts each branch set as one conv with bias.
    """

    kind: Literal["ghost_bottleneck"]
    mid_channels: ChannelsField
    se_round: SERound = Field("round", description=GHOST_SE_ROUND)
    attention: Literal["none", "dfc"] = "none"

    def extra_settings(self) -> list[str]:
        """The mid width: ``mid72``, ``dfc``, and GhostNetV3's ``rep3`` (``deployed``)."""
        return [f"mid{self.mid_channels}"] + (["dfc"] if self.attention == "dfc" else []) + super().extra_settings()


class UIRLayer(_PlainConvOnly):
    """MobileNetV4's universal inverted residual: [start_kernel dw conv → norm] → 1×1 expansion → norm → act →
    [mid_kernel dw conv (stride) → norm → act] → 1×1 projection → norm → [layer scale] (+ residual).

    The stride sits on the middle depthwise conv, or on the start one when there is no middle one. The expanded
    width is make_divisible(in × expansion, 8) (timm), or ``expanded_channels``; the expansion conv is always built.
    With ``aa`` the strided depthwise conv runs at stride 1 and the blur / average pool takes the stride after its
    norm (and activation), as timm's aa_layer on ConvNormAct.
    """

    conv_options: ClassVar[tuple[str, ...]] = ("aa",)
    kind: Literal["uir"]
    kernel: None = Field(None, description="unused: see start_kernel and mid_kernel")  # type: ignore[assignment]
    start_kernel: Kernel | None = Field(None, description="depthwise conv before the expansion (none: absent)")
    mid_kernel: Kernel | None = Field(None, description="depthwise conv after the expansion (none: absent)")
    expansion: Ratio | None = Field(
        None, description="expanded width = make_divisible(in × expansion, 8); a number in (0, 256]"
    )
    expanded_channels: ChannelsField | None = None
    layer_scale: bool = Field(False, description="x · γ per channel before the residual (timm: 1e-5 init)")
    residual: Residual = Field("auto", description="auto = stride 1 and in == out")

    _odd_dw = field_validator("start_kernel", "mid_kernel")(_odd_kernel)

    @model_validator(mode="after")
    def _one_width(self) -> UIRLayer:
        if (self.expansion is None) == (self.expanded_channels is None):
            raise PydanticCustomError(
                "one_of", "give exactly one of expansion and expanded_channels", {"field": "expansion"}
            )
        return self

    def extra_settings(self) -> list[str]:
        """The depthwise kernels: ``start3 mid5``, and ``ls`` with layer scale."""
        out = [f"{name}{k}" for name, k in (("start", self.start_kernel), ("mid", self.mid_kernel)) if k]
        return out + (["ls"] if self.layer_scale else [])


class CondConvLayer(Expanding, _PlainConvOnly):
    """timm's CondConvResidual: MBConv whose three convs (1×1 expansion, k×k depthwise, 1×1 projection) are
    CondConv2d with ``experts`` expert weights each, mixed per sample by a routing function on the block input:
    global average pool → linear Cin → experts (+ bias) → sigmoid. The expansion conv is always built (timm's
    InvertedResidual), SE sits on the depthwise output as in MBConv.
    """

    kind: Literal["condconv"]
    experts: Count = Field(description="number of experts (timm's num_experts: cc4 × experts_multiplier)")

    @model_validator(mode="after")
    def _depthwise_only(self) -> CondConvLayer:
        if self.group_size is not None:
            raise PydanticCustomError(
                "unsupported", "is not supported by the condconv kind yet", {"field": "group_size"}
            )
        return self

    def extra_settings(self) -> list[str]:
        """The number of experts: ``cc8``."""
        return [f"cc{self.experts}"]


ZOO_LAYERS = (MixConvLayer, GhostLayer, GhostBottleneckLayer, UIRLayer, CondConvLayer)
"""The zoo's layer models, in the order docs/spec.md lists them."""
