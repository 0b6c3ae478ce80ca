"""Calibration (representative) sets: balanced, seeded, real training windows, and never
the test house (the set a quantized model's activation ranges are fitted on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.trainer import quant_support as qs
from trainer.calibration import build_representative_set, check_not_test_house
from trainer.errors import TrainerError


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return qs.trained_run(data_dir, tmp_path_factory.mktemp("calibration"))


def test_representative_set_is_balanced_seeded_and_from_training_house(run: Any) -> None:
    rep = qs.representative(run, size=128, seed=3)
    summary = rep.summary()
    assert summary["size"] == 128 and summary["on"] == 64 and summary["off"] == 64
    thr = run.split.norm.on_threshold_w
    assert np.all(rep.targets_w[rep.on] >= thr) and np.all(rep.targets_w[~rep.on] < thr)
    assert "house 2" in rep.house.lower() and rep.excluded_houses == ("REFIT house 20",)
    same = qs.representative(run, size=128, seed=3)
    other = qs.representative(run, size=128, seed=4)
    np.testing.assert_array_equal(rep.windows, same.windows)
    assert not np.array_equal(rep.windows, other.windows)
    # every window is a real, normalised House 2 window of the training/validation blocks
    pool = np.concatenate([run.split.train.inputs(), run.split.validation.inputs()])
    keys = {w.tobytes() for w in pool}
    assert all(w.tobytes() in keys for w in rep.windows)


def test_representative_set_fills_up_when_on_windows_are_rare(run: Any) -> None:
    val = run.split.validation
    y = val.targets_w()
    n_on = int(np.count_nonzero(y >= 500))
    rep = build_representative_set(
        val.inputs(), y, on_threshold_w=500.0, house="REFIT house 2",
        test_houses=["REFIT house 20"], source="validation", size=2 * n_on + 50, seed=0,
    )  # fmt: skip
    assert int(np.count_nonzero(rep.on)) == n_on
    assert rep.windows.shape[0] == 2 * n_on + 50
    assert rep.notes and "asked for" in rep.notes[0]


@pytest.mark.parametrize(
    ("house", "tests"),
    [("REFIT house 20 (2014-06)", ["REFIT house 20"]), (20, ["house 20"]), ("house_2", [2])],
)
def test_representative_set_refuses_the_test_house(house: Any, tests: list[Any]) -> None:
    with pytest.raises(TrainerError, match="test house"):
        check_not_test_house(house, tests)
    with pytest.raises(TrainerError, match="test house"):
        build_representative_set(
            np.zeros((4, qs.WINDOW), np.float32), np.array([0, 0, 900, 900], np.float32),
            on_threshold_w=500.0, house=house, test_houses=tests, source="x",
        )  # fmt: skip
    check_not_test_house("REFIT house 2", ["REFIT house 20"])  # 2 is not 20
