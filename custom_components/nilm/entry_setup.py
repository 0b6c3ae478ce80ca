"""Setting up, unloading, migrating and removing one NILM config entry (the bodies of
the entry points in ``__init__.py``, which import Home Assistant only when called)."""

from __future__ import annotations

import logging
from pathlib import Path

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .adaptation import NilmAdaptation
from .const import CONF_MAINS_TYPE, DOMAIN, MAINS_CONSUMPTION, USER_MODELS_SUBDIR
from .coordinator import NilmCoordinator
from .data import NilmConfigEntry, NilmRuntimeData, NilmSettings
from .entity import entry_device_info
from .installed import InstalledModels
from .issues import delete_entry_issues, sync_model_issues
from .mains import mains_terms
from .mains_watch import async_watch_mains
from .model_store import load_all

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.BUTTON, Platform.SENSOR]


async def async_setup_entry(hass: HomeAssistant, entry: NilmConfigEntry) -> bool:
    """Load the models (a broken one is a repair, never a failed entry), start the
    coordinator and forward to the platforms."""
    settings = NilmSettings.from_entry(entry)
    installed = InstalledModels(hass, entry.entry_id)
    loaded = await hass.async_add_executor_job(
        load_all,
        Path(hass.config.path(USER_MODELS_SUBDIR)),
        settings.appliances,
        settings.backend,
        settings.thresholds,
        await installed.async_load(),
    )
    await installed.async_save(loaded.user_models)
    sync_model_issues(hass, entry, loaded.failures, set(loaded.models))

    coordinator = NilmCoordinator(
        hass,
        entry,
        mains_terms(settings.sources),  # a sensor counts once
        loaded.models,
        settings.max_gap_s,
        max_power_w=settings.max_power_w,
    )
    adaptation = NilmAdaptation(hass, entry, coordinator, settings, loaded.available)
    entry.runtime_data = NilmRuntimeData(
        coordinator, settings, loaded.failures, loaded.available, loaded.duplicates, adaptation
    )
    await adaptation.async_load()  # saved adapters predict from the warm start on
    _remove_stale_devices(
        hass, entry, [n for n in settings.appliances if n not in loaded.duplicates]
    )
    # Appliance devices point at the entry device (via_device): it must exist first.
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **entry_device_info(entry)
    )
    for unsub in await coordinator.async_start():
        entry.async_on_unload(unsub)
    for unsub in async_watch_mains(hass, entry, coordinator.mains_entities):
        entry.async_on_unload(unsub)
    for unsub in adaptation.async_start():
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
    """Issues and the memory of installed models belong to the entry: drop them with it."""
    delete_entry_issues(hass, entry)
    await InstalledModels(hass, entry.entry_id).async_remove()


async def _async_update_listener(hass: HomeAssistant, entry: ConfigEntry) -> None:
    await hass.config_entries.async_reload(entry.entry_id)
