"""How each counting tool counts the op nodes of a ``graph`` layer (issue #22): exact, or refused naming the op.

The block kinds' rules (analysis/conventions.py) are keyed by op; a graph node's count in a tool can depend on
more than its op, because three of the tools count per *module* and one patches *functions*:

* **torch** (FlopCounterMode) and **torchvision**: the node's MACs (graph ops' MACs are FlopCounterMode's by
  construction: conv, linear, matmul, bmm, einsum, sdpa). SDPA on the CPU is the one case torch counts 0
  (``_scaled_dot_product_flash_attention_for_cpu`` has no formula); the preset is the meta device / CUDA.
* **fvcore** traces aten ops and counts by op, not by module: conv, linear, bmm, einsum (``abc,abd->acd``-like
  contractions) MACs; matmul numel(a)·b[−1]; batch_norm 2·input (affine; 1 without), layer_norm and group_norm
  5·input (affine; 4 without), 2-D nearest interpolate output, bilinear 4·output, 2-D adaptive_avg_pool input;
  every other op 0 (sdpa, mean, pools, activations, softmax, elementwise, data movement).
* **ptflops** hooks modules by exact class (``type(m) in MODULES_MAPPING``) and stops at a hooked module (its
  children's hooks are not summed: timm's ``Attention`` hides its qkv and proj ``nn.Linear``), and patches
  functions (``F.relu``, ``F.gelu``, ``F.silu``, ``F.softmax``, the pools, ``F.interpolate``, ``torch.matmul`` /
  ``Tensor.matmul``, ``bmm``, ``Tensor.add`` / ``mul``), whose counts always add — not the operators ``+``,
  ``*``, ``@``, nor in-place or other methods.
* **thop** hooks modules by exact class (``register_hooks[type(m)]``) and stops at a hooked module too.
* **torchinfo** counts each leaf module's parameters named weight or bias: × output positions N·Ho·Wo for a class
  whose name holds ``Conv``, else × the output's dim 0 (N: a token linear counts N·params, not N·L·params).

So a graph node carries what these tools see, as the importer records it: the layer's ``classes`` (module path
relative to the layer's name → exact class, ``module.QualName``; ``""`` for the layer's own module) gives the
class of the module the node ran in and of each enclosing module, and the node's ``call`` names the torch
callable its op ran as (``torch.nn.functional.gelu``, ``torch.Tensor.add``, ``operator.add`` for ``x + y`` …).
A count that needs one of them where the spec does not say it is refused in one line naming the node, its op and
the tool (never a silent 0). docs/conventions.md, "Graph layers", has the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..engine.convention import Rule
from ..engine.ops import GraphNode
from ..engine.report import Row
from ..engine.symbols import Num
from ..errors import UsageError

GRAPH_TOOLS = ("costmodel", "torch", "torchvision", "fvcore", "ptflops", "thop", "torchinfo")


@dataclass(frozen=True)
class NodeRule(Rule):
    """A tool's rule for graph nodes, as ``costmodel explain`` shows it: a summary, not one formula."""

    summary: str = ""

    def text(self) -> str:
        """The summary (the rule depends on the node's op, module classes and call)."""
        return self.summary


_SEE = "docs/conventions.md, Graph layers"
GRAPH_RULES: dict[str, Rule] = {
    "costmodel": NodeRule((), "FlopCounterMode's MACs of each node", "macs"),
    "torch": NodeRule((), "FlopCounterMode's MACs (SDPA as on the meta device or CUDA)", "macs"),
    "torchvision": NodeRule((), "FlopCounterMode's MACs", "macs"),
    "fvcore": NodeRule(
        (), f"by aten op: conv, linear, matmul, einsum MACs; norms, 2-D resize and pool ({_SEE})", "by op"
    ),
    "ptflops": NodeRule((), f"module hooks by exact class + patched functions by call ({_SEE})", "by class + call"),
    "thop": NodeRule((), f"module hooks by exact class ({_SEE})", "by class"),
    "torchinfo": NodeRule(
        (), f"leaf modules' weight and bias × output dim 0 (× positions for Conv classes) ({_SEE})", "by class"
    ),
}
"""What ``costmodel explain`` shows as each tool's rule for a graph node's op."""

# ------------------------------------------------------------------------------------------ class names

_NN = "torch.nn.modules."
CONV_CLASSES = frozenset(
    _NN + f"conv.{c}" for c in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
)
BN_CLASSES = frozenset(_NN + f"batchnorm.BatchNorm{d}d" for d in (1, 2, 3))
LINEAR = _NN + "linear.Linear"
LAYER_NORM = _NN + "normalization.LayerNorm"
GROUP_NORM = _NN + "normalization.GroupNorm"
SOFTMAX = _NN + "activation.Softmax"
MHA = _NN + "activation.MultiheadAttention"
UPSAMPLE_CLASSES = frozenset(
    _NN + f"upsampling.{c}" for c in ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
)
MAX_POOLS = frozenset(_NN + f"pooling.MaxPool{d}d" for d in (1, 2, 3))
AVG_POOLS = frozenset(_NN + f"pooling.AvgPool{d}d" for d in (1, 2, 3))
ADAPTIVE_AVG = frozenset(_NN + f"pooling.AdaptiveAvgPool{d}d" for d in (1, 2, 3))
ADAPTIVE_MAX = frozenset(_NN + f"pooling.AdaptiveMaxPool{d}d" for d in (1, 2, 3))
TIMM_ATTENTION = frozenset({"timm.layers.attention.Attention", "timm.models.vision_transformer.Attention"})

#: ptflops 0.7.5's MODULES_MAPPING (pytorch_ops.py): the classes it hooks, each counting as below.
PTFLOPS_HOOKED = frozenset(
    {
        *CONV_CLASSES,
        *(_NN + f"activation.{a}" for a in ("ReLU", "PReLU", "ELU", "LeakyReLU", "ReLU6", "GELU")),
        *MAX_POOLS,
        *AVG_POOLS,
        *ADAPTIVE_AVG,
        *ADAPTIVE_MAX,
        *BN_CLASSES,
        *(_NN + f"instancenorm.InstanceNorm{d}d" for d in (1, 2, 3)),
        GROUP_NORM,
        LAYER_NORM,
        LINEAR,
        _NN + "upsampling.Upsample",
        *(_NN + f"rnn.{c}" for c in ("RNN", "GRU", "LSTM", "RNNCell", "LSTMCell", "GRUCell")),
        MHA,
        *TIMM_ATTENTION,
    }
)
#: thop 0.1.1's register_hooks (profile.py), nn.Sequential excepted (thop sums through it).
THOP_HOOKED = frozenset(
    {
        _NN + "padding.ZeroPad2d",
        *CONV_CLASSES,
        *BN_CLASSES,
        LAYER_NORM,
        *(_NN + f"instancenorm.InstanceNorm{d}d" for d in (1, 2, 3)),
        *(_NN + f"activation.{a}" for a in ("PReLU", "Softmax", "ReLU", "ReLU6", "LeakyReLU")),
        *MAX_POOLS,
        *ADAPTIVE_MAX,
        *AVG_POOLS,
        *ADAPTIVE_AVG,
        LINEAR,
        _NN + "dropout.Dropout",
        *UPSAMPLE_CLASSES,
        *(_NN + f"rnn.{c}" for c in ("RNNCell", "GRUCell", "LSTMCell", "RNN", "GRU", "LSTM")),
        _NN + "pixelshuffle.PixelShuffle",
    }
)
#: Classes that own a weight but hold child modules (timm's norm + act classes hold ``act`` and ``drop``): not
#: torchinfo leaves, so torchinfo counts none of their parameters.
TORCHINFO_NOT_LEAVES = frozenset(
    "timm.layers.norm_act." + c
    for c in ("BatchNormAct2d", "SyncBatchNormAct", "FrozenBatchNormAct2d", "GroupNormAct", "GroupNorm1Act")
) | frozenset("timm.layers.norm_act." + c for c in ("LayerNormAct", "LayerNormAct2d"))

#: torch.nn classes whose parameters are a ``weight`` and a ``bias`` (torchinfo counts them by those names).
TORCHINFO_WEIGHTED = frozenset({*CONV_CLASSES, *BN_CLASSES, LINEAR, LAYER_NORM, GROUP_NORM})

#: ptflops 0.7.5's patched callables (FUNCTIONAL_MAPPING, TENSOR_OPS_MAPPING; F.linear is not patched).
_F = "torch.nn.functional."
PTFLOPS_NUMEL = frozenset(
    _F + f
    for f in (
        "relu", "prelu", "elu", "relu6", "gelu", "silu", "softmax",
        *(f"{k}_pool{d}d" for k in ("avg", "max") for d in (1, 2, 3)),
        *(f"adaptive_{k}_pool{d}d" for k in ("avg", "max") for d in (1, 2, 3)),
    )
)  # fmt: skip
PTFLOPS_INTERPOLATE = frozenset({_F + "interpolate", _F + "upsample"})
PTFLOPS_MATMUL = frozenset(
    f"torch.{o}" for o in ("matmul", "Tensor.matmul", "mm", "Tensor.mm", "bmm", "Tensor.bmm")
)  # numel(a) · b[−1]
PTFLOPS_ELEMENTWISE = frozenset(f"torch.{o}" for o in ("mul", "Tensor.mul", "add", "Tensor.add"))

#: Ops whose ptflops count depends on how they were called (the node's ``call``).
_PTFLOPS_CALLED = frozenset(
    {"relu", "relu6", "elu", "leaky_relu", "gelu", "gelu_tanh", "silu", "softmax", "log_softmax"}
    | {"avg_pool", "max_pool", "adaptive_avg_pool", "adaptive_max_pool", "interpolate", "matmul", "bmm"}
    | {"add", "mul"}
)
#: Ops whose count depends on the class of their module in ptflops / thop / torchinfo.
_PTFLOPS_CLASSED = frozenset(
    {"conv", "linear", "batch_norm", "layer_norm", "group_norm", "relu", "relu6", "elu", "leaky_relu", "gelu"}
    | {"gelu_tanh", "avg_pool", "max_pool", "adaptive_avg_pool", "adaptive_max_pool", "interpolate", "sdpa"}
)
_THOP_CLASSED = frozenset(
    {"conv", "linear", "batch_norm", "layer_norm", "softmax", "avg_pool", "adaptive_avg_pool", "interpolate"}
)


def _g(row: Row) -> GraphNode:
    g = row.op.graph
    assert g is not None  # only graph rows come here
    return g


def refuse(row: Row, tool: str, why: str) -> UsageError:
    """The one-line refusal: the node (layer, id or index, op) and the tool."""
    graph = row.op.graph
    node = graph.node if graph is not None else None
    name = f"node {node.id!r}" if node is not None and node.id is not None else "a node"
    where = f"layer {row.layer}" + (f" ({row.stage})" if row.stage != row.op.name else "")
    return UsageError(f"--convention {tool}: {name} ({row.op.name}) of {where}: {why}")


def _classes(row: Row) -> tuple[str | None, tuple[str, ...]]:
    """The class of the module the node ran in and the classes of the modules enclosing it (outermost first),
    from the layer's ``classes``: keys relative to the layer's name (``""`` its own module, each copy's for a
    repeated layer), and ``/PATH`` for the modules above the layer (``/`` the model, ``/blocks`` …); (None, ())
    when the spec does not say them."""
    g = _g(row)
    classes: Mapping[str, str] | None = g.classes
    if classes is None:
        return None, ()
    module = g.node.module or ""
    above: list[str] = ["/"]
    if g.layer:
        names = g.layer.split(".")
        above += ["/" + ".".join(names[:k]) for k in range(1, len(names) + (1 if g.repeated else 0))]
    parts = module.split(".") if module else []
    keys = above + [".".join(parts[:k]) for k in range(len(parts))]
    outer = tuple(c for c in (classes.get(k) for k in keys) if c is not None)
    return classes.get(module), outer


def _scaled(row: Row, j: int) -> Num:
    """Elements of input j at the spec's batch."""
    g = _g(row)
    return math.prod(g.shapes[j]) * (g.n if g.batched[j] else 1)


def graph_count(row: Row, tool: str, batch: Num) -> Num:
    """What ``tool`` counts for one instance of the graph row ``row`` (UsageError: the tool's count of this node
    cannot be reproduced from the spec)."""
    op = row.op
    g = _g(row)
    name = op.name
    if tool in ("costmodel", "torch", "torchvision"):
        return row.costs["macs"]
    out = row.costs["activations"]
    inp = _scaled(row, 0) if g.shapes else 0
    if name == "mean" and (g.node.call in ADAPTIVE_AVG_CALLS or _classes(row)[0] in ADAPTIVE_AVG):
        name = "adaptive_avg_pool"  # F.adaptive_avg_pool2d(x, 1) traced as a mean: what the tools see is the pool
    elif name == "mean" and g.node.call is None and tool in ("fvcore", "ptflops") and _spatial_mean(row):
        raise refuse(row, tool, f"{tool} counts F.adaptive_avg_pool2d (input elements) but not Tensor.mean, and "
                     "a mean over (H, W) keeping them is either: give the node its `call`")  # fmt: skip
    if tool == "fvcore":
        return _fvcore(row, name, inp, out)
    if tool == "ptflops":
        return _ptflops(row, name, inp, out)
    if tool == "thop":
        return _thop(row, name, inp, out)
    if tool == "torchinfo":
        return _torchinfo(row, name, batch)
    raise refuse(row, tool, "no graph rules for this convention")  # pragma: no cover - GRAPH_TOOLS is fixed


ADAPTIVE_AVG_CALLS = frozenset(_F + f"adaptive_avg_pool{d}d" for d in (1, 2, 3))


def _spatial_mean(row: Row) -> bool:
    """A mean over the last two dims of a rank-4 tensor, keeping them: what an adaptive average pool to 1×1 is."""
    x = _g(row).shapes[0]
    d = _get(row, "dim")
    dims = {v % len(x) for v in ([d] if isinstance(d, int) else d)} if d is not None else set()
    return len(x) == 4 and dims == {2, 3} and bool(_get(row, "keepdim"))


def _get(row: Row, field: str) -> Any:
    return _g(row).node.get(field)


def _fvcore(row: Row, name: str, inp: Num, out: Num) -> Num:
    g = _g(row)
    if name in ("conv", "linear", "bmm"):
        return row.costs["macs"]
    if name == "matmul":
        a, b = g.shapes
        if len(a) < 2 or len(b) < 2:
            raise refuse(row, "fvcore", "fvcore's matmul handle asserts two operands of rank ≥ 2 (it fails on 1-D)")
        return _scaled(row, 0) * b[-1]
    if name == "einsum":
        terms = _get(row, "equation").replace(" ", "").split("->")[0].split(",")
        rhs = _get(row, "equation").replace(" ", "").split("->")[1]
        if len(terms) != 2:
            raise refuse(row, "fvcore", "fvcore counts a one-operand einsum with numpy's einsum_path: not reproduced")
        left, right = set(terms[0]), set(terms[1])
        if not ((left & right) - set(rhs)) or ((left ^ right) - set(rhs)):
            raise refuse(row, "fvcore", "fvcore counts this einsum with numpy's einsum_path: not reproduced")
        return row.costs["macs"]
    if name == "batch_norm":
        return (2 if _get(row, "affine") else 1) * inp
    if name in ("layer_norm", "group_norm"):
        if not 2 <= len(g.shapes[0]) <= 5:
            raise refuse(row, "fvcore", "fvcore's norm handle asserts an input of rank 2 to 5")
        return (5 if _get(row, "affine") else 4) * inp
    if name == "interpolate":
        if len(g.shapes[0]) != 4:
            return 0  # aten::upsample_nearest1d / 3d: not among fvcore's handled ops
        return {"nearest": 1, "bilinear": 4}.get(_get(row, "mode"), 0) * out  # bicubic: not handled
    if name == "adaptive_avg_pool":
        spatial = len(g.shapes[0]) - 2 if row.op.name == "mean" else len(_get(row, "size"))
        return inp if spatial == 2 else 0  # aten::adaptive_avg_pool1d / 3d: not handled
    if name == "rms_norm":
        raise refuse(row, "fvcore", "what fvcore counts for aten::rms_norm was not measured")
    if name == "aten":
        fn = _get(row, "fn").removeprefix("aten.").split(".")[0]
        if fn in ("batch_norm", "group_norm", "layer_norm", "instance_norm", "grid_sampler", "upsample_nearest2d",
                  "upsample_bilinear2d", "adaptive_avg_pool2d"):  # fmt: skip
            raise refuse(row, "fvcore", f"fvcore counts aten::{fn}: write it as its op")
        return 0
    return 0  # sdpa, mean, pools, activations, softmax, elementwise, data movement, params: not handled (0)


def _ptflops(row: Row, name: str, inp: Num, out: Num) -> Num:
    g = _g(row)
    call = g.node.call
    total: Num = 0
    # the functional part: what the patched callables count, wherever they run
    if name in _PTFLOPS_CALLED:
        if call is None:
            raise refuse(row, "ptflops", "ptflops counts it by how it was called (F.relu or Tensor.relu, "
                         "torch.matmul or @ …): give the node its `call`")  # fmt: skip
        if call in PTFLOPS_NUMEL:
            total = total + inp
        elif call in PTFLOPS_INTERPOLATE:
            total = total + out
        elif call in PTFLOPS_MATMUL:
            a, b = g.shapes
            if len(b) < 2:
                raise refuse(row, "ptflops", "ptflops's matmul hook reads other.shape[-1] of a 1-D operand")
            total = total + _scaled(row, 0) * b[-1]
        elif call in PTFLOPS_ELEMENTWISE:
            total = total + _ptflops_elementwise(row)
    # the module part: the hook of the class it ran in, unless an enclosing module is hooked
    if name not in _PTFLOPS_CLASSED:
        return total
    cls, outer = _classes(row)
    if cls is None:
        raise refuse(row, "ptflops", "ptflops counts it by the exact class of its module: give the layer `classes`")
    if MHA in outer or cls == MHA:
        raise refuse(row, "ptflops", "ptflops's nn.MultiheadAttention hook is not reproduced")
    if any(c in PTFLOPS_HOOKED for c in outer):
        return total  # an enclosing module is hooked: ptflops never sums this module's hook
    bias = out if row.op.bias else 0
    if name == "conv" and cls in CONV_CLASSES:
        return total + row.costs["macs"] + bias
    if name == "linear" and cls == LINEAR:
        return total + row.costs["macs"] + bias
    if name == "batch_norm" and cls in BN_CLASSES:
        return total + (2 if _get(row, "affine") else 1) * inp
    if name == "group_norm" and cls == GROUP_NORM:
        return total + (2 if _get(row, "affine") else 1) * inp
    if name == "layer_norm" and cls == LAYER_NORM:
        return total + inp  # bn_flops_counter_hook: nn.LayerNorm has no `affine` attribute, so × 1
    acts = {"relu": "ReLU", "relu6": "ReLU6", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU"}
    act_cls = _NN + "activation." + acts.get(name, "GELU" if name == "gelu_tanh" else "")
    if (name in acts or name == "gelu_tanh") and cls == act_cls:
        return total + out
    if name in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool") and cls in (
        MAX_POOLS | AVG_POOLS | ADAPTIVE_AVG | ADAPTIVE_MAX
    ):
        return total + inp
    if name == "interpolate" and cls == _NN + "upsampling.Upsample":
        # upsample_flops_counter_hook reads output[0], the first sample: one sample's elements, whatever the batch
        return total + math.prod(row.op.output[1:])
    if name == "sdpa" and cls in TIMM_ATTENTION:
        q, k, v = g.shapes[:3]
        if len(q) != 4 or q != k or q != v:
            raise refuse(row, "ptflops", "ptflops's timm Attention hook assumes q, k, v of one (B, h, N, d) shape")
        _, heads, tokens, dim = q
        per = heads * (tokens * dim + tokens * tokens * (2 * dim + 1))  # q scaling, q·kᵀ, softmax, attention·v
        return total + per * (g.n if g.batched[0] else 1)
    return total


def _ptflops_elementwise(row: Row) -> Num:
    """ptflops's _elementwise_tensor_flops_hook: one tensor, its elements; two, ∏ max(aᵢ, bᵢ) with the shapes
    aligned on the *left* (not torch's broadcasting: x [N, H, W, C] · γ [C] counts N·H·W·C · C/N … as measured),
    each at the batch (a batched tensor's dim 0 × N)."""
    g = _g(row)
    shapes = [(s[0] * g.n, *s[1:]) if b and s else tuple(s) for s, b in zip(g.shapes, g.batched, strict=True)]
    if len(shapes) == 1:
        return math.prod(shapes[0])
    if len(shapes) != 2:
        raise refuse(row, "ptflops", "ptflops's elementwise hook reads two operands")
    a, b = shapes
    return math.prod(max(a[i] if i < len(a) else 1, b[i] if i < len(b) else 1) for i in range(max(len(a), len(b))))


def _thop(row: Row, name: str, inp: Num, out: Num) -> Num:
    if name not in _THOP_CLASSED:
        return 0
    g = _g(row)
    cls, outer = _classes(row)
    if cls is None:
        raise refuse(row, "thop", "thop counts it by the exact class of its module: give the layer `classes`")
    if any(c in THOP_HOOKED for c in outer):
        return 0  # thop does not descend into a hooked module
    if name == "conv" and cls in CONV_CLASSES:
        if not _get(row, "transposed"):
            return row.costs["macs"]
        x = g.shapes[0]
        k = _get(row, "kernel")
        one = k if isinstance(k, int) else k[0]
        taps = math.prod(k) if isinstance(k, list) and len(k) > 1 else one ** (len(x) - 2)
        return out * (x[1] // _get(row, "groups")) * taps  # calculate_conv2d_flops: output × Cin/g × ∏k
    if name == "linear" and cls == LINEAR:
        return row.costs["macs"]  # in_features × output elements
    if name == "batch_norm" and cls in BN_CLASSES or name == "layer_norm" and cls == LAYER_NORM:
        return (4 if _get(row, "affine") else 2) * inp
    if name == "softmax" and cls == SOFTMAX:
        x = g.shapes[0]
        features = x[_get(row, "dim") % len(x)]
        return 3 * inp - inp // features  # rows × (exp + (n − 1) adds + divides)
    if name == "avg_pool" and cls in AVG_POOLS:
        return out
    if name == "adaptive_avg_pool" and cls in ADAPTIVE_AVG:
        x = g.shapes[0]
        size = _get(row, "size") if row.op.name != "mean" else [1] * (len(x) - 2)
        window = Fraction(1)
        for xi, o in zip(x[len(x) - len(size) :], size, strict=True):
            window *= Fraction(xi, o)
        if window.denominator != 1:
            raise refuse(row, "thop", "thop's adaptive pool kernel is a float ratio here (the windows do not tile)")
        return inp + out  # (∏ in/out + 1 divide) × output elements
    if name == "interpolate" and cls in UPSAMPLE_CLASSES:
        return {"nearest": 1, "bilinear": 11, "bicubic": 259}[_get(row, "mode")] * out
    return 0


def _torchinfo(row: Row, name: str, batch: Num) -> Num:
    g = _g(row)
    if name in ("conv", "linear") and len(g.shapes) > 1:
        raise refuse(row, "torchinfo", "torchinfo counts a module's own weight, and this node reads its weight "
                     "as a tensor (its module's parameter is a param node)")  # fmt: skip
    params = row.costs["params"]
    if name == "param" and params:
        cls, _ = _classes(row)
        if cls in TORCHINFO_WEIGHTED:
            raise refuse(row, "torchinfo", f"torchinfo counts the weight or bias of its {cls.rsplit('.', 1)[-1]} "
                         "by the module's output, and the spec holds it as a param node (not reproduced)")  # fmt: skip
    if name in ("param", "buffer") or params == 0:
        return 0  # a param node's tensor is no leaf's weight or bias (class token, position table, layer scale)
    cls, _ = _classes(row)
    if cls is None:
        raise refuse(row, "torchinfo", "torchinfo counts a leaf module by its class: give the layer `classes`")
    if cls in TORCHINFO_NOT_LEAVES:
        return 0
    out = row.op.output
    lead = out[0] * (g.n if row.op.batched else 1)
    if "Conv" in cls.rsplit(".", 1)[-1]:
        return params * lead * math.prod(out[2:])
    return lead * params
