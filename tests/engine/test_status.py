"""On/off rules, checked against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.nilm.engine.card import StatusRule
from custom_components.nilm.engine.status import (
    StatusTracker,
    apply_min_durations,
    durations_to_samples,
    status_from_power,
)


def _bools(text: str) -> np.ndarray:
    return np.array([c == "1" for c in text], dtype=bool)


def _text(mask: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in mask)


@pytest.mark.parametrize(
    ("seconds", "period", "samples"),
    [
        (0.0, 30.0, 1),  # no constraint
        (30.0, 30.0, 1),
        (60.0, 30.0, 2),
        (61.0, 30.0, 3),  # partial samples round up
        (90.0, 30.0, 3),
        (0.3, 0.1, 3),  # 0.3 / 0.1 = 2.9999999999999996 must not become 4 or 2
        (1800.0, 8.0, 225),
    ],
)
def test_durations_to_samples(seconds: float, period: float, samples: int) -> None:
    assert durations_to_samples(seconds, period) == samples


@pytest.mark.parametrize(
    ("raw", "min_on", "min_off", "expected"),
    [
        # a 1-sample interior gap is closed; a 3-sample gap is kept
        ("110110001", 1, 2, "111110001"),
        # ... then the lone trailing 'on' is shorter than 2 and dropped
        ("110110001", 2, 2, "111110000"),
        # gaps touching either edge are not bounded by 'on' and stay off
        ("00110", 1, 5, "00110"),
        # gaps are closed before short runs are dropped: 1+1+1 survives min_on=3
        ("101000", 3, 2, "111000"),
        # without min_off the same runs are each too short
        ("101000", 3, 1, "000000"),
        ("000000", 3, 3, "000000"),
        ("111111", 3, 3, "111111"),
        ("", 2, 2, ""),
    ],
)
def test_apply_min_durations(raw: str, min_on: int, min_off: int, expected: str) -> None:
    result = apply_min_durations(_bools(raw), min_on, min_off)
    assert _text(result) == expected


def test_apply_min_durations_does_not_modify_its_input() -> None:
    raw = _bools("101")
    apply_min_durations(raw, 1, 2)
    assert _text(raw) == "101"


def test_status_from_power() -> None:
    power = [0.0, 2500.0, 2500.0, 100.0, 2600.0, 0.0, 0.0]
    rule = StatusRule(on_power_threshold_w=2000.0, min_on_s=60.0, min_off_s=30.0)
    # min_on = 2 samples drops the single sample at index 4; min_off = 1 closes nothing
    assert _text(status_from_power(power, rule, 30.0)) == "0110000"
    rule = StatusRule(on_power_threshold_w=2000.0, min_on_s=60.0, min_off_s=60.0)
    # min_off = 2 closes the 1-sample dip at index 3 first, so the run is 4 long
    assert _text(status_from_power(power, rule, 30.0)) == "0111100"


def test_threshold_is_inclusive() -> None:
    rule = StatusRule(on_power_threshold_w=20.0)
    assert _text(status_from_power([19.999, 20.0, 20.001], rule, 8.0)) == "011"


def _states(tracker: StatusTracker, raw: str) -> str:
    out = []
    for c in raw:
        tracker.update(c == "1")
        out.append("1" if tracker.is_on else "0")
    return "".join(out)


def test_tracker_confirms_changes_after_the_minimum_duration() -> None:
    rule = StatusRule(on_power_threshold_w=1.0, min_on_s=60.0, min_off_s=90.0)
    tracker = StatusTracker(rule, 30.0)  # 2 samples to turn on, 3 to turn off
    raw = "111001000"
    # on confirmed at the 2nd '1'; the '1' at index 5 bridges the short gap,
    # so off is only confirmed after three consecutive '0's (index 8)
    assert _states(tracker, raw) == "011111110"


def test_tracker_bridges_short_gaps_of_a_candidate_run() -> None:
    # A flickering raw status (a dishwasher's heating phase seen by a model) must still
    # become a run: gaps shorter than min_off count towards min_on, as offline.
    rule = StatusRule(on_power_threshold_w=1.0, min_on_s=150.0, min_off_s=90.0)
    tracker = StatusTracker(rule, 30.0)  # 5 samples to turn on, 3 to turn off
    assert _states(tracker, "1010100000") == "0000111000"


def test_tracker_without_constraints_follows_the_raw_state() -> None:
    tracker = StatusTracker(StatusRule(on_power_threshold_w=1.0), 8.0)
    raw = "0110100"
    assert _states(tracker, raw) == raw


def test_tracker_reset_forgets_state_and_candidate() -> None:
    rule = StatusRule(on_power_threshold_w=1.0, min_on_s=16.0)
    tracker = StatusTracker(rule, 8.0)
    assert tracker.update(True, 100.0) == 0.0  # a candidate: held back
    assert tracker.update(True, 100.0) == 200.0  # confirmed: both samples count
    assert tracker.is_on
    tracker.reset()
    assert tracker.is_on is False
    assert tracker.update(True, 100.0) == 0.0  # the old run does not carry over
    tracker.reset()
    assert tracker.update(True, 100.0) == 0.0


@pytest.mark.parametrize(
    ("min_on", "min_off"), [(1, 1), (2, 3), (5, 2), (60, 60), (60, 6), (3, 40)]
)
def test_tracker_energy_equals_the_offline_rule(min_on: int, min_off: int) -> None:
    """Summed over a trace, what the integration counts is exactly what evaluation scores."""
    rng = np.random.default_rng(min_on * 100 + min_off)
    # Bursty on/off with flicker, like a model's raw status.
    raw_on = np.repeat(rng.random(400) < 0.3, rng.integers(1, 12, 400))
    raw_on ^= rng.random(raw_on.size) < 0.05
    power = rng.uniform(0.0, 2500.0, raw_on.size)
    rule = StatusRule(on_power_threshold_w=1.0, min_on_s=30.0 * min_on, min_off_s=30.0 * min_off)
    tracker = StatusTracker(rule, 30.0)
    counted = sum(tracker.update(bool(r), float(p)) for r, p in zip(raw_on, power, strict=True))
    offline = apply_min_durations(raw_on, min_on, min_off)
    # Also at the end of the trace: offline, an unfinished candidate shorter than min_on is
    # dropped and a trailing gap is not bridged; streaming, both are still pending.
    assert counted == pytest.approx(float((power * offline).sum()), rel=1e-9)
