"""The result of an analysis: one row per op, totals, grouped views and closed-form formulas.

Building the rows (engine/walk.py), evaluating them (here: sums) and printing them (present/) are
separate. Values are ints for numeric specs and sympy expressions for symbolic ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .convention import COSTMODEL, Convention
from .metrics import METRIC_NAMES
from .ops import Op, Shape
from .symbols import Num, readable, total

METRICS = METRIC_NAMES
"""Counted metrics (engine/metrics.py). ``activations`` is the number of output elements of each op (batch included)."""

VIEWS = ("op", "stage", "block", "layer", "module")


@dataclass(slots=True)
class Row:
    """One op of one block instance: the op, the costs of a single instance, and the tensors it reads.

    ``costs`` holds every metric (the op's own, plus ``activations``), as ints for numeric specs;
    ``times`` is how many identical instances the row stands for: 1, or ``repeat − 1`` for the repeated
    copies of a block whose repeat count is a symbol. ``inputs`` and ``tensor`` are network-wide tensor
    ids (0 is the network input): what the op reads and what it writes.
    """

    layer: int
    repeat: int
    block: int  # running index of the block instance
    kind: str
    stage: str
    op: Op
    costs: dict[str, Num]
    times: Num = 1
    inputs: tuple[int, ...] = ()
    tensor: int = 0

    def value(self, metric: str) -> Num:
        """This row's ``metric`` for one instance."""
        return self.costs[metric]

    def total(self, metric: str) -> Num:
        """This row's ``metric`` times the number of instances it stands for."""
        v = self.costs[metric]
        return v if self.times == 1 else self.times * v


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """One block instance: which layer and repeat, its kind, label, key settings and shapes."""

    index: int
    layer: int
    repeat: int
    kind: str
    name: str | None
    settings: str
    input: Shape
    output: Shape
    times: Num = 1


@dataclass
class Group:
    """Rows summed under one key of a view (one stage, one op, one block …)."""

    key: tuple[Any, ...]
    rows: list[Row] = field(default_factory=list)

    def total(self, metric: str) -> Num:
        """Sum of ``metric`` over the group's rows."""
        return total(r.total(metric) for r in self.rows)


def sum_rows(rows: list[Row]) -> dict[str, Num]:
    """Each metric summed over ``rows`` (each row times the instances it stands for), added left to right."""
    if all(r.times == 1 for r in rows):
        costs = [r.costs for r in rows]
        out: dict[str, Num] = {}
        for m in METRICS:
            s = sum([c[m] for c in costs])  # the same additions as total(); exact for ints and sympy
            out[m] = total(c[m] for c in costs) if isinstance(s, float) else s
        return out
    return {m: total(r.total(m) for r in rows) for m in METRICS}


@dataclass
class Report:
    """Rows, totals and views of one analysed spec.

    ``totals`` holds params, buffers, macs, flops and activations (summed output elements);
    ``output`` is the final (C, H, W); ``symbols`` the free symbol names.
    """

    name: str | None
    input: Shape
    batch: Num
    output: Shape
    rows: list[Row]
    blocks: list[BlockInfo] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    convention: Convention = COSTMODEL  # whose rules the macs column follows (analysis/conventions.py)
    #: what the formulas assume of symbols: (name, "odd") for a symbolic kernel, (name, "ne1") for a
    #: symbolic expansion (an expansion conv exists); a sweep honours them point by point
    assumptions: tuple[tuple[str, str], ...] = ()
    #: the spec's ``drop_path`` (rate, schedule), or None: stochastic depth, which only training memory sees
    drop_path: tuple[float, str] | None = None
    _totals: dict[str, Num] | None = None

    @property
    def totals(self) -> dict[str, Num]:
        """Each metric summed over every row."""
        if self._totals is None:
            self._totals = sum_rows(self.rows)
        return self._totals

    @property
    def symbolic(self) -> bool:
        """True when some count is a formula in free symbols."""
        return bool(self.symbols)

    def stages(self) -> list[str]:
        """The stage names that occur, in order of first appearance."""
        return list(dict.fromkeys(r.stage for r in self.rows))

    def module_paths(self) -> list[str]:
        """The model's module path of each row: its layer's ``name`` (``layers.I`` when it has none), ``.R`` for
        copy R of a layer that repeats (as torch names the children of an ``nn.Sequential``; counted on from the
        layers named ``NAME.K`` or ``NAME.K.…`` before it, as an importer writes a first copy that differs), then
        the graph node's ``module`` (a graph row; none given: the layer's path alone) or the block's stage (a block
        kind's row)."""
        copies: dict[int, int] = {}
        names: dict[int, str | None] = {}
        for b in self.blocks:
            copies[b.layer] = copies.get(b.layer, 0) + (1 if b.times == 1 else 2)
            names[b.layer] = b.name
        start: dict[int, int] = {}
        for layer, count in copies.items():
            name = names[layer]
            if count > 1 and name is not None:
                before = [names[k] for k in names if k < layer and names[k] is not None]
                ks = [
                    int(n[len(name) + 1 :])
                    for n in before
                    if n and n.startswith(name + ".") and n[len(name) + 1 :].isdigit()
                ]  # noqa: E501
                start[layer] = max(ks) + 1 if ks else 0
        out = []
        for r in self.rows:
            info = self.blocks[r.block]
            head = info.name if info.name is not None else f"layers.{r.layer}"
            if copies.get(r.layer, 1) > 1:
                k = start.get(r.layer, 0) + r.repeat
                head = f"{head}.{k}" if r.times == 1 else f"{head}.{k}…"
            graph = getattr(r.op, "graph", None)
            if graph is not None:
                out.append(f"{head}.{graph.node.module}" if graph.node.module else head)
            else:
                out.append(f"{head}.{r.stage}")
        return out

    def group(self, by: str) -> list[Group]:
        """Rows grouped by ``op`` (one group per row), ``stage``, ``block`` (layer and repeat), ``layer`` or
        ``module`` (:meth:`module_paths`: the model's module path, layer name + node module).

        ``stage`` groups across the whole spec (all expansion rows together), like fvcore's
        ``by_operator`` groups across modules.
        """
        keys: dict[str, Callable[[int, Row], tuple[Any, ...]]] = {
            "op": lambda i, r: (i,),
            "stage": lambda i, r: (r.stage,),
            "block": lambda i, r: (r.block,),
            "layer": lambda i, r: (r.layer,),
            "module": lambda i, r: (i,),  # replaced below by the module paths, computed once
        }
        if by not in keys:
            raise UsageError(f"unknown view {by!r}; expected one of {', '.join(VIEWS)}")
        groups: dict[tuple[Any, ...], Group] = {}
        key = keys[by]
        if by == "module":
            paths = self.module_paths()
            key = lambda i, r: (paths[i],)  # noqa: E731
        for i, r in enumerate(self.rows):
            k = key(i, r)
            g = groups.get(k)
            if g is None:
                g = groups[k] = Group(k)
            g.rows.append(r)
        return list(groups.values())

    def by_stage(self) -> dict[str, dict[str, Num]]:
        """Each stage's totals: {stage: {metric: value}}."""
        return {g.key[0]: {m: g.total(m) for m in METRICS} for g in self.group("stage")}

    def by_block(self) -> list[dict[str, Any]]:
        """Each block instance with its totals: [{block, layer, repeat, kind, name, output, metric: value…}]."""
        out = []
        for g in self.group("block"):
            info = self.blocks[g.key[0]]
            entry: dict[str, Any] = {
                "block": info.index,
                "layer": info.layer,
                "repeat": info.repeat,
                "kind": info.kind,
                "name": info.name,
                "settings": info.settings,
                "output": info.output,
            }
            entry.update({m: g.total(m) for m in METRICS})
            out.append(entry)
        return out

    def by_op(self) -> dict[str, dict[str, Num]]:
        """Each op type's totals (conv2d, batchnorm2d, relu6 …): {op: {metric: value}}."""
        groups: dict[str, Group] = {}
        for r in self.rows:
            groups.setdefault(r.op.name, Group((r.op.name,))).rows.append(r)
        return {name: {m: g.total(m) for m in METRICS} for name, g in groups.items()}

    def expression(self, metric: str = "macs", stage: str | None = None) -> Any:
        """``metric`` summed over all rows (or ``stage``'s rows) as a sympy expression, unsimplified."""
        import sympy

        return sympy.Add(*self._terms(metric, stage))

    def _terms(self, metric: str, stage: str | None = None) -> list[Any]:
        if metric not in METRICS:
            raise UsageError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        rows = self.rows
        if stage is not None:
            rows = [r for r in rows if r.stage == stage]
            if not rows:
                raise UsageError(f"no stage {stage!r} in this spec; its stages are {', '.join(self.stages())}")
        return [r.total(metric) for r in rows]

    def formula(self, metric: str = "macs", stage: str | None = None) -> Any:
        """The closed form of ``metric`` (summed over ``stage``'s rows only, if given), factored, as sympy.

        Written for a reader: a floor that is a ceiling in disguise is the ceiling (``ceiling(H/32)`` for
        ``floor(H/32 - 1/32) + 1``, see :func:`~costmodel.engine.symbols.readable`); the value is the same as
        :meth:`expression`'s at every point (the engine's own form, which :meth:`compile` evaluates).
        Factoring is bounded (see :func:`tidy`): the whole sum is factored when it is small; otherwise
        each layer's part is factored on its own, within a time budget, and the parts are summed.
        """
        import sympy

        rows = self.rows if stage is None else [r for r in self.rows if r.stage == stage]
        self._terms(metric, stage)  # refuse an unknown metric or stage
        layers: dict[int, list[Any]] = {}
        for r in rows:
            layers.setdefault(r.layer, []).append(r.total(metric))
        # identical layers (a long stack of the same block) are summed once and counted: linear in the rows
        same: dict[tuple[Any, ...], int] = {}
        for t in layers.values():
            key = tuple(t)
            same[key] = same.get(key, 0) + 1
        parts = [readable(sympy.Add(*t)) for t in same]
        counts = list(same.values())
        return tidy(sympy.Add(*(c * p for c, p in zip(counts, parts, strict=True))), parts, counts)

    def compile(self, metric: str = "macs") -> Any:
        """A fast exact numeric function of the free symbols: ``report.compile("macs")(t=np.arange(1, 9), …)``.

        Compiled once (engine/compile.py); evaluates whole numpy arrays of design points in int64, or in
        exact Python integers where int64 could overflow.
        """
        import sympy

        from .compile import Compiled

        expr = self.expression(metric)
        if sympy.count_ops(expr) <= 200:  # small formulas: the factored form takes fewer array operations
            expr = sympy.factor(expr)
        return Compiled(expr, self.symbols)


FACTOR_OPS = 300
"""sympy.factor is tried on a whole formula only up to this many operations (sympy.count_ops)."""
FACTOR_BUDGET_S = 1.0
"""Seconds spent factoring the parts of a large formula; the parts left when it is spent stay expanded."""


FACTOR_SYMBOLS = 6
"""A multi-part formula is factored whole only with at most this many free symbols (cost grows with them)."""


def tidy(expr: Any, parts: list[Any] | None = None, counts: list[int] | None = None) -> Any:
    """``expr`` factored where that is cheap, never a crash or a long wait; the value is the same either way.

    Without ``parts``, ``expr`` is factored when it has at most ``FACTOR_OPS`` operations. With ``parts``
    (the formula is their sum, one per layer): each part of at most ``FACTOR_OPS`` operations is factored
    on its own until ``FACTOR_BUDGET_S`` seconds are spent (the rest stay expanded), and the sum is
    factored whole again only when it is small (``FACTOR_OPS``) in at most ``FACTOR_SYMBOLS`` symbols —
    multivariate factoring grows fast with the number of symbols (30 layers of symbolic widths and
    kernels took 86 s in one sympy.factor call). With ``counts``, the formula is the sum of each part
    times its count (identical layers are factored once). A RecursionError or other failure of
    sympy.factor leaves that part as it is.
    """
    import time

    import sympy

    def factor(e: Any) -> Any:
        try:
            return sympy.factor(e)
        except (RecursionError, ValueError, TypeError, NotImplementedError):
            return e

    if not parts or (len(parts) == 1 and (not counts or counts[0] == 1)):
        return factor(expr) if sympy.count_ops(expr) <= FACTOR_OPS else expr
    deadline = time.perf_counter() + FACTOR_BUDGET_S
    out = []
    for p in parts:
        if time.perf_counter() < deadline and sympy.count_ops(p) <= FACTOR_OPS:
            out.append(factor(p))
        else:
            out.append(p)
    whole = sympy.Add(*(out if counts is None else (c * p for c, p in zip(counts, out, strict=True))))
    if len(whole.free_symbols) <= FACTOR_SYMBOLS and sympy.count_ops(whole) <= FACTOR_OPS:
        return factor(whole)
    return whole
