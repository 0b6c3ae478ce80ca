"""Per appliance with an adaptable model and a label entity: re-fit the adaptation now,
and revert it (back to the shipped model)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .adaptation import NilmAdaptation
from .coordinator import NilmCoordinator
from .data import ApplianceSnapshot, NilmConfigEntry
from .entity import NilmEntity

PARALLEL_UPDATES = 1  # one re-fit at a time


@dataclass(frozen=True, kw_only=True)
class NilmButtonEntityDescription(ButtonEntityDescription):
    """A button of one appliance: what pressing it does, and when it can be pressed."""

    press_fn: Callable[[NilmAdaptation, str], Awaitable[None]]
    available_fn: Callable[[ApplianceSnapshot], bool] = lambda _appliance: True


APPLIANCE_BUTTONS: tuple[NilmButtonEntityDescription, ...] = (
    NilmButtonEntityDescription(
        key="adapt_refit",
        translation_key="adapt_refit",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda adaptation, name: adaptation.async_refit(name),
    ),
    NilmButtonEntityDescription(
        key="adapt_revert",
        translation_key="adapt_revert",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda adaptation, name: adaptation.async_revert(name),
        available_fn=lambda appliance: appliance.adaptation.revertable,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NilmConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    adaptation = entry.runtime_data.adaptation
    assert adaptation is not None
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        NilmButton(coordinator, description, name, adaptation)
        for name, target in adaptation.targets.items()
        if target.source is not None and target.label is not None
        for description in APPLIANCE_BUTTONS
    )


class NilmButton(NilmEntity, ButtonEntity):
    entity_description: NilmButtonEntityDescription

    def __init__(
        self,
        coordinator: NilmCoordinator,
        description: NilmButtonEntityDescription,
        appliance: str,
        adaptation: NilmAdaptation,
    ) -> None:
        super().__init__(coordinator, description, appliance)
        self._adaptation = adaptation

    @property
    def available(self) -> bool:
        """About the history, not the current window: mains data is not needed."""
        return self.coordinator.last_update_success and self.entity_description.available_fn(
            self.appliance_data
        )

    async def async_press(self) -> None:
        assert self._appliance is not None
        await self.entity_description.press_fn(self._adaptation, self._appliance)
