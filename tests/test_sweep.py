"""Sweeps: exact against the engine point by point, honest about assumptions, safe from overflow."""

from __future__ import annotations

import json

import numpy as np
import pytest

import costmodel
from conftest import SPECS

SYM = SPECS / "symbolic_mbconv.yaml"


def test_sweep_matches_the_engine_at_every_point():
    r = costmodel.sweep(SYM, t=[1, 2, 6], k=[1, 3, 5], C=[3, 16], H=[7, 8], W=[5])
    assert len(r) == 3 * 3 * 2 * 2
    for rec in r.records():
        point = {n: rec[n] for n in ("t", "k", "C", "H", "W")}
        totals = costmodel.analyze(SYM, **point).totals
        assert (rec["params"], rec["macs"], rec["flops"]) == (totals["params"], totals["macs"], totals["flops"])


def test_expansion_one_uses_the_formula_without_expansion_conv():
    r = costmodel.sweep(SYM, metrics=("params",), t=[1, 2], k=3, C=16, H=32, W=32)
    # t = 1: depthwise 16·9 + projection 16·16 = 400; t = 2: t·C·(2C + k²) = 2·16·41 = 1312
    assert list(r["params"]) == [400, 1312]


def test_grid_order_last_axis_fastest():
    r = costmodel.sweep(SYM, metrics=("params",), t=[2, 3], k=[3, 5], C=4, H=8, W=8)
    assert list(r["t"]) == [2, 2, 3, 3] and list(r["k"]) == [3, 5, 3, 5]


def test_overflow_falls_back_to_exact_integers():
    r = costmodel.sweep(SYM, metrics=("macs",), t=6, k=3, C=10**6, H=[10**6, 10**7], W=10**6)
    assert r["macs"].dtype == object
    assert int(r["macs"][1]) == 10**7 * 10**6 * 6 * 10**6 * (2 * 10**6 + 9)  # H·W·t·C·(2C + k²)


def test_stride_two_floor_formula_is_exact():
    spec = costmodel.NetworkSpec.model_validate(
        {
            "input": {"channels": "C", "height": "H", "width": "H"},
            "layers": [{"kind": "mbconv", "out_channels": "C", "expansion": 6, "stride": 2, "se": 0.25}],
        }
    )
    r = costmodel.sweep(spec, metrics=("macs", "flops"), C=[4, 9, 16], H=list(range(1, 40)))
    for rec in r.records():
        totals = costmodel.analyze(spec, C=rec["C"], H=rec["H"]).totals
        assert (rec["macs"], rec["flops"]) == (totals["macs"], totals["flops"])


def test_compile_is_reusable_and_vectorised():
    f = costmodel.analyze(SYM).compile("macs")
    t = np.arange(2, 10)
    got = f(t=t, k=3, C=16, H=32, W=32)
    assert list(got) == [32 * 32 * int(tt) * 16 * (2 * 16 + 9) for tt in t]
    assert f(t=6, k=3, C=4, H=8, W=8) == 26_112


def test_cli_sweep_formats(run_cli):
    code, out, err = run_cli("sweep", str(SYM), "--vary", "t=2,6", "--vary", "k=3:7:2", "--set", "C=4,H=8,W=8",
                             "--format", "json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["points"] == 6 and data["axes"] == {"t": [2, 6], "k": [3, 5, 7]}
    assert data["columns"]["params"][3] == 408  # t = 6, k = 3: the seed block
    code, out, _ = run_cli("sweep", str(SYM), "--vary", "t=6", "--vary", "k=3", "--set", "C=4,H=8,W=8",
                           "--format", "csv", "--metric", "macs")  # fmt: skip
    assert out.splitlines() == ["t,k,macs", "6,3,26112"]  # machine keys in CSV; C, H, W are fixed


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--vary", "t"], "NAME=VALUES"),
        (["--vary", "t=a,b"], "expected integers"),
        (["--vary", "t=7:3"], "start ≤ stop"),
        (["--vary", "t=0,1"], "positive"),
        (["--vary", "t=1.5"], "expected integers"),
        (["--vary", "t=2", "--vary", "t=3"], "twice"),
        (["--vary", "q=2"], "no free symbol"),
        (["--vary", "t=2"], "no values for"),
        (["--vary", "k=3,4", "--vary", "t=2", "--set", "C=4,H=8,W=8"], "odd"),
        (["--vary", "t=2", "--set", "t=3,k=3,C=4,H=8,W=8"], "both"),
        (["--vary", "t=1:100000", "--vary", "k=1:100001:2", "--set", "C=4,H=8,W=8"], "limit"),
    ],
)
def test_bad_sweeps(run_cli, args, needle):
    code, out, err = run_cli("sweep", str(SYM), *args)
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1, err


def test_sweep_needs_a_symbol(run_cli):
    code, out, err = run_cli("sweep", str(SPECS / "seed_mbconv.yaml"), "--vary", "t=2")
    assert code == 2 and "no symbols" in err


@pytest.mark.slow
def test_plots(run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    curves, heat, bars = tmp_path / "c.png", tmp_path / "h.png", tmp_path / "b.png"
    assert run_cli("sweep", str(SYM), "--vary", "t=2:8", "--set", "C=16,k=3,H=32,W=32", "--plot", str(curves))[0] == 0
    code, _, err = run_cli("sweep", str(SYM), "--vary", "t=2:4", "--vary", "H=8,16", "--set", "C=16,k=3,W=32",
                           "--plot", str(heat))  # fmt: skip
    assert code == 0, err
    assert run_cli("table", str(SPECS / "networks" / "efficientnet_b0.yaml"), "--plot", str(bars))[0] == 0
    for p in (curves, heat, bars):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli("sweep", str(SYM), "--vary", "t=2,3", "--vary", "k=3", "--vary", "C=4",
                             "--set", "H=8,W=8", "--plot", str(tmp_path / "x.png"))  # fmt: skip
    assert code == 2 and out == "" and "one axis" in err
