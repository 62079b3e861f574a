"""The result classes of the API that extend an analysis result with its presentations.

Every class here is defined at module level, so a result pickles (Dask, multiprocessing) and two results
of one call share one type. Each has ``to_dict()`` — exactly the JSON ``costmodel CMD -f json`` prints —
and ``table(fmt)``, the same view through the one emitter (present/emit.py). This module is imported on
first use by api.py, so ``import costmodel`` stays as cheap as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .analysis.deploy import Deployment as _Deployment
from .analysis.design import Comparison as _Comparison
from .analysis.design import Elasticity
from .analysis.design import Solution as _Solution
from .analysis.sweep import SweepResult
from .analysis.training import Training as _Training

if TYPE_CHECKING:  # only annotations: numpy and the space modules load when a space is read
    from .analysis.conventions import Difference
    from .analysis.design import Budget
    from .analysis.space import Count, Enumeration, Pareto, SpaceStats
    from .engine.report import Report
    from .spec.space import SpaceSpec, SubNet


class Sweep(SweepResult):
    """A sweep's grid and exact results (analysis/sweep.py), with its JSON and tables."""

    def to_dict(self) -> dict[str, Any]:
        """Columnar JSON: axes, fixed symbols, convention, points and every column (null where invalid)."""
        from .present.sweep import sweep_payload

        return sweep_payload(self, self.convention)

    def table(self, fmt: str = "github") -> str:
        """One row per design point in ``fmt`` (or the columnar JSON)."""
        from .present.sweep import render_sweep

        return render_sweep(self, fmt, self.convention)

    def _repr_html_(self) -> str:
        from .present.sweep import render_sweep

        head = render_sweep(self.head(50), "html", self.convention)
        more = f"<p>{len(self) - 50:,} more points</p>" if len(self) > 50 else ""
        return head + more


@dataclass
class Training(_Training):
    """A training step's rows and totals, with its tables (present/training.py). ``solved``: where
    ``largest_batch`` found this step's batch, its budget, batch and peak."""

    solved: dict[str, Any] | None = None

    def _extra(self) -> dict[str, Any] | None:
        return None if self.solved is None else {"solve": self.solved}

    def table(self, fmt: str = "github", by: str = "auto") -> str:
        """The step as text: per-block (or op / stage) MACs and saved bytes, then the memory."""
        from .present.training import render_training

        return render_training(self, fmt, by, self._extra())

    def to_dict(self, by: str = "block") -> dict[str, Any]:
        """A JSON-ready dict: settings, totals, rows (``by``; auto = block), and ``solve`` where solved."""
        from .present.training import training_payload

        return training_payload(self, by, self._extra())


@dataclass
class TrainingGap:
    """Training MACs op by op as costmodel counts them and as FlopCounterMode does (``train --vs torch``)."""

    ours: Training
    torch: Training

    def to_dict(self) -> list[dict[str, Any]]:
        """One record per op class: costmodel, torch, difference and why."""
        from .present.emit import records
        from .present.training import vs_torch_table

        return records(vs_torch_table(self.ours, self.torch))

    def table(self, fmt: str = "github") -> str:
        """The op-by-op table in ``fmt``."""
        from .present.emit import emit
        from .present.training import vs_torch_table

        return emit(lambda: vs_torch_table(self.ours, self.torch), fmt)


class Comparison(_Comparison):
    """Specs side by side (analysis/design.py), with the JSON and the two tables of ``costmodel compare``."""

    def to_dict(self) -> dict[str, Any]:
        """Each spec's totals, exact ratios to the first and stage shares."""
        from .present.compare import compare_payload

        return compare_payload(self)

    def table(self, fmt: str = "github") -> str:
        """The totals-and-ratios table and the stage-share table in ``fmt``."""
        from .present.compare import render_compare

        return render_compare(self, fmt)

    def input_warning(self) -> str | None:
        """A warning when the specs' inputs differ (the ratios then mix network and input size)."""
        from .present.compare import input_warning

        return input_warning(self)


@dataclass
class Solution(_Solution):
    """What ``solve`` found (analysis/design.py), with the budgets it met and which end was sought."""

    budgets: list[Budget] = field(default_factory=list)
    smallest: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The symbol, its value, largest/smallest, the budgets, the costs there, the method and roots."""
        from .present.design import solution_payload

        return solution_payload(self, self.budgets, self.smallest)

    def table(self, fmt: str = "text") -> str:
        """The solution as text (or JSON)."""
        from .present.design import render_solution

        return render_solution(self, self.budgets, fmt, self.smallest)


class Sensitivity(list[Elasticity]):
    """The elasticities of ``sensitivity`` (a list), with the table and JSON records of ``formula --at``."""

    def to_dict(self) -> list[dict[str, Any]]:
        """One record per metric and symbol (a list: the JSON of ``formula --at -f json``)."""
        from .present.design import elasticity_payload

        return elasticity_payload(self)

    def table(self, fmt: str = "github") -> str:
        """The sensitivity table in ``fmt``."""
        from .present.design import render_elasticities

        return render_elasticities(self, fmt)


@dataclass
class Explanation:
    """Op by op, where two counting conventions differ (analysis/conventions.py ``explain``)."""

    report: Report
    a: str
    b: str
    diffs: list[Difference]

    def to_dict(self) -> dict[str, Any]:
        """Both totals and every op's counts, difference, rules and reasons."""
        from .present.explain import explain_payload

        return explain_payload(self.a, self.b, self.diffs)

    def table(self, fmt: str = "github") -> str:
        """The explain table in ``fmt``."""
        from .present.explain import render_explain

        return render_explain(self.report, self.a, self.b, self.diffs, fmt)


@dataclass
class SpaceSummary:
    """A space's exact statistics, and the count of sub-networks meeting ``budgets`` where given."""

    space: SpaceSpec
    stats: SpaceStats
    count: Count | None = None
    budgets: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``size``, each metric's min/max/mean/std (exact mean and variance too), ``count`` with budgets."""
        from .present.space import stats_payload

        return stats_payload(self.space, self.stats, self.count)

    def table(self, fmt: str = "github") -> str:
        """One row per metric, the count in the footer."""
        from .present.emit import emit
        from .present.space import stats_table

        return emit(lambda: stats_table(self.space, self.stats, self.count, self.budgets), fmt, self.to_dict)


@dataclass
class SpaceFront:
    """The exact Pareto front of a space over two metrics."""

    space: SpaceSpec
    pareto: Pareto

    def to_dict(self) -> dict[str, Any]:
        """The metrics, the front's size, the method and every point with its choice vector."""
        from .present.space import pareto_payload

        return pareto_payload(self.space, self.pareto)

    def table(self, fmt: str = "github") -> str:
        """One row per front point (the first 50)."""
        from .present.emit import emit
        from .present.space import pareto_table

        return emit(lambda: pareto_table(self.space, self.pareto), fmt, self.to_dict)


@dataclass
class SpaceSamples:
    """Sub-networks drawn uniformly from a space, each with its exact costs."""

    space: SpaceSpec
    samples: list[tuple[SubNet, dict[str, int]]]

    def to_dict(self) -> list[dict[str, Any]]:
        """One record per sub-network: its choices and costs (a list)."""
        from .present.space import samples_payload

        return samples_payload(self.space, self.samples)

    def table(self, fmt: str = "github") -> str:
        """One row per sub-network."""
        from .present.emit import emit
        from .present.space import samples_table

        return emit(lambda: samples_table(self.space, self.samples), fmt, self.to_dict)


@dataclass
class SpaceBlocks:
    """The per-block cost table of a space: block position × choice × input shape."""

    rows: list[dict[str, Any]]

    def to_dict(self) -> list[dict[str, Any]]:
        """The table's records (a list)."""
        from .present.emit import records
        from .present.space import block_table

        return records(block_table(self.rows))

    def table(self, fmt: str = "github") -> str:
        """The per-block table in ``fmt``."""
        from .present.emit import emit
        from .present.space import block_table

        return emit(lambda: block_table(self.rows), fmt)


@dataclass
class SpaceEnumeration:
    """A brute-force enumeration of a space on Dask."""

    enumeration: Enumeration
    budgets: Sequence[str] = ()

    def to_dict(self) -> dict[str, Any]:
        """Size, count, chunks, workers, each metric's range, the histogram and the MACs/params front."""
        from .present.space import enumeration_payload

        return enumeration_payload(self.enumeration)

    def table(self, fmt: str = "github") -> str:
        """One row per metric; the count and histogram in the footer."""
        from .present.emit import emit
        from .present.space import enumeration_table

        return emit(lambda: enumeration_table(self.enumeration, list(self.budgets)), fmt, self.to_dict)


@dataclass
class Deployment(_Deployment):
    """An int8 deployment on a runtime (analysis/deploy.py), with its JSON and table (present/deploy.py)."""

    def to_dict(self) -> dict[str, Any]:
        """The full payload: steps, peak, Flash by kind and, for tflm, the buffer plan."""
        from .present.deploy import deploy_payload

        return deploy_payload(self)

    def table(self, fmt: str = "github") -> str:
        """One row per step in ``fmt`` (or the payload)."""
        from .present.deploy import render_deploy

        return render_deploy(self, fmt)


def _size(n: int | None) -> str:
    return "—" if n is None else f"{n:,} B"


@dataclass
class DeploySolution:
    """The largest resolution or width multiplier whose int8 graph fits SRAM / Flash budgets
    (``api.deploy_solve``): every grid point with its peak and Flash, and the answer."""

    name: str
    runtime: str
    solve: str
    sram: int | None
    flash: int | None
    points: list[dict[str, Any]]

    @property
    def best(self) -> dict[str, Any] | None:
        """The largest grid point that fits (None: none fits)."""
        fit = [p for p in self.points if p.get("fits")]
        return fit[-1] if fit else None

    def monotonic(self) -> bool:
        """Whether the points that fit are exactly a prefix of the valid grid (no fitting point above a
        failing one)."""
        flags = [bool(p["fits"]) for p in self.points if "invalid" not in p]
        return flags == sorted(flags, reverse=True)

    def to_dict(self) -> dict[str, Any]:
        """The budgets, the answer (null when nothing fits), the grid and every point."""
        return {
            "name": self.name,
            "runtime": self.runtime,
            "solve": self.solve,
            "sram_bytes": self.sram,
            "flash_bytes": self.flash,
            "best": self.best,
            "monotonic": self.monotonic(),
            "points": self.points,
        }

    def table(self, fmt: str = "github") -> str:
        """The answer and its neighbours on the grid; the whole grid in JSON."""
        from .present.emit import Column, Table, emit

        def build() -> Table:
            best = self.best
            pts = self.points
            at = pts.index(best) if best is not None else 0
            shown = pts[max(0, at - 2) : at + 3] if best is not None else pts[:3]
            cols = [Column("value", self.solve), Column("peak_bytes", "peak SRAM (B)" if self.runtime == "tinyengine"
                    else "arena (B)"), Column("flash_bytes", "Flash (B)"), Column("fits", "fits", "left")]  # fmt: skip
            rows = [[p["value"], p.get("peak_bytes", "—"), p.get("flash_bytes", "—"),
                     "invalid" if "invalid" in p else ("yes" if p["fits"] else "no")] for p in shown]  # fmt: skip
            if best is None:
                title = f"{self.name} ({self.runtime}): no {self.solve} on the grid fits"
            else:
                title = f"{self.name} ({self.runtime}): largest {self.solve} that fits = {best['value']}"
            grid = f"{pts[0]['value']} … {pts[-1]['value']}, {len(pts)} points, each computed"
            footer = f"budgets: SRAM ≤ {_size(self.sram)}, Flash ≤ {_size(self.flash)}; grid {grid}"
            if not self.monotonic():
                footer += "; not monotonic: some larger point fits again after one that does not"
            return Table(cols, rows, title, footer)

        return emit(build, fmt, self.to_dict)


@dataclass
class DeployCount:
    """How many sub-networks of a small search space fit SRAM / Flash budgets, each sub-network's int8
    graph planned on its own (``Space.deploy_count``)."""

    space: SpaceSpec
    runtime: str
    sram: int | None
    flash: int | None
    budgets: list[str]
    count: int
    min_peak: int
    min_flash: int

    def to_dict(self) -> dict[str, Any]:
        """The space's size, the budgets and the exact count."""
        return {
            "size": self.space.size,
            "runtime": self.runtime,
            "sram_bytes": self.sram,
            "flash_bytes": self.flash,
            "budgets": self.budgets,
            "count": self.count,
            "min_peak_bytes": self.min_peak,
            "min_flash_bytes": self.min_flash,
            "method": "exact: every sub-network enumerated and planned",
        }

    def table(self, fmt: str = "github") -> str:
        """One row: size, count, share."""
        from .present.emit import Column, Table, emit

        def build() -> Table:
            cols = [Column("size", "sub-networks"), Column("count", "fit"), Column("min_peak_bytes", "min peak (B)"),
                    Column("min_flash_bytes", "min Flash (B)")]  # fmt: skip
            rows = [[self.space.size, self.count, self.min_peak, self.min_flash]]
            extra = f", {', '.join(self.budgets)}" if self.budgets else ""
            footer = (f"{self.runtime}: SRAM ≤ {_size(self.sram)}, Flash ≤ {_size(self.flash)}{extra}; exact, every "
                      "sub-network enumerated and its int8 graph planned")  # fmt: skip
            return Table(cols, rows, f"{self.space.name or 'space'}: sub-networks that fit", footer)

        return emit(build, fmt, self.to_dict)
