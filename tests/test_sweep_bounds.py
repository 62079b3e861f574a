"""Sweeps validate every point against the spec's integer bounds and never wrap an int64.

A value beyond what its field accepts (2³¹ − 1 for an integer field, 10,000 for a repeat) is refused
up front, as ``table --set`` refuses it: exit 2 and one line naming the axis and the value. Within the
bounds, counts still pass 2⁶³ (9·C² at C = 2³¹ − 1 is ≈ 4.2·10¹⁹): they are computed exactly, in
Python integers, through the whole chain (compiled evaluator, chunks, CSV / JSON lines, the library
with numpy arrays). Every expected number below is hand arithmetic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import costmodel
from conftest import SPECS

M = 2**31 - 1  # the largest value of an integer field (spec/fields.py MAX_INT)
SYM = str(SPECS / "symbolic_mbconv.yaml")  # params = t·C·(2C + k²), MACs = H·W·t·C·(2C + k²), no BN, no bias

# one 3×3 conv C → C on a 1×1 input, no norm, no bias; repeated n times
CONV = "input: {channels: C, height: 1, width: 1}\ndefaults: {norm: none, bias: false}\nlayers:\n"
CONV += "  - {kind: conv, out_channels: C, kernel: 3, repeat: n}\n"

# 9·(2³¹ − 1)² = 9·(2⁶² − 2³² + 1) = 9·4,611,686,014,132,420,609 = 41,505,174,127,191,785,481 (> 2⁶³ − 1)
CONV_PARAMS_AT_M = 41_505_174_127_191_785_481
# 2·MACs + relu6's 2 per output element: 2·41,505,174,127,191,785,481 + 2·2,147,483,647
FLOPS_AT_M = 83_010_348_258_678_538_256


@pytest.fixture
def conv(tmp_path):
    path = tmp_path / "conv.yaml"
    path.write_text(CONV)
    return str(path)


def test_hand_arithmetic_is_what_it_says():
    assert (2**31 - 1) ** 2 == 4_611_686_014_132_420_609
    assert 9 * 4_611_686_014_132_420_609 == CONV_PARAMS_AT_M > 2**63 - 1


def test_conv_params_at_the_largest_width_are_exact_in_csv(run_cli, conv):
    code, out, err = run_cli("sweep", conv, "--vary", "C=1,2147483647", "--set", "n=1", "--format", "csv")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "C,params,macs,flops"
    # C = 1: params 9, MACs 9 (1×1 output), FLOPs 2·9 + relu6 2·1 = 20
    assert lines[1] == "1,9,9,20"
    # C = M: MACs = params (1×1 output); FLOPs = 2·9·M² + 2·M (relu6, 2 per element of C×1×1)
    assert 2 * CONV_PARAMS_AT_M + 2 * M == FLOPS_AT_M
    assert lines[2] == f"{M},{CONV_PARAMS_AT_M},{CONV_PARAMS_AT_M},83010348258678538256"


def test_json_lines_carry_the_exact_integers(run_cli, conv):
    code, out, err = run_cli("sweep", conv, "--vary", "C=2147483647", "--set", "n=1", "--format", "jsonl")
    assert code == 0, err
    rec = json.loads(out)
    assert rec == {"C": M, "params": CONV_PARAMS_AT_M, "macs": CONV_PARAMS_AT_M, "flops": FLOPS_AT_M}


@pytest.mark.parametrize(
    "vary, needle",
    [
        ("C=2147483647,2147483648", "--vary C=2147483648: C is input.channels, which must be at most 2,147,483,647"),
        ("C=2147483648:2147483650", "--vary C=2147483650: C is input.channels"),
        ("C=9223372036854775807", "--vary C=9223372036854775807: C is input.channels"),
        ("C=9223372036854775808", "--vary C=9223372036854775808: values must be at most 2^63 - 1"),
        ("C=1:99999999999999999999999", "at most 2^63 - 1"),
    ],
)
def test_values_beyond_a_field_are_refused_like_table(run_cli, conv, vary, needle):
    code, out, err = run_cli("sweep", conv, "--vary", vary, "--set", "n=1", "--format", "csv")
    assert (code, out) == (2, ""), (code, out[:200], err)
    assert len(err.splitlines()) == 1 and needle in err, err


def test_table_refuses_the_same_value(run_cli, conv):
    code, out, err = run_cli("table", conv, "--set", "C=2147483648,n=1")
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and "input.channels: must be at most 2**31 - 1" in err, err


def test_a_repeat_symbol_is_bounded_by_the_repeat_limit(run_cli, conv):
    code, out, err = run_cli("sweep", conv, "--vary", "n=9999:10001", "--set", "C=3", "--format", "csv")
    assert (code, out) == (2, "")
    assert "--vary n=10001: n is layers.0.repeat, which must be at most 10,000" in err
    code, out, err = run_cli("sweep", conv, "--vary", "n=10000", "--set", "C=2147483647", "--format", "csv")
    assert code == 0, err
    # 10,000 copies of the conv: params 10,000 · 9·M²
    assert out.splitlines()[1].split(",")[:2] == ["10000", "415051741271917854810000"]
    assert 10_000 * CONV_PARAMS_AT_M == 415_051_741_271_917_854_810_000


def test_library_sweep_with_numpy_arrays_is_exact_or_refused(conv):
    for dtype in (np.int64, np.int32, np.uint32, np.uint64):
        r = costmodel.sweep(conv, C=np.array([1, M], dtype=dtype), n=1)
        assert [int(v) for v in r["params"]] == [9, CONV_PARAMS_AT_M], dtype
    with pytest.raises(costmodel.UsageError, match="C=2147483648: C is input.channels"):
        costmodel.sweep(conv, C=np.array([5, 2**31]), n=1)
    with pytest.raises(costmodel.UsageError, match="2\\^63 - 1"):
        costmodel.sweep(conv, C=np.array([2**63], dtype=np.uint64), n=1)
    with pytest.raises(costmodel.UsageError, match="n=10001: n is layers.0.repeat"):
        costmodel.sweep(conv, C=3, n=range(1, 10_002))
    with pytest.raises(costmodel.CostModelError):  # a fixed value beyond the field: the spec's own refusal
        costmodel.sweep(conv, C=2**31, n=[1, 2])


def test_chunks_mix_int64_and_exact_integers_in_order(conv):
    values = [2, M, 3, M - 1]
    chunks = list(costmodel.sweep_chunks(conv, chunk=1, C=values, n=1))
    assert [c.start for c in chunks] == [0, 1, 2, 3]
    # 9·C² per point; 9·(M − 1)² = 9·(M² − 2M + 1)
    want = [36, CONV_PARAMS_AT_M, 81, CONV_PARAMS_AT_M - 18 * M + 9]
    assert [int(c["params"][0]) for c in chunks] == want
    whole = costmodel.sweep(conv, C=values, n=1)
    assert [int(v) for v in whole["params"]] == want


def test_a_constant_column_beyond_int64_is_exact():
    # H does not enter params: params = t·C·(2C + k²) at t = C = k = M is M²·(2M + M²)
    r = costmodel.sweep(SYM, H=[1, 2], C=M, t=M, k=M, W=1)
    assert [int(v) for v in r["params"]] == [M * M * (2 * M + M * M)] * 2
    # MACs = H·W·t·C·(2C + k²) = H·M²·(2M + M²)
    assert [int(v) for v in r["macs"]] == [h * M * M * (2 * M + M * M) for h in (1, 2)]


def test_expansion_one_piece_is_exact_past_int64():
    # t = 1: no expansion conv; dw k²·C + project C·C = 9M + M²; t = 6: 6·C·(2C + 9) = 12M² + 54M
    r = costmodel.sweep(SYM, t=[1, 6], C=M, k=3, H=1, W=1)
    assert [int(v) for v in r["params"]] == [M * M + 9 * M, 12 * M * M + 54 * M]
    assert 12 * M * M + 54 * M > 2**63


def test_compiled_evaluator_switches_when_only_an_intermediate_overflows():
    """(C² + C) / 2 at C = 2³² − 1 is (2³² − 1)·2³¹ = 9,223,372,034,707,292,160 < 2⁶³ − 1, but its numerator
    C² + C = (2³² − 1)·2³² passes 2⁶³: int64 would wrap it. The evaluator bounds the numerator first."""
    import sympy

    from costmodel.engine.compile import Compiled
    from costmodel.engine.symbols import symbol

    c = symbol("C")
    f = Compiled((c**2 + c) / 2, ("C",))
    big = 2**32 - 1
    assert (2**32 - 1) * 2**31 == 9_223_372_034_707_292_160 < 2**63 - 1
    with np.errstate(over="ignore"):
        wrapped = (np.array([big], dtype=np.int64) ** 2 + big) // 2
    assert int(wrapped[0]) != 9_223_372_034_707_292_160  # the silent wrong answer int64 would give
    assert f(C=np.array([1, big])).tolist() == [1, 9_223_372_034_707_292_160]
    assert f(C=big) == 9_223_372_034_707_292_160
    # a product of two in-range factors whose result passes int64: exact
    g = Compiled(sympy.Mul(c, c, c), ("C",))
    assert g(C=np.array([M])).tolist() == [M**3]
    # a huge divisor is an operand too: floor(C / 2⁷⁰) at C = 5 is 0, computed without an int64 overflow
    h = Compiled(sympy.floor(c / sympy.Integer(2**70)), ("C",))
    assert h(C=np.array([5, 7])).tolist() == [0, 0]
