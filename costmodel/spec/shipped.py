"""The specs that ship with the package, and how a name finds one.

The YAML files live once, in the checkout's ``specs/``; ``costmodel/data/specs`` is a link to it, which
setuptools follows, so a wheel or an sdist holds the files themselves (package data, pyproject.toml) and an
installed package reads them from ``costmodel/data/specs`` wherever it is run.

Wherever a SPEC is asked for (``costmodel table SPEC``, ``costmodel.load``, ``analyze`` …) it is resolved
by :func:`resolve`:

1. a path that exists is read as that path (relative to the working directory), whatever its name;
2. otherwise it is looked up among the shipped specs: a leading ``specs/`` and a ``.yaml`` suffix are
   optional, so ``specs/networks/mobilenet_v2.yaml``, ``networks/mobilenet_v2`` and ``mobilenet_v2`` name
   the same file; ``timm/mixnet_s`` names a file of one group;
3. a bare name is looked for in the groups in this order, first match wins: the seeds (``specs/*.yaml``),
   torchvision's networks (``specs/networks/``), timm's (``specs/timm/``), the imported reference models
   users compare against (``specs/reference/``: resnet50, convnext_tiny, vit_small_patch16_224, …), then
   the dense-prediction models (``specs/dense/``: torchvision's segmenters and detectors); search spaces
   (``specs/spaces/``) are looked up by ``costmodel space`` and ``costmodel.space``. So ``efficientnet_b0``
   is torchvision's EfficientNet-B0 and ``timm/efficientnet_b0`` timm's; ``costmodel list`` names every timm
   spec ``timm/NAME`` (``reference/NAME``, ``dense/NAME`` likewise), which stays unambiguous whatever is
   added to the other groups;
4. anything else is refused: ``no such file``, naming ``costmodel list``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpecError

SPECS = Path(__file__).resolve().parent.parent / "data" / "specs"
"""The shipped specs: costmodel/data/specs (in a checkout, a link to specs/)."""

GROUPS: tuple[tuple[str, str], ...] = (
    ("", "seed"),
    ("networks", "network"),
    ("timm", "timm"),
    ("reference", "reference"),
    ("dense", "dense"),
    ("spaces", "space"),
)
"""(directory under SPECS, group) in the order a bare name is looked up."""

NETWORK_GROUPS = ("seed", "network", "timm", "reference", "dense")
"""The groups a network spec's bare name is looked up in (in GROUPS' order)."""
SPACE_GROUPS = ("space",)
"""The groups a search space's bare name is looked up in."""

_PREFIXED = ("timm", "reference", "dense")
"""The groups whose specs ``costmodel list`` names ``DIR/NAME`` (unambiguous whatever the other groups hold)."""

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Shipped:
    """One shipped spec: ``name`` (what to give as SPEC: the bare name of a seed, a torchvision network or
    a space, ``timm/NAME`` for timm's — ``reference/NAME``, ``dense/NAME`` likewise — which a bare name
    reaches only where no earlier group has it), its ``group`` (seed, network, timm, reference, dense or space)
    and its ``file`` (``specs/networks/mobilenet_v2.yaml``: the path in a checkout, also accepted as a name
    anywhere)."""

    name: str
    group: str
    file: str

    @property
    def path(self) -> Path:
        """Where the file is read from (inside the installed package)."""
        return SPECS / self.file.removeprefix("specs/")

    def to_dict(self) -> dict[str, str]:
        """``{"name", "group", "file"}``: what ``costmodel list --format json`` prints for it."""
        return {"name": self.name, "group": self.group, "file": self.file}


def _stems(directory: Path) -> list[str]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    return sorted(e.name[: -len(".yaml")] for e in entries if e.name.endswith(".yaml") and e.is_file())


def shipped() -> list[Shipped]:
    """Every shipped spec, group by group in lookup order (seeds, networks, timm, spaces), by name within a
    group. Reads the directory listings only (no YAML is parsed): milliseconds."""
    out: list[Shipped] = []
    for sub, group in GROUPS:
        for stem in _stems(SPECS / sub if sub else SPECS):
            rel = f"{sub}/{stem}" if sub else stem
            out.append(Shipped(f"{sub}/{stem}" if group in _PREFIXED else stem, group, f"specs/{rel}.yaml"))
    return out


def _bare(stem: str, groups: tuple[str, ...]) -> Path | None:
    for sub, group in GROUPS:
        if group in groups:
            path = (SPECS / sub if sub else SPECS) / f"{stem}.yaml"
            if path.is_file():
                return path
    return None


def lookup(ref: str, groups: tuple[str, ...] = NETWORK_GROUPS) -> Path | None:
    """The shipped file that ``ref`` names (rules 2 and 3 of the module's docstring), or None."""
    name = ref.replace("\\", "/").strip()
    for prefix in ("./", "specs/"):
        name = name.removeprefix(prefix)
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    parts = name.split("/")
    if not name or len(parts) > 2 or any(not p or p.startswith((".", "_")) for p in parts):
        return None  # absolute paths, .., hidden and private files (timm/_tools) are never looked up
    if len(parts) == 1:
        return _bare(parts[0], groups)
    if parts[0] not in {sub for sub, _ in GROUPS if sub}:
        return None
    path = SPECS / parts[0] / f"{parts[1]}.yaml"
    return path if path.is_file() else None


def resolve(ref: str | os.PathLike[str], groups: tuple[str, ...] = NETWORK_GROUPS) -> str:
    """The file to read for ``ref``: ``ref`` itself when it exists as a path, else the shipped spec it names
    (see the module's docstring), else a SpecError naming ``ref`` and ``costmodel list``."""
    text = os.fspath(ref)
    if os.path.lexists(text):
        return text  # read as given (a directory or an unreadable file is refused by the reader, by name)
    found = lookup(text, groups)
    if found is None:
        raise SpecError("no such file, nor a shipped spec of that name (`costmodel list` shows them)", file=text)
    return str(found)
