"""Parity of the numpy interpreter with LiteRT's reference kernels (BUILTIN_REF).

Integer outputs (int8/int16) must be bit-exact; float outputs must agree within
``rtol=1e-5``. Float kernels sum in a different order than LiteRT (BLAS vs. nested
loops), which perturbs a result by a few float32 ulps of the *summed terms*, not of the
result: where terms cancel to near zero the relative error is unbounded, so an absolute
floor ``atol=1e-6`` applies. Every model output is O(0.01..1) (normalised power, an
on-probability), so 1e-6 is at least 10,000x below anything the integration shows.

Inputs: random windows at several scales and real REFIT House 2 windows (30 s).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from custom_components.nilm.engine.graph import Graph
from custom_components.nilm.engine.interpreter import NumpyInterpreter
from custom_components.nilm.engine.reader import read_model_file
from scripts.ha_dev.refit import read_refit_csv, refit_30s_file

MODELS = Path(__file__).parent / "models"
MANIFEST: dict[str, dict[str, dict[str, Any]]] = json.loads((MODELS / "manifest.json").read_text())
CASES = [
    pytest.param(name, mode, id=f"{name}-{mode}")
    for name, modes in MANIFEST.items()
    for mode in modes
]
RTOL, ATOL = 1e-5, 1e-6
# Normalisation the test models were calibrated with (scripts/build_engine_test_models.py).
INPUT_MEAN_W, INPUT_STD_W = 400.0, 700.0

litert = pytest.importorskip("ai_edge_litert.interpreter")


def _reference(path: Path, preserve: bool = False) -> Any:
    interp = litert.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=preserve,
    )
    interp.allocate_tensors()
    return interp


@pytest.fixture(scope="module")
def house2_aggregate(data_dir: Path) -> npt.NDArray[np.float32]:
    """One month of REFIT House 2 mains (not the calibration month)."""
    path = refit_30s_file(data_dir, 2, "2014-06")
    return read_refit_csv(path, columns=("Aggregate",))["Aggregate"].astype(np.float32)


def _real_windows(agg: npt.NDArray[np.float32], shape: tuple[int, ...], count: int) -> Any:
    length = int(np.prod(shape))
    starts = np.linspace(0, agg.size - length - 1, count).astype(int)
    wins = np.stack([agg[s : s + length] for s in starts])
    return ((wins - INPUT_MEAN_W) / INPUT_STD_W).reshape(count, *shape).astype(np.float32)


def _inputs(graph: Graph, agg: npt.NDArray[np.float32], seed: int) -> npt.NDArray[Any]:
    """128 random windows (several scales, full integer range) and 64 real ones."""
    spec = graph.tensors[graph.inputs[0]]
    shape = tuple(spec.shape[1:])
    rng = np.random.default_rng(seed)
    if spec.dtype == "float32":
        scales = np.repeat([0.1, 1.0, 3.0, 10.0], 32).reshape(128, *([1] * len(shape)))
        rand = (rng.standard_normal((128, *shape)) * scales).astype(np.float32)
        return np.concatenate([rand, _real_windows(agg, shape, 64)])
    info = np.iinfo(spec.dtype)
    rand_i = rng.integers(info.min, info.max + 1, (128, *shape))
    assert spec.quantization is not None
    scale = float(spec.quantization.scale[0])
    zp = int(spec.quantization.zero_point[0])
    real = np.round(_real_windows(agg, shape, 64) / scale) + zp
    return np.concatenate([rand_i, np.clip(real, info.min, info.max)]).astype(spec.dtype)


def _reference_outputs(interp: Any, graph: Graph, x: npt.NDArray[Any]) -> list[Any]:
    inp = interp.get_input_details()[0]
    by_index = {d["index"]: d for d in interp.get_output_details()}
    outs: list[list[Any]] = [[] for _ in graph.outputs]
    for window in x:
        interp.set_tensor(inp["index"], window[None])
        interp.invoke()
        for k, idx in enumerate(graph.outputs):
            outs[k].append(interp.get_tensor(by_index[idx]["index"]).copy())
    return [np.concatenate(o) for o in outs]


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_outputs_match_litert_reference(
    name: str, mode: str, house2_aggregate: npt.NDArray[np.float32]
) -> None:
    path = MODELS / MANIFEST[name][mode]["file"]
    graph = read_model_file(path)
    x = _inputs(graph, house2_aggregate, seed=zlib.crc32(f"{name}/{mode}".encode()))
    interp = NumpyInterpreter(graph)
    got = interp.run([x])  # the whole batch in one call
    want = _reference_outputs(_reference(path), graph, x)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        assert g.shape == w.shape
        if w.dtype == np.float32:
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
        else:
            np.testing.assert_array_equal(g, w)
    # The live path: one window at a time, through the plan folded for batch size 1.
    singles = [interp.run([window[None]]) for window in x[::24]]
    for k, w in enumerate(want):
        one_by_one = np.concatenate([s[k] for s in singles])
        if w.dtype == np.float32:
            np.testing.assert_allclose(one_by_one, w[::24], rtol=RTOL, atol=ATOL)
        else:
            np.testing.assert_array_equal(one_by_one, w[::24])


QUANTIZED = [
    pytest.param(name, mode, id=f"{name}-{mode}")
    for name, modes in MANIFEST.items()
    for mode in modes
    if mode in ("w8_a8", "w8_a8_io", "w8_a16")
]


@pytest.mark.parametrize(("name", "mode"), QUANTIZED)
def test_every_integer_kernel_is_bit_exact(
    name: str, mode: str, house2_aggregate: npt.NDArray[np.float32]
) -> None:
    """Each operator, fed LiteRT's own inputs, reproduces LiteRT's output tensor.

    Compares intermediates too, so a rounding slip inside the graph cannot hide behind
    a later saturating operator.
    """
    path = MODELS / MANIFEST[name][mode]["file"]
    graph = read_model_file(path)
    interp = _reference(path, preserve=True)
    numpy_interp = NumpyInterpreter(graph)
    x = _inputs(graph, house2_aggregate, seed=7)[::3]
    inp = interp.get_input_details()[0]
    checked = 0
    for window in x:
        interp.set_tensor(inp["index"], window[None])
        interp.invoke()
        for step, (opcode, run, in_idx, out_idx) in enumerate(numpy_interp._evals):
            args = [
                None
                if i < 0
                else (t.data if (t := graph.tensors[i]).data is not None else interp.get_tensor(i))
                for i in in_idx
            ]
            for i, got in zip(out_idx, run(args), strict=True):
                want = interp.get_tensor(i)
                if want.dtype == np.float32:
                    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
                else:
                    assert np.array_equal(got, want), f"operator {step} ({opcode}) differs"
                checked += 1
    assert checked > len(x)
