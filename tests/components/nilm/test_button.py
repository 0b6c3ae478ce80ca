"""button.py: re-fit and revert, per appliance with an adaptable model and a label."""

from __future__ import annotations

from pathlib import Path

from homeassistant.const import STATE_UNAVAILABLE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.nilm.const import DOMAIN
from custom_components.nilm.engine.adapter import AdaptableModel

from .conftest import MAINS, W_ATTRS, make_entry, setup_entry, state_of
from .test_adaptation import (
    PLUG,
    PLUG_ATTRS,
    adaptation_state,
    adapter_file,
    kettle_entry,
    press,
    write_adapter,
)


async def test_buttons_exist_with_translated_names(
    hass: HomeAssistant, bundled_kettle: Path
) -> None:
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    reg = er.async_get(hass)
    buttons = {
        e.unique_id: e
        for e in er.async_entries_for_config_entry(reg, entry.entry_id)
        if e.domain == "button"
    }
    assert set(buttons) == {
        f"{entry.entry_id}_kettle_adapt_refit",
        f"{entry.entry_id}_kettle_adapt_revert",
    }
    refit = buttons[f"{entry.entry_id}_kettle_adapt_refit"]
    revert = buttons[f"{entry.entry_id}_kettle_adapt_revert"]
    assert refit.entity_category is EntityCategory.CONFIG
    assert refit.entity_id == "button.kettle_re_fit_adaptation"
    assert revert.entity_id == "button.kettle_revert_adaptation"
    # Available without mains data (they are about the history); revert only with an adapter.
    assert state_of(hass, refit.entity_id) != STATE_UNAVAILABLE
    assert state_of(hass, revert.entity_id) == STATE_UNAVAILABLE


async def test_revert_deletes_the_adapter(hass: HomeAssistant, bundled_kettle: Path) -> None:
    write_adapter(hass)
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    runtime = entry.runtime_data.coordinator.appliances["kettle"]
    assert isinstance(runtime.model, AdaptableModel)
    await press(hass, entry, "adapt_revert")
    assert not adapter_file(hass).is_file()
    assert not isinstance(runtime.model, AdaptableModel)
    state, attrs = adaptation_state(hass, entry)
    assert state == "collecting"
    assert attrs["reason"] == "reverted to the shipped model"


async def test_no_buttons_without_a_label(hass: HomeAssistant, bundled_kettle: Path) -> None:
    entry = await setup_entry(hass, make_entry(["kettle"]))
    reg = er.async_get(hass)
    assert reg.async_get_entity_id("button", DOMAIN, f"{entry.entry_id}_kettle_adapt_refit") is None
