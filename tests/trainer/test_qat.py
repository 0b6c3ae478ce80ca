"""qat.py: quantization-aware fine-tuning of a bundled parent; the result converts to
builtin int8 ops the engine's parity suite covers and runs bit-exact with LiteRT."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from custom_components.nilm.engine.interpreter import NumpyInterpreter
from custom_components.nilm.engine.reader import read_model, read_model_file
from trainer import qat
from trainer.config import QatConfig
from trainer.errors import TrainerError

ENGINE_MODELS = Path(__file__).parents[1] / "engine" / "models"


def _parity_ops() -> set[str]:
    """Every operator in the engine parity suite's quantized models."""
    ops: set[str] = set()
    for path in ENGINE_MODELS.glob("*.tflite"):
        ops |= {op.opcode for op in read_model_file(path).operators}
    return ops


def _kettle_parent() -> tuple[Any, Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The bundled kettle's float parent, its calibration set, and that set as training
    data (normalised windows, power / scale, on)."""
    from trainer.bundle import load_representative
    from trainer.parents import load_parent

    parent = load_parent("kettle")
    rep = load_representative(parent.model_path.parent)
    scale = np.float32(parent.card.power_scale_w)
    x = rep.windows.astype(np.float32)  # the calibration set is normalised already
    power = (rep.targets_w / scale).reshape(-1, 1).astype(np.float32)
    on = rep.on.astype(np.float32).reshape(-1, 1)
    return parent.load_model(), rep, (x, power, on)


def test_int8_kernel_lies_on_the_int8_grid_per_channel() -> None:
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5, 3, 4)).astype(np.float32) * np.array([1, 10, 0.1, 3])
    q = np.asarray(qat.int8_kernel(kernel, per_channel=True))
    scale = np.abs(kernel).max(axis=(0, 1)) / 127.0
    steps = q / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    np.testing.assert_allclose(np.abs(q).max(axis=(0, 1)), np.abs(kernel).max(axis=(0, 1)))
    assert np.abs(q - kernel).max() <= scale.max() / 2 + 1e-6


def test_the_training_graph_shares_the_models_weights() -> None:
    import keras

    from trainer.models import ModelConfig, build_model

    model = build_model(ModelConfig(architecture="compact", window_length=99))
    graph = qat.fake_quant_graph(model, ema=0.9)
    assert {w.path for w in model.weights} <= {w.path for w in graph.weights}
    assert sum("_fq" in layer.name for layer in graph.layers) >= len(model.layers) - 1
    x = np.random.default_rng(1).normal(size=(8, 99)).astype(np.float32)
    graph(x, training=True)  # ranges from one batch
    before = np.asarray(graph(x)[0])
    model.get_layer("power").kernel.assign(model.get_layer("power").kernel * 2.0)
    assert not np.allclose(before, np.asarray(graph(x)[0]))
    keras.backend.clear_session()


def test_a_qat_fine_tune_converts_to_builtin_int8_the_engine_runs_bit_exact() -> None:
    from trainer.quantize import QuantizeConfig, convert, run_litert

    model, rep, (x, power, on) = _kettle_parent()
    start = [w.copy() for w in model.get_weights()]
    history = qat.fine_tune(model, (x, power, on), QatConfig("kettle", epochs=1, batch_size=64))
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
    moved = [np.abs(a - b).max() for a, b in zip(model.get_weights(), start, strict=True)]
    assert max(moved) > 0  # it trained ...
    assert max(moved) < 0.5  # ... from the parent, not from scratch

    data = convert(model, QuantizeConfig(mode="w8_a8", seed=0), rep).data
    graph = read_model(data)
    ops = {op.opcode for op in graph.operators}
    assert ops <= _parity_ops(), ops - _parity_ops()
    windows = rep.windows[:32].astype(np.float32)  # normalised model inputs
    ours = NumpyInterpreter(graph).run([windows])
    theirs = run_litert(data, windows, reference=True)  # LiteRT's reference kernels
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)


def test_qat_config_refuses_nonsense() -> None:
    with pytest.raises(TrainerError, match="epoch"):
        QatConfig("kettle", epochs=0)
    with pytest.raises(TrainerError, match="ema"):
        QatConfig("kettle", ema=1.0)


def test_with_validation_the_best_epoch_stays_and_it_may_be_the_parent() -> None:
    model, _rep, (x, power, on) = _kettle_parent()
    start = model.get_weights()
    # A learning rate that can only hurt: the parent (epoch 0) must be what is kept.
    config = QatConfig("kettle", epochs=2, batch_size=64, learning_rate=0.5)
    history = qat.fine_tune(model, (x, power, on), config, validation=(x, power, on))
    assert len(history["val_loss"]) == 3
    assert history["best_epoch"] == 0
    assert min(history["val_loss"][1:]) > history["val_loss"][0]
    for a, b in zip(model.get_weights(), start, strict=True):
        np.testing.assert_array_equal(a, b)
