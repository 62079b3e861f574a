"""Re-parameterisable convs and RepGhostNet's blocks (spec/layers_rep.py), registered in engine/kinds.py.

A re-parameterisable conv trains as parallel branches on one input, summed: b k×k conv → norm branches, an
optional 1×1 conv → norm "scale" branch and an optional norm "identity" branch. Every branch is linear, so for
deployment they fuse into one k×k conv with a bias (timm's ``reparameterize_model``): that is ``form: deployed``.
GhostNetV3 uses them inside the ghost kinds (engine/blocks_zoo.py); RepGhostNet's module is its own kind.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import SpecError
from . import ops
from .blocks import BlockArgs, Flow, conv_unit, se_unit
from .symbols import Num, value


def need_batchnorm(a: BlockArgs, field: str) -> None:
    """Refuse re-parameterisable branches without BatchNorm (the branches fuse BN into the conv)."""
    if a.norm != "batchnorm":
        raise SpecError(
            f"re-parameterised branches need norm: batchnorm (they fuse BatchNorm into the conv), got {a.norm}",
            (*a.path, field),
        )


def branch_sum(f: Flow, stage: str, terms: list[int], n: Num) -> int:
    """Sum the branch outputs ``terms`` (same shape) pairwise, left to right: len(terms) − 1 adds, each
    FLOPs = N·C·H·W, no params or MACs (FlopCounterMode counts none)."""
    acc = terms[0]
    for t in terms[1:]:
        acc = f.add(stage, ops.add(f.shape(acc), n, "branch sum"), (acc, t))
    return acc


def rep_conv_unit(
    f: Flow,
    a: BlockArgs,
    stage: str,
    src: int,
    out_channels: Num,
    kernel: Num,
    stride: Num = 1,
    groups: Num = 1,
    *,
    branches: int,
    scale: bool,
    identity: bool,
    act: bool,
    form: str,
) -> int:
    """A re-parameterisable conv on tensor ``src`` (→ act if ``act``).

    training: ``branches`` k×k convs (stride, groups g) → norm, [a 1×1 conv (stride, groups g) → norm], [a norm on
    ``src`` itself, needs Cin = Cout and stride 1], summed, then act. params = b·(Cout·(Cin/g)·k² + 2Cout) +
    [Cout·Cin/g + 2Cout] + [2Cout]; buffers 2Cout + 1 per norm; MACs = N·Ho·Wo·Cout·(Cin/g)·(b·k² + [1]).

    deployed: one k×k conv (stride, groups g) with bias, no norm, then act: params = Cout·(Cin/g)·k² + Cout; MACs =
    N·Ho·Wo·Cout·(Cin/g)·k² — what timm's ``reparameterize`` leaves.
    """
    if form == "deployed":
        fused = dataclasses.replace(a, bias=True, norm="none")
        return conv_unit(f, fused, stage, out_channels, kernel, stride, groups, act, src)
    plain = dataclasses.replace(a, bias=False)
    terms = [conv_unit(f, plain, stage, out_channels, kernel, stride, groups, False, src) for _ in range(branches)]
    if scale:
        terms.append(conv_unit(f, plain, stage, out_channels, 1, stride, groups, False, src))
    if identity:
        terms.append(f.add(stage, ops.norm(a.norm, f.shape(src), a.n), (src,)))
    out = branch_sum(f, stage, terms, a.n)
    if act and a.activation != "none":
        out = f.add(stage, ops.activation(f.shape(out), a.n, a.activation))
    return out


def repghost_unit(f: Flow, a: BlockArgs, stage: str, layer: Any, out_channels: Num, stride: Num, act: bool) -> int:
    """RepGhost module on the latest tensor: primary k×k conv (stride) Cin → C → norm → act = x1; cheap
    d×d depthwise conv C → C → norm on x1, [+ norm(x1), the identity branch, with ``reparam``] → act.

    training: params = C·Cin·k² + C·d² + 4C (+ 2C); MACs = N·Ho·Wo·C·(Cin·k² + d²). deployed (with ``reparam``): the
    cheap conv and its norms are one d×d depthwise conv with bias: params C·Cin·k² + 2C + C·d² + C, same MACs.
    """
    need_batchnorm(a, "form")
    a = dataclasses.replace(a, library="torch")  # timm builds it from nn.Conv2d, nn.BatchNorm2d, nn.ReLU
    k = value(layer.kernel) if layer.kind == "repghost" else 1
    x1 = conv_unit(f, a, stage, out_channels, k, stride, act=act)
    d = value(layer.dw_kernel)
    if layer.form == "deployed" and layer.reparam:
        fused = dataclasses.replace(a, bias=True, norm="none")
        return conv_unit(f, fused, stage, out_channels, d, 1, out_channels, act, x1)
    cheap = conv_unit(f, a, stage, out_channels, d, 1, out_channels, False, x1)
    out = cheap
    if layer.reparam:
        out = branch_sum(f, stage, [cheap, f.add(stage, ops.norm(a.norm, f.shape(x1), a.n), (x1,))], a.n)
    if act and a.activation != "none":
        out = f.add(stage, ops.activation(f.shape(out), a.n, a.activation))
    return out


def repghost(layer: Any, a: BlockArgs) -> Flow:
    """A RepGhost module (see :func:`repghost_unit`) as a layer."""
    f = Flow(a.inp)
    repghost_unit(f, a, "repghost", layer, value(layer.out_channels), a.stride, layer.activation_cheap)
    return f


def repghost_bottleneck(layer: Any, a: BlockArgs) -> Flow:
    """RepGhostNet bottleneck: repghost to M (act) → [k×k dw (stride) → norm] → [SE] → repghost to Cout (no
    act) → + shortcut (identity, or k×k dw (stride) → norm → 1×1 Cin → Cout → norm).

    MACs = N·(H·W·M·(Cin + d²) + Ho·Wo·(M·k² [stride > 1] + Cout·(M + d²))) + SE + shortcut; see
    :func:`repghost_unit` for the modules' params in each form.
    """
    f = Flow(a.inp)
    cin = a.inp[0]
    mid = value(layer.mid_channels)
    cout = value(layer.out_channels)
    k = value(layer.kernel)
    if not isinstance(a.stride, int):
        raise SpecError("repghost_bottleneck needs a numeric stride", (*a.path, "stride"))
    strided = a.stride != 1
    nn = dataclasses.replace(a, library="torch")  # conv_dw + bn_dw and the shortcut: nn.Conv2d, nn.BatchNorm2d
    repghost_unit(f, a, "ghost1", layer, mid, 1, True)
    if strided:
        conv_unit(f, nn, "depthwise", mid, k, a.stride, groups=mid, act=False)
    if layer.has_se:
        se_unit(f, a, layer, cin)
    main = repghost_unit(f, a, "ghost2", layer, cout, 1, False)
    return ghost_shortcut_add(f, a, main, cin, cout, k)


def ghost_shortcut_add(f: Flow, a: BlockArgs, main: int, cin: Num, cout: Num, k: Num) -> Flow:
    """GhostNet's residual, shared by ghost_bottleneck and repghost_bottleneck: F(x) + shortcut(x), where the
    shortcut is the identity when the block keeps its shape, else k×k dw conv (stride s) → norm → 1×1 conv
    to Cout → norm on the block input (torch.nn classes in timm): params Cin·k² + Cin·Cout + 2·(Cin + Cout)."""
    if a.stride != 1 or cin != cout:
        nn = dataclasses.replace(a, library="torch")
        conv_unit(f, nn, "shortcut", cin, k, a.stride, groups=cin, act=False, src=0)
        short = conv_unit(f, nn, "shortcut", cout, 1, act=False)
    else:
        short = 0
    f.add("residual", ops.add(f.shape(main), a.n, "F(x) + shortcut"), (main, short))
    return f
