"""Hand-built .tflite flatbuffers for reader tests.

The TensorFlow converter never writes the odd cases a reader must handle (two subgraphs,
an unknown opcode, the large-model buffer layout, a lying shape), so tests describe a
model here field by field and get exact bytes back.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
import tflite


def _module(name: str) -> Any:
    # ``tflite/__init__`` star-imports each class over its module name; get the module.
    return importlib.import_module(f"tflite.{name}")


Buffer = _module("Buffer")
Conv2DOptions = _module("Conv2DOptions")
FullyConnectedOptions = _module("FullyConnectedOptions")
Model = _module("Model")
Operator = _module("Operator")
OperatorCode = _module("OperatorCode")
QuantizationParameters = _module("QuantizationParameters")
ReshapeOptions = _module("ReshapeOptions")
SubGraph = _module("SubGraph")
Tensor = _module("Tensor")

OptionsWriter = Callable[[flatbuffers.Builder], tuple[int, int]]


@dataclass
class TensorSpec:
    shape: Sequence[int]
    type: int = tflite.TensorType.FLOAT32
    buffer: int = 0
    name: str = "t"
    scale: Sequence[float] | None = None
    zero_point: Sequence[int] | None = None
    quantized_dimension: int = 0
    signature: Sequence[int] | None = None


@dataclass
class OpSpec:
    opcode_index: int
    inputs: Sequence[int]
    outputs: Sequence[int]
    options: OptionsWriter | None = None


@dataclass
class CodeSpec:
    builtin: int
    version: int = 1
    custom: str | None = None
    deprecated: int | None = None


@dataclass
class External:
    """Buffer data stored after the flatbuffer (large-model format); optional lies."""

    data: bytes
    offset_shift: int = 0
    size_override: int | None = None


@dataclass
class ModelSpec:
    tensors: list[TensorSpec]
    operators: list[OpSpec]
    codes: list[CodeSpec]
    buffers: list[bytes | External] = field(default_factory=lambda: [b""])
    inputs: Sequence[int] = (0,)
    outputs: Sequence[int] = (1,)
    subgraphs: int = 1
    description: str = "test model"


def _int_vector(b: flatbuffers.Builder, values: Sequence[int], *, kind: str = "int32") -> int:
    b.StartVector(4 if kind != "int64" else 8, len(values), 4 if kind != "int64" else 8)
    for v in reversed(values):
        if kind == "int64":
            b.PrependInt64(int(v))
        else:
            b.PrependInt32(int(v))
    return b.EndVector()


def _float_vector(b: flatbuffers.Builder, values: Sequence[float]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _quantization(b: flatbuffers.Builder, t: TensorSpec) -> int | None:
    if t.scale is None:
        return None
    scale = _float_vector(b, t.scale)
    zero = _int_vector(b, t.zero_point or [0] * len(t.scale), kind="int64")
    QuantizationParameters.Start(b)
    QuantizationParameters.AddScale(b, scale)
    QuantizationParameters.AddZeroPoint(b, zero)
    QuantizationParameters.AddQuantizedDimension(b, t.quantized_dimension)
    return QuantizationParameters.End(b)


def _tensor(b: flatbuffers.Builder, t: TensorSpec) -> int:
    name = b.CreateString(t.name)
    shape = _int_vector(b, t.shape)
    signature = _int_vector(b, t.signature) if t.signature is not None else None
    quant = _quantization(b, t)
    Tensor.Start(b)
    Tensor.AddShape(b, shape)
    Tensor.AddType(b, t.type)
    Tensor.AddBuffer(b, t.buffer)
    Tensor.AddName(b, name)
    if quant is not None:
        Tensor.AddQuantization(b, quant)
    if signature is not None:
        Tensor.AddShapeSignature(b, signature)
    return Tensor.End(b)


def _operator(b: flatbuffers.Builder, op: OpSpec) -> int:
    inputs = _int_vector(b, op.inputs)
    outputs = _int_vector(b, op.outputs)
    options = op.options(b) if op.options else None
    Operator.Start(b)
    Operator.AddOpcodeIndex(b, op.opcode_index)
    Operator.AddInputs(b, inputs)
    Operator.AddOutputs(b, outputs)
    if options is not None:
        Operator.AddBuiltinOptionsType(b, options[0])
        Operator.AddBuiltinOptions(b, options[1])
    return Operator.End(b)


def _table_vector(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _subgraph(b: flatbuffers.Builder, spec: ModelSpec) -> int:
    tensors = _table_vector(b, [_tensor(b, t) for t in spec.tensors])
    operators = _table_vector(b, [_operator(b, op) for op in spec.operators])
    inputs = _int_vector(b, spec.inputs)
    outputs = _int_vector(b, spec.outputs)
    SubGraph.Start(b)
    SubGraph.AddTensors(b, tensors)
    SubGraph.AddOperators(b, operators)
    SubGraph.AddInputs(b, inputs)
    SubGraph.AddOutputs(b, outputs)
    return SubGraph.End(b)


def _code(b: flatbuffers.Builder, code: CodeSpec) -> int:
    custom = b.CreateString(code.custom) if code.custom is not None else None
    OperatorCode.Start(b)
    deprecated = code.deprecated if code.deprecated is not None else min(code.builtin, 127)
    OperatorCode.AddDeprecatedBuiltinCode(b, deprecated)
    OperatorCode.AddBuiltinCode(b, code.builtin)
    OperatorCode.AddVersion(b, code.version)
    if custom is not None:
        OperatorCode.AddCustomCode(b, custom)
    return OperatorCode.End(b)


def _buffer(b: flatbuffers.Builder, buf: bytes | External, external_at: int) -> int:
    if isinstance(buf, External):
        Buffer.Start(b)
        Buffer.AddOffset(b, external_at + buf.offset_shift)
        Buffer.AddSize(b, len(buf.data) if buf.size_override is None else buf.size_override)
        return Buffer.End(b)
    data = b.CreateNumpyVector(np.frombuffer(buf, dtype=np.uint8)) if buf else None
    Buffer.Start(b)
    if data is not None:
        Buffer.AddData(b, data)
    return Buffer.End(b)


def _flatbuffer(spec: ModelSpec, external_offsets: list[int]) -> bytes:
    b = flatbuffers.Builder(1024)
    subgraphs = _table_vector(b, [_subgraph(b, spec) for _ in range(spec.subgraphs)])
    codes = _table_vector(b, [_code(b, c) for c in spec.codes])
    at = iter(external_offsets)
    buffers = _table_vector(
        b, [_buffer(b, x, next(at) if isinstance(x, External) else 0) for x in spec.buffers]
    )
    description = b.CreateString(spec.description)
    Model.Start(b)
    Model.AddVersion(b, 3)
    Model.AddOperatorCodes(b, codes)
    Model.AddSubgraphs(b, subgraphs)
    Model.AddDescription(b, description)
    Model.AddBuffers(b, buffers)
    b.Finish(Model.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def build(spec: ModelSpec) -> bytes:
    """Serialize ``spec``; External buffers are appended 16-byte aligned after the flatbuffer."""
    externals = [x for x in spec.buffers if isinstance(x, External)]
    placeholder = [1 << 40] * len(externals)  # non-default, so the field is written
    head = _flatbuffer(spec, placeholder)
    offsets, end = [], len(head)
    for ext in externals:
        end = (end + 15) // 16 * 16
        offsets.append(end)
        end += len(ext.data)
    data = bytearray(_flatbuffer(spec, offsets))
    assert len(data) == len(head)
    for ext, off in zip(externals, offsets, strict=True):
        data.extend(b"\0" * (off - len(data)))
        data.extend(ext.data)
    return bytes(data)


# --- options writers -------------------------------------------------------------------


def fully_connected_options(activation: int = 0, keep_num_dims: bool = False) -> OptionsWriter:
    def write(b: flatbuffers.Builder) -> tuple[int, int]:
        FullyConnectedOptions.Start(b)
        FullyConnectedOptions.AddFusedActivationFunction(b, activation)
        FullyConnectedOptions.AddKeepNumDims(b, keep_num_dims)
        return tflite.BuiltinOptions.FullyConnectedOptions, FullyConnectedOptions.End(b)

    return write


def conv_options(stride: int = 1, padding: int = 0, activation: int = 0) -> OptionsWriter:
    def write(b: flatbuffers.Builder) -> tuple[int, int]:
        Conv2DOptions.Start(b)
        Conv2DOptions.AddPadding(b, padding)
        Conv2DOptions.AddStrideW(b, stride)
        Conv2DOptions.AddStrideH(b, stride)
        Conv2DOptions.AddFusedActivationFunction(b, activation)
        return tflite.BuiltinOptions.Conv2DOptions, Conv2DOptions.End(b)

    return write


def reshape_options(new_shape: Sequence[int]) -> OptionsWriter:
    def write(b: flatbuffers.Builder) -> tuple[int, int]:
        vector = _int_vector(b, new_shape)
        ReshapeOptions.Start(b)
        ReshapeOptions.AddNewShape(b, vector)
        return tflite.BuiltinOptions.ReshapeOptions, ReshapeOptions.End(b)

    return write


def dense_model(
    weights: np.ndarray | None = None,
    *,
    external: bool = False,
    code: CodeSpec | None = None,
    activation: int = tflite.ActivationFunctionType.RELU,
) -> ModelSpec:
    """y = relu(x @ W.T + b) with x (1, 4), W (3, 4): the smallest useful model."""
    w = (
        weights
        if weights is not None
        else np.arange(12, dtype=np.float32).reshape(3, 4) / np.float32(10.0)
    )
    bias = np.array([0.5, -0.5, 0.25], dtype=np.float32)
    w_bytes = w.astype("<f4").tobytes()
    buffers: list[bytes | External] = [
        b"",
        External(w_bytes) if external else w_bytes,
        bias.astype("<f4").tobytes(),
    ]
    return ModelSpec(
        tensors=[
            TensorSpec((1, 4), name="input", signature=(-1, 4)),
            TensorSpec((1, 3), name="output"),
            TensorSpec(w.shape, buffer=1, name="weights"),
            TensorSpec((3,), buffer=2, name="bias"),
        ],
        operators=[OpSpec(0, (0, 2, 3), (1,), fully_connected_options(activation))],
        codes=[code or CodeSpec(tflite.BuiltinOperator.FULLY_CONNECTED, 1)],
        buffers=buffers,
    )
