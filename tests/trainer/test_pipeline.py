"""The one-shot pipeline and the quantize/inspect/export sub-commands on real data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from custom_components.nilm.engine.card import load_card
from custom_components.nilm.engine.model import load_model
from tests.trainer import quant_support as qs
from trainer.cli import main
from trainer.config import PIPELINE_TRAINING, SourceConfig, TrainConfig, build_train_config
from trainer.errors import TrainerError
from trainer.pipeline import PipelineConfig, run_pipeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return qs.trained_run(data_dir, tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def result(run: Any, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg = qs.pipeline_config(data_dir, name="kettle_test")
    out = tmp_path_factory.mktemp("pipeline_run")
    return run_pipeline(cfg, out, progress=False, log=lambda *_: None, train_run=run)


def test_report_has_side_by_side_accuracy_and_layer_table(result: Any) -> None:
    md = (result.run_dir / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| variant | val MAE W"))
    assert "| test MAE W |" in header and "| val mean abs Δ W |" in header
    assert "test = REFIT house 20 (unseen test house" in md
    assert "val = REFIT house 2 validation block" in md
    assert md.count("| float (Keras) | ") == 1  # one accuracy row, both splits side by side
    for variant in ("convert_only", "w8", "w8_a8", "w8_a16"):
        # accuracy, conversion, latency and memory rows
        assert md.count(f"| {variant} | ") == 4, variant
    assert "| # | op | tensor | scale | RMSE | RMSE/scale | max abs err | suspected |" in md
    assert "edgetpu_compiler -s -o" in md
    report = json.loads((result.run_dir / "report.json").read_text())
    assert "NaN" not in (result.run_dir / "report.json").read_text()
    acc = report["accuracy"]
    assert set(acc) == {"float (Keras)", "convert_only", "w8", "w8_a8", "w8_a16"}
    for variant, per_split in acc.items():
        for split in ("validation", "test"):
            m = per_split[split]
            assert m["samples"] == 5000, (variant, split)
            assert m["on_agreement_vs_float"] >= 0.98, (variant, split, m)
    # float conversion is the Keras model: same gated predictions to the milliwatt
    assert acc["convert_only"]["test"]["max_abs_diff_vs_float_w"] < 0.01
    assert acc["float (Keras)"]["test"]["mae_w"] == pytest.approx(
        acc["convert_only"]["test"]["mae_w"], abs=1e-3
    )
    rep = report["representative"]
    assert "house 2" in rep["house"].lower() and rep["excluded_houses"] == ["REFIT house 20"]
    assert rep["on"] == rep["off"] == 64
    assert report["inspection"]["w8_a8"]["layers"], "per-layer table missing from JSON"


def test_every_artifact_has_its_config_beside_it(result: Any) -> None:
    run_dir = result.run_dir
    tflites = sorted((run_dir / "models").glob("*.tflite"))
    assert {p.stem for p in tflites} >= {"convert_only", "w8", "w8_a8", "w8_a16", "w8_a8_int8io"}
    for path in tflites:
        if path.stem.endswith("selective"):
            cfg = json.loads(path.with_name(path.stem + ".config.json").read_text())
            assert cfg["denylisted_nodes"]
            continue
        cfg = json.loads(path.with_name(path.stem + ".config.json").read_text())
        assert cfg["pipeline"]["train"]["appliance"] == "kettle"
        assert cfg["quantize"]["mode"] == path.stem.removesuffix("_int8io")
        load_card(path.with_suffix(".json"))  # each variant is engine-loadable
    pngs = sorted((run_dir / "plots").glob("*.png"))
    assert {p.stem for p in pngs} == {"layer_error", "latency", "traces_validation", "traces_test"}
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert png.with_name(png.stem + ".config.json").is_file()
    assert (run_dir / "report.config.json").is_file() and (run_dir / "config.json").is_file()


def test_exported_model_loads_in_engine_with_its_card(result: Any, run: Any) -> None:
    export_dir = result.run_dir / "export"
    card = load_card(export_dir / "kettle_test.json")
    assert card.quantization == "w8_a8" and card.delay_s == 60.0
    assert set(card.metrics) >= {"validation", "test_house_20"}
    assert card.training["test_house"] == "REFIT house 20"
    model = load_model(export_dir / "kettle_test.json", "litert")
    norm = run.split.norm
    x = run.validation_inputs(64) * np.float32(norm.input_std_w) + np.float32(norm.input_mean_w)
    pred = model.predict(x)
    assert pred.power_w.shape == (64,) and np.all(pred.power_w >= 0)
    assert (export_dir / "edgetpu" / "kettle_test.tflite").is_file()


def test_pipeline_config_refuses_leaks_and_bad_modes() -> None:
    kettle = build_train_config("kettle", preset=PIPELINE_TRAINING)
    with pytest.raises(TrainerError, match="test house must differ"):
        PipelineConfig(train=dataclasses.replace(kettle, data={"house": 20}))
    with pytest.raises(TrainerError, match="test house must differ"):  # the same house at 8 s
        PipelineConfig(train=kettle, test=SourceConfig(source="refit8s"))
    with pytest.raises(TrainerError, match="export mode"):
        PipelineConfig(train=kettle, modes=("w8",), export_mode="w8_a8")


def test_the_pipeline_preset_is_train_s_defaults_but_a_few() -> None:
    """One TrainConfig builder: the preset changes only the fields it names."""
    plain = build_train_config("kettle")
    quick = build_train_config("kettle", preset=PIPELINE_TRAINING)
    assert plain == TrainConfig(appliance="kettle")
    assert quick.windows.target_index == 96 and quick.model.window_length == 99
    assert dataclasses.replace(
        quick, model=plain.model, windows=plain.windows, epochs=plain.epochs,
        learning_rate=plain.learning_rate, patience=plain.patience,
    ) == plain  # fmt: skip
    assert quick.windows.max_windows == 200_000 and plain.windows.max_windows is None
    with pytest.raises(TrainerError, match="unknown training option"):
        build_train_config("kettle", {"windw_length": 99})


def test_cli_pipeline_then_quantize_inspect_export(data_dir: Path, tmp_path: Path) -> None:
    """The documented commands, end to end with a real (tiny) training."""
    run_dir = tmp_path / "run"
    common = ["--data-dir", str(data_dir), "--months", *qs.TRAIN_MONTHS]
    code = main([
        "pipeline", "--appliance", "kettle", "--run-dir", str(run_dir), *common,
        "--test-months", *qs.TEST_MONTHS, "--window", "99", "--target", "96",
        "--width", "0.25", "--epochs", "1", "--steps-per-epoch", "5", "--batch-size", "128",
        "--max-windows", "5000", "--max-validation-windows", "2000",
        "--eval-max-windows", "2000", "--representative-size", "32", "--latency-runs", "3",
        "--modes", "convert_only", "w8", "w8_a8", "--no-plots", "--no-progress",
    ])  # fmt: skip
    assert code == 0
    assert load_card(run_dir / "export" / "kettle.json").quantization == "w8_a8"

    out = tmp_path / "q"
    assert main(["quantize", str(run_dir / "train"), "--out", str(out), "--mode", "w8_a16",
                 "--data-dir", str(data_dir), "--representative-size", "16"]) == 0  # fmt: skip
    meta = json.loads((out / "w8_a16.config.json").read_text())
    assert meta["representative"]["size"] == 16 and meta["config"]["mode"] == "w8_a16"

    assert main(["inspect", str(out / "w8_a16.tflite"), "--out", str(tmp_path / "i"),
                 "--runs", "3"]) == 0  # fmt: skip
    ins = json.loads((tmp_path / "i" / "inspection.json").read_text())
    assert ins[0]["size_bytes"] == (out / "w8_a16.tflite").stat().st_size

    assert main(["export", str(run_dir), "--mode", "w8", "--name", "kettle_w8",
                 "--out", str(tmp_path / "models")]) == 0  # fmt: skip
    card = load_card(tmp_path / "models" / "kettle_w8.json")
    assert card.quantization == "w8" and "test_house_20" in card.metrics

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3" + bytes(60))
    assert main(["inspect", str(bad)]) == 2

    # a calibration leak through the CLI is one clear error, exit status 2
    assert main(["quantize", str(run_dir / "train"), "--out", str(out), "--test-house", "2",
                 "--data-dir", str(data_dir)]) == 2  # fmt: skip
