"""The spec's ``drop_path`` (stochastic depth): training memory only, by hand arithmetic.

Three dwsep blocks 8 → 8 with residuals (the blocks 0, 1, 2), batch 2, float32: in train mode a block with p > 0
saves its N × 1 × 1 × 1 noise, 2 × 4 = 8 bytes. Linear (p_i = rate × i / 3): blocks 1 and 2, 16 bytes; constant:
all three, 24 bytes. The torch side (saved_tensors_hooks on torchvision's and timm's models) is in
tests/test_import_training.py.
"""

from __future__ import annotations

from typing import Any

import pytest

import costmodel


def _spec(drop_path: dict[str, Any] | None) -> costmodel.NetworkSpec:
    data: dict[str, Any] = {
        "input": {"channels": 8, "height": 8, "width": 8, "batch": 2},
        "layers": [{"kind": "dwsep", "out_channels": 8, "residual": "auto", "repeat": 3}],
    }
    if drop_path is not None:
        data["drop_path"] = drop_path
    return costmodel.NetworkSpec.model_validate(data)


def _saved(drop_path: dict[str, Any] | None) -> int:
    return int(costmodel.train(_spec(drop_path)).totals["saved_bytes"])


@pytest.mark.parametrize(
    ("drop_path", "extra"),
    [
        ({"rate": 0.2}, 2 * 2 * 4),
        ({"rate": 0.2, "schedule": "linear"}, 2 * 2 * 4),
        ({"rate": 0.2, "schedule": "constant"}, 3 * 2 * 4),
        ({"rate": 0.0}, 0),
    ],
)
def test_saved_bytes(drop_path, extra):
    assert _saved(drop_path) - _saved(None) == extra


def test_inference_unchanged():
    assert costmodel.analyze(_spec({"rate": 0.5})).totals == costmodel.analyze(_spec(None)).totals


@pytest.mark.parametrize("bad", [{"rate": 1.0}, {"rate": -0.1}, {"rate": 0.1, "schedule": "cosine"}, {}])
def test_refused(bad):
    with pytest.raises(ValueError):
        _spec(bad)
