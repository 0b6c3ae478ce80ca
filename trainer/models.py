"""Seq2point architectures: the reference CNN, a BERT-style transformer, a compact edge CNN.

Every model takes ``(batch, window_length)`` float32 normalised mains and returns two
outputs, in this order (:mod:`trainer.quantize` exports a dict, whose outputs TFLite orders by key,
and "power" < "status", so output 0 is power and 1 status, as the model card says):

* ``power``: appliance power at the window's target index divided by ``max_power_w``;
* ``status``: on-probability (sigmoid applied), trained with a real BCE gradient.

Everything is built from static shapes so a batch-1 export converts to builtin TFLite ops
only (no SELECT_TF_OPS, no dynamic tensors). Weight-only expressions (mirrored position
tables) fold into constants at conversion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import layers, ops

from .config import ARCHITECTURES, POWER_OUTPUT, STATUS_OUTPUT, ModelConfig
from .errors import TrainerError

__all__ = [
    "ARCHITECTURES",
    "MODELS",
    "ModelConfig",
    "build_ensemble",
    "build_model",
    "load_keras_model",
]


def _heads(features: Any, dropout: float, hidden: int) -> list[Any]:
    """Shared two-headed output: power (linear) and status (sigmoid)."""
    x = layers.Dense(hidden, activation="relu", name="head_dense")(features)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    power = layers.Dense(1, name=POWER_OUTPUT)(x)
    status = layers.Dense(1, activation="sigmoid", name=STATUS_OUTPUT)(x)
    return [power, status]


def _input(config: ModelConfig) -> tuple[Any, Any]:
    inp = keras.Input(shape=(config.window_length,), name="mains", dtype="float32")
    return inp, layers.Reshape((config.window_length, 1), name="to_channels")(inp)


def build_cnn(config: ModelConfig) -> keras.Model:
    """goruck/nilm's seq2point CNN (Conv1D 16/32/64/128/256, 4 max-pools, Dense 1024/512):
    the accuracy reference, ~10.6 M parameters at window 599, far too big for the edge."""
    inp, x = _input(config)
    for i, (filters, kernel) in enumerate(((16, 5), (32, 3), (64, 3), (128, 3), (256, 3))):
        x = layers.Conv1D(filters, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < 4:
            x = layers.MaxPooling1D(2, padding="same", name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, activation="relu", name="dense1024")(x)
    if config.dropout > 0:
        x = layers.Dropout(config.dropout, name="dropout")(x)
    return keras.Model(inp, _heads(x, config.dropout, 512), name="cnn")


@keras.saving.register_keras_serializable(package="nilm")
class L2NormPooling1D(layers.Layer):
    """Root-mean-square pooling: keeps the energy of a window, which for power signals
    says more than its mean (a 2 kW spike and a 1 kW plateau average alike)."""

    def __init__(self, pool_size: int = 2, epsilon: float = 1e-10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.epsilon = epsilon
        self._pool = layers.AveragePooling1D(pool_size, strides=pool_size, padding="valid")

    def call(self, inputs: Any) -> Any:
        return ops.sqrt(self._pool(ops.square(inputs)) + self.epsilon)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self._pool.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="nilm")
class PositionEmbedding(layers.Layer):
    """Adds learned absolute positions; with ``mirrored`` the table is symmetric about
    the window's centre (relative distance to the seq2point target), half the parameters."""

    def __init__(self, mirrored: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mirrored = mirrored

    def build(self, input_shape: Any) -> None:
        length, width = int(input_shape[-2]), int(input_shape[-1])
        rows = math.ceil(length / 2) if self.mirrored else length
        self.embeddings = self.add_weight(
            name="embeddings", shape=(rows, width), initializer="glorot_uniform"
        )
        self._length = length

    def table(self) -> Any:
        if not self.mirrored:
            return self.embeddings
        tail = self.embeddings[1:] if self._length % 2 else self.embeddings
        # [e_k .. e_1, e_0, e_1 .. e_k] for odd lengths, e_0 doubled for even ones.
        return ops.concatenate([ops.flip(self.embeddings, axis=0), tail], axis=0)

    def call(self, inputs: Any) -> Any:
        # Adding here (not in a separate Add layer) keeps the batch dimension symbolic.
        return inputs + ops.expand_dims(self.table(), 0)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mirrored": self.mirrored}


@keras.saving.register_keras_serializable(package="nilm")
class SelfAttention(layers.Layer):
    """Multi-head self-attention with static reshapes (keras.layers.MultiHeadAttention's
    einsums convert too, but this keeps the TFLite graph to BATCH_MATMUL/SOFTMAX)."""

    def __init__(self, heads: int, key_dim: int, model_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.heads = heads
        self.key_dim = key_dim
        self.model_dim = model_dim
        self.q = layers.Dense(key_dim, name="q")
        self.k = layers.Dense(key_dim, name="k")
        self.v = layers.Dense(key_dim, name="v")
        self.o = layers.Dense(model_dim, name="o")

    def build(self, input_shape: Any) -> None:
        for dense in (self.q, self.k, self.v):
            dense.build(input_shape)
        self.o.build((*input_shape[:-1], self.key_dim))
        self._length = int(input_shape[-2])

    def _split(self, x: Any) -> Any:
        x = ops.reshape(x, (-1, self._length, self.heads, self.key_dim // self.heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, inputs: Any) -> Any:
        q, k, v = (
            self._split(self.q(inputs)),
            self._split(self.k(inputs)),
            self._split(self.v(inputs)),
        )
        scale = 1.0 / math.sqrt(self.key_dim // self.heads)
        weights = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * scale, axis=-1)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        return self.o(ops.reshape(out, (-1, self._length, self.key_dim)))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.model_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "heads": self.heads,
            "key_dim": self.key_dim,
            "model_dim": self.model_dim,
        }


def _norm(x: Any, config: ModelConfig, name: str) -> Any:
    """Layer norm (BERT) or batch norm (folds into a per-channel MUL/ADD for int8)."""
    if config.norm == "batch":
        return layers.BatchNormalization(epsilon=1e-3, name=name)(x)
    return layers.LayerNormalization(epsilon=1e-6, name=name)(x)


def _post_ln_block(x: Any, config: ModelConfig, index: int) -> Any:
    """BERT-style post-norm encoder block: x = N(x + MHA(x)); x = N(x + FFN(x))."""
    d = config.d_model
    name = f"block{index}"
    attn = SelfAttention(config.heads, d // 2, d, name=f"{name}_attention")(x)
    if config.dropout > 0:
        attn = layers.Dropout(config.dropout)(attn)
    x = _norm(layers.Add()([x, attn]), config, f"{name}_ln1")
    ff = layers.Dense(4 * d, name=f"{name}_ff1")(x)
    ff = layers.Activation(config.activation, name=f"{name}_{config.activation}")(ff)
    ff = layers.Dense(d, name=f"{name}_ff2")(ff)
    if config.dropout > 0:
        ff = layers.Dropout(config.dropout)(ff)
    return _norm(layers.Add()([x, ff]), config, f"{name}_ln2")


def build_transformer(config: ModelConfig) -> keras.Model:
    """BERT4NILM-style encoder after goruck/nilm: conv stem, L2-norm pooling to half
    length, learned positions, post-norm blocks, mirrored relative positions, average
    pooling and a dense head (~1.5 M parameters at d_model 256). ``norm="batch"``,
    ``activation="relu"`` and ``pool="max"`` are its full-int8 form (see
    :data:`trainer.config.NORMS`)."""
    if config.d_model % (2 * config.heads):
        raise TrainerError("d_model must be a multiple of 2 x heads")
    if config.window_length < 4:
        raise TrainerError("the transformer needs a window of at least 4 samples")
    inp, x = _input(config)
    x = layers.Conv1D(config.d_model, 5, padding="same", name="stem")(x)
    if config.pool == "max":
        x = layers.MaxPooling1D(2, name="max_pool")(x)
    else:
        x = L2NormPooling1D(2, name="l2_pool")(x)
    x = PositionEmbedding(name="positions")(x)
    x = _norm(x, config, "embed_ln")
    if config.dropout > 0:
        x = layers.Dropout(config.dropout, name="embed_dropout")(x)
    for i in range(config.blocks):
        x = _post_ln_block(x, config, i)
    x = PositionEmbedding(mirrored=True, name="relative_positions")(x)
    x = _norm(x, config, "relative_ln")
    x = layers.GlobalAveragePooling1D(name="average")(x)
    return keras.Model(inp, _heads(x, 0.0, config.d_model), name="transformer")


def build_compact(config: ModelConfig) -> keras.Model:
    """Edge CNN: five strided convolutions (no pooling ops, no dilation, so int8 kernels
    on microcontrollers and the numpy engine need only CONV_2D/FULLY_CONNECTED) shrink a
    599-sample window to 19 x 64 features; flattening keeps *where* in the window an
    event sits, which seq2point needs for the target sample. ~100 k parameters."""
    inp, x = _input(config)
    for i, (filters, kernel) in enumerate(((16, 7), (32, 5), (48, 5), (64, 3), (64, 3))):
        channels = max(4, round(filters * config.width))
        x = layers.Conv1D(
            channels, kernel, strides=2, padding="same", activation="relu", name=f"conv{i}"
        )(x)
    x = layers.Flatten(name="flatten")(x)
    if config.dropout > 0:
        x = layers.Dropout(config.dropout, name="dropout")(x)
    return keras.Model(inp, _heads(x, 0.0, 64), name="compact")


MODELS: dict[str, Callable[[ModelConfig], keras.Model]] = {
    "cnn": build_cnn,
    "transformer": build_transformer,
    "compact": build_compact,
}

CUSTOM_OBJECTS: dict[str, type[layers.Layer]] = {
    "L2NormPooling1D": L2NormPooling1D,
    "PositionEmbedding": PositionEmbedding,
    "SelfAttention": SelfAttention,
}


def build_model(config: ModelConfig) -> keras.Model:
    """Build an architecture by registry name; TrainerError lists the known ones."""
    try:
        builder = MODELS[config.architecture]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise TrainerError(
            f"unknown architecture {config.architecture!r} (known: {known})"
        ) from None
    if config.window_length < 2:
        raise TrainerError("window_length must be at least 2")
    return builder(config)


def build_ensemble(
    members: list[tuple[keras.Model, float, float]], mean_w: float, std_w: float
) -> keras.Model:
    """One model that averages several seeds' heads: each member's head features
    (``head_dense``) are concatenated and read by one power and one status dense layer
    whose weights are the members' stacked and divided by their number, so the power
    output is the mean of the members' powers and the status logit the mean of their
    logits. It keeps the two-headed ending that Home Assistant's adapter re-fits.

    ``members``: (model, its input mean, its input std) in watts; the ensemble takes
    windows normalised with ``mean_w``/``std_w`` and re-normalises them per member
    (a ``Rescaling``: one multiply-add), since each seed drew its own training sample."""
    import numpy as np

    if len(members) < 2:
        raise TrainerError("an ensemble needs at least two members")
    length = int(members[0][0].inputs[0].shape[-1])
    inp = keras.Input(shape=(length,), name="mains", dtype="float32")
    features, power_w, power_b, status_w, status_b = [], [], [], [], []
    for i, (model, mean_i, std_i) in enumerate(members):
        if int(model.inputs[0].shape[-1]) != length:
            raise TrainerError("ensemble members must share one window length")
        trunk = keras.Model(model.inputs, model.get_layer("head_dense").output, name=f"member{i}")
        x = layers.Rescaling(
            std_w / std_i, offset=(mean_w - mean_i) / std_i, name=f"member{i}_input"
        )(inp)
        features.append(trunk(x))
        for layer, ws, bs in (
            (model.get_layer(POWER_OUTPUT), power_w, power_b),
            (model.get_layer(STATUS_OUTPUT), status_w, status_b),
        ):
            kernel, bias = layer.get_weights()
            ws.append(kernel)
            bs.append(bias)
    joined = layers.Concatenate(name="members")(features)
    power = layers.Dense(1, name=POWER_OUTPUT)(joined)
    status = layers.Dense(1, activation="sigmoid", name=STATUS_OUTPUT)(joined)
    n = np.float32(len(members))
    model = keras.Model(inp, [power, status], name="ensemble")
    for name, ws, bs in ((POWER_OUTPUT, power_w, power_b), (STATUS_OUTPUT, status_w, status_b)):
        model.get_layer(name).set_weights([np.concatenate(ws) / n, np.mean(bs, axis=0)])
    return model


def load_keras_model(path: str) -> keras.Model:
    """Load a saved ``model.keras`` with this module's layers registered."""
    return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
