"""The import pipeline shared by every source: traced nodes → recognised layers → a validated spec, with a
report of what the spec covers and what it leaves out.

The report compares the spec's own counts (the engine's walk of the returned spec) with the source's:
for torch, ``sum(p.numel())``, ``sum(b.numel())``, ``FlopCounterMode`` total / 2 and the forward pass's
output shape; for ONNX, the weight initializers' elements and the MACs of the graph's Conv / Gemm /
MatMul nodes. ``exact`` says every figure is equal; otherwise ``problems`` names each op left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.walk import analyze_spec
from ..errors import UsageError
from ..spec.loader import Source, validate
from ..spec.network import NetworkSpec
from .recognise import Node, Problem, recognise, to_spec_dict
from .sources import printable


@dataclass
class ImportReport:
    """How exactly an imported spec describes its source.

    ``source`` holds the source's figures (``params``, ``buffers``, ``macs``, ``output``), ``spec`` the
    imported spec's at the same resolution; ``problems`` every op or structure left out (op name, module
    path, why); ``notes`` facts worth knowing (BatchNorm folded by an exporter, …).
    """

    origin: str
    source: dict[str, Any]
    spec: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)

    def coverage(self, metric: str) -> float:
        """spec / source for ``params`` or ``macs`` (1.0 when the source has none)."""
        src = self.source.get(metric)
        if not src:
            return 1.0
        return float(self.spec[metric]) / float(src)

    @property
    def exact(self) -> bool:
        """Whether every figure the source has equals the spec's and nothing was left out."""
        same = all(self.spec.get(k) == v for k, v in self.source.items())
        return same and not self.problems

    def coverage_line(self) -> str:
        """``the spec covers 98.50% of the model's MACs and 99.10% of its params`` (spec / source)."""
        return (
            f"the spec covers {self.coverage('macs'):.2%} of the model's MACs and "
            f"{self.coverage('params'):.2%} of its params"
        )

    def first_uncovered(self) -> str:
        """What the refusal of a partial import names first: the module path of the first op left out
        (``<top>`` for the model itself), else the first figure that differs."""
        if self.problems:
            p = self.problems[0]
            return f"{printable(p.scope or '<top>', 200)} ({printable(p.op, 80)}: {printable(p.message, 300)})"
        k = next((k for k, v in self.source.items() if self.spec.get(k) != v), "")
        return f"the {k}: the model has {self.source.get(k)}, the spec {self.spec.get(k)}"

    def refusal(self) -> str:
        """The one-line reason a partial import is refused (without ``partial``)."""
        return (
            f"cannot import {printable(self.origin, 200)} exactly: first uncovered: {self.first_uncovered()}; "
            f"{self.coverage_line()} (--partial / partial=True writes the partial spec)"
        )

    def warnings(self, coverage: bool = True) -> list[str]:
        """One line per problem and per mismatching figure, with the coverage where anything is missing (for the
        CLI's stderr), then the notes; ``coverage=False`` leaves the coverage line out."""
        out = [printable(p, 2000) for p in self.problems]
        for k, v in self.source.items():
            if self.spec.get(k) != v:
                out.append(f"{k}: the model has {v}, the spec {self.spec.get(k)}")
        if out and coverage:
            out.append(self.coverage_line())
        return out + [printable(n, 2000) for n in self.notes]


class ImportSource(Source):
    """A spec's source when it was imported: the origin and the :class:`ImportReport`."""

    def __init__(self, origin: str, report: ImportReport) -> None:
        super().__init__(origin)
        self.report = report


def report_of(spec: NetworkSpec) -> ImportReport | None:
    """The :class:`ImportReport` of a spec that ``from_torch`` / ``from_onnx`` returned (None otherwise)."""
    src = spec._source
    return src.report if isinstance(src, ImportSource) else None


def build(
    nodes: list[Node],
    output: int,
    input_shape: tuple[int, int, int],
    origin: str,
    name: str | None,
    source: dict[str, Any],
    notes: list[str],
    symbolic_resolution: bool = False,
    input_from: str | None = None,
    post: Callable[[dict[str, Any], list[Problem]], None] | None = None,
    batch: int = 1,
) -> NetworkSpec:
    """Recognise the layers of a traced graph and return the validated spec with its report attached.

    The spec carries its ``provenance``: ``origin``, ``input_from`` (the traced size and where it came from) and
    ``scaling: unknown`` (width and depth multipliers refused, unless a post-pass recognises the family). ``post``
    edits the spec's plain data before it is validated (the torch importer's dropouts and timm's classes), adding
    to the problems what it cannot say. ``batch`` (the graph's batch dimension, ONNX) is written as the spec's
    ``input.batch``."""
    try:
        rec = recognise(nodes, output)
    except StopIteration:  # a structure a matcher expected to hold a conv (or a branch) and did not
        raise UsageError(
            "cannot import: the layer recogniser met a structure it does not handle (a unit without the conv or "
            "branch it expected); please report the model"
        ) from None
    data = to_spec_dict(rec, input_shape, name)
    if batch != 1:
        data["input"]["batch"] = batch
    data["provenance"] = {"model": origin, **({"input": input_from} if input_from else {}), "scaling": "unknown"}
    if post is not None:
        post(data, rec.problems)
    report = ImportReport(origin, source, {}, rec.problems, notes, dict(rec.kinds))
    spec = validate(data, ImportSource(origin, report))
    r: Any = analyze_spec(spec)
    out = tuple(source.get("output", ()))
    if len(out) == 1 and tuple(r.output) == (*out, 1, 1) and data["layers"][-1].get("kind") == "pool":
        data["layers"].append({"kind": "flatten"})  # a pooled model without a classifier returns the flat vector
        spec = validate(data, ImportSource(origin, report))
        r = analyze_spec(spec)
    report.spec = {"params": r.totals["params"], "buffers": r.totals["buffers"], "macs": r.totals["macs"]}
    report.spec["output"] = tuple(r.output)
    report.spec = {k: v for k, v in report.spec.items() if k in source or k == "output"}
    over = [k for k in ("params", "macs") if k in source and report.spec[k] > source[k]]
    if over:  # the spec holds something the model does not: never a figure to print, --partial or not
        more = " and ".join(f"{k} ({report.spec[k]:,}) than the model has ({source[k]:,})" for k in over)
        tied = next((n for n in notes if "tied to another's tensor" in n), None)
        if tied is not None and over == ["params"]:
            raise UsageError(f"cannot import {printable(origin, 200)}: the spec would count more {more}: {tied}")
        raise UsageError(
            f"internal error: the spec imported from {printable(origin, 200)} counts more {more}; "
            "this is a costmodel bug, please report the model"
        )
    if symbolic_resolution:
        data["input"] = {**data["input"], "height": "H", "width": "W"}
        spec = validate(data, ImportSource(origin, report))
    return spec


def spec_dict(spec: NetworkSpec) -> dict[str, Any]:
    """The spec as plain data, without defaults-valued keys (what ``to_yaml`` writes)."""
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("defaults", spec.defaults.model_dump(mode="json", exclude_none=True))
    return data


_ORDER = (
    "name",
    "kind",
    "expansion",
    "expanded_channels",
    "kernel",
    "stride",
    "groups",
    "out_channels",
    "mid_channels",
    "out_features",
    "activation",
    "norm",
    "bias",
    "se",
    "se_base",
    "se_divisor",
    "se_activation",
    "se_gate",
    "se_bias",
    "residual",
    "implementation",
    "p",
)


def _scalar(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    text = printable(v)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: Strings written unquoted: an identifier-like text that YAML cannot read as a number, bool or null
#: (``features.3``, ``blocks.0.1``); anything else (``0``, ``1e3``, ``on``, ``a b``) is double-quoted.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_YAML_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "nan", "inf"})


def _flow(d: dict[str, Any]) -> str:
    keys = sorted(d, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER))
    return "{" + ", ".join(f"{k}: {_scalar(d[k])}" for k in keys) + "}"


def to_yaml(spec: NetworkSpec, header: list[str] | None = None) -> str:
    """The spec as YAML, one flow mapping per layer, with ``header`` lines as comments."""
    data = spec_dict(spec)
    lines = [f"# {printable(h, 2000)}" for h in header or []]
    if data.get("name"):
        lines.append(f"name: {_scalar(data['name'])}")
    lines.append(f"input: {_flow(data['input'])}")
    if "implementation" in data:
        impl = data["implementation"]
        lines.append(f"implementation: {impl['library'] if set(impl) == {'library'} else _flow(impl)}")
    if spec.provenance is not None:
        lines.append(f"provenance: {_flow(spec.provenance.model_dump(mode='json', exclude_none=True))}")
    if spec.scaling is not None:
        lines.append(f"scaling: {_flow(spec.scaling.model_dump(mode='json'))}")
    if spec.drop_path is not None:
        lines.append(f"drop_path: {_flow(spec.drop_path.model_dump(mode='json'))}")
    lines.append(f"defaults: {_flow(spec.defaults.model_dump(mode='json', exclude_none=True))}")
    lines.append("layers:")
    for layer in data["layers"]:
        lines += _graph_lines(layer) if layer.get("kind") == "graph" else [f"  - {_flow(layer)}"]
    return "\n".join(lines) + "\n"


def _graph_lines(layer: dict[str, Any]) -> list[str]:
    """A ``kind: graph`` layer as a block mapping, one flow mapping per node (its keys in the node's order: id, op,
    inputs, the op's fields, module last)."""
    lines = ["  - kind: graph"]
    for key in ("name", "repeat", "inputs", "output"):
        if key in layer:
            lines.append(f"    {key}: {_scalar(layer[key])}")
    if layer.get("classes"):  # what the counting tools see (importers/graph_annotate.py)
        lines.append("    classes:")
        lines += [f"      {_scalar(k)}: {_scalar(v)}" for k, v in layer["classes"].items()]
    lines.append("    nodes:")
    for node in layer["nodes"]:
        keys = [k for k in ("id", "op", "inputs") if k in node]
        keys += [k for k in node if k not in ("id", "op", "inputs", "module")]
        keys += ["module"] if "module" in node else []
        lines.append("      - {" + ", ".join(f"{k}: {_scalar(node[k])}" for k in keys) + "}")
    return lines
