"""The rule baseline on hand-made mains traces (30 s samples, watts)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from trainer import baselines
from trainer.errors import TrainerError

P = 30.0
BASE_W = 300.0


def _kettle_trace() -> np.ndarray:
    mains = np.full(160, BASE_W)
    mains[40:46] += 2500.0  # a 3-minute boil...
    mains[46] += 1000.0  # ...whose last 30 s average is only partly on
    mains[76:96] += 2500.0  # a 10-minute 2.5 kW load: too long for a kettle
    mains[120:126] += 1000.0  # a 3-minute 1 kW load: too small for a kettle
    return mains


def test_kettle_step_is_found_with_its_power() -> None:
    pred = baselines.predict_rule(_kettle_trace(), "kettle", P)
    assert pred.steps == 1
    # The run's edges are taken at half the step: the partial sample 46 belongs to it.
    assert np.flatnonzero(pred.on).tolist() == list(range(40, 47))
    np.testing.assert_allclose(pred.power_w[40:46], 2500.0)
    assert pred.power_w[46] == pytest.approx(1000.0)
    assert np.all(pred.power_w[~pred.on] == 0.0)
    # A live automation could say "running" once the step lasted 1 min: at sample 41.
    assert set(pred.confirmed_at[pred.on].tolist()) == {41}
    assert np.all(pred.confirmed_at[~pred.on] == -1)


def test_too_long_and_too_small_steps_are_not_a_kettle() -> None:
    pred = baselines.predict_rule(_kettle_trace(), baselines.RULES["kettle"], P)
    assert not pred.on[76:96].any()
    assert not pred.on[120:126].any()
    # The microwave's band (0.8-1.6 kW, 0.5-10 min) takes the 1 kW load instead.
    micro = baselines.predict_rule(_kettle_trace(), "microwave", P)
    assert np.flatnonzero(micro.on).tolist() == list(range(120, 126))
    np.testing.assert_allclose(micro.power_w[120:126], 1000.0)
    # A longer kettle rule accepts the 10-minute load (the baseline still sees 300 W).
    long_rule = dataclasses.replace(
        baselines.RULES["kettle"], max_duration_s=900.0, baseline_s=1200.0
    )
    assert baselines.predict_rule(_kettle_trace(), long_rule, P).on[76:96].all()


def test_rule_is_period_independent_and_skips_masked_mains() -> None:
    mains = _kettle_trace()
    mains[43] = math.nan  # masked: nothing is known there
    pred = baselines.predict_rule(mains, "kettle", P)
    assert not pred.on[43]
    assert pred.power_w[43] == 0.0
    # At 60 s the same boil is 3-4 samples and still a kettle (durations are seconds).
    coarse = np.nanmean(_kettle_trace()[:160].reshape(-1, 2), axis=1)
    assert baselines.predict_rule(coarse, "kettle", 60.0).on[20:23].all()


def test_cycle_rule_runs_around_the_first_heating_step() -> None:
    rule = baselines.RULES["dishwasher"]
    mains = np.full(400, 200.0)
    heat = 60
    mains[heat : heat + 24] += 2200.0  # 12 min heating
    mains[heat + 100 : heat + 120] += 2200.0  # second heating inside the same cycle
    pred = baselines.predict_rule(mains, rule, P)
    before = round(rule.before_s / P)  # 38 samples
    after = round(rule.after_s / P)  # 250 samples
    assert np.flatnonzero(pred.on).tolist() == list(range(heat - before, heat + after))
    np.testing.assert_allclose(pred.power_w[heat : heat + 24], 2200.0)
    np.testing.assert_allclose(pred.power_w[heat + 100 : heat + 120], 2200.0)
    assert pred.power_w[heat - 1] == pytest.approx(rule.running_w)
    assert pred.power_w[heat + 50] == pytest.approx(rule.running_w)
    # Confirmed once the heater ran 5 min (10 samples), not at the window's start.
    assert set(pred.confirmed_at[pred.on].tolist()) == {heat + 9}
    # A 3-minute heater burst is no cycle.
    short = np.full(400, 200.0)
    short[60:66] += 2200.0
    assert not baselines.predict_rule(short, rule, P).on.any()


def test_rules_are_data_for_every_appliance() -> None:
    from trainer.appliances import APPLIANCES

    assert set(baselines.RULES) == set(APPLIANCES)
    for name, rule in baselines.RULES.items():
        assert rule.appliance == name and rule.summary
        assert rule.baseline_s > rule.max_duration_s
    with pytest.raises(TrainerError, match="no rule baseline"):
        baselines.get_rule("toaster")
    with pytest.raises(ValueError):
        baselines.StepRule("x", 100.0, 50.0, 0.0, 60.0, baseline_s=120.0)
