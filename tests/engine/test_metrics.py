"""Metrics against values worked out by hand on small arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from custom_components.nilm.engine import metrics
from custom_components.nilm.engine.card import StatusRule

TRUE_W = [0.0, 100.0, 200.0, 0.0]
PRED_W = [10.0, 80.0, 230.0, 0.0]


def test_power_metrics_by_hand() -> None:
    # |errors| = 10, 20, 30, 0
    assert metrics.mae(TRUE_W, PRED_W) == pytest.approx(15.0)
    # energies 320 vs 300
    assert metrics.sae(TRUE_W, PRED_W) == pytest.approx(20 / 300)
    # (100 + 400 + 900) / (10000 + 40000)
    assert metrics.nde(TRUE_W, PRED_W) == pytest.approx(1400 / 50000)


def test_energy_per_day_cuts_days_by_sample_count() -> None:
    # 12 h samples: day 1 = (10 - 20) W * 12 h = -120 Wh, day 2 = 30 W * 12 h = 360 Wh.
    assert metrics.energy_per_day_error(TRUE_W, PRED_W, 43_200) == pytest.approx(240.0)
    # 6 h samples: one day, errors cancel partly: (10 - 20 + 30) W * 6 h = 120 Wh.
    assert metrics.energy_per_day_error(TRUE_W, PRED_W, 21_600) == pytest.approx(120.0)
    with pytest.raises(ValueError):
        metrics.energy_per_day_error(TRUE_W, PRED_W, 0)


def test_masked_truth_is_ignored_not_counted_as_zero() -> None:
    true = [math.nan, 100.0, 200.0]
    pred = [5000.0, 90.0, 230.0]
    assert metrics.mae(true, pred) == pytest.approx(20.0)
    assert metrics.sae(true, pred) == pytest.approx(20 / 300)
    # 12 h samples: day 1 = [nan, 100] -> -10 W * 12 h, day 2 = [200] -> +30 W * 12 h.
    assert metrics.energy_per_day_error(true, pred, 43_200) == pytest.approx((120 + 360) / 2)


def test_undefined_ratios_are_nan() -> None:
    zeros = np.zeros(5)
    assert math.isnan(metrics.sae(zeros, zeros))
    assert math.isnan(metrics.nde(zeros, zeros))
    assert math.isnan(metrics.f1_score(zeros, zeros))
    assert math.isnan(metrics.mcc(zeros, zeros))
    assert metrics.accuracy(zeros, zeros) == 1.0
    assert math.isnan(metrics.mae([], []))
    with pytest.raises(ValueError):
        metrics.mae([1.0, 2.0], [1.0])


def test_classification_metrics_by_hand() -> None:
    true_on = [1, 1, 0, 0, 1, 0]
    pred_on = [1, 0, 1, 0, 1, 0]
    assert metrics.confusion(true_on, pred_on) == (2, 1, 1, 2)
    assert metrics.accuracy(true_on, pred_on) == pytest.approx(4 / 6)
    assert metrics.precision(true_on, pred_on) == pytest.approx(2 / 3)
    assert metrics.recall(true_on, pred_on) == pytest.approx(2 / 3)
    assert metrics.f1_score(true_on, pred_on) == pytest.approx(2 / 3)
    # (tp*tn - fp*fn) / sqrt(3*3*3*3) = (4 - 1) / 9
    assert metrics.mcc(true_on, pred_on) == pytest.approx(1 / 3)
    assert metrics.mcc(true_on, np.logical_not(true_on)) == pytest.approx(-1.0)


def test_mcc_does_not_overflow_on_long_series() -> None:
    n = 4_000_000
    true_on = np.zeros(n, dtype=bool)
    true_on[: n // 2] = True
    pred_on = true_on.copy()
    pred_on[:10] = False
    assert 0.99 < metrics.mcc(true_on, pred_on) <= 1.0


def test_onsets_ignore_a_series_that_starts_on() -> None:
    assert metrics.onsets([1, 1, 0, 1, 0, 0, 1]).tolist() == [3, 6]


def test_detection_delay_by_hand() -> None:
    #            0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17
    true_on = [0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    pred_on = [0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    match = metrics.match_onsets(true_on, pred_on, 30.0, tolerance_s=60.0)
    # 2 -> 3 (+30 s), 7 -> 9 (+60 s), 14 -> 17 is 90 s away: beyond the tolerance.
    assert match.true_onsets == 3
    assert match.predicted_onsets == 3
    assert match.delays_s.tolist() == [30.0, 60.0]
    assert metrics.detection_delay(true_on, pred_on, 30.0, 60.0) == pytest.approx(45.0)
    assert metrics.detection_delay(true_on, pred_on, 30.0, 90.0) == pytest.approx(60.0)


def test_detection_matches_one_to_one_and_early_is_negative() -> None:
    true_on = [0, 0, 1, 0, 1, 0]
    pred_on = [0, 1, 0, 0, 0, 0]
    match = metrics.match_onsets(true_on, pred_on, 10.0, tolerance_s=60.0)
    # One predicted onset can pay for one true onset only.
    assert match.delays_s.tolist() == [-10.0]
    assert math.isnan(metrics.detection_delay([0, 1, 1], [0, 0, 0], 10.0))


def test_compute_all_uses_the_status_rule_and_masks() -> None:
    rule = StatusRule(on_power_threshold_w=50.0, min_on_s=60.0, min_off_s=0.0)
    # 30 s period: min_on = 2 samples, so the single 80 W spike at index 1 of the truth
    # is not 'on'; the prediction's 2-sample run at 7..8 is.
    true = np.array([0, 80, 0, 0, 100, 100, 100, 0, 0, math.nan, 0, 0], dtype=float)
    pred = np.array([0, 0, 0, 0, 0, 90, 90, 90, 90, 500, 0, 0], dtype=float)
    out = metrics.compute_all(true, pred, rule, 30.0, tolerance_s=60.0)
    # true on: 4,5,6; pred on: 5,6,7,8,9 (9 masked in the truth -> dropped)
    # valid samples: 11; tp = 2 (5, 6), fp = 2 (7, 8), fn = 1 (4), tn = 6
    assert out["samples"] == 11
    assert out["accuracy"] == pytest.approx(8 / 11)
    assert out["f1"] == pytest.approx(4 / 7)
    assert out["mcc"] == pytest.approx((2 * 6 - 2 * 1) / math.sqrt(4 * 3 * 7 * 8))
    assert out["detection_delay_s"] == pytest.approx(30.0)
    assert out["true_onsets"] == 1
    assert out["mae_w"] == pytest.approx(metrics.mae(true, pred))
    assert out["mae_w"] == pytest.approx((80 + 100 + 10 + 10 + 90 + 90) / 11)
    # A status head's decision overrides the power rule.
    gated = metrics.compute_all(true, pred, rule, 30.0, pred_on=np.isfinite(true) & (true > 0))
    assert gated["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))
    json.dumps(out)  # plain floats only
