"""Integer transcendental and reduction kernels, following LiteRT 2.x bit for bit.

Each path is the one LiteRT's BUILTIN_REF resolver takes (checked by the parity tests):

* int8 LOGISTIC / TANH / GELU: a 256-entry table of the float function on every
  dequantized input (``LUTPopulate``), float32 rounding after every step.
* int16 LOGISTIC / TANH: interpolation in TFLite's ``sigmoid(i/24)`` table (0.16).
* int16 GELU / RSQRT, int16 SOFTMAX (exp and 1/(1+x)): 513-entry interpolated tables
  (``LUTPopulateInt16`` + ``LUTLookup``).
* int8 SOFTMAX: an ``exp`` table, float32 row sums in element order.
* int8 RSQRT, L2_NORMALIZATION: gemmlowp fixed-point Newton-Raphson inverse sqrt.
* MEAN: the reference reducers (integer division, folded multiplier, 4-D spatial mean).

Unary integer ops are tabulated over every possible input at load time, so a batch
costs one fancy-indexing pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import UnsupportedOpError
from .base import INT_RANGES, Array, Eval, Node, is_quantized, lut_eval, scale_of, zp_of
from .fixedpoint import (
    I64,
    INT32_MAX,
    INT32_MIN,
    QuantizedMultiplier,
    clamp,
    mbqm,
    quantize_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    srdhm,
    wrap_int32,
)

F32 = npt.NDArray[np.float32]

# sigmoid(i / 24) in unsigned 0.16 fixed point: TFLite's ``sigmoid_table_uint16`` (the
# values are rounded by hand in places, so they are data, not a formula; 256 entries).
SIGMOID_TABLE_U16 = np.array(
    [
        32768,
        33451,
        34133,
        34813,
        35493,
        36169,
        36843,
        37513,
        38180,
        38841,
        39498,
        40149,
        40794,
        41432,
        42064,
        42688,
        43304,
        43912,
        44511,
        45102,
        45683,
        46255,
        46817,
        47369,
        47911,
        48443,
        48964,
        49475,
        49975,
        50464,
        50942,
        51409,
        51865,
        52311,
        52745,
        53169,
        53581,
        53983,
        54374,
        54755,
        55125,
        55485,
        55834,
        56174,
        56503,
        56823,
        57133,
        57433,
        57724,
        58007,
        58280,
        58544,
        58800,
        59048,
        59288,
        59519,
        59743,
        59959,
        60168,
        60370,
        60565,
        60753,
        60935,
        61110,
        61279,
        61441,
        61599,
        61750,
        61896,
        62036,
        62172,
        62302,
        62428,
        62549,
        62666,
        62778,
        62886,
        62990,
        63090,
        63186,
        63279,
        63368,
        63454,
        63536,
        63615,
        63691,
        63765,
        63835,
        63903,
        63968,
        64030,
        64090,
        64148,
        64204,
        64257,
        64308,
        64357,
        64405,
        64450,
        64494,
        64536,
        64576,
        64614,
        64652,
        64687,
        64721,
        64754,
        64786,
        64816,
        64845,
        64873,
        64900,
        64926,
        64950,
        64974,
        64997,
        65019,
        65039,
        65060,
        65079,
        65097,
        65115,
        65132,
        65149,
        65164,
        65179,
        65194,
        65208,
        65221,
        65234,
        65246,
        65258,
        65269,
        65280,
        65291,
        65301,
        65310,
        65319,
        65328,
        65337,
        65345,
        65352,
        65360,
        65367,
        65374,
        65381,
        65387,
        65393,
        65399,
        65404,
        65410,
        65415,
        65420,
        65425,
        65429,
        65433,
        65438,
        65442,
        65445,
        65449,
        65453,
        65456,
        65459,
        65462,
        65465,
        65468,
        65471,
        65474,
        65476,
        65479,
        65481,
        65483,
        65485,
        65488,
        65489,
        65491,
        65493,
        65495,
        65497,
        65498,
        65500,
        65501,
        65503,
        65504,
        65505,
        65507,
        65508,
        65509,
        65510,
        65511,
        65512,
        65513,
        65514,
        65515,
        65516,
        65517,
        65517,
        65518,
        65519,
        65520,
        65520,
        65521,
        65522,
        65522,
        65523,
        65523,
        65524,
        65524,
        65525,
        65525,
        65526,
        65526,
        65526,
        65527,
        65527,
        65528,
        65528,
        65528,
        65529,
        65529,
        65529,
        65529,
        65530,
        65530,
        65530,
        65530,
        65531,
        65531,
        65531,
        65531,
        65531,
        65532,
        65532,
        65532,
        65532,
        65532,
        65532,
        65533,
        65533,
        65533,
        65533,
        65533,
        65533,
        65533,
        65533,
        65534,
        65534,
        65534,
        65534,
        65534,
        65534,
        65534,
        65534,
        65534,
        65534,
        65535,
    ],
    dtype=np.int64,
)


def _missing(node: Node) -> UnsupportedOpError:
    return UnsupportedOpError([f"{node.op.opcode}({node.input(0).dtype})"])


def populate_lut_int8(node: Node, transform: Callable[[F32], F32]) -> Array:
    """LUTPopulate<int8>: quantize(transform(dequantize(v))) for v in -128..127."""
    src, out = node.input(0), node.outputs[0]
    lo, hi = INT_RANGES[src.dtype]
    vals = np.arange(lo, hi + 1, dtype=np.int64)
    deq = (np.float32(scale_of(src)) * (vals - zp_of(src)).astype(np.float32)).astype(np.float32)
    inv_scale = np.float32(1.0) / np.float32(scale_of(out))
    rescaled = round_half_away((transform(deq) * inv_scale).astype(np.float32))
    q = (rescaled.astype(np.float32) + np.float32(zp_of(out))).astype(np.int64)
    olo, ohi = INT_RANGES[out.dtype]
    return np.clip(q, olo, ohi).astype(out.dtype)


def _check_log2(scale: float) -> tuple[bool, int]:
    """CheckedLog2: (is a power of two within 1e-3, rounded log2), in float32 like TFLite."""
    x_log2 = np.float32(np.float32(math.log(np.float32(scale))) * np.float32(1.0 / math.log(2.0)))
    rounded = float(round_half_away(x_log2))
    return abs(float(np.float32(x_log2 - np.float32(rounded)))) < 1e-3, int(rounded)


def _int16_sigmoid_params(node: Node, tanh: bool) -> tuple[int, int]:
    src, out = node.input(0), node.outputs[0]
    if zp_of(src) != 0 or zp_of(out) != 0:
        raise _missing(node)
    pot, log2 = _check_log2(scale_of(src))
    shift = 12 + log2
    pot = pot and (shift in (0, 1) if tanh else shift == 0)
    mult = 0
    if not pot:
        m = float(scale_of(src)) * 4096.0 * 3.0
        shift = 0
        while m <= 32767.0 / 2.0 and shift <= 30:
            shift += 1
            m *= 2.0
        mult = int(m)
    out_pot, out_log2 = _check_log2(scale_of(out))
    if not out_pot or out_log2 != -15:
        raise UnsupportedOpError([f"{node.op.opcode}(int16 output scale)"])
    if mult == 0:
        mult, shift = 3 << shift, 0
    return mult, shift


def _int16_sigmoid_table(node: Node, tanh: bool) -> Array:
    """reference_integer_ops::Logistic/Tanh for int16, tabulated over all 65536 inputs."""
    mult, shift = _int16_sigmoid_params(node, tanh)
    x = np.arange(-32768, 32768, dtype=np.int64)
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    data = (x * mult + rnd) >> shift
    a = np.abs(data)
    frac_bits = 8 if tanh else 9
    uh = a >> frac_bits
    inside = uh < 255
    uh_c = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_U16[uh_c]
    ub = SIGMOID_TABLE_U16[uh_c + 1]
    ut = a & ((1 << frac_bits) - 1)
    if tanh:
        res = np.where(inside, (ua << 8) + ut * (ub - ua), 0xFFFF << 8)
        res = np.where(data >= 0, res - (1 << 23) + (1 << 7), -res + (1 << 23) + (1 << 7) - 1)
        res = res >> 8
    else:
        res = np.where(inside, (ua << 9) + ut * (ub - ua), 0x7FFF << 10)
        res = np.where(data >= 0, res + (1 << 9), (1 << 25) - res + (1 << 9) - 1)
        res = res >> 10
    return ((res + 32768) % 65536 - 32768).astype(np.int16)


def _libm(fn: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]], x: F32) -> F32:
    """One float libm call (expf, tanhf, erfcf): exact in float64, rounded once to float32."""
    return fn(x.astype(np.float64)).astype(np.float32)


def _logistic_f32(v: F32) -> F32:
    """``1.0f / (1.0f + std::exp(-value))`` with float32 rounding after every step."""
    one = np.float32(1.0)
    return (one / (one + _libm(np.exp, -v))).astype(np.float32)


def logistic_int(node: Node) -> Eval:
    src = node.input(0)
    if src.dtype == "int8" and is_quantized(src):
        table = populate_lut_int8(node, _logistic_f32)
        return lut_eval(table, src.dtype)
    if src.dtype == "int16" and is_quantized(src):
        return lut_eval(_int16_sigmoid_table(node, tanh=False), src.dtype)
    raise _missing(node)


def tanh_int(node: Node) -> Eval:
    src = node.input(0)
    if src.dtype == "int8" and is_quantized(src):
        return lut_eval(populate_lut_int8(node, lambda v: _libm(np.tanh, v)), src.dtype)
    if src.dtype == "int16" and is_quantized(src):
        return lut_eval(_int16_sigmoid_table(node, tanh=True), src.dtype)
    raise _missing(node)


def _gelu_exact(v: F32) -> F32:
    """``0.5f * in * std::erfc(in * float(-M_SQRT1_2))``, float32 step by step."""
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    t = (v * np.float32(-math.sqrt(0.5))).astype(np.float32)
    return ((np.float32(0.5) * v).astype(np.float32) * _libm(erfc, t)).astype(np.float32)


def _gelu_tanh(v: F32) -> F32:
    """The tanh approximation, float32 step by step as gelu.h writes it."""
    cube = ((np.float32(0.044715) * v).astype(np.float32) * v).astype(np.float32) * v
    inner = (np.float32(math.sqrt(2.0 / math.pi)) * (v + cube).astype(np.float32)).astype(
        np.float32
    )
    t = (np.float32(1.0) + _libm(np.tanh, inner)).astype(np.float32)
    return ((np.float32(0.5) * v).astype(np.float32) * t).astype(np.float32)


def populate_lut_int16(
    in_scale: float,
    in_zp: int,
    out_scale: float,
    out_zp: int,
    transform: Callable[[Array], Array],
    *,
    float_type: type[np.floating[Any]] = np.float32,
) -> Array:
    """LUTPopulateInt16<FloatT>: 513 samples with midpoint-error bias correction.

    Every intermediate is rounded to ``float_type`` (float, or double where TFLite
    keeps double "for backward compatibility", as in the int16 SOFTMAX tables).
    """
    f = float_type
    input_min = f(f(in_scale) * f(-32768 - in_zp))
    input_max = f(f(in_scale) * f(32767 - in_zp))
    output_min = f(f(out_scale) * f(-32768 - out_zp))
    output_max = f(f(out_scale) * f(32767 - out_zp))
    step = f((input_max - input_min) / f(512))
    half_step = f(step / f(2))
    inv = f(f(65536.0) / f(output_max - output_min))
    i = np.arange(512).astype(f)
    x0 = (input_min + (i * step).astype(f)).astype(f)
    xm = (x0 + half_step).astype(f)
    x1 = (input_min + ((i + f(1)) * step).astype(f)).astype(f)
    val, mid, nxt = transform(x0), transform(xm), transform(x1)

    def rnd(a: Array) -> Array:
        return round_half_away(np.asarray(a, f)).astype(f)

    sample = rnd(val * inv)
    interp = rnd(((nxt * inv).astype(f) + sample).astype(f) / f(2))
    midpoint = rnd(mid * inv)
    bias = rnd((interp - midpoint).astype(f) / f(2))
    lut = np.clip(sample - bias, -32768, 32767)
    last = np.clip(rnd(transform(np.array([input_max], f)) * inv), -32768, 32767)
    table: Array = np.concatenate([lut, last]).astype(np.int64)
    return table


def lut_lookup_int16(x: Array, lut: Array) -> I64:
    """LUTLookup: 512 segments of 128 inputs, linear interpolation with rounding."""
    v = x.astype(np.int64)
    index = 256 + (v >> 7)
    offset = v & 0x7F
    base = lut[index]
    slope = lut[index + 1] - base
    out: I64 = base + ((slope * offset + 64) >> 7)
    return out


# Chebyshev fit of erfc (Numerical Recipes' erfcc), highest power first.
_ERFC_COEFFS = (
    0.17087277,
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
    -1.26551223,
)


def _erfc_fast(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """erfc with < 1.2e-7 relative error (Chebyshev fit), vectorised for float GELU.

    Horner's rule in place: the same roundings as the nested expression, fewer arrays.
    """
    a = np.abs(z)
    t = 0.5 * a
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * _ERFC_COEFFS[0]
    for c in _ERFC_COEFFS[1:-1]:
        poly += c
        poly *= t
    poly += _ERFC_COEFFS[-1]
    np.multiply(a, a, out=a)
    poly -= a
    np.exp(poly, out=poly)
    poly *= t
    out: npt.NDArray[np.float64] = np.where(z >= 0, poly, 2.0 - poly)
    return out


def gelu_float(x: F32, approximate: bool) -> F32:
    """Float GELU (LiteRT evaluates it with Eigen; agreement is to float tolerance)."""
    v = x.astype(np.float64)
    if approximate:
        y = 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
    else:
        y = 0.5 * v * _erfc_fast(-v * math.sqrt(0.5))
    return y.astype(np.float32)


def gelu_int(node: Node, approximate: bool) -> Eval:
    src, out = node.input(0), node.outputs[0]
    fn = _gelu_tanh if approximate else _gelu_exact
    if src.dtype == "int8" and is_quantized(src):
        return lut_eval(populate_lut_int8(node, fn), src.dtype)
    if src.dtype == "int16" and is_quantized(src):
        lut = populate_lut_int16(scale_of(src), zp_of(src), scale_of(out), zp_of(out), fn)
        table = lut_lookup_int16(np.arange(-32768, 32768), lut).astype(np.int16)
        return lut_eval(table, src.dtype)
    raise _missing(node)


def _softmax_int16(node: Node, beta: float) -> Eval:
    """reference_ops::SoftmaxInt16 with exp and 1/(1+x) lookup tables."""
    src, out = node.input(0), node.outputs[0]
    if zp_of(src) != 0 or zp_of(out) != 0:
        raise _missing(node)
    rng = 65535.0
    exp_lut = populate_lut_int16(10.0 / rng, 32767, 2.0 / rng, 0, np.exp, float_type=np.float64)
    recip_lut = populate_lut_int16(
        1.0 / rng, -32768, 2.0 / rng, 0, lambda v: 1.0 / (1.0 + v), float_type=np.float64
    )
    real = float(np.float32(np.float32(scale_of(src)) * np.float32(beta))) / (10.0 / 65535.0)
    mult, shift = quantize_multiplier(real)

    def wrap16(v: I64) -> I64:
        return ((v + 32768) % 65536) - 32768  # stored as int16

    # exp(x - max) is a function of max - x in [0, 65535] alone: one table.
    diff = -np.arange(65536, dtype=np.int64)
    exp_by_gap = wrap16(
        lut_lookup_int16(clamp(mbqm(diff, mult, shift) + 32767, -32768, 32767), exp_lut)
    )
    # 1 / (1 + x) of the shifted row sum, indexed by shifted - 2**16 (sym + 32768) in [0, 65535].
    recip_by_index = wrap16(lut_lookup_int16(np.arange(-32768, 32768, dtype=np.int64), recip_lut))

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        v = x.astype(np.int64)
        e = exp_by_gap[v.max(axis=-1, keepdims=True) - v]
        total = np.add.reduce(e, axis=-1, keepdims=True)
        # CountLeadingZeros(uint32 total): 32 - bit length; frexp's exponent is the latter.
        headroom = 32 - np.frexp(np.maximum(total, 0))[1].astype(np.int64)
        shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
        recip = recip_by_index[clamp(shifted - (1 << 16), 0, 65535)]
        right = 31 - headroom
        res = (e * recip + (np.int64(1) << (right - 1))) >> right
        return [clamp(res, 0, 32767).astype(np.int16)]

    return run


def softmax_int(node: Node, beta: float) -> Eval:
    src, out = node.input(0), node.outputs[0]
    if src.dtype == "int16" and out.dtype == "int16" and is_quantized(src):
        return _softmax_int16(node, beta)
    if not (src.dtype == "int8" and out.dtype in ("int8", "int16") and is_quantized(src)):
        raise _missing(node)
    # table[255 - v] = expf(-input_scale * beta * v)
    scale = np.float32(-np.float32(scale_of(src)) * np.float32(beta))
    vals = np.arange(256, dtype=np.float32)
    table = np.exp((scale * vals).astype(np.float64)).astype(np.float32)[::-1].copy()
    out_scale = np.float32(scale_of(out))
    zo = zp_of(out)
    lo, hi = INT_RANGES[out.dtype]

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        xi = x.astype(np.int64)
        mx = xi.max(axis=-1, keepdims=True)
        e = table[xi + (255 - mx)]
        # Row sums in element order, as the reference loop adds them (float32).
        total = np.add.accumulate(e, axis=-1)[..., -1:]
        inv = np.float32(1.0) / (total * out_scale)
        prob = (e * inv).astype(np.float64)
        q = np.trunc(prob + 0.5)  # TfLiteRound; prob >= 0
        return [(clamp(q, lo - zo, hi - zo) + zo).astype(out.dtype)]

    return run


def _sat_shift_left(x: I64, exponent: int) -> I64:
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(
        x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent)
    ).astype(np.int64)


def _srdhm_int(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    v = a * b + ((1 << 30) if a * b >= 0 else 1 - (1 << 30))
    return v >> 31 if v >= 0 else -((-v) >> 31)


def _sat_shift_left_int(x: int, exponent: int) -> int:
    threshold = (1 << (31 - exponent)) - 1
    return INT32_MAX if x > threshold else INT32_MIN if x < -threshold else x << exponent


def _wrap_int(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@functools.lru_cache(maxsize=4096)
def _inv_sqrt_scalar(value: int) -> tuple[int, int]:
    """:func:`inv_sqrt_multiplier` for one value in Python ints (cheap for a few rows)."""
    if value <= 1:
        return INT32_MAX, 0
    shift, x_in = 11, value
    while x_in >= 1 << 29:
        x_in //= 4
        shift += 1
    pairs = (32 - x_in.bit_length() - 1) // 2 - 1
    shift -= pairs
    x_in <<= 2 * pairs
    half_input = int(rounding_divide_by_pot(x_in >> 1, 1))
    x = 1 << 28
    for _ in range(5):
        x3 = _sat_shift_left_int(_srdhm_int(_srdhm_int(x, x), x), 6)
        diff = _srdhm_int((1 << 28) + (1 << 27), x) - _srdhm_int(half_input, x3)
        x = _sat_shift_left_int(_wrap_int(diff), 3)
    x = _srdhm_int(x, 1518500250)
    if shift < 0:
        x, shift = _wrap_int(x << -shift), 0
    return x, -shift


def inv_sqrt_multiplier(value: npt.ArrayLike) -> tuple[I64, I64]:
    """GetInvSqrtQuantizedMultiplierExp (reverse_shift -1).

    Newton-Raphson on gemmlowp fixed point (3 integer bits), as common.h does it.
    Returns (multiplier, left shift) with ``1/sqrt(value) ~= m * 2**(shift - 31)``.
    A handful of values (single-window L2 norms) come from a cache instead of ~60
    numpy calls.
    """
    v = np.asarray(value, dtype=np.int64)
    if v.size <= 32:
        pairs = [_inv_sqrt_scalar(int(e)) for e in v.ravel()]
        return (
            np.array([p[0] for p in pairs], dtype=np.int64).reshape(v.shape),
            np.array([p[1] for p in pairs], dtype=np.int64).reshape(v.shape),
        )
    return _inv_sqrt_vector(v)


def _inv_sqrt_vector(v: I64) -> tuple[I64, I64]:
    small = v <= 1
    x_in = np.where(small, 4, v)
    shift = np.full(x_in.shape, 11, dtype=np.int64)
    while np.any(x_in >= (1 << 29)):
        big = x_in >= (1 << 29)
        x_in = np.where(big, x_in // 4, x_in)
        shift = shift + big
    # CountLeadingZeros(uint32) - 1, in bit pairs, minus one pair.
    clz = 32 - np.floor(np.log2(x_in.astype(np.float64))).astype(np.int64) - 1
    pairs = (clz - 1) // 2 - 1
    shift = shift - pairs
    x_in = x_in << (2 * pairs)
    f_input = x_in >> 1
    f_half_input = rounding_divide_by_pot(f_input, 1)
    half_three = np.int64((1 << 28) + (1 << 27))
    x = np.full(x_in.shape, 1 << 28, dtype=np.int64)
    for _ in range(5):
        x3 = _sat_shift_left(srdhm(srdhm(x, x), x), 6)
        x = _sat_shift_left(wrap_int32(srdhm(half_three, x) - srdhm(f_half_input, x3)), 3)
    x = srdhm(x, 1518500250)
    neg = shift < 0
    x = np.where(neg, wrap_int32(x << np.where(neg, -shift, 0)), x)
    shift = np.where(neg, 0, shift)
    return np.where(small, INT32_MAX, x), np.where(small, 0, -shift)


def rsqrt_int(node: Node) -> Eval:
    """RSQRT int8 (elementwise.cc): per-value inverse sqrt, then rescale; a 256 table."""
    src, out = node.input(0), node.outputs[0]
    if src.dtype not in ("int8", "int16") or not is_quantized(src):
        raise _missing(node)
    lo, hi = INT_RANGES[out.dtype]
    s_in, s_out = np.float32(scale_of(src)), np.float32(scale_of(out))
    if src.dtype == "int16":  # LiteRT: a 513-entry LUT of 1/sqrtf(x)
        at_zero = np.float32(np.float32(32767) * s_out)

        def inv_sqrt(v: F32) -> F32:
            safe = np.where(v > 0, v, np.float32(1)).astype(np.float32)
            r = (np.float32(1) / np.sqrt(safe)).astype(np.float32)
            return np.where(v > 0, r, at_zero).astype(np.float32)

        lut = populate_lut_int16(float(s_in), zp_of(src), float(s_out), zp_of(out), inv_sqrt)
        table16 = lut_lookup_int16(np.arange(-32768, 32768), lut).astype(np.int16)
        return lut_eval(table16, src.dtype)
    real = 1.0 / float(np.float32(np.float32(math.sqrt(s_in)) * s_out))
    mult, shift = quantize_multiplier(real)
    zi, zo = zp_of(src), zp_of(out)
    k_shift = 20
    vals = np.arange(lo, hi + 1, dtype=np.int64)
    value = vals - zi
    inv_m, inv_s = inv_sqrt_multiplier(np.maximum(value, 0))
    data = mbqm(np.ones_like(value), inv_m, inv_s + k_shift)
    q = mbqm(data, mult, shift - k_shift) + zo
    table = np.where(value == 0, hi, np.clip(q, lo, hi)).astype(out.dtype)
    # Negative inputs are an error in TFLite; they map to the largest output here.
    table = np.where(value < 0, hi, table).astype(out.dtype)
    return lut_eval(table, src.dtype)


def mean_int(node: Node, axes: tuple[int, ...], keep: bool) -> Eval:
    """MEAN for int8/int16 as reduce.cc's reference paths choose them.

    The element count (hence the folded multiplier) is fixed unless the batch axis is
    reduced, so it is prepared once per count.
    """
    src, out = node.input(0), node.outputs[0]
    if src.dtype not in ("int8", "int16") or out.dtype != src.dtype:
        raise _missing(node)
    zi, zo = zp_of(src), zp_of(out)
    lo, hi = INT_RANGES[out.dtype]
    mult, shift = quantize_multiplier(float(np.float64(scale_of(src)) / np.float64(scale_of(out))))
    spatial_4d = keep and len(src.shape) == 4 and set(axes) == {1, 2}
    same = scale_of(src) == scale_of(out) and zi == zo
    odt = out.dtype
    by_count: dict[int, Callable[[I64], Array]] = {}

    def prepare(count: int) -> Callable[[I64], Array]:
        if spatial_4d:  # reference_integer_ops::Mean
            requant = QuantizedMultiplier(mult, shift)
            half = count // 2

            def spatial(total: I64) -> Array:
                acc = requant(total - zi * count)
                # Integer division rounding half away from zero, then the zero point.
                q = np.where(acc > 0, (acc + half) // count, -((-acc + half) // count))
                return clamp(q + zo, lo, hi).astype(odt)

            return spatial
        if same:  # reference_ops::Mean: integer division truncating toward zero

            def plain(total: I64) -> Array:
                return np.trunc(total / count).astype(odt)  # exact: |total| << 2**52

            return plain
        # QuantizedMeanOrSum: fold 1/count into the multiplier.
        sh = min(count.bit_length() - 1, 32, 31 + shift)
        folded = QuantizedMultiplier((mult << sh) // count, shift - sh, offset=zo)
        offset = zi * count

        def general(total: I64) -> Array:
            return clamp(folded(total - offset), lo, hi).astype(odt)

        return general

    static_count = 0 not in axes and all(src.shape[a] > 0 for a in axes)
    count0 = int(np.prod([src.shape[a] for a in axes])) if axes else 1

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        count = count0 if static_count else int(np.prod([x.shape[a] for a in axes]) if axes else 1)
        total = np.add.reduce(x, axis=axes, dtype=np.int64, keepdims=keep or spatial_4d)
        if count == 0:
            return [np.zeros(total.shape, dtype=odt)]
        fn = by_count.get(count)
        if fn is None:
            fn = by_count[count] = prepare(count)
        return [fn(total)]

    return run


def l2norm_int(node: Node) -> Eval:
    """reference_integer_ops::L2Normalization: output scale 1/128, zero point 0."""
    src, out = node.input(0), node.outputs[0]
    if src.dtype != "int8" or out.dtype != "int8" or not is_quantized(src):
        raise _missing(node)
    zi = zp_of(src)

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        v = x.astype(np.int64) - zi
        acc = np.add.reduce(v * v, axis=-1, keepdims=True)
        if acc.size == 1:  # one window: the row's multiplier as Python ints
            m1, s1 = _inv_sqrt_scalar(int(acc.ravel()[0]))
            q = mbqm(v, m1, s1 + 7)
        else:
            m, sh = inv_sqrt_multiplier(acc)
            q = mbqm(v, m, sh + 7)
        return [clamp(q, -128, 127).astype(np.int8)]

    return run
