"""Convention presets: each peer's own figure, reproduced from the spec alone (issue #6's table, at 224)."""

from __future__ import annotations

import itertools
import json

import pytest

import costmodel
from conftest import NETWORKS, edited
from costmodel.analysis.conventions import CONVENTIONS, apply, explain

# torchvision 0.29.1 models, batch 1, 224×224, measured with fvcore 0.1.5.post20221221, ptflops 0.7.5 (default
# pytorch backend), thop 0.1.1.post2209072238, torchinfo 1.8.0 (total_mult_adds), FlopCounterMode / 2.
PEERS = ("torch", "torchinfo", "fvcore", "ptflops", "thop")
TABLE = {
    "mobilenet_v2": (300_774_272, 300_809_384, 314_193_216, 320_300_008, 327_486_720),
    "mobilenet_v3_large": (216_589_760, 216_621_520, 226_033_824, 231_316_416, 234_838_456),
    "mobilenet_v3_small": (56_510_400, 56_527_424, 59_649_536, 60_910_032, 62_477_944),
    "efficientnet_b0": (385_814_752, 385_867_108, 401_659_392, 410_196_896, 415_145_024),
    "efficientnet_b1": (569_651_680, 569_728_888, 591_918_848, 603_910_968, 610_614_864),
    "efficientnet_b3": (962_708_240, 962_816_616, 993_639_392, 1_010_257_000, 1_019_632_544),
    "efficientnet_v2_s": (2_849_895_872, 2_850_085_936, 2_877_583_616, 2_891_727_000, 2_901_935_168),
    "mnasnet1_0": (314_415_872, 314_454_792, 325_329_152, 334_926_312, 336_242_432),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_presets_reproduce_the_peers_at_224(name):
    report = costmodel.analyze(edited(name, 224))
    got = tuple(apply(report, peer).totals["macs"] for peer in PEERS)
    assert got == TABLE[name]
    assert apply(report, "torchvision").totals["macs"] == TABLE[name][0]
    assert apply(report, "costmodel").totals["macs"] == report.totals["macs"] == TABLE[name][0]


@pytest.mark.parametrize("a,b", list(itertools.permutations(CONVENTIONS, 2)))
def test_explain_accounts_for_the_whole_gap(a, b):
    report = costmodel.analyze(edited("mobilenet_v3_large", 224))
    diffs = explain(report, a, b)
    gap = apply(report, b).totals["macs"] - apply(report, a).totals["macs"]
    assert sum(d.diff for d in diffs) == gap


def test_cli_convention_json_and_explain(run_cli):
    spec = str(NETWORKS / "efficientnet_b0.yaml")
    code, out, _ = run_cli("table", spec, "--convention", "thop", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["convention"] == "thop" and data["totals"]["macs"] == 415_145_024
    assert "thop" in data["conventions"]["macs"]
    code, out, _ = run_cli("explain", spec, "--vs", "ptflops", "--format", "json")
    data = json.loads(out)
    assert data["total_a"] == 385_814_752 and data["total_b"] == 410_196_896
    assert sum(op["difference"] for op in data["ops"]) == 410_196_896 - 385_814_752
    code, out, _ = run_cli("explain", spec, "--vs", "fvcore")
    assert code == 0 and "batchnorm2d" in out and "15,844,640" in out  # 401,659,392 − 385,814,752


@pytest.mark.parametrize(
    "args,needle",
    [
        (["table", "SPEC", "--convention", "flops"], "unknown convention"),
        (["explain", "SPEC", "--vs", "nope"], "unknown convention"),
        (["explain", "SPEC"], "--vs"),
        (["explain", "SPEC", "--vs", "thop", "--vs", "fvcore", "--vs", "torch"], "--vs"),
    ],
)
def test_bad_convention_arguments(run_cli, args, needle):
    args = [str(NETWORKS / "efficientnet_b0.yaml") if a == "SPEC" else a for a in args]
    code, out, err = run_cli(*args)
    assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1
