"""The entity base class and devices: one device per tracked appliance plus one per entry."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import NilmCoordinator
from .data import ApplianceSnapshot, ModelInfo

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


def appliance_device_info(entry: ConfigEntry, name: str, model: ModelInfo) -> DeviceInfo:
    """One device per appliance: model e.g. "Compact CNN, int8", the model file's
    sha256 prefix as its version (Home Assistant shows it as the firmware)."""
    return DeviceInfo(
        identifiers={(DOMAIN, f"{entry.entry_id}_{name}")},
        name=appliance_display_name(model.appliance),
        manufacturer=MANUFACTURER,
        model=model.label,
        model_id=model.card_name,
        sw_version=model.version,
        via_device=(DOMAIN, entry.entry_id),
    )


class NilmEntity(CoordinatorEntity[NilmCoordinator]):
    """An entity of the entry's device (``appliance`` None) or of one appliance's.

    Unique id: ``<entry_id>_<key>`` or ``<entry_id>_<configured name>_<key>``. Everything
    it shows comes from the coordinator's snapshot; an appliance's entity is unavailable
    whenever its model has no valid window.
    """

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: NilmCoordinator,
        description: EntityDescription,
        appliance: str | None = None,
    ) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        self._appliance = appliance
        entry = coordinator.config_entry
        if appliance is None:
            self._attr_unique_id = f"{entry.entry_id}_{description.key}"
            self._attr_device_info = entry_device_info(entry)
        else:
            model = coordinator.data.appliances[appliance].model
            self._attr_unique_id = f"{entry.entry_id}_{appliance}_{description.key}"
            self._attr_device_info = appliance_device_info(entry, appliance, model)

    @property
    def appliance_data(self) -> ApplianceSnapshot:
        """This entity's appliance in the newest snapshot."""
        assert self._appliance is not None
        return self.coordinator.data.appliances[self._appliance]

    @property
    def available(self) -> bool:
        return super().available and (self._appliance is None or self.appliance_data.available)
