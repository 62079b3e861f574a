"""Training costs against torch itself: a real step ``model(x).sum().backward()`` in train mode on CPU.

* training MACs = FlopCounterMode (forward + backward) / 2 with its ``convolution_backward`` rule
  replaced (``custom_mapping``) by one counting each computed gradient at the forward conv's cost;
  under ``convention="torch"`` = FlopCounterMode's own figure / 2, unmodified;
* saved-activation bytes = the bytes of the distinct storages ``saved_tensors_hooks`` packs in the
  forward pass, parameters' storages excluded;
* output shape and dtype of the real forward pass.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

import costmodel
from conftest import saved_storages

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count  # noqa: E402

from costmodel.torchref import build  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted(p.name for p in (ROOT / "specs").glob("seed_*.yaml"))
HALF = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}


def _exact_conv_backward(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape,
    **kwargs,
) -> int:
    """Each gradient convolution_backward computes (input: mask[0], weight: mask[1]) at the forward's cost."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def torch_step(spec: costmodel.NetworkSpec, dtype: str = "float32", exact: bool = True) -> dict[str, Any]:
    """One real training step of the equivalent module: MACs (FlopCounterMode / 2), saved bytes, output."""
    torch.manual_seed(0)
    model, shape = build(spec)
    model.train()
    x = torch.randn(shape)
    mapping = {torch.ops.aten.convolution_backward: _exact_conv_backward} if exact else {}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        with saved_storages(model) as storages:
            if dtype == "float32":
                y = model(x)
            else:
                with torch.autocast("cpu", dtype=HALF[dtype]):
                    y = model(x)
        y.float().sum().backward()
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return {"macs": flops // 2, "saved": sum(storages.values()), "shape": tuple(y.shape), "dtype": y.dtype}


def check(spec: costmodel.NetworkSpec | dict[str, Any], dtype: str = "float32", torch_convention: bool = True) -> None:
    if isinstance(spec, dict):
        spec = costmodel.NetworkSpec.model_validate(spec)
    ours = costmodel.train(spec, dtype=dtype)
    theirs = torch_step(spec, dtype)
    out = (ours.batch, *ours.report.output)
    width = {4: torch.float32, 2: HALF.get(dtype, torch.float32)}[ours.output_element_bytes]
    got = (ours.totals["training_macs"], ours.totals["saved_bytes"], out, width)
    assert got == (theirs["macs"], theirs["saved"], theirs["shape"], theirs["dtype"]), spec.model_dump()
    if torch_convention:
        flop = costmodel.train(spec, dtype=dtype, convention="torch").totals["training_macs"]
        assert flop == torch_step(spec, dtype, exact=False)["macs"]


# ---------------------------------------------------------------- the newer kinds' saving rules, against torch

STEM = {"kind": "conv", "out_channels": 8, "kernel": 3, "name": "stem"}


@pytest.mark.parametrize(
    "layers",
    [
        # torch.cat saves nothing: MixNet's kernel groups, a concat of named layers (nearest / bilinear resize)
        [{"kind": "mixconv", "out_channels": 8, "expansion": 2, "kernels": [3, 5]}],
        [{"kind": "conv", "out_channels": 4, "kernel": 1, "stride": 2, "name": "low"},
         {"kind": "concat", "inputs": ["stem", "low"], "resize": "nearest"}],
        [{"kind": "conv", "out_channels": 4, "kernel": 1, "stride": 2, "name": "low"},
         {"kind": "concat", "inputs": ["stem", "low"], "resize": "bilinear"}],
        # Ghost module: cat(…)[:, :out] is a view; with an odd out its storage holds one channel more
        [{"kind": "ghost", "out_channels": 7}, {"kind": "conv", "out_channels": 4, "kernel": 3}],
        [{"kind": "ghost", "out_channels": 8, "attention": "dfc"}],
        [{"kind": "ghost_bottleneck", "out_channels": 8, "mid_channels": 16, "se": 0.25}],
        # resize: avg pool saves its input; nearest and bilinear interpolate save nothing
        [{"kind": "resize", "size": 4, "mode": "avg"}, {"kind": "conv", "out_channels": 4, "kernel": 1}],
        [{"kind": "resize", "size": 12, "mode": "nearest"}, {"kind": "conv", "out_channels": 4, "kernel": 1}],
        [{"kind": "resize", "size": [5, 6], "mode": "bilinear"}, {"kind": "conv", "out_channels": 4, "kernel": 1}],
        # RMSNorm: input, rsqrt (1×H×W) and the normalized x; gelu_tanh saves its input
        [{"kind": "conv", "out_channels": 8, "kernel": 3, "norm": "rmsnorm", "activation": "gelu_tanh"}],
        [{"kind": "norm", "norm": "rmsnorm"}, {"kind": "conv", "out_channels": 4, "kernel": 1}],
        # MobileNetV4's layer scale: x · γ keeps x; its avg anti-aliasing pool keeps its input
        [{"kind": "uir", "out_channels": 8, "start_kernel": 3, "mid_kernel": 3, "expansion": 2.0,
          "layer_scale": True}],
        [{"kind": "uir", "out_channels": 8, "mid_kernel": 3, "expansion": 2.0, "stride": 2,
          "aa": "avg"}],
        # multi-query attention as matmuls: q/√dk, softmax, and k, v (copies broadcast to h > 1 heads)
        [{"kind": "attention", "out_channels": 8, "heads": 2, "key_dim": 4, "norm": "none"}],
        [{"kind": "attention", "out_channels": 8, "heads": 1, "key_dim": 4, "norm": "none"}],
        [{"kind": "attention", "out_channels": 8, "heads": 2, "key_dim": 4, "value_dim": 6, "kv_stride": 2,
          "layer_scale": True}],
        [{"kind": "attention", "out_channels": 8, "heads": 4, "key_dim": 8, "kv_stride": 2, "kv_kernel": 3,
          "norm": "rmsnorm"}],
    ],
)  # fmt: skip
def test_newer_kinds_against_saved_tensors_hooks(layers):
    check({"input": {"channels": 3, "height": 8, "width": 8, "batch": 2}, "layers": [STEM, *layers]})


def test_attention_saving_rule_by_hand_and_its_refusals():
    """Multi-query attention, 2 heads, dk = dv = 4, on 8×6×6 (L = P = 36), batch 2: q/√dk 2·2·36·4·4 = 2,304
    bytes, softmax 2·2·36·36·4 = 20,736, k and v broadcast to the heads 2·2·4·36·4 = 2,304 each (by hand;
    saved_tensors_hooks shows the same four storages)."""
    layer = {"kind": "attention", "out_channels": 8, "heads": 2, "key_dim": 4, "norm": "none", "residual": False}
    spec = costmodel.NetworkSpec.model_validate(
        {"input": {"channels": 8, "height": 6, "width": 6, "batch": 2}, "layers": [STEM, layer]}
    )
    step = costmodel.train(spec)
    (row,) = [t for t in step.rows if t.row.op.name == "attention"]
    assert row.saved_bytes == 2_304 + 20_736 + 2_304 + 2_304
    from costmodel.errors import UsageError

    with pytest.raises(UsageError, match="autocast"):
        costmodel.train(spec, dtype="bf16-mixed")
    mhsa = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 8, "height": 6, "width": 6},
            "layers": [STEM, {**{k: v for k, v in layer.items() if k != "key_dim"}, "multi_query": False}],
        }
    )
    with pytest.raises(UsageError, match="not modelled yet"):
        costmodel.train(mhsa)
    one_head = costmodel.NetworkSpec.model_validate(  # one head: refused too (it read the key tensor 1 of 1 input)
        {
            "input": {"channels": 8, "height": 6, "width": 6},
            "layers": [STEM, {"kind": "attention", "out_channels": 8, "heads": 1, "multi_query": False}],
        }
    )
    with pytest.raises(UsageError, match="not modelled yet"):
        costmodel.train(one_head)


def test_rmsnorm_as_the_first_layer_saves_only_the_normalized_input():
    """RMSNorm on the network input (needs no grad), 3×8×8, batch 2: only y = x·rsqrt(…) is saved, for γ's
    gradient — 2·3·8·8·4 = 1,536 bytes (by hand); pow, rsqrt and the first multiply record nothing."""
    spec = costmodel.NetworkSpec.model_validate(
        {"input": {"channels": 3, "height": 8, "width": 8, "batch": 2}, "layers": [{"kind": "norm", "norm": "rmsnorm"}]}
    )
    assert costmodel.train(spec).totals["saved_bytes"] == 1_536
    check(spec)


# ---------------------------------------------------------------- 'same' padding: Conv2dSame saves its padded input

SAME = {"kind": "conv", "out_channels": 6, "kernel": 3, "stride": 2, "padding": "same"}


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize(
    "layers",
    [
        [SAME],  # the first layer: F.pad copies the network input (which needs no grad); the conv saves the copy
        [STEM, SAME],
        [STEM, {**SAME, "kernel": 5}],
        [STEM, {**SAME, "kernel": 1}],  # a 1×1 at stride 2: a pad of 0 on an even size, still a new tensor
        [STEM, {**SAME, "stride": 1, "kernel": 3, "dilation": 2}, {**SAME, "kernel": 3, "dilation": 2}],
        [STEM, {**SAME, "out_channels": 8, "groups": 8}],  # depthwise
    ],
)  # fmt: skip
def test_same_padding_saves_the_padded_input(layers, size):
    """torchref's Conv2dSame (timm's): ``F.pad`` then the conv, which saves the padded tensor, not its input."""
    spec = {"input": {"channels": 3, "height": size, "width": size - 1, "batch": 2}, "layers": layers}
    check(spec)
    check(spec, "bf16-mixed", torch_convention=False)


def test_same_padding_pinned_by_hand():
    """A 3×3 s2 'same' conv on 3×8×8, batch 2: ceil(8/2) = 4, pad (4 − 1)·2 + 3 − 8 = 1 (0 before, 1 after), so
    F.pad's copy is 3×9×9 — 2·3·81·4 = 1,944 bytes saved, not the input's 2·3·64·4 = 1,536."""
    spec = spec_of({"input": {"channels": 3, "height": 8, "width": 8, "batch": 2}, "layers": [SAME]})
    (row,) = [t for t in costmodel.train(spec).rows if t.row.op.name == "conv2d"]
    assert row.saved == [("padded input", 1_944)]
    from costmodel.errors import UsageError

    symbolic = spec_of({"input": {"channels": 3, "height": "H", "width": "H"}, "layers": [SAME]})
    with pytest.raises(UsageError, match="symbolic size"):  # the pad depends on H mod s: refused, not guessed
        costmodel.train(symbolic)


TIMM_CHECKED = [
    "tf_efficientnet_lite0",  # pad_type: same (Conv2dSame)
    "tf_efficientnet_b0",
    "tf_mixnet_s",  # MixedConv2d of Conv2dSame
    "efficientnet_b0_gn",  # GroupNormAct
    "test_efficientnet_gn",
    "test_efficientnet_ln",  # LayerNormAct2d
    "efficientnet_cc_b0_4e",  # CondConv2d
    "tf_efficientnet_cc_b0_4e",  # CondConv2d with 'same' padding
]


@pytest.mark.parametrize("name", TIMM_CHECKED)
def test_saved_bytes_against_timm(name):
    """Shipped specs at 64 px, batch 2, against timm's own model (zoo env): the bytes ``saved_tensors_hooks``
    packs in its train-mode forward (tests/test_import_training.py's measure)."""
    timm = pytest.importorskip("timm")
    from costmodel.spec import loader
    from tests.test_import_training import saved_bytes

    path = ROOT / "specs" / "timm" / f"{name}.yaml"
    data, src = loader.parse_yaml(path.read_text(), str(path))
    data["input"]["height"] = data["input"]["width"] = 64
    data["input"]["batch"] = 2
    ours = costmodel.train(loader.validate(data, src)).totals["saved_bytes"]
    assert ours == saved_bytes(timm.create_model(name, pretrained=False), (3, 64, 64), 2)


# ---------------------------------------------------------------- GroupNorm, LayerNorm2d

MB = {"kind": "mbconv", "out_channels": 8, "expansion": 4, "kernel": 3, "stride": 2, "se": 0.25}


@pytest.mark.parametrize("dtype", ["float32", "bf16-mixed", "fp16-mixed"])
@pytest.mark.parametrize(
    "defaults,layers",
    [
        ({"norm": "groupnorm", "norm_groups": 4}, [STEM, MB]),
        ({"norm": "groupnorm", "norm_groups": 1}, [{"kind": "norm"}, STEM]),  # on the network input
        ({"norm": "layernorm"}, [STEM, MB]),
        ({"norm": "layernorm"}, [{"kind": "norm"}, STEM]),
    ],
)  # fmt: skip
def test_groupnorm_and_layernorm_against_saved_tensors_hooks(defaults, layers, dtype):
    """GroupNorm (input; mean and rstd, N × G float32) and LayerNorm2d (input; mean and rstd, N·H·W float32)
    against a real step of torchref's module, float32 and under autocast."""
    spec = {"input": {"channels": 3, "height": 9, "width": 8, "batch": 2}, "defaults": defaults, "layers": layers}
    check(spec, dtype, torch_convention=dtype == "float32")


def test_groupnorm_pinned_by_hand_and_blur_refused():
    """GroupNorm(4 groups) on 8×4×4, batch 2: its input 2·8·16·4 = 1,024 bytes and mean, rstd 2·2·4·4 = 64.
    Blur pool stays refused: timm's 'blur' (reflect pad, which saves its input) and 'blurpc' (zero pad, which
    saves nothing; efficientnet_blur_b0 uses it) save different bytes, and ``aa: blur`` names neither."""
    gn = spec_of(
        {
            "input": {"channels": 8, "height": 4, "width": 4, "batch": 2},
            "defaults": {"norm": "groupnorm", "norm_groups": 4},
            "layers": [STEM],
        }
    )
    (row,) = [t for t in costmodel.train(gn).rows if t.row.op.name == "groupnorm"]
    assert row.saved == [("input", 1_024), ("mean/rstd", 64)]
    from costmodel.errors import UsageError

    blur = spec_of({"input": {"channels": 3, "height": 8, "width": 8}, "layers": [{**STEM, "stride": 2, "aa": "blur"}]})
    with pytest.raises(UsageError, match="'blurpool' is not modelled yet"):
        costmodel.train(blur)


# ---------------------------------------------------------------- CondConv

CC = {"kind": "condconv", "out_channels": 8, "expansion": 2, "kernel": 3, "experts": 3}


@pytest.mark.parametrize(
    "defaults,layer",
    [
        ({}, CC),
        ({}, {**CC, "stride": 2, "se": 0.25}),
        ({"bias": True}, {**CC, "experts": 2}),  # the mixed bias is not saved
        ({}, {**CC, "out_channels": 16}),
    ],
)  # fmt: skip
def test_condconv_against_saved_tensors_hooks(defaults, layer):
    """CondConv (timm's CondConv2d): mm(r, experts) saves r; the conv with groups N·g saves its input and the
    mixed per-sample weights (N·Cout·Cin/g·k², a new tensor). MACs: the mm's two gradients and the conv's; the
    torch convention multiplies the conv's weight gradient by all N·g groups."""
    inp = {"channels": 3, "height": 9, "width": 8, "batch": 2}
    check({"input": inp, "defaults": defaults, "layers": [STEM, layer]})


def test_condconv_refused_under_autocast():
    from costmodel.errors import UsageError

    spec = spec_of({"input": {"channels": 3, "height": 8, "width": 8}, "layers": [STEM, CC]})
    with pytest.raises(UsageError, match="CondConv under autocast"):
        costmodel.train(spec, dtype="bf16-mixed")


# ---------------------------------------------------------------- pinned by hand arithmetic


def test_depthwise_weight_gradient_pinned():
    """One 24-channel 3×3 depthwise conv on 8×8 whose input requires grad (a 1×1 conv before it):
    forward 24·8·8·9 = 13,824 MACs; costmodel: + input grad + weight grad = 3 × 13,824 = 41,472;
    FlopCounterMode: the weight gradient × groups (24): 13,824 · (1 + 1 + 24) = 359,424."""
    spec = {
        "input": {"channels": 24, "height": 8, "width": 8},
        "defaults": {"norm": "none", "activation": "none"},
        "layers": [
            {"kind": "conv", "out_channels": 24, "kernel": 1},
            {"kind": "conv", "out_channels": 24, "kernel": 3, "groups": 24},
        ],
    }
    ours = costmodel.train(spec_of(spec)).rows[1]
    theirs = costmodel.train(spec_of(spec), convention="torch").rows[1]
    assert (ours.forward_macs, ours.training_macs, theirs.training_macs) == (13_824, 41_472, 359_424)
    first = costmodel.train(spec_of(spec)).rows[0]  # 1×1 24→24 on 8×8: 36,864; no input gradient
    assert (first.grad_input_macs, first.training_macs) == (0, 2 * 36_864)
    check(spec)


def spec_of(data: dict[str, Any]) -> costmodel.NetworkSpec:
    return costmodel.NetworkSpec.model_validate(data)


def test_seed_mbconv_bn_pinned():
    """specs/seed_mbconv_bn.yaml (16→96→96→16 on 32×32, BN, SiLU): forward 4,030,464 MACs; weight grads
    the same; input grads all but the first conv: 884,736 + 1,572,864; saved: x (16·1024·4 = 65,536),
    each BN's input and 4C stats, each SiLU's input (96·1024·4 = 393,216 twice), the convs' inputs are
    the SiLU outputs (393,216 twice)."""
    t = costmodel.train("specs/seed_mbconv_bn.yaml")
    assert t.totals["training_macs"] == 2 * 4_030_464 + 884_736 + 1_572_864
    act = 96 * 1024 * 4
    bn = 2 * (act + 4 * 96 * 4) + 16 * 1024 * 4 + 4 * 16 * 4
    assert t.totals["saved_bytes"] == 65_536 + bn + 2 * act + 2 * act


@pytest.mark.parametrize("name", SEEDS)
def test_seeds_agree_with_torch(name):
    check(costmodel.load(ROOT / "specs" / name))


def test_optimizer_state_and_peak_pinned():
    """seed_mbconv (408 params): Adam keeps 2 × 408 float32 values = 3,264 bytes, momentum 1,632."""
    adam = costmodel.train("specs/seed_mbconv.yaml", optimizer="adam").totals
    mom = costmodel.train("specs/seed_mbconv.yaml", optimizer="momentum").totals
    assert (adam["optimizer_bytes"], mom["optimizer_bytes"], adam["param_bytes"], adam["grad_bytes"]) == (
        3_264,
        1_632,
        1_632,
        1_632,
    )
    assert adam["peak_bytes"] == 2 * 1_632 + 3_264 + adam["saved_bytes"] + adam["transient_bytes"]


# ---------------------------------------------------------------- every kind, against torch

KINDS = ["conv", "mbconv", "fused_mbconv", "dwsep", "basic", "bottleneck"]


def layer(kind: str, cout: int, s: int, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": kind, "out_channels": cout, "kernel": 3, "stride": s}
    if kind in ("mbconv", "fused_mbconv"):
        d["expansion"] = extra.pop("expansion", 3)
    d.update(extra)
    return d


@pytest.mark.parametrize("kind,s", list(itertools.product(KINDS, [1, 2])))
def test_every_kind(kind, s):
    stem = {"kind": "conv", "out_channels": 6, "kernel": 3}
    extra = {"residual": True} if kind == "basic" and s == 1 else {}
    check({"input": {"channels": 3, "height": 9, "width": 9, "batch": 2}, "layers": [stem, layer(kind, 6, s, **extra)]})


@pytest.mark.parametrize("kind", ["mbconv", "fused_mbconv"])
@pytest.mark.parametrize("gate,act", [("sigmoid", "silu"), ("hardsigmoid", "hardswish"), ("sigmoid", "relu")])
@pytest.mark.parametrize("expansion", [1, 4])
def test_se_and_activations(kind, gate, act, expansion):
    se = {"kind": kind, "out_channels": 8, "expansion": expansion, "se": 0.25, "se_gate": gate, "activation": act}
    check({"input": {"channels": 8, "height": 7, "width": 7, "batch": 2}, "layers": [se]})


@pytest.mark.parametrize("norm", ["batchnorm", "none"])
@pytest.mark.parametrize("activation", ["relu", "relu6", "silu", "hardswish", "none"])
@pytest.mark.parametrize("bias", [False, True])
def test_defaults(norm, activation, bias):
    check(
        {
            "input": {"channels": 4, "height": 6, "width": 6, "batch": 2},
            "defaults": {"norm": norm, "activation": activation, "bias": bias},
            "layers": [{"kind": "mbconv", "out_channels": 4, "expansion": 2}, {"kind": "basic", "out_channels": 4}],
        }
    )


@pytest.mark.parametrize("implementation", ["module", "functional", "mean"])
@pytest.mark.parametrize("dropout", [False, True])
def test_head_pool_dropout_linear(implementation, dropout):
    head = [{"kind": "pool", "implementation": implementation}]
    head += [{"kind": "dropout", "p": 0.2}] if dropout else []
    head += [{"kind": "linear", "out_features": 5}]
    check(
        {
            "input": {"channels": 3, "height": 8, "width": 8, "batch": 2},
            "layers": [{"kind": "conv", "out_channels": 6, "kernel": 3, "stride": 2}, *head],
        }
    )


def test_first_layer_without_parameters():
    """A pool and a dropout before any parameter: their input needs no grad, they record nothing."""
    check(
        {
            "input": {"channels": 3, "height": 5, "width": 5, "batch": 2},
            "layers": [{"kind": "pool"}, {"kind": "dropout", "p": 0.5}, {"kind": "linear", "out_features": 4}],
        }
    )


@pytest.mark.parametrize("dtype", ["bf16-mixed", "fp16-mixed"])
@pytest.mark.parametrize("name", ["seed_mbconv_bn.yaml", "seed_two_conv.yaml", "seed_mbconv_bias.yaml"])
def test_autocast_seeds(name, dtype):
    check(costmodel.load(ROOT / "specs" / name), dtype, torch_convention=False)


@pytest.mark.parametrize("dtype", ["bf16-mixed"])
def test_autocast_head_and_se(dtype):
    check(
        {
            "input": {"channels": 3, "height": 8, "width": 8, "batch": 2},
            "layers": [
                {"kind": "conv", "out_channels": 8, "kernel": 3},
                {"kind": "mbconv", "out_channels": 8, "expansion": 2, "se": 0.25},
                {"kind": "bottleneck", "out_channels": 12, "stride": 2},
                {"kind": "pool"},
                {"kind": "dropout", "p": 0.2},
                {"kind": "linear", "out_features": 5},
            ],
        },
        dtype,
        torch_convention=False,
    )


@pytest.mark.slow
def test_shipped_network_small():
    """MobileNetV2 at 32 px, batch 2: all three figures against a real step."""
    check(edited("mobilenet_v2", 32, batch=2))


def edited(name: str, resolution: int, batch: int = 1) -> costmodel.NetworkSpec:
    from costmodel.spec import loader

    path = ROOT / "specs" / "networks" / f"{name}.yaml"
    data, src = loader.parse_yaml(path.read_text(), str(path))
    data["input"]["height"] = data["input"]["width"] = resolution
    data["input"]["batch"] = batch
    return loader.validate(data, src)


NETWORKS = sorted(p.stem for p in (ROOT / "specs" / "networks").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_shipped_networks(name):
    check(edited(name, 64 if name.startswith(("efficientnet_b", "efficientnet_v2")) else 48, batch=2))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mixnet_s", "ghostnetv2_100", "mobilenetv4_hybrid_medium", "mobilenetv5_base"])
def test_shipped_timm_networks_with_the_newer_kinds(name):
    """concat, resize, RMSNorm, gelu_tanh, layer scale and multi-query attention in whole networks, at 64 px."""
    from costmodel.spec import loader

    path = ROOT / "specs" / "timm" / f"{name}.yaml"
    data, src = loader.parse_yaml(path.read_text(), str(path))
    data["input"]["height"] = data["input"]["width"] = 64
    data["input"]["batch"] = 2
    check(loader.validate(data, src), torch_convention=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0"])
def test_shipped_networks_autocast(name):
    check(edited(name, 64, batch=2), "bf16-mixed", torch_convention=False)


# ---------------------------------------------------------------- random specs (hypothesis)


@pytest.mark.slow
def test_random_specs():
    from hypothesis import HealthCheck, assume, given, settings

    from tests.test_torch_agreement import random_spec

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(random_spec())
    def run(data):
        spec = spec_of(data)
        try:
            torch_step(spec)
        except ValueError:  # train-mode BatchNorm over a single value per channel: torch refuses the step
            assume(False)
        check(spec)

    run()


# ---------------------------------------------------------------- checkpointing, batch, formulas, CLI


def test_checkpoint_recompute_macs_against_torch():
    """torch.utils.checkpoint around every block: FlopCounterMode sees every block's forward twice."""
    from torch.utils.checkpoint import checkpoint

    spec = costmodel.load(ROOT / "specs" / "seed_mbconv_bn.yaml")
    model, shape = build(spec)
    model.train()
    x = torch.randn(shape)
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _exact_conv_backward})
    with counter:
        y = x
        for block in model:
            y = checkpoint(block, y, use_reentrant=False)
        y.sum().backward()
    t = costmodel.train(spec, checkpoint="blocks").totals
    assert t["training_macs"] == counter.get_total_flops() // 2
    assert t["recompute_macs"] == 4_030_464


def test_checkpoint_saved_bytes_model():
    """seed_mbconv_bn as one checkpointed block: the input is kept (16·32·32·4 = 65,536) and the block's
    own saves (its input excluded) are alive while it is recomputed."""
    plain = costmodel.train("specs/seed_mbconv_bn.yaml").totals["saved_bytes"]
    ck = costmodel.train("specs/seed_mbconv_bn.yaml", checkpoint="blocks").totals["saved_bytes"]
    assert ck == plain  # one block: its input plus everything it saves
    net = edited("mobilenet_v2", 64, batch=2)
    assert (
        costmodel.train(net, checkpoint="blocks").totals["saved_bytes"] < costmodel.train(net).totals["saved_bytes"] / 3
    )


def test_largest_batch_is_exact():
    n, step = costmodel.largest_batch("specs/networks/efficientnet_b0.yaml", "16GB", optimizer="adamw")
    assert step.totals["peak_bytes"] <= 16 * 10**9
    above = costmodel.train("specs/networks/efficientnet_b0.yaml", n + 1, optimizer="adamw").totals["peak_bytes"]
    assert above > 16 * 10**9
    assert step.batch == n


def test_formula_training_matches_torch(run_cli, tmp_path):
    """The closed form in N (and H = W) evaluated at a point equals a real step at that point."""
    import sympy
    import yaml

    data = yaml.safe_load((ROOT / "specs" / "seed_mbconv_bn.yaml").read_text())
    data["input"].update(height="H", width="H", batch="B")
    path = tmp_path / "sym.yaml"
    path.write_text(yaml.safe_dump(data))
    status, stdout, stderr = run_cli("formula", str(path), "--training")
    assert status == 0, stderr
    forms = dict(line.split(" = ", 1) for line in stdout.strip().splitlines())
    assert set(forms) == {"training_macs", "saved_bytes"}
    n, h = sympy.Symbol("B", positive=True, integer=True), sympy.Symbol("H", positive=True, integer=True)
    point = costmodel.load(path, B=2, H=12)
    theirs = torch_step(point)
    ns = {"B": n, "H": h}
    for key, want in (("training_macs", theirs["macs"]), ("saved_bytes", theirs["saved"])):
        assert int(sympy.sympify(forms[key], locals=ns).subs({n: 2, h: 12})) == want  # our own output, not user text


def test_cli_train_and_solve(run_cli):
    status, out, err = run_cli("train", "specs/networks/efficientnet_b4.yaml", "--batch", "64", "--optimizer", "adamw")
    assert status == 0 and err == ""
    assert "saved activations" in out and "peak of the step" in out
    status, out, err = run_cli(
        "train", "specs/networks/efficientnet_b0.yaml", "--memory", "24GiB", "--solve", "batch", "--format", "json"
    )
    import json

    data = json.loads(out)
    n = data["solve"]["batch"]
    assert data["batch"] == n and data["totals"]["peak_bytes"] <= 24 * 2**30
    nxt = costmodel.train("specs/networks/efficientnet_b0.yaml", n + 1).totals["peak_bytes"]
    assert nxt > 24 * 2**30
    status, out, err = run_cli("train", "specs/networks/mobilenet_v2.yaml", "--vs", "torch")
    assert status == 0 and "conv2d depthwise" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--memory", "24GiB"],
        ["--solve", "batch"],
        ["--memory", "lots", "--solve", "batch"],
        ["--memory", "1KB", "--solve", "batch"],
        ["--batch", "0"],
        ["--optimizer", "lion"],
        ["--dtype", "int8"],
    ],
)
def test_cli_train_errors(run_cli, args):
    status, out, err = run_cli("train", "specs/seed_mbconv.yaml", *args)
    assert status == 2 and out == ""
    assert err.startswith("costmodel: error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "memory,needle",
    [
        ("9" * 5000 + "GiB", "at most 40 characters"),  # refused before the 5,000 digits are converted
        ("1" + "0" * 100 + "GiB", "at most 40 characters"),
        ("2000000000000000000000000000GiB", "at most 2**80 bytes"),
        # 10¹⁵ GiB on the seed block: a batch far past 2³¹ − 1, blamed on --memory, not on input.batch
        ("1000000000000000GiB", "--memory 1,073,741,824,000,000,000,000,000 bytes: the largest batch would be"),
    ],
)
def test_cli_train_memory_bounds(run_cli, memory, needle):
    status, out, err = run_cli("train", "specs/seed_mbconv.yaml", "--memory", memory, "--solve", "batch")
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert needle in err and "input.batch:" not in err, err


# ---------------------------------------------------------------- CUDA (skipped without a GPU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_peak_against_max_memory_allocated():
    """A real step on the GPU: max_memory_allocated (after the weights, grads and Adam state exist)
    against the predicted peak; the model is a bound, so the measured peak must not exceed it by more
    than the allocator's rounding and cuDNN workspaces (reported in docs/training.md)."""
    spec = edited("efficientnet_b0", 224, batch=32)
    model, shape = build(spec)
    model = model.cuda().train()
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(shape, device="cuda")
    for _ in range(2):  # the second step has its Adam state and grads in place
        opt.zero_grad(set_to_none=False)
        torch.cuda.reset_peak_memory_stats()
        model(x).sum().backward()
        opt.step()
    measured = torch.cuda.max_memory_allocated()
    predicted = costmodel.train(spec, optimizer="adam", device="cuda").totals["peak_bytes"]
    print(f"predicted {predicted:,} measured {measured:,} ratio {measured / predicted:.4f}")
    assert 0.8 * predicted <= measured <= 1.1 * predicted
