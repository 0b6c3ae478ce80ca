"""Core of every loader: one tidy, regular, masked frame of aggregate + appliance power.

Every loader returns :class:`HouseData`: a UTC grid of ``period_s`` with column
``aggregate`` and canonical appliance columns (see :mod:`trainer.appliances`), float32
watts, NaN where the data cannot be trusted. Masking is explicit and counted so that
training and metrics never silently learn from gap fills:

* **zero runs** - the house aggregate is never exactly 0 W for minutes (fridge, standby);
  REFIT fills its gaps with 0 (House 2: 2013-10-25 .. 2014-02-13 and more).
* **constant runs** - a live aggregate never repeats the same value for half an hour
  (House 2 at 30 s: 99.9 % of repeats last < 16 min); REFIT also fills gaps with constants.
* **missing** - grid bins with no sample (beyond a short zero-order-hold fill) or NaN input.
* **issues** - REFIT CLEAN rows flagged ``Issues == 1`` (sub-meters exceed the aggregate).
* **negative** - net meters exporting solar power; seq2point disaggregates consumption.

Not masked but counted: the aggregate clipped at 6000 W (as in REFIT's 30 s files, so
every source matches what the models were trained on) and sub-meter spikes (set to NaN in
that appliance's column only).

Resampling is a mean over bins ``[t, t + period)`` labelled with the bin start; a bin
that contains any masked sample is masked as a whole (never half-trusted).
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..appliances import APPLIANCES, CANONICAL, check_appliance
from ..config import DataConfig, Unit
from ..errors import TrainerError

__all__ = [
    "HouseData",
    "build_house",
    "canonical_name",
    "check_units",
    "default_data_dir",
    "parse_mapping",
]  # fmt: skip

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Mask reasons, in precedence order (a row masked for several reasons counts once, under
# the first).
REASON_ISSUES = "issues"
REASON_ZERO = "zero runs"
REASON_CONSTANT = "constant runs"
REASON_NEGATIVE = "negative"
REASON_MISSING = "missing"
REASON_ORDER: tuple[str, ...] = (
    REASON_ISSUES,
    REASON_NEGATIVE,
    REASON_ZERO,
    REASON_CONSTANT,
    REASON_MISSING,
)

# Plausibility bounds for the unit check: a household's median mains power in watts.
_MIN_PLAUSIBLE_MEDIAN_W = 20.0
_MAX_PLAUSIBLE_MEDIAN_W = 20_000.0
# A reading above this is a meter glitch (65535 W, 2^32 - 1 W, inf), never a sample:
# three 25 kW phases are the most a household connection delivers.
MAX_PLAUSIBLE_MAINS_W = 75_000.0
# Memory bounds of the regular grid: rows in all, and rows per real sample (a typo'd
# year in a 400-row CSV would otherwise build a 100 M-row grid of NaN).
MAX_GRID_ROWS = 30_000_000
MAX_GRID_ROWS_PER_SAMPLE = 100
# Decompressed size of one CSV (a small .gz can expand without bound).
MAX_CSV_BYTES = 4 * 1024**3
# Epoch timestamps above this many seconds are milliseconds (year 5138 in seconds).
_MAX_EPOCH_S = 1e11


@dataclass(frozen=True, slots=True)
class HouseData:
    """One house on a regular grid.

    ``mask_reasons`` counts masked grid rows per reason (each row once, see
    ``REASON_ORDER``) plus informational counts such as ``"clipped"`` (not masked).
    ``status_columns`` names appliance columns holding an on/off label (1.0/0.0) instead
    of watts (Home Assistant binary entities).
    """

    frame: pd.DataFrame
    period_s: float
    source: str
    mask_reasons: Mapping[str, int] = field(default_factory=dict)
    status_columns: frozenset[str] = frozenset()

    @property
    def appliances(self) -> tuple[str, ...]:
        """Canonical appliance columns present in the frame."""
        return tuple(c for c in self.frame.columns if c != "aggregate")

    @property
    def masked_fraction(self) -> float:
        """Share of grid rows whose aggregate is masked (NaN)."""
        n = len(self.frame)
        return float(self.frame["aggregate"].isna().sum() / n) if n else 0.0

    def column(self, appliance: str) -> npt.NDArray[np.float32]:
        """One appliance's series; a clear error names what the house does have."""
        check_appliance(appliance)
        if appliance not in self.frame.columns:
            have = ", ".join(self.appliances) or "none"
            raise TrainerError(
                f"{self.source} has no {appliance} data (appliances present: {have})"
            )
        values: npt.NDArray[np.float32] = self.frame[appliance].to_numpy(dtype=np.float32)
        return values

    def time_slice(
        self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None
    ) -> HouseData:
        """Rows in ``[start, end)`` (UTC): keeps overlapping releases apart, e.g. REFIT
        House 2 at 8 s lies inside January 2015 of the 30 s files. Per-reason counts do
        not survive slicing: ``mask_reasons`` holds the slice's masked total."""
        frame = self.frame
        idx = frame.index
        lo = 0 if start is None else int(idx.searchsorted(pd.Timestamp(start, tz="UTC")))
        hi = len(frame) if end is None else int(idx.searchsorted(pd.Timestamp(end, tz="UTC")))
        part = frame.iloc[lo:hi]
        if part.empty or part["aggregate"].isna().all():
            raise TrainerError(f"{self.source}: nothing left between {start} and {end}")
        label = f"{self.source} [{start or '...'} .. {end or '...'})"
        masked = int(part["aggregate"].isna().sum())
        return HouseData(part, self.period_s, label, {"masked": masked}, self.status_columns)

    def report(self) -> str:
        """One line for logs and the CLI: rows, masked share and why."""
        n = len(self.frame)
        parts = [f"{k}: {v:,}" for k, v in self.mask_reasons.items() if v]
        detail = f" ({', '.join(parts)})" if parts else ""
        span = ""
        if n:
            start, end = self.frame.index[0], self.frame.index[-1]
            span = f", {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"
        return (
            f"{self.source}: {n:,} rows at {self.period_s:g} s{span}, "
            f"{100 * self.masked_fraction:.1f} % masked{detail}; "
            f"appliances: {', '.join(self.appliances) or 'none'}"
        )


def canonical_name(column: str) -> str | None:
    """Map a dataset's column name to a canonical appliance (None when not modelled)."""
    if column in APPLIANCES:
        return column
    for spec in APPLIANCES.values():
        if column in spec.aliases:
            return spec.name
    return None


# ---------------------------------------------------------------------------- core


def _duration_label(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _long_runs(
    starts: npt.NDArray[np.intp],
    ends: npt.NDArray[np.intp],
    keep: BoolArray,
    t_s: FloatArray,
    *,
    min_duration_s: float,
    step_s: float,
) -> BoolArray:
    """True on the samples of the runs ``[starts, ends)`` (``keep``-ed) that last longer
    than ``min_duration_s``: from a run's first sample to the next sample, or + step."""
    n = t_s.size
    t_end = np.where(ends < n, t_s[np.minimum(ends, n - 1)], t_s[ends - 1] + step_s)
    long = keep & ((t_end - t_s[starts]) > min_duration_s)
    if not long.any():
        return np.zeros(n, dtype=bool)
    marks = np.zeros(n + 1, dtype=np.int32)
    np.add.at(marks, starts[long], 1)
    np.add.at(marks, ends[long], -1)
    out: BoolArray = np.cumsum(marks[:-1]) > 0
    return out


def _run_mask(flag: BoolArray, t_s: FloatArray, min_duration_s: float, step_s: float) -> BoolArray:
    """True on the samples of every True-run of ``flag`` lasting longer than
    ``min_duration_s``."""
    if flag.size == 0 or not flag.any():
        return np.zeros(flag.size, dtype=bool)
    padded = np.concatenate(([False], flag, [False])).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    return _long_runs(
        starts, ends, np.ones(starts.size, bool), t_s, min_duration_s=min_duration_s, step_s=step_s
    )


def _constant_run_mask(
    agg: FloatArray, t_s: FloatArray, min_duration_s: float, step_s: float
) -> BoolArray:
    """True on every block of one repeated non-zero value lasting longer than
    ``min_duration_s``.

    Blocks are of *one* value: two neighbouring flat stretches at different levels are two
    runs, so a sensor that reports every 60 s, held on a 30 s grid, is not a constant run.
    """
    n = agg.size
    if n < 2:
        return np.zeros(n, dtype=bool)
    new_block = np.concatenate(([True], agg[1:] != agg[:-1]))  # NaN != NaN: singletons
    starts = np.flatnonzero(new_block)
    ends = np.concatenate((starts[1:], [n]))  # exclusive
    keep = (ends - starts >= 2) & (agg[starts] != 0)
    return _long_runs(starts, ends, keep, t_s, min_duration_s=min_duration_s, step_s=step_s)


def _check_unit_mix(aggregate_w: FloatArray, what: str, parts: int = 10) -> None:
    """Refuse a series whose level jumps by ~1000x between stretches (half in W, half in
    kW): seasons move a household's median by 10x at most."""
    values = np.asarray(aggregate_w, dtype=np.float64)
    if values.size < 10 * parts:
        return
    medians = []
    for chunk in np.array_split(values, parts):
        ok = chunk[np.isfinite(chunk) & (chunk > 0)]
        if ok.size >= 10:
            medians.append(float(np.median(ok)))
    if len(medians) >= 2 and min(medians) > 0 and max(medians) / min(medians) > 300:
        raise TrainerError(
            f"{what}: the mains level changes from a median of {min(medians):g} to "
            f"{max(medians):g} between parts of the file: it looks like a mix of W and kW; "
            "convert it to one unit first"
        )


def check_units(aggregate_w: FloatArray, unit: Unit, what: str, *, hint: bool = True) -> float:
    """Return the factor to watts; refuse units that make the mains implausible."""
    finite = aggregate_w[np.isfinite(aggregate_w) & (aggregate_w != 0)]
    if finite.size == 0:
        raise TrainerError(f"{what}: the mains column has no non-zero numeric values")
    median = float(np.median(np.abs(finite)))
    _check_unit_mix(aggregate_w, what)
    if unit == "auto":
        unit = "kW" if median < _MIN_PLAUSIBLE_MEDIAN_W else "W"
    factor = 1000.0 if unit == "kW" else 1.0
    median_w = median * factor
    if median_w < _MIN_PLAUSIBLE_MEDIAN_W:
        advice = " - is it in kW? pass unit kW" if hint and unit == "W" else ""
        raise TrainerError(
            f"{what}: mains median {median:g} {unit} = {median_w:g} W is implausibly low "
            f"for a household{advice}"
        )
    if median_w > _MAX_PLAUSIBLE_MEDIAN_W:
        advice = " - is it in W? pass unit W" if hint and unit == "kW" else ""
        raise TrainerError(
            f"{what}: mains median {median:g} {unit} = {median_w:g} W is implausibly high "
            f"for a household{advice}"
        )
    return factor


def _check_grid(t_ns: npt.NDArray[np.int64], period_s: float, source: str) -> None:
    """Refuse a grid that would not fit in memory, saying why, before building it."""
    period_ns = round(period_s * 1e9)
    rows = int(t_ns[-1] // period_ns - t_ns[0] // period_ns) + 1
    first = pd.Timestamp(int(t_ns[0]), unit="ns", tz="UTC")
    last = pd.Timestamp(int(t_ns[-1]), unit="ns", tz="UTC")
    span = f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC"
    if rows > MAX_GRID_ROWS:
        raise TrainerError(
            f"{source}: {span} at {period_s:g} s is {rows:,} grid rows, more than the "
            f"{MAX_GRID_ROWS:,} this machine's memory budget allows: check the timestamps "
            "or use a longer period"
        )
    if rows > 1_000_000 and rows > MAX_GRID_ROWS_PER_SAMPLE * t_ns.size:
        raise TrainerError(
            f"{source}: only {t_ns.size:,} samples span {span} ({rows:,} rows at "
            f"{period_s:g} s): a timestamp is far from the others (a typo in a year?)"
        )


def build_house(
    times: pd.DatetimeIndex | npt.NDArray[np.int64],
    aggregate: npt.ArrayLike,
    appliances: Mapping[str, npt.ArrayLike],
    *,
    native_period_s: float,
    source: str,
    config: DataConfig,
    issues: npt.ArrayLike | None = None,
    status_columns: Iterable[str] = (),
) -> HouseData:
    """Mask, resample and assemble raw samples (any spacing, UTC) into :class:`HouseData`.

    ``times`` are UTC timestamps (DatetimeIndex or int64 ns since the epoch); values are
    watts. Shared by every loader so that all sources are masked the same way.
    """
    t_ns = (
        np.asarray(times.asi8 if isinstance(times, pd.DatetimeIndex) else times)
        .astype(np.int64)
        .copy()
    )
    agg = np.asarray(aggregate, dtype=np.float64).copy()
    apps = {name: np.asarray(v, dtype=np.float64).copy() for name, v in appliances.items()}
    if t_ns.size != agg.size or any(v.size != agg.size for v in apps.values()):
        raise TrainerError(f"{source}: columns have different lengths")
    if t_ns.size == 0:
        raise TrainerError(f"{source}: no samples")
    if config.appliances is not None:
        missing = [a for a in config.appliances if a not in apps]
        if missing:
            have = ", ".join(apps) or "none"
            raise TrainerError(
                f"{source} has no {', '.join(missing)} data (appliances present: {have})"
            )
        apps = {a: apps[a] for a in config.appliances}
    status_set = frozenset(s for s in status_columns if s in apps)

    # Sort, drop duplicate timestamps (keep the first reading).
    if not np.all(np.diff(t_ns) > 0):
        order = np.argsort(t_ns, kind="stable")
        t_ns = t_ns[order]
        keep = np.concatenate(([True], np.diff(t_ns) > 0))
        sel = order[keep]
        t_ns = t_ns[keep]
        agg = agg[sel]
        apps = {k: v[sel] for k, v in apps.items()}
        if issues is not None:
            issues = np.asarray(issues)[sel]

    period_s = float(config.period_s or native_period_s)
    t_s = (t_ns - t_ns[0]) / 1e9
    step_s = float(native_period_s)
    _check_grid(t_ns, period_s, source)

    # Glitches (inf, 1e308, 65535 W...) are missing data, not clipped to a real level.
    implausible = ~np.isfinite(agg) | (np.abs(agg) > MAX_PLAUSIBLE_MAINS_W)
    agg[implausible] = np.nan
    for values in apps.values():
        values[~np.isfinite(values)] = np.nan

    clipped = 0
    if config.clip_aggregate_w is not None:
        over = agg > config.clip_aggregate_w
        clipped = int(over.sum())
        agg[over] = config.clip_aggregate_w

    reasons: dict[str, BoolArray] = {}
    if issues is not None:
        reasons[REASON_ISSUES] = np.asarray(issues, dtype=np.float64) == 1
    # Net meters with solar export read negative: seq2point on consumption cannot use it.
    reasons[REASON_NEGATIVE] = agg < 0
    reasons[REASON_ZERO] = _run_mask(agg == 0, t_s, config.max_zero_run_s, step_s)
    reasons[REASON_CONSTANT] = _constant_run_mask(agg, t_s, config.max_constant_run_s, step_s)
    bad_input = ~np.isfinite(agg)

    spikes = 0
    if config.appliance_spike_factor is not None:
        for name, values in apps.items():
            if name in status_set:
                continue
            bound = APPLIANCES[name].max_power_w * config.appliance_spike_factor
            spike = values > bound
            spikes += int(spike.sum())
            values[spike] = np.nan

    row_masked = bad_input.copy()
    for m in reasons.values():
        row_masked |= m
    agg[row_masked] = np.nan
    for values in apps.values():
        values[row_masked] = np.nan

    # Resample: mean over [t, t+period) bins on a grid aligned to whole periods (UTC).
    period_ns = round(period_s * 1e9)
    keys = t_ns // period_ns
    k0 = int(keys[0])
    bins = (keys - k0).astype(np.int64)
    nbins = int(bins[-1]) + 1
    counts = np.bincount(bins, minlength=nbins)
    empty = counts == 0

    def bin_mean(values: FloatArray) -> FloatArray:
        nan = np.isnan(values)
        sums = np.bincount(bins, weights=np.where(nan, 0.0, values), minlength=nbins)
        nan_counts = np.bincount(bins, weights=nan.astype(np.float64), minlength=nbins)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = sums / counts
        out[nan_counts > 0] = np.nan
        return out

    def bin_any(flag: BoolArray) -> BoolArray:
        return np.bincount(bins, weights=flag.astype(np.float64), minlength=nbins) > 0

    # Already one sample per bin (the 30 s files): skip the arithmetic.
    identity = nbins == t_ns.size and bool(np.all(np.diff(bins) == 1))
    grid_agg = agg if identity else bin_mean(agg)
    grid_apps = {k: (v if identity else bin_mean(v)) for k, v in apps.items()}
    grid_reasons = {k: (m if identity else bin_any(m)) for k, m in reasons.items()}

    # Zero-order hold across short gaps of empty bins only.
    fill_bins = int(config.fill_gap_s // period_s)
    if fill_bins > 0 and empty.any():
        idx = np.where(~empty, np.arange(nbins), -1)
        last = np.maximum.accumulate(idx)
        fillable = empty & (last >= 0) & (np.arange(nbins) - last <= fill_bins)
        # Only fill a gap that is short as a whole (no partial fill of long outages).
        gap_id = np.cumsum(~empty)
        gap_len = np.bincount(gap_id, weights=empty.astype(np.float64))
        fillable &= gap_len[gap_id] <= fill_bins
        src = last[fillable]
        grid_agg[fillable] = grid_agg[src]
        for v in grid_apps.values():
            v[fillable] = v[src]
        empty = empty & ~fillable

    masked_rows = np.isnan(grid_agg)
    counted = np.zeros(nbins, dtype=bool)
    mask_counts: dict[str, int] = {}
    labels = {
        REASON_ISSUES: "issues",
        REASON_NEGATIVE: "negative (export)",
        REASON_ZERO: f"zero runs > {_duration_label(config.max_zero_run_s)}",
        REASON_CONSTANT: f"constant runs > {_duration_label(config.max_constant_run_s)}",
    }
    for reason in REASON_ORDER:
        if reason == REASON_MISSING:
            m = masked_rows & ~counted
        elif reason in grid_reasons:
            m = grid_reasons[reason] & masked_rows & ~counted
        else:
            continue
        mask_counts[labels.get(reason, reason)] = int(m.sum())
        counted |= m
    if implausible.any():
        mask_counts[f"implausible readings (> {MAX_PLAUSIBLE_MAINS_W:g} W or not finite)"] = int(
            implausible.sum()
        )
    if clipped:
        mask_counts[f"clipped at {config.clip_aggregate_w:g} W (kept)"] = clipped
    if spikes:
        mask_counts["appliance spikes"] = spikes

    index = pd.DatetimeIndex(
        pd.to_datetime((k0 + np.arange(nbins, dtype=np.int64)) * period_ns, unit="ns", utc=True),
        name="time",
    )
    data = {"aggregate": grid_agg.astype(np.float32)}
    for name in CANONICAL:
        if name in grid_apps:
            data[name] = grid_apps[name].astype(np.float32)
    frame = pd.DataFrame(data, index=index)
    house = HouseData(
        frame=frame,
        period_s=period_s,
        source=source,
        mask_reasons=mask_counts,
        status_columns=status_set,
    )
    if masked_rows.all():
        raise TrainerError(f"{source}: every sample is masked ({house.report()})")
    return house


def _columns_to_canonical(columns: Sequence[str]) -> dict[str, str]:
    """Pick one source column per canonical appliance (exact name beats alias)."""
    chosen: dict[str, str] = {}
    for col in columns:
        name = canonical_name(col)
        if name is None:
            continue
        if name not in chosen or (col == name and chosen[name] != name):
            chosen[name] = col
    return chosen


# ---------------------------------------------------------------------------- readers


class _Bounded(io.RawIOBase):
    """A read-only stream that refuses to yield more than ``limit`` bytes (gzip bombs)."""

    def __init__(self, inner: Any, limit: int, path: Path) -> None:
        self._inner, self._left, self._path, self._limit = inner, limit, path, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise TrainerError(
                f"{self._path} decompresses to more than {self._limit / 1024**3:g} GiB; "
                "refusing to read it (split the file)"
            )
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _read_csv(path: Path, what: str, **kwargs: object) -> pd.DataFrame:
    """pandas.read_csv with every failure turned into one TrainerError line."""
    if not path.is_file():
        raise TrainerError(f"{what}: file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as raw:
                handle = io.BufferedReader(_Bounded(raw, MAX_CSV_BYTES, path), 1 << 20)
                frame = pd.read_csv(handle, **kwargs)  # type: ignore[call-overload]
        else:
            frame = pd.read_csv(path, **kwargs)
    except (
        ValueError,
        pd.errors.ParserError,
        UnicodeDecodeError,
        gzip.BadGzipFile,
        EOFError,
        OSError,
    ) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainerError(f"{what}: cannot read CSV {path}: {first}") from err
    if frame.empty:
        raise TrainerError(f"{what}: {path} has no data rows")
    assert isinstance(frame, pd.DataFrame)
    return frame


def _require_columns(frame: pd.DataFrame, needed: Iterable[str], path: Path) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns))
        raise TrainerError(
            f"{path}: missing column(s) {', '.join(missing)} (columns present: {have})"
        )


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> FloatArray:
    """Column as float64; non-numeric cells are refused unless they are blank."""
    values: FloatArray = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & frame[column].notna().to_numpy()
    if bad.any():
        first = frame[column].to_numpy()[np.flatnonzero(bad)[0]]
        raise TrainerError(
            f"{path}: column {column!r} has {int(bad.sum())} non-numeric value(s), e.g. {first!r}"
        )
    return values


def _parse_times(
    values: pd.Series, path: Path, column: str, timezone: str | None = None
) -> npt.NDArray[np.int64]:
    """UTC ns from ISO strings or unix seconds.

    Naive strings are UTC unless ``timezone`` (IANA name) says where they were taken;
    then the repeated and the skipped hour of DST changes come back as ``NAT_NS``
    (dropped by the caller, so they end up masked as missing).
    """
    if pd.api.types.is_numeric_dtype(values):
        secs = values.to_numpy(dtype=np.float64)
        if np.isnan(secs).any():
            raise TrainerError(f"{path}: column {column!r} has empty timestamps")
        if secs.size and float(np.nanmax(np.abs(secs))) > _MAX_EPOCH_S:
            raise TrainerError(
                f"{path}: column {column!r} holds epoch values like {secs[0]:.0f}, which "
                "are milliseconds, not seconds: divide them by 1000 first"
            )
        ns: npt.NDArray[np.int64] = np.round(secs * 1e9).astype(np.int64)
        return ns
    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601", utc=timezone is None))
    except (ValueError, TypeError) as err:
        raise TrainerError(
            f"{path}: column {column!r} is not a timestamp: {str(err).splitlines()[0]}"
        ) from err
    if parsed.isna().any():
        raise TrainerError(f"{path}: column {column!r} has empty timestamps")
    if timezone is not None:
        if parsed.tz is None:
            try:
                parsed = parsed.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
            except (ValueError, KeyError) as err:
                raise TrainerError(f"unknown time zone {timezone!r}: {err}") from err
        parsed = parsed.tz_convert("UTC")
    return np.asarray(parsed.as_unit("ns").asi8, dtype=np.int64)


NAT_NS = int(np.iinfo(np.int64).min)


def _frame_to_house(
    frame: pd.DataFrame,
    path: Path,
    *,
    time_col: str,
    mains_col: str,
    appliance_cols: Mapping[str, str],
    native_period_s: float,
    source: str,
    config: DataConfig,
    unit: Unit = "W",
    issues_col: str | None = None,
    timezone: str | None = None,
) -> HouseData:
    extra = [issues_col] if issues_col else []
    _require_columns(frame, [time_col, mains_col, *appliance_cols.values(), *extra], path)
    times = _parse_times(frame[time_col], path, time_col, timezone)
    if (times == NAT_NS).any():  # DST hours of local-time data: masked as missing
        frame = frame.loc[times != NAT_NS]
        times = times[times != NAT_NS]
    agg = _numeric(frame, mains_col, path)
    factor = check_units(agg, unit, str(path))
    apps = {name: _numeric(frame, col, path) * factor for name, col in appliance_cols.items()}
    issues = _numeric(frame, issues_col, path) if issues_col else None
    return build_house(
        times,
        agg * factor,
        apps,
        native_period_s=native_period_s,
        source=source,
        config=config,
        issues=issues,
    )


def tidy_frame_to_house(
    frame: pd.DataFrame, path: Path, *, native_period_s: float, source: str, config: DataConfig
) -> HouseData:
    """A ``timestamp, aggregate, <appliance>...`` frame (REFIT 8 s, UK-DALE): every
    other column is an appliance under one of its dataset names."""
    _require_columns(frame, ["timestamp", "aggregate"], path)
    cols = _columns_to_canonical([c for c in frame.columns if c not in ("timestamp", "aggregate")])
    return _frame_to_house(
        frame,
        path,
        time_col="timestamp",
        mains_col="aggregate",
        appliance_cols=cols,
        native_period_s=native_period_s,
        source=source,
        config=config,
    )


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["kettle=Kettle W", ...]`` (command line) -> ``{"kettle": "Kettle W"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, col = item.partition("=")
        if not sep or not name.strip() or not col.strip():
            raise TrainerError(f"appliance mapping must look like kettle=COLUMN, got {item!r}")
        out[check_appliance(name.strip())] = col.strip()
    return out


def default_data_dir() -> Path:
    """``$NILM_DATA_DIR`` or ``../shared/data`` beside the project root."""
    env = os.environ.get("NILM_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
