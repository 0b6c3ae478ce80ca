"""Evaluation on the unseen house: metrics from the engine, truth separate from prediction,
the streaming tracker's delays and energy, the rule baseline, report files, and the same
numbers through an exported .tflite on the engine's backend."""

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
from custom_components.nilm.engine.status import status_from_power
from tests.conftest import PROJECT_ROOT
from tests.trainer import training_fixtures
from trainer import evaluate as ev_mod
from trainer.appliances import truth_rule
from trainer.data import DataConfig, HouseData, load_refit_30s
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
        keras_eval.true_w,
        keras_eval.pred_w,
        rule,
        30.0,
        pred_on=keras_eval.pred_on,
        truth_rule=truth_rule("kettle"),
    )
    for key in ("mae_w", "sae", "nde", "f1", "mcc", "accuracy", "energy_per_day_error_wh"):
        assert keras_eval.metrics[key] == pytest.approx(again[key]), key
    assert ev_mod.DEFAULT_DELAY_TOLERANCE_S == nilm_metrics.DEFAULT_DELAY_TOLERANCE_S


def test_report_files(keras_eval: Evaluation, house20_month: HouseData, tmp_path: Path) -> None:
    config = EvalConfig(model="unused")
    report = write_report(keras_eval, config, house20_month, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: no NaN
    assert saved["model"]["f1"] == pytest.approx(keras_eval.metrics["f1"])
    assert saved["backend"] == "keras"
    assert saved["card"]["sha256"] is None  # a Keras run has no model file hash
    assert saved["plotted_day"] == report["plotted_day"]
    table = (tmp_path / "metrics.md").read_text()
    assert "| F1 |" in table and "| MCC |" in table and "| Detection delay (median) |" in table
    assert "| metric | model | rule baseline |" in table
    for png in ("day.png", "errors.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, png
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "unused"


def test_markdown_marks_undefined_values() -> None:
    table = markdown_table({"f1": math.nan, "mae_w": 12.34}, "x")
    assert "| F1 | n/a |" in table
    assert "| MAE | 12.3 W |" in table
    both = markdown_table({"f1": 0.5}, "x", {"f1": math.nan, "running_on_delay_s": 30.0})
    assert "| F1 | 0.500 | n/a |" in both
    assert "| Running on delay (median) | n/a | +30 s |" in both


def test_exported_tflite_scores_like_the_keras_model(
    kettle_run: TrainResult, house20_month: HouseData, keras_eval: Evaluation, tmp_path: Path
) -> None:
    from trainer.models import load_keras_model
    from trainer.quantize import to_tflite

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


# ------------------------------------------------- the shipped model, as users get it

BUNDLED = PROJECT_ROOT / "custom_components" / "nilm" / "models" / "kettle.json"
DAYS = 10


@pytest.fixture(scope="module")
def house20_days(house20_month: HouseData) -> HouseData:
    return dataclasses.replace(house20_month, frame=house20_month.frame.iloc[: DAYS * 2880])


@pytest.fixture(scope="module")
def bundled_eval(house20_days: HouseData) -> Evaluation:
    return evaluate(house20_days, EvalConfig(model=str(BUNDLED)))


def _slow_delays(ev: Evaluation, latency_s: float) -> tuple[list[float], list[float]]:
    """The delay definition written out with loops, from the tracker's on/off series."""
    assert ev.tracker_on is not None and ev.valid is not None
    period = ev.card.sample_period_s
    n = ev.true_on.size

    def runs(on: np.ndarray) -> list[tuple[int, int]]:
        out, start = [], None
        for k in range(n + 1):
            cur = bool(on[k]) if k < n else False
            if cur and start is None:
                start = k
            elif not cur and start is not None:
                out.append((start, k))
                start = None
        return out

    tracker_runs = runs(ev.tracker_on)
    on_delays, off_delays = [], []
    for s, e in runs(ev.true_on):
        match = next(((a, b) for a, b in tracker_runs if a < e and b > s), None)
        if match is None:
            continue
        a, b = match
        if s > 0 and ev.valid[s - 1]:
            on_delays.append(a * period + latency_s - s * period)
        if e < n and ev.valid[e] and b < n and ev.valid[b]:
            off_delays.append(b * period + latency_s - e * period)
    return on_delays, off_delays


def test_bundled_model_truth_prediction_and_tracker(bundled_eval: Evaluation) -> None:
    ev = bundled_eval
    m = ev.metrics
    assert ev.backend == "numpy"  # the default for a card: what Home Assistant OS runs
    assert ev.valid is not None and ev.raw_on is not None and ev.tracker_on is not None
    # Truth from the appliance's definition, prediction from the card's rule.
    truth = truth_rule("kettle")
    expected_true = status_from_power(ev.true_w, truth, 30.0) & ev.valid
    np.testing.assert_array_equal(ev.true_on, expected_true)
    assert m["true_events"] == nilm_metrics.match_events(ev.true_on, ev.pred_on).true_events
    assert m["true_events"] > 10  # real kettle use in ten days
    assert m["event_recall"] == pytest.approx(nilm_metrics.event_recall(ev.true_on, ev.pred_on))
    # The tracker's energy is the offline min-duration energy (nothing left pending).
    assert m["tracker_energy_kwh"] == pytest.approx(m["predicted_energy_kwh"], rel=1e-6)
    latency = (ev.card.window_length - 1 - ev.card.target_index) * 30.0
    assert m["latency_s"] == ev.card.delay_s == latency
    on_delays, off_delays = _slow_delays(ev, ev.card.delay_s)
    assert len(on_delays) == m["running_on_delay_events"] > 5
    assert len(off_delays) == m["running_off_delay_events"]
    assert m["running_on_delay_s"] == pytest.approx(float(np.median(on_delays)))
    assert m["running_off_delay_s"] == pytest.approx(float(np.median(off_delays)))


def test_rule_baseline_is_scored_like_the_model(bundled_eval: Evaluation) -> None:
    ev = bundled_eval
    r = ev.rule_metrics
    assert r is not None and ev.rule_on is not None and ev.rule_w is not None
    assert ev.valid is not None
    assert set(ev.metrics) <= set(r)  # the same metrics, model-only ones as NaN
    assert math.isnan(r["tracker_energy_kwh"])
    assert r["true_events"] == ev.metrics["true_events"]
    assert r["samples"] == ev.metrics["samples"]
    assert not ev.rule_on[~ev.valid].any()
    assert np.all(ev.rule_w[~ev.rule_on] == 0.0)
    again = nilm_metrics.compute_all(
        ev.true_w, ev.rule_w, truth_rule("kettle"), 30.0, pred_on=ev.rule_on
    )
    for key in ("f1", "mcc", "mae_w", "event_recall", "event_precision"):
        assert r[key] == pytest.approx(again[key]), key
    assert 0.0 < r["f1"] <= 1.0
    assert r["running_on_delay_events"] > 0


def test_report_schema(bundled_eval: Evaluation, house20_days: HouseData, tmp_path: Path) -> None:
    config = EvalConfig(model=str(BUNDLED))
    write_report(bundled_eval, config, house20_days, tmp_path, command="nilm-trainer evaluate x")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    card = load_card(BUNDLED)
    assert saved["card"] == {
        "name": "kettle",
        "appliance": "kettle",
        "sample_period_s": 30.0,
        "window_length": card.window_length,
        "target_index": card.target_index,
        "quantization": card.quantization,
        "sha256": card.tflite_sha256,
    }
    index = house20_days.frame.index
    assert saved["span"] == [index[0].isoformat(), index[-1].isoformat()]
    assert saved["samples"] == len(index)
    assert saved["house"] == house20_days.source
    assert saved["backend"] == "numpy"
    assert saved["command"] == "nilm-trainer evaluate x"
    assert saved["model"]["f1"] == pytest.approx(bundled_eval.metrics["f1"])
    assert saved["rule"]["f1"] == pytest.approx(bundled_eval.rule_metrics["f1"])  # type: ignore[index]
    assert saved["rule"]["tracker_energy_kwh"] is None  # NaN -> null
    assert saved["rule_baseline"]["appliance"] == "kettle"
    table = (tmp_path / "metrics.md").read_text()
    m, r = saved["model"], saved["rule"]
    assert f"| F1 | {m['f1']:.3f} | {r['f1']:.3f} |" in table
    assert "Regenerate: `nilm-trainer evaluate x`" in table
    assert (tmp_path / "day.png").read_bytes().startswith(PNG_MAGIC)


def _card_at(tmp_path: Path, period_s: float) -> Path:
    """The bundled kettle model with its card claiming another sample period."""
    raw = json.loads(BUNDLED.read_text())
    raw["sample_period_s"] = period_s
    (tmp_path / "kettle.tflite").write_bytes((BUNDLED.parent / "kettle.tflite").read_bytes())
    path = tmp_path / "kettle.json"
    path.write_text(json.dumps(raw))
    return path


def test_cli_defaults_whole_test_house_at_the_card_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer import cli

    class Loaded(Exception):
        pass

    seen: dict[str, object] = {}

    def fake_load(args: object) -> HouseData:
        seen.update(vars(args))
        raise Loaded

    monkeypatch.setattr(cli, "load_source", fake_load)
    card = _card_at(tmp_path, 60.0)
    args = cli.build_parser().parse_args(["evaluate", "--model", str(card), "--out", "o"])
    with pytest.raises(Loaded):
        args.func(args)
    assert (seen["source"], seen["house"], seen["months"]) == ("refit30s", 20, None)
    assert seen["period"] == 60.0  # the card's, so the loader resamples 30 s to 60 s
    assert seen["backend"] == "numpy"


def test_command_line_names_what_differs_from_defaults() -> None:
    from trainer import cli

    parser = cli.build_parser()
    argv = ["evaluate", "--model", "m.json", "--out", "r", "--months", "2014-05", "--no-plots"]
    args = parser.parse_args(argv)
    sub = args.func.keywords["parser"]
    assert cli.command_line(args, sub) == (
        "nilm-trainer evaluate --model m.json --out r --no-plots --months 2014-05"
    )


def test_a_60_s_model_runs_at_60_s_with_its_own_latency(
    data_dir: Path, house20_days: HouseData, tmp_path: Path
) -> None:
    card_path = _card_at(tmp_path, 60.0)
    house = load_refit_30s(data_dir, 20, ["2014-05"], DataConfig(period_s=60.0))
    days = dataclasses.replace(house, frame=house.frame.iloc[: 4 * 1440])
    ev = evaluate(days, EvalConfig(model=str(card_path), plots=False))
    card = ev.card
    assert ev.metrics["latency_s"] == (card.window_length - 1 - card.target_index) * 60.0
    assert ev.metrics["samples"] > 3 * 1440
    assert ev.rule_metrics is not None
    assert ev.rule_metrics["samples"] == ev.metrics["samples"]
    with pytest.raises(TrainerError, match="expects 60 s"):
        evaluate(house20_days, EvalConfig(model=str(card_path)))
