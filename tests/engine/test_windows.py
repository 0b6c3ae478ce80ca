"""``engine.windows``: a window is used only when all its inputs and its target are real,
and batches hold copies of exactly the requested windows, in order."""

from __future__ import annotations

import numpy as np

from custom_components.nilm.engine.windows import valid_starts, window_batches


def test_a_gap_removes_every_window_over_it_and_a_missing_target_its_window() -> None:
    agg = np.arange(20, dtype=np.float32)
    tgt = np.zeros(20, dtype=np.float32)
    agg[10] = np.nan  # windows of 4 starting 7..10 cover it
    tgt[3] = np.nan  # the window starting at 1 has its target (index 2) there
    starts = valid_starts(agg, tgt, window_length=4, target_index=2)
    assert starts.tolist() == [0, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]
    assert valid_starts(agg, tgt, 4, 2, stride=3).tolist() == [0, 3, 6, 12, 15]


def test_a_series_shorter_than_a_window_has_none() -> None:
    assert valid_starts(np.zeros(3), np.zeros(3), 4, 3).size == 0
    assert valid_starts(np.zeros(4), np.zeros(4), 4, 3).tolist() == [0]


def test_batches_are_the_windows_in_order_and_bounded() -> None:
    series = np.arange(50, dtype=np.float64)
    starts = np.array([0, 5, 7, 30, 46])
    batches = list(window_batches(series, starts, 4, batch=2))
    assert [b.shape for b in batches] == [(2, 4), (2, 4), (1, 4)]
    stacked = np.concatenate(batches)
    assert stacked.dtype == np.float32 and stacked.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(stacked, np.stack([series[s : s + 4] for s in starts]))
    stacked[0, 0] = -1.0  # a copy: the series is untouched
    assert series[0] == 0.0
