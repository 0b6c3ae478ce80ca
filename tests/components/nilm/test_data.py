"""data.py: an entry's settings, parsed once from its data and options (setup and the
options flow read the same values)."""

from __future__ import annotations

import json
from pathlib import Path

from homeassistant.core import HomeAssistant

from custom_components.nilm.const import CONF_MAX_GAP_S
from custom_components.nilm.data import MainsSources, NilmSettings

from .conftest import FIXTURE_MODELS, make_entry, setup_entry


async def test_non_finite_saved_options_fall_back_to_defaults(
    hass: HomeAssistant, user_models: Path
) -> None:
    """An entry saved with max_gap_s "nan" (before the flow refused it) still sets up."""
    entry = await setup_entry(
        hass,
        make_entry(
            ["test_kettle"],
            options={CONF_MAX_GAP_S: float("nan"), "threshold_test_kettle": float("nan")},
        ),
    )
    coordinator = entry.runtime_data.coordinator
    assert coordinator.max_gap_s == 300.0
    card = coordinator.appliances["test_kettle"].model.card
    raw = json.loads((FIXTURE_MODELS / "test_kettle.json").read_text(encoding="utf-8"))
    assert card.status.probability_threshold == raw["status"]["probability_threshold"]


async def test_thresholds_are_read_by_appliance_and_by_older_model_keys(
    hass: HomeAssistant, user_models: Path
) -> None:
    entry = await setup_entry(
        hass,
        make_entry(
            ["test_kettle", "test_microwave"],
            options={"threshold_kettle": 0.7, "threshold_test_microwave": 0.6},
        ),
    )
    runtimes = entry.runtime_data.coordinator.appliances
    assert runtimes["test_kettle"].model.card.status.probability_threshold == 0.7
    # An entry saved before thresholds were keyed by appliance keeps its value.
    assert runtimes["test_microwave"].model.card.status.probability_threshold == 0.6


def test_settings_are_parsed_once_with_options_over_data() -> None:
    data = {
        "mains_type": "import_export",
        "mains_entities": ["sensor.import"],
        "export_entities": ["sensor.export"],
        "solar_entities": ["sensor.pv"],
        "appliances": ["kettle"],
        "backend": "cpu",
    }
    settings = NilmSettings.parse(
        data,
        {
            "appliances": ["kettle", "fridge"],
            "max_gap_s": "120",
            "max_power_w": -5,  # not positive: the default
            "threshold_kettle": 0.7,
            "threshold_fridge": "inf",  # ignored: the card's applies
            "mains_entities": ["sensor.other"],  # the sensors are data only
        },
    )
    assert settings.appliances == ("kettle", "fridge")
    assert settings.backend == "cpu"
    assert settings.max_gap_s == 120.0
    assert settings.max_power_w == 25_000.0
    assert settings.thresholds == {"kettle": 0.7}
    assert settings.threshold("fridge", "kettle") == 0.7
    assert settings.threshold("fridge") is None
    assert settings.sources == MainsSources(
        "import_export", ("sensor.import",), ("sensor.export",), ("sensor.pv",)
    )
    assert settings.sources.unique_id == "sensor.export+sensor.import+sensor.pv"
    assert settings.sources.as_data() == {
        "mains_type": "import_export",
        "mains_entities": ["sensor.import"],
        "export_entities": ["sensor.export"],
        "solar_entities": ["sensor.pv"],
    }


def test_mains_sources_of_older_and_odd_entries() -> None:
    """Entries from before the mains type measure consumption; an unknown type too."""
    old = MainsSources.from_data({"mains_entities": ["sensor.b", "sensor.a"]})
    assert old == MainsSources("consumption", ("sensor.b", "sensor.a"))
    assert old.unique_id == "sensor.a+sensor.b"
    assert old.as_data() == {
        "mains_type": "consumption",
        "mains_entities": ["sensor.b", "sensor.a"],
    }
    odd = MainsSources.from_data({"mains_type": "nonsense", "mains_entities": "sensor.a"})
    assert odd == MainsSources("consumption", ())
    grid = MainsSources("grid", ("sensor.grid",), (), ("sensor.pv",))
    assert grid.as_data() == {
        "mains_type": "grid",
        "mains_entities": ["sensor.grid"],
        "solar_entities": ["sensor.pv"],
    }
    assert NilmSettings.parse({}).appliances == ()
