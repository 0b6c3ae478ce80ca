"""Training: seq2point with a power head and a status head, resumable and distributable.

Loss per batch (all terms in the model's units, power / ``max_power_w``)::

    MSE(power) + BCE(status) + mae_weight * MAE(power over relevant samples)

where *relevant* means the appliance is on in truth or in either prediction. Unlike the
reference (goruck/nilm), the BCE term reads the sigmoid status head, so it has a gradient;
the reference fed it thresholded powers, a constant for the optimiser.

A run directory holds everything needed to resume or audit a run: ``config.json`` (the
resolved configuration and data provenance), ``checkpoint/`` (last epoch: weights +
optimiser), ``state.json`` (epoch, best epoch, patience counter), ``best.weights.h5``,
``history.json``, and at the end ``model.keras``, ``metrics.json`` and ``card.json`` (a
model card without a .tflite, for trainer.quantize/export to complete).

The status probability threshold is chosen to maximise F1 on the training house's
validation block; the test house is never looked at here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import __version__
from .appliances import get_appliance
from .config import DEFAULT_EPOCHS, STRATEGIES, ModelConfig, TrainConfig, WindowConfig
from .data import HouseData
from .distill import DistilledStarts, distilled_starts, draw_unlabelled, load_teacher
from .errors import TrainerError
from .files import (
    BEST_WEIGHTS,
    CARD_JSON,
    CHECKPOINT,
    CONFIG_JSON,
    HISTORY_JSON,
    METRICS_JSON,
    MODEL_KERAS,
    STATE_JSON,
    load_json,
    write_json,
)
from .windows import WindowSet, WindowSplit, make_windows, valid_starts

__all__ = [
    "DEFAULT_EPOCHS", "STRATEGIES", "THRESHOLD_GRID", "ModelConfig", "TrainConfig",
    "TrainResult", "WindowConfig", "choose_threshold", "loss_terms", "make_strategy",
    "status_labels", "status_rule", "thin", "train",
]  # fmt: skip

if TYPE_CHECKING:
    # Names for the type checker only: TensorFlow is imported inside functions, so
    # `nilm-trainer --help` does not pay for it.
    import tensorflow as tf

    from custom_components.nilm.engine.card import StatusRule

FloatArray = npt.NDArray[np.float32]

THRESHOLD_GRID: tuple[float, ...] = (
    *(round(float(t), 2) for t in np.arange(0.05, 0.96, 0.05)),
    0.97,
    0.99,
)


@dataclass(frozen=True, slots=True)
class TrainResult:
    run_dir: Path
    best_epoch: int
    epochs_run: int
    probability_threshold: float
    validation: dict[str, float]
    history: list[dict[str, float]]


def status_rule(
    appliance: str, probability_threshold: float = 0.5, on_threshold_w: float | None = None
) -> StatusRule:
    """The appliance's on/off rule; ``on_threshold_w`` overrides the table's threshold
    (0.5 for binary on/off labels from Home Assistant entities)."""
    from custom_components.nilm.engine.card import StatusRule

    spec = get_appliance(appliance)
    return StatusRule(
        on_power_threshold_w=(
            spec.on_power_threshold_w if on_threshold_w is None else on_threshold_w
        ),
        min_on_s=spec.min_on_s,
        min_off_s=spec.min_off_s,
        probability_threshold=probability_threshold,
    )


def status_labels(windows: WindowSet, rule: StatusRule) -> FloatArray:
    """On/off at each window's target under the appliance's full rule (threshold and
    minimum durations over the whole series), the same rule the evaluation scores."""
    from custom_components.nilm.engine.status import status_from_power

    target = np.nan_to_num(windows.target_w, nan=0.0)
    on = status_from_power(target, rule, windows.period_s)
    return on[windows.starts + windows.target_index].astype(np.float32)


def choose_threshold(probability: npt.ArrayLike, truth_on: npt.ArrayLike) -> tuple[float, float]:
    """Probability threshold with the best F1 (ties: the one nearest 0.5)."""
    p = np.asarray(probability, dtype=np.float64).reshape(-1)
    t = np.asarray(truth_on, dtype=bool).reshape(-1)
    best = (0.5, -1.0)
    for thr in sorted(THRESHOLD_GRID, key=lambda x: abs(x - 0.5)):
        pred = p >= thr
        tp = np.count_nonzero(pred & t)
        den = 2 * tp + np.count_nonzero(pred & ~t) + np.count_nonzero(~pred & t)
        f1 = 2 * tp / den if den else 0.0
        if f1 > best[1] + 1e-12:
            best = (float(thr), float(f1))
    return best


def thin(starts_count: int, limit: int | None) -> npt.NDArray[np.intp]:
    """Evenly spread indices (keeps the validation block's natural on/off mix)."""
    if limit is None or starts_count <= limit:
        return np.arange(starts_count)
    return np.linspace(0, starts_count - 1, limit).round().astype(np.intp)


# ---------------------------------------------------------------------------- TF parts


def make_strategy(name: str, logical_cpus: int = 0) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``name``; call before any other TF work when
    ``logical_cpus`` > 1 (logical devices are fixed once TF initialises)."""
    import tensorflow as tf

    if logical_cpus > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus
            )
        except RuntimeError as err:
            raise TrainerError(f"cannot split the CPU after TensorFlow started: {err}") from err
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainerError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")


def worker_run_dir(run_dir: Path, strategy: str) -> Path:
    """Where this process writes: the chief (worker 0 of ``TF_CONFIG``) the run directory,
    every other worker of a multi-worker cluster its own ``.worker<k>`` inside it, so the
    same command on several machines (one shared folder or not) never overwrites a file."""
    if strategy != "multi-worker":
        return run_dir
    try:
        task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    except ValueError as err:
        raise TrainerError(f"TF_CONFIG is not JSON: {err}") from err
    index = int(task.get("index", 0))
    chief = task.get("type", "worker") == "chief" or (task.get("type") == "worker" and index == 0)
    return run_dir if chief else run_dir / f".worker{index}"


def loss_terms(
    y_power: tf.Tensor,
    y_on: tf.Tensor,
    p_power: tf.Tensor,
    p_status: tf.Tensor,
    *,
    mae_weight: float,
    on_threshold_scaled: float,
) -> dict[str, tf.Tensor]:
    """Per-replica batch means of the loss and its parts (shapes (B, 1))."""
    import tensorflow as tf

    eps = 1e-7
    prob = tf.clip_by_value(p_status, eps, 1.0 - eps)
    mse = tf.reduce_mean(tf.square(p_power - y_power))
    bce = -tf.reduce_mean(y_on * tf.math.log(prob) + (1.0 - y_on) * tf.math.log(1.0 - prob))
    relevant = tf.stop_gradient(
        tf.cast((y_on > 0.5) | (p_status >= 0.5) | (p_power >= on_threshold_scaled), tf.float32)
    )
    mae = tf.reduce_sum(relevant * tf.abs(p_power - y_power)) / tf.maximum(
        tf.reduce_sum(relevant), 1.0
    )
    return {"loss": mse + bce + mae_weight * mae, "mse": mse, "bce": bce, "mae": mae}


def _dataset(
    windows: WindowSet,
    labels: FloatArray,
    order: npt.NDArray[np.intp],
    batch_size: int,
    *,
    drop_remainder: bool,
    power: FloatArray | None = None,
) -> tf.data.Dataset:
    """Batches gathered in the graph from the 1-D series: no window is materialised
    outside the batch being trained on, and the pipeline works under any strategy.
    Targets are one scaled power per window: the sub-meter's at the target index, or
    ``power`` where given (a teacher's blend)."""
    import tensorflow as tf

    norm = windows.norm
    series = np.nan_to_num(
        (windows.aggregate_w - np.float32(norm.input_mean_w)) / np.float32(norm.input_std_w)
    ).astype(np.float32)
    if power is None:
        scaled = np.nan_to_num(windows.target_w / np.float32(norm.power_scale_w))
        power = scaled.astype(np.float32)[windows.starts + windows.target_index]
    series_t = tf.constant(series)
    offsets = tf.range(windows.window_length, dtype=tf.int64)

    def gather(
        starts: tf.Tensor, y: tf.Tensor, on: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x = tf.gather(series_t, starts[:, None] + offsets[None, :])
        return x, y[:, None], on[:, None]

    ds = tf.data.Dataset.from_tensor_slices((windows.starts[order], power[order], labels[order]))
    return (
        ds.batch(batch_size, drop_remainder=drop_remainder)
        .map(gather, num_parallel_calls=1, deterministic=True)
        .prefetch(2)
    )


class _Runner:
    """Compiled train/eval steps of one model under one strategy."""

    def __init__(
        self, config: TrainConfig, strategy: tf.distribute.Strategy, on_threshold_scaled: float
    ) -> None:
        import keras
        import tensorflow as tf

        from .models import build_model

        self.config = config
        self.strategy = strategy
        with strategy.scope():
            self.model: keras.Model = build_model(config.model)
            self.optimizer = keras.optimizers.Adam(
                learning_rate=config.learning_rate,
                beta_1=config.beta_1,
                beta_2=config.beta_2,
                epsilon=config.epsilon,
            )
            self.optimizer.build(self.model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Dropout's seed-generator states are not tracked through the model: list them
        # so a resumed run draws the same dropout masks as an uninterrupted one.
        seeds = [v.value for v in self.model.non_trainable_variables if "seed" in v.path]
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch, seeds=seeds
        )
        self.on_scaled = on_threshold_scaled
        replicas = strategy.num_replicas_in_sync

        def train_replica(x: tf.Tensor, y: tf.Tensor, on: tf.Tensor) -> dict[str, tf.Tensor]:
            with tf.GradientTape() as tape:
                power, status = self.model(x, training=True)
                terms = loss_terms(
                    y,
                    on,
                    power,
                    status,
                    mae_weight=config.mae_weight,
                    on_threshold_scaled=self.on_scaled,
                )
                # Gradients are summed over replicas: scale each replica's mean.
                scaled = terms["loss"] / replicas
            variables = self.model.trainable_variables
            grads = tape.gradient(scaled, variables)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return terms

        def eval_replica(x: tf.Tensor, y: tf.Tensor, on: tf.Tensor) -> dict[str, tf.Tensor]:
            power, status = self.model(x, training=False)
            terms = loss_terms(
                y,
                on,
                power,
                status,
                mae_weight=config.mae_weight,
                on_threshold_scaled=self.on_scaled,
            )
            terms["count"] = tf.cast(tf.shape(x)[0], tf.float32)
            return terms

        # No Python control flow inside: autograph would only trip over the closures.
        @tf.function(autograph=False)
        def train_step(batch: Any) -> dict[str, tf.Tensor]:
            out = strategy.run(train_replica, args=batch)
            return {
                k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in out.items()
            }

        @tf.function(autograph=False)
        def predict_step(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            power, status = self.model(x, training=False)
            return power, status

        self.train_step = train_step
        self.eval_replica = eval_replica
        self.predict_step = predict_step

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Sample-weighted means of the loss terms over a (non-distributed) dataset, plus
        ``zero_loss``: the same loss for the best constant predictor (0 W, on-probability
        = the block's on-share), the bar a model must clear to have learnt anything."""
        totals: dict[str, float] = {}
        count = on_count = zero_sq = on_abs = 0.0
        for x, y, on in dataset:
            terms = self.eval_replica(x, y, on)
            n = float(terms.pop("count"))
            count += n
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v) * n
            on_np, y_np = on.numpy(), y.numpy()
            on_count += float(on_np.sum())
            zero_sq += float(np.square(y_np).sum())
            on_abs += float(np.abs(y_np[on_np > 0.5]).sum())
        if not count:
            return {}
        out = {k: v / count for k, v in totals.items()}
        prior = min(max(on_count / count, 1e-7), 1 - 1e-7)
        entropy = -(prior * math.log(prior) + (1 - prior) * math.log(1 - prior))
        out["zero_mse"] = zero_sq / count
        out["zero_loss"] = (
            out["zero_mse"] + entropy + self.config.mae_weight * on_abs / max(on_count, 1.0)
        )
        return out

    def predict(self, dataset: tf.data.Dataset) -> tuple[FloatArray, FloatArray]:
        powers, probs = [], []
        for x, _, _ in dataset:
            power, status = self.predict_step(x)
            powers.append(power.numpy().reshape(-1))
            probs.append(status.numpy().reshape(-1))
        return (
            np.concatenate(powers).astype(np.float32),
            np.concatenate(probs).astype(np.float32),
        )


def _distilled(
    house: HouseData, config: TrainConfig, split: WindowSplit, labels: FloatArray
) -> DistilledStarts:
    """The balanced training windows with the teacher's targets blended in, plus
    ``unlabelled_windows`` more windows of the training block's mains (any valid mains
    window before the validation boundary, its sub-meter ignored) with the teacher's
    targets alone; the validation block is never shown to the teacher."""
    assert config.distill is not None
    if config.appliance in house.status_columns:
        raise TrainerError(
            f"{house.source}: {config.appliance} has on/off labels only; distillation "
            "needs power labels to blend with the teacher's power"
        )
    length, t_idx = config.windows.window_length, config.windows.target_index
    teacher = load_teacher(Path(config.distill.teacher), window_length=length, target_index=t_idx)
    if teacher.card.sample_period_s != house.period_s:
        raise TrainerError(
            f"the teacher reads {teacher.card.sample_period_s:g} s samples, "
            f"{house.source} has {house.period_s:g} s"
        )
    train = split.train
    pool = valid_starts(train.aggregate_w, train.aggregate_w, length, t_idx)
    pool = pool[pool + length <= split.boundary]
    rng = np.random.default_rng([config.seed, 1])  # its own stream: the labelled draw stays
    (unlabelled,) = draw_unlabelled([pool], config.distill.unlabelled_windows, rng)
    return distilled_starts(
        teacher,
        config.distill,
        aggregate_w=train.aggregate_w,
        starts=train.starts,
        power=train.targets(),
        on=labels,
        unlabelled=unlabelled,
        window_length=length,
        scale_w=split.norm.power_scale_w,
    )


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not enabled)


def train(
    house: HouseData,
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Any = print,
) -> TrainResult:
    """Train one appliance model on ``house`` into ``run_dir``; see the module doc."""
    import keras
    import tensorflow as tf

    from custom_components.nilm.engine.card import ModelCard
    from custom_components.nilm.engine.model import gated_prediction

    run_dir = worker_run_dir(Path(run_dir), config.strategy)
    state_path = run_dir / STATE_JSON
    if resume:
        if not state_path.is_file():
            raise TrainerError(f"{run_dir} has no state.json to resume from")
        # The run's own configuration wins (same windows, model, seed); only the epoch
        # budget is the caller's, to extend a finished run or end one early.
        saved = TrainConfig.from_dict(load_json(run_dir / CONFIG_JSON))
        config = dataclasses.replace(saved, epochs=config.epochs)
    elif state_path.exists():
        raise TrainerError(f"{run_dir} already holds a run; use --resume or another --run-dir")

    strategy = make_strategy(config.strategy, config.logical_cpus)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    split: WindowSplit = make_windows(house, config.appliance, config.windows)
    if len(split.validation) == 0:
        raise TrainerError("the validation block is empty: use a validation fraction > 0")
    rule = status_rule(config.appliance, on_threshold_w=split.norm.on_threshold_w)
    train_set = split.train
    train_labels = status_labels(train_set, rule)
    train_power: FloatArray | None = None
    distillation: dict[str, Any] | None = None
    if config.distill is not None:
        distilled = _distilled(house, config, split, train_labels)
        train_set = dataclasses.replace(split.train, starts=distilled.starts)
        train_labels, train_power = distilled.on, distilled.power
        distillation = distilled.summary
        log(
            f"distilling from {config.distill.teacher}: {distillation['unlabelled_windows']:,} "
            f"unlabelled windows, the teacher agrees with "
            f"{distillation['teacher_agreement_on_labels']:.1%} of the labels"
        )
    # Seeded after the teacher ran: loading it draws from Keras' global generators, and
    # the student must start from the same weights with or without one.
    keras.utils.set_random_seed(config.seed)
    val_labels_all = status_labels(split.validation, rule)
    val_pick = thin(len(split.validation), config.max_validation_windows)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    n_train = len(train_set)
    steps = config.steps_per_epoch or max(1, n_train // global_batch)
    if n_train < global_batch:
        raise TrainerError(
            f"only {n_train} training windows for a global batch of {global_batch}: "
            "use more data or a smaller batch"
        )
    val_ds = _dataset(split.validation, val_labels_all, val_pick, 1024, drop_remainder=False)
    log(
        f"{house.source}: {n_train:,} training windows ({100 * float(train_labels.mean()):.0f} % "
        f"on), {val_pick.size:,} validation windows "
        f"({100 * float(val_labels_all[val_pick].mean()):.1f} % on); {replicas} replica(s)"
    )

    run_dir.mkdir(parents=True, exist_ok=True)
    runner = _Runner(config, strategy, split.norm.on_threshold_w / split.norm.power_scale_w)
    state: dict[str, Any] = {"epoch": 0, "best_epoch": -1, "best_val_loss": None, "wait": 0}
    history: list[dict[str, float]] = []
    if resume:
        state = load_json(state_path)
        history = load_json(run_dir / HISTORY_JSON)
        runner.checkpoint.read(str(run_dir / CHECKPOINT)).expect_partial()
        log(f"resumed {run_dir} after epoch {state['epoch']}")
    else:
        write_json(run_dir / CONFIG_JSON, config.to_dict())

    rng_order = np.random.default_rng
    start = int(state["epoch"])
    stopped = state.get("stopped", False)
    for epoch in range(start, config.epochs):
        if stopped:
            break
        t0 = time.monotonic()
        # Per-epoch RNG from (seed, epoch): a resumed run sees the same batches.
        order = rng_order([config.seed, epoch]).permutation(n_train)
        needed = steps * global_batch
        if needed > order.size:
            extra = rng_order([config.seed, epoch, 1]).integers(0, n_train, needed - order.size)
            order = np.concatenate((order, extra))
        train_ds = _dataset(
            train_set,
            train_labels,
            order[:needed],
            global_batch,
            drop_remainder=True,
            power=train_power,
        )
        dist_ds = strategy.experimental_distribute_dataset(train_ds)
        sums: dict[str, float] = {}
        with _progress(steps, f"epoch {epoch + 1}/{config.epochs}", progress) as bar:
            for done, batch in enumerate(dist_ds, start=1):
                terms = runner.train_step(batch)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / done:.4f}")
        record = {f"train_{k}": v / steps for k, v in sums.items()}
        record.update({f"val_{k}": v for k, v in runner.evaluate(val_ds).items()})
        record["epoch"] = epoch + 1
        record["seconds"] = time.monotonic() - t0
        history.append(record)
        val_loss = record["val_loss"]
        best = state["best_val_loss"]
        if best is None or val_loss < best:
            state.update(best_val_loss=val_loss, best_epoch=epoch + 1, wait=0)
            runner.model.save_weights(run_dir / BEST_WEIGHTS)
        else:
            state["wait"] += 1
        state["epoch"] = epoch + 1
        if state["wait"] >= config.patience:
            state["stopped"] = True
            stopped = True
        runner.epoch.assign(epoch + 1)
        runner.checkpoint.write(str(run_dir / CHECKPOINT))
        write_json(run_dir / HISTORY_JSON, history)
        write_json(state_path, state)
        log(
            f"epoch {epoch + 1}: loss {record['train_loss']:.4f}, val_loss {val_loss:.4f} "
            f"(constant predictor {record['val_zero_loss']:.4f})"
            + (" *" if state["best_epoch"] == epoch + 1 else "")
            + (f"; early stop (patience {config.patience})" if stopped else "")
        )

    # Best-checkpoint restore, then pick the status threshold on validation only.
    runner.model.load_weights(run_dir / BEST_WEIGHTS)
    power_scaled, prob = runner.predict(val_ds)
    truth_on = val_labels_all[val_pick] > 0.5
    threshold, f1 = choose_threshold(prob, truth_on)
    true_w = split.validation.targets_w(val_pick)
    runner.model.save(run_dir / MODEL_KERAS)
    card = ModelCard(
        name=f"{config.appliance}_{config.model.architecture}",
        appliance=config.appliance,
        architecture=config.model.architecture,
        sample_period_s=house.period_s,
        window_length=config.windows.window_length,
        target_index=config.windows.target_index,
        input_mean_w=split.norm.input_mean_w,
        input_std_w=split.norm.input_std_w,
        power_scale_w=split.norm.power_scale_w,
        status=dataclasses.replace(rule, probability_threshold=threshold),
        quantization="convert_only",
        power_output=0,
        status_output=1,
        training={
            "source": house.source,
            "masked_fraction": house.masked_fraction,
            "best_epoch": state["best_epoch"],
            "seed": config.seed,
            "validation_boundary": str(house.frame.index[split.boundary])
            if split.boundary < len(house.frame)
            else None,
            **({"distillation": distillation} if distillation else {}),
        },
        trainer_version=__version__,
    )
    # The engine's gating, as Home Assistant applies it, with this run's threshold.
    pred_w = gated_prediction(
        card, power_scaled * split.norm.power_scale_w, prob, threshold
    ).power_w
    validation = {
        "val_loss": float(state["best_val_loss"]),
        "val_f1": f1,
        "val_mae_w": float(np.mean(np.abs(pred_w - true_w))),
        "val_zero_mae_w": float(np.mean(np.abs(true_w))),
        "val_windows": float(val_pick.size),
        "probability_threshold": threshold,
    }
    card = dataclasses.replace(card, metrics={"validation": validation})
    (run_dir / CARD_JSON).write_text(card.to_json(), "utf-8")
    write_json(run_dir / METRICS_JSON, {"validation": validation})
    log(
        f"best epoch {state['best_epoch']}: threshold {threshold:.2f} (validation F1 {f1:.3f}, "
        f"MAE {validation['val_mae_w']:.1f} W vs all-zero {validation['val_zero_mae_w']:.1f} W)"
    )
    return TrainResult(
        run_dir=run_dir,
        best_epoch=int(state["best_epoch"]),
        epochs_run=int(state["epoch"]),
        probability_threshold=threshold,
        validation=validation,
        history=history,
    )
