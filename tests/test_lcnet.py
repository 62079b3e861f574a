"""PP-LCNetV2's kind (rep_dwsep: timm's RepDepthwiseSeparable): hand arithmetic without torch, a symbolic form,
then against torch (costmodel.torchref.measure: params, buffers, FlopCounterMode / 2, output shape) and against
timm's own module and models, in the training form timm builds and in the deployed form after timm's own
re-parameterisation (``RepDepthwiseSeparable.reparameterize``, ``timm.utils.model.reparameterize_model``)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import costmodel
from conftest import SPECS, totals
from conftest import small_spec as spec
from costmodel.engine.blocks_lcnet import rep_branch_kernels
from costmodel.errors import SpecError

SPLIT_SE = {"kind": "rep_dwsep", "kernel": 5, "out_channels": 32, "mid_channels": 24, "se": 0.25}

# ------------------------------------------------------------------------------------ hand arithmetic


def test_branch_kernels_are_timms():
    # range(k, 0, -2), the 1×1 dropped at a stride ≠ 1
    assert rep_branch_kernels(5, True) == [5, 3, 1]
    assert rep_branch_kernels(5, False) == [5, 3]
    assert rep_branch_kernels(7, False) == [7, 5, 3]
    assert rep_branch_kernels(3, True) == [3, 1]


def test_training_form_by_hand():
    # 16×9×9, k5 stride 1: branches 5, 3, 1 on 16 channels → 16·(25 + 9 + 1) = 560 weights, 3 BN (2·16 γβ, 2·16 + 1
    # buffers each); SE squeeze floor(16 / 4) = 4: 16·4 + 4 + 4·16 + 16 = 148 params, 64 + 64 MACs on 1×1;
    # pointwise split 16 → 24 → 32: 384 + 768 weights, BN 48 + 64 (buffers 49 + 65).
    params = 560 + 96 + 148 + 384 + 48 + 768 + 64  # 2068
    buffers = 3 * 33 + 49 + 65  # 213
    macs = 81 * 16 * 35 + 128 + 81 * (384 + 768)  # 45,360 + 128 + 93,312 = 138,800
    assert totals(spec([SPLIT_SE])) == (params, buffers, macs, (32, 9, 9))


def test_deployed_form_by_hand():
    # the same block fused: one 5×5 dw conv with bias (16·25 + 16 = 416), no norm on it
    s = spec([{**SPLIT_SE, "form": "deployed"}])
    assert totals(s) == (416 + 148 + 384 + 48 + 768 + 64, 49 + 65, 81 * 16 * 25 + 128 + 81 * 1152, (32, 9, 9))


def test_strided_training_form_drops_the_1x1_branch():
    # stride 2 on 9×9 → floor((9 − 1)/2) + 1 = 5: branches 5, 3 only (16·34 = 544, 2 BN); pointwise 16 → 16
    s = spec([{"kind": "rep_dwsep", "kernel": 5, "stride": 2, "out_channels": 16}])
    assert totals(s) == (544 + 64 + 256 + 32, 2 * 33 + 33, 25 * 16 * 34 + 25 * 256, (16, 5, 5))


def test_residual_adds_nothing_countable():
    r = costmodel.analyze(spec([{"kind": "rep_dwsep", "kernel": 3, "out_channels": 16, "residual": "auto"}]))
    stages = [row.stage for row in r.rows]
    assert stages.count("residual") == 1
    assert r.totals["macs"] == 81 * 16 * (9 + 1) + 81 * 256  # branches 3, 1 and the pointwise conv


def test_settings_say_the_form():
    s = spec([SPLIT_SE, {**SPLIT_SE, "form": "deployed", "stride": 2}])
    assert [layer.settings(layer.stride) for layer in s.layers] == ["k5 se0.25 rep mid24", "k5 s2 se0.25 fused mid24"]


def test_symbolic_form():
    # C channels on H×W, k5 stride 1, out D, no SE: MACs = H·W·C·(25 + 9 + 1) + H·W·C·D,
    # params = 35C + 3·2C + C·D + 2D (training) and 25C + C + C·D + 2D (deployed)
    import sympy

    c, d, h, w = sympy.symbols("C D H W", positive=True, integer=True)
    for form, dw_params, dw_macs in (("training", 41 * c, 35 * c), ("deployed", 26 * c, 25 * c)):
        layer = {"kind": "rep_dwsep", "kernel": 5, "out_channels": "D", "form": form}
        r = costmodel.analyze(spec([layer], c="C", h="H", w="W"))
        assert sympy.simplify(r.totals["macs"] - h * w * (dw_macs + c * d)) == 0
        assert sympy.simplify(r.totals["params"] - (dw_params + c * d + 2 * d)) == 0


def test_symbolic_matches_numbers():
    r = costmodel.analyze(spec([{**SPLIT_SE, "stride": 2}], h="H"))
    (sym_h,) = r.totals["macs"].free_symbols
    for h in (9, 33, 193):
        assert int(r.totals["macs"].subs(sym_h, h)) == totals(spec([{**SPLIT_SE, "stride": 2}], h=h))[2]


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"kind": "rep_dwsep", "kernel": 4, "out_channels": 8}, "kernel"),
        ({"kind": "rep_dwsep", "kernel": 3, "out_channels": 8, "padding": 1}, "padding"),
        ({"kind": "rep_dwsep", "kernel": 3, "out_channels": 8, "form": "fused"}, "form"),
        ({"kind": "rep_dwsep", "kernel": 3, "out_channels": 8, "branches": 2}, "branches"),
    ],
)
def test_bad_fields_refused(layer, field):
    with pytest.raises(Exception) as info:
        spec([layer])
    assert field in str(info.value)


def test_undefined_forms_refused():
    with pytest.raises(SpecError, match="no branch"):
        costmodel.analyze(spec([{"kind": "rep_dwsep", "kernel": 1, "stride": 2, "out_channels": 8}]))
    with pytest.raises(SpecError, match="numeric kernel"):
        costmodel.analyze(spec([{"kind": "rep_dwsep", "kernel": "k", "out_channels": 8}]))
    with pytest.raises(SpecError, match="residual"):
        costmodel.analyze(spec([{"kind": "rep_dwsep", "stride": 2, "out_channels": 16, "residual": True}]))


# ------------------------------------------------------------------------------------ against torch

CASES: list[dict[str, Any]] = [
    SPLIT_SE,
    {**SPLIT_SE, "form": "deployed"},
    {"kind": "rep_dwsep", "kernel": 5, "out_channels": 16, "residual": "auto"},
    {"kind": "rep_dwsep", "kernel": 7, "out_channels": 24, "se": 0.5, "form": "deployed"},
    {"kind": "rep_dwsep", "kernel": 3, "out_channels": 16, "residual": "auto", "se": 0.25, "mid_channels": 8},
]


@pytest.mark.parametrize(("case", "stride", "size"), list(itertools.product(range(len(CASES)), [1, 2], [9, 17])))
def test_kind_matches_torch(case, stride, size):
    pytest.importorskip("torch")
    from costmodel.torchref import measure

    s = spec([{**CASES[case], "stride": stride}], c=16, h=size, w=size + 2)
    m = measure(s)
    assert m["macs_exact_half"]
    assert totals(s) == (m["params"], m["buffers"], m["macs"], m["output"])


# ------------------------------------------------------------------------------------ against timm


def _count(module: Any, c: int, h: int, w: int, device: str = "cpu") -> tuple[int, int, int, tuple[int, ...]]:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = module(torch.zeros(1, c, h, w, device=device))
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers())
    return params, buffers, counter.get_total_flops() // 2, tuple(y.shape[1:])


@pytest.mark.timm
@pytest.mark.parametrize(
    ("stride", "kernel", "split", "se", "shortcut"),
    [(1, 5, True, True, False), (2, 5, True, True, False), (1, 5, False, False, True), (2, 3, False, True, True),
     (1, 7, False, True, True)],
)  # fmt: skip
@pytest.mark.parametrize(("h", "w"), [(15, 15), (17, 11)])
def test_matches_timm_module_both_forms(stride, kernel, split, se, shortcut, h, w):
    pytest.importorskip("timm")
    from timm.models.lcnetv2 import RepDepthwiseSeparable

    cin, cout = 24, 24 if shortcut else 40
    blk = RepDepthwiseSeparable(cin, cout, stride, kernel, split_pw=split, use_rep=True, use_se=se,
                                use_shortcut=shortcut)  # fmt: skip
    layer: dict[str, Any] = {"kind": "rep_dwsep", "kernel": kernel, "stride": stride, "out_channels": cout}
    if split:
        layer["mid_channels"] = int(cout * 0.5)
    if se:
        layer["se"] = 0.25
    if shortcut:
        layer["residual"] = "auto"
    assert totals(spec([layer], c=cin, h=h, w=w)) == _count(blk, cin, h, w)
    blk.reparameterize()
    assert blk.dw_conv_list is None and blk.dw_conv.bias is not None
    assert totals(spec([{**layer, "form": "deployed"}], c=cin, h=h, w=w)) == _count(blk, cin, h, w)


SHIPPED = ["lcnetv2_small", "lcnetv2_base", "lcnetv2_large"]


def _deployed(name: str, resolution: int) -> costmodel.NetworkSpec:
    from costmodel.spec import loader

    path = SPECS / "timm" / f"{name}.yaml"
    data, src = loader.parse_yaml(path.read_text(), str(path))
    data["input"]["height"] = data["input"]["width"] = resolution
    for layer in data["layers"]:
        if layer["kind"] == "rep_dwsep":
            layer["form"] = "deployed"
    return loader.validate(data, src)


@pytest.mark.timm
@pytest.mark.parametrize("resolution", [224, 193, 321])
@pytest.mark.parametrize("name", SHIPPED)
def test_deployed_specs_match_timms_reparameterize_model(name, resolution):
    """The shipped spec with ``form: deployed`` on its rep_dwsep layers = timm's reparameterize_model(model), and
    = the model timm builds with inference_mode=True (meta device: same modules and counts, nothing allocated)."""
    timm = pytest.importorskip("timm")
    from timm.utils.model import reparameterize_model

    s = _deployed(name, resolution)
    model = timm.create_model(name, pretrained=False, device="meta")
    trained = _count(model, 3, resolution, resolution, "meta")
    fused = reparameterize_model(model)
    assert not any(type(m).__name__ == "ModuleList" for m in fused.modules())  # every branch list folded
    ours = totals(s)
    assert ours == _count(fused, 3, resolution, resolution, "meta")
    assert ours[0] < trained[0] and ours[2] < trained[2]
    built = timm.create_model(name, pretrained=False, device="meta", inference_mode=True)
    assert ours == _count(built, 3, resolution, resolution, "meta")


@pytest.mark.timm
@pytest.mark.parametrize("name", SHIPPED)
def test_training_specs_buffers_match_timm(name):
    # tests/test_timm.py checks params, MACs and output of every shipped spec; the BN buffers here
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False, device="meta")
    assert totals(costmodel.load(SPECS / "timm" / f"{name}.yaml")) == _count(model, 3, 224, 224, "meta")
