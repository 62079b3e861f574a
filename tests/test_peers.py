"""The presets against the peers themselves, at resolutions other than 224 (optional: skipped unless
torchvision, fvcore, ptflops, thop and torchinfo are installed, at the versions docs/conventions.md names)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import pytest

import costmodel
from conftest import edited
from costmodel.analysis.conventions import apply

pytestmark = [pytest.mark.torchvision, pytest.mark.peers]
torch = pytest.importorskip("torch")
models = pytest.importorskip("torchvision.models")
fvcore_nn = pytest.importorskip("fvcore.nn")
ptflops = pytest.importorskip("ptflops")
thop = pytest.importorskip("thop")
torchinfo = pytest.importorskip("torchinfo")


def peer_counts(name: str, res: int) -> dict[str, int]:
    from torch.utils.flop_counter import FlopCounterMode

    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    x = torch.zeros(1, 3, res, res)
    out = {}
    with torch.no_grad():
        m = getattr(models, name)().eval()
        counter = FlopCounterMode(display=False)
        with counter:
            m(x)
        out["torch"] = counter.get_total_flops() // 2
        with contextlib.redirect_stdout(io.StringIO()):
            out["torchinfo"] = torchinfo.summary(m, input_size=(1, 3, res, res), verbose=0).total_mult_adds
        f = fvcore_nn.FlopCountAnalysis(m, x)
        f.unsupported_ops_warnings(False)
        f.uncalled_modules_warnings(False)
        out["fvcore"] = f.total()
        with contextlib.redirect_stdout(io.StringIO()):
            out["ptflops"] = ptflops.get_model_complexity_info(
                m, (3, res, res), as_strings=False, print_per_layer_stat=False, verbose=False
            )[0]
        fresh = getattr(models, name)().eval()  # thop leaves its buffers on the model
        with contextlib.redirect_stdout(io.StringIO()):
            out["thop"] = int(thop.profile(fresh, inputs=(x,), verbose=False)[0])
    return out


@pytest.mark.parametrize(
    "name",
    ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_s", "mnasnet1_0"],
)
@pytest.mark.parametrize("res", [193, 256])
def test_presets_match_the_peers(name, res):
    report = costmodel.analyze(edited(name, res))
    peers = peer_counts(name, res)
    assert {p: apply(report, p).totals["macs"] for p in peers} == peers
