"""Synthetic aggregates: what is added is exactly the (transformed) sub-meter activations,
masked data never enters, and the bundled recipes never read the test house."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from custom_components.nilm.engine.card import StatusRule
from trainer import recipes
from trainer.appliances import truth_rule
from trainer.data import DataConfig, load_refit_30s
from trainer.errors import TrainerError
from trainer.synthetic import (
    Activation,
    Background,
    SyntheticConfig,
    extract_activations,
    generate,
    off_starts,
    transform,
    truth_status,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "refit_30s").is_dir(), reason="no shared data")


@pytest.fixture(scope="module")
def house2_month() -> tuple[np.ndarray, np.ndarray]:
    house = load_refit_30s(
        DATA / "refit_30s", 2, months=["2014-03"], config=DataConfig(period_s=60)
    )
    frame = house.frame
    return (
        frame["aggregate"].to_numpy(dtype=np.float32),
        frame["dishwasher"].to_numpy(dtype=np.float32),
    )


def test_truth_status_never_bridges_masked_samples() -> None:
    rule = StatusRule(on_power_threshold_w=10.0, min_on_s=0.0, min_off_s=600.0)
    power = np.array([0, 50, 50, 0, 0, 50, 50, 0, np.nan, 50, 50, 0], dtype=np.float32)
    on = truth_status(power, rule, 60.0)
    # The 2-sample gap is bridged (min_off 10 samples); the NaN breaks the run.
    assert on.tolist() == [
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]


def test_activations_skip_runs_that_touch_masked_data() -> None:
    rule = StatusRule(on_power_threshold_w=10.0)
    power = np.zeros(40, dtype=np.float32)
    power[5:9] = 100.0  # clean run
    power[20:24] = 200.0
    power[25] = np.nan  # inside the second run's padding
    acts = extract_activations(power, rule, 60.0, pad=2, source="test")
    assert len(acts) == 1
    assert acts[0].power_w.tolist() == [0, 0, 100, 100, 100, 100, 0, 0]
    assert acts[0].on.tolist() == [False, False, True, True, True, True, False, False]


def test_background_windows_are_unmasked_and_target_off() -> None:
    agg = np.arange(20, dtype=np.float32)
    agg[3] = np.nan
    on = np.zeros(20, dtype=bool)
    on[12] = True
    starts = off_starts(agg, on, 4)
    for s in starts:
        assert np.all(np.isfinite(agg[s : s + 4])) and not on[s : s + 4].any()
    assert starts.tolist() == [4, 5, 6, 7, 8, 13, 14, 15, 16]


def test_transform_scales_energy_by_the_amplitude_factor() -> None:
    act = Activation(
        np.array([0, 100, 200, 100, 0], np.float32), np.array([0, 1, 1, 1, 0], bool), "t"
    )
    rng = np.random.default_rng(1)
    power, on = transform(act, rng, 0.15, 0.0)
    factor = power.sum() / act.power_w.sum()
    assert 0.85 <= factor <= 1.15
    np.testing.assert_allclose(power, act.power_w * factor, rtol=1e-6)
    assert on.tolist() == act.on.tolist()
    stretched, son = transform(act, np.random.default_rng(2), 0.0, 0.3)
    assert 3 <= stretched.size <= 7 and son.size == stretched.size
    assert stretched.max() == pytest.approx(200.0, rel=0.5)


@needs_data
def test_generated_windows_are_background_plus_added_activations(house2_month) -> None:
    agg, dish = house2_month
    rule = truth_rule("dishwasher")
    on = truth_status(dish, rule, 60.0)
    targets = extract_activations(dish, rule, 60.0, pad=5, source="REFIT house 2")
    assert len(targets) >= 5, "March 2014 of House 2 has dishwasher cycles"
    length, t_idx = 256, 253
    bg = Background(agg, off_starts(agg, on, length), "REFIT house 2")
    kettle_like = [Activation(np.full(3, 2500.0, np.float32), np.ones(3, bool), "k")]
    cfg = SyntheticConfig(amplitude=0.0, stretch=0.0, distractor_probability=0.5, clip_w=None)
    syn = generate(
        400, length, t_idx, backgrounds=[bg], targets=targets, distractors=kettle_like,
        config=cfg, rng=np.random.default_rng(0), keep_parts=True,
    )  # fmt: skip
    assert syn.background_w is not None and syn.target_part_w is not None
    assert syn.distractor_part_w is not None
    # Nothing invented: mains = real background + what was added, sample by sample.
    np.testing.assert_allclose(
        syn.mains_w, syn.background_w + syn.target_part_w + syn.distractor_part_w, atol=1e-3
    )
    # Every background is a real target-off window of the house, unmasked.
    assert np.all(np.isfinite(syn.background_w))
    # Labels are what was added at the target index.
    np.testing.assert_array_equal(syn.target_w, syn.target_part_w[:, t_idx])
    assert syn.on.any() and (~syn.on).any()
    assert np.all(syn.target_w[syn.on] >= 0)
    # Energy: with no amplitude jitter every added target sample is a sub-meter sample,
    # so each window's added energy is a contiguous slice of one real activation.
    energies = {round(float(a.power_w.sum()), 1) for a in targets}
    sums = syn.target_part_w.sum(axis=1)
    whole = [s for s in sums if s > 0]
    assert whole
    for row in syn.target_part_w[sums > 0]:
        nz = np.flatnonzero(row)
        span = row[nz[0] : nz[-1] + 1]
        assert any(_is_slice(span, a.power_w) for a in targets), (
            "an added activation is not a slice of a real one"
        )
    assert max(energies) >= max(sums) - 1e-3


def _is_slice(span: np.ndarray, power: np.ndarray) -> bool:
    n = span.size
    if n > power.size:
        return False
    view = np.lib.stride_tricks.sliding_window_view(power, n)
    return bool(np.any(np.all(np.abs(view - span) < 1e-3, axis=1)))


def test_clip_matches_the_dataset_clip() -> None:
    agg = np.full(50, 5000.0, dtype=np.float32)
    bg = Background(agg, np.arange(10, dtype=np.int64), "h")
    act = Activation(np.full(10, 2000.0, np.float32), np.ones(10, bool), "a")
    cfg = SyntheticConfig(amplitude=0.0, on_share=1.0, distractor_probability=0.0)
    syn = generate(
        5,
        20,
        18,
        backgrounds=[bg],
        targets=[act],
        distractors=[],
        config=cfg,
        rng=np.random.default_rng(0),
    )
    assert syn.mains_w.max() == 6000.0
    assert np.all(syn.on) and np.all(syn.target_w == 2000.0)


def test_recipes_keep_the_test_house_out_of_training_and_validation() -> None:
    for recipe in recipes.load_recipes().values():
        for part in ("train", "validation"):
            for text in recipe.split[part]:
                kind, items, _ = recipes.parse_source(text)
                assert not (kind in ("refit30s", "refit_day") and 20 in items), (recipe, text)
    with pytest.raises(TrainerError, match="test house"):
        recipes.load_source("refit_day:5,20", DATA, 60.0, "kettle", "train")
    with pytest.raises(TrainerError, match="test house"):
        recipes.load_source("refit30s:20", DATA, 60.0, "kettle", "validation")


def test_loading_a_recipe_never_opens_a_test_house_file(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, object]] = []

    def spy(source: str, **kwargs: object) -> object:
        opened.append((source, kwargs.get("house")))
        raise TrainerError("stop here")  # no need to read the data

    monkeypatch.setattr(recipes, "load", spy)
    for recipe in recipes.load_recipes().values():
        for part in ("train", "validation"):
            for text in recipe.split[part]:
                with pytest.raises(TrainerError):
                    recipes.load_source(text, DATA, recipe.period_s, recipe.appliance, part)
    houses = {h for source, h in opened if source in ("refit30s", "refit-day")}
    assert houses and 20 not in houses
