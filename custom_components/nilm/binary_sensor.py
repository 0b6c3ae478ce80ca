"""Running state of each appliance (the card's hysteresis applied)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import ApplianceSnapshot, NilmConfigEntry
from .entity import NilmEntity

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class NilmBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A binary sensor of one appliance: its state from the appliance's snapshot."""

    value_fn: Callable[[ApplianceSnapshot], bool | None]


APPLIANCE_BINARY_SENSORS: tuple[NilmBinarySensorEntityDescription, ...] = (
    NilmBinarySensorEntityDescription(
        key="running",
        translation_key="running",
        device_class=BinarySensorDeviceClass.RUNNING,
        value_fn=lambda appliance: appliance.on,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NilmConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        NilmBinarySensor(coordinator, description, name)
        for name in coordinator.data.appliances
        for description in APPLIANCE_BINARY_SENSORS
    )


class NilmBinarySensor(NilmEntity, BinarySensorEntity):
    entity_description: NilmBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        return self.entity_description.value_fn(self.appliance_data)
