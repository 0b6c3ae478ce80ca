"""Record a real Home Assistant's REST history answers for the trainer's tests.

A fresh ``hass`` (the pinned version, real clock, a temporary config folder) gets
REFIT House 20's mains and its microwave sub-meter as two power sensors,
``sensor.house_mains_power`` and ``sensor.microwave_plug_power`` (a smart plug on the
microwave), written into its recorder the way HA records a sensor: a row per change of
state (repeats are HA's ``last_reported`` updates, not rows) and ``unavailable`` where
the data has a hole longer than three samples. The rows go in through the dev-only
``nilm_demo.import_history`` (HA's own recorder schema, on the recorder thread); the
history the trainer then reads is HA's own ``/api/history/period`` answer.

The trainer's :class:`~trainer.history_api.HistoryClient` then loads the span exactly as
``nilm-trainer finetune --source history`` does, and every request it sent is saved with
HA's answer (gzip JSON): ``tests/trainer/ha_recording.py`` serves them again, so the
tests run the REST path against real answers without a running HA.

Usage: python -m scripts.ha_dev.record_history [--start 2014-04-01] [--end 2014-04-12]
           [--out tests/trainer/fixtures/ha_history_house20.json.gz]
Data: REFIT (Murray, Stankovic & Stankovic, Scientific Data 4, 160122, 2017), CC-BY 4.0.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scripts.ha_dev.client import HaClient
from scripts.ha_dev.hass import HassProcess, free_port, prepare_config
from scripts.ha_dev.history import write_payload
from scripts.ha_dev.refit import DATA_DIR, PROJECT_ROOT, read_refit_csv, refit_30s_file
from scripts.ha_dev.replay import MAINS_ATTRIBUTES, MAINS_ENTITY, PERIOD_S

PLUG_ENTITY = "sensor.microwave_plug_power"
PLUG_ATTRIBUTES = {
    "unit_of_measurement": "W",
    "device_class": "power",
    "state_class": "measurement",
    "friendly_name": "Microwave plug power (REFIT House 20 sub-meter)",
}
MAX_HOLE_S = 3 * PERIOD_S  # a longer hole in the data: the sensor went unavailable
DEFAULT_OUT = PROJECT_ROOT / "tests" / "trainer" / "fixtures" / "ha_history_house20.json.gz"


def as_recorded(times: list[float], watts: list[float]) -> list[list[Any]]:
    """``[timestamp, state]`` rows as HA's recorder keeps a sensor: one per change of
    state, ``unavailable`` after a hole longer than ``MAX_HOLE_S`` (or a missing value)."""
    rows: list[list[Any]] = []
    last = None
    for i, (t, w) in enumerate(zip(times, watts, strict=True)):
        state = f"{w:.1f}" if math.isfinite(w) else "unavailable"
        if state != last:
            rows.append([t, state])
            last = state
        if i + 1 < len(times) and times[i + 1] - t > MAX_HOLE_S and last != "unavailable":
            rows.append([t + PERIOD_S, "unavailable"])
            last = "unavailable"
    return rows


def house20_columns(start: datetime, end: datetime) -> dict[str, list[float]]:
    """Time (unix s), Aggregate and Microwave of House 20's 30 s files in [start, end)."""
    out: dict[str, list[float]] = {"Time": [], "Aggregate": [], "Microwave": []}
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month < end:
        table = read_refit_csv(refit_30s_file(DATA_DIR, 20, f"{month:%Y-%m}"), columns=tuple(out))
        keep = (table["Time"] >= start.timestamp()) & (table["Time"] < end.timestamp())
        for name, values in out.items():
            values.extend(table[name][keep].tolist())
        month = (month + timedelta(days=32)).replace(day=1)
    return out


async def _fill(url: str, config_dir: Path, start: datetime, end: datetime) -> tuple[str, str]:
    """Onboard, create both sensors, import the span; returns (token, HA version)."""
    columns = house20_columns(start, end)
    async with HaClient(url) as client:
        login = await client.onboard("Recorder", "dev", "dev-password")
        await client.wait_until_running(300)
        await client.set_state(MAINS_ENTITY, "0.0", MAINS_ATTRIBUTES)
        await client.set_state(PLUG_ENTITY, "0.0", PLUG_ATTRIBUTES)
        payload = {
            "end": end.timestamp(),
            "states": [
                {
                    "entity_id": entity,
                    "attributes": attributes,
                    "points": as_recorded(columns["Time"], columns[column]),
                }
                for entity, attributes, column in (
                    (MAINS_ENTITY, MAINS_ATTRIBUTES, "Aggregate"),
                    (PLUG_ENTITY, PLUG_ATTRIBUTES, "Microwave"),
                )
            ],
            "statistics": [],
        }
        path = write_payload(config_dir, payload)
        result = await client.call_service("nilm_demo", "import_history", {"path": str(path)})
        print(f">> imported into the recorder: {result}")
        version = (await client.request("GET", "/api/config"))["version"]
        return login.token, str(version)


def record(start: datetime, end: datetime, out: Path) -> dict[str, Any]:
    from trainer.config import DataConfig
    from trainer.history_api import HistoryClient, load_history

    requests: list[dict[str, Any]] = []

    class RecordingClient(HistoryClient):
        def get(self, path: str, query: Any = None) -> Any:
            answer = super().get(path, query)
            requests.append({"target": self.request_target(path, query), "answer": answer})
            return answer

    with tempfile.TemporaryDirectory(prefix="nilm_record_") as tmp:
        config_dir = Path(tmp)
        port = free_port()
        prepare_config(config_dir, port)
        hass = HassProcess(config_dir)
        url = f"http://127.0.0.1:{port}"
        print(f">> starting Home Assistant in {config_dir} ...")
        hass.start()
        try:

            async def up() -> tuple[str, str]:
                async with HaClient(url) as client:
                    await client.wait_until_up(180, hass.alive)
                return await _fill(url, config_dir, start, end)

            token, version = asyncio.run(up())
            t0 = time.monotonic()
            house = load_history(
                RecordingClient(url, token), MAINS_ENTITY, {"microwave": PLUG_ENTITY},
                start=start, end=end, config=DataConfig(period_s=PERIOD_S),
            )  # fmt: skip
            print(f">> trainer read {len(house.frame):,} rows in {time.monotonic() - t0:.1f} s")
        finally:
            hass.stop()
    recording = {
        "about": (
            "Home Assistant's REST answers to trainer.history_api, recorded by "
            "`python -m scripts.ha_dev.record_history` (see its docstring). Data: REFIT "
            "House 20 (Murray, Stankovic & Stankovic, Scientific Data 4, 160122, 2017), "
            "CC-BY 4.0."
        ),
        "home_assistant": version,
        "mains_entity": MAINS_ENTITY,
        "plug_entity": PLUG_ENTITY,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "requests": requests,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(recording, f, separators=(",", ":"))
    print(f">> {len(requests)} requests from Home Assistant {version} -> {out} "
          f"({out.stat().st_size / 1024:.0f} KiB)")  # fmt: skip
    return recording


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--start", default="2014-04-01")
    p.add_argument("--end", default="2014-04-12")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC)
    record(start, end, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
