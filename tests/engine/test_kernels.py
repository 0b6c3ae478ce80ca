"""Kernel unit tests on hand-computed cases: fixed-point helpers and small graphs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from custom_components.nilm.engine.errors import ModelFormatError, UnsupportedOpError
from custom_components.nilm.engine.graph import Operator, Quantization, Tensor
from custom_components.nilm.engine.kernels import REGISTRY, Node
from custom_components.nilm.engine.kernels.conv import asymmetric_quantize
from custom_components.nilm.engine.kernels.fixedpoint import (
    INT32_MAX,
    INT32_MIN,
    QuantizedMultiplier,
    QuantizedMultiplier64,
    mbqm,
    mbqm_int64,
    quantize_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    srdhm,
)
from custom_components.nilm.engine.kernels.nonlinear import (
    SIGMOID_TABLE_U16,
    inv_sqrt_multiplier,
)


def q(scale: float, zp: int = 0) -> Quantization:
    return Quantization(np.array([scale], np.float32), np.array([zp], np.int64))


def t(
    index: int,
    shape: tuple[int, ...],
    dtype: str = "float32",
    quant: Quantization | None = None,
    data: npt.NDArray[Any] | None = None,
) -> Tensor:
    return Tensor(index, f"t{index}", shape, dtype, quant, data)


def prepare(opcode: str, inputs: list[Tensor | None], outputs: list[Tensor], **options: Any):  # type: ignore[no-untyped-def]
    op = Operator(
        opcode,
        1,
        tuple(-1 if x is None else x.index for x in inputs),
        tuple(x.index for x in outputs),
        options,
    )
    return REGISTRY[opcode](Node(op, tuple(inputs), tuple(outputs)))


# --------------------------------------------------------------- fixed point


def test_quantize_multiplier_edge_cases() -> None:
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    # frac rounds up to exactly 2**31: TFLite halves it and bumps the exponent.
    assert quantize_multiplier(1.0 - 2.0**-40) == (1 << 30, 1)
    # Far below 2**-31: flushed to zero rather than a negative shift < -31.
    assert quantize_multiplier(2.0**-40) == (0, 0)


def test_saturating_rounding_doubling_high_mul() -> None:
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX  # the single overflow case
    assert srdhm(1, 1 << 30) == 1  # +0.5 rounds up
    assert srdhm(-1, 1 << 30) == 0  # -0.5 rounds toward +inf (nudge 1 - 2**30)
    assert srdhm(3, 1 << 30) == 2  # 1.5 -> 2
    assert srdhm(1 << 20, 1 << 30) == 1 << 19


@pytest.mark.parametrize(
    ("x", "exponent", "expected"),
    [(5, 1, 3), (-5, 1, -3), (3, 1, 2), (-3, 1, -2), (4, 2, 1), (-6, 2, -2), (7, 0, 7)],
)
def test_rounding_divide_by_pot_rounds_half_away_from_zero(
    x: int, exponent: int, expected: int
) -> None:
    assert rounding_divide_by_pot(x, exponent) == expected


def test_multiply_by_quantized_multiplier_double_rounding() -> None:
    half = 1 << 30  # 0.5 in Q31
    assert mbqm(7, half, 0) == 4  # 3.5 -> 4
    assert mbqm(-7, half, 0) == -3  # -3.5 -> -3 (SRDHM's nudge)
    # 5 * 0.5 / 2 = 1.25 but TFLite rounds twice (2.5 -> 3, then 1.5 -> 2).
    assert mbqm(5, half, -1) == 2
    assert mbqm(3, half, 2) == 6  # positive shift: left shift first, exact
    np.testing.assert_array_equal(mbqm(np.array([10, -10]), half, -1), [3, -3])  # +-2.5


def test_multiply_by_quantized_multiplier_int64_uses_16_bit_multiplier() -> None:
    # 2**33 * 0.5 / 8 = 2**29, exactly representable.
    assert mbqm_int64(1 << 33, 1 << 30, -3) == 1 << 29
    # The 31-bit multiplier is reduced to 16 bits: 0x7FFF0000 and above saturate.
    assert mbqm_int64(1 << 16, INT32_MAX, 0) == (1 << 16) * 0x7FFF >> 15


def _gemmlowp_mbqm(x: int, m: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier exactly as common.h writes it, on Python ints."""
    left, right = max(shift, 0), max(-shift, 0)
    v = ((x * (1 << left) + (1 << 31)) % (1 << 32)) - (1 << 31)  # int32 wrap
    ab = v * m
    nudged = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    high = nudged >> 31 if nudged >= 0 else -((-nudged) >> 31)  # C truncates toward zero
    if v == m == INT32_MIN:
        high = INT32_MAX
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def test_folded_multiplier_matches_gemmlowp_on_random_and_edge_values() -> None:
    rng = np.random.default_rng(5)
    edges = [0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 30, -(1 << 30)]
    for trial in range(60):
        x = np.array(edges + list(rng.integers(INT32_MIN, INT32_MAX, 40, endpoint=True)))
        m = int(rng.integers(1 << 30, 1 << 31)) if trial % 5 else int(rng.integers(0, 1 << 31))
        shift = int(rng.integers(-31, 6)) if trial % 7 else 0
        offset = int(rng.integers(-128, 128)) if trial % 2 else 0
        want = [_gemmlowp_mbqm(int(v), m, shift) + offset for v in x]
        assert QuantizedMultiplier(m, shift, offset)(x).tolist() == want
        assert mbqm(x, m, shift).tolist() == [w - offset for w in want]
    # Per channel, with channels that do not shift at all beside ones that do.
    ms = rng.integers(1 << 30, 1 << 31, 6)
    shifts = np.array([0, -1, -7, 2, 0, -20])
    x = rng.integers(-(1 << 24), 1 << 24, (50, 6))
    got = QuantizedMultiplier(ms, shifts, offset=-3)(x)
    want_pc = [[_gemmlowp_mbqm(int(v), int(ms[c]), int(shifts[c])) - 3 for c, v in enumerate(row)]
               for row in x]  # fmt: skip
    assert got.tolist() == want_pc


def test_folded_int64_multiplier_equals_the_general_one() -> None:
    x = np.random.default_rng(6).integers(-(1 << 40), 1 << 40, 1000)
    for m, shift in [(1 << 30, -3), (INT32_MAX, 0), (1518500250, -12), (0x7FFF0000, 1)]:
        assert np.array_equal(QuantizedMultiplier64(m, shift)(x), mbqm_int64(x, m, shift))


def test_round_half_away_differs_from_numpy_round() -> None:
    np.testing.assert_array_equal(round_half_away([0.5, -0.5, 2.5, -2.5]), [1, -1, 3, -3])
    below_half = np.nextafter(np.float32(0.5), np.float32(0))
    assert round_half_away(below_half) == 0


def test_asymmetric_quantize_hand_case() -> None:
    qv, scale, offset = asymmetric_quantize(np.array([[0.0, 1.0, 2.0]], np.float32))
    assert scale[0] == np.float32(2.0 / 255.0)
    assert offset[0] == -128
    np.testing.assert_array_equal(qv[0], [-128, -1, 127])  # -0.5 rounds away from zero
    zero_q, zero_scale, zero_offset = asymmetric_quantize(np.zeros((1, 4), np.float32))
    assert zero_scale[0] == 1.0 and zero_offset[0] == 0 and not zero_q.any()


def test_sigmoid_table_is_the_tflite_table() -> None:
    assert SIGMOID_TABLE_U16.shape == (256,)
    assert SIGMOID_TABLE_U16[0] == 32768 and SIGMOID_TABLE_U16[-1] == 65535
    assert np.all(np.diff(SIGMOID_TABLE_U16) >= 0)
    ideal = 65536.0 / (1.0 + np.exp(-np.arange(256) / 24.0))
    # Not a plain rounding of the ideal curve (entry 35 is 1.1 off, the last saturates).
    assert np.max(np.abs(SIGMOID_TABLE_U16 - ideal)) < 1.2


def test_inverse_sqrt_multiplier_accuracy() -> None:
    values = np.array([2, 3, 10, 255, 4096, 123457, 1 << 20, (1 << 29) + 7, INT32_MAX])
    m, shift = inv_sqrt_multiplier(values)
    approx = m.astype(np.float64) * np.exp2(shift.astype(np.float64) - 31)
    # Five Newton-Raphson steps in Q3.28: about 21 correct bits.
    np.testing.assert_allclose(approx, 1 / np.sqrt(values.astype(np.float64)), rtol=2e-6)
    m1, s1 = inv_sqrt_multiplier(np.array([0, 1]))
    assert list(m1) == [INT32_MAX, INT32_MAX] and list(s1) == [0, 0]


# --------------------------------------------------------------- small graphs


def _naive_conv_int8(  # noqa: PLR0917
    x: npt.NDArray[np.int8],
    w: npt.NDArray[np.int8],
    bias: npt.NDArray[np.int32],
    stride: int,
    zin: int,
    mult: npt.NDArray[np.int64],
    shift: npt.NDArray[np.int64],
    zout: int,
) -> npt.NDArray[np.int8]:
    """reference_integer_ops::ConvPerChannel written as loops (SAME padding, 1 x K)."""
    n, _h, width, cin = x.shape
    cout, _kh, k, _ = w.shape
    ow = math.ceil(width / stride)
    pad = max((ow - 1) * stride + k - width, 0) // 2
    out = np.zeros((n, 1, ow, cout), np.int8)
    for b in range(n):
        for ox in range(ow):
            for oc in range(cout):
                acc = 0
                for kx in range(k):
                    ix = ox * stride - pad + kx
                    if 0 <= ix < width:
                        for ic in range(cin):
                            acc += (int(x[b, 0, ix, ic]) - zin) * int(w[oc, 0, kx, ic])
                acc += int(bias[oc])
                v = int(mbqm(acc, mult[oc], shift[oc])) + zout
                out[b, 0, ox, oc] = min(127, max(-128, v))
    return out


def test_conv_2d_int8_matches_loop_reference() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (3, 1, 11, 2)).astype(np.int8)
    w = rng.integers(-127, 128, (4, 1, 3, 2)).astype(np.int8)
    bias = rng.integers(-500, 500, 4).astype(np.int32)
    w_scales = np.array([0.01, 0.02, 0.015, 0.03], np.float32)
    w_q = Quantization(w_scales, np.zeros(4, np.int64), 0)
    run = prepare(
        "CONV_2D",
        [
            t(0, (1, 1, 11, 2), "int8", q(0.05, 3)),
            t(1, w.shape, "int8", w_q, w),
            t(2, (4,), "int32", None, bias),
        ],
        [t(3, (1, 1, 6, 4), "int8", q(0.2, -5))],
        padding="SAME",
        stride_w=2,
        stride_h=1,
        fused_activation_function="NONE",
    )
    got = run([x, w, bias])[0]
    real = np.float64(np.float32(0.05)) * w_scales.astype(np.float64) / np.float64(np.float32(0.2))
    pairs = [quantize_multiplier(float(r)) for r in real]
    mult = np.array([p[0] for p in pairs])
    shift = np.array([p[1] for p in pairs])
    np.testing.assert_array_equal(got, _naive_conv_int8(x, w, bias, 2, 3, mult, shift, -5))


def test_average_pool_int8_rounds_half_away_and_ignores_padding() -> None:
    run = prepare(
        "AVERAGE_POOL_2D",
        [t(0, (1, 1, 3, 1), "int8", q(0.1, 0))],
        [t(1, (1, 1, 2, 1), "int8", q(0.1, 0))],
        padding="SAME",
        stride_w=2,
        stride_h=1,
        filter_width=2,
        filter_height=1,
        fused_activation_function="NONE",
    )
    x = np.array([[[[1], [2], [-5]]], [[[-1], [-2], [7]]]], np.int8)
    got = run([x])[0]
    # windows: (1, 2) -> 1.5 -> 2 and (-5) alone -> -5; (-1, -2) -> -1.5 -> -2 and 7.
    np.testing.assert_array_equal(got.ravel(), [2, -5, -2, 7])


def test_add_int8_rescales_both_inputs() -> None:
    run = prepare(
        "ADD",
        [t(0, (1, 4), "int8", q(0.1, 0)), t(1, (1, 4), "int8", q(0.05, 10))],
        [t(2, (1, 4), "int8", q(0.2, -3))],
        fused_activation_function="RELU",
    )
    a = np.array([[10, -20, 127, 0]], np.int8)
    b = np.array([[30, 10, 127, -128]], np.int8)
    got = run([a, b])[0]
    real = (a * 0.1 + (b.astype(int) - 10) * 0.05) / 0.2 - 3
    expected = np.clip(np.round(real), -3, 127)  # RELU clamps at the zero point
    np.testing.assert_array_equal(got, expected)


def test_reshape_keeps_runtime_batch_for_constant_batch_one_shape() -> None:
    shape = np.array([1, -1], np.int32)
    run = prepare("RESHAPE", [t(0, (1, 4, 5)), t(1, (2,), "int32", None, shape)], [t(2, (1, 20))])
    x = np.arange(3 * 20, dtype=np.float32).reshape(3, 4, 5)
    assert run([x, shape])[0].shape == (3, 20)


def test_strided_slice_shrink_and_batch_semantics() -> None:
    begin, end, strides = (np.array(v, np.int32) for v in ([0, 1], [1, 13], [1, 2]))
    run = prepare(
        "STRIDED_SLICE",
        [t(0, (1, 20)), t(1, (2,), "int32", None, begin), t(2, (2,), "int32", None, end),
         t(3, (2,), "int32", None, strides)],
        [t(4, (1, 6))],
        begin_mask=0, end_mask=0, shrink_axis_mask=0, ellipsis_mask=0, new_axis_mask=0,
    )  # fmt: skip
    x = np.arange(40, dtype=np.float32).reshape(2, 20)
    # The file's [0:1] on the batch axis stands for the whole runtime batch.
    np.testing.assert_array_equal(run([x, begin, end, strides])[0], x[:, 1:13:2])


def test_gather_rejects_out_of_range_constant_indices_at_load() -> None:
    idx = np.array([0, 4], np.int32)
    with pytest.raises(ModelFormatError, match="GATHER"):
        prepare("GATHER", [t(0, (1, 4)), t(1, (2,), "int32", None, idx)], [t(2, (1, 2))],
                axis=1, batch_dims=0)  # fmt: skip


def test_unsupported_variants_are_named() -> None:
    with pytest.raises(UnsupportedOpError, match=r"SQUARED_DIFFERENCE\(int16\)"):
        prepare(
            "SQUARED_DIFFERENCE",
            [t(0, (1, 4), "int16", q(0.1)), t(1, (1, 4), "int16", q(0.1))],
            [t(2, (1, 4), "int16", q(0.1))],
        )


def test_inverse_sqrt_scalar_and_vector_paths_agree() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [np.arange(0, 300), rng.integers(2, INT32_MAX, 200), 1 << np.arange(1, 31)]
    )
    vec_m, vec_s = inv_sqrt_multiplier(values)  # > 32 values: the numpy path
    for v, m, s in zip(values, vec_m, vec_s, strict=True):
        one_m, one_s = inv_sqrt_multiplier(np.array([v]))  # few values: Python ints
        assert (int(one_m[0]), int(one_s[0])) == (int(m), int(s)), v


def test_unsupported_fused_activation_is_an_unsupported_op() -> None:
    with pytest.raises(UnsupportedOpError, match=r"ADD\(fused TANH\)"):
        prepare("ADD", [t(0, (1, 4)), t(1, (1, 4))], [t(2, (1, 4))],
                fused_activation_function="TANH")  # fmt: skip


# --------------------------------------------------- fast paths equal the general ones

# Symmetric int16 (zero point 0, as TFLite requires) and asymmetric int8.
_QPARAMS = {
    "int8": (q(0.02, 7), q(0.03, -11), q(0.05, 3)),
    "int16": (q(0.0004), q(0.0007), q(0.001)),
}


def _ints(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("opcode", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_binary_op_is_the_same_with_constant_or_runtime_operands(opcode: str, dtype: str) -> None:
    """Tables and pre-rescaled constants are shortcuts: the arithmetic must not change.

    Reference: both operands fed at runtime. Then the second, the first, and a one-value
    constant (a scalar broadcast, tabulated over the other input) in turn.
    """
    rng = np.random.default_rng(11)
    qa, qb, qo = _QPARAMS[dtype]
    a, b, s = _ints(rng, dtype, (6, 5)), _ints(rng, dtype, (5,)), _ints(rng, dtype, ())

    def run(
        a_const: npt.NDArray[Any] | None,
        b_const: npt.NDArray[Any] | None,
        a_val: npt.NDArray[Any],
        b_val: npt.NDArray[Any],
    ) -> npt.NDArray[Any]:
        fn = prepare(
            opcode,
            [
                t(0, (1, *a_val.shape[1:]) if a_val.ndim == 2 else a_val.shape, dtype, qa, a_const),
                t(1, (1, *b_val.shape[1:]) if b_val.ndim == 2 else b_val.shape, dtype, qb, b_const),
            ],
            [t(2, (1, 5), dtype, qo)],
            fused_activation_function="RELU",
        )
        out: npt.NDArray[Any] = fn([a_val, b_val])[0]
        return out  # fmt: skip

    np.testing.assert_array_equal(run(None, b, a, b), run(None, None, a, b))
    np.testing.assert_array_equal(run(b, None, b, a), run(None, None, b, a))
    np.testing.assert_array_equal(run(None, s, a, s), run(None, None, a, s))
    np.testing.assert_array_equal(run(s, None, s, a), run(None, None, s, a))


def test_shape_kernels_are_the_same_with_constant_or_runtime_operands() -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    begin, end, strides = (
        np.array(v, np.int32) for v in ([0, 1, 0, 5], [1, 4, 5, 0], [1, 2, 1, -2])
    )
    perm = np.array([0, 3, 1, 2], np.int32)
    idx = np.array([4, 0, 2, 2], np.int32)

    def both(opcode: str, operands: list[npt.NDArray[Any]], **options: Any) -> list[Any]:
        outs = []
        for constant in (True, False):
            ins = [t(0, (1, 4, 5, 6))] + [
                t(k + 1, v.shape, "int32", None, v if constant else None)
                for k, v in enumerate(operands)
            ]
            fn = prepare(opcode, ins, [t(len(ins), (1,))], **options)
            outs.append(fn([x, *operands])[0])
        return outs

    masks = {"begin_mask": 0b0100, "end_mask": 0, "shrink_axis_mask": 0, "ellipsis_mask": 0,
             "new_axis_mask": 0}  # fmt: skip
    const_out, runtime_out = both("STRIDED_SLICE", [begin, end, strides], **masks)
    np.testing.assert_array_equal(const_out, runtime_out)
    np.testing.assert_array_equal(const_out, x[:, 1:4:2, :5, 5:0:-2])
    const_out, runtime_out = both("TRANSPOSE", [perm])
    np.testing.assert_array_equal(const_out, np.transpose(x, perm))
    np.testing.assert_array_equal(runtime_out, np.transpose(x, perm))
    const_out, runtime_out = both("GATHER", [idx], axis=3, batch_dims=0)
    np.testing.assert_array_equal(const_out, x[..., idx])
    np.testing.assert_array_equal(runtime_out, x[..., idx])


def test_concatenation_requantizes_inputs_with_other_scales() -> None:
    """Float rescaling, rounded half away from zero (LiteRT's Requantize), via a table."""
    a = np.array([[-128, -3, 0, 5, 127]], np.int8)
    b = np.array([[-128, -1, 0, 1, 127]], np.int8)
    run = prepare(
        "CONCATENATION",
        [t(0, (1, 5), "int8", q(0.1, 2)), t(1, (1, 5), "int8", q(0.25, 0))],
        [t(2, (1, 10), "int8", q(0.25, 0))],
        axis=-1, fused_activation_function="NONE",
    )  # fmt: skip
    got = run([a, b])[0]
    scale = np.float32(np.float32(0.1) * (np.float32(1.0) / np.float32(0.25)))
    bias = np.float32(np.float32(-2) * scale)
    want_a = np.clip(round_half_away(a.astype(np.float32) * scale + bias), -128, 127)
    np.testing.assert_array_equal(got, np.concatenate([want_a, b], axis=1))


def test_unary_tables_index_every_value_of_int8_and_int16() -> None:
    """RELU through the unsigned-view table equals the direct requantization."""
    for dtype, qi, qo in (("int8", q(0.05, -20), q(0.03, -128)), ("int16", q(0.001), q(0.0005))):
        info = np.iinfo(dtype)
        x = np.arange(info.min, info.max + 1).astype(dtype).reshape(1, -1)
        run = prepare("RELU", [t(0, x.shape, dtype, qi)], [t(1, x.shape, dtype, qo)])
        m, shift = quantize_multiplier(float(qi.scale[0]) / float(qo.scale[0]))
        zo, zi = int(qo.zero_point[0]), int(qi.zero_point[0])
        want = np.clip(mbqm(x.astype(np.int64) - zi, m, shift) + zo, max(zo, info.min), info.max)
        np.testing.assert_array_equal(run([x])[0], want)
