"""Architectures: parameter counts, two heads, builtin-only static TFLite conversion."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import tflite

from trainer.errors import TrainerError
from trainer.models import (
    CUSTOM_OBJECTS,
    ModelConfig,
    PositionEmbedding,
    build_model,
    load_keras_model,
)
from trainer.quantize import to_tflite

# goruck/nilm's cnn at window 599: convs 96 + 1,568 + 6,208 + 24,704 + 98,560, then
# 38 x 256 = 9,728 features -> Dense 1024 (9,962,496) -> Dense 512 (524,800) -> 1 (513)
# = 10,618,945; our status head adds one more Dense(1) on the 512 features (513).
CNN_599 = 10_618_945 + 513
# Reference transformer (d_model 256, 2 heads of 64, FFN 1024, 2 blocks) without its
# 300 never-used absolute position rows: 1,576,961 - 300 x 256 = 1,500,161; + status 257.
TRANSFORMER_599 = 1_500_161 + 257
COMPACT_599 = 110_098


def test_parameter_counts_at_window_599() -> None:
    assert build_model(ModelConfig("cnn", 599)).count_params() == CNN_599
    assert build_model(ModelConfig("transformer", 599)).count_params() == TRANSFORMER_599
    compact = build_model(ModelConfig("compact", 599))
    assert compact.count_params() == COMPACT_599
    # int8 weights: about one byte per parameter, far under the 1 MB edge budget.
    assert compact.count_params() < 150_000


def test_unknown_architecture_names_the_known_ones() -> None:
    with pytest.raises(TrainerError, match="known: cnn, compact, transformer"):
        build_model(ModelConfig("resnet", 599))


@pytest.mark.parametrize("length", [9, 10])
def test_mirrored_positions_are_symmetric(length: int) -> None:
    layer = PositionEmbedding(mirrored=True)
    layer.build((None, length, 4))
    table = np.asarray(layer.table())
    assert table.shape == (length, 4)
    np.testing.assert_array_equal(table, table[::-1])
    assert layer.embeddings.shape[0] == (length + 1) // 2


def _op_names(model_bytes: bytes) -> set[str]:
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    out = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        out.add(names[builtin] if builtin != tflite.BuiltinOperator.CUSTOM else "CUSTOM")
    return out


def _static_shapes(model_bytes: bytes) -> bool:
    graph = tflite.Model.GetRootAsModel(model_bytes, 0).Subgraphs(0)
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        signature = [tensor.ShapeSignature(j) for j in range(tensor.ShapeSignatureLength())]
        if any(d < 0 for d in signature):
            return False
    return True


@pytest.mark.parametrize(("arch", "length"), [("compact", 599), ("transformer", 599), ("cnn", 599)])
def test_converts_to_builtin_static_tflite_with_power_then_status(arch: str, length: int) -> None:
    from ai_edge_litert.interpreter import Interpreter

    model = build_model(ModelConfig(arch, length))
    data = to_tflite(model)
    ops = _op_names(data)
    assert "CUSTOM" not in ops
    assert not any(op.startswith("FLEX") for op in ops)
    assert {"VAR_HANDLE", "READ_VARIABLE"}.isdisjoint(ops)  # weights frozen to constants
    assert _static_shapes(data)

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    assert tuple(inp["shape"]) == (1, length)
    x = np.random.default_rng(0).normal(size=(1, length)).astype(np.float32)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    outs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    power, status = (np.asarray(o) for o in model(x, training=False))
    assert len(outs) == 2
    np.testing.assert_allclose(outs[0], power, rtol=1e-4, atol=1e-5)  # output 0 = power
    np.testing.assert_allclose(outs[1], status, rtol=1e-4, atol=1e-5)  # output 1 = status
    assert 0.0 < float(outs[1].ravel()[0]) < 1.0


def test_transformer_survives_keras_save_and_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = build_model(ModelConfig("transformer", 33, d_model=16, heads=2))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_keras_model(str(path))
    x = np.random.default_rng(1).normal(size=(3, 33)).astype(np.float32)
    for a, b in zip(model(x), loaded(x), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert set(CUSTOM_OBJECTS) == {"L2NormPooling1D", "PositionEmbedding", "SelfAttention"}


def test_the_transformers_int8_form_has_batch_norms_and_relu() -> None:
    import keras

    plain = build_model(ModelConfig("transformer", 33, d_model=16, heads=2))
    edge = build_model(
        ModelConfig("transformer", 33, d_model=16, heads=2, norm="batch", activation="relu")
    )
    kinds = {type(layer).__name__ for layer in edge.layers}
    assert "BatchNormalization" in kinds and "LayerNormalization" not in kinds
    assert {"block0_relu", "block1_relu"} <= {layer.name for layer in edge.layers}
    assert "block0_gelu" in {layer.name for layer in plain.layers}
    # Same shapes and head: only the norms' parameters differ (BN keeps 2 more per channel).
    bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in edge.layers)
    assert edge.count_params() == plain.count_params() + bn * 2 * 16


def test_unknown_norm_or_activation_names_the_known_ones() -> None:
    with pytest.raises(TrainerError, match="known: layer, batch"):
        ModelConfig("transformer", 33, norm="group")
    with pytest.raises(TrainerError, match="known: gelu, relu"):
        ModelConfig("transformer", 33, activation="swish")


def test_an_ensemble_averages_its_members_powers_and_status_logits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each member sees the windows in its own normalisation; the ensemble's power is
    the members' mean power and its status the sigmoid of their mean logit, and it
    survives save/load and converts with one concatenated head-feature tensor."""
    import keras

    from trainer.models import build_ensemble

    config = ModelConfig("compact", 21)
    members = []
    for seed, (mean, std) in enumerate(((400.0, 300.0), (350.0, 500.0), (500.0, 250.0))):
        keras.utils.set_random_seed(seed)
        members.append((build_model(config), mean, std))
    ensemble = build_ensemble(members, 420.0, 350.0)
    watts = np.random.default_rng(1).uniform(0.0, 3000.0, size=(8, 21)).astype(np.float32)
    powers, logits = [], []
    for model, mean, std in members:
        p, s = (np.asarray(o, dtype=np.float64) for o in model((watts - mean) / std))
        powers.append(p)
        logits.append(np.log(s / (1.0 - s)))
    power, status = (np.asarray(o) for o in ensemble((watts - 420.0) / 350.0))
    np.testing.assert_allclose(power, np.mean(powers, axis=0), rtol=1e-4, atol=1e-5)
    expected = 1.0 / (1.0 + np.exp(-np.mean(logits, axis=0)))
    np.testing.assert_allclose(status, expected, rtol=1e-4, atol=1e-5)

    ensemble.save(tmp_path / "ensemble.keras")
    again = load_keras_model(str(tmp_path / "ensemble.keras"))
    np.testing.assert_allclose(again((watts - 420.0) / 350.0)[0], power, rtol=1e-5, atol=1e-6)
    assert "CONCATENATION" in _op_names(to_tflite(ensemble))
    assert ensemble.get_layer("members").output.shape[-1] == 3 * 64


def test_an_ensemble_refuses_one_member_or_mixed_windows() -> None:
    from trainer.models import build_ensemble

    one = build_model(ModelConfig("compact", 21))
    with pytest.raises(TrainerError, match="at least two"):
        build_ensemble([(one, 0.0, 1.0)], 0.0, 1.0)
    other = build_model(ModelConfig("compact", 31))
    with pytest.raises(TrainerError, match="one window length"):
        build_ensemble([(one, 0.0, 1.0), (other, 0.0, 1.0)], 0.0, 1.0)
