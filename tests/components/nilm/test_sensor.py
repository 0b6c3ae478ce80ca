"""The sensors a user sees: status, model facts, energy for the Energy dashboard, names;
energy totals restored across restarts and reset at local midnight."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder.statistics import async_list_statistic_ids
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_mock_restore_state_shutdown_restart,
    mock_restore_cache_with_extra_data,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.nilm.const import DOMAIN, STATUSES

from .conftest import (
    MAINS,
    REPLAY_START,
    W_ATTRS,
    WINDOW,
    Replayer,
    appliance_entities,
    make_entry,
    setup_entry,
    state_of,
)
from .test_facts import METRICS, TRAINING

EN = json.loads(
    (Path(__file__).parents[3] / "custom_components/nilm/translations/en.json").read_text("utf-8")
)


def _entity_id(hass: HomeAssistant, entry: MockConfigEntry, suffix: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_{suffix}"
    )
    assert entity_id is not None
    return entity_id


async def test_status_says_warming_up_waiting_and_running(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    entry = await setup_entry(hass, make_entry(["test_kettle"]))  # no mains state yet
    status = _entity_id(hass, entry, "status")
    assert er.async_get(hass).async_get(status).entity_category == "diagnostic"  # type: ignore[union-attr]
    state = hass.states.get(status)
    assert state is not None
    assert state.state == "waiting_for_mains"
    assert state.attributes["device_class"] == "enum"
    assert state.attributes["options"] == list(STATUSES)
    assert state.attributes["missing_sensors"] == [MAINS]
    assert state.name == "NILM Status"

    feed = iter(house20["Aggregate"][600:1000])
    for _ in range(10):
        await replayer.step(float(next(feed)))
    state = hass.states.get(status)
    assert state is not None
    assert state.state == "warming_up"
    assert 40 <= state.attributes["minutes_left"] <= 50
    assert state.attributes["warming_up"] == ["test_kettle"]
    for _ in range(WINDOW):
        await replayer.step(float(next(feed)))
    state = hass.states.get(status)
    assert state is not None
    assert state.state == "running"
    assert state.attributes == {**state.attributes, "appliances_ready": 1, "appliances": 1}
    assert "minutes_left" not in state.attributes
    await replayer.step("unavailable")
    for _ in range(11):  # past max_gap_s (300 s)
        await replayer.step("unavailable")
    state = hass.states.get(status)
    assert state is not None
    assert state.state == "waiting_for_mains"


def test_every_status_and_attribute_is_translated() -> None:
    translated = EN["entity"]["sensor"]["status"]
    assert set(translated["state"]) == set(STATUSES)
    assert set(translated["state_attributes"]) >= {
        "minutes_left",
        "warming_up",
        "missing_sensors",
        "consumption_negative",
        "failing",
        "appliances_ready",
        "appliances",
    }


async def test_only_the_cumulative_energy_is_offered_to_the_energy_dashboard(
    recorder_mock: object, hass: HomeAssistant, user_models: Path
) -> None:
    """The Energy dashboard's device picker lists the statistics with a sum (state class
    total/total_increasing) in an energy unit: "Energy", never "Energy today"."""
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    energy = _entity_id(hass, entry, "test_kettle_energy")
    today = _entity_id(hass, entry, "test_kettle_energy_today")
    # Read the fields both tested Home Assistant versions return (2026.x renamed some),
    # once the recorder has caught up with the new entities.
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    listed = await async_list_statistic_ids(hass)
    offered = {
        s["statistic_id"]
        for s in listed
        if s.get("has_sum")
        and (
            s.get("unit_class") == "energy"
            or s.get("statistics_unit_of_measurement") in ("Wh", "kWh", "MWh")
        )
    }
    assert energy in offered
    assert today not in offered
    state = hass.states.get(today)
    assert state is not None
    assert state.attributes["device_class"] == "energy"
    assert "state_class" not in state.attributes


async def test_untracked_power_is_named_on_its_own(hass: HomeAssistant, user_models: Path) -> None:
    hass.states.async_set(MAINS, "100", {**W_ATTRS, "friendly_name": "House mains replay"})
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="House mains replay",
        unique_id=MAINS,
        data={"mains_entities": [MAINS], "appliances": ["test_kettle"], "backend": "cpu"},
    )
    await setup_entry(hass, entry)
    untracked = _entity_id(hass, entry, "untracked_power")
    assert untracked == "sensor.nilm_untracked_power"
    state = hass.states.get(untracked)
    assert state is not None
    assert state.name == "NILM Untracked power"
    registry = er.async_get(hass).async_get(untracked)
    assert registry is not None
    device = dr.async_get(hass).async_get(registry.device_id or "")
    assert device is not None
    assert device.name == "NILM"
    assert "(" not in f"{device.model} {device.manufacturer}"


async def test_model_sensor_shows_what_the_card_measured(
    hass: HomeAssistant, user_models: Path
) -> None:
    path = user_models / "test_kettle.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(training=TRAINING, metrics=METRICS)
    path.write_text(json.dumps(raw), encoding="utf-8")
    entry = await setup_entry(hass, make_entry())  # no mains data at all
    kettle = _entity_id(hass, entry, "test_kettle_model")
    registry = er.async_get(hass).async_get(kettle)
    assert registry is not None
    assert registry.entity_category == "diagnostic"
    state = hass.states.get(kettle)
    assert state is not None
    assert state.state == "test_kettle, int8"  # available: it needs no mains data
    assert state.name == "Kettle Model"
    attrs = state.attributes
    assert attrs["test_f1"] == 0.812
    assert attrs["test_running_on_delay_s"] == 30.0
    assert attrs["test_running_off_delay_s"] == 61.0
    assert attrs["trained_on"] == ["REFIT house 2", "UK-DALE house 1"]
    assert attrs["tested_on"].startswith("REFIT house 20")
    assert attrs["backend"] in ("litert", "numpy")
    # Every attribute it can show has a translated name.
    names = EN["entity"]["sensor"]["model"]["state_attributes"]
    assert set(attrs) - {"friendly_name"} <= set(names)
    # The tiny test microwave's card carries no test-house metrics: none are shown.
    microwave = hass.states.get(_entity_id(hass, entry, "test_microwave_model"))
    assert microwave is not None
    assert microwave.state != STATE_UNAVAILABLE
    assert not any(k.startswith("test_") for k in microwave.attributes)


async def test_energy_is_restored_across_a_restart(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    await hass.config.async_set_time_zone("UTC")
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = appliance_entities(hass, entry, "test_kettle")
    feed = iter(house20["Aggregate"][700:1100])
    for _ in range(WINDOW + 30):  # covers the 06:47 boil
        await replayer.step(float(next(feed)))
    before = float(state_of(hass, ids["energy"]))
    assert before > 0

    await async_mock_restore_state_shutdown_restart(hass)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    # Unavailable until a window is full again, then it continues from the restored total.
    assert state_of(hass, ids["energy"]) == STATE_UNAVAILABLE
    values = []
    for _ in range(WINDOW + 60):
        await replayer.step(float(next(feed)))
        if (state := state_of(hass, ids["energy"])) != STATE_UNAVAILABLE:
            values.append(float(state))
    assert values[0] >= before
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert float(state_of(hass, ids["energy_today"])) == pytest.approx(values[-1], abs=1e-6)


async def test_energy_today_starts_at_zero_on_a_new_day_and_resets_at_midnight(
    hass: HomeAssistant,
    user_models: Path,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
) -> None:
    # The replay's kettle boil (row 815) lands 10 minutes before local midnight.
    tz = dt_util.get_default_time_zone()
    local_midnight = (REPLAY_START.astimezone(tz) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0
    )
    start = local_midnight.astimezone(dt_util.UTC) - timedelta(seconds=30 * (815 - 700 + 20))
    freezer.move_to(start - timedelta(seconds=20))
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.kettle_energy", "5.0"),
                {"native_value": 5.0, "native_unit_of_measurement": "kWh"},
            ),
            (
                State(
                    "sensor.kettle_energy_today",
                    "1.5",
                    last_updated=start - timedelta(days=1),
                ),
                {"native_value": 1.5, "native_unit_of_measurement": "kWh"},
            ),
        ],
    )
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = appliance_entities(hass, entry, "test_kettle")
    assert ids["energy"] == "sensor.kettle_energy"
    replayer = Replayer(hass, freezer, start)
    before_midnight = after_midnight = None
    for watts in house20["Aggregate"][700:900]:
        await replayer.step(float(watts))
        if replayer.now <= local_midnight:
            before_midnight = state_of(hass, ids["energy_today"])
        elif after_midnight is None:
            after_midnight = state_of(hass, ids["energy_today"])
    energy = float(state_of(hass, ids["energy"]))
    assert before_midnight is not None and after_midnight is not None
    # Yesterday's 1.5 kWh did not leak into today; the lifetime total kept its 5 kWh.
    today = float(before_midnight)
    assert 0 < today < 1.0
    assert energy == pytest.approx(5.0 + today, abs=1e-3)
    assert float(after_midnight) < today
    assert float(state_of(hass, ids["energy_today"])) <= energy - 5.0


async def test_unusable_restored_energy_starts_from_zero(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.kettle_energy", "abc"),
                {"native_value": "abc", "native_unit_of_measurement": "kWh"},
            )
        ],
    )
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = appliance_entities(hass, entry, "test_kettle")
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    assert float(state_of(hass, ids["energy"])) < 0.1
