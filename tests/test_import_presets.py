"""Imports of timm models count as the peer tools count the real model (issue #23, item 4).

``costmodel import timm:X`` writes ``implementation: timm`` (``{library: timm, pad_type: same}`` for the tf_ ports)
and ``implementation: torch`` on the layers timm builds from torch.nn (costmodel/importers/timm_overrides.py), so
each preset on the imported spec gives the tool's own figure. Expectations:

* the figures each tool printed on the real model (thop, ptflops, fvcore, torchinfo, as issue #23 reports them,
  pinned below); and
* the shipped spec's figures under every preset, at the default size and at 193 (the shipped specs equal each
  tool on the real model: tests/test_peers_timm.py runs the tools), for a representative subset by default and
  for all 177 under ``-m slow``.

Needs timm (the zoo env); skipped without it. Models are built on the meta device: nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import costmodel

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("torch", "fvcore", "ptflops", "thop", "torchinfo")
SUBSET = ["mixnet_m", "efficientnet_b2", "ghostnet_100", "tf_efficientnet_b0", "mobilenetv4_hybrid_medium"]
ALL = sorted(json.loads(line)["model"] for line in (ROOT / "specs/timm/_tools/figures.jsonl").read_text().splitlines())

pytestmark = pytest.mark.timm


def _import(name: str) -> costmodel.NetworkSpec:
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False, device="meta")
    spec = costmodel.import_model(f"timm:{name}")
    assert costmodel.import_report(spec).exact
    assert tuple(model.pretrained_cfg["input_size"]) == (spec.input.channels, spec.input.height, spec.input.width)
    return spec


def _at(spec: costmodel.NetworkSpec, res: int | None) -> costmodel.NetworkSpec:
    return spec if res is None else costmodel.configure(spec, resolution=res)


#: the totals ``costmodel table`` shows (``activations``, the sum of op outputs, is not a preset's figure: the
#: shipped mobilenetv5_base spec writes a ``flatten`` after its pool, 2,048 outputs, where the import has none)
SHOWN = ("params", "buffers", "macs", "flops")


def _totals(spec: costmodel.NetworkSpec, preset: str) -> dict[str, int]:
    totals = costmodel.count(spec, preset).totals
    return {k: totals[k] for k in SHOWN}


# MACs each tool reports on timm's model at its default size (issue #23, measured with the tools themselves)
TOOLS = {
    ("mixnet_m", "thop"): 339_249_472,
    ("mixnet_m", "ptflops"): 350_230_940,
    ("mixnet_m", "fvcore"): 355_613_152,
    ("mixnet_m", "torchinfo"): 339_182_870,
    ("efficientnet_b2", "thop"): 859_945_280,
    ("ghostnet_100", "thop"): 153_883_120,
}


@pytest.mark.parametrize(("name", "preset"), sorted(TOOLS))
def test_imported_spec_counts_as_the_tool(name, preset):
    spec = _import(name)
    assert _totals(spec, preset)["macs"] == TOOLS[name, preset]


def test_implementation_written():
    """The field and the per-layer overrides, as the shipped specs carry them."""
    tf = _import("tf_efficientnet_b0")
    assert (tf.implementation.library, tf.implementation.pad_type) == ("timm", "same")
    assert tf.layers[-1].implementation == "torch"  # EfficientNet's classifier: an nn.Linear
    ghost = _import("ghostnet_100")
    assert ghost.implementation.library == "timm" and ghost.layers[0].implementation == "torch"  # nn.BatchNorm2d stem
    assert [getattr(layer, "implementation", None) for layer in ghost.layers if layer.kind == "linear"] == [
        "torch",
        None,
    ]
    from costmodel.importers.core import to_yaml

    text = to_yaml(tf)
    assert "\nimplementation: {library: timm, pad_type: same}\n" in text
    assert costmodel.loads(text).implementation == tf.implementation


def _same_as_shipped(name: str) -> None:
    spec = _import(name)
    shipped = costmodel.load(ROOT / "specs" / "timm" / f"{name}.yaml")
    for res in (None, 193):
        for preset in PRESETS:
            assert _totals(_at(spec, res), preset) == _totals(_at(shipped, res), preset), (res, preset)


@pytest.mark.parametrize("name", SUBSET)
def test_presets_equal_the_shipped_spec(name):
    _same_as_shipped(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in SUBSET])
def test_presets_equal_the_shipped_spec_all(name):
    _same_as_shipped(name)


def test_mobilenetv5_base_resizes_at_193():
    """Traced at 256, timm's mobilenetv5_base runs no resize in its fusion adapter (the map is already 16×16), but at
    193 it resizes 13×13 to 16×16 (bilinear: 13 is no multiple of 16). The import writes the adapter's resize
    (``mode: timm``, size 16: nothing at 256) from its ``output_resolution``, so the imported spec counts as the
    shipped one, and so as each tool (tests/test_peers_timm.py), at 193 too: before, FLOPs and every peer preset
    differed there."""
    spec = _import("mobilenetv5_base")
    (resize,) = [layer for layer in spec.layers if layer.kind == "resize"]
    assert (resize.name, resize.mode, resize.size) == ("msfa", "timm", 16)
    names = [layer.name for layer in spec.layers]
    assert names.index("msfa") == names.index("msfa.norm") - 1 == names.index("msfa.ffn") + 1
    _same_as_shipped("mobilenetv5_base")
    # the resize at 193, by hand: bilinear 13×13 → 16×16 on 2048 channels, 7 FLOPs an output (docs/conventions.md)
    at193 = costmodel.analyze(_at(spec, 193))
    (row,) = [r for r in at193.rows if r.layer == names.index("msfa")]
    assert (row.total("macs"), row.total("flops")) == (0, 7 * 2048 * 16 * 16)
    # traced at 193 the trace holds the resize itself: it is written once, not twice
    traced = costmodel.import_model("timm:mobilenetv5_base", input=(3, 193, 193))
    assert [(layer.name, layer.mode) for layer in traced.layers if layer.kind == "resize"] == [("msfa", "timm")]


@pytest.mark.slow
@pytest.mark.peers
def test_mobilenetv5_base_at_193_counts_as_the_tools():
    """The imported spec at 193 under each preset against the tools themselves on timm's model (CPU: the torch
    preset counts attention that the CPU's fused kernel does not, tests/test_peers_timm.py's IRREPRODUCIBLE)."""
    from test_peers_timm import IRREPRODUCIBLE, peer_counts

    spec = _at(_import("mobilenetv5_base"), 193)
    _, tools = peer_counts("mobilenetv5_base", 193)
    for preset in PRESETS:
        if ("mobilenetv5_base", preset) not in IRREPRODUCIBLE:
            assert _totals(spec, preset)["macs"] == tools[preset], preset
