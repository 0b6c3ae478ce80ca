"""Disaggregation metrics shared by the trainer's evaluation and the integration's tests.

Definitions follow the seq2point literature (Zhang et al. 2018; goruck/nilm) so numbers are
comparable, with two deliberate differences: samples whose ground truth is NaN (masked gaps)
are ignored instead of counted as zeros, and undefined ratios (no energy, no events) are
``nan`` rather than a silent 0 or a division warning. Callers writing JSON must turn ``nan``
into ``null`` themselves (``json`` would otherwise emit the invalid token ``NaN``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from .card import StatusRule
from .status import StatusTracker, run_bounds, status_from_power

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

SECONDS_PER_DAY = 86_400.0
DEFAULT_DELAY_TOLERANCE_S = 300.0


def _pair(true_w: npt.ArrayLike, pred_w: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Both series as float64 with samples dropped where either is not finite."""
    t = np.asarray(true_w, dtype=np.float64).reshape(-1)
    p = np.asarray(pred_w, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in length: {t.size} != {p.size}")
    keep = np.isfinite(t) & np.isfinite(p)
    return t[keep], p[keep]


def _bools(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> tuple[BoolArray, BoolArray]:
    t = np.asarray(true_on, dtype=bool).reshape(-1)
    p = np.asarray(pred_on, dtype=bool).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in length: {t.size} != {p.size}")
    return t, p


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def mae(true_w: npt.ArrayLike, pred_w: npt.ArrayLike) -> float:
    """Mean absolute error in watts."""
    t, p = _pair(true_w, pred_w)
    return float(np.mean(np.abs(p - t))) if t.size else math.nan


def sae(true_w: npt.ArrayLike, pred_w: npt.ArrayLike) -> float:
    """Signal aggregate error |E_pred - E_true| / E_true: total energy, timing ignored."""
    t, p = _pair(true_w, pred_w)
    return _ratio(abs(float(p.sum() - t.sum())), float(t.sum()))


def nde(true_w: npt.ArrayLike, pred_w: npt.ArrayLike) -> float:
    """Normalised disaggregation error sum((p - t)^2) / sum(t^2)."""
    t, p = _pair(true_w, pred_w)
    return _ratio(float(np.sum((p - t) ** 2)), float(np.sum(t**2)))


def energy_per_day_error(
    true_w: npt.ArrayLike, pred_w: npt.ArrayLike, sample_period_s: float
) -> float:
    """Mean absolute error of daily energy in Wh per day.

    The series is cut into consecutive days of ``86400 / sample_period_s`` samples (a
    shorter tail counts as its own, partial day); masked samples contribute no energy to
    either side, so a gap does not look like a prediction error.
    """
    if sample_period_s <= 0:
        raise ValueError("sample_period_s must be positive")
    t = np.asarray(true_w, dtype=np.float64).reshape(-1)
    p = np.asarray(pred_w, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in length: {t.size} != {p.size}")
    if not t.size:
        return math.nan
    keep = np.isfinite(t) & np.isfinite(p)
    diff_wh = np.where(keep, p - t, 0.0) * (sample_period_s / 3600.0)
    per_day = max(1, round(SECONDS_PER_DAY / sample_period_s))
    day_index = np.arange(t.size) // per_day
    daily = np.bincount(day_index, weights=diff_wh)
    has_data = np.bincount(day_index, weights=keep.astype(np.float64)) > 0
    return float(np.mean(np.abs(daily[has_data]))) if has_data.any() else math.nan


def confusion(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of two on/off series."""
    t, p = _bools(true_on, pred_on)
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return tp, fp, fn, t.size - tp - fp - fn


def accuracy(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> float:
    tp, fp, fn, tn = confusion(true_on, pred_on)
    return _ratio(tp + tn, tp + fp + fn + tn)


def f1_score(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> float:
    """F1 of the 'on' class; nan when neither series is ever on (nothing to detect)."""
    tp, fp, fn, _ = confusion(true_on, pred_on)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def precision(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> float:
    tp, fp, _, _ = confusion(true_on, pred_on)
    return _ratio(tp, tp + fp)


def recall(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> float:
    tp, _, fn, _ = confusion(true_on, pred_on)
    return _ratio(tp, tp + fn)


def mcc(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> float:
    """Matthews correlation coefficient; nan when a row or column of the table is empty."""
    tp, fp, fn, tn = confusion(true_on, pred_on)
    # Python ints: the product overflows int64 for a few years of 8 s samples.
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return (tp * tn - fp * fn) / math.sqrt(den) if den > 0 else math.nan


def onsets(on: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Indices where the state switches from off to on.

    A series that starts 'on' has no onset at index 0: the switch happened before the
    recording, so its time is unknown and it cannot be matched honestly.
    """
    state = np.asarray(on, dtype=bool).reshape(-1)
    return np.flatnonzero(state[1:] & ~state[:-1]) + 1


@dataclass(frozen=True, slots=True)
class OnsetMatch:
    """True switch-ons paired one-to-one with predicted ones within a tolerance."""

    true_onsets: int
    predicted_onsets: int
    delays_s: FloatArray

    @property
    def matched(self) -> int:
        return int(self.delays_s.size)


def match_onsets(
    true_on: npt.ArrayLike,
    pred_on: npt.ArrayLike,
    sample_period_s: float,
    tolerance_s: float = DEFAULT_DELAY_TOLERANCE_S,
) -> OnsetMatch:
    """Pair each true switch-on with the nearest unused predicted switch-on at most
    ``tolerance_s`` away (earlier or later), in time order.

    Delays are signed (predicted minus true, seconds): a midpoint seq2point model may
    switch on early, an end-of-window model late.
    """
    t_state, p_state = _bools(true_on, pred_on)
    t_on, p_on = onsets(t_state), onsets(p_state)
    tol = tolerance_s / sample_period_s
    used = np.zeros(p_on.size, dtype=bool)
    delays: list[float] = []
    for onset in t_on:
        lo = int(np.searchsorted(p_on, onset - tol, side="left"))
        hi = int(np.searchsorted(p_on, onset + tol, side="right"))
        candidates = [i for i in range(lo, hi) if not used[i]]
        if not candidates:
            continue
        best = min(candidates, key=lambda i: (abs(int(p_on[i]) - int(onset)), i))
        used[best] = True
        delays.append((int(p_on[best]) - int(onset)) * sample_period_s)
    return OnsetMatch(int(t_on.size), int(p_on.size), np.asarray(delays, dtype=np.float64))


def detection_delay(
    true_on: npt.ArrayLike,
    pred_on: npt.ArrayLike,
    sample_period_s: float,
    tolerance_s: float = DEFAULT_DELAY_TOLERANCE_S,
) -> float:
    """Median signed seconds from a true switch-on to its matched predicted one."""
    match = match_onsets(true_on, pred_on, sample_period_s, tolerance_s)
    return float(np.median(match.delays_s)) if match.matched else math.nan


# ---------------------------------------------------------------------------- events


def event_bounds(on: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Start and end (exclusive) indices of the runs of True: one run is one *event*."""
    return run_bounds(on)


def _hits(on: BoolArray, starts: IntArray, ends: IntArray) -> BoolArray:
    """Whether each run ``[starts[i], ends[i])`` holds any True sample of ``on``."""
    cum = np.concatenate(([0], np.cumsum(on, dtype=np.int64)))
    hit: BoolArray = (cum[ends] - cum[starts]) > 0
    return hit


@dataclass(frozen=True, slots=True)
class EventMatch:
    """Event-level agreement of two on/off series.

    An event is a run of True. A true event is *detected* if any predicted event overlaps
    it (shares at least one sample); a predicted event is *correct* if it overlaps any
    true event. One long predicted event may detect several true events and vice versa.
    """

    true_events: int
    detected: int
    predicted_events: int
    correct: int

    @property
    def recall(self) -> float:
        return _ratio(self.detected, self.true_events)

    @property
    def precision(self) -> float:
        return _ratio(self.correct, self.predicted_events)


def match_events(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> EventMatch:
    """Count true events detected and predicted events correct (see :class:`EventMatch`)."""
    t, p = _bools(true_on, pred_on)
    t_start, t_end = event_bounds(t)
    p_start, p_end = event_bounds(p)
    return EventMatch(
        true_events=int(t_start.size),
        detected=int(np.count_nonzero(_hits(p, t_start, t_end))),
        predicted_events=int(p_start.size),
        correct=int(np.count_nonzero(_hits(t, p_start, p_end))),
    )


def event_recall(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> float:
    """Share of true events overlapped by a predicted event; nan without true events."""
    return match_events(true_on, pred_on).recall


def event_precision(true_on: npt.ArrayLike, pred_on: npt.ArrayLike) -> float:
    """Share of predicted events overlapping a true event; nan without predicted events."""
    return match_events(true_on, pred_on).precision


# ----------------------------------------------------------- "Running" as users see it


@dataclass(frozen=True, slots=True)
class RunningPeriods:
    """The periods a "running" entity showed on, and when each change was *decided*.

    ``start``/``end`` (exclusive) are sample indices of the shown state, used to pair
    periods with true events. ``on_time_s``/``off_time_s`` are the wall-clock times
    (seconds after sample 0's time) at which the entity switched on and off: later than
    ``start``/``end`` by the model's latency (and, for a rule, its confirmation time).
    ``off_known`` is False where the period was cut by a gap or the end of the data
    rather than switched off by a decision.
    """

    start: IntArray
    end: IntArray
    on_time_s: FloatArray
    off_time_s: FloatArray
    off_known: BoolArray

    @classmethod
    def empty(cls) -> RunningPeriods:
        none = np.zeros(0, dtype=np.intp)
        return cls(none, none.copy(), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))


@dataclass(frozen=True, slots=True)
class TrackedStatus:
    """:func:`track_status`'s result: the streaming tracker's state after every sample,
    its on/off periods and the energy it counted (kWh)."""

    is_on: BoolArray
    periods: RunningPeriods
    energy_kwh: float


def track_status(
    raw_on: npt.ArrayLike,
    power_w: npt.ArrayLike,
    valid: npt.ArrayLike,
    rule: StatusRule,
    sample_period_s: float,
    *,
    latency_s: float = 0.0,
) -> TrackedStatus:
    """Feed raw decisions sample by sample through :class:`StatusTracker`, as the
    integration does: an invalid sample (no complete window) resets the tracker.

    The decision about target sample ``k`` exists at ``k * sample_period_s + latency_s``
    (a seq2point model's latency is ``(window_length - 1 - target_index) * period``), so
    that is when the entity flips. The energy is what the integration adds to its energy
    sensor: :meth:`StatusTracker.update`'s certain watt-samples, pending ones dropped.
    """
    if sample_period_s <= 0:
        raise ValueError("sample_period_s must be positive")
    raw = np.asarray(raw_on, dtype=bool).reshape(-1)
    power = np.nan_to_num(np.asarray(power_w, dtype=np.float64).reshape(-1), nan=0.0)
    ok = np.asarray(valid, dtype=bool).reshape(-1)
    if not raw.shape == power.shape == ok.shape:
        raise ValueError("raw_on, power_w and valid differ in length")
    tracker = StatusTracker(rule, sample_period_s)
    is_on = np.zeros(raw.size, dtype=bool)
    starts: list[int] = []
    ends: list[int] = []
    known: list[bool] = []
    counted = 0.0
    on = False
    # Python scalars: per-element numpy indexing would triple the loop's cost.
    oks = cast("list[bool]", ok.tolist())
    ons = cast("list[bool]", raw.tolist())
    watts_list = cast("list[float]", power.tolist())
    for k, (sample_ok, sample_on, watts) in enumerate(zip(oks, ons, watts_list, strict=True)):
        if not sample_ok:
            tracker.reset()
            if on:
                ends.append(k)
                known.append(False)
                on = False
            continue
        counted += tracker.update(sample_on, watts)
        if tracker.is_on != on:
            on = tracker.is_on
            if on:
                starts.append(k)
            else:
                ends.append(k)
                known.append(True)
        is_on[k] = on
    if on:
        ends.append(raw.size)
        known.append(False)
    start = np.asarray(starts, dtype=np.intp)
    end = np.asarray(ends, dtype=np.intp)
    periods = RunningPeriods(
        start=start,
        end=end,
        on_time_s=start * float(sample_period_s) + latency_s,
        off_time_s=end * float(sample_period_s) + latency_s,
        off_known=np.asarray(known, dtype=bool),
    )
    return TrackedStatus(is_on, periods, counted * sample_period_s / 3.6e6)


@dataclass(frozen=True, slots=True)
class RunningDelays:
    """Seconds from a true switch-on (switch-off) to the matched "running" entity's.

    Each true event is paired with the first running period that overlaps it. An on
    delay needs a known true start (not at sample 0, nor right after a gap); an off delay
    a known true end (a valid off sample follows the event) and a period that was
    switched off by a decision, not cut by a gap.
    """

    true_events: int
    matched: int
    on_delays_s: FloatArray
    off_delays_s: FloatArray

    @property
    def on_delay_s(self) -> float:
        """Median on delay; nan when none was measured."""
        return float(np.median(self.on_delays_s)) if self.on_delays_s.size else math.nan

    @property
    def off_delay_s(self) -> float:
        """Median off delay; nan when none was measured."""
        return float(np.median(self.off_delays_s)) if self.off_delays_s.size else math.nan


def running_delays(
    true_on: npt.ArrayLike,
    periods: RunningPeriods,
    sample_period_s: float,
    valid: npt.ArrayLike | None = None,
) -> RunningDelays:
    """On and off delays of the "running" entity against the true events (see
    :class:`RunningDelays`). A true event starting at ``s`` and ending before ``e`` (the
    first off sample) switched on at ``s * period`` and off at ``e * period``."""
    t = np.asarray(true_on, dtype=bool).reshape(-1)
    ok = np.ones(t.size, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    ok = ok.reshape(-1)
    if ok.shape != t.shape:
        raise ValueError("valid differs in length from true_on")
    t = t & ok
    t_start, t_end = event_bounds(t)
    # Periods are disjoint and in time order, so their ends are sorted too: the first
    # period ending after an event's start is the only candidate for the first overlap.
    idx = np.searchsorted(periods.end, t_start, side="right")
    inside = idx < periods.start.size
    cand = np.minimum(idx, max(periods.start.size - 1, 0))
    matched = inside & (periods.start[cand] < t_end) if periods.start.size else inside
    period_s = float(sample_period_s)
    start_known = t_start > 0
    start_known[start_known] = ok[t_start[start_known] - 1]
    end_known = t_end < t.size
    end_known[end_known] = ok[t_end[end_known]]
    on_sel = matched & start_known
    off_sel = matched & end_known
    if periods.start.size:
        off_sel &= periods.off_known[cand]
        on_delays = periods.on_time_s[cand[on_sel]] - t_start[on_sel] * period_s
        off_delays = periods.off_time_s[cand[off_sel]] - t_end[off_sel] * period_s
    else:
        on_delays = off_delays = np.zeros(0)
    return RunningDelays(
        true_events=int(t_start.size),
        matched=int(np.count_nonzero(matched)),
        on_delays_s=np.asarray(on_delays, dtype=np.float64),
        off_delays_s=np.asarray(off_delays, dtype=np.float64),
    )


def delay_metrics(delays: RunningDelays) -> dict[str, float]:
    """The "running" delay entries of a metrics dict (seconds; counts as floats)."""
    return {
        "running_on_delay_s": delays.on_delay_s,
        "running_on_delay_events": float(delays.on_delays_s.size),
        "running_off_delay_s": delays.off_delay_s,
        "running_off_delay_events": float(delays.off_delays_s.size),
        "running_matched_events": float(delays.matched),
    }


# ---------------------------------------------------------------------------- all


def compute_all(
    true_w: npt.ArrayLike,
    pred_w: npt.ArrayLike,
    rule: StatusRule,
    sample_period_s: float,
    *,
    pred_on: npt.ArrayLike | None = None,
    tolerance_s: float = DEFAULT_DELAY_TOLERANCE_S,
    truth_rule: StatusRule | None = None,
) -> dict[str, float]:
    """Every metric for one appliance over one contiguous, regularly sampled series.

    True on/off comes from ``truth_rule`` (the appliance's definition of running; default
    ``rule``) applied to the truth; predicted on/off is ``pred_on`` if given (e.g. a
    status head's gated decision), else ``rule`` applied to the prediction. Status and
    event metrics skip samples whose truth is NaN (a masked sample also splits events).
    """
    t = np.asarray(true_w, dtype=np.float64).reshape(-1)
    p = np.asarray(pred_w, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in length: {t.size} != {p.size}")
    true_on = status_from_power(t, rule if truth_rule is None else truth_rule, sample_period_s)
    predicted_on = (
        status_from_power(p, rule, sample_period_s)
        if pred_on is None
        else np.asarray(pred_on, dtype=bool).reshape(-1)
    )
    if predicted_on.shape != t.shape:
        raise ValueError("pred_on differs in length from the truth")
    valid = np.isfinite(t)
    # Onsets across a masked gap are not real events: blank both sides there.
    match = match_onsets(true_on & valid, predicted_on & valid, sample_period_s, tolerance_s)
    events = match_events(true_on & valid, predicted_on & valid)
    tv, pv = true_on[valid], predicted_on[valid]
    return {
        "mae_w": mae(t, p),
        "sae": sae(t, p),
        "nde": nde(t, p),
        "energy_per_day_error_wh": energy_per_day_error(t, p, sample_period_s),
        "accuracy": accuracy(tv, pv),
        "precision": precision(tv, pv),
        "recall": recall(tv, pv),
        "f1": f1_score(tv, pv),
        "mcc": mcc(tv, pv),
        "event_recall": events.recall,
        "event_precision": events.precision,
        "true_events": float(events.true_events),
        "predicted_events": float(events.predicted_events),
        "detection_delay_s": (float(np.median(match.delays_s)) if match.matched else math.nan),
        "true_onsets": float(match.true_onsets),
        "predicted_onsets": float(match.predicted_onsets),
        "matched_onsets": float(match.matched),
        "samples": float(np.count_nonzero(valid)),
        "true_energy_kwh": float(np.nansum(t)) * sample_period_s / 3.6e6,
        "predicted_energy_kwh": float(np.nansum(np.where(valid, p, 0.0))) * sample_period_s / 3.6e6,
    }
