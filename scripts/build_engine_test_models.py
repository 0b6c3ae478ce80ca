"""Build the small .tflite models the numpy engine's parity tests run against LiteRT.

Each architecture is converted in every quantization mode the engine supports:

* ``float32``  - convert only
* ``w8``       - dynamic-range int8 weights (hybrid kernels)
* ``w8_a8``    - full int8, float I/O (QUANTIZE/DEQUANTIZE at the edges)
* ``w8_a8_io`` - full int8 with int8 input/output tensors
* ``w8_a16``   - 16x8: int16 activations, int8 weights

Weights are seeded, calibration uses real REFIT House 2 (30 s) windows, so the files
are regenerated bit-for-bit by running this script again (same TensorFlow version).
Output: ``tests/engine/models/<model>_<mode>.tflite`` plus ``manifest.json``.

Run: ``TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python scripts/build_engine_test_models.py``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.ha_dev.refit import DATA_DIR, read_refit_csv, refit_30s_file  # noqa: E402

OUT_DIR = ROOT / "tests" / "engine" / "models"
MODES = ("float32", "w8", "w8_a8", "w8_a8_io", "w8_a16")
# Calibration month: House 2, outside the 2013-10 .. 2014-02 zero block.
CALIBRATION_FILE = refit_30s_file(DATA_DIR, 2, "2014-03")
INPUT_MEAN_W = 400.0
INPUT_STD_W = 700.0


def real_windows(length: int, count: int, seed: int) -> np.ndarray:
    """Normalised aggregate windows from REFIT House 2 that hold no zero (gap) samples."""
    agg = read_refit_csv(CALIBRATION_FILE, columns=("Aggregate",))["Aggregate"].astype(np.float32)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < count:
        start = int(rng.integers(0, agg.size - length))
        win = agg[start : start + length]
        if np.all(win > 0):
            out.append((win - INPUT_MEAN_W) / INPUT_STD_W)
    return np.stack(out).astype(np.float32)


def seed_all(seed: int) -> None:
    """Fresh Keras session (layer names feed the file bytes) and seeded RNGs."""
    import tensorflow as tf

    tf.keras.backend.clear_session()
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    tf.keras.utils.set_random_seed(seed)


# --------------------------------------------------------------------------- architectures


def layer_norm(x: Any, gamma: Any, beta: Any, int16: bool = False) -> Any:
    """LayerNorm as MEAN / SQUARED_DIFFERENCE / RSQRT (Keras' own layer adds a NEG).

    LiteRT has no int16 SQUARED_DIFFERENCE, so the 16x8 variant squares with MUL.
    """
    import tensorflow as tf

    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    centred = x - mean
    sq = centred * centred if int16 else tf.math.squared_difference(x, mean)
    var = tf.reduce_mean(sq, axis=-1, keepdims=True)
    return (x - mean) * tf.math.rsqrt(var + 1e-3) * gamma + beta


def cnn(int16: bool) -> Any:
    """seq2point CNN: Conv1D (EXPAND_DIMS/CONV_2D/SQUEEZE), pools, dense, two heads."""
    import tensorflow as tf
    from tensorflow import keras

    inp = keras.Input((99,), name="mains")
    x = keras.layers.Reshape((99, 1))(inp)
    x = keras.layers.Conv1D(8, 9, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(16, 9, activation="relu", padding="valid", strides=2)(x)
    x = keras.layers.AveragePooling1D(2, padding="same")(x)
    x = keras.layers.Conv1D(8, 3, activation="relu6", padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    power = keras.layers.Dense(1, name="power")(x)
    status = keras.layers.Dense(1, activation="sigmoid", name="status")(x)
    del tf
    return keras.Model(inp, [power, status])


def depthwise(int16: bool) -> Any:
    """Separable/depthwise convolutions with tanh, relu6 and a mean over time."""
    from tensorflow import keras

    inp = keras.Input((64, 1), name="mains")
    x = keras.layers.Conv1D(32, 5, padding="same", activation="tanh")(inp)
    # 16 * 32 * 2 = 1024 weights: the smallest kernel dynamic-range quantization touches.
    x = keras.layers.DepthwiseConv1D(16, depth_multiplier=2, padding="same", activation="relu6")(x)
    x = keras.layers.DepthwiseConv1D(3, strides=2, padding="valid", activation="relu")(x)
    x = keras.layers.SeparableConv1D(8, 3, padding="same", activation="sigmoid")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(1, name="power")(x)
    return keras.Model(inp, out)


def transformer(int16: bool) -> Any:
    """A tiny BERT-style block: LayerNorm, softmax attention, GELU FFN, pooled heads."""
    import tensorflow as tf
    from tensorflow import keras

    seq, dim, heads = 16, 16, 2
    hd = dim // heads

    class Block(keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            init = keras.initializers.GlorotUniform(seed=3)
            self.wqkv = self.add_weight(shape=(dim, 3 * dim), initializer=init, name="wqkv")
            self.wo = self.add_weight(shape=(dim, dim), initializer=init, name="wo")
            self.g = self.add_weight(shape=(dim,), initializer="ones", name="g")
            self.b = self.add_weight(shape=(dim,), initializer="zeros", name="b")

        def layer_norm(self, x: Any) -> Any:
            return layer_norm(x, self.g, self.b, int16)

        def call(self, x: Any) -> Any:
            n = tf.shape(x)[0]
            h = self.layer_norm(x)
            qkv = tf.matmul(tf.reshape(h, [-1, dim]), self.wqkv)
            qkv = tf.reshape(qkv, tf.stack([n, seq, 3, heads, hd]))
            qkv = tf.transpose(qkv, [2, 0, 3, 1, 4])  # 3, N, H, S, hd
            q, k, v = qkv[0], qkv[1], qkv[2]
            att = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * (hd**-0.5), axis=-1)
            o = tf.matmul(att, v)  # N, H, S, hd
            o = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), tf.stack([n, seq, dim]))
            return x + tf.reshape(tf.matmul(tf.reshape(o, [-1, dim]), self.wo), tf.shape(x))

    class Norm(keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.g = self.add_weight(shape=(dim,), initializer="ones", name="g")
            self.b = self.add_weight(shape=(dim,), initializer="zeros", name="b")

        def call(self, x: Any) -> Any:
            return layer_norm(x, self.g, self.b, int16)

    inp = keras.Input((seq,), name="mains")
    x = keras.layers.Reshape((seq, 1))(inp)
    x = keras.layers.Dense(dim)(x)
    x = Block()(x)
    y = Norm()(x)
    y = keras.layers.Dense(2 * dim, activation=lambda t: tf.nn.gelu(t, approximate=False))(y)
    y = keras.layers.Dense(dim, activation="tanh")(y)
    x = keras.layers.Add()([x, y])
    mid = keras.layers.Lambda(lambda t: tf.gather(t, [seq // 2], axis=1))(x)
    mid = keras.layers.Flatten()(mid)
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    if not int16:  # the 16x8 quantizer has no L2_NORMALIZATION
        pooled = keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1))(pooled)
    feat = keras.layers.Concatenate()([mid, pooled])
    power = keras.layers.Dense(1, name="power")(feat)
    status = keras.layers.Dense(1, activation="sigmoid", name="status")(feat)
    return keras.Model(inp, [power, status])


def elementwise(int16: bool) -> Any:
    """Micro model for the element-wise ops the architectures above may fold away."""
    import tensorflow as tf
    from tensorflow import keras

    inp = keras.Input((24,), name="mains")

    def body(x: Any) -> Any:
        a = x * tf.constant(np.linspace(0.5, 1.5, 24, dtype=np.float32))
        b = a - tf.constant(np.linspace(-1, 1, 24, dtype=np.float32))
        d = a - b
        c = d * d if int16 else tf.math.squared_difference(a, b)
        d = tf.math.rsqrt(c + 1.0)
        e = tf.nn.relu6(b * 3.0) - tf.nn.relu(0.5 - a)
        f = tf.nn.gelu(a, approximate=True)
        g = tf.concat([d, e, f, tf.tanh(b), tf.sigmoid(a * b)], axis=-1)
        g = tf.reshape(g, [-1, 5, 24])
        m = tf.reduce_mean(g, axis=1)
        t = tf.transpose(g, [0, 2, 1])
        s = tf.nn.softmax(t * 2.0, axis=-1)
        if int16:  # the 16x8 quantizer has no L2_NORMALIZATION
            return m + tf.reduce_mean(s, axis=-1) * m
        return m + tf.reduce_mean(s, axis=-1) * tf.math.l2_normalize(m, axis=-1)

    out = keras.layers.Lambda(body)(inp)
    return keras.Model(inp, out)


def batch_shapes(int16: bool) -> Any:
    """Shape arithmetic Keras emits with a dynamic batch: SHAPE/STRIDED_SLICE/PACK/GATHER."""
    import tensorflow as tf
    from tensorflow import keras

    inp = keras.Input((20,), name="mains")

    def body(x: Any) -> Any:
        n = tf.shape(x)[0]
        y = tf.reshape(x, tf.stack([n, 4, 5]))
        y = tf.gather(y, [3, 0, 2], axis=1)
        y = tf.squeeze(tf.expand_dims(y, 2), 2)
        y = tf.reshape(y, [n, -1])
        return tf.nn.relu(y[:, 1:13:2] - 0.1)

    out = keras.layers.Lambda(body)(inp)
    return keras.Model(inp, out)


ARCHITECTURES: dict[str, Callable[[bool], Any]] = {
    "cnn": cnn,
    "depthwise": depthwise,
    "transformer": transformer,
    "elementwise": elementwise,
    "batch_shapes": batch_shapes,
}


# --------------------------------------------------------------------------- conversion


def convert(model: Any, mode: str, calib: np.ndarray) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)

    def rep() -> Iterator[list[np.ndarray]]:
        for w in calib:
            yield [w.reshape(1, *model.inputs[0].shape[1:]).astype(np.float32)]

    if mode != "float32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode in ("w8_a8", "w8_a8_io"):
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "w8_a8_io":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    if mode == "w8_a16":
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    return bytes(conv.convert())


def opcodes_of(data: bytes) -> list[str]:
    import tflite

    m = tflite.Model.GetRootAsModel(data, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    sub = m.Subgraphs(0)
    seen: dict[str, None] = {}
    for i in range(sub.OperatorsLength()):
        oc = m.OperatorCodes(sub.Operators(i).OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        seen.setdefault(names.get(code, f"CUSTOM:{code}"), None)
    return list(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--only", nargs="*", default=None, help="architectures to build")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest: dict[str, Any] = (
        json.loads(manifest_path.read_text()) if manifest_path.exists() and args.only else {}
    )
    for name, build in ARCHITECTURES.items():
        if args.only and name not in args.only:
            continue
        manifest[name] = {}
        for mode in MODES:
            seed_all(1234)
            model = build(mode == "w8_a16")
            shape = tuple(int(d) for d in model.inputs[0].shape[1:])
            calib = real_windows(int(np.prod(shape)), 64, seed=7).reshape(-1, *shape)
            data = convert(model, mode, calib)
            fname = f"{name}_{mode}.tflite"
            (args.out / fname).write_bytes(data)
            ops = opcodes_of(data)
            manifest[name][mode] = {"file": fname, "ops": ops, "bytes": len(data)}
            print(f"{fname:36s} {len(data):7d} B  {', '.join(ops)}")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
