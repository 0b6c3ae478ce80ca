"""__init__.py (entry_setup.py): setup, unload, reload, registries, model choice and load
repairs, config entry versions."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import tflite
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)

from custom_components.nilm import model_store
from custom_components.nilm.const import DOMAIN
from custom_components.nilm.engine import backends
from tests.engine.tflite_builder import CodeSpec, build, dense_model

from .conftest import (
    FIRST_VALID_STEP,
    FIXTURE_MODELS,
    LAG,
    MAINS,
    W_ATTRS,
    Replayer,
    appliance_entities,
    install,
    make_entry,
    setup_entry,
    state_of,
)

KEYS = {
    "sensor": ("power", "energy", "energy_today", "model", "adaptation"),
    "binary_sensor": ("running",),
}


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


async def test_unsupported_op_raises_repair_on_the_numpy_engine(
    hass: HomeAssistant, user_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(model_store.ENGINE_PREFERENCES, "cpu", ("numpy",))
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
    monkeypatch.setitem(model_store.ENGINE_PREFERENCES, "cpu", ("edgetpu",))
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
        lambda: _card_json("test_microwave", input_mean_w=float("nan")),
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
    real = model_store.load_model

    def load_model(card_path: Path, preference: str) -> Any:
        if card_path.stem == "test_microwave":
            raise error
        return real(card_path, preference)

    monkeypatch.setattr(model_store, "load_model", load_model)
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


async def test_a_rejected_user_card_over_a_bundled_one_is_a_repair(
    hass: HomeAssistant, user_models: Path, no_bundled_models: Path
) -> None:
    """The bundled model of that name runs, and a repair says the user's model was
    rejected, why, and that the bundled one runs meanwhile (not only a log line)."""
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


def _uids(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    return {
        e.unique_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }


async def test_a_user_model_replaces_the_bundled_one_never_duplicates(
    hass: HomeAssistant,
    user_models: Path,
    no_bundled_models: Path,
    replayer: Replayer,
    house20: dict[str, np.ndarray],
) -> None:
    """An entry made with the bundled kettle, then the user's own kettle model ticked as
    well (before the flow refused that): one Kettle device running the user's model,
    and the untracked power subtracts the kettle once."""
    install(no_bundled_models, "kettle", "test_kettle")
    install(user_models, "my_kettle", "test_kettle")
    entry = await setup_entry(hass, make_entry(["kettle", "my_kettle", "test_microwave"]))
    coordinator = entry.runtime_data.coordinator
    assert list(coordinator.appliances) == ["kettle", "test_microwave"]
    assert coordinator.appliances["kettle"].model.card.name == "my_kettle"
    assert entry.runtime_data.duplicates == ["my_kettle"]
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert sorted(d.name or "" for d in devices) == ["Kettle", "Microwave", "NILM"]
    kettle = next(d for d in devices if d.name == "Kettle")
    assert kettle.model_id == "my_kettle"
    assert not any("my_kettle" in uid for uid in _uids(hass, entry))

    ids = appliance_entities(hass, entry, "kettle")
    microwave = appliance_entities(hass, entry, "test_microwave")
    agg = house20["Aggregate"][700:860]  # a kettle boil at row 815
    for i, watts in enumerate(agg):
        await replayer.step(float(watts))
        if i <= FIRST_VALID_STEP:
            continue
        power = float(state_of(hass, ids["power"]))
        other = float(state_of(hass, microwave["power"]))
        untracked = float(state_of(hass, ids["untracked"]))
        assert untracked == pytest.approx(max(0.0, agg[i - LAG] - power - other), abs=0.2)
