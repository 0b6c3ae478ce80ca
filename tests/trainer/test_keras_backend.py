"""The Keras backend: a float run goes through ``NilmModel`` exactly as an exported file
does, in compiled batches whose split does not change a number."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from custom_components.nilm.engine.card import ModelCard, StatusRule
from trainer.keras_backend import KerasBackend, keras_model
from trainer.models import ModelConfig, build_model

WINDOW = 21


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    import keras

    keras.utils.set_random_seed(0)
    return build_model(ModelConfig("compact", WINDOW))


def _card(**changes: object) -> ModelCard:
    card = ModelCard(
        name="kettle", appliance="kettle", architecture="compact", sample_period_s=30.0,
        window_length=WINDOW, target_index=WINDOW - 2, input_mean_w=400.0,
        input_std_w=300.0, power_scale_w=3100.0,
        status=StatusRule(on_power_threshold_w=500.0, min_on_s=0.0, min_off_s=0.0,
                          probability_threshold=0.5),
        quantization="convert_only", power_output=0, status_output=1,
    )  # fmt: skip
    return dataclasses.replace(card, **changes)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 4096])
def test_batches_of_any_size_give_the_models_own_outputs(model, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(1).normal(size=(50, WINDOW)).astype(np.float32)
    power, status = (np.asarray(o) for o in model(x, training=False))
    out = KerasBackend(model, batch_size=batch_size).run(x)
    assert [o.shape for o in out] == [(50, 1), (50, 1)]
    np.testing.assert_allclose(out[0], power, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], status, rtol=1e-5, atol=1e-6)


def test_a_saved_run_predicts_through_nilm_model_like_an_export(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Normalised with the card, power scaled by it and gated by the status head at the
    card's threshold: the same post-processing the numpy engine applies to a .tflite."""
    model.save(tmp_path / "model.keras")
    card = _card()
    nilm = keras_model(str(tmp_path / "model.keras"), card, batch_size=16)
    watts = np.random.default_rng(2).uniform(0.0, 3000.0, size=(40, WINDOW)).astype(np.float32)
    pred = nilm.predict(watts)
    power, status = (np.asarray(o).reshape(-1) for o in model((watts - 400.0) / 300.0))
    on = status >= 0.5
    np.testing.assert_array_equal(pred.on, on)
    np.testing.assert_allclose(pred.raw_power_w, np.clip(power * 3100.0, 0.0, None), atol=0.05)
    assert np.all(pred.power_w[~on] == 0.0)
    np.testing.assert_allclose(pred.power_w[on], pred.raw_power_w[on])
    # The card's threshold is the one applied (not the sigmoid's 0.5).
    ranked = np.sort(status)
    threshold = float(ranked[19] + ranked[20]) / 2.0  # between two outputs: no tie

    strict = keras_model(
        str(tmp_path / "model.keras"),
        _card(status=dataclasses.replace(card.status, probability_threshold=threshold)),
    )
    np.testing.assert_array_equal(strict.predict(watts).on, status >= threshold)
