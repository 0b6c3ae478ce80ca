"""``trainer.appliances``: the per-appliance truth lives in ``bundled.json`` beside the
recipes (one data file), every bundled appliance has both, and a broken file is one clear
error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.appliances import APPLIANCES, CANONICAL, SETTINGS_PATH, _specs, truth_rule
from trainer.errors import TrainerError
from trainer.recipes import RECIPES_PATH, load_recipes


def test_one_file_holds_each_appliances_truth_and_recipe() -> None:
    assert SETTINGS_PATH == RECIPES_PATH
    assert tuple(load_recipes()) == CANONICAL == tuple(APPLIANCES)


def test_the_truth_rule_is_the_files_block() -> None:
    raw = json.loads(SETTINGS_PATH.read_text(encoding="utf-8"))
    for name in CANONICAL:
        block, rule = raw["appliances"][name]["truth"], truth_rule(name)
        assert rule.on_power_threshold_w == block["on_power_threshold_w"]
        assert (rule.min_on_s, rule.min_off_s) == (block["min_on_s"], block["min_off_s"])
        assert APPLIANCES[name].aliases == tuple(block["aliases"])
        assert APPLIANCES[name].max_power_w == block["max_power_w"] > 0


@pytest.mark.parametrize(
    "content",
    ['{"appliances": {"kettle": {"period_s": 30}}}', "{not json", '{"appliances": []}'],
)
def test_a_broken_settings_file_is_one_error_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TrainerError, match=r"settings\.json"):
        _specs(path)
