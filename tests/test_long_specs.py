"""The fast paths for long specs give what the general ones give (no timings here: benchmarks/ has them).

Equal layers on equal inputs share one flow of ops in the walk, ``table --format json`` is written
straight from the rows, and the peak of the one-kernel-per-op model is read off the rows: each must
give the same numbers and bytes as the plain construction, and rows must stay independent.
"""

from __future__ import annotations

import json

import pytest

import costmodel
from conftest import ROOT
from costmodel.analysis.memory import kernels, peak_activations
from costmodel.errors import SpecError
from costmodel.present.emit import dumps
from costmodel.present.report import to_dict, to_json
from costmodel.spec import loader

SEED_LAYER = "  - {kind: mbconv, out_channels: 4, expansion: 6, kernel: 3}\n"
SEED_HEAD = "input: {channels: 4, height: 8, width: 8}\ndefaults: {activation: relu6, norm: none, bias: false}\n"


def test_copies_of_one_layer_count_each_copy():
    # three separate copies of the seed MBConv, the last repeated twice: 4 block instances of 408 params and
    # 26,112 MACs each (specs/seed_mbconv.yaml: 96 + 216 + 96 params; 8·8·408 MACs)
    repeated = "  - {kind: mbconv, out_channels: 4, expansion: 6, kernel: 3, repeat: 2}\n"
    text = SEED_HEAD + "layers:\n" + SEED_LAYER * 2 + repeated
    r = costmodel.analyze(costmodel.loads(text))
    assert r.totals["params"] == 4 * 408
    assert r.totals["macs"] == 4 * 26_112
    assert [b.layer for b in r.blocks] == [0, 1, 2, 2]
    assert [b.repeat for b in r.blocks] == [0, 0, 0, 1]
    # rows of equal blocks are equal but independent: each owns its costs
    first = [row for row in r.rows if row.block == 0]
    second = [row for row in r.rows if row.block == 1]
    assert [row.costs for row in first] == [row.costs for row in second]
    second[0].costs["params"] = -1
    assert first[0].costs["params"] == 96
    # tensor ids run on across the copies: the second block reads what the first wrote last
    assert second[0].inputs == (first[-1].tensor,)


def _table_json(report: costmodel.Report, dtype: str = "float32", fusion: str = "none") -> str:
    """What ``table --format json`` wrote before its fast path: to_dict, the peak, then dumps."""
    data = to_dict(report)
    peak = costmodel.memory(report, dtype, fusion).peak
    data["totals"]["peak_activation_bytes"] = peak.bytes
    data["peak"] = {"bytes": peak.bytes, "kernel": peak.kernel, "dtype": dtype, "fusion": fusion}
    return dumps(data)


@pytest.mark.parametrize(
    "spec, convention, fusion",
    [
        ("specs/seed_mbconv_bn.yaml", "costmodel", "none"),
        ("specs/networks/efficientnet_b0.yaml", "costmodel", "none"),  # dropout: the general peak
        ("specs/networks/mobilenet_v3_small.yaml", "fvcore", "conv-bn-act"),
        ("specs/timm/mixnet_s.yaml", "costmodel", "block"),  # list fields: layers not shared
    ],
)
def test_table_json_is_the_plain_json_byte_for_byte(run_cli, spec, convention, fusion):
    status, out, err = run_cli("table", spec, "--format", "json", "--convention", convention, "--fusion", fusion)
    assert status == 0, err
    report = costmodel.count(ROOT / spec, convention)
    assert out.rstrip("\n") == _table_json(report, fusion=fusion)
    assert json.loads(out)["totals"]["macs"] == report.totals["macs"]


def test_to_json_matches_dumps_of_to_dict_with_extra_keys():
    text = SEED_HEAD + "layers:\n" + SEED_LAYER * 5
    report = costmodel.analyze(costmodel.loads(text))
    data = to_dict(report)
    data["totals"]["x"] = 1
    data["tail"] = {"a": [1, 2], "b": "é"}
    assert to_json(report, {"x": 1}, {"tail": {"a": [1, 2], "b": "é"}}) == dumps(data)
    assert to_json(report) == dumps(to_dict(report))


@pytest.mark.parametrize("spec", ["specs/seed_mbconv.yaml", "specs/seed_dwsep.yaml", "specs/networks/mnasnet0_5.yaml"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_peak_off_the_rows_is_the_peak_over_kernels(spec, dtype):
    report = costmodel.analyze(ROOT / spec)
    fast = peak_activations(report, dtype)
    general = peak_activations(report, dtype, "none", kernels(report, dtype, "none"))
    assert (fast.bytes, fast.kernel, fast.alive) == (general.bytes, general.kernel, general.alive)


def test_seed_peak_by_hand():
    # seed MBConv 4→4 on 8×8, no norm: at the depthwise conv the 24×8×8 expanded map is read, the depthwise
    # output 24×8×8 written and the 4×8×8 block input kept for the residual add: (1536 + 1536 + 256) × 4 bytes
    peak = peak_activations(costmodel.analyze(ROOT / "specs/seed_mbconv.yaml"))
    assert peak.bytes == (1536 + 1536 + 256) * 4


def test_a_refused_scalar_is_refused_every_time():
    text = SEED_HEAD + "layers:\n  - {kind: mbconv, out_channels: 4, expansion: 0x10, kernel: 3}\n"
    for _ in range(2):  # the second read must not find a resolved value kept from the first
        with pytest.raises(SpecError, match="hexadecimal"):
            loader.loads(text)
    assert len(loader._RESOLVED) <= loader._RESOLVED_MAX
