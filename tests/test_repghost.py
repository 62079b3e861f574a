"""Re-parameterisable branches: GhostNetV3 (``rep_branches``, ``form`` on the ghost kinds) and RepGhostNet
(``repghost``, ``repghost_bottleneck``). Hand arithmetic without torch; then against torch (costmodel.torchref:
params, buffers, FlopCounterMode / 2, output shape), against timm's own modules in both forms (the deployed one
made by timm's ``reparameterize_model``), and the twelve timm specs with ``form: deployed`` against timm's
re-parameterised models."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import costmodel
from conftest import SPECS, totals
from conftest import small_spec as spec

REP_SPECS = sorted(
    p.stem for p in (SPECS / "timm").glob("*.yaml") if p.stem.startswith(("ghostnetv3_", "repghostnet_"))
)
SE = {"se": 0.25, "se_base": "expanded", "se_divisor": 4, "se_gate": "hardsigmoid"}  # timm's _SE_LAYER


# ------------------------------------------------------------------------------------ hand arithmetic


def test_repghost_module_by_hand():
    # 16×9×9 → 20: primary 1×1 16→20 + BN, cheap 3×3 dw 20 + BN, identity BN on the primary output.
    train = totals(spec([{"kind": "repghost", "out_channels": 20}]))
    weights = 16 * 20 + 20 * 9  # 500
    assert train == (weights + 3 * 2 * 20, 3 * (2 * 20 + 1), 81 * weights, (20, 9, 9))
    # deploy: the cheap conv and its two norms are one biased 3×3 dw conv; the primary keeps its norm
    deploy = totals(spec([{"kind": "repghost", "out_channels": 20, "form": "deployed"}]))
    assert deploy == (weights + 2 * 20 + 20, 2 * 20 + 1, 81 * weights, (20, 9, 9))
    # without the identity branch there is nothing to fuse (timm's switch_to_deploy returns early)
    plain = {"kind": "repghost", "out_channels": 20, "reparam": False}
    assert (
        totals(spec([plain]))
        == totals(spec([plain | {"form": "deployed"}]))
        == (weights + 80, 82, 81 * weights, (20, 9, 9))
    )


def test_ghostv3_module_by_hand():
    # ghost to 20 with 3 branches on 16×9×9: P = 10. primary 3 × (1×1 16→10 + BN); cheap 3 × (3×3 dw 10 + BN)
    # + 1×1 dw 10 + BN (scale) + BN (identity): 8 norms of 10 channels.
    train = totals(spec([{"kind": "ghost", "out_channels": 20, "rep_branches": 3}]))
    params = 3 * (160 + 20) + 3 * (90 + 20) + (10 + 20) + 20  # 920
    assert train == (params, 8 * 21, 81 * (3 * 160 + 3 * 90 + 10), (20, 9, 9))
    deploy = totals(spec([{"kind": "ghost", "out_channels": 20, "rep_branches": 3, "form": "deployed"}]))
    assert deploy == (160 + 10 + 90 + 10, 0, 81 * (160 + 90), (20, 9, 9))
    # deployed, it counts the plain Ghost module's MACs
    assert deploy[2] == totals(spec([{"kind": "ghost", "out_channels": 20}]))[2]


def test_ghostv3_bottleneck_by_hand():
    # 16×9×9 → mid 32 → out 24, k 3, stride 2 (→ 5×5), 3 branches.
    layer = {"kind": "ghost_bottleneck", "mid_channels": 32, "out_channels": 24, "stride": 2, "rep_branches": 3}
    g1 = 3 * (256 + 32) + 3 * (144 + 32) + (16 + 32) + 32  # P 16: primary 16→16, cheap dw 16: 1472
    dw = 3 * (288 + 64) + (32 + 64)  # 3 × 3×3 dw 32 + BN, 1×1 dw s2 32 + BN: 1152
    g2 = 3 * (384 + 24) + 3 * (108 + 24) + (12 + 24) + 24  # P 12: primary 32→12, cheap dw 12: 1680
    short = 144 + 32 + 384 + 48  # 3×3 dw 16 + BN, 1×1 16→24 + BN: 608
    macs = 81 * (3 * 256 + 3 * 144 + 16) + 25 * (3 * 288 + 32) + 25 * (3 * 384 + 3 * 108 + 12) + 25 * (144 + 384)
    p, _, m, out = totals(spec([layer]))
    assert (p, m, out) == (g1 + dw + g2 + short, macs, (24, 5, 5)) == (4912, 171_296, (24, 5, 5))
    # deploy: every branch set one conv with bias, no norm; the shortcut keeps its norms
    p, b, m, out = totals(spec([layer | {"form": "deployed"}]))
    g1, dw, g2 = 256 + 16 + 144 + 16, 288 + 32, 384 + 12 + 108 + 12
    macs = 81 * (256 + 144) + 25 * 288 + 25 * (384 + 108) + 25 * (144 + 384)
    assert (p, b, m, out) == (g1 + dw + g2 + short, 33 + 49, macs, (24, 5, 5)) == (1876, 82, 65_100, (24, 5, 5))


def test_settings_name_the_form():
    r = costmodel.analyze(
        spec(
            [
                {
                    "kind": "ghost_bottleneck",
                    "mid_channels": 32,
                    "out_channels": 16,
                    "rep_branches": 3,
                    "form": "deployed",
                },
                {"kind": "repghost_bottleneck", "mid_channels": 32, "out_channels": 16, "reparam": False},
            ]
        )  # fmt: skip
    )
    assert [b.settings for b in r.blocks] == ["k3 mid32 rep3 deployed", "k3 mid32 norep"]


def test_symbolic_forms_match_numbers():
    for layer in (
        {"kind": "ghost_bottleneck", "mid_channels": 32, "out_channels": 24, "stride": 2, "attention": "dfc",
         "rep_branches": 3},
        {"kind": "repghost_bottleneck", "mid_channels": 32, "out_channels": 24, "kernel": 5, "stride": 2} | SE,
    ):  # fmt: skip
        for form in ("training", "deployed"):
            expr = costmodel.analyze(spec([layer | {"form": form}], h="H")).totals["macs"]
            (sym_h,) = expr.free_symbols
            for h in (9, 33, 193):
                assert int(expr.subs(sym_h, h)) == totals(spec([layer | {"form": form}], h=h))[2]


def test_symbolic_widths_match_numbers():
    # a symbolic mid width M: params and MACs as expressions in M, equal to the numeric counts at even M
    for kind, extra in (("repghost_bottleneck", {}), ("ghost_bottleneck", {"rep_branches": 3})):
        for form in ("training", "deployed"):
            layer = {"kind": kind, "out_channels": 24, "stride": 2, "form": form} | extra
            r = costmodel.analyze(spec([layer | {"mid_channels": "M"}]))
            params, macs = r.totals["params"], r.totals["macs"]
            (sym_m,) = macs.free_symbols
            for m in (32, 48, 72):
                num = totals(spec([layer | {"mid_channels": m}]))
                assert (int(params.subs(sym_m, m)), int(macs.subs(sym_m, m))) == (num[0], num[2])


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"kind": "ghost", "out_channels": 24, "ratio": 3, "rep_branches": 3}, "ratio"),
        ({"kind": "ghost", "out_channels": 23, "rep_branches": 3}, "out_channels"),
        ({"kind": "ghost_bottleneck", "mid_channels": 35, "out_channels": 24, "rep_branches": 3}, "mid_channels"),
        ({"kind": "ghost_bottleneck", "mid_channels": 32, "out_channels": 24, "form": "deployed"}, "form"),
        ({"kind": "ghost", "out_channels": 8, "form": "fused"}, "form"),
        ({"kind": "repghost", "out_channels": 8, "dw_kernel": 2}, "dw_kernel"),
        ({"kind": "repghost_bottleneck", "out_channels": 8, "mid_channels": 16, "padding": "same"}, "padding"),
        ({"kind": "repghost_bottleneck", "out_channels": 8, "mid_channels": 16, "rep_branches": 3}, "rep_branches"),
    ],
)
def test_bad_fields_refused(layer, field):
    with pytest.raises(Exception) as info:
        spec([layer])
    assert field in str(info.value)


@pytest.mark.parametrize(
    "layer",
    [
        {"kind": "ghost", "out_channels": 8, "rep_branches": 3, "norm": "groupnorm"},
        {"kind": "repghost", "out_channels": 8, "norm": "none"},
    ],
)
def test_branches_without_batchnorm_refused(layer):
    with pytest.raises(costmodel.SpecError, match="need norm: batchnorm"):
        costmodel.analyze(spec([layer]))


# ------------------------------------------------------------------------------------ against torch

CASES: list[dict[str, Any]] = [
    {"kind": "ghost", "out_channels": 20, "kernel": 3, "attention": "dfc", "rep_branches": 3},
    {"kind": "ghost", "out_channels": 20, "activation_cheap": False, "rep_branches": 2},
    {"kind": "ghost_bottleneck", "mid_channels": 72, "out_channels": 40, "kernel": 5, "attention": "dfc",
     "rep_branches": 3} | SE,
    {"kind": "ghost_bottleneck", "mid_channels": 48, "out_channels": 16, "rep_branches": 1},
    {"kind": "repghost", "out_channels": 20, "kernel": 3},
    {"kind": "repghost", "out_channels": 20, "activation_cheap": False, "reparam": False, "dw_kernel": 5},
    {"kind": "repghost_bottleneck", "mid_channels": 72, "out_channels": 40, "kernel": 5} | SE,
    {"kind": "repghost_bottleneck", "mid_channels": 48, "out_channels": 16},
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "stride", "size", "form"),
    list(itertools.product(range(len(CASES)), [1, 2], [9, 17], ["training", "deployed"])),
)
def test_kind_matches_torch(case, stride, size, form):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    s = spec([CASES[case] | {"stride": stride, "form": form}], c=16, h=size, w=size + 2)
    m = measure(s)
    assert m["macs_exact_half"]
    assert totals(s) == (m["params"], m["buffers"], m["macs"], m["output"])


# ------------------------------------------------------------------------------------ against timm's modules


def _timm_count(module: Any, c: int, h: int, deploy: bool) -> tuple[Any, ...]:
    torch = pytest.importorskip("torch")
    from timm.utils.model import reparameterize_model
    from torch.utils.flop_counter import FlopCounterMode

    module = torch.nn.Sequential(module).eval()  # reparameterize_model fuses children, not the root
    if deploy:
        module = reparameterize_model(module)
        assert not any(hasattr(m, "fusion_bn") and len(m.fusion_bn) for m in module.modules())
        assert not any(getattr(m, "infer_mode", True) is False and m.stride > 1 for m in module.modules()
                       if hasattr(m, "dw_rpr_conv"))  # fmt: skip
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = module(torch.zeros(1, c, h, h))
    params = sum(p.numel() for p in module.parameters())
    return params, sum(b.numel() for b in module.buffers()), counter.get_total_flops() // 2, tuple(y.shape[1:])


FORMS = pytest.mark.parametrize("form", ["training", "deployed"])


@pytest.mark.timm
@FORMS
@pytest.mark.parametrize(
    ("stride", "mode", "se", "h"),
    [(1, "original", 0.0, 17), (2, "shortcut", 0.25, 17), (1, "shortcut", 0.25, 15), (2, "original", 0.0, 15)],
)
def test_ghostv3_bottleneck_matches_timm(stride, mode, se, h, form):
    pytest.importorskip("timm")
    from timm.models.ghostnet import GhostBottleneckV3

    blk = GhostBottleneckV3(16, 72, 24, 5, stride, se_ratio=se, mode=mode)
    layer: dict[str, Any] = {"kind": "ghost_bottleneck", "mid_channels": 72, "out_channels": 24, "kernel": 5,
                             "stride": stride, "rep_branches": blk.num_conv_branches, "form": form}  # fmt: skip
    if se:
        layer |= SE
    if mode == "shortcut":
        layer["attention"] = "dfc"
    assert totals(spec([layer], c=16, h=h)) == _timm_count(blk, 16, h, form == "deployed")


@pytest.mark.timm
@FORMS
@pytest.mark.parametrize(
    ("k", "stride", "act", "mode"),
    [(1, 1, True, "original"), (3, 2, True, "shortcut"), (1, 2, False, "original"), (3, 1, False, "shortcut")],
)
def test_ghostv3_module_matches_timm(k, stride, act, mode, form):
    pytest.importorskip("timm")
    from timm.models.ghostnet import GhostModuleV3
    from torch import nn

    mod = GhostModuleV3(16, 24, k, stride=stride, act_layer=nn.ReLU if act else nn.Identity, mode=mode)
    layer = {"kind": "ghost", "out_channels": 24, "kernel": k, "stride": stride, "activation_cheap": act,
             "rep_branches": 3, "form": form, "attention": "dfc" if mode == "shortcut" else "none"}  # fmt: skip
    assert totals(spec([layer], c=16, h=15)) == _timm_count(mod, 16, 15, form == "deployed")


@pytest.mark.timm
@FORMS
@pytest.mark.parametrize(
    ("stride", "se", "reparam", "h"),
    [(1, 0.0, True, 17), (2, 0.25, True, 17), (2, 0.25, False, 15), (1, 0.25, True, 15)],
)
def test_repghost_bottleneck_matches_timm(stride, se, reparam, h, form):
    pytest.importorskip("timm")
    from timm.models.repghost import RepGhostBottleneck

    blk = RepGhostBottleneck(16, 72, 24, 5, stride, se_ratio=se, reparam=reparam)
    layer: dict[str, Any] = {"kind": "repghost_bottleneck", "mid_channels": 72, "out_channels": 24, "kernel": 5,
                             "stride": stride, "reparam": reparam, "form": form}  # fmt: skip
    if se:
        layer |= SE
    assert totals(spec([layer], c=16, h=h)) == _timm_count(blk, 16, h, form == "deployed")


@pytest.mark.timm
@FORMS
@pytest.mark.parametrize(
    ("k", "stride", "act", "reparam"),
    [(1, 1, True, True), (3, 2, True, True), (1, 2, False, True), (3, 1, True, False)],
)
def test_repghost_module_matches_timm(k, stride, act, reparam, form):
    pytest.importorskip("timm")
    from timm.models.repghost import RepGhostModule

    mod = RepGhostModule(16, 24, k, stride=stride, relu=act, reparam=reparam)
    layer = {"kind": "repghost", "out_channels": 24, "kernel": k, "stride": stride, "activation_cheap": act,
             "reparam": reparam, "form": form}  # fmt: skip
    assert totals(spec([layer], c=16, h=15)) == _timm_count(mod, 16, 15, form == "deployed")


# ------------------------------------------------------------------------------------ the timm specs


def _spec_at(name: str, resolution: int | None, form: str) -> costmodel.NetworkSpec:
    s = costmodel.load(SPECS / "timm" / f"{name}.yaml")
    layers = [x.model_copy(update={"form": form}) if hasattr(x, "form") else x for x in s.layers]
    update: dict[str, Any] = {"layers": layers}
    if resolution is not None:
        update["input"] = s.input.model_copy(update={"height": resolution, "width": resolution})
    return s.model_copy(update=update)


def _timm_model(name: str, resolution: int | None, deploy: bool) -> tuple[Any, ...]:
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False).eval()
    c, h, _ = model.pretrained_cfg["input_size"]
    return _timm_count(model, c, resolution or h, deploy)


def _ours(name: str, resolution: int | None, form: str) -> tuple[Any, ...]:
    r = costmodel.analyze(_spec_at(name, resolution, form))
    return r.totals["params"], r.totals["buffers"], r.totals["macs"], r.output


def test_twelve_specs():
    assert len(REP_SPECS) == 12


@pytest.mark.timm
@pytest.mark.parametrize("name", REP_SPECS)
def test_deployed_spec_matches_reparameterized_timm(name):
    """The spec with form: deployed on every block = timm's model after reparameterize_model, at its default size."""
    assert _ours(name, None, "deployed") == _timm_model(name, None, True)


@pytest.mark.slow
@pytest.mark.timm
@pytest.mark.parametrize(
    ("name", "resolution", "form"), list(itertools.product(REP_SPECS, [193, 321], ["training", "deployed"]))
)
def test_specs_match_timm_at_other_sizes(name, resolution, form):
    assert _ours(name, resolution, form) == _timm_model(name, resolution, form == "deployed")
