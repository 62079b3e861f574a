"""Import an ONNX file as a spec, with the ``onnx`` package only (no torch).

Shapes come from ``onnx.shape_inference``; each Conv, BatchNormalization, activation (Relu, Clip 0..6 →
relu6, Sigmoid, HardSigmoid, HardSwish; ``x · Sigmoid(x)`` → silu), Add, Mul, GlobalAveragePool /
ReduceMean over H, W, Gemm / MatMul (+ bias Add) becomes a :class:`~costmodel.importers.recognise.Node`;
Flatten, Reshape, Squeeze, Unsqueeze, Identity and Dropout are aliases. Node names like
``/features/features.1/block/block.0/Conv`` give the module path ``features.1.block.0``.

The source figures the import is checked against come from the graph itself: params = the elements of
its floating-point weight initializers; MACs = Σ over Conv of N·Cout·Ho·Wo·(Cin/g)·kh·kw plus Σ over
Gemm / MatMul of N·in·out. Exporters fold BatchNorm into the convs (weights rescaled, a bias added), so
an exported inference graph has no norm: its spec has ``norm: none`` and conv ``bias: true``. The input's
batch dimension N becomes the spec's ``batch``.

Bounds: the file must be a regular file of at most ``MAX_ONNX_BYTES`` (2 GiB, protobuf's own limit), read
whole before it is parsed (a device, pipe or directory is refused without reading); weights stored as external
data are never read, only checked (a regular file inside the model's directory, long enough for the tensor's
dims); a path that leaves that directory is refused. A node whose attributes or weights contradict each
other (a conv with group 0 or a weight that is not 4-D, Clip bounds that are not scalars, a MatMul weight
that is not 2-D, an initializer whose dims its data does not fill) is refused, naming the node. The ops
inside an If / Loop / Scan subgraph are named (their counts and op types) and counted as not covered.
"""

from __future__ import annotations

import math
import os
import stat
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from ..errors import UsageError
from ..spec import names as _names
from .recognise import Node, Problem
from .sources import MAX_INPUT_SIZE, printable

#: The largest ONNX file read (protobuf cannot hold more; a model with larger weights keeps them as external
#: data, which is checked but never read).
MAX_ONNX_BYTES = 2 * 2**30
#: Tensors of at most this many elements have their values read (Clip bounds, axes, …); larger ones only
#: their dims and type (a zero-stride stand-in of the right shape: no memory).
_SMALL = 4096
_TEXT_LIMIT = 200

_ALIASES = frozenset({"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast"})
_ACTS = {op: name for name, a in _names.ACTIVATIONS.items() for op in a.onnx}  # the spec's (spec/names.py)
_ACTS_OTHER = {"Tanh": "tanh", "Elu": "elu", "LeakyRelu": "leaky_relu", "Mish": "mish"}  # reported as unsaid


def _scope(node: Any) -> str:
    """The module path of a node, on one printable line (node names are the file's, not ours)."""
    for prop in getattr(node, "metadata_props", []):
        if prop.key == "pkg.torch.onnx.name_scopes":
            text = prop.value.strip("[]").replace("'", "").replace('"', "")
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return printable(parts[-1], _TEXT_LIMIT) if parts else ""  # the innermost module's full path
    parts = node.name.split("/")[1:-1]
    return printable(".".join(p.rsplit(".", 1)[-1] for p in parts if p), _TEXT_LIMIT)


def _node_name(node: Any) -> str:
    """``OpType 'name'`` of a node, printable, for messages."""
    return printable(f"{node.op_type} {node.name!r}" if node.name else node.op_type, _TEXT_LIMIT)


def _load(path: str) -> Any:
    """The ModelProto at ``path``, read whole with a bound and without its external data."""
    shown = printable(path, _TEXT_LIMIT)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{shown}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{shown}: cannot read: {exc.strerror}") from None
    except ValueError:  # a NUL in the path
        raise UsageError(f"{shown}: not a file name") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{shown}: not a regular file (a directory, device or pipe); an ONNX model is a file")
    if st.st_size > MAX_ONNX_BYTES:
        raise UsageError(f"{shown}: {st.st_size:,} bytes; an ONNX file may be at most {MAX_ONNX_BYTES:,} (2 GiB)")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_ONNX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{shown}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_ONNX_BYTES:
        raise UsageError(f"{shown}: more than {MAX_ONNX_BYTES:,} bytes (2 GiB), the most an ONNX file may have")
    try:
        model = onnx.ModelProto.FromString(raw)
    except Exception as exc:  # noqa: BLE001 - a damaged or non-ONNX file (protobuf's DecodeError, …)
        raise UsageError(f"{shown}: not a readable ONNX file: {printable(exc, 200)}") from None
    return model


def _graphs(g: Any) -> Any:
    """The graph and every subgraph in it (If / Loop / Scan bodies), depth first."""
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    yield from _graphs(sub)


def _tensors(model: Any, path: str) -> dict[str, Any]:
    """Every initializer of the graph and its subgraphs as a numpy array (its values when it has at most
    _SMALL elements, else a zero-stride stand-in with its shape and dtype), after checking that its data
    fills its dims; external data is checked (inside the model's directory, long enough), never read."""
    base = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    readers: dict[str, str] = {}
    for g in _graphs(model.graph):
        for n in g.node:
            for i in n.input:
                readers.setdefault(i, _node_name(n))
    out: dict[str, Any] = {}
    for g in _graphs(model.graph):
        for t in g.initializer:
            out[t.name] = _tensor(t, base, printable(path, _TEXT_LIMIT), readers)
    return out


def _tensor(t: Any, base: str, shown: str, readers: dict[str, str]) -> Any:
    name = printable(t.name, _TEXT_LIMIT)
    where = f"{shown}: initializer {name!r}" + (f" (read by {readers[t.name]})" if t.name in readers else "")
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims) or len(dims) > 32:
        raise UsageError(f"{where}: dims {dims[:8]} are not a tensor shape")
    numel = math.prod(dims)
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
    except Exception:  # noqa: BLE001 - an unknown or undefined element type
        raise UsageError(f"{where}: element type {t.data_type} is not one ONNX defines") from None
    packed = t.data_type in _PACKED_4BIT
    nbytes = (numel + 1) // 2 if packed else numel * dtype.itemsize
    if t.data_location == onnx.TensorProto.EXTERNAL:
        _check_external(t, base, where, nbytes)
        return np.broadcast_to(np.zeros((), dtype), dims)
    if t.HasField("raw_data"):
        if dtype.kind in "OSU" or len(t.raw_data) != nbytes:
            raise UsageError(f"{where}: dims {dims} need {nbytes:,} bytes of data, it holds {len(t.raw_data):,}")
        if numel > _SMALL:
            return np.broadcast_to(np.zeros((), dtype), dims)
    try:
        return numpy_helper.to_array(t)
    except Exception as exc:  # noqa: BLE001 - dims without data, data of another length, …
        raise UsageError(f"{where}: dims {dims} and its data disagree: {printable(exc, 200)}") from None


_PACKED_4BIT = frozenset(
    getattr(onnx.TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(onnx.TensorProto, n)
)


def _check_external(t: Any, base: str, where: str, nbytes: int) -> None:
    """External data: a regular file inside the model's directory holding ``nbytes`` at its offset."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    try:
        offset = int(info.get("offset", "0") or 0)
        length = int(info["length"]) if info.get("length") else nbytes
    except ValueError:
        raise UsageError(f"{where}: external data offset / length are not integers") from None
    try:
        target = os.path.realpath(os.path.join(base, location))
        inside = bool(location) and not os.path.isabs(location) and os.path.commonpath([base, target]) == base
    except ValueError:  # a NUL in the name
        inside = False
    if not inside:
        raise UsageError(
            f"{where}: external data {printable(location, _TEXT_LIMIT)!r} is not a file inside the model's directory"
        )
    try:
        st = os.stat(target)
    except OSError:
        raise UsageError(f"{where}: external data file {printable(location, _TEXT_LIMIT)!r} is missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{where}: external data {printable(location, _TEXT_LIMIT)!r} is not a regular file")
    if offset < 0 or length != nbytes or offset + length > st.st_size:
        raise UsageError(
            f"{where}: external data {printable(location, _TEXT_LIMIT)!r} holds {max(st.st_size - offset, 0):,} "
            f"bytes from offset {offset:,}; the tensor's dims need {nbytes:,}"
        )


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


@dataclass
class OnnxGraph:
    """What :func:`read` found: the nodes, the output tensor, the input (C, H, W) and batch, the source
    figures, notes and problems (ops the nodes do not carry: subgraphs)."""

    nodes: list[Node]
    output: int
    input: tuple[int, int, int]
    batch: int
    source: dict[str, Any]
    notes: list[str]
    problems: list[Problem]


def read(path: str) -> OnnxGraph:
    """The graph of the ONNX file at ``path`` (see :class:`OnnxGraph`).

    params = Σ over nodes of the floating-point initializer elements each reads (an initializer shared by
    several nodes counts once per use, as the layers that read it do), plus those the ops inside subgraphs
    read; MACs = Σ Conv N·Cout·Ho·Wo·(Cin/g)·kh·kw + Σ Gemm / MatMul N·in·out, plus the subgraphs' (If: the
    larger branch; Loop: × its trip count when it is a constant; Scan: × its sequence length). A Loop's carried
    value whose shape ONNX's inference leaves unknown takes the static shape its initial value and the body's
    output both declare (:func:`_loop_carried`), so the graph after it is read on."""
    shown = printable(path, _TEXT_LIMIT)
    model = _load(path)
    consts: dict[str, Any] = _tensors(model, path)
    try:
        model = shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - onnx's inference errors
        raise UsageError(f"{shown}: ONNX shape inference failed: {printable(exc, 300)}") from None
    g = model.graph
    inits = {t.name for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute:
            try:
                value = _constant(n)
            except Exception as exc:  # noqa: BLE001 - a damaged Constant
                raise UsageError(
                    f"{shown}: {_node_name(n)}: its value is not readable: {printable(exc, 200)}"
                ) from None
            if value is not None and n.output:
                consts[n.output[0]] = value
        elif n.op_type == "Identity" and n.input and n.output and n.input[0] in consts:  # a shared initializer
            consts[n.output[0]] = consts[n.input[0]]
    shapes = _shapes(g)
    carried = [
        (out, shape)
        for n in g.node
        if n.op_type == "Loop" and n.output and n.output[0] not in shapes
        for out, shape in [(n.output[0], _loop_carried(n, _subgraphs(n), shapes))]
        if shape is not None
    ]
    if carried:  # ONNX's inference leaves a Loop's carried value unknown: say it, and infer what follows again
        from onnx import helper

        declared = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.input, *g.output]}
        for out, dims in carried:
            start = next(n.input[2] for n in g.node if n.op_type == "Loop" and n.output and n.output[0] == out)
            elem = declared.get(start) or onnx.TensorProto.FLOAT
            g.value_info.append(helper.make_tensor_value_info(out, elem, list(dims)))
        try:
            model = shape_inference.infer_shapes(model)
        except Exception as exc:  # noqa: BLE001 - onnx's inference errors
            raise UsageError(f"{shown}: ONNX shape inference failed: {printable(exc, 300)}") from None
        g = model.graph
        shapes = _shapes(g)
    data_inputs = [i for i in g.input if i.name not in inits]
    if len(data_inputs) != 1:
        raise UsageError(f"{shown}: the graph has {len(data_inputs)} data inputs; costmodel imports one image input")
    x = data_inputs[0]
    xs = shapes.get(x.name)
    if xs is None or len(xs) != 4 or min(xs) < 1:
        raise UsageError(
            f"{shown}: the input {printable(x.name, _TEXT_LIMIT)!r} needs a static N×C×H×W shape (export with a "
            "fixed size)"
        )
    if max(xs[1:]) > MAX_INPUT_SIZE or xs[0] > 2**31 - 1:
        raise UsageError(
            f"{shown}: the input shape {xs}: channels, height and width may be at most {MAX_INPUT_SIZE:,} (as "
            "--input's), the batch at most 2**31 - 1"
        )
    ids: dict[str, int] = {x.name: 0}
    nodes: list[Node] = []
    problems: list[Problem] = []
    macs = 0
    folded_bias = 0
    sub_params = 0
    for n in g.node:
        op = n.op_type
        if op == "Constant" or not n.output:
            continue
        subgraphs = _subgraphs(n)
        inputs = list(n.input) + [i for sub in subgraphs.values() for i in _outer_names(sub)]
        data = [ids[i] for i in inputs if i in ids]
        weights = [i for i in n.input if i in consts]
        out_name = n.output[0]
        name = printable(op, 60)
        if subgraphs:  # If / Loop / Scan: what they hold is named and counted as not covered
            held, sub_macs, sub_p = _held(n, subgraphs, shapes, consts)
            macs += sub_macs
            sub_params += sub_p
            name = _node_name(n)
            problems.append(
                Problem(
                    name,
                    _scope(n),
                    f"control flow holding {held}: costmodel counts no op inside a subgraph (not covered: "
                    f"{sub_macs:,} MACs, {sub_p:,} params)",
                )
            )
        if not data:
            continue
        if op in _ALIASES:
            ids[out_name] = data[0]
            continue
        where = f"{shown}: {_node_name(n)}"
        in_shape = shapes.get(n.input[0], ()) if n.input else ()
        shape = shapes.get(out_name)
        if shape is None:
            raise UsageError(f"{where}: no inferred shape for its output {printable(out_name, _TEXT_LIMIT)!r}")
        params = sum(int(consts[w].size) for w in weights if consts[w].dtype.kind == "f" and consts[w].ndim >= 1)
        a = _attrs(n)
        attrs: dict[str, Any] = {}
        kind = "other"
        if subgraphs:
            kind = "other"  # named above; the spec cannot say it
        elif op == "Conv" and len(in_shape) == 4:
            attrs, conv_macs = _conv(n, a, consts, in_shape, shape, where)
            if attrs["bias"]:
                folded_bias += int(shape[1])
            kind = "conv"
            macs += conv_macs
        elif op == "Conv":
            raise UsageError(f"{where}: reads a {len(in_shape)}-d tensor; costmodel counts 2-d convolutions")
        elif op == "BatchNormalization":
            kind, attrs = "norm", {"name": "batchnorm", "affine": True}
        elif op in _ACTS or op in _ACTS_OTHER:
            kind, attrs = "act", {"name": _ACTS[op] if op in _ACTS else _ACTS_OTHER[op]}
            if op == "Gelu" and a.get("approximate", "none") not in ("none", b"none"):
                attrs["name"] = "gelu_tanh"  # not the spec's gelu (the erf form)
        elif op == "Clip":
            lo = _bound(n, 1, "min", a, consts, where)
            hi = _bound(n, 2, "max", a, consts, where)
            kind, attrs = "act", {"name": "relu6" if (lo, hi) == (0.0, 6.0) else "clip"}
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
        elif op in ("Gemm", "MatMul"):
            mm = _matmul_macs(n, a, consts, in_shape, shape, where)
            macs += mm
            if weights:
                kind = "linear"
                attrs = {"bias": op == "Gemm" and len(n.input) > 2 and n.input[2] != ""}
        tid = len(nodes) + 1
        nodes.append(Node(kind, tuple(dict.fromkeys(data)), tid, shape, in_shape, _scope(n), name, attrs, params))
        ids[out_name] = tid
    out = g.output[0].name if g.output else ""
    if out not in ids:
        raise UsageError(f"{shown}: the graph's output {printable(out, _TEXT_LIMIT)!r} does not depend on its input")
    unique = sum(int(consts[k].size) for k in inits if consts[k].dtype.kind == "f" and consts[k].ndim >= 1)
    weight_params = sum(n.params for n in nodes)
    out_shape = shapes.get(out, ())
    source = {"params": weight_params + sub_params, "macs": macs, "output": tuple(out_shape[1:])}
    notes = []
    if unique != weight_params and not sub_params:
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
    if xs[0] != 1:
        notes.append(f"the graph's batch dimension is {xs[0]}: the spec says batch: {xs[0]}")
    return OnnxGraph(nodes, ids[out], (int(xs[1]), int(xs[2]), int(xs[3])), int(xs[0]), source, notes, problems)


def _constant(n: Any) -> Any | None:
    """A Constant node's value (its ``value`` tensor, or a ``value_float(s)`` / ``value_int(s)``)."""
    a = n.attribute[0]
    if a.type == onnx.AttributeProto.TENSOR:
        t = a.t
        if t.HasField("raw_data") and len(t.raw_data) > _SMALL * 8:
            dims = [int(d) for d in t.dims]
            return np.broadcast_to(np.zeros((), onnx.helper.tensor_dtype_to_np_dtype(t.data_type)), dims)
        value = numpy_helper.to_array(t)
    else:
        value = np.asarray(onnx.helper.get_attribute_value(a))
    return value if value.dtype.kind in "biuf" else None  # a string or sparse constant: no weight, no bound


def _conv(
    n: Any, a: dict[str, Any], consts: dict[str, Any], in_shape: tuple[int, ...], shape: tuple[int, ...], where: str
) -> tuple[dict[str, Any], int]:
    """A Conv node's attributes and MACs, after checking they agree with its weight and shapes."""
    w = consts.get(n.input[1]) if len(n.input) > 1 else None
    if w is None:
        raise UsageError(f"{where}: has no weight initializer")
    group = a.get("group", 1)
    cin = int(in_shape[1])
    if w.ndim != 4:
        raise UsageError(f"{where}: its weight has shape {tuple(w.shape)}; a 2-d conv's is 4-d (Cout, Cin/g, kh, kw)")
    if not isinstance(group, int) or group < 1 or cin % group or w.shape[0] % group or w.shape[1] * group != cin:
        raise UsageError(
            f"{where}: group {group!r} does not fit its {cin} input channels and weight {tuple(w.shape)} "
            "(groups must be ≥ 1 and divide both, weight (Cout, Cin/group, kh, kw))"
        )
    if len(shape) != 4 or shape[1] != w.shape[0] or min(w.shape) < 1:
        raise UsageError(f"{where}: output {shape} does not match its weight {tuple(w.shape)}")
    kh, kw = int(w.shape[2]), int(w.shape[3])
    pads = list(a.get("pads", [0, 0, 0, 0]))
    strides = list(a.get("strides", [1, 1]))
    dil = list(a.get("dilations", [1, 1]))
    ints = all(isinstance(v, int) for v in pads + strides + dil)
    if not ints or len(pads) != 4 or len(strides) != 2 or len(dil) != 2 or min(strides + dil) < 1 or min(pads) < 0:
        raise UsageError(f"{where}: pads {pads}, strides {strides}, dilations {dil} are not a 2-d conv's")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UsageError(f"{where}: auto_pad is not supported; export with explicit pads")
    bias = len(n.input) > 2 and n.input[2] != ""
    attrs = {
        "kernel": kh if kh == kw else (kh, kw),
        "stride": strides[0] if len(set(strides)) == 1 else tuple(strides),
        "padding": pads[0] if len(set(pads)) == 1 else tuple(pads),
        "dilation": dil[0] if len(set(dil)) == 1 else tuple(dil),
        "groups": group,
        "bias": bias,
        "in_channels": cin,
    }
    return attrs, math.prod(shape) * (cin // group) * kh * kw


def _bound(n: Any, index: int, attr: str, a: dict[str, Any], consts: dict[str, Any], where: str) -> float | None:
    """A Clip bound: a scalar (an input or, before opset 11, an attribute), or None when absent."""
    if len(n.input) > index and n.input[index]:
        if n.input[index] not in consts:
            return None  # computed at run time: not a fixed clip
        v = consts[n.input[index]]
    elif attr in a:
        v = np.asarray(a[attr])
    else:
        return None
    if v.size != 1:
        raise UsageError(f"{where}: its {attr} bound has shape {tuple(v.shape)}; Clip's bounds are scalars")
    return float(v.reshape(()))


def _matmul_macs(
    n: Any, a: dict[str, Any], consts: dict[str, Any], in_shape: tuple[int, ...], shape: tuple[int, ...], where: str
) -> int:
    """N·in·out of a Gemm / MatMul, after checking its operands: a 2-d weight whose rows are the input's
    features (Gemm: columns with transB)."""
    if len(n.input) < 2 or not in_shape or not shape:
        raise UsageError(f"{where}: needs two inputs with known shapes")
    w = consts.get(n.input[1])
    k = int(in_shape[-1])
    if n.op_type == "Gemm" and a.get("transA", 0):
        raise UsageError(f"{where}: transA is not supported; export the input untransposed")
    if w is not None:
        rows = int(w.shape[1 if a.get("transB", 0) else 0]) if w.ndim == 2 else -1
        if w.ndim != 2 or rows != k:
            raise UsageError(
                f"{where}: its weight has shape {tuple(w.shape)}; a linear layer's is 2-d with {k} "
                f"{'columns' if a.get('transB', 0) else 'rows'} (the input's features)"
            )
    return math.prod(shape) * k


def _subgraphs(n: Any) -> dict[str, Any]:
    """A node's subgraph attributes (If's then_branch / else_branch, Loop's and Scan's body), by name."""
    out: dict[str, Any] = {}
    for a in n.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            out[a.name] = a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            for i, sub in enumerate(a.graphs):
                out[f"{a.name}[{i}]"] = sub
    return out


def _outer_names(g: Any) -> list[str]:
    """The tensors a subgraph (and the ones inside it) reads from the graphs around it."""
    inner = {i.name for i in g.input} | {t.name for t in g.initializer}
    out: list[str] = []
    for n in g.node:
        inner.update(n.output)
    for n in g.node:
        out += [i for i in n.input if i and i not in inner]
        for sub in _subgraphs(n).values():
            out += [i for i in _outer_names(sub) if i not in inner]
    return list(dict.fromkeys(out))


def _held(
    n: Any, subgraphs: dict[str, Any], shapes: dict[str, tuple[int, ...]], consts: dict[str, Any]
) -> tuple[str, int, int]:
    """What a control-flow node's subgraphs hold (``then_branch: 3 nodes (Conv, Relu ×2)``), their MACs (If:
    the larger branch; Loop: × a constant trip count; Scan: × the first scan input's length along its scan
    axis, from its inferred shape or its initializer) and the
    floating-point weight elements their ops read."""
    parts: list[str] = []
    per: list[int] = []
    params = 0
    for key, sub in subgraphs.items():
        ops: Counter[str] = Counter()
        sub_macs = 0
        for inner in _graphs(sub):
            for m in inner.node:
                ops[printable(m.op_type, 40)] += 1
                params += sum(
                    int(consts[i].size)
                    for i in m.input
                    if i in consts and consts[i].dtype.kind == "f" and consts[i].ndim >= 1
                )
                out = shapes.get(m.output[0]) if m.output else None
                src = shapes.get(m.input[0]) if m.input else None
                w = consts.get(m.input[1]) if len(m.input) > 1 else None
                if out and src and w is not None and m.op_type == "Conv" and w.ndim == 4:
                    sub_macs += math.prod(out) * int(w.shape[1]) * int(w.shape[2]) * int(w.shape[3])
                elif out and src and m.op_type in ("Gemm", "MatMul"):
                    sub_macs += math.prod(out) * int(src[-1])
        total = sum(ops.values())
        listed = ", ".join(f"{o} ×{c}" if c > 1 else o for o, c in ops.most_common(8))
        more = ", …" if len(ops) > 8 else ""
        parts.append(f"{key}: {total} node{'s' if total != 1 else ''} ({listed}{more})" if total else f"{key}: empty")
        per.append(sub_macs)
    times = 1
    if n.op_type == "Loop" and n.input and n.input[0] in consts and consts[n.input[0]].size == 1:
        times = max(int(consts[n.input[0]].reshape(())), 0)
    elif n.op_type == "Scan" and len(n.input) > 0:
        a = {x.name: x for x in n.attribute}
        m = int(a["num_scan_inputs"].i) if "num_scan_inputs" in a else 1
        first = n.input[-m] if 0 < m <= len(n.input) else n.input[-1]
        seq = shapes.get(first) or (tuple(int(d) for d in consts[first].shape) if first in consts else None)
        axis = int(a["scan_input_axes"].ints[0]) if "scan_input_axes" in a and a["scan_input_axes"].ints else 0
        if seq and -len(seq) <= axis < len(seq):
            times = int(seq[axis])
    macs = (max(per) if n.op_type == "If" else sum(per)) * times if per else 0
    return "; ".join(parts), macs, params


def _shapes(g: Any) -> dict[str, tuple[int, ...]]:
    """Every static tensor shape the graph and its subgraphs declare or ONNX inferred, by tensor name."""
    shapes: dict[str, tuple[int, ...]] = {}
    for sub in _graphs(g):
        for vi in [*sub.value_info, *sub.input, *sub.output]:
            d = _dims(vi)
            if d is not None:
                shapes.setdefault(vi.name, d)
    return shapes


def _loop_carried(n: Any, subgraphs: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    """The shape of a Loop's first output, a loop-carried value, where ONNX's inference leaves it unknown: the
    shape its initial value (the Loop's third input) and the body's matching output (after ``cond``) both
    declare, when they are the same static shape; else None (the import is refused naming the node)."""
    body = subgraphs.get("body")
    if body is None or len(n.input) < 3 or len(body.output) < 2:
        return None
    start, end = shapes.get(n.input[2]), shapes.get(body.output[1].name)
    return start if start is not None and start == end else None


def _axes(n: Any, a: dict[str, Any], consts: dict[str, Any]) -> list[int]:
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(n.input) > 1 and n.input[1] in consts:
        return [int(v) for v in consts[n.input[1]].reshape(-1)]
    return []


def from_onnx(path: str, *, symbolic_resolution: bool = False) -> Any:
    """The spec of the ONNX graph at ``path``, its ImportReport attached. See ``costmodel.from_onnx``."""
    from .core import build, report_of

    r = read(path)
    name = printable(os.path.basename(path).removesuffix(".onnx"), _TEXT_LIMIT)
    spec = build(
        r.nodes,
        r.output,
        r.input,
        printable(path, _TEXT_LIMIT),
        name,
        r.source,
        r.notes,
        symbolic_resolution,
        batch=r.batch,
    )
    report = report_of(spec)
    if report is not None:
        report.problems.extend(r.problems)
    return spec
