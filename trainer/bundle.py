"""Build the bundled models from their recipes (``bundled.json``): several seeds per
appliance on every training house plus synthetic aggregates, the seed chosen on
validation houses, the chosen model requantized to int8 and exported with its card.

Steps per appliance (each writes into ``<run-root>/<appliance>/``):

1. ``train``: per seed, real windows of every training source (balanced to the recipe's
   on share) plus synthetic windows (:mod:`trainer.synthetic`), a two-headed model
   (power, "running" probability) with early stopping on validation windows; then the
   probability threshold is chosen on the validation sources' full series, with the
   recipe's minimum durations applied as the integration applies them.
2. ``select``: the seed with the best validation F1 (never a test-house number).
3. ``export``: full-int8 conversion calibrated on training windows, exported to the
   models folder with a card that records the recipe, split and seeds.

``--teacher`` trains each seed against a teacher's soft outputs as well
(:mod:`trainer.distill`).

The test house is read only by ``trainer.evaluate`` afterwards (see
``scripts/build_bundled_models.sh``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from custom_components.nilm.engine.metrics import f1_score

from .appliances import get_appliance, truth_rule
from .errors import TrainerError
from .files import CARD_JSON, CONFIG_JSON, MODEL_KERAS, jsonable, load_json, write_json
from .keras_backend import KerasBackend
from .recipes import TEST_HOUSE, Recipe, Source, load_recipes, load_split
from .synthetic import (
    Activation,
    Background,
    extract_activations,
    generate,
    off_starts,
    truth_status,
)
from .windows import draw_pooled, valid_starts

if TYPE_CHECKING:
    from .config import DistillConfig
    from .distill import DistilledSet

FloatArray = npt.NDArray[np.float32]
THRESHOLDS = (*(float(round(x, 2)) for x in np.arange(0.05, 0.96, 0.05)), 0.97, 0.98, 0.99)


@dataclass(frozen=True, slots=True)
class Series:
    """One source at the recipe's period: mains, target power, truth status."""

    label: str
    aggregate_w: FloatArray
    target_w: FloatArray
    on: npt.NDArray[np.bool_]
    index: Any  # pandas DatetimeIndex


def _series(source: Source, appliance: str, period_s: float) -> Series:
    frame = source.house.frame
    agg = frame["aggregate"].to_numpy(dtype=np.float32)
    tgt = frame[appliance].to_numpy(dtype=np.float32)
    return Series(
        source.label, agg, tgt, truth_status(tgt, truth_rule(appliance), period_s), frame.index
    )


def _windows(series: Series, starts: npt.NDArray[np.int64], length: int) -> FloatArray:
    from numpy.lib.stride_tricks import sliding_window_view

    return np.ascontiguousarray(sliding_window_view(series.aggregate_w, length)[starts])


@dataclass(frozen=True, slots=True)
class TrainingData:
    x_w: FloatArray  # (n, L) watts
    target_w: FloatArray
    on: npt.NDArray[np.bool_]
    real: int
    synthetic: int
    mean_w: float
    std_w: float
    summary: dict[str, Any]


def training_data(recipe: Recipe, train: list[Source], seed: int, log: Any = print) -> TrainingData:
    """Real balanced windows of every training source plus synthetic ones."""
    rng = np.random.default_rng(seed)
    app, length, t_idx, period = (
        recipe.appliance, recipe.window_length, recipe.target_index, recipe.period_s,
    )  # fmt: skip
    with_target = [_series(s, app, period) for s in train if app in s.house.appliances]
    # Real windows, pooled over sources, balanced to the recipe's on share.
    pool_on: list[npt.NDArray[np.int64]] = []
    pool_off: list[npt.NDArray[np.int64]] = []
    for s in with_target:
        starts = valid_starts(s.aggregate_w, s.target_w, length, t_idx)
        on_at = s.on[starts + t_idx]
        pool_on.append(starts[on_at])
        pool_off.append(starts[~on_at])
    n_on_all = sum(p.size for p in pool_on)
    n_off_all = sum(p.size for p in pool_off)
    if n_on_all == 0:
        raise TrainerError(f"{app}: no training window has the appliance running")
    n_on = min(n_on_all, round(recipe.max_real_windows * recipe.on_share))
    n_off = min(n_off_all, recipe.max_real_windows - n_on)

    xs, ys, ons = [], [], []
    for pool, n in ((pool_on, n_on), (pool_off, n_off)):
        for s, sel in zip(with_target, draw_pooled(pool, n, rng), strict=True):
            if sel.size:
                xs.append(_windows(s, sel, length))
                ys.append(s.target_w[sel + t_idx])
                ons.append(s.on[sel + t_idx])
    real = sum(x.shape[0] for x in xs)
    # Synthetic windows: target activations on target-off backgrounds, with distractors.
    spec = get_appliance(app)
    max_act = length * 2
    pad = max(1, round(300.0 / period))
    targets: list[Activation] = []
    backgrounds: list[Background] = []
    for s in with_target:
        targets += extract_activations(
            s.target_w, truth_rule(app), period, pad=pad, source=s.label, max_samples=max_act
        )
        backgrounds.append(
            Background(s.aggregate_w, off_starts(s.aggregate_w, s.on, length), s.label)
        )
    distractors: list[Activation] = []
    for other in recipe.distractors:
        for src in train:
            if other in src.house.appliances:
                col = src.house.frame[other].to_numpy(dtype=np.float32)
                distractors += extract_activations(
                    col, truth_rule(other), period, pad=pad, source=src.label, max_samples=max_act
                )
    synth_n = recipe.synthetic_windows if targets else 0
    if synth_n:
        cfg = recipe.synthetic.synthetic_config()
        syn = generate(
            synth_n, length, t_idx, backgrounds=backgrounds, targets=targets,
            distractors=distractors, config=cfg, rng=rng,
        )  # fmt: skip
        xs.append(syn.mains_w)
        ys.append(syn.target_w)
        ons.append(syn.on)
    finite = np.concatenate([s.aggregate_w[np.isfinite(s.aggregate_w)] for s in with_target])
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.float32)
    on = np.concatenate(ons).astype(bool)
    summary = {
        "real_windows": int(real),
        "real_on_share": float(np.mean(np.concatenate(ons[: len(ons) - (1 if synth_n else 0)]))),
        "synthetic_windows": int(synth_n),
        "target_activations": len(targets),
        "activation_sources": sorted({a.source for a in targets}),
        "distractor_activations": len(distractors),
        "background_sources": [b.source for b in backgrounds if b.starts.size],
        "train_sources": [s.label for s in with_target],
        "max_power_w": spec.max_power_w,
    }
    log(
        f"{app}: {real:,} real windows ({100 * summary['real_on_share']:.0f} % running) from "
        f"{len(with_target)} sources + {synth_n:,} synthetic from {len(targets)} activations"
    )
    return TrainingData(
        x, y, on, real, synth_n, float(finite.mean()), float(finite.std() or 1.0), summary
    )


def _status(model: Any, x: FloatArray) -> FloatArray:
    """The status head's probabilities for normalised windows, through the same
    ``KerasBackend`` that ``NilmModel`` uses; kept on the model so a validation pass over
    many series compiles its call once."""
    backend = getattr(model, "_nilm_backend", None)
    if backend is None:
        backend = KerasBackend(model, batch_size=4096)
        model._nilm_backend = backend
    return np.asarray(backend.run(x)[1], dtype=np.float32).reshape(-1)


def _house_of(label: str) -> str:
    """'REFIT house 2 >=2015-02-01' -> 'REFIT house 2' (the split's time condition off)."""
    return label.split(" <", maxsplit=1)[0].split(" >", maxsplit=1)[0]


def _train_houses(train: list[Source]) -> frozenset[str]:
    """The houses a model trained on, as validation labels name them."""
    return frozenset(_house_of(s.house.source) for s in train)


def validation_scores(
    model: Any,
    recipe: Recipe,
    val: list[Series],
    *,
    mean_w: float,
    std_w: float,
    train_houses: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Probability threshold (and off-gap to bridge, where the recipe offers choices) with
    the best validation score, after the minimum durations as the integration applies them
    (a bridge must also keep "Running"'s switch-off within the recipe's delay budget).

    The score is the mean of two F1s: over the validation periods of training houses
    (later months of REFIT House 2) and over validation houses no model trained on, so a
    threshold or seed that only fits the training house's programme does not win."""
    from custom_components.nilm.engine.status import apply_min_durations, durations_to_samples

    length, t_idx, period = recipe.window_length, recipe.target_index, recipe.period_s
    min_on = durations_to_samples(recipe.min_on_s, period)
    probs, truths, valids = [], [], []
    for s in val:
        starts = valid_starts(s.aggregate_w, s.target_w, length, t_idx)
        prob = np.zeros(s.aggregate_w.size, dtype=np.float32)
        valid = np.zeros(s.aggregate_w.size, dtype=bool)
        if starts.size:
            x = (_windows(s, starts, length) - np.float32(mean_w)) / np.float32(std_w)
            p = _status(model, x)
            prob[starts + t_idx] = p
            valid[starts + t_idx] = True
        probs.append(prob)
        truths.append(s.on & valid)
        valids.append(valid)
    seen = [_house_of(s.label) in train_houses for s in val]

    def score(thr: float, min_off: int) -> tuple[float, float, float]:
        pred = [
            apply_min_durations(v & (p >= thr), min_on, min_off) & v
            for p, v in zip(probs, valids, strict=True)
        ]
        groups = []
        for flag in (True, False):
            t = [x for x, f in zip(truths, seen, strict=True) if f == flag]
            q = [x for x, f in zip(pred, seen, strict=True) if f == flag]
            truth_all = np.concatenate(t) if t else np.zeros(0, dtype=bool)
            # A group with no running sample has no F1 to speak of (its false
            # positives still count in the other group's houses via the threshold).
            groups.append(f1_score(truth_all, np.concatenate(q)) if truth_all.any() else math.nan)
        finite = [g for g in groups if math.isfinite(g)]
        return (float(np.mean(finite)) if finite else math.nan, groups[0], groups[1])

    choices = recipe.min_off_choices_s or (recipe.min_off_s,)
    table = {
        (thr, off_s): score(thr, durations_to_samples(off_s, period))
        for off_s in choices
        for thr in THRESHOLDS
    }

    def rank(k: tuple[float, float]) -> tuple[float, float, float]:
        # Ties: the threshold nearer 0.5, then the shorter bridge ("finished" fires sooner).
        return (float(np.nan_to_num(table[k][0], nan=-1.0)), -abs(k[0] - 0.5), -k[1])

    per_off = {o: max((k for k in table if k[1] == o), key=rank) for o in choices}
    off_delays: dict[float, float] = {}
    if len(choices) > 1:
        # A longer bridge is a later "finished": keep the best F1 among the bridges whose
        # streaming off delay meets the recipe's budget, else the one nearest to it.
        off_delays = {o: _off_delay_s(recipe, probs, truths, valids, per_off[o]) for o in choices}
        budget = recipe.max_off_delay_s if recipe.max_off_delay_s is not None else math.inf
        within = [o for o in choices if abs(off_delays[o]) <= budget]
        if within:
            best_thr, best_off = max((per_off[o] for o in within), key=rank)
        else:
            nearest = min(choices, key=lambda o: abs(np.nan_to_num(off_delays[o], nan=math.inf)))
            best_thr, best_off = per_off[nearest]
    else:
        best_thr, best_off = per_off[choices[0]]
    min_off = durations_to_samples(best_off, period)
    per_source = {}
    for s, p, v, t in zip(val, probs, valids, truths, strict=True):
        pred = apply_min_durations(v & (p >= best_thr), min_on, min_off) & v
        per_source[s.label] = {"f1": f1_score(t, pred), "running_samples": int(t.sum())}
    best = table[(best_thr, best_off)]
    return {
        "per_source": per_source,
        "threshold": float(best_thr),
        "min_off_s": float(best_off),
        "f1": float(best[0]),
        "f1_training_houses": best[1],
        "f1_unseen_houses": best[2],
        "score": "mean of the training houses' and the unseen houses' validation F1",
        "f1_by_threshold": {str(k): table[(k, best_off)][0] for k in THRESHOLDS},
        "f1_by_min_off_s": {str(o): table[per_off[o]][0] for o in choices},
        "off_delay_s_by_min_off_s": {str(o): d for o, d in off_delays.items()},
        "sources": [s.label for s in val],
        "samples": int(sum(int(v.sum()) for v in valids)),
        "running_samples": int(sum(int(t.sum()) for t in truths)),
    }


def _off_delay_s(
    recipe: Recipe,
    probs: list[FloatArray],
    truths: list[npt.NDArray[np.bool_]],
    valids: list[npt.NDArray[np.bool_]],
    choice: tuple[float, float],
) -> float:
    """Median delay of the streaming "Running" switch-off behind the true end over the
    validation series, as the integration's tracker would show it (nan: none measured).
    ``choice``: (probability threshold, bridged off-gap in s)."""
    from custom_components.nilm.engine.card import StatusRule
    from custom_components.nilm.engine.metrics import running_delays, track_status

    threshold, min_off_s = choice
    rule = StatusRule(0.0, recipe.min_on_s, min_off_s, threshold)
    delays = []
    for p, t, v in zip(probs, truths, valids, strict=True):
        tracked = track_status(
            v & (p >= threshold), np.zeros(p.size), v, rule, recipe.period_s,
            latency_s=recipe.delay_s,
        )  # fmt: skip
        delays.append(running_delays(t, tracked.periods, recipe.period_s, v).off_delays_s)
    every = np.concatenate(delays) if delays else np.zeros(0)
    return float(np.median(every)) if every.size else math.nan


def validation_windows(
    recipe: Recipe, val_series: list[Series], *, mean_w: float, std_w: float, scale_w: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """A thinned, natural-mix sample of the validation windows for early stopping:
    (normalised windows, power / scale, on) with targets as (n, 1) columns."""
    vx, vp, vo = [], [], []
    for s in val_series:
        starts = valid_starts(s.aggregate_w, s.target_w, recipe.window_length, recipe.target_index)
        starts = starts[:: max(1, starts.size // 8000)]
        vx.append((_windows(s, starts, recipe.window_length) - mean_w) / std_w)
        vp.append(s.target_w[starts + recipe.target_index] / scale_w)
        vo.append(s.on[starts + recipe.target_index].astype(np.float32))
    return (
        np.concatenate(vx).astype(np.float32),
        np.concatenate(vp).reshape(-1, 1).astype(np.float32),
        np.concatenate(vo).reshape(-1, 1).astype(np.float32),
    )


def train_seed(
    recipe: Recipe,
    seed: int,
    *,
    train: list[Source],
    val_series: list[Series],
    run_dir: Path,
    distill: DistillConfig | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train one seed into ``run_dir`` (model.keras, card.json, result.json); with
    ``distill``, against a teacher's soft outputs too (:mod:`trainer.distill`)."""
    import keras
    import tensorflow as tf

    from custom_components.nilm.engine.card import ModelCard, StatusRule

    from .export import attribution_for
    from .models import build_model

    t0 = time.monotonic()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    data = training_data(recipe, train, seed, log)
    spec = get_appliance(recipe.appliance)
    scale = spec.max_power_w
    x_w = data.x_w
    y_power = (data.target_w / np.float32(scale)).reshape(-1, 1)
    y_on = data.on.astype(np.float32).reshape(-1, 1)
    distilled = None
    if distill is not None:
        distilled = _distilled(recipe, distill, train, seed, (x_w, y_power, y_on))
        x_w, y_power, y_on = distilled.x_w, distilled.power, distilled.on
        log(
            f"{recipe.appliance} seed {seed}: distilling from {distill.teacher} "
            f"({distilled.summary['unlabelled_windows']:,} unlabelled windows, teacher "
            f"agrees with {distilled.summary['teacher_agreement_on_labels']:.1%} of labels)"
        )
    x = (x_w - np.float32(data.mean_w)) / np.float32(data.std_w)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y_power, y_on = x[order], y_power[order], y_on[order]
    val_x, *val_y = validation_windows(
        recipe, val_series, mean_w=data.mean_w, std_w=data.std_w, scale_w=scale
    )
    model = build_model(recipe.model_config())
    model.compile(
        optimizer=keras.optimizers.Adam(recipe.learning_rate),
        loss=["mse", "binary_crossentropy"],
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=recipe.patience, restore_best_weights=True
    )
    history = model.fit(
        x, [y_power, y_on], batch_size=recipe.batch_size, epochs=recipe.epochs,
        validation_data=(val_x, val_y), callbacks=[stop], verbose=0, shuffle=True,
    )  # fmt: skip
    losses = history.history["val_loss"]
    best_epoch = int(np.argmin(losses)) + 1
    train_houses = _train_houses(train)
    scores = validation_scores(
        model, recipe, val_series, mean_w=data.mean_w, std_w=data.std_w, train_houses=train_houses
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / MODEL_KERAS)
    card = ModelCard(
        name=recipe.appliance,
        appliance=recipe.appliance,
        architecture=recipe.architecture,
        sample_period_s=recipe.period_s,
        window_length=recipe.window_length,
        target_index=recipe.target_index,
        input_mean_w=data.mean_w,
        input_std_w=data.std_w,
        power_scale_w=scale,
        status=StatusRule(
            on_power_threshold_w=spec.on_power_threshold_w,
            min_on_s=recipe.min_on_s,
            min_off_s=scores["min_off_s"],
            probability_threshold=scores["threshold"],
        ),
        quantization="convert_only",
        power_output=0,
        status_output=1,
    )
    result = {
        "appliance": recipe.appliance,
        "seed": seed,
        "best_epoch": best_epoch,
        "epochs_run": len(losses),
        "val_loss": float(min(losses)),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "validation": scores,
        "data": data.summary,
        "distillation": distilled.summary if distilled else None,
        "seconds": round(time.monotonic() - t0, 1),
    }
    training = {
        "recipe": recipe.to_dict(),
        "seed": seed,
        "best_epoch": best_epoch,
        "data": data.summary,
        "validation_f1": scores["f1"],
        "validation_sources": scores["sources"],
        "test_house": f"REFIT house {TEST_HOUSE} (never used for training or choices)",
        "delay_s": recipe.delay_s,
        # Every training source is read (targets, backgrounds, distractors): credit each.
        "attribution": attribution_for(" ".join(s.house.source for s in train)),
        **({"distillation": distilled.summary} if distilled else {}),
    }
    card = dataclasses.replace(card, training=training)
    (run_dir / CARD_JSON).write_text(card.to_json(), encoding="utf-8")
    save_representative(recipe, data, spec.on_power_threshold_w, seed, run_dir)
    write_json(run_dir / "result.json", result)
    write_json(
        run_dir / CONFIG_JSON,
        {
            "recipe": recipe.to_dict(),
            "seed": seed,
            **({"distill": distill.to_dict()} if distill else {}),
        },
    )
    log(
        f"{recipe.appliance} seed {seed}: best epoch {best_epoch}/{len(losses)}, val loss "
        f"{min(losses):.4f}, validation F1 {scores['f1']:.3f} at threshold "
        f"{scores['threshold']:.2f}, bridging {scores['min_off_s']:.0f} s "
        f"({result['seconds']:.0f} s)"
    )
    keras.backend.clear_session()
    return result


def _distilled(
    recipe: Recipe,
    config: DistillConfig,
    train: list[Source],
    seed: int,
    labelled: tuple[FloatArray, FloatArray, FloatArray],
) -> DistilledSet:
    """The ``labelled`` training set (windows in watts, power / scale, on) with the
    teacher's targets blended in and unlabelled mains windows of every training house
    added."""
    from .distill import distilled_targets, load_teacher, unlabelled_windows

    teacher = load_teacher(
        Path(config.teacher), window_length=recipe.window_length,
        target_index=recipe.target_index,
    )  # fmt: skip
    mains = [s.house.frame["aggregate"].to_numpy(dtype=np.float32) for s in train]
    rng = np.random.default_rng([seed, 1])  # its own stream: the labelled draw is unchanged
    unlabelled = unlabelled_windows(
        mains, recipe.window_length, recipe.target_index, config.unlabelled_windows, rng
    )
    x_w, power, on = labelled
    return distilled_targets(
        teacher, config, x_w=x_w, power=power, on=on, unlabelled_w=unlabelled,
        scale_w=get_appliance(recipe.appliance).max_power_w,
    )  # fmt: skip


def select_seed(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed with the best validation F1 (ties: lower validation loss)."""
    return max(
        results, key=lambda r: (np.nan_to_num(r["validation"]["f1"], nan=-1.0), -r["val_loss"])
    )


ENSEMBLE_RUN = "ensemble"


def train_ensemble(
    recipe: Recipe,
    results: list[dict[str, Any]],
    *,
    train: list[Source],
    val_series: list[Series],
    run_root: Path,
    log: Any = print,
) -> dict[str, Any]:
    """Average every seed's heads into one model (:func:`trainer.models.build_ensemble`)
    and score it on validation exactly as a seed is scored, into ``<appliance>/ensemble``.

    Seeds of one recipe differ on unseen houses by as much as variants do, and the seed
    that wins on validation has lost on other houses; the average of the seeds removes
    that draw instead of betting on it. Whether it ships is still decided on validation."""
    import keras

    from custom_components.nilm.engine.card import load_card

    from .models import build_ensemble, load_keras_model

    t0 = time.monotonic()
    root = run_root / recipe.appliance
    seeds = [int(r["seed"]) for r in results]
    cards = [load_card(root / f"seed{s}" / CARD_JSON, verify_hash=False) for s in seeds]
    mean_w = float(np.mean([c.input_mean_w for c in cards]))
    std_w = float(np.mean([c.input_std_w for c in cards]))
    members = [
        (load_keras_model(str(root / f"seed{s}" / MODEL_KERAS)), c.input_mean_w, c.input_std_w)
        for s, c in zip(seeds, cards, strict=True)
    ]
    model = build_ensemble(members, mean_w, std_w)
    train_houses = _train_houses(train)
    scores = validation_scores(
        model, recipe, val_series, mean_w=mean_w, std_w=std_w, train_houses=train_houses
    )
    run_dir = root / ENSEMBLE_RUN
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / MODEL_KERAS)
    first = cards[0]
    status = dataclasses.replace(
        first.status, min_off_s=scores["min_off_s"], probability_threshold=scores["threshold"]
    )
    training = {
        **first.training,
        "seed": None,
        "ensemble_of_seeds": seeds,
        "best_epoch": None,
        "validation_f1": scores["f1"],
        "validation_sources": scores["sources"],
    }
    card = dataclasses.replace(
        first, input_mean_w=mean_w, input_std_w=std_w, status=status, training=training
    )
    (run_dir / CARD_JSON).write_text(card.to_json(), encoding="utf-8")
    _renormalised_representative(root / f"seed{seeds[0]}", first, mean_w, std_w, run_dir)
    write_json(run_dir / CONFIG_JSON, {"recipe": recipe.to_dict(), "ensemble_of_seeds": seeds})
    result = {
        "appliance": recipe.appliance,
        "seeds": seeds,
        "validation": scores,
        "parameters": int(model.count_params()),
        "seconds": round(time.monotonic() - t0, 1),
    }
    write_json(run_dir / "result.json", result)
    log(
        f"{recipe.appliance} ensemble of seeds {seeds}: validation F1 {scores['f1']:.3f} at "
        f"threshold {scores['threshold']:.2f}, bridging {scores['min_off_s']:.0f} s"
    )
    keras.backend.clear_session()
    return result


def _renormalised_representative(
    seed_dir: Path, card: Any, mean_w: float, std_w: float, run_dir: Path
) -> None:
    """A seed's calibration windows, re-normalised to the ensemble's input statistics
    (the same real training windows: the ensemble needs no pass over the data)."""
    with np.load(seed_dir / "representative.npz") as arrays:
        windows, targets = arrays["windows"], arrays["targets_w"]
    watts = windows.astype(np.float64) * card.input_std_w + card.input_mean_w
    windows = ((watts - mean_w) / std_w).astype(np.float32)
    np.savez(run_dir / "representative.npz", windows=windows, targets_w=targets)
    meta = load_json(seed_dir / "representative.json")
    meta["notes"] = [*meta.get("notes", []), "re-normalised to the ensemble's input statistics"]
    write_json(run_dir / "representative.json", meta)


ENERGY_FACTOR_LIMITS = (0.5, 2.0)


def energy_calibration(run_dir: Path, recipe: Recipe, val_series: list[Series]) -> dict[str, Any]:
    """The factor on the card's power scale that makes the chosen model's energy, as the
    integration counts it (gated power while "Running" is on after the minimum
    durations), equal the metered energy over the validation sources, pooled.

    Every bundled model over-counts energy in houses it did not train on: false
    "Running" periods add whole cycles while missed ones lose only part of theirs. One
    scalar on the power head fixes the bias it shows on validation without touching the
    .tflite; it is kept within ``ENERGY_FACTOR_LIMITS``. The float model stands in for
    its int8 export here, as for the threshold."""
    from custom_components.nilm.engine.card import load_card
    from custom_components.nilm.engine.status import apply_min_durations, durations_to_samples

    from .keras_backend import keras_model

    card = load_card(run_dir / CARD_JSON, verify_hash=False)
    model = keras_model(str(run_dir / MODEL_KERAS), card, batch_size=4096)
    length, t_idx, period = recipe.window_length, recipe.target_index, recipe.period_s
    min_on = durations_to_samples(card.status.min_on_s, period)
    min_off = durations_to_samples(card.status.min_off_s, period)
    predicted_w = metered_w = 0.0
    for s in val_series:
        starts = valid_starts(s.aggregate_w, s.target_w, length, t_idx)
        if not starts.size:
            continue
        pred = model.predict(_windows(s, starts, length))
        running = apply_min_durations(pred.on, min_on, min_off)  # as the tracker gates it
        predicted_w += float(np.sum(pred.power_w[running], dtype=np.float64))
        metered_w += float(np.nansum(s.target_w[starts + t_idx], dtype=np.float64))
    to_kwh = period / 3.6e6
    raw = metered_w / predicted_w if predicted_w > 0 else 1.0
    lo, hi = ENERGY_FACTOR_LIMITS
    return {
        "factor": float(min(max(raw, lo), hi)),
        "unclipped_factor": float(raw),
        "predicted_kwh": predicted_w * to_kwh,
        "metered_kwh": metered_w * to_kwh,
        "sources": [s.label for s in val_series],
        "note": "power_scale_w multiplied by metered / predicted energy on the validation "
        "sources (float model), so the energy entity has no validation bias",
    }


def choose_run(results: list[dict[str, Any]], ensemble: dict[str, Any] | None) -> str:
    """``ensemble`` when its validation F1 is at least the seeds' mean, else the best
    seed's ``seed<N>``.

    The ensemble replaces a draw of the seed, so it must beat what a draw gives on
    average. The best seed's own score is the wrong bar: it is the largest of several
    noisy scores on the very data it was picked on, so it overstates what that seed does
    in a new house (a validation-picked seed was the weakest of three on other houses
    more than once)."""
    if ensemble is not None:
        f1s = [np.nan_to_num(r["validation"]["f1"], nan=-1.0) for r in results]
        if np.nan_to_num(ensemble["validation"]["f1"], nan=-1.0) >= float(np.mean(f1s)):
            return ENSEMBLE_RUN
    return f"seed{select_seed(results)['seed']}"


def save_representative(
    recipe: Recipe, data: TrainingData, on_threshold_w: float, seed: int, run_dir: Path
) -> None:
    """The calibration set of this seed (real training windows, normalised), kept beside
    its model so the export needs no second pass over the training data."""
    from .calibration import build_representative_set

    x = (data.x_w[: data.real] - np.float32(data.mean_w)) / np.float32(data.std_w)
    rep = build_representative_set(
        x, data.target_w[: data.real], on_threshold_w=on_threshold_w,
        house="training corpus", test_houses=[f"REFIT house {TEST_HOUSE}"],
        source="real training windows of the bundled recipe", size=recipe.representative_size,
        seed=seed,
    )  # fmt: skip
    np.savez(run_dir / "representative.npz", windows=rep.windows, targets_w=rep.targets_w)
    write_json(run_dir / "representative.json", rep.summary())


def load_representative(run_dir: Path) -> Any:
    """:func:`save_representative`'s set, as a :class:`trainer.quantize.RepresentativeSet`."""
    from .calibration import RepresentativeSet, check_not_test_house

    meta = load_json(run_dir / "representative.json")
    check_not_test_house(meta["house"], meta["excluded_houses"])
    with np.load(run_dir / "representative.npz") as arrays:
        windows, targets = arrays["windows"], arrays["targets_w"]
    return RepresentativeSet(
        windows=windows, targets_w=targets, on=targets >= meta["on_threshold_w"],
        house=meta["house"], source=meta["source"], seed=meta["seed"],
        on_threshold_w=meta["on_threshold_w"],
        excluded_houses=tuple(meta["excluded_houses"]), notes=tuple(meta["notes"]),
    )  # fmt: skip


def export_seed(
    recipe: Recipe,
    run_dir: Path,
    *,
    models_dir: Path,
    seed: int,
    calibration: dict[str, Any] | None = None,
) -> Path:
    """Quantize the chosen run's model (a seed or the ensemble; calibrated on training
    windows) and export it. ``seed`` seeds the converter; ``calibration``
    (:func:`energy_calibration`) scales the card's power."""
    from custom_components.nilm.engine.card import load_card

    from .export import export_model
    from .models import load_keras_model
    from .quantize import QuantizeConfig, convert

    card = load_card(run_dir / CARD_JSON, verify_hash=False)
    if calibration is not None:
        card = dataclasses.replace(
            card,
            power_scale_w=card.power_scale_w * calibration["factor"],
            training={**card.training, "energy_calibration": calibration},
        )
    members = card.training.get("ensemble_of_seeds")
    what = f"the ensemble of seeds {', '.join(map(str, members))}" if members else f"seed {seed}"
    model = load_keras_model(str(run_dir / MODEL_KERAS))
    rep = load_representative(run_dir)
    chosen = convert(model, QuantizeConfig(mode=recipe.export_mode, seed=seed), rep)
    tpu = convert(model, QuantizeConfig(mode="w8_a8", int8_io=True, seed=seed), rep)
    result = export_model(
        models_dir, recipe.appliance, chosen, card, edgetpu=tpu,
        training={"representative": rep.summary()},
        report=f"Built by `scripts/build_bundled_models.sh {recipe.appliance}` ({what}).",
    )  # fmt: skip
    return result.card_path


def build(
    appliance: str,
    data_dir: Path,
    run_root: Path,
    models_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    model_settings: dict[str, Any] | None = None,
    distill: DistillConfig | None = None,
    export: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Train every seed of ``appliance``, choose on validation, export the choice
    (``export`` False: a comparison run, e.g. the reference ``cnn``, kept in run_root)."""
    recipes = load_recipes()
    if appliance not in recipes:
        raise TrainerError(f"no bundled recipe for {appliance!r} (have: {', '.join(recipes)})")
    recipe = recipes[appliance]
    if overrides:
        recipe = recipe.with_overrides(**overrides)
    if model_settings:
        recipe = recipe.with_model_settings(**model_settings)
    recipe.model_config()  # unknown or invalid settings fail before any data is read
    train = load_split(recipe, "train", data_dir, any_appliance=True)
    val = [
        _series(s, appliance, recipe.period_s) for s in load_split(recipe, "validation", data_dir)
    ]
    results = [
        train_seed(
            recipe,
            seed,
            train=train,
            val_series=val,
            run_dir=run_root / appliance / f"seed{seed}",
            distill=distill,
            log=log,
        )
        for seed in recipe.seeds
    ]
    chosen = select_seed(results)
    ensemble = None
    if export and distill is None and len(results) > 1:
        ensemble = train_ensemble(
            recipe, results, train=train, val_series=val, run_root=run_root, log=log
        )
    selected_run = choose_run(results, ensemble)
    card_path = calibration = None
    if export:
        run_dir = run_root / appliance / selected_run
        calibration = energy_calibration(run_dir, recipe, val)
        log(
            f"{appliance}: energy on validation {calibration['predicted_kwh']:.1f} kWh "
            f"predicted / {calibration['metered_kwh']:.1f} metered: power scale x "
            f"{calibration['factor']:.3f}"
        )
        card_path = export_seed(
            recipe, run_dir, models_dir=models_dir, seed=chosen["seed"], calibration=calibration
        )
    summary = {
        "appliance": appliance,
        "selected_seed": chosen["seed"],
        "selected_run": selected_run,
        "selected_by": "validation score (validation sources only; see validation_scores)",
        "ensemble": ensemble,
        "energy_calibration": calibration,
        "seeds": [
            {k: r[k] for k in ("seed", "best_epoch", "val_loss", "validation", "seconds")}
            for r in results
        ],
        "recipe": recipe.to_dict(),
        "distill": distill.to_dict() if distill else None,
        "card": str(card_path) if card_path else None,
    }
    write_json(run_root / appliance / "selection.json", summary)
    where = f"exported to {card_path}" if card_path else "not exported (--no-export)"
    log(f"{appliance}: {selected_run} chosen on validation; {where}")
    return summary


def _ensemble_entry(ensemble: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the seed report keeps of the ensemble: its members and validation F1 (its
    test numbers, when it ships, are the shipped int8 file's, in metrics.json)."""
    if not ensemble:
        return None
    return {"seeds": ensemble["seeds"], "validation": {"f1": ensemble["validation"]["f1"]}}


def _seed_spread(
    selection: dict[str, Any], run_root: Path, tests: list[Source]
) -> list[dict[str, Any]]:
    """Each seed's float model on every test source (no rule baseline, no plots)."""
    from .evaluate import EvalConfig, evaluate

    keys = ("f1", "mcc", "mae_w", "sae", "precision", "recall", "event_recall")
    seeds = []
    for entry in selection["seeds"]:
        run = run_root / selection["appliance"] / f"seed{entry['seed']}"
        per_house = {}
        for src in tests:
            ev = evaluate(src.house, EvalConfig(model=str(run), plots=False, rule_baseline=False))
            per_house[src.label] = {k: ev.metrics.get(k) for k in keys}
        seeds.append(
            {
                "seed": entry["seed"],
                "validation": {"f1": entry["validation"]["f1"], "loss": entry["val_loss"]},
                "test": per_house,
                "test_house_20": per_house.get(tests[0].label) if len(tests) == 1 else None,
            }
        )
    return seeds


def _previous_reference(path: Path) -> dict[str, Any] | None:
    """The reference block of an earlier report at ``path``, marked as carried over."""
    if not path.is_file():
        return None
    block = load_json(path).get("reference_cnn")
    if not isinstance(block, dict):
        return None
    block.setdefault(
        "carried_over",
        "measured in an earlier build and not re-run with this one (no --reference-root): "
        "its seeds had that build's data masks, threshold and bridged off-gaps",
    )
    return block


def _reference_block(appliance: str, reference_root: Path, tests: list[Source]) -> dict[str, Any]:
    """The reference build's seeds (float) on the test split, as the report shows them."""
    ref_sel = load_json(reference_root / appliance / "selection.json")
    return {
        "architecture": ref_sel["recipe"]["architecture"],
        "epochs": ref_sel["recipe"]["epochs"],
        "note": "same recipe, data, windows and split; float Keras",
        "seeds": _seed_spread(ref_sel, reference_root, tests),
    }


def refresh_reference(
    appliance: str, data_dir: Path, reports_dir: Path, reference_root: Path
) -> dict[str, Any]:
    """Re-measure only the reference block of an existing report (``seeds.json``): the
    reference is re-trained after a change of data or rule without the shipped build's
    seed runs at hand; the rest of the report stays as it was measured."""
    path = reports_dir / "seeds.json"
    if not path.is_file():
        raise TrainerError(f"no report at {path}: run `bundle {appliance} --report` first")
    if not (reference_root / appliance / "selection.json").is_file():
        raise TrainerError(f"no reference build of {appliance} under {reference_root}")
    tests = load_split(load_recipes()[appliance], "test", data_dir)
    out = load_json(path)
    out["reference_cnn"] = _reference_block(appliance, reference_root, tests)
    write_json(path, out)
    return out


def report(
    appliance: str,
    data_dir: Path,
    run_root: Path,
    reports_dir: Path,
    reference_root: Path | None = None,
) -> dict[str, Any]:
    """After export: every seed's float model on the test split (the seed spread), and
    for the fridge the shipped model on each unseen house. Nothing here feeds back into
    a choice: the seed was selected and exported before the test data was read."""

    selection = load_json(run_root / appliance / "selection.json")
    recipe = load_recipes()[appliance]
    tests = load_split(recipe, "test", data_dir)
    seeds = _seed_spread(selection, run_root, tests)
    out = {
        "appliance": appliance,
        "selected_seed": selection["selected_seed"],
        "selected_run": selection.get("selected_run", f"seed{selection['selected_seed']}"),
        "selected_by": selection["selected_by"],
        "ensemble": _ensemble_entry(selection.get("ensemble")),
        "note": "float Keras parents of each seed on the test split; the shipped int8 "
        "file's numbers are in metrics.json",
        "seeds": seeds,
    }
    if reference_root is not None and (reference_root / appliance / "selection.json").is_file():
        out["reference_cnn"] = _reference_block(appliance, reference_root, tests)
    elif (previous := _previous_reference(reports_dir / "seeds.json")) is not None:
        # The reference takes hours on a CPU: without a run root, the last measured one
        # stays, saying so (re-run it with REFERENCE_ROOT after a change of data or rule).
        out["reference_cnn"] = previous
    reports_dir.mkdir(parents=True, exist_ok=True)
    write_json(reports_dir / "seeds.json", out)
    write_json(reports_dir / "selection.json", selection)
    card = Path(selection["card"])
    if selection.get("selected_run") == ENSEMBLE_RUN:
        chosen = selection["ensemble"]
    else:
        chosen = next(s for s in selection["seeds"] if s["seed"] == selection["selected_seed"])
    measured: dict[str, Any] = {"validation": chosen["validation"]}
    if len(tests) > 1:  # the fridge: shipped int8 model on every unseen house
        unseen = unseen_houses(card, tests)
        write_json(reports_dir / "unseen_houses.json", unseen)
        measured["test_unseen_houses"] = unseen["pooled"]
    elif (reports_dir / "metrics.json").is_file():
        shipped = load_json(reports_dir / "metrics.json")
        measured[f"test_house_{TEST_HOUSE}"] = shipped["model"]
        measured[f"rule_house_{TEST_HOUSE}"] = shipped["rule"]
    stamp_card_metrics(card, measured)
    return out


def unseen_houses(card: Path, tests: list[Source]) -> dict[str, Any]:
    """The shipped model and the rule on each test house, plus both pooled over them
    (the fridge has no long test house: its test is several unseen houses' days)."""
    from .evaluate import EvalConfig, evaluate

    keys = ("f1", "mcc", "precision", "recall", "event_recall", "event_precision",
            "true_energy_kwh", "predicted_energy_kwh", "running_on_delay_s",
            "running_off_delay_s")  # fmt: skip
    houses, pooled = [], {"truth": [], "model": [], "rule": []}
    for src in tests:
        ev = evaluate(src.house, EvalConfig(model=str(card), backend="numpy", plots=False))
        rule = ev.rule_metrics or {}
        houses.append(
            {"house": src.label, **{k: ev.metrics.get(k) for k in keys},
             "rule_f1": rule.get("f1"), "rule_event_recall": rule.get("event_recall")}
        )  # fmt: skip
        valid = ev.valid if ev.valid is not None else np.ones(ev.true_on.size, bool)
        pooled["truth"].append(ev.true_on[valid])
        pooled["model"].append(ev.pred_on[valid])
        pooled["rule"].append((ev.rule_on if ev.rule_on is not None else ev.pred_on * False)[valid])
    truth = np.concatenate(pooled["truth"])
    return {
        "houses": houses,
        "pooled": {
            "f1": f1_score(truth, np.concatenate(pooled["model"])),
            "rule_f1": f1_score(truth, np.concatenate(pooled["rule"])),
            "samples": int(truth.size),
            "running_samples": int(truth.sum()),
        },
        "backend": "numpy",
        "model": str(card),
    }


def stamp_card_metrics(card_path: Path, measured: dict[str, Any]) -> None:
    """Write the measured numbers into the exported card(s) (and the Edge TPU twin), so
    Home Assistant can show them; the .tflite and its hash are untouched."""
    from custom_components.nilm.engine.card import load_card

    for path in (card_path, card_path.parent / "edgetpu" / card_path.name):
        if not path.is_file():
            continue
        card = load_card(path, verify_hash=True)
        card = dataclasses.replace(card, metrics={**card.metrics, **jsonable(measured)})
        path.write_text(card.to_json(), encoding="utf-8")
        load_card(path, verify_hash=True)
