"""Evaluation as users get it: a held-out house, the engine users run, and a rule baseline.

The model runs on every complete window of the test house (stride 1), so the predicted
series is contiguous and the on/off rules mean what they mean in the integration:

- *truth* is the appliance's own definition of running (:func:`trainer.appliances.
  truth_rule`: sub-meter power above its threshold, its minimum on/off durations), never
  the model card's;
- *prediction* is the card's rule: the probability threshold on the status head (the
  power threshold without one), then the card's minimum on/off durations, applied per
  stretch of complete windows (a gap resets the integration's tracker, so nothing is
  bridged across it). Power is gated by that status, as ``NilmModel.predict`` does;
- the *"Running" delays* replay the raw decisions sample by sample through
  :class:`engine.status.StatusTracker`, exactly what the integration's binary sensor
  shows, with the model's latency ``(window_length - 1 - target_index) * period``: a
  decision about target sample ``k`` exists at ``t(k) + latency``. The tracker's energy
  (``tracker_energy_kwh``) is reported beside the offline ``predicted_energy_kwh``.

Samples whose window is incomplete (masked gaps) are excluded from every metric. The same
metrics score a non-learned rule baseline (:mod:`trainer.baselines`) on the same samples.

A Keras run directory (``model.keras`` + ``card.json``) and an exported ``.tflite`` with its
card go through the same code; the latter runs on the engine's backends (default: the pure
numpy engine that Home Assistant OS installs run), so the numbers are those of the file
users install.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from .config import BACKENDS, DEFAULT_BACKEND, DEFAULT_DELAY_TOLERANCE_S, EvalConfig
from .data import HouseData
from .errors import TrainerError
from .files import CARD_JSON, MODEL_KERAS, write_json
from .windows import valid_starts

__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "DEFAULT_DELAY_TOLERANCE_S", "METRIC_ROWS", "EvalConfig",
    "Evaluation", "card_summary", "evaluate", "markdown_table", "predict_series",
    "resolve_model", "write_report",
]  # fmt: skip

if TYPE_CHECKING:
    # The engine is imported inside functions: importing it loads the integration
    # package (and Home Assistant) today, which `--help` must not pay for.
    from custom_components.nilm.engine.card import ModelCard
    from custom_components.nilm.engine.metrics import RunningPeriods
    from custom_components.nilm.engine.model import Prediction

    from .baselines import RulePrediction

FloatArray = npt.NDArray[np.float32]
# A model's post-processed output for N windows: the engine's Prediction (its raw power,
# probability and on/off decision), whatever runs the model.
Predictor = Callable[[FloatArray], "Prediction"]

METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("mae_w", "MAE", "{:.1f} W"),
    ("sae", "SAE", "{:.3f}"),
    ("nde", "NDE", "{:.3f}"),
    ("energy_per_day_error_wh", "Energy/day error", "{:.0f} Wh"),
    ("accuracy", "Accuracy", "{:.4f}"),
    ("precision", "Precision", "{:.3f}"),
    ("recall", "Recall", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("mcc", "MCC", "{:.3f}"),
    ("event_recall", "Event recall", "{:.3f}"),
    ("event_precision", "Event precision", "{:.3f}"),
    ("true_events", "True events", "{:.0f}"),
    ("predicted_events", "Predicted events", "{:.0f}"),
    ("running_on_delay_s", "Running on delay (median)", "{:+.0f} s"),
    ("running_on_delay_events", "Running on delays measured", "{:.0f}"),
    ("running_off_delay_s", "Running off delay (median)", "{:+.0f} s"),
    ("running_off_delay_events", "Running off delays measured", "{:.0f}"),
    ("detection_delay_s", "Detection delay (median)", "{:+.0f} s"),
    ("matched_onsets", "Matched switch-ons", "{:.0f}"),
    ("true_onsets", "True switch-ons", "{:.0f}"),
    ("true_energy_kwh", "True energy", "{:.1f} kWh"),
    ("predicted_energy_kwh", "Predicted energy", "{:.1f} kWh"),
    ("tracker_energy_kwh", "Energy counted by the tracker", "{:.1f} kWh"),
    ("raw_mae_w", "MAE without status gating", "{:.1f} W"),
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Metrics plus the aligned series behind them (for plots and further checks);
    ``true_w`` is NaN wherever no complete window ends the sample's context (``valid``
    False). ``true_on`` follows the appliance's truth rule, ``pred_on`` the card's rule on
    ``raw_on`` (the thresholded decisions), ``tracker_on`` the integration's streaming
    state. ``rule_*`` hold the rule baseline (None when it was not run)."""

    metrics: dict[str, float]
    card: ModelCard
    times: Any  # pandas.DatetimeIndex of the test house
    mains_w: FloatArray
    true_w: FloatArray
    pred_w: FloatArray
    true_on: npt.NDArray[np.bool_]
    pred_on: npt.NDArray[np.bool_]
    valid: npt.NDArray[np.bool_] | None = None
    raw_on: npt.NDArray[np.bool_] | None = None
    tracker_on: npt.NDArray[np.bool_] | None = None
    backend: str = ""  # the engine backend of a .tflite model, "keras" for a Keras one
    rule_metrics: dict[str, float] | None = None
    rule_w: FloatArray | None = None
    rule_on: npt.NDArray[np.bool_] | None = None
    rule: RulePrediction | None = None


def resolve_model(path: str | Path) -> tuple[Path, ModelCard, str]:
    """(model file, card, kind) for a run directory, a ``model.keras``, a ``.tflite`` or
    a card ``.json``; the card must sit beside the model."""
    from custom_components.nilm.engine.card import load_card

    p = Path(path)
    if p.is_dir():
        p = p / MODEL_KERAS
    if not p.exists():
        raise TrainerError(f"model {p} not found")
    if p.suffix == ".keras":
        card_path = p.with_name(CARD_JSON)
        if not card_path.is_file():
            raise TrainerError(f"{p} has no card.json beside it (written by 'train')")
        return p, load_card(card_path, verify_hash=False), "keras"
    if p.suffix == ".json":
        card = load_card(p, verify_hash=True)
        tflite = p.with_name(card.tflite_file or p.stem + ".tflite")
        return tflite, card, "tflite"
    if p.suffix == ".tflite":
        card_path = p.with_suffix(".json")
        if not card_path.is_file():
            raise TrainerError(f"{p} has no model card {card_path.name} beside it")
        return p, load_card(card_path, verify_hash=True), "tflite"
    raise TrainerError(f"{p}: expected a run directory, .keras, .tflite or card .json")


def model_predictor(model: Any) -> Predictor:
    """An ``engine.model.NilmModel``'s predictions: the integration's own post-processing
    (gating, the card's threshold), whether the model runs on Keras or on one of the
    engine's backends."""
    predict: Predictor = model.predict
    return predict


def keras_predictor(model_path: Path, card: ModelCard, batch_size: int) -> Predictor:
    """A float Keras run through the engine's ``NilmModel`` (see :mod:`trainer.keras_backend`)."""
    from .keras_backend import keras_model

    return model_predictor(keras_model(str(model_path), card, batch_size))


def tflite_predictor(card_path: Path, backend: str) -> Predictor:
    """The engine's own model loader: what the integration will run."""
    from custom_components.nilm.engine.model import load_model

    return model_predictor(load_model(card_path, backend))


def predict_series(
    house: HouseData, appliance: str, card: ModelCard, predictor: Predictor, batch_size: int
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Raw power and probability at every target sample of the house (NaN where the
    window is incomplete), the predictor's raw on/off decision there (False elsewhere),
    and the valid target indices."""
    aggregate = house.frame["aggregate"].to_numpy(dtype=np.float32)
    target = house.column(appliance)
    starts = valid_starts(aggregate, target, card.window_length, card.target_index)
    if starts.size == 0:
        raise TrainerError(
            f"{house.source}: no complete {card.window_length}-sample windows for {appliance}"
        )
    view = sliding_window_view(aggregate, card.window_length)
    n = aggregate.size
    power = np.full(n, np.nan, dtype=np.float32)
    prob = np.full(n, np.nan, dtype=np.float32)
    on = np.zeros(n, dtype=bool)
    idx = starts + card.target_index
    chunk = max(batch_size, 1) * 16
    for i in range(0, starts.size, chunk):
        sel = starts[i : i + chunk]
        out = predictor(np.ascontiguousarray(view[sel], dtype=np.float32))
        power[idx[i : i + chunk]] = out.raw_power_w
        on[idx[i : i + chunk]] = out.on
        if out.probability is not None:
            prob[idx[i : i + chunk]] = out.probability
    return power, prob, on, idx


def min_durations_per_segment(
    raw_on: npt.NDArray[np.bool_], valid: npt.NDArray[np.bool_], min_on: int, min_off: int
) -> npt.NDArray[np.bool_]:
    """``apply_min_durations`` on each stretch of valid samples separately: the
    integration's tracker resets at a gap, so neither a short gap nor a short run is
    bridged across one. False outside ``valid``."""
    from custom_components.nilm.engine.metrics import event_bounds
    from custom_components.nilm.engine.status import apply_min_durations

    on = np.zeros(raw_on.size, dtype=bool)
    starts, ends = event_bounds(valid)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        on[start:end] = apply_min_durations(raw_on[start:end], min_on, min_off)
    return on


def rule_periods(
    rule_on: npt.NDArray[np.bool_],
    confirmed_at: npt.NDArray[np.intp],
    valid: npt.NDArray[np.bool_],
    period_s: float,
) -> RunningPeriods:
    """The rule's "running" periods: on once the rule is confirmed (at the step's minimum
    duration), off when the step or cycle window ends, both seen on the mains at once."""
    from custom_components.nilm.engine.metrics import RunningPeriods, event_bounds

    starts, ends = event_bounds(rule_on)
    on_idx = np.maximum(starts, confirmed_at[starts]) if starts.size else starts
    off_known = ends < rule_on.size
    off_known[off_known] = valid[ends[off_known]]
    return RunningPeriods(
        start=starts,
        end=ends,
        on_time_s=on_idx * float(period_s),
        off_time_s=ends * float(period_s),
        off_known=off_known,
    )


def evaluate(house: HouseData, config: EvalConfig) -> Evaluation:
    """Run the model (and the rule baseline) over the house and compute every metric
    (see module doc). The house must be at the card's sample period."""
    model_path, card, kind = resolve_model(config.model)
    if kind == "keras":
        predictor = keras_predictor(model_path, card, config.batch_size)
        backend = "keras"
    else:
        card_path = Path(config.model)
        if card_path.suffix == ".tflite":
            card_path = card_path.with_suffix(".json")
        predictor = tflite_predictor(card_path, config.backend)
        backend = config.backend
    return evaluate_predictor(house, card, predictor, config, backend)


def evaluate_predictor(
    house: HouseData, card: ModelCard, predictor: Predictor, config: EvalConfig, backend: str
) -> Evaluation:
    """:func:`evaluate` for a model already open (e.g. one with a household's re-fitted
    heads, whose threshold the card passed in carries)."""
    from custom_components.nilm.engine import metrics as nilm_metrics
    from custom_components.nilm.engine.status import durations_to_samples, status_from_power

    from .appliances import truth_rule

    appliance = card.appliance
    if abs(house.period_s - card.sample_period_s) > 1e-6:
        raise TrainerError(
            f"{house.source} is at {house.period_s:g} s but the model expects "
            f"{card.sample_period_s:g} s: load it with --period {card.sample_period_s:g}"
        )
    raw_power, _, raw_on, idx = predict_series(house, appliance, card, predictor, config.batch_size)
    valid = np.zeros(raw_power.size, dtype=bool)
    valid[idx] = True
    rule = card.status
    truth = truth_rule(appliance)
    period = card.sample_period_s
    pred_on = min_durations_per_segment(
        raw_on,
        valid,
        durations_to_samples(rule.min_on_s, period),
        durations_to_samples(rule.min_off_s, period),
    )
    pred_w = np.where(pred_on, np.nan_to_num(raw_power, nan=0.0), 0.0).astype(np.float32)
    true_w = house.column(appliance).copy()
    true_w[~valid] = np.nan
    tol = config.delay_tolerance_s
    result = nilm_metrics.compute_all(
        true_w, pred_w, rule, period, pred_on=pred_on, tolerance_s=tol, truth_rule=truth
    )
    result["raw_mae_w"] = nilm_metrics.mae(true_w, np.where(valid, raw_power, np.nan))
    result["coverage"] = float(valid.mean())
    true_on = status_from_power(true_w, truth, period) & valid
    # What the integration shows: the raw decisions through the streaming tracker, the
    # ungated raw power into its energy counter (as the coordinator feeds it).
    tracked = nilm_metrics.track_status(
        raw_on, raw_power, valid, rule, period, latency_s=card.delay_s
    )
    delays = nilm_metrics.running_delays(true_on, tracked.periods, period, valid)
    result.update(nilm_metrics.delay_metrics(delays))
    result["tracker_energy_kwh"] = tracked.energy_kwh
    result["latency_s"] = card.delay_s
    mains = house.frame["aggregate"].to_numpy(dtype=np.float32)

    rule_pred = rule_metrics = rule_w = rule_on = None
    if config.rule_baseline:
        from .baselines import predict_rule

        rule_pred = predict_rule(mains, appliance, period)
        rule_on = rule_pred.on & valid
        rule_w = np.where(rule_on, rule_pred.power_w, 0.0).astype(np.float32)
        rule_metrics = nilm_metrics.compute_all(
            true_w, rule_w, truth, period, pred_on=rule_on, tolerance_s=tol, truth_rule=truth
        )
        rule_metrics["raw_mae_w"] = rule_metrics["mae_w"]  # the rule has no ungated output
        rule_metrics["coverage"] = result["coverage"]
        periods = rule_periods(rule_on, rule_pred.confirmed_at, valid, period)
        rule_delays = nilm_metrics.running_delays(true_on, periods, period, valid)
        rule_metrics.update(nilm_metrics.delay_metrics(rule_delays))
        rule_metrics["tracker_energy_kwh"] = math.nan  # no tracker: the rule decides itself
        rule_metrics["latency_s"] = 0.0
    return Evaluation(
        metrics=result,
        card=card,
        times=house.frame.index,
        mains_w=mains,
        true_w=true_w,
        pred_w=pred_w,
        true_on=true_on,
        pred_on=pred_on,
        valid=valid,
        raw_on=raw_on,
        tracker_on=tracked.is_on,
        backend=backend,
        rule_metrics=rule_metrics,
        rule_w=rule_w,
        rule_on=rule_on,
        rule=rule_pred,
    )


def _format(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else fmt.format(value)


def markdown_table(
    metrics: dict[str, float], title: str, rule: dict[str, float] | None = None
) -> str:
    """One metric per row; with ``rule`` the rule baseline's value in a second column."""
    if rule is None:
        lines = [f"### {title}", "", "| metric | value |", "|---|---|"]
    else:
        lines = [f"### {title}", "", "| metric | model | rule baseline |", "|---|---|---|"]
    for key, label, fmt in METRIC_ROWS:
        text = _format(metrics.get(key, math.nan), fmt)
        if rule is None:
            lines.append(f"| {label} | {text} |")
        else:
            lines.append(f"| {label} | {text} | {_format(rule.get(key, math.nan), fmt)} |")
    return "\n".join(lines) + "\n"


def _plot_day(ev: Evaluation, day: str | None, path: Path) -> str:
    import matplotlib

    from custom_components.nilm.engine.metrics import onsets

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    times = pd.DatetimeIndex(ev.times)
    days = times.floor("D")
    if day is None:
        onset_idx = onsets(ev.true_on)
        if onset_idx.size:
            counts = pd.Series(days[onset_idx]).value_counts()
            chosen = counts.index[0]
        else:
            chosen = days[0]
    else:
        chosen = pd.Timestamp(day, tz="UTC")
        if not (days == chosen).any():
            raise TrainerError(f"day {day} is not in the test data")
    sel = np.flatnonzero(days == chosen)
    t = times[sel]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.plot(t, ev.mains_w[sel], color="0.8", lw=0.8, label="mains")
    ax.plot(t, ev.true_w[sel], color="tab:blue", lw=1.2, label="true")
    ax.plot(t, ev.pred_w[sel], color="tab:orange", lw=1.0, label="model (gated)")
    if ev.rule_w is not None:
        ax.plot(t, ev.rule_w[sel], color="tab:green", lw=0.9, alpha=0.8, label="rule baseline")
    for onset in onsets(ev.true_on[sel]):
        ax.axvline(t[onset], color="tab:blue", ls=":", lw=0.8)
    for onset in onsets(ev.pred_on[sel]):
        ax.axvline(t[onset], color="tab:orange", ls="--", lw=0.8)
    if ev.rule_on is not None:
        for onset in onsets(ev.rule_on[sel]):
            ax.axvline(t[onset], color="tab:green", ls="-.", lw=0.6)
    ax.set_ylabel("power (W)")
    ax.set_title(
        f"{ev.card.appliance} ({ev.card.architecture}), {chosen:%Y-%m-%d} UTC; switch-ons: "
        "dotted true, dashed model, dash-dot rule"
    )
    ax.legend(loc="upper right")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"{chosen:%Y-%m-%d}"


def _plot_errors(ev: Evaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.isfinite(ev.true_w)
    err = (ev.pred_w - ev.true_w)[ok]
    on = ev.true_on[ok] | ev.pred_on[ok]
    fig, ax = plt.subplots(figsize=(8, 4))
    bins = np.linspace(-3000, 3000, 121).tolist()
    ax.hist(np.clip(err, bins[0], bins[-1]), bins=bins, color="0.6", label="all samples")
    if on.any():
        ax.hist(
            np.clip(err[on], bins[0], bins[-1]),
            bins=bins,
            color="tab:orange",
            alpha=0.8,
            label="on in truth or prediction",
        )
    ax.set_yscale("log")
    ax.set_xlabel("predicted - true power (W, clipped to ±3 kW)")
    ax.set_ylabel("samples")
    ax.set_title(f"{ev.card.appliance}: error distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def card_summary(card: ModelCard) -> dict[str, Any]:
    """The card fields that say which model was scored (``sha256`` None for Keras)."""
    return {
        "name": card.name,
        "appliance": card.appliance,
        "sample_period_s": card.sample_period_s,
        "window_length": card.window_length,
        "target_index": card.target_index,
        "quantization": card.quantization,
        "sha256": card.tflite_sha256 or None,
    }


def write_report(
    ev: Evaluation,
    config: EvalConfig,
    house: HouseData,
    out_dir: Path,
    *,
    command: str | None = None,
) -> dict[str, Any]:
    """metrics.json, metrics.md, config.json and (optionally) day.png + errors.png.

    metrics.json: ``{"model": metrics, "rule": the rule baseline's metrics (null when not
    run), "card": card_summary, "house", "span": [first, last] ISO timestamps, "samples":
    rows of the house, "backend", "command"}`` plus context (``appliance``,
    ``architecture``, ``test_data``, ``status_rule``, ``truth_rule``, ``rule_baseline``,
    ``plotted_day``). NaN is written as null.
    """
    from .appliances import truth_rule

    out_dir.mkdir(parents=True, exist_ok=True)
    plotted = None
    if config.plots:
        plotted = _plot_day(ev, config.day, out_dir / "day.png")
        _plot_errors(ev, out_dir / "errors.png")
    index = house.frame.index
    span = [index[0].isoformat(), index[-1].isoformat()] if len(index) else [None, None]
    report: dict[str, Any] = {
        "model": ev.metrics,
        "rule": ev.rule_metrics,
        "card": card_summary(ev.card),
        "house": house.source,
        "span": span,
        "samples": len(index),
        "backend": ev.backend,
        "command": command,
        "appliance": ev.card.appliance,
        "architecture": ev.card.architecture,
        "test_data": house.report(),
        "status_rule": asdict(ev.card.status),
        "truth_rule": asdict(truth_rule(ev.card.appliance)),
        "rule_baseline": ev.rule.rule.to_dict() if ev.rule is not None else None,
        "plotted_day": plotted,
    }
    write_json(out_dir / "metrics.json", report)
    write_json(out_dir / "config.json", asdict(config))
    title = f"{ev.card.appliance} ({ev.card.architecture}) on {house.source}"
    lines = [
        f"{house.report()}",
        "",
        f"Model {ev.card.name} ({ev.card.quantization}, {ev.card.sample_period_s:g} s, window "
        f"{ev.card.window_length}, target index {ev.card.target_index}, latency "
        f"{ev.card.delay_s:g} s) on the {ev.backend} backend. Truth: the appliance's own "
        "definition of running; rule baseline: "
        + (ev.rule.rule.summary if ev.rule is not None else "not run")
        + ".",
    ]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    body = markdown_table(ev.metrics, title, ev.rule_metrics)
    (out_dir / "metrics.md").write_text(body + "\n" + "\n".join(lines) + "\n", "utf-8")
    return report
