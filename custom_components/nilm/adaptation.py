"""Adaptation: a smart plug (or any on/off entity) teaches an appliance's model this home.

Per appliance with a label entity (options ``adaptation_labels``), a few minutes after
setup (a start, new options) unless an adopted fit is less than a day old, then once a
day, and when its "Re-fit adaptation" button is pressed, the recorder's last
:data:`.const.ADAPTATION_DAYS` days of the entry's mains and of the label are put on the
model's grid (the mains exactly as the coordinator combines and resamples them; a plug's
watts the same way; an on/off state held until it changes, unavailable as unknown) and
the engine re-fits the model's two heads (:mod:`.engine.adapter`). A re-fit that beats
the shipped model on the newer days is saved as
``<config>/nilm/adapters/<model>.adapter.json`` and runs from the next tick on; one that
does not leaves (or puts back) the shipped model. Reading runs in the recorder's
executor, one day at a time; gridding and fitting in Home Assistant's executor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import (
    async_call_later,
    async_track_entity_registry_updated_event,
    async_track_state_change_event,
    async_track_time_interval,
)
from homeassistant.util import dt as dt_util

from .appliance import ApplianceRuntime
from .const import (
    ADAPTATION_ADOPTED,
    ADAPTATION_COLLECTING,
    ADAPTATION_DAYS,
    ADAPTATION_ERROR,
    ADAPTATION_FIRST_FIT_MIN,
    ADAPTATION_INTERVAL_H,
    ADAPTATION_LABEL_MISSING,
    ADAPTATION_NOT_ADAPTABLE,
    ADAPTATION_NOT_CONFIGURED,
    ADAPTATION_REJECTED,
    ADAPTERS_SUBDIR,
    CONF_ADAPTATION_LABELS,
    LABEL_ON_OFF_DOMAINS,
)
from .coordinator import NilmCoordinator
from .data import AdaptationSnapshot, NilmConfigEntry, NilmSettings
from .engine.adapter import (
    ADAPTER_SUFFIX,
    AdaptableModel,
    AdaptationResult,
    Adapter,
    AdapterError,
    adapt,
    load_adapter,
    series_for,
)
from .engine.card import ModelCard, tflite_path_for
from .engine.model import NilmModel
from .engine.resample import ZohResampler, grid_slots, hold_at_slot_middles
from .history import async_read_history, merged_history_points, recorder_loaded
from .issues import create_adapter_invalid, delete_adapter_invalid
from .mains import MainsCombiner, MainsTerm, check_reading
from .model_store import AvailableModel, replacement_for, with_threshold

_LOGGER = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
CHUNK = timedelta(days=1)  # history is read (and held) one day at a time


def is_on_off(entity_id: str) -> bool:
    """An on/off label (binary sensor, switch, input boolean); else a power sensor."""
    return entity_id.split(".", 1)[0] in LABEL_ON_OFF_DOMAINS


def adaptable_source(
    available: AvailableModel | None, plain: NilmModel, threshold: float | None
) -> tuple[ModelCard, Path] | None:
    """The CPU card and model file an :class:`AdaptableModel` of ``plain`` is built from
    (the running card, thresholds applied; an Edge TPU model's CPU sibling), or None
    when the card names no head."""
    if available is None:
        return None
    cpu = available.cpu_fallback if available.edgetpu else available
    if cpu is None:
        return None
    card = plain.card if not available.edgetpu else cpu.card
    if available.edgetpu and threshold is not None:
        card = with_threshold(card, threshold)
    if card.head is None or card.tflite_file != cpu.card.tflite_file:
        return None
    return card, tflite_path_for(cpu.card_path, cpu.card)


@dataclass(slots=True)
class AdaptationTarget:
    """One tracked appliance's adaptation (event loop state)."""

    name: str  # the configured name
    runtime: ApplianceRuntime
    plain: NilmModel  # the model loaded at setup (LiteRT, numpy or the Edge TPU)
    source: tuple[ModelCard, Path] | None  # None: the model cannot be adapted
    label: str | None
    adapter_path: Path
    adaptable: AdaptableModel | None = None
    outcome: str = ADAPTATION_COLLECTING  # of the last fit: collecting or rejected
    error: str | None = None
    file_invalid: bool = False  # the saved adapter could not be used
    attributes: dict[str, Any] = field(default_factory=dict)
    busy: bool = False

    @property
    def active(self) -> bool:
        return self.adaptable is not None and self.adaptable.heads is not None


@dataclass(slots=True)
class HistoryGrid:
    """Executor side: the mains and the label on the model's grid, fed a day at a time.

    The mains go through the coordinator's own combiner and resampler rules (the entry's
    ``max_gap_s`` and ``max_power_w``); a plug's watts through a resampler of their own;
    an on/off label holds each state until the next one (a switch reports nothing while
    it stays off), and anything but on/off is unknown.
    """

    terms: list[MainsTerm]
    label: str
    period_s: float
    start_ts: float
    end_ts: float
    max_gap_s: float
    max_power_w: float
    first_slot: int = 0
    slots: int = 0
    mains: ZohResampler = field(init=False)
    label_power: ZohResampler = field(init=False)
    combiner: MainsCombiner = field(init=False)
    changes: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.first_slot = math.ceil(self.start_ts / self.period_s)
        self.slots = max(0, math.floor(self.end_ts / self.period_s) - self.first_slot)
        capacity = self.slots + 2
        self.mains = ZohResampler(self.period_s, capacity, self.max_gap_s)
        self.label_power = ZohResampler(self.period_s, capacity, self.max_gap_s)
        self.combiner = MainsCombiner(self.terms, self.max_gap_s)

    def feed(self, raw: dict[str, list[State]], start_ts: float, end_ts: float) -> None:
        label_rows = raw.pop(self.label, [])
        signed = {t.entity_id for t in self.terms if t.signed}
        for ts, entity_id, state in merged_history_points(raw, self.max_gap_s, start_ts, end_ts):
            value, _problem = check_reading(
                state, signed=entity_id in signed, max_power_w=self.max_power_w
            )
            self.mains.update(ts, self.combiner.update(entity_id, value, ts))
        if is_on_off(self.label):
            for state in label_rows:
                on = {STATE_ON: 1.0, STATE_OFF: 0.0}.get(state.state, math.nan)
                self.changes.append((max(state.last_updated_timestamp, start_ts), on))
            return
        points = merged_history_points({self.label: label_rows}, self.max_gap_s, start_ts, end_ts)
        for ts, _entity_id, state in points:
            watts, _problem = check_reading(state, max_power_w=math.inf)
            self.label_power.update(ts, watts)

    def arrays(self) -> tuple[FloatArray, FloatArray | None, FloatArray | None]:
        """Mains watts and the label (watts, or 0/1 on/off), NaN where unknown."""
        self.mains.advance(self.end_ts)
        mains = grid_slots(self.mains, self.first_slot, self.slots)
        if not is_on_off(self.label):
            self.label_power.advance(self.end_ts)
            return mains, grid_slots(self.label_power, self.first_slot, self.slots), None
        on = hold_at_slot_middles(
            [t for t, _ in self.changes],
            [v for _, v in self.changes],
            period_s=self.period_s,
            first_slot=self.first_slot,
            slots=self.slots,
        )
        return mains, None, on

    def iso(self, slot_offset: int) -> str:
        ts = (self.first_slot + slot_offset) * self.period_s
        return dt_util.utc_from_timestamp(ts).isoformat()


@dataclass(frozen=True, slots=True)
class FitOutcome:
    """What the executor's fit found: the model to keep and the engine's result (None:
    the history holds no usable window, ``reason`` says why)."""

    model: AdaptableModel
    result: AdaptationResult | None
    reason: str
    period_start: str | None = None
    period_end: str | None = None


def fit(source: tuple[ModelCard, Path], grid: HistoryGrid) -> FitOutcome:
    """Executor side: the series on the grid through a model of its own (the running
    one keeps predicting in the tick's executor job meanwhile), then the re-fit."""
    model = AdaptableModel(*source)
    mains, label_w, label_on = grid.arrays()
    known = ~np.isnan(mains) & ~np.isnan(label_w if label_w is not None else label_on)  # type: ignore[arg-type]
    slots = np.flatnonzero(known)
    start = grid.iso(int(slots[0])) if slots.size else None
    end = grid.iso(int(slots[-1]) + 1) if slots.size else None
    try:
        series = series_for(model, mains, label_power_w=label_w, label_on=label_on)
    except AdapterError as err:
        return FitOutcome(model, None, str(err), start, end)
    result = adapt(model, series)
    return FitOutcome(model, result, result.reason, start, end)


def load_target(source: tuple[ModelCard, Path], path: Path) -> tuple[AdaptableModel, Adapter]:
    """Executor side: a saved adapter for ``source``'s model; raises AdapterError."""
    adapter = load_adapter(path, source[0])
    model = AdaptableModel(*source)
    model.heads = adapter.heads
    return model, adapter


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def follow_label_rename(hass: HomeAssistant, entry: NilmConfigEntry, old: str, new: str) -> None:
    """Point the appliances labelled by ``old`` at ``new``; the update listener reloads the
    entry, and the saved adapters (named after the model, not the label) keep running."""
    for in_options, part in ((True, entry.options), (False, entry.data)):
        labels = part.get(CONF_ADAPTATION_LABELS)
        if not isinstance(labels, dict) or old not in labels.values():
            continue
        _LOGGER.info("Label entity %s was renamed to %s; NILM follows", old, new)
        renamed = {k: new if v == old else v for k, v in labels.items()}
        updated = {**part, CONF_ADAPTATION_LABELS: renamed}
        if in_options:
            hass.config_entries.async_update_entry(entry, options=updated)
        else:
            hass.config_entries.async_update_entry(entry, data=updated)


class NilmAdaptation:
    """Every tracked appliance's adaptation in one entry (``runtime_data.adaptation``)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: NilmConfigEntry,
        coordinator: NilmCoordinator,
        settings: NilmSettings,
        available: Mapping[str, AvailableModel],
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.settings = settings
        self.closed = False
        folder = Path(hass.config.path(ADAPTERS_SUBDIR))
        self.targets: dict[str, AdaptationTarget] = {}
        for name, runtime in coordinator.appliances.items():
            chosen = replacement_for(dict(available), name)
            appliance = runtime.model.card.appliance
            threshold = settings.threshold(appliance, name)
            self.targets[name] = AdaptationTarget(
                name=name,
                runtime=runtime,
                plain=runtime.model,
                source=adaptable_source(chosen, runtime.model, threshold),
                label=settings.label(appliance, name),
                adapter_path=folder / f"{runtime.model.card.name}{ADAPTER_SUFFIX}",
            )

    # ------------------------------------------------------------------ lifecycle

    async def async_load(self) -> None:
        """Saved adapters run from the first prediction on; an unusable file is a
        warning and a repair, and the shipped model runs."""
        for target in self.targets.values():
            source = target.source
            path = target.adapter_path
            if source is None or not await self.hass.async_add_executor_job(path.is_file):
                delete_adapter_invalid(self.hass, self.entry, target.name)
                continue
            try:
                model, adapter = await self.hass.async_add_executor_job(load_target, source, path)
            except Exception as err:  # a broken file (or a bug) never fails the setup
                message = str(err) if isinstance(err, AdapterError) else repr(err)[:300]
                _LOGGER.warning("Ignoring the adapter %s: %s", path, message)
                target.error = f"adapter file invalid: {message}"
                target.file_invalid = True
                create_adapter_invalid(self.hass, self.entry, target.name, path, message)
                continue
            delete_adapter_invalid(self.hass, self.entry, target.name)
            target.adaptable = model
            target.attributes = dict(adapter.fit)
            self._swap(target)
        self._refresh()

    @callback
    def async_start(self) -> list[Callable[[], None]]:
        """The first and the daily re-fit and the label entities' comings and goings; the
        callbacks undo them (at unload).

        The first re-fit waits a few minutes, so a start is not slowed by reading history,
        and a label chosen in the options is learnt from the same day, not the next."""
        unsubs = [self._close]
        labels = sorted({t.label for t in self.targets.values() if t.label and t.source})
        if labels:
            unsubs.append(
                async_call_later(
                    self.hass, timedelta(minutes=ADAPTATION_FIRST_FIT_MIN), self._async_first
                )
            )
            unsubs.append(
                async_track_time_interval(
                    self.hass,
                    self._async_scheduled,
                    timedelta(hours=ADAPTATION_INTERVAL_H),
                    name="nilm adaptation",
                )
            )
            unsubs.append(async_track_state_change_event(self.hass, labels, self._on_label))
            unsubs.append(
                async_track_entity_registry_updated_event(self.hass, labels, self._on_rename)
            )
        return unsubs

    @callback
    def _close(self) -> None:
        self.closed = True

    async def _async_scheduled(self, _now: datetime) -> None:
        await self.async_refit_all()

    async def _async_first(self, _now: datetime) -> None:
        """Re-fit every appliance whose adopted fit (if any) is older than the interval."""
        for name, target in list(self.targets.items()):
            if not self._fit_is_recent(target):
                await self.async_refit(name)

    @staticmethod
    def _fit_is_recent(target: AdaptationTarget) -> bool:
        last = dt_util.parse_datetime(str(target.attributes.get("last_fit", "")))
        if not target.active or last is None:
            return False
        return dt_util.utcnow() - last < timedelta(hours=ADAPTATION_INTERVAL_H)

    @callback
    def _on_label(self, event: Event[EventStateChangedData]) -> None:
        """A label entity appeared or went away: the adaptation sensor says so."""
        if (event.data["old_state"] is None) != (event.data["new_state"] is None):
            self._refresh()
            self.coordinator.republish()

    @callback
    def _on_rename(self, event: Event[er.EventEntityRegistryUpdatedData]) -> None:
        """A label entity got a new id: the options follow it (and the entry reloads)."""
        data = event.data
        if data["action"] == "update" and "entity_id" in data["changes"]:
            old = str(data.get("old_entity_id", data["changes"]["entity_id"]))
            follow_label_rename(self.hass, self.entry, old, data["entity_id"])

    # ------------------------------------------------------------------ actions

    async def async_refit_all(self) -> None:
        for name in list(self.targets):
            await self.async_refit(name)

    async def async_refit(self, name: str) -> None:
        """Re-fit one appliance now (a button, the daily timer); never raises."""
        target = self.targets[name]
        if target.source is None or target.label is None or target.busy or self.closed:
            return
        if self.hass.states.get(target.label) is None:
            self._publish()  # label_missing
            return
        target.busy = True
        try:
            outcome = await self._async_fit(target, target.source, target.label)
        except Exception as err:  # a broken history or a bug: the sensor says so
            _LOGGER.warning("Adaptation of %s failed", name, exc_info=True)
            target.error = f"{type(err).__name__}: {err}"[:300]
        else:
            if not self.closed:
                await self._async_apply(target, outcome)
        finally:
            target.busy = False
        if not self.closed:
            self._publish()

    async def async_revert(self, name: str) -> None:
        """Back to the shipped heads: the adapter file goes."""
        target = self.targets[name]
        if target.busy:
            return
        await self.hass.async_add_executor_job(_remove, target.adapter_path)
        delete_adapter_invalid(self.hass, self.entry, name)
        if target.adaptable is not None:
            target.adaptable.heads = None
        self._swap(target)
        target.error = None
        target.file_invalid = False
        target.outcome = ADAPTATION_COLLECTING
        target.attributes = {"reason": "reverted to the shipped model"}
        self._publish()

    async def _async_fit(
        self, target: AdaptationTarget, source: tuple[ModelCard, Path], label: str
    ) -> FitOutcome:
        if not recorder_loaded(self.hass):
            raise AdapterError("the recorder is not loaded: there is no history to learn from")
        card = source[0]
        end = dt_util.utcnow()
        start = end - timedelta(days=ADAPTATION_DAYS)
        coordinator = self.coordinator
        grid = HistoryGrid(
            terms=list(coordinator.mains_terms),
            label=label,
            period_s=card.sample_period_s,
            start_ts=start.timestamp(),
            end_ts=end.timestamp(),
            max_gap_s=coordinator.max_gap_s,
            max_power_w=coordinator.max_power_w,
        )
        entity_ids = [*coordinator.mains_entities, label]
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(chunk_start + CHUNK, end)
            raw = await async_read_history(self.hass, chunk_start, chunk_end, entity_ids)
            await self.hass.async_add_executor_job(
                grid.feed, raw, chunk_start.timestamp(), chunk_end.timestamp()
            )
            del raw
            chunk_start = chunk_end
        return await self.hass.async_add_executor_job(fit, source, grid)

    async def _async_apply(self, target: AdaptationTarget, outcome: FitOutcome) -> None:
        result = outcome.result
        now = dt_util.utcnow().isoformat()
        card = outcome.model.card
        target.error = None
        fit_info: dict[str, Any] = {
            **(result.summary() if result is not None else {"adopted": False}),
            "reason": outcome.reason,
            "label_entity": target.label,
            "period_start": outcome.period_start,
            "period_end": outcome.period_end,
            "last_fit": now,
        }
        if result is not None and result.adopted and result.heads is not None:
            adapter = Adapter(card.appliance, card.tflite_sha256, result.heads, fit_info)
            await self.hass.async_add_executor_job(adapter.save, target.adapter_path)
            delete_adapter_invalid(self.hass, self.entry, target.name)
            target.file_invalid = False
            outcome.model.heads = result.heads
            target.adaptable = outcome.model
            _LOGGER.info("%s: re-fitted heads adopted (%s)", target.name, outcome.reason)
        elif result is not None and result.heads is not None:
            # A re-fit the shipped model beats on the newest days: the shipped model runs.
            await self.hass.async_add_executor_job(_remove, target.adapter_path)
            delete_adapter_invalid(self.hass, self.entry, target.name)
            target.file_invalid = False
            outcome.model.heads = None
            target.adaptable = outcome.model
            target.outcome = ADAPTATION_REJECTED
            _LOGGER.info("%s: re-fit not adopted (%s)", target.name, outcome.reason)
        else:  # too few runs or no usable history yet: keep what runs, wait for more
            target.outcome = ADAPTATION_COLLECTING
            if target.active:  # the adopted fit's numbers stay; say what this one found
                fit_info = {**target.attributes, "reason": outcome.reason, "last_attempt": now}
        target.attributes = fit_info
        self._swap(target)

    # ------------------------------------------------------------------ state

    def _swap(self, target: AdaptationTarget) -> None:
        """The appliance predicts with the adapted model while heads are set, else with
        the model loaded at setup (whatever backend that is)."""
        model: NilmModel = target.adaptable if target.active else target.plain  # type: ignore[assignment]
        if target.runtime.model is not model:
            target.runtime.model = model
            target.runtime.info = None  # the backend changed

    def state(self, target: AdaptationTarget) -> str:
        if target.source is None:
            return ADAPTATION_NOT_ADAPTABLE
        if target.label is not None and self.hass.states.get(target.label) is None:
            return ADAPTATION_LABEL_MISSING
        if target.error is not None:
            return ADAPTATION_ERROR
        if target.active:
            return ADAPTATION_ADOPTED
        if target.label is None:
            return ADAPTATION_NOT_CONFIGURED
        return target.outcome

    def _refresh(self) -> None:
        for target in self.targets.values():
            attributes: dict[str, Any] = {**target.attributes}
            attributes["label_entity"] = target.label
            attributes["adapter_active"] = target.active
            if target.error is not None:
                attributes["reason"] = target.error
            elif target.source is None:
                attributes["reason"] = "the model card names no head that could be re-fitted"
            target.runtime.adaptation = AdaptationSnapshot(
                state=self.state(target),
                attributes=attributes,
                active=target.active,
                revertable=target.active or target.file_invalid,
            )

    def _publish(self) -> None:
        self._refresh()
        self.coordinator.republish()

    def diagnostics(self) -> dict[str, Any]:
        return {
            name: {"state": t.runtime.adaptation.state, **t.runtime.adaptation.attributes}
            for name, t in self.targets.items()
        }
