"""Differential test: random single-block specs of the newer kinds against timm's OWN module classes (optional:
skipped without timm).

Each case draws a block (kind, widths, kernel, stride, padding, SE, norm, activation, anti-aliasing …) from a seeded
``random.Random`` and builds it twice: as a costmodel spec (one layer), and as the timm class that the kind stands
for — ``timm.models._efficientnet_blocks`` InvertedResidual (mbconv, mixconv), DepthwiseSeparableConv (dwsep),
EdgeResidual (fused_mbconv), CondConvResidual (condconv), UniversalInvertedResidual (uir), MobileAttention
(attention); ``timm.models.ghostnet`` GhostModule / GhostModuleV2 / GhostModuleV3 / GhostBottleneck /
GhostBottleneckV3; ``timm.models.repghost`` RepGhostModule / RepGhostBottleneck; ``timm.models.lcnetv2``
RepDepthwiseSeparable. torchref is not used. The two must agree on params = sum(p.numel() for p in
module.parameters()), MACs = FlopCounterMode total // 2 on one eval forward pass at batch 1, and the output shape
— or both refuse: costmodel with a SpecError and timm by raising (a residual add across different shapes, a
kernel larger than the padded map).

The default run checks FAST_CASES specs (two per kind, a few seconds); ``-m slow`` checks SLOW_CASES (600) more.

    pip install torch==2.14.1 timm==1.0.31
    python -m pytest tests/test_differential_timm.py -m "slow or not slow"
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import costmodel
from costmodel.errors import SpecError

pytestmark = [pytest.mark.timm]
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from timm.layers import EvoNorm2dB0, EvoNorm2dS0, GroupNormAct, LayerNorm2d, RmsNorm2d, make_divisible  # noqa: E402
from timm.models import _efficientnet_blocks as eb  # noqa: E402
from timm.models import ghostnet, lcnetv2, repghost  # noqa: E402
from timm.models._efficientnet_blocks import SqueezeExcite  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

# timm's attention on the CPU dispatches to a fused SDPA kernel FlopCounterMode counts as 0; the unfused path is
# what costmodel counts (docs/conventions.md), as tests/test_timm.py does.
timm.layers.set_fused_attn(False)

FAST_CASES = 24
SLOW_CASES = 600

ACTS = {"relu": nn.ReLU, "silu": nn.SiLU, "hardswish": nn.Hardswish, "gelu": nn.GELU}


@dataclass
class Case:
    """One drawn block: the spec's layer and defaults, the input, and how to build timm's module."""

    name: str
    layer: dict[str, Any]
    defaults: dict[str, Any]
    inp: tuple[int, int, int]
    build: Callable[[], nn.Module]


def _norm(rng: random.Random, channels: list[int]) -> tuple[dict[str, Any], Any]:
    """A norm both sides build: the spec's defaults and timm's norm_layer. Grouped norms take a group count
    that divides every width the block normalizes."""
    choice = rng.choice(["batchnorm"] * 4 + ["groupnorm", "layernorm", "evonorm_s0", "evonorm_b0", "rmsnorm"])
    if choice in ("groupnorm", "evonorm_s0"):
        groups = max(g for g in (1, 2, 4) if all(c % g == 0 for c in channels))
        layer = functools.partial(GroupNormAct, num_groups=groups)
        if choice == "evonorm_s0":
            layer = functools.partial(EvoNorm2dS0, groups=groups)
        return {"norm": choice, "norm_groups": groups}, layer
    classes = {"batchnorm": nn.BatchNorm2d, "layernorm": LayerNorm2d, "rmsnorm": RmsNorm2d, "evonorm_b0": EvoNorm2dB0}
    return {"norm": choice}, classes[choice]


def _act(rng: random.Random) -> str:
    return rng.choice(["relu", "relu", "silu", "hardswish"])


def _hw(rng: random.Random) -> tuple[int, int]:
    return rng.randint(3, 13), rng.randint(3, 13)


def _mid(cin: int, t: int | float) -> int:
    return make_divisible(cin * t)  # timm's blocks: make_divisible(in × exp_ratio, 8)


def _se(rng: random.Random, layer: dict[str, Any], base: int) -> Any:
    """An SE the spec and timm's SqueezeExcite(base) both build: a ratio (timm: round(base × r)) or the width."""
    pick = rng.random()
    if pick < 0.4:
        return None
    if pick < 0.75:
        r = rng.choice([0.25, 0.5, 0.125])
        layer.update(se=r, se_base="expanded", se_round="round")
        return functools.partial(SqueezeExcite, rd_ratio=r)
    s = rng.randint(1, max(1, base // 2))
    layer.update(se_channels=s)
    return functools.partial(SqueezeExcite, rd_channels=s)


def _padding(rng: random.Random, layer: dict[str, Any], k: int) -> Any:
    """timm's pad_type and the spec's padding: the default (k // 2), same (Conv2dSame), or 0."""
    pick = rng.random()
    if pick < 0.7:
        return ""
    if pick < 0.85:
        layer["padding"] = "same"
        return "same"
    layer["padding"] = 0
    return 0


def gen_mbconv(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16, 24]), rng.choice([8, 16, 24])
    t, k, s = rng.choice([1, 2, 3, 4, 6]), rng.choice([3, 5]), rng.choice([1, 1, 2])
    mid = _mid(cin, t)
    gs = rng.choice([1, 1, 1, 4, 8]) if mid % 8 == 0 else 1
    layer: dict[str, Any] = {"kind": "mbconv", "out_channels": cout, "expansion": t, "expanded_divisor": 8}
    layer.update(kernel=k, stride=s, expand_always=True)
    if gs != 1:
        layer["group_size"] = gs
    pad = _padding(rng, layer, k)
    aa = rng.choice([None, None, "blur", "avg"]) if s != 1 else None
    if aa:
        layer["aa"] = aa
        s = layer["stride"] = rng.choice([2, 3]) if aa == "blur" else 2
    se = _se(rng, layer, mid)
    noskip = rng.random() < 0.2
    layer["residual"] = False if noskip else "auto"
    d, norm = _norm(rng, [mid, cout])
    act = _act(rng)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return eb.InvertedResidual(
            cin, cout, k, s, group_size=gs, pad_type=pad, noskip=noskip, exp_ratio=t, act_layer=ACTS[act],
            norm_layer=norm, aa_layer=aa, se_layer=se,
        )  # fmt: skip

    return Case("mbconv", layer, {**d, "activation": act}, (cin, h, w), build)


def gen_dwsep(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16]), rng.choice([8, 16])
    k, s = rng.choice([3, 5]), rng.choice([1, 2])
    layer: dict[str, Any] = {"kind": "dwsep", "out_channels": cout, "kernel": k, "stride": s}
    pad = _padding(rng, layer, k)
    # timm's DepthwiseSeparableConv builds its blur for out_chs channels but runs it on the depthwise output (in_chs
    # channels): it raises unless in == out, so anti-aliasing is drawn only there
    aa = rng.choice([None, "blur"]) if s != 1 and cin == cout else None
    if aa:
        layer["aa"] = aa
        s = layer["stride"] = rng.choice([2, 3])
    se = _se(rng, layer, cin)
    pw_act = rng.random() < 0.5
    if not pw_act:
        layer["pw_activation"] = "none"
    noskip = rng.random() < 0.3
    layer["residual"] = False if noskip else "auto"
    d, norm = _norm(rng, [cin, cout])
    act = _act(rng)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return eb.DepthwiseSeparableConv(
            cin, cout, k, s, pad_type=pad, noskip=noskip, pw_act=pw_act, act_layer=ACTS[act], norm_layer=norm,
            aa_layer=aa, se_layer=se,
        )  # fmt: skip

    return Case("dwsep", layer, {**d, "activation": act}, (cin, h, w), build)


def gen_fused(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16, 24]), rng.choice([8, 16, 24])
    t, k, s = rng.choice([1, 2, 4]), rng.choice([3, 5]), rng.choice([1, 2])
    mid = _mid(cin, t)
    sizes = [g for g in (4, 8, 16) if mid % g == 0 and cin % (mid // g) == 0]
    gs = rng.choice([0, 0, *sizes[:2]]) if sizes else 0
    layer: dict[str, Any] = {"kind": "fused_mbconv", "out_channels": cout, "expansion": t, "expanded_divisor": 8}
    layer.update(kernel=k, stride=s, keep_projection=True)
    if gs:
        layer["group_size"] = gs
    pad = _padding(rng, layer, k)
    aa = rng.choice([None, "blur", "avg"]) if s != 1 else None
    if aa:
        layer["aa"] = aa
    se = _se(rng, layer, mid)
    noskip = rng.random() < 0.2
    layer["residual"] = False if noskip else "auto"
    d, norm = _norm(rng, [mid, cout])
    act = _act(rng)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return eb.EdgeResidual(
            cin, cout, k, s, group_size=gs, pad_type=pad, noskip=noskip, exp_ratio=t, act_layer=ACTS[act],
            norm_layer=norm, aa_layer=aa, se_layer=se,
        )  # fmt: skip

    return Case("fused_mbconv", layer, {**d, "activation": act}, (cin, h, w), build)


def gen_mixconv(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 12, 16]), rng.choice([8, 12, 16])
    t = rng.choice([2, 3, 6])
    mid = _mid(cin, t)
    kernels = sorted(rng.sample([3, 5, 7, 9], rng.randint(1, 3)))
    s = rng.choice([1, 2])
    eg, pg = rng.choice([1, 2]), rng.choice([1, 2])
    layer: dict[str, Any] = {"kind": "mixconv", "out_channels": cout, "expansion": t, "expanded_divisor": 8}
    layer.update(kernels=kernels, stride=s, expansion_groups=eg, projection_groups=pg)
    se = _se(rng, layer, mid)
    noskip = rng.random() < 0.2
    layer["residual"] = False if noskip else "auto"
    d, norm = _norm(rng, [mid, cout])
    act = _act(rng)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return eb.InvertedResidual(
            cin, cout, kernels if len(kernels) > 1 else kernels[0], s, noskip=noskip, exp_ratio=t,
            exp_kernel_size=[1] * eg if eg > 1 else 1, pw_kernel_size=[1] * pg if pg > 1 else 1,
            act_layer=ACTS[act], norm_layer=norm, se_layer=se,
        )  # fmt: skip

    return Case("mixconv", layer, {**d, "activation": act}, (cin, h, w), build)


def gen_condconv(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16]), rng.choice([8, 16])
    t, k, s, e = rng.choice([1, 2, 4]), rng.choice([3, 5]), rng.choice([1, 2]), rng.choice([2, 4, 8])
    mid = _mid(cin, t)
    layer: dict[str, Any] = {"kind": "condconv", "out_channels": cout, "expansion": t, "expanded_divisor": 8}
    layer.update(kernel=k, stride=s, experts=e)
    se = _se(rng, layer, mid)
    noskip = rng.random() < 0.2
    layer["residual"] = False if noskip else "auto"
    d, norm = _norm(rng, [mid, cout])
    act = _act(rng)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return eb.CondConvResidual(
            cin, cout, k, s, noskip=noskip, exp_ratio=t, act_layer=ACTS[act], norm_layer=norm, se_layer=se,
            num_experts=e,
        )  # fmt: skip

    return Case("condconv", layer, {**d, "activation": act}, (cin, h, w), build)


def gen_uir(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16, 24]), rng.choice([8, 16, 24])
    t = rng.choice([1, 2, 3, 4, 2.5])
    start, mid_k = rng.choice([0, 3, 5]), rng.choice([0, 3, 5])
    s = rng.choice([1, 2]) if (start or mid_k) else 1
    layer: dict[str, Any] = {"kind": "uir", "out_channels": cout, "expansion": t, "stride": s}
    if start:
        layer["start_kernel"] = start
    if mid_k:
        layer["mid_kernel"] = mid_k
    aa = rng.choice([None, "blur", "avg"]) if s != 1 else None
    if aa:
        layer["aa"] = aa
    ls = rng.random() < 0.5
    layer["layer_scale"] = ls
    noskip = rng.random() < 0.2
    layer["residual"] = False if noskip else "auto"
    d, norm = _norm(rng, [cin, _mid(cin, t), cout])
    act = _act(rng)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return eb.UniversalInvertedResidual(
            cin, cout, start, mid_k, 0, s, noskip=noskip, exp_ratio=t, act_layer=ACTS[act], norm_layer=norm,
            aa_layer=aa, layer_scale_init_value=1e-5 if ls else None,
        )  # fmt: skip

    return Case("uir", layer, {**d, "activation": act}, (cin, h, w), build)


def gen_attention(rng: random.Random) -> Case:
    cin = rng.choice([16, 32])
    cout = rng.choice([cin, 16, 32])
    heads = rng.choice([1, 2, 4])
    mqa = rng.random() < 0.6
    layer: dict[str, Any] = {"kind": "attention", "out_channels": cout, "heads": heads, "multi_query": mqa}
    kd = vd = 8
    kv_stride, kv_k = 1, 3
    if mqa:
        kd, vd = rng.choice([8, 16]), rng.choice([8, 16])
        kv_stride, kv_k = rng.choice([1, 2]), rng.choice([3, 5])
        layer.update(key_dim=kd, value_dim=vd, kv_stride=kv_stride, kv_kernel=kv_k)
    ls = rng.random() < 0.5
    layer["layer_scale"] = ls
    bias = rng.random() < 0.3
    layer["bias"] = bias and not mqa  # timm's MobileAttention passes use_bias to MHSA only
    d, norm = _norm(rng, [cin])
    h, w = rng.randint(4, 9), rng.randint(4, 9)

    def build() -> nn.Module:
        return eb.MobileAttention(
            cin, cout, dw_kernel_size=kv_k, num_heads=heads, key_dim=kd, value_dim=vd, use_multi_query=mqa,
            kv_stride=kv_stride, norm_layer=norm, layer_scale_init_value=1e-5 if ls else None, use_bias=bias,
        )  # fmt: skip

    return Case("attention", layer, {**d, "activation": "relu"}, (cin, h, w), build)


def gen_ghost(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 12, 16]), rng.choice([8, 12, 16, 18])
    k, ratio, dw, s = rng.choice([1, 3]), rng.choice([2, 2, 3, 4]), rng.choice([3, 5]), rng.choice([1, 2])
    variant = rng.choice(["v1", "v1", "v2", "v3"])
    act = rng.random() < 0.7
    layer: dict[str, Any] = {"kind": "ghost", "out_channels": cout, "kernel": k, "ratio": ratio, "dw_kernel": dw}
    layer.update(stride=s, activation_cheap=act)
    if variant == "v2":
        layer["attention"] = "dfc"
    if variant == "v3":
        ratio = layer["ratio"] = 2
        cout = layer["out_channels"] = cout + cout % 2
        layer["rep_branches"] = 3
    h, w = _hw(rng)
    if variant == "v2":
        h, w = h + 2, w + 2

    def build() -> nn.Module:
        cls = {"v1": ghostnet.GhostModule, "v2": ghostnet.GhostModuleV2, "v3": ghostnet.GhostModuleV3}[variant]
        return cls(cin, cout, k, ratio, dw, s, act_layer=nn.ReLU if act else nn.Identity)

    defaults = {"norm": "batchnorm", "activation": "relu"}
    return Case("ghost " + variant, layer, defaults, (cin, h, w), build)


def gen_ghost_bottleneck(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16]), rng.choice([8, 16, 24])
    mid = rng.choice([12, 16, 18, 20, 24, 36])
    k, s = rng.choice([3, 5]), rng.choice([1, 2])
    se = rng.choice([0.0, 0.25])
    variant = rng.choice(["v1", "v1", "v2", "v3"])
    layer: dict[str, Any] = {"kind": "ghost_bottleneck", "out_channels": cout, "mid_channels": mid, "kernel": k}
    layer["stride"] = s
    if se:
        layer.update(se=se, se_base="expanded", se_divisor=4, se_gate="hardsigmoid")
    if variant == "v2":
        layer["attention"] = "dfc"
    if variant == "v3":
        layer["rep_branches"] = 3
        cout = layer["out_channels"] = cout + cout % 2
    h, w = _hw(rng)
    if variant == "v2":
        h, w = h + 2, w + 2

    def build() -> nn.Module:
        if variant == "v3":
            return ghostnet.GhostBottleneckV3(cin, mid, cout, k, s, se_ratio=se)
        return ghostnet.GhostBottleneck(
            cin, mid, cout, k, s, se_ratio=se, mode="attn" if variant == "v2" else "original"
        )

    defaults = {"norm": "batchnorm", "activation": "relu"}
    return Case("ghost_bottleneck " + variant, layer, defaults, (cin, h, w), build)


def gen_repghost(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 12, 16]), rng.choice([8, 12, 16])
    k, dw, s = rng.choice([1, 3]), rng.choice([3, 5]), rng.choice([1, 2])
    relu, reparam = rng.random() < 0.7, rng.random() < 0.7
    layer: dict[str, Any] = {"kind": "repghost", "out_channels": cout, "kernel": k, "dw_kernel": dw, "stride": s}
    layer.update(activation_cheap=relu, reparam=reparam)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return repghost.RepGhostModule(cin, cout, k, dw, s, relu=relu, reparam=reparam)

    return Case("repghost", layer, {"norm": "batchnorm", "activation": "relu"}, (cin, h, w), build)


def gen_repghost_bottleneck(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16]), rng.choice([8, 16, 24])
    mid = rng.choice([12, 16, 18, 20, 24, 36])
    k, s = rng.choice([3, 5]), rng.choice([1, 2])
    se, reparam = rng.choice([0.0, 0.25]), rng.random() < 0.7
    layer: dict[str, Any] = {"kind": "repghost_bottleneck", "out_channels": cout, "mid_channels": mid, "kernel": k}
    layer.update(stride=s, reparam=reparam)
    if se:
        layer.update(se=se, se_base="expanded", se_divisor=4, se_gate="hardsigmoid")
    h, w = _hw(rng)

    def build() -> nn.Module:
        return repghost.RepGhostBottleneck(cin, mid, cout, k, s, se_ratio=se, reparam=reparam)

    return Case("repghost_bottleneck", layer, {"norm": "batchnorm", "activation": "relu"}, (cin, h, w), build)


def gen_rep_dwsep(rng: random.Random) -> Case:
    cin, cout = rng.choice([8, 16, 32]), rng.choice([8, 16, 32])
    k, s = rng.choice([3, 5, 7]), rng.choice([1, 2])
    use_rep, use_se, split = rng.random() < 0.7, rng.random() < 0.5, rng.random() < 0.4
    shortcut = rng.random() < 0.5
    layer: dict[str, Any] = {"kind": "rep_dwsep", "out_channels": cout, "kernel": k, "stride": s}
    if not use_rep:
        layer["form"] = "deployed"  # timm's inference_mode: the branches as one biased dw conv
    if use_se:
        layer["se"] = 0.25
    if split:
        layer["mid_channels"] = cout // 2
    if shortcut:
        layer["residual"] = "auto"
    act = _act(rng)
    h, w = _hw(rng)

    def build() -> nn.Module:
        return lcnetv2.RepDepthwiseSeparable(
            cin, cout, s, k, split_pw=split, use_rep=True, use_se=use_se, use_shortcut=shortcut,
            act_layer=ACTS[act], inference_mode=not use_rep,
        )  # fmt: skip

    return Case("rep_dwsep", layer, {"norm": "batchnorm", "activation": act}, (cin, h, w), build)


GENERATORS = (
    gen_mbconv,
    gen_dwsep,
    gen_fused,
    gen_mixconv,
    gen_condconv,
    gen_uir,
    gen_attention,
    gen_ghost,
    gen_ghost_bottleneck,
    gen_repghost,
    gen_repghost_bottleneck,
    gen_rep_dwsep,
)


def draw(seed: int) -> Case:
    rng = random.Random(seed)
    return GENERATORS[seed % len(GENERATORS)](rng)


def engine(case: Case) -> tuple[int, int, tuple[int, ...]] | str:
    c, h, w = case.inp
    data = {
        "input": {"channels": c, "height": h, "width": w},
        "implementation": {"library": "timm"},
        "defaults": {"bias": False, **case.defaults},
        "layers": [case.layer],
    }
    try:
        r = costmodel.analyze(costmodel.NetworkSpec.model_validate(data))
    except SpecError as err:
        return f"refused: {err}"
    return r.totals["params"], r.totals["macs"], tuple(r.output)


def reference(case: Case) -> tuple[int, int, tuple[int, ...]] | str:
    try:
        module = case.build().eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            y = module(torch.randn(1, *case.inp))
    except Exception as err:  # timm raising is a refusal: the block cannot run on this input
        return f"raised: {type(err).__name__}: {err}"
    return sum(p.numel() for p in module.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:])


def agree(case: Case) -> tuple[str | None, bool]:
    """(None if costmodel and timm agree on the case, else the disagreement in words; whether timm ran it)."""
    ours, theirs = engine(case), reference(case)
    ran = not isinstance(theirs, str)
    if isinstance(ours, str) and isinstance(theirs, str):
        return None, ran  # both refuse
    if ours == theirs:
        return None, ran
    return f"{case.name} {case.layer} defaults={case.defaults} input={case.inp}: costmodel {ours}, timm {theirs}", ran


def _run(seeds: range) -> None:
    """Every drawn case agrees; and each generator's cases mostly run in timm (a generator whose blocks timm
    always refused would make its comparison vacuous)."""
    torch.manual_seed(0)
    bad: list[str] = []
    ran: dict[str, list[bool]] = {}
    for seed in seeds:
        problem, ok = agree(draw(seed))
        if problem is not None:
            bad.append(problem)
        ran.setdefault(GENERATORS[seed % len(GENERATORS)].__name__, []).append(ok)
    assert not bad, f"{len(bad)} of {len(seeds)} disagree:\n" + "\n".join(bad[:20])
    assert len(ran) == len(GENERATORS)
    for name, runs in ran.items():
        assert sum(runs) * 2 >= len(runs), f"{name}: timm ran {sum(runs)} of {len(runs)}"


def test_differential_fast() -> None:
    _run(range(FAST_CASES))


@pytest.mark.slow
def test_differential_slow() -> None:
    _run(range(FAST_CASES, FAST_CASES + SLOW_CASES))
