"""mains_terms: which sensors add up to the house consumption, and with which sign."""

from __future__ import annotations

from custom_components.nilm.mains import MainsTerm, mains_terms, mains_type


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
