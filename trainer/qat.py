"""Quantization-aware fine-tuning of a bundled model's float parent, then the usual int8
export, measured beside post-training quantization (PTQ) on the test house.

What "aware" means here (Keras 3 has no tfmot): during a short fine-tune on the bundle's
own training mix, every layer's output passes through an 8-bit fake-quant whose range
follows the batches (exponential moving average, TFLite's asymmetric int8), and every
Conv1D/Dense kernel is used at its int8 value (symmetric; per output channel for Conv1D,
per tensor for Dense, as the converter quantizes them) with the gradient applied to the
float kernel (straight-through estimator). The fake-quant layers are only in the training
graph: the tuned float weights are exported by the same converter as PTQ, calibrated on
the parent's own calibration set, so the file has builtin int8 ops only and runs on the
numpy engine unchanged. The QAT model's threshold (and bridged off-gap) is chosen on the
validation houses as the bundle chose the parent's; float parent, shipped PTQ file and
QAT file are then scored on the test house.

``nilm-trainer qat <appliance>`` -> ``<out>/<appliance>/``: ``model.keras``,
``<appliance>.tflite`` + ``.json``, ``qat.json`` and ``qat.md``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from custom_components.nilm.engine.card import ModelCard, load_card

from .config import QatConfig
from .files import CONFIG_JSON, MODEL_KERAS, write_json
from .parents import BUNDLED_MODELS_DIR, Parent, load_parent


def _fake_quant_layer() -> Any:
    import keras
    import tensorflow as tf

    class ActivationFakeQuant(keras.layers.Layer):
        """8-bit asymmetric fake-quant of a tensor; its range is the moving average of
        the batches' min/max (the first batch sets it)."""

        def __init__(self, ema: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.ema = ema

        def build(self, input_shape: Any) -> None:
            zero = keras.initializers.Zeros()
            self.lo = self.add_weight(name="lo", shape=(), initializer=zero, trainable=False)
            self.hi = self.add_weight(name="hi", shape=(), initializer=zero, trainable=False)
            self.seen = self.add_weight(name="seen", shape=(), initializer=zero, trainable=False)

        def call(self, x: Any, training: bool = False) -> Any:
            if training:
                lo = tf.minimum(tf.reduce_min(x), 0.0)  # int8 ranges always hold 0
                hi = tf.maximum(tf.reduce_max(x), 0.0)
                keep = self.ema * self.seen
                self.lo.assign(keep * self.lo + (1.0 - keep) * lo)
                self.hi.assign(keep * self.hi + (1.0 - keep) * hi)
                self.seen.assign(1.0)
            hi = tf.maximum(self.hi, self.lo + 1e-6)
            return tf.quantization.fake_quant_with_min_max_vars(x, self.lo, hi, num_bits=8)

    return ActivationFakeQuant


def fake_quant_graph(model: Any, ema: float) -> Any:
    """The training graph: ``model``'s own layers (weights shared, not copied), each
    output followed by an :class:`ActivationFakeQuant`."""
    import keras

    quant = _fake_quant_layer()

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        out = layer(*args, **kwargs)
        return quant(ema, name=f"{layer.name}_fq")(out)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def int8_kernel(kernel: Any, per_channel: bool) -> Any:
    """A kernel at the value its int8 form stands for (symmetric, 127 steps)."""
    import tensorflow as tf

    axes = list(range(len(kernel.shape) - 1)) if per_channel else None
    scale = tf.maximum(tf.reduce_max(tf.abs(kernel), axis=axes), 1e-12) / 127.0
    return tf.clip_by_value(tf.round(kernel / scale), -127.0, 127.0) * scale


def fine_tune(
    model: Any,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: QatConfig,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Quantization-aware epochs on ``model`` in place (windows, power / scale, on).

    With ``validation``, the quantized graph's validation loss is measured before the
    first epoch and after each one, and the best weights stay: the parent itself when no
    epoch beats it, so QAT is never worse than PTQ on validation."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    graph = fake_quant_graph(model, config.ema)
    quantized = [
        (layer.kernel, isinstance(layer, keras.layers.Conv1D))
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv1D, keras.layers.Dense))
    ]
    shadows = [tf.Variable(k.value, trainable=False) for k, _ in quantized]
    optimizer = keras.optimizers.Adam(config.learning_rate)
    variables = graph.trainable_variables
    mse = keras.losses.MeanSquaredError()
    bce = keras.losses.BinaryCrossentropy()

    def to_int8() -> None:
        for (kernel, per_channel), shadow in zip(quantized, shadows, strict=True):
            shadow.assign(kernel.value)
            kernel.assign(int8_kernel(shadow, per_channel))

    def to_float() -> None:
        for (kernel, _), shadow in zip(quantized, shadows, strict=True):
            kernel.assign(shadow)

    @tf.function  # type: ignore[untyped-decorator]
    def step(xb: Any, pb: Any, ob: Any) -> Any:
        to_int8()
        with tf.GradientTape() as tape:
            power, status = graph(xb, training=True)
            loss = mse(pb, power) + bce(ob, status)
        grads = tape.gradient(loss, variables)
        to_float()  # the step lands on the float kernel
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function  # type: ignore[untyped-decorator]
    def observe(xb: Any, training: bool) -> Any:
        to_int8()
        out = graph(xb, training=training)
        to_float()
        return out

    def val_loss() -> float:
        assert validation is not None
        vx, vp, vo = validation
        total = 0.0
        for i in range(0, len(vx), 4096):
            power, status = observe(vx[i : i + 4096], False)
            loss = mse(vp[i : i + 4096], power) + bce(vo[i : i + 4096], status)
            total += len(vx[i : i + 4096]) * float(loss)
        return total / len(vx)

    x, y_power, y_on = train
    batch = config.batch_size
    for i in range(0, min(len(x), 20 * batch), batch):  # the ranges, before any step
        observe(x[i : i + batch], True)
    history: dict[str, Any] = {"loss": [], "val_loss": [], "best_epoch": 0}
    best = val_loss() if validation is not None else None
    if best is not None:
        history["val_loss"].append(best)
    kept = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(config.seed)
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(x))
        losses = [
            float(
                step(
                    x[order[k : k + batch]],
                    y_power[order[k : k + batch]],
                    y_on[order[k : k + batch]],
                )
            )
            for k in range(0, len(order), batch)
        ]
        history["loss"].append(float(np.mean(losses)))
        if best is None:
            continue
        current = val_loss()
        history["val_loss"].append(current)
        if current < best:
            best, history["best_epoch"] = current, epoch
            kept = [w.copy() for w in model.get_weights()]
    if best is not None:
        model.set_weights(kept)
    return history


def _scores(house: Any, card: ModelCard, predictor: Any, backend: str) -> dict[str, Any]:
    from .evaluate import EvalConfig, evaluate_predictor

    config = EvalConfig(model="-", plots=False, rule_baseline=False)
    metrics = evaluate_predictor(house, card, predictor, config, backend).metrics
    keys = ("f1", "mcc", "mae_w", "sae", "predicted_energy_kwh", "true_energy_kwh")
    return {k: metrics.get(k) for k in keys}


def run(config: QatConfig, data_dir: Path, out_dir: Path, log: Any = print) -> dict[str, Any]:
    """Fine-tune the parent with fake-quant, export int8, score float/PTQ/QAT on the test
    house; the artifacts and the resolved config go into ``out_dir/<appliance>``."""
    import keras

    from .bundle import (
        _house_of,
        _series,
        load_representative,
        training_data,
        validation_scores,
        validation_windows,
    )
    from .evaluate import keras_predictor, tflite_predictor
    from .export import card_for
    from .quantize import QuantizeConfig, convert
    from .recipes import load_recipes, load_split

    parent: Parent = load_parent(config.appliance)
    recipe = load_recipes()[config.appliance]
    overrides = {
        k: v
        for k, v in (
            ("max_real_windows", config.max_real_windows),
            ("synthetic_windows", config.synthetic_windows),
        )
        if v is not None
    }
    recipe = recipe.with_overrides(**overrides) if overrides else recipe
    folder = out_dir / config.appliance
    folder.mkdir(parents=True, exist_ok=True)
    card = parent.card
    t0 = time.monotonic()
    train = load_split(recipe, "train", data_dir, any_appliance=True)  # as the bundle
    data = training_data(recipe, train, parent.seed, log)
    x = (data.x_w - np.float32(card.input_mean_w)) / np.float32(card.input_std_w)
    y_power = (data.target_w / np.float32(card.power_scale_w)).reshape(-1, 1)
    y_on = data.on.astype(np.float32).reshape(-1, 1)
    model = parent.load_model()
    val = [
        _series(s, recipe.appliance, recipe.period_s)
        for s in load_split(recipe, "validation", data_dir)
    ]
    early = validation_windows(
        recipe, val, mean_w=card.input_mean_w, std_w=card.input_std_w,
        scale_w=card.power_scale_w,
    )  # fmt: skip
    history = fine_tune(model, (x, y_power, y_on), config, early)
    losses = history["loss"]
    model.save(folder / MODEL_KERAS)
    # The tuned model gets its own threshold and bridge, chosen on validation as the
    # bundle chose the parent's.
    scores = validation_scores(
        model, recipe, val, mean_w=card.input_mean_w, std_w=card.input_std_w,
        train_houses=frozenset(_house_of(s.house.source) for s in train),
    )  # fmt: skip
    status = dataclasses.replace(
        card.status, probability_threshold=scores["threshold"], min_off_s=scores["min_off_s"]
    )
    rep = load_representative(parent.model_path.parent)
    converted = convert(model, QuantizeConfig(mode=card.quantization, seed=parent.seed), rep)
    tflite = folder / f"{config.appliance}.tflite"
    tflite.write_bytes(converted.data)
    qat_card = card_for(
        dataclasses.replace(card, status=status), converted, name=config.appliance,
        training={"qat": {**config.to_dict(), **history}},
    )  # fmt: skip
    card_path = folder / f"{config.appliance}.json"
    card_path.write_text(qat_card.with_file(tflite).to_json(), encoding="utf-8")
    seconds = time.monotonic() - t0
    keras.backend.clear_session()

    (test,) = load_split(recipe, "test", data_dir)[:1]
    shipped = BUNDLED_MODELS_DIR / f"{config.appliance}.json"
    log(f"{config.appliance}: scoring float, PTQ and QAT on {test.label}")
    rows = {
        "float parent": _scores(
            test.house, card, keras_predictor(parent.model_path, card, 2048), "keras"
        ),
        "PTQ int8 (shipped)": _scores(
            test.house, card, tflite_predictor(shipped, "numpy"), "numpy"
        ),
        "QAT int8": _scores(
            test.house, load_card(card_path), tflite_predictor(card_path, "numpy"), "numpy"
        ),
    }
    summary = {
        "appliance": config.appliance,
        "test_house": test.label,
        "parent_seed": parent.seed,
        "config": config.to_dict(),
        "losses": losses,
        "val_losses": history["val_loss"],
        "best_epoch": history["best_epoch"],
        "training_windows": len(x),
        "seconds": round(seconds, 1),
        "validation_f1": {
            "parent": card.training.get("validation_f1"),
            "qat": scores["f1"],
        },
        "qat_threshold": scores["threshold"],
        "qat_min_off_s": scores["min_off_s"],
        "post_processing": "float and PTQ with the shipped card's threshold and durations, "
        "QAT with its own, chosen on validation like the bundle's",
        "models": rows,
        "qat_tflite_bytes": len(converted.data),
        "command": f"nilm-trainer qat {config.appliance} --epochs {config.epochs} --out {out_dir}",
    }
    write_json(folder / "qat.json", summary)
    write_json(folder / CONFIG_JSON, {"qat": config.to_dict(), "recipe": recipe.to_dict()})
    (folder / "qat.md").write_text(markdown(summary), encoding="utf-8")
    return summary


def markdown(summary: dict[str, Any]) -> str:
    def cell(v: Any, spec: str) -> str:
        return spec.format(v) if isinstance(v, (int, float)) else "n/a"

    lines = [
        f"### {summary['appliance']}: float, PTQ and QAT on {summary['test_house']}",
        "",
        "| model | F1 | MCC | MAE | SAE | energy predicted / metered |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in summary["models"].items():
        lines.append(
            f"| {name} | {cell(m['f1'], '{:.3f}')} | {cell(m['mcc'], '{:.3f}')} | "
            f"{cell(m['mae_w'], '{:.1f} W')} | {cell(m['sae'], '{:.3f}')} | "
            f"{cell(m['predicted_energy_kwh'], '{:.1f}')} / "
            f"{cell(m['true_energy_kwh'], '{:.1f}')} kWh |"
        )
    c = summary["config"]
    lines += [
        "",
        f"QAT: {c['epochs']} epochs at learning rate {c['learning_rate']:g} from the shipped "
        f"model's float parent (seed {summary['parent_seed']}) on "
        f"{summary['training_windows']:,} training windows of the bundle's own mix; "
        f"{summary['seconds']:.0f} s; mean training loss per epoch "
        f"{', '.join(f'{v:.4f}' for v in summary['losses'])}; quantized validation loss "
        f"before and after each epoch {', '.join(f'{v:.4f}' for v in summary['val_losses'])}, "
        f"kept: epoch {summary['best_epoch']} (0: the parent unchanged). "
        f"{summary['post_processing'].capitalize()} (threshold "
        f"{summary['qat_threshold']:.2f}, bridge {summary['qat_min_off_s']:.0f} s); "
        f"validation F1 parent {cell(summary['validation_f1']['parent'], '{:.3f}')}, "
        f"QAT {cell(summary['validation_f1']['qat'], '{:.3f}')}.",
        "",
        f"Regenerate: `{summary['command']}`",
        "",
    ]
    return "\n".join(lines)
