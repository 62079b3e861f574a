"""YAML → NetworkSpec, keeping the line of every key so errors can point at it.

The YAML is composed with PyYAML's safe loader (no tags that build objects) and turned into plain
dicts, lists and scalars by hand, refusing duplicate keys. Pydantic's errors are turned into a
``SpecError`` naming the file, the line and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import SpecError
from .network import NetworkSpec

try:  # the C loader is faster; both are safe
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path = tuple[str | int, ...]


@dataclass
class Source:
    """Where a spec came from: the file name and the 1-based line of every key and list item."""

    file: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of the deepest part of ``path`` that the file has (a missing key → its mapping)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def locate(self, err: SpecError) -> SpecError:
        """``err`` with this file and the line of its path filled in."""
        if err.file is None:
            err.file = self.file
        if err.line is None:
            err.line = self.line_of(err.path)
        return err


_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))
_TAG = "tag:yaml.org,2002:"

#: The largest spec (or hardware profile) file read, in bytes; a bigger file is refused unread.
MAX_FILE_BYTES = 4 * 2**20
#: How deeply mappings and lists may nest (a spec needs 4 levels: spec → layers → layer → value).
MAX_DEPTH = 32
#: The most digits an integer in a spec may have (every integer field is bounded far below this).
MAX_DIGITS = 100

# Scalars are resolved as YAML 1.2's core schema reads them, except that YAML 1.1's booleans
# (yes/no/on/off) are kept, and the number forms on which YAML 1.1 and 1.2 disagree are refused.
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
_FALSE = frozenset({"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = {
    **{f"{s}{v}": float(f"{s}inf") for s in ("", "+", "-") for v in (".inf", ".Inf", ".INF")},
    **{v: float("nan") for v in (".nan", ".NaN", ".NAN")},
}
_AMBIGUOUS = (  # (pattern, what YAML 1.1 makes of it)
    (re.compile(r"^[-+]?0[0-9_]+"), "octal"),
    (re.compile(r"^[-+]?0[xX][0-9a-fA-F_]*$"), "hexadecimal"),
    (re.compile(r"^[-+]?0[bB][0-9_]*$"), "binary"),
    (re.compile(r"^[-+]?0[oO][0-9_]*$"), "octal (YAML 1.2)"),
    (re.compile(r"^[-+]?[0-9][0-9_]*(:[0-9_]+)+(\.[0-9_]*)?$"), "base 60"),
    (re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?$"), "a number with _ separators"),
)


def _number_form_problem(text: str) -> str | None:
    """Why a plain scalar that looks like a number is refused (YAML 1.1 and 1.2 read it differently)."""
    if _INT.match(text):
        return None
    if _FLOAT.match(text) and not re.match(r"^[-+]?0[0-9]", text):  # 017, 00.5: octal-looking
        return None
    for pattern, reading in _AMBIGUOUS:
        if pattern.match(text) and any(c.isdigit() for c in text):
            return (
                f"{text!r} is not a plain decimal number (YAML 1.1 reads it as {reading}, YAML 1.2 differently): "
                "write the number in decimal without leading zeros, or quote it if it is text"
            )
    return None


#: Scalars already resolved, by (text, tag, plain): a spec repeats the same few keys and values.
_RESOLVED: dict[tuple[str, str | None, bool], Any] = {}
_MISS = object()
_RESOLVED_MAX = 4096  # entries kept (short texts only), so that a hostile file cannot grow it


def _scalar(event: Any, path: Path) -> Any:
    """The value of a scalar event: None, bool, int, float or str (see the resolution rules above)."""
    key = (event.value, event.tag, event.implicit[0])
    try:
        return _RESOLVED[key]
    except KeyError:
        pass
    out = _resolve(event, path)  # raises on a refused scalar: nothing is kept then
    if len(key[0]) <= 64 and len(_RESOLVED) < _RESOLVED_MAX:
        _RESOLVED[key] = out
    return out


def _resolve(event: Any, path: Path) -> Any:
    value: str = event.value
    line = event.start_mark.line + 1
    tag = event.tag
    if tag in (None, "!"):
        if not event.implicit[0]:  # quoted, or a block scalar
            return value
        tag = None
    elif tag not in _PLAIN_TAGS:
        raise SpecError(f"YAML tag {tag!r} is not allowed in a spec", path, line=line)
    kind = tag.removeprefix(_TAG) if tag else None
    if kind == "str":
        return value
    if kind in (None, "null") and value in _NULL:
        return None
    if kind in (None, "bool") and (value in _TRUE or value in _FALSE):
        return value in _TRUE
    problem = _number_form_problem(value)
    if problem:
        raise SpecError(problem, path, line=line)
    if kind in (None, "int") and _INT.match(value):
        if len(value.lstrip("+-")) > MAX_DIGITS:
            raise SpecError(f"an integer of {len(value.lstrip('+-')):,} digits is out of range", path, line=line)
        return int(value)
    if kind in (None, "float") and (_FLOAT.match(value) or value in _SPECIAL_FLOAT):
        return _SPECIAL_FLOAT[value] if value in _SPECIAL_FLOAT else float(value)
    if kind is None:
        return value
    raise SpecError(f"{value!r} is not a valid !!{kind}", path, line=line)


def _alias_error(event: Any, path: Path) -> SpecError:
    return SpecError(
        f"YAML aliases (*{event.anchor}) are not allowed in a spec: write the value out",
        path,
        line=event.start_mark.line + 1,
    )


class _Open:
    """A mapping or list being built: its value, its path and, for a mapping, the key awaiting a value."""

    __slots__ = ("key", "path", "value")

    def __init__(self, value: dict[str, Any] | list[Any], path: Path) -> None:
        self.value = value
        self.path = path
        self.key: str | None = None


def _events(text: str) -> Any:
    loader = _Loader(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


def _build(text: str, src: Source) -> tuple[int, Any]:
    """Plain data from YAML text, built from the parser's events without recursion: (documents, data).

    Keys must be text and unique; aliases, tags other than the plain ones, and nesting deeper than
    MAX_DEPTH are refused, each at its line.
    """
    stack: list[_Open] = []
    docs = 0
    data: Any = None

    def place(value: Any, line: int) -> Path:
        """Put ``value`` where the parser is (a list item, a mapping value, or the document); its path."""
        nonlocal data
        if not stack:
            data = value
            src.lines.setdefault((), line)
            return ()
        top = stack[-1]
        if isinstance(top.value, list):
            path = (*top.path, len(top.value))
            src.lines.setdefault(path, line)
            top.value.append(value)
            return path
        assert top.key is not None
        path = (*top.path, top.key)
        top.value[top.key] = value
        top.key = None
        return path

    def awaiting_key() -> bool:
        return bool(stack) and isinstance(stack[-1].value, dict) and stack[-1].key is None

    def next_path() -> Path:
        if not stack:
            return ()
        top = stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        return (*top.path, top.key) if top.key is not None else top.path

    scalar_event, resolved, lines = yaml.ScalarEvent, _RESOLVED, src.lines
    for event in _events(text):
        if type(event) is scalar_event and stack:  # most events: the same rules as below, fewer steps
            top = stack[-1]
            container = top.value
            if isinstance(container, dict):
                if top.key is None:  # a key
                    line = event.start_mark.line + 1  # type: ignore[union-attr]  # the parser sets marks
                    key = _scalar(event, top.path)
                    if not isinstance(key, str):
                        raise SpecError(f"keys must be text, got {key!r}", top.path, line=line)
                    if key == "<<" and event.implicit[0]:
                        raise SpecError("YAML merge keys (<<) are not supported", top.path, line=line)
                    if key in container:
                        raise SpecError(
                            f"duplicate key {key!r} (first on line {lines[(*top.path, key)]})",
                            (*top.path, key),
                            line=line,
                        )
                    lines[(*top.path, key)] = line
                    top.key = key
                else:  # a mapping's value
                    got = resolved.get((event.value, event.tag, event.implicit[0]), _MISS)
                    container[top.key] = _scalar(event, (*top.path, top.key)) if got is _MISS else got
                    top.key = None
            else:  # a list item
                path = (*top.path, len(container))
                got = resolved.get((event.value, event.tag, event.implicit[0]), _MISS)
                item = _scalar(event, path) if got is _MISS else got
                lines.setdefault(path, event.start_mark.line + 1)  # type: ignore[union-attr]  # the parser sets marks
                container.append(item)
            continue
        line = event.start_mark.line + 1
        if isinstance(event, yaml.DocumentStartEvent):
            docs += 1
            if docs > 1:
                raise SpecError("a spec file holds one YAML document, this one holds several", line=line)
        elif isinstance(event, yaml.AliasEvent):
            raise _alias_error(event, next_path())
        elif isinstance(event, yaml.ScalarEvent):
            if awaiting_key():
                top = stack[-1]
                key = _scalar(event, top.path)
                if not isinstance(key, str):
                    raise SpecError(f"keys must be text, got {key!r}", top.path, line=line)
                if key == "<<" and event.implicit[0]:
                    raise SpecError("YAML merge keys (<<) are not supported", top.path, line=line)
                assert isinstance(top.value, dict)
                if key in top.value:
                    raise SpecError(
                        f"duplicate key {key!r} (first on line {src.lines[(*top.path, key)]})",
                        (*top.path, key),
                        line=line,
                    )
                src.lines[(*top.path, key)] = line
                top.key = key
            else:
                place(_scalar(event, next_path()), line)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            mapping = isinstance(event, yaml.MappingStartEvent)
            if awaiting_key():
                raise SpecError("keys must be text, got a " + ("mapping" if mapping else "list"), stack[-1].path,
                                line=line)  # fmt: skip
            if event.tag not in (None, "!", _TAG + ("map" if mapping else "seq")):
                raise SpecError(f"YAML tag {event.tag!r} is not allowed in a spec", next_path(), line=line)
            if len(stack) >= MAX_DEPTH:
                raise SpecError(f"mappings and lists nest more than {MAX_DEPTH} levels deep", next_path(), line=line)
            value: dict[str, Any] | list[Any] = {} if mapping else []
            stack.append(_Open(value, place(value, line)))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
    return docs, data


def parse_yaml(text: str, file: str) -> tuple[Any, Source]:
    """Parse YAML text safely into plain data and a line map.

    Refused, each with its line: several documents, duplicate or non-text keys, aliases, merge keys,
    tags other than the plain scalar / mapping / list ones, nesting deeper than MAX_DEPTH, and the
    number forms YAML 1.1 and 1.2 read differently (``017``, ``0x10``, ``1:20``, ``1_000``).
    """
    src = Source(file)
    try:
        docs, data = _build(text, src)
    except SpecError as err:
        raise src.locate(err) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
        raise SpecError(f"YAML error: unacceptable {what} at offset {exc.position}", file=file) from None
    except yaml.YAMLError as exc:
        raise SpecError("YAML error: " + " ".join(str(exc).split()), file=file) from None
    if docs == 0:
        raise SpecError("the file is empty: a spec needs 'input' and 'layers'", file=file)
    return data, src


def read_text(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> str:
    """The file's text, or a SpecError naming the file (missing, unreadable, a directory, larger than
    ``limit`` bytes — read no further than that — or not UTF-8 text)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read(limit + 1)
    except FileNotFoundError:
        raise SpecError("no such file", file=name) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", file=name) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", file=name) from None
    if len(raw) > limit:
        raise SpecError(f"larger than {limit // 2**20} MiB, the largest file a spec may be", file=name)
    if b"\x00" in raw:
        raise SpecError("not a text file (it holds NUL bytes)", file=name)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (bad byte at offset {exc.start})", file=name) from None


_MESSAGES = {
    "missing": "required field is missing",
    "union_tag_not_found": "'kind' is missing: every layer needs a kind",
}


def _message(err: Mapping[str, Any], allowed: list[str] | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
        if allowed:
            msg += f" (allowed here: {', '.join(allowed)})"
        return msg
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "too_short" and err["loc"] == ("layers",):
        return "is empty: a spec needs at least one layer"
    msg = _MESSAGES.get(kind, err["msg"])
    return str(msg).removeprefix("Value error, ")


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Path, Any]:
    """Pydantic's loc without the union tags it inserts, and the model class at the end of it."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # the discriminated union's tag, e.g. 'mbconv'
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing or extra key: name it, stop descending
            node = None
        # otherwise: a union tag such as 'mbconv' or 'int' — not part of the data
    return tuple(path), node


def _allowed_keys(data: Any, path: Path, root: Any = NetworkSpec) -> list[str] | None:
    """The keys a mapping at ``path`` may hold, from the model that validates it."""
    from .network import Defaults, Input, layer_model

    if not path:
        return None
    parent = path[:-1]
    model: Any = None
    if parent == ():
        model = root
    elif root is not NetworkSpec:
        model = None
    elif parent == ("input",):
        model = Input
    elif parent == ("defaults",):
        model = Defaults
    elif len(parent) == 2 and parent[0] == "layers":
        node = data
        for p in parent:
            node = node[p]
        kind = node.get("kind") if isinstance(node, dict) else None
        model = layer_model(kind) if isinstance(kind, str) else None
    if model is None:
        return None
    return sorted(model.model_fields)


def validate(data: Any, src: Source, bind: Mapping[str, int] | None = None) -> NetworkSpec:
    """Validate plain data into a NetworkSpec, binding symbols first; errors name file, line, field."""
    if not isinstance(data, dict):
        raise SpecError(
            f"a spec is a mapping with 'input' and 'layers', got {type(data).__name__}", file=src.file, line=1
        )
    layers = data.get("layers")
    if isinstance(layers, list) and len(layers) > MAX_BLOCKS:
        raise src.locate(SpecError(f"{len(layers):,} layers; a spec may have at most {MAX_BLOCKS:,}", ("layers",)))
    spec: NetworkSpec = validate_model(NetworkSpec, data, src, bind)
    check_size(spec)
    return spec


#: The most block instances a spec may expand to (every layer's repeat, after ``scaling.depth``, summed).
MAX_BLOCKS = 100_000
#: The most op nodes the graph layers of a spec may expand to (each layer's nodes × its repeat, summed).
MAX_GRAPH_ROWS = 1_000_000


def check_size(spec: NetworkSpec) -> None:
    """Refuse a spec whose layers expand to more than MAX_BLOCKS block instances, or whose graph layers to more
    than MAX_GRAPH_ROWS op nodes, naming the layer where the count passes the bound (repeats count
    ``ceil(repeat × scaling.depth)`` where depth scales)."""
    import math

    depth = spec.scaling.depth if spec.scaling is not None else 1.0
    total = rows = 0
    for i, layer in enumerate(spec.layers):
        repeat = getattr(layer, "repeat", 1)
        if not isinstance(repeat, int):
            continue  # a symbol: bound when it is bound
        if getattr(layer, "scale_depth", False) and spec.scaling is not None:
            repeat = math.ceil(repeat * depth)
        total += repeat
        nodes = getattr(layer, "nodes", None)  # a graph layer: one row per node and copy
        rows += repeat * len(nodes) if isinstance(nodes, list) else 0
        if total > MAX_BLOCKS or rows > MAX_GRAPH_ROWS:
            err = SpecError(
                f"the layers expand to more than {MAX_BLOCKS:,} blocks (repeats summed, after scaling.depth)"
                if total > MAX_BLOCKS
                else f"the graph layers expand to more than {MAX_GRAPH_ROWS:,} op nodes (nodes × repeat, summed)",
                ("layers", i, "repeat"),
            )
            raise (spec._source.locate(err) if spec._source is not None else err)


def validate_model(model: Any, data: Any, src: Source, bind: Mapping[str, int] | None = None) -> Any:
    """Validate plain data into ``model`` (a spec or a hardware profile); errors name file, line, field."""
    if not isinstance(data, dict):
        raise SpecError(f"expected a mapping, got {type(data).__name__}", file=src.file, line=1)
    context: dict[str, Any] = {"bind": dict(bind or {}), "used": set()}
    try:
        spec = model.model_validate(data, context=context)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        path, _ = _data_path(data, tuple(first["loc"]))
        field = first.get("ctx", {}).get("field")
        if isinstance(field, str):  # a model-level check that names its field
            path = (*path, field)
        elif isinstance(field, tuple):  # … or a field further down (a graph layer's nodes[j].inputs[k])
            path = (*path, *field)
        allowed = _allowed_keys(data, path, model) if first["type"] == "extra_forbidden" else None
        err = SpecError(_message(first, allowed), path, more=len(errors) - 1)
        raise src.locate(err) from None
    unused = sorted(set(context["bind"]) - context["used"])
    if unused:
        raise SpecError(f"--set {unused[0]}: the spec has no symbol named {unused[0]!r}", file=src.file)
    spec._source = src
    return spec


def loads(text: str, file: str = "<spec>", bind: Mapping[str, int] | None = None) -> NetworkSpec:
    """A NetworkSpec from YAML text."""
    data, src = parse_yaml(text, file)
    return validate(data, src, bind)


def load(path: str | os.PathLike[str], bind: Mapping[str, int] | None = None) -> NetworkSpec:
    """A NetworkSpec from a YAML file, symbols in ``bind`` replaced by their values before validation.

    ``path`` is a file, or the name of a shipped spec (``mobilenet_v2``, ``timm/mixnet_s``,
    ``specs/networks/efficientnet_b0.yaml`` from any directory): see spec/shipped.py for the rule."""
    from .shipped import resolve

    file = resolve(path)
    return loads(read_text(file), file, bind)
