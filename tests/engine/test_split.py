"""``time_cut``: the household split keeps the preferred cut when both sides hold enough
runs, else moves into the off gap before the newest runs, never through a run."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.nilm.engine.split import runs_each_side, time_cut


def _on(n: int, runs: list[tuple[int, int]]) -> np.ndarray:
    on = np.zeros(n, dtype=bool)
    for start, end in runs:
        on[start:end] = True
    return on


def test_a_cut_that_already_works_is_kept() -> None:
    on = _on(100, [(10, 15), (40, 45), (80, 85)])
    assert time_cut(on, 60, min_before=2, min_after=1) == 60


def test_every_run_before_the_cut_moves_it_before_the_newest_run() -> None:
    # A week with three washes, all in the older 75 %: the newest one validates.
    on = _on(1000, [(100, 160), (180, 240), (500, 570)])
    cut = time_cut(on, 750, min_before=1, min_after=1)
    assert cut == 500 and runs_each_side(on, cut) == (2, 1)
    # With a window's history: as far ahead of the run as the gap allows.
    assert time_cut(on, 750, min_before=1, min_after=1, context=100) == 400
    assert time_cut(on, 750, min_before=1, min_after=1, context=1000) == 240  # gap start


def test_every_run_after_the_cut_moves_it_after_the_oldest_runs() -> None:
    on = _on(1000, [(600, 650), (700, 760), (900, 950)])
    cut = time_cut(on, 100, min_before=2, min_after=1, context=50)
    assert cut == 850 and runs_each_side(on, cut) == (2, 1)


def test_the_moved_cut_keeps_as_many_fitted_runs_as_the_preferred_one() -> None:
    # Five runs, the preferred cut after the fourth leaves none to validate: cut before
    # the fifth (four fit), not before the second.
    on = _on(1000, [(10, 20), (100, 110), (200, 210), (300, 310), (900, 910)])
    assert runs_each_side(on, time_cut(on, 950, min_before=1, min_after=1)) == (4, 1)
    assert runs_each_side(on, time_cut(on, 950, min_before=1, min_after=2)) == (3, 2)


def test_too_few_runs_is_none() -> None:
    assert time_cut(_on(100, [(10, 20)]), 50, min_before=1, min_after=1) is None
    assert time_cut(_on(100, []), 50, min_before=1, min_after=1) is None
    on = _on(100, [(10, 20), (40, 50)])
    assert time_cut(on, 90, min_before=2, min_after=1) is None


def test_a_run_through_the_cut_counts_on_both_sides() -> None:
    on = _on(100, [(40, 60)])
    assert runs_each_side(on, 50) == (1, 1)
    assert runs_each_side(on, 40) == (0, 1)
    assert runs_each_side(on, 60) == (1, 0)


def test_a_side_needs_at_least_one_run() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        time_cut(_on(10, [(1, 2)]), 5, min_before=0, min_after=1)
