"""Imports of torchvision's MBConv-family models count as the peer tools count the real model (issue #23).

``costmodel import torchvision:NAME`` (weights=None, at the crop of its weights' transforms) under each preset
(torch, fvcore, ptflops, thop, torchinfo), at that size and at 193×193, against the tool itself run on
torchvision's model (tests/import_fixtures/tv_sweep.py's ``tool_counts``: FlopCounterMode total // 2, fvcore's
FlopCountAnalysis.total(), ptflops, thop on a fresh model, torchinfo's total_mult_adds), and every preset's totals
against the shipped spec of specs/networks/. Three models by default, all 18 classifiers under ``-m slow``.

torchvision's other five MBConv-family models are dense-prediction models (a segmentation head or a detector on a
MobileNetV3 backbone): the segmenters import as op graphs (exact); a detector's import is refused in one line, never
a partial spec (its post-processing has no meta kernel; specs/dense holds its countable parts, issue #22).

    python -m pytest tests/test_import_presets_torchvision.py -m "slow or not slow"   # the zoo env
"""

from __future__ import annotations

import pytest

import costmodel
from conftest import NETWORKS

pytestmark = [pytest.mark.torchvision, pytest.mark.peers]

SUBSET = ["mobilenet_v3_small", "mnasnet0_5", "mobilenet_v2"]


def _check(name: str) -> None:
    pytest.importorskip("torchvision")
    for peer in ("fvcore", "ptflops", "thop", "torchinfo"):
        pytest.importorskip(peer)
    from tests.import_fixtures.tv_sweep import PRESETS, preset_totals, tool_counts

    spec = costmodel.import_model(f"torchvision:{name}")
    assert costmodel.import_report(spec).exact
    shipped = costmodel.load(NETWORKS / f"{name}.yaml")
    assert spec.input.height == spec.input.width == shipped.input.height  # the weights' crop
    for res in (spec.input.height, 193):
        mine = preset_totals(spec, res)
        tools = tool_counts(name, res)
        assert {p: mine[p]["macs"] for p in PRESETS} == tools, res
        assert mine == preset_totals(shipped, res), res


@pytest.mark.parametrize("name", SUBSET)
def test_presets_equal_the_tools(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        n
        for n in (
            *(f"efficientnet_b{i}" for i in range(8)),
            "efficientnet_v2_s",
            "efficientnet_v2_m",
            "efficientnet_v2_l",
            "mnasnet0_75",
            "mnasnet1_0",
            "mnasnet1_3",
            "mobilenet_v3_large",
        )
        if n not in SUBSET
    ],
)
def test_presets_equal_the_tools_all(name):
    _check(name)


def test_a_segmenter_imports_exactly_as_op_graphs(run_cli, tmp_path):
    # since the op-graph fallback (#22), LR-ASPP's head imports too: exact against the model itself
    tv = pytest.importorskip("torchvision")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    out_file = tmp_path / "x.yaml"
    code, out, err = run_cli(
        "import", "torchvision:lraspp_mobilenet_v3_large", "--input", "3x320x320", "--out", str(out_file)
    )
    assert code == 0, err
    model = tv.models.get_model("lraspp_mobilenet_v3_large", weights=None, weights_backbone=None).eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.to("meta")(torch.empty((1, 3, 320, 320), device="meta"))
    totals = costmodel.analyze(str(out_file)).totals
    assert (totals["params"], totals["macs"]) == (params, fc.get_total_flops() // 2)


@pytest.mark.parametrize(
    "name",
    ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn"],
)
def test_dense_prediction_models_are_refused(name, run_cli, tmp_path):
    pytest.importorskip("torchvision")
    out_file = tmp_path / "x.yaml"
    code, out, err = run_cli("import", f"torchvision:{name}", "--input", "3x320x320", "--out", str(out_file))
    assert code == 2 and out == "", err
    last = err.strip().splitlines()[-1]
    assert last.startswith("costmodel: error: ")
    # the refusal points to the parts that can be counted, and to the shipped spec
    assert f"costmodel.importers.dense:{name}_trunk" in last and f"dense/{name}" in last
    assert not out_file.exists()


def test_a_builder_that_cannot_build_on_meta_is_built_on_the_cpu(run_cli, tmp_path):
    # torchvision's RegNets read a value while building (NotImplementedError on the meta device): the import
    # builds them on the CPU instead, and is exact against the model itself
    tv = pytest.importorskip("torchvision")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    out_file = tmp_path / "x.yaml"
    code, out, err = run_cli("import", "torchvision:regnet_x_400mf", "--out", str(out_file))
    assert code == 0, err
    model = tv.models.get_model("regnet_x_400mf", weights=None).eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros((1, 3, 224, 224)))
    totals = costmodel.analyze(str(out_file)).totals
    assert (totals["params"], totals["macs"]) == (params, fc.get_total_flops() // 2)
