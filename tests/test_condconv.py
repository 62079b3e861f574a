"""The condconv kind (timm's CondConvResidual): hand arithmetic, then against torch (costmodel.torchref.measure:
params, buffers, FlopCounterMode / 2, output shape) and against timm's own CondConvResidual module."""

from __future__ import annotations

from typing import Any

import pytest

import costmodel
from conftest import totals


def spec(layer: dict[str, Any], c: int = 16, h: int = 9, w: int | None = None, act: str = "relu",
         bias: bool = False) -> costmodel.NetworkSpec:  # fmt: skip
    return costmodel.NetworkSpec.model_validate(
        {
            "name": "t",
            "input": {"channels": c, "height": h, "width": h if w is None else w},
            "defaults": {"activation": act, "norm": "batchnorm", "bias": bias},
            "layers": [layer],
        }
    )


def test_condconv_by_hand():
    # 16×9×9, E = 4 experts, expansion 2 → M = 32, 3×3 dw stride 2 → 5×5, projection → 24, no SE, no residual.
    s = spec({"kind": "condconv", "experts": 4, "expansion": 2, "stride": 2, "out_channels": 24})
    routing = 16 * 4 + 4  # linear 16 → 4 with bias
    w = 16 * 32 + 32 * 9 + 32 * 24  # one expert's weights: 512 + 288 + 768 = 1568
    bn = 2 * 32 + 2 * 32 + 2 * 24
    bn_buf = (2 * 32 + 1) * 2 + 2 * 24 + 1
    macs = 16 * 4 + 4 * w + 81 * 512 + 25 * 288 + 25 * 768  # routing + expert mixing + convs
    assert totals(s) == (routing + 4 * w + bn, bn_buf, macs, (24, 5, 5))


def test_condconv_refuses_group_size():
    with pytest.raises(Exception, match="group_size|not supported"):
        spec({"kind": "condconv", "experts": 4, "expansion": 2, "out_channels": 24, "group_size": 4})


CASES = {
    "plain": {"kind": "condconv", "experts": 4, "expansion": 6, "kernel": 3, "out_channels": 16},
    "se": {"kind": "condconv", "experts": 8, "expansion": 6, "kernel": 5, "out_channels": 24, "se": 0.25},
    "e1": {"kind": "condconv", "experts": 3, "expansion": 1, "kernel": 3, "out_channels": 16},
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [7, 10])
@pytest.mark.parametrize("bias", [False, True])
def test_condconv_matches_torch(case, stride, size, bias):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    layer = dict(CASES[case]) | {"stride": stride}
    s = spec(layer, c=16, h=size, w=size + 2, bias=bias)
    m = measure(s)
    assert m["macs_exact_half"]
    assert totals(s) == (m["params"], m["buffers"], m["macs"], m["output"])


@pytest.mark.timm
@pytest.mark.parametrize(("cin", "cout", "k", "stride", "experts", "h"), [(40, 48, 5, 2, 4, 15), (24, 24, 3, 1, 8, 11)])
def test_condconv_matches_timm(cin, cout, k, stride, experts, h):
    pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    from functools import partial

    from timm.models._efficientnet_blocks import CondConvResidual
    from timm.models._efficientnet_blocks import SqueezeExcite as SE
    from torch.utils.flop_counter import FlopCounterMode

    blk = CondConvResidual(cin, cout, dw_kernel_size=k, stride=stride, exp_ratio=6.0, num_experts=experts,
                           act_layer=torch.nn.SiLU, se_layer=partial(SE, rd_ratio=0.25 / 6)).eval()  # fmt: skip
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = blk(torch.zeros(1, cin, h, h))
    theirs = (sum(p.numel() for p in blk.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:]))
    layer = {"kind": "condconv", "experts": experts, "expansion": 6, "kernel": k, "stride": stride,
             "out_channels": cout, "se": 0.25}  # fmt: skip
    r = costmodel.analyze(spec(layer, c=cin, h=h, act="silu"))
    assert (r.totals["params"], r.totals["macs"], r.output) == theirs
