"""Seq2point windows without copies: views, valid starts, balanced sampling, time split.

A window is ``aggregate[s : s + L]``; its target is ``appliance[s + target_index]``.
Windows are never materialised for the whole house (House 2 at 30 s with L = 599 would
be 4 GB): we keep the 1-D series plus an int64 array of window starts and build float32
batches only for the starts asked for (``numpy.lib.stride_tricks.sliding_window_view``).

The train/validation split is by time: training windows end at or before a boundary
sample, validation windows start at or after it, so no sample is shared. Normalisation
statistics come from the training block only. The test house never passes through
:func:`make_windows` (use :func:`evaluation_windows` with the training normalisation).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from custom_components.nilm.engine.windows import valid_starts

from .appliances import APPLIANCES, check_appliance
from .config import WindowConfig
from .data import HouseData
from .errors import TrainerError

__all__ = [
    "Normalisation",
    "WindowConfig",
    "WindowSet",
    "WindowSplit",
    "balance",
    "draw_balanced",
    "draw_pooled",
    "evaluation_windows",
    "make_windows",
    "sliding_windows",
    "split_by_time",
    "valid_starts",
]  # fmt: skip

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Normalisation:
    """What the model card records: input ``(W - mean) / std``; target ``W / scale``."""

    input_mean_w: float
    input_std_w: float
    power_scale_w: float
    on_threshold_w: float

    @classmethod
    def from_training(
        cls, aggregate_w: npt.ArrayLike, appliance: str, *, status_only: bool = False
    ) -> Normalisation:
        """Mean/std of the training aggregate (NaN ignored); scale/threshold from the
        appliance table (binary labels: scale 1, threshold 0.5)."""
        agg = np.asarray(aggregate_w, dtype=np.float64)
        finite = agg[np.isfinite(agg)]
        if finite.size < 2:
            raise TrainerError("no unmasked aggregate samples to compute normalisation from")
        std = float(finite.std())
        spec = APPLIANCES[check_appliance(appliance)]
        return cls(
            input_mean_w=float(finite.mean()),
            input_std_w=std if std > 0 else 1.0,
            power_scale_w=1.0 if status_only else spec.max_power_w,
            on_threshold_w=0.5 if status_only else spec.on_power_threshold_w,
        )


@dataclass(frozen=True, slots=True, eq=False)
class WindowSet:
    """Windows over one series, as starts into shared 1-D arrays (no copies).

    ``aggregate_w`` and ``target_w`` are the whole series (float32 watts, NaN masked);
    ``starts`` the chosen window starts, in sampling order.
    """

    aggregate_w: FloatArray
    target_w: FloatArray
    starts: IntArray
    window_length: int
    target_index: int
    norm: Normalisation
    period_s: float

    def __len__(self) -> int:
        return int(self.starts.size)

    def _sel(self, idx: npt.ArrayLike | None) -> IntArray:
        return self.starts if idx is None else self.starts[np.asarray(idx)]

    def inputs(self, idx: npt.ArrayLike | None = None) -> FloatArray:
        """Normalised windows ``(k, L)`` float32 for the chosen (or all) windows."""
        view = sliding_window_view(self.aggregate_w, self.window_length)
        x = view[self._sel(idx)].astype(np.float32)
        x -= np.float32(self.norm.input_mean_w)
        x /= np.float32(self.norm.input_std_w)
        return x

    def targets_w(self, idx: npt.ArrayLike | None = None) -> FloatArray:
        """Target power in watts at each window's target index."""
        return self.target_w[self._sel(idx) + self.target_index].astype(np.float32)

    def targets(self, idx: npt.ArrayLike | None = None) -> FloatArray:
        """Target power divided by ``power_scale_w`` (the model's output unit)."""
        return self.targets_w(idx) / np.float32(self.norm.power_scale_w)

    def status(self, idx: npt.ArrayLike | None = None) -> FloatArray:
        """1.0 where the target is on (>= threshold, as engine.status), else 0.0."""
        return (self.targets_w(idx) >= self.norm.on_threshold_w).astype(np.float32)

    @property
    def on_share(self) -> float:
        """Share of windows whose target is on."""
        return float(self.status().mean()) if len(self) else 0.0

    def batches(
        self, batch_size: int, *, shuffle: bool = True, seed: int = 0
    ) -> Iterator[tuple[FloatArray, FloatArray, FloatArray]]:
        """Yield (inputs, scaled targets, status) batches; only one batch is in memory."""
        if batch_size < 1:
            raise TrainerError(f"batch size must be >= 1, got {batch_size}")
        order = np.arange(len(self))
        if shuffle:
            np.random.default_rng(seed).shuffle(order)
        for i in range(0, order.size, batch_size):
            idx = order[i : i + batch_size]
            yield self.inputs(idx), self.targets(idx), self.status(idx)

    @property
    def start_times_s(self) -> FloatArray:
        """Offset of each window's target sample from the series start, in seconds."""
        return ((self.starts + self.target_index) * self.period_s).astype(np.float32)


@dataclass(frozen=True, slots=True)
class WindowSplit:
    """Training and validation windows of one house and appliance, split by time."""

    train: WindowSet
    validation: WindowSet
    norm: Normalisation
    boundary: int  # first sample index of the validation block


def sliding_windows(series: npt.ArrayLike, window_length: int, stride: int = 1) -> FloatArray:
    """Read-only ``(n_windows, L)`` view of a 1-D series (no copy)."""
    arr = np.asarray(series)
    if arr.ndim != 1:
        raise TrainerError(f"expected a 1-D series, got shape {arr.shape}")
    if arr.size < window_length:
        raise TrainerError(
            f"series of {arr.size} samples is shorter than a window ({window_length})"
        )
    view: FloatArray = sliding_window_view(arr, window_length)[::stride]
    return view


def balance(
    starts: IntArray,
    on: BoolArray,
    on_share: float | None,
    rng: np.random.Generator,
    max_windows: int | None = None,
) -> IntArray:
    """Subsample so that ``on_share`` of the windows are on (the majority class is
    subsampled, the minority kept whole), then cap at ``max_windows``; sorted result."""
    on_idx = starts[on]
    off_idx = starts[~on]
    if on_share is None:
        n_on, n_off = on_idx.size, off_idx.size
    else:
        if on_idx.size == 0:
            raise TrainerError("no windows with the appliance on: cannot balance on/off windows")
        if off_idx.size == 0:
            raise TrainerError("no windows with the appliance off: cannot balance on/off windows")
        n_on = on_idx.size
        n_off = round(n_on * (1 - on_share) / on_share)
        if n_off > off_idx.size:
            n_off = off_idx.size
            n_on = min(on_idx.size, round(n_off * on_share / (1 - on_share)))
    total = n_on + n_off
    if max_windows is not None and total > max_windows:
        n_on = max(1, round(n_on * max_windows / total)) if n_on else 0
        n_off = max_windows - n_on
    picked = draw_balanced(on_idx, off_idx, n_on, n_off, rng, keep_whole=True)
    return np.sort(picked).astype(np.int64)


def draw_balanced(
    on_idx: npt.NDArray[np.integer],
    off_idx: npt.NDArray[np.integer],
    n_on: int,
    n_off: int,
    rng: np.random.Generator,
    *,
    keep_whole: bool = False,
) -> npt.NDArray[np.integer]:
    """``n_on`` of ``on_idx`` then ``n_off`` of ``off_idx``, drawn without replacement:
    the one balanced draw behind training windows (:func:`balance`) and calibration sets
    (:mod:`trainer.calibration`). ``keep_whole`` keeps a class asked for entirely as it
    is, without drawing (no random numbers used for it)."""

    def draw(idx: npt.NDArray[np.integer], n: int) -> npt.NDArray[np.integer]:
        if keep_whole and n >= idx.size:
            return idx
        return rng.choice(idx, size=n, replace=False)

    return np.concatenate((draw(on_idx, n_on), draw(off_idx, n_off)))


def draw_pooled(
    pools: Sequence[npt.NDArray[np.int64]], n: int, rng: np.random.Generator
) -> list[IntArray]:
    """``n`` window starts drawn uniformly without replacement from all ``pools``
    together (each pool, e.g. one house, weighted by its size; at most all of them),
    returned per pool and sorted: the one pooled draw behind the bundled models' real
    windows and the distillation's unlabelled ones."""
    sizes = np.array([p.size for p in pools], dtype=np.int64)
    total = int(sizes.sum())
    if total == 0:
        return [np.zeros(0, np.int64) for _ in pools]
    chosen = rng.choice(total, size=min(n, total), replace=False)
    owner = np.searchsorted(np.cumsum(sizes), chosen, side="right")
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return [
        np.sort(np.asarray(pools[k])[chosen[owner == k] - offsets[k]]).astype(np.int64)
        for k in range(len(pools))
    ]


def split_by_time(
    starts: IntArray, window_length: int, validation_fraction: float
) -> tuple[IntArray, IntArray, int]:
    """Split valid starts into contiguous train (earlier) and validation (later) blocks.

    The boundary is chosen so that ``validation_fraction`` of the valid windows fall in
    the validation block; training windows that would cross it are dropped.
    """
    if starts.size == 0:
        raise TrainerError("no complete unmasked windows to split")
    if validation_fraction == 0:
        return starts, np.zeros(0, dtype=np.int64), int(starts[-1]) + window_length
    cut = int(np.floor(starts.size * (1.0 - validation_fraction)))
    cut = min(max(cut, 1), starts.size - 1) if starts.size > 1 else 1
    boundary = int(starts[cut]) if cut < starts.size else int(starts[-1]) + window_length
    train = starts[starts + window_length <= boundary]
    val = starts[starts >= boundary]
    return train, val, boundary


def _series(house: HouseData, appliance: str) -> tuple[FloatArray, FloatArray, bool]:
    target = house.column(appliance)
    aggregate = house.frame["aggregate"].to_numpy(dtype=np.float32)
    return aggregate, target, appliance in house.status_columns


def make_windows(house: HouseData, appliance: str, config: WindowConfig) -> WindowSplit:
    """Training (balanced) and validation (natural mix) windows of one house."""
    aggregate, target, status_only = _series(house, appliance)
    length, t_idx = config.window_length, config.target_index
    starts = valid_starts(aggregate, target, length, t_idx, config.stride)
    if starts.size < 2:
        raise TrainerError(
            f"{house.source}: no complete {length}-sample windows for {appliance} after "
            f"masking ({100 * house.masked_fraction:.1f} % masked); use more data or a "
            "shorter window"
        )
    train, val, boundary = split_by_time(starts, length, config.validation_fraction)
    if train.size == 0:
        raise TrainerError(f"{house.source}: no training windows before the validation block")
    norm = Normalisation.from_training(aggregate[:boundary], appliance, status_only=status_only)
    on = target[train + t_idx] >= norm.on_threshold_w
    rng = np.random.default_rng(config.seed)
    try:
        train = balance(train, on, config.on_share, rng, config.max_windows)
    except TrainerError as err:
        raise TrainerError(f"{house.source}, {appliance}, training block: {err}") from None

    def windows(starts: IntArray) -> WindowSet:
        return WindowSet(aggregate, target, starts, length, t_idx, norm, house.period_s)

    return WindowSplit(windows(train), windows(val), norm, boundary)


def evaluation_windows(
    house: HouseData, appliance: str, config: WindowConfig, norm: Normalisation
) -> WindowSet:
    """Every valid window of a held-out house (no balancing), normalised with the
    training statistics - the test house never influences them."""
    aggregate, target, _ = _series(house, appliance)
    starts = valid_starts(
        aggregate, target, config.window_length, config.target_index, config.stride
    )
    if starts.size == 0:
        raise TrainerError(
            f"{house.source}: no complete {config.window_length}-sample windows for "
            f"{appliance} after masking"
        )
    return WindowSet(
        aggregate_w=aggregate,
        target_w=target,
        starts=starts,
        window_length=config.window_length,
        target_index=config.target_index,
        norm=norm,
        period_s=house.period_s,
    )
