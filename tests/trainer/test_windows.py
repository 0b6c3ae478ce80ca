"""Windows, targets, balance and the time split on real REFIT House 2 data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainer.appliances import APPLIANCES
from trainer.data import HouseData, load_refit_30s
from trainer.errors import TrainerError
from trainer.windows import (
    Normalisation,
    WindowConfig,
    balance,
    draw_pooled,
    evaluation_windows,
    make_windows,
    sliding_windows,
    split_by_time,
    valid_starts,
)

L = 99


@pytest.fixture(scope="module")
def house(data_dir: Path) -> HouseData:
    """Two months of House 2 that contain masked stretches (Feb 2014 ends the zero block)."""
    return load_refit_30s(data_dir, 2, ["2014-02", "2014-03"])


def _brute_force_valid(house: HouseData, appliance: str, length: int, t_idx: int) -> np.ndarray:
    """Valid starts by pandas rolling sums - an independent reference."""
    agg_nan = house.frame["aggregate"].isna().astype(int)
    bad = agg_nan.rolling(length).sum().to_numpy()[length - 1 :]
    tgt_nan = house.frame[appliance].isna().to_numpy()[t_idx : t_idx + bad.size]
    return np.flatnonzero((bad == 0) & ~tgt_nan)


def test_target_position() -> None:
    assert WindowConfig(window_length=599).target_index == 299  # classic seq2point
    assert WindowConfig(window_length=599, target_position=1.0).target_index == 598
    assert WindowConfig(window_length=599, target_position=-1).target_index == 598
    assert WindowConfig(window_length=599, target_position=-30).target_index == 569
    assert WindowConfig(window_length=99, target_position=10).target_index == 10
    with pytest.raises(TrainerError, match="outside a window of 99"):
        WindowConfig(window_length=99, target_position=99)
    with pytest.raises(TrainerError, match=r"target fraction must be in \[0, 1\]"):
        WindowConfig(target_position=1.5)
    with pytest.raises(TrainerError, match="on share"):
        WindowConfig(on_share=1.0)


def test_valid_starts_drop_every_window_touching_nan(house: HouseData) -> None:
    assert house.masked_fraction > 0.05  # the fixture really has gaps
    cfg = WindowConfig(window_length=L)
    agg = house.frame["aggregate"].to_numpy()
    target = house.frame["kettle"].to_numpy()
    starts = valid_starts(agg, target, L, cfg.target_index)
    np.testing.assert_array_equal(starts, _brute_force_valid(house, "kettle", L, cfg.target_index))
    windows = sliding_windows(agg, L)[starts]
    assert not np.isnan(windows).any()
    # Stride keeps the multiples of the stride among the same valid starts.
    strided = valid_starts(agg, target, L, cfg.target_index, stride=7)
    np.testing.assert_array_equal(strided, starts[starts % 7 == 0])


def test_windows_and_targets_match_direct_indexing(house: HouseData) -> None:
    for position in (0.5, -1):
        cfg = WindowConfig(window_length=L, target_position=position, on_share=0.5, seed=3)
        split = make_windows(house, "kettle", cfg)
        ws = split.train
        x = ws.inputs()
        assert x.shape == (len(ws), L) and x.dtype == np.float32
        agg = house.frame["aggregate"].to_numpy()
        kettle = house.frame["kettle"].to_numpy()
        rng = np.random.default_rng(0)
        for i in rng.choice(len(ws), size=50, replace=False):
            s = int(ws.starts[i])
            expected = (agg[s : s + L] - split.norm.input_mean_w) / split.norm.input_std_w
            np.testing.assert_allclose(x[i], expected, rtol=1e-4, atol=1e-4)
            t = s + cfg.target_index
            assert ws.targets_w([i])[0] == kettle[t]
            assert ws.targets([i])[0] == pytest.approx(kettle[t] / 3100.0)
            assert ws.status([i])[0] == float(kettle[t] >= 500.0)
        # The same target index as a timestamp: midpoint or last sample of the window.
        s0 = int(ws.starts[0])
        t_time = house.frame.index[s0 + cfg.target_index]
        assert t_time == house.frame.index[s0] + pd.Timedelta(seconds=30 * cfg.target_index)


def test_balanced_sampling(house: HouseData) -> None:
    for share in (0.5, 0.2):
        split = make_windows(house, "kettle", WindowConfig(window_length=L, on_share=share))
        n = len(split.train)
        assert n > 200
        assert split.train.on_share == pytest.approx(share, abs=1.5 / n)
        # Validation keeps the natural (rare) kettle share.
        assert split.validation.on_share < 0.05
    natural = make_windows(house, "kettle", WindowConfig(window_length=L, on_share=None))
    assert natural.train.on_share < 0.05
    assert len(natural.train) > 10 * len(split.train)
    capped = make_windows(
        house, "kettle", WindowConfig(window_length=L, on_share=0.5, max_windows=100)
    )
    assert len(capped.train) == 100
    assert capped.train.on_share == pytest.approx(0.5, abs=0.02)
    # Different seeds draw different off windows; the same seed is reproducible.
    a = make_windows(house, "kettle", WindowConfig(window_length=L, seed=1)).train.starts
    b = make_windows(house, "kettle", WindowConfig(window_length=L, seed=1)).train.starts
    c = make_windows(house, "kettle", WindowConfig(window_length=L, seed=2)).train.starts
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_balance_needs_both_classes() -> None:
    starts = np.arange(10, dtype=np.int64)
    with pytest.raises(TrainerError, match="no windows with the appliance on"):
        balance(starts, np.zeros(10, dtype=bool), 0.5, np.random.default_rng(0))
    with pytest.raises(TrainerError, match="no windows with the appliance off"):
        balance(starts, np.ones(10, dtype=bool), 0.5, np.random.default_rng(0))
    on = np.array([True] * 8 + [False] * 2)  # on is the majority: subsample it
    out = balance(starts, on, 0.5, np.random.default_rng(0))
    assert out.size == 4 and on[out].sum() == 2


def test_split_by_time_has_no_overlap(house: HouseData) -> None:
    cfg = WindowConfig(window_length=L, validation_fraction=0.25, on_share=None)
    split = make_windows(house, "kettle", cfg)
    train, val = split.train.starts, split.validation.starts
    assert train.max() + L <= split.boundary <= val.min()

    # No sample index is shared by a training and a validation window.
    def covered(starts: np.ndarray) -> np.ndarray:
        marks = np.zeros(len(house.frame) + 1, dtype=np.int64)
        np.add.at(marks, starts, 1)
        np.add.at(marks, starts + L, -1)
        return np.cumsum(marks[:-1]) > 0

    assert not (covered(train) & covered(val)).any()
    assert len(val) / (len(val) + len(train)) == pytest.approx(0.25, abs=0.01)
    # Validation is the later block in time.
    assert house.frame.index[val.min()] > house.frame.index[train.max()]
    # Normalisation from the training block only.
    agg = house.frame["aggregate"].to_numpy(dtype=np.float64)
    assert split.norm.input_mean_w == pytest.approx(np.nanmean(agg[: split.boundary]), rel=1e-6)
    assert split.norm.input_mean_w != pytest.approx(np.nanmean(agg), rel=1e-3)
    assert split.norm.power_scale_w == APPLIANCES["kettle"].max_power_w
    # Windows are views into one shared series, not copies.
    assert split.train.aggregate_w is split.validation.aggregate_w
    starts = np.arange(0, 1000, 10, dtype=np.int64)
    tr, va, b = split_by_time(starts, 50, 0.2)
    assert (b, tr.max() + 50 <= b, va.min()) == (800, True, 800)


def test_batches_cover_each_window_once(house: HouseData) -> None:
    split = make_windows(house, "microwave", WindowConfig(window_length=L, max_windows=700))
    seen = []
    for x, y, s in split.train.batches(256, seed=5):
        assert x.shape[1] == L and x.shape[0] == y.shape[0] == s.shape[0] <= 256
        seen.append(y)
    assert sum(len(y) for y in seen) == len(split.train)
    np.testing.assert_allclose(np.sort(np.concatenate(seen)), np.sort(split.train.targets()))


def test_evaluation_windows_use_training_statistics(house: HouseData, data_dir: Path) -> None:
    split = make_windows(house, "kettle", WindowConfig(window_length=L))
    other = load_refit_30s(data_dir, 2, ["2014-05"])
    ev = evaluation_windows(other, "kettle", WindowConfig(window_length=L), split.norm)
    assert ev.norm == split.norm
    assert len(ev) == _brute_force_valid(other, "kettle", L, 49).size
    x = ev.inputs([0])
    s = int(ev.starts[0])
    raw = other.frame["aggregate"].to_numpy()[s : s + L]
    np.testing.assert_allclose(
        x[0] * split.norm.input_std_w + split.norm.input_mean_w, raw, rtol=1e-4, atol=1e-2
    )


def test_empty_selection_is_a_clear_error(house: HouseData) -> None:
    # The longest unmasked stretch fits exactly one window; one sample more fits none.
    ok = np.concatenate(([0], house.frame["aggregate"].notna().to_numpy().astype(np.int8), [0]))
    edges = np.diff(ok)
    longest = int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())
    assert longest < len(house.frame)
    ev = evaluation_windows(
        house, "kettle", WindowConfig(window_length=longest), Normalisation(0.0, 1.0, 1.0, 1.0)
    )
    assert len(ev) >= 1
    with pytest.raises(TrainerError, match=rf"no complete {longest + 1}-sample windows for"):
        make_windows(house, "kettle", WindowConfig(window_length=longest + 1))
    with pytest.raises(TrainerError, match="has no fridge data"):
        make_windows(house, "fridge", WindowConfig(window_length=L))
    with pytest.raises(TrainerError, match="unknown appliance 'toaster'"):
        make_windows(house, "toaster", WindowConfig(window_length=L))
    with pytest.raises(TrainerError, match="no unmasked aggregate"):
        Normalisation.from_training(np.full(10, np.nan), "kettle")


def test_the_pooled_draw_spans_every_pool_without_repeats() -> None:
    pools = [np.arange(0, 10, dtype=np.int64), np.zeros(0, np.int64), np.arange(100, 105)]
    drawn = draw_pooled(pools, 12, np.random.default_rng(0))
    assert [d.size for d in drawn][1] == 0 and sum(d.size for d in drawn) == 12
    every = np.concatenate(drawn)
    assert np.unique(every).size == 12 and set(every) <= set(np.concatenate(pools))
    assert all(np.all(np.diff(d) > 0) for d in drawn)
    assert [d.size for d in draw_pooled(pools, 99, np.random.default_rng(0))] == [10, 0, 5]
