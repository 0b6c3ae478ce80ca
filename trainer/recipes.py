"""The bundled models' recipes and data split, read from ``bundled.json`` (data, not code;
each appliance's ``truth`` block there is :mod:`trainer.appliances`').

One frozen :class:`Recipe` per appliance: sample period, window, target position, the
prediction rule's minimum durations, the training mix (real and synthetic windows) and
the written split into training, validation and test sources. :func:`load_split` turns a
split's source strings into :class:`~trainer.data.HouseData` at the recipe's period; the
test house can only be loaded through ``part="test"``, and every other part refuses it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Recipe, SyntheticSettings
from .data import DataConfig, HouseData
from .errors import TrainerError
from .files import load_json
from .sources import load

RECIPES_PATH = Path(__file__).with_name("bundled.json")
TEST_HOUSE = 20  # REFIT House 20: the unseen test house of record
PARTS = ("train", "validation", "test")


def _read(path: Path) -> dict[str, Any]:
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise TrainerError(f"{path}: expected a JSON object")
    return raw


def load_recipes(path: Path = RECIPES_PATH) -> dict[str, Recipe]:
    """Every appliance's recipe: the file's defaults, then the appliance's own entries."""
    raw = _read(path)
    defaults = dict(raw.get("defaults", {}))
    splits = raw.get("split", {})
    recipes: dict[str, Recipe] = {}
    for name, own in raw.get("appliances", {}).items():
        merged = {
            **defaults,
            **{k: v for k, v in own.items() if k not in ("predict", "split", "truth")},
        }
        synth = {**defaults.get("synthetic", {}), **own.get("synthetic", {})}
        split_raw = splits[own.get("split", "default")]
        predict = own.get("predict", {})
        base_model, own_model = defaults.get("model", {}), own.get("model", {})
        merged.update(
            model={
                arch: {**base_model.get(arch, {}), **own_model.get(arch, {})}
                for arch in dict.fromkeys([*base_model, *own_model])
            },
            appliance=name,
            split={part: tuple(split_raw[part]) for part in PARTS},
            synthetic=SyntheticSettings(**synth),
            seeds=tuple(merged.get("seeds", (0,))),
            distractors=tuple(d for d in merged.get("distractors", ()) if d != name),
            min_on_s=float(predict.get("min_on_s", 0.0)),
            min_off_s=float(predict.get("min_off_s", 0.0)),
            min_off_choices_s=tuple(float(v) for v in predict.get("min_off_choices_s", ())),
            max_off_delay_s=(
                float(predict["max_off_delay_s"]) if "max_off_delay_s" in predict else None
            ),
            period_s=float(merged["period_s"]),
        )
        recipes[name] = Recipe(**merged)
    return recipes


@dataclass(frozen=True, slots=True)
class Source:
    """One house (or part of one) at the recipe's period."""

    label: str
    house: HouseData


def _refuse_test_house(kind: str, houses: list[int], part: str) -> None:
    if part != "test" and kind in ("refit30s", "refit_day") and TEST_HOUSE in houses:
        raise TrainerError(
            f"REFIT house {TEST_HOUSE} is the test house: it cannot be in the {part} split"
        )


def _time_filter(house: HouseData, condition: str) -> HouseData:
    """``<2015-02-01`` keeps samples before that UTC date, ``>=2015-02-01`` from it on."""
    for op in ("<=", ">=", "<", ">"):
        if condition.startswith(op):
            when = pd.Timestamp(condition[len(op) :], tz="UTC")
            break
    else:
        raise TrainerError(f"bad time condition {condition!r} (use e.g. <2015-02-01)")
    index = house.frame.index
    keep = {"<": index < when, "<=": index <= when, ">": index > when, ">=": index >= when}[op]
    return dataclasses.replace(house, frame=house.frame.loc[keep])


def parse_source(text: str) -> tuple[str, list[int | str], str | None]:
    """``kind:houses[:time condition]`` -> (kind, houses or file names, condition)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise TrainerError(f"bad source {text!r} (kind:houses[:condition])")
    kind = parts[0]
    items: list[int | str] = [int(h) if h.isdigit() else h for h in parts[1].split(",")]
    return kind, items, parts[2] if len(parts) == 3 else None


def load_source(
    text: str, data_dir: Path, period_s: float, appliance: str | None, part: str
) -> list[Source]:
    """Load one split entry; houses without the appliance's column are skipped."""
    kind, items, condition = parse_source(text)
    houses = [i for i in items if isinstance(i, int)]
    _refuse_test_house(kind, houses, part)
    config = DataConfig(period_s=period_s)
    loaded: list[HouseData] = []
    if kind in ("refit30s", "refit_day"):
        source = "refit-day" if kind == "refit_day" else kind
        loaded = [load(source, house=h, data_dir=data_dir, config=config) for h in houses]
    elif kind == "refit8s":
        folder = data_dir / "refit_8s_house2"
        loaded = [
            load(kind, path=folder / f"REFIT_HF_{name}.csv.gz", config=config) for name in items
        ]
    elif kind == "ukdale":
        loaded = [load(kind, data_dir=data_dir, config=config)]
    else:
        raise TrainerError(f"unknown source kind {kind!r} in {text!r}")
    out = []
    for raw in loaded:
        house = _time_filter(raw, condition) if condition else raw
        if appliance is not None and appliance not in house.appliances:
            continue
        if len(house.frame) == 0:
            continue
        label = house.source + (f" {condition}" if condition else "")
        out.append(Source(label, house))
    return out


def load_split(
    recipe: Recipe, part: str, data_dir: Path, *, any_appliance: bool = False
) -> list[Source]:
    """All sources of one part of the recipe's split that have the appliance's labels
    (``any_appliance``: every source, e.g. for distractor activations)."""
    if part not in PARTS:
        raise TrainerError(f"split part must be one of {', '.join(PARTS)}")
    wanted = None if any_appliance else recipe.appliance
    sources: list[Source] = []
    for text in recipe.split[part]:
        sources.extend(load_source(text, data_dir, recipe.period_s, wanted, part))
    if not any(recipe.appliance in s.house.appliances for s in sources):
        raise TrainerError(f"{recipe.appliance}: no {part} source has its labels")
    return sources
