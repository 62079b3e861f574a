"""The shipped imported specs of issue #22 items 5 and 7: the reference models users compare against
(specs/reference/: resnet50, convnext_tiny, vit_small_patch16_224, mobilevit_s, efficientvit_b1, fastvit_t8,
maxvit_tiny_tf_224) and torchvision's segmenters (specs/dense/: lraspp_mobilenet_v3_large,
deeplabv3_mobilenet_v3_large and fcn_resnet50 with their aux heads, at 520×520) and detectors (specs/dense/:
ssdlite320_mobilenet_v3_large's backbone + head, the two Faster R-CNN MobileNetV3 FPN's backbone + FPN + RPN head,
and their RoI heads per RoI with the batch R = the number of RoIs; post-processing named, not counted).

Default suite (no torch): each loads, its totals equal the figures torch gave (pinned below, measured in the zoo
env — torch 2.14.1, torchvision 0.29.1, timm 1.0.31 — with params = sum(p.numel()), buffers = sum(b.numel()),
MACs = FlopCounterMode total // 2 of one forward on the meta device at batch 1, output = the forward's shape; the
segmenters' output is the dict's "out", their aux head counted), and ``costmodel table`` runs on it.
Zoo env (marked timm / torchvision): the same figures measured again on the real model, against the shipped spec.
"""

from __future__ import annotations

import contextlib
import io

import pytest

import costmodel
from conftest import SPECS
from costmodel.cli import main

# name → (source, constructor kwargs beyond weights=None, input CxHxW, params, buffers, MACs, output)
FIGURES: dict[str, tuple[str, dict[str, bool], tuple[int, ...], int, int, int, tuple[int, ...]]] = {
    "reference/resnet50": ("torchvision:resnet50", {}, (3, 224, 224), 25557032, 53173, 4089184256, (1000,)),
    "reference/convnext_tiny": ("timm:convnext_tiny", {}, (3, 224, 224), 28589128, 0, 4455531264, (1000,)),
    "reference/vit_small_patch16_224": (
        "timm:vit_small_patch16_224",
        {},
        (3, 224, 224),
        22050664,
        0,
        4598882304,
        (1000,),
    ),
    "reference/mobilevit_s": ("timm:mobilevit_s", {}, (3, 256, 256), 5578632, 12288, 2000831488, (1000,)),
    "reference/efficientvit_b1": ("timm:efficientvit_b1", {}, (3, 224, 224), 9102024, 13443, 519214592, (1000,)),
    "reference/fastvit_t8": ("timm:fastvit_t8", {}, (3, 256, 256), 4026232, 27334, 690149376, (1000,)),
    "reference/maxvit_tiny_tf_224": (
        "timm:maxvit_tiny_tf_224",
        {},
        (3, 224, 224),
        30916528,
        75678,
        5551836656,
        (1000,),
    ),
    "dense/lraspp_mobilenet_v3_large": (
        "torchvision:lraspp_mobilenet_v3_large",
        {},
        (3, 520, 520),
        3221538,
        24703,
        2086219688,
        (21, 520, 520),
    ),
    "dense/deeplabv3_mobilenet_v3_large": (
        "torchvision:deeplabv3_mobilenet_v3_large",
        {"aux_loss": True},
        (3, 520, 520),
        11029328,
        28058,
        10452447938,
        (21, 520, 520),
    ),
    "dense/fcn_resnet50": (
        "torchvision:fcn_resnet50",
        {"aux_loss": True},
        (3, 520, 520),
        35322218,
        54711,
        152716512000,
        (21, 520, 520),
    ),
}
# the detectors' countable parts: (params, buffers, MACs, output), figures of the whole torchvision model below
DETECTION: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "dense/ssdlite320_mobilenet_v3_large": (3440060, 33014, 583171904, (3234, 4)),
    "dense/fasterrcnn_mobilenet_v3_large_320_fpn": (5048699, 24446, 718998400, (15, 10, 10)),
    "dense/fasterrcnn_mobilenet_v3_large_fpn": (5048699, 24446, 4493592256, (15, 25, 25)),
}
# the RoI heads, per RoI: 12544·1024 + 1024·1024 + 1024·91 + 1024·364 MACs; params those weights + 1024+1024+91+364
ROI = "dense/fasterrcnn_mobilenet_v3_large_fpn_roi_heads"
ROI_MACS = 12544 * 1024 + 1024 * 1024 + 1024 * 91 + 1024 * 364
ROI_PARAMS = ROI_MACS + 1024 + 1024 + 91 + 364
# The whole detector on CPU (a zero image at its min_size, weights=None, seed 0), measured with torch 2.14.1 /
# torchvision 0.29.1: params, buffers, FlopCounterMode // 2 and the RoIs that reached the box head. The detectors'
# post-processing (anchors, decoding, NMS) counts 0 MACs, so the whole model's MACs are the parts' sum.
WHOLE: dict[str, tuple[str, int, int, int, int, int]] = {
    "dense/ssdlite320_mobilenet_v3_large": ("ssdlite320_mobilenet_v3_large", 320, 3440060, 33014, 583171904, 0),
    "dense/fasterrcnn_mobilenet_v3_large_320_fpn": (
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        320,
        19410754,
        24446,
        2872931200,
        150,
    ),
    "dense/fasterrcnn_mobilenet_v3_large_fpn": (
        "fasterrcnn_mobilenet_v3_large_fpn",
        800,
        19410754,
        24446,
        18853144256,
        1000,
    ),
}
# EfficientDet-D0 of the effdet package (0.4.1): backbone + BiFPN + class/box nets at its config's 512×512, output the
# first level's class map; DetBenchPredict's anchors, decoding and NMS are not in it (named in the spec's header)
FIGURES["dense/efficientdet_d0"] = (
    "effdet:efficientdet_d0",
    {"pretrained": False, "pretrained_backbone": False},
    (3, 512, 512),
    3877763,
    47244,
    2492331520,
    (810, 64, 64),
)
NAMES = sorted(FIGURES)


def test_every_reference_and_dense_spec_is_pinned():
    files = sorted(f"{p.parent.name}/{p.stem}" for d in ("reference", "dense") for p in (SPECS / d).glob("*.yaml"))
    assert files == sorted([*NAMES, *DETECTION, ROI])


@pytest.mark.parametrize("name", sorted(DETECTION))
def test_detection_parts_give_the_pinned_figures(name):
    r = costmodel.analyze(name)
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"], tuple(r.output)) == DETECTION[name]
    # the whole model's figures (WHOLE, measured on torch) = these parts + R RoIs through the RoI heads
    _, _, params, buffers, macs, rois = WHOLE[name]
    roi = ROI_PARAMS if rois else 0
    assert (r.totals["params"] + roi, r.totals["buffers"], r.totals["macs"] + rois * ROI_MACS) == (
        params,
        buffers,
        macs,
    )


def test_roi_heads_are_a_formula_in_r():
    r = costmodel.analyze(ROI)
    assert r.totals["params"] == ROI_PARAMS == 14362055
    assert str(r.totals["macs"]) == f"{ROI_MACS}*R"
    bound = costmodel.analyze(costmodel.load(ROI), R=1000)
    assert bound.totals["macs"] == 1000 * ROI_MACS


@pytest.mark.parametrize("name", [*sorted(DETECTION), ROI])
def test_table_runs_on_detection_parts(name):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["table", name, *(["--set", "R=1000"] if name == ROI else [])])
    assert rc == 0, err.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_shipped_spec_gives_torchs_figures(name):
    _, _, size, params, buffers, macs, output = FIGURES[name]
    spec = costmodel.load(name)
    assert (spec.input.channels, spec.input.height, spec.input.width) == size
    r = costmodel.analyze(spec)
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"], tuple(r.output)) == (
        params,
        buffers,
        macs,
        output,
    )


@pytest.mark.parametrize("name", NAMES)
def test_table_runs_on_it(name):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["table", name])
    assert rc == 0, err.getvalue()
    assert f"{FIGURES[name][3]:,}" in out.getvalue() or str(FIGURES[name][3]) in out.getvalue()


def _torch_figures(name: str) -> tuple[int, int, int, tuple[int, ...]]:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    source, kwargs, size, *_ = FIGURES[name]
    library, model_name = source.split(":")
    if library == "effdet":
        effdet = pytest.importorskip("effdet")
        model = effdet.create_model(model_name, **kwargs)
        assert tuple(model.config.image_size) == size[1:]  # effdet's configured size is the spec's
    elif library == "timm":
        timm = pytest.importorskip("timm")
        model = timm.create_model(model_name, pretrained=False, device="meta")
        assert tuple(model.pretrained_cfg["input_size"]) == size  # timm's default size is the spec's
    else:
        torchvision = pytest.importorskip("torchvision")
        extra = {} if model_name == "resnet50" else {"weights_backbone": None}
        with torch.device("meta"):
            model = torchvision.models.get_model(model_name, weights=None, **extra, **kwargs)
    model = model.eval().to("meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(1, *size, device="meta"))
    if isinstance(y, dict):
        assert set(y) == ({"out", "aux"} if kwargs.get("aux_loss") else {"out"})
        y = y["out"]
    if isinstance(y, tuple):  # EfficientDet: (class maps, box maps) per level
        assert [tuple(t.shape[1:]) for t in y[1]][0] == (36, 64, 64)
        y = y[0][0]
    return (
        sum(p.numel() for p in model.parameters()),
        sum(b.numel() for b in model.buffers()),
        counter.get_total_flops() // 2,
        tuple(y.shape[1:]),
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.timm if FIGURES[n][0].startswith("timm:") else pytest.mark.torchvision)
        for n in NAMES
    ],
)
def test_shipped_spec_equals_torch_on_the_real_model(name):
    theirs = _torch_figures(name)
    assert theirs == FIGURES[name][3:]  # the pinned figures are torch's
    r = costmodel.analyze(costmodel.load(name))
    assert (r.totals["params"], r.totals["buffers"], r.totals["macs"], tuple(r.output)) == theirs


@pytest.mark.torchvision
@pytest.mark.parametrize("name", sorted(WHOLE))
def test_detector_parts_add_up_to_the_whole_torchvision_model(name):
    """The whole detector run on CPU (post-processing included, which counts 0 MACs): its params and
    FlopCounterMode // 2 equal the shipped backbone/neck/head spec plus R × the RoI heads' spec, R being the RoIs
    that reached the box head in that run."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torch.utils.flop_counter import FlopCounterMode

    model_name, side, *_ = WHOLE[name]
    torch.manual_seed(0)
    model = torchvision.models.get_model(model_name, weights=None, weights_backbone=None).eval()
    rois: list[int] = []
    first: list[tuple[int, ...]] = []  # the spec's output: the head's first tensor (SSD: box regression)
    if hasattr(model, "roi_heads"):
        model.roi_heads.box_head.register_forward_hook(lambda mod, args, out: rois.append(args[0].shape[0]))
        model.rpn.head.register_forward_hook(lambda mod, args, out: first.append(tuple(out[0][0].shape[1:])))
    else:
        model.head.register_forward_hook(lambda mod, args, out: first.append(tuple(out["bbox_regression"].shape[1:])))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model([torch.zeros(3, side, side)])
    r = sum(rois)
    theirs = (
        sum(p.numel() for p in model.parameters()),
        sum(b.numel() for b in model.buffers()),
        counter.get_total_flops() // 2,
    )
    assert (*theirs, r) == WHOLE[name][2:]
    assert first == [DETECTION[name][3]]
    part = costmodel.analyze(name).totals
    params, macs = part["params"], part["macs"]
    if rois:
        head = costmodel.analyze(costmodel.load(ROI), R=r).totals
        params, macs = params + head["params"], macs + head["macs"]
    assert (params, part["buffers"], macs) == theirs
