"""Imported specs say where they came from, and refuse what they cannot know (issue #23, items 1 and 3).

* ``provenance: {model, input, scaling: unknown}``: width and depth multipliers on an imported spec are refused in
  one line (the spec does not know how the model's builder rounds scaled channels and repeats); resolution and
  batch are not; shipped specs keep scaling as before;
* the input size and where it came from are in the header and on stderr; the last stderr line is the coverage.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import costmodel

ROOT = Path(__file__).resolve().parent.parent
SRC = "tests.import_fixtures.custom_mbconv:build"


def _imported() -> costmodel.NetworkSpec:
    pytest.importorskip("torch")
    from tests.import_fixtures.custom_mbconv import build

    return costmodel.from_torch(build(), (3, 40, 40))


def test_provenance_of_from_torch():
    spec = _imported()
    assert spec.provenance is not None
    assert (spec.provenance.model, spec.provenance.input, spec.provenance.scaling) == (
        "<torch>",
        "3x40x40 from the input given to from_torch",
        "unknown",
    )


@pytest.mark.parametrize("flag", ["width_mult", "depth_mult"])
def test_multipliers_refused_on_an_imported_spec(flag):
    spec = _imported()
    with pytest.raises(costmodel.UsageError, match=rf"^{flag} \(--{flag.replace('_', '-')}\): this spec was imported"):
        costmodel.configure(spec, **{flag: 0.5})
    # resolution and batch are the spec's own: they apply
    r = costmodel.analyze(costmodel.configure(spec, resolution=32, batch=2))
    assert r.output == (7,) and costmodel.configure(spec, batch=2).input.batch == 2


def test_scaling_block_refused_in_yaml(tmp_path):
    from costmodel.importers.core import to_yaml

    text = to_yaml(_imported())
    assert "\nprovenance: {model: <torch>, input: 3x40x40 from the input given to from_torch, scaling: unknown}\n" in (
        text.replace('"', "")
    )
    assert costmodel.loads(text).provenance == _imported().provenance  # round trip
    bad = text.replace("\nlayers:", "\nscaling: {width: 0.5}\nlayers:")
    with pytest.raises(costmodel.SpecError) as err:
        costmodel.loads(bad, "x.yaml")
    line = bad.splitlines().index("scaling: {width: 0.5}") + 1
    assert f"x.yaml:{line}" in str(err.value) and "scaling" in str(err.value)
    assert "provenance.scaling: unknown" in str(err.value)
    # scaling: spec says the spec's own rules are the model's: the block is read
    ok = bad.replace("scaling: unknown}", "scaling: spec}")
    assert costmodel.loads(ok).scaling.width == 0.5


def test_cli_refuses_in_one_line(run_cli, tmp_path):
    path = tmp_path / "imp.yaml"
    from costmodel.importers.core import to_yaml

    path.write_text(to_yaml(_imported()))
    for flag in ("--width-mult", "--depth-mult"):
        status, out, err = run_cli("table", str(path), flag, "1.1")
        assert (status, out) == (2, "")
        assert err.count("\n") == 1 and err.startswith("costmodel: error: ") and "scaling: unknown" in err
    status, out, err = run_cli("table", str(path), "--resolution", "48")
    assert status == 0, err


def test_shipped_specs_still_scale():
    """torchvision's mobilenet_v2(width_mult=0.5) has 1,968,680 params (issue #23, counted by torch)."""
    spec = costmodel.configure(ROOT / "specs" / "networks" / "mobilenet_v2.yaml", width_mult=0.5)
    assert spec.provenance is None
    assert costmodel.analyze(spec).totals["params"] == 1_968_680


def test_cli_header_and_stderr_say_the_input_and_end_with_the_coverage(run_cli, blocks_only):
    pytest.importorskip("torch")
    status, out, err = run_cli("import", SRC, "--input", "3x40x40")
    assert status == 0, err
    assert "# traced at 3x40x40 from --input (--input CxHxW traces at another size)\n" in out
    assert err.splitlines()[0] == "costmodel: traced at 3x40x40 from --input"
    # 25 warnings: 20 shown, then "… and 5 more", then the coverage, always last
    many = "tests.import_fixtures.custom_mbconv:ManyMish"
    status, out, err = run_cli("import", many, "--input", "3x8x8", "--partial")
    lines = err.splitlines()
    assert status == 0 and len(lines) == 1 + 20 + 1 + 1, err
    assert lines[-2] == "costmodel: warning: … and 5 more, listed in the spec's header"
    assert lines[-1] == "costmodel: the spec covers 100.00% of the model's MACs and 100.00% of its params"
    assert out.count("# warning: aten.mish.default") == 25


@pytest.mark.torchvision
def test_torchvision_input_origin_and_width_refused():
    pytest.importorskip("torchvision")
    spec = costmodel.import_model("torchvision:mobilenet_v2")
    assert spec.provenance.input == (
        "3x224x224 from the crop size of torchvision's MobileNet_V2_Weights.IMAGENET1K_V2 transforms"
    )
    with pytest.raises(costmodel.UsageError, match="no depth multiplier"):
        costmodel.configure(spec, depth_mult=1.1)  # its width scales as torchvision's: tests/test_import_scaling.py
    half = costmodel.import_model("torchvision:mobilenet_v2", kwargs={"width_mult": 0.5})
    assert half.provenance.model == "torchvision:mobilenet_v2 width_mult=0.5"
    assert costmodel.analyze(half).totals["params"] == 1_968_680
    assert half.provenance.scaling == "unknown"  # not the base table: its channels are scaled already
    with pytest.raises(costmodel.UsageError, match="provenance.scaling: unknown"):
        costmodel.configure(half, width_mult=0.5)


@pytest.mark.timm
def test_timm_input_origin_names_test_input_size():
    pytest.importorskip("timm")
    spec = costmodel.import_model("timm:efficientnet_b2")
    assert spec.provenance.input == (
        "3x256x256 from timm's pretrained_cfg input_size; its test_input_size is 3x288x288"
    )
    other = costmodel.import_model("timm:efficientnet_b2", input=(3, 288, 288))
    assert other.provenance.input == "3x288x288 from --input" and other.input.height == 288


@pytest.fixture
def blocks_only(monkeypatch):
    """The block recogniser alone, without the op-graph fallback (#22): what it says and names by itself."""
    importer = pytest.importorskip("costmodel.importers.torch")
    monkeypatch.setattr(importer, "GRAPH_FALLBACK", False)
