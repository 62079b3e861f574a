"""Imported specs keep the layers that cost nothing at inference but change training memory (dropout, with p).

The expectation is the real model's training step, measured as tests/test_training.py measures it: the bytes
of the distinct non-parameter storages ``saved_tensors_hooks`` packs during ``model(x)`` in train mode on CPU
(float32), never the spec's own figures computed another way. The spec is imported from the same model (on the
meta device, as ``costmodel import`` does) at the same size, and ``costmodel.train`` analyses it at the same batch.
"""

from __future__ import annotations

from typing import Any

import pytest

import costmodel
from conftest import saved_storages

torch = pytest.importorskip("torch")

SIZE = (3, 64, 64)  # small, to keep the real training step cheap on the shared CPU
BATCH = 2  # BatchNorm in train mode needs more than one value per channel after the last stride


def saved_bytes(model: Any, shape: tuple[int, int, int] = SIZE, batch: int = BATCH) -> int:
    """The bytes autograd saves in ``model(x)`` (train mode, float32, CPU): distinct storages, parameters excluded."""
    torch.manual_seed(0)
    model.train()
    x = torch.randn(batch, *shape)
    with saved_storages(model) as storages:
        model(x)
    return sum(storages.values())


def imported_saved(build: Any, shape: tuple[int, int, int] = SIZE, batch: int = BATCH) -> tuple[Any, int]:
    """The spec imported from ``build()`` (meta device) and ``costmodel.train``'s saved bytes for it."""
    with torch.device("meta"):
        meta = build()
    spec = costmodel.from_torch(meta, shape)
    report = costmodel.import_report(spec)
    assert report.exact, report.warnings()
    return spec, costmodel.train(spec, batch=batch).totals["saved_bytes"]


def _check(build: Any) -> costmodel.NetworkSpec:
    spec, ours = imported_saved(build)
    assert ours == saved_bytes(build())
    return spec


def test_hand_built_net_with_dropout():
    """The user's own net (tests/import_fixtures/custom_mbconv.py): Linear → Hardswish → Dropout(0.3) → Linear."""
    from tests.import_fixtures.custom_mbconv import build

    spec = _check(build)
    drops = [(layer.name, layer.p) for layer in spec.layers if layer.kind == "dropout"]
    assert drops == [("fc.2", 0.3)]
    kinds = [layer.kind for layer in spec.layers[-3:]]
    assert kinds == ["linear", "dropout", "linear"]


def test_functional_dropout_and_dropout_at_zero():
    """``F.dropout`` in a forward (as timm's head calls it) is a dropout layer too; ``nn.Dropout(0)`` is none."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.zero = nn.Dropout(0.0)
            self.fc = nn.Linear(8, 4)

        def forward(self, x: Any) -> Any:
            x = self.zero(self.conv(x)).mean((2, 3))
            return self.fc(nn.functional.dropout(x, p=0.25, training=self.training))

    spec = _check(Net)
    assert [(layer.kind, getattr(layer, "p", None)) for layer in spec.layers[-2:]] == [
        ("dropout", 0.25),
        ("linear", None),
    ]


def test_dropout_inside_a_block_is_named(blocks_only):
    """A dropout between two ops of one layer cannot be said: the import names it (not exact)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1, bias=False)
            self.drop = nn.Dropout(0.1)
            self.b = nn.BatchNorm2d(8)

        def forward(self, x: Any) -> Any:
            return self.b(self.drop(self.a(x)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Block()

        def forward(self, x: Any) -> Any:
            return self.block(x)

    spec = costmodel.from_torch(Net(), (3, 8, 8))
    report = costmodel.import_report(spec)
    assert not report.exact
    assert any("dropout(p=0.1) inside the layer" in str(p) for p in report.problems)


TORCHVISION = [
    ("mobilenet_v2", {}),
    ("mobilenet_v3_small", {}),
    ("mobilenet_v3_large", {}),
    ("mnasnet0_5", {}),
    ("mnasnet1_0", {}),
    ("efficientnet_b0", {"stochastic_depth_prob": 0.0}),  # stochastic depth: see the next test
]


@pytest.mark.torchvision
@pytest.mark.parametrize(("name", "kwargs"), TORCHVISION)
def test_torchvision_training_saved_bytes(name, kwargs):
    tv = pytest.importorskip("torchvision")
    spec = _check(lambda: tv.models.get_model(name, weights=None, **kwargs))
    assert any(layer.kind == "dropout" for layer in spec.layers)


def _without_drop_path(spec: Any) -> Any:
    return costmodel.NetworkSpec.model_validate({**spec.model_dump(exclude_none=True), "drop_path": None})


@pytest.mark.torchvision
def test_stochastic_depth_is_drop_path():
    """torchvision's EfficientNet keeps StochasticDepth (p = 0.2 × i / 16 in block i): the import writes
    ``drop_path: {rate: 0.2, schedule: linear}``, and the saved bytes equal torch's, which hold one N-element noise
    per residual block more than the same spec without it (B0: 16 blocks, 7 stages, so 9 residual blocks, none the
    first: 9 × N × 4 bytes)."""
    tv = pytest.importorskip("torchvision")
    spec = _check(lambda: tv.models.get_model("efficientnet_b0", weights=None))
    assert spec.drop_path is not None
    assert (spec.drop_path.rate, spec.drop_path.schedule) == (0.2, "linear")
    report = costmodel.import_report(spec)
    assert not any(n.startswith("stochastic depth") for n in report.notes)
    with_it = costmodel.train(spec, batch=BATCH).totals["saved_bytes"]
    without = costmodel.train(_without_drop_path(spec), batch=BATCH).totals["saved_bytes"]
    assert with_it - without == 9 * BATCH * 4
    assert costmodel.analyze(spec).totals == costmodel.analyze(_without_drop_path(spec)).totals  # inference
    from costmodel.importers.core import to_yaml

    assert "drop_path: {rate: 0.2, schedule: linear}" in to_yaml(spec)  # what `costmodel import` writes
    assert costmodel.train(costmodel.loads(to_yaml(spec)), batch=BATCH).totals["saved_bytes"] == with_it


@pytest.mark.timm
@pytest.mark.parametrize(
    ("name", "rate"),
    [("efficientnet_b0", 0.2), ("mobilenetv3_large_100", 0.2 * 15 / 16), ("mobilenetv2_100", 0.1)],
)
def test_timm_drop_path(name, rate):
    """timm's DropPath (p = drop_path_rate × i / block_count): the spec's rate is fitted to its own blocks
    (MobileNetV3's last ConvBnAct is a timm block but a spec conv: 15 blocks where timm counts 16, so the rate is
    0.2 × 15 / 16 and every block's p is timm's); saved bytes equal torch's."""
    timm = pytest.importorskip("timm")
    spec = _check(lambda: timm.create_model(name, pretrained=False, drop_path_rate=rate if rate == 0.1 else 0.2))
    assert spec.drop_path is not None
    assert spec.drop_path.rate == pytest.approx(rate, rel=1e-12)
    assert spec.drop_path.schedule == "linear"


def test_unfitted_stochastic_depth_is_noted(blocks_only):
    """A stochastic depth whose p's follow no schedule the spec can say (here p 0.3 in the second of two blocks
    and 0.1 in the third) stays a note; the spec has no drop_path."""
    nn = torch.nn

    class DropPath(nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.drop_prob = p

        def forward(self, x: Any) -> Any:
            return x

    class Res(nn.Module):
        def __init__(self, p: float) -> None:
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.act = nn.ReLU()
            self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(8)
            self.drop_path = DropPath(p)

        def forward(self, x: Any) -> Any:
            return x + self.drop_path(self.bn2(self.conv2(self.act(self.bn(self.conv(x))))))

    net = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), Res(0.0), Res(0.3), Res(0.1))
    spec = costmodel.from_torch(net, (3, 8, 8))
    assert spec.drop_path is None
    notes = costmodel.import_report(spec).notes
    assert any(n.startswith("stochastic depth (DropPath) in 2 block(s)") for n in notes), notes


TIMM = ["efficientnet_b0", "mobilenetv2_100", "mobilenetv3_large_100", "efficientnet_lite0", "mnasnet_100"]


@pytest.mark.timm
@pytest.mark.parametrize("name", TIMM)
def test_timm_training_saved_bytes(name):
    """timm's head calls ``F.dropout(x, drop_rate)`` (no module) when built with drop_rate > 0."""
    timm = pytest.importorskip("timm")
    spec = _check(lambda: timm.create_model(name, pretrained=False, drop_rate=0.2))
    assert [layer.p for layer in spec.layers if layer.kind == "dropout"] == [0.2]


@pytest.fixture
def blocks_only(monkeypatch):
    """The block recogniser alone, without the op-graph fallback (#22): what it says and names by itself."""
    importer = pytest.importorskip("costmodel.importers.torch")
    monkeypatch.setattr(importer, "GRAPH_FALLBACK", False)
