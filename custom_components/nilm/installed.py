"""The user models that ran, remembered across restarts (``.storage``), so that a user
model that disappears is a repair and the bundled model's return is the user's choice,
never a silent swap (see :func:`.model_store.load_all`)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN, INSTALLED_STORE_VERSION


class InstalledModels:
    """Configured appliance name -> the user model card that runs (or ran) for it."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store: Store[dict[str, str]] = Store(
            hass, INSTALLED_STORE_VERSION, f"{DOMAIN}.{entry_id}.installed"
        )
        self._saved: dict[str, str] | None = None

    async def async_load(self) -> dict[str, str]:
        """What the last setup saved; an unreadable or foreign file counts as nothing."""
        raw = await self._store.async_load()
        if not isinstance(raw, dict):
            raw = {}
        self._saved = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
        return dict(self._saved)

    async def async_save(self, user_models: dict[str, str]) -> None:
        if user_models != self._saved:
            await self._store.async_save(dict(user_models))
            self._saved = dict(user_models)

    async def async_forget(self, name: str) -> None:
        """The user chose the bundled model for ``name``: its user model is not missed."""
        models = await self.async_load()
        if models.pop(name, None) is not None:
            await self.async_save(models)

    async def async_remove(self) -> None:
        await self._store.async_remove()
