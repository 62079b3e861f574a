"""Import every timm MBConv-family model of docs/zoo.md's table and say how exactly each imports.

For each of the 177 names (specs/timm/_tools/figures.jsonl): build it with ``pretrained=False`` on the meta
device, ``costmodel.from_torch`` at its default input size, and compare the imported spec with torch's own
figures there (the import report: params, buffers, FlopCounterMode MACs / 2, output) and with figures.jsonl's
at 193×193 (the spec's input edited afterwards); and, where a spec is shipped, the imported spec's counts with
the shipped spec's at the default size, 193 and 321 (the shipped specs equal timm at all three); and under each
peer preset (fvcore, ptflops, thop, torchinfo, and torch) the imported spec's totals with the shipped spec's at
the default size and 193 (the shipped specs equal each tool on the model: tests/test_peers_timm.py); and whether
the imported spec's layers, defaults and implementation, names aside, are the shipped spec's (``layers_same``).
Not part of the tests (minutes on two cores):

    PYTHONPATH=. nice -n 10 python tests/import_fixtures/zoo_sweep.py out.jsonl [name ...]

Each output line: name, status (exact / covered / failed), coverage of MACs and params, problem count,
the first problems, kinds, and whether the shipped spec's counts are reproduced.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def figures(spec, h=None, w=None):
    import costmodel

    if h is not None:
        spec = spec.model_copy(update={"input": spec.input.model_copy(update={"height": h, "width": w})})
    r = costmodel.analyze(spec)
    return {k: r.totals[k] for k in ("params", "buffers", "macs")} | {"output": list(r.output)}


PRESETS = ("torch", "fvcore", "ptflops", "thop", "torchinfo")


def preset_totals(spec, h=None, w=None):
    """Each preset's totals (params, MACs, …) of the spec, at h×w if given."""
    import costmodel

    if h is not None:
        spec = spec.model_copy(update={"input": spec.input.model_copy(update={"height": h, "width": w})})
    shown = ("params", "buffers", "macs", "flops")  # the table's totals
    return {c: {k: costmodel.count(spec, c).totals[k] for k in shown} for c in PRESETS}


def same_layers(a, b):
    """Whether two specs say the same network in the same words: defaults, implementation and every layer's fields
    (repeats included), names aside (the imported spec names blocks by module, ``conv_stem``, ``blocks.3``)."""

    def plain(spec):
        layers = [layer.model_dump(mode="json", exclude_defaults=True) for layer in spec.layers]
        return [{k: v for k, v in d.items() if k != "name"} for d in layers], spec.defaults, spec.implementation

    return plain(a) == plain(b)


def one(name: str, ref: dict) -> dict:
    import timm

    import costmodel

    t0 = time.time()
    row: dict = {"model": name}
    try:
        model = timm.create_model(name, pretrained=False, device="meta")
        shape = tuple(model.pretrained_cfg["input_size"])
        spec = costmodel.from_torch(model, shape)
    except Exception as exc:  # the sweep records every failure
        row.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        row["seconds"] = round(time.time() - t0, 1)
        return row
    rep = costmodel.import_report(spec)
    at193 = figures(spec, 193, 193)
    ok193 = {k: at193[k] for k in ("params", "macs", "output")} == {
        k: ref["r193"][k] for k in ("params", "macs", "output")
    }
    shipped = ROOT / "specs" / "timm" / f"{name}.yaml"
    same = presets_same = layers_same = None
    if shipped.exists():
        s = costmodel.load(shipped)
        presets_same = preset_totals(spec) == preset_totals(s) and preset_totals(spec, 193, 193) == preset_totals(
            s, 193, 193
        )
        layers_same = same_layers(spec, s)
        # 321: the shipped specs equal timm there (tests/test_timm.py, slow), so equal figures mean an exact import
        same = (
            figures(spec) == figures(s)
            and at193 == figures(s, 193, 193)
            and figures(spec, 321, 321) == figures(s, 321, 321)
        )
    exact = rep.exact and ok193
    row.update(
        status="exact" if exact else "covered",
        macs_cov=round(rep.coverage("macs"), 6),
        params_cov=round(rep.coverage("params"), 6),
        at193=ok193,
        shipped_same=same,
        presets_same=presets_same,
        layers_same=layers_same,
        problems=len(rep.problems),
        first=[str(p) for p in rep.problems[:4]],
        mismatch={k: [v, rep.spec.get(k)] for k, v in rep.source.items() if rep.spec.get(k) != v},
        kinds=rep.kinds,
    )
    row["seconds"] = round(time.time() - t0, 1)
    return row


def main() -> None:
    out = Path(sys.argv[1])
    refs = {}
    for line in (ROOT / "specs" / "timm" / "_tools" / "figures.jsonl").read_text().splitlines():
        d = json.loads(line)
        refs[d["model"]] = d
    names = sys.argv[2:] or sorted(refs)
    with out.open("w") as fh:
        for name in names:
            row = one(name, refs[name])
            fh.write(json.dumps(row) + "\n")
            fh.flush()


if __name__ == "__main__":
    main()
