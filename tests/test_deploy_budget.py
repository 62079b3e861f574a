"""Deployment budgets: the largest resolution / width that fits (deploy --solve) and the number of
sub-networks of a space that fit (space --sram/--flash --runtime). Expectations by hand arithmetic written
beside them, or by costmodel deploy at the neighbouring grid points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import costmodel
from costmodel.cli import main
from costmodel.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
MBV2 = str(ROOT / "specs/networks/mobilenet_v2.yaml")
TINY = str(ROOT / "tests/deploy_fixtures/tiny_space.yaml")


def test_solve_resolution_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    # MobileNetV2 under TinyEngine peaks at block 2.0's expansion, (16 + 96)·⌈N/2⌉² B (the stem's
    # 3N² + 32⌈N/2⌉² is smaller). 320 KiB = 327,680 B: ⌈N/2⌉ ≤ 54 (112·54² = 326,592; 112·55² = 338,800),
    # so N = 108 is the largest that fits and 109 the first that does not.
    assert (
        main(["deploy", MBV2, "--runtime", "tinyengine", "--sram", "320KiB", "--solve", "resolution", "-f", "json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["best"]["value"] == 108 and out["best"]["peak_bytes"] == 112 * 54 * 54 == 326_592
    assert out["sram_bytes"] == 320 * 1024
    after = next(p for p in out["points"] if p["value"] == 109)
    assert after["peak_bytes"] == 112 * 55 * 55 and not after["fits"]
    assert [p["value"] for p in out["points"]] == list(range(32, 225))  # the stated grid: every N, 32 … 224
    assert out["monotonic"]


def test_solve_width_against_neighbours() -> None:
    # The answer fits and the next multiplier on the 0.05 grid does not, each checked with costmodel deploy.
    budget = 200 * 1024
    s = costmodel.api.deploy_solve(costmodel.configure(MBV2, resolution=96), "width", "tflm", sram=budget)
    best = s.best
    assert best is not None and s.monotonic()
    w = best["value"]
    here = costmodel.deploy(costmodel.configure(MBV2, resolution=96, width_mult=w), "tflm")
    nxt = costmodel.deploy(costmodel.configure(MBV2, resolution=96, width_mult=round(w + 0.05, 2)), "tflm")
    assert here.peak_bytes == best["peak_bytes"] <= budget < nxt.peak_bytes
    assert here.flash()["flash_bytes"] == best["flash_bytes"]


def test_solve_flash_only_and_nothing_fits() -> None:
    # Flash of MobileNetV2 does not depend on the resolution: every point fits a 4 MiB budget (3,686,432 B
    # at width 1.0, the docs' figure), none fits 1 MiB (the classifier alone is 1280·1000 B).
    s = costmodel.api.deploy_solve(MBV2, "resolution", "tinyengine", flash=4 << 20)
    assert s.best is not None and s.best["value"] == 224 and s.best["flash_bytes"] == 3_686_432
    s = costmodel.api.deploy_solve(MBV2, "resolution", "tinyengine", flash=1 << 20)
    assert s.best is None and "no resolution on the grid fits" in s.table()


def test_space_count_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    # tiny_space: stem 3→8 (s2), MBConv 8→16 (t=4, s2), then 0 or 1 more MBConv 16→16 (t=4), pool, linear 10.
    # TinyEngine peak, image counted: block 1's expansion, (8 + 32)·(R/2)² = 10R² (stem 3R² + 8(R/2)² = 5R²,
    # in-place depthwise 8R², second block's expansion (16 + 64)(R/4)² = 5R²): 10,240 / 23,040 / 40,960 at
    # R = 32 / 48 / 64, whatever the kernels and depth. Flash (int8 weights + 12 B per output channel):
    # stem 216 + 96, classifier 160 + 120: 592; block 1: 256 + 384, 32k² + 384, 512 + 192 = 2,016 (k3) /
    # 2,528 (k5); block 2: 1,024 + 768, 64k² + 768, 1,024 + 192 = 4,352 (k3) / 5,184 (k5). Depth 1: 2,608 /
    # 3,120; depth 2: 6,960, 7,472, 7,792, 8,304. Per resolution 6 sub-networks, 3 of them ≤ 7,000 B.
    cases = [(["--sram", "23040"], 12), (["--sram", "23039"], 6), (["--flash", "7000B"], 9),
             (["--sram", "23040", "--flash", "7000"], 6), (["--flash", "2607"], 0)]  # fmt: skip
    for argv, n in cases:
        assert main(["space", TINY, "--runtime", "tinyengine", *argv, "-f", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["size"] == 18 and out["count"] == n, argv
        assert out["min_peak_bytes"] == 10 * 32 * 32 and out["min_flash_bytes"] == 2_608
    # with an additive budget too: 'params<=3000' keeps depth 1 only (k5: 2,130 params; one more 16→16 block
    # adds 16·64 + 64·9 + 64·16 = 2,624 weights at k3, beyond 3,000).
    assert (
        main(["space", TINY, "--runtime", "tinyengine", "--sram", "23040", "--budget", "params<=3000", "-f", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["count"] == 4  # R ∈ {32, 48} × depth 1 × k ∈ {3, 5}


def test_space_sample_filters_by_deploy() -> None:
    sp = costmodel.space(TINY)
    drawn = sp.deploy_draw(20, "tinyengine", sram=23_040, flash=7_000, seed=1)
    assert len(drawn.samples) == 20
    for sub, c in drawn.samples:
        assert sub.resolution in ((32, 32), (48, 48))
        assert c["deploy_peak_bytes"] == 10 * sub.resolution[0] ** 2 and c["flash_bytes"] in (2_608, 3_120, 6_960)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["deploy", MBV2, "--runtime", "tinyengine", "--sram", "320KiB"], "--sram/--flash are budgets for --solve"),
        (["deploy", MBV2, "--runtime", "tinyengine", "--solve", "width"], "--solve needs a budget"),
        (["deploy", MBV2, "--runtime", "tinyengine", "--sram", "1e9", "--solve", "width"], "--sram '1e9': expected"),
        (["deploy", MBV2, "--runtime", "tinyengine", "--sram", "0", "--solve", "width"], "at least one byte"),
        (["deploy", MBV2, "--runtime", "tflm", "--flash", "1MiB", "--solve", "resolution", "--resolution", "96"],
         "drop --resolution"),
        (["space", TINY, "--sram", "1KiB"], "--sram/--flash and --runtime go together"),
        (["space", TINY, "--runtime", "tflm"], "--sram/--flash and --runtime go together"),
        (["space", "mcunet_tinynas", "--runtime", "tflm", "--sram", "320KiB"], "at most 2,000; this space has"),
        (["space", TINY, "--runtime", "tflm", "--sram", "1KiB", "--pareto", "macs,params"], "drop the other modes"),
    ],
)  # fmt: skip
def test_budget_refusals(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("costmodel: error: ") and message in captured.err
    assert captured.err.count("\n") == 1


def test_solve_refuses_bad_solve() -> None:
    with pytest.raises(UsageError, match="expected resolution or width"):
        costmodel.api.deploy_solve(MBV2, "depth", sram=1)
