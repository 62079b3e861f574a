"""Where the shipped hardware profiles live and what the roofline views are: light constants the CLI
needs for its help and choices without building the profile models (analysis/hardware.py)."""

from __future__ import annotations

from pathlib import Path

PROFILES = Path(__file__).resolve().parent.parent / "data" / "hardware"
"""The shipped profiles: package data (costmodel/data/hardware/*.yaml), installed with the package."""

ROOFLINE_VIEWS = ("auto", "kernel", "block", "stage")
"""The row views of ``costmodel roofline --by``."""


def shipped_profiles() -> list[str]:
    """The names of the shipped hardware profiles."""
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))
