"""Past days of REFIT House 20 for the recorder, so the 1x demo has real history at once.

Data: REFIT (Murray, Stankovic & Stankovic, Scientific Data 4, 160122, 2017), CC-BY 4.0.

The demo maps data time to real time by a fixed shift kept in ``<config>/.nilm_dev_timeline.json``
(real = data + shift, chosen on the first run so that "now" falls on ``DEFAULT_DAY`` at the
current time of day, so the house's mornings are your mornings). Every start imports what
the recorder lacks of the last ``--history-days`` (all of it on the first run, the time
HA was stopped afterwards), then the live replay continues on the same timeline. The
import is written by the dev-only ``nilm_demo.import_history`` action
(``scripts/ha_dev/nilm_demo``) straight into the recorder:

- the mains power sensor's states (every 30 s sample) and its 5-minute/hourly
  mean/min/max statistics;
- ``sensor.house_mains_energy`` (kWh, total increasing: the energy counter a meter bridge
  reports, counted from the timeline's origin) with its sums, the Energy dashboard's grid
  consumption;
- what NILM would have shown over the same span (``nilm_backfill``): its models on the
  numpy engine, window by window as the integration runs them, through the same
  ``StatusTracker`` the coordinator uses: each appliance's Power and Running states and
  Energy statistics, so the Energy dashboard's individual devices and the logbook have
  the same days. It is a re-computation (the integration's options, e.g. a changed
  threshold, are not applied), labelled as such in the README.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from scripts.ha_dev.replay import (
    ENERGY_ATTRIBUTES,
    ENERGY_ENTITY,
    MAINS_ATTRIBUTES,
    MAINS_ENTITY,
    PERIOD_S,
    Sample,
    house20_samples,
)

TIMELINE_FILE = ".nilm_dev_timeline.json"
IMPORT_FILE = ".nilm_dev_import.json"
# The live replay's data day on the first run (House 20 starts 2014-03-20 12:01 UTC, so
# up to 12 days of history exist before it).
DEFAULT_DAY = datetime(2014, 4, 2, tzinfo=UTC)
FIVE_MINUTES = 300.0
MAX_GAP_S = 300.0  # as the integration's default max_gap_s: longer holes are missing data


@dataclass(frozen=True, slots=True)
class Timeline:
    """real time = data time + ``shift_s``; the mains energy counter is 0 kWh at ``origin``."""

    shift_s: float
    origin: datetime

    def to_real(self, data_time: datetime) -> datetime:
        return data_time + timedelta(seconds=self.shift_s)

    def to_data(self, real_time: datetime) -> datetime:
        return real_time - timedelta(seconds=self.shift_s)

    def save(self, config_dir: Path) -> None:
        data = asdict(self)
        data["origin"] = self.origin.isoformat()
        (config_dir / TIMELINE_FILE).write_text(json.dumps(data))

    @classmethod
    def load(cls, config_dir: Path) -> Timeline | None:
        path = config_dir / TIMELINE_FILE
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(float(data["shift_s"]), datetime.fromisoformat(data["origin"]))
        except (ValueError, KeyError, TypeError):
            return None

    @classmethod
    def new(cls, now: datetime, start: datetime | None, history_days: float) -> Timeline:
        """``start`` (data time) is "now"; default: ``DEFAULT_DAY`` at now's time of day."""
        if start is None:
            of_day = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
            start = DEFAULT_DAY + timedelta(seconds=of_day.total_seconds() // PERIOD_S * PERIOD_S)
        shift = (now - start).total_seconds() // PERIOD_S * PERIOD_S
        return cls(shift, start - timedelta(days=history_days))


def energy_until(origin: datetime, until: datetime) -> float:
    """The mains counter (kWh) at data time ``until``: every 30 s sample from ``origin``
    up to, not including, ``until`` (the replay posts it before adding its sample)."""
    if until <= origin:
        return 0.0
    return sum(s.aggregate for s in house20_samples(origin, until)) * PERIOD_S / 3.6e6


def _five_minute_rows(
    times: np.ndarray, values: np.ndarray, *, kind: str, start: float, end: float
) -> list[dict[str, float]]:
    """5-minute statistics rows of one series over [start, end) (real timestamps).

    ``kind`` "mean": time-weighted mean (each sample held 30 s), min, max. ``kind`` "sum":
    ``values`` is a cumulative counter, the row keeps its value at the period's end.
    """
    rows: list[dict[str, float]] = []
    first = math.ceil(start / FIVE_MINUTES) * FIVE_MINUTES
    for period in np.arange(first, end - FIVE_MINUTES + 1e-6, FIVE_MINUTES):
        sel = (times >= period) & (times < period + FIVE_MINUTES)
        if kind == "mean":
            if not sel.any():
                continue
            part = values[sel]
            rows.append(
                {
                    "start": float(period),
                    "mean": float(part.mean()),
                    "min": float(part.min()),
                    "max": float(part.max()),
                }
            )
        else:
            upto = times < period + FIVE_MINUTES
            if not upto.any():
                continue
            value = float(values[upto][-1])
            rows.append({"start": float(period), "state": value, "sum": value})
    return rows


def mains_payload(
    timeline: Timeline, span_start: datetime, span_end: datetime
) -> tuple[dict[str, Any], float]:
    """Import payload for the mains power and energy sensors over real [span_start, span_end).

    Returns it and the energy counter's value at ``span_end`` (where the replay goes on).
    """
    data_start, data_end = timeline.to_data(span_start), timeline.to_data(span_end)
    total = energy_until(timeline.origin, data_start)
    times, watts, counter = [], [], []
    for sample in house20_samples(data_start, data_end):
        times.append(timeline.to_real(sample.time).timestamp())
        watts.append(sample.aggregate)
        counter.append(total)
        total += sample.aggregate * PERIOD_S / 3.6e6
    t = np.asarray(times, dtype=np.float64)
    w = np.asarray(watts, dtype=np.float64)
    e = np.asarray(counter, dtype=np.float64)
    s, end = span_start.timestamp(), span_end.timestamp()
    e_times, keep = t, t < end
    payload = {
        "end": end,
        "states": [
            {
                "entity_id": MAINS_ENTITY,
                "attributes": MAINS_ATTRIBUTES,
                "points": [[ts, f"{v:.1f}"] for ts, v in zip(times, watts, strict=True)],
            },
            {
                "entity_id": ENERGY_ENTITY,
                "attributes": ENERGY_ATTRIBUTES,
                "points": [[ts, f"{v:.4f}"] for ts, v in zip(e_times[keep], e[keep], strict=True)],
            },
        ],
        "statistics": [
            {
                "metadata": {
                    "statistic_id": MAINS_ENTITY,
                    "name": None,
                    "source": "recorder",
                    "unit_of_measurement": "W",
                    "has_mean": True,
                    "has_sum": False,
                },
                "rows": _five_minute_rows(t, w, kind="mean", start=s, end=end),
            },
            {
                "metadata": {
                    "statistic_id": ENERGY_ENTITY,
                    "name": None,
                    "source": "recorder",
                    "unit_of_measurement": "kWh",
                    "has_mean": False,
                    "has_sum": True,
                },
                "rows": _five_minute_rows(e_times[keep], e[keep], kind="sum", start=s, end=end),
            },
        ],
    }
    return payload, total


@dataclass(frozen=True, slots=True)
class NilmEntities:
    """One appliance's entity ids (from the entity registry) and recorded attributes."""

    model: str
    card_path: Path
    power: str | None
    energy: str | None
    running: str | None
    power_attributes: dict[str, Any]
    running_attributes: dict[str, Any]


def _grid(
    samples: Sequence[Sample], start: datetime, end: datetime, period: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mains held at each slot boundary of ``period`` in [start, end) (zero-order hold, as
    the integration's resampler); NaN where the last sample is older than MAX_GAP_S."""
    first = math.ceil(start.timestamp() / period) * period
    slots = np.arange(first, end.timestamp(), period, dtype=np.float64)
    times = np.asarray([s.time.timestamp() for s in samples], dtype=np.float64)
    watts = np.asarray([s.aggregate for s in samples], dtype=np.float64)
    idx = np.searchsorted(times, slots, side="right") - 1
    values = np.full(slots.size, np.nan)
    ok = idx >= 0
    held = np.where(ok, idx, 0)
    ok &= (slots - times[held]) <= MAX_GAP_S if times.size else False
    values[ok] = watts[held[ok]]
    return slots, values


def nilm_backfill(
    timeline: Timeline,
    span_start: datetime,
    span_end: datetime,
    appliances: list[NilmEntities],
) -> dict[str, Any]:
    """What NILM's entities would have recorded over real [span_start, span_end)."""
    from numpy.lib.stride_tricks import sliding_window_view

    from custom_components.nilm.engine.model import load_model
    from custom_components.nilm.engine.status import StatusTracker

    states: list[dict[str, Any]] = []
    statistics: list[dict[str, Any]] = []
    data_start, data_end = timeline.to_data(span_start), timeline.to_data(span_end)
    longest = 0.0
    models = []
    for item in appliances:
        model = load_model(item.card_path, "numpy")
        card = model.card
        longest = max(longest, card.window_length * card.sample_period_s)
        models.append((item, model))
    samples = list(house20_samples(data_start - timedelta(seconds=longest + MAX_GAP_S), data_end))
    for item, model in models:
        card = model.card
        period = float(card.sample_period_s)
        length = int(card.window_length)
        delay = (length - 1 - int(card.target_index)) * period
        # targets whose decision (target time + delay) falls inside the span
        slots, mains = _grid(
            samples,
            data_start - timedelta(seconds=delay + int(card.target_index) * period),
            data_end,
            period,
        )
        if slots.size < length:
            continue
        windows = sliding_window_view(mains, length)
        valid = ~np.isnan(windows).any(axis=1)
        raw_power = np.zeros(windows.shape[0], dtype=np.float32)
        raw_on = np.zeros(windows.shape[0], dtype=bool)
        rows = np.flatnonzero(valid)
        for i in range(0, rows.size, 2048):
            sel = rows[i : i + 2048]
            pred = model.predict(np.ascontiguousarray(windows[sel], dtype=np.float32))
            raw_power[sel] = pred.raw_power_w
            raw_on[sel] = pred.on
        shown_at = slots[: windows.shape[0]] + int(card.target_index) * period + delay
        shown_at = shown_at + timeline.shift_s
        tracker = StatusTracker(card.status, period)
        power_points: list[list[Any]] = []
        running_points: list[list[Any]] = []
        energy_times: list[float] = []
        energy_values: list[float] = []
        total = 0.0
        s, e = span_start.timestamp(), span_end.timestamp()
        last_power = last_running = None
        for k in range(windows.shape[0]):
            ts = float(shown_at[k])
            if not valid[k]:
                tracker.reset()
                power, running = "unavailable", "unavailable"
            else:
                total += tracker.update(bool(raw_on[k]), float(raw_power[k])) * period / 3.6e6
                power = f"{float(raw_power[k]) if tracker.is_on else 0.0:.1f}"
                running = "on" if tracker.is_on else "off"
            if not s <= ts < e:
                continue
            if power != last_power:
                power_points.append([ts, power])
                last_power = power
            if running != last_running:
                running_points.append([ts, running])
                last_running = running
            energy_times.append(ts)
            energy_values.append(total)
        if item.power and power_points:
            states.append(
                {
                    "entity_id": item.power,
                    "attributes": item.power_attributes,
                    "points": power_points,
                }
            )
        if item.running and running_points:
            states.append(
                {
                    "entity_id": item.running,
                    "attributes": item.running_attributes,
                    "points": running_points,
                }
            )
        if item.energy and energy_times:
            first = energy_values[0]
            rows = _five_minute_rows(
                np.asarray(energy_times),
                np.asarray(energy_values) - first,
                kind="sum",
                start=s,
                end=e,
            )
            statistics.append(
                {
                    "entity_id": item.energy,
                    "relative": True,
                    "metadata": {
                        "statistic_id": item.energy,
                        "name": None,
                        "source": "recorder",
                        "unit_of_measurement": "kWh",
                        "has_mean": False,
                        "has_sum": True,
                    },
                    "rows": rows,
                }
            )
    return {"end": span_end.timestamp(), "states": states, "statistics": statistics}


def write_payload(config_dir: Path, payload: dict[str, Any], name: str = IMPORT_FILE) -> Path:
    """The file the import action reads (inside the config folder HA can read)."""
    path = config_dir / name
    path.write_text(json.dumps(payload))
    return path
