"""Synthetic aggregates (Kelly & Knottenbelt 2015): real activations on real backgrounds.

One training house teaches one house's programme. To show a model many programmes, we cut
real *activations* of the target appliance out of every training sub-meter, transform
them (amplitude +-15 %, and for cycle appliances a time-stretch of +-30 %), and add them
onto real mains *backgrounds* of training houses: windows in which the target appliance
is off throughout, so the background holds the house's other loads and nothing of the
target. Activations of other appliances are added as distractors. The labels are exactly
what was added: the target power at the window's target index and whether the target
index lies inside the added activation's run (the appliance's truth rule, so a cycle
"runs" through its low-power phases). Seeded; window-level work is array slicing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from custom_components.nilm.engine.card import StatusRule
from custom_components.nilm.engine.status import run_bounds, status_from_power

from .config import SyntheticConfig
from .errors import TrainerError

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Activation:
    """One run of an appliance as its sub-meter saw it, with ``pad`` samples either side.

    ``on`` marks the run itself (truth rule), so padding is off.
    """

    power_w: FloatArray
    on: BoolArray
    source: str

    @property
    def energy_ws(self) -> float:
        return float(self.power_w.sum(dtype=np.float64))


def truth_status(power_w: npt.ArrayLike, rule: StatusRule, period_s: float) -> BoolArray:
    """The truth rule over a series with masked (NaN) samples: a masked sample is off and
    breaks runs, so no run is bridged across missing data."""
    p = np.asarray(power_w, dtype=np.float64)
    finite = np.isfinite(p)
    on = np.zeros(p.size, dtype=bool)
    starts, ends = run_bounds(finite)
    for s, e in zip(starts, ends, strict=True):
        on[s:e] = status_from_power(p[s:e], rule, period_s)
    return on


def extract_activations(
    power_w: npt.ArrayLike,
    rule: StatusRule,
    period_s: float,
    *,
    pad: int,
    source: str,
    max_samples: int | None = None,
) -> list[Activation]:
    """Every run of the truth rule whose padded span is fully unmasked."""
    p = np.asarray(power_w, dtype=np.float32)
    on = truth_status(p, rule, period_s)
    out: list[Activation] = []
    for s, e in zip(*run_bounds(on), strict=True):
        lo, hi = max(0, int(s) - pad), min(p.size, int(e) + pad)
        if max_samples is not None and hi - lo > max_samples:
            continue
        seg = p[lo:hi]
        if not np.all(np.isfinite(seg)):
            continue
        out.append(Activation(np.maximum(seg, 0.0).copy(), on[lo:hi].copy(), source))
    return out


def off_starts(aggregate_w: npt.ArrayLike, on: BoolArray, window_length: int) -> IntArray:
    """Window starts whose mains is unmasked and whose target is off throughout."""
    agg = np.asarray(aggregate_w)
    n = agg.size - window_length + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    bad = np.concatenate(([0], np.cumsum(~np.isfinite(agg) | on, dtype=np.int64)))
    return np.flatnonzero(bad[window_length:] - bad[:n] == 0).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Background:
    """Mains of one training house plus the starts of target-off windows in it."""

    aggregate_w: FloatArray
    starts: IntArray
    source: str


@dataclass(frozen=True, slots=True)
class SyntheticSet:
    """``mains_w`` (n, L) windows, the target's power and status at the target index.

    With ``keep_parts``: ``background_w``, ``target_part_w`` and ``distractor_part_w``
    (each (n, L)) such that mains = clip(background + target part + distractor part).
    """

    mains_w: FloatArray
    target_w: FloatArray
    on: BoolArray
    background_w: FloatArray | None = None
    target_part_w: FloatArray | None = None
    distractor_part_w: FloatArray | None = None


def transform(
    act: Activation, rng: np.random.Generator, amplitude: float, stretch: float
) -> tuple[FloatArray, BoolArray]:
    """Scale the power by U(1-a, 1+a) and the duration by U(1-s, 1+s) (linear
    interpolation for power, nearest sample for the run mask)."""
    scale = 1.0 + rng.uniform(-amplitude, amplitude) if amplitude else 1.0
    power = act.power_w
    on = act.on
    if stretch:
        factor = 1.0 + rng.uniform(-stretch, stretch)
        n_new = max(2, round(power.size * factor))
        pos = np.linspace(0.0, power.size - 1.0, n_new)
        power = np.interp(pos, np.arange(power.size), power).astype(np.float32)
        on = on[np.rint(pos).astype(np.int64)]
    return (power * np.float32(scale)).astype(np.float32), on


def _add(row: FloatArray, part: FloatArray, offset: int) -> None:
    """Add ``part`` into ``row`` with ``part[0]`` at ``row[offset]`` (either may overhang)."""
    lo, hi = max(0, offset), min(row.size, offset + part.size)
    if hi > lo:
        row[lo:hi] += part[lo - offset : hi - offset]


def generate(
    n: int,
    window_length: int,
    target_index: int,
    *,
    backgrounds: Sequence[Background],
    targets: Sequence[Activation],
    distractors: Sequence[Activation],
    config: SyntheticConfig,
    rng: np.random.Generator,
    keep_parts: bool = False,
) -> SyntheticSet:
    """``n`` synthetic windows (see the module doc)."""
    bgs = [b for b in backgrounds if b.starts.size]
    if not bgs:
        raise TrainerError("no target-off background windows to build synthetic data on")
    if not targets:
        raise TrainerError("no target activations to build synthetic data from")
    weights = np.array([b.starts.size for b in bgs], dtype=np.float64)
    which = rng.choice(len(bgs), size=n, p=weights / weights.sum())
    length = window_length
    mains = np.empty((n, length), dtype=np.float32)
    target_w = np.zeros(n, dtype=np.float32)
    on = np.zeros(n, dtype=bool)
    parts = (
        (np.empty_like(mains), np.zeros_like(mains), np.zeros_like(mains)) if keep_parts else None
    )
    want_on = rng.random(n) < config.on_share
    place_off = rng.random(n) < 0.5
    n_distract = np.where(
        rng.random(n) < config.distractor_probability, rng.integers(1, 3, size=n), 0
    )
    for i in range(n):
        bg = bgs[which[i]]
        start = int(bg.starts[rng.integers(bg.starts.size)])
        row = bg.aggregate_w[start : start + length].astype(np.float32)
        if parts is not None:
            parts[0][i] = row
        tgt = np.zeros(length, dtype=np.float32)
        if want_on[i] or place_off[i]:
            power, act_on = transform(
                targets[rng.integers(len(targets))], rng, config.amplitude, config.stretch
            )
            inside = np.flatnonzero(act_on)
            if want_on[i] and inside.size:
                # The target index falls on a sample inside the run.
                offset = target_index - int(inside[rng.integers(inside.size)])
            else:
                # The run ends before the target index (its tail may still be in view).
                last = int(inside[-1]) if inside.size else power.size - 1
                offset = target_index - last - 1 - int(rng.integers(0, length))
            _add(tgt, power, offset)
            j = target_index - offset
            if 0 <= j < power.size:
                target_w[i] = power[j]
                on[i] = bool(act_on[j])
        row += tgt
        if n_distract[i] and distractors:
            dis = np.zeros(length, dtype=np.float32)
            for _ in range(int(n_distract[i])):
                power, _on = transform(
                    distractors[rng.integers(len(distractors))], rng, config.amplitude, 0.0
                )
                _add(dis, power, int(rng.integers(-power.size + 1, length)))
            row += dis
            if parts is not None:
                parts[2][i] = dis
        if parts is not None:
            parts[1][i] = tgt
        if config.clip_w is not None:
            np.minimum(row, np.float32(config.clip_w), out=row)
        mains[i] = row
    if parts is None:
        return SyntheticSet(mains, target_w, on)
    return SyntheticSet(mains, target_w, on, *parts)
