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


def test_compute_all_takes_truth_from_the_truth_rule() -> None:
    # The card's rule (prediction) needs 150 W; the appliance's truth rule 50 W.
    card_rule = StatusRule(on_power_threshold_w=150.0)
    truth = StatusRule(on_power_threshold_w=50.0)
    true = np.array([0, 80, 80, 0, 200, 0], dtype=float)
    pred = np.array([0, 0, 100, 0, 200, 0], dtype=float)
    old = metrics.compute_all(true, pred, card_rule, 30.0)
    # Old callers: both sides at 150 W -> truth {4}, prediction {4}.
    assert old["f1"] == pytest.approx(1.0)
    assert old["true_events"] == 1
    new = metrics.compute_all(true, pred, card_rule, 30.0, truth_rule=truth)
    # Truth at 50 W: {1, 2, 4} (2 events); prediction still at 150 W: {4}.
    assert new["true_events"] == 2
    assert new["recall"] == pytest.approx(1 / 3)
    assert new["f1"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 2))
    assert new["event_recall"] == pytest.approx(1 / 2)
    assert new["event_precision"] == pytest.approx(1.0)


#                 0  1  2  3  4  5  6  7  8  9 10 11 12 13
EVENT_TRUE = [0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0]
EVENT_PRED = [0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0]


def test_event_bounds_are_runs_of_true() -> None:
    starts, ends = metrics.event_bounds(EVENT_TRUE)
    assert starts.tolist() == [1, 5, 8, 12]
    assert ends.tolist() == [3, 6, 11, 13]
    starts, ends = metrics.event_bounds([1, 1, 0, 1])
    assert starts.tolist() == [0, 3] and ends.tolist() == [2, 4]


def test_event_recall_and_precision_by_hand() -> None:
    # True events A[1,3) B[5,6) C[8,11) D[12,13); predicted P1[2,4) P2[7,8) P3[10,13).
    # P1 overlaps A; P2 only touches C's edge (index 7 is off in the truth); P3 overlaps
    # C and D. Detected: A, C, D (3 of 4); correct: P1, P3 (2 of 3).
    match = metrics.match_events(EVENT_TRUE, EVENT_PRED)
    assert (match.true_events, match.detected) == (4, 3)
    assert (match.predicted_events, match.correct) == (3, 2)
    assert metrics.event_recall(EVENT_TRUE, EVENT_PRED) == pytest.approx(3 / 4)
    assert metrics.event_precision(EVENT_TRUE, EVENT_PRED) == pytest.approx(2 / 3)
    # Swapping the roles swaps recall and precision.
    assert metrics.event_recall(EVENT_PRED, EVENT_TRUE) == pytest.approx(2 / 3)
    assert math.isnan(metrics.event_recall([0, 0, 0], [1, 0, 0]))
    assert math.isnan(metrics.event_precision([0, 1, 0], [0, 0, 0]))
    assert metrics.event_recall([0, 1, 0], [0, 0, 0]) == 0.0
    with pytest.raises(ValueError):
        metrics.match_events([0, 1], [0, 1, 0])


def test_compute_all_splits_events_at_masked_truth() -> None:
    rule = StatusRule(on_power_threshold_w=50.0)
    true = np.array([0, 100, math.nan, 100, 0], dtype=float)
    pred = np.array([0, 0, 0, 100, 0], dtype=float)
    out = metrics.compute_all(true, pred, rule, 30.0)
    # The NaN cuts the truth into two events; only the second is detected.
    assert out["true_events"] == 2
    assert out["event_recall"] == pytest.approx(0.5)
    assert out["event_precision"] == pytest.approx(1.0)


# Streaming tracker: 30 s samples, min_on = min_off = 60 s (2 samples), latency 60 s.
TRACK_RULE = StatusRule(on_power_threshold_w=0.0, min_on_s=60.0, min_off_s=60.0)


def _tracker_trace() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = 30
    true_on = np.zeros(n, dtype=bool)
    raw_on = np.zeros(n, dtype=bool)
    valid = np.ones(n, dtype=bool)
    true_on[3:8] = True  # event 1: [3, 8)
    raw_on[4:9] = True  # the model sees it one sample late and one sample longer
    raw_on[14] = True  # a one-sample blip: never confirmed
    true_on[17:22] = True  # event 2, cut by a gap at 21
    raw_on[17:23] = True
    valid[21] = False
    power = np.where(raw_on, 100.0, 10.0)  # 10 W of raw power in the off samples
    return true_on, raw_on, valid, power


def test_tracker_on_off_delays_by_hand() -> None:
    true_on, raw_on, valid, power = _tracker_trace()
    tracked = metrics.track_status(raw_on, power, valid, TRACK_RULE, 30.0, latency_s=60.0)
    # Event 1: raw on from 4, confirmed (2 samples) at 5; raw off from 9, off confirmed
    # (2 samples) at 10. Event 2: raw on from 17, confirmed at 18; the gap at 21 resets.
    assert tracked.periods.start.tolist() == [5, 18]
    assert tracked.periods.end.tolist() == [10, 21]
    assert tracked.periods.off_known.tolist() == [True, False]
    assert np.flatnonzero(tracked.is_on).tolist() == [5, 6, 7, 8, 9, 18, 19, 20]
    # Decisions exist 60 s after their target sample's time.
    assert tracked.periods.on_time_s.tolist() == [5 * 30 + 60, 18 * 30 + 60]
    delays = metrics.running_delays(true_on, tracked.periods, 30.0, valid)
    assert delays.true_events == 2
    assert delays.matched == 2
    # On: 210 s - 90 s = 120 s (one sample late + min_on confirmation + latency) and
    # 600 s - 510 s = 90 s. Off, event 1 only (event 2 ends in the gap): 360 s - 240 s.
    assert delays.on_delays_s.tolist() == [120.0, 90.0]
    assert delays.off_delays_s.tolist() == [120.0]
    assert delays.on_delay_s == pytest.approx(105.0)
    assert delays.off_delay_s == pytest.approx(120.0)
    without_latency = metrics.track_status(raw_on, power, valid, TRACK_RULE, 30.0)
    assert metrics.running_delays(
        true_on, without_latency.periods, 30.0, valid
    ).on_delays_s.tolist() == [60.0, 30.0]
    out = metrics.delay_metrics(delays)
    assert out["running_on_delay_events"] == 2 and out["running_off_delay_events"] == 1


def test_tracker_energy_matches_offline_min_durations_per_valid_stretch() -> None:
    from custom_components.nilm.engine.status import apply_min_durations

    _, raw_on, valid, power = _tracker_trace()
    tracked = metrics.track_status(raw_on, power, valid, TRACK_RULE, 30.0, latency_s=60.0)
    # Certain watt-samples: 4..8 and 17..20 at 100 W; the blip at 14, the off samples and
    # the unconfirmed candidate at 22 after the gap count nothing.
    assert tracked.energy_kwh == pytest.approx(900 * 30 / 3.6e6)
    offline = 0.0
    for lo, hi in ((0, 21), (22, 30)):  # the valid stretches: a gap resets the tracker
        on = apply_min_durations(raw_on[lo:hi], 2, 2)
        offline += float(np.sum(power[lo:hi][on]))
    assert tracked.energy_kwh == pytest.approx(offline * 30 / 3.6e6)


def test_running_delays_need_known_starts_and_ends() -> None:
    # A true event at sample 0 has no known start; the tracker's own run is still used
    # for its off delay. No periods at all -> nothing matched.
    true_on = np.array([1, 1, 0, 0, 0], dtype=bool)
    raw_on = np.array([1, 1, 1, 0, 0], dtype=bool)
    rule = StatusRule(on_power_threshold_w=0.0)
    tracked = metrics.track_status(raw_on, np.ones(5), np.ones(5, dtype=bool), rule, 10.0)
    delays = metrics.running_delays(true_on, tracked.periods, 10.0)
    assert delays.matched == 1
    assert delays.on_delays_s.size == 0
    assert delays.off_delays_s.tolist() == [10.0]
    none = metrics.running_delays(true_on, metrics.RunningPeriods.empty(), 10.0)
    assert none.matched == 0 and math.isnan(none.on_delay_s)
