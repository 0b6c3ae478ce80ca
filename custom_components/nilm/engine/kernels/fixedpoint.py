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
    out: npt.NDArray[np.float64] = np.copysign(np.floor(np.abs(a) + 0.5), a)
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


def _trunc_div_pow2(x: I64, bits: int) -> I64:
    """C integer division by ``2**bits`` (rounds toward zero)."""
    return np.where(x >= 0, x >> bits, -((-x) >> bits))


def srdhm(a: npt.ArrayLike, b: npt.ArrayLike) -> I64:
    """SaturatingRoundingDoublingHighMul for int32 values held in int64.

    ``(a*b + nudge) / 2**31`` truncated toward zero, nudge ``2**30`` or ``1 - 2**30``:
    computed on the magnitude with the sign restored, which avoids ``np.where``.
    """
    ab = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    sign = ab >> 63  # 0 or -1
    magnitude = (ab ^ sign) - sign
    high = (magnitude + ((1 << 30) + sign)) >> 31
    res: I64 = (high ^ sign) - sign
    # The one overflow case, INT32_MIN * INT32_MIN, saturates to INT32_MAX.
    return np.minimum(res, INT32_MAX)


def rounding_divide_by_pot(x: npt.ArrayLike, exponent: npt.ArrayLike) -> I64:
    """RoundingDivideByPOT: arithmetic shift right, rounding half away from zero."""
    x64 = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x64 & mask
    threshold = (mask >> 1) + (x64 < 0)
    return (x64 >> e) + (remainder > threshold)


def wrap_int32(x: I64) -> I64:
    """Two's complement int32 wrap, as C arithmetic on int32 would do."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def mbqm(x: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike) -> I64:
    """MultiplyByQuantizedMultiplier for int32 accumulators (double rounding, TFLite default)."""
    s = np.asarray(shift, dtype=np.int64)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(srdhm(shifted, multiplier), right)


def mbqm_int64(x: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike) -> I64:
    """MultiplyByQuantizedMultiplier for int64 accumulators (16x8 kernels).

    TFLite reduces the multiplier to 16 bits and rounds once: exact for |x| < 2**47.
    """
    m = np.asarray(multiplier, dtype=np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, np.int64(0x7FFF))
    total_shift = 15 - np.asarray(shift, dtype=np.int64)
    x64 = np.asarray(x, dtype=np.int64) * reduced + (np.int64(1) << (total_shift - 1))
    return wrap_int32(x64 >> total_shift)


def saturate(x: npt.ArrayLike, lo: int, hi: int, dtype: Any) -> npt.NDArray[Any]:
    """Clamp to ``[lo, hi]`` and narrow to the storage dtype."""
    return np.clip(x, lo, hi).astype(dtype)


def mbqm_float(
    acc: npt.NDArray[np.float64], multiplier: npt.ArrayLike, shift: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """:func:`mbqm` computed in float64, bit-identical while ``|acc| * 2**left < 2**22``.

    Then ``acc * multiplier`` stays below 2**53, so every step (product, nudge, the
    truncating division by 2**31, RoundingDivideByPOT as round-half-away division by a
    power of two) is exact in float64 -- and float64 is several times faster than the
    int64 formulation. Callers check the accumulator bound at prepare time.
    """
    s = np.asarray(shift, dtype=np.int64)
    scaled = acc * np.exp2(np.maximum(s, 0)).astype(np.float64)
    ab = scaled * np.asarray(multiplier, dtype=np.float64)
    nudge = np.float64(1 << 30) - (ab < 0) * np.float64((1 << 31) - 1)
    high = np.trunc((ab + nudge) * np.float64(2.0**-31))
    v = high * np.exp2(-np.maximum(-s, 0)).astype(np.float64)
    out: npt.NDArray[np.float64] = np.copysign(np.floor(np.abs(v) + 0.5), v)
    return out
