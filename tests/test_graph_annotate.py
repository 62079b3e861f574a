"""The graph importer records what the counting tools see (costmodel/importers/graph_annotate.py): each layer's
module ``classes``, each tool-relevant node's ``call``, SDPA as one ``sdpa`` node, a split-off linear bias back on
its linear — and the import stays exact (params, buffers, FlopCounterMode // 2 on the meta device, output shape)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from costmodel.engine.walk import analyze_spec  # noqa: E402
from costmodel.importers.graph import graph_spec, import_graph  # noqa: E402
from costmodel.importers.graph_annotate import OPERATOR_METHODS  # noqa: E402

F = nn.functional


def meta_macs(model: nn.Module, size: tuple[int, ...]) -> int:
    """FlopCounterMode's total // 2 of one forward on the meta device (batch 1): torch's own count."""
    meta = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta(torch.empty((1, *size), device="meta"))
    return int(counter.get_total_flops()) // 2


def exact(model: nn.Module, size: tuple[int, int, int]) -> Any:
    """The imported spec's totals equal torch's: params, buffers, MACs, output shape."""
    spec = graph_spec(model, size, name="m", origin="test", input_from="test")
    r: Any = analyze_spec(spec)
    assert r.totals["params"] == sum(p.numel() for p in model.parameters())
    assert r.totals["buffers"] == sum(b.numel() for b in model.buffers())
    assert r.totals["macs"] == meta_macs(model, size)
    with torch.no_grad():
        assert tuple(r.output) == tuple(model.eval()(torch.zeros(1, *size)).shape[1:])
    return spec


def nodes(model: nn.Module, size: tuple[int, int, int]) -> list[dict[str, Any]]:
    return [n for layer in import_graph(model, size).layers for n in layer["nodes"]]


class Calls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.GELU()

    def forward(self, x: Any) -> Any:
        y = x + x
        y = y.add(x)
        y = torch.add(y, x)
        y = y * 2
        y = y.mul(x)
        y = self.act(y)
        y = F.relu(y)
        y = y.relu()
        y = y @ y
        y = torch.matmul(y, y)
        y += x
        y = sum([y, x])
        return F.adaptive_avg_pool2d(y, 1)


def test_calls_tell_operators_from_methods_and_functions() -> None:
    """``x + y`` is ``operator.add`` and ``x.add(y)`` ``torch.Tensor.add`` although TorchFunctionMode sees the
        same ``Tensor.add`` for both; ``nn.GELU`` runs ``F.gelu``; ``F.adaptive_avg_pool2d(x, 1)`` traced as a mean
        keeps its call; in place ``+=`` is ``operator.iadd``; an add the calling code does not say (builtin ``sum``)
    has no call (ptflops then refuses it)."""
    skip = ("reshape", "param", "expand")
    got = [(n["op"], n.get("call")) for n in nodes(Calls(), (2, 4, 4)) if n["op"] not in skip]
    assert got == [
        ("add", "operator.add"),
        ("add", "torch.Tensor.add"),
        ("add", "torch.add"),
        ("mul", "operator.mul"),
        ("mul", "torch.Tensor.mul"),
        ("gelu", "torch.nn.functional.gelu"),
        ("relu", "torch.nn.functional.relu"),
        ("relu", "torch.Tensor.relu"),
        ("bmm", "operator.matmul"),  # 4-D @ 4-D: traced as expand + bmm
        ("bmm", "torch.matmul"),
        ("add", "operator.iadd"),
        ("add", None),  # sum([y, x]): 0 + y, then + x, reached from a call that names no add: not told
        ("add", None),
        ("mean", "torch.nn.functional.adaptive_avg_pool2d"),
    ]


class Attention(nn.Module):
    def __init__(self, mask: str = "") -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)
        self.mask = mask

    def forward(self, x: Any) -> Any:
        b, c, n = x.shape[0], x.shape[1], x.shape[2] * x.shape[3]
        t = x.flatten(2).transpose(1, 2).reshape(b, n, c)  # contiguous: the linear is addmm on every torch
        q, k, v = self.qkv(t).reshape(b, n, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
        if self.mask == "bool":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(n, n, dtype=torch.bool, device=x.device))
        elif self.mask == "float":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.zeros(n, n, device=x.device))
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c)).transpose(1, 2).reshape(x.shape)


def test_sdpa_is_one_node_and_stays_exact() -> None:
    """F.scaled_dot_product_attention is one ``sdpa`` node (not the meta device's bmm + softmax), with the MACs
    FlopCounterMode counts: 2 heads · 9² logits · (8 + 8) = 2,592 beside the linears' 9·16·48 + 9·16·16 = 9,216."""
    model = Attention()
    spec = exact(model, (16, 3, 3))
    ops = [n.op for layer in spec.layers for n in layer.nodes]
    assert ops.count("sdpa") == 1 and "bmm" not in ops and "softmax" not in ops
    assert meta_macs(model, (16, 3, 3)) == 2 * 9 * 9 * (8 + 8) + 9 * 16 * 48 + 9 * 16 * 16


def test_sdpa_with_a_float_mask_reads_it_and_a_boolean_mask_stays_traced() -> None:
    """A float mask is the sdpa node's 4th input; a boolean one (a where, not an add) keeps the decomposition.
    Both exact."""
    spec = exact(Attention("float"), (16, 3, 3))
    sdpa = [n for layer in spec.layers for n in layer.nodes if n.op == "sdpa"]
    assert len(sdpa) == 1 and len(sdpa[0].inputs or []) == 4
    spec = exact(Attention("bool"), (16, 3, 3))
    assert not [n for layer in spec.layers for n in layer.nodes if n.op == "sdpa"]


class TokenMix(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 6)

    def forward(self, x: Any) -> Any:
        y = self.fc(x.flatten(2).transpose(1, 2))  # a linear on a non-contiguous 3-D input
        return y.transpose(1, 2).reshape(x.shape[0], 6, 2, 2)


TORCH = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])


@pytest.mark.skipif(TORCH < (2, 14), reason="torch < 2.14 traces F.linear on a non-contiguous 3-D input as bmm")
def test_linear_bias_split_by_the_trace_is_back_on_the_linear() -> None:
    """F.linear on a transposed 3-D input runs mm + add (torch 2.14): imported as one linear with its bias (no
    param node for the bias, no add)."""
    got = [n for n in nodes(TokenMix(), (3, 2, 2)) if n["op"] not in ("reshape", "transpose")]
    assert [(n["op"], n.get("bias")) for n in got] == [("linear", True)]


def test_linear_on_tokens_is_exact() -> None:
    """However the trace splits it: params 3·6 + 6 = 24, MACs FlopCounterMode's."""
    spec = exact(TokenMix(), (3, 2, 2))
    assert analyze_spec(spec).totals["params"] == 24


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x: Any) -> Any:
        return x + self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.blocks = nn.Sequential(Block(), Block(), Block())
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Any) -> Any:
        return self.pool(self.blocks(self.stem(x)))


def test_classes_name_each_module_and_those_above_the_layer() -> None:
    """Each layer's ``classes``: ``/`` the model, ``/blocks`` the Sequential above the repeated block, ``""`` the
    block itself, and each node's module relative to the layer's name."""
    layers = import_graph(Net(), (3, 4, 4)).layers
    blocks = next(layer for layer in layers if layer.get("name") == "blocks")
    assert blocks["repeat"] == 3
    here = f"{__name__}."
    assert blocks["classes"] == {
        "/": here + "Net",
        "/blocks": "torch.nn.modules.container.Sequential",
        "": here + "Block",
        "conv": "torch.nn.modules.conv.Conv2d",
        "bn": "torch.nn.modules.batchnorm.BatchNorm2d",
        "act": "torch.nn.modules.activation.ReLU",
    }
    assert list(blocks) == ["kind", "name", "repeat", "classes", "nodes"]
    assert all("classes" in layer for layer in layers)
    exact(Net(), (3, 4, 4))


def test_written_yaml_keeps_classes_and_calls(tmp_path: Any) -> None:
    """``costmodel import``'s YAML (importers/core.py to_yaml) writes each layer's ``classes`` and the nodes'
    ``call``: loaded back, they are the spec's, and the figures are torch's."""
    import costmodel
    from costmodel.importers.core import to_yaml

    spec = exact(Net(), (3, 4, 4))
    path = tmp_path / "net.yaml"
    path.write_text(to_yaml(spec))
    back = costmodel.load(path)
    assert [layer.classes for layer in back.layers] == [layer.classes for layer in spec.layers]
    assert [n.call for layer in back.layers for n in layer.nodes] == [
        n.call for layer in spec.layers for n in layer.nodes
    ]
    assert any(n.call == "operator.add" for layer in back.layers for n in layer.nodes)
    assert analyze_spec(back).totals["macs"] == meta_macs(Net(), (3, 4, 4))


class Fails(nn.Module):
    def forward(self, x: Any) -> Any:
        raise ValueError("no")


def test_tensor_methods_are_restored_after_a_trace() -> None:
    """The trace wraps Tensor.add, mul, matmul … to see which the code called by name; after it, passing or
    failing, they are torch's own again."""
    from costmodel.errors import UsageError

    import_graph(Calls(), (2, 4, 4))
    with pytest.raises(UsageError, match="cannot trace the model"):
        import_graph(Fails(), (2, 4, 4))
    for m in OPERATOR_METHODS:  # torch defines them on TensorBase, none on Tensor itself
        assert m not in torch.Tensor.__dict__ and getattr(torch.Tensor, m) is getattr(torch._C.TensorBase, m)
