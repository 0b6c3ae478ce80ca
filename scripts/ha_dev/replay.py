"""Replay REFIT House 20 (30 s) into Home Assistant as a mains power sensor.

Data: REFIT (Murray, Stankovic & Stankovic, Scientific Data 4, 160122, 2017), CC-BY 4.0,
read from ../shared/data (or $NILM_DATA_DIR). The sensor is what a real power meter
bridge would create: POST /api/states/<entity> with unit W, device class power,
state class measurement. Pacing is in real seconds = data seconds / speed; with HA's
clock accelerated by the same factor (see hass.py) HA sees one sample every 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `scripts.ha_dev` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.ha_dev.client import HaClient
from scripts.ha_dev.refit import default_data_dir, read_refit_csv, refit_30s_file, refit_30s_months

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAINS_ENTITY = "sensor.house_mains_power"
MAINS_ATTRIBUTES = {
    "unit_of_measurement": "W",
    "device_class": "power",
    "state_class": "measurement",
    "friendly_name": "House mains power (REFIT House 20 replay)",
}
# The energy counter a meter bridge would report beside the power (the Energy dashboard's
# grid consumption): the replay integrates the 30 s samples (scripts/ha_dev/history.py).
ENERGY_ENTITY = "sensor.house_mains_energy"
ENERGY_ATTRIBUTES = {
    "unit_of_measurement": "kWh",
    "device_class": "energy",
    "state_class": "total_increasing",
    "friendly_name": "House mains energy (REFIT House 20 replay)",
}
PERIOD_S = 30.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One 30 s REFIT row (UTC), watts."""

    time: datetime
    aggregate: float
    kettle: float


def house20_samples(start: datetime, end: datetime | None = None) -> Iterator[Sample]:
    """Rows of REFIT House 20 from ``start`` (inclusive) to ``end`` (exclusive), in order."""
    folder = default_data_dir()
    months = refit_30s_months(folder, 20)
    if not months:
        raise FileNotFoundError(
            f"no REFIT House 20 files in {folder / 'refit_30s' / 'house20'}; set NILM_DATA_DIR"
        )
    for name in months:
        month = datetime.strptime(name, "%Y-%m").replace(tzinfo=UTC)
        next_month = (month + timedelta(days=32)).replace(day=1)
        if next_month <= start or (end is not None and month >= end):
            continue
        table = read_refit_csv(
            refit_30s_file(folder, 20, name), columns=("Time", "Aggregate", "Kettle")
        )
        for seconds, aggregate, kettle in zip(
            table["Time"].tolist(),
            table["Aggregate"].tolist(),
            table["Kettle"].tolist(),
            strict=True,
        ):
            when = datetime.fromtimestamp(seconds, UTC)
            if when < start:
                continue
            if end is not None and when >= end:
                return
            yield Sample(when, aggregate, kettle)


async def replay(
    client: HaClient,
    samples: Iterable[Sample],
    *,
    speed: float,
    entity_id: str = MAINS_ENTITY,
    progress_every: int = 0,
    stop: asyncio.Event | None = None,
    on_posted: Callable[[Sample, dict[str, Any]], None] | None = None,
    energy_kwh: float | None = None,
    first_due_s: float = 0.0,
) -> int:
    """Post samples on a real-time schedule of ``PERIOD_S / speed``; returns the count.

    The schedule is absolute (start + first_due_s + k * step), so a slow POST does not
    accumulate drift. With ``energy_kwh`` (the counter before the first sample) each
    sample also posts ``ENERGY_ENTITY``, then adds its own 30 s of energy to it.
    """
    step = PERIOD_S / speed
    t0 = time.monotonic() + first_due_s
    count = 0
    for count, sample in enumerate(samples, start=1):
        due = t0 + (count - 1) * step
        delay = due - time.monotonic()
        if delay > 0:
            if stop is not None:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return count - 1
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(delay)
        state = await client.set_state(entity_id, f"{sample.aggregate:.1f}", MAINS_ATTRIBUTES)
        if energy_kwh is not None:
            await client.set_state(ENERGY_ENTITY, f"{energy_kwh:.4f}", ENERGY_ATTRIBUTES)
            energy_kwh += sample.aggregate * PERIOD_S / 3.6e6
        if on_posted is not None:
            on_posted(sample, state)
        if progress_every and count % progress_every == 0:
            print(f"   replayed {sample.time:%Y-%m-%d %H:%M} UTC  {sample.aggregate:7.1f} W")
    return count


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8123")
    parser.add_argument("--token", default=os.environ.get("HASS_TOKEN"), required=False)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--start", default="2014-04-01T00:00:00", help="UTC data time")
    parser.add_argument("--days", type=float, default=30.0)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = start + timedelta(days=args.days)
    async with HaClient(args.url, args.token) as client:
        await replay(client, house20_samples(start, end), speed=args.speed, progress_every=120)


if __name__ == "__main__":
    parsed = parse_args()
    if not parsed.token:
        sys.exit("pass --token or set HASS_TOKEN (a long-lived access token)")
    asyncio.run(_main(parsed))
