"""Convolution, pooling, fully-connected and batch matmul kernels (NHWC, TFLite layouts).

Integer products are summed with BLAS in float32/float64 whenever the worst-case sum
fits the mantissa (2**24 / 2**53): every partial sum is then an exact integer, so the
result equals TFLite's int32/int64 accumulator bit for bit, at BLAS speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import ModelFormatError, UnsupportedOpError
from ..graph import Tensor
from .base import (
    INT_RANGES,
    Array,
    Eval,
    Node,
    activation_range_quantized,
    apply_float_activation,
    check_activation,
    const,
    is_quantized,
    qparams,
    register,
    scale_of,
    zp_of,
)
from .fixedpoint import (
    QuantizedMultiplier,
    QuantizedMultiplier64,
    clamp,
    mbqm_int64,
    quantize_multipliers,
    round_half_away,
    saturate,
)

F32 = npt.NDArray[np.float32]


# ----------------------------------------------------------------- helpers


def _exact_type(k: int, bound_a: int, bound_b: int) -> type[np.generic]:
    """The fastest dtype whose sums of ``k`` products stay exact integers."""
    worst = k * bound_a * bound_b
    if worst < (1 << 24):
        return np.float32
    if worst < (1 << 53):
        return np.float64
    return np.int64


class ConstMatmul:
    """Exact ``x @ w`` for a constant integer ``w``, cast once at prepare time."""

    def __init__(self, w: Array, bound_x: int, bound_w: int) -> None:
        self.dtype = _exact_type(w.shape[0], bound_x, bound_w)
        self.w = np.ascontiguousarray(w.astype(self.dtype))

    def __call__(self, x: Array) -> Array:
        # Contiguous rows: a one-window im2col is a view whose rows overlap, which BLAS
        # cannot take, and numpy's fallback loop is ~10x slower than the copy.
        out: Array = np.ascontiguousarray(x, dtype=self.dtype) @ self.w
        return out


def _padding(size: int, k: int, stride: int, dilation: int, same: bool) -> tuple[int, int, int]:
    """Output size and (before, after) padding as TFLite's ComputePaddingHeightWidth."""
    eff = (k - 1) * dilation + 1
    out = (size + stride - 1) // stride if same else (size + stride - eff) // stride
    if out <= 0:
        raise ModelFormatError("convolution/pool window larger than its input")
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


def patches(  # noqa: PLR0917 - mirrors the conv parameters one to one
    x: Array,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    dh: int,
    dw: int,
    same: bool,
    pad_value: float,
) -> Array:
    """im2col view (N, OH, OW, KH, KW, C) of a padded NHWC tensor (no copy of the windows)."""
    n, h, w, c = x.shape
    oh, pt, pb = _padding(h, kh, sh, dh, same)
    ow, pl, pr = _padding(w, kw, sw, dw, same)
    xp: Array
    if pt or pb or pl or pr:
        shape = (n, h + pt + pb, w + pl + pr, c)
        if pad_value == 0:
            xp = np.zeros(shape, dtype=x.dtype)
        else:
            xp = np.empty(shape, dtype=x.dtype)
            xp.fill(pad_value)
        xp[:, pt : pt + h, pl : pl + w, :] = x
    else:
        xp = np.ascontiguousarray(x)
    s = xp.strides
    # The ndarray constructor is as_strided without its ~8 us of Python plumbing.
    view: Array = np.ndarray(
        (n, oh, ow, kh, kw, c),
        xp.dtype,
        xp,
        0,
        (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]),
    )
    view.flags.writeable = False
    return view


def _conv_geometry(node: Node) -> tuple[int, int, int, int, bool]:
    pad = str(node.opt("padding", "SAME"))
    if pad not in ("SAME", "VALID"):
        raise UnsupportedOpError([f"{node.op.opcode}(padding {pad})"])
    return (
        int(node.opt("stride_h", 1)),
        int(node.opt("stride_w", 1)),
        int(node.opt("dilation_h_factor", 1) or 1),
        int(node.opt("dilation_w_factor", 1) or 1),
        pad == "SAME",
    )


def _channel_multipliers(
    inp: Tensor, flt: Tensor, out: Tensor, channels: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per-channel output multipliers: double(in_scale) * double(w_scale) / double(out_scale)."""
    w_scales: npt.NDArray[np.float64] = qparams(flt).scale.astype(np.float64).ravel()
    if w_scales.size == 1:
        w_scales = np.repeat(w_scales, channels)
    real = np.float64(scale_of(inp)) * w_scales / np.float64(scale_of(out))
    return quantize_multipliers(real)


def _bias(node: Node, idx: int, channels: int, dtype: type) -> Array:
    t = node.inputs[idx] if len(node.inputs) > idx else None
    if t is None:
        return np.zeros(channels, dtype=dtype)
    return const(t).astype(dtype).ravel()


def _hybrid_channel_scales(node: Node, flt: Tensor, channels: int) -> F32:
    """Per-output-channel weight scales of a dynamic-range conv (per-tensor is refused)."""
    scales: F32 = qparams(flt).scale.astype(np.float32).ravel()
    if scales.size == 1 and channels > 1:
        raise UnsupportedOpError([f"{node.op.opcode}(hybrid, per-tensor weights)"])
    return np.repeat(scales, channels) if scales.size == 1 else scales


def _hybrid_input(x: F32, dtype: type[np.generic]) -> tuple[Array, F32]:
    """Each window quantized on its own range, zero offset removed, in the conv's shape."""
    q, scale, offset = asymmetric_quantize(x.reshape(x.shape[0], -1))
    return (q - offset[:, None]).reshape(x.shape).astype(dtype), scale


def _requantizer(
    node: Node, mult: Array, shift: Array, bias: Array, *, wide: bool
) -> Callable[[Array], Array]:
    """Accumulator -> output: + bias, per-channel requantization, zero point, clamp."""
    out = node.outputs[0]
    lo, hi = activation_range_quantized(check_activation(node), out)
    zo = zp_of(out)
    odt = out.dtype
    has_bias = bool(np.any(bias))
    if wide:

        def run_wide(acc: Array) -> Array:
            v = acc.astype(np.int64) + bias
            return saturate(mbqm_int64(v, mult, shift) + zo, lo, hi, odt)

        return run_wide
    requant = QuantizedMultiplier(mult, shift, offset=zo)

    def run_int(acc: Array) -> Array:
        v = acc.astype(np.int64)
        if has_bias:
            v += bias
        return clamp(requant(v), lo, hi).astype(odt)

    return run_int


def _round_half_away_scalar(v: float) -> float:
    return math.copysign(math.floor(abs(v) + 0.5), v)


def _asymmetric_row(x: F32) -> tuple[Array, F32, npt.NDArray[np.int64]]:
    """:func:`asymmetric_quantize` of one row, its statistics in Python floats (doubles).

    The same IEEE double arithmetic as the vectorised form, without ~40 numpy calls on
    one-element arrays (the single-window case).
    """
    rmin, rmax = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    if rmin == rmax:
        return np.zeros(x.shape, np.int64), np.ones(1, np.float32), np.zeros(1, np.int64)
    scale = (rmax - rmin) / 255.0
    zp_min, zp_max = -128.0 - rmin / scale, 127.0 - rmax / scale
    err_min, err_max = 128.0 + abs(rmin / scale), 127.0 + abs(rmax / scale)
    zp_d = zp_min if err_min < err_max else zp_max
    offset = (
        -128 if zp_d <= -128.0 else 127 if zp_d >= 127.0 else int(_round_half_away_scalar(zp_d))
    )
    scale32 = np.float32(scale)
    val = np.float32(offset) + x * (np.float32(1.0) / scale32)
    q = clamp(round_half_away(val), -128, 127).astype(np.int64)
    return q, np.array([scale32], np.float32), np.array([offset], np.int64)


def asymmetric_quantize(x: F32) -> tuple[Array, F32, npt.NDArray[np.int64]]:
    """AsymmetricQuantizeFloats per row of ``x`` (N, K): int8 values, scale, zero offset."""
    x = x.astype(np.float32, copy=False)
    if x.shape[0] == 1:
        return _asymmetric_row(x)
    rmin = np.minimum(x.min(axis=1), np.float32(0)).astype(np.float64)
    rmax = np.maximum(x.max(axis=1), np.float32(0)).astype(np.float64)
    degenerate = rmin == rmax
    scale = np.where(degenerate, 1.0, (rmax - rmin) / 255.0)
    zp_min = -128.0 - rmin / scale
    zp_max = 127.0 - rmax / scale
    err_min = 128.0 + np.abs(rmin / scale)
    err_max = 127.0 + np.abs(rmax / scale)
    zp_d = np.where(err_min < err_max, zp_min, zp_max)
    offset = np.where(
        zp_d <= -128.0, -128, np.where(zp_d >= 127.0, 127, round_half_away(zp_d))
    ).astype(np.int64)
    offset = np.where(degenerate, 0, offset)
    scale32 = scale.astype(np.float32)
    inv = (np.float32(1.0) / scale32).astype(np.float32)
    val = offset[:, None].astype(np.float32) + x * inv[:, None]
    q = clamp(round_half_away(val), -128, 127).astype(np.int64)
    q = np.where(degenerate[:, None], 0, q)
    return q, scale32, offset


# ----------------------------------------------------------------- CONV_2D


@register("CONV_2D")
def conv_2d(node: Node) -> Eval:
    inp, flt, out = node.input(0), node.input(1), node.outputs[0]
    w = const(flt)  # (O, KH, KW, I)
    o, kh, kw, cin = w.shape
    if inp.shape and inp.shape[-1] != cin:
        raise UnsupportedOpError(["CONV_2D(grouped)"])
    sh, sw, dh, dw, same = _conv_geometry(node)
    act = check_activation(node)
    w_mat = w.reshape(o, -1).T  # (KH*KW*I, O)

    if inp.dtype == "float32" and flt.dtype == "float32":
        wf = w_mat.astype(np.float32)
        bias = _bias(node, 2, o, np.float32)

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            p = patches(x, kh, kw, sh, sw, dh, dw, same, 0.0)
            n, oh, ow = p.shape[:3]
            y = np.ascontiguousarray(p.reshape(n * oh * ow, -1)) @ wf + bias
            return [apply_float_activation(y.reshape(n, oh, ow, o).astype(np.float32), act)]

        return run_f

    if inp.dtype == "float32" and flt.dtype == "int8":  # hybrid (dynamic range)
        ch_scale = _hybrid_channel_scales(node, flt, o)
        mm_h = ConstMatmul(w_mat, 255, 128)
        bias = _bias(node, 2, o, np.float32)

        def run_h(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            n = x.shape[0]
            qx, sf = _hybrid_input(x, np.int16)
            p = patches(qx, kh, kw, sh, sw, dh, dw, same, 0)
            oh, ow = p.shape[1:3]
            acc = mm_h(p.reshape(n * oh * ow, -1)).reshape(n, oh * ow, o)
            y = acc.astype(np.float32) * ch_scale
            y = y * sf[:, None, None]
            y = y + bias
            return [apply_float_activation(y.reshape(n, oh, ow, o).astype(np.float32), act)]

        return run_h

    if is_quantized(inp) and flt.dtype == "int8" and is_quantized(out):
        wide = inp.dtype == "int16"
        mult, shift = _channel_multipliers(inp, flt, out, o)
        zin = zp_of(inp)
        # sum((x - zin) * w) + bias == sum(x * w) + (bias - zin * sum(w)), with padding
        # (a real 0) stored as zin: the raw input goes straight into im2col.
        bias = _bias(node, 2, o, np.int64) - zin * w_mat.astype(np.int64).sum(axis=0)
        bound_in = 65536 if wide else 256
        mm_q = ConstMatmul(w_mat, bound_in, 128)
        requant = _requantizer(node, mult, shift, bias, wide=wide)

        def run_q(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            p = patches(x, kh, kw, sh, sw, dh, dw, same, zin)
            n, oh, ow = p.shape[:3]
            acc = mm_q(p.reshape(n * oh * ow, -1))
            return [requant(acc).reshape(n, oh, ow, o)]

        return run_q
    raise UnsupportedOpError([f"CONV_2D({inp.dtype}x{flt.dtype})"])


# ----------------------------------------------------------------- DEPTHWISE_CONV_2D


@register("DEPTHWISE_CONV_2D")
def depthwise_conv_2d(node: Node) -> Eval:
    inp, flt, out = node.input(0), node.input(1), node.outputs[0]
    w = const(flt)  # (1, KH, KW, C*M)
    _, kh, kw, cout = w.shape
    cin = inp.shape[-1]
    mult_d = int(node.opt("depth_multiplier", 1) or 1)
    if cin * mult_d != cout:
        mult_d = cout // cin if cin and cout % cin == 0 else mult_d
    if cin * mult_d != cout:
        raise ModelFormatError("DEPTHWISE_CONV_2D: channel count mismatch")
    sh, sw, dh, dw, same = _conv_geometry(node)
    act = check_activation(node)
    taps = w.reshape(kh, kw, cout)

    def expand(x: Array) -> Array:
        return np.repeat(x, mult_d, axis=-1) if mult_d > 1 else x

    def accumulate(p: Array, wt: Array, dtype: type) -> Array:
        """Tap-by-tap sum in the reference kernel's (filter_y, filter_x) order.

        ``p`` holds patches of the channel-expanded input (see ``expand``).
        """
        acc: Array = np.zeros((*p.shape[:3], cout), dtype=dtype)
        for i in range(kh):
            for j in range(kw):
                acc += p[:, :, :, i, j, :] * wt[i, j]
        return acc

    if inp.dtype == "float32" and flt.dtype == "float32":
        wf = taps.astype(np.float32)
        bias = _bias(node, 2, cout, np.float32)

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            p = patches(expand(x), kh, kw, sh, sw, dh, dw, same, 0.0)
            return [apply_float_activation(accumulate(p, wf, np.float32) + bias, act)]

        return run_f

    if inp.dtype == "float32" and flt.dtype == "int8":
        ch_scale = _hybrid_channel_scales(node, flt, cout)
        h_type = _exact_type(kh * kw, 255, 128)
        wq = taps.astype(h_type)
        bias = _bias(node, 2, cout, np.float32)

        def run_h(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            qx, sf = _hybrid_input(x, h_type)
            p = patches(expand(qx), kh, kw, sh, sw, dh, dw, same, 0)
            acc = accumulate(p, wq, h_type).astype(np.float32)
            scale = (ch_scale[None, :] * sf[:, None]).astype(np.float32)
            y = acc * scale[:, None, None, :] + bias
            return [apply_float_activation(y.astype(np.float32), act)]

        return run_h

    if is_quantized(inp) and flt.dtype == "int8" and is_quantized(out):
        wide = inp.dtype == "int16"
        mult, shift = _channel_multipliers(inp, flt, out, cout)
        zin = zp_of(inp)
        bias = _bias(node, 2, cout, np.int64)
        bound_in = 65536 if wide else 256
        acc_type = _exact_type(kh * kw, bound_in, 128)
        wq = taps.astype(acc_type)
        requant = _requantizer(node, mult, shift, bias, wide=wide)

        def run_q(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            p = patches(expand(x.astype(acc_type) - zin), kh, kw, sh, sw, dh, dw, same, 0)
            return [requant(accumulate(p, wq, acc_type))]

        return run_q
    raise UnsupportedOpError([f"DEPTHWISE_CONV_2D({inp.dtype}x{flt.dtype})"])


# ----------------------------------------------------------------- pooling


def _pool(node: Node, kind: str) -> Eval:
    inp, out = node.input(0), node.outputs[0]
    kh, kw = int(node.opt("filter_height", 1)), int(node.opt("filter_width", 1))
    sh, sw, _dh, _dw, same = _conv_geometry(node)
    act = check_activation(node)
    quant = is_quantized(inp)
    if not quant and inp.dtype != "float32":
        raise UnsupportedOpError([f"{node.op.opcode}({inp.dtype})"])
    if quant and (scale_of(inp) != scale_of(out) or zp_of(inp) != zp_of(out)):
        raise UnsupportedOpError([f"{node.op.opcode}(rescaling)"])
    lo, hi = activation_range_quantized(act, out) if quant else (0, 0)
    counts: dict[tuple[int, int], Array] = {}

    def _window_counts(h: int, w: int) -> Array:
        """Valid (unpadded) cells per window; depends on the spatial size only."""
        if (h, w) not in counts:
            ones = np.ones((1, h, w, 1), dtype=np.float32)
            counts[h, w] = patches(ones, kh, kw, sh, sw, 1, 1, same, 0.0).sum(axis=(3, 4))
        return counts[h, w]

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        if kind == "max":
            fill = INT_RANGES[inp.dtype][0] if quant else -np.inf
            p = patches(x, kh, kw, sh, sw, 1, 1, same, fill)
            y: Array = p.max(axis=(3, 4))
            if quant:
                return [clamp(y, lo, hi).astype(out.dtype)]
            return [apply_float_activation(y.astype(np.float32), act)]
        count = _window_counts(x.shape[1], x.shape[2])
        if quant:
            s = patches(x.astype(np.int64), kh, kw, sh, sw, 1, 1, same, 0).sum(axis=(3, 4))
            c = count.astype(np.int64)
            half = c // 2
            avg = np.where(s > 0, (s + half) // c, -((-s + half) // c))
            return [clamp(avg, lo, hi).astype(out.dtype)]
        p = patches(x, kh, kw, sh, sw, 1, 1, same, 0.0)
        total = np.zeros(p.shape[:3] + p.shape[5:], dtype=np.float32)
        for i in range(kh):
            for j in range(kw):
                total += p[:, :, :, i, j, :]
        return [apply_float_activation((total / count).astype(np.float32), act)]

    return run


@register("MAX_POOL_2D")
def max_pool_2d(node: Node) -> Eval:
    return _pool(node, "max")


@register("AVERAGE_POOL_2D")
def average_pool_2d(node: Node) -> Eval:
    return _pool(node, "avg")


# ----------------------------------------------------------------- FULLY_CONNECTED


@register("FULLY_CONNECTED")
def fully_connected(node: Node) -> Eval:
    inp, flt, out = node.input(0), node.input(1), node.outputs[0]
    if str(node.opt("weights_format", "DEFAULT")) != "DEFAULT":
        raise UnsupportedOpError(["FULLY_CONNECTED(shuffled weights)"])
    w = const(flt)
    units, depth = w.shape
    keep = bool(node.opt("keep_num_dims", False))
    act = check_activation(node)

    def shaped(x: Array, y: Array) -> Array:
        return y.reshape(*x.shape[:-1], units) if keep else y

    if inp.dtype == "float32" and flt.dtype == "float32":
        wf = w.T.astype(np.float32)
        bias = _bias(node, 2, units, np.float32)

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            y = x.reshape(-1, depth) @ wf + bias
            return [shaped(x, apply_float_activation(y.astype(np.float32), act))]

        return run_f

    if inp.dtype == "float32" and flt.dtype == "int8":
        mm_h = ConstMatmul(w.T, 128, 128)
        row_sums = w.astype(np.int64).sum(axis=1)
        q = qparams(flt)
        per_channel = q.scale.size > 1
        ch_scale = q.scale.astype(np.float32).ravel()
        bias = _bias(node, 2, units, np.float32)
        asym = bool(node.opt("asymmetric_quantize_inputs", False))

        def run_h(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            rows = x.reshape(-1, depth).astype(np.float32)
            if asym:
                qx, sf, off = asymmetric_quantize(rows)
                dot = mm_h(qx).astype(np.int64) - off[:, None] * row_sums[None, :]
            else:
                qx, sf = symmetric_quantize(rows)
                dot = mm_h(qx)  # exact integers; no zero-point correction
            if not per_channel:
                sf = (sf * ch_scale[0]).astype(np.float32)
            scale = sf[:, None] * ch_scale[None, :] if per_channel else sf[:, None]
            y = bias + dot.astype(np.float32) * scale.astype(np.float32)
            return [shaped(x, apply_float_activation(y.astype(np.float32), act))]

        return run_h

    if is_quantized(inp) and flt.dtype == "int8" and is_quantized(out):
        # LiteRT's reference FC rescales in double: round(acc * in_s * w_s / out_s).
        q = qparams(flt)
        w_scales = q.scale.astype(np.float32).astype(np.float64).ravel()
        eff = np.float64(scale_of(inp)) * w_scales / np.float64(scale_of(out))
        if eff.size == 1:
            eff = np.repeat(eff, units)
        lo, hi = activation_range_quantized(act, out)
        zin, zo = zp_of(inp), zp_of(out)
        zw = int(q.zero_point.ravel()[0]) if q.scale.size == 1 else 0
        bound_in = 65536 if inp.dtype == "int16" else 256
        w_int = w.T.astype(np.int64) - zw
        mm_q = ConstMatmul(w_int, bound_in, 256)
        # sum((x - zin) * w) + bias == x @ w + (bias - zin * sum(w)): exact in float64.
        bias = _bias(node, 2, units, np.float64) - float(zin) * w_int.sum(axis=0)
        f_lo, f_hi = float(lo - zo), float(hi - zo)
        odt = out.dtype

        def run_q(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            acc = mm_q(x.reshape(-1, depth)).astype(np.float64, copy=False) + bias  # < 2**53
            v = acc * eff
            scaled = clamp(np.trunc(v + np.copysign(0.5, v)), f_lo, f_hi) + zo
            return [shaped(x, scaled.astype(odt))]

        return run_q
    raise UnsupportedOpError([f"FULLY_CONNECTED({inp.dtype}x{flt.dtype})"])


def symmetric_quantize(x: F32) -> tuple[npt.NDArray[np.int64], F32]:
    """SymmetricQuantizeFloats per row: scale = max|x| / 127."""
    if x.shape[0] == 1:  # one window: the row's range as a scalar
        r = np.float32(np.abs(x).max())
        if r == 0:
            return np.zeros(x.shape, np.int64), np.ones(1, np.float32)
        q1 = clamp(round_half_away(x * (np.float32(127.0) / r)), -127, 127).astype(np.int64)
        return q1, np.array([r / np.float32(127.0)], np.float32)
    rng = np.abs(x).max(axis=1).astype(np.float32)
    zero = rng == 0
    sf = np.where(zero, np.float32(1.0), rng / np.float32(127.0)).astype(np.float32)
    inv = np.where(zero, np.float32(0.0), np.float32(127.0) / rng).astype(np.float32)
    q = clamp(round_half_away(x * inv[:, None]), -127, 127).astype(np.int64)
    return q, sf


# ----------------------------------------------------------------- BATCH_MATMUL


@register("BATCH_MATMUL")
def batch_matmul(node: Node) -> Eval:
    a_t, b_t, out = node.input(0), node.input(1), node.outputs[0]
    adj_x, adj_y = bool(node.opt("adj_x", False)), bool(node.opt("adj_y", False))

    def orient(a: Array, b: Array) -> tuple[Array, Array]:
        return (np.swapaxes(a, -1, -2) if adj_x else a, np.swapaxes(b, -1, -2) if adj_y else b)

    if a_t.dtype == "float32" and b_t.dtype == "float32":

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            a, b = ins[0], ins[1]
            assert a is not None and b is not None
            a, b = orient(a, b)
            return [np.matmul(a, b).astype(np.float32)]

        return run_f
    if is_quantized(a_t) and is_quantized(b_t) and is_quantized(out):
        wide = a_t.dtype == "int16"
        real = np.float64(scale_of(a_t)) * np.float64(scale_of(b_t)) / np.float64(scale_of(out))
        mult, shift = quantize_multipliers([real])
        za, zb = zp_of(a_t), zp_of(b_t)
        bound = 65536 if wide else 256
        k = a_t.shape[-2 if adj_x else -1] if a_t.shape else 1
        dt = _exact_type(k, bound, bound)
        lo, hi = activation_range_quantized(check_activation(node), out)
        odt = out.dtype
        if wide:
            qm64 = QuantizedMultiplier64(int(mult[0]), int(shift[0]))
            zo = zp_of(out)

            def requant(acc: Array) -> Array:
                return saturate(qm64(acc.astype(np.int64)) + zo, lo, hi, odt)

        else:
            qm = QuantizedMultiplier(int(mult[0]), int(shift[0]), offset=zp_of(out))

            def requant(acc: Array) -> Array:
                return clamp(qm(acc.astype(np.int64)), lo, hi).astype(odt)

        def run_q(ins: Sequence[Array | None]) -> list[Array]:
            a, b = ins[0], ins[1]
            assert a is not None and b is not None
            fa = a.astype(dt) - za if za else a.astype(dt)
            fb = b.astype(dt) - zb if zb else b.astype(dt)
            fa, fb = orient(fa, fb)
            return [requant(np.matmul(fa, fb))]

        return run_q
    raise UnsupportedOpError([f"BATCH_MATMUL({a_t.dtype}x{b_t.dtype})"])
