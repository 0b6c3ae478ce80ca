"""Read a ``.tflite`` file into a validated :class:`~.graph.Graph`.

The bytes are untrusted (a user may drop any file into the models folder), so every
offset, length, shape and index is checked before anything is allocated or indexed with
it. The ``tflite`` schema bindings read lazily and throw whatever Python throws on garbage
(``struct.error``, ``IndexError``, ``TypeError`` ...); all of that is turned into
:class:`ModelFormatError` here.

Exceptions (both subclasses of :class:`ModelError`):

* :class:`ModelFormatError` - the file is malformed, truncated, oversized or declares
  something the engine refuses to allocate (wrong identifier, offsets outside the file,
  huge or negative shapes, data sizes that do not match, indices out of range, not
  exactly one subgraph, unknown tensor types, sparse tensors).
* :class:`UnsupportedOpError` - the file is well formed but uses an operator this schema
  does not know (a custom op or a builtin code newer than the bindings) or an operator
  version newer than TFLite's own kernels accept.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import flatbuffers
import numpy as np
import numpy.typing as npt
import tflite

from .errors import ModelFormatError, UnsupportedOpError
from .graph import Graph, Operator, Quantization, Tensor

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TENSOR_ELEMENTS = 2**26
MAX_TOTAL_ELEMENTS = 2**26
MAX_RANK = 8
MAX_TENSORS = 100_000
MAX_OPERATORS = 100_000
MAX_BUFFERS = MAX_TENSORS + 1
MAX_OPERATOR_CODES = 10_000
MAX_OPERANDS = 1_000
MAX_OPTION_VECTOR = 64
FILE_IDENTIFIER = b"TFL3"
# Quantization scales outside this range overflow the kernels' fixed-point multipliers
# (and 1 / scale in float32); real converter output stays far inside it.
MIN_SCALE = 1e-30
MAX_SCALE = 1e30

# Everything the lazy flatbuffers bindings raise when they walk garbage.
_BINDING_ERRORS = (
    struct.error,
    IndexError,
    UnicodeDecodeError,
    ValueError,
    TypeError,
    RecursionError,
    OverflowError,
    AttributeError,
    KeyError,
    ArithmeticError,
)

# TensorType -> numpy dtype name; other types (strings, complex, resources, int4) refused.
_DTYPES: dict[int, str] = {
    tflite.TensorType.FLOAT32: "float32",
    tflite.TensorType.FLOAT16: "float16",
    tflite.TensorType.FLOAT64: "float64",
    tflite.TensorType.INT8: "int8",
    tflite.TensorType.INT16: "int16",
    tflite.TensorType.INT32: "int32",
    tflite.TensorType.INT64: "int64",
    tflite.TensorType.UINT8: "uint8",
    tflite.TensorType.UINT16: "uint16",
    tflite.TensorType.UINT32: "uint32",
    tflite.TensorType.BOOL: "bool",
}

_INT32_RANGE = (-(2**31), 2**31 - 1)
# Zero points must be representable in the tensor's own type (TFLite stores them as
# int32; a quantized value and its zero point share a type in every kernel).
_ZERO_POINT_RANGE: dict[str, tuple[int, int]] = {
    name: (int(np.iinfo(name).min), int(np.iinfo(name).max))
    for name in ("int8", "uint8", "int16", "uint16", "int32")
}

# Highest operator version TFLite's BuiltinOpResolver accepts (core/kernels/register.cc,
# TF 2.18+). Ops not listed accept version 1 only; BROADCAST_TO starts at version 2.
MAX_OP_VERSION: dict[str, int] = {
    "ABS": 5, "ADD": 5, "ARG_MAX": 3, "ARG_MIN": 3, "AVERAGE_POOL_2D": 3,
    "BATCH_MATMUL": 4, "BATCH_TO_SPACE_ND": 4, "BIDIRECTIONAL_SEQUENCE_LSTM": 3,
    "BIDIRECTIONAL_SEQUENCE_RNN": 3, "BROADCAST_TO": 3, "CAST": 7, "CONCATENATION": 4,
    "CONV_2D": 8, "DEPTH_TO_SPACE": 2, "DEPTHWISE_CONV_2D": 7, "DEQUANTIZE": 6, "DIV": 2,
    "DYNAMIC_UPDATE_SLICE": 4, "EMBEDDING_LOOKUP": 4, "EQUAL": 5, "EXP": 2,
    "FAKE_QUANT": 2, "FILL": 4, "FLOOR_DIV": 3, "FLOOR_MOD": 2, "FULLY_CONNECTED": 13,
    "GATHER": 7, "GATHER_ND": 5, "GELU": 2, "GREATER": 2, "GREATER_EQUAL": 3,
    "L2_NORMALIZATION": 2, "LEAKY_RELU": 2, "LESS": 3, "LESS_EQUAL": 2, "LOG": 2,
    "LOG_SOFTMAX": 2, "LOGISTIC": 3, "LSTM": 4, "MAX_POOL_2D": 3, "MAXIMUM": 4, "MEAN": 3,
    "MINIMUM": 4, "MIRROR_PAD": 3, "MUL": 7, "NOT_EQUAL": 4, "PACK": 4, "PAD": 5,
    "PADV2": 5, "QUANTIZE": 4, "RANGE": 2, "REDUCE_MAX": 3, "REDUCE_MIN": 3,
    "REDUCE_PROD": 2, "RELU": 3, "RELU6": 3, "RESIZE_BILINEAR": 4,
    "RESIZE_NEAREST_NEIGHBOR": 4, "REVERSE_V2": 3, "RNN": 3, "RSQRT": 3, "SELECT": 4,
    "SELECT_V2": 2, "SIGN": 2, "SLICE": 6, "SOFTMAX": 3, "SPACE_TO_BATCH_ND": 4,
    "SPACE_TO_DEPTH": 2, "SPARSE_TO_DENSE": 3, "SPLIT": 4, "SPLIT_V": 2, "SQRT": 2,
    "SQUARED_DIFFERENCE": 2, "SQUEEZE": 2, "STRIDED_SLICE": 8, "SUB": 5, "SUM": 2,
    "SVDF": 4, "TANH": 3, "TILE": 3, "TOPK_V2": 3, "TRANSPOSE": 7, "TRANSPOSE_CONV": 5,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 4, "UNIDIRECTIONAL_SEQUENCE_RNN": 3, "UNPACK": 4,
    "WHERE": 2,
}  # fmt: skip

_OPCODE_NAMES: dict[int, str] = dict(tflite.BUILTIN_OPCODE2NAME)


# --- builtin options: one declarative table, one generic parser ---------------------------


def _enum_names(enum_class: type) -> dict[int, str]:
    return {
        value: name
        for name, value in vars(enum_class).items()
        if not name.startswith("_") and isinstance(value, int)
    }


@dataclass(frozen=True, slots=True)
class _Field:
    """How to read one options field: its kind and, for enums, value -> schema name."""

    kind: str  # "int", "bool", "float", "ints" or "enum"
    names: Mapping[int, str] | None = None


INT = _Field("int")
BOOL = _Field("bool")
FLOAT = _Field("float")
INTS = _Field("ints")
PADDING = _Field("enum", _enum_names(tflite.Padding))
ACTIVATION = _Field("enum", _enum_names(tflite.ActivationFunctionType))
TENSOR_TYPE = _Field("enum", _enum_names(tflite.TensorType))
WEIGHTS_FORMAT = _Field("enum", _enum_names(tflite.FullyConnectedOptionsWeightsFormat))

_CONV = {
    "padding": PADDING,
    "stride_w": INT,
    "stride_h": INT,
    "fused_activation_function": ACTIVATION,
    "dilation_w_factor": INT,
    "dilation_h_factor": INT,
}
_POOL = {
    "padding": PADDING,
    "stride_w": INT,
    "stride_h": INT,
    "filter_width": INT,
    "filter_height": INT,
    "fused_activation_function": ACTIVATION,
}
_ACT_ONLY = {"fused_activation_function": ACTIVATION}
_ELEMENTWISE = {"fused_activation_function": ACTIVATION, "pot_scale_int16": BOOL}
_REDUCER = {"keep_dims": BOOL}

# opcode -> (options table class name in the schema, {snake_case field: how to read it}).
OPTION_SPECS: dict[str, tuple[str, dict[str, _Field]]] = {
    "CONV_2D": ("Conv2DOptions", {**_CONV, "quantized_bias_type": TENSOR_TYPE}),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", {**_CONV, "depth_multiplier": INT}),
    "AVERAGE_POOL_2D": ("Pool2DOptions", _POOL),
    "MAX_POOL_2D": ("Pool2DOptions", _POOL),
    "L2_POOL_2D": ("Pool2DOptions", _POOL),
    "FULLY_CONNECTED": (
        "FullyConnectedOptions",
        {
            "fused_activation_function": ACTIVATION,
            "weights_format": WEIGHTS_FORMAT,
            "keep_num_dims": BOOL,
            "asymmetric_quantize_inputs": BOOL,
            "quantized_bias_type": TENSOR_TYPE,
        },
    ),
    "ADD": ("AddOptions", _ELEMENTWISE),
    "SUB": ("SubOptions", _ELEMENTWISE),
    "MUL": ("MulOptions", _ACT_ONLY),
    "DIV": ("DivOptions", _ACT_ONLY),
    "L2_NORMALIZATION": ("L2NormOptions", _ACT_ONLY),
    "CONCATENATION": ("ConcatenationOptions", {"axis": INT, **_ACT_ONLY}),
    "RESHAPE": ("ReshapeOptions", {"new_shape": INTS}),
    "SQUEEZE": ("SqueezeOptions", {"squeeze_dims": INTS}),
    "MEAN": ("ReducerOptions", _REDUCER),
    "SUM": ("ReducerOptions", _REDUCER),
    "REDUCE_MAX": ("ReducerOptions", _REDUCER),
    "REDUCE_MIN": ("ReducerOptions", _REDUCER),
    "REDUCE_PROD": ("ReducerOptions", _REDUCER),
    "SOFTMAX": ("SoftmaxOptions", {"beta": FLOAT}),
    "BATCH_MATMUL": (
        "BatchMatMulOptions",
        {"adj_x": BOOL, "adj_y": BOOL, "asymmetric_quantize_inputs": BOOL},
    ),
    "STRIDED_SLICE": (
        "StridedSliceOptions",
        {
            "begin_mask": INT,
            "end_mask": INT,
            "ellipsis_mask": INT,
            "new_axis_mask": INT,
            "shrink_axis_mask": INT,
            "offset": BOOL,
        },
    ),
    "PACK": ("PackOptions", {"values_count": INT, "axis": INT}),
    "UNPACK": ("UnpackOptions", {"num": INT, "axis": INT}),
    "GATHER": ("GatherOptions", {"axis": INT, "batch_dims": INT}),
    "GELU": ("GeluOptions", {"approximate": BOOL}),
    "SHAPE": ("ShapeOptions", {"out_type": TENSOR_TYPE}),
    "LEAKY_RELU": ("LeakyReluOptions", {"alpha": FLOAT}),
    "SPLIT": ("SplitOptions", {"num_splits": INT}),
    "SPLIT_V": ("SplitVOptions", {"num_splits": INT}),
    "CAST": ("CastOptions", {"in_data_type": TENSOR_TYPE, "out_data_type": TENSOR_TYPE}),
    "ARG_MAX": ("ArgMaxOptions", {"output_type": TENSOR_TYPE}),
    "TRANSPOSE": ("TransposeOptions", {}),
    "EXPAND_DIMS": ("ExpandDimsOptions", {}),
    "QUANTIZE": ("QuantizeOptions", {}),
    "DEQUANTIZE": ("DequantizeOptions", {}),
    "SQUARED_DIFFERENCE": ("SquaredDifferenceOptions", {}),
    "PAD": ("PadOptions", {}),
    "PADV2": ("PadV2Options", {}),
    "SLICE": ("SliceOptions", {}),
    "MAXIMUM": ("MaximumMinimumOptions", {}),
    "MINIMUM": ("MaximumMinimumOptions", {}),
    "TILE": ("TileOptions", {}),
    "HARD_SWISH": ("HardSwishOptions", {}),
    "LOG_SOFTMAX": ("LogSoftmaxOptions", {}),
}

# Fields that kernels divide by or loop with: they must be at least 1.
_AT_LEAST_ONE = frozenset(
    {"stride_w", "stride_h", "dilation_w_factor", "dilation_h_factor", "filter_width",
     "filter_height"}
)  # fmt: skip
_MAX_WINDOW = 1 << 16


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _empty_table() -> tuple[bytes, int]:
    """A flatbuffer whose root table has no fields, and that table's position.

    Operators without an options table read their options from it, so they get the
    schema's defaults exactly as TFLite's generated C++ does.
    """
    builder = flatbuffers.Builder(16)
    builder.StartObject(0)
    builder.Finish(builder.EndObject())
    data = bytes(builder.Output())
    (root,) = struct.unpack_from("<I", data, 0)
    return data, root


_EMPTY_TABLE = _empty_table()
_OPTION_TYPE_NAMES = _enum_names(tflite.BuiltinOptions)


def _options_object(op: Any, class_name: str, where: str) -> Any:
    options = getattr(tflite, class_name)()
    actual = op.BuiltinOptionsType()
    if actual == tflite.BuiltinOptions.NONE:
        options.Init(*_EMPTY_TABLE)
        return options
    if actual != getattr(tflite.BuiltinOptions, class_name):
        found = _OPTION_TYPE_NAMES.get(actual, str(actual))
        raise ModelFormatError(f"{where}: builtin options are {found}, not {class_name}")
    table = op.BuiltinOptions()
    if table is None:
        raise ModelFormatError(f"{where}: {class_name} table is missing")
    options.Init(table.Bytes, table.Pos)
    return options


def _int_option(options: Any, name: str, spec: _Field, where: str) -> int:
    value = int(getattr(options, _camel(name))())
    if name in _AT_LEAST_ONE and not 1 <= value <= _MAX_WINDOW:
        raise ModelFormatError(f"{where}: option {name}={value} must be in [1, {_MAX_WINDOW}]")
    return value


def _bool_option(options: Any, name: str, spec: _Field, where: str) -> bool:
    return bool(getattr(options, _camel(name))())


def _float_option(options: Any, name: str, spec: _Field, where: str) -> float:
    value = float(getattr(options, _camel(name))())
    if not math.isfinite(value):
        raise ModelFormatError(f"{where}: option {name} is not finite")
    return value


def _enum_option(options: Any, name: str, spec: _Field, where: str) -> str:
    value = getattr(options, _camel(name))()
    names = spec.names or {}
    if value not in names:
        raise ModelFormatError(f"{where}: option {name} has unknown value {value}")
    return names[value]


def _ints_option(options: Any, name: str, spec: _Field, where: str) -> tuple[int, ...]:
    length = getattr(options, _camel(name) + "Length")()
    if length > MAX_OPTION_VECTOR:
        raise ModelFormatError(f"{where}: option {name} has {length} entries")
    return tuple(int(v) for v in _as_numpy(getattr(options, _camel(name) + "AsNumpy")()))


_OPTION_READERS: dict[str, Callable[[Any, str, _Field, str], Any]] = {
    "int": _int_option,
    "bool": _bool_option,
    "float": _float_option,
    "enum": _enum_option,
    "ints": _ints_option,
}


def _parse_options(op: Any, opcode: str, where: str) -> dict[str, Any]:
    spec = OPTION_SPECS.get(opcode)
    if spec is None:
        return {}
    class_name, fields = spec
    options = _options_object(op, class_name, where)
    return {
        name: _OPTION_READERS[field.kind](options, name, field, where)
        for name, field in fields.items()
    }


# --- helpers ------------------------------------------------------------------------------


def _as_numpy(value: Any) -> npt.NDArray[Any]:
    """flatbuffers returns the int 0 instead of an array for an absent vector."""
    if isinstance(value, np.ndarray):
        return value
    return np.zeros(0, dtype=np.int32)


def _check_count(count: int, maximum: int, what: str) -> int:
    if not 0 <= count <= maximum:
        raise ModelFormatError(f"{what}: {count} entries (at most {maximum} allowed)")
    return count


def _index_vector(
    getter: Callable[[], Any], length: int, limit: int, what: str, *, optional: bool
) -> tuple[int, ...]:
    """An int32 vector of tensor indices, each checked against ``limit``."""
    _check_count(length, MAX_OPERANDS, what)
    values = tuple(int(v) for v in _as_numpy(getter()))
    low = -1 if optional else 0
    for value in values:
        if not low <= value < limit:
            raise ModelFormatError(f"{what}: tensor index {value} out of range [0, {limit})")
    return values


def _decode(raw: bytes | None) -> str:
    return raw.decode("utf-8", errors="replace") if raw else ""


# --- model level --------------------------------------------------------------------------


class NotRegularFileError(OSError):
    """The path is a directory, device, FIFO or socket: reading it could block or never end."""


class FileTooLargeError(OSError):
    """The file is larger than the caller's limit."""


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def open_regular_file(path: str | Path) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading only if it is a regular file (symlinks are followed).

    Checked with ``os.stat`` before opening (a device is never opened) and with
    ``os.fstat`` on the open descriptor (the file cannot be swapped in between); opened
    non-blocking, so a FIFO swapped in at the last moment cannot hang the caller.
    """
    path = Path(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotRegularFileError(f"{path.name} is not a regular file")
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFileError(f"{path.name} is not a regular file")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_regular_file(path: str | Path, limit: int) -> bytes:
    """All bytes of a regular file of at most ``limit`` bytes (OSError otherwise)."""
    path = Path(path)
    with open_regular_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise FileTooLargeError(f"{size} bytes exceeds the {limit} byte limit")
        data = handle.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise FileTooLargeError(f"more than {limit} bytes exceeds the {limit} byte limit")
    return data


def read_model_file(path: str | Path, *, custom_ops: Collection[str] = ()) -> Graph:
    """Read and validate a model file (see :func:`read_model`); an unreadable file is a
    ModelFormatError too, and so is anything but a regular file."""
    path = Path(path)
    try:
        data = read_regular_file(path, MAX_FILE_BYTES)
    except FileTooLargeError as err:
        raise ModelFormatError(f"{path.name}: {err}") from err
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        raise ModelFormatError(f"{path.name}: cannot read model file: {err}") from err
    try:
        return read_model(data, custom_ops=custom_ops)
    except ModelFormatError as err:
        raise ModelFormatError(f"{path.name}: {err}") from err


def read_model(data: bytes, *, custom_ops: Collection[str] = ()) -> Graph:
    """Parse and validate ``.tflite`` bytes.

    Raises ModelFormatError for malformed files and UnsupportedOpError for unknown
    operators or operator versions; nothing else escapes. Custom operators named in
    ``custom_ops`` (e.g. ``edgetpu-custom-op`` for a delegate) are accepted and appear as
    opcode ``"CUSTOM"`` with ``options={"custom_code": name}``.
    """
    data = bytes(data)
    _check_header(data)
    try:
        return _ModelReader(data, frozenset(custom_ops)).graph()
    except (ModelFormatError, UnsupportedOpError):
        raise
    except _BINDING_ERRORS as err:
        raise ModelFormatError(f"corrupt flatbuffer ({type(err).__name__}: {err})"[:300]) from err


def _check_header(data: bytes) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise ModelFormatError(f"{len(data)} bytes exceeds the {MAX_FILE_BYTES} byte limit")
    if len(data) < 8:
        raise ModelFormatError(f"file too short to be a TFLite model ({len(data)} bytes)")
    if data[4:8] != FILE_IDENTIFIER:
        raise ModelFormatError(
            f"file identifier {data[4:8]!r} is not {FILE_IDENTIFIER!r} (not a TFLite model)"
        )
    (root,) = struct.unpack_from("<I", data, 0)
    if not 8 <= root <= len(data) - 4:
        raise ModelFormatError(f"root table offset {root} lies outside the file")


class _ModelReader:
    """Walks the flatbuffer once, validating as it goes."""

    def __init__(self, data: bytes, custom_ops: frozenset[str]) -> None:
        self.data = data
        self.custom_ops = custom_ops
        self.model = tflite.Model.GetRootAs(data, 0)

    def graph(self) -> Graph:
        model = self.model
        count = model.SubgraphsLength()
        if count != 1:
            raise ModelFormatError(f"model has {count} subgraphs; exactly 1 is supported")
        subgraph = model.Subgraphs(0)
        buffers = self._buffers()
        tensors = self._tensors(subgraph, buffers)
        opcodes = self._opcodes()
        operators = self._operators(subgraph, opcodes, len(tensors))
        n = len(tensors)
        inputs = _index_vector(
            subgraph.InputsAsNumpy, subgraph.InputsLength(), n, "subgraph inputs", optional=False
        )
        outputs = _index_vector(
            subgraph.OutputsAsNumpy, subgraph.OutputsLength(), n, "subgraph outputs", optional=False
        )
        if not outputs:
            raise ModelFormatError("subgraph declares no outputs")
        return Graph(
            tensors=tensors,
            operators=operators,
            inputs=inputs,
            outputs=outputs,
            description=_decode(model.Description()),
        )

    # buffers ------------------------------------------------------------------------------

    def _buffers(self) -> list[bytes]:
        count = _check_count(self.model.BuffersLength(), MAX_BUFFERS, "buffers")
        return [self._buffer(i) for i in range(count)]

    def _buffer(self, index: int) -> bytes:
        buffer = self.model.Buffers(index)
        if buffer is None:
            raise ModelFormatError(f"buffer {index} is missing")
        offset, size = int(buffer.Offset()), int(buffer.Size())
        if offset > 1:
            # Large-model format (TFLite >= 2.14): data lives after the flatbuffer.
            if size > len(self.data) or offset > len(self.data) - size:
                raise ModelFormatError(
                    f"buffer {index}: offset {offset} + size {size} lies outside the file "
                    f"({len(self.data)} bytes)"
                )
            return self.data[offset : offset + size]
        length = buffer.DataLength()
        if length > len(self.data):
            raise ModelFormatError(f"buffer {index}: {length} bytes declared, file is smaller")
        if length == 0:
            return b""
        try:
            array = buffer.DataAsNumpy()
        except ValueError as err:
            raise ModelFormatError(f"buffer {index}: data extends past the end of file") from err
        return _as_numpy(array).tobytes()

    # tensors ------------------------------------------------------------------------------

    def _tensors(self, subgraph: Any, buffers: list[bytes]) -> tuple[Tensor, ...]:
        count = _check_count(subgraph.TensorsLength(), MAX_TENSORS, "tensors")
        total = 0
        tensors = []
        for index in range(count):
            tensor = self._tensor(subgraph.Tensors(index), index, buffers)
            total += math.prod(tensor.shape)
            if total > MAX_TOTAL_ELEMENTS:
                raise ModelFormatError(
                    f"tensors hold more than {MAX_TOTAL_ELEMENTS} elements in total"
                )
            tensors.append(tensor)
        return tuple(tensors)

    def _tensor(self, raw: Any, index: int, buffers: list[bytes]) -> Tensor:
        if raw is None:
            raise ModelFormatError(f"tensor {index} is missing")
        name = _decode(raw.Name())
        where = f"tensor {index} ({name[:80]})"
        type_code = raw.Type()
        dtype = _DTYPES.get(type_code)
        if dtype is None:
            type_name = _enum_names(tflite.TensorType).get(type_code, str(type_code))
            raise ModelFormatError(f"{where}: unsupported tensor type {type_name}")
        if raw.Sparsity() is not None:
            raise ModelFormatError(f"{where}: sparse tensors are not supported")
        shape = self._shape(raw.ShapeAsNumpy, raw.ShapeLength(), where, allow_unknown=False)
        signature = None
        if raw.ShapeSignatureLength():
            signature = self._shape(
                raw.ShapeSignatureAsNumpy, raw.ShapeSignatureLength(), where, allow_unknown=True
            )
            if len(signature) != len(shape) or any(
                s not in (-1, d) for s, d in zip(signature, shape, strict=True)
            ):
                raise ModelFormatError(
                    f"{where}: shape signature {signature} does not fit shape {shape}"
                )
        buffer_index = raw.Buffer()
        if not 0 <= buffer_index < max(len(buffers), 1):
            raise ModelFormatError(f"{where}: buffer index {buffer_index} out of range")
        raw_data = buffers[buffer_index] if buffers else b""
        return Tensor(
            index=index,
            name=name,
            shape=shape,
            dtype=dtype,
            quantization=self._quantization(raw.Quantization(), shape, dtype, where),
            data=_constant(raw_data, shape, dtype, where) if raw_data else None,
            shape_signature=signature,
        )

    @staticmethod
    def _shape(
        getter: Callable[[], Any], length: int, where: str, *, allow_unknown: bool
    ) -> tuple[int, ...]:
        if not 0 <= length <= MAX_RANK:
            raise ModelFormatError(f"{where}: rank {length} exceeds {MAX_RANK}")
        dims = tuple(int(d) for d in _as_numpy(getter()))
        low = -1 if allow_unknown else 0
        if any(d < low for d in dims):
            raise ModelFormatError(f"{where}: negative dimension in shape {dims}")
        if not allow_unknown and math.prod(dims) > MAX_TENSOR_ELEMENTS:
            raise ModelFormatError(
                f"{where}: shape {dims} has more than {MAX_TENSOR_ELEMENTS} elements"
            )
        return dims

    @staticmethod
    def _quantization(
        raw: Any, shape: tuple[int, ...], dtype: str, where: str
    ) -> Quantization | None:
        """Affine quantization, checked as far as TFLite's kernels and LiteRT trust it.

        LiteRT stores zero points as int32 and indexes per-channel arrays with
        ``quantized_dimension`` without checking either, so an out-of-range value there
        is a crash in native code, not an error: refuse it here.
        """
        # Like TFLite: without both scales and zero points the tensor is not quantized.
        if raw is None or raw.ScaleLength() == 0 or raw.ZeroPointLength() == 0:
            return None
        if raw.DetailsType() != 0:
            raise ModelFormatError(f"{where}: custom quantization is not supported")
        count, dimension = raw.ScaleLength(), int(raw.QuantizedDimension())
        if raw.ZeroPointLength() != count:
            raise ModelFormatError(
                f"{where}: {count} quantization scales but {raw.ZeroPointLength()} zero points"
            )
        if raw.MinLength() not in (0, count) or raw.MaxLength() not in (0, count):
            raise ModelFormatError(
                f"{where}: {raw.MinLength()} min / {raw.MaxLength()} max values for "
                f"{count} quantization scales"
            )
        if not 0 <= dimension < max(len(shape), 1):
            raise ModelFormatError(
                f"{where}: quantized dimension {dimension} outside shape {shape}"
            )
        if count > 1 and not (dimension < len(shape) and shape[dimension] == count):
            raise ModelFormatError(
                f"{where}: {count} per-channel scales do not match dimension {dimension} "
                f"of shape {shape}"
            )
        scale = _as_numpy(raw.ScaleAsNumpy()).astype(np.float32)
        zero_point = _as_numpy(raw.ZeroPointAsNumpy()).astype(np.int64)
        if scale.size != count or zero_point.size != count:
            raise ModelFormatError(f"{where}: quantization vectors are truncated")
        with np.errstate(over="ignore", divide="ignore"):
            inverse = np.float32(1.0) / scale
        if (
            not np.all(np.isfinite(scale))
            or np.any(scale < MIN_SCALE)
            or np.any(scale > MAX_SCALE)
            or not np.all(np.isfinite(inverse))
        ):
            raise ModelFormatError(
                f"{where}: quantization scales must be finite and > 0 "
                f"(within [{MIN_SCALE:g}, {MAX_SCALE:g}])"
            )
        low, high = _ZERO_POINT_RANGE.get(dtype, _INT32_RANGE)
        if np.any(zero_point < low) or np.any(zero_point > high):
            bad = int(zero_point[(zero_point < low) | (zero_point > high)][0])
            raise ModelFormatError(
                f"{where}: quantization zero point {bad} out of range [{low}, {high}] for {dtype}"
            )
        return Quantization(
            scale=scale, zero_point=zero_point, quantized_dimension=dimension if count > 1 else 0
        )

    # operators ----------------------------------------------------------------------------

    def _opcodes(self) -> list[tuple[str, int]]:
        """(name, version) per operator code; like TFLite, every code must be known,
        used or not."""
        count = _check_count(self.model.OperatorCodesLength(), MAX_OPERATOR_CODES, "opcodes")
        codes = [self._opcode(i) for i in range(count)]
        unsupported = [code for code in codes if isinstance(code, str)]
        if unsupported:
            raise UnsupportedOpError(unsupported)
        return [code for code in codes if not isinstance(code, str)]

    def _opcode(self, index: int) -> tuple[str, int] | str:
        code = self.model.OperatorCodes(index)
        if code is None:
            raise ModelFormatError(f"operator code {index} is missing")
        # TFLite reads the larger of the two fields (schema v3a kept int8 for old files).
        builtin = max(int(code.DeprecatedBuiltinCode()), int(code.BuiltinCode()))
        version = int(code.Version())
        if builtin < 0:
            raise ModelFormatError(f"operator code {index}: negative builtin code {builtin}")
        if version < 1:
            raise ModelFormatError(f"operator code {index}: version {version} < 1")
        name = _OPCODE_NAMES.get(builtin)
        if name is None:
            return f"BUILTIN_{builtin}"
        if name == "CUSTOM":
            custom = _decode(code.CustomCode())[:80]
            return (
                (f"CUSTOM:{custom}", version) if custom in self.custom_ops else f"CUSTOM({custom})"
            )
        first = 2 if name == "BROADCAST_TO" else 1
        if not first <= version <= MAX_OP_VERSION.get(name, 1):
            return f"{name} v{version}"
        return name, version

    def _operators(
        self, subgraph: Any, opcodes: list[tuple[str, int]], n_tensors: int
    ) -> tuple[Operator, ...]:
        count = _check_count(subgraph.OperatorsLength(), MAX_OPERATORS, "operators")
        operators: list[Operator] = []
        for index in range(count):
            raw = subgraph.Operators(index)
            if raw is None:
                raise ModelFormatError(f"operator {index} is missing")
            opcode_index = raw.OpcodeIndex()
            if not 0 <= opcode_index < len(opcodes):
                raise ModelFormatError(
                    f"operator {index}: opcode index {opcode_index} out of range"
                )
            name, version = opcodes[opcode_index]
            operators.append(self._operator(raw, index, name, version, n_tensors))
        return tuple(operators)

    @staticmethod
    def _operator(raw: Any, index: int, name: str, version: int, n_tensors: int) -> Operator:
        where = f"operator {index} ({name})"
        inputs = _index_vector(
            raw.InputsAsNumpy, raw.InputsLength(), n_tensors, f"{where} inputs", optional=True
        )
        outputs = _index_vector(
            raw.OutputsAsNumpy, raw.OutputsLength(), n_tensors, f"{where} outputs", optional=False
        )
        if not outputs:
            raise ModelFormatError(f"{where} has no outputs")
        return Operator(
            opcode="CUSTOM" if name.startswith("CUSTOM:") else name,
            version=version,
            inputs=inputs,
            outputs=outputs,
            options=_custom_options(name) or _parse_options(raw, name, where),
        )


def _custom_options(name: str) -> dict[str, Any]:
    return {"custom_code": name.removeprefix("CUSTOM:")} if name.startswith("CUSTOM:") else {}


def _constant(raw: bytes, shape: tuple[int, ...], dtype: str, where: str) -> npt.NDArray[Any]:
    """Constant tensor data as a read-only native-endian array of ``shape``."""
    little = np.dtype(dtype).newbyteorder("<")
    expected = math.prod(shape) * little.itemsize
    if len(raw) != expected:
        raise ModelFormatError(
            f"{where}: buffer holds {len(raw)} bytes, shape {shape} of {dtype} needs {expected}"
        )
    array = np.frombuffer(raw, dtype=little).astype(dtype).reshape(shape)
    array.flags.writeable = False
    return array
