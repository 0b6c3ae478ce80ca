"""Evaluation on the unseen house: metrics from the engine, gating, report files, and the
same numbers through an exported .tflite on the engine's backend."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from custom_components.nilm.engine import metrics as nilm_metrics
from custom_components.nilm.engine.card import ModelCard, load_card
from tests.trainer import training_fixtures
from trainer import evaluate as ev_mod
from trainer.data import HouseData, load_refit_30s
from trainer.errors import TrainerError
from trainer.evaluate import EvalConfig, Evaluation, evaluate, markdown_table, write_report
from trainer.train import TrainResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
house2_spring = training_fixtures.house2_spring
kettle_run = training_fixtures.kettle_run


@pytest.fixture(scope="module")
def house20_month(data_dir: Path) -> HouseData:
    return load_refit_30s(data_dir, 20, ["2014-05"])


@pytest.fixture(scope="module")
def keras_eval(kettle_run: TrainResult, house20_month: HouseData) -> Evaluation:
    return evaluate(house20_month, EvalConfig(model=str(kettle_run.run_dir)))


def test_metrics_on_unseen_house(keras_eval: Evaluation, house20_month: HouseData) -> None:
    m = keras_eval.metrics
    # Every complete window is scored (House 20's May 2014 is barely masked).
    assert m["coverage"] > 0.9
    assert m["samples"] == pytest.approx(m["coverage"] * len(house20_month.frame))
    assert m["true_onsets"] > 50  # real kettle use in a month
    # A 10-second model is no reference model, but it must find the kettle in a house it
    # never saw (measured: F1 0.82, MCC 0.83, MAE 2.4 W vs 5.2 W for all-off).
    assert m["f1"] > 0.6
    assert m["mcc"] > 0.6
    zero_mae = float(np.nanmean(np.abs(keras_eval.true_w)))
    assert m["mae_w"] < zero_mae
    assert abs(m["detection_delay_s"]) <= 120


def test_power_is_gated_by_the_status_and_metrics_come_from_the_engine(
    keras_eval: Evaluation,
) -> None:
    assert np.all(keras_eval.pred_w[~keras_eval.pred_on] == 0.0)
    assert np.any(keras_eval.pred_w[keras_eval.pred_on] > 0.0)
    rule = keras_eval.card.status
    again = nilm_metrics.compute_all(
        keras_eval.true_w, keras_eval.pred_w, rule, 30.0, pred_on=keras_eval.pred_on
    )
    for key in ("mae_w", "sae", "nde", "f1", "mcc", "accuracy", "energy_per_day_error_wh"):
        assert keras_eval.metrics[key] == pytest.approx(again[key]), key
    assert ev_mod.DEFAULT_DELAY_TOLERANCE_S == nilm_metrics.DEFAULT_DELAY_TOLERANCE_S


def test_report_files(keras_eval: Evaluation, house20_month: HouseData, tmp_path: Path) -> None:
    config = EvalConfig(model="unused")
    report = write_report(keras_eval, config, house20_month, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: no NaN
    assert saved["metrics"]["f1"] == pytest.approx(keras_eval.metrics["f1"])
    assert saved["plotted_day"] == report["plotted_day"]
    table = (tmp_path / "metrics.md").read_text()
    assert "| F1 |" in table and "| MCC |" in table and "| Detection delay (median) |" in table
    for png in ("day.png", "errors.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, png
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "unused"


def test_markdown_marks_undefined_values() -> None:
    table = markdown_table({"f1": math.nan, "mae_w": 12.34}, "x")
    assert "| F1 | n/a |" in table
    assert "| MAE | 12.3 W |" in table


def test_exported_tflite_scores_like_the_keras_model(
    kettle_run: TrainResult, house20_month: HouseData, keras_eval: Evaluation, tmp_path: Path
) -> None:
    from trainer.models import load_keras_model, to_tflite

    model = load_keras_model(str(kettle_run.run_dir / "model.keras"))
    tflite_path = tmp_path / "kettle.tflite"
    tflite_path.write_bytes(to_tflite(model))
    card = load_card(kettle_run.run_dir / "card.json", verify_hash=False).with_file(tflite_path)
    card_path = tmp_path / "kettle.json"
    card_path.write_text(card.to_json())
    assert isinstance(card, ModelCard)
    lite = evaluate(house20_month, EvalConfig(model=str(tflite_path), backend="auto"))
    for key in ("f1", "mcc", "mae_w"):
        assert lite.metrics[key] == pytest.approx(keras_eval.metrics[key], rel=0.02, abs=0.01)
    # The pure-numpy engine (what Alpine installs run) on four days of the same house.
    days = dataclasses.replace(house20_month, frame=house20_month.frame.iloc[: 4 * 2880])
    numpy_eval = evaluate(days, EvalConfig(model=str(card_path), backend="numpy"))
    keras_days = evaluate(days, EvalConfig(model=str(kettle_run.run_dir)))
    assert numpy_eval.metrics["true_onsets"] > 5
    np.testing.assert_array_equal(numpy_eval.pred_on, keras_days.pred_on)
    np.testing.assert_allclose(numpy_eval.pred_w, keras_days.pred_w, rtol=1e-3, atol=0.5)


def test_model_resolution_errors(kettle_run: TrainResult, tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="not found"):
        ev_mod.resolve_model(tmp_path / "missing")
    lonely = tmp_path / "model.keras"
    lonely.write_bytes((kettle_run.run_dir / "model.keras").read_bytes())
    with pytest.raises(TrainerError, match=r"no card\.json"):
        ev_mod.resolve_model(lonely)
    with pytest.raises(TrainerError, match="expected a run directory"):
        ev_mod.resolve_model(kettle_run.run_dir / "best.weights.h5")
