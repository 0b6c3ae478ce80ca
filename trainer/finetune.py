"""Fine-tune a bundled model on one household's smart-plug labels, for that house.

Starts from the bundled model's float parent (:mod:`trainer.parents`, refused when it no
longer matches the bundled card) and keeps its geometry and normalisation, so the result
is a drop-in replacement for the bundled file:

1. the household's labelled series at the card's period (any source the trainer reads,
   or Home Assistant's REST history, :mod:`trainer.history_api`), split by time: the
   older ~75 % of the labelled days train, the newest ~25 % validate; too few runs of
   the appliance on either side is a clear error, not a silent bad model;
2. training windows (every off window up to a cap, the household's runs repeated to the
   configured on share), the parent's two losses (MSE power, BCE status; on/off labels
   train the status head only), optionally with the feature extractor frozen (only
   ``head_dense``/``power``/``status`` train), seeded and deterministic, early stopping
   on the validation loss; the parent's own weights are kept when no epoch beats them;
3. the status threshold chosen on the validation days (:func:`trainer.bundle.
   validation_scores`, the bundle's grid and minimum durations);
4. requantized to the bundled card's export mode, calibrated on the same household's
   training windows, exported with a card whose ``training.finetune`` records the
   household data (source, entities, dates, runs) and the parent (seed, sha256);
5. before (the bundled int8 file) vs after (the fine-tuned int8 file), both through the
   numpy engine, on held-out days: ``report/before`` and ``report/after`` in
   ``nilm-trainer evaluate``'s format plus ``finetune.json``/``finetune.md`` side by side.

:func:`install` copies the result to ``<HA config>/nilm/models/`` where the integration
picks a user model up in place of the bundled one of the same name.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .appliances import get_appliance, truth_rule
from .bundle import THRESHOLDS, Series, _windows, validation_scores
from .config import EvalConfig, FinetuneConfig, Recipe
from .data import HouseData
from .errors import TrainerError
from .files import MODEL_KERAS, jsonable, write_json
from .parents import BUNDLED_MODELS_DIR, PARENTS_DIR, Parent, load_parent
from .recipes import load_recipes

FloatArray = npt.NDArray[np.float32]
HEAD_LAYERS = frozenset({"head_dense", "head_dropout", "power", "status"})
USER_MODELS_SUBDIR = "nilm/models"  # = custom_components.nilm.const.USER_MODELS_SUBDIR (tested)
REPORT_KEYS = (
    "f1", "mcc", "precision", "recall", "event_recall", "event_precision", "true_events",
    "predicted_events", "mae_w", "predicted_energy_kwh", "true_energy_kwh",
    "running_on_delay_s", "running_off_delay_s",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Split:
    """The household's labelled series cut at ``boundary`` (older part trains)."""

    train: Series
    validation: Series
    boundary: Any  # pandas Timestamp
    train_events: int
    validation_events: int
    status_labels: bool


@dataclass(frozen=True, slots=True)
class FinetuneResult:
    out_dir: Path
    model_path: Path
    card_path: Path
    summary: dict[str, Any]


def _leaf_layers(model: Any) -> list[tuple[str, Any]]:
    """Every layer that holds weights, by path: ``conv0``, or inside an ensemble's
    member ``member0/conv0``."""
    leaves = []
    for layer in model.layers:
        inner = getattr(layer, "layers", None)
        if inner:
            leaves += [(f"{layer.name}/{sub.name}", sub) for sub in inner]
        else:
            leaves.append((layer.name, layer))
    return leaves


def _freeze_features(model: Any) -> None:
    """Freeze every layer but the head's; inside an ensemble's members too, so each
    member keeps training its own ``head_dense`` as a single model does."""
    for path, layer in _leaf_layers(model):
        layer.trainable = path.rsplit("/", 1)[-1] in HEAD_LAYERS


def _frozen_names(model: Any) -> list[str]:
    """The frozen layers, an ensemble member's as ``member0/conv0``."""
    return [path for path, layer in _leaf_layers(model) if not layer.trainable]


def _runs(on: npt.NDArray[np.bool_]) -> int:
    from custom_components.nilm.engine.metrics import event_bounds

    return int(event_bounds(on)[0].size)


def household_series(house: HouseData, appliance: str) -> tuple[Series, bool]:
    """Mains, label and truth status; an on/off entity's 1/0 label is "on" at >= 0.5."""
    from .synthetic import truth_status
    from .train import status_rule

    if appliance not in house.appliances:
        have = ", ".join(house.appliances) or "none"
        raise TrainerError(f"{house.source} has no {appliance} labels (labels present: {have})")
    frame = house.frame
    agg = frame["aggregate"].to_numpy(dtype=np.float32)
    tgt = frame[appliance].to_numpy(dtype=np.float32)
    binary = appliance in house.status_columns
    rule = status_rule(appliance, on_threshold_w=0.5) if binary else truth_rule(appliance)
    on = truth_status(tgt, rule, house.period_s)
    return Series(house.source, agg, tgt, on, frame.index), binary


def _part(s: Series, lo: int, hi: int) -> Series:
    return Series(s.label, s.aggregate_w[lo:hi], s.target_w[lo:hi], s.on[lo:hi], s.index[lo:hi])


def split_household(house: HouseData, config: FinetuneConfig, context: int = 0) -> Split:
    """Older labelled time trains, the newest ``validation_fraction`` validates (whole
    UTC days when there are at least 4 labelled days); when that leaves too few runs on
    a side, the cut moves into the off gap before the newest run(s), ``context`` samples
    (a window's history) ahead of the first validating run where the gap allows
    (:func:`custom_components.nilm.engine.split.time_cut`, shared with the integration's
    re-fit)."""
    import pandas as pd

    from custom_components.nilm.engine.split import time_cut

    series, binary = household_series(house, config.appliance)
    app = config.appliance
    labelled = np.isfinite(series.aggregate_w) & np.isfinite(series.target_w)
    if not labelled.any():
        raise TrainerError(f"{house.source}: no sample has both mains and {app} labels")
    span = f"{series.index[0]:%Y-%m-%d} .. {series.index[-1]:%Y-%m-%d}"
    total = _runs(series.on)
    if total == 0:
        raise TrainerError(
            f"no {app} runs in the labels of {house.source} ({span}): check the label "
            "entity/column and the period (the appliance must run at least "
            f"{config.min_train_events + config.min_validation_events} times)"
        )
    days = pd.DatetimeIndex(series.index[labelled]).floor("D").unique()
    if len(days) >= 4:
        n_val = max(1, round(config.validation_fraction * len(days)))
        cut = int(series.index.searchsorted(days[len(days) - n_val]))
    else:
        cum = np.cumsum(labelled)
        cut = int(np.searchsorted(cum, (1.0 - config.validation_fraction) * cum[-1]))
    moved = time_cut(
        series.on, cut, min_before=config.min_train_events,
        min_after=config.min_validation_events, context=context,
    )  # fmt: skip
    cut = cut if moved is None else moved
    n = series.aggregate_w.size
    train, val = _part(series, 0, cut), _part(series, cut, n)
    n_train, n_val_runs = _runs(train.on), _runs(val.on)
    boundary = series.index[min(cut, n - 1)]
    if n_train < config.min_train_events or n_val_runs < config.min_validation_events:
        raise TrainerError(
            f"too few {app} runs to fine-tune and validate: {n_train} before "
            f"{boundary:%Y-%m-%d %H:%M} (training, need {config.min_train_events}) and "
            f"{n_val_runs} after "
            f"(validation, need {config.min_validation_events}) in {house.source} ({span}); "
            "label more days"
        )
    return Split(train, val, boundary, n_train, n_val_runs, binary)


def _recipe(card: Any) -> Recipe:
    """The parts of a recipe :func:`validation_scores` reads: the bundled card's windows
    and on/off rule, and the bundled recipe's off-gap bridges to choose from (a cycle
    appliance's pauses are the household's programme: its own validation days choose the
    bridge, within the recipe's off-delay budget, as the bundle chose it on its
    validation houses)."""
    bundled = load_recipes().get(card.appliance)
    return Recipe(
        appliance=card.appliance, period_s=card.sample_period_s,
        window_length=card.window_length, target_index=card.target_index,
        min_on_s=card.status.min_on_s, min_off_s=card.status.min_off_s,
        min_off_choices_s=bundled.min_off_choices_s if bundled else (),
        max_off_delay_s=bundled.max_off_delay_s if bundled else None,
        split={"train": (), "validation": (), "test": ()},
    )  # fmt: skip


def training_windows(
    s: Series, card: Any, config: FinetuneConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(windows in W, target W, on) drawn from the training part (see the module doc)."""
    from custom_components.nilm.engine.windows import valid_starts

    length, t_idx = card.window_length, card.target_index
    starts = valid_starts(s.aggregate_w, s.target_w, length, t_idx)
    on_at = s.on[starts + t_idx]
    on_pool, off_pool = starts[on_at], starts[~on_at]
    if on_pool.size == 0:
        raise TrainerError(
            f"no complete {length}-sample window of the training days has the "
            f"{card.appliance} running (gaps around every run?)"
        )
    rng = np.random.default_rng(config.seed)
    n_off = min(off_pool.size, round(config.max_windows * (1.0 - config.on_share)))
    n_on = max(on_pool.size, round(n_off * config.on_share / (1.0 - config.on_share)))
    n_on = min(n_on, config.max_windows - n_off) if n_off else on_pool.size
    off = rng.choice(off_pool, size=n_off, replace=False) if n_off else off_pool[:0]
    on = rng.choice(on_pool, size=n_on, replace=n_on > on_pool.size)
    chosen = np.concatenate((on, off))
    x = _windows(s, chosen, length)
    return x, s.target_w[chosen + t_idx], s.on[chosen + t_idx].astype(np.float32)


def _validation_arrays(
    s: Series, card: Any, limit: int
) -> tuple[FloatArray, list[npt.NDArray[np.float32]]]:
    from custom_components.nilm.engine.windows import valid_starts

    starts = valid_starts(s.aggregate_w, s.target_w, card.window_length, card.target_index)
    if starts.size == 0:
        raise TrainerError("no complete window in the validation days (gaps?)")
    starts = starts[:: max(1, starts.size // limit)]
    x = (_windows(s, starts, card.window_length) - np.float32(card.input_mean_w)) / np.float32(
        card.input_std_w
    )
    target = s.target_w[starts + card.target_index] / np.float32(card.power_scale_w)
    on = s.on[starts + card.target_index].astype(np.float32)
    return x.astype(np.float32), [target.reshape(-1, 1), on.reshape(-1, 1)]


def fit(
    parent: Parent, split: Split, config: FinetuneConfig, log: Any = print
) -> tuple[Any, dict[str, Any], FloatArray, FloatArray]:
    """The fine-tuned Keras model, its record, and the (normalised) training windows
    with their targets for calibration."""
    import keras
    import tensorflow as tf

    card = parent.card
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    x_w, target_w, on = training_windows(split.train, card, config)
    x = (x_w - np.float32(card.input_mean_w)) / np.float32(card.input_std_w)
    y_power = (np.nan_to_num(target_w) / np.float32(card.power_scale_w)).reshape(-1, 1)
    if split.status_labels:  # on/off labels say nothing about watts
        y_power = np.zeros_like(y_power)
    y = [y_power.astype(np.float32), on.reshape(-1, 1)]
    val_x, val_y = _validation_arrays(split.validation, card, config.max_validation_windows)
    model = parent.load_model()
    if config.freeze_features:
        _freeze_features(model)
    if split.status_labels:
        model.get_layer("power").trainable = False
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=["mse", "binary_crossentropy"],
        loss_weights=[0.0 if split.status_labels else 1.0, 1.0],
    )
    parent_loss = float(model.evaluate(val_x, val_y, batch_size=1024, verbose=0)[0])
    best_loss, best_epoch, best_weights = parent_loss, 0, model.get_weights()
    history: list[dict[str, float]] = []
    wait = 0
    for epoch in range(1, config.epochs + 1):
        t0 = time.monotonic()
        out = model.fit(
            x, y, batch_size=config.batch_size, epochs=1, verbose=0, shuffle=True
        ).history
        val_loss = float(model.evaluate(val_x, val_y, batch_size=1024, verbose=0)[0])
        history.append(
            {"epoch": epoch, "loss": float(out["loss"][-1]), "val_loss": val_loss,
             "seconds": round(time.monotonic() - t0, 1)}
        )  # fmt: skip
        better = val_loss < best_loss
        log(
            f"{config.appliance} epoch {epoch}: loss {out['loss'][-1]:.4f}, val_loss "
            f"{val_loss:.4f} (parent {parent_loss:.4f})" + (" *" if better else "")
        )
        if better:
            best_loss, best_epoch, best_weights, wait = val_loss, epoch, model.get_weights(), 0
        else:
            wait += 1
            if wait >= config.patience:
                break
    model.set_weights(best_weights)
    record = {
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "kept_parent_weights": best_epoch == 0,
        "parent_val_loss": parent_loss,
        "val_loss": best_loss,
        "history": history,
        "train_windows": len(x),
        "train_on_windows": int(on.sum()),
        "validation_windows": len(val_x),
        "frozen_layers": _frozen_names(model),
    }
    return model, record, x, np.nan_to_num(target_w).astype(np.float32)


def _for_scoring(house: HouseData, appliance: str) -> HouseData:
    """An on/off label as watts the truth rule reads as running (energy then means
    nothing: the report says so)."""
    if appliance not in house.status_columns:
        return house
    frame = house.frame.copy()
    frame[appliance] = frame[appliance] * np.float32(2 * truth_rule(appliance).on_power_threshold_w)
    return dataclasses.replace(house, frame=frame)


def _metrics(ev: Any) -> dict[str, Any]:
    return {k: ev.metrics.get(k) for k in REPORT_KEYS}


def compare(
    bundled_card: Path,
    finetuned_card: Path,
    test: HouseData,
    out_dir: Path,
    *,
    plots: bool = False,
) -> dict[str, Any]:
    """Both int8 files through the numpy engine on ``test``: evaluate's reports in
    ``report/before`` and ``report/after``, and both metric sets."""
    from custom_components.nilm.engine.card import load_card

    from .evaluate import evaluate_predictor, tflite_predictor, write_report

    out: dict[str, Any] = {}
    for label, card_path in (("before", bundled_card), ("after", finetuned_card)):
        card = load_card(card_path, verify_hash=True)
        house = _for_scoring(test, card.appliance)
        config = EvalConfig(model=str(card_path), backend="numpy", plots=plots)
        ev = evaluate_predictor(house, card, tflite_predictor(card_path, "numpy"), config, "numpy")
        write_report(ev, config, house, out_dir / "report" / label)
        out[label] = _metrics(ev)
        out.setdefault("rule", {k: (ev.rule_metrics or {}).get(k) for k in REPORT_KEYS})
    return out


def finetune(
    house: HouseData,
    config: FinetuneConfig,
    out_dir: Path,
    *,
    test: HouseData | None = None,
    household: dict[str, Any] | None = None,
    models_dir: Path = BUNDLED_MODELS_DIR,
    parents_dir: Path = PARENTS_DIR,
    log: Any = print,
) -> FinetuneResult:
    """Fine-tune, requantize, export into ``out_dir`` and report before/after (module doc).

    ``house`` holds the labelled days (at the bundled card's period); ``test`` held-out
    days for the before/after report (None: the validation days, which chose the
    threshold and the epoch, so the "after" numbers are optimistic: the report says so).
    ``household`` adds to the card's record (e.g. the entity ids).
    """
    import keras

    from .calibration import build_representative_set
    from .export import export_model
    from .quantize import QuantizeConfig, convert

    parent = load_parent(config.appliance, models_dir, parents_dir)
    card = parent.card
    for data in (house, test):
        if data is not None and abs(data.period_s - card.sample_period_s) > 1e-6:
            raise TrainerError(
                f"{data.source} is at {data.period_s:g} s; the {config.appliance} model "
                f"needs {card.sample_period_s:g} s"
            )
    split = split_household(house, config, context=card.target_index)
    log(
        f"{config.appliance}: {split.train_events} runs train (before "
        f"{split.boundary:%Y-%m-%d %H:%M}), {split.validation_events} validate"
    )
    cpu0, wall0 = time.process_time(), time.monotonic()
    model, record, x_train, y_train = fit(parent, split, config, log)
    scores = validation_scores(
        model, _recipe(card), [split.validation], mean_w=card.input_mean_w,
        std_w=card.input_std_w, train_houses=frozenset({split.validation.label}),
    )  # fmt: skip
    spec = get_appliance(config.appliance)
    rep = build_representative_set(
        x_train, y_train, on_threshold_w=0.5 if split.status_labels else spec.on_power_threshold_w,
        house=house.source, test_houses=(), source="the household's training days (finetune)",
        size=config.representative_size, seed=config.seed,
    )  # fmt: skip
    mode = str(parent.record.get("export_mode", card.quantization))
    converted = convert(model, QuantizeConfig(mode=mode, seed=config.seed), rep)
    cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0

    index = split.train.index.append(split.validation.index)
    finetune_record = {
        "household": {
            "source": house.source,
            **(household or {}),
            "from": index[0].isoformat(),
            "to": index[-1].isoformat(),
            "validation_from": split.boundary.isoformat(),
            "labels": "on/off entity" if split.status_labels else "power (W)",
            "runs_train": split.train_events,
            "runs_validation": split.validation_events,
            "labelled_samples": int(np.isfinite(house.frame[config.appliance]).sum()),
        },
        "parent": {
            "seed": parent.seed,
            "keras_sha256": parent.record.get("keras_sha256"),
            "bundled_tflite_sha256": card.tflite_sha256,
            "trainer_version": parent.record.get("trainer_version"),
        },
        "config": config.to_dict(),
        **{k: v for k, v in record.items() if k != "history"},
        "threshold_grid": list(THRESHOLDS),
        "validation_f1": scores["f1"],
        "probability_threshold": scores["threshold"],
        "min_off_s": scores["min_off_s"],
        "bundled_min_off_s": card.status.min_off_s,
        "cpu_s": round(cpu_s, 1),
        "wall_s": round(wall_s, 1),
    }
    training = {
        "source": f"{house.source} (fine-tuned from the bundled {config.appliance} model)",
        "finetune": finetune_record,
        "parent_recipe": parent.record.get("recipe"),
        "representative": rep.summary(),
        "seed": parent.seed,
    }
    if card.training.get("attribution"):
        training["attribution"] = card.training["attribution"]
    template = dataclasses.replace(
        card,
        status=dataclasses.replace(
            card.status, probability_threshold=scores["threshold"], min_off_s=scores["min_off_s"]
        ),
        training=jsonable(training),
        metrics={"validation": {"f1": scores["f1"], "household": house.source}},
        tflite_file="",
        tflite_sha256="",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = export_model(
        out_dir, config.appliance, converted, template,
        report=f"Fine-tuned on {house.source} from the bundled {config.appliance} model "
        f"(parent seed {parent.seed}, sha256 {card.tflite_sha256[:12]}...).",
    )  # fmt: skip
    model.save(out_dir / MODEL_KERAS)
    keras.backend.clear_session()

    held_out = test
    note = "held-out days (never trained or tuned on)"
    if held_out is None:
        held_out = house.time_slice(split.boundary.tz_localize(None), None)
        note = (
            "the validation days (they chose the epoch and the threshold: the 'after' "
            "numbers are optimistic; pass held-out days for a fair comparison)"
        )
    bundled = models_dir / f"{config.appliance}.json"
    compared = compare(bundled, exported.card_path, held_out, out_dir)
    index = held_out.frame.index
    summary = {
        "appliance": config.appliance,
        "finetune": finetune_record,
        "history": record["history"],
        "test": {
            "data": held_out.source,
            "from": index[0].isoformat(),
            "to": index[-1].isoformat(),
            "note": note,
            "energy_note": "on/off labels: energy is not measured" if split.status_labels else None,
            **compared,
        },
        "model": str(exported.model_path),
        "card": str(exported.card_path),
    }
    write_json(out_dir / "finetune.json", summary, strict=False)
    (out_dir / "finetune.md").write_text(markdown(summary), "utf-8")
    log(
        f"{config.appliance}: F1 {_fmt(compared['before']['f1'])} -> "
        f"{_fmt(compared['after']['f1'])} on {note.split(' (')[0]}; wrote {exported.card_path}"
    )
    return FinetuneResult(out_dir, exported.model_path, exported.card_path, summary)


def _fmt(value: Any, spec: str = "{:.3f}") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return spec.format(value)


ROWS = (
    ("f1", "F1", "{:.3f}"), ("mcc", "MCC", "{:.3f}"), ("precision", "Precision", "{:.3f}"),
    ("recall", "Recall", "{:.3f}"), ("event_recall", "Event recall", "{:.3f}"),
    ("event_precision", "Event precision", "{:.3f}"), ("true_events", "True events", "{:.0f}"),
    ("predicted_events", "Predicted events", "{:.0f}"), ("mae_w", "MAE", "{:.1f} W"),
    ("predicted_energy_kwh", "Predicted energy", "{:.2f} kWh"),
    ("true_energy_kwh", "Metered energy", "{:.2f} kWh"),
    ("running_on_delay_s", "Running on delay (median)", "{:+.0f} s"),
    ("running_off_delay_s", "Running off delay (median)", "{:+.0f} s"),
)  # fmt: skip


def markdown(summary: dict[str, Any]) -> str:
    ft, test = summary["finetune"], summary["test"]
    hh = ft["household"]
    lines = [
        f"# Fine-tuned {summary['appliance']} for {hh['source']}",
        "",
        f"Labels {hh['from'][:16]} .. {hh['to'][:16]} ({hh['labels']}): {hh['runs_train']} runs "
        f"trained, {hh['runs_validation']} validated (from {hh['validation_from'][:16]}). "
        f"Parent: bundled model, seed {ft['parent']['seed']}, sha256 "
        f"{str(ft['parent']['bundled_tflite_sha256'])[:12]}...; best epoch {ft['best_epoch']} "
        f"of {ft['epochs_run']}"
        + (" (no epoch beat the parent: its weights kept)" if ft["kept_parent_weights"] else "")
        + f"; threshold {ft['probability_threshold']:.2f}"
        + (
            f"; off-gap bridge {ft['min_off_s']:.0f} s (bundled {ft['bundled_min_off_s']:.0f} s)"
            if ft.get("min_off_s") is not None
            else ""
        )
        + f"; {ft['cpu_s']:.0f} s CPU, "
        f"{ft['wall_s']:.0f} s wall.",
        "",
        f"Scored on {test['data']} {test['from'][:10]} .. {test['to'][:10]}: {test['note']}. "
        "Both int8 files on the numpy engine (what Home Assistant runs)."
        + (f" {test['energy_note']}." if test.get("energy_note") else ""),
        "",
        "| metric | bundled (before) | fine-tuned (after) | rule baseline |",
        "|---|---|---|---|",
    ]
    for key, label, spec in ROWS:
        lines.append(
            f"| {label} | {_fmt(test['before'].get(key), spec)} | "
            f"{_fmt(test['after'].get(key), spec)} | {_fmt(test['rule'].get(key), spec)} |"
        )
    return "\n".join(lines) + "\n"


def worse_than_bundled(summary: dict[str, Any]) -> str | None:
    """Why the fine-tuned model should not replace the bundled one (None: it may): a lower
    F1 on the held-out days than the bundled model's."""
    test = summary.get("test") or {}
    before = (test.get("before") or {}).get("f1")
    after = (test.get("after") or {}).get("f1")
    if before is None or after is None or not np.isfinite(before) or not np.isfinite(after):
        return None
    if after < before:
        return f"F1 on the held-out days fell from {before:.3f} (bundled) to {after:.3f}"
    return None


def install(model_dir: Path, appliance: str, config_dir: Path) -> list[Path]:
    """Copy ``<appliance>.tflite`` + ``.json`` to ``<config>/nilm/models/`` (the
    integration's user models folder: a user model replaces the bundled one)."""
    from custom_components.nilm.engine.card import load_card

    if not config_dir.is_dir():
        raise TrainerError(f"--install: {config_dir} is not a Home Assistant config folder")
    target = config_dir / USER_MODELS_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for suffix in (".tflite", ".json"):
        src = model_dir / f"{appliance}{suffix}"
        if not src.is_file():
            raise TrainerError(f"--install: {src} does not exist")
        copied.append(Path(shutil.copyfile(src, target / src.name)))
    load_card(copied[1], verify_hash=True)
    return copied


def load_household(
    kind: str,
    selection: Any,
    period_s: float,
    *,
    appliance: str,
    start: str | None = None,
    end: str | None = None,
    url: str | None = None,
    token: str | None = None,
) -> tuple[HouseData, dict[str, Any]]:
    """The household's data at ``period_s``: ``kind`` "history" reads the REST API at
    ``url`` (the entities from ``selection``), any other the
    :class:`~trainer.config.SourceConfig` ``selection``; plus what the card records."""
    from .config import DataConfig
    from .history_api import HistoryClient, load_history, parse_time
    from .recorder import parse_entity_mapping

    data_config = DataConfig(period_s=period_s)
    record: dict[str, Any] = {}
    if kind in ("recorder", "history"):
        entities = parse_entity_mapping(selection.mapping)
        if appliance not in entities:
            raise TrainerError(f"--map {appliance}=ENTITY is needed for the label entity")
        if not selection.mains_entity:
            raise TrainerError("--mains-entity is needed for the mains power sensor")
        record["entities"] = {"mains": selection.mains_entity, **entities}
    if kind == "history":
        if not url or not start:
            raise TrainerError("source history needs --url and --start (and --end or today)")
        first = parse_time(start)
        last = parse_time(end) if end else parse_time(time.strftime("%Y-%m-%d"))
        client = HistoryClient(url, token or "")
        house = load_history(
            client, selection.mains_entity, {appliance: entities[appliance]}, start=first,
            end=last, config=data_config,
        )  # fmt: skip
        return house, record
    from .sources import load_selected

    house = load_selected(selection, data_config)
    if start or end:
        house = house.time_slice(start, end)
    return house, record
