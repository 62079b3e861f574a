"""Layer models of RepGhostNet's re-parameterisable blocks (timm's RepGhostModule and RepGhostBottleneck).

Registered with their block functions (engine/blocks_rep.py) in engine/kinds.py. GhostNetV3's branches are
options of the ghost kinds (``rep_branches``, ``form`` in spec/layers_zoo.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .fields import ChannelsField, Kernel, SERound, _odd_kernel
from .layers import SEFields
from .layers_zoo import FORM_DESCRIPTION, GHOST_SE_ROUND, Form, _PlainConvOnly


class RepGhostFields(_PlainConvOnly):
    """The RepGhost module's own fields: the cheap conv's kernel, the identity branch and the form counted."""

    dw_kernel: Kernel = Field(3, description="kernel of the cheap depthwise conv")
    reparam: bool = Field(
        True, description="the cheap conv's BN identity branch (timm's reparam; false: the cheap conv alone)"
    )
    form: Form = Field("training", description=FORM_DESCRIPTION)

    _odd_dw = field_validator("dw_kernel")(_odd_kernel)

    def extra_settings(self) -> list[str]:
        """``norep`` without the identity branch, ``deployed`` for the fused form."""
        return (["norep"] if not self.reparam else []) + (["deployed"] if self.form == "deployed" else [])


class RepGhostLayer(RepGhostFields):
    """RepGhost module: k×k primary conv (stride) Cin → C (C = out_channels, the full width) → norm → act;
    cheap dw_kernel² depthwise conv C → C → norm, plus (``reparam``) a norm identity branch on the primary output,
    summed → act. Train form: params = C·Cin·k² + 2C + C·d² + 2C (+ 2C identity BN); MACs = N·Ho·Wo·(C·Cin·k² +
    C·d²). Deploy (timm's switch_to_deploy, only with ``reparam``): the cheap conv and both of its norms fuse
    into one d² depthwise conv with bias, params C·d² + C in place of C·d² + 4C; the primary keeps its norm.
    """

    kind: Literal["repghost"]
    kernel: Kernel = 1
    activation_cheap: bool = Field(
        True, description="the activations after the primary conv and after the sum (false: RepGhostNet's ghost2)"
    )


class RepGhostBottleneckLayer(RepGhostFields, SEFields):
    """RepGhostNet bottleneck: repghost (to mid_channels, act) → [k×k dw conv (stride) → norm, if stride > 1] →
    [SE] → repghost without activation (to out_channels) + shortcut.

    The shortcut is the identity when stride 1 and in == out, else k×k dw conv (stride) → norm → 1×1 conv →
    norm, as GhostNet's. RepGhostNet's SE: ``se: 0.25, se_base: expanded, se_divisor: 4, se_gate: hardsigmoid``.
    """

    kind: Literal["repghost_bottleneck"]
    mid_channels: ChannelsField
    se_round: SERound = Field("round", description=GHOST_SE_ROUND)

    def extra_settings(self) -> list[str]:
        """The mid width: ``mid72``, then ``norep`` / ``deployed``."""
        return [f"mid{self.mid_channels}", *super().extra_settings()]


REP_LAYERS = (RepGhostLayer, RepGhostBottleneckLayer)
"""RepGhostNet's layer models, in the order docs/spec.md lists them."""
