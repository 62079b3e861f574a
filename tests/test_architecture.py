"""The house rules: layers import only downward, no import cycle (imports inside functions counted),
a new kind is its spec model plus its block function (shipped data installing with the package: test_shipped.py)."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Literal

import pytest

import costmodel

PKG = Path(costmodel.__file__).parent

# spec → engine → analysis → presentation → api / torchref → cli; errors and _version sit below all
RANK = {"errors": 0, "_version": 0, "spec": 1, "engine": 2, "analysis": 3, "present": 4, "api": 5, "torchref": 5}
RANK |= {"calibration": 5, "results": 5, "tflite": 5}
RANK |= {"importers": 5}
RANK |= {"cli": 6, "__init__": 7, "__main__": 8}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG).with_suffix("").parts
        name = ".".join(("costmodel", *parts))
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every costmodel module ``name`` imports, at top level or inside functions."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                up = base[: len(base) - (node.level - 1)]
                mod = ".".join([*up, mod] if mod else up)
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("costmodel") and t != name:
                found.add(t)
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    return RANK["__init__"] if len(parts) == 1 else RANK[parts[1]]


def test_import_graph_has_no_cycle_and_only_imports_downward():
    known = _modules()
    graph = {name: _imports(name, path, known) for name, path in known.items()}
    upward = [(a, b) for a, deps in graph.items() for b in deps if _layer(b) > _layer(a)]
    assert upward == []
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle.extend([*stack, node, dep])
            elif dep not in state:
                visit(dep, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycle == []


def test_the_checker_sees_imports_inside_functions(tmp_path):
    known = {"costmodel.spec.x": tmp_path / "x.py", "costmodel.present.y": tmp_path / "y.py"}
    (tmp_path / "x.py").write_text("def f():\n    from ..present import y\n")
    assert _imports("costmodel.spec.x", tmp_path / "x.py", known) == {"costmodel.present.y"}


def test_a_new_kind_needs_only_its_model_and_block_function():
    from costmodel.engine.blocks import Flow, conv_unit
    from costmodel.engine.symbols import value
    from costmodel.spec.layers import ConvLike

    class TwiceLayer(ConvLike):
        """Two k×k conv-norm-act, the second at stride 1 (a toy kind for this test)."""

        kind: Literal["toy_twice"]

    def twice(layer, a):
        f = Flow(a.inp)
        conv_unit(f, a, "first", value(layer.out_channels), value(layer.kernel), a.stride)
        conv_unit(f, a, "second", value(layer.out_channels), value(layer.kernel))
        return f

    costmodel.register(TwiceLayer, twice)
    spec = costmodel.loads(
        "input: {channels: 4, height: 9, width: 9}\n"
        "layers:\n  - {kind: toy_twice, out_channels: 8, stride: 2, name: toy}\n  - {kind: pool}\n"
    )
    report = costmodel.analyze(spec)
    # first: 8·4·9 weights + BN 16; second: 8·8·9 + 16 → 288 + 16 + 576 + 16 = 896
    assert report.totals["params"] == 896
    # 5×5 output after stride 2 on 9×9: first 25·288 = 7,200 MACs, second 25·576 = 14,400
    assert report.totals["macs"] == 21_600
    assert report.output == (8, 1, 1)
    assert report.blocks[0].settings == "k3 s2"
    with pytest.raises(costmodel.SpecError, match="layers.0..out_channels: required"):
        costmodel.loads("input: {channels: 4, height: 9, width: 9}\nlayers:\n  - {kind: toy_twice}\n")
    # symbols and assumptions come from the model's field markers
    sym = costmodel.analyze(
        costmodel.loads(
            "input: {channels: 4, height: 9, width: 9}\nlayers:\n  - {kind: toy_twice, out_channels: 8, kernel: k}\n"
        )
    )
    assert ("k", "odd") in sym.assumptions
    assert (sym.expression("params") - (8 * 4 * sym_k() ** 2 + 8 * 8 * sym_k() ** 2 + 32)).expand() == 0


def sym_k():
    from costmodel.engine.symbols import symbol

    return symbol("k")


def test_a_registered_kind_can_bring_its_torch_reference():
    torch = pytest.importorskip("torch")
    from costmodel.engine.blocks import Flow, conv_unit
    from costmodel.spec.layers import ConvLike
    from costmodel.torchref import conv_bn_act, measure

    class WideLayer(ConvLike):
        """A k×k conv-norm-act to twice out_channels, then a 1×1 back (a toy kind)."""

        kind: Literal["toy_wide"]

    def wide(layer, a):
        f = Flow(a.inp)
        conv_unit(f, a, "wide", 2 * layer.out_channels, layer.kernel, a.stride)
        conv_unit(f, a, "narrow", layer.out_channels, 1)
        return f

    def build(layer, cfg, cin, stride):
        body = torch.nn.Sequential(
            conv_bn_act(cfg, cin, 2 * layer.out_channels, layer.kernel, stride),
            conv_bn_act(cfg, 2 * layer.out_channels, layer.out_channels, 1),
        )
        return body, layer.out_channels

    costmodel.register(WideLayer, wide, torch=build)
    spec = costmodel.loads(
        "input: {channels: 3, height: 11, width: 13}\nlayers:\n  - {kind: toy_wide, out_channels: 6, stride: 2}\n"
    )
    ours, theirs = costmodel.analyze(spec), measure(spec)
    assert (ours.totals["params"], ours.totals["buffers"], ours.totals["macs"]) == (
        theirs["params"],
        theirs["buffers"],
        theirs["macs"],
    )
    assert ours.output == theirs["output"]


def test_a_registered_kind_is_refused_twice_and_a_model_needs_a_kind_tag():
    from costmodel.spec.layers import ConvLike, MBConvLayer

    class Other(ConvLike):
        kind: Literal["mbconv"]

    with pytest.raises(ValueError, match="registered already"):
        costmodel.register(Other, lambda layer, a: None)

    class NoTag(ConvLike):
        pass

    with pytest.raises(TypeError, match="kind"):
        costmodel.register(NoTag, lambda layer, a: None)
    with pytest.raises(ValueError, match="registered already"):
        costmodel.register(MBConvLayer, lambda layer, a: None)
    assert costmodel.analyze(PKG.parent / "specs" / "seed_mbconv.yaml").totals["params"] == 408  # mbconv untouched


def _package_modules() -> list[str]:
    """Every module file under costmodel/, relative to it (links not followed: data/specs is the shipped specs)."""
    out = []
    for top, dirs, files in os.walk(PKG):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        out += [Path(top, f).relative_to(PKG).as_posix() for f in files if f.endswith(".py")]
    return sorted(out)


def test_every_module_is_named_in_the_architecture_doc():
    doc = (PKG.parent / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([\w/]+\.py)`", doc))
    modules = _package_modules()
    assert len(modules) > 60 and "engine/blocks_zoo.py" in modules and "importers/recognise.py" in modules
    assert [m for m in modules if m not in named] == []


def test_the_doc_check_fails_on_a_missing_module(tmp_path):
    """The check above can fail: a module it has not seen in the doc is reported."""
    doc = (PKG.parent / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([\w/]+\.py)`", doc.replace("`engine/blocks_zoo.py`", "blocks_zoo")))
    assert [m for m in _package_modules() if m not in named] == ["engine/blocks_zoo.py"]
