"""YAML → NetworkSpec, keeping the line of every key so errors can point at it.

The YAML is composed with PyYAML's safe loader (no tags that build objects) and turned into plain
dicts, lists and scalars by hand, refusing duplicate keys. Pydantic's errors are turned into a
``SpecError`` naming the file, the line and the field.
"""

from __future__ import annotations

import os
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
_scalar_constructor = yaml.SafeLoader("")  # only used for construct_object on scalar nodes


def _build(node: yaml.Node, path: Path, src: Source) -> Any:
    src.lines.setdefault(path, node.start_mark.line + 1)
    if node.tag not in _PLAIN_TAGS:
        raise SpecError(f"YAML tag {node.tag!r} is not allowed in a spec", path, line=node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError("YAML merge keys (<<) are not supported", path, line=key_node.start_mark.line + 1)
            key = _build(key_node, (), Source(src.file))
            if not isinstance(key, str):
                raise SpecError(f"keys must be text, got {key!r}", path, line=key_node.start_mark.line + 1)
            if key in out:
                raise SpecError(
                    f"duplicate key {key!r} (first on line {src.lines[(*path, key)]})",
                    (*path, key),
                    line=key_node.start_mark.line + 1,
                )
            src.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), src)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), src) for i, item in enumerate(node.value)]
    return _scalar_constructor.construct_object(node)


def parse_yaml(text: str, file: str) -> tuple[Any, Source]:
    """Parse YAML text safely into plain data and a line map; refuse duplicate keys and multiple documents."""
    src = Source(file)
    try:
        docs = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", file=file) from None
    except RecursionError:
        raise SpecError("YAML nests too deeply", file=file) from None
    docs = [d for d in docs if d is not None]
    if not docs:
        raise SpecError("the file is empty: a spec needs 'input' and 'layers'", file=file)
    if len(docs) > 1:
        raise SpecError("a spec file holds one YAML document, this one holds several", file=file)
    try:
        data = _build(docs[0], (), src)
    except SpecError as err:
        raise src.locate(err) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # e.g. a bad timestamp scalar
        raise SpecError(f"YAML error: {exc}", file=file) from None
    return data, src


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text, or a SpecError naming the file (missing, unreadable, not UTF-8 text)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise SpecError("no such file", file=name) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", file=name) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", file=name) from None
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
    spec: NetworkSpec = validate_model(NetworkSpec, data, src, bind)
    return spec


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
    """A NetworkSpec from a YAML file, symbols in ``bind`` replaced by their values before validation."""
    return loads(read_text(path), os.fspath(path), bind)
