"""Every figure in the seed documents (../shared/seeds), pinned with the hand arithmetic beside it."""

from __future__ import annotations

import pytest

import costmodel
from conftest import SPECS


def totals(name: str, **values: int) -> dict:
    return costmodel.analyze(SPECS / name, **values).totals


def test_seed_mbconv_no_bias_no_bn():
    r = costmodel.analyze(SPECS / "seed_mbconv.yaml")
    by_stage = {s: v["params"] for s, v in r.by_stage().items()}
    assert by_stage["expansion"] == 4 * 24 * 1 * 1 == 96
    assert by_stage["depthwise"] == 24 * 3 * 3 == 216
    assert by_stage["projection"] == 24 * 4 * 1 * 1 == 96
    assert r.totals["params"] == 96 + 216 + 96 == 408
    # each weight is used once per output position: 8·8 positions
    assert r.totals["macs"] == 8 * 8 * 408 == 26_112
    assert r.output == (4, 8, 8)
    assert by_stage["residual"] == 0


def test_seed_mbconv_with_torch_default_bias():
    # the seed's PyTorch code uses nn.Conv2d's default bias=True: + 24 + 24 + 4
    assert totals("seed_mbconv_bias.yaml")["params"] == 408 + 24 + 24 + 4 == 460
    assert totals("seed_mbconv_bias.yaml")["macs"] == 26_112  # bias adds are not MACs


def test_notebook_mbconv_with_bn():
    # 16·96 + 2·96 (BN) + 96·9 + 2·96 (BN) + 96·16 + 2·16 (BN)
    assert totals("seed_mbconv_bn.yaml")["params"] == 1536 + 192 + 864 + 192 + 1536 + 32 == 4352


def test_notebook_two_conv_block():
    # two 3×3 16→16 convs (2304 weights each) and two BN(16) (32 each)
    assert totals("seed_two_conv.yaml")["params"] == 2 * (16 * 16 * 9 + 2 * 16) == 4672


def test_seed_depthwise_separable():
    assert totals("seed_dwsep.yaml")["params"] == 3 * 3 * 4 + 1 * 1 * 4 * 4 == 52


def test_symbolic_mbconv_binds_to_seed():
    t = totals("symbolic_mbconv.yaml", C=4, t=6, k=3, H=8, W=8)
    assert (t["params"], t["macs"]) == (408, 26_112)


@pytest.mark.parametrize(
    "name",
    [
        "seed_mbconv.yaml",
        "seed_mbconv_bias.yaml",
        "seed_mbconv_bn.yaml",
        "seed_two_conv.yaml",
        "seed_dwsep.yaml",
    ],
)
def test_seed_specs_match_torch(name):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    spec = costmodel.load(SPECS / name)
    r = costmodel.analyze(spec)
    m = measure(spec)
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"], r.output) == (
        m["params"],
        m["buffers"],
        m["macs"],
        m["output"],
    )
