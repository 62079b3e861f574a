"""Layer models of attention blocks: timm's MobileAttention (MobileNetV4-Hybrid), with multi-query attention
(MultiQueryAttention2d, optional key/value downsampling) or multi-head self-attention (Attention2d).
Registered with its block function in engine/kinds.py (block: engine/blocks_attention.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .fields import ChannelsField, Count, Kernel, Norm, Repeat, Residual, _odd_kernel
from .layers import Layer


class AttentionLayer(Layer):
    """timm's MobileAttention block: norm (no activation) → attention → [layer scale] (+ residual).

    Multi-query attention (``multi_query: true``, timm's MultiQueryAttention2d): query = 1×1 conv C → h·dk;
    key = [kv_kernel dw conv (kv_stride) → norm] → 1×1 conv C → dk; value = the same → dv (one key and one
    value head shared by the h query heads); o = softmax(q·kᵀ/√dk)·v over the L = H·W queries and the
    P = Hk·Wk keys; output = 1×1 conv h·dv → out_channels.

    Multi-head self-attention (``multi_query: false``, timm's Attention2d): qkv = 1×1 conv C → 3C, h heads of
    C/h channels each attend over all L positions, then a 1×1 conv C → out_channels.
    """

    kind: Literal["attention"]
    out_channels: ChannelsField
    heads: Count = Field(description="attention heads (query heads in multi-query attention)")
    key_dim: Count | None = Field(
        None, description="channels per query / key head (multi-query: required; MHSA: in_channels / heads)"
    )
    value_dim: Count | None = Field(None, description="channels of the value head (default: key_dim)")
    multi_query: bool = Field(True, description="multi-query attention (timm's mqa) or MHSA (timm's mha)")
    kv_stride: Count = Field(1, description="stride of the depthwise key/value downsampling conv (1: none)")
    kv_kernel: Kernel = Field(3, description="kernel of the key/value downsampling conv (timm's dw_kernel_size)")
    layer_scale: bool = Field(False, description="x · γ per channel before the residual (timm: 1e-5 init)")
    residual: Residual = Field("auto", description="auto = in == out (the block keeps H × W)")
    repeat: Repeat = Field(1, description="repeats (in = out after the first)")
    scale_depth: bool = Field(True, description="whether scaling.depth multiplies repeat (ceil(repeat × depth))")
    norm: Norm | None = Field(None, description="the pre-norm and the key/value norms; default: defaults.norm")
    bias: bool | None = Field(None, description="bias of the 1×1 projections; default: the spec's defaults.bias")

    _odd_kv = field_validator("kv_kernel")(_odd_kernel)

    @model_validator(mode="after")
    def _dims(self) -> AttentionLayer:
        if self.multi_query and self.key_dim is None:
            raise PydanticCustomError(
                "required",
                "key_dim is required with multi-query attention (channels per query / key head)",
                {"field": "key_dim"},
            )
        if not self.multi_query:
            for name in ("key_dim", "value_dim"):
                if getattr(self, name) is not None:
                    raise PydanticCustomError(
                        "unsupported",
                        "{name} is not taken by MHSA (multi_query: false), whose heads are in_channels / heads wide",
                        {"field": name, "name": name},
                    )
            if self.kv_stride != 1:
                raise PydanticCustomError(
                    "unsupported",
                    "kv_stride must be 1 with MHSA (multi_query: false): it has no key/value downsampling",
                    {"field": "kv_stride"},
                )
        return self

    def extra_settings(self) -> list[str]:
        """Heads, head width and key/value stride: ``mqa h4 d64 kv2 ls``."""
        out = ["mqa" if self.multi_query else "mhsa", f"h{self.heads}"]
        if self.key_dim is not None:
            out.append(f"d{self.key_dim}")
        if self.value_dim is not None and self.value_dim != self.key_dim:
            out.append(f"v{self.value_dim}")
        if self.kv_stride != 1:
            out.append(f"kv{self.kv_stride}")
        return out + (["ls"] if self.layer_scale else [])


ATTENTION_LAYERS = (AttentionLayer,)
"""The attention layer models, in the order docs/spec.md lists them."""
