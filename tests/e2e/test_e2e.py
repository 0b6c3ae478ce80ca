"""End to end: a real ``hass``, onboarded and configured over HTTP, fed real House 20 data.

Everything goes through the public REST/WebSocket API (as the frontend and a meter bridge
would); entities are found through the entity registry (platform ``nilm``), never by
guessing entity ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from scripts.ha_dev.client import field_options
from scripts.ha_dev.replay import MAINS_ENTITY, PERIOD_S

from .conftest import KETTLE_EVENTS, HaInstance, Replayed, data_time_at, error_lines, run

pytestmark = pytest.mark.e2e

KEYS = ("power", "energy", "energy_today", "running")


async def _registry(ha: HaInstance) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with ha.client() as client:
        return await client.entity_registry("nilm"), await client.device_registry()


def _entity(entities: list[dict[str, Any]], entry_id: str, model: str, key: str) -> str:
    wanted = f"{entry_id}_{model}_{key}"
    for entity in entities:
        if entity["unique_id"] == wanted:
            return str(entity["entity_id"])
    raise AssertionError(f"no nilm entity with unique id {wanted}")


def _kettle_model(replayed: Replayed) -> str:
    kettles = [name for name in replayed.appliances if "kettle" in name]
    assert kettles, f"no kettle model offered: {replayed.appliances}"
    return kettles[0]


def test_config_flow_form_follows_the_contract(ha: HaInstance, replayed: Replayed) -> None:
    names = [field["name"] for field in replayed.form["data_schema"]]
    assert {"mains_entities", "appliances", "backend"} <= set(names)
    assert set(ha.models) <= set(field_options(replayed.form["data_schema"], "appliances"))
    assert replayed.entry["domain"] == "nilm"
    assert replayed.entry["state"] == "loaded"


def test_config_flow_reports_bad_input_on_the_form(ha: HaInstance, replayed: Replayed) -> None:
    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with ha.client() as client:
            form = await client.start_flow("nilm")
            missing = await client.flow_step(
                form["flow_id"],
                {"mains_entities": ["sensor.no_such_meter"], "appliances": replayed.appliances},
            )
            again = await client.flow_step(
                form["flow_id"],
                {"mains_entities": [MAINS_ENTITY], "appliances": replayed.appliances},
            )
            return missing, again

    missing, again = run(go())
    assert missing["type"] == "form", missing
    assert missing["errors"] == {"mains_entities": "entity_not_found"}
    assert again["type"] == "abort", again
    assert again["reason"] == "already_configured"


def test_each_appliance_has_a_device_and_its_entities(ha: HaInstance, replayed: Replayed) -> None:
    entities, devices = run(_registry(ha))
    entry_id = replayed.entry["entry_id"]
    ours = [e for e in entities if e["config_entry_id"] == entry_id]
    device_names = {d["id"]: d["name_by_user"] or d["name"] for d in devices}
    for model in replayed.appliances:
        ids = [_entity(ours, entry_id, model, key) for key in KEYS]
        device_ids = {e["device_id"] for e in ours if e["entity_id"] in ids}
        assert len(device_ids) == 1, f"{model}: entities spread over devices {device_ids}"
        assert device_names[device_ids.pop()], f"{model}: device without a name"
    untracked = [e for e in ours if e["unique_id"].endswith("untracked_power")]
    assert len(untracked) == 1, [e["unique_id"] for e in ours]


def test_states_are_plausible_and_energy_never_decreases(
    ha: HaInstance, replayed: Replayed
) -> None:
    entities, _ = run(_registry(ha))
    entry_id = replayed.entry["entry_id"]
    final = replayed.snapshots[-1][1]
    for model in replayed.appliances:
        power = _entity(entities, entry_id, model, "power")
        energy = _entity(entities, entry_id, model, "energy")
        numeric = [
            states.get(energy) not in (None, "unknown", "unavailable")
            for _, states in replayed.snapshots
        ]
        values = [
            float(states[energy])
            for ok, (_, states) in zip(numeric, replayed.snapshots, strict=True)
            if ok
        ]
        # A model is numeric once its window is full (4.3 h for the cycle appliances,
        # about as long as the replay): from then on it must stay mostly numeric.
        assert values, f"{energy} never numeric"
        after_first = len(numeric) - numeric.index(True)
        assert len(values) >= after_first // 2, f"{energy} rarely numeric: {values}"
        assert all(b >= a for a, b in pairwise(values)), values
        assert 0.0 <= float(final[power]) <= 6000.0
    # The kettle boiled twice during the replay: its energy must have grown, by an amount
    # of the order of what the sub-meter measured (tiny test model: a factor 3 either way).
    kettle_energy = _entity(entities, entry_id, _kettle_model(replayed), "energy")
    series = [float(s[kettle_energy]) for _, s in replayed.snapshots if _numeric(s, kettle_energy)]
    grown = series[-1] - series[0]
    truth = sum(s.kettle for s in replayed.samples) * PERIOD_S / 3.6e6
    print(f"kettle energy: predicted {grown:.3f} kWh, sub-meter {truth:.3f} kWh")
    assert truth / 3 <= grown <= truth * 3


def test_kettle_running_turns_on_at_the_real_boils(ha: HaInstance, replayed: Replayed) -> None:
    entities, _ = run(_registry(ha))
    running = _entity(entities, replayed.entry["entry_id"], _kettle_model(replayed), "running")
    start = replayed.posted_at[0][1] - timedelta(minutes=1)

    async def history() -> list[dict[str, Any]]:
        async with ha.client() as client:
            return await client.history(running, start.isoformat())

    rows = run(history())

    ons = [
        data_time_at(replayed, datetime.fromisoformat(row["last_changed"]))
        for row in rows
        if row["state"] == "on"
    ]
    print(f"kettle running turned on at data times {ons}")
    for event in KETTLE_EVENTS:
        near = [t for t in ons if t is not None and -60 <= (t - event).total_seconds() <= 300]
        assert near, f"kettle running never turned on near {event:%H:%M:%S} (on at {ons})"
    # It must also turn off again: no more "on" periods than a few per boil.
    assert len(ons) <= 4 * len(KETTLE_EVENTS), ons


def test_ha_clock_runs_at_the_replay_speed(replayed: Replayed) -> None:
    """HA saw one sample per 30 s of *its* time (libfaketime), as a real meter would give."""
    ha_times = [posted for _, posted in replayed.posted_at]
    steps = [(b - a).total_seconds() for a, b in pairwise(ha_times)]
    median = sorted(steps)[len(steps) // 2]
    print(f"HA-time between samples: median {median:.1f} s, max {max(steps):.1f} s")
    assert 27.0 <= median <= 33.0, median


def test_no_errors_in_the_home_assistant_log(ha: HaInstance, replayed: Replayed) -> None:
    bad = error_lines(ha.process.log_text())
    assert not bad, "\n".join(bad[:20])


def _numeric(states: dict[str, str], entity_id: str) -> bool:
    try:
        float(states[entity_id])
    except (KeyError, ValueError):
        return False
    return True
