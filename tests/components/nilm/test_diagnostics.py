"""Diagnostics: the model facts per appliance, the mains type, per-device downloads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.nilm.const import DOMAIN

from .conftest import MAINS, W_ATTRS, make_entry, setup_entry
from .test_facts import METRICS, TRAINING


async def test_diagnostics_hold_the_model_facts(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, user_models: Path
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    path = user_models / "test_kettle.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(training=TRAINING, metrics=METRICS)
    path.write_text(json.dumps(raw), encoding="utf-8")
    for entity_id in ("sensor.grid", "sensor.pv"):
        hass.states.async_set(entity_id, "-300", {"unit_of_measurement": "W"})
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Grid",
        unique_id="sensor.grid+sensor.pv",
        version=1,
        minor_version=2,
        data={
            "mains_type": "grid",
            "mains_entities": ["sensor.grid"],
            "solar_entities": ["sensor.pv"],
            "appliances": ["test_kettle", "test_microwave"],
            "backend": "cpu",
        },
    )
    await setup_entry(hass, entry)
    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert "sensor.grid" not in json.dumps(diag)
    assert "sensor.pv" not in json.dumps(diag)
    assert diag["mains_type"] == "grid"
    assert diag["mains_sensors"] == 2
    runtime = diag["runtime"]
    assert runtime["mains_sensors_by_role"] == {"grid": 1, "solar": 1}
    assert runtime["status"] == "waiting_for_mains"  # -300 + -300 W is no consumption
    facts = runtime["appliances"]["test_kettle"]["model_facts"]
    assert facts["test_f1"] == 0.812
    assert facts["validated_on"] == ["REFIT house 5"]
    assert facts["backend"] in ("litert", "numpy")
    assert "test_f1" not in runtime["appliances"]["test_microwave"]["model_facts"]

    # The kettle device's own download: its model's facts and live state.
    device = dr.async_get(hass).async_get_device(
        identifiers={(DOMAIN, f"{entry.entry_id}_test_kettle")}
    )
    assert device is not None
    kettle = await get_diagnostics_for_device(hass, hass_client, entry, device)
    assert kettle["appliance"] == "test_kettle"
    assert kettle["model_facts"] == facts
    assert kettle["runtime"]["available"] is False
    assert kettle["status"] == "waiting_for_mains"
    nilm = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, entry.entry_id)})
    assert nilm is not None
    whole = await get_diagnostics_for_device(hass, hass_client, entry, nilm)
    assert set(whole["runtime"]["appliances"]) == {"test_kettle", "test_microwave"}


async def test_diagnostics_redacts_and_reports(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, user_models: Path
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    # A file that matches its card's hash but is not a valid model (format error).
    (user_models / "test_microwave.tflite").write_bytes(b"not a model")
    card = json.loads((user_models / "test_microwave.json").read_text(encoding="utf-8"))
    card["tflite_sha256"] = hashlib.sha256(b"not a model").hexdigest()
    (user_models / "test_microwave.json").write_text(json.dumps(card), encoding="utf-8")
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diag["entry"]["data"]["mains_entities"] == "**REDACTED**"
    assert diag["entry"]["title"] == "**REDACTED**"
    assert MAINS not in str(diag)
    assert diag["backend_setting"] == "cpu"
    assert diag["failed_models"]["test_microwave"]["reason"] == "model_corrupt"
    runtime = diag["runtime"]
    kettle = runtime["appliances"]["test_kettle"]
    assert kettle["card"]["name"] == "test_kettle"
    assert kettle["card"]["window_length"] == 99
    assert kettle["backend"] in ("litert", "numpy")
    assert kettle["latency_ms"] == {"count": 0}
    assert kettle["window_valid"] is False
    assert runtime["resamplers"]["30.0"]["buffer_fill"] == 0.0
    assert runtime["last_errors"] == []
    assert diag["models_found"]["test_kettle"] == {"user": True, "appliance": "kettle"}


async def test_diagnostics_show_no_absolute_config_paths(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, user_models: Path
) -> None:
    assert await async_setup_component(hass, "diagnostics", {})
    (user_models / "test_microwave.tflite").unlink()  # the OSError quotes the full path
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    assert hass.config.config_dir in entry.runtime_data.failures["test_microwave"].message
    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    message = diag["failed_models"]["test_microwave"]["message"]
    assert "nilm/models/test_microwave.tflite" in message
    assert hass.config.config_dir not in json.dumps(diag)


async def test_diagnostics_hold_each_appliance_adaptation(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, bundled_kettle: Path
) -> None:
    """The adaptation's state and fit numbers, the label entity redacted."""
    from .test_adaptation import PLUG, PLUG_ATTRS, kettle_entry, write_adapter

    assert await async_setup_component(hass, "diagnostics", {})
    write_adapter(hass, label_entity=PLUG, runs_fit=12)
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert PLUG not in json.dumps(diag)
    kettle = diag["adaptation"]["kettle"]
    assert kettle["state"] == "adopted"
    assert kettle["runs_fit"] == 12
    assert kettle["f1_after"] == 0.9
    assert kettle["label_entity"] == "**REDACTED**"
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, f"{entry.entry_id}_kettle")})
    assert device is not None
    own = await get_diagnostics_for_device(hass, hass_client, entry, device)
    assert own["adaptation"] == kettle
