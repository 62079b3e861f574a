"""Exact analysis of a whole search space (spec/space.py) from exact per-block integer tables.

**Tables.** A sub-network's params, MACs and FLOPs are sums over its blocks; a block's cost depends
only on its own choices and its input shape. Every distinct (layer, input shape, out choice, block
option, first-or-later instance) is analysed once by the engine as a one-block spec (batch, defaults
and scaling of the space), giving exact integers and the block's output shape. The peak activation
memory (float32, no fusion) of a network is the **maximum** over its blocks of the one-block peak:
tensors live across a block boundary only as the block's input, which the one-block spec holds too.

**Conditioning.** The resolution and width choices (the outer loop, g) and each layer's out-channel
choice fix every block's input shape; given those, the blocks' choices are independent. A forward
dynamic programme over layers carries one summary per reachable shape (the state).

**Summaries** (exact integers): for a set of sub-networks, its size n, Σx and Σx² per metric, and
min / max with a witness. For two independent parts A, B (costs add): n = n_A n_B,
Σx = n_B Σx_A + n_A Σx_B, Σx² = n_B Σx²_A + 2 Σx_A Σx_B + n_A Σx²_B, min = min_A + min_B (for the
peak: max(min_A, min_B)); for a union (the depth, out-channel, state and g choices): every term adds.
Then mean = Σx / n and variance = Σx²/n − mean², exact fractions (std = √variance, a float).

**Counting under budgets** (ceilings on params / MACs / FLOPs; ``peak_activation_bytes`` removes the
block options whose peak exceeds it — exact, since the peak is a max): first exactly, a dictionary
of reachable sums → counts per state, pruned at the budgets; where that grows past ``EXACT_LIMIT``
sums, a rigorous bracket: with a quantum q per metric, every block cost c is rounded up (⌈c/q⌉) for
the lower bound and down (⌊c/q⌋) for the upper, counts of rounded sums ≤ ⌊B/q⌋ are computed exactly
on a bucket grid (residues modulo primes, joined by the Chinese remainder theorem), and
Σ⌈c/q⌉ ≤ ⌊B/q⌋ ⇒ Σc ≤ B ⇒ Σ⌊c/q⌋ ≤ ⌊B/q⌋ brackets the true count.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np

from ..engine.walk import analyze_spec
from ..errors import SpecError, UsageError
from ..spec.loader import Source, validate
from ..spec.space import LayerPick, SpaceSpec, SubNet
from .design import Budget, parse_budget
from .memory import peak_activations

ADDITIVE = ("params", "macs", "flops")
"""Metrics that add over blocks (their stats are exact)."""
PEAK = "peak_activation_bytes"
METRICS = (*ADDITIVE, PEAK)
"""Every metric of the tables; the last one composes by max."""
EXACT_LIMIT = 200_000
"""The most distinct sums per state the exact count keeps before it switches to the bracket."""
EXACT_WORK = 2_000_000
"""The most (sum, option) pairs the exact count visits in all before it switches to the bracket."""
BUCKETS = 1 << 15
"""Bucket grid cells (over all budgeted metrics together) of the bracketing count."""
_PRIMES = (2147483629, 2147483587, 2147483579, 2147483563, 2147483549, 2147483543, 2147483497, 2147483489)

Shape = tuple[int, ...]
Cost = tuple[int, int, int, int]


@dataclass(frozen=True)
class Unit:
    """One table entry: the exact costs of one block (or a fixed layer) and its output shape."""

    cost: Cost
    output: Shape


@dataclass
class Step:
    """One layer at one input state and out choice: its first-instance and later-instance options
    (a fixed layer: one first option, no later), the depths, and the next state's shape."""

    first: list[Unit]
    later: list[Unit]
    depths: tuple[int, ...]
    expanded: bool
    output: Shape


def parse_budgets(texts: Iterable[Budget | str]) -> list[Budget]:
    """Budgets such as ``'macs<=3e8'``, ``'peak_activation_bytes<=320000'``; only ceilings (<=, <) on
    params, macs, flops and the peak are counted."""
    out = []
    for t in texts:
        if isinstance(t, Budget):
            b = t
        else:
            text = t.strip()
            if text.startswith(PEAK):
                b = parse_budget("params" + text[len(PEAK) :])
                b = Budget(PEAK, b.op, b.limit)
            else:
                b = parse_budget(text)
        if b.metric not in METRICS:
            raise UsageError(f"--budget {b}: a space counts budgets on {', '.join(METRICS)}")
        if not b.upper:
            raise UsageError(f"--budget {b}: only ceilings (<=, <) are counted over a space")
        out.append(b)
    return out


def _ceiling(b: Budget) -> int:
    """The largest integer value meeting the ceiling ``b``."""
    f = math.floor(b.limit)
    return f - 1 if b.op == "<" and f == b.limit else f


MAX_UNITS = 20_000
"""The most distinct blocks the tables analyse (about 0.5 ms each: 10 s); the shipped spaces need at most
2,424 (MCUNet)."""


class Tables:
    """The exact per-block tables of a space, built lazily and cached per distinct input shape."""

    def __init__(self, space: SpaceSpec, peak: bool = True) -> None:
        self.space = space
        self.peak = peak  # False: skip the peak (reported as 0), the other metrics ~2x faster
        self.cache: dict[tuple[Any, ...], Unit] = {}
        self.batch = space.data["input"].get("batch", 1)

    def globals(self) -> list[tuple[tuple[int, int], float | None]]:
        """The outer choices g: (resolution, width) pairs."""
        return [(r, w) for r in self.space.resolutions for w in (self.space.widths or (None,))]

    def unit(self, g: tuple[tuple[int, int], float | None], k: int, shape: Shape, out: Any, opt: int,
             first: bool) -> Unit:  # fmt: skip
        """The costs of layer k's block (option ``opt``; first instance or later) on input ``shape``."""
        width = g[1]
        key = (k, shape, out, opt, first, width)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        ls = self.space.layers[k]
        layer = dict(self.space.data["layers"][ls.index])
        if ls.out is not None:
            layer[ls.out_key or "out_channels"] = out
        if ls.expanded:
            layer["repeat"] = 1
            for name, v in zip(ls.fields, ls.options[opt], strict=True):
                if v is None:
                    layer.pop(name, None)
                else:
                    layer[name] = v
            if not first:
                layer["stride"] = 1
                layer.pop("in_channels", None)
        c, h, w = (shape + (1, 1))[:3]
        data: dict[str, Any] = {
            "input": {"channels": c, "height": h, "width": w, "batch": self.batch},
            "layers": [layer],
        }
        if "defaults" in self.space.data:
            data["defaults"] = self.space.data["defaults"]
        scaling = self.space.data.get("scaling")
        if isinstance(scaling, dict):
            data["scaling"] = {**scaling, **({"width": width} if width is not None else {})}
        src = self.space.src
        lines = {("layers", 0, *p[2:]): n for p, n in src.lines.items() if p[:2] == ("layers", ls.index)}
        try:
            report: Any = analyze_spec(validate(data, Source(src.file, lines)))
        except SpecError as err:
            if len(err.path) >= 2 and err.path[:2] == ("layers", 0):
                err.path = ("layers", ls.index, *err.path[2:])
            raise
        t = report.totals
        peak = peak_activations(report).bytes if self.peak else 0
        unit = Unit((int(t["params"]), int(t["macs"]), int(t["flops"]), int(peak)), tuple(report.output))
        self.cache[key] = unit
        return unit

    def step(self, g: tuple[tuple[int, int], float | None], k: int, shape: Shape, out: Any) -> Step:
        """Layer k at input ``shape`` with out choice ``out``: its option tables. Refused before any
        analysis when the tables would pass MAX_UNITS block analyses in all."""
        ls = self.space.layers[k]
        n_opt = len(ls.options) if ls.expanded else 1
        need = n_opt * (2 if ls.expanded and max(ls.depths) > 1 else 1)
        if len(self.cache) + need > MAX_UNITS and (k, shape, out, 0, True, g[1]) not in self.cache:
            raise UsageError(
                f"the space's block tables need more than {MAX_UNITS:,} engine analyses (layers[{ls.index}] alone "
                f"has {n_opt:,} block options, at each input shape, out choice and width); narrow the space"
            )
        first = [self.unit(g, k, shape, out, p, True) for p in range(n_opt)]
        mid = first[0].output
        if any(u.output != mid for u in first):
            raise SpecError("a block choice changes the block's output shape", ("layers", ls.index),
                            self.space.src.file, self.space.src.line_of(("layers", ls.index)))  # fmt: skip
        later: list[Unit] = []
        if ls.expanded and max(ls.depths) > 1:
            later = [self.unit(g, k, mid, out, p, False) for p in range(n_opt)]
        return Step(first, later, ls.depths if ls.expanded else (1,), ls.expanded, mid)


# --------------------------------------------------------------------------------------- summaries


@dataclass
class Summary:
    """Size, Σx, Σx², and (value, witness) minima and maxima per metric of a set of sub-networks."""

    n: int
    s1: list[int]
    s2: list[int]
    lo: list[tuple[int, Any]]
    hi: list[tuple[int, Any]]

    @staticmethod
    def point(cost: Cost, witness: Any) -> Summary:
        """One sub-network (or one block option)."""
        return Summary(1, list(cost[:3]), [c * c for c in cost[:3]], [(c, witness) for c in cost],
                       [(c, witness) for c in cost])  # fmt: skip

    def then(self, other: Summary, join: Callable[[Any, Any], Any]) -> Summary:
        """Every pairing of this set with ``other`` (costs add, the peak takes the max)."""
        a, b = self, other
        s1 = [b.n * x + a.n * y for x, y in zip(a.s1, b.s1, strict=True)]
        s2 = [b.n * x2 + 2 * x * y + a.n * y2 for x, y, x2, y2 in zip(a.s1, b.s1, a.s2, b.s2, strict=True)]
        lo = [(x[0] + y[0], join(x[1], y[1])) for x, y in zip(a.lo[:3], b.lo[:3], strict=True)]
        hi = [(x[0] + y[0], join(x[1], y[1])) for x, y in zip(a.hi[:3], b.hi[:3], strict=True)]
        lo.append((max(a.lo[3][0], b.lo[3][0]), join(a.lo[3][1], b.lo[3][1])))
        hi.append((max(a.hi[3][0], b.hi[3][0]), join(a.hi[3][1], b.hi[3][1])))
        return Summary(a.n * b.n, s1, s2, lo, hi)

    def mapped(self, f: Callable[[Any], Any]) -> Summary:
        """The same set with every witness passed through ``f``."""
        return Summary(self.n, self.s1, self.s2, [(v, f(w)) for v, w in self.lo], [(v, f(w)) for v, w in self.hi])

    def union(self, other: Summary | None) -> Summary:
        """The disjoint union of two sets."""
        if other is None:
            return self
        a, b = self, other
        return Summary(
            a.n + b.n,
            [x + y for x, y in zip(a.s1, b.s1, strict=True)],
            [x + y for x, y in zip(a.s2, b.s2, strict=True)],
            [min(x, y, key=lambda t: t[0]) for x, y in zip(a.lo, b.lo, strict=True)],
            [max(x, y, key=lambda t: t[0]) for x, y in zip(a.hi, b.hi, strict=True)],
        )


def _cat(x: tuple[Any, ...], y: tuple[Any, ...]) -> tuple[Any, ...]:
    return x + y


def _options(units: Sequence[Unit]) -> Summary:
    s: Summary | None = None
    for p, u in enumerate(units):
        s = Summary.point(u.cost, (p,)).union(s)
    assert s is not None
    return s


def _layer_summary(st: Step, out: Any) -> Summary:
    """One layer's summary over its depths and block options, witnesses as LayerPicks."""
    if not st.expanded:
        return Summary.point(st.first[0].cost, (LayerPick(out, ()),))
    acc = _options(st.first)
    later = _options(st.later) if st.later else None
    total: Summary | None = None
    for d in range(1, max(st.depths) + 1):
        if d > 1:
            assert later is not None
            acc = acc.then(later, _cat)
        if d in st.depths:
            total = acc.mapped(lambda w: (LayerPick(out, w),)).union(total)
    assert total is not None
    return total


@dataclass
class MetricStats:
    """min, max, exact mean and variance (fractions) and std (float) of one metric over the space."""

    min: int
    max: int
    mean: Fraction
    variance: Fraction
    argmin: SubNet
    argmax: SubNet

    @property
    def std(self) -> float:
        """√variance."""
        return math.sqrt(self.variance)


@dataclass
class SpaceStats:
    """The space's size and each metric's statistics under the uniform distribution (exact)."""

    size: int
    metrics: dict[str, MetricStats]
    peak: tuple[int, int, SubNet, SubNet]


def _subnet(g: tuple[tuple[int, int], float | None], picks: tuple[LayerPick, ...]) -> SubNet:
    return SubNet(g[0], g[1], picks)


def stats(tables: Tables) -> SpaceStats:
    """Exact size, min / max (with arg-min / arg-max sub-networks), mean and variance of params, MACs
    and FLOPs, and the min / max peak activation bytes, by the forward DP over layers per g."""
    space = tables.space
    total: Summary | None = None
    for g in tables.globals():
        h, w = g[0]
        start: Shape = (space.data["input"]["channels"], h, w)
        states: dict[Shape, Summary] = {start: Summary(1, [0, 0, 0], [0, 0, 0], [(0, ())] * 4, [(0, ())] * 4)}
        for k, ls in enumerate(space.layers):
            nxt: dict[Shape, Summary] = {}
            for shape, summ in states.items():
                for o in ls.outs:
                    st = tables.step(g, k, shape, o)
                    part = summ.then(_layer_summary(st, o), _cat)
                    nxt[st.output] = part.union(nxt.get(st.output))
            states = nxt
        for summ in states.values():
            total = summ.mapped(partial(_subnet, g)).union(total)
    assert total is not None
    assert total.n == space.size, (total.n, space.size)
    out = {}
    for i, m in enumerate(ADDITIVE):
        mean = Fraction(total.s1[i], total.n)
        var = Fraction(total.s2[i], total.n) - mean * mean
        out[m] = MetricStats(total.lo[i][0], total.hi[i][0], mean, var, total.lo[i][1], total.hi[i][1])
    return SpaceStats(total.n, out, (total.lo[3][0], total.hi[3][0], total.lo[3][1], total.hi[3][1]))


# ---------------------------------------------------------------------------------------- counting


@dataclass
class Count:
    """How many sub-networks meet the budgets: ``exact``, or a rigorous ``lower`` / ``upper`` bracket;
    ``method`` names how it was computed."""

    lower: int
    upper: int
    method: str

    @property
    def exact(self) -> int | None:
        """The count when it is exact (lower == upper), else None."""
        return self.lower if self.lower == self.upper else None


class _TooMany(Exception):
    pass


def _filtered(units: Sequence[Unit], peak: int | None) -> list[int]:
    return [p for p, u in enumerate(units) if peak is None or u.cost[3] <= peak]


def _walk_counts(tables: Tables, peak: int | None, combine: Callable[..., Any], empty: Any) -> Any:
    """The forward DP shared by the exact and the bracketing count: ``combine(dist, costs)`` pairs a
    distribution with a list of option costs; unions are additions of the distributions."""
    space = tables.space
    results: list[Any] = []
    for g in tables.globals():
        h, w = g[0]
        states: dict[Shape, Any] = {(space.data["input"]["channels"], h, w): empty()}
        for k, ls in enumerate(space.layers):
            nxt: dict[Shape, Any] = {}
            for shape, dist in states.items():
                for o in ls.outs:
                    st = tables.step(g, k, shape, o)
                    first = [st.first[p].cost for p in _filtered(st.first, peak)]
                    later = [st.later[p].cost for p in _filtered(st.later, peak)]
                    acc = combine(dist, first)
                    got = None
                    for d in range(1, max(st.depths) + 1):
                        if d > 1:
                            acc = combine(acc, later)
                        if d in st.depths:
                            got = acc if got is None else combine.add(got, acc)  # type: ignore[attr-defined]
                    prev = nxt.get(st.output)
                    nxt[st.output] = got if prev is None else combine.add(prev, got)  # type: ignore[attr-defined]
            states = nxt
        results.extend(states.values())
    return results


class _ExactCombine:
    def __init__(self, idx: list[int], caps: list[int]) -> None:
        self.idx, self.caps = idx, caps
        self.work = 0

    def __call__(self, dist: dict[tuple[int, ...], int], costs: list[Cost]) -> dict[tuple[int, ...], int]:
        out: dict[tuple[int, ...], int] = {}
        self.work += len(dist) * len(costs)
        if self.work > EXACT_WORK:
            raise _TooMany
        vecs = [tuple(c[i] for i in self.idx) for c in costs]
        for s, n in dist.items():
            for v in vecs:
                t = tuple(a + b for a, b in zip(s, v, strict=True))
                if all(x <= cap for x, cap in zip(t, self.caps, strict=True)):
                    out[t] = out.get(t, 0) + n
        if len(out) > EXACT_LIMIT:
            raise _TooMany
        return out

    @staticmethod
    def add(a: dict[tuple[int, ...], int], b: dict[tuple[int, ...], int]) -> dict[tuple[int, ...], int]:
        out = dict(a)
        for s, n in b.items():
            out[s] = out.get(s, 0) + n
        return out


class _BucketCombine:
    """Counts of rounded sums on a grid, as residues modulo several primes (exact integers)."""

    def __init__(self, idx: list[int], q: list[int], cells: list[int], up: bool, primes: np.ndarray) -> None:
        self.idx, self.q, self.cells, self.up, self.primes = idx, q, cells, up, primes

    def empty(self) -> np.ndarray:
        a = np.zeros((len(self.primes), *self.cells), dtype=np.int64)
        a[(slice(None),) + (0,) * len(self.cells)] = 1
        return a

    def __call__(self, dist: np.ndarray, costs: list[Cost]) -> np.ndarray:
        out = np.zeros_like(dist)
        for c in costs:
            shift = []
            for i, q in zip(self.idx, self.q, strict=True):
                shift.append(-(-c[i] // q) if self.up else c[i] // q)
            if any(s >= n for s, n in zip(shift, self.cells, strict=True)):
                continue
            dst = (slice(None),) + tuple(slice(s, None) for s in shift)
            src = (slice(None),) + tuple(slice(0, n - s) for s, n in zip(shift, self.cells, strict=True))
            out[dst] += dist[src]
        out %= self.primes.reshape((-1,) + (1,) * len(self.cells))
        return out

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s: np.ndarray = (a + b) % self.primes.reshape((-1,) + (1,) * len(self.cells))
        return s


def _crt(residues: Sequence[int], primes: Sequence[int]) -> int:
    x, m = 0, 1
    for r, p in zip(residues, primes, strict=True):
        t = ((r - x) * pow(m, -1, p)) % p
        x, m = x + m * t, m * p
    return x


def count(tables: Tables, budgets: Sequence[Budget], buckets: int = BUCKETS) -> Count:
    """How many sub-networks meet every budget: exact by the DP on exact sums where at most
    ``EXACT_LIMIT`` sums per state arise, else bracketed on a bucket grid (see the module doc)."""
    space = tables.space
    peak_caps = [_ceiling(b) for b in budgets if b.metric == PEAK]
    peak = min(peak_caps) if peak_caps else None
    caps: dict[int, int] = {}
    for b in budgets:
        if b.metric != PEAK:
            i = METRICS.index(b.metric)
            caps[i] = min(caps.get(i, _ceiling(b)), _ceiling(b))
    idx = sorted(caps)
    if any(c < 0 for c in caps.values()) or (peak is not None and peak < 0):
        return Count(0, 0, "exact: a budget below zero")
    comb = _ExactCombine(idx, [caps[i] for i in idx])
    comb_any: Any = comb
    try:
        dists = _walk_counts(tables, peak, comb_any, lambda: {(0,) * len(idx): 1})
        n = sum(sum(d.values()) for d in dists)
        return Count(n, n, "exact: dynamic programme over blocks on exact integer sums")
    except _TooMany:
        pass
    k = len(idx)
    per = max(2, int(round(buckets ** (1 / k))))
    q = [max(1, -(-caps[i] // (per - 1))) for i in idx]
    cells = [caps[i] // qi + 1 for i, qi in zip(idx, q, strict=True)]
    need = 1
    primes: list[int] = []
    for p in _PRIMES:
        if need > space.size:
            break
        primes.append(p)
        need *= p
    arr = np.array(primes, dtype=np.int64)
    bounds = []
    for up in (True, False):
        bc = _BucketCombine(idx, q, cells, up, arr)
        bc_any: Any = bc
        dists = _walk_counts(tables, peak, bc_any, bc.empty)
        total = [0] * len(primes)
        for d in dists:
            sums = d.reshape(len(primes), -1).sum(axis=1)
            total = [(t + int(s)) % p for t, s, p in zip(total, sums, primes, strict=True)]
        bounds.append(_crt(total, primes))
    quanta = ", ".join(f"{METRICS[i]} q={qi:,}" for i, qi in zip(idx, q, strict=True))
    return Count(bounds[0], bounds[1], f"bracket: block costs rounded up / down to multiples of q ({quanta}), "
                 "rounded sums counted exactly on a bucket grid")  # fmt: skip


# ------------------------------------------------------------------------------ sub-network costs


def draw(space: SpaceSpec, rng: random.Random) -> SubNet:
    """One sub-network drawn exactly uniformly: the space is a product of independent per-layer
    choices, each layer's depth d drawn with weight P^d and every kept instance uniformly."""
    g = rng.choice(space.resolutions), (rng.choice(space.widths) if space.widths else None)
    picks = []
    for ls in space.layers:
        out = rng.choice(ls.outs)
        if not ls.expanded:
            picks.append(LayerPick(out))
            continue
        p = len(ls.options)
        weights = [p**d for d in ls.depths]
        r = rng.randrange(sum(weights))
        k = 0
        while r >= weights[k]:
            r -= weights[k]
            k += 1
        d = ls.depths[k]
        picks.append(LayerPick(out, tuple(rng.randrange(p) for _ in range(d))))
    return SubNet(g[0], g[1], tuple(picks))


def costs_of(tables: Tables, sub: SubNet) -> dict[str, int]:
    """The costs of one sub-network from the tables (sum of blocks; the peak: their max)."""
    space = tables.space
    g = (sub.resolution, sub.width)
    shape: Shape = (space.data["input"]["channels"], *sub.resolution)
    tot = [0, 0, 0, 0]
    for k, (ls, pick) in enumerate(zip(space.layers, sub.layers, strict=True)):
        st = tables.step(g, k, shape, pick.out)
        units = [st.first[0]] if not ls.expanded else [
            (st.first if j == 0 else st.later)[b] for j, b in enumerate(pick.blocks)]  # fmt: skip
        for u in units:
            for i in range(3):
                tot[i] += u.cost[i]
            tot[3] = max(tot[3], u.cost[3])
        shape = st.output
    return dict(zip(METRICS, tot, strict=True))


def meets(costs: dict[str, int], budgets: Sequence[Budget]) -> bool:
    """Whether every budget holds."""
    return all(b.holds(costs[b.metric]) for b in budgets)


MAX_SAMPLES = 100_000
"""The most sub-networks one ``sample`` returns (``space --sample`` takes at most CLI_SAMPLES: it analyses
each with the engine, about 10 ms apiece)."""
CLI_SAMPLES = 1_000
"""The most sub-networks ``costmodel space --sample`` draws."""
MAX_DRAWS = 10_000_000
"""The most draws rejection sampling may be expected to need: n × size / count."""
PILOT = 1_000
"""Draws made before the budgets' share of the space is counted (most samples need fewer)."""
SAMPLE_SECONDS = 15.0
"""Rejection sampling stops, refused, after this many seconds (a budget that keeps a sliver of a large space)."""


def _check_draws(tables: Tables, n: int, budgets: Sequence[Budget], known: Count | None) -> None:
    """Refuse budgets that nothing meets, or that would need more than MAX_DRAWS draws for n samples."""
    known = known if known is not None else count(tables, budgets)
    if known.upper == 0:
        raise UsageError("no sub-network meets the budgets: nothing to sample")
    size = tables.space.size
    if known.lower == 0 or n * size > MAX_DRAWS * known.lower:
        share = known.upper if known.lower == 0 else known.lower
        raise UsageError(
            f"the budgets keep about {share / size:.3g} of the space: drawing {n:,} would take more than "
            f"{MAX_DRAWS:,} draws; loosen the budgets or ask for fewer"
        )


def sample(tables: Tables, n: int, seed: int, budgets: Sequence[Budget], known: Count | None = None) -> list[SubNet]:
    """``n`` sub-networks drawn exactly uniformly among those meeting the budgets: uniform draws over
    the space (:func:`draw`), kept when they meet the budgets (rejection keeps exact uniformity).

    Bounded: n from 1 to MAX_SAMPLES, checked first. With budgets, once PILOT draws have not given n
    sub-networks, those meeting the budgets are counted (:func:`count`, or ``known``): none is refused,
    and so is an expected number of draws n × size / count (count's lower bound) above MAX_DRAWS; the
    draws stop, refused, after SAMPLE_SECONDS or 5 × MAX_DRAWS draws."""
    import time

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise UsageError(f"--sample {n!r}: expected an integer from 1 to {MAX_SAMPLES:,}")
    rng = random.Random(seed)
    out: list[SubNet] = []
    tries = 0
    deadline = time.monotonic() + SAMPLE_SECONDS
    while len(out) < n:
        tries += 1
        if budgets and tries == PILOT + 1:
            _check_draws(tables, n, budgets, known)
        if tries > 5 * MAX_DRAWS or (tries % 256 == 0 and time.monotonic() > deadline):
            raise UsageError(
                f"sampling stopped after {tries - 1:,} draws ({SAMPLE_SECONDS:g} s) with {len(out):,} of {n:,} "
                "sub-networks meeting the budgets; loosen the budgets or ask for fewer"
            )
        sub = draw(tables.space, rng)
        if not budgets or meets(costs_of(tables, sub), budgets):
            out.append(sub)
    return out


# ----------------------------------------------------------------------------------------- pareto


@dataclass
class Pareto:
    """The exact Pareto front over two metrics (each minimised, or maximised with ``max:``), as
    (a, b, sub-network) sorted by a; ``size`` is the front's size, ``method`` how it was found."""

    metrics: tuple[str, str]
    points: list[tuple[int, int, SubNet]]
    size: int
    method: str


PARETO_LIMIT = 100_000
#: The most (partial point, block option) pairs the Pareto DP may combine in all: each is a tuple built
#: before pruning, so this bounds time and memory (about 8 s and 1 GB) — refused before they are built.
PARETO_WORK = 5_000_000


def _prune(pts: list[tuple[int, int, Any]]) -> list[tuple[int, int, Any]]:
    pts.sort(key=lambda t: (t[0], t[1]))
    out: list[tuple[int, int, Any]] = []
    best = None
    for p in pts:
        if best is None or p[1] < best:
            out.append(p)
            best = p[1]
    if len(out) > PARETO_LIMIT:
        raise UsageError(f"the Pareto front passes {PARETO_LIMIT:,} points; narrow the space")
    return out


def pareto(tables: Tables, a: str, b: str) -> Pareto:
    """The exact Pareto front: a DP over blocks keeping, per state, only the non-dominated (a, b)
    pairs (a dominated partial sum stays dominated after adding the same remaining blocks; for the
    peak, max composition is monotone too). A ``max:`` prefix maximises a metric (its sign is flipped)."""
    names, signs, idx = [], [], []
    for m in (a, b):
        s = -1 if m.startswith("max:") else 1
        name = m.removeprefix("max:")
        if name not in METRICS:
            raise UsageError(f"--pareto {m!r}: expected one of {', '.join(METRICS)} (max: to maximise)")
        names.append(name)
        signs.append(s)
        idx.append(METRICS.index(name))
    space = tables.space

    def val(c: Cost) -> tuple[int, int]:
        return signs[0] * c[idx[0]], signs[1] * c[idx[1]]

    def comb(x: int, y: int, i: int) -> int:
        if idx[i] == 3:
            return max(x, y) if signs[i] > 0 else min(x, y)
        return x + y

    work = 0

    def charge(n: int) -> None:
        """Count n pairs about to be built; refuse before building them past PARETO_WORK in all."""
        nonlocal work
        work += n
        if work > PARETO_WORK:
            raise UsageError(
                f"the Pareto front of {a},{b} needs more than {PARETO_WORK:,} combinations of partial points "
                f"(the fronts pass {PARETO_LIMIT:,} points or nearly); narrow the space"
            )

    def plus(front: list[tuple[int, int, Any]], opts: list[tuple[int, int, Any]]) -> list[tuple[int, int, Any]]:
        charge(len(front) * len(opts))
        return _prune([(comb(p[0], o[0], 0), comb(p[1], o[1], 1), (p[2], o[2])) for p in front for o in opts])

    all_pts: list[tuple[int, int, Any]] = []
    for g in tables.globals():
        h, w = g[0]
        zero = 0
        states: dict[Shape, list[tuple[int, int, Any]]] = {
            (space.data["input"]["channels"], h, w): [(zero, zero, None)]
        }
        for k, ls in enumerate(space.layers):
            nxt: dict[Shape, list[tuple[int, int, Any]]] = {}
            for shape, front in states.items():
                for o in ls.outs:
                    st = tables.step(g, k, shape, o)
                    first = [(*val(u.cost), (p,)) for p, u in enumerate(st.first)]
                    later = [(*val(u.cost), (p,)) for p, u in enumerate(st.later)]
                    acc = _prune(list(first))
                    got: list[tuple[int, int, Any]] = []
                    for d in range(1, max(st.depths) + 1):
                        if d > 1:
                            charge(len(acc) * len(later))
                            acc = _prune([(comb(x[0], y[0], 0), comb(x[1], y[1], 1), x[2] + y[2])
                                          for x in acc for y in later])  # fmt: skip
                        if d in st.depths:
                            got += acc
                    opts = [(x, y, LayerPick(o, wt if ls.expanded else ())) for x, y, wt in _prune(got)]
                    nxt.setdefault(st.output, []).extend(plus(front, opts))
            states = {s: _prune(f) for s, f in nxt.items()}
        for f in states.values():
            charge(len(f))
            all_pts += [(x, y, (g, wt)) for x, y, wt in f]
    front = _prune(all_pts)
    points = []
    for x, y, (g, wt) in front:
        picks: list[LayerPick] = []
        while wt is not None:
            wt, pick = wt
            picks.append(pick)
        points.append((signs[0] * x, signs[1] * y, _subnet(g, tuple(picks[::-1]))))
    return Pareto((a, b), points, len(points), "exact: dynamic programme over blocks with Pareto pruning")


# ----------------------------------------------------------------------------------------- the table


def table_rows(tables: Tables) -> list[dict[str, Any]]:
    """The per-block table: every layer × g × input shape × out choice × instance (first / later) ×
    block option → its exact params, MACs, FLOPs and peak activation bytes."""
    space = tables.space
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for g in tables.globals():
        h, w = g[0]
        states: set[Shape] = {(space.data["input"]["channels"], h, w)}
        for k, ls in enumerate(space.layers):
            nxt: set[Shape] = set()
            for shape in sorted(states):
                for o in ls.outs:
                    st = tables.step(g, k, shape, o)
                    for which, units in (("first", st.first), ("later", st.later)):
                        for p, u in enumerate(units):
                            key = (k, which, shape if which == "first" else st.output, o, p, g[1])
                            if key in seen:
                                continue
                            seen.add(key)
                            opt = dict(zip(ls.fields, ls.options[p], strict=True)) if ls.expanded else {}
                            rows.append({
                                "layer": ls.index, "instance": which, "width": g[1],
                                "input": "x".join(map(str, key[2])), "out": o,
                                "choice": ",".join(f"{f}={v}" for f, v in opt.items()),
                                **dict(zip(METRICS, u.cost, strict=True)),
                            })  # fmt: skip
                    nxt.add(st.output)
            states = nxt
    return rows


# ------------------------------------------------------------------------------------- enumeration


@dataclass
class Enumeration:
    """Brute-force results of :func:`enumerate_space`: counts, min / max / Σ per metric (over every
    sub-network), the count meeting the budgets, a MACs histogram and the (macs, params) front."""

    size: int
    count: int
    min: dict[str, int]
    max: dict[str, int]
    total: dict[str, int]
    edges: list[int]
    histogram: list[int]
    chunks: int
    workers: int
    front: list[tuple[int, int, int]] = field(default_factory=list)

    def mean(self, metric: str) -> Fraction:
        """The exact mean of an additive metric."""
        return Fraction(self.total[metric], self.size)


def compile_tables(tables: Tables) -> dict[str, Any]:
    """The tables as dense int64 arrays for vectorised evaluation of index ranges: per layer, per g,
    per input state and out choice, first- and later-instance option costs and the next state."""
    space = tables.space
    gs = tables.globals()
    layers = []
    state_lists: list[list[dict[Shape, int]]] = [[{(space.data["input"]["channels"], *g[0]): 0} for g in gs]]
    for k, ls in enumerate(space.layers):
        n_opt = len(ls.options) if ls.expanded else 1
        n_s = max(len(s) for s in state_lists[k])
        first = np.zeros((len(gs), n_s, len(ls.outs), n_opt, 4), dtype=np.int64)
        later = np.zeros_like(first)
        nxt_idx = np.zeros((len(gs), n_s, len(ls.outs)), dtype=np.int64)
        nxt_states: list[dict[Shape, int]] = []
        for gi, g in enumerate(gs):
            ns: dict[Shape, int] = {}
            for shape, si in state_lists[k][gi].items():
                for oi, o in enumerate(ls.outs):
                    st = tables.step(g, k, shape, o)
                    first[gi, si, oi] = [u.cost for u in st.first]
                    if st.later:
                        later[gi, si, oi] = [u.cost for u in st.later]
                    nxt_idx[gi, si, oi] = ns.setdefault(st.output, len(ns))
            nxt_states.append(ns)
        state_lists.append(nxt_states)
        depths = ls.depths if ls.expanded else (1,)
        layers.append({"first": first, "later": later, "next": nxt_idx, "depths": list(depths), "P": n_opt,
                       "O": len(ls.outs), "W": sum(n_opt**d for d in depths), "expanded": ls.expanded})  # fmt: skip
    return {"layers": layers, "G": len(gs), "size": space.size}


def evaluate_range(ct: dict[str, Any], start: int, stop: int) -> np.ndarray:
    """The costs (rows: sub-networks ``start``…``stop − 1`` in index order; columns: params, MACs,
    FLOPs, peak) from the compiled tables, vectorised; index = g, then each layer's variant (mixed
    radix, last layer fastest), a variant = out choice × (depth, one option per kept instance)."""
    idx = np.arange(start, stop, dtype=np.int64)
    digits = []
    for lay in reversed(ct["layers"]):
        v = lay["O"] * lay["W"]
        digits.append(idx % v)
        idx = idx // v
    digits.reverse()
    g = idx
    cost = np.zeros((stop - start, 4), dtype=np.int64)
    state = np.zeros(stop - start, dtype=np.int64)
    for lay, dig in zip(ct["layers"], digits, strict=True):
        o = dig // lay["W"]
        r = dig % lay["W"]
        p = lay["P"]
        depth = np.zeros_like(r)
        rest = r.copy()
        off = 0
        for d in lay["depths"]:
            n = p**d
            inside = (r >= off) & (r < off + n)
            depth[inside] = d
            rest[inside] = r[inside] - off
            off += n
        for j in range(max(lay["depths"])):
            opt = (rest // p**j) % p
            table = lay["first"] if j == 0 else lay["later"]
            c = table[g, state, o, opt]
            present = (depth > j)[:, None]
            add = np.where(present, c, 0)
            cost[:, :3] += add[:, :3]
            cost[:, 3] = np.maximum(cost[:, 3], add[:, 3])
        state = lay["next"][g, state, o]
    return cost


def reduce_chunk(ct: dict[str, Any], start: int, stop: int, caps: list[tuple[int, int]], edges: list[int]
                 ) -> dict[str, Any]:  # fmt: skip
    """One chunk's reduction: count meeting the ceilings ``caps`` ((metric index, max)), min / max / Σ
    per metric, the MACs histogram on ``edges`` and the chunk's (macs, params) Pareto front (indices)."""
    c = evaluate_range(ct, start, stop)
    ok = np.ones(len(c), dtype=bool)
    for i, cap in caps:
        ok &= c[:, i] <= cap
    hist, _ = np.histogram(c[:, 1], bins=np.array(edges, dtype=np.float64))
    order = np.lexsort((c[:, 0], c[:, 1]))
    params = c[order, 0]
    before = np.concatenate([[np.iinfo(np.int64).max], np.minimum.accumulate(params)[:-1]])
    keep = order[params < before]
    front = [(int(c[j, 1]), int(c[j, 0]), start + int(j)) for j in keep]
    return {
        "count": int(ok.sum()),
        "min": [int(x) for x in c.min(axis=0)],
        "max": [int(x) for x in c.max(axis=0)],
        "total": [int(x) for x in c[:, :3].sum(axis=0, dtype=np.int64)],
        "hist": [int(x) for x in hist],
        "front": front,
    }


ENUMERATE_LIMIT = 2**62


def enumerate_space(
    tables: Tables,
    budgets: Sequence[Budget] = (),
    scheduler: str | None = None,
    workers: int = 2,
    chunk: int = 1 << 15,
    bins: int = 32,
    progress: Callable[[int, int], None] | None = None,
    client: Any = None,
) -> Enumeration:
    """Evaluate every sub-network on Dask, in chunks of index ranges, from the compiled tables (no
    per-sub-network analysis), reducing each chunk to counts, min / max / Σ, a histogram and a front
    without gathering the points. ``scheduler``: a dask.distributed address; default a
    ``LocalCluster(n_workers=workers, processes=True)``. The same code path runs either way."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UsageError("--enumerate needs dask: pip install 'costmodel[space]' (dask[distributed])") from None
    size = tables.space.size
    if size > ENUMERATE_LIMIT:
        raise UsageError(f"the space has {size:,} sub-networks, too many to enumerate (at most 2**62)")
    if workers < 1 or chunk < 1:
        raise UsageError("--workers and the chunk size must be positive")
    st = stats(tables)
    lo, hi = st.metrics["macs"].min, st.metrics["macs"].max
    step = max(1, -(-(hi - lo + 1) // bins))
    edges = [lo + i * step for i in range(bins + 1)]
    peak = [_ceiling(b) for b in budgets if b.metric == PEAK]
    caps = [(METRICS.index(b.metric), _ceiling(b)) for b in budgets]
    del peak
    ct = compile_tables(tables)
    ranges = [(s, min(s + chunk, size)) for s in range(0, size, chunk)]
    own = client is None
    cluster = None
    if own:
        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
    try:
        n_workers = len(client.scheduler_info().get("workers", {}))
        ct_f = client.scatter(ct, broadcast=True)
        futures = [client.submit(reduce_chunk, ct_f, a, b, caps, edges, pure=False) for a, b in ranges]
        res = Enumeration(size, 0, {m: 2**63 for m in METRICS}, {m: -1 for m in METRICS},
                          dict.fromkeys(ADDITIVE, 0), edges, [0] * bins, len(ranges), n_workers)  # fmt: skip
        front: list[tuple[int, int, int]] = []
        for done, fut in enumerate(as_completed(futures), 1):
            r = fut.result()
            res.count += r["count"]
            for i, m in enumerate(METRICS):
                res.min[m] = min(res.min[m], r["min"][i])
                res.max[m] = max(res.max[m], r["max"][i])
            for i, m in enumerate(ADDITIVE):
                res.total[m] += r["total"][i]
            res.histogram = [x + y for x, y in zip(res.histogram, r["hist"], strict=True)]
            front = _prune([*front, *r["front"]])
            fut.release()
            if progress:
                progress(done, len(ranges))
        res.front = front
        return res
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


@dataclass
class CDF:
    """The CDF of a metric over the space: at each ``x``, the number of sub-networks with cost ≤ x lies
    in [lower, upper] (equal where exact); ``size`` the space's size; ``method`` how it was computed."""

    metric: str
    x: list[int]
    lower: list[int]
    upper: list[int]
    size: int
    method: str


def cdf(tables: Tables, metric: str = "macs", points: int = 400, buckets: int = BUCKETS) -> CDF:
    """The exact CDF (the DP on exact sums) where at most ``EXACT_LIMIT`` distinct sums arise, else the
    bracket of the module doc on a grid of ``buckets`` cells over [0, max]."""
    if metric not in ADDITIVE:
        raise UsageError(f"a CDF is drawn for {', '.join(ADDITIVE)}")
    i = METRICS.index(metric)
    top = stats(tables).metrics[metric].max
    size = tables.space.size
    comb: Any = _ExactCombine([i], [top])
    try:
        dists = _walk_counts(tables, None, comb, lambda: {(0,): 1})
        merged: dict[int, int] = {}
        for d in dists:
            for (s,), n in d.items():
                merged[s] = merged.get(s, 0) + n
        xs, cum, run = [], [], 0
        for s in sorted(merged):
            run += merged[s]
            xs.append(s)
            cum.append(run)
        return CDF(metric, xs, cum, cum, size, "exact: dynamic programme over blocks on exact integer sums")
    except _TooMany:
        pass
    q = max(1, -(-top // (buckets - 1)))
    cells = top // q + 1
    primes: list[int] = []
    need = 1
    for p in _PRIMES:
        if need > size:
            break
        primes.append(p)
        need *= p
    arr = np.array(primes, dtype=np.int64)
    at = sorted({min(cells - 1, j * (cells - 1) // (points - 1)) for j in range(points)})
    curves = []
    for up in (True, False):
        bc = _BucketCombine([i], [q], [cells], up, arr)
        bc_any: Any = bc
        grid = np.zeros((len(primes), cells), dtype=np.int64)
        for d in _walk_counts(tables, None, bc_any, bc.empty):
            grid = (grid + d) % arr[:, None]
        cums: Any = np.cumsum(grid, axis=1) % arr[:, None]
        curves.append([_crt([int(cums[k, j]) for k in range(len(primes))], primes) for j in at])
    return CDF(metric, [j * q for j in at], curves[0], curves[1], size,
               f"bracket: block costs rounded up / down to multiples of q = {q:,}")  # fmt: skip
