"""A spec as a full-integer int8 ``.tflite`` (``costmodel export SPEC --tflite FILE``).

The Keras model equivalent to the spec's rows (conv → BatchNormalization → activation, depthwise convs,
residual adds, SE, pools, the classifier; random weights and BatchNorm statistics), converted by TensorFlow's
TFLiteConverter to a full-integer int8 graph (int8 input and output, random calibration data): the graph
``costmodel deploy --runtime tflm`` plans, checked to the byte against TFLM (docs/deploy.md). Needs the
optional ``[deploy]`` extra (tensorflow-cpu); imported only when used.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from .errors import UsageError


def keras_model(report: Any) -> Any:
    """The Keras model whose TFLite graph is the one costmodel's deploy lowers (same ops, same shapes)."""
    import keras

    c, h, w = report.input
    x0 = keras.Input((h, w, c), batch_size=1)
    t: dict[int, Any] = {0: x0}
    rows = report.rows
    readers: dict[int, list[Any]] = {}
    for r in rows:
        for i in r.inputs:
            readers.setdefault(i, []).append(r)
    for r in rows:
        op = r.op
        cat = op.category
        ins = [t[i] for i in r.inputs]
        if cat == "conv":
            k, s, g = op.attrs["kernel"], op.attrs["stride"], op.attrs["groups"]
            if g == 1:
                layer = keras.layers.Conv2D(op.output[0], k, s, padding="same", use_bias=op.bias)
            elif g == op.input[0] == op.output[0]:
                layer = keras.layers.DepthwiseConv2D(k, s, padding="same", use_bias=op.bias)
            else:
                raise ValueError(f"grouped conv {op.detail}")
            y = layer(ins[0])
        elif cat == "norm":
            y = keras.layers.BatchNormalization()(ins[0])
        elif cat == "act":
            acts = {
                "relu": keras.layers.ReLU(),
                "relu6": keras.layers.ReLU(6.0),
                "hardswish": keras.layers.Activation("hard_swish"),
                "hardsigmoid": keras.layers.Activation("hard_sigmoid"),
                "sigmoid": keras.layers.Activation("sigmoid"),
                "silu": keras.layers.Activation("silu"),
            }
            y = acts[op.name](ins[0])
        elif cat == "add":
            y = keras.layers.Add()(ins)
        elif cat == "mul":
            y = keras.layers.Multiply()(ins)
        elif cat == "pool":
            if len(op.output) == 3 and op.output[1:] == (1, 1):
                keep = any(q.op.category != "linear" and q.op.category != "dropout" for q in readers.get(r.tensor, []))
                y = keras.layers.GlobalAveragePooling2D(keepdims=keep)(ins[0])
            else:
                raise ValueError(f"pool {op.detail}")
        elif cat == "dropout":
            y = ins[0]
        elif cat == "linear":
            y = keras.layers.Dense(op.output[0], use_bias=op.bias)(ins[0])
        else:
            raise ValueError(f"op {op.name}")
        t[r.tensor] = y
    model = keras.Model(x0, t[rows[-1].tensor])
    # random weights and statistics: zero-initialised biases would be identical buffers the converter may share
    import numpy as np

    rng = np.random.default_rng(1)
    for v in model.weights:
        data = rng.uniform(0.5, 1.5, v.shape) if "variance" in v.path else rng.standard_normal(v.shape) * 0.1
        v.assign(data.astype("float32"))
    return model


def to_tflite(model: Any, seed: int = 0) -> bytes:
    """Full-integer int8 conversion with random calibration data (int8 inputs and output)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shapes = [i.shape for i in model.inputs]

    def data() -> Any:
        for _ in range(4):
            yield [rng.standard_normal(shape).astype("float32") for shape in shapes]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = data
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out: bytes = conv.convert()
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """File descriptors 1 and 2 sent to /dev/null, sys.stdout / sys.stderr and warnings discarded, for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        sink = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def export_tflite(report: Any, path: str, seed: int = 0) -> int:
    """Write the int8 ``.tflite`` of an analysed spec to ``path``; returns its size in bytes. The op set is
    the one ``deploy --runtime tflm`` lowers: anything it refuses is refused here first, in one line."""
    from .analysis.deploy import lower

    lower(report, "tflm")  # refuse an op the int8 graph does not model, before TensorFlow is loaded
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines: the library never prints
    try:
        with _quiet():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    except ImportError:
        raise UsageError("export --tflite needs tensorflow: pip install 'costmodel[deploy]'") from None
    try:
        with _quiet():  # Keras prints the saved artifact, the converter its settings, to fds 1 and 2
            data = to_tflite(keras_model(report), seed)
    except ValueError as e:
        raise UsageError(f"export --tflite: {e}") from None
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise UsageError(f"export --tflite {path}: {e.strerror or e}") from None
    return len(data)


# ------------------------------------------------------------------------------ LiteRT (ai-edge-litert)


def op_model(op: Any) -> Any:
    """A Keras model of one op of the int8 graph (analysis/latency.Int8Op): its inputs of the op's shapes
    (batch 1, channels last), the op, its output. Converted by :func:`to_tflite`, it is that one TFLite op."""
    import keras

    def shape(s: tuple[int, ...]) -> tuple[int, ...]:
        return (s[1], s[2], s[0]) if len(s) == 3 else s

    ins = [keras.Input(shape(s), batch_size=1) for s in op.inputs]
    x = ins[0]
    kind = op.kind
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if kind == "CONV_2D":
            y = keras.layers.Conv2D(op.output[0], op.kernel, op.stride, padding="same")(x)
        else:
            y = keras.layers.DepthwiseConv2D(op.kernel, op.stride, padding="same")(x)
        if op.clamp:
            y = keras.layers.ReLU(6.0)(y)
    elif kind == "FULLY_CONNECTED":
        y = keras.layers.Dense(op.output[0])(x if len(op.inputs[0]) == 1 else keras.layers.Flatten()(x))
    elif kind == "MEAN":
        y = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    elif kind == "ADD":
        y = keras.layers.Add()(ins if len(ins) == 2 else [x, x])
    elif kind == "MUL":
        y = keras.layers.Multiply()(ins) if len(ins) == 2 else keras.layers.Lambda(lambda t: t * (1 / 6))(x)
    elif kind in ("HARD_SWISH", "LOGISTIC", "RELU", "RELU6"):
        act = {"HARD_SWISH": "hard_swish", "LOGISTIC": "sigmoid", "RELU": "relu", "RELU6": "relu6"}[kind]
        y = keras.layers.Activation(act)(x)
    else:
        raise ValueError(f"no one-op model for {kind}")
    return keras.Model(ins, y)


def litert_version() -> str:
    """The installed ai-edge-litert's version; refused in one line without it."""
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:
        raise UsageError("--runtime litert needs ai-edge-litert: pip install 'costmodel[deploy]'") from None


def litert_timer(model: bytes, threads: int) -> Any:
    """A zero-argument callable that runs ``model`` once on LiteRT's interpreter (its default op resolver:
    XNNPACK's int8 kernels) at ``threads`` threads, its inputs random int8 set once."""
    import numpy as np

    with _quiet():  # the interpreter says on fd 2 that it created the XNNPACK delegate
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_content=model, num_threads=threads)
        interp.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], rng.integers(-128, 128, d["shape"], dtype=np.int8))
    return interp.invoke


def convert(model: Any, seed: int = 0) -> bytes:
    """:func:`to_tflite` with TensorFlow's output silenced; an op the converter refuses is a UsageError."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet():
            import tensorflow  # noqa: F401
    except ImportError:
        raise UsageError("--runtime litert needs tensorflow: pip install 'costmodel[deploy]'") from None
    try:
        with _quiet():
            return to_tflite(model, seed)
    except ValueError as e:
        raise UsageError(f"int8 conversion: {e}") from None


def spec_tflite(report: Any, seed: int = 0) -> bytes:
    """The int8 .tflite of an analysed spec (what ``export --tflite`` writes), in memory."""
    from .analysis.deploy import lower

    lower(report, "tflm")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet():
        try:
            import keras  # noqa: F401
        except ImportError:
            raise UsageError("--runtime litert needs tensorflow: pip install 'costmodel[deploy]'") from None
        model = keras_model(report)
    return convert(model, seed)


def tflite_ops(model: bytes) -> list[str]:
    """The builtin op names of a .tflite's first subgraph, in order."""
    from tensorflow.lite.python import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    codes = {v: k for k, v in fb.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    out = []
    for i in range(g.OperatorsLength()):
        oc = m.OperatorCodes(g.Operators(i).OpcodeIndex())
        out.append(codes.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?"))
    return out


# ------------------------------------------------------------------------- onnxruntime (QDQ int8 ONNX)


def qdq_onnx(spec: Any, path: str, seed: int = 0) -> None:
    """Write the spec's network as a QDQ int8 ONNX graph for onnxruntime: torchref's module with seeded random
    weights and BatchNorm statistics (so that no two tensors are equal: the exporter would share identical
    ones), exported by torch (TorchScript exporter, opset 17, BatchNorm folded into the convs), quantized by
    ``onnxruntime.quantization.quantize_static`` (QDQ format, int8 weights per tensor and int8 activations,
    random calibration data). Needs torch, onnx and onnxruntime."""
    import tempfile

    try:
        import numpy as np
        import torch
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise UsageError(
            "--runtime onnxruntime needs torch, onnx and onnxruntime: pip install 'costmodel[deploy]'"
        ) from None
    from .torchref import build

    model, shape = build(spec)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
    rng = np.random.default_rng(seed)

    class Data(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.left = 4

        def get_next(self) -> dict[str, Any] | None:
            self.left -= 1
            return {"input": rng.standard_normal(shape).astype("float32")} if self.left >= 0 else None

    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "float.onnx")
        model.eval()
        with _quiet(), torch.no_grad():
            torch.onnx.export(model, (torch.zeros(*shape),), plain, dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["output"])  # fmt: skip
            quantize_static(plain, path, Data(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, per_channel=False)  # fmt: skip


def initializer_bytes(path: str) -> int:
    """The bytes of an ONNX file's initializers (their values, as stored)."""
    import onnx
    from onnx import numpy_helper

    return sum(int(numpy_helper.to_array(i).nbytes) for i in onnx.load(path).graph.initializer)
