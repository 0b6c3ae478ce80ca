"""Runtime behaviour on real mains data (REFIT House 20, never used for training)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_restore_state_shutdown_restart,
    mock_restore_cache_with_extra_data,
)

from custom_components.nilm import runtime
from custom_components.nilm.const import CONF_MAX_GAP_S, DOMAIN
from custom_components.nilm.coordinator import CONF_MAX_POWER_W, parse_power_w
from custom_components.nilm.diagnostics import async_get_config_entry_diagnostics
from custom_components.nilm.engine.errors import ModelError

from .conftest import MAINS, REPLAY_START, W_ATTRS, Replayer, make_entry, setup_entry
from .test_models import install

WINDOW = 99
LAG = 3  # the tick after slot i is set reports target sample i - 3 (2 look-ahead + 1)
FIRST_VALID_STEP = WINDOW  # 99 closed slots are needed


def _ids(hass: HomeAssistant, entry: MockConfigEntry, name: str) -> dict[str, str]:
    reg = er.async_get(hass)
    out = {}
    for domain, key in (
        ("sensor", "power"),
        ("sensor", "energy"),
        ("sensor", "energy_today"),
        ("binary_sensor", "running"),
    ):
        entity_id = reg.async_get_entity_id(domain, DOMAIN, f"{entry.entry_id}_{name}_{key}")
        assert entity_id is not None
        out[key] = entity_id
    untracked = reg.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_untracked_power")
    assert untracked is not None
    out["untracked"] = untracked
    return out


def _state(hass: HomeAssistant, entity_id: str) -> str:
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
    kettle = _ids(hass, entry, "test_kettle")
    microwave = _ids(hass, entry, "test_microwave")
    rows = slice(600, 1600)  # 2014-06-01 05:00-13:20 UTC: three kettle boils
    agg = house20["Aggregate"][rows]
    truth = house20["Kettle"][rows]

    running: list[bool] = []
    powers: list[float] = []
    energies: list[float] = []
    for i, watts in enumerate(agg):
        await replayer.step(float(watts))
        if i < FIRST_VALID_STEP:
            assert _state(hass, kettle["power"]) == STATE_UNAVAILABLE, i
            assert _state(hass, kettle["running"]) == STATE_UNAVAILABLE
            continue
        power = float(_state(hass, kettle["power"]))
        running.append(_state(hass, kettle["running"]) == "on")
        powers.append(power)
        energies.append(float(_state(hass, kettle["energy"])))
        assert (power > 0) == running[-1]
        untracked = float(_state(hass, kettle["untracked"]))
        other = float(_state(hass, microwave["power"]))
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
    assert float(_state(hass, kettle["energy_today"])) == pytest.approx(energies[-1], abs=1e-6)

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
    ids = _ids(hass, entry, "test_kettle")
    agg = house20["Aggregate"][600:1000]
    feed = iter(agg)
    for _ in range(WINDOW + 1):  # the 99th slot closes when the 100th value arrives
        await replayer.step(float(next(feed)))
    assert _state(hass, ids["power"]) != STATE_UNAVAILABLE
    # One bad sample (30 s < max_gap_s) is bridged by the hold.
    await replayer.step(bad, attrs=attrs)
    assert _state(hass, ids["power"]) != STATE_UNAVAILABLE
    await replayer.step(float(next(feed)))
    assert _state(hass, ids["power"]) != STATE_UNAVAILABLE
    # Three bad samples (> 60 s) are a gap: unavailable until a full window is real again.
    for _ in range(3):
        await replayer.step(bad, attrs=attrs)
    assert _state(hass, ids["power"]) == STATE_UNAVAILABLE
    assert _state(hass, ids["running"]) == STATE_UNAVAILABLE
    assert _state(hass, ids["untracked"]) == STATE_UNAVAILABLE
    for _ in range(WINDOW + 1):
        assert _state(hass, ids["power"]) == STATE_UNAVAILABLE
        await replayer.step(float(next(feed)))
    assert _state(hass, ids["power"]) != STATE_UNAVAILABLE
    assert _state(hass, ids["untracked"]) != STATE_UNAVAILABLE
    # Nothing implausible ever reached the windows (so never the energy either).
    resampler = entry.runtime_data.coordinator.resamplers[30.0]
    assert np.nanmax(resampler.buffer.latest(resampler.buffer.capacity)) < 25_000
    assert float(_state(hass, ids["energy"])) < 1.0


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
    assert card.status.probability_threshold == 0.5


async def test_clock_stepping_back_restarts_the_windows(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    """After NTP steps the clock back 3 h the entities must not stay frozen at their last
    values: they become unavailable, then recover on a full window of new data."""
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = _ids(hass, entry, "test_kettle")
    feed = iter(house20["Aggregate"][600:1200])
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert _state(hass, ids["power"]) != STATE_UNAVAILABLE
    energy = float(_state(hass, ids["energy"]))

    # Home Assistant re-arms a timer that fires before its wall-clock time: the pending
    # tick now waits 3 h, only the sensor's updates (stamped with the new time) arrive.
    replayer.now -= timedelta(hours=3)
    for _ in range(3):
        await replayer.step(float(next(feed)))
    assert _state(hass, ids["power"]) == STATE_UNAVAILABLE
    assert _state(hass, ids["running"]) == STATE_UNAVAILABLE
    assert entry.runtime_data.coordinator.clock_resets == 1
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert _state(hass, ids["power"]) != STATE_UNAVAILABLE
    assert _state(hass, ids["untracked"]) != STATE_UNAVAILABLE
    assert float(_state(hass, ids["energy"])) >= energy
    assert entry.runtime_data.coordinator.clock_resets == 1


async def test_silent_sensor_is_a_gap_but_reports_keep_it_alive(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    entry = await setup_entry(hass, make_entry(["test_kettle"], options={CONF_MAX_GAP_S: 60}))
    ids = _ids(hass, entry, "test_kettle")
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    # A constant load re-reported with the same value (state_reported events) stays valid.
    for _ in range(5):
        await replayer.step(250.0)
    assert _state(hass, ids["power"]) != STATE_UNAVAILABLE
    # The meter stops reporting altogether: after max_gap_s the entities go unavailable.
    await replayer.silence(120)
    assert _state(hass, ids["power"]) == STATE_UNAVAILABLE


async def test_kw_and_summed_phases_match_a_single_watt_sensor(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    single = await setup_entry(hass, make_entry(["test_kettle"]))
    phases = await setup_entry(hass, make_entry(["test_kettle"], mains=["sensor.l1", "sensor.l2"]))
    a, b = _ids(hass, single, "test_kettle"), _ids(hass, phases, "test_kettle")
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
            pa, pb = float(_state(hass, a["power"])), float(_state(hass, b["power"]))
            assert pb == pytest.approx(pa, abs=max(25.0, 0.03 * pa))
            ua, ub = float(_state(hass, a["untracked"])), float(_state(hass, b["untracked"]))
            assert ub == pytest.approx(ua, abs=max(25.0, 0.03 * ua))
            compared += 1
            peak = max(peak, pa)
    assert compared > 30
    assert peak > 1000  # the boil was seen by both, so the comparison covered real load


async def test_energy_is_restored_across_a_restart(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    await hass.config.async_set_time_zone("UTC")
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = _ids(hass, entry, "test_kettle")
    feed = iter(house20["Aggregate"][700:1100])
    for _ in range(WINDOW + 30):  # covers the 06:47 boil
        await replayer.step(float(next(feed)))
    before = float(_state(hass, ids["energy"]))
    assert before > 0

    await async_mock_restore_state_shutdown_restart(hass)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    # Unavailable until a window is full again, then it continues from the restored total.
    assert _state(hass, ids["energy"]) == STATE_UNAVAILABLE
    values = []
    for _ in range(WINDOW + 60):
        await replayer.step(float(next(feed)))
        if (state := _state(hass, ids["energy"])) != STATE_UNAVAILABLE:
            values.append(float(state))
    assert values[0] >= before
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert float(_state(hass, ids["energy_today"])) == pytest.approx(values[-1], abs=1e-6)


async def test_energy_today_starts_at_zero_on_a_new_day_and_resets_at_midnight(
    hass: HomeAssistant,
    user_models: Path,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
) -> None:
    # The replay's kettle boil (row 815) lands 10 minutes before local midnight.
    tz = dt_util.get_default_time_zone()
    local_midnight = (REPLAY_START.astimezone(tz) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0
    )
    start = local_midnight.astimezone(dt_util.UTC) - timedelta(seconds=30 * (815 - 700 + 20))
    freezer.move_to(start - timedelta(seconds=20))
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.kettle_energy", "5.0"),
                {"native_value": 5.0, "native_unit_of_measurement": "kWh"},
            ),
            (
                State(
                    "sensor.kettle_energy_today",
                    "1.5",
                    last_updated=start - timedelta(days=1),
                ),
                {"native_value": 1.5, "native_unit_of_measurement": "kWh"},
            ),
        ],
    )
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = _ids(hass, entry, "test_kettle")
    assert ids["energy"] == "sensor.kettle_energy"
    replayer = Replayer(hass, freezer, start)
    before_midnight = after_midnight = None
    for watts in house20["Aggregate"][700:900]:
        await replayer.step(float(watts))
        if replayer.now <= local_midnight:
            before_midnight = _state(hass, ids["energy_today"])
        elif after_midnight is None:
            after_midnight = _state(hass, ids["energy_today"])
    energy = float(_state(hass, ids["energy"]))
    assert before_midnight is not None and after_midnight is not None
    # Yesterday's 1.5 kWh did not leak into today; the lifetime total kept its 5 kWh.
    today = float(before_midnight)
    assert 0 < today < 1.0
    assert energy == pytest.approx(5.0 + today, abs=1e-3)
    assert float(after_midnight) < today
    assert float(_state(hass, ids["energy_today"])) <= energy - 5.0


async def test_warm_start_from_recorder_history(
    recorder_mock: object,
    hass: HomeAssistant,
    user_models: Path,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
) -> None:
    from pytest_homeassistant_custom_component.components.recorder.common import (
        async_wait_recording_done,
    )

    from custom_components.nilm.engine.model import load_model

    await hass.config.async_set_time_zone("UTC")
    agg = house20["Aggregate"][700:850]  # 75 minutes of history, boil at row 815
    # Then 20 minutes of a perfectly constant load: only re-reports (same value), which
    # the recorder keeps as the row's last_reported, longer than max_gap_s (300 s).
    agg = np.concatenate([agg, np.full(40, 180.0)])
    for i, watts in enumerate(agg):
        freezer.move_to(REPLAY_START + timedelta(seconds=30 * i))
        hass.states.async_set(MAINS, f"{watts:.1f}", {"unit_of_measurement": "W"})
        await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    end = REPLAY_START + timedelta(seconds=30 * len(agg) - 15)
    freezer.move_to(end)

    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = _ids(hass, entry, "test_kettle")
    # Values right after setup, no tick and no live data needed.
    state = _state(hass, ids["power"])
    assert state != STATE_UNAVAILABLE
    # Same result as running the model on the last full window of the history.
    model = load_model(user_models / "test_kettle.json", "litert")
    window = np.round(agg[-WINDOW - 1 : -1], 1)
    expected = model.predict(window[np.newaxis, :])
    assert float(state) == pytest.approx(float(expected.power_w[0]), abs=5.0)
    # History is not counted as energy: the restored total is the only source of the past.
    assert float(_state(hass, ids["energy"])) == 0.0
    assert _state(hass, ids["untracked"]) != STATE_UNAVAILABLE


async def test_warm_start_failure_is_not_fatal(
    recorder_mock: object, hass: HomeAssistant, user_models: Path
) -> None:
    from unittest.mock import patch

    with patch(
        "homeassistant.components.recorder.history.state_changes_during_period",
        side_effect=RuntimeError("database is locked"),
    ):
        entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = _ids(hass, entry, "test_kettle")
    assert _state(hass, ids["power"]) == STATE_UNAVAILABLE
    errors = entry.runtime_data.coordinator.last_errors
    assert list(errors) == ["warm start: RuntimeError: database is locked"]


def _ten_hz_history(entity_id: str, watts: np.ndarray, end_ts: float) -> list[State]:
    """A 10 Hz meter's recorder rows ending at ``end_ts``: one row per reading (the
    value changes every 0.1 s), ``watts`` one value per 30 s slot plus a ripple."""
    attrs = {"unit_of_measurement": "W"}
    per_slot = 300
    start_ts = end_ts - len(watts) * per_slot * 0.1
    ripple = np.tile([0.0, 0.3, 0.1, -0.2, 0.2, -0.1, 0.0, 0.3, -0.3, 0.1], per_slot // 10)
    states = []
    for i, value in enumerate(watts):
        for k in range(per_slot):
            moment = dt_util.utc_from_timestamp(start_ts + (i * per_slot + k) * 0.1)
            states.append(
                State(
                    entity_id,
                    f"{value + ripple[k]:.1f}",
                    attrs,
                    last_changed=moment,
                    last_reported=moment,
                    last_updated=moment,
                    validate_entity_id=False,
                )
            )
    return states


async def test_warm_start_from_a_10_hz_meter_never_blocks_the_event_loop(
    recorder_mock: object,
    hass: HomeAssistant,
    user_models: Path,
    house20: dict[str, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three hours of a 10 Hz meter (105,000 recorder rows, 36,000 per hour): replaying
    them and the 240-window inference run in the executor, the event loop never stalls
    for more than ~20 ms, and no backend call gets more than 16 windows."""
    import gc
    import time
    from unittest.mock import patch

    from custom_components.nilm import coordinator as nilm_coordinator
    from custom_components.nilm.const import INFERENCE_CHUNK_WINDOWS
    from custom_components.nilm.engine import backends

    slots = WINDOW + 240 + 11  # the 240 warm-start windows and max_gap_s, in full
    history = _ten_hz_history(MAINS, house20["Aggregate"][600 : 600 + slots], time.time())

    def state_changes(
        hass: HomeAssistant, start: Any, end: Any, entity_id: str, **kwargs: Any
    ) -> dict[str, list[State]]:
        lo, hi = start.timestamp(), end.timestamp()
        rows = [s for s in history if lo <= s.last_updated_timestamp <= hi]
        returned.append(len(rows))
        return {entity_id: rows}

    returned: list[int] = []
    batches: list[int] = []
    for cls in (backends.LiteRTBackend, backends.NumpyBackend):
        run = cls.run

        def spy(self: Any, inputs: np.ndarray, _run: Any = run) -> list[np.ndarray]:
            batches.append(len(inputs))
            return _run(self, inputs)  # type: ignore[no-any-return]

        monkeypatch.setattr(cls, "run", spy)
    loop_thread = threading.get_ident()
    feed_threads: set[int] = set()
    feed = nilm_coordinator.NilmCoordinator._feed

    def spy_feed(self: Any, *args: Any) -> None:
        feed_threads.add(threading.get_ident())
        feed(self, *args)

    monkeypatch.setattr(nilm_coordinator.NilmCoordinator, "_feed", spy_feed)

    # The loop's longest busy stretch while the warm start runs, in CPU time of the
    # loop's thread: waiting for the GIL or for a core (2 shared cores here) is not the
    # loop doing work, so only what the warm start itself runs on the loop counts.
    stalls: list[tuple[float, float]] = []  # (CPU s, wall s) between heartbeats
    warming = threading.Event()
    done = asyncio.Event()
    warm_start = nilm_coordinator.NilmCoordinator._async_warm_start

    async def measured_warm_start(self: Any) -> None:
        warming.set()
        try:
            await warm_start(self)
        finally:
            warming.clear()
            done.set()

    monkeypatch.setattr(nilm_coordinator.NilmCoordinator, "_async_warm_start", measured_warm_start)

    async def heartbeat() -> None:
        await asyncio.sleep(0)
        last = (time.thread_time(), time.perf_counter())
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = (time.thread_time(), time.perf_counter())
            if warming.is_set():
                stalls.append((now[0] - last[0], now[1] - last[1]))
            last = now

    # A garbage collection pauses whichever thread triggers it for as long as the whole
    # heap takes (the 105,000 rows above, the test process): not the warm start's doing.
    gc.collect()
    gc.disable()
    try:
        beat = asyncio.create_task(heartbeat())
        with patch(
            "homeassistant.components.recorder.history.state_changes_during_period",
            side_effect=state_changes,
        ):
            entry = await setup_entry(hass, make_entry(["test_kettle"]))
        await beat
    finally:
        gc.enable()
    worst_cpu_ms = max(c for c, _ in stalls) * 1000.0
    worst_wall_ms = max(w for _, w in stalls) * 1000.0

    coordinator = entry.runtime_data.coordinator
    assert returned[0] > 100_000
    assert coordinator.warm_start_windows == returned[0]  # every row was replayed
    assert feed_threads and loop_thread not in feed_threads  # ... off the event loop
    assert _state(hass, _ids(hass, entry, "test_kettle")["power"]) != STATE_UNAVAILABLE
    runtime = coordinator.appliances["test_kettle"]
    assert runtime.predictions == 240
    # The warm start's 240 windows (plus the backends' load-time probes of 1-3 windows)
    # arrive in calls of at most 16 windows.
    calls = -(-240 // INFERENCE_CHUNK_WINDOWS)
    assert sum(batches[-calls:]) == 240
    assert max(batches) <= INFERENCE_CHUNK_WINDOWS <= 32
    # Replaying on the loop held it for ~600 ms of CPU here; now a few ms at most.
    assert len(stalls) > 10, "the warm start ran in one piece"
    assert worst_cpu_ms < 20.0, (
        f"the warm start held the event loop for {worst_cpu_ms:.0f} ms of CPU "
        f"({worst_wall_ms:.0f} ms wall)"
    )


def test_inference_runs_in_bounded_chunks() -> None:
    """Whatever the batch (warm start, catching up after skipped ticks), no backend call
    gets more than the chunk, and the results equal one call on everything."""
    from custom_components.nilm.const import INFERENCE_CHUNK_WINDOWS
    from custom_components.nilm.coordinator import ApplianceRuntime, _Job, _run_jobs
    from custom_components.nilm.engine.model import load_model
    from custom_components.nilm.engine.status import StatusTracker

    from .conftest import FIXTURE_MODELS

    model = load_model(FIXTURE_MODELS / "test_kettle.json", "numpy")
    sizes: list[int] = []
    run = model.backend.run

    def spy(inputs: np.ndarray) -> list[np.ndarray]:
        sizes.append(len(inputs))
        return run(inputs)

    model.backend.run = spy  # type: ignore[method-assign]
    rng = np.random.default_rng(1)
    windows = rng.uniform(100.0, 3000.0, size=(240, WINDOW))
    tracker = StatusTracker(model.card.status, model.card.sample_period_s)
    job = _Job(ApplianceRuntime("kettle", model, tracker), windows, np.ones(240, dtype=bool))
    (result,) = _run_jobs([job])
    assert max(sizes) == INFERENCE_CHUNK_WINDOWS < 240
    assert sum(sizes) == 240 and len(sizes) == -(-240 // INFERENCE_CHUNK_WINDOWS)
    whole = model.predict(windows)
    assert result.error is None and result.raw_power_w is not None and result.raw_on is not None
    np.testing.assert_array_equal(result.raw_power_w, whole.raw_power_w)
    np.testing.assert_array_equal(result.raw_on, whole.on)
    assert whole.probability is not None and result.probability is not None
    np.testing.assert_array_equal(result.probability, whole.probability)
    sizes.clear()
    (result,) = _run_jobs([_Job(job.runtime, windows[:37], np.ones(37, dtype=bool))], chunk=10)
    assert sizes == [10, 10, 10, 7]
    assert result.raw_power_w is not None and len(result.raw_power_w) == 37


async def test_inference_error_makes_only_that_appliance_unavailable(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    # (A card naming an output the model lacks is refused at load now: see test_init.)
    entry = await setup_entry(hass, make_entry())
    kettle, microwave = _ids(hass, entry, "test_kettle"), _ids(hass, entry, "test_microwave")

    def failing_predict(windows: np.ndarray) -> Any:
        raise ModelError("model has no output 5 for power")

    model = entry.runtime_data.coordinator.appliances["test_microwave"].model
    model.predict = failing_predict  # type: ignore[method-assign]
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    assert _state(hass, kettle["power"]) != STATE_UNAVAILABLE
    assert _state(hass, microwave["power"]) == STATE_UNAVAILABLE
    assert _state(hass, microwave["running"]) == STATE_UNAVAILABLE
    # Without every appliance the untracked remainder is unknown, not a guess.
    assert _state(hass, kettle["untracked"]) == STATE_UNAVAILABLE
    errors = list(entry.runtime_data.coordinator.last_errors)
    assert errors
    assert errors[-1].startswith("test_microwave: ModelError")


async def test_unusable_restored_energy_starts_from_zero(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.kettle_energy", "abc"),
                {"native_value": "abc", "native_unit_of_measurement": "kWh"},
            )
        ],
    )
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = _ids(hass, entry, "test_kettle")
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    assert float(_state(hass, ids["energy"])) < 0.1


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
    assert _state(hass, _ids(hass, entry, "test_kettle")["power"]) != STATE_UNAVAILABLE


# --- one model per appliance, thresholds by appliance, repair texts ----------------------


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

    ids = _ids(hass, entry, "kettle")
    microwave = _ids(hass, entry, "test_microwave")
    agg = house20["Aggregate"][700:860]  # a kettle boil at row 815
    for i, watts in enumerate(agg):
        await replayer.step(float(watts))
        if i <= FIRST_VALID_STEP:
            continue
        power = float(_state(hass, ids["power"]))
        other = float(_state(hass, microwave["power"]))
        untracked = float(_state(hass, ids["untracked"]))
        assert untracked == pytest.approx(max(0.0, agg[i - LAG] - power - other), abs=0.2)


def _uids(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    return {
        e.unique_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }


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


async def test_repair_texts_read_cleanly(hass: HomeAssistant, user_models: Path) -> None:
    """The engine's message ends in "..." (a hash prefix): the repair's text must not add
    a full stop to it ("e399191a8967.... Its file")."""
    data = bytearray((user_models / "test_microwave.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (user_models / "test_microwave.tflite").write_bytes(bytes(data))
    entry = await setup_entry(hass, make_entry())
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave")
    assert issue is not None
    placeholders = issue.translation_placeholders or {}
    assert placeholders["error"].endswith("...")
    en = json.loads(
        (Path(runtime.__file__).parent / "translations" / "en.json").read_text(encoding="utf-8")
    )
    for key in runtime.MODEL_REPAIRS:  # the repairs that get these placeholders
        text = en["issues"][key]["description"].format(**placeholders)
        assert "...." not in text, key
        assert ".." not in text.replace(placeholders["error"], ""), key
