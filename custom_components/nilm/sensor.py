"""Power, energy and energy-today sensors per appliance, its diagnostic "Model" sensor,
and the entry's untracked power and diagnostic "Status"."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfEnergy, UnitOfPower
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.event import async_track_time_change
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .const import ADAPTATION_STATES, STATUSES
from .coordinator import NilmCoordinator
from .data import ApplianceSnapshot, NilmConfigEntry, NilmSnapshot
from .entity import NilmEntity

PARALLEL_UPDATES = 0


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, kw_only=True)
class NilmApplianceSensorEntityDescription(SensorEntityDescription):
    """A sensor of one appliance: its value (and attributes) from the appliance's part
    of the snapshot."""

    value_fn: Callable[[ApplianceSnapshot], StateType]
    attr_fn: Callable[[ApplianceSnapshot], Mapping[str, Any]] | None = None


@dataclass(frozen=True, kw_only=True)
class NilmEnergySensorEntityDescription(NilmApplianceSensorEntityDescription):
    """An energy total (kWh counted since the entry loaded, on top of the restored
    total); ``daily``: it starts from zero at local midnight."""

    value_fn: Callable[[ApplianceSnapshot], float]
    daily: bool = False


@dataclass(frozen=True, kw_only=True)
class NilmEntrySensorEntityDescription(SensorEntityDescription):
    """A sensor of the entry's own device: value and attributes from the snapshot."""

    value_fn: Callable[[NilmSnapshot], StateType]
    attr_fn: Callable[[NilmSnapshot], Mapping[str, Any]] | None = None
    available_fn: Callable[[NilmSnapshot], bool] = lambda _snapshot: True


POWER = NilmApplianceSensorEntityDescription(
    key="power",
    translation_key="power",
    device_class=SensorDeviceClass.POWER,
    native_unit_of_measurement=UnitOfPower.WATT,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=0,
    value_fn=lambda appliance: _rounded(appliance.power_w),
)
ENERGY = NilmEnergySensorEntityDescription(
    key="energy",
    translation_key="energy",
    device_class=SensorDeviceClass.ENERGY,
    native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
    state_class=SensorStateClass.TOTAL_INCREASING,
    suggested_display_precision=3,
    value_fn=lambda appliance: appliance.energy_kwh,
)
# No state class: Home Assistant's Energy dashboard offers every energy sensor with a
# total/total_increasing state class, and this one beside the cumulative "Energy" would
# be counted twice. The long-term statistics come from "Energy".
ENERGY_TODAY = NilmEnergySensorEntityDescription(
    key="energy_today",
    translation_key="energy_today",
    device_class=SensorDeviceClass.ENERGY,
    native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
    state_class=None,
    suggested_display_precision=3,
    value_fn=lambda appliance: appliance.energy_kwh,
    daily=True,
)
# The model behind an appliance's entities, with what it was trained on and how well it
# did on a house it never saw (its card) as attributes.
MODEL = NilmApplianceSensorEntityDescription(
    key="model",
    translation_key="model",
    entity_category=EntityCategory.DIAGNOSTIC,
    value_fn=lambda appliance: f"{appliance.model.card_name}, {appliance.model.quantization}"[:255],
    attr_fn=lambda appliance: appliance.model.facts,
)
# What adaptation to this home (a smart plug's labels) is doing, with the last re-fit's
# numbers (runs, F1 before/after, energy, period) as attributes. Every tracked appliance
# has one: "not_configured" without a label, "not_adaptable" for a card without a head.
ADAPTATION = NilmApplianceSensorEntityDescription(
    key="adaptation",
    translation_key="adaptation",
    device_class=SensorDeviceClass.ENUM,
    entity_category=EntityCategory.DIAGNOSTIC,
    options=list(ADAPTATION_STATES),
    value_fn=lambda appliance: appliance.adaptation.state,
    attr_fn=lambda appliance: appliance.adaptation.attributes,
)
APPLIANCE_SENSORS: tuple[NilmApplianceSensorEntityDescription, ...] = (
    POWER,
    ENERGY,
    ENERGY_TODAY,
    MODEL,
    ADAPTATION,
)

ENTRY_SENSORS: tuple[NilmEntrySensorEntityDescription, ...] = (
    # Mains minus every tracked appliance: what the models do not explain.
    NilmEntrySensorEntityDescription(
        key="untracked_power",
        translation_key="untracked_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda snapshot: _rounded(snapshot.untracked_power_w),
        available_fn=lambda snapshot: snapshot.untracked_power_w is not None,
    ),
    # What the entry is doing: warming up (and for how long), waiting for the mains
    # sensor(s), running, or why not (see NilmCoordinator.status).
    NilmEntrySensorEntityDescription(
        key="status",
        translation_key="status",
        device_class=SensorDeviceClass.ENUM,
        entity_category=EntityCategory.DIAGNOSTIC,
        options=list(STATUSES),
        value_fn=lambda snapshot: snapshot.status,
        attr_fn=lambda snapshot: snapshot.status_attributes,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NilmConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    coordinator = entry.runtime_data.coordinator
    entities: list[SensorEntity] = [
        NilmEntrySensor(coordinator, description) for description in ENTRY_SENSORS
    ]
    for name in coordinator.data.appliances:
        for description in APPLIANCE_SENSORS:
            entities.append(_appliance_sensor(coordinator, description, name))
    async_add_entities(entities)


def _appliance_sensor(
    coordinator: NilmCoordinator, description: NilmApplianceSensorEntityDescription, name: str
) -> SensorEntity:
    if isinstance(description, NilmEnergySensorEntityDescription):
        cls = NilmEnergyTodaySensor if description.daily else NilmEnergySensor
        return cls(coordinator, description, name)
    if description is MODEL:
        return NilmModelSensor(coordinator, description, name)
    if description is ADAPTATION:
        return NilmAdaptationSensor(coordinator, description, name)
    return NilmApplianceSensor(coordinator, description, name)


class NilmEntrySensor(NilmEntity, SensorEntity):
    """Untracked power and status: the entry device's sensors."""

    entity_description: NilmEntrySensorEntityDescription

    @property
    def available(self) -> bool:
        return super().available and self.entity_description.available_fn(self.coordinator.data)

    @property
    def native_value(self) -> StateType:
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        attr_fn = self.entity_description.attr_fn
        return None if attr_fn is None else dict(attr_fn(self.coordinator.data))


class NilmApplianceSensor(NilmEntity, SensorEntity):
    """A sensor of one appliance (power)."""

    entity_description: NilmApplianceSensorEntityDescription

    @property
    def native_value(self) -> StateType:
        return self.entity_description.value_fn(self.appliance_data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        attr_fn = self.entity_description.attr_fn
        return None if attr_fn is None else dict(attr_fn(self.appliance_data))


class NilmModelSensor(NilmApplianceSensor):
    """The appliance's model and its card's facts. Static: available without mains data
    and not rewritten on the coordinator's ticks."""

    # Long and constant: kept out of the recorder's attribute table.
    _unrecorded_attributes = frozenset({"attribution", "trained_on", "validated_on"})

    @property
    def available(self) -> bool:
        return True

    @callback
    def _handle_coordinator_update(self) -> None:
        """The model does not change while the entry is loaded."""


class NilmAdaptationSensor(NilmApplianceSensor):
    """The appliance's adaptation: available without mains data (it is about the
    history, not the current window)."""

    @property
    def available(self) -> bool:
        return self.coordinator.last_update_success


class NilmEnergySensor(NilmApplianceSensor, RestoreSensor):
    """Lifetime energy: restored total plus what this run has integrated since."""

    entity_description: NilmEnergySensorEntityDescription

    def __init__(
        self,
        coordinator: NilmCoordinator,
        description: NilmEnergySensorEntityDescription,
        appliance: str,
    ) -> None:
        super().__init__(coordinator, description, appliance)
        self._base_kwh = 0.0
        self._offset_kwh = self._counted_kwh()

    def _counted_kwh(self) -> float:
        """The energy counted since the entry loaded (the snapshot's)."""
        return self.entity_description.value_fn(self.appliance_data)

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        restored = await self._async_restored_kwh()
        if restored is not None:
            self._base_kwh = restored
            self._offset_kwh = self._counted_kwh()

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
        return round(self._base_kwh + self._counted_kwh() - self._offset_kwh, 6)


class NilmEnergyTodaySensor(NilmEnergySensor):
    """Energy since local midnight, for dashboards (no state class: see ENERGY_TODAY)."""

    def __init__(
        self,
        coordinator: NilmCoordinator,
        description: NilmEnergySensorEntityDescription,
        appliance: str,
    ) -> None:
        super().__init__(coordinator, description, appliance)
        self._day: date = dt_util.now().date()

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last_state = await self.async_get_last_state()
        if last_state is None or dt_util.as_local(last_state.last_updated).date() != self._day:
            # Yesterday's total must not leak into today.
            self._base_kwh = 0.0
            self._offset_kwh = self._counted_kwh()
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
            self._offset_kwh = self._counted_kwh()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._roll_over(dt_util.now().date())
        super()._handle_coordinator_update()
