"""Base entities: one device per tracked appliance plus one per entry."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import ApplianceRuntime, NilmCoordinator

MANUFACTURER = "NILM (energy disaggregation)"


def appliance_display_name(appliance: str) -> str:
    return appliance.replace("_", " ").capitalize()


def entry_device_info(entry: ConfigEntry) -> DeviceInfo:
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer=MANUFACTURER,
        model="Mains disaggregation",
        entry_type=DeviceEntryType.SERVICE,
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
        card = runtime.model.card
        self.runtime = runtime
        self._attr_translation_key = key
        self._attr_unique_id = f"{entry.entry_id}_{runtime.name}_{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"{entry.entry_id}_{runtime.name}")},
            name=appliance_display_name(card.appliance),
            manufacturer=MANUFACTURER,
            model=f"{card.architecture} ({card.quantization})",
            model_id=card.name,
            sw_version=card.trainer_version or None,
            via_device=(DOMAIN, entry.entry_id),
        )

    @property
    def available(self) -> bool:
        return super().available and self.runtime.available
