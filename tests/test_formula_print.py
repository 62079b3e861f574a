"""Formulas print as a reader expects them (ceiling(H/32), not floor(H/32 - 1/32) + 1), and the printed text is
exact: parsed back (with sympy, here in the test only) it gives the counts `costmodel table --resolution` prints,
and torch's own figures, at every size tried, odd and tiny ones included."""

from __future__ import annotations

import json
import re

import pytest
import sympy

import costmodel
from conftest import REFERENCE, SPECS

FIGURES = {
    json.loads(line)["model"]: json.loads(line)
    for line in (SPECS / "timm" / "_tools" / "figures.jsonl").read_text().splitlines()
    if line.strip()
}

H, W = (sympy.Symbol(n, integer=True, positive=True) for n in "HW")

#: (H, W) points: tiny, odd, powers of two and their neighbours, non-square, the evaluation sizes
POINTS = [(1, 1), (2, 3), (5, 4), (7, 7), (15, 17), (16, 16), (31, 33), (32, 64), (63, 65), (97, 96),
          (127, 129), (193, 193), (224, 224), (225, 161), (301, 299)]  # fmt: skip

# efficientnet_b0: torchvision (k//2 padding); tf_efficientnet_b0: timm's TensorFlow 'same' padding;
# mixnet_s: mixed kernels; mobilenet_v2; ghostnetv2_100: a 2×2 avg-pool floor kept as a floor;
# efficientnet_x_b3: an explicit 'same' 2×2 stride-2 conv
SPECS_TRIED = [
    "efficientnet_b0",
    "timm/tf_efficientnet_b0",
    "timm/mixnet_s",
    pytest.param("mobilenet_v2", marks=pytest.mark.slow),
    pytest.param("timm/ghostnetv2_100", marks=pytest.mark.slow),
    pytest.param("timm/efficientnet_x_b3", marks=pytest.mark.slow),
]


def _symbolic(name: str, tmp_path) -> str:
    """The shipped spec with its input height and width made the symbols H and W, as a user would edit it."""
    (item,) = [s for s in costmodel.shipped() if s.name == name]
    text = item.path.read_text()
    text, n = re.subn(r"height: *\d+, *width: *\d+", "height: H, width: W", text, count=1)
    assert n == 1
    path = tmp_path / "symbolic.yaml"
    path.write_text(text)
    return str(path)


def _torch_figures(name: str) -> dict[tuple[int, int], int]:
    """MACs measured with torch (FlopCounterMode / 2) at the sizes pinned in conftest or figures.jsonl."""
    model = name.removeprefix("timm/")
    if name.startswith("timm/"):
        fig = FIGURES[model]
        return {tuple(fig[k]["input_size"][1:]): fig[k]["macs"] for k in ("default", "r193")}
    res, _, macs = REFERENCE[model]
    return {(res, res): macs}


@pytest.mark.parametrize("name", SPECS_TRIED)
def test_printed_formula_reads_ceiling_and_evaluates_to_the_table(name, tmp_path, run_cli):
    code, out, err = run_cli("formula", _symbolic(name, tmp_path), "--metric", "macs")
    assert code == 0, err
    text = out.strip()
    assert "ceiling(H/32)" in text and "ceiling(W/2)" in text
    assert "- 1/32" not in text and "H/32 -" not in text  # no floor(H/32 - 1/32) left
    expr = sympy.sympify(text, locals={"H": H, "W": W})
    assert expr.free_symbols == {H, W}

    def printed(h: int, w: int) -> int:
        v = expr.xreplace({H: sympy.Integer(h), W: sympy.Integer(w)})
        assert v.is_Integer, (h, w, v)
        return int(v)

    # the counts costmodel table prints, through the CLI, at an odd and a tiny size
    for h, w in [(37, 37), (97, 96)]:
        code, out, err = run_cli("table", name, "--resolution", f"{h}x{w}", "-f", "json")
        assert code == 0, err
        assert printed(h, w) == json.loads(out)["totals"]["macs"], (h, w)
    # torch's own counts
    for (h, w), macs in _torch_figures(name).items():
        assert printed(h, w) == macs, (h, w)
    # the table's counts at every other point (the same library call the CLI makes)
    compared = 0
    for h, w in POINTS:
        try:
            want = costmodel.analyze(costmodel.configure(name, resolution=(h, w))).totals["macs"]
        except costmodel.CostModelError as err:  # a size the model cannot run (GhostNetV2's DFC pool of a 1×1 map)
            assert "must be at least 1" in str(err), (h, w, err)
            continue
        assert printed(h, w) == want, (h, w)
        compared += 1
    assert compared >= len(POINTS) // 2


def test_the_sympy_value_is_unchanged_on_a_lattice():
    """Report.formula (the readable form) equals Report.expression (the engine's) at every point of a lattice,
    strides symbolic too: floor((H − 1)/s) + 1 = ceil(H/s) holds for every integer H and positive integer s."""
    spec = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 3, "height": "H", "width": "W"},
            "layers": [
                {"kind": "conv", "out_channels": 8, "kernel": 3, "stride": "s"},
                {"kind": "conv", "out_channels": 8, "kernel": 5, "stride": 2},
                {"kind": "conv", "out_channels": 8, "kernel": 3, "stride": "t"},
                {"kind": "mbconv", "out_channels": 8, "kernel": 3, "stride": 2, "expansion": 2, "se": 0.25},
            ],
        }
    )
    r = costmodel.analyze(spec)
    shown, engine = r.formula("macs"), r.expression("macs")
    assert "floor" not in str(shown) and "floor" in str(engine)
    names = {x.name: x for x in engine.free_symbols}
    for h in (1, 2, 3, 7, 16, 31, 33):
        for w in (1, 5, 8):
            for s in (1, 2, 3):
                for t in (1, 2, 4):
                    at = {names["H"]: h, names["W"]: w, names["s"]: s, names["t"]: t}
                    assert shown.xreplace(at) == engine.xreplace(at), at


def test_a_floor_that_is_no_ceiling_is_kept():
    from costmodel.engine.symbols import readable, symbol

    h, c = symbol("H"), symbol("C")
    assert readable(sympy.floor(h / 2)) == sympy.floor(h / 2)  # a 2×2 pool
    assert readable(sympy.floor(c / 3)) == sympy.floor(c / 3)  # a channel split
    assert readable(sympy.floor((h - 2) / 3) + 1) == sympy.floor((h - 2) / 3) + 1  # c + 1 = −1: not a multiple of 3
    assert readable(sympy.floor((h + 1) / 2)) == sympy.ceiling(h / 2)
    assert readable(sympy.floor((h - 3) / 2) + 1) == sympy.ceiling(h / 2) - 1
    assert readable(7) == 7
