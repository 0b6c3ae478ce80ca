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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import State

from .const import DEFAULT_MAX_POWER_W, MAINS_CONSUMPTION, MAINS_GRID, POWER_UNITS_TO_W
from .data import MainsSources, mains_type

__all__ = [
    "MainsCombiner",
    "MainsTerm",
    "ReadingProblem",
    "check_reading",
    "mains_terms",
    "mains_type",
    "parse_power_w",
]


@dataclass(frozen=True, slots=True)
class MainsTerm:
    """One sensor's part in the house consumption: ``sign * reading``."""

    entity_id: str
    sign: float = 1.0  # -1 for grid export
    signed: bool = False  # negative readings are valid (a signed grid or a solar sensor)
    role: str = "consumption"  # consumption | grid | import | export | solar


def mains_terms(data: Mapping[str, object] | MainsSources) -> list[MainsTerm]:
    """The terms of the house consumption for an entry's data; a sensor counts once."""
    sources = data if isinstance(data, MainsSources) else MainsSources.from_data(data)
    kind = sources.kind
    terms: list[MainsTerm] = []
    if kind == MAINS_CONSUMPTION:
        terms = [MainsTerm(e) for e in sources.mains]
    elif kind == MAINS_GRID:
        terms = [MainsTerm(e, 1.0, True, "grid") for e in sources.mains]
    else:
        terms = [MainsTerm(e, 1.0, False, "import") for e in sources.mains]
        terms += [MainsTerm(e, -1.0, False, "export") for e in sources.export]
    if kind != MAINS_CONSUMPTION:
        # An inverter's standby draw shows as a small negative production: a valid reading.
        terms += [MainsTerm(e, 1.0, True, "solar") for e in sources.solar]
    unique: dict[str, MainsTerm] = {}
    for term in terms:
        unique.setdefault(term.entity_id, term)
    return list(unique.values())


class ReadingProblem(StrEnum):
    """Why a sensor's state is not a usable reading (checked in this order)."""

    MISSING = "missing"  # no state at all
    NOT_NUMERIC = "not_numeric"  # unavailable, unknown or not a number
    NOT_FINITE = "not_finite"  # nan, inf
    BAD_UNIT = "bad_unit"  # not W or kW
    NEGATIVE = "negative"  # below 0 on a sensor that is never negative
    TOO_LARGE = "too_large"  # above the plausibility bound (a glitch or an overflow)

    @property
    def refused(self) -> bool:
        """A number was read but is not plausible (the coordinator counts these)."""
        return self not in (ReadingProblem.MISSING, ReadingProblem.NOT_NUMERIC)


def check_reading(
    state: State | None, *, signed: bool = False, max_power_w: float = DEFAULT_MAX_POWER_W
) -> tuple[float | None, ReadingProblem | None]:
    """One sensor's state as watts, or ``None`` and why it is not usable.

    The one validation of a mains reading: the config flow turns the problem into a form
    error (with an unbounded ``max_power_w``), the coordinator treats every problem as
    missing data. A negative reading is valid only on a ``signed`` sensor (a grid sensor
    while exporting, a solar inverter's standby draw: see :func:`mains_terms`).
    """
    if state is None:
        return None, ReadingProblem.MISSING
    if state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None, ReadingProblem.NOT_NUMERIC
    try:
        value = float(state.state)
    except ValueError:
        return None, ReadingProblem.NOT_NUMERIC
    if not math.isfinite(value):
        return None, ReadingProblem.NOT_FINITE
    factor = POWER_UNITS_TO_W.get(state.attributes.get(ATTR_UNIT_OF_MEASUREMENT, ""))
    if factor is None:
        return None, ReadingProblem.BAD_UNIT
    if value < 0 and not signed:
        return None, ReadingProblem.NEGATIVE
    watts = value * factor
    if not abs(watts) <= max_power_w:  # also refuses an overflow to inf
        return None, ReadingProblem.TOO_LARGE
    return watts, None


def parse_power_w(
    state: State | None, max_power_w: float = DEFAULT_MAX_POWER_W, *, signed: bool = False
) -> float | None:
    """A reading in watts, or ``None`` for anything that is not a usable number.

    Unavailable, unknown, non-numeric, NaN/inf, above ``max_power_w`` in magnitude and
    unknown units are all "missing": the resampler bridges short stretches and marks long
    ones as gaps. A negative reading is missing too, unless the sensor is ``signed``.
    """
    return check_reading(state, signed=signed, max_power_w=max_power_w)[0]


class MainsCombiner:
    """House consumption from its terms (:func:`mains_terms`): the signed sum.

    The sum is missing while any sensor is missing or stale, and when it is negative
    (export or production not fully measured, or sensors updating out of step): the
    grid readings may be negative, the consumption they add up to may not.
    """

    def __init__(self, terms: Sequence[str | MainsTerm], max_gap_s: float) -> None:
        unique: dict[str, MainsTerm] = {}
        for term in terms:
            item = MainsTerm(term) if isinstance(term, str) else term
            unique.setdefault(item.entity_id, item)  # a sensor listed twice counts once
        self.terms = list(unique.values())
        self.entity_ids = list(unique)
        self.max_gap_s = max_gap_s
        self._values: dict[str, float | None] = dict.fromkeys(self.entity_ids)
        self._valid_ts: dict[str, float] = dict.fromkeys(self.entity_ids, -math.inf)
        self.negative = 0  # sums refused for being negative

    def update(self, entity_id: str, value_w: float | None, ts: float) -> float | None:
        self._values[entity_id] = value_w
        if value_w is not None:
            self._valid_ts[entity_id] = ts
        total = 0.0
        for term in self.terms:
            value = self._values[term.entity_id]
            if value is None or ts - self._valid_ts[term.entity_id] > self.max_gap_s:
                return None
            total += term.sign * value
        if total < 0:
            self.negative += 1
            return None
        return total

    def missing(self, ts: float) -> list[str]:
        """The sensors without a usable reading at ``ts`` (missing, or silent too long)."""
        return [
            e
            for e in self.entity_ids
            if self._values[e] is None or ts - self._valid_ts[e] > self.max_gap_s
        ]
