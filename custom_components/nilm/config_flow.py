"""UI setup: how the mains is measured and by which sensors, the appliances, the backend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import voluptuous as vol
from homeassistant.components.sensor import DOMAIN as SENSOR_DOMAIN
from homeassistant.components.sensor import SensorDeviceClass
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.const import ATTR_FRIENDLY_NAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import selector

from .const import (
    BACKENDS,
    CONF_ADAPTATION_LABELS,
    CONF_APPLIANCES,
    CONF_BACKEND,
    CONF_EXPORT_ENTITIES,
    CONF_LABEL_PREFIX,
    CONF_MAINS_ENTITIES,
    CONF_MAINS_TYPE,
    CONF_MAX_GAP_S,
    CONF_MAX_POWER_W,
    CONF_SOLAR_ENTITIES,
    CONF_THRESHOLD_PREFIX,
    DEFAULT_BACKEND,
    DOMAIN,
    LABEL_ON_OFF_DOMAINS,
    MAINS_CONSUMPTION,
    MAINS_GRID,
    MAINS_IMPORT_EXPORT,
    MAINS_TYPES,
    MAX_MAX_GAP_S,
    MAX_MAX_POWER_W,
    MIN_MAX_GAP_S,
    MIN_MAX_POWER_W,
    USER_MODELS_SUBDIR,
)
from .data import MainsSources, NilmSettings
from .entity import appliance_display_name
from .mains import MainsTerm, ReadingProblem, check_reading, mains_terms
from .model_store import (
    AvailableModel,
    discover_models,
    offered_models,
    one_per_appliance,
    replacement_for,
)

# Form errors (translated in config.error / options.error; {sensor} and {appliance} come
# from the form's description placeholders).
ERROR_DUPLICATE_ENTITY = "duplicate_entity"
ERROR_NOT_A_NUMBER = "not_a_number"
ERROR_MAINS_REQUIRED = "mains_required"
ERROR_OWN_ENTITY = "own_entity"
ERROR_NEGATIVE_CONSUMPTION = "negative_consumption"
ERROR_NEGATIVE_READING = "negative_reading"
ERROR_EXPORT_REQUIRED = "export_required"
ERROR_ONLY_FOR_GRID = "only_for_grid"
ERROR_EXPORT_WITH_SIGNED_GRID = "export_with_signed_grid"
ERROR_DUPLICATE_APPLIANCE = "duplicate_appliance"
ERROR_LABEL_UNIT = "label_invalid_unit"
ERROR_LABEL_IS_MAINS = "label_is_mains"

# Probability thresholds: never exactly 0 or 1 (always / never on).
MIN_PROBABILITY = 0.01
MAX_PROBABILITY = 0.999


async def _async_models(hass: HomeAssistant) -> dict[str, AvailableModel]:
    return await hass.async_add_executor_job(
        discover_models, Path(hass.config.path(USER_MODELS_SUBDIR))
    )


def _label(model: AvailableModel) -> str:
    card = model.card
    return f"{appliance_display_name(card.appliance)} ({card.name}" + (
        ", user model)" if model.user else ")"
    )


def _appliance_selector(choices: dict[str, AvailableModel | None]) -> selector.SelectSelector:
    """The appliances to pick from. A ``None`` choice is configured but its card cannot
    be read right now: still offered (and kept selected), so saving never drops it."""
    options = [
        selector.SelectOptionDict(
            value=value,
            label=_label(model) if model else f"{value} (model unavailable, see repairs)",
        )
        for value, model in choices.items()
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


def _mains_type_selector() -> selector.SelectSelector:
    return selector.SelectSelector(
        selector.SelectSelectorConfig(
            options=list(MAINS_TYPES),
            translation_key=CONF_MAINS_TYPE,
            mode=selector.SelectSelectorMode.LIST,
        )
    )


def own_entities(hass: HomeAssistant) -> list[str]:
    """Every entity of this integration: never a mains source (it would feed the models
    their own output)."""
    return sorted(e.entity_id for e in er.async_get(hass).entities.values() if e.platform == DOMAIN)


def _power_selector(hass: HomeAssistant) -> selector.EntitySelector:
    return selector.EntitySelector(
        selector.EntitySelectorConfig(
            domain=SENSOR_DOMAIN,
            device_class=SensorDeviceClass.POWER,
            multiple=True,
            exclude_entities=own_entities(hass),
        )
    )


def _label_selector(hass: HomeAssistant) -> selector.EntitySelector:
    """An adaptation label: a smart plug's power sensor, or an on/off entity."""
    return selector.EntitySelector(
        selector.EntitySelectorConfig(
            filter=[
                selector.EntityFilterSelectorConfig(
                    domain=SENSOR_DOMAIN, device_class=SensorDeviceClass.POWER
                ),
                selector.EntityFilterSelectorConfig(domain=list(LABEL_ON_OFF_DOMAINS)),
            ],
            exclude_entities=own_entities(hass),
        )
    )


def _check_labels(
    hass: HomeAssistant, user_input: dict[str, Any], mains: tuple[str, ...]
) -> tuple[str, str, str] | None:
    """The first unusable label as (field, error, entity): a mains sensor, or a power
    sensor in a unit other than W/kW. A label whose entity is gone right now is kept
    (the adaptation sensor says label_missing)."""
    for key, entity_id in user_input.items():
        if not key.startswith(CONF_LABEL_PREFIX) or not entity_id:
            continue
        if entity_id in mains:
            return key, ERROR_LABEL_IS_MAINS, entity_id
        state = hass.states.get(entity_id)
        if (
            state is not None
            and entity_id.startswith(f"{SENSOR_DOMAIN}.")
            and check_reading(state, max_power_w=math.inf)[1] is ReadingProblem.BAD_UNIT
        ):
            return key, ERROR_LABEL_UNIT, entity_id
    return None


# What the flow says about a sensor whose state is not a usable reading.
_READING_ERRORS = {
    ReadingProblem.MISSING: "entity_not_found",
    ReadingProblem.NOT_NUMERIC: "not_numeric",
    ReadingProblem.NOT_FINITE: "not_numeric",
    ReadingProblem.BAD_UNIT: "invalid_unit",
}


def _check_sensor(hass: HomeAssistant, term: MainsTerm) -> str | None:
    """The translation key of what is wrong with one sensor, or None.

    Its state is checked by :func:`.mains.check_reading`, as the coordinator reads it:
    a negative reading is refused only where the coordinator would refuse it (not on a
    signed grid or a solar sensor). The flow sets no bound on the magnitude (the option
    ``max_power_w`` does not exist yet; an implausible reading is missing data then).
    """
    entry = er.async_get(hass).async_get(term.entity_id)
    if entry is not None and entry.platform == DOMAIN:
        return ERROR_OWN_ENTITY
    _, problem = check_reading(
        hass.states.get(term.entity_id), signed=term.signed, max_power_w=math.inf
    )
    if problem is None:
        return None
    if problem is ReadingProblem.NEGATIVE:
        return ERROR_NEGATIVE_CONSUMPTION if term.role == "consumption" else ERROR_NEGATIVE_READING
    return _READING_ERRORS[problem]


def check_sources(
    hass: HomeAssistant,
    kind: str,
    mains: list[str],
    export: list[str] | None = None,
    solar: list[str] | None = None,
) -> tuple[str, str, str] | None:
    """The first problem with the chosen sensors as (field, error key, sensor), or None."""
    export, solar = export or [], solar or []
    if not mains:
        return CONF_MAINS_ENTITIES, ERROR_MAINS_REQUIRED, ""
    if kind == MAINS_CONSUMPTION:
        for field, ids in ((CONF_EXPORT_ENTITIES, export), (CONF_SOLAR_ENTITIES, solar)):
            if ids:
                return field, ERROR_ONLY_FOR_GRID, ids[0]
    elif kind == MAINS_GRID and export:
        # A signed grid sensor already holds the export: it would be subtracted twice.
        return CONF_EXPORT_ENTITIES, ERROR_EXPORT_WITH_SIGNED_GRID, export[0]
    elif kind == MAINS_IMPORT_EXPORT and not export:
        return CONF_EXPORT_ENTITIES, ERROR_EXPORT_REQUIRED, ""
    # Every sensor left is a term of the consumption, with the sign rules the
    # coordinator applies to it.
    terms = {
        t.entity_id: t
        for t in mains_terms(MainsSources(kind, tuple(mains), tuple(export), tuple(solar)))
    }
    seen: set[str] = set()
    for field, ids in (
        (CONF_MAINS_ENTITIES, mains),
        (CONF_EXPORT_ENTITIES, export),
        (CONF_SOLAR_ENTITIES, solar),
    ):
        for entity_id in ids:
            if entity_id in seen:
                return field, ERROR_DUPLICATE_ENTITY, entity_id  # it would count twice
            seen.add(entity_id)
            if problem := _check_sensor(hass, terms[entity_id]):
                return field, problem, entity_id
    return None


def validate_mains(hass: HomeAssistant, entity_ids: list[str]) -> str | None:
    """The translation key of the first problem with consumption sensors, or None."""
    problem = check_sources(hass, MAINS_CONSUMPTION, entity_ids)
    return problem[1] if problem else None


def _duplicate_appliance(models: list[AvailableModel]) -> str | None:
    """The display name of an appliance chosen twice (one device per appliance)."""
    seen: set[str] = set()
    for model in models:
        if model.card.appliance in seen:
            return appliance_display_name(model.card.appliance)
        seen.add(model.card.appliance)
    return None


def _default_appliances(offered: dict[str, AvailableModel]) -> list[str]:
    """One model per appliance, leaving out those whose card records a lower F1 on the
    unseen test house than the non-learned rule baseline (a user can still tick them)."""
    chosen = []
    for name in one_per_appliance(offered):
        metrics = offered[name].card.metrics
        model = metrics.get("test_house_20")
        rule = metrics.get("rule_house_20")
        try:
            worse = float(model["f1"]) < float(rule["f1"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            worse = False
        if not worse:
            chosen.append(name)
    return chosen or one_per_appliance(offered)


class NilmConfigFlow(ConfigFlow, domain=DOMAIN):
    """One entry per mains source (unique id: the sorted sensor ids)."""

    VERSION = 1
    MINOR_VERSION = 2  # 1.2: mains_type (1.1 entries measure consumption)

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders = {
            "folder": self.hass.config.path(USER_MODELS_SUBDIR),
            "sensor": "",
            "appliance": "",
        }
        found = await _async_models(self.hass)
        offered = offered_models(found)
        if user_input is not None:
            sources = MainsSources.from_data(user_input)
            kind = sources.kind
            mains = list(sources.mains)
            export = list(sources.export)
            solar = list(sources.solar)
            appliances = [a for a in user_input.get(CONF_APPLIANCES, []) if a in found]
            chosen = [m for a in appliances if (m := replacement_for(found, a))]
            if problem := check_sources(self.hass, kind, mains, export, solar):
                field, errors[field], placeholders["sensor"] = problem
            elif not appliances:
                errors[CONF_APPLIANCES] = "no_appliances"
            elif twice := _duplicate_appliance(chosen):
                errors[CONF_APPLIANCES] = ERROR_DUPLICATE_APPLIANCE
                placeholders["appliance"] = twice
            else:
                await self.async_set_unique_id(sources.unique_id)
                self._abort_if_unique_id_configured()
                first = self.hass.states.get(mains[0])
                title = str(first.attributes.get(ATTR_FRIENDLY_NAME, mains[0])) if first else ""
                if len(mains) > 1:
                    title += f" (+{len(mains) - 1})"
                data = sources.as_data()
                data[CONF_APPLIANCES] = appliances
                data[CONF_BACKEND] = user_input.get(CONF_BACKEND, DEFAULT_BACKEND)
                return self.async_create_entry(title=title, data=data)
        schema = vol.Schema(
            {
                vol.Required(CONF_MAINS_TYPE, default=MAINS_CONSUMPTION): _mains_type_selector(),
                vol.Required(CONF_MAINS_ENTITIES, default=[]): _power_selector(self.hass),
                vol.Optional(CONF_EXPORT_ENTITIES, default=[]): _power_selector(self.hass),
                vol.Optional(CONF_SOLAR_ENTITIES, default=[]): _power_selector(self.hass),
                # Every offered appliance is ticked (one model each) unless its card says it
                # lost to the simple rule on the unseen test house: untick what you lack.
                vol.Required(CONF_APPLIANCES, default=_default_appliances(offered)): (
                    _appliance_selector(dict(offered))
                ),
                vol.Required(CONF_BACKEND, default=DEFAULT_BACKEND): _backend_selector(),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders=placeholders,
        )

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> NilmOptionsFlow:
        return NilmOptionsFlow()


def _choices(
    found: dict[str, AvailableModel], configured: list[str]
) -> dict[str, AvailableModel | None]:
    """Appliance choices by value: the configured names first (each runs the model
    :func:`replacement_for` picks, so keeping it keeps its device and history), then
    every offered model no configured name already runs."""
    choices: dict[str, AvailableModel | None] = {
        name: replacement_for(found, name) for name in configured
    }
    running = {m.card_path for m in choices.values() if m is not None}
    for name, model in offered_models(found).items():
        if name not in choices and model.card_path not in running:
            choices[name] = model
    return dict(sorted(choices.items()))


def _threshold_field(model: AvailableModel, default: float | None) -> tuple[float, Any]:
    card = model.card
    if card.status_output is not None:
        value = card.status.probability_threshold if default is None else default
        config = selector.NumberSelectorConfig(
            min=min(MIN_PROBABILITY, value),
            max=max(MAX_PROBABILITY, value),
            step=0.001,
            mode=selector.NumberSelectorMode.BOX,
        )
    else:
        value = card.status.on_power_threshold_w if default is None else default
        config = selector.NumberSelectorConfig(
            min=min(1.0, value),
            max=max(10000.0, value),
            step=1,
            unit_of_measurement="W",
            mode=selector.NumberSelectorMode.BOX,
        )
    return value, selector.NumberSelector(config)


class NilmOptionsFlow(OptionsFlow):
    """Change appliances, backend, gap limit and per-appliance thresholds (reloads).

    Thresholds are keyed by appliance (``threshold_kettle``), whatever model runs it, so
    every field has a translated label.
    """

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self.config_entry
        current = {**entry.data, **entry.options}
        settings = NilmSettings.from_entry(entry)
        found = await _async_models(self.hass)
        errors: dict[str, str] = {}
        placeholders = {"appliance": ""}  # + "sensor" for a label's error
        configured = list(settings.appliances)
        choices = _choices(found, configured)
        if user_input is not None:
            appliances = [a for a in user_input.get(CONF_APPLIANCES, []) if a in choices]
            models = [m for a in appliances if (m := choices[a]) is not None]
            errors.update(_non_finite(user_input))
            if not appliances:
                errors[CONF_APPLIANCES] = "no_appliances"
            elif twice := _duplicate_appliance(models):
                errors[CONF_APPLIANCES] = ERROR_DUPLICATE_APPLIANCE
                placeholders["appliance"] = twice
            elif problem := _check_labels(self.hass, user_input, settings.sources.sensors):
                field, errors[field], placeholders["sensor"] = problem
            elif not errors:
                return self.async_create_entry(
                    data=_options(user_input, current, appliances, choices)
                )

        fields: dict[Any, Any] = {
            vol.Required(
                CONF_APPLIANCES, default=[a for a in configured if a in choices]
            ): _appliance_selector(choices),
            vol.Required(CONF_BACKEND, default=settings.backend): _backend_selector(),
            vol.Required(CONF_MAX_GAP_S, default=settings.max_gap_s): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=MIN_MAX_GAP_S,
                    max=MAX_MAX_GAP_S,
                    step=10,
                    unit_of_measurement="s",
                    mode=selector.NumberSelectorMode.BOX,
                )
            ),
            vol.Required(CONF_MAX_POWER_W, default=settings.max_power_w): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=MIN_MAX_POWER_W,
                    max=MAX_MAX_POWER_W,
                    step=100,
                    unit_of_measurement="W",
                    mode=selector.NumberSelectorMode.BOX,
                )
            ),
        }
        shown: set[str] = set()
        for name in configured:
            model = choices.get(name)
            if model is None or model.card.appliance in shown:
                continue
            appliance = model.card.appliance
            shown.add(appliance)
            default, number = _threshold_field(model, settings.threshold(appliance, name))
            fields[vol.Required(f"{CONF_THRESHOLD_PREFIX}{appliance}", default=default)] = number
        for name in configured:  # adaptation labels: only models with a head can learn
            model = choices.get(name)
            if model is None or model.card.head is None:
                continue
            key = f"{CONF_LABEL_PREFIX}{model.card.appliance}"
            if key in fields:
                continue
            label = settings.label(model.card.appliance, name)
            suggested = {"suggested_value": label} if label else None
            fields[vol.Optional(key, description=suggested)] = _label_selector(self.hass)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(fields), user_input or {})
            if errors
            else vol.Schema(fields),
            errors=errors,
            description_placeholders=placeholders,
        )


def _options(
    user_input: dict[str, Any],
    current: dict[str, Any],
    appliances: list[str],
    choices: dict[str, AvailableModel | None],
) -> dict[str, Any]:
    options: dict[str, Any] = {
        CONF_APPLIANCES: appliances,
        CONF_BACKEND: user_input[CONF_BACKEND],
        CONF_MAX_GAP_S: float(user_input[CONF_MAX_GAP_S]),
    }
    if CONF_MAX_POWER_W in user_input:
        options[CONF_MAX_POWER_W] = float(user_input[CONF_MAX_POWER_W])
    tracked = {m.card.appliance for a in appliances if (m := choices[a]) is not None}
    for key, value in user_input.items():
        if key.startswith(CONF_THRESHOLD_PREFIX) and key.removeprefix(CONF_THRESHOLD_PREFIX) in (
            tracked
        ):
            options[key] = float(value)
    for name in appliances:  # unreadable right now: no field shown, keep what was set
        key = f"{CONF_THRESHOLD_PREFIX}{name}"
        if choices[name] is None and key in current and key not in options:
            options[key] = current[key]
    labels = {
        key.removeprefix(CONF_LABEL_PREFIX): str(value)
        for key, value in user_input.items()
        if key.startswith(CONF_LABEL_PREFIX)
        and value
        and key.removeprefix(CONF_LABEL_PREFIX) in tracked
    }
    old = current.get(CONF_ADAPTATION_LABELS)
    for name in appliances:  # unreadable right now: keep its label
        if choices[name] is None and isinstance(old, dict) and name in old:
            labels[name] = old[name]
    if labels:
        options[CONF_ADAPTATION_LABELS] = labels
    return options


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
