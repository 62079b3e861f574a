"""Width and depth multipliers on imported specs of recognised families equal the model built at that multiplier
(issue #23, item 5; costmodel/importers/families.py); elsewhere they are refused.

Expectations come from torch: the builder called at the multiplier, on the meta device, params =
``sum(p.numel())``, MACs = FlopCounterMode total / 2, output = the forward pass's shape. The imported spec is the
model at 1.0 with ``configure(width_mult=, depth_mult=)``.
"""

from __future__ import annotations

import pytest

import costmodel
from conftest import SPECS

torch = pytest.importorskip("torch")

# EfficientNet's B1–B7 coefficients (width, depth), and two below 1
COEFFICIENTS = [
    (1.0, 1.1),
    (1.1, 1.2),
    (1.2, 1.4),
    (1.4, 1.8),
    (1.6, 2.2),
    (1.8, 2.6),
    (2.0, 3.1),
    (0.5, 0.5),
    (0.75, 1.0),
]
RES = 128  # the multipliers do not depend on it; small keeps the meta forward cheap


def torch_figures(model, res: int = RES) -> tuple[int, int, tuple[int, ...]]:
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.empty(1, 3, res, res, device="meta"))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, tuple(y.shape[1:])


def spec_figures(spec, res: int = RES, **mult: float) -> tuple[int, int, tuple[int, ...]]:
    r = costmodel.analyze(costmodel.configure(spec, resolution=res, **mult))
    return r.totals["params"], r.totals["macs"], tuple(r.output)


@pytest.mark.torchvision
def test_torchvision_mobilenet_v2_width():
    tv = pytest.importorskip("torchvision")
    spec = costmodel.import_model("torchvision:mobilenet_v2")
    assert spec.provenance.scaling == "width"
    for w in (0.35, 0.5, 0.75, 1.3, 1.4):
        with torch.device("meta"):
            model = tv.models.mobilenet_v2(width_mult=w)
        assert spec_figures(spec, width_mult=w) == torch_figures(model), w
    # issue #23: torchvision's mobilenet_v2(width_mult=0.5) has 1,968,680 params and 97,131,840 MACs at 224
    assert spec_figures(spec, 224, width_mult=0.5)[:2] == (1_968_680, 97_131_840)
    with pytest.raises(costmodel.UsageError, match="no depth multiplier"):
        costmodel.configure(spec, depth_mult=1.1)


@pytest.mark.torchvision
@pytest.mark.parametrize(("w", "d"), COEFFICIENTS)
def test_torchvision_efficientnet_b0_width_and_depth(w, d):
    pytest.importorskip("torchvision")
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    spec = costmodel.import_model("torchvision:efficientnet_b0")
    assert spec.provenance.scaling == "spec"
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=w, depth_mult=d)
    with torch.device("meta"):
        model = EfficientNet(setting, 0.2, last_channel=last)
    assert spec_figures(spec, width_mult=w, depth_mult=d) == torch_figures(model)


@pytest.mark.torchvision
def test_torchvision_efficientnet_b1_is_b0_at_depth_1_1():
    """issue #23: the shipped spec at --depth-mult 1.1 gives B1's 7,794,184 params and 569,651,680 MACs at 224."""
    pytest.importorskip("torchvision")
    spec = costmodel.import_model("torchvision:efficientnet_b0")
    assert spec_figures(spec, 224, depth_mult=1.1)[:2] == (7_794_184, 569_651_680)


@pytest.mark.timm
@pytest.mark.parametrize("name", ["efficientnet_b0", "tf_efficientnet_b0"])
@pytest.mark.parametrize(("w", "d"), COEFFICIENTS)
def test_timm_efficientnet_b0_channel_and_depth_multiplier(name, w, d):
    pytest.importorskip("timm")
    from timm.models.efficientnet import _gen_efficientnet

    spec = costmodel.import_model(f"timm:{name}")
    assert spec.provenance.scaling == "spec"
    tf = {"bn_eps": 1e-3, "pad_type": "same"} if name.startswith("tf_") else {}
    model = _gen_efficientnet(name, channel_multiplier=w, depth_multiplier=d, pretrained=False, device="meta", **tf)
    assert spec_figures(spec, width_mult=w, depth_mult=d) == torch_figures(model)


@pytest.mark.timm
def test_timm_efficientnet_b2_is_b0_scaled():
    timm = pytest.importorskip("timm")
    spec = costmodel.import_model("timm:efficientnet_b0")
    model = timm.create_model("efficientnet_b2", pretrained=False, device="meta")
    assert spec_figures(spec, 256, width_mult=1.1, depth_mult=1.2) == torch_figures(model, 256)


@pytest.mark.torchvision
@pytest.mark.parametrize("alpha", [0.5, 0.75, 1.3, 0.35, 2.0])
def test_torchvision_mnasnet_alpha(alpha):
    """MNASNet(alpha): _get_depths rounds 32, 16, 24, 40, 80, 96, 192, 320 × alpha with _round_to_multiple_of
    (0.9 bias); the head 1280 stays; no depth multiplier."""
    tv = pytest.importorskip("torchvision")
    spec = costmodel.import_model("torchvision:mnasnet1_0")
    assert spec.provenance.scaling == "width"
    with torch.device("meta"):
        model = tv.models.MNASNet(alpha)
    assert spec_figures(spec, width_mult=alpha) == torch_figures(model), alpha
    with pytest.raises(costmodel.UsageError, match="no depth multiplier"):
        costmodel.configure(spec, depth_mult=1.2)


@pytest.mark.torchvision
def test_torchvision_mnasnet0_5_is_mnasnet1_0_at_half():
    """The shipped builders: torchvision's mnasnet0_5 / 0_75 / 1_3 are mnasnet1_0 at alpha 0.5 / 0.75 / 1.3."""
    tv = pytest.importorskip("torchvision")
    spec = costmodel.import_model("torchvision:mnasnet1_0")
    for name, alpha in (("mnasnet0_5", 0.5), ("mnasnet0_75", 0.75), ("mnasnet1_3", 1.3)):
        with torch.device("meta"):
            model = tv.models.get_model(name, weights=None)
        assert spec_figures(spec, width_mult=alpha) == torch_figures(model), name


@pytest.mark.timm
@pytest.mark.parametrize(("w", "d"), [(0.5, 1.0), (0.75, 1.0), (1.4, 1.0), (1.1, 1.2), (1.2, 1.4), (0.35, 0.5)])
def test_timm_mobilenetv2_channel_and_depth_multiplier(w, d):
    """timm's _gen_mobilenet_v2 (fix_stem_head=False): round_channels(c, m) everywhere, the head max(1280,
    round_channels(1280, m)), every stage's repeats ceil(n × d)."""
    pytest.importorskip("timm")
    from timm.models.efficientnet import _gen_mobilenet_v2

    spec = costmodel.import_model("timm:mobilenetv2_100")
    assert spec.provenance.scaling == "spec"
    model = _gen_mobilenet_v2("mobilenetv2_100", w, depth_multiplier=d, pretrained=False, device="meta")
    assert spec_figures(spec, width_mult=w, depth_mult=d) == torch_figures(model), (w, d)


@pytest.mark.timm
def test_timm_mobilenetv2_140_is_100_scaled():
    timm = pytest.importorskip("timm")
    spec = costmodel.import_model("timm:mobilenetv2_100")
    model = timm.create_model("mobilenetv2_140", pretrained=False, device="meta")
    assert spec_figures(spec, width_mult=1.4) == torch_figures(model)


@pytest.mark.torchvision
@pytest.mark.timm
@pytest.mark.parametrize(
    "source",
    [
        "torchvision:mnasnet0_5",  # alpha 0.5: not the base table (mnasnet1_0 is recognised)
        "torchvision:efficientnet_b1",  # B0 at depth 1.1: its channels and repeats are not the base table
        "timm:mobilenetv2_110d",  # fix_stem_head: not the base (mobilenetv2_100 is recognised)
        "timm:mobilenetv3_large_075",  # channel_multiplier 0.75: not the base (mobilenetv3_large_100 is recognised)
        "timm:mobilenetv3_rw",  # _gen_mobilenet_v3_rw: round(E / 4) SE widths, a stem that always scales
        "timm:efficientnet_b2",
        "timm:mixnet_m",
    ],
)
def test_unrecognised_families_refuse(source):
    pytest.importorskip("timm")
    pytest.importorskip("torchvision")
    spec = costmodel.import_model(source)
    assert spec.provenance.scaling == "unknown" and spec.scaling is None
    for flag in ("width_mult", "depth_mult"):
        with pytest.raises(costmodel.UsageError, match="provenance.scaling: unknown"):
            costmodel.configure(spec, **{flag: 1.1})


@pytest.mark.torchvision
@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
@pytest.mark.parametrize("w", [0.35, 0.5, 0.75, 1.25, 1.5])
def test_torchvision_mobilenet_v3_width(name, w):
    """torchvision's _mobilenet_v3_conf(width_mult): every table width (inputs, expanded widths, outputs) and the
    classifier's hidden width through adjust_channels = _make_divisible(c × w, 8), the SE squeeze
    _make_divisible(expanded // 4, 8), the last conv 6 × its input; no depth multiplier."""
    tv = pytest.importorskip("torchvision")
    spec = costmodel.import_model(f"torchvision:{name}")
    assert spec.provenance.scaling == "width"
    assert spec_figures(spec) == torch_figures(tv.models.get_model(name, weights=None).to("meta"))  # 1.0
    with torch.device("meta"):
        model = tv.models.get_model(name, weights=None, width_mult=w)
    assert spec_figures(spec, width_mult=w) == torch_figures(model), w
    with pytest.raises(costmodel.UsageError, match="no depth multiplier"):
        costmodel.configure(spec, depth_mult=1.2)


#: timm 1.0.31's entry functions pass channel_multiplier themselves (``timm.create_model("mobilenetv3_large_100",
#: channel_multiplier=0.5)`` raises TypeError: multiple values), so the models are built with the builder they
#: call, _gen_mobilenet_v3, with the entry function's own kwargs (the tf_ ports: TensorFlow padding and BN eps)
MOBILENET_V3 = ["mobilenetv3_large_100", "mobilenetv3_small_100", "tf_mobilenetv3_large_minimal_100"]


def _timm_mobilenet_v3(name: str, m: float):
    from timm.models.mobilenetv3 import _gen_mobilenet_v3

    tf = {"bn_eps": 1e-3, "pad_type": "same"} if name.startswith("tf_") else {}
    return _gen_mobilenet_v3(name, channel_multiplier=m, pretrained=False, device="meta", **tf)


@pytest.mark.timm
@pytest.mark.parametrize("name", MOBILENET_V3)
@pytest.mark.parametrize("m", [0.35, 0.5, 0.75, 0.9, 1.25, 1.5, 2.0])
def test_timm_mobilenetv3_channel_multiplier(name, m):
    """_gen_mobilenet_v3(channel_multiplier=m): round_channels(c, m) for the blocks and the last conv, the stem
    fixed at 16 below m = 0.75, every expanded width make_divisible(in × t, 8) of the scaled input (e2.5, e2.3,
    e4.5, e3.67 included: written as uir), the SE squeeze make_divisible(E / 4, 8), conv_head not scaled."""
    pytest.importorskip("timm")
    spec = costmodel.import_model(f"timm:{name}")
    assert spec.provenance.scaling == "width"
    assert spec_figures(spec) == torch_figures(_timm_mobilenet_v3(name, 1.0))
    assert spec_figures(spec, width_mult=m) == torch_figures(_timm_mobilenet_v3(name, m)), m


@pytest.mark.timm
def test_timm_mobilenetv3_depth_is_refused_in_one_line(capsys, tmp_path):
    """timm's depth_multiplier scales a stage's repeats as one total split over its arch entries
    (_scale_stage_depth): large stage 3 (e6, e2.5, e2.3 × 2) at d = 1.2 is 1, 2, 2 blocks, ceil per layer 2, 2, 3."""
    pytest.importorskip("timm")
    from costmodel.cli import main
    from costmodel.importers.core import to_yaml
    from costmodel.spec.scaling import stage_depths

    assert stage_depths([1, 1, 2], 1.2) == [1, 2, 2]
    spec = costmodel.import_model("timm:mobilenetv3_large_100")
    with pytest.raises(costmodel.UsageError, match="whose depth multiplier it cannot say"):
        costmodel.configure(spec, depth_mult=1.2)
    path = tmp_path / "m.yaml"
    path.write_text(to_yaml(spec))
    assert main(["table", str(path), "--depth-mult", "1.2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("costmodel: error: ") and "only the width scales" in err


@pytest.mark.timm
@pytest.mark.parametrize(
    ("base", "m", "other"),
    [
        ("mobilenetv3_large_100", 0.75, "mobilenetv3_large_075"),
        ("mobilenetv3_small_100", 0.5, "mobilenetv3_small_050"),
        ("tf_mobilenetv3_small_100", 0.75, "tf_mobilenetv3_small_075"),
    ],
)
def test_timm_mobilenetv3_scaled_is_the_smaller_model(base, m, other):
    """timm's _075 / _050 models are the _100 builder at that multiplier: the imported _100 spec scaled equals the
    model built by that name (torch), and under every preset the shipped spec of that model (which equals each
    tool on it: tests/test_peers_timm.py, tests/import_fixtures/zoo_sweep.py), at 224 and 193."""
    timm = pytest.importorskip("timm")
    spec = costmodel.configure(costmodel.import_model(f"timm:{base}"), width_mult=m)
    assert spec_figures(spec) == torch_figures(timm.create_model(other, pretrained=False, device="meta"))
    shipped = costmodel.load(SPECS / "timm" / f"{other}.yaml")
    for res in (224, 193):
        for preset in ("torch", "fvcore", "ptflops", "thop", "torchinfo"):
            mine = costmodel.count(costmodel.configure(spec, resolution=res), preset).totals
            theirs = costmodel.count(costmodel.configure(shipped, resolution=res), preset).totals
            assert {k: mine[k] for k in ("params", "buffers", "macs", "flops")} == {
                k: theirs[k] for k in ("params", "buffers", "macs", "flops")
            }, (res, preset)


@pytest.mark.timm
def test_timm_mobilenetv3_builder_kwargs_keep_it_unknown():
    """A kwarg that can change the builder's rules (se_from_exp) leaves the scaling unknown; num_classes does not."""
    pytest.importorskip("timm")
    spec = costmodel.import_model("timm:mobilenetv3_large_100", kwargs={"se_from_exp": False})
    assert spec.provenance.scaling == "unknown" and spec.scaling is None
    spec = costmodel.import_model("timm:mobilenetv3_small_100", kwargs={"num_classes": 10})
    assert spec.provenance.scaling == "width"
