"""engine.adapter: the head re-fit on a household's labels, on the shipped int8 models."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from custom_components.nilm.engine.adapter import (
    AdaptableModel,
    Adapter,
    AdapterError,
    Heads,
    adapt,
    fit_power,
    fit_status,
    head_spec,
    load_adapter,
    locate_head,
    series_for,
)
from custom_components.nilm.engine.card import HeadSpec, ModelCard, load_card
from custom_components.nilm.engine.reader import read_model_file

from .test_model import status_output_of

BUNDLED = Path(__file__).resolve().parents[2] / "custom_components" / "nilm" / "models"
ENGINE_MODELS = Path(__file__).parent / "models"


def _kettle() -> tuple[ModelCard, Path]:
    path = BUNDLED / "kettle.json"
    card = load_card(path)
    graph = read_model_file(path.with_suffix(".tflite"))
    if card.head is None:
        card = replace(card, head=head_spec(graph, card))
    return card, path.with_suffix(".tflite")


@pytest.fixture(scope="module")
def kettle() -> AdaptableModel:
    card, tflite = _kettle()
    return AdaptableModel(card, tflite)


def _mains(seed: int, n: int) -> np.ndarray:
    """A base load with kettle-like 2 kW steps and other loads, in watts."""
    rng = np.random.default_rng(seed)
    mains = 150.0 + 30.0 * rng.random(n)
    for start in rng.integers(0, n - 10, n // 150):
        mains[start : start + rng.integers(3, 8)] += rng.choice([2000.0, 2800.0, 1200.0])
    return mains


def test_every_bundled_model_has_a_head_the_card_can_name() -> None:
    for card_path in sorted(BUNDLED.glob("*.json")):
        card = load_card(card_path)
        graph = read_model_file(card_path.with_suffix(".tflite"))
        spec = head_spec(graph, card)
        assert spec is not None, card.name
        # one compact model's 64 head features, or an ensemble's 64 per member
        members = len(card.training.get("ensemble_of_seeds") or [0])
        assert spec.features == 64 * members, card.name
        if card.head is not None:
            assert card.head == spec, card.name


@pytest.mark.parametrize("name", ["cnn_float32", "cnn_w8_a8"])
def test_float_and_int8_heads_are_found_and_read(name: str) -> None:
    path = ENGINE_MODELS / f"{name}.tflite"
    graph = read_model_file(path)
    status = status_output_of(path)
    card, _ = _kettle()
    card = replace(card, status_output=status, power_output=1 - status, head=None)
    spec = head_spec(graph, card)
    assert spec is not None
    model = AdaptableModel(replace(card, head=spec), path, graph)
    windows = np.lib.stride_tricks.sliding_window_view(_mains(5, 600), 99)[::5]
    shipped, features = model.run(windows)
    again = model.shipped.predict(model.card, features)
    assert shipped.probability is not None and again.probability is not None
    # float32: the same arithmetic in float64; int8: the outputs' rounding on top.
    tolerance = 1e-4 if name.endswith("float32") else 0.02
    assert np.abs(again.probability - shipped.probability).max() < tolerance
    assert np.abs(again.raw_power_w - shipped.raw_power_w).max() < tolerance * card.power_scale_w


def test_a_model_without_dense_heads_has_none() -> None:
    card, _ = _kettle()
    graph = read_model_file(ENGINE_MODELS / "batch_shapes_w8_a8.tflite")
    assert locate_head(graph, replace(card, power_output=0, status_output=0)) is None
    assert locate_head(graph, replace(card, status_output=None)) is None


def test_shipped_heads_reproduce_the_model(kettle: AdaptableModel) -> None:
    windows = np.lib.stride_tricks.sliding_window_view(_mains(0, 3000), 99)[::3]
    shipped, features = kettle.run(windows)
    assert kettle.card.head is not None
    assert features.shape == (len(windows), kettle.card.head.features)
    again = kettle.shipped.predict(kettle.card, features)
    assert shipped.probability is not None and again.probability is not None
    # Only the int8 rounding of the two output tensors separates them.
    assert np.abs(again.probability - shipped.probability).max() < 0.02
    assert np.abs(again.raw_power_w - shipped.raw_power_w).max() < 0.01 * kettle.card.power_scale_w
    plain = kettle.predict(windows)
    np.testing.assert_array_equal(plain.power_w, shipped.power_w)


def test_fit_status_recovers_a_logistic_rule_and_stays_put_when_pulled_hard() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 5))
    true_w = np.array([2.0, -1.0, 0.0, 0.5, 0.0])
    y = rng.random(4000) < 1.0 / (1.0 + np.exp(-(x @ true_w - 0.5)))
    prior = Heads(np.zeros(5), 0.0, np.zeros(5), 0.0, 0.5)
    w, b = fit_status(x, y, prior, strength=1e-6)
    np.testing.assert_allclose(w, true_w, atol=0.2)
    assert abs(b + 0.5) < 0.2
    pinned, _ = fit_status(x, y, prior, strength=1e6)
    np.testing.assert_allclose(pinned, 0.0, atol=1e-4)
    with pytest.raises(AdapterError):
        fit_status(x, np.zeros(4000, bool), prior, strength=1.0)


def test_fit_power_recovers_watts() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((500, 3))
    watts = x @ np.array([1000.0, 200.0, 0.0]) + 1500.0
    prior = Heads(np.zeros(3), 0.0, np.zeros(3), 0.0, 0.5)
    v, c = fit_power(x, watts, prior, strength=1e-9, scale=3000.0)
    np.testing.assert_allclose(v, [1000.0, 200.0, 0.0], atol=1.0)
    assert abs(c - 1500.0) < 1.0


def test_adapt_learns_a_household_whose_kettle_the_model_misjudges(
    kettle: AdaptableModel,
) -> None:
    """A plug that says "on" wherever the shipped head says p >= 0.3 (the card asks
    0.95): a bias and threshold the re-fit can learn, and the newer days prove it."""
    card = kettle.card
    mains = _mains(3, 8 * 2880 // 4)
    probe = series_for(kettle, mains, np.zeros_like(mains))
    assert probe.shipped.probability is not None
    label = np.full(mains.shape, np.nan)
    label[probe.targets] = np.where(probe.shipped.probability >= 0.3, 2000.0, 0.0)
    series = series_for(kettle, mains, label)
    result = adapt(kettle, series)
    assert result.runs_fit >= 3 and result.runs_validation >= 1
    assert result.adopted, result.summary()
    assert result.f1_after is not None and result.f1_before is not None
    assert result.f1_after > result.f1_before
    assert result.heads is not None
    # the card itself is untouched
    assert card.status.probability_threshold == _kettle()[0].status.probability_threshold


def test_each_head_is_adopted_on_its_own_evidence(kettle: AdaptableModel) -> None:
    """A plug that agrees with every on/off decision of the shipped model but meters half
    its watts: F1 cannot improve, the energy can. The power head is re-fitted, the status
    head stays the shipped one, and the newer days' energy comes to the plug's."""
    mains = _mains(5, 8 * 2880 // 4)
    probe = series_for(kettle, mains, np.zeros_like(mains))
    label = np.full(mains.shape, np.nan)
    label[probe.targets] = np.where(probe.shipped.on, 0.5 * probe.shipped.power_w, 0.0)
    result = adapt(kettle, series_for(kettle, mains, label))
    assert result.adopted, result.summary()
    assert result.reason == "energy improved on the newer days (the shipped status head kept)"
    heads = result.heads
    assert heads is not None
    shipped = kettle.shipped
    np.testing.assert_array_equal(heads.status_weights, shipped.status_weights)
    assert (heads.status_bias, heads.threshold) == (shipped.status_bias, shipped.threshold)
    assert not np.allclose(heads.power_weights, shipped.power_weights)
    assert result.energy_metered_kwh is not None
    assert result.energy_before_kwh is not None and result.energy_after_kwh is not None
    before = abs(result.energy_before_kwh - result.energy_metered_kwh)
    after = abs(result.energy_after_kwh - result.energy_metered_kwh)
    assert after < 0.5 * before, result.summary()

    # The same decisions at the model's own watts: nothing to teach, nothing adopted.
    label[probe.targets] = np.where(probe.shipped.on, probe.shipped.power_w, 0.0)
    same = adapt(kettle, series_for(kettle, mains, label))
    assert not same.adopted and same.reason.startswith("no re-fit improved"), same.summary()


def test_adapt_waits_for_enough_runs(kettle: AdaptableModel) -> None:
    mains = np.full(2000, 200.0)
    label = np.zeros(2000)
    label[500:505] = 2000.0
    result = adapt(kettle, series_for(kettle, mains, label))
    assert not result.adopted
    assert result.heads is None
    assert "labelled runs" in result.reason


def test_adapt_moves_the_cut_so_the_newest_run_judges(kettle: AdaptableModel) -> None:
    """Three runs, all in the older 70 % (a week with three washes early on): the cut
    moves before the newest, so two fit and one decides, instead of none."""
    n = 3000
    mains = np.full(n, 200.0)
    label = np.zeros(n)
    for start in (400, 900, 1600):
        mains[start : start + 5] += 2000.0
        label[start : start + 5] = 2000.0
    series = series_for(kettle, mains, label)
    assert series.targets[-1] > 1600 + 0.3 * n  # the 70 % cut alone leaves none after it
    result = adapt(kettle, series)
    assert (result.runs_fit, result.runs_validation) == (2, 1), result.summary()
    assert result.f1_before is not None and result.f1_after is not None


def test_series_needs_a_label_and_one_grid(kettle: AdaptableModel) -> None:
    with pytest.raises(AdapterError, match="label is needed"):
        series_for(kettle, np.zeros(500))
    with pytest.raises(AdapterError, match="same grid"):
        series_for(kettle, np.zeros(500), np.zeros(400))
    with pytest.raises(AdapterError, match="as long as the model's window"):
        series_for(kettle, np.zeros(50), np.zeros(50))
    gaps = np.full(500, np.nan)
    with pytest.raises(AdapterError, match="as long as the model's window"):
        series_for(kettle, gaps, np.zeros(500))


def test_on_off_label_keeps_the_shipped_power_head(kettle: AdaptableModel) -> None:
    mains = _mains(4, 4000)
    on = np.zeros(4000)
    on[::400] = 1.0
    series = series_for(kettle, mains, label_on=on)
    assert np.isnan(series.label_w).all()
    assert series.truth_on.sum() == on[series.targets].sum()


def _adapter(card: ModelCard) -> Adapter:
    assert card.head is not None
    f = card.head.features
    heads = Heads(np.linspace(-1, 1, f), -2.0, np.full(f, 10.0), 5.0, 0.4)
    return Adapter(card.appliance, card.tflite_sha256, heads, {"runs": 7})


def test_adapter_file_round_trip(tmp_path: Path) -> None:
    card, _ = _kettle()
    adapter = _adapter(card)
    path = tmp_path / "adapters" / "kettle.adapter.json"
    adapter.save(path)
    loaded = load_adapter(path, card)
    np.testing.assert_array_equal(loaded.heads.status_weights, adapter.heads.status_weights)
    assert loaded.heads.threshold == 0.4 and loaded.fit == {"runs": 7}
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw.update(model_sha256="0" * 64), "another model file"),
        (lambda raw: raw.update(appliance="fridge"), "is for"),
        (lambda raw: raw["status"].update(weights=[1.0, 2.0]), r"list of \d+ numbers"),
        (lambda raw: raw["power"]["weights"].__setitem__(0, "x"), "numbers only"),
        (lambda raw: raw["status"].update(threshold=1.5), "threshold"),
        (lambda raw: raw["status"]["weights"].__setitem__(3, 1e9), "at most"),
        (lambda raw: raw.update(schema_version=9), "schema_version"),
        (lambda raw: raw.update(fit=[1]), "fit must be"),
    ],
)
def test_a_bad_adapter_is_refused(tmp_path: Path, change: object, message: str) -> None:
    card, _ = _kettle()
    raw = json.loads(_adapter(card).to_json())
    change(raw)  # type: ignore[operator]
    path = tmp_path / "kettle.adapter.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(AdapterError, match=message):
        load_adapter(path, card)


def test_unreadable_adapters_are_refused(tmp_path: Path) -> None:
    card, _ = _kettle()
    with pytest.raises(AdapterError, match="not found"):
        load_adapter(tmp_path / "missing.adapter.json", card)
    broken = tmp_path / "broken.adapter.json"
    broken.write_text('{"schema_version": 1, "status": ')
    with pytest.raises(AdapterError, match="cannot be read"):
        load_adapter(broken, card)
    huge = tmp_path / "huge.adapter.json"
    huge.write_bytes(b" " * (600 * 1024))
    with pytest.raises(AdapterError, match="cannot be read"):
        load_adapter(huge, card)


def test_cards_without_a_head_cannot_be_adapted() -> None:
    card, tflite = _kettle()
    plain = replace(card, head=None)
    with pytest.raises(AdapterError, match="names no head"):
        AdaptableModel(plain, tflite)
    wrong = replace(card, head=HeadSpec("some/other/tensor", 64))
    with pytest.raises(AdapterError, match="does not match"):
        AdaptableModel(wrong, tflite)
    assert "head" not in plain.to_dict()
    assert ModelCard.from_dict(card.to_dict()).head == card.head
