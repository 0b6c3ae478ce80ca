"""adaptation.py: a smart plug's history re-fits the bundled kettle model's heads, with a
real recorder, through the entities and buttons a user has."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.nilm import adaptation as nilm_adaptation
from custom_components.nilm.const import (
    ADAPTATION_DAYS,
    ADAPTATION_FIRST_FIT_MIN,
    ADAPTATION_STATES,
    CONF_ADAPTATION_LABELS,
    DOMAIN,
    REPAIR_ADAPTER_INVALID,
)
from custom_components.nilm.engine.adapter import AdaptableModel, Adapter, series_for
from custom_components.nilm.engine.card import load_card

from .conftest import (
    MAINS,
    REPLAY_START,
    W_ATTRS,
    install,
    make_entry,
    setup_entry,
    state_of,
)

BUNDLED = Path(__file__).parents[3] / "custom_components" / "nilm" / "models"
PLUG = "sensor.kettle_plug_power"
PLUG_ATTRS = {"unit_of_measurement": "W", "device_class": "power"}
SWITCH = "binary_sensor.kettle_running"
DAY = 2880  # 30 s slots


def adapter_file(hass: HomeAssistant) -> Path:
    return Path(hass.config.path("nilm/adapters/kettle.adapter.json"))


def read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def kettle_entry(label: str | None = PLUG) -> MockConfigEntry:
    options: dict[str, object] = {CONF_ADAPTATION_LABELS: {"kettle": label}} if label else {}
    return make_entry(["kettle"], options=options)


def entity_id(hass: HomeAssistant, entry: MockConfigEntry, domain: str, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{entry.entry_id}_kettle_{key}")
    assert found is not None, key
    return found


def adaptation_state(hass: HomeAssistant, entry: MockConfigEntry) -> tuple[str, dict[str, Any]]:
    state = hass.states.get(entity_id(hass, entry, "sensor", "adaptation"))
    assert state is not None
    return state.state, dict(state.attributes)


async def press(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> None:
    await hass.services.async_call(
        "button", "press", {"entity_id": entity_id(hass, entry, "button", key)}, blocking=True
    )
    await hass.async_block_till_done()


async def record(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    mains: np.ndarray,
    plug_w: np.ndarray | None = None,
    switch_on: np.ndarray | None = None,
) -> None:
    """One row per 30 s slot into the real recorder: the mains, the plug's watts (or an
    on/off entity, set only when it changes), then the clock at the end of the data."""
    await hass.config.async_set_time_zone("UTC")
    last: bool | None = None
    for i, watts in enumerate(mains):
        freezer.move_to(REPLAY_START + timedelta(seconds=30 * i))
        hass.states.async_set(MAINS, f"{watts:.1f}", W_ATTRS)
        if plug_w is not None:
            hass.states.async_set(PLUG, f"{plug_w[i]:.1f}", PLUG_ATTRS)
        if switch_on is not None and bool(switch_on[i]) != last:
            last = bool(switch_on[i])
            hass.states.async_set(SWITCH, "on" if last else "off")
        if i % 500 == 0:
            await hass.async_block_till_done()
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    freezer.move_to(REPLAY_START + timedelta(seconds=30 * len(mains) - 15))


def shipped_kettle(mains: np.ndarray) -> Any:
    """The bundled kettle's own prediction at every target of the recorded mains."""
    card = load_card(BUNDLED / "kettle.json")
    model = AdaptableModel(card, BUNDLED / "kettle.tflite")
    rounded = np.round(mains, 1)  # as recorded
    return series_for(model, rounded, np.zeros_like(rounded))


def misjudged_kettle(mains: np.ndarray) -> np.ndarray:
    """A household whose kettle the shipped model misjudges, learnably: "on" wherever the
    shipped head says p >= 0.3 (the card asks 0.95; tests/engine/test_adapter.py)."""
    probe = shipped_kettle(mains)
    assert probe.shipped.probability is not None
    on = np.zeros(len(mains), dtype=bool)
    on[probe.targets] = probe.shipped.probability >= 0.3
    return on


def agreeing_plug(mains: np.ndarray) -> np.ndarray:
    """A plug that already agrees with the shipped model (its watts wherever it says "on"):
    a re-fit cannot beat an F1 of 1 nor an exact energy, whichever model is bundled."""
    probe = shipped_kettle(mains)
    plug = np.zeros(len(mains))
    plug[probe.targets] = np.where(probe.shipped.on, probe.shipped.power_w, 0.0)
    return plug


@pytest.fixture
def fit_threads() -> Iterator[list[int]]:
    """The thread of every head re-fit (engine.adapter.adapt) during the test."""
    threads: list[int] = []
    real_adapt = nilm_adaptation.adapt

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real_adapt(*args, **kwargs)

    with patch.object(nilm_adaptation, "adapt", spy):
        yield threads


async def test_a_learnable_label_is_adopted_survives_a_reload_and_is_reverted(
    recorder_mock: object,
    hass: HomeAssistant,
    bundled_kettle: Path,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
) -> None:
    mains = house20["Aggregate"][: 2 * DAY]
    await record(hass, freezer, mains, switch_on=misjudged_kettle(mains))
    entry = await setup_entry(hass, kettle_entry(SWITCH))
    runtime = entry.runtime_data.coordinator.appliances["kettle"]
    plain = runtime.model
    assert not isinstance(plain, AdaptableModel)  # LiteRT (or numpy) until a re-fit wins
    assert adaptation_state(hass, entry)[0] == "collecting"
    assert state_of(hass, entity_id(hass, entry, "button", "adapt_revert")) == STATE_UNAVAILABLE

    await press(hass, entry, "adapt_refit")
    state, attrs = adaptation_state(hass, entry)
    assert state == "adopted", attrs
    assert attrs["adapter_active"] is True
    assert attrs["label_entity"] == SWITCH
    assert attrs["f1_after"] > attrs["f1_before"]
    assert attrs["runs_fit"] >= 3 and attrs["runs_validation"] >= 1
    assert attrs["period_start"].startswith("2014-06-01")
    assert attrs["period_end"].startswith("2014-06-03")
    assert attrs["energy_metered_kwh"] is None  # an on/off label meters no watts
    path = adapter_file(hass)
    saved = read_json(path)
    assert saved["fit"]["label_entity"] == SWITCH
    assert saved["fit"]["f1_after"] == attrs["f1_after"]
    assert isinstance(runtime.model, AdaptableModel) and runtime.model.heads is not None
    assert state_of(hass, entity_id(hass, entry, "button", "adapt_revert")) != STATE_UNAVAILABLE
    # The next ticks predict with the re-fitted heads.
    predictions = runtime.predictions
    for k in range(3):
        moment = REPLAY_START + timedelta(seconds=30 * (len(mains) + k))
        freezer.move_to(moment)
        hass.states.async_set(MAINS, "2500.0", W_ATTRS)
        async_fire_time_changed(hass, moment + timedelta(seconds=5))
        await hass.async_block_till_done()
    assert runtime.predictions > predictions
    assert runtime.last_error is None

    # A reload (options saved, a restart) loads the adapter again: still adopted.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    runtime = entry.runtime_data.coordinator.appliances["kettle"]
    assert isinstance(runtime.model, AdaptableModel) and runtime.model.heads is not None
    state, attrs = adaptation_state(hass, entry)
    assert state == "adopted"
    assert attrs["f1_after"] == saved["fit"]["f1_after"]

    await press(hass, entry, "adapt_revert")
    assert not adapter_file(hass).is_file()
    assert adaptation_state(hass, entry)[0] == "collecting"
    assert not isinstance(runtime.model, AdaptableModel)  # the model loaded at setup
    assert state_of(hass, entity_id(hass, entry, "button", "adapt_revert")) == STATE_UNAVAILABLE


@pytest.mark.usefixtures("bundled_kettle")
async def test_a_plug_with_nothing_to_teach_is_rejected_by_the_daily_fit_off_the_loop(
    recorder_mock: object,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
    fit_threads: list[int],
) -> None:
    """Two days of House 20 with a plug that agrees with the shipped model: the re-fit does
    not beat it on the newer days, so the shipped model keeps running."""
    mains = house20["Aggregate"][: 2 * DAY]
    await record(hass, freezer, mains, plug_w=agreeing_plug(mains))
    entry = await setup_entry(hass, kettle_entry())
    assert not fit_threads  # nothing is fitted at setup
    # The daily re-fit.
    async_fire_time_changed(hass, REPLAY_START + timedelta(days=2, hours=24))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert fit_threads and threading.get_ident() not in fit_threads  # fitted in the executor
    state, attrs = adaptation_state(hass, entry)
    assert state == "rejected", attrs
    assert (
        attrs["reason"]
        == "no re-fit improved F1 or energy on the newer days without worsening the other"
    )
    assert attrs["f1_after"] <= attrs["f1_before"]
    assert attrs["energy_metered_kwh"] > 0
    assert attrs["adapter_active"] is False
    assert not adapter_file(hass).is_file()
    runtime = entry.runtime_data.coordinator.appliances["kettle"]
    assert not isinstance(runtime.model, AdaptableModel)


@pytest.mark.usefixtures("bundled_kettle")
async def test_a_new_label_is_learnt_minutes_after_setup_and_a_fresh_fit_is_not_redone(
    recorder_mock: object,
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
    fit_threads: list[int],
) -> None:
    """No button and no day's wait: the first re-fit runs a few minutes after setup. After a
    restart, an adopted fit younger than a day is kept as it is."""
    mains = house20["Aggregate"][: 2 * DAY]
    await record(hass, freezer, mains, switch_on=misjudged_kettle(mains))
    entry = await setup_entry(hass, kettle_entry(SWITCH))
    assert adaptation_state(hass, entry)[0] == "collecting"
    soon = dt_util.utcnow() + timedelta(minutes=ADAPTATION_FIRST_FIT_MIN + 1)
    async_fire_time_changed(hass, soon)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(fit_threads) == 1
    assert adaptation_state(hass, entry)[0] == "adopted"

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, soon + timedelta(minutes=ADAPTATION_FIRST_FIT_MIN + 1))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(fit_threads) == 1  # the saved fit is minutes old
    assert adaptation_state(hass, entry)[0] == "adopted"


async def test_too_little_history_keeps_collecting(
    recorder_mock: object,
    hass: HomeAssistant,
    bundled_kettle: Path,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
) -> None:
    rows = slice(0, 60)  # half an hour: not one model window
    await record(hass, freezer, house20["Aggregate"][rows], plug_w=house20["Kettle"][rows])
    entry = await setup_entry(hass, kettle_entry())
    await press(hass, entry, "adapt_refit")
    state, attrs = adaptation_state(hass, entry)
    assert state == "collecting"
    assert "window" in attrs["reason"]


def write_adapter(hass: HomeAssistant, **fit: Any) -> Path:
    """A valid adapter for the bundled kettle (the shipped heads as the "re-fit")."""
    card = load_card(BUNDLED / "kettle.json")
    model = AdaptableModel(card, BUNDLED / "kettle.tflite")
    path = adapter_file(hass)
    Adapter("kettle", card.tflite_sha256, model.shipped, {"f1_after": 0.9, **fit}).save(path)
    return path


def corrupt(path: Path, how: str) -> None:
    if how == "{not json":
        path.write_text(how, encoding="utf-8")
        return
    raw = read_json(path)
    if how == "other model":
        raw["model_sha256"] = "0" * 64
    else:
        raw["status"]["weights"] = raw["status"]["weights"][:10]
    path.write_text(json.dumps(raw), encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot be read"),
        ("other model", "another model file"),
        ("short", "weights must be a list of"),
    ],
)
async def test_an_invalid_adapter_file_is_a_repair_and_the_shipped_model_runs(
    hass: HomeAssistant, bundled_kettle: Path, content: str, message: str
) -> None:
    corrupt(write_adapter(hass), content)
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    assert entry.state is ConfigEntryState.LOADED
    runtime = entry.runtime_data.coordinator.appliances["kettle"]
    assert not isinstance(runtime.model, AdaptableModel)
    state, attrs = adaptation_state(hass, entry)
    assert state == "error"
    assert message in attrs["reason"]
    issue_id = f"{entry.entry_id}_{REPAIR_ADAPTER_INVALID}_kettle"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == REPAIR_ADAPTER_INVALID
    assert message in (issue.translation_placeholders or {})["error"]
    # Reverting deletes the file and the repair.
    await press(hass, entry, "adapt_revert")
    assert not adapter_file(hass).is_file()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert adaptation_state(hass, entry)[0] == "collecting"


async def test_a_label_that_disappears_is_shown_and_the_adapter_keeps_working(
    hass: HomeAssistant, bundled_kettle: Path
) -> None:
    write_adapter(hass, label_entity=PLUG)
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    runtime = entry.runtime_data.coordinator.appliances["kettle"]
    assert isinstance(runtime.model, AdaptableModel) and runtime.model.heads is not None
    assert adaptation_state(hass, entry) == (
        "adopted",
        {
            "f1_after": 0.9,
            "label_entity": PLUG,
            "adapter_active": True,
            "device_class": "enum",
            "options": list(ADAPTATION_STATES),
            "friendly_name": "Kettle Adaptation",
        },
    )
    hass.states.async_remove(PLUG)
    await hass.async_block_till_done()
    state, attrs = adaptation_state(hass, entry)
    assert state == "label_missing"
    assert attrs["adapter_active"] is True
    await press(hass, entry, "adapt_refit")  # nothing to learn from: no change
    assert adaptation_state(hass, entry)[0] == "label_missing"
    assert runtime.model.heads is not None
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    await hass.async_block_till_done()
    assert adaptation_state(hass, entry)[0] == "adopted"


async def test_a_renamed_label_entity_is_followed_and_the_adapter_keeps_running(
    hass: HomeAssistant, bundled_kettle: Path
) -> None:
    registry = er.async_get(hass)
    registry.async_get_or_create(
        "sensor", "plug_vendor", "plug-1", suggested_object_id="kettle_plug_power"
    )
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    write_adapter(hass, label_entity=PLUG)
    entry = await setup_entry(hass, kettle_entry())
    assert adaptation_state(hass, entry)[1]["label_entity"] == PLUG

    renamed = "sensor.kitchen_plug_power"
    registry.async_update_entity(PLUG, new_entity_id=renamed)
    await hass.async_block_till_done()
    hass.states.async_set(renamed, "0.0", PLUG_ATTRS)
    await hass.async_block_till_done()
    assert entry.options[CONF_ADAPTATION_LABELS] == {"kettle": renamed}
    state, attrs = adaptation_state(hass, entry)
    assert state == "adopted"  # reloaded: the adapter file is the model's, not the label's
    assert attrs["label_entity"] == renamed


async def test_without_the_recorder_a_refit_is_an_error(
    hass: HomeAssistant, bundled_kettle: Path
) -> None:
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    await press(hass, entry, "adapt_refit")
    state, attrs = adaptation_state(hass, entry)
    assert state == "error"
    assert "recorder is not loaded" in attrs["reason"]


async def test_not_configured_and_not_adaptable_appliances_have_no_buttons(
    hass: HomeAssistant, bundled_kettle: Path
) -> None:
    """The bundled kettle without a label; the test microwave's card names no head."""
    install(Path(hass.config.path("nilm/models")), "test_microwave", "test_microwave")
    entry = await setup_entry(hass, make_entry(["kettle", "test_microwave"]))
    assert adaptation_state(hass, entry)[0] == "not_configured"
    reg = er.async_get(hass)
    microwave = reg.async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_test_microwave_adaptation"
    )
    assert microwave is not None
    assert state_of(hass, microwave) == "not_adaptable"
    buttons = [
        e for e in er.async_entries_for_config_entry(reg, entry.entry_id) if e.domain == "button"
    ]
    assert buttons == []


async def test_history_is_read_a_day_at_a_time(
    recorder_mock: object, hass: HomeAssistant, bundled_kettle: Path
) -> None:
    """Fourteen days of a fast meter never sit in memory at once."""
    spans: list[float] = []

    def changes(hass: HomeAssistant, start: Any, end: Any, entity_id: str, **kw: Any) -> Any:
        spans.append((end - start).total_seconds())
        return {}

    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    with patch(
        "homeassistant.components.recorder.history.state_changes_during_period",
        side_effect=changes,
    ):
        await press(hass, entry, "adapt_refit")
    assert max(spans) <= 86400.0
    assert len(spans) == 2 * ADAPTATION_DAYS  # the mains and the label, each day
    assert adaptation_state(hass, entry)[0] == "collecting"


async def test_too_few_runs_keep_an_adopted_adapter(
    recorder_mock: object, hass: HomeAssistant, bundled_kettle: Path
) -> None:
    """A re-fit without enough history (the plug's days purged, say) changes nothing."""
    write_adapter(hass, label_entity=PLUG)
    hass.states.async_set(PLUG, "0.0", PLUG_ATTRS)
    entry = await setup_entry(hass, kettle_entry())
    await press(hass, entry, "adapt_refit")
    state, attrs = adaptation_state(hass, entry)
    assert state == "adopted"
    assert attrs["f1_after"] == 0.9  # the adopted fit's numbers
    assert "window" in attrs["reason"] and attrs["last_attempt"]
    runtime = entry.runtime_data.coordinator.appliances["kettle"]
    assert isinstance(runtime.model, AdaptableModel) and runtime.model.heads is not None
    assert adapter_file(hass).is_file()
