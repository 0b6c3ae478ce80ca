"""REFIT loaders: the 30 s monthly files, the CLEAN release (8 s), House 2 at 8 s and the
2015 one-day files, with the dataset README's appliance map per house."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from ..config import DEFAULT_DATA_CONFIG, DataConfig
from ..errors import TrainerError
from .core import (
    HouseData,
    _columns_to_canonical,
    _frame_to_house,
    _numeric,
    _read_csv,
    _require_columns,
    build_house,
    canonical_name,
    tidy_frame_to_house,
)

__all__ = [
    "REFIT_APPLIANCE_MAP",
    "REFIT_DAY_UNMAPPED_HOUSES",
    "load_refit_8s",
    "load_refit_30s",
    "load_refit_clean",
    "load_refit_day",
]  # fmt: skip

# REFIT CLEAN release: Appliance1..9 per house, as listed in the dataset's README
# (same as ../shared/data/refit_1day_20houses/appliance_map.csv). House 14 does not exist.
REFIT_APPLIANCE_MAP: dict[int, tuple[str, ...]] = {
    1: ("fridge", "freezer", "freezer", "washer_dryer", "washing_machine", "dishwasher",
        "computer", "television", "electric_heater"),
    2: ("fridge_freezer", "washing_machine", "dishwasher", "television", "microwave",
        "toaster", "hifi", "kettle", "fan"),
    3: ("toaster", "fridge_freezer", "freezer", "tumble_dryer", "dishwasher",
        "washing_machine", "television", "microwave", "kettle"),
    4: ("fridge", "freezer", "fridge_freezer", "washing_machine", "washing_machine",
        "computer", "television", "microwave", "kettle"),
    5: ("fridge_freezer", "tumble_dryer", "washing_machine", "dishwasher", "computer",
        "television", "microwave", "kettle", "toaster"),
    6: ("freezer", "washing_machine", "dishwasher", "computer", "television", "microwave",
        "kettle", "toaster", "computer"),
    7: ("fridge", "freezer", "freezer", "tumble_dryer", "washing_machine", "dishwasher",
        "television", "toaster", "kettle"),
    8: ("fridge", "freezer", "washer_dryer", "washing_machine", "toaster", "computer",
        "television", "microwave", "kettle"),
    9: ("fridge_freezer", "washer_dryer", "washing_machine", "dishwasher", "television",
        "microwave", "kettle", "hifi", "electric_heater"),
    10: ("blender", "toaster", "freezer", "fridge_freezer", "washing_machine", "dishwasher",
         "television", "microwave", "kitchen_mixer"),
    11: ("fridge", "fridge_freezer", "washing_machine", "dishwasher", "computer",
         "microwave", "kettle", "router", "hifi"),
    12: ("fridge_freezer", "unknown", "unknown", "computer", "microwave", "kettle",
         "toaster", "television", "unknown"),
    13: ("television", "freezer", "washing_machine", "dishwasher", "unknown", "network",
         "microwave", "microwave", "kettle"),
    15: ("fridge_freezer", "tumble_dryer", "washing_machine", "dishwasher", "computer",
         "television", "microwave", "hifi", "toaster"),
    16: ("fridge_freezer", "fridge_freezer", "electric_heater", "electric_heater",
         "washing_machine", "dishwasher", "computer", "television", "dehumidifier"),
    17: ("freezer", "fridge_freezer", "tumble_dryer", "washing_machine", "computer",
         "television", "microwave", "kettle", "television"),
    18: ("fridge", "freezer", "fridge_freezer", "washer_dryer", "washing_machine",
         "dishwasher", "computer", "television", "microwave"),
    19: ("fridge_freezer", "washing_machine", "television", "microwave", "kettle", "toaster",
         "bread_maker", "games_console", "hifi"),
    20: ("fridge", "freezer", "tumble_dryer", "washing_machine", "dishwasher", "computer",
         "television", "microwave", "kettle"),
    21: ("fridge_freezer", "tumble_dryer", "washing_machine", "dishwasher", "food_mixer",
         "television", "kettle", "vivarium", "pond_pump"),
}  # fmt: skip

# In the 2015 one-day release the columns of these houses do not follow the CLEAN map
# (dataset README caveat): only their aggregate is trustworthy without a manual map.
# E.g. house 12 on 2015-01-08: "kettle" (Appliance6) draws ~110 W for 19 % of the day while
# "computer" (Appliance4) makes eleven ~2.7 kW bursts.
REFIT_DAY_UNMAPPED_HOUSES: frozenset[int] = frozenset({3, 8, 12})


def _house_dir(root: Path, house: int) -> Path:
    for cand in (root / f"house{house}", root / "refit_30s" / f"house{house}", root):
        if list(cand.glob(f"REFIT_House{house}_*.csv.gz")):
            return cand
    raise TrainerError(f"no REFIT 30 s files for house {house} under {root}")


def load_refit_30s(
    root: str | Path,
    house: int,
    months: Iterable[str] | None = None,
    config: DataConfig = DEFAULT_DATA_CONFIG,
) -> HouseData:
    """REFIT 30 s monthly files ``REFIT_House<N>_YYYY-MM.csv.gz``.

    ``root`` is the data dir, ``refit_30s`` or the house folder; ``months`` ("2014-03")
    selects files, None loads all. Gaps here are filled with 0/constants, hence masking.
    """
    folder = _house_dir(Path(root), house)
    files = sorted(folder.glob(f"REFIT_House{house}_*.csv.gz"))
    if months is not None:
        wanted = set(months)
        bad = [m for m in wanted if not re.fullmatch(r"\d{4}-\d{2}", m)]
        if bad:
            raise TrainerError(f"months must look like 2014-03, got {', '.join(sorted(bad))}")
        files = [f for f in files if f.name.rsplit("_", 1)[1][:7] in wanted]
        if not files:
            raise TrainerError(
                f"no REFIT house {house} 30 s file for month(s) {', '.join(sorted(wanted))}"
            )
    frames = [_read_csv(f, "REFIT 30 s", dtype={"Time": str}, engine="c") for f in files]
    for f, fr in zip(files, frames, strict=True):
        _require_columns(fr, ["Time", "Aggregate"], f)
    frame = pd.concat(frames, ignore_index=True)
    try:
        times = pd.to_datetime(frame["Time"], format="%Y-%m-%d %H:%M:%S", utc=True)
    except ValueError as err:
        raise TrainerError(f"REFIT house {house}: bad Time value: {err}") from err
    cols = _columns_to_canonical([c for c in frame.columns if c not in ("Time", "Aggregate")])
    apps = {name: _numeric(frame, col, folder) for name, col in cols.items()}
    label = f"REFIT house {house}" + (f" ({', '.join(sorted(set(months)))})" if months else "")
    return build_house(
        pd.DatetimeIndex(times).as_unit("ns"),
        _numeric(frame, "Aggregate", folder),
        apps,
        native_period_s=30.0,
        source=label,
        config=config,
    )


def _refit_map_columns(house: int, mapping: Sequence[str] | None) -> dict[str, str]:
    if mapping is None:
        if house not in REFIT_APPLIANCE_MAP:
            raise TrainerError(
                f"no REFIT appliance map for house {house} (houses: "
                f"{', '.join(map(str, sorted(REFIT_APPLIANCE_MAP)))})"
            )
        mapping = REFIT_APPLIANCE_MAP[house]
    named = {f"Appliance{i}": name for i, name in enumerate(mapping, start=1)}
    chosen: dict[str, str] = {}
    for col, raw in named.items():
        name = canonical_name(raw)
        if name is None:
            continue
        if name not in chosen or (raw == name and named[chosen[name]] != name):
            chosen[name] = col
    return chosen


def load_refit_clean(
    path: str | Path,
    house: int | None = None,
    config: DataConfig = DEFAULT_DATA_CONFIG,
    appliance_map: Sequence[str] | None = None,
) -> HouseData:
    """A REFIT CLEAN release file ``CLEAN_House<N>.csv`` (8 s; Issues == 1 rows masked).

    ``house`` defaults to the number in the file name; ``appliance_map`` overrides the
    built-in README map (nine names, Appliance1..9).
    """
    p = Path(path)
    if house is None:
        m = re.search(r"House_?(\d+)", p.name, re.IGNORECASE)
        if not m:
            raise TrainerError(f"{p}: cannot tell the house number from the name; pass it")
        house = int(m.group(1))
    cols = _refit_map_columns(house, appliance_map)
    frame = _read_csv(p, f"REFIT CLEAN house {house}")
    time_col = "Unix" if "Unix" in frame.columns else "Time"
    return _frame_to_house(
        frame,
        p,
        time_col=time_col,
        mains_col="Aggregate",
        appliance_cols=cols,
        native_period_s=8.0,
        source=f"REFIT CLEAN house {house}",
        config=config,
        issues_col="Issues" if "Issues" in frame.columns else None,
    )


def load_refit_8s(path: str | Path, config: DataConfig = DEFAULT_DATA_CONFIG) -> HouseData:
    """REFIT House 2 at 8 s: one ``REFIT_HF_*.csv.gz`` file, or a folder (all of them)."""
    p = Path(path)
    files = sorted(p.glob("REFIT_HF_*.csv.gz")) if p.is_dir() else [p]
    if not files:
        raise TrainerError(f"no REFIT_HF_*.csv.gz files in {p}")
    frames = [_read_csv(f, "REFIT 8 s") for f in files]
    for f, fr in zip(files, frames, strict=True):
        _require_columns(fr, ["timestamp", "aggregate"], f)
    frame = pd.concat(frames, ignore_index=True)
    return tidy_frame_to_house(
        frame, p, native_period_s=8.0, source="REFIT house 2 (8 s)", config=config
    )


def load_refit_day(
    root: str | Path,
    house: int,
    config: DataConfig = DEFAULT_DATA_CONFIG,
    appliance_map: Sequence[str] | None = None,
) -> HouseData:
    """One day of the 2015 REFIT release (``house_<N>_day.csv.gz``, ~7 s irregular),
    resampled to 8 s by default. Houses 3, 8 and 12 get no appliance columns unless an
    ``appliance_map`` is given: their columns do not follow the published map."""
    r = Path(root)
    folder = r / "refit_1day_20houses" if (r / "refit_1day_20houses").is_dir() else r
    p = folder / f"house_{house}_day.csv.gz"
    if appliance_map is None and house in REFIT_DAY_UNMAPPED_HOUSES:
        cols: dict[str, str] = {}
    else:
        cols = _refit_map_columns(house, appliance_map)
    frame = _read_csv(p, f"REFIT one-day house {house}")
    return _frame_to_house(
        frame,
        p,
        time_col="Unix",
        mains_col="Aggregate",
        appliance_cols=cols,
        native_period_s=8.0,
        source=f"REFIT one-day house {house}",
        config=config,
    )
