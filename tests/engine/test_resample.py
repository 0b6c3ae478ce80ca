"""Zero-order-hold resampling and gap marking, on real irregular REFIT data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from custom_components.nilm.engine.resample import (
    RingBuffer,
    ZohResampler,
    grid_slots,
    hold_at_slot_middles,
    keepalive_times,
    resample_reports,
)
from scripts.ha_dev.refit import read_refit_csv, refit_30s_file


def _irregular_day(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """REFIT House 20, 2015-01-08: ~7 s irregular raw samples (Unix seconds, watts)."""
    path = data_dir / "refit_1day_20houses" / "house_20_day.csv.gz"
    day = read_refit_csv(path, columns=("Unix", "Aggregate"))
    return day["Unix"], day["Aggregate"]


def _regular_30s(data_dir: Path, n: int) -> np.ndarray:
    path = refit_30s_file(data_dir, 20, "2014-06")
    return read_refit_csv(path, rows=n, columns=("Aggregate",))["Aggregate"]


def test_time_weighted_mean_within_a_slot() -> None:
    res = ZohResampler(30.0, 10, max_gap_s=300)
    res.update(0.0, 100.0)
    res.update(10.0, 400.0)
    assert res.advance(30.0) == 1
    assert res.latest_value() == pytest.approx((100 * 10 + 400 * 20) / 30)
    # The held 400 W fills the next slot completely.
    assert res.advance(60.0) == 1
    assert res.latest_value() == pytest.approx(400.0)


def test_regular_grid_input_is_reproduced_exactly(data_dir: Path) -> None:
    watts = _regular_30s(data_dir, 500)
    res = ZohResampler(30.0, 200, max_gap_s=300)
    t0 = 1_400_000_010.0 - (1_400_000_010.0 % 30)
    for i, w in enumerate(watts):
        res.update(t0 + 30 * i, float(w))
    res.advance(t0 + 30 * len(watts))
    window = res.window(99)
    assert window is not None
    np.testing.assert_allclose(window, watts[-99:])


def test_irregular_real_data_matches_independent_integral(data_dir: Path) -> None:
    ts, watts = _irregular_day(data_dir)
    res = ZohResampler(30.0, 4000, max_gap_s=120)
    for t, w in zip(ts, watts, strict=True):
        res.update(float(t), float(w))
        res.advance(float(t))
    end_slot = math.floor(ts[-1] / 30)
    res.advance(end_slot * 30.0)
    # Independent check: integrate the step function with cumulative sums.
    edges = np.arange(math.floor(ts[0] / 30) + 1, end_slot + 1) * 30.0
    cum = np.concatenate([[0.0], np.cumsum(watts[:-1] * np.diff(ts))])
    idx = np.searchsorted(ts, edges, side="right") - 1
    energy = cum[idx] + watts[idx] * (edges - ts[idx])
    expected = np.diff(energy) / 30.0
    got = res.buffer.latest(len(expected))
    # Real data has a few gaps longer than 120 s: those slots must be missing, not held.
    gaps = np.diff(ts) > 120
    assert np.isnan(got).sum() >= 0
    ok = ~np.isnan(got)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-9)
    if gaps.any():
        assert np.isnan(got).any()


def test_silence_longer_than_max_gap_invalidates_until_refilled(data_dir: Path) -> None:
    watts = _regular_30s(data_dir, 300)
    res = ZohResampler(30.0, 200, max_gap_s=120)
    t = 0.0
    for w in watts[:150]:
        res.update(t, float(w))
        t += 30
    res.advance(t)
    assert res.window(99) is not None
    # Sensor goes silent for 10 minutes: the hold expires, the window becomes invalid.
    res.advance(t + 600)
    assert res.window(99) is None
    # The samples after the last report were rewritten as missing, not kept as held.
    tail = res.buffer.latest(21)
    assert np.isnan(tail[1:]).all()
    t += 600
    for k, w in enumerate(watts[150:]):
        res.update(t, float(w))
        t += 30
        res.advance(t)
        if k < 98:
            assert res.window(99) is None
    window = res.window(99)
    assert window is not None
    np.testing.assert_allclose(window, watts[-99:])


def test_short_missing_stretch_is_bridged_by_the_hold() -> None:
    res = ZohResampler(30.0, 20, max_gap_s=120)
    res.update(0.0, 200.0)
    res.update(30.0, None)  # unavailable for 60 s: shorter than max_gap_s
    res.update(90.0, 300.0)
    res.advance(150.0)
    window = res.window(5)
    assert window is not None
    np.testing.assert_allclose(window, [200, 200, 200, 300, 300])


def test_long_missing_stretch_is_a_gap_and_nan_is_missing() -> None:
    res = ZohResampler(30.0, 20, max_gap_s=60)
    res.update(0.0, 200.0)
    res.update(30.0, float("nan"))
    res.update(45.0, None)
    res.update(200.0, 300.0)
    res.advance(240.0)
    assert res.window(8) is None
    window = res.buffer.latest(8)
    assert window[0] == 200.0  # the slot of the last valid report keeps what was reported
    assert np.isnan(window[1:6]).all()
    np.testing.assert_allclose(window[6:], 300.0)
    # Silence after the last report expires its hold too, retroactively.
    res.advance(300.0)
    assert np.isnan(res.buffer.latest(3)).all()
    assert 0 < res.masked_fraction < 1


def test_clock_stepping_back_never_rewrites_history() -> None:
    res = ZohResampler(10.0, 10, max_gap_s=100)
    res.update(100.0, 50.0)
    res.advance(130.0)
    res.update(120.0, 80.0)  # older than the cursor: applied at the cursor
    res.advance(140.0)
    np.testing.assert_allclose(res.buffer.latest(4), [50.0, 50.0, 50.0, 80.0])


def test_batch_windows_match_streaming_windows(data_dir: Path) -> None:
    watts = _regular_30s(data_dir, 400)
    res = ZohResampler(30.0, 300, max_gap_s=300)
    streamed = []
    for i, w in enumerate(watts):
        res.update(30.0 * i, float(w))
        res.advance(30.0 * i)
        win = res.window(50)
        if i >= 300 - 50 and win is not None:
            streamed.append(win)
    res.advance(30.0 * len(watts))
    batch, valid = res.windows(50, 10)
    assert valid.all()
    np.testing.assert_allclose(batch[-1], watts[-50:])
    np.testing.assert_allclose(batch[0], watts[-59:-9])
    np.testing.assert_allclose(batch[-2], streamed[-1])


def test_long_outage_is_filled_in_bulk_and_reports_missing_slots() -> None:
    res = ZohResampler(1.0, 100, max_gap_s=5)
    res.update(0.0, 10.0)
    closed = res.advance(30 * 86400.0)  # a month without data: must not loop per slot
    assert closed == 30 * 86400
    assert res.window(1) is None
    assert res.buffer.filled() == 0
    assert res.masked_fraction > 0.99


def test_advance_before_any_update_starts_the_clock() -> None:
    res = ZohResampler(30.0, 10, max_gap_s=60)
    assert res.advance(1000.0) == 0
    assert res.newest_slot is None
    assert res.latest_value() is None
    assert res.advance(1100.0) == 3
    assert res.window(3) is None


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="period_s"):
        ZohResampler(0.0, 10, 60)
    with pytest.raises(ValueError, match="max_gap_s"):
        ZohResampler(30.0, 10, 0)
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(0)
    buf = RingBuffer(4)
    buf.push(10, 1.0)
    with pytest.raises(ValueError, match="older"):
        buf.push(9, 1.0)
    with pytest.raises(ValueError, match="exceeds"):
        buf.latest(5)
    buf.push(12, 2.0)
    np.testing.assert_allclose(buf.latest(3), [1.0, np.nan, 2.0])
    assert buf.filled() == 2
    assert buf.invalidate_from(20) == 0
    assert buf.invalidate_from(0) == 2


def test_the_batch_grid_is_the_streaming_grid_of_the_same_reports(data_dir: Path) -> None:
    """resample_reports (the trainer's recorder and history imports) equals the live
    resampler fed report by report with ticks in between, on a real irregular day with
    unavailable reports and silences both shorter and longer than max_gap_s."""
    times, watts = _irregular_day(data_dir)
    rng = np.random.default_rng(7)
    values = watts.astype(np.float64).copy()
    values[rng.random(values.size) < 0.02] = np.nan  # 'unavailable' reports
    keep = np.ones(values.size, dtype=bool)
    for start in rng.choice(values.size - 200, 12, replace=False):  # silences
        keep[start : start + rng.integers(5, 120)] = False
    times, values = times[keep], values[keep]
    period, gap = 30.0, 120.0
    first = math.ceil(times[0] / period)
    slots = math.floor(times[-1] / period) - first

    live = ZohResampler(period, slots + 10, max_gap_s=gap)
    for ts, value in zip(times.tolist(), values.tolist(), strict=True):
        if rng.random() < 0.3:
            live.advance(ts - rng.random())  # a coordinator tick before the report
        live.update(ts, None if math.isnan(value) else value)
    live.advance((first + slots) * period)
    streamed = grid_slots(live, first, slots)

    batch = resample_reports(
        times, values, period_s=period, max_gap_s=gap, first_slot=first, slots=slots
    )
    np.testing.assert_array_equal(np.isnan(batch), np.isnan(streamed))
    np.testing.assert_allclose(batch, streamed, rtol=1e-12)
    assert 0.01 < np.isnan(batch).mean() < 0.5  # the silences made real gaps


def test_keepalive_points_keep_a_constant_row_alive_until_its_last_report() -> None:
    times = keepalive_times(0.0, 1000.0, max_gap_s=300.0)
    assert times == [0.0, 150.0, 300.0, 450.0, 600.0, 750.0, 900.0, 1000.0]
    grid = resample_reports(
        times, [5.0] * len(times), period_s=30.0, max_gap_s=300.0, first_slot=0, slots=60
    )
    assert np.all(grid[:34] == 5.0)  # alive until 1000 s (slot 33 holds the last report)
    assert np.isnan(grid[34:]).all()  # then silent for longer than max_gap_s: a gap
    assert keepalive_times(0.0, 0.0, 300.0) == [0.0]


def test_an_on_off_label_holds_until_it_changes_read_at_slot_middles() -> None:
    out = hold_at_slot_middles([100.0, 400.0], [1.0, 0.0], period_s=60.0, first_slot=0, slots=10)
    np.testing.assert_array_equal(out[:3], [np.nan, np.nan, 1.0])  # middles 30, 90, 150 s
    assert out[6] == 1.0 and out[7] == 0.0 and out[9] == 0.0  # 390 s on, 450 s off
