"""Base entities: one device per tracked appliance plus one per entry."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import ApplianceRuntime, NilmCoordinator
from .facts import model_label, model_version

MANUFACTURER = "NILM"
# The entry's own device (untracked power, status): named on its own, not after the
# mains sensor, so its entities read "NILM Untracked power".
ENTRY_DEVICE_NAME = "NILM"


def appliance_display_name(appliance: str) -> str:
    return appliance.replace("_", " ").capitalize()


def entry_device_info(entry: ConfigEntry) -> DeviceInfo:
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=ENTRY_DEVICE_NAME,
        manufacturer=MANUFACTURER,
        model="Energy disaggregation",
        entry_type=DeviceEntryType.SERVICE,
    )


def appliance_device_info(entry: ConfigEntry, runtime: ApplianceRuntime) -> DeviceInfo:
    """One device per appliance: model e.g. "Compact CNN, int8", the model file's
    sha256 prefix as its version (Home Assistant shows it as the firmware)."""
    card = runtime.model.card
    return DeviceInfo(
        identifiers={(DOMAIN, f"{entry.entry_id}_{runtime.name}")},
        name=appliance_display_name(card.appliance),
        manufacturer=MANUFACTURER,
        model=model_label(card),
        model_id=card.name,
        sw_version=model_version(card),
        via_device=(DOMAIN, entry.entry_id),
    )


class NilmEntity(CoordinatorEntity[NilmCoordinator]):
    """Entry-level entity (untracked power)."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: NilmCoordinator, entry: ConfigEntry, key: str) -> None:
        super().__init__(coordinator)
        self._attr_translation_key = key
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = entry_device_info(entry)


class NilmApplianceEntity(CoordinatorEntity[NilmCoordinator]):
    """An entity of one appliance; unavailable whenever its model has no valid window."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: NilmCoordinator,
        entry: ConfigEntry,
        runtime: ApplianceRuntime,
        key: str,
    ) -> None:
        super().__init__(coordinator)
        self.runtime = runtime
        self._attr_translation_key = key
        self._attr_unique_id = f"{entry.entry_id}_{runtime.name}_{key}"
        self._attr_device_info = appliance_device_info(entry, runtime)

    @property
    def available(self) -> bool:
        return super().available and self.runtime.available
