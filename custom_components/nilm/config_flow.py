"""UI setup: pick the mains sensor(s), the appliances to track and the backend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import voluptuous as vol
from homeassistant.components.sensor import DOMAIN as SENSOR_DOMAIN
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import ATTR_FRIENDLY_NAME, ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import selector

from .const import (
    BACKENDS,
    CONF_APPLIANCES,
    CONF_BACKEND,
    CONF_MAINS_ENTITIES,
    CONF_MAX_GAP_S,
    CONF_THRESHOLD_PREFIX,
    DEFAULT_BACKEND,
    DEFAULT_MAX_GAP_S,
    DOMAIN,
    MAX_MAX_GAP_S,
    MIN_MAX_GAP_S,
    POWER_UNITS_TO_W,
    USER_MODELS_SUBDIR,
)
from .coordinator import CONF_MAX_POWER_W, DEFAULT_MAX_POWER_W, MAX_MAX_POWER_W, MIN_MAX_POWER_W
from .models import AvailableModel, discover_models

# Form errors (translated in config.error / options.error).
ERROR_DUPLICATE_ENTITY = "duplicate_entity"
ERROR_NOT_A_NUMBER = "not_a_number"


async def _async_models(hass: HomeAssistant) -> dict[str, AvailableModel]:
    return await hass.async_add_executor_job(
        discover_models, Path(hass.config.path(USER_MODELS_SUBDIR))
    )


def _appliance_selector(
    models: dict[str, AvailableModel], unavailable: list[str] | None = None
) -> selector.SelectSelector:
    """The appliances to pick from; ``unavailable`` are configured ones whose card cannot
    be read right now: still offered (and kept selected), so saving never drops them."""
    options = [
        selector.SelectOptionDict(
            value=name,
            label=f"{m.card.appliance.replace('_', ' ').capitalize()} ({name}"
            + (", user model)" if m.user else ")"),
        )
        for name, m in sorted(models.items())
    ]
    options += [
        selector.SelectOptionDict(value=name, label=f"{name} (model unavailable, see repairs)")
        for name in unavailable or []
        if name not in models
    ]
    return selector.SelectSelector(
        selector.SelectSelectorConfig(
            options=options, multiple=True, mode=selector.SelectSelectorMode.LIST
        )
    )


def _backend_selector() -> selector.SelectSelector:
    return selector.SelectSelector(
        selector.SelectSelectorConfig(
            options=list(BACKENDS),
            translation_key=CONF_BACKEND,
            mode=selector.SelectSelectorMode.DROPDOWN,
        )
    )


def validate_mains(hass: HomeAssistant, entity_ids: list[str]) -> str | None:
    """The translation key of the first problem with the chosen sensors, or None."""
    if not entity_ids:
        return "entity_not_found"
    if len(set(entity_ids)) != len(entity_ids):
        return ERROR_DUPLICATE_ENTITY  # it would be summed twice
    for entity_id in entity_ids:
        state = hass.states.get(entity_id)
        if state is None:
            return "entity_not_found"
        try:
            value = float(state.state)
        except ValueError:
            return "not_numeric"
        if not math.isfinite(value):
            return "not_numeric"
        if state.attributes.get(ATTR_UNIT_OF_MEASUREMENT) not in POWER_UNITS_TO_W:
            return "invalid_unit"
    return None


class NilmConfigFlow(ConfigFlow, domain=DOMAIN):
    """One entry per mains source (unique id: the sorted sensor ids)."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        models = await _async_models(self.hass)
        if user_input is not None:
            mains = [str(e) for e in user_input.get(CONF_MAINS_ENTITIES, [])]
            appliances = [a for a in user_input.get(CONF_APPLIANCES, []) if a in models]
            if problem := validate_mains(self.hass, mains):
                errors[CONF_MAINS_ENTITIES] = problem
            elif not appliances:
                errors[CONF_APPLIANCES] = "no_appliances"
            else:
                await self.async_set_unique_id("+".join(sorted(mains)))
                self._abort_if_unique_id_configured()
                first = self.hass.states.get(mains[0])
                title = str(first.attributes.get(ATTR_FRIENDLY_NAME, mains[0])) if first else ""
                if len(mains) > 1:
                    title += f" (+{len(mains) - 1})"
                return self.async_create_entry(
                    title=title,
                    data={
                        CONF_MAINS_ENTITIES: mains,
                        CONF_APPLIANCES: appliances,
                        CONF_BACKEND: user_input.get(CONF_BACKEND, DEFAULT_BACKEND),
                    },
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_MAINS_ENTITIES): selector.EntitySelector(
                    selector.EntitySelectorConfig(
                        domain=SENSOR_DOMAIN, device_class=SensorDeviceClass.POWER, multiple=True
                    )
                ),
                vol.Required(CONF_APPLIANCES): _appliance_selector(models),
                vol.Required(CONF_BACKEND, default=DEFAULT_BACKEND): _backend_selector(),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={"folder": self.hass.config.path(USER_MODELS_SUBDIR)},
        )

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> NilmOptionsFlow:
        return NilmOptionsFlow()


class NilmOptionsFlow(OptionsFlow):
    """Change appliances, backend, gap limit and per-appliance thresholds (reloads)."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self.config_entry
        current = {**entry.data, **entry.options}
        models = await _async_models(self.hass)
        errors: dict[str, str] = {}
        configured = [str(a) for a in current.get(CONF_APPLIANCES, [])]
        # Configured but unreadable right now (a card being copied, a bad edit): kept.
        unavailable = [a for a in configured if a not in models]
        if user_input is not None:
            appliances = [
                a for a in user_input.get(CONF_APPLIANCES, []) if a in models or a in unavailable
            ]
            errors.update(_non_finite(user_input))
            if not appliances:
                errors[CONF_APPLIANCES] = "no_appliances"
            elif not errors:
                options: dict[str, Any] = {
                    CONF_APPLIANCES: appliances,
                    CONF_BACKEND: user_input[CONF_BACKEND],
                    CONF_MAX_GAP_S: float(user_input[CONF_MAX_GAP_S]),
                }
                if CONF_MAX_POWER_W in user_input:
                    options[CONF_MAX_POWER_W] = float(user_input[CONF_MAX_POWER_W])
                for key, value in user_input.items():
                    name = key.removeprefix(CONF_THRESHOLD_PREFIX)
                    if key.startswith(CONF_THRESHOLD_PREFIX) and name in appliances:
                        options[key] = float(value)
                for name in unavailable:  # no field shown: keep what was set
                    key = f"{CONF_THRESHOLD_PREFIX}{name}"
                    if name in appliances and key in current and key not in options:
                        options[key] = current[key]
                return self.async_create_entry(data=options)

        fields: dict[Any, Any] = {
            vol.Required(
                CONF_APPLIANCES,
                default=[a for a in configured if a in models or a in unavailable],
            ): _appliance_selector(models, unavailable),
            vol.Required(
                CONF_BACKEND, default=current.get(CONF_BACKEND, DEFAULT_BACKEND)
            ): _backend_selector(),
            vol.Required(
                CONF_MAX_GAP_S, default=current.get(CONF_MAX_GAP_S, DEFAULT_MAX_GAP_S)
            ): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=MIN_MAX_GAP_S,
                    max=MAX_MAX_GAP_S,
                    step=10,
                    unit_of_measurement="s",
                    mode=selector.NumberSelectorMode.BOX,
                )
            ),
            vol.Required(
                CONF_MAX_POWER_W, default=current.get(CONF_MAX_POWER_W, DEFAULT_MAX_POWER_W)
            ): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=MIN_MAX_POWER_W,
                    max=MAX_MAX_POWER_W,
                    step=100,
                    unit_of_measurement="W",
                    mode=selector.NumberSelectorMode.BOX,
                )
            ),
        }
        for name in current.get(CONF_APPLIANCES, []):
            if name not in models:
                continue
            card = models[name].card
            key = f"{CONF_THRESHOLD_PREFIX}{name}"
            if card.status_output is not None:
                default = card.status.probability_threshold
                config = selector.NumberSelectorConfig(
                    min=0.05, max=0.95, step=0.01, mode=selector.NumberSelectorMode.BOX
                )
            else:
                default = card.status.on_power_threshold_w
                config = selector.NumberSelectorConfig(
                    min=1,
                    max=10000,
                    step=1,
                    unit_of_measurement="W",
                    mode=selector.NumberSelectorMode.BOX,
                )
            fields[vol.Required(key, default=current.get(key, default))] = selector.NumberSelector(
                config
            )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(fields), user_input or {})
            if errors
            else vol.Schema(fields),
            errors=errors,
        )


def _non_finite(user_input: dict[str, Any]) -> dict[str, str]:
    """Number fields holding NaN or inf: the number selector's min/max let NaN through
    (every comparison with NaN is false), and "nan" as max_gap_s fails setup forever."""
    errors: dict[str, str] = {}
    for key, value in user_input.items():
        if key in (CONF_MAX_GAP_S, CONF_MAX_POWER_W) or key.startswith(CONF_THRESHOLD_PREFIX):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                errors[key] = ERROR_NOT_A_NUMBER
    return errors
