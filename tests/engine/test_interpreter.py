"""The interpreter's contract: load-time op checks, batching, input validation, profiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import tflite

from custom_components.nilm.engine.errors import (
    EngineError,
    ModelFormatError,
    UnsupportedOpError,
)
from custom_components.nilm.engine.graph import Graph, Operator, Tensor
from custom_components.nilm.engine.interpreter import NumpyInterpreter
from custom_components.nilm.engine.reader import read_model, read_model_file
from scripts.ha_dev.refit import read_refit_csv, refit_30s_file

MODELS = Path(__file__).parent / "models"


def _model(name: str) -> NumpyInterpreter:
    return NumpyInterpreter(read_model_file(MODELS / f"{name}.tflite"))


def _graph(*ops: Operator, n_tensors: int = 3) -> Graph:
    tensors = tuple(Tensor(i, f"t{i}", (1, 4), "float32") for i in range(n_tensors))
    return Graph(tensors=tensors, operators=ops, inputs=(0,), outputs=(n_tensors - 1,))


@pytest.fixture(scope="module")
def windows(data_dir: Path) -> npt.NDArray[np.float32]:
    """Normalised 99-sample windows of real REFIT House 2 mains, one every 30 minutes."""
    path = refit_30s_file(data_dir, 2, "2014-07")
    agg = read_refit_csv(path, columns=("Aggregate",))["Aggregate"].astype(np.float32)
    starts = np.arange(0, agg.size - 99, 60)
    wins = np.stack([agg[s : s + 99] for s in starts])
    return ((wins - 400.0) / 700.0).astype(np.float32)


def test_unknown_ops_are_all_named_at_construction() -> None:
    graph = _graph(
        Operator("FOO_BAR", 1, (0,), (1,)),
        Operator("RELU", 1, (1,), (2,)),
        Operator("CUMSUM", 1, (1,), (2,)),
    )
    with pytest.raises(UnsupportedOpError) as info:
        NumpyInterpreter(graph)
    assert info.value.op_names == ["CUMSUM", "FOO_BAR"]
    assert "FOO_BAR" in str(info.value)


def test_unsupported_variants_fail_at_construction_not_inference() -> None:
    tensors = (
        Tensor(0, "x", (1, 4), "float32"),
        Tensor(1, "y", (1, 4), "float32"),
    )
    concat = Operator("CONCATENATION", 1, (0, 0), (1,), {"axis": 1,
                      "fused_activation_function": "RELU"})  # fmt: skip
    graph = Graph(tensors=tensors, operators=(concat,), inputs=(0,), outputs=(1,))
    with pytest.raises(UnsupportedOpError, match="CONCATENATION"):
        NumpyInterpreter(graph)


def test_reading_a_tensor_before_it_is_written_is_a_format_error() -> None:
    graph = _graph(Operator("RELU", 1, (1,), (2,)))
    with pytest.raises(ModelFormatError, match="before it is written"):
        NumpyInterpreter(graph)


def test_batch_equals_window_by_window(windows: npt.NDArray[np.float32]) -> None:
    interp = _model("cnn_w8_a8")
    batch = interp.run([windows])
    assert [o.shape for o in batch] == [(len(windows), 1), (len(windows), 1)]
    singles = [interp.run([w[None]]) for w in windows[:40]]
    for k in range(2):
        np.testing.assert_array_equal(np.concatenate([s[k] for s in singles]), batch[k][:40])


def test_chunking_does_not_change_results(windows: npt.NDArray[np.float32]) -> None:
    graph = read_model_file(MODELS / "transformer_w8_a16.tflite")
    whole = NumpyInterpreter(graph).run([windows[:, :16]])
    chunked = NumpyInterpreter(graph, chunk_size=7).run([windows[:, :16]])
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_outputs_keep_their_raw_dtype(windows: npt.NDArray[np.float32]) -> None:
    interp = _model("cnn_w8_a8_io")
    spec = interp.input_tensors[0]
    assert spec.quantization is not None
    q = np.clip(np.round(windows / spec.quantization.scale[0]) + spec.quantization.zero_point[0],
                -128, 127).astype(np.int8)  # fmt: skip
    outs = interp.run([q])
    assert all(o.dtype == np.int8 for o in outs)


def test_empty_batch() -> None:
    outs = _model("cnn_float32").run([np.zeros((0, 99), np.float32)])
    assert [o.shape for o in outs] == [(0, 1), (0, 1)]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "takes 1 input"),
        ([np.zeros((2, 99), np.float64)], "must be float32"),
        ([np.zeros((2, 98), np.float32)], "must have shape"),
        ([np.zeros(99, np.float32)], "must have shape"),
    ],
)
def test_bad_inputs_raise_one_clear_error(
    inputs: list[npt.NDArray[np.float32]], message: str
) -> None:
    with pytest.raises(EngineError, match=message):
        _model("cnn_float32").run(inputs)


def test_profile_reports_seconds_per_opcode(windows: npt.NDArray[np.float32]) -> None:
    interp = _model("cnn_w8_a8")
    interp.run([windows[:100]], profile=True)
    assert set(interp.profile) == set(interp.graph.opcodes())
    assert all(v >= 0 for v in interp.profile.values())
    assert interp.profile["CONV_2D"] > 0
    before = dict(interp.profile)
    interp.run([windows[:100]])  # profiling is opt-in per call
    assert interp.profile == before


def test_dynamic_shape_subgraph_follows_the_batch() -> None:
    """SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE computes with the runtime N."""
    interp = _model("batch_shapes_float32")
    x = np.random.default_rng(0).standard_normal((5, 20)).astype(np.float32)
    (y,) = interp.run([x])
    expected = np.maximum(x.reshape(5, 4, 5)[:, [3, 0, 2]].reshape(5, -1)[:, 1:13:2] - 0.1, 0)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_kernel_that_cannot_use_an_operator_reports_a_format_error_at_load() -> None:
    tensors = (
        Tensor(0, "x", (1, 1, 4, 2), "float32"),
        Tensor(1, "w", (3, 3), "float32", data=np.zeros((3, 3), np.float32)),
        Tensor(2, "y", (1, 1, 4, 3), "float32"),
    )
    conv = Operator("CONV_2D", 1, (0, 1, -1), (2,), {"padding": "SAME", "stride_w": 1,
                    "stride_h": 1, "fused_activation_function": "NONE"})  # fmt: skip
    graph = Graph(tensors=tensors, operators=(conv,), inputs=(0,), outputs=(2,))
    with pytest.raises(ModelFormatError, match=r"operator 0 \(CONV_2D\)"):
        NumpyInterpreter(graph)


def test_nan_windows_do_not_poison_the_rest_of_the_batch(
    windows: npt.NDArray[np.float32],
) -> None:
    interp = _model("cnn_w8_a8")
    x = windows[:20].copy()
    clean = interp.run([x])
    x[3, 10:20] = np.nan  # a gap inside one window
    with np.errstate(all="raise"):
        dirty = interp.run([x])
    keep = np.arange(20) != 3
    for a, b in zip(clean, dirty, strict=True):
        np.testing.assert_array_equal(a[keep], b[keep])


def test_folded_plans_give_the_first_runs_results_for_every_batch_size(
    windows: npt.NDArray[np.float32],
) -> None:
    """The shape subgraph is folded per batch size; results must not depend on it.

    Batch sizes cycle through more sizes than the interpreter keeps plans for, so plans
    are evicted and rebuilt on the way.
    """
    graph = read_model_file(MODELS / "transformer_w8_a8.tflite")
    interp = NumpyInterpreter(graph)
    x = windows[:, :16]
    for n in (1, 3, 1, 7, 2, 5, 9, 1, 3):
        first_run = NumpyInterpreter(graph).run([x[:n]])  # a fresh interpreter traces
        folded = interp.run([x[:n]])
        for a, b in zip(first_run, folded, strict=True):
            np.testing.assert_array_equal(a, b)
    opcodes = interp.plan_opcodes(1)
    assert opcodes is not None
    assert "SHAPE" not in opcodes and "REDUCE_PROD" not in opcodes
    assert len(opcodes) < len(graph.operators)
    assert interp.plan_opcodes(4) is None


def _dynamic_reshape() -> NumpyInterpreter:
    tensors = (
        Tensor(0, "x", (1, 4), "float32"),
        Tensor(1, "shape", (1, 2), "int32"),
        Tensor(2, "y", (2, 2), "float32"),
    )
    op = Operator("RESHAPE", 1, (0, 1), (2,), {})
    graph = Graph(tensors=tensors, operators=(op,), inputs=(0, 1), outputs=(2,))
    return NumpyInterpreter(graph)


def test_a_shape_computed_from_values_is_not_folded() -> None:
    interp = _dynamic_reshape()
    x = np.arange(4, dtype=np.float32)[None]
    assert interp.run([x, np.array([[2, 2]], np.int32)])[0].shape == (2, 2)
    assert interp.run([x, np.array([[4, 1]], np.int32)])[0].shape == (4, 1)


def test_a_failing_operator_is_named_on_the_folded_path_too() -> None:
    interp = _dynamic_reshape()
    x = np.arange(4, dtype=np.float32)[None]
    interp.run([x, np.array([[2, 2]], np.int32)])
    with pytest.raises(ModelFormatError, match=r"operator 0 \(RESHAPE\) failed"):
        interp.run([x, np.array([[3, 3]], np.int32)])


def test_a_reshape_that_drops_the_batch_broadcasts_back_per_window() -> None:
    """Keras' attention output projection reshapes ``(1, 3, 4)`` to ``(3, 4)`` and adds
    it to a ``(1, 3, 4)`` residual: at runtime the batch sits in the rows (``N * 3``) and
    must be split again, window by window, before the ADD broadcasts."""
    from .tflite_builder import CodeSpec, ModelSpec, OpSpec, TensorSpec, build, reshape_options

    spec = ModelSpec(
        tensors=[
            TensorSpec((1, 3, 4), name="input"),
            TensorSpec((1, 3, 4), name="output"),
            TensorSpec((3, 4), name="rows"),
        ],
        operators=[
            OpSpec(0, (0,), (2,), reshape_options((3, 4))),
            OpSpec(1, (0, 2), (1,)),
        ],
        codes=[
            CodeSpec(tflite.BuiltinOperator.RESHAPE),
            CodeSpec(tflite.BuiltinOperator.ADD),
        ],
    )
    interpreter = NumpyInterpreter(read_model(build(spec)))
    x = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    (out,) = interpreter.run([x])
    np.testing.assert_array_equal(out, 2 * x)
    (one,) = interpreter.run([x[:1]])
    np.testing.assert_array_equal(one, 2 * x[:1])
