"""A new kind is one module: MobileNeXt's sandglass block (Zhou et al. 2020), declared entirely here — its spec
model, block function, torch builder and import matcher — and registered once. It is then analysed, built by
torchref, measured by torch, and imported back from that module to the same spec.

Sandglass: k×k depthwise + act (on the input) → 1×1 linear reduce to in/reduction → 1×1 expand to out + act →
k×k depthwise linear (the stride) → (+ input where the shape is kept).
"""

from __future__ import annotations

from typing import Any, Literal

import pytest

import costmodel
from costmodel.engine.blocks import BlockArgs, Flow, conv_unit, residual
from costmodel.engine.kinds import KINDS, Matcher, missing_parts
from costmodel.engine.symbols import value
from costmodel.spec.fields import Residual
from costmodel.spec.layers import ConvLike

torch = pytest.importorskip("torch")


class SandglassLayer(ConvLike):
    """MobileNeXt's sandglass block (a toy kind of this test module)."""

    kind: Literal["toy_sandglass"]
    reduction: int = 4
    residual: Residual = "auto"


def sandglass(layer: Any, a: BlockArgs) -> Flow:
    """dw k×k + act → 1×1 reduce → 1×1 expand + act → dw k×k (stride) → [+ input]."""
    f = Flow(a.inp)
    cin, cout, k = a.inp[0], value(layer.out_channels), value(layer.kernel)
    conv_unit(f, a, "dw1", cin, k, groups=cin)
    conv_unit(f, a, "reduce", cin // layer.reduction, 1, act=False)
    conv_unit(f, a, "expand", cout, 1)
    conv_unit(f, a, "dw2", cout, k, a.stride, groups=cout, act=False)
    residual(f, a, layer.residual)
    return f


def build_sandglass(layer: Any, cfg: Any, cin: int, stride: int) -> tuple[Any, int]:
    """The torch module, from the spec rules with torchref's conv-norm-act."""
    from costmodel.torchref import Block, _residual, conv_bn_act

    cout, k, mid = layer.out_channels, layer.kernel, cin // layer.reduction
    body = torch.nn.Sequential(
        conv_bn_act(cfg, cin, cin, k, 1, cin),
        conv_bn_act(cfg, cin, mid, 1, act=False),
        conv_bn_act(cfg, mid, cout, 1),
        conv_bn_act(cfg, cout, cout, k, stride, cout, act=False),
    )
    return Block(body, _residual(layer.residual, stride, cin, cout)), cout


def match_sandglass(units: list[Any], is_residual: bool) -> dict[str, Any] | None:
    """Four conv units: dw + act, 1×1 linear, 1×1 + act, dw linear of the first's kernel."""
    from costmodel.importers.recognise import Fit

    if len(units) != 4:
        return None
    f = Fit()
    dw1 = f.conv(units[0], act=True, depthwise=True, stride1=True)
    red = f.conv(units[1], act=False, kernel1=True, depthwise=False, stride1=True)
    f.conv(units[2], act=True, kernel1=True, depthwise=False, stride1=True)
    dw2 = f.conv(units[3], act=False, depthwise=True)
    if not f.ok or dw1.conv.attrs["kernel"] != dw2.conv.attrs["kernel"]:
        return None
    cin, mid = dw1.conv.shape[1], red.conv.shape[1]
    if cin % mid:
        return None
    return {
        "kind": "toy_sandglass",
        "kernel": dw2.conv.attrs["kernel"],
        "stride": dw2.conv.attrs["stride"],
        "reduction": cin // mid,
        "out_channels": dw2.conv.shape[1],
        **f.fields(),
        "residual": is_residual,
    }


if "toy_sandglass" not in KINDS:  # registered once per session
    costmodel.register(
        SandglassLayer,
        sandglass,
        torch=build_sandglass,
        matchers=(Matcher(match_sandglass, "chain", 25),),
    )

SPEC = """\
input: {channels: 16, height: 15, width: 14}
defaults: {activation: relu6}
layers:
  - {kind: toy_sandglass, out_channels: 16, kernel: 3}
  - {kind: toy_sandglass, out_channels: 24, kernel: 5, stride: 2, reduction: 2}
  - {kind: pool}
"""


def test_the_toy_kind_is_complete():
    assert missing_parts(KINDS["toy_sandglass"]) == []


def test_the_toy_kind_is_analysed_and_agrees_with_torch():
    from costmodel.torchref import measure

    spec = costmodel.loads(SPEC)
    r = costmodel.analyze(spec)
    # block 1 (16 → 16, k3, mid 4, residual): dw 16·9 + BN 32; reduce 4·16 + BN 8; expand 16·4 + BN 32;
    # dw 16·9 + BN 32 → 144 + 32 + 64 + 8 + 64 + 32 + 144 + 32 = 520
    # block 2 (16 → 24, k5 s2, mid 8): dw 16·25 + 32; 8·16 + 16; 24·8 + 48; 24·25 + 48 → 432 + 144 + 240 + 648 = 1464
    assert r.totals["params"] == 520 + 1464
    theirs = measure(spec)
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"], tuple(r.output)) == (
        theirs["params"],
        theirs["buffers"],
        theirs["macs"],
        theirs["output"],
    )
    assert [b.kind for b in r.blocks][:2] == ["toy_sandglass", "toy_sandglass"]


def test_the_toy_kind_imports_back_exactly():
    from costmodel.torchref import build

    spec = costmodel.loads(SPEC)
    module, shape = build(spec)
    back = costmodel.from_torch(module, shape[1:])
    assert costmodel.import_report(back).exact
    assert [layer.kind for layer in back.layers] == ["toy_sandglass", "toy_sandglass", "pool"]
    first, second = back.layers[0], back.layers[1]
    assert (first.out_channels, first.kernel, first.reduction) == (16, 3, 4)
    assert (second.out_channels, second.kernel, second.stride, second.reduction) == (24, 5, 2, 2)
    ours, again = costmodel.analyze(spec), costmodel.analyze(back)
    assert (ours.totals["params"], ours.totals["macs"], ours.output) == (
        again.totals["params"],
        again.totals["macs"],
        again.output,
    )
