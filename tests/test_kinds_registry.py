"""Every registered kind has all its parts (model, block, torch builder, matcher) and they agree: on random
instances, the engine's counts equal torch's on the module torchref builds (params = sum(p.numel()),
MACs = FlopCounterMode total // 2, output = a forward pass), and importing that module back
(``costmodel.from_torch``) gives a spec with the same counts."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Literal

import pytest

import costmodel
from costmodel.engine.blocks import Flow, conv_unit
from costmodel.engine.kinds import KINDS, Kind, Matcher, missing_parts
from costmodel.spec.layers import ConvLike

Layers = list[dict[str, Any]]


def _c(rng: random.Random, lo: int = 4, hi: int = 24, step: int = 4) -> int:
    return rng.randrange(lo, hi + 1, step)


def _s(rng: random.Random) -> int:
    return rng.choice([1, 2])


def _k(rng: random.Random) -> int:
    return rng.choice([3, 5])


def _head(rng: random.Random) -> Layers:
    return [{"kind": "conv", "out_channels": _c(rng), "kernel": 3}]


def _basic(r: random.Random, x: int) -> Layers:
    """A strided basic block, then one with the residual and one without (shape kept: both are said)."""
    return [
        {"kind": "basic", "out_channels": x, "stride": _s(r)},
        {"kind": "basic", "out_channels": x, "residual": True},
        {"kind": "basic", "out_channels": x, "residual": False},
        # ResNet's BasicBlock: a projection shortcut (stride or width changes), then the identity
        {"kind": "basic", "out_channels": _c(r), "stride": _s(r), "resnet": True},
        {"kind": "basic", "out_channels": x, "resnet": True},
    ]


# kind -> random (layers, input channels); every instance is one the importer can say exactly
INSTANCES: dict[str, Callable[[random.Random, int], Layers]] = {
    "conv": lambda r, c: [{"kind": "conv", "out_channels": _c(r), "kernel": r.choice([1, 3, 5]), "stride": _s(r)}],
    "mbconv": lambda r, c: [
        {"kind": "mbconv", "out_channels": _c(r), "expansion": r.choice([1, 4, 6]), "kernel": _k(r), "stride": _s(r)}
        | ({"se": 0.25} if r.random() < 0.5 else {})
    ],
    "fused_mbconv": lambda r, c: [
        {"kind": "fused_mbconv", "out_channels": _c(r), "expansion": r.choice([2, 4]), "kernel": 3, "stride": _s(r)}
    ],
    "dwsep": lambda r, c: [{"kind": "dwsep", "out_channels": _c(r), "kernel": _k(r), "stride": _s(r)}],
    "basic": lambda r, c: _basic(r, _c(r)),
    "bottleneck": lambda r, c: [
        {"kind": "bottleneck", "out_channels": c, "mid_channels": _c(r)},  # identity shortcut
        {"kind": "bottleneck", "out_channels": _c(r, 16, 32), "stride": _s(r)},  # a 1×1 projection shortcut
    ],
    "pool": lambda r, c: [*_head(r), {"kind": "pool"}],
    "linear": lambda r, c: [*_head(r), {"kind": "pool"}, {"kind": "linear", "out_features": _c(r, 2, 20, 1)}],
    "dropout": lambda r, c: [
        *_head(r),
        {"kind": "pool"},
        {"kind": "dropout", "p": 0.2},
        {"kind": "linear", "out_features": _c(r, 2, 20, 1)},
    ],
    # grouped 1×1s: torchref builds a one-group 1×1 as a split/cat of one part, which the importer does not read
    "mixconv": lambda r, c: [
        {"kind": "mixconv", "out_channels": _c(r), "expansion": r.choice([2, 3]), "kernels": [3, 5], "stride": _s(r)}
        | {"expansion_groups": 2, "projection_groups": 2}
    ],
    "ghost": lambda r, c: [{"kind": "ghost", "out_channels": _c(r)}],
    "ghost_bottleneck": lambda r, c: [
        {"kind": "ghost_bottleneck", "mid_channels": _c(r, 8, 32), "out_channels": _c(r), "stride": _s(r)}
    ],
    "uir": lambda r, c: [
        {"kind": "uir", "out_channels": _c(r, 8, 24, 8), "mid_kernel": 3, "stride": _s(r), "expansion": 4}
        | ({"start_kernel": 3} if r.random() < 0.5 else {})
    ],
    "condconv": lambda r, c: [
        {"kind": "condconv", "out_channels": _c(r), "expansion": r.choice([2, 4]), "experts": r.choice([2, 4])}
    ],
    "rep_dwsep": lambda r, c: [{"kind": "rep_dwsep", "out_channels": _c(r), "kernel": _k(r), "stride": _s(r)}],
    "attention": lambda r, c: [
        {"kind": "attention", "out_channels": c, "heads": r.choice([1, 2]), "key_dim": _c(r, 4, 8), "kv_stride": 2}
    ],
    "repghost": lambda r, c: [{"kind": "repghost", "out_channels": _c(r), "form": "deployed"}],
    "repghost_bottleneck": lambda r, c: [
        {"kind": "repghost_bottleneck", "mid_channels": _c(r, 8, 32), "out_channels": _c(r), "stride": _s(r)}
    ],
    "concat": lambda r, c: [  # MobileNetV5's fusion: the map before and a strided chain from it, resized back
        {"kind": "conv", "out_channels": _c(r), "kernel": 3, "name": "a"},
        {"kind": "conv", "out_channels": _c(r), "kernel": 3, "stride": 2},
        {"kind": "conv", "out_channels": _c(r), "kernel": 3, "name": "b"},
        {"kind": "concat", "inputs": ["a", "b"], "resize": r.choice(["nearest", "bilinear"])},
    ],
    "resize": lambda r, c: [
        *_head(r),
        {"kind": "resize", "size": r.choice([2, 3, 4]), "mode": r.choice(["timm", "nearest"])},
    ],
    "norm": lambda r, c: [*_head(r), {"kind": "norm"}],
    "flatten": lambda r, c: [*_head(r), {"kind": "pool"}, {"kind": "flatten"}],
    "maxpool": lambda r, c: [*_head(r), {"kind": "maxpool", "kernel": 3, "stride": r.choice([1, 2]), "padding": 1}],
    "graph": lambda r, c: [  # a residual conv unit as op nodes, reading a named earlier layer
        {"kind": "conv", "out_channels": c, "kernel": 3, "name": "stem"},
        {
            "kind": "graph",
            "inputs": ["stem"],
            "repeat": r.choice([1, 2]),
            "nodes": [
                {"op": "conv", "out": c, "kernel": 3, "padding": 1, "groups": r.choice([1, c])},
                {"op": "batch_norm"},
                {"op": r.choice(["relu", "silu", "gelu"])},
                {"id": "y", "op": "add", "inputs": ["stem", "in"] if r.random() < 0.5 else ["in", "stem"]},
                {"op": "conv", "out": c, "kernel": 1, "bias": True},  # copy 2 adds `in` to `stem` again
            ],
        },
    ],
}

NOT_IMPORTED = {"graph"}  # the importer's graph fallback (branch graph-import) reads these back

BUILTIN = [name for name, k in KINDS.items() if k.model.__module__.startswith("costmodel.")]


def instance(kind: str, seed: int) -> dict[str, Any]:
    """A random spec (as data) holding ``kind``: a reproducible function of the kind's name and ``seed``."""
    rng = random.Random(f"{kind}-{seed}")
    c, h = _c(rng), rng.choice([8, 9, 12, 15])
    return {"input": {"channels": c, "height": h, "width": h + rng.choice([0, 1])}, "layers": INSTANCES[kind](rng, c)}


def counts(spec: Any) -> tuple[Any, ...]:
    r = costmodel.analyze(spec)
    return r.totals["params"], r.totals["macs"], tuple(r.output)


def all_counts(spec: Any) -> tuple[Any, ...]:
    r = costmodel.analyze(spec)
    return (*(r.totals[m] for m in ("params", "buffers", "macs", "flops")), tuple(r.output))


def agrees(data: dict[str, Any], imports: bool = True) -> Any:
    """The engine agrees with torch on torchref's module, and (``imports``) the module imports back to the same
    counts."""
    from torch.utils.flop_counter import FlopCounterMode

    from costmodel.torchref import build

    torch = pytest.importorskip("torch")
    spec = costmodel.NetworkSpec.model_validate(data)
    module, shape = build(spec)
    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = module(torch.zeros(shape))
    theirs = (sum(p.numel() for p in module.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:]))
    assert counts(spec) == theirs, data
    if not imports:
        return None
    back = costmodel.from_torch(module, shape[1:])
    assert counts(back) == theirs, (data, costmodel.import_report(back).problems)
    assert all_counts(back) == all_counts(spec), data  # FLOPs too: the import keeps every op (a residual add);
    # not activations: a dropout (the identity at inference) leaves no op to import
    return back


def test_every_builtin_kind_has_instances():
    assert sorted(BUILTIN) == sorted(INSTANCES)
    assert len(BUILTIN) == 24  # 22 + maxpool (ResNet stem) + graph (op nodes)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_has_all_its_parts(name):
    k = KINDS[name]
    assert missing_parts(k) == []
    assert callable(k.block) and k.model.model_fields["kind"].annotation == Literal[name]  # type: ignore[comparison-overlap]


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_every_kind_agrees_with_torch_and_its_import(name):
    pytest.importorskip("torch")
    agrees(instance(name, 0), imports=name not in NOT_IMPORTED)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_every_kind_agrees_on_more_instances(name, seed):
    pytest.importorskip("torch")
    agrees(instance(name, seed), imports=name not in NOT_IMPORTED)


def test_bottleneck_with_a_projection_imports():
    """A bottleneck whose shortcut is a 1×1 conv (ResNet's first block of a stage; torchvision's resnet50
    too) imports as a bottleneck (it was read as its shortcut conv alone, the main branch left out)."""
    pytest.importorskip("torch")
    layer = {"kind": "bottleneck", "out_channels": 32, "stride": 2}
    agrees({"input": {"channels": 16, "height": 8, "width": 8}, "layers": [layer]})


class _HalfLayer(ConvLike):
    """A toy kind for the check below: one conv to out_channels."""

    kind: Literal["toy_incomplete"]


def _half(layer: Any, a: Any) -> Flow:
    f = Flow(a.inp)
    conv_unit(f, a, "conv", layer.out_channels, layer.kernel, a.stride)
    return f


def test_the_parts_check_fires_on_an_incomplete_kind():
    bare = Kind("toy_incomplete", _HalfLayer, _half)
    assert missing_parts(bare) == ["torch builder", "matcher (or an unmatched= reason)"]
    ok = Kind("toy_incomplete", _HalfLayer, _half, torch=lambda *a: None, unmatched="a test kind")
    assert missing_parts(ok) == []
    dangling = Kind(
        "toy_incomplete",
        _HalfLayer,
        _half,
        torch="costmodel.torchref:no_such_builder",
        matchers=(Matcher("costmodel.importers.recognise:no_such_matcher", "chain", 1),),
    )
    assert [p.split(" '")[0] for p in missing_parts(dangling)] == ["torch builder", "matcher"]
    with pytest.raises(ValueError, match="shape"):
        Matcher(lambda: None, "loop", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="units"):
        Matcher(lambda: None, "primitive", 1)


def test_torchref_refuses_a_kind_registered_without_a_builder():
    pytest.importorskip("torch")
    from costmodel.torchref import build

    costmodel.register(_HalfLayer, _half)
    assert missing_parts(KINDS["toy_incomplete"]) == ["torch builder", "matcher (or an unmatched= reason)"]
    spec = costmodel.loads(
        "input: {channels: 3, height: 8, width: 8}\nlayers:\n  - {kind: toy_incomplete, out_channels: 4}\n"
    )
    with pytest.raises(costmodel.UsageError, match="toy_incomplete.*torch= builder"):
        build(spec)


# ------------------------------------------------------------------------ every norm and every activation

from costmodel.spec import names  # noqa: E402

LAYER_ACTS = [n for n, a in names.ACTIVATIONS.items() if not a.gate]


def _one_name(defaults: dict[str, Any], se_gate: str | None = None) -> dict[str, Any]:
    mb: dict[str, Any] = {"kind": "mbconv", "out_channels": 16, "expansion": 4, "se": 0.25}
    if se_gate is not None:
        mb["se_gate"] = se_gate
    layers = [{"kind": "conv", "out_channels": 16, "stride": 2}, mb, {"kind": "dwsep", "out_channels": 24}]
    return {"input": {"channels": 8, "height": 13, "width": 12}, "defaults": defaults, "layers": layers}


def test_the_name_tables_are_the_spec_literals():
    from typing import get_args

    from costmodel.engine import ops
    from costmodel.spec.fields import Activation, Gate, Norm

    assert get_args(Activation) == ("relu", "relu6", "silu", "swish", "hardswish", "gelu", "gelu_tanh", "none")
    assert get_args(Gate) == ("sigmoid", "hardsigmoid")
    assert get_args(Norm) == ("batchnorm", "groupnorm", "layernorm", "evonorm_s0", "evonorm_b0", "rmsnorm", "none")
    assert set(ops.ACTIVATION_FLOPS) == set(ops.ACTIVATION_SAVES) == set(names.ACTIVATIONS)
    assert set(ops.NORMS) == set(names.NORMS)


@pytest.mark.parametrize("act", LAYER_ACTS)
def test_every_activation_agrees_with_torch_and_imports_back(act):
    pytest.importorskip("torch")
    back = agrees(_one_name({"activation": act}))
    assert costmodel.import_report(back).exact
    assert back.defaults.activation == act


@pytest.mark.parametrize("gate", names.GATE_NAMES)
def test_every_gate_agrees_with_torch_and_imports_back(gate):
    pytest.importorskip("torch")
    back = agrees(_one_name({"activation": "relu"}, se_gate=gate))
    assert [layer.kind for layer in back.layers] == ["conv", "mbconv", "dwsep"]
    assert back.layers[1].se_gate == gate  # type: ignore[union-attr]


def _norm_spec(norm: str) -> Any:
    return costmodel.NetworkSpec.model_validate(_one_name({"norm": norm, "norm_groups": 4}))


@pytest.mark.parametrize("norm", sorted(names.NORMS))
def test_every_norm_agrees_with_torch(norm):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    spec = _norm_spec(norm)
    r, theirs = costmodel.analyze(spec), measure(spec)
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"], r.output) == (
        theirs["params"],
        theirs["buffers"],
        theirs["macs"],
        theirs["output"],
    )


_EVO = pytest.mark.xfail(
    strict=True, reason="the importer knows EvoNorm by timm's classes (EvoNorm2dS0/B0), not torchref's EvoNormS0/B0"
)


@pytest.mark.parametrize(
    "norm", [pytest.param(n, marks=[_EVO] if n.startswith("evonorm") else []) for n in names.NORMS]
)
def test_every_norm_imports_back(norm):
    pytest.importorskip("torch")
    from costmodel.torchref import build

    spec = _norm_spec(norm)
    module, shape = build(spec)
    back = costmodel.from_torch(module, shape[1:])
    assert costmodel.import_report(back).exact, costmodel.import_report(back).problems
    assert back.defaults.norm == norm
    assert counts(back) == counts(spec)


def test_torchref_refuses_a_norm_it_has_no_module_for():
    pytest.importorskip("torch")
    from costmodel.torchref import _Cfg, _norm

    spec = costmodel.NetworkSpec.model_validate(_one_name({}))
    with pytest.raises(costmodel.UsageError, match="no module for the norm 'fancynorm'"):
        _norm("fancynorm", 8, _Cfg(spec.layers[0], spec))


# ------------------------------------------------------------------ a metric an op forgets is an error, not 0


def test_an_op_without_a_metric_is_refused():
    from costmodel.engine import ops

    with pytest.raises(ValueError, match=r"missing \['flops'\]"):
        ops.Op("toy", "", {"params": 1, "buffers": 0, "macs": 2}, (1, 1, 1), (1, 1, 1), "conv")
    with pytest.raises(ValueError, match=r"unknown \['bytes'\]"):
        ops.Op("toy", "", {"params": 1, "buffers": 0, "macs": 2, "flops": 4, "bytes": 8}, (1,), (1,), "conv")


def test_a_new_metric_no_op_gives_is_an_error_not_zero(monkeypatch):
    from costmodel.engine import metrics, ops

    monkeypatch.setattr(metrics, "OP_METRICS", (*metrics.OP_METRICS, "bytes"))
    with pytest.raises(ValueError, match=r"op conv2d .*missing \['bytes'\]"):
        ops.conv2d((3, 8, 8), 1, 4, 3)
