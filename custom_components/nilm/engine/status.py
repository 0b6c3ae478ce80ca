"""On/off status from predicted power or probability, offline and streaming.

The same rules serve the trainer's evaluation (whole arrays) and the integration
(one sample at a time), so a model's reported F1 is what users' automations get.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .card import StatusRule

BoolArray = npt.NDArray[np.bool_]


def durations_to_samples(seconds: float, sample_period_s: float) -> int:
    """Convert a minimum duration to whole samples (at least 1 means 'no constraint')."""
    return max(1, int(np.ceil(seconds / sample_period_s - 1e-9)))


def run_bounds(mask: npt.ArrayLike) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start and end (exclusive) indices of the True runs of ``mask`` (shared by the
    on/off rules, the event metrics, the trainer's activations and its rule baseline)."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def apply_min_durations(raw_on: BoolArray, min_on: int, min_off: int) -> BoolArray:
    """Close off-gaps shorter than ``min_off`` samples, then drop on-runs shorter than
    ``min_on`` samples (the reference seq2point post-processing)."""
    on = np.asarray(raw_on, dtype=bool).copy()
    if min_off > 1 and on.any():
        starts, ends = run_bounds(~on)
        for start, end in zip(starts, ends, strict=True):
            # Only interior gaps: a gap touching either edge is not bounded by 'on'.
            if start > 0 and end < on.size and end - start < min_off:
                on[start:end] = True
    if min_on > 1:
        starts, ends = run_bounds(on)
        for start, end in zip(starts, ends, strict=True):
            if end - start < min_on:
                on[start:end] = False
    return on


def status_from_power(
    power_w: npt.ArrayLike, rule: StatusRule, sample_period_s: float
) -> BoolArray:
    """Ground-truth style status: power above threshold, then minimum durations."""
    raw = np.asarray(power_w, dtype=np.float64) >= rule.on_power_threshold_w
    return apply_min_durations(
        raw,
        durations_to_samples(rule.min_on_s, sample_period_s),
        durations_to_samples(rule.min_off_s, sample_period_s),
    )


class StatusTracker:
    """Streaming form of :func:`apply_min_durations`, so the integration's state and energy
    agree with the metrics the trainer reports.

    A run starts as a *candidate*; off-gaps shorter than ``min_off`` samples are bridged,
    and once the candidate (gaps included) spans ``min_on`` samples it is confirmed. A
    confirmed run ends after ``min_off`` consecutive off samples. Samples whose fate is
    still open are held back: :meth:`update` returns the watt-samples that became certain
    this step, including those of a just-confirmed candidate, and drops those of a
    candidate or gap that turned out to be off. Summed over a trace it equals
    ``sum(power * apply_min_durations(raw_on, min_on, min_off))`` up to the samples still
    pending at the end.
    """

    def __init__(self, rule: StatusRule, sample_period_s: float) -> None:
        self._min_on = durations_to_samples(rule.min_on_s, sample_period_s)
        self._min_off = durations_to_samples(rule.min_off_s, sample_period_s)
        self.reset()

    def reset(self) -> None:
        """Forget everything, pending samples included (after a gap in the data)."""
        self.is_on = False
        self._run = 0  # samples of the candidate run so far (bridged gaps included)
        self._run_w = 0.0
        self._gap = 0  # trailing off samples after the last on sample
        self._gap_w = 0.0

    def update(self, raw_on: bool, power_w: float = 0.0) -> float:
        """Feed one raw decision and its power; return the watt-samples now certain."""
        if raw_on:
            if self.is_on:
                counted = self._gap_w + power_w  # the gap was short: it was on after all
                self._gap, self._gap_w = 0, 0.0
                return counted
            if self._run:  # bridge the short gap since the candidate's last on sample
                self._run += self._gap
                self._run_w += self._gap_w
            self._run += 1
            self._run_w += power_w
            self._gap, self._gap_w = 0, 0.0
            if self._run < self._min_on:
                return 0.0
            self.is_on = True
            counted = self._run_w
            self._run, self._run_w = 0, 0.0
            return counted
        if not self.is_on and not self._run:
            return 0.0
        self._gap += 1
        self._gap_w += power_w
        if self._gap >= self._min_off:
            # A real off: neither the gap nor an unconfirmed candidate ever ran.
            self.reset()
        return 0.0
