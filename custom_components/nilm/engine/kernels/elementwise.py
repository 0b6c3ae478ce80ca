"""Element-wise kernels: (de)quantization, binary arithmetic, activations.

Integer paths follow the TFLite reference kernels: inputs are offset by their zero
points, rescaled with fixed-point multipliers (``left_shift`` 20 for int8, 15 for int16
in ADD/SUB), combined in int32 and requantized to the output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Concatenate

import numpy as np

from ..errors import UnsupportedOpError
from ..graph import Tensor
from .base import (
    INT_RANGES,
    Array,
    Eval,
    Node,
    activation_range_quantized,
    apply_float_activation,
    check_activation,
    is_quantized,
    lookup,
    lut_eval,
    qparams,
    register,
    scale_of,
    table_index,
    zp_of,
)
from .fixedpoint import (
    QuantizedMultiplier,
    clamp,
    mbqm,
    quantize_multiplier,
    round_half_away,
    saturate,
)
from .nonlinear import gelu_float, gelu_int, logistic_int, rsqrt_int, tanh_int


def _unsupported(node: Node, what: str) -> UnsupportedOpError:
    return UnsupportedOpError([f"{node.op.opcode}({what})"])


def requantizer(src: Tensor, dst: Tensor) -> Callable[[Array], Array] | None:
    """Float-rescaling requantization CONCATENATION uses when scales differ (else None).

    It depends on the input value alone, so it is a table over the input's range.
    """
    s_in, s_out = np.float32(scale_of(src)), np.float32(scale_of(dst))
    z_in, z_out = zp_of(src), zp_of(dst)
    if s_in == s_out and z_in == z_out:
        return None
    lo, hi = INT_RANGES[dst.dtype]
    scale = np.float32(s_in * (np.float32(1.0) / s_out))
    bias = np.float32(np.float32(-z_in) * scale)

    def fix(v: Array) -> Array:
        val = round_half_away(v.astype(np.float32) * scale + bias) + z_out
        return saturate(val, lo, hi, dst.dtype)

    if table_index(src.dtype) is None:
        return fix
    s_lo, s_hi = INT_RANGES[src.dtype]
    table = lut_eval(fix(np.arange(s_lo, s_hi + 1, dtype=np.int64)), src.dtype)
    return lambda v: table([v])[0]


# ----------------------------------------------------------------- quantize / dequantize


@register("QUANTIZE")
def quantize(node: Node) -> Eval:
    src, dst = node.input(0), node.outputs[0]
    lo, hi = INT_RANGES.get(dst.dtype, (0, 0))
    if dst.dtype not in ("int8", "int16", "uint8"):
        raise _unsupported(node, f"{src.dtype}->{dst.dtype}")
    zp = zp_of(dst)
    if src.dtype == "float32":
        scale = np.float32(scale_of(dst))
        f_lo, f_hi = float(lo - zp), float(hi - zp)

        def run_f(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            # TfLiteRound(x / scale) in float32, rounded half away from zero in float64
            # (where |v| + 0.5 is exact). fmax/fmin pin NaN, which has no quantized value
            # (C++ leaves it undefined), to the lowest code.
            v = (x / scale).astype(np.float64)
            r = np.trunc(v + np.copysign(0.5, v))
            return [(np.fmin(np.fmax(r, f_lo), f_hi) + zp).astype(dst.dtype)]

        return run_f
    if not is_quantized(src) or table_index(src.dtype) is None:
        raise _unsupported(node, f"{src.dtype}->{dst.dtype}")
    requant = QuantizedMultiplier(*quantize_multiplier(scale_of(src) / scale_of(dst)), offset=zp)
    zin = zp_of(src)
    s_lo, s_hi = INT_RANGES[src.dtype]
    domain = np.arange(s_lo, s_hi + 1, dtype=np.int64)
    # Requantization depends on the input value alone: one table over its range.
    return lut_eval(saturate(requant(domain - zin), lo, hi, dst.dtype), src.dtype)


@register("DEQUANTIZE")
def dequantize(node: Node) -> Eval:
    src = node.input(0)
    if src.dtype == "float16":

        def run_h(ins: Sequence[Array | None]) -> list[Array]:
            x = ins[0]
            assert x is not None
            return [x.astype(np.float32)]

        return run_h
    if src.dtype not in ("int8", "int16", "uint8"):
        raise _unsupported(node, src.dtype)
    q = qparams(src)
    shape = [1] * len(src.shape)
    if q.per_channel and shape:
        shape[q.quantized_dimension] = -1
    scale = q.scale.astype(np.float32).astype(np.float64).reshape(shape or [-1])
    zp = q.zero_point.astype(np.int64).reshape(shape or [-1])
    if not q.per_channel:
        # float(double(scale) * (q - zp)) for every possible q: a table.
        lo, hi = INT_RANGES[src.dtype]
        values = np.arange(lo, hi + 1, dtype=np.int64) - int(zp.ravel()[0])
        return lut_eval((float(scale.ravel()[0]) * values).astype(np.float32), src.dtype)

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        return [(scale * (x.astype(np.int64) - zp)).astype(np.float32)]

    return run


# ----------------------------------------------------------------- binary arithmetic


def _aligned[**P](
    prepare: Callable[Concatenate[Node, P], Eval],
) -> Callable[Concatenate[Node, P], Eval]:
    """Every binary op's Eval goes through :func:`batch_aligned`."""

    def wrapped(node: Node, /, *args: P.args, **kwargs: P.kwargs) -> Eval:
        return batch_aligned(node, prepare(node, *args, **kwargs))

    return wrapped


def batch_aligned(node: Node, run: Eval) -> Eval:
    """``run`` with the runtime batch put back into a lower-rank operand.

    A reshape that drops the batch dimension (Keras' ``o`` projection: ``(1, 49, 2, 16)``
    to ``(49, 32)``) carries the batch in its leading rows at runtime (``N * 49``); TFLite
    broadcasts ``(49, 64)`` against ``(1, 49, 64)``, so that operand becomes ``(N, 49, 64)``
    again before the op."""
    a_t, b_t = node.inputs[0], node.inputs[1]
    if a_t is None or b_t is None or a_t.data is not None or b_t.data is not None:
        return run
    if len(a_t.shape) == len(b_t.shape):
        return run
    low = 0 if len(a_t.shape) < len(b_t.shape) else 1
    high_static = (b_t if low == 0 else a_t).shape
    padded = (1,) * (len(high_static) - len((a_t, b_t)[low].shape)) + tuple((a_t, b_t)[low].shape)
    if not high_static or high_static[0] != 1 or padded[0] != 1:
        return run
    rest = padded[1:]

    def aligned(ins: Sequence[Array | None]) -> list[Array]:
        x, y = ins[low], ins[1 - low]
        assert x is not None and y is not None
        n = y.shape[0]
        if n != 1 and x.size == n * int(np.prod(rest)):
            x = x.reshape((n, *rest))
            return run([x, y] if low == 0 else [y, x])
        return run(ins)

    return aligned


@_aligned
def _float_binary(node: Node, fn: Callable[[Array, Array], Array]) -> Eval:
    act = check_activation(node)
    if act == "NONE" and all(t is not None and t.dtype == "float32" for t in node.inputs[:2]):

        def run_plain(ins: Sequence[Array | None]) -> list[Array]:
            return [fn(ins[0], ins[1])]  # type: ignore[arg-type]

        return run_plain

    def run(ins: Sequence[Array | None]) -> list[Array]:
        a, b = ins[0], ins[1]
        assert a is not None and b is not None
        return [apply_float_activation(fn(a, b).astype(np.float32, copy=False), act)]

    return run


def _int_binary(node: Node) -> tuple[Tensor, Tensor, Tensor, tuple[int, int]]:
    a, b, out = node.input(0), node.input(1), node.outputs[0]
    if not (is_quantized(a) and is_quantized(b) and is_quantized(out)):
        raise _unsupported(node, f"{a.dtype},{b.dtype}->{out.dtype}")
    if out.dtype not in ("int8", "int16"):
        raise _unsupported(node, out.dtype)
    return a, b, out, activation_range_quantized(check_activation(node), out)


@_aligned
def _binary_eval(
    node: Node,
    lo: int,
    hi: int,
    compute: Callable[[Array, Array], Array],
    operand: Callable[[int, Array], Array] | None = None,
    *,
    raw_operand: Callable[[int, Array], Array] | None = None,
) -> Eval:
    """Integer binary op, tabulated wherever the inputs' value ranges allow.

    ``compute`` maps int64 raw inputs to the unclamped output (TFLite's arithmetic);
    ``operand(i, raw)`` optionally maps input ``i`` to the value ``compute`` takes
    instead of the raw one (its per-input rescaling), so a constant input is rescaled once;
    ``raw_operand(i, x)`` does the same for a runtime array in its storage dtype.

    * two int8 inputs: a 256 x 256 table of every result;
    * one input a single constant value (a scalar in a broadcast): a table over the other
      input's range, so the op is one lookup;
    * otherwise a constant input's rescaled values are computed once at load time.
    """
    a_t, b_t, out = node.input(0), node.input(1), node.outputs[0]
    prep = operand or (lambda _i, v: v)

    def from_raw(i: int, x: Array) -> Array:
        return prep(i, x.astype(np.int64))

    raw = raw_operand or from_raw
    a_c, b_c = a_t.data, b_t.data
    if a_c is not None and b_c is None and a_c.size == 1 and table_index(b_t.dtype):
        a_val = prep(0, a_c.astype(np.int64).reshape(()))
        b_lo, b_hi = INT_RANGES[b_t.dtype]
        b_all = prep(1, np.arange(b_lo, b_hi + 1, dtype=np.int64))
        return _broadcast_lut(saturate(compute(a_val, b_all), lo, hi, out.dtype), b_t, a_c, 0)
    if b_c is not None and a_c is None and b_c.size == 1 and table_index(a_t.dtype):
        b_val = prep(1, b_c.astype(np.int64).reshape(()))
        a_lo, a_hi = INT_RANGES[a_t.dtype]
        a_all = prep(0, np.arange(a_lo, a_hi + 1, dtype=np.int64))
        return _broadcast_lut(saturate(compute(a_all, b_val), lo, hi, out.dtype), a_t, b_c, 1)
    if a_t.dtype == "int8" and b_t.dtype == "int8":
        grid = np.arange(-128, 128, dtype=np.int64)
        table = saturate(compute(prep(0, grid)[:, None], prep(1, grid)[None, :]), lo, hi, out.dtype)
        table = lookup(lookup(table, "int8", axis=0), "int8", axis=1)
        if b_c is not None:
            b_idx = b_c.view(np.uint8)

            def run_table_b(ins: Sequence[Array | None]) -> list[Array]:
                a = ins[0]
                assert a is not None
                return [table[a.view(np.uint8), b_idx]]

            return run_table_b

        def run_table(ins: Sequence[Array | None]) -> list[Array]:
            a, b = ins[0], ins[1]
            assert a is not None and b is not None
            return [table[a.view(np.uint8), b.view(np.uint8)]]

        return run_table
    odt = out.dtype
    # A constant operand is rescaled once here, a runtime one on every call.
    a_pre = None if a_c is None else prep(0, a_c.astype(np.int64))
    b_pre = None if b_c is None else prep(1, b_c.astype(np.int64))

    def run(ins: Sequence[Array | None]) -> list[Array]:
        a, b = ins[0], ins[1]
        assert a is not None and b is not None
        va = raw(0, a) if a_pre is None else a_pre
        vb = raw(1, b) if b_pre is None else b_pre
        return [clamp(compute(va, vb), lo, hi).astype(odt)]

    return run


def _broadcast_lut(table: Array, var: Tensor, const_value: Array, const_pos: int) -> Eval:
    """A unary table for a binary op with a one-value constant, keeping broadcast rank."""
    lut = lut_eval(table, var.dtype)
    ndim = const_value.ndim

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[1 - const_pos]
        assert x is not None
        y = lut([x])[0]
        # A (1, 1, 1) constant still broadcasts a lower-rank input up to its rank.
        return [y.reshape((1,) * (ndim - y.ndim) + y.shape) if ndim > y.ndim else y]

    return run


def _add_sub(node: Node, sign: int) -> Eval:
    a_t, b_t, out, (lo, hi) = _int_binary(node)
    left_shift = 20 if out.dtype == "int8" else 15
    sa, sb, so = scale_of(a_t), scale_of(b_t), scale_of(out)
    twice_max = 2.0 * float(np.float32(max(sa, sb)))
    ma, sha = quantize_multiplier(sa / twice_max)
    mb, shb = quantize_multiplier(sb / twice_max)
    mo, sho = quantize_multiplier(twice_max / float(np.float32((1 << left_shift) * so)))
    za, zb, zo = zp_of(a_t), zp_of(b_t), zp_of(out)
    # Each input's rescaling depends on that input alone: tabulate it over its range.
    a_lo, a_hi = INT_RANGES[a_t.dtype]
    b_lo, b_hi = INT_RANGES[b_t.dtype]
    ta = mbqm((np.arange(a_lo, a_hi + 1, dtype=np.int64) - za) << left_shift, ma, sha)
    tb = sign * mbqm((np.arange(b_lo, b_hi + 1, dtype=np.int64) - zb) << left_shift, mb, shb)
    requant = QuantizedMultiplier(mo, sho, offset=zo)

    def operand(i: int, v: Array) -> Array:
        out_v: Array = ta[v - a_lo] if i == 0 else tb[v - b_lo]
        return out_v

    ta_view, tb_view = table_index(a_t.dtype), table_index(b_t.dtype)
    raw_operand = None
    if ta_view is not None and tb_view is not None:
        ta_u, tb_u = lookup(ta, a_t.dtype), lookup(tb, b_t.dtype)

        def raw_operand(i: int, x: Array) -> Array:
            out_v: Array = ta_u[x.view(ta_view[0])] if i == 0 else tb_u[x.view(tb_view[0])]
            return out_v

    def compute(a: Array, b: Array) -> Array:
        return requant(a + b)

    return _binary_eval(node, lo, hi, compute, operand, raw_operand=raw_operand)


@register("ADD")
def add(node: Node) -> Eval:
    if node.outputs[0].dtype in ("float32", "int32", "int64") and not is_quantized(node.outputs[0]):
        return _float_binary(node, np.add)
    return _add_sub(node, 1)


@register("SUB")
def sub(node: Node) -> Eval:
    if node.outputs[0].dtype in ("float32", "int32", "int64") and not is_quantized(node.outputs[0]):
        return _float_binary(node, np.subtract)
    return _add_sub(node, -1)


@register("MUL")
def mul(node: Node) -> Eval:
    if node.outputs[0].dtype in ("float32", "int32", "int64") and not is_quantized(node.outputs[0]):
        return _float_binary(node, np.multiply)
    a_t, b_t, out, (lo, hi) = _int_binary(node)
    real = float(np.float32(np.float32(scale_of(a_t)) * np.float32(scale_of(b_t))))
    real = float(np.float32(real / np.float32(scale_of(out))))
    requant = QuantizedMultiplier(*quantize_multiplier(real), offset=zp_of(out))
    za, zb = zp_of(a_t), zp_of(b_t)

    def operand(i: int, v: Array) -> Array:
        z = za if i == 0 else zb
        return v - z if z else v

    def compute(a: Array, b: Array) -> Array:
        return requant(a * b)

    return _binary_eval(node, lo, hi, compute, operand)


@register("SQUARED_DIFFERENCE")
def squared_difference(node: Node) -> Eval:
    if node.outputs[0].dtype == "float32":
        return _float_binary(node, lambda a, b: np.square(a - b))
    a_t, b_t, out, (lo, hi) = _int_binary(node)
    if out.dtype != "int8":  # LiteRT has no int16 SQUARED_DIFFERENCE either
        raise _unsupported(node, out.dtype)
    left_shift = 7
    sa, sb, so = scale_of(a_t), scale_of(b_t), scale_of(out)
    twice_max = 2.0 * float(max(sa, sb))
    ma, sha = quantize_multiplier(sa / twice_max)
    mb, shb = quantize_multiplier(sb / twice_max)
    mo, sho = quantize_multiplier(twice_max * twice_max / float((1 << (2 * left_shift)) * so))
    za, zb, zo = zp_of(a_t), zp_of(b_t), zp_of(out)

    def compute(a: Array, b: Array) -> Array:
        d = mbqm((a - za) << left_shift, ma, sha) - mbqm((b - zb) << left_shift, mb, shb)
        return mbqm(d * d, mo, sho) + zo

    return _binary_eval(node, lo, hi, compute)


# ----------------------------------------------------------------- activations


def _float_unary(fn: Callable[[Array], Array]) -> Eval:
    """A float32 -> float32 function (every ``fn`` here keeps float32 inputs float32)."""

    def run(ins: Sequence[Array | None]) -> list[Array]:
        return [fn(ins[0])]  # type: ignore[arg-type]

    return run


def _lut_unary(node: Node, table_fn: Callable[[Array], Array]) -> Eval:
    """Integer unary op as a table over every possible input value (exact by construction)."""
    src, out = node.input(0), node.outputs[0]
    lo, _hi = INT_RANGES[src.dtype]
    domain = np.arange(lo, _hi + 1, dtype=np.int64)
    return lut_eval(np.asarray(table_fn(domain)).astype(out.dtype), src.dtype)


def _relu_like(node: Node, f_lo: float | None, f_hi: float | None) -> Eval:
    src, out = node.input(0), node.outputs[0]
    if src.dtype == "float32":
        lo_f = np.float32(f_lo if f_lo is not None else -np.inf)
        hi_f = np.float32(f_hi if f_hi is not None else np.inf)
        return _float_unary(lambda x: clamp(x, lo_f, hi_f))
    if not (is_quantized(src) and is_quantized(out)):
        raise _unsupported(node, src.dtype)
    lo, hi = INT_RANGES[out.dtype]
    m, sh = quantize_multiplier(scale_of(src) / scale_of(out))
    zi, zo = zp_of(src), zp_of(out)
    so = np.float32(scale_of(out))
    q_lo = lo if f_lo is None else max(lo, zo + int(round_half_away(np.float32(f_lo) / so)))
    q_hi = hi if f_hi is None else min(hi, zo + int(round_half_away(np.float32(f_hi) / so)))

    def table(v: Array) -> Array:
        return np.clip(mbqm(v - zi, m, sh) + zo, q_lo, q_hi)

    return _lut_unary(node, table)


@register("RELU")
def relu(node: Node) -> Eval:
    return _relu_like(node, 0.0, None)


@register("RELU6")
def relu6(node: Node) -> Eval:
    return _relu_like(node, 0.0, 6.0)


@register("TANH")
def tanh(node: Node) -> Eval:
    if node.input(0).dtype == "float32":
        return _float_unary(np.tanh)
    return tanh_int(node)


@register("LOGISTIC")
def logistic(node: Node) -> Eval:
    if node.input(0).dtype == "float32":
        one, top = np.float32(1.0), np.float32(88.0)  # exp(88) < float32 max

        def sigmoid(x: Array) -> Array:
            t = np.negative(x)
            np.minimum(t, top, out=t)
            np.exp(t, out=t)
            t += one
            out: Array = np.divide(one, t, out=t)
            return out

        return _float_unary(sigmoid)
    return logistic_int(node)


@register("GELU")
def gelu(node: Node) -> Eval:
    approximate = bool(node.opt("approximate", False))
    if node.input(0).dtype == "float32":
        return _float_unary(lambda x: gelu_float(x, approximate))
    return gelu_int(node, approximate)


def _float_only(node: Node, fn: Callable[[Array], Array]) -> Eval:
    """A float32 op whose quantized form LiteRT computes differently (not here yet)."""
    if node.input(0).dtype != "float32" or is_quantized(node.outputs[0]):
        raise _unsupported(node, node.input(0).dtype)
    return _float_unary(fn)


def _sqrt(x: Array) -> Array:
    with np.errstate(invalid="ignore"):  # sqrt of a negative is NaN, as in LiteRT
        return np.sqrt(x)


# The converter leaves these in float between DEQUANTIZE/QUANTIZE pairs where a model's
# int8 form has no kernel (Keras' layer norm: NEG; an L2-norm pooling: SQUARE, SQRT):
# float32 negation, x * x and the square root are exact (IEEE-rounded) in both.
@register("NEG")
def neg(node: Node) -> Eval:
    return _float_only(node, np.negative)


@register("SQUARE")
def square(node: Node) -> Eval:
    return _float_only(node, np.square)


@register("SQRT")
def sqrt(node: Node) -> Eval:
    src, out = node.input(0), node.outputs[0]
    if src.dtype == "int8" and out.dtype == "int8" and is_quantized(src) and is_quantized(out):
        return _lut_unary(node, _sqrt_table(src, out))
    return _float_only(node, _sqrt)


def _sqrt_table(src: Tensor, out: Tensor) -> Callable[[Array], Array]:
    """LiteRT's int8 SQRT over every input value: dequantize, square root and divide by
    the output scale in float32, truncated (not rounded) towards zero, plus the zero
    point. LiteRT refuses a negative input at runtime; here it maps to the lowest code."""
    s_in, s_out = np.float32(scale_of(src)), np.float32(scale_of(out))
    z_in, z_out = zp_of(src), zp_of(out)
    lo, hi = INT_RANGES[out.dtype]

    def table(v: Array) -> Array:
        x = (s_in * (v - z_in).astype(np.float32)).astype(np.float32)
        q = np.trunc((_sqrt(x) / s_out).astype(np.float32))
        q = np.where(np.isfinite(q), q + z_out, lo)
        return np.clip(q, lo, hi).astype(np.int64)

    return table


@register("RSQRT")
def rsqrt(node: Node) -> Eval:
    if node.input(0).dtype == "float32":
        one = np.float32(1.0)
        return _float_unary(lambda x: one / np.sqrt(x))
    return rsqrt_int(node)
