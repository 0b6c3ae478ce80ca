"""mains.py: which sensors add up to the house consumption, with which sign, how one
reading is checked and parsed, and how the readings are combined."""

from __future__ import annotations

import math

import pytest
from homeassistant.core import State

from custom_components.nilm.data import MainsSources
from custom_components.nilm.mains import (
    MainsCombiner,
    MainsTerm,
    ReadingProblem,
    check_reading,
    mains_terms,
    mains_type,
    parse_power_w,
)

from .conftest import MAINS


def test_an_entry_without_a_mains_type_measures_consumption() -> None:
    data = {"mains_entities": ["sensor.l1", "sensor.l2", "sensor.l1"]}
    assert mains_type(data) == "consumption"
    assert mains_terms(data) == [MainsTerm("sensor.l1"), MainsTerm("sensor.l2")]
    assert mains_type({"mains_type": "bogus"}) == "consumption"
    # Solar or export sensors saved with a consumption entry are not part of it.
    assert mains_terms({**data, "solar_entities": ["sensor.pv"]}) == mains_terms(data)


def test_signed_grid_phases_plus_solar() -> None:
    terms = mains_terms(
        {
            "mains_type": "grid",
            "mains_entities": ["sensor.l1", "sensor.l2"],
            "solar_entities": ["sensor.pv"],
            "export_entities": ["sensor.ignored"],
        }
    )
    assert terms == [
        MainsTerm("sensor.l1", 1.0, True, "grid"),
        MainsTerm("sensor.l2", 1.0, True, "grid"),
        MainsTerm("sensor.pv", 1.0, True, "solar"),
    ]


def test_import_minus_export_plus_solar() -> None:
    terms = mains_terms(
        {
            "mains_type": "import_export",
            "mains_entities": ["sensor.in_l1", "sensor.in_l2"],
            "export_entities": ["sensor.out_l1", "sensor.out_l2"],
            "solar_entities": None,
        }
    )
    assert [(t.entity_id, t.sign, t.signed) for t in terms] == [
        ("sensor.in_l1", 1.0, False),
        ("sensor.in_l2", 1.0, False),
        ("sensor.out_l1", -1.0, False),
        ("sensor.out_l2", -1.0, False),
    ]
    # A malformed value is no sensor at all, never a crash.
    assert mains_terms({"mains_type": "grid", "mains_entities": "sensor.x"}) == []


def test_combiner_sums_grid_export_and_solar_and_refuses_negative() -> None:
    # (Imported here: the solar replays above must fail on their assertions, not on an
    # import, on code from before this existed.)
    from custom_components.nilm.mains import MainsTerm

    combiner = MainsCombiner(
        [
            MainsTerm("sensor.import", 1.0, False, "import"),
            MainsTerm("sensor.export", -1.0, False, "export"),
            MainsTerm("sensor.solar", 1.0, True, "solar"),
            MainsTerm("sensor.import", 1.0, False, "import"),  # listed twice: counted once
        ],
        max_gap_s=60.0,
    )
    assert combiner.entity_ids == ["sensor.import", "sensor.export", "sensor.solar"]
    assert combiner.update("sensor.import", 0.0, 0.0) is None  # the others are unknown
    assert combiner.missing(0.0) == ["sensor.export", "sensor.solar"]
    assert combiner.update("sensor.export", 1200.0, 0.0) is None
    assert combiner.update("sensor.solar", 1500.0, 0.0) == pytest.approx(300.0)
    # The inverter lags behind a cloud: 0 - 1200 + 900 < 0 is not a consumption.
    assert combiner.update("sensor.solar", 900.0, 10.0) is None
    assert combiner.negative == 1
    assert combiner.update("sensor.export", 600.0, 12.0) == pytest.approx(300.0)
    # A silent sensor goes stale after max_gap_s.
    assert combiner.update("sensor.import", 0.0, 75.0) is None
    assert combiner.missing(75.0) == ["sensor.export", "sensor.solar"]
    # Plain entity ids are consumption sensors (the scripts' and older callers' form).
    plain = MainsCombiner(["sensor.a", "sensor.b"], 60.0)
    plain.update("sensor.a", 100.0, 0.0)
    assert plain.update("sensor.b", 50.0, 0.0) == pytest.approx(150.0)


def test_parse_power_w_signed_sensors() -> None:
    w = {"unit_of_measurement": "W"}
    kw = {"unit_of_measurement": "kW"}
    assert parse_power_w(State(MAINS, "-2000", w)) is None
    assert parse_power_w(State(MAINS, "-2000", w), signed=True) == -2000.0
    assert parse_power_w(State(MAINS, "-1.5", kw), signed=True) == -1500.0
    # The plausibility bound holds in both directions.
    assert parse_power_w(State(MAINS, "-25000", w), signed=True) == -25000.0
    for text in ("-25000.1", "-65535", "-inf", "nan"):
        assert parse_power_w(State(MAINS, text, w), signed=True) is None, text


def test_parse_power_w_bounds() -> None:
    w = {"unit_of_measurement": "W"}
    kw = {"unit_of_measurement": "kW"}
    assert parse_power_w(State(MAINS, "24999", w)) == 24999.0
    assert parse_power_w(State(MAINS, "25000", w)) == 25000.0
    for text in ("25000.1", "65535", "4294967295", "1e12", "1e308", "inf", "nan", "-1"):
        assert parse_power_w(State(MAINS, text, w)) is None, text
    assert parse_power_w(State(MAINS, "1e306", kw)) is None  # inf after the conversion
    assert parse_power_w(State(MAINS, "6000", w), 5000.0) is None
    assert parse_power_w(State(MAINS, "4999", w), 5000.0) == 4999.0


def test_one_validator_says_why_a_reading_is_unusable() -> None:
    """check_reading serves the config flow (the reason) and the coordinator (watts or
    missing): the same rules, in the same order, for both."""
    w = {"unit_of_measurement": "W"}
    assert check_reading(None) == (None, ReadingProblem.MISSING)
    for text in ("unavailable", "unknown", "abc"):
        assert check_reading(State(MAINS, text, w)) == (None, ReadingProblem.NOT_NUMERIC)
    assert check_reading(State(MAINS, "nan", {})) == (None, ReadingProblem.NOT_FINITE)
    assert check_reading(State(MAINS, "5", {"unit_of_measurement": "kWh"})) == (
        None,
        ReadingProblem.BAD_UNIT,
    )
    assert check_reading(State(MAINS, "-5", w)) == (None, ReadingProblem.NEGATIVE)
    assert check_reading(State(MAINS, "-5", w), signed=True) == (-5.0, None)
    assert check_reading(State(MAINS, "30", {"unit_of_measurement": "kW"})) == (
        None,
        ReadingProblem.TOO_LARGE,
    )
    assert check_reading(State(MAINS, "30", {"unit_of_measurement": "kW"}), max_power_w=math.inf)[
        0
    ] == pytest.approx(30_000.0)
    # Only a number that was read and refused counts as a refused reading.
    assert [p.refused for p in ReadingProblem] == [False, False, True, True, True, True]


def test_mains_terms_of_parsed_sources() -> None:
    sources = MainsSources("grid", ("sensor.grid",), ("sensor.ignored",), ("sensor.pv",))
    assert mains_terms(sources) == [
        MainsTerm("sensor.grid", 1.0, True, "grid"),
        MainsTerm("sensor.pv", 1.0, True, "solar"),
    ]
