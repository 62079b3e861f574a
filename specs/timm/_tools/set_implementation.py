"""Set the ``implementation`` field of timm specs from the modules timm builds (docs/conventions.md).

For each spec (default: every specs/timm/*.yaml) it builds ``timm.create_model(name, pretrained=False)`` on the
meta device (no weights, no memory) and writes, touching only that field:

* the network line ``implementation: timm``, or ``implementation: {library: timm, pad_type: same}`` where the
  stem conv is a Conv2dSame (timm's ``pad_type='same'``, the tf_ ports);
* ``implementation: torch`` on the stem layer where timm builds it from torch.nn (GhostNet: nn.BatchNorm2d);
* ``implementation: torch`` on the last linear layer where the classifier is a plain nn.Linear (timm's
  create_classifier, EfficientNet) rather than timm's own Linear (MobileNetV3, GhostNet, the pruned EfficientNets);
* ``implementation: torch`` on a linear layer before it (the spec's ``head``: timm's conv_head, a 1×1 nn.Conv2d on
  the pooled map, which every tool counts as the nn.Linear the spec writes).

Rerunnable: existing values are replaced, so a regenerated or edited spec gets the field back.

    python specs/timm/_tools/set_implementation.py [SPEC.yaml ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TIMM = Path(__file__).resolve().parent.parent
_FIELD = re.compile(r",\s*implementation:\s*[a-z]+")


def classes(name: str) -> tuple[bool, bool, bool, bool]:
    """(pad_type same, stem from torch.nn, classifier nn.Linear, conv_head nn.Conv2d) of the timm model ``name``."""
    import timm
    import torch.nn as nn

    m = timm.create_model(name, pretrained=False, device="meta")
    pad_same = type(getattr(m, "conv_stem", None)).__name__ == "Conv2dSame"
    stem_torch = type(getattr(m, "bn1", None)) is nn.BatchNorm2d
    linear_torch = type(m.get_classifier()) is nn.Linear
    head_torch = type(getattr(m, "conv_head", None)) is nn.Conv2d
    return pad_same, stem_torch, linear_torch, head_torch


def set_layer(line: str, value: str | None) -> str:
    """A flow-style layer line ``  - {...}`` with ``implementation: value`` set (None: removed)."""
    line = _FIELD.sub("", line)
    if value is None:
        return line
    head, _, tail = line.rpartition("}")
    return f"{head}, implementation: {value}}}{tail}"


def rewrite(text: str, pad_same: bool, stem_torch: bool, linear_torch: bool, head_torch: bool) -> str:
    """The spec text with its implementation fields set."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("implementation:")]
    net = "implementation: {library: timm, pad_type: same}" if pad_same else "implementation: timm"
    at = next((i for i, ln in enumerate(lines) if ln.startswith("input:")), None)
    if at is None:
        raise ValueError("no top-level `input:` line to put `implementation` after")
    lines.insert(at + 1, net)
    layers = [i for i, ln in enumerate(lines) if ln.startswith("  - {")]
    if not layers:
        raise ValueError("layers are not written one flow mapping a line (`  - {kind: …}`): set the field by hand")
    lines[layers[0]] = set_layer(lines[layers[0]], "torch" if stem_torch else None)
    linears = [i for i in layers if "kind: linear" in lines[i]]
    for i in linears:
        torch_built = linear_torch if i == linears[-1] else head_torch
        lines[i] = set_layer(lines[i], "torch" if torch_built else None)
    return "\n".join(lines) + "\n"


def main(paths: list[str]) -> int:
    files = [Path(p) for p in paths] or sorted(TIMM.glob("*.yaml"))
    failed = 0
    for path in files:
        try:
            path.write_text(rewrite(path.read_text(), *classes(path.stem)))
            print(path.name)
        except Exception as exc:  # noqa: BLE001 - report the spec and go on with the others
            print(f"{path.name}: not set: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
