"""Streaming zero-order-hold resampler from irregular sensor updates to a model's grid.

Home Assistant delivers the mains power as irregular ``(timestamp, value)`` updates: on
change, on re-report, or not at all while a sensor is down. Models want one sample per
``period_s`` on a regular grid, like the averaged REFIT data they were trained on. Each
grid slot ``[k * period_s, (k + 1) * period_s)`` gets the time-weighted mean of the held
(zero-order-hold) signal over the part of the slot that is known.

A value is held for at most ``max_gap_s`` after its report. A missing value (``None``:
unavailable, unknown, non-numeric) reports nothing new, so it is bridged like silence.
When no valid value arrives within ``max_gap_s`` the stretch from the last valid report
on is marked missing (NaN) — retroactively for slots already written — and every window
that overlaps it is invalid until it has scrolled out. Nothing is ever invented to fill
a window: invalid windows are reported as such and the caller shows "unavailable".
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class RingBuffer:
    """Fixed-size history of grid samples addressed by absolute slot number."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._data = np.full(capacity, np.nan, dtype=np.float64)
        self.end: int | None = None  # absolute slot number after the newest sample

    def push(self, slot: int, value: float) -> None:
        """Write ``slot``; slots skipped since the last push become NaN."""
        if self.end is not None and slot < self.end:
            raise ValueError(f"slot {slot} is older than the buffer end {self.end}")
        if self.end is not None and slot > self.end:
            self.fill_nan(self.end, slot)
        self._data[slot % self.capacity] = value
        self.end = slot + 1

    def fill_nan(self, start: int, stop: int) -> None:
        """Mark slots ``[start, stop)`` missing (only the part the buffer can hold)."""
        start = max(start, stop - self.capacity)
        if stop <= start:
            return
        idx = np.arange(start, stop) % self.capacity
        self._data[idx] = np.nan
        if self.end is None or stop > self.end:
            self.end = stop

    def invalidate_from(self, slot: int) -> int:
        """Retroactively mark written slots from ``slot`` on as missing; return how many
        valid samples that removed."""
        if self.end is None or slot >= self.end:
            return 0
        idx = np.arange(max(slot, self.end - self.capacity), self.end) % self.capacity
        removed = int(np.count_nonzero(~np.isnan(self._data[idx])))
        self._data[idx] = np.nan
        return removed

    def latest(self, length: int, offset: int = 0) -> FloatArray:
        """The ``length`` samples ending ``offset`` slots before the newest (NaN if unknown)."""
        if length > self.capacity:
            raise ValueError(f"window {length} exceeds buffer capacity {self.capacity}")
        out = np.full(length, np.nan, dtype=np.float64)
        if self.end is None:
            return out
        stop = self.end - offset
        start = stop - length
        lo = max(start, self.end - self.capacity)
        if stop > lo:
            out[lo - start :] = self._data[np.arange(lo, stop) % self.capacity]
        return out

    def filled(self) -> int:
        """How many of the last ``capacity`` slots hold a valid sample."""
        if self.end is None:
            return 0
        return int(np.count_nonzero(~np.isnan(self.latest(self.capacity))))


class ZohResampler:
    """Zero-order-hold resampler onto an epoch-aligned grid with explicit gaps."""

    def __init__(self, period_s: float, capacity: int, max_gap_s: float) -> None:
        if not period_s > 0 or not math.isfinite(period_s):
            raise ValueError("period_s must be a positive number")
        if not max_gap_s > 0:
            raise ValueError("max_gap_s must be positive")
        self.period_s = float(period_s)
        self.max_gap_s = float(max_gap_s)
        self.buffer = RingBuffer(capacity)
        self._cursor: float | None = None  # time up to which the signal is integrated
        self._value: float | None = None  # held value (None: nothing valid to hold)
        self._valid_ts = -math.inf  # time of the last valid report
        self._acc_sum = 0.0
        self._acc_dt = 0.0
        self.samples_total = 0
        self.samples_missing = 0

    @property
    def newest_slot(self) -> int | None:
        """Absolute number of the newest completed slot."""
        return None if self.buffer.end is None else self.buffer.end - 1

    def slot_of(self, ts: float) -> int:
        return math.floor(ts / self.period_s)

    def update(self, ts: float, value: float | None) -> None:
        """Record a report at ``ts``: a finite value in watts, or ``None`` when missing.

        Reports older than what has already been integrated are applied at the cursor
        (Home Assistant's clock may step back slightly); they never rewrite history.
        """
        if value is not None and not math.isfinite(value):
            value = None
        if self._cursor is None:
            self._cursor = ts
        ts = max(ts, self._cursor)
        self._integrate_to(ts)
        if value is not None:
            self._value = float(value)
            self._valid_ts = ts

    def advance(self, now: float) -> int:
        """Close every slot that ended at or before ``now``; return how many closed."""
        if self._cursor is None:
            self._cursor = now
            return 0
        before = self.samples_total
        self._integrate_to(max(now, self._cursor))
        return self.samples_total - before

    def window(self, length: int) -> FloatArray | None:
        """The newest ``length`` samples, or ``None`` if any of them is missing."""
        win = self.buffer.latest(length)
        if np.isnan(win).any():
            return None
        return win

    def windows(self, length: int, count: int) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """The ``count`` newest windows (oldest first) and which of them are complete.

        Used for warm start: one batched inference over many windows instead of a loop.
        """
        span = self.buffer.latest(length + count - 1)
        view = np.lib.stride_tricks.sliding_window_view(span, length)
        valid: npt.NDArray[np.bool_] = np.asarray(~np.isnan(view).any(axis=1), dtype=bool)
        return np.ascontiguousarray(view), valid

    def latest_value(self, offset: int = 0) -> float | None:
        """The sample ``offset`` slots before the newest, ``None`` if missing."""
        value = float(self.buffer.latest(1, offset)[0])
        return None if math.isnan(value) else value

    @property
    def masked_fraction(self) -> float:
        """Share of all closed slots that were missing (since the resampler started)."""
        return self.samples_missing / self.samples_total if self.samples_total else 0.0

    # ------------------------------------------------------------------ internals

    def _integrate_to(self, ts: float) -> None:
        cursor = self._cursor
        assert cursor is not None
        period = self.period_s
        while cursor < ts:
            slot = math.floor(cursor / period)
            slot_end = (slot + 1) * period
            expiry = self._valid_ts + self.max_gap_s
            if self._value is not None and cursor >= expiry:
                # Only now, with time left beyond the expiry, is the silence a real gap:
                # a valid report landing exactly on the expiry still continues the hold.
                self._expire(cursor)
            if self._value is not None:
                stop = min(ts, slot_end, expiry)
                self._acc_sum += self._value * (stop - cursor)
                self._acc_dt += stop - cursor
                cursor = stop
            else:
                # Missing: jump straight to the end of the stretch (may span many slots).
                stop = min(ts, slot_end)
                if ts >= slot_end:
                    last_full = math.floor(ts / period)  # first slot not finished by ts
                    if last_full > slot + 1:
                        self._close_slot(slot)
                        self._bulk_missing(slot + 1, last_full)
                        cursor = last_full * period
                        continue
                cursor = stop
            if cursor >= slot_end:
                self._close_slot(slot)
        self._cursor = cursor

    def _close_slot(self, slot: int) -> None:
        if self._acc_dt > 0:
            value = self._acc_sum / self._acc_dt
        else:
            value = math.nan
            self.samples_missing += 1
        self.samples_total += 1
        self.buffer.push(slot, value)
        self._acc_sum = 0.0
        self._acc_dt = 0.0

    def _bulk_missing(self, start: int, stop: int) -> None:
        self.samples_total += stop - start
        self.samples_missing += stop - start
        self.buffer.fill_nan(start, stop)

    def _expire(self, at: float) -> None:
        """No valid report for ``max_gap_s``: the whole stretch since the last one is a gap."""
        first_unconfirmed = math.floor(self._valid_ts / self.period_s) + 1
        self.samples_missing += self.buffer.invalidate_from(first_unconfirmed)
        slot = math.floor(at / self.period_s)
        if slot >= first_unconfirmed:
            # The slot being accumulated started after the last report: drop its hold.
            self._acc_sum = 0.0
            self._acc_dt = 0.0
        self._value = None


def grid_slots(resampler: ZohResampler, first_slot: int, slots: int) -> FloatArray:
    """Slots ``[first_slot, first_slot + slots)`` of a resampler's buffer (NaN: unknown,
    not yet closed, or already scrolled out)."""
    out = np.full(slots, np.nan)
    end = resampler.buffer.end
    if end is None or slots <= 0:
        return out
    lo = max(first_slot, end - resampler.buffer.capacity)
    hi = min(end, first_slot + slots)
    if hi > lo:
        out[lo - first_slot : hi - first_slot] = resampler.buffer.latest(hi - lo, end - hi)
    return out


def resample_reports(
    times_s: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    period_s: float,
    max_gap_s: float,
    first_slot: int,
    slots: int,
) -> FloatArray:
    """The grid :class:`ZohResampler` builds from a whole series of reports (sorted
    times; NaN: unavailable), in one call: how the trainer's recorder and history
    imports see Home Assistant's data exactly as the integration does."""
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    if times.shape != vals.shape:
        raise ValueError("times_s and values differ in length")
    resampler = ZohResampler(period_s, max(slots, 1), max_gap_s)
    for ts, value in zip(times.tolist(), vals.tolist(), strict=True):
        resampler.update(ts, None if math.isnan(value) else value)
    resampler.advance((first_slot + slots) * resampler.period_s)
    return grid_slots(resampler, first_slot, slots)


def hold_at_slot_middles(
    times_s: npt.ArrayLike, values: npt.ArrayLike, *, period_s: float, first_slot: int, slots: int
) -> FloatArray:
    """An on/off label (1.0/0.0, NaN unknown) on the grid: each state holds until the next
    one, however long (a switch reports nothing while it stays off), read at each slot's
    middle; NaN before the first state."""
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    out: FloatArray = np.full(max(slots, 0), np.nan)
    if times.size == 0 or slots <= 0:
        return out
    middle = (first_slot + np.arange(slots) + 0.5) * float(period_s)
    index = np.searchsorted(times, middle, side="right") - 1
    return np.where(index >= 0, vals[np.maximum(index, 0)], np.nan)


def keepalive_times(first_ts: float, last_ts: float, max_gap_s: float) -> list[float]:
    """The report times of one recorded row that stayed the state from ``first_ts`` and
    was last re-reported at ``last_ts``: its start, every ``max_gap_s / 2`` while it was
    re-reported (so a constant value is no gap), and its last report. The recorder keeps
    one row per change; its ``last_reported`` proves the value stayed alive."""
    times = [first_ts]
    if math.isfinite(max_gap_s):
        step = max_gap_s / 2.0
        ts = first_ts + step
        while ts < last_ts:
            times.append(ts)
            ts += step
    if last_ts > first_ts:
        times.append(last_ts)
    return times
