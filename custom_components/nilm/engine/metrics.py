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

import numpy as np
import numpy.typing as npt

from .card import StatusRule
from .status import status_from_power

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

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


def compute_all(
    true_w: npt.ArrayLike,
    pred_w: npt.ArrayLike,
    rule: StatusRule,
    sample_period_s: float,
    *,
    pred_on: npt.ArrayLike | None = None,
    tolerance_s: float = DEFAULT_DELAY_TOLERANCE_S,
) -> dict[str, float]:
    """Every metric for one appliance over one contiguous, regularly sampled series.

    True on/off comes from ``rule`` (threshold + minimum durations) applied to the truth;
    predicted on/off is ``pred_on`` if given (e.g. a status head's gated decision), else the
    same rule applied to the prediction. Status metrics skip samples whose truth is NaN.
    """
    t = np.asarray(true_w, dtype=np.float64).reshape(-1)
    p = np.asarray(pred_w, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in length: {t.size} != {p.size}")
    true_on = status_from_power(t, rule, sample_period_s)
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
        "detection_delay_s": (float(np.median(match.delays_s)) if match.matched else math.nan),
        "true_onsets": float(match.true_onsets),
        "predicted_onsets": float(match.predicted_onsets),
        "matched_onsets": float(match.matched),
        "samples": float(np.count_nonzero(valid)),
        "true_energy_kwh": float(np.nansum(t)) * sample_period_s / 3.6e6,
        "predicted_energy_kwh": float(np.nansum(np.where(valid, p, 0.0))) * sample_period_s / 3.6e6,
    }
