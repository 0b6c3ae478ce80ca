"""Setup, unload, reload, registries, repair issues and diagnostics."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tflite
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.nilm import models as nilm_models
from custom_components.nilm.const import DOMAIN
from custom_components.nilm.engine import backends
from tests.engine.tflite_builder import CodeSpec, build, dense_model

from .conftest import FIXTURE_MODELS, MAINS, W_ATTRS, make_entry, setup_entry

KEYS = {"sensor": ("power", "energy", "energy_today", "model"), "binary_sensor": ("running",)}


async def test_setup_creates_devices_and_entities(hass: HomeAssistant, user_models: Path) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    assert entry.state is ConfigEntryState.LOADED

    ent_reg = er.async_get(hass)
    entities = er.async_entries_for_config_entry(ent_reg, entry.entry_id)
    assert {e.unique_id for e in entities} == {
        f"{entry.entry_id}_{name}_{key}"
        for name in ("test_kettle", "test_microwave")
        for keys in KEYS.values()
        for key in keys
    } | {f"{entry.entry_id}_untracked_power", f"{entry.entry_id}_status"}
    assert all(e.platform == DOMAIN for e in entities)

    dev_reg = dr.async_get(hass)
    devices = {d.name: d for d in dr.async_entries_for_config_entry(dev_reg, entry.entry_id)}
    assert set(devices) == {"Kettle", "Microwave", "NILM"}
    assert devices["Kettle"].model_id == "test_kettle"
    assert devices["Kettle"].via_device_id == devices["NILM"].id
    assert devices["NILM"].entry_type is dr.DeviceEntryType.SERVICE

    power = ent_reg.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_test_kettle_power")
    assert power is not None
    state = hass.states.get(power)
    assert state is not None
    # No full window of real data yet: unavailable, not a guess.
    assert state.state == STATE_UNAVAILABLE
    assert state.attributes["unit_of_measurement"] == "W"
    assert state.attributes["device_class"] == "power"
    assert state.attributes["state_class"] == "measurement"
    assert state.name == "Kettle Power"
    energy = ent_reg.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_test_kettle_energy")
    assert energy is not None
    energy_state = hass.states.get(energy)
    assert energy_state is not None
    assert energy_state.attributes["state_class"] == "total_increasing"
    assert energy_state.attributes["device_class"] == "energy"
    running = ent_reg.async_get_entity_id(
        "binary_sensor", DOMAIN, f"{entry.entry_id}_test_kettle_running"
    )
    assert running is not None
    running_state = hass.states.get(running)
    assert running_state is not None
    assert running_state.attributes["device_class"] == "running"


async def test_unload_and_reload(hass: HomeAssistant, user_models: Path) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    first = entry.runtime_data.coordinator

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.coordinator is not first

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    # Unloading unsubscribed from the sensor: further updates are not processed.
    hass.states.async_set(MAINS, "200", W_ATTRS)
    await hass.async_block_till_done()
    assert first.resamplers[30.0].newest_slot is None


async def test_corrupt_model_raises_repair_and_others_keep_working(
    hass: HomeAssistant, user_models: Path
) -> None:
    data = bytearray((user_models / "test_microwave.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the card's sha256 no longer matches
    (user_models / "test_microwave.tflite").write_bytes(bytes(data))
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())

    issue_reg = ir.async_get(hass)
    issue = issue_reg.async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave")
    assert issue is not None
    assert issue.translation_key == "model_corrupt"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert "sha256" in (issue.translation_placeholders or {})["error"]
    assert issue_reg.async_get_issue(DOMAIN, f"{entry.entry_id}_test_kettle") is None

    # The kettle is still tracked; the broken model has no entities at all.
    ent_reg = er.async_get(hass)
    uids = {e.unique_id for e in er.async_entries_for_config_entry(ent_reg, entry.entry_id)}
    assert f"{entry.entry_id}_test_kettle_power" in uids
    assert not any("test_microwave" in uid for uid in uids)
    assert list(entry.runtime_data.coordinator.appliances) == ["test_kettle"]

    # Replacing the file and reloading clears the issue.
    (user_models / "test_microwave.tflite").write_bytes(
        (Path(__file__).parent / "fixtures" / "models" / "test_microwave.tflite").read_bytes()
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_reg.async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave") is None
    assert set(entry.runtime_data.coordinator.appliances) == {"test_kettle", "test_microwave"}


async def test_missing_model_files_raise_repairs(hass: HomeAssistant, user_models: Path) -> None:
    (user_models / "test_microwave.tflite").unlink()
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle", "test_microwave", "fridge_x"]))
    issue_reg = ir.async_get(hass)
    for name in ("test_microwave", "fridge_x"):
        issue = issue_reg.async_get_issue(DOMAIN, f"{entry.entry_id}_{name}")
        assert issue is not None
        assert issue.translation_key == "model_missing"
        assert (issue.translation_placeholders or {})["model"] == name
    assert list(entry.runtime_data.coordinator.appliances) == ["test_kettle"]

    # Removing the entry removes its issues.
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not [i for (d, i) in issue_reg.issues if d == DOMAIN]


async def test_missing_coral_falls_back_to_cpu_with_a_repair(
    hass: HomeAssistant, user_models: Path
) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle"], backend="coral"))
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_kettle")
    assert issue is not None
    assert issue.translation_key == "backend_unavailable"
    assert issue.severity is ir.IssueSeverity.WARNING  # the model runs, on the CPU
    runtime = entry.runtime_data.coordinator.appliances["test_kettle"]
    assert runtime.model.backend.name in ("litert", "numpy")


def _install_edgetpu_build(user_models: Path, name: str, model: bytes) -> None:
    """``<name>_edgetpu.tflite`` and its card (same model name), as export writes them."""
    tflite = user_models / f"{name}_edgetpu.tflite"
    tflite.write_bytes(model)
    card = json.loads((FIXTURE_MODELS / f"{name}.json").read_text(encoding="utf-8"))
    card["tflite_file"] = tflite.name
    card["tflite_sha256"] = hashlib.sha256(model).hexdigest()
    card["quantization"] = "w8_a8"
    (user_models / f"{name}_edgetpu.json").write_text(json.dumps(card), encoding="utf-8")


async def _kettle_entry(
    hass: HomeAssistant, backend: str
) -> tuple[MockConfigEntry, ir.IssueEntry | None]:
    """Set up an entry tracking test_kettle; return it with the kettle's repair issue."""
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle"], backend=backend))
    return entry, ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_kettle")


def _compiled_model() -> bytes:
    """A model whose work is one ``edgetpu-custom-op``: only the Coral can run it."""
    return build(
        dense_model(code=CodeSpec(tflite.BuiltinOperator.CUSTOM, 1, custom="edgetpu-custom-op"))
    )


async def test_edgetpu_model_without_a_coral_runs_its_cpu_sibling(
    hass: HomeAssistant, user_models: Path
) -> None:
    """No libedgetpu here: the compiled model cannot run, its same-name CPU model does."""
    _install_edgetpu_build(user_models, "test_kettle", _compiled_model())
    entry, issue = await _kettle_entry(hass, "coral")
    assert issue is not None
    assert issue.translation_key == "backend_unavailable"
    assert "libedgetpu" in (issue.translation_placeholders or {})["error"]
    runtime = entry.runtime_data.coordinator.appliances["test_kettle"]
    assert runtime.model.backend.name in ("litert", "numpy")
    assert runtime.model.card.tflite_file == "test_kettle.tflite"


async def test_cpu_backend_ignores_an_edgetpu_build(hass: HomeAssistant, user_models: Path) -> None:
    _install_edgetpu_build(user_models, "test_kettle", _compiled_model())
    entry, issue = await _kettle_entry(hass, "cpu")
    assert issue is None
    runtime = entry.runtime_data.coordinator.appliances["test_kettle"]
    assert runtime.model.card.tflite_file == "test_kettle.tflite"


async def test_edgetpu_build_alone_says_no_cpu_model(
    hass: HomeAssistant, user_models: Path
) -> None:
    _install_edgetpu_build(user_models, "test_kettle", _compiled_model())
    for suffix in (".tflite", ".json"):
        (user_models / f"test_kettle{suffix}").unlink()
    entry, issue = await _kettle_entry(hass, "auto")
    assert issue is not None
    assert issue.translation_key == "backend_unavailable"
    assert "no CPU model named test_kettle" in (issue.translation_placeholders or {})["error"]
    assert issue.severity is ir.IssueSeverity.ERROR  # nothing runs for the kettle
    assert entry.runtime_data.coordinator.appliances == {}


async def test_edgetpu_build_runs_on_the_coral_when_the_delegate_loads(
    hass: HomeAssistant, user_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in delegate (no Coral here): the compiled file is the one chosen."""
    real = backends.litert_module()
    assert real is not None

    def interpreter(**kwargs: Any) -> Any:
        kwargs.pop("experimental_delegates", None)  # the stand-in cannot really run
        return real.Interpreter(**kwargs)

    fake = SimpleNamespace(
        Interpreter=interpreter,
        OpResolverType=real.OpResolverType,
        load_delegate=lambda lib: object(),
    )
    monkeypatch.setattr(backends, "litert_module", lambda: fake)
    monkeypatch.setattr(backends, "edgetpu_library_loader", lambda name: None)
    # A vetting child cannot see the stand-in delegate: let the model pass.
    monkeypatch.setattr(backends, "_vetted", {})
    monkeypatch.setattr(backends, "vet_model", lambda path, mode: None)
    # The CPU model's bytes under the compiled name, so the stand-in can run it.
    _install_edgetpu_build(
        user_models, "test_kettle", (FIXTURE_MODELS / "test_kettle.tflite").read_bytes()
    )
    entry, issue = await _kettle_entry(hass, "coral")
    assert issue is None
    runtime = entry.runtime_data.coordinator.appliances["test_kettle"]
    assert runtime.model.backend.name == "edgetpu"
    assert runtime.model.card.tflite_file == "test_kettle_edgetpu.tflite"


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


async def test_unsupported_op_raises_repair_on_the_numpy_engine(
    hass: HomeAssistant, user_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(nilm_models.ENGINE_PREFERENCES, "cpu", ("numpy",))
    shutil.copy(FIXTURE_MODELS / "test_unsupported_op.tflite", user_models)
    # A kettle model too: as another appliance, so it is not skipped as a second kettle.
    card = _card_json("test_unsupported_op", appliance="fridge")
    _edit_card(user_models, "test_unsupported_op", card)
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle", "test_unsupported_op"]))
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_unsupported_op")
    assert issue is not None
    assert issue.translation_key == "model_unsupported"
    assert "CUMSUM" in (issue.translation_placeholders or {})["error"]
    assert list(entry.runtime_data.coordinator.appliances) == ["test_kettle"]


async def test_no_usable_backend_at_all(
    hass: HomeAssistant, user_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(nilm_models.ENGINE_PREFERENCES, "cpu", ("edgetpu",))
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry(["test_kettle"], backend="coral"))
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_kettle")
    assert issue is not None
    assert issue.translation_key == "backend_unavailable"
    assert entry.runtime_data.coordinator.appliances == {}
    # The entry stays loaded (the repair issue says why nothing is tracked).
    assert entry.state is ConfigEntryState.LOADED


async def test_options_removing_an_appliance_removes_its_device(
    hass: HomeAssistant, user_models: Path
) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    dev_reg = dr.async_get(hass)
    assert len(dr.async_entries_for_config_entry(dev_reg, entry.entry_id)) == 3
    hass.config_entries.async_update_entry(
        entry, options={"appliances": ["test_kettle"], "backend": "cpu", "max_gap_s": 300.0}
    )
    await hass.async_block_till_done()
    names = {d.name for d in dr.async_entries_for_config_entry(dev_reg, entry.entry_id)}
    assert names == {"Kettle", "NILM"}
    ent_reg = er.async_get(hass)
    uids = {e.unique_id for e in er.async_entries_for_config_entry(ent_reg, entry.entry_id)}
    assert not any("test_microwave" in uid for uid in uids)


# --- hardening: every load failure is a repair naming its reason -------------------------


def _edit_card(user_models: Path, name: str, text: str | bytes) -> None:
    path = user_models / f"{name}.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


def _card_json(name: str, **overrides: Any) -> str:
    raw = json.loads((FIXTURE_MODELS / f"{name}.json").read_text(encoding="utf-8"))
    raw.update(overrides)
    return json.dumps(raw)


REJECTED_CARDS: dict[str, tuple[Any, str]] = {
    "utf-8 BOM": (
        lambda: b"\xef\xbb\xbf" + _card_json("test_microwave").encode(),
        "not valid JSON.*BOM",
    ),
    "NaN": (
        lambda: _card_json("test_microwave").replace(
            '"input_mean_w": 400.0', '"input_mean_w": NaN'
        ),
        "NaN is not a number JSON allows",
    ),
    "window 10^9": (
        lambda: _card_json("test_microwave", window_length=10**9),
        "'window_length' must be in",
    ),
    "period 0": (
        lambda: _card_json("test_microwave", sample_period_s=0),
        "'sample_period_s' must be >=",
    ),
    "tflite_file outside": (
        lambda: _card_json("test_microwave", tflite_file="../../secrets.tflite"),
        "tflite_file",
    ),
    "tflite_file NUL": (
        lambda: _card_json("test_microwave", tflite_file="a\x00.tflite"),
        "tflite_file",
    ),
    "power scale 1e300": (
        lambda: _card_json("test_microwave", power_scale_w=1e300),
        "'power_scale_w' must be <=",
    ),
    "window differs from the model": (
        lambda: _card_json("test_microwave", window_length=98, target_index=95),
        r"input shape \(1, 99\).*98 samples",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED_CARDS))
async def test_rejected_card_repair_states_the_reason(
    hass: HomeAssistant, user_models: Path, case: str
) -> None:
    """Not "no model card with this name": the repair says what is wrong; the kettle runs."""
    make_text, reason = REJECTED_CARDS[case]
    _edit_card(user_models, "test_microwave", make_text())
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    assert entry.state is ConfigEntryState.LOADED
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave")
    assert issue is not None
    assert issue.translation_key == "model_corrupt"
    error = (issue.translation_placeholders or {})["error"]
    assert re.search(reason, error), error
    assert "no model card with this name" not in error
    assert list(entry.runtime_data.coordinator.appliances) == ["test_kettle"]


@pytest.mark.parametrize(
    "error",
    [OverflowError("cannot convert float infinity to integer"), TypeError("bad"), IndexError("x")],
)
async def test_any_exception_while_loading_is_a_repair(
    hass: HomeAssistant,
    user_models: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    """Whatever a backend raises for one model, the entry loads and says why."""
    real = nilm_models.load_model

    def load_model(card_path: Path, preference: str) -> Any:
        if card_path.stem == "test_microwave":
            raise error
        return real(card_path, preference)

    monkeypatch.setattr(nilm_models, "load_model", load_model)
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    assert entry.state is ConfigEntryState.LOADED
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave")
    assert issue is not None
    assert issue.translation_key == "model_corrupt"
    assert f"{type(error).__name__}: {error}" in (issue.translation_placeholders or {})["error"]
    assert list(entry.runtime_data.coordinator.appliances) == ["test_kettle"]


async def test_unvetted_user_model_runs_on_numpy(
    hass: HomeAssistant, user_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user model whose LiteRT test run crashed in the child never opens in LiteRT here."""
    monkeypatch.setattr(backends, "_vetted", {})
    monkeypatch.setattr(backends, "vet_model", lambda path, mode: "LiteRT crashed with SIGSEGV")
    hass.states.async_set(MAINS, "100", W_ATTRS)
    for backend in ("auto", "cpu"):
        entry = await setup_entry(hass, make_entry(["test_kettle"], backend=backend))
        runtime = entry.runtime_data.coordinator.appliances["test_kettle"]
        assert runtime.model.backend.name == "numpy"
        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()


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


# --- config entry versions ----------------------------------------------------------------


async def test_entries_from_before_the_mains_type_are_migrated(
    hass: HomeAssistant, user_models: Path
) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = make_entry(["test_kettle"])
    assert (entry.version, entry.minor_version) == (1, 1)
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (1, 2)
    assert entry.data["mains_type"] == "consumption"
    assert entry.data["mains_entities"] == [MAINS]
    assert entry.runtime_data.coordinator.mains_entities == [MAINS]


async def test_an_entry_of_a_newer_major_version_is_not_loaded(
    hass: HomeAssistant, user_models: Path
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        version=2,
        data={"mains_entities": [MAINS], "appliances": ["test_kettle"], "backend": "cpu"},
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


# --- the mains sensors: renamed, removed ---------------------------------------------------


def _register_sensor(hass: HomeAssistant, unique_id: str, object_id: str) -> str:
    entity = er.async_get(hass).async_get_or_create(
        "sensor", "meter", unique_id, suggested_object_id=object_id
    )
    hass.states.async_set(entity.entity_id, "100", W_ATTRS)
    return entity.entity_id


def _uids(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    return {
        e.unique_id: e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }


async def _rename(hass: HomeAssistant, old: str, new: str) -> None:
    er.async_get(hass).async_update_entity(old, new_entity_id=new)
    state = hass.states.get(old)
    assert state is not None
    hass.states.async_remove(old)  # what the sensor's platform does on a rename
    hass.states.async_set(new, state.state, state.attributes)
    await hass.async_block_till_done()


async def test_a_renamed_mains_sensor_is_followed(hass: HomeAssistant, user_models: Path) -> None:
    """The entry's data and unique id follow the new entity id and the entry reloads
    subscribed to it; the NILM devices, entities and their ids stay."""
    mains = _register_sensor(hass, "phase_1", "mains_power")
    other = _register_sensor(hass, "phase_2", "phase_2_power")
    entry = await setup_entry(hass, make_entry(["test_kettle"], mains=[mains, other]))
    before = _uids(hass, entry)
    devices = {d.id for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)}

    await _rename(hass, mains, "sensor.house_power")
    assert entry.data["mains_entities"] == ["sensor.house_power", other]
    assert entry.unique_id == "sensor.house_power+sensor.phase_2_power"
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.coordinator
    assert coordinator.mains_entities == ["sensor.house_power", other]
    assert _uids(hass, entry) == before
    assert {
        d.id for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    } == devices
    assert not [i for (d, i) in ir.async_get(hass).issues if d == DOMAIN]
    # The renamed sensor feeds the entry: it is no longer waiting for it.
    hass.states.async_set("sensor.house_power", "150", W_ATTRS)
    await hass.async_block_till_done()
    assert "sensor.house_power" not in coordinator.status()[1].get("missing_sensors", [])


async def test_a_renamed_export_or_solar_sensor_is_followed(
    hass: HomeAssistant, user_models: Path
) -> None:
    grid = _register_sensor(hass, "import", "grid_import")
    export = _register_sensor(hass, "export", "grid_export")
    solar = _register_sensor(hass, "solar", "solar_power")
    entry = MockConfigEntry(
        domain=DOMAIN,
        version=1,
        minor_version=2,
        unique_id="+".join(sorted([grid, export, solar])),
        data={
            "mains_type": "import_export",
            "mains_entities": [grid],
            "export_entities": [export],
            "solar_entities": [solar],
            "appliances": ["test_kettle"],
            "backend": "cpu",
        },
    )
    await setup_entry(hass, entry)
    await _rename(hass, export, "sensor.feed_in")
    await _rename(hass, solar, "sensor.inverter")
    assert entry.data["export_entities"] == ["sensor.feed_in"]
    assert entry.data["solar_entities"] == ["sensor.inverter"]
    assert entry.data["mains_entities"] == [grid]
    assert entry.unique_id == "+".join(sorted([grid, "sensor.feed_in", "sensor.inverter"]))
    assert set(entry.runtime_data.coordinator.mains_entities) == {
        grid,
        "sensor.feed_in",
        "sensor.inverter",
    }


async def test_a_removed_mains_sensor_raises_a_repair_naming_it(
    hass: HomeAssistant, user_models: Path
) -> None:
    mains = _register_sensor(hass, "phase_1", "mains_power")
    entry = await setup_entry(hass, make_entry(["test_kettle"], mains=[mains]))
    issue_id = f"{entry.entry_id}_mains_missing_{mains}"
    er.async_get(hass).async_remove(mains)
    hass.states.async_remove(mains)
    await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "mains_missing"
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {"sensor": mains, "entry": entry.title}
    assert entry.data["mains_entities"] == [mains]  # nothing else guessed

    # A model repair sync (a reload) leaves it; the sensor coming back clears it.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    _register_sensor(hass, "phase_1", "mains_power")
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    # Removing the entry removes it with the others.
    er.async_get(hass).async_remove(mains)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not [i for (d, i) in ir.async_get(hass).issues if d == DOMAIN]


async def test_a_mains_sensor_absent_after_start_raises_a_repair(
    hass: HomeAssistant, user_models: Path, freezer: Any
) -> None:
    """Gone while NILM was not running (no event to see): once Home Assistant has run
    for the grace period without the sensor in the registry or the state machine."""
    from datetime import timedelta

    from homeassistant.util import dt as dt_util
    from pytest_homeassistant_custom_component.common import async_fire_time_changed

    from custom_components.nilm.const import MAINS_MISSING_GRACE_S

    entry = await setup_entry(hass, make_entry(["test_kettle"], mains=["sensor.old_meter"]))
    issue_id = f"{entry.entry_id}_mains_missing_sensor.old_meter"
    registry = ir.async_get(hass)
    assert registry.async_get_issue(DOMAIN, issue_id) is None  # not before the grace
    freezer.tick(timedelta(seconds=MAINS_MISSING_GRACE_S + 1))
    async_fire_time_changed(hass, dt_util.utcnow())
    await hass.async_block_till_done()
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert (issue.translation_placeholders or {})["sensor"] == "sensor.old_meter"
    hass.states.async_set("sensor.old_meter", "100", W_ATTRS)  # a YAML sensor, loaded late
    await hass.async_block_till_done()
    assert registry.async_get_issue(DOMAIN, issue_id) is None


# --- a broken user card shadowing a valid bundled one --------------------------------------


async def test_a_rejected_user_card_over_a_bundled_one_is_a_repair(
    hass: HomeAssistant, user_models: Path, no_bundled_models: Path
) -> None:
    """The bundled model of that name runs, and a repair says the user's model was
    rejected, why, and that the bundled one runs meanwhile (not only a log line)."""
    from .test_models import install

    install(no_bundled_models, "test_microwave", "test_microwave")
    _edit_card(user_models, "test_microwave", _card_json("test_microwave", window_length=10**9))
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    runtimes = entry.runtime_data.coordinator.appliances
    assert sorted(runtimes) == ["test_kettle", "test_microwave"]  # the bundled one runs
    assert entry.runtime_data.available["test_microwave"].user is False
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave")
    assert issue is not None
    assert issue.translation_key == "user_model_rejected"
    assert issue.severity is ir.IssueSeverity.WARNING
    error = (issue.translation_placeholders or {})["error"]
    assert "user model card test_microwave.json was rejected" in error
    assert "'window_length' must be in" in error
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_kettle") is None
    assert entry.runtime_data.failures["test_microwave"].reason == "user_model_rejected"

    # Fixed: the user's model runs and the repair goes.
    shutil.copy(FIXTURE_MODELS / "test_microwave.json", user_models / "test_microwave.json")
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave") is None
    assert entry.runtime_data.available["test_microwave"].user is True


def test_every_repair_has_texts_with_the_placeholders_it_gets() -> None:
    from custom_components.nilm import runtime

    en = json.loads(
        (Path(runtime.__file__).parent / "translations" / "en.json").read_text(encoding="utf-8")
    )
    given = {key: {"model", "error", "folder"} for key in runtime.MODEL_REPAIRS}
    given["mains_missing"] = {"sensor", "entry"}
    for key, placeholders in given.items():
        texts = en["issues"][key]
        for part in ("title", "description"):
            assert set(re.findall(r"{(\w+)}", texts[part])) <= placeholders, (key, part)
    assert set(en["issues"]) == set(given)
