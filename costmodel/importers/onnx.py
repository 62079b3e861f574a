"""Import an ONNX file as a spec, with the ``onnx`` package only (no torch).

Shapes come from ``onnx.shape_inference``; each Conv, BatchNormalization, activation (Relu, Clip 0..6 →
relu6, Sigmoid, HardSigmoid, HardSwish; ``x · Sigmoid(x)`` → silu), Add, Mul, GlobalAveragePool /
ReduceMean over H, W, Gemm / MatMul (+ bias Add) becomes a :class:`~costmodel.importers.recognise.Node`;
Flatten, Reshape, Squeeze, Unsqueeze, Identity and Dropout are aliases. Node names like
``/features/features.1/block/block.0/Conv`` give the module path ``features.1.block.0``.

The source figures the import is checked against come from the graph itself: params = the elements of
its floating-point weight initializers; MACs = Σ over Conv of N·Cout·Ho·Wo·(Cin/g)·kh·kw plus Σ over
Gemm / MatMul of N·in·out. Exporters fold BatchNorm into the convs (weights rescaled, a bias added), so
an exported inference graph has no norm: its spec has ``norm: none`` and conv ``bias: true``.
"""

from __future__ import annotations

import math
from typing import Any

import onnx
from onnx import numpy_helper, shape_inference

from ..errors import UsageError
from ..spec import names as _names
from .recognise import Node

_ALIASES = frozenset({"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast"})
_ACTS = {op: name for name, a in _names.ACTIVATIONS.items() for op in a.onnx}  # the spec's (spec/names.py)
_ACTS_OTHER = {"Tanh": "tanh", "Elu": "elu", "LeakyRelu": "leaky_relu", "Mish": "mish"}  # reported as unsaid


def _scope(node: Any) -> str:
    for prop in getattr(node, "metadata_props", []):
        if prop.key == "pkg.torch.onnx.name_scopes":
            text = prop.value.strip("[]").replace("'", "").replace('"', "")
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return parts[-1] if parts else ""  # the innermost module's full path
    parts = node.name.split("/")[1:-1]
    return ".".join(p.rsplit(".", 1)[-1] for p in parts if p)


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _dims(vi: Any) -> tuple[int, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    out = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        out.append(int(d.dim_value))
    return tuple(out)


def read(path: str) -> tuple[list[Node], int, tuple[int, int, int], dict[str, Any], list[str]]:
    """(nodes, output tensor, input (C, H, W), source figures, notes) of the ONNX file at ``path``.

    params = Σ over nodes of the floating-point initializer elements each reads (an initializer shared by
    several nodes counts once per use, as the layers that read it do)."""
    try:
        model = onnx.load(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except Exception as exc:  # a damaged or non-ONNX file
        raise UsageError(f"{path}: not a readable ONNX file: {type(exc).__name__}: {exc}") from None
    try:
        model = shape_inference.infer_shapes(model)
    except Exception as exc:
        raise UsageError(f"{path}: ONNX shape inference failed: {exc}") from None
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts: dict[str, Any] = dict(inits)
    for n in g.node:
        if n.op_type == "Constant" and n.attribute:
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        elif n.op_type == "Identity" and n.input and n.input[0] in consts:  # a shared initializer's alias
            consts[n.output[0]] = consts[n.input[0]]
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*g.value_info, *g.input, *g.output]:
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
    data_inputs = [i for i in g.input if i.name not in inits]
    if len(data_inputs) != 1:
        raise UsageError(f"{path}: the graph has {len(data_inputs)} data inputs; costmodel imports one image input")
    x = data_inputs[0]
    xs = shapes.get(x.name)
    if xs is None or len(xs) != 4:
        raise UsageError(f"{path}: the input {x.name!r} needs a static N×C×H×W shape (export with a fixed size)")
    ids: dict[str, int] = {x.name: 0}
    nodes: list[Node] = []
    macs = 0
    folded_bias = 0
    for n in g.node:
        op = n.op_type
        if op == "Constant":
            continue
        data = [ids[i] for i in n.input if i in ids]
        weights = [i for i in n.input if i in consts]
        out_name = n.output[0]
        if not data:
            continue
        if op in _ALIASES:
            ids[out_name] = data[0]
            continue
        in_shape = shapes.get(n.input[0], ())
        shape = shapes.get(out_name)
        if shape is None:
            raise UsageError(f"{path}: no inferred shape for {out_name!r} ({op} {n.name})")
        params = sum(int(consts[w].size) for w in weights if consts[w].dtype.kind == "f" and consts[w].ndim >= 1)
        a = _attrs(n)
        attrs: dict[str, Any] = {}
        kind = "other"
        if op == "Conv" and len(in_shape) == 4:
            w = consts.get(n.input[1])
            if w is None:
                raise UsageError(f"{path}: Conv {n.name} has no weight initializer")
            kh, kw = int(w.shape[2]), int(w.shape[3])
            pads = list(a.get("pads", [0, 0, 0, 0]))
            strides = list(a.get("strides", [1, 1]))
            dil = list(a.get("dilations", [1, 1]))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UsageError(f"{path}: Conv {n.name}: auto_pad is not supported; export with explicit pads")
            pad = pads[0] if len(set(pads)) == 1 else tuple(pads)
            bias = len(n.input) > 2 and n.input[2] != ""
            if bias:
                folded_bias += int(shape[1])
            attrs = {
                "kernel": kh if kh == kw else (kh, kw),
                "stride": strides[0] if len(set(strides)) == 1 else tuple(strides),
                "padding": pad,
                "dilation": dil[0] if len(set(dil)) == 1 else tuple(dil),
                "groups": int(a.get("group", 1)),
                "bias": bias,
                "in_channels": int(in_shape[1]),
            }
            kind = "conv"
            macs += math.prod(shape) * (in_shape[1] // attrs["groups"]) * kh * kw
        elif op == "BatchNormalization":
            kind, attrs = "norm", {"name": "batchnorm", "affine": True}
        elif op in _ACTS or op in _ACTS_OTHER:
            kind, attrs = "act", {"name": _ACTS[op] if op in _ACTS else _ACTS_OTHER[op]}
            if op == "Gelu" and a.get("approximate", "none") not in ("none", b"none"):
                attrs["name"] = "gelu_tanh"  # not the spec's gelu (the erf form)
        elif op == "Clip":
            lo = consts.get(n.input[1]) if len(n.input) > 1 and n.input[1] else a.get("min")
            hi = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else a.get("max")
            relu6 = lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0
            kind, attrs = "act", {"name": "relu6" if relu6 else "clip"}
        elif op in ("Add", "Mul") and len(data) == 2:
            kind = op.lower()
        elif (
            op == "Add"
            and len(data) == 1
            and weights
            and nodes
            and nodes[-1].out == data[0]
            and nodes[-1].op == "linear"
        ):
            nodes[-1].attrs["bias"] = True
            nodes[-1].params += params
            ids[out_name] = data[0]
            continue
        elif op == "GlobalAveragePool" or (
            op == "ReduceMean" and sorted(int(v) % 4 for v in _axes(n, a, consts)) == [2, 3] and len(in_shape) == 4
        ):
            kind, attrs = "pool", {"implementation": "module" if op == "GlobalAveragePool" else "mean"}
        elif op in ("Gemm", "MatMul") and weights:
            kind = "linear"
            attrs = {"bias": op == "Gemm" and len(n.input) > 2 and n.input[2] != ""}
            macs += math.prod(shape) * int(in_shape[-1])
        elif op in ("Gemm", "MatMul"):
            macs += math.prod(shape) * int(in_shape[-1])
        tid = len(nodes) + 1
        nodes.append(Node(kind, tuple(dict.fromkeys(data)), tid, shape, in_shape, _scope(n), op, attrs, params))
        ids[out_name] = tid
    out = g.output[0].name
    if out not in ids:
        raise UsageError(f"{path}: the graph's output {out!r} does not depend on its input")
    unique = sum(int(v.size) for k, v in consts.items() if k in inits and v.dtype.kind == "f" and v.ndim >= 1)
    weight_params = sum(n.params for n in nodes)
    out_shape = shapes.get(out, ())
    source = {"params": weight_params, "macs": macs, "output": tuple(out_shape[1:])}
    notes = []
    if unique != weight_params:
        notes.append(
            f"the exporter shares equal initializers between nodes (e.g. the zero biases of an untrained model): "
            f"the nodes read {weight_params} weight elements, {unique} of them distinct; params count each use"
        )
    convs = [n for n in nodes if n.op == "conv"]
    if convs and not any(n.attrs.get("bias") for n in convs):
        notes.append(
            "no conv in the graph has a bias: the exporter removed the all-zero ones (the dynamo exporter's "
            "RemoveOptionalBiasFromConv, as in an untrained model), so the spec has none either (conv bias: false, "
            "se_bias: false); a trained model's graph keeps them"
        )
    elif not any(n.op == "norm" for n in nodes):
        notes.append(
            f"the graph has no BatchNormalization: the exporter folded it into the convs (weights rescaled, a bias "
            f"added), so this spec has conv bias and no norm; params are the weight initializers' "
            f"{weight_params} elements (per use), {folded_bias} of them conv bias (the folded BatchNorm's shift)"
        )
    return nodes, ids[out], (int(xs[1]), int(xs[2]), int(xs[3])), source, notes


def _axes(n: Any, a: dict[str, Any], consts: dict[str, Any]) -> list[int]:
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(n.input) > 1 and n.input[1] in consts:
        return [int(v) for v in consts[n.input[1]].reshape(-1)]
    return []


def from_onnx(path: str, *, symbolic_resolution: bool = False) -> Any:
    """The spec of the ONNX graph at ``path``, its ImportReport attached. See ``costmodel.from_onnx``."""
    from .core import build

    nodes, output, shape, source, notes = read(path)
    name = path.rsplit("/", 1)[-1].removesuffix(".onnx")
    return build(nodes, output, shape, path, name, source, notes, symbolic_resolution)
