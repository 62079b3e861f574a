"""Import every ``timm.list_models()`` architecture and say how exactly each imports (issue #22's sweep).

For each name: ``costmodel.import_model("timm:NAME", partial=True)`` — the same path as ``costmodel import timm:NAME``
(``pretrained=False`` on the meta device, the default input size of timm's pretrained_cfg, nothing downloaded) —
and the import report's comparison with torch's own figures (``sum(p.numel())``, ``sum(b.numel())``,
``FlopCounterMode`` total // 2 on the meta device, the output shape). Each model runs in a worker process with a
per-model timeout; a row per model goes to the JSONL as soon as it is done (a rerun skips the rows already there),
and the markdown table docs/zoo.md shows is written from the whole JSONL:

    PYTHONPATH=. nice -n 10 python tests/import_fixtures/timm_sweep.py out.jsonl [--md out.md] [--workers 1]
        [--timeout 300] [--limit N] [name ...]

Each row: model, status (``exact``: every figure equal and nothing left out; ``partial``: a spec, not exact;
``failed``: no spec, with the error), how it imported (``blocks``: the block kinds; ``graph``: op graphs), the
MAC and param coverage, the first problems, the figures that differ, seconds. ``over`` is true when the spec
would count more params or MACs than the model (always a bug: the import refuses it as an internal error).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import signal
import time
from pathlib import Path
from typing import Any


class _Timeout(Exception):
    pass


def _alarm(_sig: int, _frame: Any) -> None:
    raise _Timeout


def one(name: str, timeout: int = 300) -> dict[str, Any]:
    """Import ``timm:name`` and describe how exactly it imports."""
    import costmodel

    t0 = time.time()
    row: dict[str, Any] = {"model": name}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        spec = costmodel.import_model(f"timm:{name}", partial=True)
        rep = costmodel.import_report(spec)
        kinds = dict(rep.kinds)
        row.update(
            status="exact" if rep.exact else "partial",
            imported="graph" if set(kinds) == {"graph"} else "blocks",
            macs_cov=round(rep.coverage("macs"), 6),
            params_cov=round(rep.coverage("params"), 6),
            over=rep.coverage("macs") > 1 or rep.coverage("params") > 1,
            problems=len(rep.problems),
            first=[str(p)[:300] for p in rep.problems[:3]],
            mismatch={k: [str(v), str(rep.spec.get(k))] for k, v in rep.source.items() if rep.spec.get(k) != v},
            layers=len(spec.layers),
        )
    except _Timeout:
        row.update(status="failed", error=f"timeout after {timeout} s")
    except BaseException as exc:  # the sweep records every failure, a costmodel bug included
        row.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:400]}")
        row["over"] = "counts more" in str(exc)
    finally:
        signal.alarm(0)
    row["seconds"] = round(time.time() - t0, 2)
    return row


def _init() -> None:
    import timm  # noqa: F401 - once per worker

    import costmodel  # noqa: F401


def _run(args: tuple[str, int]) -> dict[str, Any]:
    return one(*args)


def cause(row: dict[str, Any]) -> str:
    """One line: why a model is not exact."""
    if row["status"] == "failed":
        return str(row.get("error", ""))[:200]
    if row.get("first"):
        return str(row["first"][0])[:200]
    return "; ".join(f"{k}: model {a}, spec {b}" for k, (a, b) in row.get("mismatch", {}).items())[:200]


def markdown(rows: list[dict[str, Any]], total: int | None = None) -> str:
    """The docs/zoo.md table: counts, then every model that is not exact with its cause."""
    n = len(rows)
    exact = [r for r in rows if r["status"] == "exact"]
    by = {s: sum(1 for r in rows if r["status"] == s) for s in ("exact", "partial", "failed")}
    blocks = sum(1 for r in exact if r.get("imported") == "blocks")
    over = [r["model"] for r in rows if r.get("over")]
    lines = [
        f"Models run: {n}" + (f" of {total}" if total else ""),
        "",
        "| status | models |",
        "|---|---|",
        f"| exact | {by['exact']} ({blocks} as block kinds, {by['exact'] - blocks} as op graphs) |",
        f"| partial (a spec, not exact) | {by['partial']} |",
        f"| failed (no spec) | {by['failed']} |",
        f"| over-counted | {len(over)} |",
        "",
    ]
    bad = [r for r in rows if r["status"] != "exact"]
    if bad:
        lines += ["| model | status | cause |", "|---|---|---|"]
        for r in sorted(bad, key=lambda r: r["model"]):
            text = cause(r).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r['model']} | {r['status']} | {text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("out", type=Path)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--md", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--limit", type=int)
    a = ap.parse_args(argv)
    import timm

    every = sorted(timm.list_models())
    names = a.names or every
    done = {}
    if a.out.exists():
        for line in a.out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[r["model"]] = r
    todo = [n for n in names if n not in done][: a.limit]
    ctx = mp.get_context("spawn")
    with a.out.open("a") as fh, ctx.Pool(a.workers, initializer=_init, maxtasksperchild=25) as pool:
        for row in pool.imap_unordered(_run, [(n, a.timeout) for n in todo]):
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[row["model"]] = row
    if a.md:
        rows = [done[n] for n in names if n in done]
        a.md.write_text(markdown(rows, len(every) if not a.names else None))


if __name__ == "__main__":
    main()
