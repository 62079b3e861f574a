"""Layer model of PP-LCNetV2's block: timm's RepDepthwiseSeparable (re-parameterisable multi-branch depthwise
conv → [SE] → pointwise, optionally split in two). Registered with its block function in engine/kinds.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .fields import ChannelsField, Residual
from .layers import SEFields
from .layers_zoo import _PlainConvOnly


class RepDWSepLayer(_PlainConvOnly, SEFields):
    """PP-LCNetV2's RepDepthwiseSeparable: re-parameterisable depthwise conv (stride) → act → [SE] → pointwise
    1×1 → norm → act, or, with ``mid_channels`` (timm's split_pw), 1×1 to mid → norm → act → 1×1 to out →
    norm → act (+ input, with ``residual``).

    ``form: training`` (what ``timm.create_model`` builds): one depthwise conv → norm branch per kernel
    k, k − 2, …, 1 (``kernel`` is the largest; the 1×1 branch is left out when the stride is not 1), summed,
    then the activation. ``form: deployed`` (after timm's ``reparameterize()``, or ``inference_mode=True``):
    the branches folded into one k×k depthwise conv with a bias and no norm, then the activation. SE sits on the
    depthwise output; its base (input or expanded) is the block input.
    """

    kind: Literal["rep_dwsep"]
    form: Literal["training", "deployed"] = Field(
        "training",
        description="training: the parallel conv-norm branches timm builds; deployed: them folded into one k×k "
        "depthwise conv with bias (timm's reparameterize())",
    )
    mid_channels: ChannelsField | None = Field(
        None, description="split pointwise conv: 1×1 to mid_channels, then 1×1 to out (timm's split_pw)"
    )
    residual: Residual = Field(False, description="auto = stride 1 and in == out; default false")

    def extra_settings(self) -> list[str]:
        """The branches' form and the split width: ``rep`` or ``fused``, ``mid256``."""
        out = ["fused" if self.form == "deployed" else "rep"]
        if self.mid_channels is not None:
            out.append(f"mid{self.mid_channels}")
        return out
