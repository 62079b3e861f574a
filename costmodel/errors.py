"""Errors the library raises. Only the CLI turns them into a message and an exit code."""

from __future__ import annotations

from collections.abc import Sequence


class CostModelError(Exception):
    """Base class of every error costmodel raises on bad input."""


class SpecError(CostModelError):
    """A spec (or a value bound into it) is malformed.

    ``path`` is where in the spec the problem sits, as keys and list indices
    (``("layers", 2, "kernel")``); ``file`` and ``line`` are filled in when the spec
    came from a file, so the message can point at the line.
    """

    def __init__(
        self,
        message: str,
        path: Sequence[str | int] = (),
        file: str | None = None,
        line: int | None = None,
        more: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(path)
        self.file = file
        self.line = line
        self.more = more

    @property
    def field(self) -> str:
        """The dotted field name, e.g. ``layers[2].kernel``."""
        out = ""
        for part in self.path:
            if isinstance(part, int):
                out += f"[{part}]"
            else:
                out += ("." if out else "") + part
        return out

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: "
        if self.path:
            text += f"{self.field}: "
        text += self.message
        if self.more:
            text += f" (and {self.more} more error{'s' if self.more > 1 else ''})"
        return text


class UsageError(CostModelError):
    """A command-line or API argument (not the spec itself) is malformed."""


class UndecidableError(SpecError):
    """A decision depends on symbols whose values are not known (bind them with ``--set``)."""
