"""Diagnostics: what a maintainer needs to judge a bug report, minus the user's entity ids."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntry

from .const import (
    CONF_ADAPTATION_LABELS,
    CONF_EXPORT_ENTITIES,
    CONF_MAINS_ENTITIES,
    CONF_SOLAR_ENTITIES,
    DOMAIN,
)
from .data import NilmConfigEntry, mains_type

# Entity ids and titles reveal how a home is named and wired; the model cards don't.
TO_REDACT = {
    CONF_MAINS_ENTITIES,
    CONF_EXPORT_ENTITIES,
    CONF_SOLAR_ENTITIES,
    CONF_ADAPTATION_LABELS,
    "label_entity",
    "unique_id",
    "title",
}
# The folder holding custom_components/ (the config dir in a HACS install).
_INTEGRATION_ROOTS = [str(Path(__file__).parents[2]), str(Path(__file__).resolve().parents[2])]


def relative_paths(text: str, roots: list[str]) -> str:
    """``text`` with every absolute path under one of ``roots`` made relative to it
    (error messages quote paths; the config dir names the user's machine and layout)."""
    for root in sorted({r.rstrip("/") for r in roots if r.strip("/")}, key=len, reverse=True):
        text = re.sub(re.escape(root) + r"(?:/|(?![^\s'\"),:;]))", "", text)
    return text


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: NilmConfigEntry
) -> dict[str, Any]:
    data = entry.runtime_data
    coordinator = data.coordinator
    roots = [hass.config.config_dir, *_INTEGRATION_ROOTS]
    runtime = coordinator.diagnostics()
    runtime["last_errors"] = [relative_paths(str(e), roots) for e in runtime["last_errors"]]
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "backend_setting": data.settings.backend,
        "mains_type": mains_type(entry.data),
        "mains_sensors": len(coordinator.mains_entities),
        "skipped_same_appliance": list(data.duplicates),
        "max_gap_s": coordinator.max_gap_s,
        "models_found": {
            name: {"user": m.user, "appliance": m.card.appliance}
            for name, m in sorted(data.available.items())
        },
        "failed_models": {
            name: {"reason": f.reason, "message": relative_paths(f.message, roots)}
            for name, f in sorted(data.failures.items())
        },
        "runtime": runtime,
        "adaptation": async_redact_data(
            data.adaptation.diagnostics() if data.adaptation is not None else {}, TO_REDACT
        ),
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: NilmConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    """An appliance device: its model's facts and live state; the entry's device: all."""
    full = await async_get_config_entry_diagnostics(hass, entry)
    for name in entry.runtime_data.coordinator.appliances:
        if (DOMAIN, f"{entry.entry_id}_{name}") in device.identifiers:
            appliance = full["runtime"]["appliances"][name]
            return {
                "appliance": name,
                "model_facts": appliance["model_facts"],
                "runtime": {k: v for k, v in appliance.items() if k != "model_facts"},
                "status": full["runtime"]["status"],
                "adaptation": full["adaptation"].get(name),
            }
    return full
