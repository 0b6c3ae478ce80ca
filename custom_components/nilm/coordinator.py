"""The coordinator: mains sensor(s) -> resampled windows -> one batched inference per tick.

The event loop only collects sensor updates (cheap) and hands every tick's windows to a
single executor job (:mod:`.inference`). The warm start replays the recorder's history
(:mod:`.history`; up to hundreds of thousands of states from a 10 Hz meter) in the
executor too: the event loop only applies the results. After every update the
coordinator publishes a frozen :class:`.data.NilmSnapshot`, which is all entities read.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from homeassistant.core import (
    Event,
    EventStateChangedData,
    EventStateReportedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_state_change_event,
    async_track_state_report_event,
)
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .appliance import ApplianceRuntime
from .const import (
    DEFAULT_MAX_POWER_W,
    DOMAIN,
    LAST_ERRORS,
    LATENCY_SAMPLES,
    STATUS_MODEL_ERROR,
    STATUS_NO_MODELS,
    STATUS_RUNNING,
    STATUS_WAITING_FOR_MAINS,
    STATUS_WARMING_UP,
    WARM_START_MAX_WINDOWS,
)
from .data import NilmConfigEntry, NilmSnapshot
from .engine.model import NilmModel
from .engine.resample import ZohResampler
from .engine.status import StatusTracker
from .facts import model_facts
from .history import async_read_history, merged_history_points, recorder_loaded
from .inference import InferenceJob, InferenceResult, latency_stats, run_jobs
from .mains import MainsCombiner, MainsTerm, check_reading

_LOGGER = logging.getLogger(__name__)

# Seconds after a slot boundary at which the tick runs: late enough for the sensor update
# that lands on the boundary, early enough that entities lag by only a few seconds.
TICK_DELAY_S = 2.0
# A sensor update or tick this much older than the newest one seen means the clock
# stepped back (NTP, a wrong RTC corrected). Home Assistant then re-arms pending timers
# until the old time comes again, and the resampler would hold every new reading until
# then: the entities would stay frozen for hours. The windows restart instead.
CLOCK_STEP_TOLERANCE_S = 10.0


class NilmCoordinator(DataUpdateCoordinator[NilmSnapshot]):
    """Push-driven coordinator: its data is the snapshot of the newest update."""

    config_entry: NilmConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: NilmConfigEntry,
        mains: Sequence[str | MainsTerm],
        models: dict[str, NilmModel],
        max_gap_s: float,
        *,
        max_power_w: float = DEFAULT_MAX_POWER_W,
    ) -> None:
        super().__init__(hass, _LOGGER, config_entry=entry, name=DOMAIN)
        self.ticks = 0  # completed updates
        self._combiner = MainsCombiner(mains, max_gap_s)
        self.mains_terms = self._combiner.terms
        self.mains_entities = self._combiner.entity_ids  # every sensor subscribed to
        self._signed = {t.entity_id for t in self.mains_terms if t.signed}
        self.max_gap_s = max_gap_s
        self.max_power_w = max_power_w
        self.appliances: dict[str, ApplianceRuntime] = {
            name: ApplianceRuntime(
                name, model, StatusTracker(model.card.status, model.card.sample_period_s)
            )
            for name, model in models.items()
        }
        capacity: dict[float, int] = {}
        for runtime in self.appliances.values():
            need = runtime.window_length + WARM_START_MAX_WINDOWS
            capacity[runtime.period_s] = max(capacity.get(runtime.period_s, 0), need)
        self.resamplers: dict[float, ZohResampler] = {
            period: ZohResampler(period, cap, max_gap_s) for period, cap in capacity.items()
        }
        self.clock_resets = 0
        self.readings_refused = 0
        self._clock_ref = -math.inf  # newest live event or tick time seen
        self._busy = False
        self._unsub_tick: Callable[[], None] | None = None
        self.tick_latencies_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.last_errors: deque[str] = deque(maxlen=LAST_ERRORS)
        self.untracked_power_w: float | None = None
        self.mains_power_w: float | None = None
        self.warm_start_points = 0
        self.ticks_skipped = 0
        self._mains_w: float | None = None  # the newest house consumption (None: missing)
        self._mains_ts = -math.inf  # when it was last usable
        self.data = self._snapshot()

    # ------------------------------------------------------------------ lifecycle

    async def async_start(self) -> list[Callable[[], None]]:
        """Warm start, subscribe to the mains sensor(s) and start ticking.

        Returns the unsubscribe callbacks for the config entry to call on unload.
        """
        await self._async_warm_start()
        unsubs = [
            async_track_state_change_event(self.hass, self.mains_entities, self._on_state_changed),
            async_track_state_report_event(self.hass, self.mains_entities, self._on_state_reported),
        ]
        now = dt_util.utcnow().timestamp()
        for entity_id in self.mains_entities:
            state = self.hass.states.get(entity_id)
            if state is not None:
                self._feed(entity_id, state, min(state.last_reported_timestamp, now))
        if self.resamplers:
            self._schedule_tick()
            unsubs.append(self._cancel_tick)
        self.data = self._snapshot()  # the current readings, before the entities exist
        return unsubs

    # ------------------------------------------------------------------ input

    @callback
    def _on_state_changed(self, event: Event[EventStateChangedData]) -> None:
        new_state = event.data["new_state"]
        ts = new_state.last_updated_timestamp if new_state else event.time_fired_timestamp
        self._live(event.data["entity_id"], new_state, ts)

    @callback
    def _on_state_reported(self, event: Event[EventStateReportedData]) -> None:
        new_state = event.data["new_state"]
        if new_state is not None:
            self._live(event.data["entity_id"], new_state, new_state.last_reported_timestamp)

    def _live(self, entity_id: str, state: State | None, ts: float) -> None:
        """A live update: stamped with the current clock, so it also shows clock steps."""
        if self._clock_went_back(ts):
            self._restart_windows(ts)  # feeds the current states, this one included
            return
        self._feed(entity_id, state, ts)

    def _clock_went_back(self, ts: float) -> bool:
        if ts < self._clock_ref - CLOCK_STEP_TOLERANCE_S:
            return True
        self._clock_ref = max(self._clock_ref, ts)
        return False

    def _feed(self, entity_id: str, state: State | None, ts: float) -> None:
        value, problem = check_reading(
            state, signed=entity_id in self._signed, max_power_w=self.max_power_w
        )
        if problem is not None and problem.refused:
            self.readings_refused += 1  # implausible (too large, inf/NaN, negative, unit)
        total = self._combiner.update(entity_id, value, ts)
        self._mains_w = total
        if total is not None:
            self._mains_ts = max(self._mains_ts, ts)
        for resampler in self.resamplers.values():
            resampler.update(ts, total)

    # ------------------------------------------------------------------ warm start

    async def _async_warm_start(self) -> None:
        """Replay the recorder's recent history so windows are full right after a restart.

        Reading (recorder executor), replaying through the combiner and resamplers and
        the inference (executor, in chunks) all run off the event loop: a 10 Hz meter
        leaves 36,000 states per hour of history. Nothing else touches the resamplers
        yet (the live subscriptions start after the warm start), so the executor may.
        """
        if not recorder_loaded(self.hass) or not self.appliances:
            return
        longest = max(
            (r.window_length + WARM_START_MAX_WINDOWS) * r.period_s
            for r in self.appliances.values()
        )
        end = dt_util.utcnow()
        start = end - timedelta(seconds=longest + self.max_gap_s)
        try:
            raw = await async_read_history(self.hass, start, end, self.mains_entities)
        except Exception as err:  # a broken history must not block setup
            _LOGGER.warning("Warm start from the recorder failed: %s", err)
            self.last_errors.append(f"warm start: {type(err).__name__}: {err}")
            return
        try:
            self.warm_start_points = await self.hass.async_add_executor_job(
                self._replay_history, raw, start.timestamp(), end.timestamp()
            )
        except Exception as err:  # a broken history must not block setup
            _LOGGER.warning("Warm start from the recorder failed: %s", err)
            self.last_errors.append(f"warm start: {type(err).__name__}: {err}")
            self._fresh_windows()  # nothing half-replayed stays
            return
        finally:
            del raw  # the States of hours of a fast meter: free them before inference
        await self._async_process(count_energy=False)

    def _replay_history(self, raw: dict[str, list[State]], start_ts: float, end_ts: float) -> int:
        """Executor side: feed the recorder's rows in time order; return the points fed.

        Each sensor's rows come in time order: merging them (a generator) never holds
        the interpreter for long, unlike sorting every point at once.
        """
        fed = 0
        for ts, entity_id, state in merged_history_points(raw, self.max_gap_s, start_ts, end_ts):
            self._feed(entity_id, state, ts)
            fed += 1
        for resampler in self.resamplers.values():
            resampler.advance(end_ts)
        return fed

    # ------------------------------------------------------------------ ticks

    def _schedule_tick(self) -> None:
        """Tick just after each slot boundary of the shortest period: the slot is then
        complete and results are as fresh as they can be (no drifting interval timer)."""
        period = min(self.resamplers)
        now = dt_util.utcnow().timestamp()
        due = (math.floor((now - TICK_DELAY_S) / period) + 1) * period + TICK_DELAY_S
        self._unsub_tick = async_track_point_in_utc_time(
            self.hass, self._async_tick, dt_util.utc_from_timestamp(due)
        )

    @callback
    def _cancel_tick(self) -> None:
        if self._unsub_tick is not None:
            self._unsub_tick()
            self._unsub_tick = None

    async def _async_tick(self, now: datetime) -> None:
        self._schedule_tick()
        if self._busy:
            # The previous job is still running (slow host): its slots stay buffered and
            # the next tick processes them in one batch.
            self.ticks_skipped += 1
            return
        ts = now.timestamp()
        if self._clock_went_back(ts):
            self._restart_windows(ts)
            return
        for resampler in self.resamplers.values():
            resampler.advance(ts)
        await self._async_process(count_energy=True)

    def _restart_windows(self, ts: float) -> None:
        """The clock went back: what was recorded lies in the "future". Start over from
        now: the entities are unavailable until a full window of new data exists (nothing
        recorded is counted twice or lost from the energy totals)."""
        step = self._clock_ref - ts
        _LOGGER.warning("The clock went back by %.0f s; the NILM windows restart from now", step)
        self.last_errors.append(f"clock stepped back by {step:.0f} s: windows restarted")
        self.clock_resets += 1
        self._clock_ref = ts
        self._fresh_windows()
        for resampler in self.resamplers.values():
            resampler.advance(ts)
        for entity_id in self.mains_entities:  # the current readings start the new windows
            state = self.hass.states.get(entity_id)
            if state is not None:
                self._feed(entity_id, state, ts)
        if self._unsub_tick is not None:  # the pending tick waits for the old time: re-arm
            self._cancel_tick()
            self._schedule_tick()
        self._update_untracked()
        self._publish()

    def _fresh_windows(self) -> None:
        """Empty resamplers and combiner; every appliance waits for a full window."""
        self.resamplers = {
            period: ZohResampler(period, r.buffer.capacity, self.max_gap_s)
            for period, r in self.resamplers.items()
        }
        negative = self._combiner.negative
        self._combiner = MainsCombiner(self.mains_terms, self.max_gap_s)
        self._combiner.negative = negative
        self._mains_w, self._mains_ts = None, -math.inf
        for runtime in self.appliances.values():
            runtime.reset()
            runtime.last_slot = None

    async def _async_process(self, *, count_energy: bool) -> None:
        """Run every slot closed since the last run (by ticks or by sensor updates)."""
        jobs: list[InferenceJob] = []
        for runtime in self.appliances.values():
            newest = self.resamplers[runtime.period_s].newest_slot
            if newest is None:
                continue
            last = runtime.last_slot
            closed = WARM_START_MAX_WINDOWS if last is None else newest - last
            closed = min(closed, WARM_START_MAX_WINDOWS)
            runtime.last_slot = newest
            if closed <= 0:
                continue
            windows, valid = self.resamplers[runtime.period_s].windows(
                runtime.window_length, closed
            )
            jobs.append(InferenceJob(runtime, windows[valid], valid))
        if not jobs:
            return
        self._busy = True
        start = time.perf_counter()
        try:
            results = await self.hass.async_add_executor_job(run_jobs, jobs)
        finally:
            self._busy = False
        self.tick_latencies_ms.append((time.perf_counter() - start) * 1000.0)
        for job, result in zip(jobs, results, strict=True):
            self._apply(job, result, count_energy=count_energy)
        self._update_untracked()
        self._publish()

    def _apply(self, job: InferenceJob, result: InferenceResult, *, count_energy: bool) -> None:
        was_available = job.runtime.available
        self._apply_results(job, result, count_energy=count_energy)
        if was_available and not job.runtime.available:
            _LOGGER.info(
                "%s is unavailable: no complete window of mains data (gap longer than %s s "
                "or an inference error)",
                job.runtime.name,
                self.max_gap_s,
            )
        elif job.runtime.available and not was_available:
            if job.runtime.ever_available:
                _LOGGER.info("%s is available again", job.runtime.name)
            else:
                _LOGGER.debug("%s: first full window of mains data", job.runtime.name)
        if job.runtime.available:
            job.runtime.ever_available = True

    def _apply_results(
        self, job: InferenceJob, result: InferenceResult, *, count_energy: bool
    ) -> None:
        runtime = job.runtime
        if result.error is not None:
            self.last_errors.append(result.error)
            _LOGGER.warning("Inference failed for %s", result.error)
            runtime.fail(result.error)
            return
        if result.latency_ms:
            runtime.latencies_ms.append(result.latency_ms)
        runtime.apply(
            job.valid,
            result.raw_power_w,
            result.raw_on,
            result.probability,
            count_energy=count_energy,
        )

    def _publish(self) -> None:
        """An update is complete: count it and hand the entities its snapshot."""
        self.ticks += 1
        self.async_set_updated_data(self._snapshot())

    @callback
    def republish(self) -> None:
        """Something besides the mains changed (an appliance's adaptation): entities
        read a fresh snapshot; not an update (``ticks`` stays)."""
        self.async_set_updated_data(self._snapshot())

    def _snapshot(self) -> NilmSnapshot:
        status, attributes = self.status()
        return NilmSnapshot(
            appliances={name: r.snapshot() for name, r in self.appliances.items()},
            untracked_power_w=self.untracked_power_w,
            mains_power_w=self.mains_power_w,
            status=status,
            status_attributes=attributes,
        )

    def _update_untracked(self) -> None:
        """Mains at the models' target time minus the tracked appliances, never below 0."""
        self.untracked_power_w = None
        self.mains_power_w = None
        if not self.appliances:
            return
        first = next(iter(self.appliances.values()))
        card = first.model.card
        mains = self.resamplers[first.period_s].latest_value(
            card.window_length - 1 - card.target_index
        )
        self.mains_power_w = mains
        if mains is None or not all(r.available for r in self.appliances.values()):
            return
        tracked = sum(r.power_w or 0.0 for r in self.appliances.values())
        self.untracked_power_w = max(0.0, mains - tracked)

    # ------------------------------------------------------------------ status

    def status(self, now_ts: float | None = None) -> tuple[str, dict[str, Any]]:
        """What the entry is doing, for its diagnostic "status" sensor: the state (one of
        :data:`.const.STATUSES`) and attributes saying why and for how long."""
        now = dt_util.utcnow().timestamp() if now_ts is None else now_ts
        ready = sum(1 for r in self.appliances.values() if r.available)
        attrs: dict[str, Any] = {"appliances_ready": ready, "appliances": len(self.appliances)}
        if not self.appliances:
            return STATUS_NO_MODELS, attrs
        if self._mains_w is None or now - self._mains_ts > self.max_gap_s:
            missing = self._combiner.missing(now)
            attrs["missing_sensors"] = missing
            if not missing:  # every sensor reads, the consumption they add up to is < 0
                attrs["consumption_negative"] = True
            return STATUS_WAITING_FOR_MAINS, attrs
        failing = sorted(r.name for r in self.appliances.values() if r.last_error)
        if failing:
            attrs["failing"] = failing
            return STATUS_MODEL_ERROR, attrs
        left = {
            r.name: self._slots_missing(r) * r.period_s
            for r in self.appliances.values()
            if not r.available
        }
        if not left:
            return STATUS_RUNNING, attrs
        attrs["minutes_left"] = max(1, math.ceil(max(left.values()) / 60.0))
        attrs["warming_up"] = sorted(left)
        return STATUS_WARMING_UP, attrs

    def _slots_missing(self, runtime: ApplianceRuntime) -> int:
        """Slots to close until the newest window of ``runtime`` holds only real data."""
        window = self.resamplers[runtime.period_s].buffer.latest(runtime.window_length)
        gaps = np.flatnonzero(np.isnan(window))
        return int(gaps[-1]) + 1 if gaps.size else 0

    # ------------------------------------------------------------------ diagnostics

    def diagnostics(self) -> dict[str, Any]:
        roles: dict[str, int] = {}
        for term in self.mains_terms:
            roles[term.role] = roles.get(term.role, 0) + 1
        return {
            "status": self.status()[0],
            "mains_sensors_by_role": roles,
            "negative_consumption_refused": self._combiner.negative,
            "ticks": self.ticks,
            "ticks_skipped": self.ticks_skipped,
            "max_power_w": self.max_power_w,
            "readings_refused": self.readings_refused,
            "clock_resets": self.clock_resets,
            "tick_latency_ms": latency_stats(self.tick_latencies_ms),
            "warm_start_points": self.warm_start_points,
            "last_errors": list(self.last_errors),
            "resamplers": {
                str(period): {
                    "capacity": r.buffer.capacity,
                    "buffer_fill": round(r.buffer.filled() / r.buffer.capacity, 4),
                    "masked_fraction": round(r.masked_fraction, 4),
                }
                for period, r in self.resamplers.items()
            },
            "appliances": {
                name: {
                    "backend": getattr(r.model.backend, "name", "unknown"),
                    "available": r.available,
                    "on": r.on,
                    "predictions": r.predictions,
                    "latency_ms": latency_stats(r.latencies_ms),
                    "window_valid": self.resamplers[r.period_s].window(r.window_length) is not None,
                    "model_facts": model_facts(r.model),
                    "card": r.model.card.to_dict(),
                }
                for name, r in self.appliances.items()
            },
        }
