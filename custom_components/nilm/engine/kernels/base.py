"""What every kernel shares: the node a kernel is prepared for, the registry, helpers.

A kernel is a *prepare* function, like TFLite's ``Prepare``/``Eval`` pair: it runs once at
load time (computing multipliers, lookup tables, reshaped weights) and returns the eval
closure the interpreter calls on every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ModelFormatError, UnsupportedOpError
from ..graph import Operator, Quantization, Tensor
from .fixedpoint import round_half_away

Array = npt.NDArray[Any]
Eval = Callable[[Sequence[Array | None]], list[Array]]


@dataclass(frozen=True, slots=True)
class Node:
    """One operator with its tensors resolved (``None`` for absent optional inputs)."""

    op: Operator
    inputs: tuple[Tensor | None, ...]
    outputs: tuple[Tensor, ...]

    def input(self, i: int) -> Tensor:
        t = self.inputs[i] if i < len(self.inputs) else None
        if t is None:
            raise ModelFormatError(f"{self.op.opcode}: missing input {i}")
        return t

    def opt(self, name: str, default: Any = None) -> Any:
        return self.op.options.get(name, default)


Prepare = Callable[[Node], Eval]
REGISTRY: dict[str, Prepare] = {}


def register(*names: str) -> Callable[[Prepare], Prepare]:
    """Register a prepare function under one or more TFLite opcode names."""

    def deco(fn: Prepare) -> Prepare:
        for name in names:
            REGISTRY[name] = fn
        return fn

    return deco


INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "int32": (-(1 << 31), (1 << 31) - 1),
}


# Unsigned views that turn a raw integer into a table index without arithmetic.
_INDEX_VIEWS: dict[str, tuple[type[np.unsignedinteger[Any]], int]] = {
    "int8": (np.uint8, 128),
    "uint8": (np.uint8, 0),
    "int16": (np.uint16, 32768),
}


def table_index(dtype: str) -> tuple[type[np.unsignedinteger[Any]], int] | None:
    """(unsigned view, roll) that index a table over every value of ``dtype``, if small."""
    return _INDEX_VIEWS.get(dtype)


def lookup(table: Array, dtype: str, axis: int = 0) -> Array:
    """Reorder a table indexed by ``value - min(dtype)`` to be indexed by the unsigned view.

    ``x.view(np.uint8)`` of an int8 ``x`` is ``x mod 256``: rolling the table by 128
    makes ``table[x.view(np.uint8)]`` a single numpy pass per batch, whatever its size.
    """
    view = _INDEX_VIEWS[dtype]
    return np.ascontiguousarray(np.roll(table, -view[1], axis=axis))


def lut_eval(table: Array, dtype: str) -> Eval:
    """Unary kernel from a table over every value of the integer input ``dtype``."""
    view, _ = _INDEX_VIEWS[dtype]
    rolled = lookup(table, dtype)

    def run(ins: Sequence[Array | None]) -> list[Array]:
        x = ins[0]
        assert x is not None
        return [rolled[x.view(view)]]

    return run


def is_quantized(t: Tensor) -> bool:
    return t.dtype in ("int8", "int16", "uint8") and t.quantization is not None


def qparams(t: Tensor) -> Quantization:
    if t.quantization is None:
        raise ModelFormatError(f"tensor {t.name!r} ({t.dtype}) has no quantization")
    return t.quantization


def scale_of(t: Tensor) -> float:
    """Per-tensor scale as the float32 value TFLite stores in ``params.scale``."""
    return float(np.float32(qparams(t).scale.ravel()[0]))


def zp_of(t: Tensor) -> int:
    return int(qparams(t).zero_point.ravel()[0])


def const(t: Tensor) -> Array:
    if t.data is None:
        raise ModelFormatError(f"tensor {t.name!r} must be constant")
    return t.data


def activation_range_float(act: str) -> tuple[float, float] | None:
    return {
        "NONE": None,
        "RELU": (0.0, float("inf")),
        "RELU6": (0.0, 6.0),
        "RELU_N1_TO_1": (-1.0, 1.0),
    }.get(act)


def check_activation(node: Node) -> str:
    act = str(node.opt("fused_activation_function", "NONE"))
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise UnsupportedOpError([f"{node.op.opcode}(fused {act})"])
    return act


def apply_float_activation(x: Array, act: str) -> Array:
    if act == "NONE":
        return x
    rng = activation_range_float(act)
    if rng is None:
        return x
    lo, hi = np.float32(rng[0]), np.float32(rng[1])
    y = np.maximum(x, lo) if hi == np.inf else np.minimum(np.maximum(x, lo), hi)
    return y.astype(np.float32, copy=False)


def activation_range_quantized(act: str, out: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the fused activation clamp in output units."""
    lo, hi = INT_RANGES[out.dtype]
    scale = np.float32(scale_of(out))
    zp = zp_of(out)

    def q(f: float) -> int:
        return zp + int(round_half_away(np.float32(f) / scale))

    if act == "RELU":
        return max(lo, q(0.0)), hi
    if act == "RELU6":
        return max(lo, q(0.0)), min(hi, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(lo, q(-1.0)), min(hi, q(1.0))
    return lo, hi
