"""Watching the mains sensors in the entity registry: a renamed one is followed (the
entry's data take the new id and the entry reloads), one that is removed, or still absent
a while after Home Assistant started, raises the ``mains_missing`` repair until it is back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import (
    async_call_later,
    async_track_entity_registry_updated_event,
    async_track_state_change_event,
)
from homeassistant.helpers.start import async_at_started

from .const import DOMAIN, MAINS_MISSING_GRACE_S
from .data import SENSOR_KEYS, MainsSources
from .issues import create_mains_missing, delete_mains_missing

_LOGGER = logging.getLogger(__name__)


def follow_rename(hass: HomeAssistant, entry: ConfigEntry, old: str, new: str) -> None:
    """A mains sensor's entity id changed: the entry's data follows it (and its unique
    id, if it was made from the sensors and no other entry has the new one). The update
    listener then reloads the entry, which subscribes to the new id; devices, entities
    and energy totals stay (their ids do not contain the sensor's)."""
    data = {**entry.data}
    for key in SENSOR_KEYS:
        ids = data.get(key)
        if isinstance(ids, list | tuple) and old in ids:
            data[key] = [new if e == old else e for e in ids]
    if data == dict(entry.data):
        return
    _LOGGER.info("Mains sensor %s was renamed to %s; NILM entry %s follows", old, new, entry.title)
    delete_mains_missing(hass, entry, old)
    unique_id = MainsSources.from_data(data).unique_id
    taken = any(
        e.unique_id == unique_id and e.entry_id != entry.entry_id
        for e in hass.config_entries.async_entries(DOMAIN)
    )
    if entry.unique_id == MainsSources.from_data(entry.data).unique_id and not taken:
        hass.config_entries.async_update_entry(entry, data=data, unique_id=unique_id)
    else:
        hass.config_entries.async_update_entry(entry, data=data)


def async_watch_mains(
    hass: HomeAssistant, entry: ConfigEntry, entity_ids: Sequence[str]
) -> list[Callable[[], None]]:
    """Follow renames of the mains sensors, raise a repair for one that is removed (or
    still absent a while after Home Assistant started) and clear it once it is back.

    Returns the unsubscribe callbacks for the entry to call on unload.
    """
    if not entity_ids:
        return []
    registry = er.async_get(hass)

    @callback
    def _present(entity_id: str) -> None:
        delete_mains_missing(hass, entry, entity_id)

    @callback
    def _registry_updated(event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        data = event.data
        if data["action"] == "remove":
            create_mains_missing(hass, entry, data["entity_id"])
        elif data["action"] == "create":
            _present(data["entity_id"])
        elif "entity_id" in data["changes"]:
            old = data.get("old_entity_id", data["changes"]["entity_id"])
            follow_rename(hass, entry, str(old), data["entity_id"])

    @callback
    def _state_changed(event: Event[EventStateChangedData]) -> None:
        if event.data["new_state"] is not None and event.data["old_state"] is None:
            _present(event.data["entity_id"])

    @callback
    def _check(_now: datetime) -> None:
        for entity_id in entity_ids:
            if registry.async_get(entity_id) is None and hass.states.get(entity_id) is None:
                create_mains_missing(hass, entry, entity_id)
            else:
                _present(entity_id)

    unsubs: list[Callable[[], None]] = [
        async_track_entity_registry_updated_event(hass, list(entity_ids), _registry_updated),
        async_track_state_change_event(hass, list(entity_ids), _state_changed),
    ]
    pending: list[Callable[[], None]] = []

    @callback
    def _started(_hass: HomeAssistant) -> None:
        pending.append(async_call_later(hass, MAINS_MISSING_GRACE_S, _check))

    unsubs.append(async_at_started(hass, _started))

    @callback
    def _cancel() -> None:
        for unsub in pending:
            unsub()

    unsubs.append(_cancel)
    return unsubs
