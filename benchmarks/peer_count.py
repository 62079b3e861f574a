"""One peer counting torchvision's efficientnet_b7 at 600×600, as a whole process: import, build, count.

Run by bench.py with an interpreter that has torch, torchvision and the peer installed. Prints the count.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

peer, res = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 600

import torch  # noqa: E402
import torchvision  # noqa: E402

model = torchvision.models.efficientnet_b7().eval()
x = torch.zeros(1, 3, res, res)
with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
    if peer == "flopcountermode":
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        count = counter.get_total_flops() // 2
    elif peer == "fvcore":
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        count = analysis.total()
    elif peer == "ptflops":
        from ptflops import get_model_complexity_info

        count = get_model_complexity_info(model, (3, res, res), as_strings=False, print_per_layer_stat=False)[0]
    elif peer == "thop":
        import thop

        count = int(thop.profile(model, inputs=(x,), verbose=False)[0])
    elif peer == "torchinfo":
        import torchinfo

        count = torchinfo.summary(model, input_size=(1, 3, res, res), verbose=0).total_mult_adds
    else:
        raise SystemExit(f"unknown peer {peer}")
print(peer, count)
