"""Views of a search space: its statistics, a budget count, a Pareto front, the per-block table, an
enumeration, sampled sub-networks — each one ``Table`` (present/emit.py), and the JSON payload."""

from __future__ import annotations

from typing import Any

from ..analysis.space import ADDITIVE, CDF, METRICS, Count, Enumeration, Pareto, SpaceStats
from ..spec.space import SpaceSpec, SubNet
from .emit import Column, Table, emit


def _num(x: Any) -> str:
    return f"{x:,.6g}" if isinstance(x, float) else f"{x:,}"


def describe(space: SpaceSpec, sub: SubNet) -> str:
    """A short text of one sub-network: resolution, width, then per layer with choices: out, depth and
    each kept block's values (``r224 | L2 d3 k3e4,k5e6,k3e3 | …``)."""
    parts = [f"r{sub.resolution[0]}" if sub.resolution[0] == sub.resolution[1] else "r{}x{}".format(*sub.resolution)]
    if sub.width is not None:
        parts.append(f"w{sub.width:g}")
    for ls, pick in zip(space.layers, sub.layers, strict=True):
        bits = []
        if ls.out is not None:
            bits.append(f"c{pick.out}")
        if ls.expanded:
            if ls.depth is not None:
                bits.append(f"d{len(pick.blocks)}")
            if ls.fields:
                short = {"kernel": "k", "expansion": "e", "expanded_channels": "x", "se": "se"}
                bits.append(",".join("".join(f"{short.get(f, f)}{'-' if v is None else v}"
                                             for f, v in zip(ls.fields, ls.options[b], strict=True))
                                     for b in pick.blocks))  # fmt: skip
        if bits:
            parts.append(f"L{ls.index} " + " ".join(bits))
    return " | ".join(parts)


def stats_table(space: SpaceSpec, st: SpaceStats, count: Count | None, budgets: list[str]) -> Table:
    """One row per metric: min, max, mean, std and the arg-min / arg-max sub-networks."""
    cols = [Column("metric", "metric", "left"), Column("min", "min"), Column("max", "max"), Column("mean", "mean"),
            Column("std", "std"), Column("argmin", "arg-min sub-network", "left"),
            Column("argmax", "arg-max sub-network", "left")]  # fmt: skip
    rows: list[list[Any]] = []
    for m in ADDITIVE:
        s = st.metrics[m]
        rows.append([m, s.min, s.max, f"{float(s.mean):,.1f}", f"{s.std:,.1f}", describe(space, s.argmin),
                     describe(space, s.argmax)])  # fmt: skip
    lo, hi, amin, amax = st.peak
    if hi > 0:
        rows.append([f"{METRICS[3]} (float32)", lo, hi, "", "", describe(space, amin), describe(space, amax)])
    title = f"{space.name or space.src.file}: {st.size:,} sub-networks (exact; uniform distribution over them)"
    footer = None
    if count is not None:
        footer = f"meeting {' and '.join(budgets)}: {count_text(count)}"
    return Table(cols, rows, title, footer)


def count_text(c: Count) -> str:
    """``12,345 (exact: …)`` or ``between L and U (bracket: …)``."""
    if c.exact is not None:
        return f"{c.exact:,} ({c.method})"
    return f"between {c.lower:,} and {c.upper:,} ({c.method})"


def count_json(c: Count) -> dict[str, Any]:
    """``{exact}`` or ``{lower, upper}``, with the method."""
    if c.exact is not None:
        return {"exact": c.exact}
    return {"lower": c.lower, "upper": c.upper}


def stats_payload(space: SpaceSpec, st: SpaceStats, count: Count | None) -> dict[str, Any]:
    """JSON: ``size``, ``params`` / ``macs`` / ``flops`` each {min, max, mean, std} (and the exact mean and
    variance as fractions, the arg-min / arg-max choice vectors), ``count`` when budgets were given."""
    out: dict[str, Any] = {"name": space.name, "size": st.size}
    for m in ADDITIVE:
        s = st.metrics[m]
        out[m] = {"min": s.min, "max": s.max, "mean": float(s.mean), "std": s.std,
                  "mean_exact": str(s.mean), "variance_exact": str(s.variance),
                  "argmin": space.to_json(s.argmin), "argmax": space.to_json(s.argmax)}  # fmt: skip
    if st.peak[1] > 0:
        out[METRICS[3]] = {"min": st.peak[0], "max": st.peak[1], "dtype": "float32", "fusion": "none"}
    if count is not None:
        out["count"] = count_json(count)
        out["count_method"] = count.method
    return out


def pareto_table(space: SpaceSpec, p: Pareto, limit: int = 50) -> Table:
    """One row per front point, sorted by the first metric (the first ``limit`` shown)."""
    a, b = p.metrics
    cols = [Column(a, a), Column(b, b), Column("subnet", "sub-network", "left")]
    rows = [[x, y, describe(space, s)] for x, y, s in p.points[:limit]]
    more = f"; the first {limit} shown" if p.size > limit else ""
    return Table(cols, rows, f"Pareto front over {a}, {b}: {p.size:,} points ({p.method}){more}")


def pareto_payload(space: SpaceSpec, p: Pareto) -> dict[str, Any]:
    """JSON: the metrics, the front's size, the method and every point with its choice vector."""
    a, b = p.metrics
    return {"metrics": [a, b], "size": p.size, "method": p.method,
            "points": [{a: x, b: y, "choices": space.to_json(s)} for x, y, s in p.points]}  # fmt: skip


def block_table(rows: list[dict[str, Any]]) -> Table:
    """The per-block cost table (one row per block position × choice × input shape)."""
    keys = ["layer", "instance", "width", "input", "out", "choice", *METRICS]
    titles = {"input": "input C×H×W", "out": "out choice", METRICS[3]: "peak bytes (float32)"}
    cols = [Column(k, titles.get(k, k), "left" if k in ("instance", "input", "choice") else "right") for k in keys]
    return Table(cols, [[r[k] for k in keys] for r in rows], f"per-block cost table: {len(rows):,} entries")


def enumeration_table(e: Enumeration, budgets: list[str]) -> Table:
    """Brute-force enumeration results: one row per metric, then the count and histogram in the footer."""
    cols = [Column("metric", "metric", "left"), Column("min", "min"), Column("max", "max"), Column("mean", "mean")]
    rows: list[list[Any]] = [[m, e.min[m], e.max[m], f"{float(e.mean(m)):,.1f}"] for m in ADDITIVE]
    rows.append([METRICS[3], e.min[METRICS[3]], e.max[METRICS[3]], ""])
    title = f"enumerated {e.size:,} sub-networks in {e.chunks:,} chunks on {e.workers} Dask workers"
    foot = f"meeting {' and '.join(budgets)}: {e.count:,} (exact, by enumeration)" if budgets else None
    return Table(cols, rows, title, foot)


def enumeration_payload(e: Enumeration) -> dict[str, Any]:
    """JSON of an enumeration."""
    return {"size": e.size, "count": {"exact": e.count}, "chunks": e.chunks, "workers": e.workers,
            **{m: {"min": e.min[m], "max": e.max[m], **({"mean": float(e.mean(m))} if m in ADDITIVE else {})}
               for m in METRICS},
            "histogram": {"edges": e.edges, "counts": e.histogram},
            "pareto_macs_params": [{"macs": a, "params": b, "index": i} for a, b, i in e.front]}  # fmt: skip


def samples_table(space: SpaceSpec, samples: list[tuple[SubNet, dict[str, int]]]) -> Table:
    """One row per sampled sub-network with its exact costs."""
    keys = [*METRICS, *(k for k in (samples[0][1] if samples else {}) if k not in METRICS)]  # + deploy's
    cols = [Column("i", "#"), *[Column(m, m) for m in keys], Column("subnet", "sub-network", "left")]
    rows = [[i, *[c[m] for m in keys], describe(space, s)] for i, (s, c) in enumerate(samples)]
    return Table(cols, rows, f"{len(samples)} sub-networks drawn uniformly (exact costs by the engine)")


def samples_payload(space: SpaceSpec, samples: list[tuple[SubNet, dict[str, int]]]) -> list[dict[str, Any]]:
    """JSON: one record per sampled sub-network, its choice vector and exact costs."""
    return [{"choices": space.to_json(s), "costs": c} for s, c in samples]


def cdf_table(c: CDF) -> Table:
    """The CDF as rows (x, lower, upper count)."""
    cols = [Column("x", c.metric), Column("lower", "count ≤ x (lower)"), Column("upper", "count ≤ x (upper)")]
    return Table(cols, [[x, lo, up] for x, lo, up in zip(c.x, c.lower, c.upper, strict=True)], c.method)


def render(tables: Table | list[Table], fmt: str, payload: Any = None) -> str:
    """Write tables through the one emitter."""
    return emit(tables, fmt, payload)


def plot_cdf(c: CDF, path: str, title: str) -> None:
    """Draw the CDF of the metric over the space (fraction of sub-networks with cost ≤ x) to ``path``;
    both bracket curves where the CDF is bracketed."""
    from .plot import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [x / 1e6 for x in c.x]
    ax.step(xs, [v / c.size for v in c.lower], where="post", label="lower" if c.lower != c.upper else "exact")
    if c.lower != c.upper:
        ax.step(xs, [v / c.size for v in c.upper], where="post", label="upper", linestyle="--")
    ax.set_xlabel(f"{c.metric} (millions)")
    ax.set_ylabel("fraction of sub-networks ≤ x")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
