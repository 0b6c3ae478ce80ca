"""Home Assistant recorder database (``home-assistant_v2.db``) -> :class:`HouseData`.

Reads the SQLite file read-only (``file:...?mode=ro``) with the standard library, so the
trainer never imports Home Assistant. Sources, in order of preference:

* ``states`` + ``states_meta`` (+ ``state_attributes`` for ``unit_of_measurement``):
  one row per state *change*; a value holds until the next row (zero-order hold), so
  bins are time-weighted means. ``unavailable``/``unknown``/non-numeric -> missing.
* ``statistics_short_term`` + ``statistics_meta``: 5-minute means, used when the states
  were purged (the recorder keeps 10 days by default). Binary entities have no
  statistics, so they can only come from ``states``.

An appliance is either a power sensor (W or kW) or an on/off entity (binary_sensor,
switch, ...) whose 1.0/0.0 label is marked in ``HouseData.status_columns``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from custom_components.nilm.engine.resample import (
    hold_at_slot_middles,
    keepalive_times,
    resample_reports,
)

from .data import DataConfig, HouseData, build_house, check_appliance, check_units
from .errors import TrainerError

FloatArray = npt.NDArray[np.float64]
Table = Literal["auto", "states", "statistics"]

STATISTICS_PERIOD_S = 300.0
DEFAULT_PERIOD_S = 30.0
_ON = frozenset({"on", "true", "open", "home", "running"})
_OFF = frozenset({"off", "false", "closed", "not_home", "idle"})
_MISSING = frozenset({"unavailable", "unknown", "none", ""})
_UNIT_FACTORS = {"W": 1.0, "w": 1.0, "kW": 1000.0, "kw": 1000.0, "KW": 1000.0}


@dataclass(frozen=True, slots=True)
class EntitySeries:
    """One entity's state changes: times (unix s), values (W or 0/1, NaN missing)."""

    entity_id: str
    times_s: FloatArray
    values: FloatArray
    binary: bool
    unit: str | None
    # When each row was last re-reported (the recorder's last_reported). None: unknown
    # (REST history, recorders before 2024.3): each row is taken as alive until the next.
    reported_s: FloatArray | None = None

    def reports(self, max_gap_s: float) -> tuple[FloatArray, FloatArray]:
        """Report times and values as the integration replays them (a row at its start,
        kept alive while re-reported: :func:`engine.resample.keepalive_times`)."""
        reported = self.reported_s
        if reported is None:
            reported = np.append(self.times_s[1:], self.times_s[-1:])
        times: list[float] = []
        values: list[float] = []
        rows = zip(self.times_s.tolist(), reported.tolist(), self.values.tolist(), strict=True)
        for first, last, value in rows:
            alive = keepalive_times(first, last, max_gap_s)
            times.extend(alive)
            values.extend([value] * len(alive))
        return np.asarray(times), np.asarray(values)


def parse_entity_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["kettle=sensor.kettle_power", ...]`` -> ``{"kettle": "sensor.kettle_power"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, entity = item.partition("=")
        if not sep or not name.strip() or "." not in entity:
            raise TrainerError(
                f"appliance entity must look like kettle=sensor.kettle_power, got {item!r}"
            )
        out[check_appliance(name.strip())] = entity.strip()
    return out


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    """Open the recorder database without any chance of writing to it."""
    p = Path(path)
    if not p.is_file():
        raise TrainerError(f"recorder database not found: {p}")
    try:
        con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as err:
        raise TrainerError(f"{p} is not a readable SQLite database: {err}") from err
    needed = {"states", "states_meta"}
    if not needed <= tables:
        con.close()
        raise TrainerError(
            f"{p} is not a Home Assistant recorder database (schema >= 2023.4): "
            f"missing table(s) {', '.join(sorted(needed - tables))}"
        )
    return con


def _unit_factor(unit: str | None, entity_id: str) -> float:
    if unit is None:
        return 1.0  # no unit: assume W; the mains plausibility check catches kW
    if unit not in _UNIT_FACTORS:
        raise TrainerError(f"{entity_id} has unit {unit!r}; expected a power unit (W or kW)")
    return _UNIT_FACTORS[unit]


def read_states(con: sqlite3.Connection, entity_id: str) -> EntitySeries | None:
    """All recorded states of one entity (None when it has no rows in ``states``)."""
    columns = {r[1] for r in con.execute("PRAGMA table_info(states)")}
    # last_reported_ts (schema 43, HA 2024.3): a row's value re-reported unchanged.
    has_reported = "last_reported_ts" in columns
    reported = "s.last_reported_ts" if has_reported else "NULL"
    rows = con.execute(
        f"SELECT s.last_updated_ts, s.state, s.attributes_id, {reported} FROM states s "
        "JOIN states_meta m ON s.metadata_id = m.metadata_id "
        "WHERE m.entity_id = ? AND s.last_updated_ts IS NOT NULL "
        "ORDER BY s.last_updated_ts, s.state_id",
        (entity_id,),
    ).fetchall()
    if not rows:
        return None
    times = np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows))
    last: FloatArray | None = None
    if has_reported:
        last = np.fromiter(
            (r[3] if r[3] is not None else r[0] for r in rows), dtype=np.float64, count=len(rows)
        )
        last = np.maximum(last, times)
    raw = [(r[1] or "").strip() for r in rows]
    lowered = [s.lower() for s in raw]
    present = [s for s in lowered if s not in _MISSING]
    binary = bool(present) and all(s in _ON or s in _OFF for s in present)
    if binary:
        values = np.array(
            [1.0 if s in _ON else 0.0 if s in _OFF else np.nan for s in lowered], dtype=np.float64
        )
        return EntitySeries(entity_id, times, values, True, None, last)

    values = np.full(len(rows), np.nan)
    for i, s in enumerate(raw):
        with contextlib.suppress(ValueError):  # unavailable / unknown / garbage -> missing
            values[i] = float(s)
    # Units live in the shared attributes; parse each distinct attributes row once.
    attr_ids = sorted({r[2] for r in rows if r[2] is not None})
    units: dict[int, str | None] = {}
    for start in range(0, len(attr_ids), 500):
        chunk = attr_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for aid, shared in con.execute(
            f"SELECT attributes_id, shared_attrs FROM state_attributes "
            f"WHERE attributes_id IN ({marks})",
            chunk,
        ):
            try:
                attrs = json.loads(shared or "{}")
            except json.JSONDecodeError:
                attrs = {}
            unit = attrs.get("unit_of_measurement") if isinstance(attrs, dict) else None
            units[aid] = unit if isinstance(unit, str) else None
    factors = np.array(
        [_unit_factor(units.get(r[2]), entity_id) if r[2] is not None else 1.0 for r in rows]
    )
    seen = {units.get(r[2]) for r in rows if r[2] is not None} - {None}
    unit_label = ", ".join(sorted(u for u in seen if u)) or None
    return EntitySeries(entity_id, times, values * factors, False, unit_label, last)


def read_statistics(con: sqlite3.Connection, entity_id: str) -> EntitySeries | None:
    """5-minute means from ``statistics_short_term`` (None when there are none).

    Each mean covers ``[start, start + 5 min)``; it is returned as a state at ``start``
    that holds for the period, so the same zero-order-hold resampling applies.
    """
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"statistics_short_term", "statistics_meta"} <= tables:
        return None
    meta = con.execute(
        "SELECT id, unit_of_measurement FROM statistics_meta WHERE statistic_id = ?",
        (entity_id,),
    ).fetchone()
    if meta is None:
        return None
    rows = con.execute(
        "SELECT start_ts, mean FROM statistics_short_term WHERE metadata_id = ? "
        "AND start_ts IS NOT NULL ORDER BY start_ts",
        (meta[0],),
    ).fetchall()
    if not rows:
        return None
    factor = _unit_factor(meta[1], entity_id)
    starts = np.array([r[0] for r in rows], dtype=np.float64)
    means = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    # A missing 5-minute row is a gap: insert NaN states where consecutive starts jump.
    gaps = np.flatnonzero(np.diff(starts) > STATISTICS_PERIOD_S * 1.5)
    if gaps.size:
        starts = np.insert(starts, gaps + 1, starts[gaps] + STATISTICS_PERIOD_S)
        means = np.insert(means, gaps + 1, np.nan)
    starts = np.append(starts, starts[-1] + STATISTICS_PERIOD_S)
    means = np.append(means, np.nan)  # the last mean ends after its period
    return EntitySeries(entity_id, starts, means * factor, False, meta[1])


def grid_house(
    mains: EntitySeries,
    apps: Mapping[str, EntitySeries],
    *,
    t0: float,
    n_bins: int,
    period: float,
    source: str,
    config: DataConfig,
    max_gap_s: float | None = None,
) -> HouseData:
    """Home Assistant series (recorder or REST history) on one grid, masked like every
    other source, by the integration's own resampling (:mod:`engine.resample`): a value
    holds for ``max_gap_s`` at most (default ``config.max_gap_s``), an on/off state until
    the next one; longer silences are gaps, never filled."""
    gap = config.max_gap_s if max_gap_s is None else max_gap_s
    first = round(t0 / period)

    def on_grid(series: EntitySeries) -> FloatArray:
        if series.binary:
            return hold_at_slot_middles(
                series.times_s, series.values, period_s=period, first_slot=first, slots=n_bins
            )
        times, values = series.reports(gap)
        return resample_reports(
            times, values, period_s=period, max_gap_s=gap, first_slot=first, slots=n_bins
        )

    grid = {name: on_grid(series) for name, series in apps.items()}
    times_ns = np.round((first + np.arange(n_bins)) * period * 1e9).astype(np.int64)
    return build_house(
        times_ns,
        on_grid(mains),
        grid,
        native_period_s=period,
        source=source,
        config=DataConfig(
            period_s=period,
            max_zero_run_s=config.max_zero_run_s,
            max_constant_run_s=config.max_constant_run_s,
            fill_gap_s=0.0,
            clip_aggregate_w=config.clip_aggregate_w,
            appliance_spike_factor=config.appliance_spike_factor,
            appliances=config.appliances,
        ),
        status_columns=[n for n, series in apps.items() if series.binary],
    )


def load_recorder(
    path: str | Path,
    mains_entity: str,
    appliance_entities: Mapping[str, str],
    config: DataConfig | None = None,
    *,
    table: Table = "auto",
) -> HouseData:
    """A mains power entity plus per-appliance entities from the recorder database.

    ``table="auto"`` uses ``states`` when the mains has recorded states, otherwise the
    5-minute statistics. The period is ``config.period_s`` (default 30 s; statistics
    give at best 300 s).
    """
    config = config or DataConfig()
    for name in appliance_entities:
        check_appliance(name)
    con = connect_readonly(path)
    try:
        mains = read_states(con, mains_entity) if table in ("auto", "states") else None
        used = "states"
        if mains is None or np.isfinite(mains.values).sum() < 2:
            if table == "states":
                raise TrainerError(f"{path}: no recorded states for {mains_entity}")
            mains = read_statistics(con, mains_entity)
            used = "statistics_short_term"
            if mains is None:
                raise TrainerError(
                    f"{path}: {mains_entity} has neither states nor 5-minute statistics "
                    "(check the entity id and the recorder's include/exclude settings)"
                )
        if mains.binary:
            raise TrainerError(f"{mains_entity} is an on/off entity, not a power sensor")
        reader = read_states if used == "states" else read_statistics
        apps: dict[str, EntitySeries] = {}
        for name, entity in appliance_entities.items():
            series = reader(con, entity)
            if series is None:
                what = "states" if used == "states" else "5-minute statistics"
                raise TrainerError(f"{path}: no {what} for {entity} ({name})")
            apps[name] = series
    except sqlite3.DatabaseError as err:
        raise TrainerError(f"{path}: cannot read the recorder database: {err}") from err
    finally:
        con.close()

    if used == "states":
        period = float(config.period_s or DEFAULT_PERIOD_S)
    else:
        period = float(config.period_s or STATISTICS_PERIOD_S)
        if period < STATISTICS_PERIOD_S:
            raise TrainerError(
                f"{mains_entity}: the states were purged and the 5-minute statistics cannot "
                f"give a {period:g} s period (use --period 300 or a database with states)"
            )
    # The mains must be plausible watts after unit conversion.
    check_units(
        mains.values, "W", f"{mains_entity} ({mains.unit or 'no unit, taken as W'})", hint=False
    )

    t0 = np.floor(mains.times_s[0] / period) * period
    t_end = mains.times_s[-1]
    n_bins = int(np.floor((t_end - t0) / period))
    if n_bins < 1:
        raise TrainerError(f"{mains_entity}: less than one {period:g} s period of data")
    source = f"HA recorder {Path(path).name} ({used})"
    # 5-minute means arrive one per 5 minutes: each holds until the next.
    gap = config.max_gap_s if used == "states" else max(config.max_gap_s, 2 * STATISTICS_PERIOD_S)
    return grid_house(
        mains, apps, t0=t0, n_bins=n_bins, period=period, source=source, config=config,
        max_gap_s=gap,
    )  # fmt: skip


def list_entities(path: str | Path) -> list[tuple[str, int, str | None]]:
    """(entity_id, number of states, unit) of entities that look like power or on/off
    sensors - helps a user pick ``--mains-entity`` and ``--map``."""
    con = connect_readonly(path)
    try:
        rows = con.execute(
            "SELECT m.entity_id, COUNT(*), MAX(s.attributes_id) FROM states s "
            "JOIN states_meta m ON s.metadata_id = m.metadata_id GROUP BY m.entity_id "
            "ORDER BY m.entity_id"
        ).fetchall()
        out: list[tuple[str, int, str | None]] = []
        for entity, count, aid in rows:
            unit = None
            if aid is not None:
                shared = con.execute(
                    "SELECT shared_attrs FROM state_attributes WHERE attributes_id = ?", (aid,)
                ).fetchone()
                try:
                    attrs = json.loads(shared[0]) if shared and shared[0] else {}
                except json.JSONDecodeError:
                    attrs = {}
                u = attrs.get("unit_of_measurement") if isinstance(attrs, dict) else None
                unit = u if isinstance(u, str) else None
            if unit in _UNIT_FACTORS or entity.split(".")[0] in {"binary_sensor", "switch"}:
                out.append((entity, int(count), unit))
        return out
    finally:
        con.close()
