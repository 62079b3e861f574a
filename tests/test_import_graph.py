"""The import's op-graph fallback (#22 items 2–3): a model the block kinds cannot say imports as ``kind: graph``
layers, exactly — params = ``sum(p.numel())``, buffers = ``sum(b.numel())``, MACs = ``FlopCounterMode`` total // 2
on the meta device, the forward's output shape — each expectation computed here from torch itself.

The hand-written model needs torch only; the timm / torchvision models are skipped without them (zoo env). The
whole timm sweep (tests/import_fixtures/timm_sweep.py) runs under ``-m slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import costmodel

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def torch_figures(model: Any, shape: tuple[int, int, int]) -> dict[str, Any]:
    """params, buffers, MACs (FlopCounterMode // 2 of one meta forward at batch 1) and output shape, from torch."""
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    meta = model.to("meta") if any(p.device.type != "meta" for p in model.parameters()) else model
    meta.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = meta(torch.empty((1, *shape), device="meta"))
    y = y[0] if isinstance(y, (tuple, list)) else y
    return {"params": params, "buffers": buffers, "macs": counter.get_total_flops() // 2, "output": tuple(y.shape[1:])}


def spec_figures(spec: Any) -> dict[str, Any]:
    r = costmodel.analyze(spec)
    return {k: r.totals[k] for k in ("params", "buffers", "macs")} | {"output": tuple(r.output)}


class Block(nn.Module):
    """A pre-norm MLP block with two skips: x + fc2(gelu(fc1(norm(x)))) + norm(x)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 2 * d)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(2 * d, d)

    def forward(self, x: Any) -> Any:
        h = self.norm(x)
        return x + self.fc2(self.act(self.fc1(h))) + h


class Toy(nn.Module):
    """A residual DAG, a class token, a position table, an unread parameter, a tied weight and a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, stride=4)
        self.bn = nn.BatchNorm2d(16)
        self.cls = nn.Parameter(torch.zeros(1, 1, 16))
        self.pos = nn.Parameter(torch.zeros(1, 65, 16))
        self.blocks = nn.Sequential(*[Block(16) for _ in range(3)])
        self.unused = nn.Parameter(torch.zeros(7))
        self.head = nn.Linear(16, 16)
        self.out = nn.Linear(16, 16)
        self.out.weight = self.head.weight  # tied: one tensor, counted once by torch
        self.register_buffer("scale", torch.ones(16))

    def forward(self, x: Any) -> Any:
        x = self.bn(self.stem(x)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.blocks(x)
        return self.out(self.head(x[:, 0])) * self.scale


def _graph_layers(spec: Any) -> list[Any]:
    return [layer for layer in spec.layers if layer.kind == "graph"]


def test_hand_written_dag_is_exact() -> None:
    model = Toy()
    want = torch_figures(Toy(), (3, 32, 32))
    # by hand: conv 3·16·16 + 16, bn 32, cls 16, pos 65·16, 3 blocks of (32 + 16·32+32 + 32·16+16), the tied
    # head/out weight once 16·16, biases 16 + 16, the unread 7
    block = 32 + (16 * 32 + 32) + (32 * 16 + 16)
    assert want["params"] == 768 + 16 + 32 + 16 + 65 * 16 + 3 * block + 256 + 32 + 7
    spec = costmodel.from_torch(model, (3, 32, 32))
    report = costmodel.import_report(spec)
    assert report.exact, report.warnings()
    assert spec_figures(spec) == want
    layers = _graph_layers(spec)
    assert layers and len(layers) == len(spec.layers)
    blocks = [layer for layer in layers if layer.name == "blocks"]
    assert len(blocks) == 1 and blocks[0].repeat == 3
    nodes = [n for layer in layers for n in layer.nodes]
    assert [n.shape for n in nodes if n.op == "param" and n.unread] == [[7]]  # the unread parameter, once
    assert [n.shape for n in nodes if n.op == "param" and not n.unread] == [[1, 1, 16], [1, 65, 16], [16, 16]]
    tied = [n for n in nodes if n.op == "linear" and n.inputs and len(n.inputs) == 2]
    assert len(tied) == 2 and all(n.bias for n in tied)  # head and out read the one weight, own their biases
    assert [n.shape for n in nodes if n.op == "buffer"] == [[16]]
    bn = [n for n in nodes if n.op == "batch_norm"]
    assert len(bn) == 1 and bn[0].get("tracked") is True  # num_batches_tracked counted on the node


def test_yaml_round_trip_keeps_the_figures(tmp_path: Path) -> None:
    from costmodel.importers.core import to_yaml

    spec = costmodel.from_torch(Toy(), (3, 32, 32))
    path = tmp_path / "toy.yaml"
    path.write_text(to_yaml(spec))
    assert spec_figures(costmodel.load(path)) == torch_figures(Toy(), (3, 32, 32))


def test_exact_block_models_stay_block_kinds() -> None:
    """A model the block kinds say exactly keeps its block-kind spec (no graph layer)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    spec = costmodel.from_torch(model, (3, 16, 16))
    assert costmodel.import_report(spec).exact
    assert not _graph_layers(spec)


class TwoHeads(nn.Module):
    """crossvit's ending: two heads stacked and averaged (torch.stack(…).mean(0): the batch is dim 1 there)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(12, 5)
        self.b = nn.Linear(12, 5)

    def forward(self, x: Any) -> Any:
        x = x.flatten(1)
        return torch.stack([self.a(x), self.b(x)]).mean(0)


def test_stacked_heads_averaged_over_the_stack_are_exact() -> None:
    want = torch_figures(TwoHeads(), (3, 2, 2))
    assert want["macs"] == 2 * 12 * 5  # by hand: two 12→5 linears
    spec = costmodel.from_torch(TwoHeads(), (3, 2, 2))
    assert costmodel.import_report(spec).exact
    assert spec_figures(spec) == want
    assert (
        costmodel.analyze(spec.model_copy(update={"input": spec.input.model_copy(update={"batch": 3})})).totals["macs"]
        == 3 * 2 * 12 * 5
    )  # at batch 3: three samples' worth


class Fails(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 1), Nonzero())

    def forward(self, x: Any) -> Any:
        return self.body(x)


class Nonzero(nn.Module):
    def forward(self, x: Any) -> Any:
        return x[torch.nonzero(x > 0, as_tuple=True)]  # data-dependent: no meta kernel can size it


def test_untraceable_is_named_with_its_module_path() -> None:
    with pytest.raises(costmodel.UsageError, match=r"at body\.1"):
        costmodel.from_torch(Fails(), (3, 8, 8))


# ---------------------------------------------------------------------------------------------- timm models

#: one or two of each family the block kinds cannot say (ViT, ResNet, ConvNeXt, Swin, DeiT, Mixer, EfficientViT,
#: RegNetY, ECA, CoaT, LeViT, MobileViT, FastViT, MaxViT)
TIMM = [
    "vit_tiny_patch16_224",
    "convnext_atto",
    "swin_tiny_patch4_window7_224",
    "deit_tiny_patch16_224",
    "mixer_s16_224",
    "efficientvit_b0",
    "regnety_002",
    "eca_resnet33ts",
    "coat_lite_tiny",
    "levit_128s",
    "mobilevit_xxs",
    "fastvit_t8",
    "maxvit_nano_rw_256",
]


@pytest.fixture(scope="module")
def timm() -> Any:
    return pytest.importorskip("timm")


def _timm_model(timm: Any, name: str) -> tuple[Any, tuple[int, int, int]]:
    model = timm.create_model(name, pretrained=False, device="meta")
    return model, tuple(model.pretrained_cfg["input_size"])


@pytest.mark.timm
@pytest.mark.parametrize("name", TIMM)
def test_timm_model_is_exact(timm: Any, name: str) -> None:
    model, shape = _timm_model(timm, name)
    want = torch_figures(model, shape)
    spec = costmodel.import_model(f"timm:{name}")  # exact or ImportFailure
    assert spec_figures(spec) == want


@pytest.mark.torchvision
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnet_is_exact(name: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None)
    spec = costmodel.import_model(f"torchvision:{name}")
    assert spec_figures(spec) == torch_figures(model, (3, 224, 224))


@pytest.mark.timm
def test_vit_base_holds_its_block_once(timm: Any, tmp_path: Path) -> None:
    """vit_base_patch16_224's spec writes its transformer block once, with repeat: 12; ``costmodel table`` reads
    the YAML without torch."""
    path = tmp_path / "vit.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "costmodel", "import", "timm:vit_base_patch16_224", "--out", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    spec = costmodel.load(path)
    blocks = [layer for layer in spec.layers if layer.name == "blocks"]
    assert len(blocks) == 1 and blocks[0].repeat == 12
    assert sum(1 for n in blocks[0].nodes if n.op == "linear") == 4  # qkv, proj, fc1, fc2: once
    model, shape = _timm_model(timm, "vit_base_patch16_224")
    want = torch_figures(model, shape)
    assert spec_figures(spec) == want
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch fails
        "from costmodel.cli import main\n"
        f"sys.exit(main(['table', {str(path)!r}, '--format', 'json']))"
    )
    table = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert table.returncode == 0, table.stderr
    totals = json.loads(table.stdout)["totals"]
    assert (totals["params"], totals["macs"]) == (want["params"], want["macs"])


@pytest.mark.timm
def test_block_family_model_stays_blocks(timm: Any) -> None:
    spec = costmodel.import_model("timm:efficientnet_b0")
    assert {layer.kind for layer in spec.layers} & {"mbconv", "dwsep"}
    assert not _graph_layers(spec)


@pytest.mark.slow
@pytest.mark.timm
def test_timm_sweep(timm: Any, tmp_path: Path) -> None:
    """Every timm.list_models() architecture: none over-counted (the sweep writes docs/zoo.md's table)."""
    out = tmp_path / "sweep.jsonl"
    subprocess.run(
        [sys.executable, str(ROOT / "tests" / "import_fixtures" / "timm_sweep.py"), str(out), "--workers", "2"],
        check=True,
        cwd=ROOT,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(timm.list_models())
    assert not [r["model"] for r in rows if r.get("over")]
