"""costmodel deploy --runtime tflm against TensorFlow Lite for Microcontrollers itself.

For each spec: build the equivalent Keras model from costmodel's rows (conv → BatchNormalization → activation,
depthwise convs, residual adds, SE, pools, the classifier), convert it to a full-integer int8 .tflite with
TensorFlow's TFLiteConverter (random calibration data, int8 input and output), load it in TFLM's Python
interpreter (tflite_micro.runtime.Interpreter) and read what it allocated; read the constant buffers of the
.tflite; compare with costmodel's planned arena and Flash.

Needs the [deploy] extra (tflite-micro, tensorflow-cpu):

    PYTHONPATH=$PWD /work/deploy-venv/bin/python benchmarks/deploy_validation.py
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Any

from costmodel.tflite import keras_model, to_tflite  # noqa: F401  (moved into the package; tests import them here)

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("three-layer net (docs/deploy.md)", "tests/deploy_fixtures/three_layer.yaml", {}),
    ("MCUNet TinyNAS space, sample 0", "specs/spaces/mcunet_tinynas.yaml", {"sample": 0}),
    ("MCUNet TinyNAS space, sample 1", "specs/spaces/mcunet_tinynas.yaml", {"sample": 1}),
    ("ProxylessNAS space, sample 0", "specs/spaces/proxylessnas.yaml", {"sample": 0}),
    ("MobileNetV2 ×0.35 at 96", "specs/networks/mobilenet_v2.yaml", {"resolution": (96, 96), "width_mult": 0.35}),
    ("MobileNetV2 ×0.35 at 144", "specs/networks/mobilenet_v2.yaml", {"resolution": (144, 144), "width_mult": 0.35}),
    ("EfficientNet-lite0 at 128", "specs/timm/efficientnet_lite0.yaml", {"resolution": (128, 128)}),
    ("SPNASNet-100 (ProxylessNAS-like) at 96", "specs/timm/spnasnet_100.yaml", {"resolution": (96, 96)}),
    ("MnasNet-small at 96", "specs/timm/mnasnet_small.yaml", {"resolution": (96, 96)}),
    ("MobileNetV3-small minimal at 96", "specs/timm/tf_mobilenetv3_small_minimal_100.yaml", {"resolution": (96, 96)}),
    ("MobileNetV3-small at 96", "specs/networks/mobilenet_v3_small.yaml", {"resolution": (96, 96)}),
    ("OFA MobileNetV3 space, sample 0", "specs/spaces/ofa_mobilenetv3.yaml", {"sample": 0}),
    ("MobileNetV2 ×0.5 at 112", "specs/networks/mobilenet_v2.yaml", {"resolution": (112, 112), "width_mult": 0.5}),
    ("MnasNet 0.5 at 96", "specs/networks/mnasnet0_5.yaml", {"resolution": (96, 96)}),
]


ORT_EXTRA: list[tuple[str, str, dict[str, Any]]] = [
    ("EfficientNet-B0 at 64 (SiLU)", "specs/networks/efficientnet_b0.yaml", {"resolution": (64, 64)}),
]


def tflite_facts(model: bytes) -> dict[str, Any]:
    """The ops of the .tflite and the bytes of its constant buffers (what a runtime keeps in Flash)."""
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    codes = {v: k for k, v in fb.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = m.OperatorCodes(op.OpcodeIndex())
        ops.append(codes.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?"))
    const = 0
    seen: set[int] = set()
    shared = 0
    for i in range(g.TensorsLength()):
        tensor = g.Tensors(i)
        buf = m.Buffers(tensor.Buffer())
        if buf is not None and (buf.DataLength() or buf.Size()):
            if tensor.Buffer() in seen:
                shared += 1
                continue
            seen.add(tensor.Buffer())
            const += buf.DataLength() or buf.Size()
    return {"ops": ops, "const_bytes": const, "tensors": g.TensorsLength(), "shared_buffers": shared}


def tflm_allocations(model: bytes) -> dict[str, int]:
    """TFLM's RecordingMicroAllocator figures, read from print_allocations (which writes to fd 1 or 2)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=16 * 1024 * 1024)
    with tempfile.TemporaryFile(mode="w+b") as f:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        f.seek(0)
        text = f.read().decode(errors="replace")
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.search(r"\[RecordingMicroAllocator\] Arena allocation (total|head|tail) (\d+) bytes", line)
        if m:
            out[m.group(1)] = int(m.group(2))
        m = re.search(r"'([^']+)' used (\d+) bytes", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    out["_text"] = text  # type: ignore[assignment]
    return out


def litert_arena(model: bytes) -> dict[str, Any]:
    """LiteRT's arena as its interpreter exposes it: the model loaded with its built-in kernels only (no
    default delegate; with XNNPACK the intermediate tensors are the delegate's and hold no LiteRT buffer), every
    non-constant tensor's buffer address (tensor(i)() is a view on it, temporaries included) relative to the
    lowest: the arena's extent (highest end) and the set of (offset, bytes)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.python import schema_py_generated as fb

    from costmodel.tflite import _quiet

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    const = set()
    for i in range(g.TensorsLength()):
        buf = m.Buffers(g.Tensors(i).Buffer())
        if buf is not None and (buf.DataLength() or buf.Size()):
            const.add(i)
    with _quiet():
        interp = Interpreter(
            model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        interp.allocate_tensors()
    where = {}
    for d in interp.get_tensor_details():
        if d["index"] in const:
            continue
        view = interp.tensor(d["index"])()
        where[d["index"]] = (view.__array_interface__["data"][0], view.nbytes)
    base = min(a for a, _ in where.values())
    layout = {(a - base, n) for a, n in where.values()}
    return {"arena": max(o + n for o, n in layout), "layout": layout, "tensors": len(where)}


def measure_litert(path: str, **shape: Any) -> dict[str, Any]:
    """costmodel's litert figures and LiteRT's observed arena for one spec."""
    import costmodel

    if "sample" in shape:
        space = costmodel.space(path)
        spec: Any = space.spec.concrete(space.sample(1, seed=shape["sample"])[0])
    else:
        spec = costmodel.configure(path, **shape) if shape else path
    report = costmodel.analyze(spec)
    d = costmodel.deploy(report, "litert")
    model = to_tflite(keras_model(report))
    seen = litert_arena(model)
    flash = d.flash()
    return {
        "costmodel_arena": d.peak_bytes,
        "litert_arena": seen["arena"],
        "costmodel_layout": {(b.offset, b.size) for b in d.buffers},
        "litert_layout": seen["layout"],
        "costmodel_weights_biases": flash["weight_bytes"] + flash["bias_bytes"] + flash["const_bytes"],
        "tflite_const_bytes": tflite_facts(model)["const_bytes"],
    }


def measure_onnxruntime(path: str, **shape: Any) -> dict[str, Any]:
    """costmodel's onnxruntime Flash and the initializer bytes of the QDQ int8 ONNX graph (tflite.qdq_onnx),
    checked to load and run on onnxruntime."""
    import numpy as np
    import onnxruntime

    import costmodel
    from costmodel.tflite import initializer_bytes, qdq_onnx

    if "sample" in shape:
        space = costmodel.space(path)
        spec: Any = space.spec.concrete(space.sample(1, seed=shape["sample"])[0])
    else:
        spec = costmodel.configure(path, **shape)
    report = costmodel.analyze(spec)
    d = costmodel.deploy(report, "onnxruntime")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "q.onnx")
        qdq_onnx(spec, out)
        got = initializer_bytes(out)
        sess = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
        sess.run(None, {"input": np.zeros((1, *report.input), "float32")})
    return {"costmodel_flash": d.flash()["flash_bytes"], "initializer_bytes": got}


def measure(path: str, **shape: Any) -> dict[str, Any]:
    """costmodel's tflm figures and TFLM's for one spec."""
    import costmodel

    if "sample" in shape:  # a sub-network of a search space, drawn uniformly (costmodel space --sample)
        space = costmodel.space(path)
        spec: Any = space.spec.concrete(space.sample(1, seed=shape["sample"])[0])
    else:
        spec = costmodel.configure(path, **shape) if shape else path
    report = costmodel.analyze(spec)
    d = costmodel.deploy(report, "tflm")
    model = to_tflite(keras_model(report))
    facts = tflite_facts(model)
    alloc = tflm_allocations(model)
    flash = d.flash()
    return {
        "costmodel_arena": d.peak_bytes,
        "tflm_head": alloc.get("head"),
        "tflm_tail": alloc.get("tail"),
        "tflm_total": alloc.get("total"),
        "costmodel_weights_biases": flash["weight_bytes"] + flash["bias_bytes"] + flash["const_bytes"],
        "tflite_const_bytes": facts["const_bytes"],
        "costmodel_ops": [s.label.split(" ")[-1] for s in d.steps],
        "tflite_ops": facts["ops"],
        "alloc": alloc,
        "tflite": model,
    }


def main() -> None:
    only = sys.argv[1:]
    if only[:1] == ["--litert"]:
        return main_litert(only[1:])
    if only[:1] == ["--onnxruntime"]:
        for title, path, shape in CASES + ORT_EXTRA:
            if only[1:] and not any(o in title for o in only[1:]):
                continue
            r = measure_onnxruntime(path, **shape)
            print(f"RESULT {title}: Flash costmodel {r['costmodel_flash']:,} / QDQ initializers "
                  f"{r['initializer_bytes']:,}", flush=True)  # fmt: skip
        return None
    for title, path, shape in CASES:
        if only and not any(o in title for o in only):
            continue
        try:
            r = measure(path, **shape)
        except Exception as exc:  # report and go on: one unsupported op must not hide the other cases
            print(f"RESULT {title}: not measured: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        if r["costmodel_ops"] != r["tflite_ops"]:
            print(f"RESULT   ops differ: costmodel {r['costmodel_ops']}\n  tflite {r['tflite_ops']}")
        print(
            f"RESULT {title}: arena costmodel {r['costmodel_arena']:,} / TFLM head {r['tflm_head']:,} "
            f"(tail {r['tflm_tail']:,}, total {r['tflm_total']:,}); Flash costmodel {r['costmodel_weights_biases']:,}"
            f" / .tflite constants {r['tflite_const_bytes']:,}",
            flush=True,
        )


def main_litert(only: list[str]) -> None:
    """``--litert``: costmodel deploy --runtime litert against LiteRT's observed arena and the .tflite."""
    for title, path, shape in CASES:
        if only and not any(o in title for o in only):
            continue
        r = measure_litert(path, **shape)
        same = "same" if r["costmodel_layout"] == r["litert_layout"] else "DIFFERENT"
        print(
            f"RESULT {title}: arena costmodel {r['costmodel_arena']:,} / LiteRT {r['litert_arena']:,} (layout {same});"
            f" Flash costmodel {r['costmodel_weights_biases']:,} / .tflite constants {r['tflite_const_bytes']:,}",
            flush=True,
        )


if __name__ == "__main__":
    main()


def plan_from_tflite(model: bytes) -> tuple[int, list[Any]]:
    """costmodel's TFLM planner run on the .tflite's own graph (its tensors, op order and sizes): tells a
    planner difference from a difference in the graph costmodel lowers."""
    from tensorflow.lite.python import schema_py_generated as fb

    from costmodel.analysis.deploy import ALIGN, Buffer

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    sizes = {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        buf = m.Buffers(t.Buffer())
        if buf is not None and (buf.DataLength() or buf.Size()):
            continue
        n = 1
        for k in range(t.ShapeLength()):
            n *= t.Shape(k)
        width = {9: 1, 2: 4, 0: 4, 7: 2, 3: 1, 4: 8}[t.Type()]
        sizes[i] = n * width
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k in range(g.InputsLength()):
        first[g.Inputs(k)] = last[g.Inputs(k)] = 0
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        for k in range(op.OutputsLength()):
            first.setdefault(op.Outputs(k), i + 1)
        for k in range(op.InputsLength()):
            if op.Inputs(k) in sizes:
                last[op.Inputs(k)] = i + 1
        for k in range(op.OutputsLength()):
            last[op.Outputs(k)] = i + 1
    for k in range(g.OutputsLength()):
        last[g.Outputs(k)] = g.OperatorsLength()
    buffers = [Buffer(str(i), -(-sizes[i] // ALIGN) * ALIGN, first[i], last[i]) for i in sorted(sizes) if i in first]
    from costmodel.analysis.deploy import place

    place(buffers)
    return max(b.offset + b.size for b in buffers), buffers
