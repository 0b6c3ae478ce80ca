"""Inspection of the real-data model: per-layer error, selective quantization, ops, backends."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.trainer import quant_support as qs
from trainer import inspection as insp
from trainer.errors import TrainerError


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return qs.trained_run(data_dir, tmp_path_factory.mktemp("inspect"))


@pytest.fixture(scope="module")
def layers_and_selective(run: Any) -> tuple[list[insp.LayerError], Any, insp.InspectConfig]:
    # Threshold at the ideal 0.289 itself, so the output layers (few values, tiny scale)
    # are flagged and the convolutions (close to ideal rounding) are not.
    cfg = insp.InspectConfig(suspect_ratio=1.0, latency_runs=5)
    layers, selective = insp.layer_errors(
        run.model, qs.representative(run), cfg, eval_windows=run.validation_inputs(200)
    )
    return layers, selective, cfg


def test_layer_errors_are_rounding_sized_and_flagged_by_the_ratio(
    layers_and_selective: Any,
) -> None:
    layers, _, cfg = layers_and_selective
    ops = {layer.op_name for layer in layers}
    assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
    for layer in layers:
        assert layer.suspected == (layer.rmse_over_scale > cfg.suspect_threshold)
        assert math.isclose(layer.rmse_over_scale, layer.rmse / layer.scale, rel_tol=1e-6)
    convs = [la.rmse_over_scale for la in layers if la.op_name == "CONV_2D"]
    # int8 rounding of a well-calibrated activation: close to the uniform-noise ideal
    assert 0.1 < float(np.median(convs)) < 0.6, convs
    assert any(la.suspected for la in layers) and not all(la.suspected for la in layers)


def test_report_holds_the_per_layer_table_with_suspected_flag(
    run: Any, layers_and_selective: Any
) -> None:
    layers, selective, cfg = layers_and_selective
    conv = qs.converted_all(run)["w8_a8"]
    window = run.validation_inputs(1)[0]
    ins = insp.inspect_model(
        "w8_a8", conv.data, "w8_a8", window, cfg, layers=tuple(layers), selective=selective
    )
    md = ins.markdown()
    assert "| # | op | tensor | scale | RMSE | RMSE/scale | max abs err | suspected |" in md
    for layer in layers:
        row = next(line for line in md.splitlines() if line.startswith(f"| {layer.tensor_index} |"))
        assert row.endswith("| **yes** |" if layer.suspected else "| no |")
    assert "Ideal RMSE/scale 0.289" in md
    data = json.loads(json.dumps(ins.to_dict()))  # JSON-safe (no NaN tokens)
    assert [la["suspected"] for la in data["layers"]] == [la.suspected for la in layers]
    assert data["suspect_threshold"] == pytest.approx(insp.IDEAL_RMSE_OVER_SCALE)


def test_selective_model_keeps_suspected_layers_in_float(layers_and_selective: Any) -> None:
    from ai_edge_litert.interpreter import Interpreter

    layers, selective, _ = layers_and_selective
    suspected = [la.tensor_name for la in layers if la.suspected]
    assert selective is not None and list(selective.denylisted) == suspected
    dtypes = {
        d["name"]: d["dtype"]
        for d in Interpreter(model_content=selective.data).get_tensor_details()
    }
    conv_names = [la.tensor_name for la in layers if la.op_name == "CONV_2D" and not la.suspected]
    assert any(dtypes.get(name) == np.int8 for name in conv_names)  # the rest stays int8
    kept_float = [n for n in suspected if dtypes.get(n) == np.float32]
    assert kept_float, f"none of {suspected} is float in the selective model"
    assert selective.full_int8_rmse > 0 and math.isfinite(selective.selective_rmse)
    # keeping the worst layers in float must not make the output worse by much
    assert selective.selective_rmse <= 1.2 * selective.full_int8_rmse


def test_op_table_and_backends_measured_in_one_run(run: Any) -> None:
    conv = qs.converted_all(run)
    window = run.validation_inputs(1)[0]
    cfg = insp.InspectConfig(latency_runs=5, warmup_runs=1)
    for label in ("convert_only", "w8_a8", "w8_a8_int8io"):
        data = conv[label].data
        ins = insp.inspect_model(label, data, label, window, cfg)
        assert ins.size_bytes == len(data)
        assert sum(op.count for op in ins.ops) == len(insp.opcodes(data))
        assert all(op.litert for op in ins.ops)
        int8 = label.startswith("w8_a8")
        assert all((op.edgetpu is not None) == int8 for op in ins.ops)
        runs = {r.backend: r for r in ins.backends}
        assert set(runs) == {"litert", "litert_ref", "numpy"}
        for name in ("litert", "litert_ref"):
            assert not runs[name].error and runs[name].median_ms > 0 and runs[name].runs == 5
            assert runs[name].peak_memory_bytes and "VmHWM" in runs[name].memory_method
        numpy_run = runs["numpy"]
        missing = {op.opcode for op in ins.ops if not op.numpy}
        if missing:  # the engine says which op it lacks, and the table agrees
            assert any(op in numpy_run.error for op in missing), numpy_run.error
        else:
            assert not numpy_run.error and numpy_run.median_ms > 0
            assert numpy_run.peak_memory_bytes and "tracemalloc" in numpy_run.memory_method
            assert set(numpy_run.op_times_ms) <= {op.opcode for op in ins.ops}
            assert "CONV_2D" in numpy_run.op_times_ms
            assert "Per-operator time, numpy engine" in ins.markdown()


def test_float_model_runs_on_every_backend(run: Any) -> None:
    """The float model uses only ops the numpy engine implements (CONV_2D, FC, ...)."""
    data = qs.converted_all(run)["convert_only"].data
    unsupported, message = insp.numpy_engine_support(data)
    assert not unsupported, message


def test_inspect_config_validation() -> None:
    with pytest.raises(TrainerError, match="suspect_ratio"):
        insp.InspectConfig(suspect_ratio=0)
    with pytest.raises(TrainerError, match="unknown backend"):
        insp.InspectConfig(backends=("tpu9000",))
