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
    """Full-integer int8 conversion with random calibration data (int8 input and output)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shape = model.inputs[0].shape

    def data() -> Any:
        for _ in range(4):
            yield [rng.standard_normal(shape).astype("float32")]

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
