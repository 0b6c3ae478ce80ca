"""The pure-Python .tflite reader: real converter output, hand-built edge cases, and
one clear error for every way a file can lie."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tflite

from custom_components.nilm.engine import reader
from custom_components.nilm.engine.errors import ModelFormatError, UnsupportedOpError
from custom_components.nilm.engine.reader import OPTION_SPECS, read_model, read_model_file

from .tflite_builder import (
    CodeSpec,
    ModelSpec,
    OpSpec,
    TensorSpec,
    build,
    conv_options,
    dense_model,
    reshape_options,
)

MODELS = Path(__file__).parent / "models"
MANIFEST = json.loads((MODELS / "manifest.json").read_text())
MODEL_FILES = sorted(MODELS.glob("*.tflite"))
Op = tflite.BuiltinOperator
Type = tflite.TensorType


def _litert_reference(path: Path) -> Any:
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(
        model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF
    )
    interp.allocate_tensors()
    return interp


# --- real converter output ------------------------------------------------------------


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_committed_models_read_with_manifest_ops(path: Path) -> None:
    graph = read_model_file(path)
    family, _, mode = path.stem.partition("_")
    if family == "batch":  # batch_shapes_<mode>
        family, mode = "batch_shapes", mode.removeprefix("shapes_")
    assert sorted(graph.opcodes()) == sorted(MANIFEST[family][mode]["ops"])
    assert len(graph.inputs) == 1
    input_dtype = graph.tensors[graph.inputs[0]].dtype
    assert input_dtype == ("int8" if mode == "w8_a8_io" else "float32")


@pytest.mark.parametrize(
    "name", ["cnn_w8_a8.tflite", "transformer_w8_a16.tflite", "depthwise_w8.tflite"]
)
def test_tensors_match_litert(name: str) -> None:
    """Shapes, dtypes, quantization and constant data agree with LiteRT's own parser."""
    path = MODELS / name
    graph = read_model_file(path)
    interp = _litert_reference(path)
    details = {d["index"]: d for d in interp.get_tensor_details()}
    constants = 0
    for tensor in graph.tensors:
        ref = details[tensor.index]
        assert tensor.name == ref["name"]
        assert tensor.shape == tuple(ref["shape"])
        assert np.dtype(tensor.dtype) == np.dtype(ref["dtype"])
        q = ref["quantization_parameters"]
        if tensor.quantization is None:
            assert q["scales"].size == 0
        else:
            np.testing.assert_array_equal(tensor.quantization.scale, q["scales"])
            np.testing.assert_array_equal(tensor.quantization.zero_point, q["zero_points"])
            assert tensor.quantization.quantized_dimension == q["quantized_dimension"]
        if tensor.data is not None and tensor.data.size:
            np.testing.assert_array_equal(tensor.data, interp.get_tensor(tensor.index))
            assert not tensor.data.flags.writeable
            constants += 1
    assert constants >= 4


def test_per_channel_weights_and_options_of_a_real_cnn() -> None:
    graph = read_model_file(MODELS / "cnn_w8_a8.tflite")
    conv = next(op for op in graph.operators if op.opcode == "CONV_2D")
    assert conv.options["padding"] in ("SAME", "VALID")
    assert conv.options["fused_activation_function"] in ("NONE", "RELU", "RELU6")
    assert conv.options["stride_w"] >= 1
    assert conv.options["dilation_h_factor"] >= 1
    weights = graph.tensors[conv.inputs[1]]
    assert weights.dtype == "int8"
    assert weights.quantization is not None
    assert weights.quantization.per_channel
    assert weights.quantization.scale.size == weights.shape[0]
    bias = graph.tensors[conv.inputs[2]]
    assert bias.dtype == "int32"
    assert bias.data is not None and bias.data.shape == (weights.shape[0],)
    fc = next(op for op in graph.operators if op.opcode == "FULLY_CONNECTED")
    assert set(fc.options) >= {"fused_activation_function", "keep_num_dims", "weights_format"}
    assert fc.options["weights_format"] == "DEFAULT"
    slice_op = next(op for op in graph.operators if op.opcode == "STRIDED_SLICE")
    assert slice_op.options["shrink_axis_mask"] == 1
    pack = next(op for op in graph.operators if op.opcode == "PACK")
    assert pack.options["values_count"] == len(pack.inputs)


def test_transformer_options() -> None:
    graph = read_model_file(MODELS / "transformer_float32.tflite")
    by_name = {op.opcode: op.options for op in graph.operators}
    assert by_name["SOFTMAX"]["beta"] == pytest.approx(1.0)
    assert set(by_name["BATCH_MATMUL"]) >= {"adj_x", "adj_y"}
    assert isinstance(by_name["GELU"]["approximate"], bool)
    assert isinstance(by_name["MEAN"]["keep_dims"], bool)
    assert set(by_name["GATHER"]) == {"axis", "batch_dims"}
    assert by_name["SHAPE"]["out_type"] == "INT32"
    assert "axis" in by_name["CONCATENATION"]


def test_option_table_matches_the_schema_bindings() -> None:
    """Every field in the options table has an accessor in the bindings."""
    for opcode, (class_name, fields) in OPTION_SPECS.items():
        assert opcode in tflite.BUILTIN_OPCODE2NAME.values(), opcode
        options_class = getattr(tflite, class_name)
        assert hasattr(tflite.BuiltinOptions, class_name)
        for name in fields:
            accessor = "".join(part.capitalize() for part in name.split("_"))
            assert hasattr(options_class, accessor), f"{class_name}.{accessor}"


# --- hand-built models ------------------------------------------------------------------


def test_dense_model_round_trip() -> None:
    graph = read_model(build(dense_model()))
    assert graph.inputs == (0,) and graph.outputs == (1,)
    assert graph.description == "test model"
    (op,) = graph.operators
    assert op.opcode == "FULLY_CONNECTED" and op.version == 1
    assert op.inputs == (0, 2, 3)
    assert op.options["fused_activation_function"] == "RELU"
    weights = graph.tensors[2].data
    assert weights is not None
    np.testing.assert_array_equal(weights, np.arange(12, dtype=np.float32).reshape(3, 4) / 10)
    assert graph.tensors[0].shape_signature == (-1, 4)
    assert graph.tensors[0].data is None


def test_large_model_format_external_buffers() -> None:
    """TFLite >= 2.14 stores big buffers after the flatbuffer, addressed by offset/size."""
    inline = read_model(build(dense_model()))
    external = read_model(build(dense_model(external=True)))
    assert inline.tensors[2].data is not None and external.tensors[2].data is not None
    np.testing.assert_array_equal(inline.tensors[2].data, external.tensors[2].data)


def test_optional_inputs_are_minus_one() -> None:
    spec = dense_model()
    spec.operators[0] = OpSpec(0, (0, 2, -1), (1,))
    graph = read_model(build(spec))
    assert graph.operators[0].inputs == (0, 2, -1)
    # No options table: the schema defaults apply.
    assert graph.operators[0].options["fused_activation_function"] == "NONE"


def test_gelu_read_through_extended_builtin_code() -> None:
    """Codes above 127 live in ``builtin_code``; ``deprecated_builtin_code`` holds 127."""
    spec = dense_model(code=CodeSpec(Op.GELU, 1, deprecated=127))
    spec.operators[0] = OpSpec(0, (0,), (1,))
    assert read_model(build(spec)).operators[0].opcode == "GELU"


def test_allowed_custom_op() -> None:
    spec = dense_model(code=CodeSpec(Op.CUSTOM, 1, custom="edgetpu-custom-op"))
    graph = read_model(build(spec), custom_ops=("edgetpu-custom-op",))
    assert graph.operators[0].opcode == "CUSTOM"
    assert graph.operators[0].options == {"custom_code": "edgetpu-custom-op"}


def test_reshape_new_shape_vector() -> None:
    spec = ModelSpec(
        tensors=[TensorSpec((1, 6)), TensorSpec((1, 2, 3))],
        operators=[OpSpec(0, (0,), (1,), reshape_options((1, 2, 3)))],
        codes=[CodeSpec(Op.RESHAPE)],
    )
    assert read_model(build(spec)).operators[0].options == {"new_shape": (1, 2, 3)}


# --- every way to lie -------------------------------------------------------------------


def _with(change: Callable[[ModelSpec], None], **dense_kwargs: Any) -> bytes:
    spec = dense_model(**dense_kwargs)
    change(spec)
    return build(spec)


def _tensor(index: int, **fields: Any) -> Callable[[ModelSpec], None]:
    def change(spec: ModelSpec) -> None:
        for key, value in fields.items():
            setattr(spec.tensors[index], key, value)

    return change


def _set(**fields: Any) -> Callable[[ModelSpec], None]:
    def change(spec: ModelSpec) -> None:
        for key, value in fields.items():
            setattr(spec, key, value)

    return change


def _op(**fields: Any) -> Callable[[ModelSpec], None]:
    def change(spec: ModelSpec) -> None:
        for key, value in fields.items():
            setattr(spec.operators[0], key, value)

    return change


FORMAT_ERRORS: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "too short"),
    "wrong identifier": (b"\x10\0\0\0TFL2" + bytes(32), "not a TFLite model"),
    "root outside": (b"\xff\0\0\0TFL3" + bytes(32), "outside the file"),
    "two subgraphs": (_with(_set(subgraphs=2)), "2 subgraphs"),
    "no subgraph": (_with(_set(subgraphs=0)), "0 subgraphs"),
    "10^12 elements": (_with(_tensor(1, shape=(10**6, 10**6))), "elements"),
    "total elements": (
        _with(lambda s: s.tensors.extend(TensorSpec((2**13, 2**12)) for _ in range(3))),
        "in total",
    ),
    "negative dim": (_with(_tensor(1, shape=(1, -3))), "negative dimension"),
    "rank 9": (_with(_tensor(1, shape=(1,) * 9)), "rank 9"),
    "data size mismatch": (_with(_tensor(2, shape=(3, 5))), "needs 60"),
    "buffer index": (_with(_tensor(1, buffer=99)), "buffer index 99"),
    "string tensor": (_with(_tensor(1, type=Type.STRING)), "unsupported tensor type STRING"),
    "op input index": (_with(_op(inputs=(0, 2, 17))), "tensor index 17"),
    "op output -1": (_with(_op(outputs=(-1,))), "tensor index -1"),
    "op without outputs": (_with(_op(outputs=())), "has no outputs"),
    "subgraph output": (_with(_set(outputs=(4,))), "subgraph outputs"),
    "no outputs": (_with(_set(outputs=())), "no outputs"),
    "opcode index": (_with(_op(opcode_index=3)), "opcode index 3"),
    "version 0": (_with(lambda s: None, code=CodeSpec(Op.FULLY_CONNECTED, 0)), "version 0"),
    "options type": (
        _with(_op(options=conv_options())),
        "are Conv2DOptions, not FullyConnectedOptions",
    ),
    "per-channel mismatch": (
        _with(_tensor(2, scale=(0.1, 0.2), zero_point=(0, 0), quantized_dimension=0)),
        "per-channel",
    ),
    "zero point count": (
        _with(_tensor(1, scale=(0.1,), zero_point=(0, 0))),
        "zero points",
    ),
    "nan scale": (_with(_tensor(1, scale=(float("nan"),), zero_point=(0,))), "finite"),
    # What LiteRT's kernels trust without checking (a crash there, not an error):
    "int8 zero point 2^31": (
        _with(_tensor(1, type=Type.INT8, scale=(0.1,), zero_point=(2**31,))),
        r"zero point 2147483648 out of range \[-128, 127\] for int8",
    ),
    "int8 zero point 128": (
        _with(_tensor(1, type=Type.INT8, scale=(0.1,), zero_point=(128,))),
        r"zero point 128 out of range \[-128, 127\]",
    ),
    "uint8 zero point -1": (
        _with(_tensor(1, type=Type.UINT8, scale=(0.1,), zero_point=(-1,))),
        r"zero point -1 out of range \[0, 255\]",
    ),
    "int16 zero point 40000": (
        _with(_tensor(1, type=Type.INT16, scale=(0.1,), zero_point=(40000,))),
        r"zero point 40000 out of range",
    ),
    "float tensor zero point -2^40": (
        _with(_tensor(1, scale=(0.1,), zero_point=(-(2**40),))),
        r"out of range \[-2147483648, 2147483647\]",
    ),
    "scale 0": (_with(_tensor(1, scale=(0.0,), zero_point=(0,))), "finite and > 0"),
    "negative scale": (_with(_tensor(1, scale=(-0.5,), zero_point=(0,))), "finite and > 0"),
    "denormal scale": (_with(_tensor(1, scale=(1e-40,), zero_point=(0,))), "finite and > 0"),
    "huge scale": (_with(_tensor(1, scale=(1e38,), zero_point=(0,))), "finite and > 0"),
    "one per-channel scale is 0": (
        _with(_tensor(2, scale=(0.1, 0.0, 0.1), zero_point=(0, 0, 0), quantized_dimension=0)),
        "finite and > 0",
    ),
    "quantized dimension outside the shape": (
        _with(_tensor(1, scale=(0.1,), zero_point=(0,), quantized_dimension=5)),
        "quantized dimension 5 outside shape",
    ),
    "per-channel on the wrong dimension": (
        _with(_tensor(2, scale=(0.1,) * 3, zero_point=(0,) * 3, quantized_dimension=1)),
        "per-channel",
    ),
    "signature rank differs": (
        _with(_tensor(0, signature=(-1, 4, 1))),
        r"shape signature \(-1, 4, 1\) does not fit shape \(1, 4\)",
    ),
    "signature dim differs": (
        _with(_tensor(0, signature=(-1, 5))),
        r"shape signature \(-1, 5\) does not fit",
    ),
}


@pytest.mark.parametrize("case", sorted(FORMAT_ERRORS))
def test_malformed_models_raise_model_format_error(case: str) -> None:
    data, message = FORMAT_ERRORS[case]
    with pytest.raises(ModelFormatError, match=message):
        read_model(data)


def test_conv_stride_zero_and_unknown_padding_are_refused() -> None:
    spec = ModelSpec(
        tensors=[TensorSpec((1, 4, 4, 1)), TensorSpec((1, 4, 4, 1)), TensorSpec((1, 1, 1, 1))],
        operators=[OpSpec(0, (0, 2, -1), (1,), conv_options(stride=0))],
        codes=[CodeSpec(Op.CONV_2D, 1)],
    )
    with pytest.raises(ModelFormatError, match="stride_w=0"):
        read_model(build(spec))
    spec.operators[0].options = conv_options(padding=7)
    with pytest.raises(ModelFormatError, match="padding has unknown value 7"):
        read_model(build(spec))
    spec.operators[0].options = conv_options(stride=2, activation=3)
    options = read_model(build(spec)).operators[0].options
    assert options["stride_w"] == 2 and options["fused_activation_function"] == "RELU6"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (CodeSpec(Op.FULLY_CONNECTED, 14), "FULLY_CONNECTED v14"),
        (CodeSpec(Op.RESHAPE, 2), "RESHAPE v2"),
        (CodeSpec(Op.BROADCAST_TO, 1), "BROADCAST_TO v1"),
        (CodeSpec(250, 1, deprecated=127), "BUILTIN_250"),
        (CodeSpec(Op.CUSTOM, 1, custom="MyOp"), r"CUSTOM\(MyOp\)"),
    ],
)
def test_unknown_operators_raise_unsupported_op_error(code: CodeSpec, message: str) -> None:
    with pytest.raises(UnsupportedOpError, match=message) as info:
        read_model(_with(lambda s: None, code=code))
    assert len(info.value.op_names) == 1


def test_unused_unknown_opcode_is_still_refused() -> None:
    """Like TFLite, every entry of the opcode table must resolve."""
    data = _with(lambda s: s.codes.append(CodeSpec(Op.CUSTOM, 1, custom="Unused")))
    with pytest.raises(UnsupportedOpError, match="Unused"):
        read_model(data)


def test_file_size_limit_and_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(build(dense_model()))
    assert read_model_file(path).operators
    monkeypatch.setattr(reader, "MAX_FILE_BYTES", 100)
    with pytest.raises(ModelFormatError, match=r"m.tflite: .* exceeds the 100 byte limit"):
        read_model_file(path)
    with pytest.raises(ModelFormatError, match="exceeds the 100 byte limit"):
        read_model(path.read_bytes())
    with pytest.raises(ModelFormatError, match="cannot read"):
        read_model_file(tmp_path / "missing.tflite")


def test_only_regular_model_files_are_read(tmp_path: Path) -> None:
    """A FIFO would block the reader forever and /dev/zero never ends: both are refused
    before anything is read (the test runs the reads in a thread so a hang fails it)."""
    import os
    import threading

    fifo = tmp_path / "fifo.tflite"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.tflite"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero, tmp_path):
        errors: list[BaseException] = []

        def read(p: Path = path, errors: list[BaseException] = errors) -> None:
            try:
                read_model_file(p)
            except BaseException as err:
                errors.append(err)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), f"reading {path.name} hangs"
        assert isinstance(errors[0], ModelFormatError), repr(errors)
        assert "not a regular file" in str(errors[0])
    with pytest.raises(ModelFormatError, match="cannot read"):
        read_model_file(str(tmp_path / "nul\x00.tflite"))


def test_corrupt_bytes_name_the_binding_error() -> None:
    data = bytearray(build(dense_model()))
    data[8:40] = b"\xff" * 32  # the root table's vtable offset now points nowhere
    with pytest.raises(ModelFormatError) as info:
        read_model(bytes(data))
    assert str(info.value)
