"""Windows cut from a regular series with gaps (NaN): which may be used, and the batches.

Shared by the trainer (training and evaluation windows) and the integration (a head
re-fit on recorder history), so both refuse the same invented data: a window is used only
when every input sample and its target are real.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def valid_starts(
    aggregate_w: npt.ArrayLike,
    target_w: npt.ArrayLike,
    window_length: int,
    target_index: int,
    stride: int = 1,
) -> IntArray:
    """Starts of windows whose inputs and target are all unmasked (vectorised via a
    cumulative NaN count), keeping multiples of ``stride``."""
    agg = np.asarray(aggregate_w)
    tgt = np.asarray(target_w)
    n_windows = agg.size - window_length + 1
    if n_windows <= 0:
        return np.zeros(0, dtype=np.int64)
    nan_cum = np.concatenate(([0], np.cumsum(np.isnan(agg), dtype=np.int64)))
    bad_in_window = nan_cum[window_length:] - nan_cum[:n_windows]
    ok = bad_in_window == 0
    ok &= ~np.isnan(tgt[target_index : target_index + n_windows])
    starts = np.flatnonzero(ok).astype(np.int64)
    if stride > 1:
        starts = starts[starts % stride == 0]
    return starts


def window_batches(
    series_w: npt.ArrayLike, starts: npt.ArrayLike, window_length: int, batch: int = 2048
) -> Iterator[FloatArray]:
    """(<= batch, window_length) float32 copies of the windows at ``starts``, in order:
    memory stays one batch however long the series."""
    view = np.lib.stride_tricks.sliding_window_view(
        np.asarray(series_w, dtype=np.float32), window_length
    )
    index = np.asarray(starts, dtype=np.int64)
    for at in range(0, index.size, batch):
        yield np.ascontiguousarray(view[index[at : at + batch]])
