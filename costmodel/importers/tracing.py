"""What both torch traces share (importers/torch.py's block-kind trace, importers/graph.py's op graph): the
module-path stack kept by global forward hooks, and flattening nested outputs.

This module imports torch at the top; import it only when torch is installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn

from .sources import printable


def leaves(xs: Any) -> Iterator[Any]:
    """The leaves of nested lists and tuples, depth first (an op's arguments, a model's outputs)."""
    if isinstance(xs, (list, tuple)):
        for x in xs:
            yield from leaves(x)
    else:
        yield xs


@contextlib.contextmanager
def scopes(module: nn.Module, stack: list[str], remove_duplicate: bool = True) -> Iterator[dict[str, str]]:
    """Keep ``stack`` = the module paths of the forwards running now (innermost last) while the block runs;
    yields each module path's class name. A module registered under several names is known by its first
    (``remove_duplicate``) or its last (``remove_duplicate=False``: the op graph's)."""
    # module paths are printed and written into the spec: one printable line each (see sources.printable)
    names = {id(m): printable(n, 200) for n, m in module.named_modules(remove_duplicate=remove_duplicate)}
    types = {printable(n, 200): type(m).__name__ for n, m in module.named_modules()}

    def pre(mod: nn.Module, _inp: Any) -> None:
        name = names.get(id(mod))
        if name is not None:
            stack.append(name)

    def post(mod: nn.Module, _inp: Any, _out: Any) -> None:
        if id(mod) in names and stack:
            stack.pop()

    h1 = nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = nn.modules.module.register_module_forward_hook(post)
    try:
        yield types
    finally:
        h1.remove()
        h2.remove()
