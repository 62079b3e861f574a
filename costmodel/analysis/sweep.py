"""Sweeps: a closed form compiled once, evaluated exactly over a whole grid of design points.

A formula (a sympy expression from the engine) is compiled into a tree of numpy operations — no
code is generated or evaluated. Every rational is turned into exact integer arithmetic: an
expression is rewritten as P / Q with Q an integer constant and computed as P // Q (exact, since
counts are integers), and ``floor(p / q)`` likewise. Before evaluating in int64, exact interval
arithmetic on the inputs' ranges bounds every intermediate; if any bound passes the int64 range, the
grid is evaluated with exact Python integers instead (slower, never wrong). Nothing overflows silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

MAX_POINTS = 10**8

_RANGE = re.compile(r"^(\d+):(\d+)(?::(\d+))?$")


def parse_values(text: str, name: str = "") -> list[int]:
    """``"1,2,4,6"`` or ``"3:7:2"`` (start:stop[:step], stop included) or a mix → positive ints."""
    where = f"--vary {name}={text}" if name else repr(text)
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if m:
            start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if step < 1 or stop < start:
                raise UsageError(f"{where}: a range is start:stop[:step] with start ≤ stop and step ≥ 1")
            if (stop - start) // step + 1 > MAX_POINTS:
                raise UsageError(f"{where}: more than {MAX_POINTS:,} values")
            out += range(start, stop + 1, step)
        elif part.isdigit():
            out.append(int(part))
        else:
            raise UsageError(f"{where}: expected integers like 1,2,4 or a range like 3:7:2")
    if not out or min(out) < 1:
        raise UsageError(f"{where}: values must be positive integers")
    return out


def parse_vary(items: Sequence[str]) -> dict[str, list[int]]:
    """``["t=1,2,4", "k=3:7:2"]`` → ``{"t": [1, 2, 4], "k": [3, 5, 7]}``."""
    axes: dict[str, list[int]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"--vary {item!r}: expected NAME=VALUES, e.g. t=1,2,4,6 or H=32:224:32")
        if name in axes:
            raise UsageError(f"--vary {name}: given twice")
        axes[name] = parse_values(values, name)
    return axes


@dataclass
class SweepResult:
    """A sweep's grid and its exact results: ``result["macs"]`` is an array in the grid's order.

    The grid is the Cartesian product of the axes, the last axis varying fastest.
    """

    axes: dict[str, list[int]]
    fixed: dict[str, int]
    columns: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    convention: Any = None  # the Convention the macs column follows (None: costmodel's)

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def head(self, n: int) -> SweepResult:
        """The first ``n`` design points."""
        return type(self)(
            self.axes, self.fixed, {k: v[:n] for k, v in self.columns.items()}, self.metrics, self.convention
        )

    def records(self) -> Iterator[dict[str, int]]:
        """One dict per design point: each axis's value and each metric."""
        names = list(self.columns)
        for i in range(len(self)):
            yield {n: int(self.columns[n][i]) for n in names}


CHUNK = 2_000_000


def run(
    report: Any,
    axes: Mapping[str, Sequence[int]],
    metrics: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
    reanalyze: Callable[[dict[str, int]], Any] | None = None,
    result_class: type[SweepResult] | None = None,
) -> SweepResult:
    """Evaluate ``metrics`` of a symbolic report over the grid of ``axes`` (every free symbol must be an axis).

    The formulas assume what the report's ``assumptions`` say (a symbolic expansion ≠ 1, a symbolic
    kernel odd). An even kernel value is refused; grid points where an expansion symbol is 1 are
    evaluated with the formula ``reanalyze({name: 1})`` derives, so every point is exact.
    Large grids are evaluated in chunks; ``progress(done, total)`` is called after each (the CLI draws
    a bar with it; the library prints nothing).
    """
    import numpy as np

    free = set(report.symbols)
    if not free:
        raise UsageError("the spec has no symbols to vary; write a symbol name in an integer field")
    unknown = sorted(set(axes) - free)
    if unknown:
        raise UsageError(
            f"--vary {unknown[0]}: the spec has no free symbol {unknown[0]!r} (free: {', '.join(sorted(free))})"
        )
    missing = sorted(free - set(axes))
    if missing:
        raise UsageError(f"no values for {', '.join(missing)}: give --vary or --set for each free symbol")
    size = 1
    for axis in axes.values():
        size *= len(axis)
    if size > MAX_POINTS:
        raise UsageError(f"the grid has {size:,} points; the limit is {MAX_POINTS:,}")
    ones: list[str] = []
    for name, rule in report.assumptions:
        axis = axes.get(name, ())
        if rule == "odd" and any(v % 2 == 0 for v in axis):
            raise UsageError(f"--vary {name}: a kernel must be odd, and {name} takes even values")
        if rule == "ne1" and 1 in axis and name not in ones:
            ones.append(name)
    if ones and reanalyze is None:
        raise UsageError(f"--vary {ones[0]} includes 1, where the block has no expansion conv")
    names = list(axes)
    mesh = np.meshgrid(*[np.asarray(axes[n], dtype=np.int64) for n in names], indexing="ij")
    grid = {n: m.ravel() for n, m in zip(names, mesh, strict=True)}
    result = (result_class or SweepResult)(
        {n: list(axes[n]) for n in names}, {}, dict(grid), tuple(metrics), report.convention
    )
    # one piece of the grid per pattern of "expansion symbol is 1", each with its own formulas
    pieces = []
    for mask_bits in range(2 ** len(ones)):
        bound = {n: 1 for i, n in enumerate(ones) if mask_bits >> i & 1}
        mask = np.ones(size, dtype=bool)
        for n in ones:
            mask &= (grid[n] == 1) if n in bound else (grid[n] != 1)
        if mask.any():
            sub = report if not bound else reanalyze(bound)  # type: ignore[misc]
            pieces.append((mask, [sub.compile(m) for m in metrics]))
    done = 0
    for metric_index, metric in enumerate(metrics):
        column: Any = None
        for mask, compiled in pieces:
            idx = np.flatnonzero(mask) if len(pieces) > 1 else None
            outs = []
            count = size if idx is None else len(idx)
            for start in range(0, count, CHUNK):
                sel = slice(start, start + CHUNK) if idx is None else idx[start : start + CHUNK]
                outs.append(compiled[metric_index](**{n: a[sel] for n, a in grid.items()}))
                done += len(outs[-1])
                if progress is not None and size * len(metrics) > CHUNK:
                    progress(done, size * len(metrics))
            values = outs[0] if len(outs) == 1 else np.concatenate(outs)
            if idx is None:
                column = values
            else:
                if column is None or (values.dtype == object and column.dtype != object):
                    column = (
                        np.zeros(size, dtype=object if values.dtype == object else np.int64)
                        if column is None
                        else column.astype(object)
                    )
                column[idx] = values
        result.columns[metric] = column
    return result
