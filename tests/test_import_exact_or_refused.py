"""An imported figure is exact or refused, never silently wrong (issue #22's "never invents, never silently
partial" slice): a spec never counts more than the model has; a spec that is not exact is refused (exit
status 2, nothing on stdout; ``ImportFailure`` from the API) unless ``--partial`` / ``partial=True``; a
parameter read by any traced op counts as read; ResNet's basic and bottleneck blocks import as those kinds.

Expectations are torch's own: ``sum(p.numel())``, ``sum(b.numel())``, ``FlopCounterMode`` total // 2 and the
forward pass's output shape on the meta device.
"""

from __future__ import annotations

import os
import sys

import pytest

import costmodel
from costmodel.cli import main

USER = '''
import torch
from torch import nn


class TokenNet(nn.Module):
    """A conv stem, a token-mixing block the spec cannot say (N×C tokens), a mean over tokens, a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)  # B × N × 8 tokens
        a = torch.softmax(x @ x.transpose(1, 2), dim=-1)
        x = x + self.mix(a @ x)
        return self.head(x.mean(1))


class RelBias(nn.Module):
    """A conv whose output gets a bias gathered from a relative-position table (Swin's trick, on channels)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.table = nn.Parameter(torch.zeros(7, 4))
        self.register_buffer("index", torch.tensor([0, 3, 6, 2]), persistent=False)

    def forward(self, x):
        bias = self.table[self.index].sum(0)  # reads the table by index: no activation involved
        return self.conv(x) + bias.view(1, 4, 1, 1)


def token_net():
    return TokenNet()


def exact_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())


def rel_bias():
    return RelBias()
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    name = f"exactmods_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(USER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    yield name
    sys.modules.pop(name, None)


def _cli(capsys, *args):
    status = main(list(args))
    cap = capsys.readouterr()
    return status, cap.out, cap.err


def _torch_figures(model, shape):
    import torch
    from torch.func import functional_call
    from torch.utils.flop_counter import FlopCounterMode

    subs = {n: torch.empty_like(t, device="meta") for n, t in [*model.named_parameters(), *model.named_buffers()]}
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = functional_call(model, subs, (torch.empty((1, *shape), device="meta"),))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "buffers": sum(b.numel() for b in model.buffers()),
        "macs": counter.get_total_flops() // 2,
        "output": tuple(y.shape[1:]),
    }


def _spec_figures(spec):
    r = costmodel.analyze(spec)
    return {k: r.totals[k] for k in ("params", "buffers", "macs")} | {"output": tuple(r.output)}


# ------------------------------------------------------------------------------ 1. never over-count


def test_a_head_after_an_unsaid_token_block_is_not_written_over_the_wrong_input(user, blocks_only):
    import importlib

    model = importlib.import_module(user).token_net()
    torch_ = _torch_figures(model, (3, 32, 32))
    spec = costmodel.import_model(f"{user}:token_net", (3, 32, 32), partial=True)
    got = _spec_figures(spec)
    # before: the head was written as a linear over the flattened 8×8×8 stem output, 512·10 + 10 = 5,130 params
    # against the model's 8·10 + 10 = 90 for it; now the spec stops at the stem, 3·16·8 + 8 = 392 params
    assert got["params"] == 3 * 16 * 8 + 8
    assert got["params"] <= torch_["params"] and got["macs"] <= torch_["macs"]
    kinds = [layer.kind for layer in spec.layers]
    assert "linear" not in kinds
    report = costmodel.import_report(spec)
    assert any(p.scope == "head" and "not counted" in p.message for p in report.problems)
    assert report.coverage("params") <= 1.0 and report.coverage("macs") <= 1.0


def test_over_counting_is_an_internal_error_never_a_figure(blocks_only):
    from costmodel.importers.core import ImportReport

    report = ImportReport("m", {"params": 10, "macs": 5}, {"params": 11, "macs": 5})
    assert report.coverage("params") > 1.0  # what build() refuses: see below
    pytest.importorskip("torch")
    from torch import nn

    from costmodel.importers import recognise

    real = recognise.recognise

    def doubled(nodes, output):  # a recogniser bug: every layer written twice
        rec = real(nodes, output)
        rec.layers = [*rec.layers, *[dict(x) for x in rec.layers]]
        return rec

    m = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU())
    import costmodel.importers.core as core

    old = core.recognise
    core.recognise = doubled
    try:
        with pytest.raises(costmodel.UsageError, match="internal error.*counts more params"):
            costmodel.from_torch(m, (3, 8, 8))
    finally:
        core.recognise = old


# ------------------------------------------------------------------------------ 2. never silently partial


def test_a_partial_import_is_refused_unless_partial(user, capsys, blocks_only):
    status, out, err = _cli(capsys, "import", f"{user}:token_net", "--input", "3x32x32")
    assert (status, out) == (2, ""), err
    last = err.strip().splitlines()[-1]
    assert last.startswith("costmodel: error: cannot import") and "first uncovered:" in last, err
    assert "covers" in last and "--partial" in last
    assert "costmodel: warning:" in err  # the warnings come first
    status, out, err = _cli(capsys, "import", f"{user}:token_net", "--input", "3x32x32", "--partial")
    assert status == 0 and out.startswith("#") and "layers:" in out
    assert err.strip().splitlines()[-1].startswith("costmodel: the spec covers")
    with pytest.raises(costmodel.UsageError, match="first uncovered: .*covers"):
        costmodel.import_model(f"{user}:token_net", (3, 32, 32))
    from costmodel.importers.recognise import ImportFailure

    with pytest.raises(ImportFailure):
        costmodel.import_model(f"{user}:token_net", (3, 32, 32))


def test_an_exact_import_needs_no_flag(user, capsys):
    import importlib

    status, out, err = _cli(capsys, "import", f"{user}:exact_net", "--input", "3x16x16")
    assert status == 0 and "layers:" in out, err
    spec = costmodel.import_model(f"{user}:exact_net", (3, 16, 16))
    assert _spec_figures(spec) == _torch_figures(importlib.import_module(user).exact_net(), (3, 16, 16))


# ------------------------------------------------------------------------------ 3. parameters the forward reads


def test_a_table_read_by_index_counts_as_read(user):
    spec = costmodel.import_model(f"{user}:rel_bias", (3, 8, 8), partial=True)
    report = costmodel.import_report(spec)
    # the table is read (gathered by index) though no activation flows into that op: it is not "never read"
    assert not any("never reads" in p.message for p in report.problems), report.problems


def test_a_parameter_nothing_reads_is_still_named(blocks_only):
    torch = pytest.importorskip("torch")
    from torch import nn

    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False))
    m.spare = nn.Parameter(torch.zeros(5))  # never read by the forward
    report = costmodel.import_report(costmodel.from_torch(m, (3, 8, 8)))
    assert any("never reads" in p.message and p.scope == "spare" for p in report.problems), report.problems


# ------------------------------------------------------------------------------ 4. ResNets: basic / bottleneck


def _resnet_like():
    """A torchvision-style ResNet: 7×7 stem, 3×3 max pool, a basic block with the identity, one with a 1×1
    projection shortcut (stride 2, width 8 → 16), then a bottleneck with a projection (16 → 32, stride 2)."""
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class Bottleneck(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            mid = cout // 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
            )  # fmt: skip
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.body(x) + self.downsample(x))

    return nn.Sequential(
        nn.Conv2d(3, 8, 7, 2, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        Basic(8, 8, 1),
        Basic(8, 16, 2),
        Bottleneck(16, 32, 2),
    )


def test_a_resnet_like_model_imports_exactly_as_basic_and_bottleneck():
    pytest.importorskip("torch")
    model = _resnet_like()
    for shape in ((3, 64, 64), (3, 57, 71)):
        spec = costmodel.from_torch(model, shape)
        report = costmodel.import_report(spec)
        assert report.exact and not report.problems, report.problems
        assert _spec_figures(spec) == _torch_figures(model, shape)
        assert [layer.kind for layer in spec.layers] == ["conv", "maxpool", "basic", "basic", "bottleneck"]
        assert [getattr(layer, "resnet", None) for layer in spec.layers[2:4]] == [True, True]
    # max pool by hand at 64×64: stem 32×32, pool floor((32 + 2 − 3)/2) + 1 = 16
    stem = costmodel.loads(
        "input: {channels: 3, height: 64, width: 64}\n"
        "layers:\n  - {kind: conv, out_channels: 8, kernel: 7, stride: 2}\n  - {kind: maxpool, stride: 2, padding: 1}\n"
    )
    assert tuple(costmodel.analyze(stem).output) == (8, 16, 16)


def test_basic_resnet_and_maxpool_agree_with_their_torch_builders():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from costmodel.torchref import build

    data = {
        "input": {"channels": 3, "height": 40, "width": 40},
        "layers": [
            {"kind": "conv", "out_channels": 8, "kernel": 7, "stride": 2},
            {"kind": "maxpool", "kernel": 3, "stride": 2, "padding": 1},
            {"kind": "basic", "out_channels": 8, "resnet": True},
            {"kind": "basic", "out_channels": 16, "stride": 2, "resnet": True},
            {"kind": "maxpool", "kernel": 2},  # stride: the kernel, as torch's default
        ],
    }
    spec = costmodel.NetworkSpec.model_validate(data)
    module, shape = build(spec)
    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = module(torch.zeros(shape))
    r = costmodel.analyze(spec)
    assert r.totals["params"] == sum(p.numel() for p in module.parameters())
    assert r.totals["macs"] == counter.get_total_flops() // 2
    assert tuple(r.output) == tuple(y.shape[1:])
    with pytest.raises(costmodel.SpecError, match="leave residual out"):
        costmodel.loads(
            "input: {channels: 3, height: 8, width: 8}\n"
            "layers:\n  - {kind: basic, out_channels: 3, resnet: true, residual: true}\n"
        )


@pytest.mark.torchvision
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnets_import_exactly(name):
    torchvision = pytest.importorskip("torchvision")
    spec = costmodel.import_model(f"torchvision:{name}")  # refused unless exact
    model = torchvision.models.get_model(name, weights=None)
    assert _spec_figures(spec) == _torch_figures(model, (3, 224, 224))
    kinds = {layer.kind for layer in spec.layers}
    assert kinds == {"conv", "maxpool", "basic" if name == "resnet18" else "bottleneck", "pool", "linear"}


@pytest.mark.timm
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_timm_resnets_import_exactly(name):
    timm = pytest.importorskip("timm")
    spec = costmodel.import_model(f"timm:{name}")
    model = timm.create_model(name, pretrained=False)
    assert _spec_figures(spec) == _torch_figures(model, (3, 224, 224))


@pytest.mark.timm
@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "xcit_nano_12_p8_384", "deit_tiny_patch16_224"])
def test_timm_transformers_are_never_over_counted(name, blocks_only):
    """The block kinds alone: a partial spec, never more than the model."""
    timm = pytest.importorskip("timm")
    with pytest.raises(costmodel.UsageError, match="first uncovered"):
        costmodel.import_model(f"timm:{name}")
    report = costmodel.import_report(costmodel.import_model(f"timm:{name}", partial=True))
    model = timm.create_model(name, pretrained=False)
    assert report.source["params"] == sum(p.numel() for p in model.parameters())
    # vit_tiny_patch16_224 was 37,780,648 spec params against the model's 5,717,416 (660.80%)
    assert report.spec["params"] <= report.source["params"] and report.spec["macs"] <= report.source["macs"]


@pytest.mark.timm
@pytest.mark.parametrize("name", ["xcit_nano_12_p8_384", "deit_tiny_patch16_224"])
def test_timm_transformers_import_exactly_as_op_graphs(name):
    """#22: with the op-graph fallback the same transformers are exact (params, MACs, output: torch's own)."""
    timm = pytest.importorskip("timm")
    spec = costmodel.import_model(f"timm:{name}")  # exact, or ImportFailure
    model = timm.create_model(name, pretrained=False)
    assert _spec_figures(spec) == _torch_figures(model, tuple(model.pretrained_cfg["input_size"]))


def test_with_the_op_graph_fallback_the_token_net_and_spare_parameter_are_exact(user):
    """#22: what the block kinds stop at imports as op graphs, exactly; an unread parameter is an ``unread`` node,
    named in the report's notes."""
    import importlib

    torch = pytest.importorskip("torch")
    from torch import nn

    model = importlib.import_module(user).token_net()
    spec = costmodel.import_model(f"{user}:token_net", (3, 32, 32))  # exact, or ImportFailure
    assert _spec_figures(spec) == _torch_figures(model, (3, 32, 32))
    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False))
    m.spare = nn.Parameter(torch.zeros(5))
    spec = costmodel.from_torch(m, (3, 8, 8))
    report = costmodel.import_report(spec)
    assert report.exact and report.spec["params"] == 4 * 27 + 5
    assert any("never reads" in n and "spare" in n for n in report.notes), report.notes


def test_a_graph_spec_counting_more_than_the_model_is_an_internal_error(monkeypatch):
    pytest.importorskip("torch")
    from torch import nn

    from costmodel.importers import graph

    real = graph.import_graph

    def doubled(module, input):  # an importer bug: the second conv (3→3, layer "2") written twice
        g = real(module, input)
        g.layers = [*g.layers[:3], {**g.layers[2], "name": "again"}, *g.layers[3:]]
        return g

    monkeypatch.setattr(graph, "import_graph", doubled)
    m = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.GELU(), nn.Conv2d(3, 3, 3, padding=1), nn.Mish())
    with pytest.raises(costmodel.UsageError, match="internal error.*counts more params"):
        costmodel.from_torch(m, (3, 8, 8))


@pytest.fixture
def blocks_only(monkeypatch):
    """The block recogniser alone, without the op-graph fallback (#22): what it says and names by itself."""
    importer = pytest.importorskip("costmodel.importers.torch")
    monkeypatch.setattr(importer, "GRAPH_FALLBACK", False)
