"""The bundled models' recipes as data (``bundled.json``): merged defaults, whole cycles in
view, the written split, and the test house refused anywhere but in the test part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.errors import TrainerError
from trainer.recipes import RECIPES_PATH, load_recipes, load_source, parse_source

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_recipes_are_data_with_whole_cycles_for_cycle_appliances() -> None:
    recipes = load_recipes()
    assert set(recipes) == {"kettle", "microwave", "dishwasher", "washing_machine", "fridge"}
    for r in recipes.values():
        assert len(r.seeds) >= 3, "report several seeds"
        assert r.delay_s <= 120, f"{r.appliance}: entities must stay near real time"
    for name in ("dishwasher", "washing_machine"):
        # At least 2 h of context: House 2's dishwasher cycles last ~143 min.
        assert recipes[name].window_length * recipes[name].period_s >= 4 * 3600


def test_an_appliance_entry_overrides_the_defaults_and_keeps_the_rest(tmp_path: Path) -> None:
    raw = json.loads(RECIPES_PATH.read_text())
    raw["appliances"]["kettle"]["epochs"] = 3
    raw["appliances"]["kettle"]["synthetic"] = {"amplitude": 0.05}
    path = tmp_path / "bundled.json"
    path.write_text(json.dumps(raw))
    kettle, microwave = (load_recipes(path)[n] for n in ("kettle", "microwave"))
    assert kettle.epochs == 3 and microwave.epochs == raw["defaults"]["epochs"]
    assert kettle.synthetic.amplitude == 0.05
    assert (
        kettle.synthetic.distractor_probability
        == (raw["defaults"]["synthetic"]["distractor_probability"])
    )
    assert "kettle" not in kettle.distractors  # never its own distractor


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("refit30s:2:<2015-02-01", ("refit30s", [2], "<2015-02-01")),
        ("refit_day:1,4,6", ("refit_day", [1, 4, 6], None)),
        ("refit8s:validation", ("refit8s", ["validation"], None)),
    ],
)
def test_sources_parse(text: str, parsed: tuple[object, ...]) -> None:
    assert parse_source(text) == parsed


@pytest.mark.parametrize("text", ["refit30s", "refit30s:2:<2015:x"])
def test_a_malformed_source_is_a_clear_error(text: str) -> None:
    with pytest.raises(TrainerError, match="bad source"):
        parse_source(text)


@pytest.mark.parametrize("part", ["train", "validation"])
def test_the_test_house_is_refused_outside_the_test_part(part: str) -> None:
    """Before any file is read: the refusal does not depend on the data being there."""
    for text in ("refit30s:20", "refit_day:5,20"):
        with pytest.raises(TrainerError, match="test house"):
            load_source(text, DATA, 30.0, "kettle", part)


def test_unknown_kinds_and_time_conditions_are_named(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="unknown source kind 'redd'"):
        load_source("redd:1", tmp_path, 30.0, None, "train")
    if not (DATA / "refit_30s").is_dir():
        pytest.skip("no shared data")
    with pytest.raises(TrainerError, match="bad time condition"):
        load_source("refit30s:2:2015-02-01", DATA, 30.0, "kettle", "train")
