"""What a counting convention is: per op, a sum of ``coefficient × quantity`` terms, and why.

The engine's own convention (``COSTMODEL``) lives here because every report carries the convention
its ``macs`` follow; the peers' presets are data in analysis/conventions.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Term = tuple[int, str]
QUANTITIES = ("macs", "bias", "input", "output", "batch_params", "batch_channels", "param_positions", "batch_stats")


@dataclass(frozen=True)
class Rule:
    """How one op counts: ``sum(coefficient × quantity)``, and why."""

    terms: tuple[Term, ...]
    why: str

    def text(self) -> str:
        """The rule as a formula, e.g. ``macs + bias`` or ``2·input``."""
        if not self.terms:
            return "0"
        return " + ".join(q if c == 1 else f"{c}·{q}" for c, q in self.terms)


ZERO = Rule((), "not counted")
MACS = Rule(((1, "macs"),), "multiply-accumulates, bias excluded")


@dataclass(frozen=True)
class Convention:
    """One tool's counting rules. ``figure`` says which of the tool's numbers ``totals.macs`` holds."""

    name: str
    title: str
    figure: str
    version: str
    source: str
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def rule(self, key: str) -> Rule:
        """The rule for an op key; a variant the tool does not list (``conv2d:same``) counts as its op
        (``conv2d``); ops the tool does not see count 0."""
        rule = self.rules.get(key)
        if rule is None:
            rule = self.rules.get(key.partition(":")[0], ZERO) if ":" in key else ZERO
        return rule

    @property
    def macs_title(self) -> str:
        """The MACs column title under this convention."""
        return "MACs (conv+linear, no bias)" if self.name == "costmodel" else f"MACs as {self.title} counts"

    @property
    def macs_description(self) -> str:
        """What the MACs figure is under this convention (for JSON and table footers)."""
        if self.name == "costmodel":
            return "multiply-accumulates of conv and linear layers, bias excluded = FlopCounterMode total / 2"
        return f"{self.title} ({self.version}): {self.figure}"


COSTMODEL = Convention(
    "costmodel",
    "costmodel",
    "totals.macs: multiply-accumulates of conv and linear layers, bias excluded",
    "this version",
    "docs/conventions.md",
    {
        "conv2d": MACS,
        "linear": MACS,
        "blurpool": MACS,
        "expert_mix": MACS,
        "attention": Rule(((1, "macs"),), "q·kᵀ + attention·v multiply-accumulates"),
    },
)
