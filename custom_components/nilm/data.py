"""What one NILM config entry is made of, as types: its settings, parsed once from the
entry's data and options, the runtime data it holds while loaded, and the snapshot its
coordinator publishes after every update (what every entity reads).

A leaf: at run time it imports nothing of the integration but :mod:`.const` (the
coordinator and model types below are for annotations only).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from homeassistant.config_entries import ConfigEntry

from .const import (
    ADAPTATION_NOT_CONFIGURED,
    CONF_ADAPTATION_LABELS,
    CONF_APPLIANCES,
    CONF_BACKEND,
    CONF_EXPORT_ENTITIES,
    CONF_MAINS_ENTITIES,
    CONF_MAINS_TYPE,
    CONF_MAX_GAP_S,
    CONF_MAX_POWER_W,
    CONF_SOLAR_ENTITIES,
    CONF_THRESHOLD_PREFIX,
    DEFAULT_BACKEND,
    DEFAULT_MAX_GAP_S,
    DEFAULT_MAX_POWER_W,
    MAINS_CONSUMPTION,
    MAINS_IMPORT_EXPORT,
    MAINS_TYPES,
)

if TYPE_CHECKING:
    from .adaptation import NilmAdaptation
    from .coordinator import NilmCoordinator
    from .model_store import AvailableModel, LoadFailure

_LOGGER = logging.getLogger(__name__)

# Entry data holding mains sensor ids (all of them renamed together with the entity).
SENSOR_KEYS = (CONF_MAINS_ENTITIES, CONF_EXPORT_ENTITIES, CONF_SOLAR_ENTITIES)


def mains_type(data: Mapping[str, object]) -> str:
    """The entry's mains type; entries from before the field existed measure consumption."""
    kind = data.get(CONF_MAINS_TYPE, MAINS_CONSUMPTION)
    return str(kind) if kind in MAINS_TYPES else MAINS_CONSUMPTION


def entity_ids(data: Mapping[str, object], key: str) -> tuple[str, ...]:
    """The sensor ids saved (or entered) under ``key``; anything but a list is none."""
    raw = data.get(key) or []
    return tuple(str(e) for e in raw) if isinstance(raw, list | tuple) else ()


@dataclass(frozen=True, slots=True)
class MainsSources:
    """How the mains is measured and by which sensors, as the config flow saves it.

    The lists are kept as given (the flow refuses, say, export sensors on a consumption
    entry); :func:`.mains.mains_terms` turns them into the terms of the consumption.
    """

    kind: str = MAINS_CONSUMPTION
    mains: tuple[str, ...] = ()
    export: tuple[str, ...] = ()
    solar: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> Self:
        return cls(
            mains_type(data),
            entity_ids(data, CONF_MAINS_ENTITIES),
            entity_ids(data, CONF_EXPORT_ENTITIES),
            entity_ids(data, CONF_SOLAR_ENTITIES),
        )

    @property
    def unique_id(self) -> str:
        """The entry's unique id: the sorted sensor ids (only the mains for consumption)."""
        sensors = self.mains if self.kind == MAINS_CONSUMPTION else self.sensors
        return "+".join(sorted(sensors))

    @property
    def sensors(self) -> tuple[str, ...]:
        return (*self.mains, *self.export, *self.solar)

    def as_data(self) -> dict[str, Any]:
        """The entry data the flow saves: export only with import/export, solar unless
        the sensors measure the consumption itself."""
        data: dict[str, Any] = {CONF_MAINS_TYPE: self.kind, CONF_MAINS_ENTITIES: list(self.mains)}
        if self.kind == MAINS_IMPORT_EXPORT:
            data[CONF_EXPORT_ENTITIES] = list(self.export)
        if self.kind != MAINS_CONSUMPTION:
            data[CONF_SOLAR_ENTITIES] = list(self.solar)
        return data


def _positive(settings: Mapping[str, Any], key: str, default: float) -> float:
    """A numeric option, finite and > 0; anything else is the default (an entry saved
    before the flow checked values, e.g. max_gap_s "nan", must still set up)."""
    raw = settings.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        _LOGGER.warning("Option %s=%r is not a positive number; using %s", key, raw, default)
        return default
    return value


def _thresholds(settings: Mapping[str, Any]) -> dict[str, float]:
    """``threshold_<appliance>`` (older entries: ``threshold_<model name>``) by the part
    after the prefix; a value that is not a finite number >= 0 is ignored."""
    out: dict[str, float] = {}
    for key, value in settings.items():
        if not key.startswith(CONF_THRESHOLD_PREFIX) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number) and number >= 0:
            out[key.removeprefix(CONF_THRESHOLD_PREFIX)] = number
        else:
            _LOGGER.warning("Ignoring threshold %s=%r (not a finite number)", key, value)
    return out


def _labels(settings: Mapping[str, Any]) -> dict[str, str]:
    """``adaptation_labels``: the label entity per appliance; anything else is ignored."""
    raw = settings.get(CONF_ADAPTATION_LABELS)
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str) and "." in v}


@dataclass(frozen=True, slots=True, kw_only=True)
class NilmSettings:
    """An entry's settings: the flow's data with the options over it, parsed once."""

    sources: MainsSources
    appliances: tuple[str, ...]
    backend: str = DEFAULT_BACKEND
    max_gap_s: float = DEFAULT_MAX_GAP_S
    max_power_w: float = DEFAULT_MAX_POWER_W
    thresholds: Mapping[str, float] = field(default_factory=dict)
    # The adaptation label entity per appliance (or, like thresholds, configured name).
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: ConfigEntry) -> Self:
        return cls.parse(entry.data, entry.options)

    @classmethod
    def parse(cls, data: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> Self:
        """Options override the data chosen in the config flow (the mains sensors are
        data only). Unusable numbers fall back to their defaults, with a warning."""
        settings = {**data, **(options or {})}
        appliances = settings.get(CONF_APPLIANCES) or []
        return cls(
            sources=MainsSources.from_data(data),
            appliances=tuple(str(n) for n in appliances),
            backend=str(settings.get(CONF_BACKEND, DEFAULT_BACKEND)),
            max_gap_s=_positive(settings, CONF_MAX_GAP_S, DEFAULT_MAX_GAP_S),
            max_power_w=_positive(settings, CONF_MAX_POWER_W, DEFAULT_MAX_POWER_W),
            thresholds=_thresholds(settings),
            labels=_labels(settings),
        )

    def threshold(self, *keys: str) -> float | None:
        """The first threshold saved under one of ``keys`` (appliance, then model name)."""
        return next((self.thresholds[k] for k in keys if k in self.thresholds), None)

    def label(self, *keys: str) -> str | None:
        """The adaptation label entity saved under one of ``keys`` (appliance, name)."""
        return next((self.labels[k] for k in keys if k in self.labels), None)


# --- what the coordinator publishes after every update ----------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What an appliance's device and "Model" sensor show of the model it runs (fixed
    while the entry is loaded)."""

    appliance: str  # the card's appliance, e.g. "washing_machine"
    card_name: str
    label: str  # e.g. "Compact CNN, int8"
    quantization: str  # e.g. "int8"
    version: str | None  # the model file's sha256 prefix
    facts: Mapping[str, Any]  # the card's facts (the Model sensor's attributes)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptationSnapshot:
    """An appliance's adaptation: one of const.ADAPTATION_STATES and why (fit numbers,
    label entity, period, last fit)."""

    state: str = ADAPTATION_NOT_CONFIGURED
    attributes: Mapping[str, Any] = field(default_factory=dict)
    active: bool = False  # a re-fitted head runs now
    revertable: bool = False  # an adapter file exists (in use, or invalid)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplianceSnapshot:
    """One tracked appliance after an update."""

    name: str  # the configured name (in unique ids)
    model: ModelInfo
    available: bool  # a full window of real mains data was run
    power_w: float | None  # 0 W while predicted off
    on: bool | None
    probability: float | None
    energy_kwh: float  # counted since the entry was loaded (entities add restored totals)
    adaptation: AdaptationSnapshot = field(default_factory=AdaptationSnapshot)


@dataclass(frozen=True, slots=True, kw_only=True)
class NilmSnapshot:
    """The whole entry after an update: the coordinator's data."""

    appliances: Mapping[str, ApplianceSnapshot]
    untracked_power_w: float | None  # None unless every appliance is available
    mains_power_w: float | None  # the mains at the models' target time
    status: str  # one of const.STATUSES
    status_attributes: Mapping[str, Any]


@dataclass(slots=True)
class NilmRuntimeData:
    """What one config entry holds while loaded (``entry.runtime_data``)."""

    coordinator: NilmCoordinator
    settings: NilmSettings
    failures: dict[str, LoadFailure] = field(default_factory=dict)
    available: dict[str, AvailableModel] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)  # skipped: appliance tracked already
    adaptation: NilmAdaptation | None = None  # set once the models are loaded


type NilmConfigEntry = ConfigEntry[NilmRuntimeData]
