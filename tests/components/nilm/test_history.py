"""history.py and the warm start: the recorder's recent mains history is replayed off the
event loop so the entities have values right after setup."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.nilm.engine import backends

from .conftest import (
    MAINS,
    REPLAY_START,
    WINDOW,
    appliance_entities,
    make_entry,
    setup_entry,
    state_of,
)


async def test_warm_start_from_recorder_history(
    recorder_mock: object,
    hass: HomeAssistant,
    user_models: Path,
    freezer: FrozenDateTimeFactory,
    house20: dict[str, np.ndarray],
) -> None:

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
    ids = appliance_entities(hass, entry, "test_kettle")
    # Values right after setup, no tick and no live data needed.
    state = state_of(hass, ids["power"])
    assert state != STATE_UNAVAILABLE
    # Same result as running the model on the last full window of the history.
    model = load_model(user_models / "test_kettle.json", "litert")
    window = np.round(agg[-WINDOW - 1 : -1], 1)
    expected = model.predict(window[np.newaxis, :])
    assert float(state) == pytest.approx(float(expected.power_w[0]), abs=5.0)
    # History is not counted as energy: the restored total is the only source of the past.
    assert float(state_of(hass, ids["energy"])) == 0.0
    assert state_of(hass, ids["untracked"]) != STATE_UNAVAILABLE


async def test_warm_start_failure_is_not_fatal(
    recorder_mock: object, hass: HomeAssistant, user_models: Path
) -> None:
    from unittest.mock import patch

    with patch(
        "homeassistant.components.recorder.history.state_changes_during_period",
        side_effect=RuntimeError("database is locked"),
    ):
        entry = await setup_entry(hass, make_entry(["test_kettle"]))
    ids = appliance_entities(hass, entry, "test_kettle")
    assert state_of(hass, ids["power"]) == STATE_UNAVAILABLE
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
    assert coordinator.warm_start_points == returned[0]  # every row was replayed
    assert feed_threads and loop_thread not in feed_threads  # ... off the event loop
    assert (
        state_of(hass, appliance_entities(hass, entry, "test_kettle")["power"]) != STATE_UNAVAILABLE
    )
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
