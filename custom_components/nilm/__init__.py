"""NILM: per-appliance power, energy and on/off entities from one mains power sensor.

The entry points live in :mod:`.entry_setup`, imported only when Home Assistant calls
one: the ``engine`` sub-package is shared with the trainer, which must import it where
Home Assistant is not installed, and importing ``custom_components.nilm.engine`` runs
this file first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant

    from .data import NilmConfigEntry


async def async_setup_entry(hass: HomeAssistant, entry: NilmConfigEntry) -> bool:
    """Load the models, start the coordinator and forward to the platforms."""
    from . import entry_setup

    return await entry_setup.async_setup_entry(hass, entry)


async def async_unload_entry(hass: HomeAssistant, entry: NilmConfigEntry) -> bool:
    from . import entry_setup

    return await entry_setup.async_unload_entry(hass, entry)


async def async_migrate_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """1.1 -> 1.2: entries from before the mains type existed measure consumption."""
    from . import entry_setup

    return await entry_setup.async_migrate_entry(hass, entry)


async def async_remove_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    from . import entry_setup

    await entry_setup.async_remove_entry(hass, entry)
