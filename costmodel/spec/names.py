"""The name tables: every activation and norm a spec can name, once, with what each layer needs of it.

One row per name. The spec's ``Activation`` / ``Gate`` / ``Norm`` literals (spec/fields.py), the engine's
FLOPs and saving rules (engine/ops.py ``ACTIVATION_FLOPS``, ``ACTIVATION_SAVES``, ``GROUPED_NORMS``,
``ACTIVATING_NORMS``; its ``NORMS`` op functions are checked against :data:`NORMS` there), torchref's modules
(``_ACT``, ``_norm``) and the importers' recognition (the aten and ONNX op names) all derive from here.
A new activation or norm is one row here (and, for a norm, its op function in engine/ops.py and its module
in torchref, both refused at import when missing).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Activation:
    """One activation (or SE gate).

    ``flops``: FLOPs per element (the costmodel convention); ``saves``: what autograd keeps for backward
    (engine/ops.py SAVES tokens, measured with saved_tensors_hooks, torch 2.13); ``torch``: the ``torch.nn``
    class and its keyword arguments; ``aten`` / ``onnx``: the op names a trace shows for it (relu6 and
    gelu_tanh are told apart from hardtanh and gelu by their arguments, in the importers); ``gate``: only SE's
    gate may name it; ``aliases``: other spellings the spec accepts for it.
    """

    flops: int
    saves: tuple[str, ...]
    torch: str
    torch_kwargs: tuple[tuple[str, str], ...] = ()
    aten: tuple[str, ...] = ()
    onnx: tuple[str, ...] = ()
    gate: bool = False
    aliases: tuple[str, ...] = ()


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(1, ("output",), "ReLU", aten=("relu",), onnx=("Relu",)),  # max(x, 0)
    "relu6": Activation(2, ("input",), "ReLU6"),  # min(max(x, 0), 6); aten hardtanh(0, 6), ONNX Clip(0, 6)
    # 1 / (1 + exp(-x)): neg, exp, add, divide
    "sigmoid": Activation(4, ("output",), "Sigmoid", aten=("sigmoid",), onnx=("Sigmoid",), gate=True),
    "silu": Activation(5, ("input",), "SiLU", aten=("silu",), aliases=("swish",)),  # x · sigmoid(x)
    # min(max(x + 3, 0), 6) / 6: add, max, min, divide
    "hardsigmoid": Activation(4, ("input",), "Hardsigmoid", aten=("hardsigmoid",), onnx=("HardSigmoid",), gate=True),
    "hardswish": Activation(5, ("input",), "Hardswish", aten=("hardswish",), onnx=("HardSwish",)),  # x · hsigmoid(x)
    "gelu": Activation(5, ("input",), "GELU", aten=("gelu",), onnx=("Gelu",)),  # x · ½(1 + erf(x / √2)): 5 ops
    # x · ½(1 + tanh(√(2/π)(x + 0.044715x³))): cube (2), scale, add, scale, tanh, add, multiply, halve
    "gelu_tanh": Activation(9, ("input",), "GELU", (("approximate", "tanh"),)),
}
"""Every activation and gate by name (the engine's FLOPs order)."""

ACTIVATION_NAMES: tuple[str, ...] = tuple(
    spelling for name, a in ACTIVATIONS.items() if not a.gate for spelling in (name, *a.aliases)
)
"""What a layer's ``activation`` may name (aliases included), besides ``none``."""

GATE_NAMES: tuple[str, ...] = tuple(name for name, a in ACTIVATIONS.items() if a.gate)
"""What SE's ``se_gate`` may name."""

ALIASES: dict[str, str] = {alias: name for name, a in ACTIVATIONS.items() for alias in a.aliases}
"""Other spellings of an activation → its name (``swish`` → ``silu``)."""


@dataclass(frozen=True)
class Norm:
    """One norm: ``grouped``: its statistics are over channel groups (``defaults.norm_groups`` /
    ``norm_group_size``); ``activating``: it is the activation too (no separate activation op); ``aten``: the
    aten op names a trace shows for it (rmsnorm and the EvoNorms run as small ops: the torch importer
    reads them from their module class)."""

    grouped: bool = False
    activating: bool = False
    aten: tuple[str, ...] = ()


NORMS: dict[str, Norm] = {
    "batchnorm": Norm(
        aten=("native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "batch_norm")
    ),
    "groupnorm": Norm(grouped=True, aten=("native_group_norm",)),
    "layernorm": Norm(aten=("native_layer_norm",)),
    "evonorm_s0": Norm(grouped=True, activating=True),
    "evonorm_b0": Norm(activating=True),
    "rmsnorm": Norm(),
}
"""Every norm by name (``none`` is no norm)."""
