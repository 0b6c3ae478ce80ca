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
    names = {p.stem for p in CARDS}
    assert names == {"kettle", "microwave", "dishwasher", "washing_machine", "fridge"}, names


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_bundled_model_loads_and_runs_on_numpy(card_path: Path, data_dir: Path) -> None:
    card = load_card(card_path)  # verifies the sha256 of the .tflite
    assert card.training.get("attribution", "").startswith(REFIT_ATTRIBUTION[:20])
    # Near real time: 30 s for short loads, 2 min for the cycle appliances (whose
    # "Running" target is 5 min), whatever the window length.
    assert card.delay_s <= 120, "bundled models must answer within about two minutes"
    # Measured, not claimed: validation houses and the unseen test house(s).
    assert "validation" in card.metrics
    assert any(key.startswith("test_") for key in card.metrics)
    model = load_model(card_path, backend="numpy")
    quiet = np.full((4, card.window_length), 150.0, dtype=np.float32)
    prediction = model.predict(quiet)
    assert prediction.power_w.shape == (4,)
    assert np.all(prediction.power_w >= 0)
    # A flat 150 W house draws nothing an appliance model should claim.
    assert not prediction.on.any()


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_streaming_tracker_agrees_with_offline_rule(card_path: Path) -> None:
    """The integration's energy (StatusTracker) equals the evaluation's
    (apply_min_durations) under each shipped card's rule, on a trace with flicker, short
    and long runs and gaps; only samples still pending at a gap or the end may differ,
    and the entity turns on when the offline run is confirmed."""
    from custom_components.nilm.engine.metrics import track_status
    from custom_components.nilm.engine.status import apply_min_durations, durations_to_samples

    card = load_card(card_path)
    rule, period = card.status, card.sample_period_s
    rng = np.random.default_rng(7)
    n = 5000
    # Runs of random length separated by random gaps: every duration class occurs.
    lengths = rng.integers(1, 40, size=n)
    raw = np.repeat(np.arange(lengths.size) % 2 == 1, lengths)[:n]
    power = rng.uniform(50.0, 2500.0, size=n)
    valid = np.ones(n, dtype=bool)
    valid[1500:1510] = False  # a gap resets both sides
    valid[3000:3003] = False
    tracked = track_status(raw & valid, power, valid, rule, period)
    min_on = durations_to_samples(rule.min_on_s, period)
    min_off = durations_to_samples(rule.min_off_s, period)
    offline = np.zeros(n, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], valid.astype(np.int8), [0]))))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        offline[start:end] = apply_min_durations(raw[start:end], min_on, min_off)
    offline_kwh = float(np.sum(power[offline])) * period / 3.6e6
    # What may still be pending at each segment's end: at most one run's worth.
    slack = (max(min_on, min_off) + 40) * 2500.0 * period / 3.6e6 * 3
    assert tracked.energy_kwh == pytest.approx(offline_kwh, abs=slack)
    # The entity turns on when the offline run is confirmed: at the first raw "on" sample
    # once the run spans min_on samples (a stream can only confirm on an "on" sample).
    runs = np.flatnonzero(np.diff(np.concatenate(([0], offline.astype(np.int8)))) == 1)
    expected = [int(r + min_on - 1 + np.argmax(raw[r + min_on - 1 :])) for r in runs]
    assert tracked.periods.start.tolist() == expected, card.name
