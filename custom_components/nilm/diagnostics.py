"""Diagnostics: what a maintainer needs to judge a bug report, minus the user's entity ids."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_MAINS_ENTITIES
from .runtime import NilmConfigEntry

# Entity ids and titles reveal how a home is named and wired; the model cards don't.
TO_REDACT = {CONF_MAINS_ENTITIES, "unique_id", "title"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: NilmConfigEntry
) -> dict[str, Any]:
    data = entry.runtime_data
    coordinator = data.coordinator
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "backend_setting": data.backend,
        "mains_sensors": len(coordinator.mains_entities),
        "max_gap_s": coordinator.max_gap_s,
        "models_found": {
            name: {"user": m.user, "appliance": m.card.appliance}
            for name, m in sorted(data.available.items())
        },
        "failed_models": {
            name: {"reason": f.reason, "message": f.message}
            for name, f in sorted(data.failures.items())
        },
        "runtime": coordinator.diagnostics(),
    }
