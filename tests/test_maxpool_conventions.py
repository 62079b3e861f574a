"""The local max pool (ResNet's stem) under each peer convention, against the real tools on a hand-built
torch module: ptflops counts it twice (its nn.MaxPool2d hook and the patched F.max_pool2d, input elements
each); thop, torchinfo and fvcore count nothing for it."""

from __future__ import annotations

import copy

import pytest

import costmodel

torch = pytest.importorskip("torch")

SPEC = """
name: stem
input: {channels: 3, height: 32, width: 32}
layers:
  - {kind: conv, kernel: 7, stride: 2, padding: 3, out_channels: 8, activation: relu}
  - {kind: maxpool, kernel: 3, stride: 2, padding: 1}
"""


def _module():  # type: ignore[no-untyped-def]
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
    ).eval()


def _ours(convention: str) -> int:
    return int(costmodel.count(costmodel.loads(SPEC), convention).totals["macs"])


def test_ptflops_counts_the_max_pool_twice():
    ptflops = pytest.importorskip("ptflops")
    real, _ = ptflops.get_model_complexity_info(
        _module(), (3, 32, 32), as_strings=False, print_per_layer_stat=False, backend="pytorch"
    )
    # by hand: conv 16·16·3·49·8 = 301,056; BN 2·8·16·16 = 4,096; ReLU twice 2·2,048 = 4,096;
    # max pool twice its input 2·2,048 = 4,096 → 313,344
    assert real == 313_344
    assert _ours("ptflops") == real


def test_thop_and_torchinfo_count_no_max_pool():
    thop = pytest.importorskip("thop")
    torchinfo = pytest.importorskip("torchinfo")
    x = torch.randn(1, 3, 32, 32)
    assert _ours("thop") == int(thop.profile(copy.deepcopy(_module()), (x,), verbose=False)[0])
    assert _ours("torchinfo") == torchinfo.summary(_module(), (1, 3, 32, 32), verbose=0).total_mult_adds
