"""Memory and roofline at inference: dropout is the identity (no kernel, no bytes, no time);
calibrate's on-chip memory is a per-core cache."""

from __future__ import annotations

import pytest

import costmodel
from conftest import NETWORKS

MOBILENET_V2 = NETWORKS / "mobilenet_v2.yaml"


@pytest.mark.parametrize(
    "fusion,moved",
    [
        # Before dropout was dropped, MobileNetV2's bytes moved were 173,075,264 (none), 70,599,360
        # (conv-bn-act) and 22,869,440 (block); its dropout read and wrote the 1,280-element pooled vector:
        # 2 × 1,280 × 4 B = 10,240 B fewer in every execution model.
        ("none", 173_075_264 - 10_240),
        ("conv-bn-act", 70_599_360 - 10_240),
        ("block", 22_869_440 - 10_240),
    ],
)
def test_no_dropout_kernel(fusion, moved):
    mem = costmodel.memory(MOBILENET_V2, "float32", fusion)
    assert [k for k in mem.kernels if any(r.op.category == "dropout" for r in k.rows)] == []
    assert mem.totals["bytes_moved"] == moved
    # the classifier's linear reads the pooled vector the dropout passed through: 1,280 × 4 B
    assert mem.kernels[-1].rows[-1].op.name == "linear"
    assert mem.kernels[-1].input_bytes == 5_120


def test_peak_unchanged():
    # MobileNetV2's peak (fusion none) is at block 2.0's expansion batchnorm: its input and output, each
    # 96 × 112 × 112 × 4 B = 4,816,896 B, together 9,633,792 B; far from the dropout, so unchanged.
    assert costmodel.memory(MOBILENET_V2).peak.bytes == 9_633_792


def test_roofline_has_no_dropout_time():
    result = costmodel.roofline(MOBILENET_V2, "mobile_soc")
    assert all("dropout" not in e.kernel.label for e in result.estimates)


def _cache(root, index, level_type, size, shared):
    d = root / f"index{index}"
    d.mkdir()
    (d / "type").write_text(level_type + "\n")
    (d / "size").write_text(size + "\n")
    (d / "shared_cpu_list").write_text(shared + "\n")


def test_calibrate_uses_a_per_core_cache(tmp_path):
    from costmodel.analysis.hardware import per_core_cache

    # a VM's report: 48K L1d, 32K L1i, 2 MiB L2 private, 480 MiB L3 shared by CPUs 0-31
    _cache(tmp_path, 0, "Data", "48K", "0")
    _cache(tmp_path, 1, "Instruction", "32K", "0")
    _cache(tmp_path, 2, "Unified", "2048K", "0")
    _cache(tmp_path, 3, "Unified", "491520K", "0-31")
    # L3 per core: 480 MiB / 32 = 15 MiB = 15,728,640 B, more than the 2 MiB L2
    assert per_core_cache(tmp_path) == 480 * 2**20 // 32
    (tmp_path / "index3" / "shared_cpu_list").write_text("0-239\n")
    # 480 MiB / 240 = 2,097,152 B = the L2: both 2 MiB
    assert per_core_cache(tmp_path) == 2 * 2**20
    (tmp_path / "index3" / "shared_cpu_list").write_text("0-15,32-47,64-511\n")
    # 16 + 16 + 448 = 480 CPUs: 1 MiB of L3 each, below the L2's 2 MiB
    assert per_core_cache(tmp_path) == 2 * 2**20
    assert per_core_cache(tmp_path / "missing") is None
