"""compare, solve, sensitivity and notebook rendering."""

from __future__ import annotations

import json

import pytest
import sympy

import costmodel
from conftest import SPECS
from costmodel.analysis.design import parse_budget

SYM = str(SPECS / "symbolic_mbconv.yaml")


def test_compare_reproduces_the_seeds(run_cli):
    code, out, err = run_cli("compare", str(SPECS / "seed_mbconv.yaml"), str(SPECS / "seed_dwsep.yaml"),
                             str(SPECS / "seed_two_conv.yaml"), "--format", "json")  # fmt: skip
    assert code == 0, err
    specs = json.loads(out)["specs"]
    assert [s["totals"]["params"] for s in specs] == [408, 52, 4672]
    assert specs[1]["ratio"]["params"]["exact"] == "13/102"  # 52 / 408
    assert specs[0]["stage_share"]["depthwise"]["params"] == pytest.approx(216 / 408)
    code, out, _ = run_cli("compare", str(SPECS / "seed_two_conv.yaml"), str(SPECS / "seed_mbconv_bn.yaml"))
    assert code == 0 and "4,672" in out and "4,352" in out and "0.932×" in out  # 4352 / 4672


def test_solve_largest_expansion_for_the_seed_block(run_cli):
    # seed block at C=4, k=3, 8×8: MACs = 8·8·t·4·(2·4 + 9) = 4352·t; 4352·22 = 95,744 ≤ 1e5 < 4352·23
    code, out, err = run_cli("solve", SYM, "--for", "t", "--budget", "macs<=1e5", "--set", "C=4,k=3,H=8,W=8",
                             "--format", "json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["value"] == 22 and data["totals"]["macs"] == 95_744
    assert sympy.Rational(data["roots"]["macs <= 100,000"]) == sympy.Rational(100_000, 4352)


def test_solve_quadratic_and_smallest(run_cli):
    code, out, _ = run_cli("solve", SYM, "--for", "C", "--budget", "macs<=3e8", "--set", "H=56,k=3,t=6,W=56",
                           "--format", "json")  # fmt: skip
    value = json.loads(out)["value"]
    macs = lambda c: 56 * 56 * 6 * c * (2 * c + 9)  # noqa: E731
    assert macs(value) <= 3 * 10**8 < macs(value + 1)
    code, out, _ = run_cli("solve", SYM, "--for", "C", "--budget", "params>=1e5", "--smallest",
                           "--set", "H=56,k=3,t=6,W=56", "--format", "json")  # fmt: skip
    value = json.loads(out)["value"]
    params = lambda c: 6 * c * (2 * c + 9)  # noqa: E731
    assert params(value) >= 10**5 > params(value - 1)


def test_solve_no_solution(run_cli):
    code, out, _ = run_cli("solve", SYM, "--for", "t", "--budget", "macs<10", "--set", "C=4,k=3,H=8,W=8")
    assert code == 0 and out.startswith("no positive integer t")


@pytest.mark.parametrize(
    "text", ["macs=3e8", "watts<=3", "macs<=abc", "macs<=__import__('os')", "macs<=3e8;", "macs <= -5", ""]
)
def test_budget_grammar_refuses(text):
    with pytest.raises(costmodel.UsageError):
        parse_budget(text)


def test_budget_grammar_accepts():
    assert parse_budget("macs<=3e8").limit == 300_000_000
    assert parse_budget("params < 5.3M").limit == 5_300_000
    assert parse_budget("flops>=1_000_000").op == ">="


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--for", "q", "--budget", "macs<=1e5", "--set", "C=4,k=3,H=8,W=8"], "no free symbol"),
        (["--for", "t", "--budget", "macs<=1e5"], "--set"),
        (["--for", "t", "--budget", "macs=>1e5", "--set", "C=4,k=3,H=8,W=8"], "METRIC OP NUMBER"),
        (["--for", "t", "--budget", "params>=10", "--set", "C=4,k=3,H=8,W=8"], "unbounded"),
    ],
)
def test_bad_solve(run_cli, args, needle):
    code, out, err = run_cli("solve", SYM, *args)
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1, err


def test_derivative_and_elasticity(run_cli):
    code, out, _ = run_cli("formula", SYM, "--metric", "macs", "--diff", "k", "--format", "python")
    C, H, W, t, k = sympy.symbols("C H W t k")
    assert sympy.expand(sympy.parse_expr(out) - 2 * C * H * W * k * t) == 0
    code, out, err = run_cli("formula", SYM, "--metric", "macs", "--at", "t=6,k=3,C=16,H=32,W=32", "--format", "json")
    assert code == 0, err
    rows = {r["symbol"]: r for r in json.loads(out)}
    assert sympy.Rational(rows["H"]["elasticity"]) == 1  # MACs ∝ H
    assert sympy.Rational(rows["k"]["elasticity"]) == sympy.Rational(2 * 9, 2 * 16 + 9)  # 2k²/(2C + k²)
    assert sympy.Rational(rows["C"]["elasticity"]) == sympy.Rational(4 * 16 + 9, 2 * 16 + 9)  # (4C + k²)/(2C + k²)


def test_notebook_rendering():
    r = costmodel.analyze(SPECS / "seed_mbconv.yaml")
    html = r._repr_html_()
    assert html.startswith("<table") and "408" in html
    latex = costmodel.analyze(SYM)._repr_latex_()
    assert latex.startswith("$") and "k^{2}" in latex


def test_example_notebook_runs(monkeypatch):
    """Every code cell of examples/tour.ipynb runs, and what a cell ends with renders as HTML or LaTeX."""
    import ast

    from conftest import ROOT

    nb = json.loads((ROOT / "examples" / "tour.ipynb").read_text())
    monkeypatch.chdir(ROOT / "examples")
    namespace: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), namespace)  # our own shipped example, not user input
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
            for method in ("_repr_html_", "_repr_latex_"):
                if hasattr(value, method):
                    assert getattr(value, method)()


# ----------------------------------------------------------- solve against brute force (issue 10)

STRIDED = {
    "input": {"channels": 16, "height": 32, "width": 32},
    "layers": [{"kind": "mbconv", "out_channels": 24, "expansion": 6, "kernel": 3, "stride": "s", "se": 0.25}],
}
WIDE = {
    "input": {"channels": "C", "height": 8, "width": 8},
    "layers": [{"kind": "bottleneck", "out_channels": "C", "kernel": 3}],
}


def _brute(spec, symbol, budgets, smallest, values, top=64, **bound):
    """The independent check: a loop over values, each analysed with the value bound (as table --set)."""
    best = None
    for v in values:
        if v > top:
            break
        try:
            totals = costmodel.analyze(spec, **bound, **{symbol: v}).totals
        except costmodel.CostModelError:
            continue
        if all(b.holds(totals[b.metric]) for b in budgets):
            best = v if best is None or not smallest else best
            if smallest:
                return v
    return best


@pytest.mark.parametrize(
    "raw,symbol,budget,smallest,bound",
    [
        (STRIDED, "s", "macs<=2e6", True, {}),  # MACs fall with the stride: 4,817,664 at s=1, 2,384,640 at 2
        (STRIDED, "s", "macs>=2e6", False, {}),
        (WIDE, "C", "params<=200", False, {}),  # C < 4 is refused (mid width 0)
        (WIDE, "C", "params>=10", True, {}),
        (
            {
                "input": {"channels": 4, "height": 8, "width": 8},
                "layers": [{"kind": "mbconv", "out_channels": 4, "expansion": 6, "kernel": "k"}],
            },
            "k",
            "macs<=1e5",
            False,
            {},
        ),  # fmt: skip
    ],
)
def test_solve_equals_brute_force(raw, symbol, budget, smallest, bound):
    spec = costmodel.NetworkSpec.model_validate(raw)
    b = parse_budget(budget)
    sol = costmodel.solve(spec, symbol, [b], smallest=smallest, maximum=64, **bound)
    assert sol.value == _brute(spec, symbol, [b], smallest, range(1, 65), **bound)


def test_solve_by_hand_on_strides_and_kernels():
    spec = costmodel.NetworkSpec.model_validate(STRIDED)
    # MACs at s = 1, 2, 3: 4,817,664, 2,384,640, 1,956,960 (table --set); the smallest s under 2·10⁶ is 3
    assert costmodel.solve(spec, "s", ["macs<=2e6"], smallest=True).value == 3
    seed = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": 4, "height": 8, "width": 8},
            "layers": [{"kind": "mbconv", "out_channels": 4, "expansion": 6, "kernel": "k", "norm": "none"}],
            "defaults": {"norm": "none", "bias": False},
        }  # fmt: skip
    )
    # MACs = 64·24·(2·4 + k²) = 1,536·(8 + k²): k = 7 → 87,552, k = 9 → 136,704; only odd k tried
    sol = costmodel.solve(seed, "k", ["macs<=1e5"])
    assert sol.value == 7 and sol.totals["macs"] == 87_552


def test_solve_skips_invalid_small_widths():
    spec = costmodel.NetworkSpec.model_validate(WIDE)
    # C = 1…3 are refused (mid width 0); C = 4 has 29 params (reduce 4+2, conv 9+2, expand 4+8)
    sol = costmodel.solve(spec, "C", ["params>=10"], smallest=True)
    assert sol.value == 4 and sol.totals["params"] == 29


# ------------------------------------------------------------------ formula --at gives numbers


def test_at_uses_what_table_gives(run_cli):
    code, out, err = run_cli("formula", SYM, "--metric", "params", "--at", "C=4,t=1,k=3,H=8,W=8", "--format", "json")
    assert code == 0, err
    rows = {r["symbol"]: r for r in json.loads(out)}
    # t = 1: no expansion conv; depthwise 4·9 + projection 4·4 = 52 (table --set gives 52, not 68)
    assert rows["t"]["value"] == 52
    # forward difference: t = 2 gives 2·4·(8 + 9) = 136, so 136 − 52 = 84
    assert rows["t"]["partial_value"] == 84 and "forward difference" in rows["t"]["method"]
    # C: exact derivative of the t = 1 formula C·k² + C² = 9C + C², 9 + 2C = 17 at C = 4
    assert rows["C"]["partial_value"] == 17 and rows["C"]["method"] == "exact derivative"
    code, out, err = run_cli("formula", SYM, "--at", "C=4,t=1,k=4,H=8,W=8")
    assert code == 2 and out == "" and "odd" in err


def test_at_and_diff_give_numbers_with_se_and_strides(run_cli, tmp_path):
    path = tmp_path / "se.yaml"
    path.write_text(json.dumps({
        "input": {"channels": "C", "height": "H", "width": "H"},
        "layers": [{"kind": "mbconv", "out_channels": 24, "expansion": 6, "kernel": 3, "stride": "s",
                    "se": 0.25, "residual": False}],
    }))  # fmt: skip
    code, out, err = run_cli("formula", str(path), "--metric", "macs", "--at", "C=16,H=32,s=2", "--format", "json")
    assert code == 0, err
    rows = {r["symbol"]: r for r in json.loads(out)}
    at = {s: costmodel.analyze(str(path), C=16, H=32, s=s).totals["macs"] for s in (1, 2, 3)}
    assert rows["s"]["value"] == at[2] == 2_384_640
    assert rows["s"]["partial_value"] == (at[3] - at[1]) / 2  # (1,956,960 − 4,817,664) / 2
    assert "Subs" not in out and "Derivative" not in out
    code, out, err = run_cli("formula", str(path), "--metric", "params", "--diff", "C")
    assert code == 0 and "Subs" not in out and "Derivative" not in out and "central difference" in err


def test_elasticity_spans_a_period_of_the_floor_steps(run_cli, tmp_path):
    """Two 3×3 stride-2 convs, 1 → 1 channel, on 1×H×4: MACs = 9·⌈H/2⌉·2 + 9·⌈H/4⌉·1 (by hand).

    At H = 8: f = 18·4 + 9·2 = 90. The floors step with period 4 in H: f(12) = 18·6 + 9·3 = 135 and
    f(4) = 18·2 + 9·1 = 45, so ∂ = (135 − 45)/8 = 45/4 and the elasticity 8·(45/4)/90 = 1 — MACs ∝ H
    over whole periods. The one-step difference (f(9) − f(7))/2 = (117 − 90)/2 straddles the step of
    ⌈H/4⌉ at 9 and would say 1.2.
    """
    path = tmp_path / "two.yaml"
    path.write_text(json.dumps({
        "input": {"channels": 1, "height": "H", "width": 4},
        "defaults": {"norm": "none", "activation": "none", "bias": False},
        "layers": [{"kind": "conv", "out_channels": 1, "kernel": 3, "stride": 2},
                   {"kind": "conv", "out_channels": 1, "kernel": 3, "stride": 2}],
    }))  # fmt: skip
    code, out, err = run_cli("formula", str(path), "--metric", "macs", "--at", "H=8", "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["value"] == 90
    assert sympy.Rational(row["partial"]) == sympy.Rational(45, 4)
    assert sympy.Rational(row["elasticity"]) == 1
    assert "(f(H+4) - f(H-4))/8" in row["method"] and "period (4)" in row["method"]
    # at H = 2, H − 4 is no size: the forward difference over one period, (f(6) − f(2))/4 = (54 + 18 − 27)/4
    code, out, err = run_cli("formula", str(path), "--metric", "macs", "--at", "H=2", "--format", "json")
    (row,) = json.loads(out)
    assert sympy.Rational(row["partial"]) == sympy.Rational(18 * 3 + 9 * 2 - (18 + 9), 4)
    assert "forward difference (f(H+4) - f(H))/4" in row["method"]
    # --diff: the same window in the formula
    code, out, err = run_cli("formula", str(path), "--metric", "macs", "--diff", "H", "--format", "python")
    assert code == 0 and "period of the floor steps" in err
    H = sympy.Symbol("H")
    assert sympy.parse_expr(out, {"H": H}).subs(H, 8) == sympy.Rational(45, 4)
