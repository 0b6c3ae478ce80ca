"""NILM: per-appliance power, energy and on/off entities from one mains power sensor.

This module imports Home Assistant only inside the entry points: the ``engine``
sub-package is shared with the trainer, which must import it where Home Assistant is not
installed, and importing ``custom_components.nilm.engine`` runs this file first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.core import HomeAssistant

    from .runtime import NilmConfigEntry


async def async_setup_entry(hass: HomeAssistant, entry: NilmConfigEntry) -> bool:
    """Load the models, start the coordinator and forward to the platforms."""
    from . import runtime

    return await runtime.async_setup_entry(hass, entry)


async def async_unload_entry(hass: HomeAssistant, entry: NilmConfigEntry) -> bool:
    from . import runtime

    return await runtime.async_unload_entry(hass, entry)


async def async_migrate_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """1.1 -> 1.2: entries from before the mains type existed measure consumption."""
    from . import runtime

    return await runtime.async_migrate_entry(hass, entry)


async def async_remove_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    from . import runtime

    await runtime.async_remove_entry(hass, entry)
