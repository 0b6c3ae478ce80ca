"""Repairs with a fix: a user model that ran and is gone. The fix is the user's "yes, the
bundled model from now on"; putting the files back fixes it as well (at the next setup)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult

from .installed import InstalledModels


class UseBundledModelFlow(ConfirmRepairFlow):
    """Confirm that the bundled model replaces the user's removed one for good."""

    def __init__(self, entry_id: str, name: str) -> None:
        self._entry_id = entry_id
        self._name = name

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        if user_input is not None:
            await InstalledModels(self.hass, self._entry_id).async_forget(self._name)
        return await super().async_step_confirm(user_input)


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The only fixable repair is ``user_model_gone`` (its data names entry and model)."""
    data = data or {}
    return UseBundledModelFlow(str(data.get("entry_id", "")), str(data.get("name", "")))
