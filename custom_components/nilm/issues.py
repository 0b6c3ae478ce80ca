"""The entry's repair issues: one per configured model that cannot run (or runs with a
problem), refreshed at every setup, and ``mains_missing`` for a mains sensor that is gone."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import (
    DOMAIN,
    ISSUE_BACKEND_UNAVAILABLE,
    ISSUE_MODEL_CORRUPT,
    ISSUE_MODEL_MISSING,
    ISSUE_MODEL_UNSUPPORTED,
    REPAIR_ADAPTER_INVALID,
    REPAIR_MAINS_MISSING,
    REPAIR_USER_MODEL_GONE,
    REPAIR_USER_MODEL_REJECTED,
    USER_MODELS_SUBDIR,
)
from .model_store import LoadFailure

_LOGGER = logging.getLogger(__name__)

# The repairs one per configured model (issue id: entry id + model name), synced at setup.
MODEL_REPAIRS = frozenset(
    {
        ISSUE_MODEL_MISSING,
        ISSUE_MODEL_CORRUPT,
        ISSUE_MODEL_UNSUPPORTED,
        ISSUE_BACKEND_UNAVAILABLE,
        REPAIR_USER_MODEL_REJECTED,
        REPAIR_USER_MODEL_GONE,
    }
)


def issue_id_for(entry: ConfigEntry, name: str) -> str:
    return f"{entry.entry_id}_{name}"


def mains_issue_id(entry: ConfigEntry, entity_id: str) -> str:
    return f"{entry.entry_id}_{REPAIR_MAINS_MISSING}_{entity_id}"


def entry_issue_ids(hass: HomeAssistant, entry: ConfigEntry) -> list[str]:
    prefix = f"{entry.entry_id}_"
    return [
        issue_id
        for (domain, issue_id) in ir.async_get(hass).issues
        if domain == DOMAIN and issue_id.startswith(prefix)
    ]


def delete_entry_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Issues belong to the entry: drop them with it."""
    for issue_id in entry_issue_ids(hass, entry):
        ir.async_delete_issue(hass, DOMAIN, issue_id)


def sync_model_issues(
    hass: HomeAssistant,
    entry: ConfigEntry,
    failures: Mapping[str, LoadFailure],
    running: set[str],
) -> None:
    """One repair issue per broken model; issues of models that now load are removed
    (the entry's other repairs, about its mains sensors, are left alone). A problem with
    a model that still runs (``running``: on the CPU instead of the Coral, the bundled
    model instead of the user's) is a warning, else an error. A user model that is gone
    has a fix: confirming the bundled model (:mod:`.repairs`)."""
    wanted = {issue_id_for(entry, name) for name in failures}
    registry = ir.async_get(hass)
    for issue_id in entry_issue_ids(hass, entry):
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
            is_fixable=failure.reason == REPAIR_USER_MODEL_GONE,
            is_persistent=False,
            data={"entry_id": entry.entry_id, "name": name},
            severity=ir.IssueSeverity.WARNING if warning else ir.IssueSeverity.ERROR,
            translation_key=failure.reason,
            translation_placeholders={
                "model": name,
                "error": failure.message,
                "folder": hass.config.path(USER_MODELS_SUBDIR),
            },
        )


def create_mains_missing(hass: HomeAssistant, entry: ConfigEntry, entity_id: str) -> None:
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


def delete_mains_missing(hass: HomeAssistant, entry: ConfigEntry, entity_id: str) -> None:
    ir.async_delete_issue(hass, DOMAIN, mains_issue_id(entry, entity_id))


def adapter_issue_id(entry: ConfigEntry, name: str) -> str:
    return f"{entry.entry_id}_{REPAIR_ADAPTER_INVALID}_{name}"


def create_adapter_invalid(
    hass: HomeAssistant, entry: ConfigEntry, name: str, path: Path, error: str
) -> None:
    """A saved adapter cannot be used: the shipped model runs until it is re-fitted or
    reverted (both replace or remove the file)."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        adapter_issue_id(entry, name),
        is_fixable=False,
        is_persistent=False,  # checked again at every setup
        severity=ir.IssueSeverity.WARNING,
        translation_key=REPAIR_ADAPTER_INVALID,
        translation_placeholders={"model": name, "error": error, "path": str(path)},
    )


def delete_adapter_invalid(hass: HomeAssistant, entry: ConfigEntry, name: str) -> None:
    ir.async_delete_issue(hass, DOMAIN, adapter_issue_id(entry, name))
