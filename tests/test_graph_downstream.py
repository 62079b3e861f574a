"""Everything downstream on graph layers (issue #22 item 6): training's saved tensors against torch's
saved_tensors_hooks, memory's live set of a DAG (views share storage), tables by module path, latency and deploy
(mapped or refused by name), sweeps over the resolution with literal shapes, conventions refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import costmodel
from costmodel.analysis.memory import kernels, peak_activations
from costmodel.analysis.training import training
from costmodel.errors import UsageError

VIT = """
name: vit-blocks
input: {channels: 197, height: 1, width: 384, batch: 2}
layers:
  - kind: graph
    name: blocks
    repeat: 2
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
      - {id: x1, op: add, inputs: [x, proj]}
      - {op: layer_norm, module: norm2}
      - {op: linear, out: 1536, bias: true, module: mlp.fc1}
      - {op: gelu, module: mlp.act}
      - {id: fc2, op: linear, out: 384, bias: true, module: mlp.fc2}
      - {op: add, inputs: [x1, fc2]}
      - {op: reshape, shape: [1, 197, 1, 384]}
"""


def write(tmp_path: Path, text: str, name: str = "graph.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ training


def saved_bytes(model: Any, x: Any) -> int:
    from conftest import saved_storages

    model.train()
    with saved_storages(model) as storages:
        model(x)
    return sum(storages.values())


def test_training_saved_tensors_vit(tmp_path: Path) -> None:
    """ViT blocks: layer norm (input, mean, rstd), the linears (their input folded to (−1, K): a view), the CPU
    flash kernel of sdpa (q, k, v — views of one qkv storage, kept whole —, its output and log-sum-exp), gelu
    (its input); the adds and views save nothing, and proj's input is a view of the flash output (stored
    (B, N, h, d)), not a copy."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.qkv, self.proj = nn.LayerNorm(384), nn.Linear(384, 1152), nn.Linear(384, 384)
            self.norm2, self.fc1, self.fc2 = nn.LayerNorm(384), nn.Linear(384, 1536), nn.Linear(1536, 384)

        def forward(self, x: Any) -> Any:
            b, n, c = x.shape
            q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, 6, 64).permute(2, 0, 3, 1, 4).unbind(0)
            x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

    torch.manual_seed(0)
    want = saved_bytes(nn.Sequential(Block(), Block()), torch.randn(2, 197, 384))
    got = training(costmodel.count(write(tmp_path, VIT))).totals["saved_bytes"]
    assert got == want == 19_397_408


MIXER = """
name: token-mixing
input: {channels: 16, height: 1, width: 32, batch: 3}
layers:
  - kind: graph
    nodes:
      - {id: x, op: reshape, shape: [1, 16, 32]}
      - {op: layer_norm}
      - {op: transpose, dims: [1, 2]}
      - {op: linear, out: 24, bias: true}
      - {op: gelu}
      - {op: linear, out: 16, bias: true}
      - {id: t, op: transpose, dims: [1, 2]}
      - {id: y, op: add, inputs: [x, t]}
      - {id: qk, op: matmul, inputs: [y, t2]}
      - {op: softmax, dim: -1}
      - {op: reshape, shape: [1, 16, 1, 16]}
"""


def test_training_saved_tensors_token_mixing(tmp_path: Path) -> None:
    """MLP-Mixer's token mixing: a linear on a transposed (non-contiguous) input saves a copy (matmul's fold
    copies), its second linear's input is gelu's output; a batched matmul saves both operands as bmm reads them
    (y·yᵀ: yᵀ is a view, reshaped to (B, k, n): here a view of y's storage); softmax saves its output."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Mix(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.fc1, self.fc2 = nn.LayerNorm(32), nn.Linear(16, 24), nn.Linear(24, 16)

        def forward(self, x: Any) -> Any:
            t = self.fc2(F.gelu(self.fc1(self.norm(x).transpose(1, 2)))).transpose(1, 2)
            y = x + t
            return (y @ y.transpose(1, 2)).softmax(-1)

    text = MIXER.replace("inputs: [y, t2]", "inputs: [y, yt]").replace(
        "      - {id: qk,", "      - {id: yt, op: transpose, dims: [1, 2], inputs: [y]}\n      - {id: qk,"
    )
    want = saved_bytes(Mix(), torch.randn(3, 16, 32))
    got = training(costmodel.count(write(tmp_path, text))).totals["saved_bytes"]
    # by hand (float32, batch 3): input 3·16·32·4 = 6,144 (layer norm's) + mean/rstd 2·3·16·4 = 384 + the
    # transposed copy 6,144 + fc1's output 3·32·24·4 = 9,216 (gelu's input) + gelu's output 9,216 + y 6,144
    # (matmul's two operands: one storage) + softmax's output 3·16·16·4 = 3,072
    assert got == want == 6_144 + 384 + 6_144 + 9_216 + 9_216 + 6_144 + 3_072


ATTENTION = """
input: {channels: 5, height: 1, width: 8, batch: 2}
layers:
  - kind: graph
    nodes:
      - {op: reshape, shape: [1, 5, 8]}
      - {op: linear, out: 24, bias: true}
      - {op: reshape, shape: [1, 5, 3, 2, 4]}
      - {id: p, op: permute, dims: [0, 2, 3, 1, 4]}
      - {id: q, op: select, dim: 1, index: 0, inputs: [p]}
      - {id: k, op: select, dim: 1, index: 1, inputs: [p]}
      - {id: v, op: select, dim: 1, index: 2, inputs: [p]}
      - {id: m, op: buffer, shape: [5, 5]}
      - {op: sdpa, inputs: [q, k, v, m]}
"""


def test_training_attention_paths(tmp_path: Path) -> None:
    """sdpa on the CPU: q, k, v of rank 4 with one head size run the flash kernel, a float mask included (saved:
    q, k, v's storage, the mask — a buffer, not a parameter —, the output and the log-sum-exp); a value head size
    other than the query's runs the math path (q·√s and k·√s, copies; the softmax; v)."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Att(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(8, 24)
            self.v6 = nn.Linear(8, 12)
            self.register_buffer("mask", torch.zeros(5, 5))
            self.math = False

        def forward(self, x: Any) -> Any:
            q, k, v = self.qkv(x).reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4).unbind(0)
            if self.math:
                return F.scaled_dot_product_attention(q, k, self.v6(x).reshape(2, 5, 2, 6).transpose(1, 2))
            return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)

    model = Att()
    want = saved_bytes(model, torch.randn(2, 5, 8))
    got = training(costmodel.count(write(tmp_path, ATTENTION))).totals["saved_bytes"]
    # input 2·5·8·4 = 320; the qkv storage 960; the mask 100; output 320; log-sum-exp 2·2·5·4 = 80
    assert got == want == 320 + 960 + 100 + 320 + 80
    math_path = ATTENTION.replace(
        "      - {id: m, op: buffer, shape: [5, 5]}\n",
        "      - {op: linear, out: 12, bias: true, inputs: [x]}\n      - {op: reshape, shape: [1, 5, 2, 6]}\n"
        "      - {id: m, op: transpose, dims: [1, 2]}\n",
    ).replace("      - {op: reshape, shape: [1, 5, 8]}", "      - {id: x, op: reshape, shape: [1, 5, 8]}")
    model.math = True
    want = saved_bytes(model, torch.randn(2, 5, 8))
    got = training(costmodel.count(write(tmp_path, math_path.replace("[q, k, v, m]", "[q, k, m]"), "m.yaml")))
    # input 320 (both linears read it); q·√s and k·√s 2·2·5·4·4 = 320 each; the softmax 2·2·5·5·4 = 400; v: the
    # v linear's output 2·5·12·4 = 480
    assert got.totals["saved_bytes"] == want == 320 + 320 + 320 + 400 + 480


def test_training_refuses_unmeasured_ops(tmp_path: Path) -> None:
    text = "input: {channels: 4, height: 2, width: 2}\nlayers:\n  - kind: graph\n    nodes:\n"
    text += "      - {op: conv, out: 4, kernel: 1}\n      - {id: e, op: exp}\n"
    report = costmodel.count(write(tmp_path, text))
    with pytest.raises(UsageError, match=r"training memory of node 'e' \(exp\) of layer 0: .*not measured"):
        training(report)
    with pytest.raises(UsageError, match="autocast"):
        training(report, precision="bf16-mixed")


# -------------------------------------------------------------------------------------------- memory


def test_memory_views_share_storage(tmp_path: Path) -> None:
    """Views are no kernels; sdpa reads q, k, v from one storage (the qkv linear's output) once; the reshape of
    the transposed attention output is a view too (the CPU flash kernel stores its output (B, N, h, d), as torch
    does); a param node is a weight, read as weight bytes."""
    report = costmodel.count(write(tmp_path, VIT))
    ks = kernels(report)
    names = [k.label.split()[-1] for k in ks if k.label.startswith("0.0 ")]
    assert names == ["layer_norm", "linear", "sdpa", "linear", "add", "layer_norm", "linear", "gelu", "linear", "add"]
    sdpa = next(k for k in ks if k.label == "0.0 attn sdpa")
    assert sdpa.input_bytes == 2 * 197 * 1152 * 4  # the qkv output, once
    peak = peak_activations(report)
    # at block 0's gelu: the residual x1 (2·197·384·4), fc1's output and gelu's (2·197·1536·4 each)
    assert peak.bytes == 2 * 197 * 384 * 4 + 2 * (2 * 197 * 1536 * 4)
    text = "input: {channels: 4, height: 2, width: 2}\nlayers:\n  - kind: graph\n    nodes:\n"
    text += "      - {id: pos, op: param, shape: [1, 4, 2, 2]}\n      - {op: add, inputs: [in, pos]}\n"
    (add,) = kernels(costmodel.count(write(tmp_path, text, "pos.yaml")))
    assert (add.input_bytes, add.weight_bytes, add.output_bytes) == (16 * 4, 16 * 4, 16 * 4)


# ------------------------------------------------------------------------------------- tables by module


def test_table_by_module(tmp_path: Path) -> None:
    report = costmodel.count(write(tmp_path, VIT))
    groups = {g.key[0]: g for g in report.group("module")}
    assert list(groups)[:4] == ["blocks.0", "blocks.0.norm1", "blocks.0.attn.qkv", "blocks.0.attn"]
    assert groups["blocks.1.attn.qkv"].total("params") == 384 * 1152 + 1152
    assert groups["blocks.0.attn"].total("macs") == 2 * 6 * 197 * 197 * (64 + 64)  # the sdpa, by hand
    assert sum(g.total("macs") for g in groups.values()) == report.totals["macs"]
    text = report.table("csv", "module")
    assert text.splitlines()[0].startswith("module,ops,")
    spec = costmodel.count("specs/networks/mobilenet_v2.yaml")
    paths = [g.key[0] for g in spec.group("module")]
    assert paths[:3] == ["stem.conv", "layers.1.depthwise", "layers.1.projection"]


# --------------------------------------------------------------------------- latency, deploy, conventions


def test_latency_and_deploy_refuse_by_name(tmp_path: Path) -> None:
    from costmodel.analysis.latency import graph_op_class

    report = costmodel.count(write(tmp_path, VIT))
    classes = {}
    for r in report.rows[:12]:
        try:
            classes[r.op.name] = graph_op_class(r)
        except UsageError as e:
            classes[r.op.name] = str(e)
    assert classes["reshape"] == "reshape"
    assert (
        "latency: a node (layer_norm) of layer 0 is no op the latency classes were calibrated on"
        in classes["layer_norm"]
    )
    assert "(sdpa)" in classes["sdpa"]
    with pytest.raises(UsageError, match=r"deploy does not model graph layers: layer 0 is one \(node 'x', reshape\)"):
        costmodel.deploy(write(tmp_path, VIT.replace("batch: 2", "batch: 1"), "b1.yaml"), dtype="int8")


def test_conventions_refuse_without_classes(tmp_path: Path) -> None:
    report = write(tmp_path, VIT)
    assert costmodel.count(report, "torch").totals["macs"] == costmodel.count(report).totals["macs"]
    with pytest.raises(UsageError, match=r"--convention thop: a node \(layer_norm\) of layer 0 \(norm1\): .*classes"):
        costmodel.count(report, "thop")
    expl = costmodel.explain(report, "costmodel", "fvcore")
    assert sum(d.diff for d in expl.diffs) == (
        costmodel.count(report, "fvcore").totals["macs"] - costmodel.count(report).totals["macs"]
    )
    pooled = write(tmp_path, "input: {channels: 4, height: 3, width: 3}\nlayers:\n  - kind: graph\n    nodes:\n"
                   "      - {op: mean, dim: [2, 3], keepdim: true}\n", "pool.yaml")  # fmt: skip
    with pytest.raises(UsageError, match=r"--convention fvcore: a node \(mean\) of layer 0: .*`call`"):
        costmodel.count(pooled, "fvcore")
    pooled.write_text(
        pooled.read_text().replace("keepdim: true", "keepdim: true, call: torch.nn.functional.adaptive_avg_pool2d")
    )
    assert costmodel.count(pooled, "fvcore").totals["macs"] == 4 * 3 * 3  # aten::adaptive_avg_pool2d: input elements
    # fvcore: 4 layer norms × 5 per input element; sdpa 0
    assert costmodel.count(report, "fvcore").totals["macs"] == (
        costmodel.count(report).totals["macs"] - 2 * 2 * 6 * 197 * 197 * 128 + 4 * 5 * 2 * 197 * 384
    )


# ---------------------------------------------------------------------------------- sweep, resolution

MINI = """
name: patches
input: {channels: 3, height: R, width: R}
layers:
  - kind: graph
    nodes:
      - {op: conv, out: 16, kernel: 8, stride: 8, bias: true}
      - {op: flatten, dim: [2, 3]}
      - {op: transpose, dims: [1, 2]}
      - {op: reshape, shape: [1, 16, 4, 4]}
"""


def test_sweep_point_by_point(tmp_path: Path) -> None:
    """A literal reshape fits one resolution: the sweep analyses each point, and refuses one that does not fit
    in one line naming the point and the node."""
    path = write(tmp_path, MINI)
    sweep = costmodel.sweep(path, R=[32, 33, 39])
    assert list(sweep["macs"]) == [16 * 16 * 3 * 64] * 3  # 4×4 positions × 16 out × 3·8·8, by hand
    with pytest.raises(UsageError, match=r"--vary R=40: .*layers\[0\]\.nodes\[3\]\.shape: node 3 \(reshape\)"):
        costmodel.sweep(path, R=[32, 40])
    with pytest.raises(costmodel.SpecError, match=r"node 3 \(reshape\): shape \[1, 16, 4, 4\] does not fit"):
        costmodel.count(path, R=48)


SWIN_NODES = [
    {"op": "permute", "dims": [0, 2, 3, 1]},
    {"op": "roll", "size": [-2, -2], "dims": [1, 2]},
    {"op": "reshape", "shape": [1, 2, 4, 2, 4, 4]},
    {"op": "permute", "dims": [0, 1, 3, 2, 4, 5]},
    {"id": "w", "op": "reshape", "shape": [4, 16, 4]},  # 4 windows of 4×4 tokens: the batch folds into dim 0
    {"op": "linear", "out": 12, "bias": True},
    {"op": "reshape", "shape": [4, 16, 3, 4]},
    {"id": "qkv", "op": "permute", "dims": [2, 0, 1, 3]},
    {"id": "q", "op": "select", "dim": 0, "index": 0, "inputs": ["qkv"]},
    {"id": "k", "op": "select", "dim": 0, "index": 1, "inputs": ["qkv"]},
    {"id": "v", "op": "select", "dim": 0, "index": 2, "inputs": ["qkv"]},
    {"id": "kt", "op": "transpose", "dims": [1, 2], "inputs": ["k"]},
    {"op": "matmul", "inputs": ["q", "kt"]},
    {"id": "a", "op": "softmax", "dim": -1},
    {"op": "matmul", "inputs": ["a", "v"]},
    {"op": "reshape", "shape": [1, 2, 2, 4, 4, 4]},
    {"op": "permute", "dims": [0, 1, 3, 2, 4, 5]},
    {"op": "reshape", "shape": [1, 8, 8, 4]},
    {"op": "roll", "size": [2, 2], "dims": [1, 2]},
    {"op": "permute", "dims": [0, 3, 1, 2]},
]


@pytest.mark.parametrize("batch", [1, 3])
def test_training_swin_windows(batch: int) -> None:
    """Swin's shifted windows (tests/test_graph.py's module), the batch folded into dim 0 with the windows: the
    window partition after the roll is a copy, the linear saves it (a view), q @ kᵀ saves q's storage — the qkv
    output, whole — and kᵀ's (the same storage), softmax its output, attn @ v the softmax (already saved) and v."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Windows(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(4, 12)

        def forward(self, x: Any) -> Any:
            b = x.shape[0]
            t = torch.roll(x.permute(0, 2, 3, 1), (-2, -2), (1, 2))
            w = t.reshape(b, 2, 4, 2, 4, 4).permute(0, 1, 3, 2, 4, 5).reshape(b * 4, 16, 4)
            q, k, v = self.qkv(w).reshape(b * 4, 16, 3, 4).permute(2, 0, 1, 3)
            o = (q @ k.transpose(1, 2)).softmax(-1) @ v
            o = o.reshape(b, 2, 2, 4, 4, 4).permute(0, 1, 3, 2, 4, 5).reshape(b, 8, 8, 4)
            return torch.roll(o, (2, 2), (1, 2)).permute(0, 3, 1, 2)

    data = {"input": {"channels": 4, "height": 8, "width": 8, "batch": batch}, "layers": [{"kind": "graph"}]}
    data["layers"][0]["nodes"] = SWIN_NODES
    report = costmodel.analyze(costmodel.NetworkSpec.model_validate(data))
    want = saved_bytes(Windows(), torch.randn(batch, 4, 8, 8))
    # the windows 64·4, the qkv output 64·12, the softmax 4·16·16 per sample (float32)
    assert training(report).totals["saved_bytes"] == want == batch * 4 * (256 + 768 + 1024)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        Windows().train()(torch.randn(batch, 4, 8, 8)).sum().backward()
    # forward and backward: the linear's weight gradient (its input needs none), both matmuls' two operands
    assert training(report, convention="torch").totals["training_macs"] == counter.get_total_flops() // 2
    # the peak is at the softmax: its input and output (12·16·16 each per 3 samples) and the qkv storage that
    # attn @ v still reads (v is a view of it), at batch 3; views are no kernels
    if batch == 3:
        peak = peak_activations(report)
        assert (peak.bytes, peak.kernel) == (4 * (3072 + 3072 + 2304), "0.0 softmax softmax")
