"""Search spaces: a network spec in which some fields are ``{choice: [v1, v2, …]}``.

The YAML is read with the loader's safe parser (``parse_yaml``); the choice fields are taken out with
their paths and lines, their values checked, and a concrete :class:`NetworkSpec` is produced for any
sub-network (one value for every choice) by substitution and the loader's own ``validate``.

Where choices may stand (docs/spaces.md):

* ``input.resolution`` (one value for height and width) or ``input.height`` / ``input.width``;
* ``scaling.width``;
* a layer's ``out_channels`` (``out_features``): chosen once per layer, shared by its instances;
* a layer's ``repeat``: the elastic depth — a sub-network keeps the layer's first d instances;
* any other integer field of a layer (``kernel``, ``expansion``, ``expanded_channels``, ``groups``,
  ``mid_channels`` …) and ``se`` (a ratio, or ``null`` for no SE): chosen per **block instance**,
  each kept instance independently.

A sub-network of a layer with depth d and P per-instance options has P^d variants, and the layer
contributes ``Σ_d P^d`` (times its out-channel choices) to the product that is the space's size.
A layer whose instances may differ is written, in the concrete spec, as d single-repeat layers (the
stride on the first only, exactly as the engine treats repeats).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from ..errors import SpecError
from .fields import MAX_REPEAT
from .loader import Path, Source, parse_yaml, read_text, validate
from .network import NetworkSpec, integer_fields, layer_model

MAX_CHOICES = 64
"""The most values one choice may list."""

MAX_OPTIONS = 4_096
"""The most block options of one layer: the product of its per-instance choices' sizes (64 × 64), each
analysed by the engine for the tables (analysis/space.py, MAX_UNITS); checked before they are listed."""

SHARED_FIELDS = ("out_channels", "out_features")
"""Layer fields chosen once per layer (every instance of the layer shares the value)."""

FIXED_FIELDS = frozenset({"stride", "in_channels", "out_ratio", "kind", "name"})
"""Layer fields that cannot be a choice (they would change which layers exist or what they check)."""

Value = Any  # an int, a float (scaling.width, se) or None (se: no SE)


@dataclass(frozen=True)
class Choice:
    """One choice field: where it is (``("layers", 3, "kernel")``), its line, and its values."""

    path: Path
    values: tuple[Value, ...]
    line: int | None

    @property
    def field(self) -> str:
        """The dotted field name, e.g. ``layers[3].kernel``."""
        return SpecError("", self.path).field


@dataclass(frozen=True)
class LayerSpace:
    """The choices of one layer.

    ``out``: the shared out-channel choice (None: fixed); ``depths``: the repeat counts a sub-network
    may keep (one value when fixed); ``fields``: the per-instance choice fields, whose value tuples
    are ``options`` (their product, in order). ``expanded``: whether sub-networks write this layer as
    one single-repeat layer per kept instance (a depth choice or per-instance choices).
    """

    index: int
    kind: str
    out_key: str | None
    out: Choice | None
    depth: Choice | None
    depths: tuple[int, ...]
    fields: tuple[str, ...]
    options: tuple[tuple[Value, ...], ...]

    @property
    def expanded(self) -> bool:
        """Whether instances are chosen one by one (a depth choice or per-instance fields)."""
        return self.depth is not None or bool(self.fields)

    @property
    def outs(self) -> tuple[Value, ...]:
        """The out-channel values (one entry, None, when fixed)."""
        return self.out.values if self.out is not None else (None,)

    @property
    def variants(self) -> int:
        """How many ways this layer can be picked: |outs| × Σ_d P^d (1 for a fixed layer)."""
        if not self.expanded:
            return len(self.outs)
        per: int = sum(len(self.options) ** d for d in self.depths)
        return len(self.outs) * per


@dataclass(frozen=True)
class LayerPick:
    """One layer's part of a sub-network: the out-channel value (None: fixed) and, for an expanded
    layer, one option index per kept instance (its depth is their number)."""

    out: Value
    blocks: tuple[int, ...] = ()


@dataclass(frozen=True)
class SubNet:
    """One sub-network: the resolution (height, width), the width multiplier (None: the spec's), and
    one :class:`LayerPick` per layer."""

    resolution: tuple[int, int]
    width: float | None
    layers: tuple[LayerPick, ...]


@dataclass
class SpaceSpec:
    """A parsed search space: the spec's data without choices, its choices, and how to concretize."""

    data: dict[str, Any]
    src: Source
    resolutions: tuple[tuple[int, int], ...]
    widths: tuple[float, ...] | None
    layers: tuple[LayerSpace, ...]
    choices: tuple[Choice, ...]

    @property
    def name(self) -> str | None:
        """The spec's name."""
        v = self.data.get("name")
        return v if isinstance(v, str) else None

    @property
    def size(self) -> int:
        """The number of sub-networks: |resolutions| × |widths| × Π layers' variants (exact)."""
        n = len(self.resolutions) * (len(self.widths) if self.widths else 1)
        return n * math.prod(layer.variants for layer in self.layers)

    def to_json(self, sub: SubNet) -> dict[str, Any]:
        """A sub-network as a JSON-ready choice vector (only the layers that have choices)."""
        out: dict[str, Any] = {"resolution": list(sub.resolution)}
        if self.widths is not None:
            out["width"] = sub.width
        layers: dict[str, Any] = {}
        for ls, pick in zip(self.layers, sub.layers, strict=True):
            entry: dict[str, Any] = {}
            if ls.out is not None:
                entry[ls.out_key or "out_channels"] = pick.out
            if ls.expanded:
                entry["depth"] = len(pick.blocks)
                if ls.fields:
                    entry["blocks"] = [dict(zip(ls.fields, ls.options[b], strict=True)) for b in pick.blocks]
            if entry:
                layers[str(ls.index)] = entry
        out["layers"] = layers
        return out

    def concrete_data(self, sub: SubNet) -> tuple[dict[str, Any], Source, list[int]]:
        """The plain spec data of ``sub``, a line map for it, and each concrete layer's source layer."""
        data = dict(self.data)
        h, w = sub.resolution
        data["input"] = {**data["input"], "height": h, "width": w}
        if sub.width is not None:
            data["scaling"] = {**data["scaling"], "width": sub.width}
        layers: list[dict[str, Any]] = []
        origin: list[int] = []
        for ls, pick in zip(self.layers, sub.layers, strict=True):
            base = dict(self.data["layers"][ls.index])
            if ls.out is not None:
                base[ls.out_key or "out_channels"] = pick.out
            if not ls.expanded:
                layers.append(base)
                origin.append(ls.index)
                continue
            for j, b in enumerate(pick.blocks):
                inst = dict(base)
                inst["repeat"] = 1
                for name, v in zip(ls.fields, ls.options[b], strict=True):
                    if v is None:
                        inst.pop(name, None)
                    else:
                        inst[name] = v
                if j > 0:
                    inst["stride"] = 1
                    inst.pop("in_channels", None)
                layers.append(inst)
                origin.append(ls.index)
        data["layers"] = layers
        lines: dict[Path, int] = {}
        for path, line in self.src.lines.items():
            if len(path) >= 2 and path[0] == "layers" and isinstance(path[1], int):
                continue
            lines[path] = line
        lines[("layers",)] = self.src.lines.get(("layers",), 1)
        for j, i in enumerate(origin):
            for path, line in self.src.lines.items():
                if len(path) >= 2 and path[0] == "layers" and path[1] == i:
                    lines[("layers", j, *path[2:])] = line
        return data, Source(self.src.file, lines), origin

    def concrete(self, sub: SubNet) -> NetworkSpec:
        """The concrete, validated spec of one sub-network (errors name the space file's layer)."""
        data, src, origin = self.concrete_data(sub)
        try:
            return validate(data, src)
        except SpecError as err:
            raise _back(err, origin) from None

    def first(self) -> SubNet:
        """The sub-network that takes every choice's first value (and every depth's first)."""
        picks = tuple(LayerPick(ls.outs[0], (0,) * ls.depths[0] if ls.expanded else ()) for ls in self.layers)
        return SubNet(self.resolutions[0], self.widths[0] if self.widths else None, picks)

    def from_json(self, vec: Mapping[str, Any]) -> SubNet:
        """The sub-network a choice vector (as :meth:`to_json` writes it) names; refuses unknown values."""
        res = vec.get("resolution")
        if not (isinstance(res, list) and len(res) == 2 and tuple(res) in self.resolutions):
            raise SpecError(f"resolution {res!r} is not in the space", file=self.src.file)
        width = vec.get("width") if self.widths is not None else None
        if self.widths is not None and width not in self.widths:
            raise SpecError(f"width {width!r} is not in the space", file=self.src.file)
        given = vec.get("layers", {})
        picks = []
        for ls in self.layers:
            entry = given.get(str(ls.index), {}) if isinstance(given, dict) else {}
            out = entry.get(ls.out_key or "out_channels") if ls.out is not None else None
            if out not in ls.outs:
                raise SpecError(f"layers[{ls.index}]: out value {out!r} is not in the space", file=self.src.file)
            blocks: tuple[int, ...] = ()
            if ls.expanded:
                d: Any = entry.get("depth")
                if d not in ls.depths:
                    raise SpecError(f"layers[{ls.index}]: depth {d!r} is not in the space", file=self.src.file)
                raw = entry.get("blocks", [{}] * d)
                try:
                    blocks = tuple(ls.options.index(tuple(b[f] for f in ls.fields)) for b in raw)
                except (KeyError, ValueError, TypeError):
                    raise SpecError(
                        f"layers[{ls.index}]: a block's values are not in the space", file=self.src.file
                    ) from None
                if len(blocks) != d:
                    raise SpecError(f"layers[{ls.index}]: depth {d} but {len(blocks)} blocks", file=self.src.file)
            picks.append(LayerPick(out, blocks))
        return SubNet((int(res[0]), int(res[1])), width, tuple(picks))


def _back(err: SpecError, origin: Sequence[int]) -> SpecError:
    """``err`` with a concrete layer index turned back into the space file's layer index."""
    p = err.path
    if len(p) >= 2 and p[0] == "layers" and isinstance(p[1], int) and 0 <= p[1] < len(origin):
        err.path = ("layers", origin[p[1]], *p[2:])
    return err


def _is_choice(v: Any) -> bool:
    return isinstance(v, dict) and "choice" in v


def _choice(node: Any, path: Path, src: Source, kind: str) -> Choice:
    """Check a ``{choice: [...]}`` node: ``kind`` is ``int``, ``kernel``, ``ratio`` (se) or ``float``."""
    line = src.line_of(path)
    if set(node) != {"choice"}:
        extra = sorted(set(node) - {"choice"})
        raise SpecError(f"unknown key {extra[0]!r} beside 'choice'", (*path, extra[0]), src.file, line)
    values = node["choice"]
    cpath = (*path, "choice")
    if not isinstance(values, list) or not values:
        raise SpecError("a choice is a non-empty list of values", cpath, src.file, src.line_of(cpath))
    if len(values) > MAX_CHOICES:
        raise SpecError(f"a choice lists at most {MAX_CHOICES} values, this one {len(values)}", cpath, src.file, line)
    for i, v in enumerate(values):
        vline = src.line_of((*cpath, i))
        bad: str | None = None
        if kind in ("int", "kernel"):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad = f"{v!r} is not a positive integer"
            elif kind == "kernel" and v % 2 == 0:
                bad = f"{v} is not an odd kernel size"
        elif kind == "ratio":
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1):
                bad = f"{v!r} is not an SE ratio in (0, 1] or null"
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
            bad = f"{v!r} is not a positive number"
        if bad:
            raise SpecError(f"choice value {bad}", (*cpath, i), src.file, vline)
    if len(set(values)) != len(values):
        raise SpecError("a choice lists a value twice", cpath, src.file, line)
    return Choice(path, tuple(values), line)


def _fixed_int(v: Any, path: Path, src: Source) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SpecError("expected a positive integer (symbols are not allowed in a search space)", path, src.file,
                        src.line_of(path))  # fmt: skip
    return v


def parse_space(data: Any, src: Source) -> SpaceSpec:
    """A :class:`SpaceSpec` from parsed YAML data: every choice found, checked, and the first
    sub-network validated (so a bad field elsewhere is reported at once, with its line)."""
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("input"), dict)
        or not isinstance(data.get("layers"), list)
    ):
        raise SpecError("a search space is a spec: a mapping with 'input' and 'layers'", (), src.file, 1)
    data = dict(data)
    choices: list[Choice] = []
    inp = dict(data["input"])
    for key in ("channels", "batch"):
        if _is_choice(inp.get(key)):
            raise SpecError("cannot be a choice (choose resolution, widths, depths or block fields)",
                            ("input", key), src.file, src.line_of(("input", key)))  # fmt: skip
    res_node = inp.pop("resolution", None)
    if res_node is not None:
        if "height" in inp or "width" in inp:
            raise SpecError("give either resolution or height and width", ("input", "resolution"), src.file,
                            src.line_of(("input", "resolution")))  # fmt: skip
        if _is_choice(res_node):
            c = _choice(res_node, ("input", "resolution"), src, "int")
            choices.append(c)
            rs = tuple((r, r) for r in c.values)
        else:
            r = _fixed_int(res_node, ("input", "resolution"), src)
            rs = ((r, r),)
    else:
        sides: list[tuple[int, ...]] = []
        for key in ("height", "width"):
            node = inp.get(key)
            if node is None:
                raise SpecError("required field is missing (or give input.resolution)", ("input", key), src.file,
                                src.line_of(("input",)))  # fmt: skip
            if _is_choice(node):
                c = _choice(node, ("input", key), src, "int")
                choices.append(c)
                sides.append(tuple(c.values))
            else:
                sides.append((_fixed_int(node, ("input", key), src),))
        rs = tuple(product(sides[0], sides[1]))
    inp["height"], inp["width"] = rs[0]
    data["input"] = inp
    widths: tuple[float, ...] | None = None
    scaling = data.get("scaling")
    if isinstance(scaling, dict):
        scaling = dict(scaling)
        if _is_choice(scaling.get("width")):
            c = _choice(scaling["width"], ("scaling", "width"), src, "float")
            choices.append(c)
            widths = tuple(c.values)
            scaling["width"] = widths[0]
        for key in ("depth", "divisor"):
            if _is_choice(scaling.get(key)):
                raise SpecError("cannot be a choice (choose repeats instead)", ("scaling", key), src.file,
                                src.line_of(("scaling", key)))  # fmt: skip
        depth_scale = scaling.get("depth", 1)
        if depth_scale != 1 and any(_is_choice(v) for layer in data["layers"] if isinstance(layer, dict)
                              for v in layer.values()):  # fmt: skip
            raise SpecError("scaling.depth must be 1 in a search space with layer choices (choose repeats)",
                            ("scaling", "depth"), src.file, src.line_of(("scaling", "depth")))  # fmt: skip
        data["scaling"] = scaling
    layers: list[LayerSpace] = []
    plain: list[Any] = []
    for i, layer in enumerate(data["layers"]):
        path: Path = ("layers", i)
        if not isinstance(layer, dict):
            plain.append(layer)
            layers.append(LayerSpace(i, "?", None, None, None, (1,), (), ((),)))
            continue
        layer = dict(layer)
        kind = layer.get("kind")
        model = layer_model(kind) if isinstance(kind, str) else None
        ints = integer_fields(model) if model is not None else frozenset()
        out: Choice | None = None
        out_key: str | None = None
        depth: Choice | None = None
        fields: list[str] = []
        per: list[tuple[Value, ...]] = []
        for key in list(layer):
            v = layer[key]
            if not _is_choice(v):
                continue
            fpath = (*path, key)
            if key in FIXED_FIELDS or (key not in ints and key != "se"):
                raise SpecError("cannot be a choice", fpath, src.file, src.line_of(fpath))
            if key in SHARED_FIELDS:
                out, out_key = _choice(v, fpath, src, "int"), key
                choices.append(out)
                layer[key] = out.values[0]
            elif key == "repeat":
                depth = _choice(v, fpath, src, "int")
                too_deep = [i for i, d in enumerate(depth.values) if d > MAX_REPEAT]
                if too_deep:
                    cpath = (*fpath, "choice", too_deep[0])
                    raise SpecError(f"choice value {depth.values[too_deep[0]]} is past {MAX_REPEAT:,} (the most "
                                    "repeats of a layer)", cpath, src.file, src.line_of(cpath))  # fmt: skip
                choices.append(depth)
                layer[key] = depth.values[0]
            else:
                c = _choice(v, fpath, src, "kernel" if key == "kernel" else "ratio" if key == "se" else "int")
                choices.append(c)
                fields.append(key)
                per.append(c.values)
                if c.values[0] is None:
                    layer.pop(key)
                else:
                    layer[key] = c.values[0]
        n_options = math.prod(len(v) for v in per)
        if n_options > MAX_OPTIONS:
            sizes = " × ".join(str(len(v)) for v in per)
            raise SpecError(
                f"the per-instance choices ({', '.join(fields)}) make {n_options:,} = {sizes} block options; "
                f"at most {MAX_OPTIONS:,} per layer",
                path, src.file, src.line_of(path),
            )  # fmt: skip
        if depth is not None:
            depths = tuple(depth.values)
        else:
            rep = layer.get("repeat", 1)
            fixed = _fixed_int(rep, (*path, "repeat"), src) if fields else rep if isinstance(rep, int) else 1
            depths = (fixed,)
        layers.append(LayerSpace(i, str(kind), out_key, out, depth, depths, tuple(fields), tuple(product(*per))))
        plain.append(layer)
    data["layers"] = plain
    space = SpaceSpec(data, src, rs, widths, tuple(layers), tuple(choices))
    _check_values(space)
    return space


def _check_values(space: SpaceSpec) -> None:
    """Validate concrete specs that use every choice value: the first sub-network, then one in which
    every expanded layer lists each value of each of its per-instance fields (instance j takes every
    field's j-th value, or its last: at most MAX_CHOICES instances), then one per further out-channel
    and width value. Resolutions and depths are positive integers, checked above. A combination of
    values that the engine refuses together is refused when the tables are built, with the same message."""
    base = space.first()
    space.concrete(base)
    every = tuple(LayerPick(p.out, _each_value(ls)) if ls.expanded else p
                  for ls, p in zip(space.layers, base.layers, strict=True))  # fmt: skip
    space.concrete(SubNet(base.resolution, base.width, every))
    for j in range(1, max(len(ls.outs) for ls in space.layers)):
        picks = tuple(LayerPick(ls.outs[min(j, len(ls.outs) - 1)], p.blocks)
                      for ls, p in zip(space.layers, base.layers, strict=True))  # fmt: skip
        space.concrete(SubNet(base.resolution, base.width, picks))
    for w in (space.widths or ())[1:]:
        space.concrete(SubNet(base.resolution, w, base.layers))


def _each_value(ls: LayerSpace) -> tuple[int, ...]:
    """Option indices whose instances together hold every value of every per-instance field of ``ls``:
    instance j takes each field's j-th value (its last past its end); options are the fields' product
    in order, so the index is the mixed-radix number of the value positions."""
    if not ls.fields:
        return (0,)
    sizes = [len({o[f] for o in ls.options}) for f in range(len(ls.fields))]
    out = []
    for j in range(max(sizes)):
        index = 0
        for n in sizes:
            index = index * n + min(j, n - 1)
        out.append(index)
    return tuple(out)


def loads_space(text: str, file: str = "<space>") -> SpaceSpec:
    """A search space from YAML text (parsed safely; nothing is evaluated)."""
    data, src = parse_yaml(text, file)
    return parse_space(data, src)


def load_space(path: str | os.PathLike[str]) -> SpaceSpec:
    """A search space from a YAML file, or the name of a shipped one (``ofa_mobilenetv3``,
    ``specs/spaces/proxylessnas.yaml`` from any directory; spec/shipped.py)."""
    from .shipped import SPACE_GROUPS, resolve

    file = resolve(path, SPACE_GROUPS)
    return loads_space(read_text(file), file)
