"""Config and options flows, through the flow manager like the frontend uses them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from homeassistant import config_entries
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import device_registry as dr

from custom_components.nilm.config_flow import check_sources, validate_mains
from custom_components.nilm.const import (
    CONF_ADAPTATION_LABELS,
    CONF_APPLIANCES,
    CONF_BACKEND,
    CONF_MAINS_ENTITIES,
    CONF_MAINS_TYPE,
    CONF_MAX_GAP_S,
    CONF_MAX_POWER_W,
    DOMAIN,
)

from .conftest import MAINS, W_ATTRS, install, make_entry, setup_entry


async def _start(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return str(result["flow_id"])


async def test_user_flow_creates_entry(hass: HomeAssistant, user_models: Path) -> None:
    hass.states.async_set(MAINS, "812.5", W_ATTRS)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {CONF_MAINS_ENTITIES: [MAINS], CONF_APPLIANCES: ["test_kettle"], CONF_BACKEND: "cpu"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Mains power"
    assert result["data"] == {
        CONF_MAINS_TYPE: "consumption",
        CONF_MAINS_ENTITIES: [MAINS],
        CONF_APPLIANCES: ["test_kettle"],
        CONF_BACKEND: "cpu",
    }
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.unique_id == MAINS
    await hass.async_block_till_done()


async def test_user_flow_lists_user_models(hass: HomeAssistant, user_models: Path) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    schema = result["data_schema"].schema
    selector = next(v for k, v in schema.items() if k == CONF_APPLIANCES)
    values = [o["value"] for o in selector.config["options"]]
    assert values == ["test_kettle", "test_microwave"]
    assert "user model" in selector.config["options"][0]["label"]


async def test_two_phase_mains_are_one_entry(hass: HomeAssistant, user_models: Path) -> None:
    hass.states.async_set("sensor.l2", "1.2", {"unit_of_measurement": "kW"})
    hass.states.async_set("sensor.l1", "300", W_ATTRS)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {CONF_MAINS_ENTITIES: ["sensor.l2", "sensor.l1"], CONF_APPLIANCES: ["test_kettle"]},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "sensor.l2 (+1)"
    assert result["data"][CONF_BACKEND] == "auto"
    assert hass.config_entries.async_entries(DOMAIN)[0].unique_id == "sensor.l1+sensor.l2"
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    ("mains", "state", "attrs", "field", "error"),
    [
        (["sensor.nope"], None, None, CONF_MAINS_ENTITIES, "entity_not_found"),
        ([], None, None, CONF_MAINS_ENTITIES, "mains_required"),
        ([MAINS], "abc", W_ATTRS, CONF_MAINS_ENTITIES, "not_numeric"),
        ([MAINS], "nan", W_ATTRS, CONF_MAINS_ENTITIES, "not_numeric"),
        ([MAINS], "unavailable", W_ATTRS, CONF_MAINS_ENTITIES, "not_numeric"),
        ([MAINS], "12", {"unit_of_measurement": "kWh"}, CONF_MAINS_ENTITIES, "invalid_unit"),
        ([MAINS], "12", {}, CONF_MAINS_ENTITIES, "invalid_unit"),
    ],
)
async def test_user_flow_sensor_errors(
    hass: HomeAssistant,
    user_models: Path,
    *,
    mains: list[str],
    state: str | None,
    attrs: dict[str, str] | None,
    field: str,
    error: str,
) -> None:
    if state is not None:
        hass.states.async_set(MAINS, state, attrs)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MAINS_ENTITIES: mains, CONF_APPLIANCES: ["test_kettle"]}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    # The form recovers once the problem is fixed.
    hass.states.async_set(MAINS, "100", W_ATTRS)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MAINS_ENTITIES: [MAINS], CONF_APPLIANCES: ["test_kettle"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


async def test_user_flow_requires_an_appliance(hass: HomeAssistant, user_models: Path) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MAINS_ENTITIES: [MAINS], CONF_APPLIANCES: []}
    )
    assert result["errors"] == {CONF_APPLIANCES: "no_appliances"}


async def test_user_flow_model_removed_while_form_open(
    hass: HomeAssistant, user_models: Path
) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    flow_id = await _start(hass)
    shutil.rmtree(user_models)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MAINS_ENTITIES: [MAINS], CONF_APPLIANCES: ["test_kettle"]}
    )
    assert result["errors"] == {CONF_APPLIANCES: "no_appliances"}


async def test_no_models_and_broken_cards_are_skipped(
    hass: HomeAssistant, user_models: Path
) -> None:
    (user_models / "broken.json").write_text("{not json", encoding="utf-8")
    (user_models / "test_microwave.json").unlink()
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    selector = result["data_schema"].schema[CONF_APPLIANCES]
    assert [o["value"] for o in selector.config["options"]] == ["test_kettle"]


async def test_user_flow_aborts_when_already_configured(
    hass: HomeAssistant, user_models: Path
) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    make_entry().add_to_hass(hass)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MAINS_ENTITIES: [MAINS], CONF_APPLIANCES: ["test_kettle"]}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def _power_only_card(user_models: Path) -> None:
    """A variant of the kettle model without status head, as a fridge model: its
    threshold is in watts."""
    raw = json.loads((user_models / "test_kettle.json").read_text(encoding="utf-8"))
    raw["name"] = "kettle_power_only"
    raw["appliance"] = "fridge"
    raw["status_output"] = None
    (user_models / "kettle_power_only.json").write_text(json.dumps(raw), encoding="utf-8")


async def test_options_flow_changes_and_reloads(hass: HomeAssistant, user_models: Path) -> None:
    _power_only_card(user_models)
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle", "kettle_power_only"]))
    before = entry.runtime_data

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    schema = {str(k): k for k in result["data_schema"].schema}
    # Thresholds are keyed by appliance: every field has a translated label.
    kettle = json.loads((user_models / "test_kettle.json").read_text(encoding="utf-8"))
    assert schema["threshold_kettle"].default() == kettle["status"]["probability_threshold"]
    assert schema["threshold_fridge"].default() == 500.0
    assert schema[CONF_MAX_GAP_S].default() == 300.0

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_APPLIANCES: [],
            CONF_BACKEND: "cpu",
            CONF_MAX_GAP_S: 120,
            "threshold_kettle": 0.7,
            "threshold_fridge": 800,
        },
    )
    assert result["errors"] == {CONF_APPLIANCES: "no_appliances"}

    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_APPLIANCES: ["test_kettle", "kettle_power_only"],
            CONF_BACKEND: "cpu",
            CONF_MAX_GAP_S: 120,
            "threshold_kettle": 0.7,
            "threshold_fridge": 800,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options == {
        CONF_APPLIANCES: ["test_kettle", "kettle_power_only"],
        CONF_BACKEND: "cpu",
        CONF_MAX_GAP_S: 120.0,
        CONF_MAX_POWER_W: 25000.0,
        "threshold_kettle": 0.7,
        "threshold_fridge": 800.0,
    }
    # Saving reloaded the entry with the new settings applied to the models.
    after = entry.runtime_data
    assert after is not before
    runtimes = after.coordinator.appliances
    assert runtimes["test_kettle"].model.card.status.probability_threshold == 0.7
    assert runtimes["kettle_power_only"].model.card.status.on_power_threshold_w == 800.0
    assert after.coordinator.max_gap_s == 120.0

    # Dropping an appliance drops its threshold. A vanished model has no threshold field
    # but stays selected (see test_options_keep_an_appliance_whose_card_is_broken) until
    # the user deselects it.
    (user_models / "kettle_power_only.json").unlink()
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = {str(k): k for k in result["data_schema"].schema}
    assert "threshold_fridge" not in schema
    assert schema[CONF_APPLIANCES].default() == ["test_kettle", "kettle_power_only"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_APPLIANCES: ["test_microwave"],
            CONF_BACKEND: "auto",
            CONF_MAX_GAP_S: 300,
            CONF_MAX_POWER_W: 12000,
            "threshold_kettle": 0.7,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_APPLIANCES: ["test_microwave"],
        CONF_BACKEND: "auto",
        CONF_MAX_GAP_S: 300.0,
        CONF_MAX_POWER_W: 12000.0,
    }
    await hass.async_block_till_done()


# --- hardening: duplicate mains, non-finite numbers, appliances never dropped silently ----


async def test_the_same_mains_sensor_twice_is_refused(
    hass: HomeAssistant, user_models: Path
) -> None:
    """Entered twice it would be summed twice (double the power and energy)."""
    hass.states.async_set(MAINS, "100", W_ATTRS)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MAINS_ENTITIES: [MAINS, MAINS], CONF_APPLIANCES: ["test_kettle"]}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_MAINS_ENTITIES: "duplicate_entity"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_MAINS_ENTITIES: [MAINS], CONF_APPLIANCES: ["test_kettle"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


def _options_input(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        CONF_APPLIANCES: ["test_kettle", "kettle_power_only"],
        CONF_BACKEND: "cpu",
        CONF_MAX_GAP_S: 120,
        "threshold_kettle": 0.7,
        "threshold_fridge": 800,
    }  # max_power_w: its default fills in
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    "field",
    [CONF_MAX_GAP_S, CONF_MAX_POWER_W, "threshold_kettle", "threshold_fridge"],
)
@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "infinity"])
async def test_options_refuse_non_finite_numbers(
    hass: HomeAssistant, user_models: Path, field: str, text: str
) -> None:
    """ "nan" passes a number selector's min/max (every comparison with NaN is false):
    as max_gap_s the entry then failed setup forever, as a threshold the appliance could
    never turn on. Every number field refuses it; nothing is saved."""
    _power_only_card(user_models)
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle", "kettle_power_only"]))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    flow_id = result["flow_id"]
    if "inf" in text.lower():
        # An infinity is above the selector's maximum (or below its minimum): refused
        # by the schema itself, or by the form's own check.
        try:
            result = await hass.config_entries.options.async_configure(
                flow_id, _options_input(**{field: text})
            )
        except InvalidData as err:
            assert field in str(err.path) or field in str(err.schema_errors), err
        else:
            assert result["errors"] == {field: "not_a_number"}
    else:
        # NaN passes every min/max comparison: only the form's check stops it.
        result = await hass.config_entries.options.async_configure(
            flow_id, _options_input(**{field: text})
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {field: "not_a_number"}
    assert entry.options == {}
    await hass.async_block_till_done()


async def test_options_keep_an_appliance_whose_card_is_broken(
    hass: HomeAssistant, user_models: Path
) -> None:
    """Saving the options while one card is temporarily unreadable (a half-copied or
    hand-edited file) must not delete that appliance, its threshold and its device."""
    _power_only_card(user_models)
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(
        hass,
        make_entry(
            ["test_kettle", "test_microwave"],
            options={
                CONF_APPLIANCES: ["test_kettle", "test_microwave"],
                CONF_BACKEND: "cpu",
                CONF_MAX_GAP_S: 300.0,
                "threshold_test_microwave": 0.8,
            },
        ),
    )
    card = user_models / "test_microwave.json"
    good = card.read_text(encoding="utf-8")
    card.write_text(good[: len(good) // 2], encoding="utf-8")  # mid-copy

    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = {str(k): k for k in result["data_schema"].schema}
    assert schema[CONF_APPLIANCES].default() == ["test_kettle", "test_microwave"]
    selector = result["data_schema"].schema[schema[CONF_APPLIANCES]]
    assert "test_microwave" in [o["value"] for o in selector.config["options"]]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_APPLIANCES: ["test_kettle", "test_microwave"],
            CONF_BACKEND: "cpu",
            CONF_MAX_GAP_S: 300,
            "threshold_kettle": 0.6,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_APPLIANCES] == ["test_kettle", "test_microwave"]
    assert entry.options["threshold_test_microwave"] == 0.8
    devices = {
        d.name for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }
    assert "Microwave" in devices

    # Once the file is whole again, the appliance is back without touching the options.
    card.write_text(good, encoding="utf-8")
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert set(entry.runtime_data.coordinator.appliances) == {"test_kettle", "test_microwave"}


# --- solar and export, own sensors, precise errors, appliances by default ----------------

EN = json.loads(
    (Path(__file__).parents[3] / "custom_components/nilm/translations/en.json").read_text("utf-8")
)


async def _submit(hass: HomeAssistant, user_input: dict[str, object]) -> dict[str, object]:
    flow_id = await _start(hass)
    return dict(await hass.config_entries.flow.async_configure(flow_id, user_input))


async def test_signed_grid_phases_and_solar_create_an_entry(
    hass: HomeAssistant, user_models: Path
) -> None:
    """A sunny moment: both grid phases export (negative), which is fine for a grid."""
    hass.states.async_set("sensor.grid_l1", "-1800", {**W_ATTRS, "friendly_name": "Grid L1"})
    hass.states.async_set("sensor.grid_l2", "-0.2", {"unit_of_measurement": "kW"})
    hass.states.async_set("sensor.pv", "2600", W_ATTRS)
    result = await _submit(
        hass,
        {
            CONF_MAINS_TYPE: "grid",
            CONF_MAINS_ENTITIES: ["sensor.grid_l1", "sensor.grid_l2"],
            "solar_entities": ["sensor.pv"],
            CONF_APPLIANCES: ["test_kettle"],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Grid L1 (+1)"
    assert result["data"] == {
        CONF_MAINS_TYPE: "grid",
        CONF_MAINS_ENTITIES: ["sensor.grid_l1", "sensor.grid_l2"],
        "solar_entities": ["sensor.pv"],
        CONF_APPLIANCES: ["test_kettle"],
        CONF_BACKEND: "auto",
    }
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert entry.unique_id == "sensor.grid_l1+sensor.grid_l2+sensor.pv"
    assert (entry.version, entry.minor_version) == (1, 2)
    await hass.async_block_till_done()


async def test_import_and_export_sensors_create_an_entry(
    hass: HomeAssistant, user_models: Path
) -> None:
    for entity_id, value in (("sensor.in", "0"), ("sensor.out", "1500"), ("sensor.pv", "-3")):
        hass.states.async_set(entity_id, value, W_ATTRS)  # an inverter's standby: -3 W
    base = {
        CONF_MAINS_TYPE: "import_export",
        CONF_MAINS_ENTITIES: ["sensor.in"],
        CONF_APPLIANCES: ["test_kettle"],
    }
    result = await _submit(hass, base)
    assert result["errors"] == {"export_entities": "export_required"}
    result = await _submit(
        hass, {**base, "export_entities": ["sensor.out"], "solar_entities": ["sensor.pv"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["export_entities"] == ["sensor.out"]
    assert result["data"]["solar_entities"] == ["sensor.pv"]
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    ("user_input", "field", "error", "sensor"),
    [
        # A grid sensor exporting, set up as consumption: the flow says what it is.
        (
            {CONF_MAINS_ENTITIES: ["sensor.grid"]},
            CONF_MAINS_ENTITIES,
            "negative_consumption",
            "sensor.grid",
        ),
        (
            {CONF_MAINS_ENTITIES: [MAINS], "solar_entities": ["sensor.pv"]},
            "solar_entities",
            "only_for_grid",
            "sensor.pv",
        ),
        (
            {
                CONF_MAINS_TYPE: "grid",
                CONF_MAINS_ENTITIES: ["sensor.grid"],
                "export_entities": ["sensor.pv"],
            },
            "export_entities",
            "export_with_signed_grid",
            "sensor.pv",
        ),
        (
            {
                CONF_MAINS_TYPE: "import_export",
                CONF_MAINS_ENTITIES: ["sensor.grid"],
                "export_entities": [MAINS],
            },
            CONF_MAINS_ENTITIES,
            "negative_reading",
            "sensor.grid",
        ),
        (
            {
                CONF_MAINS_TYPE: "grid",
                CONF_MAINS_ENTITIES: ["sensor.grid"],
                "solar_entities": ["sensor.grid"],
            },
            "solar_entities",
            "duplicate_entity",
            "sensor.grid",
        ),
        (
            {CONF_MAINS_ENTITIES: ["sensor.nope"]},
            CONF_MAINS_ENTITIES,
            "entity_not_found",
            "sensor.nope",
        ),
        ({}, CONF_MAINS_ENTITIES, "mains_required", ""),  # submitting nothing
    ],
)
async def test_precise_errors_name_the_field_and_the_sensor(
    hass: HomeAssistant,
    user_models: Path,
    *,
    user_input: dict[str, object],
    field: str,
    error: str,
    sensor: str,
) -> None:
    hass.states.async_set(MAINS, "300", W_ATTRS)
    hass.states.async_set("sensor.grid", "-1200", W_ATTRS)
    hass.states.async_set("sensor.pv", "1500", W_ATTRS)
    result = await _submit(hass, user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    placeholders = result["description_placeholders"]
    assert isinstance(placeholders, dict)
    assert placeholders["sensor"] == sensor
    text = EN["config"]["error"][error].format(**placeholders)
    assert (sensor in text) if sensor else ("{" not in text)


async def test_nilm_sensors_are_neither_offered_nor_accepted_as_mains(
    hass: HomeAssistant, user_models: Path
) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    await setup_entry(hass, make_entry(["test_kettle"]))
    ours = [s.entity_id for s in hass.states.async_all("sensor") if s.entity_id != MAINS]
    assert "sensor.nilm_untracked_power" in ours
    assert "sensor.kettle_power" in ours
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    schema = result["data_schema"].schema
    for key in (CONF_MAINS_ENTITIES, "export_entities", "solar_entities"):
        picker = next(v for k, v in schema.items() if k == key)
        assert set(picker.config["exclude_entities"]) >= set(ours), key
        assert picker.config["device_class"] == ["power"]
    assert validate_mains(hass, ["sensor.kettle_power"]) == "own_entity"
    hass.states.async_set("sensor.grid", "-500", W_ATTRS)
    problem = check_sources(hass, "grid", ["sensor.grid"], [], ["sensor.nilm_untracked_power"])
    assert problem is not None
    assert problem[1] == "own_entity"
    # Posted anyway (the API, not the picker): the selector's own check refuses it.
    with pytest.raises(InvalidData, match="mains_entities"):
        await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                CONF_MAINS_ENTITIES: ["sensor.nilm_untracked_power"],
                CONF_APPLIANCES: ["test_kettle"],
            },
        )


async def test_every_offered_appliance_is_ticked_once(
    hass: HomeAssistant, user_models: Path, no_bundled_models: Path
) -> None:
    """Bundled kettle and microwave, the user's own kettle: the user's replaces the
    bundled one, and every appliance starts ticked."""
    install(no_bundled_models, "kettle", "test_kettle")
    install(no_bundled_models, "dishwasher", "test_microwave", appliance="dishwasher")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    schema = {str(k): k for k in result["data_schema"].schema}
    selector = result["data_schema"].schema[schema[CONF_APPLIANCES]]
    values = [o["value"] for o in selector.config["options"]]
    assert values == ["dishwasher", "test_kettle", "test_microwave"]  # no bundled kettle
    assert schema[CONF_APPLIANCES].default() == values
    labels = [o["label"] for o in selector.config["options"]]
    assert labels == [
        "Dishwasher (dishwasher)",
        "Kettle (test_kettle, user model)",
        "Microwave (test_microwave, user model)",
    ]
    assert schema[CONF_MAINS_TYPE].default() == "consumption"


async def test_two_models_of_one_appliance_are_refused(
    hass: HomeAssistant, user_models: Path
) -> None:
    install(user_models, "my_kettle", "test_kettle")
    hass.states.async_set(MAINS, "100", W_ATTRS)
    result = await _submit(
        hass, {CONF_MAINS_ENTITIES: [MAINS], CONF_APPLIANCES: ["my_kettle", "test_kettle"]}
    )
    assert result["errors"] == {CONF_APPLIANCES: "duplicate_appliance"}
    placeholders = result["description_placeholders"]
    assert isinstance(placeholders, dict)
    assert (
        EN["config"]["error"]["duplicate_appliance"]
        .format(**placeholders)
        .startswith("Two models for the Kettle")
    )
    # The options flow refuses it too.
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    values = {"backend": "cpu", CONF_MAX_GAP_S: 300, "threshold_kettle": 0.5}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_APPLIANCES: ["my_kettle", "test_kettle"], **values}
    )
    assert result["errors"] == {CONF_APPLIANCES: "duplicate_appliance"}
    assert result["description_placeholders"] == {"appliance": "Kettle"}


async def test_options_run_the_users_model_in_the_bundled_ones_place(
    hass: HomeAssistant, user_models: Path, no_bundled_models: Path
) -> None:
    """An entry made with the bundled kettle; then the user adds a kettle model of their
    own: the options show one kettle (the configured one, now running the user's model),
    its threshold under a translated label, never "threshold_my_kettle"."""
    install(no_bundled_models, "kettle", "test_kettle")
    for suffix in (".tflite", ".json"):
        (user_models / f"test_kettle{suffix}").unlink()
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["kettle"]))
    assert entry.runtime_data.coordinator.appliances["kettle"].model.card.name == "kettle"
    install(user_models, "my_kettle", "test_kettle")
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = {str(k): k for k in result["data_schema"].schema}
    selector = result["data_schema"].schema[schema[CONF_APPLIANCES]]
    options = {o["value"]: o["label"] for o in selector.config["options"]}
    assert options == {
        "kettle": "Kettle (my_kettle, user model)",
        "test_microwave": "Microwave (test_microwave, user model)",
    }
    assert "threshold_kettle" in schema
    assert not [k for k in schema if k.startswith("threshold_") and k != "threshold_kettle"]
    labels = EN["options"]["step"]["init"]["data"]
    assert "threshold_kettle" in labels


def test_every_appliance_has_a_translated_threshold_label() -> None:
    """The five bundled appliances and whatever the bundled folder holds."""
    appliances = {"kettle", "microwave", "dishwasher", "washing_machine", "fridge"}
    bundled = Path(__file__).parents[3] / "custom_components" / "nilm" / "models"
    for card in bundled.glob("*.json"):
        appliances.add(json.loads(card.read_text(encoding="utf-8"))["appliance"])
    labels = EN["options"]["step"]["init"]["data"]
    for appliance in appliances:
        assert f"threshold_{appliance}" in labels, appliance


async def test_probability_threshold_default_is_below_the_maximum(
    hass: HomeAssistant, user_models: Path
) -> None:
    path = user_models / "test_kettle.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["status"]["probability_threshold"] = 0.95
    path.write_text(json.dumps(raw), encoding="utf-8")
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = {str(k): (k, v) for k, v in result["data_schema"].schema.items()}
    key, number = schema["threshold_kettle"]
    assert key.default() == 0.95
    assert number.config["min"] <= 0.05
    assert number.config["max"] > 0.95


def test_every_form_error_is_translated_with_known_placeholders() -> None:
    source = (Path(__file__).parents[3] / "custom_components/nilm/config_flow.py").read_text(
        encoding="utf-8"
    )
    keys = set(re.findall(r'ERROR_[A-Z_]+ = "([a-z_]+)"', source))
    keys |= set(re.findall(r'"(entity_not_found|not_numeric|invalid_unit|no_appliances)"', source))
    for section, allowed in (
        ("config", {"sensor", "appliance", "folder"}),
        ("options", {"appliance", "sensor"}),
    ):
        errors = EN[section]["error"]
        for key, text in errors.items():
            assert set(re.findall(r"{(\w+)}", text)) <= allowed, (section, key)
    labels = {"label_invalid_unit", "label_is_mains"}  # options only
    assert keys - {"not_a_number"} - labels <= set(EN["config"]["error"])
    assert labels <= set(EN["options"]["error"])
    assert {"no_appliances", "duplicate_appliance", "not_a_number"} <= set(EN["options"]["error"])
    selector_options = EN["selector"]["mains_type"]["options"]
    assert set(selector_options) == {"consumption", "grid", "import_export"}


async def test_an_appliance_that_lost_to_the_rule_starts_unticked(
    hass: HomeAssistant, no_bundled_models: Path
) -> None:
    """The card records the unseen house's F1 of the model and of the rule baseline: a
    model that lost is offered but not ticked (the user can still choose it)."""
    install(no_bundled_models, "kettle", "test_kettle")
    install(no_bundled_models, "microwave", "test_microwave")
    for name, model_f1 in (("kettle", 0.85), ("microwave", 0.17)):
        path = no_bundled_models / f"{name}.json"
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["metrics"] = {"test_house_20": {"f1": model_f1}, "rule_house_20": {"f1": 0.23}}
        path.write_text(json.dumps(raw), encoding="utf-8")
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    schema = {str(k): k for k in result["data_schema"].schema}
    selector = result["data_schema"].schema[schema[CONF_APPLIANCES]]
    assert [o["value"] for o in selector.config["options"]] == ["kettle", "microwave"]
    assert schema[CONF_APPLIANCES].default() == ["kettle"]


async def test_options_choose_an_adaptation_label(
    hass: HomeAssistant, bundled_kettle: Path, user_models: Path
) -> None:
    """A label field for the bundled kettle (its card names a head), none for the test
    microwave (no head); the choice lands in ``adaptation_labels``, clearing it drops it."""
    for suffix in (".tflite", ".json"):
        (user_models / f"test_kettle{suffix}").unlink()  # else it replaces the bundled kettle
    plug = "sensor.kettle_plug"
    hass.states.async_set(MAINS, "100", W_ATTRS)
    hass.states.async_set(plug, "0", {"unit_of_measurement": "W", "device_class": "power"})
    hass.states.async_set("sensor.kettle_plug_kwh", "1", {"unit_of_measurement": "kWh"})
    entry = await setup_entry(hass, make_entry(["kettle", "test_microwave"]))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = {str(k): (k, v) for k, v in result["data_schema"].schema.items()}
    assert "label_kettle" in schema
    assert "label_microwave" not in schema
    label_filter = schema["label_kettle"][1].config["filter"]
    assert {"domain": ["sensor"], "device_class": ["power"]} in label_filter
    assert EN["options"]["step"]["init"]["data"]["label_kettle"]
    values = {
        CONF_APPLIANCES: ["kettle", "test_microwave"],
        "backend": "cpu",
        CONF_MAX_GAP_S: 300,
        "threshold_kettle": 0.98,
        "threshold_microwave": 0.5,
    }
    for bad, error in ((MAINS, "label_is_mains"), ("sensor.kettle_plug_kwh", "label_invalid_unit")):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {**values, "label_kettle": bad}
        )
        assert result["errors"] == {"label_kettle": error}
        assert EN["options"]["error"][error].format(**result["description_placeholders"])
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**values, "label_kettle": plug}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_ADAPTATION_LABELS] == {"kettle": plug}
    await hass.async_block_till_done()
    assert entry.runtime_data.settings.label("kettle") == plug
    # The field suggests the saved label; leaving it empty removes it.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    key = next(k for k in result["data_schema"].schema if str(k) == "label_kettle")
    assert key.description == {"suggested_value": plug}
    result = await hass.config_entries.options.async_configure(result["flow_id"], values)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_ADAPTATION_LABELS not in entry.options
