"""Calibration (representative) data: balanced on/off windows of the training house only.

The windows balance the appliance's on and off states so rare "on" activations get a fair
share of the int8 range, and always come from the training house: calibrating on the test
house would leak it into the model, so every builder and consumer re-checks
(:func:`check_not_test_house`). :meth:`RepresentativeSet.dataset` is the one generator the
converter and the quantization debugger are fed from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import TrainerError
from .windows import draw_balanced

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class RepresentativeSet:
    """Calibration windows (already normalised) and where they came from.

    ``house`` is recorded so every consumer can re-check that it is not the test house.
    """

    windows: FloatArray
    targets_w: FloatArray
    on: npt.NDArray[np.bool_]
    house: str
    source: str
    seed: int
    on_threshold_w: float
    excluded_houses: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def on_fraction(self) -> float:
        return float(np.mean(self.on)) if self.on.size else float("nan")

    def dataset(
        self, input_shape: tuple[int, ...], limit: int | None = None
    ) -> Callable[[], Iterator[list[FloatArray]]]:
        """The representative-dataset generator TFLite's converter and quantization
        debugger take: one batch-1 window of ``input_shape`` per step (the first
        ``limit`` windows)."""
        windows = (self.windows if limit is None else self.windows[:limit]).reshape(
            -1, *input_shape[1:]
        )

        def generate() -> Iterator[list[FloatArray]]:
            for w in windows:
                yield [w[np.newaxis].astype(np.float32)]

        return generate

    def summary(self) -> dict[str, Any]:
        return {
            "size": int(self.windows.shape[0]),
            "on": int(np.count_nonzero(self.on)),
            "off": int(np.count_nonzero(~self.on)),
            "on_fraction": self.on_fraction,
            "on_threshold_w": self.on_threshold_w,
            "house": self.house,
            "source": self.source,
            "seed": self.seed,
            "excluded_houses": list(self.excluded_houses),
            "notes": list(self.notes),
        }


def _house_key(house: str | int) -> tuple[str, str]:
    """'House 20', 'REFIT house 20 (2014-03)', 'house_20' and 20 name the same house."""
    text = str(house).strip().lower()
    dataset = "ukdale" if re.search(r"uk-?dale", text) else "refit"
    match = re.search(r"house[\s_-]*(\d+)", text) or re.fullmatch(r"\s*(\d+)\s*", text)
    return dataset, (str(int(match.group(1))) if match else text)


def check_not_test_house(house: str | int, test_houses: Sequence[str | int]) -> None:
    """Refuse calibration data from a test house: it would leak into the quantization."""
    key = _house_key(house)
    for test in test_houses:
        if _house_key(test) == key:
            raise TrainerError(
                f"representative data comes from house {house!r}, which is a test house; "
                "calibrate on the training house's training/validation data only"
            )


def _choose(
    targets_w: npt.NDArray[np.float32],
    *,
    valid: npt.NDArray[np.bool_],
    on_threshold_w: float,
    size: int,
    on_fraction: float,
    seed: int,
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Indices of a seeded draw with ``on_fraction`` on windows (on: target >= threshold,
    as engine.status); when one state is too rare the other fills up, and a note says so."""
    on_idx = np.flatnonzero(valid & (targets_w >= on_threshold_w))
    off_idx = np.flatnonzero(valid & (targets_w < on_threshold_w))
    if on_idx.size + off_idx.size == 0:
        raise TrainerError("no unmasked windows to calibrate on")
    size = min(size, on_idx.size + off_idx.size)
    want_on = round(size * on_fraction)
    n_on = min(want_on, on_idx.size)
    n_off = min(size - n_on, off_idx.size)
    n_on = min(size - n_off, on_idx.size)  # off windows too rare: fill with on ones
    notes: list[str] = []
    if n_on != want_on:
        notes.append(
            f"asked for {want_on} 'on' windows, the data holds {on_idx.size}: "
            f"using {n_on} on / {n_off} off"
        )
    rng = np.random.default_rng(seed)
    chosen = draw_balanced(on_idx, off_idx, n_on, n_off, rng).astype(np.int64)
    rng.shuffle(chosen)
    return chosen, notes


def build_representative_set(
    windows: npt.ArrayLike,
    targets_w: npt.ArrayLike,
    *,
    on_threshold_w: float,
    house: str | int,
    test_houses: Sequence[str | int],
    source: str,
    size: int = 256,
    on_fraction: float = 0.5,
    seed: int = 0,
) -> RepresentativeSet:
    """Calibration set from in-memory windows.

    ``windows`` are normalised model inputs (N, L) or (N, L, 1) from the training or
    validation split of the training house; ``targets_w`` their target power in watts.
    """
    check_not_test_house(house, test_houses)
    x = np.asarray(windows, dtype=np.float32)
    y = np.asarray(targets_w, dtype=np.float32).reshape(-1)
    if x.ndim < 2 or x.shape[0] != y.size:
        raise TrainerError(
            f"windows {x.shape} and targets {y.shape} do not describe the same samples"
        )
    valid = np.isfinite(y) & np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
    chosen, notes = _choose(
        y, valid=valid, on_threshold_w=on_threshold_w, size=size, on_fraction=on_fraction, seed=seed
    )
    return _make_set(
        x[chosen], y[chosen], threshold=on_threshold_w, house=house, test_houses=test_houses,
        source=source, seed=seed, notes=notes,
    )  # fmt: skip


def representative_from_windows(
    window_sets: Sequence[Any],
    *,
    house: str | int,
    test_houses: Sequence[str | int],
    source: str,
    size: int = 256,
    on_fraction: float = 0.5,
    seed: int = 0,
) -> RepresentativeSet:
    """Calibration set from :class:`trainer.windows.WindowSet` objects (train and/or
    validation of the training house), materialising only the chosen windows."""
    check_not_test_house(house, test_houses)
    sets = [ws for ws in window_sets if len(ws)]
    if not sets:
        raise TrainerError("no windows to calibrate on")
    threshold = float(sets[0].norm.on_threshold_w)
    targets = np.concatenate([ws.targets_w() for ws in sets]).astype(np.float32)
    owner = np.concatenate([np.full(len(ws), i) for i, ws in enumerate(sets)])
    offset = np.concatenate([np.arange(len(ws)) for ws in sets])
    chosen, notes = _choose(
        targets, valid=np.isfinite(targets), on_threshold_w=threshold, size=size,
        on_fraction=on_fraction, seed=seed,
    )  # fmt: skip
    x = np.stack([sets[owner[i]].inputs([offset[i]])[0] for i in chosen]).astype(np.float32)
    return _make_set(
        x, targets[chosen], threshold=threshold, house=house, test_houses=test_houses,
        source=source, seed=seed, notes=notes,
    )  # fmt: skip


def _make_set(
    x: FloatArray,
    y: FloatArray,
    *,
    threshold: float,
    house: str | int,
    test_houses: Sequence[str | int],
    source: str,
    seed: int,
    notes: list[str],
) -> RepresentativeSet:
    return RepresentativeSet(
        windows=x,
        targets_w=y,
        on=y >= threshold,
        house=str(house),
        source=source,
        seed=seed,
        on_threshold_w=float(threshold),
        excluded_houses=tuple(str(h) for h in test_houses),
        notes=tuple(notes),
    )
