"""Setting up, unloading and repairing one NILM config entry."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import (
    async_call_later,
    async_track_entity_registry_updated_event,
    async_track_state_change_event,
)
from homeassistant.helpers.start import async_at_started

from .const import (
    CONF_APPLIANCES,
    CONF_BACKEND,
    CONF_EXPORT_ENTITIES,
    CONF_MAINS_ENTITIES,
    CONF_MAINS_TYPE,
    CONF_MAX_GAP_S,
    CONF_SOLAR_ENTITIES,
    CONF_THRESHOLD_PREFIX,
    DEFAULT_BACKEND,
    DEFAULT_MAX_GAP_S,
    DOMAIN,
    ISSUE_BACKEND_UNAVAILABLE,
    ISSUE_MODEL_CORRUPT,
    ISSUE_MODEL_MISSING,
    ISSUE_MODEL_UNSUPPORTED,
    MAINS_CONSUMPTION,
    MAINS_MISSING_GRACE_S,
    REPAIR_MAINS_MISSING,
    REPAIR_USER_MODEL_REJECTED,
    USER_MODELS_SUBDIR,
)
from .coordinator import CONF_MAX_POWER_W, DEFAULT_MAX_POWER_W, NilmCoordinator
from .engine.model import NilmModel
from .entity import entry_device_info
from .mains import mains_terms, mains_type
from .models import AvailableModel, LoadFailure, load_appliance, replacement_for, scan_models

_LOGGER = logging.getLogger(__name__)

# The repairs one per configured model (issue id: entry id + model name), synced at setup.
MODEL_REPAIRS = frozenset(
    {
        ISSUE_MODEL_MISSING,
        ISSUE_MODEL_CORRUPT,
        ISSUE_MODEL_UNSUPPORTED,
        ISSUE_BACKEND_UNAVAILABLE,
        REPAIR_USER_MODEL_REJECTED,
    }
)
# Entry data holding mains sensor ids (all of them renamed together with the entity).
SENSOR_KEYS = (CONF_MAINS_ENTITIES, CONF_EXPORT_ENTITIES, CONF_SOLAR_ENTITIES)

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]


@dataclass(slots=True)
class NilmData:
    """What one config entry holds at runtime."""

    coordinator: NilmCoordinator
    backend: str
    failures: dict[str, LoadFailure] = field(default_factory=dict)
    available: dict[str, AvailableModel] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)  # skipped: appliance tracked already


type NilmConfigEntry = ConfigEntry[NilmData]


def entry_settings(entry: ConfigEntry) -> dict[str, object]:
    """Options override the data chosen in the config flow."""
    return {**entry.data, **entry.options}


@dataclass(slots=True)
class _Loaded:
    available: dict[str, AvailableModel] = field(default_factory=dict)
    models: dict[str, NilmModel] = field(default_factory=dict)
    failures: dict[str, LoadFailure] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)  # configured, same appliance again


def _load_all(
    user_dir: Path, names: list[str], backend: str, thresholds: dict[str, float]
) -> _Loaded:
    """Load every configured model; nothing raised here may fail the whole entry.

    Each configured name runs the model :func:`replacement_for` picks (a user model
    replaces the bundled one of its appliance). An appliance is tracked once: a second
    configured name for it is skipped, so it never gets a second device and the
    untracked power never subtracts it twice.
    """
    out = _Loaded()
    try:
        out.available, rejected = scan_models(user_dir)
    except Exception as err:  # the listing itself broke: every model says why
        _LOGGER.exception("Listing the NILM models failed")
        reason = f"the model folders cannot be listed: {type(err).__name__}: {err}"
        out.failures = {n: LoadFailure(n, ISSUE_MODEL_CORRUPT, reason) for n in names}
        return out
    tracked: dict[str, str] = {}  # appliance -> configured name
    for name in names:
        chosen = replacement_for(out.available, name)
        if chosen is not None:
            appliance = chosen.card.appliance
            if appliance in tracked:
                _LOGGER.warning(
                    "%s and %s both track the %s; only %s is used (remove %s in the options)",
                    tracked[appliance],
                    name,
                    appliance,
                    tracked[appliance],
                    name,
                )
                out.duplicates.append(name)
                continue
            tracked[appliance] = name
        threshold = thresholds.get(name)
        if chosen is not None:
            threshold = thresholds.get(chosen.card.appliance, threshold)
        try:
            model, failure = load_appliance(chosen, name, backend, threshold, rejected.get(name))
        except Exception as err:
            _LOGGER.exception("Loading model %s failed", name)
            model, failure = None, LoadFailure(name, ISSUE_MODEL_CORRUPT, f"{err!r}"[:500])
        if model is not None:
            out.models[name] = model
        if failure is not None:
            out.failures[name] = failure
    return out


def _setting(settings: dict[str, object], key: str, default: float) -> float:
    """A numeric option, finite and > 0; anything else is the default (an entry saved
    before the flow checked values, e.g. max_gap_s "nan", must still set up)."""
    raw = settings.get(key, default)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        _LOGGER.warning("Option %s=%r is not a positive number; using %s", key, raw, default)
        return default
    return value


def _thresholds(settings: dict[str, object]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in settings.items():
        if not key.startswith(CONF_THRESHOLD_PREFIX) or value is None:
            continue
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number) and number >= 0:
            out[key.removeprefix(CONF_THRESHOLD_PREFIX)] = number
        else:
            _LOGGER.warning("Ignoring threshold %s=%r (not a finite number)", key, value)
    return out


async def async_setup_entry(hass: HomeAssistant, entry: NilmConfigEntry) -> bool:
    settings = entry_settings(entry)
    names = [str(n) for n in settings.get(CONF_APPLIANCES, [])]  # type: ignore[attr-defined]
    backend = str(settings.get(CONF_BACKEND, DEFAULT_BACKEND))
    max_gap_s = _setting(settings, CONF_MAX_GAP_S, DEFAULT_MAX_GAP_S)
    max_power_w = _setting(settings, CONF_MAX_POWER_W, DEFAULT_MAX_POWER_W)
    thresholds = _thresholds(settings)
    loaded = await hass.async_add_executor_job(
        _load_all, Path(hass.config.path(USER_MODELS_SUBDIR)), names, backend, thresholds
    )
    _sync_issues(hass, entry, loaded.failures, set(loaded.models))

    coordinator = NilmCoordinator(
        hass,
        entry,
        mains_terms(entry.data),  # a sensor counts once
        loaded.models,
        max_gap_s,
        max_power_w=max_power_w,
    )
    entry.runtime_data = NilmData(
        coordinator, backend, loaded.failures, loaded.available, loaded.duplicates
    )
    _remove_stale_devices(hass, entry, [n for n in names if n not in loaded.duplicates])
    # Appliance devices point at the entry device (via_device): it must exist first.
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **entry_device_info(entry)
    )
    for unsub in await coordinator.async_start():
        entry.async_on_unload(unsub)
    for unsub in _async_watch_mains(hass, entry, coordinator.mains_entities):
        entry.async_on_unload(unsub)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_on_unload(entry.add_update_listener(_async_update_listener))
    return True


def _remove_stale_devices(hass: HomeAssistant, entry: ConfigEntry, names: list[str]) -> None:
    """Devices of appliances no longer configured go; a broken model keeps its device
    (and its energy history) until the user removes the appliance."""
    dev_reg = dr.async_get(hass)
    keep = {(DOMAIN, entry.entry_id)} | {(DOMAIN, f"{entry.entry_id}_{name}") for name in names}
    for device in dr.async_entries_for_config_entry(dev_reg, entry.entry_id):
        if not device.identifiers & keep:
            dev_reg.async_update_device(device.id, remove_config_entry_id=entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: NilmConfigEntry) -> bool:
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_migrate_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Bring an entry to the flow's version: 1.1 entries get ``mains_type`` consumption
    (what their sensors always measured). A newer major version cannot be read."""
    if entry.version > 1:
        return False
    if entry.minor_version < 2:
        data = {**entry.data}
        data.setdefault(CONF_MAINS_TYPE, MAINS_CONSUMPTION)
        hass.config_entries.async_update_entry(entry, data=data, minor_version=2)
        _LOGGER.debug("Migrated NILM entry %s to version 1.2", entry.entry_id)
    return True


async def async_remove_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Issues belong to the entry: drop them with it."""
    for issue_id in _entry_issue_ids(hass, entry):
        ir.async_delete_issue(hass, DOMAIN, issue_id)


async def _async_update_listener(hass: HomeAssistant, entry: ConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)


def issue_id_for(entry: ConfigEntry, name: str) -> str:
    return f"{entry.entry_id}_{name}"


def _entry_issue_ids(hass: HomeAssistant, entry: ConfigEntry) -> list[str]:
    prefix = f"{entry.entry_id}_"
    return [
        issue_id
        for (domain, issue_id) in ir.async_get(hass).issues
        if domain == DOMAIN and issue_id.startswith(prefix)
    ]


def _sync_issues(
    hass: HomeAssistant,
    entry: ConfigEntry,
    failures: dict[str, LoadFailure],
    running: set[str],
) -> None:
    """One repair issue per broken model; issues of models that now load are removed
    (the entry's other repairs, about its mains sensors, are left alone). A problem with
    a model that still runs (``running``: on the CPU instead of the Coral, the bundled
    model instead of the user's) is a warning, else an error."""
    wanted = {issue_id_for(entry, name) for name in failures}
    registry = ir.async_get(hass)
    for issue_id in _entry_issue_ids(hass, entry):
        issue = registry.async_get_issue(DOMAIN, issue_id)
        if issue_id not in wanted and issue is not None and issue.translation_key in MODEL_REPAIRS:
            ir.async_delete_issue(hass, DOMAIN, issue_id)
    for name, failure in failures.items():
        warning = name in running
        _LOGGER.log(
            logging.WARNING if warning else logging.ERROR,
            "Model %s runs, with a problem (%s): %s"
            if warning
            else "Model %s cannot be used (%s): %s",
            name,
            failure.reason,
            failure.message,
        )
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id_for(entry, name),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING if warning else ir.IssueSeverity.ERROR,
            translation_key=failure.reason,
            translation_placeholders={
                "model": name,
                "error": failure.message,
                "folder": hass.config.path(USER_MODELS_SUBDIR),
            },
        )


# --- the mains sensors: follow a renamed one, say so when one is gone ---------------------


def mains_issue_id(entry: ConfigEntry, entity_id: str) -> str:
    return f"{entry.entry_id}_{REPAIR_MAINS_MISSING}_{entity_id}"


def _mains_missing(hass: HomeAssistant, entry: ConfigEntry, entity_id: str) -> None:
    _LOGGER.warning(
        "The mains sensor %s of NILM entry %s no longer exists; its entities stay "
        "unavailable until it is back",
        entity_id,
        entry.title,
    )
    ir.async_create_issue(
        hass,
        DOMAIN,
        mains_issue_id(entry, entity_id),
        is_fixable=False,
        is_persistent=False,  # checked again after every start
        severity=ir.IssueSeverity.ERROR,
        translation_key=REPAIR_MAINS_MISSING,
        translation_placeholders={"sensor": entity_id, "entry": entry.title},
    )


def _sensors_unique_id(data: Mapping[str, Any]) -> str:
    """The entry's unique id for ``data``, made as the config flow makes it."""
    sensors = [str(e) for key in SENSOR_KEYS for e in data.get(key) or []]
    if mains_type(data) == MAINS_CONSUMPTION:
        sensors = [str(e) for e in data.get(CONF_MAINS_ENTITIES) or []]
    return "+".join(sorted(sensors))


def _follow_rename(hass: HomeAssistant, entry: ConfigEntry, old: str, new: str) -> None:
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
    ir.async_delete_issue(hass, DOMAIN, mains_issue_id(entry, old))
    unique_id = _sensors_unique_id(data)
    taken = any(
        e.unique_id == unique_id and e.entry_id != entry.entry_id
        for e in hass.config_entries.async_entries(DOMAIN)
    )
    if entry.unique_id == _sensors_unique_id(entry.data) and not taken:
        hass.config_entries.async_update_entry(entry, data=data, unique_id=unique_id)
    else:
        hass.config_entries.async_update_entry(entry, data=data)


def _async_watch_mains(
    hass: HomeAssistant, entry: ConfigEntry, entity_ids: list[str]
) -> list[Callable[[], None]]:
    """Follow renames of the mains sensors, raise a repair for one that is removed (or
    still absent a while after Home Assistant started) and clear it once it is back."""
    if not entity_ids:
        return []
    registry = er.async_get(hass)

    @callback
    def _present(entity_id: str) -> None:
        ir.async_delete_issue(hass, DOMAIN, mains_issue_id(entry, entity_id))

    @callback
    def _registry_updated(event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        data = event.data
        if data["action"] == "remove":
            _mains_missing(hass, entry, data["entity_id"])
        elif data["action"] == "create":
            _present(data["entity_id"])
        elif "entity_id" in data["changes"]:
            old = data.get("old_entity_id", data["changes"]["entity_id"])
            _follow_rename(hass, entry, str(old), data["entity_id"])

    @callback
    def _state_changed(event: Event[EventStateChangedData]) -> None:
        if event.data["new_state"] is not None and event.data["old_state"] is None:
            _present(event.data["entity_id"])

    @callback
    def _check(_now: datetime) -> None:
        for entity_id in entity_ids:
            if registry.async_get(entity_id) is None and hass.states.get(entity_id) is None:
                _mains_missing(hass, entry, entity_id)
            else:
                _present(entity_id)

    unsubs: list[Callable[[], None]] = [
        async_track_entity_registry_updated_event(hass, entity_ids, _registry_updated),
        async_track_state_change_event(hass, entity_ids, _state_changed),
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
