"""Counting conventions as data: how each tool turns the same ops into its "MACs" figure.

A convention maps each op (``conv2d``, ``batchnorm2d``, ``relu``, ``avgpool:module`` …) to a sum of
terms ``coefficient × quantity``, where the quantities of a row are:

* ``macs``   — the op's multiply-accumulates (conv and linear), bias excluded;
* ``bias``   — output elements of a conv or linear that has a bias (one add each);
* ``input``  — input elements, batch included;
* ``output`` — output elements, batch included;
* ``batch_params`` — batch × the op's learnable parameters;
* ``batch_channels`` — batch × the op's input channels;
* ``param_positions`` — batch × the op's parameters × the output positions Ho·Wo of the conv it feeds
  (``attrs['positions']``; CondConv's expert weights, which torchinfo multiplies like a conv's);
* ``batch_stats`` — batch × the statistics the op computes per sample (``attrs['stats']``: EvoNorm-S0's group
  standard deviations, one per group where it applies its nonlinearity).

An op key is the op name with its variant, ``conv2d:same``: the variant names the module class where the
tools count classes apart (timm's ``Conv2dSame``, ``BatchNormAct2d``, …; docs/conventions.md). A variant a
convention does not list counts as its op.

Ops a convention does not list count 0 in it. Each rule was read from the tool's own source at the
version named, not fitted to totals; ``docs/conventions.md`` tabulates them, and
``costmodel explain`` shows where two conventions part, op by op.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine.convention import COSTMODEL, QUANTITIES, ZERO, Convention, Rule
from ..engine.ops import numel
from ..engine.report import Report, Row
from ..engine.symbols import Num
from ..errors import UsageError
from .graph_conventions import GRAPH_RULES, graph_count

__all__ = ["CONVENTIONS", "QUANTITIES", "ZERO", "Convention", "Difference", "Rule", "apply", "convention", "explain"]

_TORCH = {
    "conv2d": Rule(((1, "macs"),), "aten.convolution: 2 × MACs FLOPs, halved; bias not counted"),
    "linear": Rule(((1, "macs"),), "aten.addmm: 2 × MACs FLOPs, halved; bias not counted"),
    "attention": Rule(
        ((1, "macs"),),
        "sdpa_flop / bmm_flop: q·kᵀ + attention·v (meta device, CUDA, timm's unfused path); the CPU's fused "
        "_scaled_dot_product_flash_attention_for_cpu has no formula and counts 0",
    ),
    "blurpool": Rule(((1, "macs"),), "timm's BlurPool2d runs F.conv2d with its filter: aten.convolution"),
    "expert_mix": Rule(((1, "macs"),), "CondConv2d's torch.matmul(routing, experts): aten.mm"),
}

# timm's module classes (variants of the op keys), as each tool sees them. Conv2dSame, CondConv2d, timm's Linear
# and BatchNormAct2d / GroupNormAct / LayerNormAct2d subclass or wrap torch.nn classes, but thop and ptflops look
# hooks up by exact type (thop: register_hooks[type(m)]; ptflops: type(module) in MODULES_MAPPING), so they see
# none of them: a module without a hook counts only through its children (BatchNormAct2d's act) and, in
# ptflops, through the torch functions it calls that ptflops patches (F.conv2d, F.linear, F.batch_norm are
# not). torchinfo counts leaf modules only: the norm + act classes hold their act and drop as children.
_TIMM_ZERO = "timm's class: no hook (exact-type lookup)"

CONVENTIONS: dict[str, Convention] = {
    "costmodel": COSTMODEL,
    "torch": Convention(
        "torch",
        "torch FlopCounterMode",
        "FlopCounterMode().get_total_flops() / 2",
        "torch 2.13–2.14",
        "torch/utils/flop_counter.py (conv_flop, addmm_flop: only convolution and matmul ops are registered)",
        _TORCH,
    ),
    "torchvision": Convention(
        "torchvision",
        "torchvision _ops",
        "weights.meta['_ops'] × 10⁹ (torchvision stores it in billions, rounded to 3 decimals)",
        "torchvision 0.29.1",
        "torchvision/models/*.py weight metadata, measured with FlopCounterMode / 2",
        _TORCH,
    ),
    "fvcore": Convention(
        "fvcore",
        "fvcore FlopCountAnalysis",
        "FlopCountAnalysis(model, x).total() (one multiply-add counted as one 'flop')",
        "fvcore 0.1.5.post20221221",
        "fvcore/nn/flop_count.py _DEFAULT_SUPPORTED_OPS; fvcore/nn/jit_handles.py",
        {
            "conv2d": Rule(((1, "macs"),), "conv_flop_jit: output positions × Cin/g × k² × Cout; bias ignored"),
            "linear": Rule(((1, "macs"),), "linear_flop_jit / addmm_flop_jit: in × out; bias ignored"),
            "batchnorm2d": Rule(((2, "input"),), "batchnorm_flop_jit, eval mode with affine: 2 per input element"),
            "avgpool:module": Rule(((1, "input"),), "aten::adaptive_avg_pool2d: elementwise_flop_counter(1, 0)"),
            "avgpool:functional": Rule(((1, "input"),), "the same aten::adaptive_avg_pool2d op"),
            "avgpool:mean": Rule((), "aten::mean is not among the handled ops"),
            "conv2d:same": Rule(((1, "macs"),), "Conv2dSame: F.pad (not handled), then aten::_convolution"),
            "conv2d:cond": Rule(((1, "macs"),), "CondConv2d's aten::_convolution with groups N·g: N convs"),
            "linear:timm": Rule(((1, "macs"),), "timm's Linear calls F.linear: aten::linear"),
            "batchnorm2d:act": Rule(((2, "input"),), "BatchNormAct2d calls F.batch_norm: aten::batch_norm, eval"),
            "groupnorm:act": Rule(((5, "input"),), "GroupNormAct: aten::group_norm, norm_flop_counter: 5 (affine)"),
            "layernorm2d:act": Rule(((5, "input"),), "LayerNormAct2d: aten::layer_norm, norm_flop_counter: 5"),
            "expert_mix": Rule(((1, "macs"),), "CondConv2d's torch.matmul: aten::matmul, matmul_flop_jit"),
            "blurpool": Rule(((1, "macs"),), "BlurPool2d's F.conv2d with its fixed filter: aten::_convolution"),
            "upsample": Rule(((1, "output"),), "aten::upsample_nearest2d: elementwise_flop_counter(0, 1)"),
            "upsample:bilinear": Rule(((4, "output"),), "aten::upsample_bilinear2d: elementwise_flop_counter(0, 4)"),
            "avgpool2d:module": Rule((), "aten::avg_pool2d is not among the handled ops"),
            "avgpool2d:functional": Rule((), "aten::avg_pool2d is not among the handled ops"),
            "attention": Rule(
                (),
                "timm's default fused path: aten::scaled_dot_product_attention is not among the handled ops "
                "(timm's unfused q @ k, attn @ v would count as aten::matmul: TIMM_FUSED_ATTN=0 adds the MACs)",
            ),
        },
    ),
    "ptflops": Convention(
        "ptflops",
        "ptflops (pytorch backend)",
        "get_model_complexity_info(model, (C, H, W))[0], the default pytorch backend",
        "ptflops 0.7.5",
        "ptflops/pytorch_ops.py MODULES_MAPPING and FUNCTIONAL_MAPPING; ptflops/pytorch_engine.py",
        {
            "conv2d": Rule(
                ((1, "macs"), (1, "bias")), "conv_flops_counter_hook: k² × Cin/g × Cout per position, + bias adds"
            ),
            "linear": Rule(((1, "macs"), (1, "bias")), "linear_flops_counter_hook: in × out + bias per sample"),
            "batchnorm2d": Rule(((2, "input"),), "bn_flops_counter_hook: input elements × 2 (affine)"),
            "maxpool2d": Rule(
                ((2, "input"),),
                "pool_flops_counter_hook on nn.MaxPool2d (input elements), and again the patched F.max_pool2d "
                "its forward calls",
            ),
            "relu": Rule(
                ((2, "output"),),
                "relu_flops_counter_hook on nn.ReLU, and again the patched F.relu that nn.ReLU.forward calls",
            ),
            "relu6": Rule(
                ((1, "output"),), "relu_flops_counter_hook on nn.ReLU6 (its forward calls F.hardtanh, not patched)"
            ),
            "silu": Rule(((1, "output"),), "the patched F.silu that nn.SiLU.forward calls (no module hook)"),
            "gelu": Rule(
                ((1, "output"),),
                "timm's GELU (timm.layers.activations.GELU, no hook) calls the patched F.gelu; an nn.GELU would "
                "count twice (relu_flops_counter_hook + F.gelu), and no shipped spec builds one",
            ),
            "gelu_tanh": Rule(
                ((2, "output"),),
                "MobileNetV5's nn.GELU(approximate='tanh') (torch's module, not timm's GELU): "
                "relu_flops_counter_hook on it, and again the patched F.gelu its forward calls",
            ),
            "avgpool:module": Rule(
                ((2, "input"),),
                "pool_flops_counter_hook on nn.AdaptiveAvgPool2d, and again the patched F.adaptive_avg_pool2d it calls",
            ),
            "avgpool:functional": Rule(((1, "input"),), "the patched F.adaptive_avg_pool2d"),
            "avgpool:mean": Rule((), "Tensor.mean is not patched"),
            "conv2d:same": Rule((), f"Conv2dSame — {_TIMM_ZERO}; F.conv2d is not patched"),
            "conv2d:cond": Rule((), f"CondConv2d — {_TIMM_ZERO}; F.conv2d is not patched"),
            "linear:timm": Rule((), f"timm's Linear — {_TIMM_ZERO}; F.linear is not patched"),
            "batchnorm2d:act": Rule((), f"BatchNormAct2d — {_TIMM_ZERO}; F.batch_norm is not patched"),
            "groupnorm:act": Rule((), f"GroupNormAct — {_TIMM_ZERO}; F.group_norm is not patched"),
            "layernorm2d:act": Rule((), f"LayerNormAct2d — {_TIMM_ZERO}; F.layer_norm is not patched"),
            "expert_mix": Rule(((1, "macs"),), "the patched torch.matmul: input elements × output columns"),
            "upsample": Rule(((1, "output"),), "the patched F.interpolate: size × N·C = output elements"),
            "avgpool2d:module": Rule(
                ((2, "input"),), "pool_flops_counter_hook on nn.AvgPool2d, and again the patched F.avg_pool2d it calls"
            ),
            "avgpool2d:functional": Rule(((1, "input"),), "the patched F.avg_pool2d: input elements"),
            "evonorm_s0": Rule(
                ((1, "batch_stats"),), "EvoNorm2dS0's group_std: var(…).add(eps), a patched Tensor.add, 1 per group"
            ),
            "attention": Rule(
                (),
                "F.scaled_dot_product_attention is not patched (nor, unfused, the @ operator, Tensor.softmax)",
            ),
        },
    ),
    "thop": Convention(
        "thop",
        "thop profile",
        "thop.profile(model, inputs=(x,))[0]",
        "thop 0.1.1.post2209072238",
        "thop/profile.py register_hooks; thop/vision/basic_hooks.py; thop/vision/calc_func.py",
        {
            "conv2d": Rule(((1, "macs"),), "count_convNd → calculate_conv2d_flops: output × Cin/g × k²; no bias"),
            "linear": Rule(((1, "macs"),), "count_linear: in_features × output elements; no bias"),
            "batchnorm2d": Rule(((4, "input"),), "count_normalization: calculate_norm = 2 × input, × 2 (affine)"),
            "avgpool:module": Rule(
                ((1, "input"), (1, "output")),
                "count_adap_avgpool: (kernel H·W + 1 divide) × output elements = input + output",
            ),
            "avgpool:functional": Rule((), "not a module: no hook"),
            "avgpool:mean": Rule((), "not a module: no hook"),
            "conv2d:same": Rule((), f"Conv2dSame — {_TIMM_ZERO}"),
            "conv2d:cond": Rule((), f"CondConv2d — {_TIMM_ZERO}"),
            "linear:timm": Rule((), f"timm's Linear — {_TIMM_ZERO}"),
            "batchnorm2d:act": Rule((), f"BatchNormAct2d — {_TIMM_ZERO}"),
            "avgpool2d:module": Rule(((1, "output"),), "count_avgpool on nn.AvgPool2d: 1 per output element"),
            "attention": Rule((), "MultiQueryAttention2d / Attention2d: no hook; SDPA (or q @ k) is not a module"),
        },
    ),
    "torchinfo": Convention(
        "torchinfo",
        "torchinfo summary",
        "summary(model, input_size=(N, C, H, W)).total_mult_adds",
        "torchinfo 1.8.0",
        "torchinfo/layer_info.py LayerInfo.calculate_macs; torchinfo/model_statistics.py",
        {
            "conv2d": Rule(
                ((1, "macs"), (1, "bias")),
                "calculate_macs: (weight + bias parameters) × N·Ho·Wo for 'Conv' layers",
            ),
            "linear": Rule(((1, "macs"), (1, "bias")), "calculate_macs: N × (weight + bias parameters)"),
            "batchnorm2d": Rule(((1, "batch_params"),), "calculate_macs: N × parameters (γ, β): 2C per sample"),
            "rmsnorm2d:alone": Rule(
                ((1, "batch_params"),), "timm's RmsNorm2d, a leaf with a weight: calculate_macs N × parameters (γ)"
            ),
            "conv2d:same": Rule(((1, "macs"), (1, "bias")), "Conv2dSame: a leaf whose class name has 'Conv'"),
            "conv2d:cond": Rule((), "counted on the CondConv2d's parameters (expert_mix)"),
            "expert_mix": Rule(
                ((1, "param_positions"),), "CondConv2d, a 'Conv' leaf: its expert weights (E × P) × N·Ho·Wo"
            ),
            "linear:timm": Rule(((1, "macs"), (1, "bias")), "timm's Linear: a leaf, N × (weight + bias parameters)"),
            "batchnorm2d:act": Rule((), "BatchNormAct2d holds act and drop: not a leaf, not counted"),
            "groupnorm:act": Rule((), "GroupNormAct holds act and drop: not a leaf, not counted"),
            "layernorm2d:act": Rule((), "LayerNormAct2d holds act and drop: not a leaf, not counted"),
            "evonorm_s0": Rule(((2, "batch_channels"),), "EvoNorm2dS0, a leaf: N × (weight + bias), its v is neither"),
            "attention": Rule((), "the attention product runs in no leaf module: not counted"),
        },
    ),
}
"""Every preset by name."""


def convention(name: str) -> Convention:
    """The preset called ``name``, or a UsageError listing them."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise UsageError(f"unknown convention {name!r}; expected one of {', '.join(CONVENTIONS)}") from None


def op_key(row: Row) -> str:
    """The key a convention's rules use for this row: the op name, with its variant (``avgpool:mean``); a graph
    layer's node is ``graph:OP`` (its rules: analysis/graph_conventions.py)."""
    if row.op.graph is not None:
        return f"graph:{row.op.name}"
    return f"{row.op.name}:{row.op.variant}" if row.op.variant else row.op.name


def quantity(row: Row, name: str, batch: Num) -> Num:
    """One of QUANTITIES for one instance of ``row``."""
    if name == "macs":
        return row.costs["macs"]
    if name == "bias":
        return row.costs["activations"] if row.op.bias else 0
    if name == "input":
        return batch * numel(row.op.input)
    if name == "output":
        return row.costs["activations"]
    if name == "batch_params":
        return batch * row.costs["params"]
    if name == "batch_channels":
        return batch * row.op.input[0]
    if name == "param_positions":
        return batch * row.costs["params"] * row.op.attrs.get("positions", 1)
    if name == "batch_stats":
        return batch * row.op.attrs.get("stats", 0)
    raise UsageError(f"unknown quantity {name!r}")  # pragma: no cover - rules are fixed data


def row_count(row: Row, conv: Convention, batch: Num) -> Num:
    """What ``conv`` counts for one instance of ``row`` (a graph node: analysis/graph_conventions.py, which
    refuses a count it cannot reproduce)."""
    if row.op.graph is not None:
        return graph_count(row, conv.name, batch)
    total: Num = 0
    for coef, q in conv.rule(op_key(row)).terms:
        total = total + coef * quantity(row, q, batch)
    return total


def apply(report: Report, name: str) -> Report:
    """A copy of ``report`` whose ``macs`` are what the named tool counts, row by row."""
    conv = convention(name)
    if conv.name == "costmodel":
        return report
    rows = [replace(r, costs={**r.costs, "macs": row_count(r, conv, report.batch)}) for r in report.rows]
    return replace(report, rows=rows, convention=conv, _totals=None)


def explain(report: Report, a: str, b: str) -> list[Difference]:
    """Where conventions ``a`` and ``b`` differ, op key by op key: counts, difference, and each rule.

    The differences add up to ``total(b) − total(a)`` exactly.
    """
    ca, cb = convention(a), convention(b)
    out: dict[str, Difference] = {}
    for r in report.rows:
        key = op_key(r)
        d = out.get(key)
        if d is None:
            if key.startswith("graph:"):
                d = out[key] = Difference(key, GRAPH_RULES[ca.name], GRAPH_RULES[cb.name])
            else:
                d = out[key] = Difference(key, ca.rule(key), cb.rule(key))
        d.count_a = d.count_a + r.times * row_count(r, ca, report.batch)
        d.count_b = d.count_b + r.times * row_count(r, cb, report.batch)
    return list(out.values())


@dataclass
class Difference:
    """One op key's count under two conventions, and the rules behind each."""

    op: str
    rule_a: Rule
    rule_b: Rule
    count_a: Num = 0
    count_b: Num = 0

    @property
    def diff(self) -> Num:
        """count_b − count_a."""
        return self.count_b - self.count_a
