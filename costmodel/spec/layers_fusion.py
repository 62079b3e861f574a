"""Layer models of multi-input and map-shaping layers: a channel concat of earlier named layers (timm's
MobileNetV5 multi-scale fusion adapter), a resize to a fixed size, a standalone norm, a flatten and a local
max pool (ResNet's stem).
Registered with their block functions in engine/kinds.py (blocks: engine/blocks_fusion.py).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from .fields import Count, Norm
from .layers import Layer


class ConcatLayer(Layer):
    """Channel concat of earlier layers' outputs (``torch.cat(dim=1)``), in ``inputs`` order.

    Output (ΣCᵢ, H₀, W₀), H₀×W₀ the first input's; an input with a smaller H or W is first resized to
    H₀×W₀ (``F.interpolate(mode=resize)``), a larger one is refused.
    """

    kind: Literal["concat"]
    inputs: list[str] = Field(min_length=1, description="names of earlier layers (their `name`), concatenated in order")
    resize: Literal["nearest", "bilinear"] = Field("nearest", description="how a smaller input is resized")

    def extra_settings(self) -> list[str]:
        """The inputs, e.g. ``cat(s3,s4)``."""
        return [f"cat({','.join(self.inputs)})"]


class ResizeLayer(Layer):
    """Resize the map to ``size`` (h×w): ``avg`` a k×k average pool with stride k (H, W divisible by the
    size), ``bilinear`` / ``nearest`` ``F.interpolate``; ``timm`` MobileNetV5's adapter rule: avg when
    H and W are divisible by the size, else bilinear; a map already at the size is left as is."""

    kind: Literal["resize"]
    size: Count | tuple[Count, Count] = Field(description="the output h×w (one int: square)")
    mode: Literal["timm", "avg", "bilinear", "nearest"] = "timm"

    @field_validator("size", mode="before")
    @classmethod
    def _pair(cls, v: object) -> object:
        if isinstance(v, list):
            return tuple(v)
        return v

    def hw(self) -> tuple[int, int]:
        """The output (h, w)."""
        return (self.size, self.size) if isinstance(self.size, int) else self.size

    def extra_settings(self) -> list[str]:
        """The size and mode, e.g. ``→16×16 timm``."""
        h, w = self.hw()
        return [f"→{h}×{w}", self.mode]


class NormLayer(Layer):
    """A standalone norm on the map (e.g. timm's RmsNorm2d after MobileNetV5's adapter); params and buffers
    as the same norm after a conv."""

    kind: Literal["norm"]
    norm: Norm | None = Field(None, description="default: the spec's defaults.norm")

    def extra_settings(self) -> list[str]:
        """The norm's name."""
        return [self.norm] if self.norm else []


class FlattenLayer(Layer):
    """(C, H, W) → the flat (C·H·W,) vector (``nn.Flatten(1)``): no cost."""

    flattens: ClassVar[bool] = True

    kind: Literal["flatten"]


class MaxPoolLayer(Layer):
    """A local k×k max pool (``nn.MaxPool2d(kernel, stride, padding)``, ResNet's stem): Ho = floor((H + 2p − k)
    / s) + 1, Wo likewise; no params, no MACs (FlopCounterMode counts none)."""

    kind: Literal["maxpool"]
    kernel: PositiveInt = 3
    stride: PositiveInt | None = Field(None, description="default: kernel")
    padding: NonNegativeInt = Field(0, description="zero padding on each side (at most kernel // 2, as torch)")

    @model_validator(mode="after")
    def _pad_at_most_half(self) -> MaxPoolLayer:
        if 2 * self.padding > self.kernel:
            raise ValueError(f"padding {self.padding} is more than half the kernel {self.kernel} (torch refuses it)")
        if self.stride is None:  # torch's default: the kernel (the network walk reads every layer's stride)
            object.__setattr__(self, "stride", self.kernel)
        return self
