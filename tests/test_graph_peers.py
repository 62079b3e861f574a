"""Graph layers under each tool's convention, against the real tools (issue #22 item 6).

Each case is a small torch module built from the classes the eight reference models use (torch.nn's and timm's),
and a graph spec written by hand beside it, with the layer's ``classes`` and the nodes' ``call`` the importer is
to fill. ``costmodel table --convention TOOL`` on the spec must equal TOOL on the module exactly: fvcore, ptflops,
thop and torchinfo, and FlopCounterMode on the meta device for ``torch``. Optional: skipped without timm and the
four tools (the [zoo] extra).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import pytest

import costmodel
from costmodel.errors import UsageError

pytestmark = [pytest.mark.peers, pytest.mark.timm]
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
fvcore_nn = pytest.importorskip("fvcore.nn")
ptflops = pytest.importorskip("ptflops")
thop = pytest.importorskip("thop")
torchinfo = pytest.importorskip("torchinfo")

nn = torch.nn
F = torch.nn.functional
TOOLS = ("torch", "fvcore", "ptflops", "thop", "torchinfo")


def tools(model: Any, x: Any) -> dict[str, int]:
    """What each tool counts for ``model(x)`` (eval mode)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    model.eval()
    out: dict[str, int] = {}
    with torch.no_grad():
        meta = copy.deepcopy(model).to("meta")
        counter = FlopCounterMode(display=False)
        with counter:
            meta(x.to("meta"))
        out["torch"] = counter.get_total_flops() // 2
    analysis = fvcore_nn.FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    out["fvcore"] = int(analysis.total())
    with contextlib.redirect_stdout(io.StringIO()):
        macs, _ = ptflops.get_model_complexity_info(
            Wrap(model), tuple(x.shape[1:]), input_constructor=lambda _: {"x": x}, as_strings=False,
            print_per_layer_stat=False, verbose=False,
        )  # fmt: skip
        out["ptflops"] = int(macs)
        macs, _ = thop.profile(model, inputs=(x,), verbose=False)
        out["thop"] = int(macs)
    out["torchinfo"] = torchinfo.summary(model, input_data=[x], verbose=0).total_mult_adds
    logging.disable(logging.NOTSET)
    return out


class Wrap(nn.Module):  # type: ignore[misc]
    """ptflops hands the input as the keyword ``x``; the wrapper is no hooked class, so it changes no count."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Any) -> Any:
        return self.inner(x)


def spec_macs(tmp_path: Path, text: str) -> dict[str, int]:
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    return {t: costmodel.count(path, t).totals["macs"] for t in TOOLS}


# ------------------------------------------------------------------------------------------ ViT blocks

VIT = """
name: vit-blocks
input: {channels: 197, height: 1, width: 384, batch: 2}
layers:
  - kind: graph
    name: blocks
    repeat: 2
    classes:
      "": timm.models.vision_transformer.Block
      norm1: timm.layers.norm.LayerNorm
      attn: timm.layers.attention.Attention
      attn.qkv: torch.nn.modules.linear.Linear
      attn.proj: torch.nn.modules.linear.Linear
      norm2: torch.nn.modules.normalization.LayerNorm
      mlp: timm.layers.mlp.Mlp
      mlp.fc1: torch.nn.modules.linear.Linear
      mlp.act: torch.nn.modules.activation.GELU
      mlp.fc2: torch.nn.modules.linear.Linear
    nodes:
      - {id: x, op: reshape, shape: [1, 197, 384]}
      - {op: layer_norm, module: norm1}
      - {op: linear, out: 1152, bias: true, module: attn.qkv}
      - {op: reshape, shape: [1, 197, 3, 6, 64], module: attn}
      - {id: p, op: permute, dims: [0, 2, 3, 1, 4], module: attn}
      - {id: q, op: select, dim: 1, index: 0, inputs: [p], module: attn}
      - {id: k, op: select, dim: 1, index: 1, inputs: [p], module: attn}
      - {id: v, op: select, dim: 1, index: 2, inputs: [p], module: attn}
      - {op: sdpa, inputs: [q, k, v], module: attn}
      - {op: transpose, dims: [1, 2], module: attn}
      - {op: reshape, shape: [1, 197, 384], module: attn}
      - {id: proj, op: linear, out: 384, bias: true, module: attn.proj}
      - {id: x1, op: add, inputs: [x, proj], call: operator.add}
      - {op: layer_norm, module: norm2}
      - {op: linear, out: 1536, bias: true, module: mlp.fc1}
      - {op: gelu, module: mlp.act, call: torch.nn.functional.gelu}
      - {id: fc2, op: linear, out: 384, bias: true, module: mlp.fc2}
      - {op: add, inputs: [x1, fc2], call: operator.add}
      - {op: reshape, shape: [1, 197, 1, 384]}
"""


def test_vit_blocks(tmp_path: Path) -> None:
    """timm's ViT Block twice (one norm2 an nn.LayerNorm, to tell the classes apart): ptflops hooks timm's
    Attention and so drops its qkv and proj nn.Linear; torchinfo counts a token linear N × params."""
    from timm.models.vision_transformer import Block

    class Blocks(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(Block(384, 6, qkv_bias=True), Block(384, 6, qkv_bias=True))
            for b in self.blocks:
                b.norm2 = nn.LayerNorm(384)

        def forward(self, x: Any) -> Any:
            return self.blocks(x)

    want = tools(Blocks(), torch.randn(2, 197, 384))
    got = spec_macs(tmp_path, VIT)
    assert got == want
    assert want["torchinfo"] == 2 * 2 * (443_520 + 147_840 + 591_360 + 590_208 + 2 * 768)  # N × params, by hand


# ----------------------------------------------------------------------------- a ResNet stem and head

RESNET = """
name: resnet-bits
input: {channels: 3, height: 16, width: 16, batch: 2}
layers:
  - kind: graph
    classes:
      conv1: torch.nn.modules.conv.Conv2d
      bn1: torch.nn.modules.batchnorm.BatchNorm2d
      act1: torch.nn.modules.activation.ReLU
      maxpool: torch.nn.modules.pooling.MaxPool2d
      conv2: torch.nn.modules.conv.Conv2d
      pool: torch.nn.modules.pooling.AdaptiveAvgPool2d
      fc: torch.nn.modules.linear.Linear
    nodes:
      - {op: conv, out: 8, kernel: 3, stride: 2, padding: 1, module: conv1}
      - {op: batch_norm, module: bn1}
      - {op: relu, module: act1, call: torch.nn.functional.relu}
      - {id: m, op: max_pool, kernel: 3, stride: 2, padding: 1, module: maxpool, call: torch.nn.functional.max_pool2d}
      - {id: c2, op: conv, out: 8, kernel: 3, padding: 1, bias: true, module: conv2}
      - {op: add, inputs: [c2, m], call: torch.add}
      - {op: adaptive_avg_pool, size: [1, 1], module: pool, call: torch.nn.functional.adaptive_avg_pool2d}
      - {op: flatten, dim: [1, 3]}
      - {op: linear, out: 10, bias: true, module: fc}
"""


def test_resnet_stem_and_head(tmp_path: Path) -> None:
    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.act1 = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x: Any) -> Any:
            m = self.maxpool(self.act1(self.bn1(self.conv1(x))))
            return self.fc(self.pool(torch.add(self.conv2(m), m)).flatten(1))

    want = tools(Net(), torch.randn(2, 3, 16, 16))
    assert spec_macs(tmp_path, RESNET) == want
    # the importer traces F.adaptive_avg_pool2d(x, 1) as a mean: with its call, every tool counts the pool
    mean = "{op: mean, dim: [2, 3], keepdim: true, module: pool, call: torch.nn.functional.adaptive_avg_pool2d}"
    assert spec_macs(tmp_path, RESNET.replace(RESNET.splitlines()[-3].strip()[2:], mean)) == want


# ------------------------------------------------------------------------------------ a ConvNeXt block

CONVNEXT = """
name: convnext-block
input: {channels: 16, height: 8, width: 8, batch: 2}
layers:
  - kind: graph
    classes:
      conv_dw: torch.nn.modules.conv.Conv2d
      norm: timm.layers.norm.LayerNorm
      mlp: timm.layers.mlp.Mlp
      mlp.fc1: torch.nn.modules.linear.Linear
      mlp.act: timm.layers.activations.GELU
      mlp.fc2: torch.nn.modules.linear.Linear
    nodes:
      - {op: conv, out: 16, kernel: 7, padding: 3, groups: 16, bias: true, module: conv_dw}
      - {op: permute, dims: [0, 2, 3, 1]}
      - {op: layer_norm, module: norm}
      - {op: linear, out: 64, bias: true, module: mlp.fc1}
      - {op: gelu, module: mlp.act, call: torch.nn.functional.gelu}
      - {id: y, op: linear, out: 16, bias: true, module: mlp.fc2}
      - {id: gamma, op: param, shape: [16]}
      - {op: mul, inputs: [y, gamma], call: torch.Tensor.mul}
      - {id: p2, op: permute, dims: [0, 3, 1, 2]}
      - {op: add, inputs: [in, p2], call: operator.add}
"""


def test_convnext_block(tmp_path: Path) -> None:
    """timm's LayerNorm and GELU are no hooked class (subclass / own class): ptflops counts the GELU once, through
    F.gelu, and the layer scale through Tensor.mul; thop neither; torchinfo the LayerNorm leaf N × 2C."""
    from timm.layers import LayerNorm, Mlp
    from timm.layers.activations import GELU

    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv_dw = nn.Conv2d(16, 16, 7, padding=3, groups=16)
            self.norm = LayerNorm(16)
            self.mlp = Mlp(16, 64, act_layer=GELU)
            self.gamma = nn.Parameter(torch.ones(16))

        def forward(self, x: Any) -> Any:
            y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1))).mul(self.gamma)
            return x + y.permute(0, 3, 1, 2)

    assert spec_macs(tmp_path, CONVNEXT) == tools(Net(), torch.randn(2, 16, 8, 8))


# --------------------------------------------------------------------------- Swin's window attention

SWIN = """
name: window-attention
input: {channels: 16, height: 1, width: 32, batch: 2}
layers:
  - kind: graph
    classes:
      qkv: torch.nn.modules.linear.Linear
      softmax: torch.nn.modules.activation.Softmax
      proj: torch.nn.modules.linear.Linear
    nodes:
      - {op: reshape, shape: [1, 16, 32]}
      - {op: linear, out: 96, bias: true, module: qkv}
      - {op: reshape, shape: [1, 16, 3, 2, 16]}
      - {id: p, op: permute, dims: [0, 2, 3, 1, 4]}
      - {id: q, op: select, dim: 1, index: 0, inputs: [p]}
      - {id: k, op: select, dim: 1, index: 1, inputs: [p]}
      - {id: v, op: select, dim: 1, index: 2, inputs: [p]}
      - {id: qs, op: mul, inputs: [q], call: operator.mul}
      - {id: kt, op: transpose, dims: [-2, -1], inputs: [k]}
      - {id: logits, op: matmul, inputs: [qs, kt], call: operator.matmul}
      - {id: table, op: param, shape: [2, 16, 16]}
      - {id: bias, op: reshape, shape: [1, 2, 16, 16], inputs: [table]}
      - {op: add, inputs: [logits, bias], call: operator.add}
      - {id: attn, op: softmax, dim: -1, module: softmax, call: torch.nn.functional.softmax}
      - {op: matmul, inputs: [attn, v], call: operator.matmul}
      - {op: transpose, dims: [1, 2]}
      - {op: reshape, shape: [1, 16, 32]}
      - {op: linear, out: 32, bias: true, module: proj}
"""


def test_window_attention(tmp_path: Path) -> None:
    """Swin's WindowAttention as timm 1.0.31 runs it unfused: q @ kᵀ and attn @ v (the @ operator: ptflops counts
    neither, fvcore both as aten::matmul), nn.Softmax (thop's count_softmax; ptflops's patched F.softmax)."""

    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(32, 96)
            self.softmax = nn.Softmax(-1)
            self.proj = nn.Linear(32, 32)
            self.table = nn.Parameter(torch.zeros(2, 16, 16))

        def forward(self, x: Any) -> Any:
            b, n, c = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, 2, 16).permute(2, 0, 3, 1, 4).unbind(0)
            attn = self.softmax((q * 0.25) @ k.transpose(-2, -1) + self.table.unsqueeze(0))
            return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))

    assert spec_macs(tmp_path, SWIN) == tools(Net(), torch.randn(2, 16, 32))


# ------------------------------------------------------------------- EfficientViT's linear attention

EFFVIT = """
name: lite-attention
input: {channels: 8, height: 4, width: 4, batch: 2}
layers:
  - kind: graph
    classes:
      "": tests.Net
      conv: torch.nn.modules.conv.Conv2d
      bn: torch.nn.modules.batchnorm.BatchNorm2d
      act: torch.nn.modules.activation.Hardswish
      proj: torch.nn.modules.conv.Conv2d
      up: torch.nn.modules.upsampling.Upsample
    nodes:
      - {op: conv, out: 24, kernel: 1, module: conv}
      - {op: batch_norm, module: bn}
      - {op: hardswish, module: act, call: torch.nn.functional.hardswish}
      - {id: r, op: reshape, shape: [1, 3, 8, 16]}
      - {id: q0, op: select, dim: 1, index: 0, inputs: [r]}
      - {id: k0, op: select, dim: 1, index: 1, inputs: [r]}
      - {id: v, op: select, dim: 1, index: 2, inputs: [r]}
      - {id: q, op: relu, inputs: [q0], call: torch.nn.functional.relu}
      - {id: k, op: relu, inputs: [k0], call: torch.nn.functional.relu}
      - {id: vt, op: transpose, dims: [-1, -2], inputs: [v]}
      - {id: kv, op: matmul, inputs: [k, vt], call: torch.Tensor.matmul}
      - {id: qt, op: transpose, dims: [-1, -2], inputs: [q]}
      - {op: matmul, inputs: [qt, kv], call: torch.Tensor.matmul}
      - {op: transpose, dims: [-1, -2]}
      - {op: reshape, shape: [1, 8, 4, 4]}
      - {id: pr, op: conv, out: 8, kernel: 1, bias: true, module: proj}
      - {op: add, inputs: [pr, in], call: torch.add}
      - {op: interpolate, size: [8, 8], mode: bilinear, module: up, call: torch.nn.functional.interpolate}
"""


def test_linear_attention(tmp_path: Path) -> None:
    """EfficientViT's LiteMLA pattern: F.relu and Tensor.matmul (patched in ptflops), nn.Hardswish (counted by no
    tool), nn.Upsample bilinear (ptflops twice, thop 11 per output, fvcore 4)."""

    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(8, 24, 1, bias=False)
            self.bn = nn.BatchNorm2d(24)
            self.act = nn.Hardswish()
            self.proj = nn.Conv2d(8, 8, 1)
            self.up = nn.Upsample(size=(8, 8), mode="bilinear")

        def forward(self, x: Any) -> Any:
            b = x.shape[0]
            q, k, v = self.act(self.bn(self.conv(x))).reshape(b, 3, 8, 16).unbind(1)
            q, k = F.relu(q), F.relu(k)
            out = q.transpose(-1, -2).matmul(k.matmul(v.transpose(-1, -2)))
            return self.up(torch.add(self.proj(out.transpose(-1, -2).reshape(b, 8, 4, 4)), x))

    assert spec_macs(tmp_path, EFFVIT) == tools(Net(), torch.randn(2, 8, 4, 4))


# ------------------------------------------------------------------------------------------- refusals


def test_refused_without_what_the_tool_sees(tmp_path: Path) -> None:
    """Without ``classes`` a per-module tool refuses the node by name (never a silent 0); without ``call`` ptflops
    refuses an op it counts by how it was called; fvcore and torch need neither."""
    path = tmp_path / "bare.yaml"
    path.write_text(
        "input: {channels: 4, height: 2, width: 2}\nlayers:\n  - kind: graph\n    nodes:\n"
        "      - {id: c, op: conv, out: 4, kernel: 1}\n      - {op: relu, module: act}\n"
    )
    for tool in ("thop", "torchinfo", "ptflops"):
        with pytest.raises(UsageError, match=rf"--convention {tool}: node 'c' \(conv\) of layer 0: .*classes"):
            costmodel.count(path, tool)
    path.write_text(path.read_text().replace("kind: graph\n", "kind: graph\n    classes: {'': M, act: X}\n"))
    with pytest.raises(UsageError, match=r"--convention ptflops: a node \(relu\) of layer 0 \(act\): .*`call`"):
        costmodel.count(path, "ptflops")
    assert costmodel.count(path, "fvcore").totals["macs"] == 4 * 4 * 4  # the conv's MACs, 1×1 4→4 at 2×2


# ------------------------------------------------------------------------------- the reference models

REFERENCE = (
    "resnet50",
    "convnext_tiny",
    "vit_small_patch16_224",
    "deit_tiny_patch16_224",
    "regnety_016",
    "mixer_b16_224",
    "efficientvit_b0",
    "swin_tiny_patch4_window7_224",
)
#: (model, tool) pairs the imported spec refuses (one line naming the node and the op the tool cannot count):
#: none — every tool is exact on the eight models since the importer records `classes`, `call` and `sdpa`.
REFUSED: frozenset[tuple[str, str]] = frozenset()


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCE)
def test_reference_models(name: str, tmp_path: Path) -> None:
    """issue #22's eight models: imported as graph layers (costmodel.importers.graph, the graph importer, which
    records each layer's module ``classes``, the ``call`` of each op a tool counts by how it was called, and
    ``sdpa``), each preset equals its tool run on the real model (CPU, batch 1) — or, for the pairs in
    :data:`REFUSED`, refuses one node by name — never another number."""
    import yaml

    graph = pytest.importorskip("costmodel.importers.graph")
    model = timm.create_model(name, pretrained=False).eval()
    size = tuple(model.pretrained_cfg["input_size"])
    want = tools(model, torch.randn(1, *size))
    layers = graph.import_graph(model, size).layers
    assert all(layer.get("classes") for layer in layers)
    path = tmp_path / "spec.yaml"
    spec = {"input": {"channels": size[0], "height": size[1], "width": size[2]}, "layers": layers}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    got: dict[str, int | str] = {}
    for tool in TOOLS:
        try:
            got[tool] = costmodel.count(path, tool).totals["macs"]
        except UsageError as err:
            assert str(err).startswith(f"--convention {tool}: ") and "\n" not in str(err)
            got[tool] = "refused"
    assert got == {t: "refused" if (name, t) in REFUSED else want[t] for t in TOOLS}
