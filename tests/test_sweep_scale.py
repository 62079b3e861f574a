"""Sweeps at scale: streamed in chunks, bounded memory, invalid points marked as table refuses them,
numpy inputs, values past int64 refused. Expected numbers are hand arithmetic written beside them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import costmodel
from conftest import ROOT, SPECS

SYM = SPECS / "symbolic_mbconv.yaml"
BOTTLENECK = {
    "input": {"channels": "C", "height": 8, "width": 8},
    "layers": [{"kind": "bottleneck", "out_channels": "C", "kernel": 3}],
}


def _bottleneck() -> costmodel.NetworkSpec:
    return costmodel.NetworkSpec.model_validate(BOTTLENECK)


def test_invalid_points_are_marked_exactly_where_table_refuses():
    spec = _bottleneck()
    r = costmodel.sweep(spec, metrics=("params",), C=range(1, 13))
    refused = []
    for c in range(1, 13):
        try:
            costmodel.analyze(spec, C=c)
            refused.append(False)
        except costmodel.CostModelError:
            refused.append(True)
    assert refused == [True, True, True] + [False] * 9  # mid width C // 4 = 0 for C < 4
    assert [not v for v in r["valid"]] == refused
    # C = 4: mid 1; reduce 4·1 + BN 2, conv 1·1·9 + BN 2, expand 1·4 + BN 8 = 29 params
    assert int(r["params"][3]) == 29
    for rec in r.records():
        if rec["valid"]:
            assert rec["params"] == costmodel.analyze(spec, C=rec["C"]).totals["params"]
        else:
            assert rec["params"] is None


def test_cli_marks_invalid_points_in_csv_and_warns(run_cli, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(json.dumps(BOTTLENECK))
    code, out, err = run_cli("sweep", str(path), "--vary", "C=2:5", "--metric", "params", "--format", "csv")
    assert code == 0, err
    assert out.splitlines() == ["C,params,valid", "2,,false", "3,,false", "4,29,true", "5,33,true"]
    assert "2 of 4 points are invalid" in err and "C=2" in err and "mid width" in err
    code, out, err = run_cli("sweep", str(path), "--vary", "C=3:4", "--metric", "params", "--format", "jsonl")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"C": 3, "params": None, "valid": False},
        {"C": 4, "params": 29, "valid": True},
    ]


def test_jsonl_and_csv_stream_the_same_numbers(run_cli):
    args = ("sweep", str(SYM), "--vary", "t=1,2,6", "--set", "C=16,k=3,H=32,W=32", "--metric", "params")
    code, out, err = run_cli(*args, "--format", "jsonl")
    assert code == 0, err
    # t = 1: 16·9 + 16·16 = 400; t ≥ 2: t·C·(2C + k²) = t·16·41
    assert [json.loads(x) for x in out.splitlines()] == [
        {"t": 1, "params": 400},
        {"t": 2, "params": 1312},
        {"t": 6, "params": 3936},
    ]
    code, out, _ = run_cli(*args, "--format", "csv")
    assert out.splitlines() == ["t,params", "1,400", "2,1312", "6,3936"]


def test_numpy_integers_work_like_ints():
    r = costmodel.sweep(SYM, metrics=("params",), t=np.arange(2, 5), k=np.int64(3), C=np.array([4, 16]), H=8, W=8)
    # t·C·(2C + 9): C = 4 → 68·t, C = 16 → 656·t
    assert list(r["params"]) == [136, 1312, 204, 1968, 272, 2624]
    big = costmodel.sweep(SYM, metrics=("params",), t=np.arange(2, 1002), C=np.arange(1, 1001), k=3, H=8, W=8)
    assert len(big) == 1000 * 1000 and int(big["params"][-1]) == 1001 * 1000 * 2009
    assert costmodel.analyze(SYM, t=np.int32(6), k=np.int64(3), C=np.uint8(4), H=8, W=8).totals["params"] == 408
    with pytest.raises(costmodel.UsageError):
        costmodel.analyze(SYM, t=np.float64(6.0), k=3, C=4, H=8, W=8)
    with pytest.raises(costmodel.UsageError):
        costmodel.sweep(SYM, t=np.array([1.5, 2.0]), k=3, C=4, H=8, W=8)


def test_sweep_chunks_stream_the_whole_grid_in_order():
    chunks = list(costmodel.sweep_chunks(SYM, ("macs",), chunk=1000, t=range(2, 2502), k=3, C=4, H=8, W=8))
    assert [c.start for c in chunks] == [0, 1000, 2000] and sum(len(c) for c in chunks) == 2500
    macs = np.concatenate([c["macs"] for c in chunks])
    assert int(macs[0]) == 8704 and int(macs[-1]) == 4352 * 2501  # MACs = 4,352·t for the seed block


def test_values_beyond_int64_and_too_many_points_are_refused(run_cli):
    for vary in ("t=9223372036854775808", "t=1:99999999999999999999"):
        code, out, err = run_cli("sweep", str(SYM), "--vary", vary, "--set", "C=4,k=3,H=8,W=8")
        assert code == 2 and out == "" and "2^63" in err, err
    with pytest.raises(costmodel.UsageError, match="2\\^63"):
        costmodel.sweep(SYM, t=[2, 2**63], k=3, C=4, H=8, W=8)
    code, out, err = run_cli("sweep", str(SYM), "--vary", "t=1:2000000", "--set", "C=4,k=3,H=8,W=8")
    assert code == 2 and out == "" and "csv" in err and "jsonl" in err  # a table is built whole: refused
    with pytest.raises(costmodel.UsageError, match="sweep_chunks"):
        costmodel.sweep(SYM, t=range(1, 10**7 + 2), k=3, C=4, H=8, W=8)


@pytest.mark.slow
def test_a_hundred_million_point_sweep_streams_in_bounded_memory():
    code = (
        "import costmodel\n"
        "n = 0\n"
        f"for c in costmodel.sweep_chunks({str(SYM)!r}, ('macs',), t=range(1, 10**8 + 1), k=3, C=4, H=8, W=8):\n"
        "    n += len(c)\n"
        # VmHWM: this process's own peak RSS (ru_maxrss can carry the forking parent's over exec)
        "hwm = [int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]\n"
        "print(n, hwm)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    points, rss_kb = map(int, out.split())
    assert points == 10**8 and rss_kb < 500 * 1024
