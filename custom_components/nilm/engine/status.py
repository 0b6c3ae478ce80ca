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


def _runs(mask: BoolArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start and end (exclusive) indices of the True runs of ``mask``."""
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def apply_min_durations(raw_on: BoolArray, min_on: int, min_off: int) -> BoolArray:
    """Close off-gaps shorter than ``min_off`` samples, then drop on-runs shorter than
    ``min_on`` samples (the reference seq2point post-processing)."""
    on = np.asarray(raw_on, dtype=bool).copy()
    if min_off > 1 and on.any():
        starts, ends = _runs(~on)
        for start, end in zip(starts, ends, strict=True):
            # Only interior gaps: a gap touching either edge is not bounded by 'on'.
            if start > 0 and end < on.size and end - start < min_off:
                on[start:end] = True
    if min_on > 1:
        starts, ends = _runs(on)
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
    """Streaming hysteresis: a change of state is confirmed only after the raw state has
    held for the minimum duration, so a single noisy sample never flips an automation."""

    def __init__(self, rule: StatusRule, sample_period_s: float) -> None:
        self._min_on = durations_to_samples(rule.min_on_s, sample_period_s)
        self._min_off = durations_to_samples(rule.min_off_s, sample_period_s)
        self.is_on = False
        self._streak = 0

    def reset(self) -> None:
        self.is_on = False
        self._streak = 0

    def update(self, raw_on: bool) -> bool:
        """Feed one raw decision; return the confirmed state."""
        if raw_on == self.is_on:
            self._streak = 0
            return self.is_on
        self._streak += 1
        needed = self._min_on if raw_on else self._min_off
        if self._streak >= needed:
            self.is_on = raw_on
            self._streak = 0
        return self.is_on
