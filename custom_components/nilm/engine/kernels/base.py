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
    rng = activation_range_float(act)
    if rng is None:
        return x
    return np.clip(x, np.float32(rng[0]), np.float32(rng[1])).astype(np.float32, copy=False)


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
