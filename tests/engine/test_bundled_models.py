"""The models shipped in the HACS payload: valid cards, matching hashes, runnable on the
numpy engine (the only backend guaranteed on Home Assistant OS), honest provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from custom_components.nilm.engine import load_model
from custom_components.nilm.engine.card import REFIT_ATTRIBUTION, load_card

BUNDLED = Path(__file__).resolve().parents[2] / "custom_components" / "nilm" / "models"
CARDS = sorted(BUNDLED.glob("*.json"))


def test_models_are_bundled() -> None:
    assert CARDS, f"no bundled model cards in {BUNDLED}"


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_bundled_model_loads_and_runs_on_numpy(card_path: Path, data_dir: Path) -> None:
    card = load_card(card_path)  # verifies the sha256 of the .tflite
    assert card.training.get("attribution", "").startswith(REFIT_ATTRIBUTION[:20])
    assert card.delay_s <= 90, "bundled models must answer within about a minute"
    # Measured, not claimed: validation on the training house and the unseen test house.
    assert "validation" in card.metrics
    assert any(key.startswith("test_house") for key in card.metrics)
    model = load_model(card_path, backend="numpy")
    quiet = np.full((4, card.window_length), 150.0, dtype=np.float32)
    prediction = model.predict(quiet)
    assert prediction.power_w.shape == (4,)
    assert np.all(prediction.power_w >= 0)
    # A flat 150 W house draws nothing an appliance model should claim.
    assert not prediction.on.any()
