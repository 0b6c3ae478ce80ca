"""How the house consumption is derived from the configured sensors.

Three ways to measure the mains (config flow field ``mains_type``):

- ``consumption``: sensors of the house's own consumption (one per phase), summed.
- ``grid``: signed grid sensors (positive while importing, negative while exporting),
  one per phase, plus optional solar production sensors.
- ``import_export``: grid import and grid export sensors (both positive, one pair per
  phase), plus optional solar production sensors.

House consumption = grid import - grid export + solar production, summed over the phases.
Only the consumption derived that way must not be negative: a grid sensor reading -2 kW
while the panels export is a valid reading, a derived consumption of -300 W is not (a
solar sensor lagging behind, or no solar sensor at all) and counts as missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .const import (
    CONF_EXPORT_ENTITIES,
    CONF_MAINS_ENTITIES,
    CONF_MAINS_TYPE,
    CONF_SOLAR_ENTITIES,
    MAINS_CONSUMPTION,
    MAINS_GRID,
    MAINS_IMPORT_EXPORT,
    MAINS_TYPES,
)


@dataclass(frozen=True, slots=True)
class MainsTerm:
    """One sensor's part in the house consumption: ``sign * reading``."""

    entity_id: str
    sign: float = 1.0  # -1 for grid export
    signed: bool = False  # negative readings are valid (a signed grid or a solar sensor)
    role: str = "consumption"  # consumption | grid | import | export | solar


def mains_type(data: Mapping[str, object]) -> str:
    """The entry's mains type; entries from before the field existed measure consumption."""
    kind = data.get(CONF_MAINS_TYPE, MAINS_CONSUMPTION)
    return str(kind) if kind in MAINS_TYPES else MAINS_CONSUMPTION


def _ids(data: Mapping[str, object], key: str) -> list[str]:
    raw = data.get(key) or []
    return [str(e) for e in raw] if isinstance(raw, list | tuple) else []


def mains_terms(data: Mapping[str, object]) -> list[MainsTerm]:
    """The terms of the house consumption for an entry's data; a sensor counts once."""
    kind = mains_type(data)
    terms: list[MainsTerm] = []
    if kind == MAINS_CONSUMPTION:
        terms = [MainsTerm(e) for e in _ids(data, CONF_MAINS_ENTITIES)]
    elif kind == MAINS_GRID:
        terms = [MainsTerm(e, 1.0, True, "grid") for e in _ids(data, CONF_MAINS_ENTITIES)]
    else:
        terms = [MainsTerm(e, 1.0, False, "import") for e in _ids(data, CONF_MAINS_ENTITIES)]
        terms += [MainsTerm(e, -1.0, False, "export") for e in _ids(data, CONF_EXPORT_ENTITIES)]
    if kind in (MAINS_GRID, MAINS_IMPORT_EXPORT):
        # An inverter's standby draw shows as a small negative production: a valid reading.
        terms += [MainsTerm(e, 1.0, True, "solar") for e in _ids(data, CONF_SOLAR_ENTITIES)]
    unique: dict[str, MainsTerm] = {}
    for term in terms:
        unique.setdefault(term.entity_id, term)
    return list(unique.values())
