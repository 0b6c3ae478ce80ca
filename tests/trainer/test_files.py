"""``trainer.files``: JSON that strict readers accept, atomic writes, clear errors for a
broken file, and the run-directory check every step that reloads a run relies on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.errors import TrainerError
from trainer.files import (
    FINISHED_RUN,
    beside,
    beside_path,
    check_finished_run,
    dumps,
    jsonable,
    load_json,
    write_json,
)


def test_jsonable_turns_what_json_cannot_read_into_what_it_can() -> None:
    value = {
        1: np.float32(0.5),
        "nan": float("nan"),
        "inf": float("-inf"),
        "path": Path("/x/y"),
        "tuple": (np.int64(3), [np.bool_(True)]),
    }
    assert jsonable(value) == {
        "1": 0.5, "nan": None, "inf": None, "path": "/x/y", "tuple": [3, [True]],
    }  # fmt: skip
    text = dumps({"b": float("nan"), "a": 1})
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-strict token {token}"))


def test_write_then_load_round_trips_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = write_json(tmp_path / "deep" / "m.json", {"x": [1, 2], "y": np.float64(2.5)})
    assert load_json(path) == {"x": [1, 2], "y": 2.5}
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]


@pytest.mark.parametrize("content", ["{not json", ""])
def test_a_broken_or_missing_file_is_one_trainer_error_naming_it(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TrainerError, match=r"state\.json"):
        load_json(path)
    with pytest.raises(TrainerError, match=r"missing\.json"):
        load_json(tmp_path / "missing.json")


def test_the_config_beside_an_artifact(tmp_path: Path) -> None:
    artifact = tmp_path / "kettle.tflite"
    assert beside_path(artifact) == tmp_path / "kettle.config.json"
    assert load_json(beside(artifact, {"seed": 1})) == {"seed": 1}


def test_only_a_finished_run_passes(tmp_path: Path) -> None:
    for name in FINISHED_RUN:  # each missing piece is named, in turn
        with pytest.raises(TrainerError, match=f"no {name}"):
            check_finished_run(tmp_path)
        (tmp_path / name).write_text("{}", encoding="utf-8")
    check_finished_run(tmp_path)
