"""Power, energy and energy-today sensors per appliance, its diagnostic "Model" sensor,
and the entry's untracked power and diagnostic "Status"."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfEnergy, UnitOfPower
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_time_change
from homeassistant.util import dt as dt_util

from .const import STATUSES
from .coordinator import ApplianceRuntime, NilmCoordinator
from .entity import NilmApplianceEntity, NilmEntity, appliance_device_info
from .facts import model_facts, quantization_label
from .runtime import NilmConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NilmConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    coordinator = entry.runtime_data.coordinator
    entities: list[SensorEntity] = [
        NilmUntrackedPowerSensor(coordinator, entry),
        NilmStatusSensor(coordinator, entry),
    ]
    for runtime in coordinator.appliances.values():
        entities += [
            NilmPowerSensor(coordinator, entry, runtime, "power"),
            NilmEnergySensor(coordinator, entry, runtime, "energy"),
            NilmEnergyTodaySensor(coordinator, entry, runtime, "energy_today"),
            NilmModelSensor(entry, runtime),
        ]
    async_add_entities(entities)


class NilmPowerSensor(NilmApplianceEntity, SensorEntity):
    _attr_device_class = SensorDeviceClass.POWER
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 0

    @property
    def native_value(self) -> float | None:
        power = self.runtime.power_w
        return None if power is None else round(power, 1)


class NilmEnergySensor(NilmApplianceEntity, RestoreSensor):
    """Lifetime energy: restored total plus what this run has integrated since."""

    _attr_device_class = SensorDeviceClass.ENERGY
    _attr_native_unit_of_measurement = UnitOfEnergy.KILO_WATT_HOUR
    _attr_state_class: SensorStateClass | None = SensorStateClass.TOTAL_INCREASING
    _attr_suggested_display_precision = 3

    def __init__(
        self,
        coordinator: NilmCoordinator,
        entry: NilmConfigEntry,
        runtime: ApplianceRuntime,
        key: str,
    ) -> None:
        super().__init__(coordinator, entry, runtime, key)
        self._base_kwh = 0.0
        self._offset_kwh = runtime.energy_kwh

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        restored = await self._async_restored_kwh()
        if restored is not None:
            self._base_kwh = restored
            self._offset_kwh = self.runtime.energy_kwh

    async def _async_restored_kwh(self) -> float | None:
        last = await self.async_get_last_sensor_data()
        if last is None or last.native_value is None:
            return None
        try:
            value = float(last.native_value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return value if value >= 0 else None

    @property
    def native_value(self) -> float:
        return round(self._base_kwh + self.runtime.energy_kwh - self._offset_kwh, 6)


class NilmEnergyTodaySensor(NilmEnergySensor):
    """Energy since local midnight, for dashboards.

    No state class: Home Assistant's Energy dashboard offers every energy sensor with a
    total/total_increasing state class, and this one beside the cumulative "Energy"
    would be counted twice. The long-term statistics come from "Energy".
    """

    _attr_state_class = None

    def __init__(
        self,
        coordinator: NilmCoordinator,
        entry: NilmConfigEntry,
        runtime: ApplianceRuntime,
        key: str,
    ) -> None:
        super().__init__(coordinator, entry, runtime, key)
        self._day: date = dt_util.now().date()

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last_state = await self.async_get_last_state()
        if last_state is None or dt_util.as_local(last_state.last_updated).date() != self._day:
            # Yesterday's total must not leak into today.
            self._base_kwh = 0.0
            self._offset_kwh = self.runtime.energy_kwh
        self.async_on_remove(
            async_track_time_change(self.hass, self._async_midnight, hour=0, minute=0, second=0)
        )

    @callback
    def _async_midnight(self, now: datetime) -> None:
        self._roll_over(dt_util.as_local(now).date())
        self.async_write_ha_state()

    def _roll_over(self, today: date) -> None:
        if today != self._day:
            self._day = today
            self._base_kwh = 0.0
            self._offset_kwh = self.runtime.energy_kwh

    @callback
    def _handle_coordinator_update(self) -> None:
        self._roll_over(dt_util.now().date())
        super()._handle_coordinator_update()


class NilmUntrackedPowerSensor(NilmEntity, SensorEntity):
    """Mains minus every tracked appliance: what the models do not explain."""

    _attr_device_class = SensorDeviceClass.POWER
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 0

    def __init__(self, coordinator: NilmCoordinator, entry: NilmConfigEntry) -> None:
        super().__init__(coordinator, entry, "untracked_power")

    @property
    def available(self) -> bool:
        return super().available and self.coordinator.untracked_power_w is not None

    @property
    def native_value(self) -> float | None:
        value = self.coordinator.untracked_power_w
        return None if value is None else round(value, 1)


class NilmStatusSensor(NilmEntity, SensorEntity):
    """What the entry is doing: warming up (and for how long), waiting for the mains
    sensor(s), running, or why not (see :meth:`NilmCoordinator.status`)."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator: NilmCoordinator, entry: NilmConfigEntry) -> None:
        super().__init__(coordinator, entry, "status")
        self._attr_options = list(STATUSES)
        self._state: str | None = None
        self._attrs: dict[str, Any] = {}
        self._refresh()

    def _refresh(self) -> None:
        self._state, self._attrs = self.coordinator.status()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._refresh()
        super()._handle_coordinator_update()

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self._refresh()

    @property
    def native_value(self) -> str | None:
        return self._state

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        return self._attrs


class NilmModelSensor(SensorEntity):
    """The model behind an appliance's entities, with what it was trained on and how
    well it did on a house it never saw (its card), as attributes. Static: it does not
    follow the coordinator's ticks."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "model"
    # Long and constant: kept out of the recorder's attribute table.
    _unrecorded_attributes = frozenset({"attribution", "trained_on", "validated_on"})

    def __init__(self, entry: NilmConfigEntry, runtime: ApplianceRuntime) -> None:
        card = runtime.model.card
        self._attr_unique_id = f"{entry.entry_id}_{runtime.name}_model"
        self._attr_device_info = appliance_device_info(entry, runtime)
        self._attr_native_value = f"{card.name}, {quantization_label(card)}"[:255]
        self._attr_extra_state_attributes = model_facts(runtime.model)
