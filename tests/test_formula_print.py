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


# --------------------------------------------------------------------------- the other outputs that print formulas
# (issue #21's leftover): `formula --training`, `formula --diff` and the engine's messages on symbolic specs print
# ceiling(H/s) as `formula` does, never the engine's floor((H − 1)/s) + 1.


def _evaluate(text: str, h: int, w: int, **more: int) -> int:
    names = {"H": H, "W": W} | {k: sympy.Symbol(k, integer=True, positive=True) for k in more}
    expr = sympy.sympify(text, locals=names)
    v = expr.xreplace(
        {H: sympy.Integer(h), W: sympy.Integer(w)} | {names[k]: sympy.Integer(x) for k, x in more.items()}
    )
    assert v.is_Integer, (h, w, v)
    return int(v)


def test_formula_training_prints_ceilings(tmp_path, run_cli):
    path = _symbolic("efficientnet_b0", tmp_path)
    code, out, err = run_cli("formula", path, "--training")
    assert code == 0, err
    assert "floor" not in out, out
    assert "ceiling(H/32)" in out and "ceiling(W/2)" in out
    printed = dict(line.split(" = ", 1) for line in out.strip().splitlines())
    assert set(printed) == {"training_macs", "saved_bytes"}
    # the printed text is exact: at odd, tiny and even sizes it gives what `costmodel train --resolution` prints
    for h, w in [(37, 37), (97, 96), (5, 4), (224, 224)]:
        code, out, err = run_cli("train", "efficientnet_b0", "--resolution", f"{h}x{w}", "-f", "json")
        assert code == 0, err
        totals = json.loads(out)["totals"]
        for m, text in printed.items():
            assert _evaluate(text, h, w) == totals[m], (m, h, w)


def test_formula_diff_prints_ceilings(tmp_path, run_cli):
    """The lattice difference in H (period 32: efficientnet_b0's strides multiply to 32) prints ceilings, and its
    value is (f(H + 32) − f(H − 32)) / 64 with f the MACs `costmodel table --resolution` prints."""
    path = _symbolic("efficientnet_b0", tmp_path)
    code, out, err = run_cli("formula", path, "--diff", "H", "--metric", "macs")
    assert code == 0, err
    assert "floor" not in out, out
    assert "ceiling(W/32)" in out
    text = out.strip()

    def macs(h: int, w: int) -> int:
        code, out, err = run_cli("table", "efficientnet_b0", "--resolution", f"{h}x{w}", "-f", "json")
        assert code == 0, err
        return int(json.loads(out)["totals"]["macs"])

    for h, w in [(64, 37), (97, 96)]:
        assert sympy.Integer(_evaluate_rational(text, h, w)) * 64 == macs(h + 32, w) - macs(h - 32, w), (h, w)


def _evaluate_rational(text: str, h: int, w: int) -> sympy.Rational:
    v = sympy.sympify(text, locals={"H": H, "W": W}).xreplace({H: sympy.Integer(h), W: sympy.Integer(w)})
    assert v.is_Rational, v
    return v


def test_formula_diff_exact_derivative_prints_ceilings(tmp_path, run_cli):
    """An exact derivative (in the input channels C, which enter only through products) keeps the strided sizes:
    printed as ceilings. By hand: a 3×3 stride-2 conv C → 8, no bias: MACs = 8·9·C·ceil(H/2)·ceil(W/2)."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "input: {channels: C, height: H, width: W}\n"
        "defaults: {norm: none, bias: false}\n"
        "layers:\n  - {kind: conv, out_channels: 8, kernel: 3, stride: 2, activation: none}\n"
    )
    code, out, err = run_cli("formula", str(path), "--diff", "C", "--metric", "macs")
    assert code == 0, err
    assert out.strip() == "72*ceiling(H/2)*ceiling(W/2)"


@pytest.mark.parametrize(
    ("layers", "said"),
    [
        # a stride-2 conv, then an unpadded 3×3 MBConv told to add its input: 2 rows short of the shortcut
        (
            "  - {kind: conv, out_channels: 16, kernel: 3, stride: 2}\n"
            "  - {kind: mbconv, out_channels: 16, expansion: 2, kernel: 3, padding: 0, residual: true}\n",
            "output height ceiling(H/2) - 2 differs from the shortcut's ceiling(H/2)",
        ),
        # a concat of a stride-4 map and a stride-2 one: whether to resize depends on H
        (
            "  - {kind: conv, out_channels: 16, kernel: 3, stride: 2, name: a}\n"
            "  - {kind: conv, out_channels: 16, kernel: 3, stride: 2, name: b}\n"
            "  - {kind: concat, inputs: [b, a]}\n",
            "cannot decide whether ceiling(H/4) < ceiling(H/2)",
        ),
    ],
    ids=["residual", "concat"],
)
def test_engine_messages_print_ceilings(layers, said, tmp_path, run_cli):
    path = tmp_path / "s.yaml"
    path.write_text("input: {channels: 3, height: H, width: W}\nlayers:\n" + layers)
    code, out, err = run_cli("table", str(path))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("costmodel: error: ")
    assert said in err and "floor" not in err, err


def test_undecided_sizes_print_ceilings():
    """The undecidable residual check (an unpadded k×k conv keeps the size only for k = 1) names its sizes as
    ceilings."""
    spec = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 3, "height": "H", "width": "W"},
            "layers": [
                {"kind": "conv", "out_channels": 8, "kernel": 3, "stride": 2},
                {"kind": "mbconv", "out_channels": 8, "kernel": "k", "expansion": 2, "padding": 0},
            ],
        }
    )
    with pytest.raises(costmodel.CostModelError) as err:
        costmodel.analyze(spec)
    assert "floor" not in str(err.value) and "ceiling(H/2)" in str(err.value), err.value


def test_table_of_a_symbolic_spec_prints_ceilings(tmp_path, run_cli):
    # the shape column and the metric cells of `table` print sizes as formulas do; a sum inside a shape is
    # parenthesised so that × cannot be misread; CSV likewise. The values stay exact: the printed MACs at
    # 97×96 equal `table --resolution 97x96`.
    path = _symbolic("mobilenet_v2", tmp_path)
    for fmt in ("github", "csv"):
        code, out, err = run_cli("table", path, "-f", fmt)
        assert code == 0, err
        assert "floor" not in out, out
        assert "ceiling(H/2)" in out and "ceiling(W/32)" in out
    code, out, err = run_cli("table", path, "-f", "csv")
    total = next(line for line in out.splitlines() if line.startswith("total"))
    macs_text = next(c for c in total.split(",") if "ceiling" in c)
    code, out2, err = run_cli("table", "mobilenet_v2", "--resolution", "97x96", "-f", "json")
    assert _evaluate(macs_text, 97, 96) == json.loads(out2)["totals"]["macs"]
