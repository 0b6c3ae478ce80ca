"""Development only (scripts/develop): write past REFIT history into the recorder.

Never shipped: ``scripts/ha_dev/hass.py`` links this folder into the dev config's
``custom_components/`` and ``configuration.yaml`` loads it with ``nilm_demo:``. One action,
``nilm_demo.import_history``, reads a JSON file written by ``scripts/ha_dev/history.py``:

- ``states``: per entity, its attributes and ``[timestamp, state]`` points. They go
  straight into the recorder's tables (its own models, on its own thread, between its
  commits), not through the state machine: no listener sees them (NILM's coordinator
  would take a past timestamp for a clock step), and the live state is left alone. The
  History panel, the logbook and NILM's warm start read them like any recorded state.
- ``statistics``: per statistic, 5-minute rows; they and the hourly rows derived from
  them are imported with the recorder's own statistics import (the
  ``recorder.import_statistics`` path, plus the 5-minute table it leaves out, which the
  recorder continues from when it compiles the next 5 minutes). ``"relative": true``
  marks a sum whose rows count from 0 at the span start: they are moved onto the sum
  recorded before the span and onto the entity's current state, so a total that already
  counts (NILM's energy) continues without a jump.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import voluptuous as vol
from homeassistant.components.recorder import get_instance
from homeassistant.components.recorder.db_schema import (
    StateAttributes,
    States,
    StatesMeta,
    Statistics,
    StatisticsShortTerm,
)
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.components.recorder.tasks import RecorderTask
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.helpers.json import json_bytes
from homeassistant.helpers.recorder import session_scope
from homeassistant.helpers.typing import ConfigType
from homeassistant.util.ulid import ulid_at_time, ulid_to_bytes
from sqlalchemy import insert, select

DOMAIN = "nilm_demo"
_LOGGER = logging.getLogger(__name__)
FIVE_MINUTES = 300
HOUR = 3600
CONFIG_SCHEMA = vol.Schema({DOMAIN: vol.Schema({})}, extra=vol.ALLOW_EXTRA)
SERVICE_SCHEMA = vol.Schema({vol.Required("path"): str})


@dataclass(slots=True)
class _WriteStatesTask(RecorderTask):
    """Runs on the recorder thread, after the recorder committed what it had pending."""

    series: list[dict[str, Any]]
    result: concurrent.futures.Future[int] = field(default_factory=concurrent.futures.Future)

    def run(self, instance: Any) -> None:
        try:
            with session_scope(session=instance.get_session()) as session:
                count = _write_states(instance, session, self.series)
            # The recorder reads its oldest state's time from the database only at start
            # and after a purge; the history API answers [] for a span that ends before
            # it, so rows older than this HA's start would stay invisible until a restart.
            with session_scope(session=instance.get_session(), read_only=True) as session:
                instance.states_manager.load_from_db(session)
        except Exception as err:  # reported to the caller of the action
            self.result.set_exception(err)
        else:
            self.result.set_result(count)


def _write_states(instance: Any, session: Any, series: list[dict[str, Any]]) -> int:
    count = 0
    for item in series:
        entity_id = item["entity_id"]
        points = item["points"]
        if not points:
            continue
        metadata_id = instance.states_meta_manager.get(entity_id, session, True)
        if metadata_id is None:
            meta = StatesMeta(entity_id=entity_id)
            session.add(meta)
            session.flush()
            metadata_id = meta.metadata_id
        shared = json_bytes(item.get("attributes") or {})
        attrs_hash = StateAttributes.hash_shared_attrs_bytes(shared)
        shared_text = shared.decode()
        attributes_id = session.execute(
            select(StateAttributes.attributes_id).where(
                StateAttributes.hash == attrs_hash, StateAttributes.shared_attrs == shared_text
            )
        ).scalar()
        if attributes_id is None:
            attrs = StateAttributes(hash=attrs_hash, shared_attrs=shared_text)
            session.add(attrs)
            session.flush()
            attributes_id = attrs.attributes_id
        rows = [
            {
                "state": str(state),
                "last_updated_ts": float(ts),
                "last_changed_ts": None,  # as the recorder stores it when equal to updated
                "last_reported_ts": None,
                "metadata_id": metadata_id,
                "attributes_id": attributes_id,
                "origin_idx": 0,
                "context_id_bin": ulid_to_bytes(ulid_at_time(float(ts))),
            }
            for ts, state in points
        ]
        session.execute(insert(States), rows)
        count += len(rows)
    return count


def _hourly(rows: list[dict[str, Any]], has_sum: bool, last_end: float) -> list[dict[str, Any]]:
    """Hourly rows from 5-minute rows (hours that ended by ``last_end`` only)."""
    hours: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        hours[row["start"] // HOUR * HOUR].append(row)
    out = []
    for start, part in sorted(hours.items()):
        if start + HOUR > last_end:
            continue
        if has_sum:
            last = max(part, key=lambda r: r["start"])
            out.append({"start": start, "state": last["state"], "sum": last["sum"]})
        else:
            out.append(
                {
                    "start": start,
                    "mean": sum(r["mean"] for r in part) / len(part),
                    "min": min(r["min"] for r in part),
                    "max": max(r["max"] for r in part),
                }
            )
    return out


def _sum_before(hass: HomeAssistant, statistic_id: str, start: float) -> float:
    """The 5-minute sum recorded just before ``start`` (0 when none)."""
    begin = datetime.fromtimestamp(start, UTC) - timedelta(days=30)
    found = statistics_during_period(
        hass,
        begin,
        datetime.fromtimestamp(start, UTC),
        {statistic_id},
        "5minute",
        None,
        {"sum"},
    )
    rows = found.get(statistic_id) or []
    return float(rows[-1].get("sum") or 0.0) if rows else 0.0


def _metadata(meta: dict[str, Any]) -> dict[str, Any]:
    out = dict(meta)
    out.setdefault("source", "recorder")
    try:  # HA 2025.4+: mean_type says what has_mean said
        from homeassistant.components.recorder.models import StatisticMeanType

        out.setdefault(
            "mean_type",
            StatisticMeanType.ARITHMETIC if out.get("has_mean") else StatisticMeanType.NONE,
        )
    except ImportError:
        pass
    return out


async def _import(hass: HomeAssistant, payload: dict[str, Any]) -> dict[str, Any]:
    instance = get_instance(hass)
    t0 = time.monotonic()
    await instance.async_block_till_done()
    task = _WriteStatesTask(payload.get("states", []))
    instance.queue_task(task)
    states = await asyncio.wrap_future(task.result)
    last_end = float(payload.get("end", time.time())) // FIVE_MINUTES * FIVE_MINUTES
    statistics = 0
    for item in payload.get("statistics", []):
        meta = _metadata(item["metadata"])
        rows = [r for r in item["rows"] if r["start"] + FIVE_MINUTES <= last_end]
        if not rows:
            continue
        has_sum = bool(meta.get("has_sum"))
        if has_sum and item.get("relative"):
            before = await instance.async_add_executor_job(
                _sum_before, hass, meta["statistic_id"], rows[0]["start"]
            )
            current = hass.states.get(item.get("entity_id", meta["statistic_id"]))
            try:
                now_value = float(current.state) if current else 0.0
            except ValueError:
                now_value = 0.0
            final = rows[-1]["sum"]
            rows = [
                {
                    "start": r["start"],
                    "sum": before + r["sum"],
                    "state": now_value - (final - r["sum"]),
                }
                for r in rows
            ]
        for table, part in (
            (StatisticsShortTerm, rows),
            (Statistics, _hourly(rows, has_sum, last_end)),
        ):
            stats = [{**r, "start": datetime.fromtimestamp(r["start"], UTC)} for r in part]
            if stats:
                instance.async_import_statistics(meta, stats, table)
                statistics += len(stats)
    await instance.async_block_till_done()
    seconds = round(time.monotonic() - t0, 2)
    _LOGGER.info("imported %d states and %d statistics rows in %.1f s", states, statistics, seconds)
    return {"states": states, "statistics": statistics, "seconds": seconds}


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    async def import_history(call: ServiceCall) -> ServiceResponse:
        path = Path(call.data["path"])
        payload = await hass.async_add_executor_job(lambda: json.loads(path.read_text()))
        return await _import(hass, payload)

    hass.services.async_register(
        DOMAIN,
        "import_history",
        import_history,
        schema=SERVICE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    return True
