"""A household's own CSV: its columns mapped on the command line or in a JSON/TOML file
(:class:`UserCsvSpec`), in W or kW, naive timestamps read in a given time zone."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..appliances import check_appliance
from ..config import DEFAULT_DATA_CONFIG, DataConfig, Unit
from ..errors import TrainerError
from .core import NAT_NS, HouseData, _frame_to_house, _parse_times, _read_csv, _require_columns

__all__ = ["UserCsvSpec", "load_user_csv", "read_user_spec"]


@dataclass(frozen=True, slots=True)
class UserCsvSpec:
    """Column mapping of a household's own CSV (from the command line or a config file)."""

    path: Path
    timestamp_col: str
    mains_col: str
    appliance_cols: Mapping[str, str]
    unit: Unit = "W"
    period_s: float | None = None
    timezone: str | None = None


def load_user_csv(
    path: str | Path,
    timestamp_col: str,
    mains_col: str,
    appliance_cols: Mapping[str, str],
    *,
    unit: Unit = "W",
    config: DataConfig = DEFAULT_DATA_CONFIG,
    native_period_s: float | None = None,
    timezone: str | None = None,
) -> HouseData:
    """A household's own CSV: timestamps (ISO or unix seconds), mains and one column per
    appliance (``{"kettle": "Kettle W"}``), all in ``unit``.

    Naive timestamps are UTC unless ``timezone`` (e.g. "Europe/London") is given; the
    native period defaults to the median sample spacing; ``config.period_s`` resamples.
    """
    p = Path(path)
    for name in appliance_cols:
        check_appliance(name)
    frame = _read_csv(p, "household CSV")
    _require_columns(frame, [timestamp_col, mains_col, *appliance_cols.values()], p)
    if native_period_s is None:
        t = _parse_times(frame[timestamp_col], p, timestamp_col, timezone)
        steps = np.diff(np.sort(t[t != NAT_NS]))
        steps = steps[steps > 0]
        if steps.size == 0:
            raise TrainerError(f"{p}: need at least two distinct timestamps")
        native_period_s = max(1.0, round(float(np.median(steps)) / 1e9))
    return _frame_to_house(
        frame,
        p,
        time_col=timestamp_col,
        mains_col=mains_col,
        appliance_cols=appliance_cols,
        native_period_s=native_period_s,
        source=f"household CSV {p.name}",
        config=config,
        unit=unit,
        timezone=timezone,
    )


def read_user_spec(path: str | Path) -> UserCsvSpec:
    """Read a JSON or TOML mapping file::

    csv = "house.csv"            # relative to the config file
    timestamp = "time"
    mains = "mains_kw"
    unit = "kW"                  # W (default), kW or auto
    period_s = 30                # optional
    timezone = "Europe/London"   # optional: naive timestamps are local time there
    [appliances]
    kettle = "kettle_kw"
    """
    p = Path(path)
    if not p.is_file():
        raise TrainerError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        raw = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise TrainerError(f"{p}: not valid {p.suffix.lstrip('.').upper()}: {err}") from err
    if not isinstance(raw, dict):
        raise TrainerError(f"{p}: expected a table/object at the top level")
    missing = [k for k in ("csv", "timestamp", "mains", "appliances") if k not in raw]
    if missing:
        raise TrainerError(f"{p}: missing key(s) {', '.join(missing)}")
    apps = raw["appliances"]
    if not isinstance(apps, dict) or not all(isinstance(v, str) for v in apps.values()):
        raise TrainerError(f"{p}: 'appliances' must map appliance names to column names")
    for name in apps:
        check_appliance(name)
    unit = raw.get("unit", "W")
    if unit not in ("W", "kW", "auto"):
        raise TrainerError(f"{p}: unit must be W, kW or auto, got {unit!r}")
    period = raw.get("period_s")
    timezone = raw.get("timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise TrainerError(f"{p}: timezone must be a name like Europe/London")
    return UserCsvSpec(
        path=(p.parent / str(raw["csv"])),
        timestamp_col=str(raw["timestamp"]),
        mains_col=str(raw["mains"]),
        appliance_cols={str(k): v for k, v in apps.items()},
        unit=unit,
        period_s=float(period) if period is not None else None,
        timezone=timezone,
    )
