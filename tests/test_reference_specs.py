"""The shipped imported specs of issue #22 items 5 and 7: the reference models users compare against
(specs/reference/: resnet50, convnext_tiny, vit_small_patch16_224, mobilevit_s, efficientvit_b1, fastvit_t8,
maxvit_tiny_tf_224) and torchvision's segmenters (specs/dense/: lraspp_mobilenet_v3_large,
deeplabv3_mobilenet_v3_large and fcn_resnet50 with their aux heads, at 520×520).

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
        "timm:vit_small_patch16_224", {}, (3, 224, 224), 22050664, 0, 4598882304, (1000,),
    ),
    "reference/mobilevit_s": ("timm:mobilevit_s", {}, (3, 256, 256), 5578632, 12288, 2000831488, (1000,)),
    "reference/efficientvit_b1": ("timm:efficientvit_b1", {}, (3, 224, 224), 9102024, 13443, 519214592, (1000,)),
    "reference/fastvit_t8": ("timm:fastvit_t8", {}, (3, 256, 256), 4026232, 27334, 690149376, (1000,)),
    "reference/maxvit_tiny_tf_224": (
        "timm:maxvit_tiny_tf_224", {}, (3, 224, 224), 30916528, 75678, 5551836656, (1000,),
    ),
    "dense/lraspp_mobilenet_v3_large": (
        "torchvision:lraspp_mobilenet_v3_large", {}, (3, 520, 520), 3221538, 24703, 2086219688, (21, 520, 520),
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
        "torchvision:fcn_resnet50", {"aux_loss": True}, (3, 520, 520), 35322218, 54711, 152716512000, (21, 520, 520),
    ),
}
NAMES = sorted(FIGURES)


def test_every_reference_and_dense_spec_is_pinned():
    files = sorted(f"{p.parent.name}/{p.stem}" for d in ("reference", "dense") for p in (SPECS / d).glob("*.yaml"))
    assert files == NAMES


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
    if library == "timm":
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
