"""Runtime: mains sensor(s) -> resampled windows -> one batched inference per tick.

The event loop only collects sensor updates (cheap) and hands every tick's windows to a
single executor job; all numpy/model work happens there, in chunks of at most
:data:`.const.INFERENCE_CHUNK_WINDOWS` windows per backend call. The warm start replays
the recorder's history (up to hundreds of thousands of states from a 10 Hz meter) in the
executor too: the event loop only applies the results. Entities read the results from
:class:`ApplianceRuntime` objects when the coordinator announces an update.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
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

from .const import (
    DOMAIN,
    INFERENCE_CHUNK_WINDOWS,
    LAST_ERRORS,
    LATENCY_SAMPLES,
    POWER_UNITS_TO_W,
    STATUS_MODEL_ERROR,
    STATUS_NO_MODELS,
    STATUS_RUNNING,
    STATUS_WAITING_FOR_MAINS,
    STATUS_WARMING_UP,
    WARM_START_MAX_WINDOWS,
)
from .engine.model import NilmModel
from .engine.resample import ZohResampler
from .engine.status import StatusTracker
from .facts import model_facts
from .mains import MainsTerm

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

_LOGGER = logging.getLogger(__name__)

# Seconds after a slot boundary at which the tick runs: late enough for the sensor update
# that lands on the boundary, early enough that entities lag by only a few seconds.
TICK_DELAY_S = 2.0

# Plausibility bound per mains sensor (one phase): a 100 A breaker at 240 V is 24 kW, so a
# larger reading is a meter glitch or overflow (65,535 W, 4,294,967,295 W) and is treated
# like "unavailable", never as energy. Options key and limits of the setting.
CONF_MAX_POWER_W = "max_power_w"
DEFAULT_MAX_POWER_W = 25_000.0
MIN_MAX_POWER_W = 1_000.0
MAX_MAX_POWER_W = 1_000_000.0
# A sensor update or tick this much older than the newest one seen means the clock
# stepped back (NTP, a wrong RTC corrected). Home Assistant then re-arms pending timers
# until the old time comes again, and the resampler would hold every new reading until
# then: the entities would stay frozen for hours. The windows restart instead.
CLOCK_STEP_TOLERANCE_S = 10.0

FloatArray = npt.NDArray[np.float64]


def parse_power_w(
    state: State | None, max_power_w: float = DEFAULT_MAX_POWER_W, *, signed: bool = False
) -> float | None:
    """A reading in watts, or ``None`` for anything that is not a usable number.

    Unavailable, unknown, non-numeric, NaN/inf, above ``max_power_w`` in magnitude and
    unknown units are all "missing": the resampler bridges short stretches and marks long
    ones as gaps. A negative reading is missing too, unless the sensor is ``signed`` (a
    grid sensor while exporting, a solar inverter's standby draw).
    """
    if state is None or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    try:
        value = float(state.state)
    except ValueError:
        return None
    factor = POWER_UNITS_TO_W.get(state.attributes.get(ATTR_UNIT_OF_MEASUREMENT, ""))
    if factor is None or not math.isfinite(value) or (value < 0 and not signed):
        return None
    watts = value * factor
    if not abs(watts) <= max_power_w:  # also refuses an overflow to inf
        return None
    return watts


class MainsCombiner:
    """House consumption from its terms (:func:`.mains.mains_terms`): the signed sum.

    The sum is missing while any sensor is missing or stale, and when it is negative
    (export or production not fully measured, or sensors updating out of step): the
    grid readings may be negative, the consumption they add up to may not.
    """

    def __init__(self, terms: Sequence[str | MainsTerm], max_gap_s: float) -> None:
        unique: dict[str, MainsTerm] = {}
        for term in terms:
            item = MainsTerm(term) if isinstance(term, str) else term
            unique.setdefault(item.entity_id, item)  # a sensor listed twice counts once
        self.terms = list(unique.values())
        self.entity_ids = list(unique)
        self.max_gap_s = max_gap_s
        self._values: dict[str, float | None] = dict.fromkeys(self.entity_ids)
        self._valid_ts: dict[str, float] = dict.fromkeys(self.entity_ids, -math.inf)
        self.negative = 0  # sums refused for being negative

    def update(self, entity_id: str, value_w: float | None, ts: float) -> float | None:
        self._values[entity_id] = value_w
        if value_w is not None:
            self._valid_ts[entity_id] = ts
        total = 0.0
        for term in self.terms:
            value = self._values[term.entity_id]
            if value is None or ts - self._valid_ts[term.entity_id] > self.max_gap_s:
                return None
            total += term.sign * value
        if total < 0:
            self.negative += 1
            return None
        return total

    def missing(self, ts: float) -> list[str]:
        """The sensors without a usable reading at ``ts`` (missing, or silent too long)."""
        return [
            e
            for e in self.entity_ids
            if self._values[e] is None or ts - self._valid_ts[e] > self.max_gap_s
        ]


@dataclass(slots=True)
class ApplianceRuntime:
    """Live state of one tracked appliance (read by its entities)."""

    name: str
    model: NilmModel
    tracker: StatusTracker
    available: bool = False
    power_w: float | None = None
    probability: float | None = None
    on: bool | None = None
    energy_kwh: float = 0.0  # since this runtime started; entities add restored totals
    predictions: int = 0
    last_slot: int | None = None  # newest grid slot already run through the model
    ever_available: bool = False  # had a full window once (for the log: "again")
    last_error: str | None = None  # the newest inference error, until the next success
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    @property
    def period_s(self) -> float:
        return self.model.card.sample_period_s

    @property
    def window_length(self) -> int:
        return self.model.card.window_length


@dataclass(slots=True)
class _Job:
    runtime: ApplianceRuntime
    windows: FloatArray  # only the complete windows
    valid: npt.NDArray[np.bool_]  # one entry per closed slot, oldest first


@dataclass(slots=True)
class _JobResult:
    raw_power_w: npt.NDArray[np.float32] | None
    raw_on: npt.NDArray[np.bool_] | None
    probability: npt.NDArray[np.float32] | None
    latency_ms: float
    error: str | None


def _predict_chunked(model: NilmModel, windows: FloatArray, chunk: int) -> _JobResult:
    """Run ``windows`` through ``model`` at most ``chunk`` at a time.

    A backend's memory grows with the batch (LiteRT sizes every activation for it: a
    104 KB model with a wide layer peaked at 1.4 GB on a whole warm start as one
    batch), so no call ever gets more than ``chunk`` windows.
    """
    powers: list[npt.NDArray[np.float32]] = []
    ons: list[npt.NDArray[np.bool_]] = []
    probabilities: list[npt.NDArray[np.float32]] = []
    for begin in range(0, len(windows), chunk):
        prediction = model.predict(windows[begin : begin + chunk])
        powers.append(prediction.raw_power_w)
        ons.append(prediction.on)
        if prediction.probability is not None:
            probabilities.append(prediction.probability)
    probability = np.concatenate(probabilities) if len(probabilities) == len(powers) else None
    return _JobResult(np.concatenate(powers), np.concatenate(ons), probability, 0.0, None)


def _run_jobs(jobs: list[_Job], chunk: int = INFERENCE_CHUNK_WINDOWS) -> list[_JobResult]:
    """Executor side: every appliance's windows of this tick, in chunks of ``chunk``."""
    results: list[_JobResult] = []
    for job in jobs:
        start = time.perf_counter()
        if not len(job.windows):
            results.append(_JobResult(None, None, None, 0.0, None))
            continue
        try:
            result = _predict_chunked(job.runtime.model, job.windows, max(1, chunk))
        except Exception as err:  # one faulty model must not stop the others
            results.append(
                _JobResult(
                    None, None, None, 0.0, f"{job.runtime.name}: {type(err).__name__}: {err}"
                )
            )
            continue
        result.latency_ms = (time.perf_counter() - start) * 1000.0
        results.append(result)
    return results


class NilmCoordinator(DataUpdateCoordinator[int]):
    """Push-driven coordinator: data is the number of completed ticks."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        mains: Sequence[str | MainsTerm],
        models: dict[str, NilmModel],
        max_gap_s: float,
        *,
        max_power_w: float = DEFAULT_MAX_POWER_W,
    ) -> None:
        super().__init__(hass, _LOGGER, config_entry=entry, name=DOMAIN)
        self.data = 0
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
        self.warm_start_windows = 0
        self.ticks_skipped = 0
        self._mains_w: float | None = None  # the newest house consumption (None: missing)
        self._mains_ts = -math.inf  # when it was last usable

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
        value = parse_power_w(state, self.max_power_w, signed=entity_id in self._signed)
        if value is None and state is not None and _is_number(state.state):
            self.readings_refused += 1  # implausible (too large, inf/NaN, negative)
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
        if "recorder" not in self.hass.config.components or not self.appliances:
            return
        # Imported here: the recorder is optional and heavy to import.
        from homeassistant.components.recorder import history  # noqa: PLC0415
        from homeassistant.helpers.recorder import get_instance  # noqa: PLC0415

        longest = max(
            (r.window_length + WARM_START_MAX_WINDOWS) * r.period_s
            for r in self.appliances.values()
        )
        end = dt_util.utcnow()
        start = end - timedelta(seconds=longest + self.max_gap_s)
        try:
            raw = await get_instance(self.hass).async_add_executor_job(
                _read_history, self.hass, history, start, end, self.mains_entities
            )
        except Exception as err:  # a broken history must not block setup
            _LOGGER.warning("Warm start from the recorder failed: %s", err)
            self.last_errors.append(f"warm start: {type(err).__name__}: {err}")
            return
        try:
            self.warm_start_windows = await self.hass.async_add_executor_job(
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
        for ts, entity_id, state in _merged_history_points(raw, self.max_gap_s, start_ts, end_ts):
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
        self.async_set_updated_data(self.data + 1)

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
            runtime.available = False
            runtime.power_w = runtime.probability = runtime.on = None
            runtime.last_slot = None
            runtime.tracker.reset()

    async def _async_process(self, *, count_energy: bool) -> None:
        """Run every slot closed since the last run (by ticks or by sensor updates)."""
        jobs: list[_Job] = []
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
            jobs.append(_Job(runtime, windows[valid], valid))
        if not jobs:
            return
        self._busy = True
        start = time.perf_counter()
        try:
            results = await self.hass.async_add_executor_job(_run_jobs, jobs)
        finally:
            self._busy = False
        self.tick_latencies_ms.append((time.perf_counter() - start) * 1000.0)
        for job, result in zip(jobs, results, strict=True):
            self._apply(job, result, count_energy=count_energy)
        self._update_untracked()
        self.async_set_updated_data(self.data + 1)

    def _apply(self, job: _Job, result: _JobResult, *, count_energy: bool) -> None:
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

    def _apply_results(self, job: _Job, result: _JobResult, *, count_energy: bool) -> None:
        runtime = job.runtime
        if result.error is not None:
            self.last_errors.append(result.error)
            _LOGGER.warning("Inference failed for %s", result.error)
            runtime.last_error = result.error
            runtime.available = False
            runtime.tracker.reset()
            return
        runtime.last_error = None
        if result.latency_ms:
            runtime.latencies_ms.append(result.latency_ms)
        period_h = runtime.period_s / 3600.0
        k = 0
        for is_valid in job.valid:
            if not is_valid:
                # A gap: nothing is known about the appliance; never guess.
                runtime.available = False
                runtime.power_w = runtime.probability = runtime.on = None
                runtime.tracker.reset()
                continue
            assert result.raw_on is not None and result.raw_power_w is not None
            raw_power = float(result.raw_power_w[k])
            if not math.isfinite(raw_power):  # never an infinite energy total
                raw_power = 0.0
            raw_on = bool(result.raw_on[k])
            # Energy follows the card's minimum durations exactly as evaluation does: a
            # run's first samples are credited once it is confirmed, a short gap's once
            # the run resumes. Power shows only what is on now.
            counted_w = runtime.tracker.update(raw_on, raw_power)
            on = runtime.tracker.is_on
            power = raw_power if on and raw_on else 0.0
            runtime.available = True
            runtime.on = on
            runtime.power_w = power
            runtime.probability = (
                float(result.probability[k]) if result.probability is not None else None
            )
            runtime.predictions += 1
            if count_energy:
                runtime.energy_kwh += counted_w * period_h / 1000.0
            k += 1

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
            "ticks": self.data,
            "ticks_skipped": self.ticks_skipped,
            "max_power_w": self.max_power_w,
            "readings_refused": self.readings_refused,
            "clock_resets": self.clock_resets,
            "tick_latency_ms": latency_stats(self.tick_latencies_ms),
            "warm_start_points": self.warm_start_windows,
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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def latency_stats(samples: Iterable[float]) -> dict[str, float | int]:
    values = np.asarray(list(samples), dtype=np.float64)
    if not values.size:
        return {"count": 0}
    return {
        "count": int(values.size),
        "mean": round(float(values.mean()), 3),
        "p50": round(float(np.percentile(values, 50)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(float(values.max()), 3),
    }


def _read_history(
    hass: HomeAssistant, history: Any, start: datetime, end: datetime, entity_ids: list[str]
) -> dict[str, list[State]]:
    """Recorder executor side. ``state_changes_during_period`` (unlike significant states)
    returns each row's ``last_reported``, which proves a constant value stayed alive."""
    out: dict[str, list[State]] = {}
    for entity_id in entity_ids:
        out.update(
            history.state_changes_during_period(
                hass, start, end, entity_id, no_attributes=False, include_start_time_state=True
            )
        )
    return out


def _entity_points(
    entity_id: str, states: list[State], max_gap_s: float, start_ts: float, end_ts: float
) -> Iterator[tuple[float, str, State]]:
    step = max_gap_s / 2.0
    for state in states:
        first = max(state.last_updated_timestamp, start_ts)
        last = min(state.last_reported_timestamp, end_ts)
        yield first, entity_id, state
        ts = first + step
        while ts < last:
            yield ts, entity_id, state
            ts += step
        if last > first:
            yield last, entity_id, state


def _merged_history_points(
    raw: dict[str, list[State]], max_gap_s: float, start_ts: float, end_ts: float
) -> Iterator[tuple[float, str, State]]:
    """The points of every sensor in time order (each sensor's rows are in order)."""
    streams = [
        _entity_points(entity_id, states, max_gap_s, start_ts, end_ts)
        for entity_id, states in raw.items()
    ]
    return heapq.merge(*streams, key=lambda point: point[0])
