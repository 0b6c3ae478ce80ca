"""TFLite's fixed-point requantization arithmetic, vectorised over int64 numpy arrays.

Bit-exactness with LiteRT's reference kernels depends on reproducing these helpers to
the last rounding step (``common.h``: QuantizeMultiplier, SaturatingRoundingDoublingHighMul,
RoundingDivideByPOT, MultiplyByQuantizedMultiplier), so they live in one place and are
unit-tested on edge cases. All arrays are int64 holding int32 values (no silent wrap).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def round_half_away(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``std::round`` (TfLiteRound): halves go away from zero, unlike numpy's half-to-even.

    Computed in float64 where ``|x| + 0.5`` is exact for every float32 input.
    """
    a = np.asarray(x, dtype=np.float64)
    # trunc(a + copysign(0.5, a)) == copysign(floor(|a| + 0.5), a), in three passes.
    out: npt.NDArray[np.float64] = np.trunc(a + np.copysign(0.5, a))
    return out


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: ``real ~= q * 2**(shift - 31)`` with a 31-bit ``q``."""
    if real == 0.0:
        return 0, 0
    frac, shift = math.frexp(real)
    q = int(round_half_away(frac * float(1 << 31)))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:  # TFLite clamps rather than overflowing
        return INT32_MAX, 30
    return q, shift


def quantize_multipliers(reals: npt.ArrayLike) -> tuple[I64, I64]:
    """Per-channel :func:`quantize_multiplier`."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).ravel()]
    return (
        np.array([p[0] for p in pairs], dtype=np.int64),
        np.array([p[1] for p in pairs], dtype=np.int64),
    )


def srdhm(a: npt.ArrayLike, b: npt.ArrayLike) -> I64:
    """SaturatingRoundingDoublingHighMul for int32 values held in int64.

    gemmlowp adds a nudge of ``2**30`` (or ``1 - 2**30`` for a negative product) and
    truncates toward zero; for every int64 product that equals the floor shift
    ``(a*b + 2**30) >> 31`` (ceil(y / d) == floor((y + d - 1) / d)), one numpy pass.
    """
    ab = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    res: I64 = (ab + (1 << 30)) >> 31
    # The one overflow case, INT32_MIN * INT32_MIN, saturates to INT32_MAX.
    return np.minimum(res, INT32_MAX)


def rounding_divide_by_pot(x: npt.ArrayLike, exponent: npt.ArrayLike) -> I64:
    """RoundingDivideByPOT: ``x / 2**e`` rounded half away from zero.

    ``floor((x + 2**(e-1) - [x < 0]) / 2**e)`` for ``e >= 1``, and ``x`` for ``e == 0``.
    """
    x64 = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    half = (np.int64(1) << e) >> 1
    neg = (x64 >> 63) & -(e > 0).astype(np.int64)  # -1 where x < 0 and e > 0, else 0
    out: I64 = (x64 + half + neg) >> e
    return out


def wrap_int32(x: I64) -> I64:
    """Two's complement int32 wrap, as C arithmetic on int32 would do."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class QuantizedMultiplier:
    """MultiplyByQuantizedMultiplier (plus an output offset) with its constants folded.

    TFLite's default double rounding, ``RoundingDivideByPOT(SRDHM(x << left, m), right)``,
    is ``(((x << left) * m + 2**30) >> 31 + 2**(right-1) - [x < 0]) >> right``. The
    ``2**(right-1)`` and the offset (a zero point) are multiples of the divisors, so they
    fold into the first constant; the sign term may use ``x`` instead of the high half
    (they differ only where the high half is 0, and there both round to 0). Five or six
    numpy passes instead of ~25, which is what single-window latency is made of.
    Multipliers are TFLite's: in ``[0, 2**31)``.
    """

    def __init__(self, multiplier: npt.ArrayLike, shift: npt.ArrayLike, offset: int = 0) -> None:
        m = np.asarray(multiplier, dtype=np.int64)
        s = np.asarray(shift, dtype=np.int64)
        m, s = np.broadcast_arrays(m, s)
        if np.any(m < 0) or np.any(m > INT32_MAX):
            raise ValueError("quantized multiplier outside [0, 2**31)")
        left = np.maximum(s, 0)
        right = np.maximum(-s, 0)
        if np.any(right > 62):
            raise ValueError("quantized multiplier shift below -62")
        scalar = m.ndim == 0
        self._m: I64 | int = int(m) if scalar else m.copy()
        self._has_left = bool(np.any(left))
        self._left: I64 | int = int(left) if scalar else left.copy()
        self._right: I64 | int = int(right) if scalar else right.copy()
        half = (np.int64(1) << right) >> 1
        # Fold 2**30, the rounding half and the offset above the 31 dropped bits while
        # that stays far from int64 overflow (|x * m| < 2**62).
        top = int(right.max(initial=0))
        self._fused = (abs(int(offset)) << top) + (1 << top) < (1 << 30)
        folded = (np.int64(1) << 30) + ((half + (np.int64(offset) << right)) << 31)
        self._c: I64 | int = (int(folded) if scalar else folded) if self._fused else 1 << 30
        self._half: I64 | int = int(half) if scalar else half
        self._offset = int(offset)
        has_right = right > 0
        self._neg_mask: int | I64 | None = None
        if np.all(has_right):
            self._neg_mask = -1
        elif np.any(has_right):
            self._neg_mask = -has_right.astype(np.int64)

    def __call__(self, x: npt.ArrayLike) -> I64:
        v = np.asarray(x, dtype=np.int64)
        if self._has_left:
            v = wrap_int32(v << self._left)
        t = (v * self._m + self._c) >> 31
        if self._neg_mask is None:
            return t + self._offset if self._offset and not self._fused else t
        sign = v >> 63
        if not isinstance(self._neg_mask, int):
            sign &= self._neg_mask
        if self._fused:
            out: I64 = (t + sign) >> self._right
            return out
        out = (t + self._half + sign) >> self._right
        return out + self._offset if self._offset else out


def mbqm(x: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike) -> I64:
    """MultiplyByQuantizedMultiplier for int32 accumulators (double rounding, TFLite default).

    For multipliers known at load time prefer :class:`QuantizedMultiplier`; this form
    serves per-call multipliers (L2 normalisation's per-row inverse square roots).
    """
    x64 = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if s.ndim == 0:
        sh = int(s)
        if sh > 0:
            x64 = wrap_int32(x64 << sh)
        t: I64 = (x64 * m + (1 << 30)) >> 31
        if sh >= 0:
            return t
        out: I64 = (t + ((1 << (-sh - 1)) + (t >> 63))) >> -sh
        return out
    left = np.maximum(s, 0)
    if np.any(left):
        x64 = wrap_int32(x64 << left)
    t = (x64 * m + (1 << 30)) >> 31
    return rounding_divide_by_pot(t, np.maximum(-s, 0))


def mbqm_int64(x: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike) -> I64:
    """MultiplyByQuantizedMultiplier for int64 accumulators (16x8 kernels).

    TFLite reduces the multiplier to 16 bits and rounds once: exact for |x| < 2**47.
    """
    m = np.asarray(multiplier, dtype=np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, np.int64(0x7FFF))
    total_shift = 15 - np.asarray(shift, dtype=np.int64)
    x64 = np.asarray(x, dtype=np.int64) * reduced + (np.int64(1) << (total_shift - 1))
    return wrap_int32(x64 >> total_shift)


class QuantizedMultiplier64:
    """:func:`mbqm_int64` with its per-tensor constants folded (int16 BATCH_MATMUL)."""

    def __init__(self, multiplier: int, shift: int) -> None:
        self._reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
        self._shift = 15 - shift
        self._round = 1 << (self._shift - 1)

    def __call__(self, x: npt.ArrayLike) -> I64:
        v = np.asarray(x, dtype=np.int64)
        return wrap_int32((v * self._reduced + self._round) >> self._shift)


def clamp(
    x: npt.ArrayLike, lo: float | np.floating[Any], hi: float | np.floating[Any]
) -> npt.NDArray[Any]:
    """``np.clip`` as two ufunc calls (np.clip's Python wrapper costs more than both)."""
    out: npt.NDArray[Any] = np.minimum(np.maximum(x, lo), hi)
    return out


def saturate(x: npt.ArrayLike, lo: int, hi: int, dtype: Any) -> npt.NDArray[Any]:
    """Clamp to ``[lo, hi]`` and narrow to the storage dtype."""
    return clamp(x, lo, hi).astype(dtype)
