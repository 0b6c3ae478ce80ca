"""load_model end to end: a committed model plus a card, fed real mains windows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from custom_components.nilm.engine.card import REFIT_ATTRIBUTION, ModelCard, StatusRule
from custom_components.nilm.engine.errors import (
    HashMismatchError,
    ModelError,
    ModelFormatError,
)
from custom_components.nilm.engine.model import load_model
from custom_components.nilm.engine.reader import read_model_file
from scripts.ha_dev.refit import read_refit_csv, refit_30s_file

MODELS = Path(__file__).parent / "models"
WINDOW = 99  # the committed CNNs take (1, 99)


def status_output_of(path: Path) -> int:
    """Which model output the sigmoid head writes (the other one is power)."""
    graph = read_model_file(path)
    producers = {out: op for op in graph.operators for out in op.outputs}

    def head_op(tensor: int) -> str:
        op = producers[tensor]
        if op.opcode in ("QUANTIZE", "DEQUANTIZE"):  # I/O conversion after the head
            return head_op(op.inputs[0])
        return op.opcode

    heads = [k for k, t in enumerate(graph.outputs) if head_op(t) == "LOGISTIC"]
    assert len(heads) == 1
    return heads[0]


@pytest.fixture(scope="module")
def mains_windows(data_dir: Path) -> np.ndarray:
    """Windows of real House 2 mains (training house), skipping filled gaps (0 W)."""
    path = refit_30s_file(data_dir, 2, "2014-06")
    mains = read_refit_csv(path, rows=20_000, columns=("Aggregate",))["Aggregate"]
    mains = mains.astype(np.float32)
    starts = np.arange(0, len(mains) - WINDOW, 37)
    windows = np.stack([mains[s : s + WINDOW] for s in starts])
    windows = windows[(windows > 0).all(axis=1)]
    assert len(windows) > 200
    return windows


def make_card(
    mains: np.ndarray, *, status_output: int | None, probability_threshold: float = 0.5
) -> ModelCard:
    return ModelCard(
        name="kettle_test",
        appliance="kettle",
        architecture="cnn",
        sample_period_s=30.0,
        window_length=WINDOW,
        target_index=WINDOW // 2,
        input_mean_w=float(mains.mean()),
        input_std_w=float(mains.std()),
        power_scale_w=3000.0,
        status=StatusRule(on_power_threshold_w=5.0, probability_threshold=probability_threshold),
        quantization="w8_a8",
        power_output=1 - (status_output or 0),
        status_output=status_output,
        training={"dataset": "REFIT", "houses": [2], "attribution": REFIT_ATTRIBUTION},
        trainer_version="test",
    )


def install(folder: Path, model_name: str, card: ModelCard) -> Path:
    """Copy a committed model beside a card that hashes it; return the card path."""
    model = folder / "kettle_test.tflite"
    shutil.copy(MODELS / model_name, model)
    card_path = folder / "kettle_test.json"
    card_path.write_text(card.with_file(model).to_json(), encoding="utf-8")
    return card_path


@pytest.mark.parametrize("backend", ["numpy", "litert_ref"])
def test_status_head_gates_power(tmp_path: Path, mains_windows: np.ndarray, backend: str) -> None:
    head = status_output_of(MODELS / "cnn_w8_a8.tflite")
    probe = load_model(
        install(tmp_path, "cnn_w8_a8.tflite", make_card(mains_windows, status_output=head)), backend
    )
    probability = probe.predict(mains_windows).probability
    assert probability is not None
    # A threshold inside the observed range, so both states occur (untrained test model).
    threshold = float(np.median(probability))
    card = make_card(mains_windows, status_output=head, probability_threshold=threshold)
    model = load_model(install(tmp_path, "cnn_w8_a8.tflite", card), backend)
    assert model.backend.name == backend
    result = model.predict(mains_windows)
    assert result.probability is not None
    assert result.power_w.shape == result.on.shape == (len(mains_windows),)
    assert result.power_w.dtype == np.float32
    assert ((result.probability >= 0) & (result.probability <= 1)).all()
    np.testing.assert_array_equal(result.on, result.probability >= threshold)
    assert 0 < result.on.sum() < len(result.on)
    np.testing.assert_array_equal(result.power_w[~result.on], 0.0)
    np.testing.assert_array_equal(result.power_w[result.on], result.raw_power_w[result.on])
    assert (result.raw_power_w >= 0).all()


def test_power_threshold_gates_without_status_head(
    tmp_path: Path, mains_windows: np.ndarray
) -> None:
    card = make_card(mains_windows, status_output=None)
    model = load_model(install(tmp_path, "cnn_float32.tflite", card), "litert_ref")
    result = model.predict(mains_windows)
    assert result.probability is None
    np.testing.assert_array_equal(result.on, result.raw_power_w >= 5.0)
    np.testing.assert_array_equal(result.power_w, np.where(result.on, result.raw_power_w, 0))


def test_numpy_and_litert_agree_through_load_model(
    tmp_path: Path, mains_windows: np.ndarray
) -> None:
    head = status_output_of(MODELS / "cnn_float32.tflite")
    card_path = install(
        tmp_path, "cnn_float32.tflite", make_card(mains_windows, status_output=head)
    )
    ours = load_model(card_path, "numpy").predict(mains_windows)
    reference = load_model(card_path, "litert_ref").predict(mains_windows)
    np.testing.assert_allclose(ours.raw_power_w, reference.raw_power_w, rtol=1e-5, atol=1e-3)
    assert ours.probability is not None and reference.probability is not None
    np.testing.assert_allclose(ours.probability, reference.probability, rtol=1e-5, atol=1e-6)


def test_single_window_and_bad_shapes(tmp_path: Path, mains_windows: np.ndarray) -> None:
    card = make_card(mains_windows, status_output=None)
    model = load_model(install(tmp_path, "cnn_float32.tflite", card), "numpy")
    one = model.predict(mains_windows[0])
    assert one.power_w.shape == (1,)
    batch = model.predict(mains_windows[:3])
    assert one.raw_power_w[0] == pytest.approx(batch.raw_power_w[0], rel=1e-5, abs=1e-3)
    with pytest.raises(ValueError, match=r"\(N, 99\)"):
        model.predict(np.zeros((2, 98), np.float32))


def test_modified_model_is_refused(tmp_path: Path, mains_windows: np.ndarray) -> None:
    card_path = install(
        tmp_path, "cnn_float32.tflite", make_card(mains_windows, status_output=None)
    )
    model = tmp_path / "kettle_test.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x40
    model.write_bytes(bytes(data))
    for backend in ("auto", "numpy"):
        with pytest.raises(HashMismatchError):
            load_model(card_path, backend)


def test_corrupt_model_with_matching_hash_is_a_format_error(
    tmp_path: Path, mains_windows: np.ndarray
) -> None:
    """A card can hash garbage: the reader still refuses it before any backend runs it."""
    model = tmp_path / "kettle_test.tflite"
    model.write_bytes((MODELS / "cnn_float32.tflite").read_bytes()[:5000])
    card = make_card(mains_windows, status_output=None).with_file(model)
    card_path = tmp_path / "kettle_test.json"
    card_path.write_text(card.to_json(), encoding="utf-8")
    for backend in ("auto", "numpy", "litert"):
        with pytest.raises(ModelFormatError):
            load_model(card_path, backend)


def test_card_naming_a_missing_output(tmp_path: Path, mains_windows: np.ndarray) -> None:
    """Refused at load, not with one warning per tick."""
    card = make_card(mains_windows, status_output=None)
    card = ModelCard.from_dict({**card.to_dict(), "status_output": 5})
    with pytest.raises(ModelError, match="status_output is 5, but the model has 2 output"):
        load_model(install(tmp_path, "cnn_float32.tflite", card), "numpy")


@pytest.mark.parametrize("backend", ["numpy", "litert_ref"])
@pytest.mark.parametrize("window", [98, 100, 1])
def test_card_window_must_match_the_model_input(
    tmp_path: Path, mains_windows: np.ndarray, backend: str, window: int
) -> None:
    """A card whose window_length differs from the model's input is refused at load
    with a ModelError naming both (today: it loads, then every tick fails)."""
    raw = make_card(mains_windows, status_output=None).to_dict()
    raw.update(window_length=window, target_index=window - 1)
    card = ModelCard.from_dict(raw)
    with pytest.raises(ModelError, match=rf"input shape \(1, 99\).*{window} samples"):
        load_model(install(tmp_path, "cnn_float32.tflite", card), backend)


def test_non_finite_model_outputs_are_no_power(tmp_path: Path, mains_windows: np.ndarray) -> None:
    """A float model emitting NaN/inf must not turn into infinite energy."""
    card = make_card(mains_windows, status_output=None)
    model = load_model(install(tmp_path, "cnn_float32.tflite", card), "numpy")
    nan = np.full((3, 1), np.nan, np.float32)
    inf = np.full((3, 1), np.inf, np.float32)
    model.backend = type("Fake", (), {"run": lambda self, x: [nan, inf]})()
    for output in (0, 1):
        model.card = ModelCard.from_dict({**card.to_dict(), "power_output": output})
        result = model.predict(mains_windows[:3])
        assert np.isfinite(result.raw_power_w).all() and np.isfinite(result.power_w).all()
        np.testing.assert_array_equal(result.raw_power_w, 0.0)
