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


def _tiny_transformer(norm: str, activation: str, pool: str) -> Any:
    import keras

    from trainer.models import ModelConfig, build_model

    keras.utils.set_random_seed(0)

    return build_model(
        ModelConfig(
            "transformer", 33, d_model=16, heads=2, blocks=1, dropout=0.0,
            norm=norm, activation=activation, pool=pool,
        )
    )  # fmt: skip


def _calibration(x: np.ndarray) -> Any:
    from trainer.calibration import RepresentativeSet

    n = len(x)
    return RepresentativeSet(
        windows=x, targets_w=np.zeros(n, np.float32), on=np.zeros(n, bool),
        house="synthetic", source="test windows", seed=0, on_threshold_w=1.0,
    )  # fmt: skip


def test_the_transformers_qat_form_has_no_rsqrt_and_runs_bit_exact_with_litert() -> None:
    """Batch norm, ReLU and max pooling (the int8 remedy) convert to builtin int8 ops
    without layer norm's RSQRT and NEG or L2 pooling's SQUARE and SQRT (which the BERT
    form leaves, the engine has no kernel for); after a QAT epoch the engine matches
    LiteRT's reference kernels bit for bit."""
    import keras

    from trainer.quantize import QuantizeConfig, convert, run_litert

    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 33)).astype(np.float32)
    x[::3, -6:] += 4.0  # some "on" windows
    on = (x[:, -3] > 2.0).astype(np.float32).reshape(-1, 1)
    power = on * 0.8
    rep = _calibration(x[:64])

    plain = convert(_tiny_transformer("layer", "gelu", "l2"), QuantizeConfig("w8_a8"), rep).data
    assert {"RSQRT", "NEG", "SQUARE", "SQRT"} <= {op.opcode for op in read_model(plain).operators}

    model = _tiny_transformer("batch", "relu", "max")
    history = qat.fine_tune(model, (x, power, on), QatConfig("kettle", epochs=1, batch_size=32))
    assert np.isfinite(history["loss"][0])
    data = convert(model, QuantizeConfig(mode="w8_a8", seed=0), rep).data
    graph = read_model(data)
    ops = {op.opcode for op in graph.operators}
    assert {"RSQRT", "NEG", "SQUARE", "SQRT", "GELU"}.isdisjoint(ops)
    assert ops <= _parity_ops(), ops - _parity_ops()
    ours = NumpyInterpreter(graph).run([x[:32]])
    theirs = run_litert(data, x[:32], reference=True)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    keras.backend.clear_session()


def test_qat_trains_the_kernels_inside_nested_layers_at_int8() -> None:
    """The attention's q/k/v/o Dense kernels sit inside a custom layer: they are
    quantized during QAT like the top-level ones."""
    model = _tiny_transformer("batch", "relu", "max")
    names = {kernel.path for kernel, _ in qat.quantized_kernels(model)}
    assert any("attention" in n and "/q/" in n for n in names), names
    assert any("stem" in n for n in names) and any("power" in n for n in names)


def test_epoch_zero_is_the_parent_even_with_batch_norm_statistics() -> None:
    """Observing ranges runs the graph in training mode: batch norms must not move
    their statistics then (nor during QAT: they fold into constants at conversion)."""
    model = _tiny_transformer("batch", "relu", "max")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(128, 33)).astype(np.float32) * 3.0 + 1.0
    on = (x[:, -3] > 2.0).astype(np.float32).reshape(-1, 1)
    start = model.get_weights()
    config = QatConfig("kettle", epochs=1, batch_size=32, learning_rate=0.05)
    wrong = 1.0 - on  # training labels the validation contradicts: epoch 1 must lose
    history = qat.fine_tune(model, (x, wrong * 0.5, wrong), config, validation=(x, on * 0.5, on))
    assert history["best_epoch"] == 0
    for a, b in zip(model.get_weights(), start, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_report_says_which_engine_ran_each_file_and_what_did_not_convert() -> None:
    row = {"f1": 0.8, "mcc": 0.8, "mae_w": 5.0, "sae": 0.1,
           "predicted_energy_kwh": 10.0, "true_energy_kwh": 9.0}  # fmt: skip
    summary = {
        "appliance": "kettle", "test_house": "REFIT house 20", "architecture": "transformer",
        "model_settings": {"d_model": 32, "blocks": 1, "norm": "layer", "activation": "gelu"},
        "bytes": {"PTQ w8": 50_000}, "parent_seed": 0,
        "config": {"epochs": 2, "learning_rate": 1e-4},
        "training_windows": 10, "seconds": 1.0, "losses": [0.1, 0.1],
        "val_losses": [0.1, 0.2, 0.2], "best_epoch": 0, "post_processing": "float and PTQ ...",
        "qat_threshold": 0.5, "qat_min_off_s": 60.0,
        "validation_f1": {"parent": 0.7, "qat": 0.7},
        "models": {
            "float parent": {**row, "backend": "keras"},
            "PTQ w8_a16 (16x8)": {"backend": "-", "not_converted": "op L2_NORMALIZATION"},
            "PTQ w8_a8 (exported)": {**row, "backend": "litert",
                                     "numpy_engine": "unsupported operator(s): NEG"},
        },
        "inspection": {
            "PTQ w8_a8": {"bytes": 40_960, "max_rmse_over_scale": 1.5,
                          "suspected_layers": ["a", "b"],
                          "backends": {"numpy": {"latency_ms": 2.0, "peak_memory_kb": 300.0},
                                       "litert": {"latency_ms": 0.1}}},
        },
        "command": "nilm-trainer qat kettle",
    }  # fmt: skip
    text = qat.markdown(summary)
    assert "d_model 32, 1 blocks, layer norm, gelu" in text
    assert "| float parent | keras | 0.800 |" in text
    assert "| PTQ w8_a8 (exported) | litert | 0.800 |" in text
    assert "PTQ w8_a16 (16x8): not converted (op L2_NORMALIZATION)" in text
    assert "the numpy engine refuses this file (unsupported operator(s): NEG)" in text
    assert "| PTQ w8_a8 | 40 KB | 1.500 | 2 | 2.000 ms | 0.100 ms | n/a | 300 KB |" in text
    assert "Float and PTQ ..." in text  # the first letter only is capitalised


def test_the_bert_forms_files_run_on_the_engine_like_litert() -> None:
    """Layer norm and L2 pooling leave float NEG, SQUARE and SQRT in a w8 file and float
    NEG/SQUARE plus an int8 SQRT in the full-int8 one: the engine runs both as LiteRT's
    reference kernels do (the int8 file bit for bit)."""
    from trainer.quantize import QuantizeConfig, convert, run_litert

    model = _tiny_transformer("layer", "gelu", "l2")
    x = np.random.default_rng(8).normal(size=(48, 33)).astype(np.float32)
    w8 = convert(model, QuantizeConfig("w8"), None).data
    graph = read_model(w8)
    assert {"NEG", "SQUARE", "SQRT"} <= {op.opcode for op in graph.operators}
    ours = NumpyInterpreter(graph).run([x])
    theirs = run_litert(w8, x, reference=True)
    for got, want in zip(ours, theirs, strict=True):
        # Layer norm's float MEAN/RSQRT sum in another order than LiteRT (a few ulps, as
        # in the parity suite); a hybrid dense layer quantizes its input per row, so an
        # ulp on a rounding boundary moves one int8 step: 1e-3, not the suite's 1e-5.
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-3, atol=1e-5)
    full = convert(model, QuantizeConfig("w8_a8"), _calibration(x)).data
    graph = read_model(full)
    assert any(op.opcode == "SQRT" and graph.tensors[op.outputs[0]].dtype == "int8"
               for op in graph.operators)  # fmt: skip
    ours = NumpyInterpreter(graph).run([x])
    theirs = run_litert(full, x, reference=True)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(got.reshape(want.shape), want)


@pytest.mark.parametrize(("shift", "gain"), [(1e-3, 3.0), (0.5, 1.0), (2.0, 10.0), (1e-6, 0.2)])
def test_int8_sqrt_is_bit_exact_with_litert(shift: float, gain: float) -> None:
    """LiteRT's int8 SQRT truncates sqrt(x) / output scale in float32 (rounding, or
    double precision, differs at codes a fraction of an ulp below an integer)."""
    import keras
    import tensorflow as tf

    from trainer.quantize import QuantizeConfig, convert, run_litert

    keras.utils.set_random_seed(1)
    inp = keras.Input((16,), name="mains")
    h = keras.layers.Dense(16)(inp)
    h = keras.layers.Lambda(lambda t: tf.sqrt(tf.nn.relu(t) + shift))(h)
    model = keras.Model(inp, keras.layers.Dense(1, name="power")(h))
    x = np.random.default_rng(2).normal(size=(600, 16)).astype(np.float32) * np.float32(gain)
    data = convert(model, QuantizeConfig("w8_a8"), _calibration(x[:200])).data
    graph = read_model(data)
    assert "SQRT" in {op.opcode for op in graph.operators}
    (ours,) = NumpyInterpreter(graph).run([x])
    (theirs,) = run_litert(data, x, reference=True)
    np.testing.assert_array_equal(ours.reshape(theirs.shape), theirs)
    keras.backend.clear_session()
