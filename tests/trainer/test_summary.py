"""The seed spread every report prints: numbers checked by hand."""

from __future__ import annotations

import math

from trainer.summary import format_spread, spread


def test_spread_of_three_seeds_by_hand() -> None:
    s = spread([0.2, 0.3, 0.4])
    assert s["n"] == 3 and s["min"] == 0.2 and s["max"] == 0.4
    assert math.isclose(s["mean"], 0.3) and math.isclose(s["sd"], 0.1)  # sample sd
    assert format_spread(s) == "0.300 ± 0.100 (0.200-0.400)"
    assert format_spread(s, sd=False) == "0.300 (0.200-0.400)"


def test_missing_and_non_finite_entries_are_skipped_not_averaged() -> None:
    s = spread([0.5, None, math.nan, "0.9", True, 0.7])
    assert s["n"] == 2 and math.isclose(s["mean"], 0.6)
    assert format_spread(spread([0.25])) == "0.250 (1 seed)"
    empty = spread([None, math.inf])
    assert empty == {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    assert format_spread(empty) == "n/a" and format_spread(empty, missing="—") == "—"
