"""Block function of PP-LCNetV2's kind (spec/layers_lcnet.py): timm's RepDepthwiseSeparable.

Returns a :class:`~costmodel.engine.blocks.Flow` like the built-in blocks; registered in engine/kinds.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import SpecError
from . import ops
from .blocks import BlockArgs, Flow, _need, conv_unit, residual, se_unit
from .symbols import Num, equal, value


def rep_branch_kernels(kernel: int, stride_one: bool) -> list[int]:
    """The kernels of the training form's parallel depthwise branches: k, k − 2, …, 1, without the 1×1 when
    the stride is not 1 (timm: ``range(k, 0, -2)``, "a 1x1 branch cannot be folded into a strided conv")."""
    return [k for k in range(kernel, 0, -2) if stride_one or k != 1]


def rep_depthwise(f: Flow, a: BlockArgs, layer: Any) -> int:
    """The re-parameterisable depthwise conv on the block input, C = Cin channels, Ho×Wo after the stride s.

    training: branches kᵢ ∈ :func:`rep_branch_kernels` of dw conv (no bias unless the layer's bias) → norm,
    each reading the input, summed left to right (len − 1 adds), then the activation:
    params = Σᵢ C·kᵢ² + norms (BatchNorm: 2C each, buffers 2C + 1 each); MACs = N·Ho·Wo·C·Σᵢ kᵢ².
    All branches pad kᵢ // 2, so every one gives the same Ho = floor((H − 1)/s) + 1.

    deployed: one k×k dw conv with bias, no norm, then the activation (timm's reparameterize(): each branch's
    kernel · γ/σ zero-padded to k×k and summed, bias Σ β − μ·γ/σ): params = C·k² + C; MACs = N·Ho·Wo·C·k².
    """
    cin = a.inp[0]
    if layer.form == "deployed":
        fused = replace(a, bias=True, norm="none")
        return conv_unit(f, fused, "depthwise", cin, value(layer.kernel), a.stride, groups=cin)
    k = layer.kernel
    if not isinstance(k, int):
        raise SpecError("the training form's branches need a numeric kernel (or form: deployed)", (*a.path, "kernel"))
    stride_one = _need(equal(a.stride, 1), a.path, "stride", f"stride {a.stride} is 1 (the 1×1 branch)")
    kernels = rep_branch_kernels(k, stride_one)
    if not kernels:
        raise SpecError("kernel 1 at a stride ≠ 1 leaves no branch (timm drops the strided 1×1)", (*a.path, "kernel"))
    branches = [conv_unit(f, a, "depthwise", cin, ki, a.stride, groups=cin, act=False, src=0) for ki in kernels]
    out = branches[0]
    for b in branches[1:]:
        out = f.add("depthwise", ops.add(f.shape(b), a.n, "branch sum"), (out, b))
    if a.activation != "none":
        f.add("depthwise", ops.activation(f.output, a.n, a.activation))
    return f.last


def rep_dwsep(layer: Any, a: BlockArgs) -> Flow:
    """RepDepthwiseSeparable: :func:`rep_depthwise` (stride) → [SE on Cin] → 1×1 to Cout → norm → act, or with
    ``mid_channels`` M: 1×1 to M → norm → act → 1×1 to Cout → norm → act → [+ input].

    Pointwise MACs = N·Ho·Wo·Cin·Cout, or N·Ho·Wo·(Cin·M + M·Cout) split; SE as in MBConv (on Cin).
    """
    f = Flow(a.inp)
    cin: Num = a.inp[0]
    rep_depthwise(f, a, layer)
    if layer.has_se:
        se_unit(f, a, layer, cin)
    if layer.mid_channels is not None:
        conv_unit(f, a, "pointwise", value(layer.mid_channels), 1)
    conv_unit(f, a, "pointwise", value(layer.out_channels), 1)
    residual(f, a, layer.residual)
    return f
