"""The in-memory form of a validated .tflite model.

This is the contract between :mod:`.reader` (which builds it from untrusted bytes and
validates everything) and :mod:`.interpreter` (which trusts it). Nothing here refers to
flatbuffers, so kernels can be tested on hand-built graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Quantization:
    """Affine quantization parameters: ``real = scale * (q - zero_point)``.

    ``scale`` and ``zero_point`` have one entry per tensor (per-tensor) or one per
    channel along ``quantized_dimension`` (per-channel, used for conv/FC weights).
    """

    scale: npt.NDArray[np.float32]
    zero_point: npt.NDArray[np.int64]
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass(frozen=True, slots=True)
class Tensor:
    """One tensor of the subgraph.

    ``shape`` is the static shape (batch dimension included, normally 1). ``data`` is set
    for constant tensors (weights, biases, shape operands) and ``None`` for activations.
    ``dtype`` is a numpy dtype name: float32, int8, int16, int32, int64, uint8, bool.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization | None = None
    data: npt.NDArray[Any] | None = None
    shape_signature: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Operator:
    """One node of the subgraph.

    ``opcode`` is the TFLite builtin operator name in upper case (``"CONV_2D"``),
    ``version`` its operator version. ``options`` holds the builtin options with the
    schema's field names in snake_case (``stride_w``, ``fused_activation_function``,
    ``keep_num_dims`` ...); enum values are their schema names as strings
    (``"SAME"``, ``"RELU6"``, ``"NONE"``). Optional inputs absent in the file are -1.
    """

    opcode: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Graph:
    """A single-subgraph model, validated and ready to interpret."""

    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""

    def opcodes(self) -> list[str]:
        """Distinct operator names, in first-use order."""
        seen: dict[str, None] = {}
        for op in self.operators:
            seen.setdefault(op.opcode, None)
        return list(seen)
