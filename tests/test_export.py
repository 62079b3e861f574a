"""costmodel export --onnx: the written graph, read back by ``costmodel import FILE.onnx``, has the spec's
MACs and output shape — both taken from torch itself (FlopCounterMode total // 2 and a forward pass of the
module torchref builds). Needs torch and onnx; skips cleanly without them."""

from __future__ import annotations

from pathlib import Path

import pytest

import costmodel
from costmodel.cli import main

ROOT = Path(__file__).resolve().parents[1]
MBV2 = str(ROOT / "specs/networks/mobilenet_v2.yaml")
THREE = str(ROOT / "tests/deploy_fixtures/three_layer.yaml")
TINY = str(ROOT / "tests/deploy_fixtures/tiny_space.yaml")


def _torch_macs_output(spec: costmodel.NetworkSpec) -> tuple[int, tuple[int, ...]]:
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from costmodel.torchref import build

    model, shape = build(spec)
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        y = model(torch.zeros(*shape))
    return counter.get_total_flops() // 2, tuple(y.shape[1:])


def _specs() -> list[tuple[str, costmodel.NetworkSpec]]:
    sp = costmodel.space(TINY)
    sub = sp.sample(1, seed=3)[0]
    return [
        ("three_layer", costmodel.configure(THREE)),
        ("mobilenet_v2 x0.35 at 96", costmodel.configure(MBV2, resolution=96, width_mult=0.35)),
        ("tiny space sample", sp.spec.concrete(sub)),
    ]


@pytest.mark.parametrize("name, spec", _specs(), ids=lambda x: x if isinstance(x, str) else "")
def test_export_onnx_round_trip(name: str, spec: costmodel.NetworkSpec, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    macs, output = _torch_macs_output(spec)
    assert costmodel.analyze(spec).totals["macs"] == macs  # the spec is the module exported
    path = tmp_path / "m.onnx"
    shape_in, shape_out = costmodel.api.export_onnx(spec, path)
    assert shape_out[1:] == output and shape_in[1:] == (spec.input.channels, spec.input.height, spec.input.width)
    back = costmodel.analyze(costmodel.from_onnx(path))
    assert back.totals["macs"] == macs and tuple(back.output) == output


def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    assert main(["export", MBV2, "--resolution", "96", "--width-mult", "0.35", "--onnx", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote {path}: ONNX opset 17, input 1×3×96×96, output 1×1000\n"
    assert main(["import", str(path)]) == 0
    import yaml

    assert yaml.safe_load(capsys.readouterr().out)["layers"][-1] == {
        "name": "21",
        "kind": "linear",
        "out_features": 1000,
    }


def test_export_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401

        missing = None
    except ImportError:
        missing = "export --onnx needs"
    bad = tmp_path / "no" / "such" / "dir" / "m.onnx"
    assert main(["export", THREE, "--onnx", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("costmodel: error: ")
    assert (missing or "export --onnx") in captured.err and not bad.exists()
    # a symbolic spec is refused before anything is written
    assert main(["export", str(ROOT / "specs/symbolic_mbconv.yaml"), "--onnx", str(tmp_path / "s.onnx")]) == 2
    assert capsys.readouterr().err.startswith("costmodel: error: ") and not (tmp_path / "s.onnx").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([THREE], "give one of --onnx FILE or --tflite FILE"),
        ([THREE, "--onnx", "a.onnx", "--tflite", "a.tflite"], "give one of --onnx FILE or --tflite FILE"),
        ([str(ROOT / "specs/timm/mixnet_s.yaml"), "--tflite", "m.tflite"], "op category 'concat' is not modelled"),
    ],
)
def test_export_choice_refusals(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err
    assert list(tmp_path.iterdir()) == []


def test_export_tflite_refused_without_tensorflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorflow is installed: tests/test_deploy_runtime.py exports (-m deploy)")
    assert main(["export", THREE, "--tflite", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert err == "costmodel: error: export --tflite needs tensorflow: pip install 'costmodel[deploy]'\n"
    assert not (tmp_path / "m.tflite").exists()
