"""``costmodel list``: the shipped specs as a table (name, group, file) or JSON records."""

from __future__ import annotations

from collections.abc import Sequence

from ..spec.shipped import Shipped
from .emit import Column, Table, emit


def shipped_table(items: Sequence[Shipped]) -> Table:
    """One row per shipped spec: the name to give as SPEC, its group, its file under specs/."""
    return Table(
        [Column("name", "name", "left"), Column("group", "group", "left"), Column("file", "file", "left")],
        [[s.name, s.group, s.file] for s in items],
        footer=f"{len(items)} specs; a name works wherever a SPEC is asked, from any directory "
        "(a bare name is looked up in the seeds, then torchvision's networks, then timm's)",
    )


def render_shipped(items: Sequence[Shipped], fmt: str) -> str:
    """``fmt``: json (the records of :meth:`Shipped.to_dict`), csv or a tabulate format."""
    return emit(shipped_table(items), fmt, [s.to_dict() for s in items])
