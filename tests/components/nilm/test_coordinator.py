"""The coordinator (coordinator.py) on real mains data (REFIT House 20, never used for
training): windows, gaps, clock steps, ticks, inference errors, house consumption from
grid, export and solar sensors, and its status.

The solar tests replay real mains data as the house consumption of a home with panels: a
synthetic clear-sky PV curve with a cloudy spell, so the grid sensors go negative
(export) for most of the morning and positive during the cloud and the kettle boils.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.nilm.const import CONF_MAX_GAP_S, CONF_MAX_POWER_W, DOMAIN
from custom_components.nilm.diagnostics import async_get_config_entry_diagnostics
from custom_components.nilm.engine.errors import ModelError

from .conftest import (
    FIRST_VALID_STEP,
    LAG,
    MAINS,
    W_ATTRS,
    WINDOW,
    Replayer,
    appliance_entities,
    make_entry,
    setup_entry,
    state_of,
)

ROWS = slice(700, 1300)  # 2014-06-01 05:50-10:50 UTC: kettle boils at rows 815 and 1263


W = {"unit_of_measurement": "W", "device_class": "power"}


def _pv_w(rows: slice) -> np.ndarray:
    """A clear June day's PV (3.5 kWp, 04:00-20:00 UTC) with a 40-minute cloud."""
    hours = np.arange(rows.start, rows.stop) * 30.0 / 3600.0
    clear = np.clip(3500.0 * np.sin(np.pi * (hours - 4.0) / 16.0), 0.0, None)
    cloud = np.where((hours >= 8.0) & (hours < 8.67), 0.05, 1.0)
    return np.asarray(clear * cloud, dtype=np.float64)


def _entry(data: dict[str, object], unique_id: str) -> MockConfigEntry:
    # Literal keys: on code that does not know them, the entry still sets up (and
    # treats the grid sensor as consumption): the test then fails on its assertions.
    return MockConfigEntry(
        domain=DOMAIN,
        title="Grid",
        unique_id=unique_id,
        data={**data, "appliances": ["test_kettle"], "backend": "cpu"},
        version=1,
        minor_version=2,
    )


def _entity(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> str:
    domain = "binary_sensor" if key == "running" else "sensor"
    uid = f"{entry.entry_id}_test_kettle_{key}" if key != "untracked_power" else None
    entity_id = er.async_get(hass).async_get_entity_id(
        domain, DOMAIN, uid or f"{entry.entry_id}_untracked_power"
    )
    assert entity_id is not None
    return entity_id


def _value(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def test_replay_house20_tracks_the_kettle(
    hass: HomeAssistant,
    user_models: Path,
    engine: str,
    replayer: Replayer,
    house20: dict[str, np.ndarray],
) -> None:
    await hass.config.async_set_time_zone("UTC")  # no local midnight inside the replay
    entry = await setup_entry(hass, make_entry())
    kettle = appliance_entities(hass, entry, "test_kettle")
    microwave = appliance_entities(hass, entry, "test_microwave")
    rows = slice(600, 1600)  # 2014-06-01 05:00-13:20 UTC: three kettle boils
    agg = house20["Aggregate"][rows]
    truth = house20["Kettle"][rows]

    running: list[bool] = []
    powers: list[float] = []
    energies: list[float] = []
    for i, watts in enumerate(agg):
        await replayer.step(float(watts))
        if i < FIRST_VALID_STEP:
            assert state_of(hass, kettle["power"]) == STATE_UNAVAILABLE, i
            assert state_of(hass, kettle["running"]) == STATE_UNAVAILABLE
            continue
        power = float(state_of(hass, kettle["power"]))
        running.append(state_of(hass, kettle["running"]) == "on")
        powers.append(power)
        energies.append(float(state_of(hass, kettle["energy"])))
        assert (power > 0) == running[-1]
        untracked = float(state_of(hass, kettle["untracked"]))
        other = float(state_of(hass, microwave["power"]))
        # Mains at the target time minus both appliances, floored at zero.
        # (The replay sends one decimal, hence the tolerance.)
        assert untracked == pytest.approx(max(0.0, agg[i - LAG] - power - other), abs=0.2)

    on = np.array(running)
    true_on = truth[FIRST_VALID_STEP - LAG : len(agg) - LAG] >= 500
    assert true_on.sum() >= 8  # the stretch really holds kettle boils
    # Every real boil is seen, and the kettle is not "on" most of the morning.
    assert (on & true_on).sum() / true_on.sum() >= 0.8
    assert on.mean() < 0.08
    # Energy: monotonic, equal to the integral of the reported power, and the same
    # order of magnitude as the sub-meter's (the tiny test model over-predicts).
    assert all(b >= a for a, b in itertools.pairwise(energies))
    integral = sum(powers) * 30 / 3.6e6
    assert energies[-1] == pytest.approx(integral, abs=1e-4)
    true_kwh = truth[FIRST_VALID_STEP - LAG : len(agg) - LAG].sum() * 30 / 3.6e6
    assert 0.5 * true_kwh < energies[-1] < 4 * true_kwh
    assert float(state_of(hass, kettle["energy_today"])) == pytest.approx(energies[-1], abs=1e-6)

    # (The HTTP route is covered in test_init; 8 h of frozen time expire its token.)
    diag = await async_get_config_entry_diagnostics(hass, entry)
    runtime = diag["runtime"]
    assert runtime["appliances"]["test_kettle"]["backend"] == engine
    latency = runtime["appliances"]["test_kettle"]["latency_ms"]
    assert latency["count"] == min(500, len(agg) - FIRST_VALID_STEP)  # a bounded window
    assert 0 < latency["p50"] <= latency["p95"] <= latency["max"]
    assert runtime["resamplers"]["30.0"]["masked_fraction"] == 0.0
    assert runtime["resamplers"]["30.0"]["buffer_fill"] == 1.0
    assert runtime["appliances"]["test_kettle"]["predictions"] == len(agg) - FIRST_VALID_STEP


@pytest.mark.parametrize(
    ("bad", "attrs"),
    [
        ("unavailable", None),
        ("unknown", None),
        ("abc", None),
        ("nan", None),
        ("-50", None),
        ("800", {"unit_of_measurement": "kWh"}),
        (None, None),  # the sensor disappears from the state machine
        # Implausible readings (meter glitches, overflow values) are missing too.
        ("65535", None),
        ("4294967295", None),
        ("1e12", None),
        ("1e308", None),
        ("inf", None),
        ("30", {"unit_of_measurement": "kW", "device_class": "power"}),  # 30 kW on one phase
    ],
)
async def test_gaps_and_bad_states(
    hass: HomeAssistant,
    user_models: Path,
    *,
    replayer: Replayer,
    house20: dict[str, np.ndarray],
    bad: str | None,
    attrs: dict[str, str] | None,
) -> None:
    entry = await setup_entry(hass, make_entry(["test_kettle"], options={CONF_MAX_GAP_S: 60}))
    ids = appliance_entities(hass, entry, "test_kettle")
    agg = house20["Aggregate"][600:1000]
    feed = iter(agg)
    for _ in range(WINDOW + 1):  # the 99th slot closes when the 100th value arrives
        await replayer.step(float(next(feed)))
    assert state_of(hass, ids["power"]) != STATE_UNAVAILABLE
    # One bad sample (30 s < max_gap_s) is bridged by the hold.
    await replayer.step(bad, attrs=attrs)
    assert state_of(hass, ids["power"]) != STATE_UNAVAILABLE
    await replayer.step(float(next(feed)))
    assert state_of(hass, ids["power"]) != STATE_UNAVAILABLE
    # Three bad samples (> 60 s) are a gap: unavailable until a full window is real again.
    for _ in range(3):
        await replayer.step(bad, attrs=attrs)
    assert state_of(hass, ids["power"]) == STATE_UNAVAILABLE
    assert state_of(hass, ids["running"]) == STATE_UNAVAILABLE
    assert state_of(hass, ids["untracked"]) == STATE_UNAVAILABLE
    for _ in range(WINDOW + 1):
        assert state_of(hass, ids["power"]) == STATE_UNAVAILABLE
        await replayer.step(float(next(feed)))
    assert state_of(hass, ids["power"]) != STATE_UNAVAILABLE
    assert state_of(hass, ids["untracked"]) != STATE_UNAVAILABLE
    # Nothing implausible ever reached the windows (so never the energy either).
    resampler = entry.runtime_data.coordinator.resamplers[30.0]
    assert np.nanmax(resampler.buffer.latest(resampler.buffer.capacity)) < 25_000
    assert float(state_of(hass, ids["energy"])) < 1.0


async def test_max_power_option_and_duplicate_mains(
    hass: HomeAssistant, user_models: Path, replayer: Replayer
) -> None:
    """The bound is an option; a sensor listed twice (an entry saved before the flow
    refused it) is counted once."""
    entry = await setup_entry(
        hass, make_entry(["test_kettle"], mains=[MAINS, MAINS], options={CONF_MAX_POWER_W: 3000})
    )
    coordinator = entry.runtime_data.coordinator
    assert coordinator.mains_entities == [MAINS]
    assert coordinator.max_power_w == 3000.0
    for _ in range(4):
        await replayer.step(1000.0)
    assert coordinator.resamplers[30.0].latest_value() == pytest.approx(1000.0)
    await replayer.step(3500.0)
    await replayer.step(1000.0)
    assert coordinator.readings_refused == 1
    assert coordinator.resamplers[30.0].latest_value(1) == pytest.approx(1000.0)


async def test_clock_stepping_back_restarts_the_windows(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    """After NTP steps the clock back 3 h the entities must not stay frozen at their last
    values: they become unavailable, then recover on a full window of new data."""
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = appliance_entities(hass, entry, "test_kettle")
    feed = iter(house20["Aggregate"][600:1200])
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert state_of(hass, ids["power"]) != STATE_UNAVAILABLE
    energy = float(state_of(hass, ids["energy"]))

    # Home Assistant re-arms a timer that fires before its wall-clock time: the pending
    # tick now waits 3 h, only the sensor's updates (stamped with the new time) arrive.
    replayer.now -= timedelta(hours=3)
    for _ in range(3):
        await replayer.step(float(next(feed)))
    assert state_of(hass, ids["power"]) == STATE_UNAVAILABLE
    assert state_of(hass, ids["running"]) == STATE_UNAVAILABLE
    assert entry.runtime_data.coordinator.clock_resets == 1
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert state_of(hass, ids["power"]) != STATE_UNAVAILABLE
    assert state_of(hass, ids["untracked"]) != STATE_UNAVAILABLE
    assert float(state_of(hass, ids["energy"])) >= energy
    assert entry.runtime_data.coordinator.clock_resets == 1


async def test_silent_sensor_is_a_gap_but_reports_keep_it_alive(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    entry = await setup_entry(hass, make_entry(["test_kettle"], options={CONF_MAX_GAP_S: 60}))
    ids = appliance_entities(hass, entry, "test_kettle")
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    # A constant load re-reported with the same value (state_reported events) stays valid.
    for _ in range(5):
        await replayer.step(250.0)
    assert state_of(hass, ids["power"]) != STATE_UNAVAILABLE
    # The meter stops reporting altogether: after max_gap_s the entities go unavailable.
    await replayer.silence(120)
    assert state_of(hass, ids["power"]) == STATE_UNAVAILABLE


async def test_kw_and_summed_phases_match_a_single_watt_sensor(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    single = await setup_entry(hass, make_entry(["test_kettle"]))
    phases = await setup_entry(hass, make_entry(["test_kettle"], mains=["sensor.l1", "sensor.l2"]))
    a, b = (
        appliance_entities(hass, single, "test_kettle"),
        appliance_entities(hass, phases, "test_kettle"),
    )
    kw = {"unit_of_measurement": "kW", "device_class": "power"}
    w = {"unit_of_measurement": "W", "device_class": "power"}
    compared = 0
    peak = 0.0
    for i, watts in enumerate(house20["Aggregate"][700:860]):  # a kettle boil at 815
        replayer.freezer.move_to(replayer.now)
        hass.states.async_set("sensor.l1", f"{0.4 * watts / 1000:.6f}", kw)
        hass.states.async_set("sensor.l2", f"{0.6 * watts:.4f}", w)
        await replayer.step(float(watts))
        if i >= FIRST_VALID_STEP:
            pa, pb = float(state_of(hass, a["power"])), float(state_of(hass, b["power"]))
            assert pb == pytest.approx(pa, abs=max(25.0, 0.03 * pa))
            ua, ub = float(state_of(hass, a["untracked"])), float(state_of(hass, b["untracked"]))
            assert ub == pytest.approx(ua, abs=max(25.0, 0.03 * ua))
            compared += 1
            peak = max(peak, pa)
    assert compared > 30
    assert peak > 1000  # the boil was seen by both, so the comparison covered real load


async def test_inference_error_makes_only_that_appliance_unavailable(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    # (A card naming an output the model lacks is refused at load now: see test_init.)
    entry = await setup_entry(hass, make_entry())
    kettle, microwave = (
        appliance_entities(hass, entry, "test_kettle"),
        appliance_entities(hass, entry, "test_microwave"),
    )

    def failing_predict(windows: np.ndarray) -> Any:
        raise ModelError("model has no output 5 for power")

    model = entry.runtime_data.coordinator.appliances["test_microwave"].model
    model.predict = failing_predict  # type: ignore[method-assign]
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    assert state_of(hass, kettle["power"]) != STATE_UNAVAILABLE
    assert state_of(hass, microwave["power"]) == STATE_UNAVAILABLE
    assert state_of(hass, microwave["running"]) == STATE_UNAVAILABLE
    # Without every appliance the untracked remainder is unknown, not a guess.
    assert state_of(hass, kettle["untracked"]) == STATE_UNAVAILABLE
    errors = list(entry.runtime_data.coordinator.last_errors)
    assert errors
    assert errors[-1].startswith("test_microwave: ModelError")


async def test_a_tick_during_a_slow_inference_is_skipped_then_caught_up(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    """A slow host: a tick that finds the previous job running is skipped, not queued.

    The slots it would have run stay buffered and the next tick runs them in one batch.
    """
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    coordinator = entry.runtime_data.coordinator
    power = house20["Aggregate"][600 : 604 + WINDOW]
    for watts in power[: WINDOW + 1]:
        await replayer.step(float(watts))
    runtime = coordinator.appliances["test_kettle"]
    resampler = coordinator.resamplers[runtime.period_s]
    assert runtime.last_slot == resampler.newest_slot

    started, release = threading.Event(), threading.Event()
    batches: list[int] = []
    predict = runtime.model.predict

    def slow_predict(windows: np.ndarray) -> Any:
        batches.append(len(windows))
        started.set()
        release.wait(30)
        return predict(windows)

    runtime.model.predict = slow_predict  # type: ignore[method-assign]
    replayer.freezer.move_to(replayer.now)
    hass.states.async_set(MAINS, f"{power[WINDOW + 1]:.1f}", W_ATTRS)
    moment = replayer.now + timedelta(seconds=15)
    replayer.freezer.move_to(moment)
    async_fire_time_changed(hass, moment)
    assert await asyncio.to_thread(started.wait, 30)  # the job now blocks in the executor

    for k in (1, 2):  # two more slots close while it runs
        replayer.now += timedelta(seconds=30)
        replayer.freezer.move_to(replayer.now)
        hass.states.async_set(MAINS, f"{power[WINDOW + 1 + k]:.1f}", W_ATTRS)
        moment = replayer.now + timedelta(seconds=15)
        replayer.freezer.move_to(moment)
        async_fire_time_changed(hass, moment)
        for _ in range(20):
            await asyncio.sleep(0)
    assert coordinator.ticks_skipped == 2
    assert runtime.last_slot != resampler.newest_slot

    release.set()
    await hass.async_block_till_done()
    replayer.now += timedelta(seconds=30)
    await replayer.tick(15.0)
    assert batches[0] == 1
    assert batches[-1] >= 2  # the skipped slots ran together
    assert runtime.last_slot == resampler.newest_slot
    assert (
        state_of(hass, appliance_entities(hass, entry, "test_kettle")["power"]) != STATE_UNAVAILABLE
    )


async def test_solar_homes_match_the_consumption_sensor(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    """Three homes measured three ways, one house: a consumption sensor (an entry from
    before the mains type existed), two signed grid phases plus the inverter, and grid
    import/export sensors plus the inverter. All stay available through the export and
    agree on power, untracked power and energy."""
    await hass.config.async_set_time_zone("UTC")
    consumption = house20["Aggregate"][ROWS]
    pv = _pv_w(ROWS)
    net = consumption - pv  # the grid: negative while exporting
    assert (net < 0).mean() > 0.5, "the replay must export most of the time"
    assert (net > 0).sum() >= 60, "and import during the cloud"
    assert (net > 1000).sum() >= 4, "and during the boils"

    legacy = await setup_entry(hass, make_entry(["test_kettle"]))  # no mains_type: 1.1
    grid = await setup_entry(
        hass,
        _entry(
            {
                "mains_type": "grid",
                "mains_entities": ["sensor.grid_l1", "sensor.grid_l2"],
                "solar_entities": ["sensor.solar"],
            },
            "grid",
        ),
    )
    split = await setup_entry(
        hass,
        _entry(
            {
                "mains_type": "import_export",
                "mains_entities": ["sensor.grid_import"],
                "export_entities": ["sensor.grid_export"],
                "solar_entities": ["sensor.solar"],
            },
            "split",
        ),
    )
    entries = {"consumption": legacy, "grid": grid, "import_export": split}
    power = {k: _entity(hass, e, "power") for k, e in entries.items()}
    untracked = {k: _entity(hass, e, "untracked_power") for k, e in entries.items()}
    status = {
        k: er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{e.entry_id}_status")
        for k, e in entries.items()
    }

    peak = 0.0
    compared = 0
    for i, (house, solar, grid_w) in enumerate(zip(consumption, pv, net, strict=True)):
        replayer.freezer.move_to(replayer.now)
        # Solar on phase 1: that phase exports, phase 2 only imports.
        hass.states.async_set("sensor.grid_l1", f"{0.5 * house - solar:.1f}", W)
        hass.states.async_set("sensor.grid_l2", f"{0.5 * house:.1f}", W)
        hass.states.async_set("sensor.solar", f"{solar:.1f}", W)
        hass.states.async_set("sensor.grid_import", f"{max(grid_w, 0.0):.1f}", W)
        hass.states.async_set("sensor.grid_export", f"{max(-grid_w, 0.0):.1f}", W)
        await replayer.step(float(house))
        if i < WINDOW:
            continue
        for kind in entries:
            assert _value(hass, power[kind]) != STATE_UNAVAILABLE, (kind, i, grid_w)
            assert _value(hass, untracked[kind]) != STATE_UNAVAILABLE, (kind, i)
        for kind, entity_id in status.items():
            assert entity_id is not None
            assert _value(hass, entity_id) == "running", (kind, i)
        reference = float(_value(hass, power["consumption"]))
        for kind in ("grid", "import_export"):
            assert float(_value(hass, power[kind])) == pytest.approx(
                reference, abs=max(25.0, 0.03 * reference)
            ), (kind, i)
            assert float(_value(hass, untracked[kind])) == pytest.approx(
                float(_value(hass, untracked["consumption"])), abs=30.0
            ), (kind, i)
        peak = max(peak, reference)
        compared += 1
    assert compared > 400
    assert peak > 1000  # the boils were seen, so the comparison covered a real load

    energy = {k: float(_value(hass, _entity(hass, e, "energy"))) for k, e in entries.items()}
    assert energy["consumption"] > 0.02
    for kind in ("grid", "import_export"):
        assert energy[kind] == pytest.approx(energy["consumption"], rel=0.02, abs=1e-3), kind
    # The derived consumption is what the consumption sensor read.
    for kind in ("grid", "import_export"):
        resampler = entries[kind].runtime_data.coordinator.resamplers[30.0]
        # (the newest closed slot is the one before the last value)
        assert resampler.latest_value() == pytest.approx(consumption[-2], abs=0.5)
        assert resampler.masked_fraction == 0.0


async def test_signed_grid_without_solar_is_missing_while_exporting(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    """Without a production sensor the consumption is unknown while exporting: never
    guessed; the status says the consumption came out negative."""
    entry = await setup_entry(
        hass,
        _entry({"mains_type": "grid", "mains_entities": [MAINS], "solar_entities": []}, MAINS),
    )
    power = _entity(hass, entry, "power")
    status = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_status")
    assert status is not None
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    assert _value(hass, power) != STATE_UNAVAILABLE
    for _ in range(12):  # six minutes of export: longer than max_gap_s (300 s)
        await replayer.step(-1500.0)
    assert _value(hass, power) == STATE_UNAVAILABLE
    state = hass.states.get(status)
    assert state is not None
    assert state.state == "waiting_for_mains"
    assert state.attributes["missing_sensors"] == []
    assert state.attributes["consumption_negative"] is True
    coordinator = entry.runtime_data.coordinator
    assert coordinator.readings_refused == 0  # a negative grid reading is valid
    assert coordinator.diagnostics()["negative_consumption_refused"] == 12


async def test_status_no_models_and_model_error(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    for suffix in (".tflite", ".json"):
        (user_models / f"test_kettle{suffix}").unlink()
    hass.states.async_set(MAINS, "100", W_ATTRS)
    empty = await setup_entry(hass, make_entry(["test_kettle"]))
    assert empty.runtime_data.coordinator.status() == (
        "no_models",
        {"appliances_ready": 0, "appliances": 0},
    )
    entry = await setup_entry(hass, make_entry(["test_microwave"], mains=["sensor.other"]))
    coordinator = entry.runtime_data.coordinator
    model = coordinator.appliances["test_microwave"].model

    def failing(windows: np.ndarray) -> object:
        raise RuntimeError("broken")

    model.predict = failing  # type: ignore[method-assign]
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        replayer.freezer.move_to(replayer.now)
        hass.states.async_set("sensor.other", f"{watts:.1f}", W_ATTRS)
        await replayer.step(float(watts))
    state, attrs = coordinator.status()
    assert state == "model_error"
    assert attrs["failing"] == ["test_microwave"]


async def test_available_again_is_logged_only_after_a_gap(
    hass: HomeAssistant,
    user_models: Path,
    replayer: Replayer,
    house20: dict[str, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.nilm")
    entry = await setup_entry(hass, make_entry(["test_kettle"], options={"max_gap_s": 60}))
    feed = iter(house20["Aggregate"][600:1000])
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert entry.runtime_data.coordinator.appliances["test_kettle"].available
    assert "available again" not in caplog.text  # the first full window is no "again"
    for _ in range(3):
        await replayer.step("unavailable")
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert caplog.text.count("test_kettle is available again") == 1
    assert caplog.text.count("test_kettle is unavailable") == 1


async def test_warming_up_minutes_count_down(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    coordinator = entry.runtime_data.coordinator
    minutes: list[int] = []
    for watts in house20["Aggregate"][600 : 600 + WINDOW]:
        await replayer.step(float(watts))
        state, attrs = coordinator.status()
        assert state == "warming_up"
        minutes.append(attrs["minutes_left"])
    assert minutes[0] == math.ceil(WINDOW * 30 / 60)  # 50 min: a window of 99 x 30 s
    assert minutes == sorted(minutes, reverse=True)
    assert minutes[-1] == 1
    await replayer.step(float(house20["Aggregate"][600 + WINDOW]))
    assert coordinator.status()[0] == "running"
    replayer.now += timedelta(seconds=400)  # the meter falls silent
    assert coordinator.status(replayer.now.timestamp())[0] == "waiting_for_mains"
