"""mains_watch.py: a renamed mains sensor is followed, a removed one raises a repair."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.nilm.const import DOMAIN

from .conftest import W_ATTRS, make_entry, setup_entry


def _register_sensor(hass: HomeAssistant, unique_id: str, object_id: str) -> str:
    entity = er.async_get(hass).async_get_or_create(
        "sensor", "meter", unique_id, suggested_object_id=object_id
    )
    hass.states.async_set(entity.entity_id, "100", W_ATTRS)
    return entity.entity_id


def _uids(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    return {
        e.unique_id: e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }


async def _rename(hass: HomeAssistant, old: str, new: str) -> None:
    er.async_get(hass).async_update_entity(old, new_entity_id=new)
    state = hass.states.get(old)
    assert state is not None
    hass.states.async_remove(old)  # what the sensor's platform does on a rename
    hass.states.async_set(new, state.state, state.attributes)
    await hass.async_block_till_done()


async def test_a_renamed_mains_sensor_is_followed(hass: HomeAssistant, user_models: Path) -> None:
    """The entry's data and unique id follow the new entity id and the entry reloads
    subscribed to it; the NILM devices, entities and their ids stay."""
    mains = _register_sensor(hass, "phase_1", "mains_power")
    other = _register_sensor(hass, "phase_2", "phase_2_power")
    entry = await setup_entry(hass, make_entry(["test_kettle"], mains=[mains, other]))
    before = _uids(hass, entry)
    devices = {d.id for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)}

    await _rename(hass, mains, "sensor.house_power")
    assert entry.data["mains_entities"] == ["sensor.house_power", other]
    assert entry.unique_id == "sensor.house_power+sensor.phase_2_power"
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.coordinator
    assert coordinator.mains_entities == ["sensor.house_power", other]
    assert _uids(hass, entry) == before
    assert {
        d.id for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    } == devices
    assert not [i for (d, i) in ir.async_get(hass).issues if d == DOMAIN]
    # The renamed sensor feeds the entry: it is no longer waiting for it.
    hass.states.async_set("sensor.house_power", "150", W_ATTRS)
    await hass.async_block_till_done()
    assert "sensor.house_power" not in coordinator.status()[1].get("missing_sensors", [])


async def test_a_renamed_export_or_solar_sensor_is_followed(
    hass: HomeAssistant, user_models: Path
) -> None:
    grid = _register_sensor(hass, "import", "grid_import")
    export = _register_sensor(hass, "export", "grid_export")
    solar = _register_sensor(hass, "solar", "solar_power")
    entry = MockConfigEntry(
        domain=DOMAIN,
        version=1,
        minor_version=2,
        unique_id="+".join(sorted([grid, export, solar])),
        data={
            "mains_type": "import_export",
            "mains_entities": [grid],
            "export_entities": [export],
            "solar_entities": [solar],
            "appliances": ["test_kettle"],
            "backend": "cpu",
        },
    )
    await setup_entry(hass, entry)
    await _rename(hass, export, "sensor.feed_in")
    await _rename(hass, solar, "sensor.inverter")
    assert entry.data["export_entities"] == ["sensor.feed_in"]
    assert entry.data["solar_entities"] == ["sensor.inverter"]
    assert entry.data["mains_entities"] == [grid]
    assert entry.unique_id == "+".join(sorted([grid, "sensor.feed_in", "sensor.inverter"]))
    assert set(entry.runtime_data.coordinator.mains_entities) == {
        grid,
        "sensor.feed_in",
        "sensor.inverter",
    }


async def test_a_removed_mains_sensor_raises_a_repair_naming_it(
    hass: HomeAssistant, user_models: Path
) -> None:
    mains = _register_sensor(hass, "phase_1", "mains_power")
    entry = await setup_entry(hass, make_entry(["test_kettle"], mains=[mains]))
    issue_id = f"{entry.entry_id}_mains_missing_{mains}"
    er.async_get(hass).async_remove(mains)
    hass.states.async_remove(mains)
    await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "mains_missing"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {"sensor": mains, "entry": entry.title}
    assert entry.data["mains_entities"] == [mains]  # nothing else guessed

    # A model repair sync (a reload) leaves it; the sensor coming back clears it.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    _register_sensor(hass, "phase_1", "mains_power")
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    # Removing the entry removes it with the others.
    er.async_get(hass).async_remove(mains)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not [i for (d, i) in ir.async_get(hass).issues if d == DOMAIN]


async def test_a_mains_sensor_absent_after_start_raises_a_repair(
    hass: HomeAssistant, user_models: Path, freezer: Any
) -> None:
    """Gone while NILM was not running (no event to see): once Home Assistant has run
    for the grace period without the sensor in the registry or the state machine."""

    from custom_components.nilm.const import MAINS_MISSING_GRACE_S

    entry = await setup_entry(hass, make_entry(["test_kettle"], mains=["sensor.old_meter"]))
    issue_id = f"{entry.entry_id}_mains_missing_sensor.old_meter"
    registry = ir.async_get(hass)
    assert registry.async_get_issue(DOMAIN, issue_id) is None  # not before the grace
    freezer.tick(timedelta(seconds=MAINS_MISSING_GRACE_S + 1))
    async_fire_time_changed(hass, dt_util.utcnow())
    await hass.async_block_till_done()
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert (issue.translation_placeholders or {})["sensor"] == "sensor.old_meter"
    hass.states.async_set("sensor.old_meter", "100", W_ATTRS)  # a YAML sensor, loaded late
    await hass.async_block_till_done()
    assert registry.async_get_issue(DOMAIN, issue_id) is None
