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
from .errors import TrainerError
from .files import CONFIG_JSON, MODEL_KERAS, write_json
from .parents import BUNDLED_MODELS_DIR, PARENTS_DIR, Parent, load_parent


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


def quantized_kernels(model: Any) -> list[tuple[Any, bool]]:
    """Every Conv1D/Dense kernel the converter quantizes, nested ones included (the
    attention's q/k/v/o), with whether it is per output channel (Conv1D)."""
    import keras

    return [
        (layer.kernel, isinstance(layer, keras.layers.Conv1D))
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, (keras.layers.Conv1D, keras.layers.Dense))
    ]


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
    tf.config.experimental.enable_op_determinism()  # as the bundle trains: reruns agree
    parent = [w.copy() for w in model.get_weights()]
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            # Frozen statistics (inference mode), the usual QAT recipe: the norm folds
            # into a constant MUL/ADD at conversion, so it must not drift with batches.
            layer.trainable = False
    graph = fake_quant_graph(model, config.ema)
    quantized = quantized_kernels(model)
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
    model.set_weights(parent)  # the ranges live in the graph only: epoch 0 is the parent
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
    return {"backend": backend, **{k: metrics.get(k) for k in keys}}


def _tflite_scores(house: Any, card_path: Path) -> dict[str, Any]:
    """The file on the numpy engine, as users run it; a file the engine cannot run (the
    BERT form's float NEG/SQUARE fallbacks) is scored on LiteRT instead, and says so."""
    from custom_components.nilm.engine.errors import UnsupportedOpError

    from .evaluate import tflite_predictor

    card = load_card(card_path)
    try:
        predictor = tflite_predictor(card_path, "numpy")
    except UnsupportedOpError as err:
        row = _scores(house, card, tflite_predictor(card_path, "litert"), "litert")
        return {**row, "numpy_engine": str(err)}
    return _scores(house, card, predictor, "numpy")


def _write_model(
    folder: Path,
    stem: str,
    card: ModelCard,
    converted: Any,
    *,
    training: dict[str, Any] | None = None,
) -> Path:
    """``<stem>.tflite`` + its card in ``folder``, named after the card's appliance;
    returns the card's path."""
    from .export import card_for

    tflite = folder / f"{stem}.tflite"
    tflite.write_bytes(converted.data)
    path = tflite.with_suffix(".json")
    model_card = card_for(card, converted, name=card.appliance, training=training)
    path.write_text(model_card.with_file(tflite).to_json(), encoding="utf-8")
    return path


def inspect_files(
    files: dict[str, tuple[Path, Any]], rep: Any, folder: Path
) -> dict[str, dict[str, Any]]:
    """The inspector's report (per-layer RMSE/scale of int8 files against their float
    model, ops per backend, size, peak memory, latency) for each ``name: (tflite, keras
    model)``, side by side in ``folder/inspection.md``; returns a digest per file."""
    from .config import IDEAL_RMSE_OVER_SCALE, InspectConfig
    from .files import write_json
    from .inspection import inspect_model, is_full_int8, layer_errors

    config = InspectConfig(selective=False)
    window = rep.windows[0].astype(np.float32)
    sections, payload, digest = ["# Inspection: float parent, PTQ and QAT", ""], [], {}
    for name, (path, model) in files.items():
        data = path.read_bytes()
        int8 = is_full_int8(data)
        layers = tuple(layer_errors(model, rep, config)[0]) if int8 else ()
        ins = inspect_model(name, data, "w8_a8" if int8 else "w8", window, config, layers=layers)
        sections += [f"## {name}", "", ins.markdown()]
        payload.append(ins.to_dict())
        ratios = [x.rmse_over_scale for x in layers if np.isfinite(x.rmse_over_scale)]
        digest[name] = {
            "bytes": len(data),
            "max_rmse_over_scale": max(ratios) if ratios else None,
            "suspected_layers": [x.tensor_name for x in layers if x.suspected],
            "ideal_rmse_over_scale": IDEAL_RMSE_OVER_SCALE,
            "backends": {
                b.backend: {
                    "latency_ms": None if b.error else b.median_ms,
                    "peak_memory_kb": (
                        b.peak_memory_bytes / 1024 if b.peak_memory_bytes is not None else None
                    ),
                    "error": b.error,
                }
                for b in ins.backends
            },
        }
    (folder / "inspection.md").write_text("\n".join(sections), encoding="utf-8")
    write_json(folder / "inspection.json", payload, sort_keys=False, strict=False)
    return digest


def run(
    config: QatConfig,
    data_dir: Path,
    out_dir: Path,
    log: Any = print,
    *,
    models_dir: Path = BUNDLED_MODELS_DIR,
    parents_dir: Path = PARENTS_DIR,
) -> dict[str, Any]:
    """Fine-tune the parent with fake-quant, export int8, score float / PTQ (weights only
    and full int8) / QAT on the test house; the artifacts and the resolved config go into
    ``out_dir/<appliance>``. ``models_dir``/``parents_dir``: another build's exported
    model and parent (e.g. a transformer), instead of the bundled ones."""
    import keras

    from .bundle import (
        _house_of,
        _series,
        load_representative,
        training_data,
        validation_scores,
        validation_windows,
    )
    from .evaluate import keras_predictor
    from .models import load_keras_model
    from .quantize import QuantizeConfig, convert
    from .recipes import load_recipes, load_split

    bundled = models_dir.resolve() == BUNDLED_MODELS_DIR.resolve()
    own_parents = parents_dir.resolve() == PARENTS_DIR.resolve()
    parent: Parent = load_parent(config.appliance, models_dir, parents_dir)
    built = parent.record.get("recipe", {})
    recipe = load_recipes()[config.appliance].with_overrides(
        architecture=built.get("architecture", parent.card.architecture),
        model=built.get("model", {}),
    )
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
    card_path = _write_model(
        folder, config.appliance, dataclasses.replace(card, status=status), converted,
        training={"qat": {**config.to_dict(), **history}},
    )  # fmt: skip
    tflite = card_path.with_suffix(".tflite")
    # Weights-only PTQ of the parent: the mode the seed article could ship the
    # transformer in, when int8 activations ruined it.
    weights_only = convert(parent.load_model(), QuantizeConfig(mode="w8", seed=parent.seed), None)
    w8_path = _write_model(folder, f"{config.appliance}_w8", card, weights_only)
    # 16x8 where the ops allow it (the BERT form's L2 pooling has no int16 kernel).
    a16_path: Path | None = None
    a16_error = ""
    try:
        a16 = convert(parent.load_model(), QuantizeConfig(mode="w8_a16", seed=parent.seed), rep)
        a16_path = _write_model(folder, f"{config.appliance}_w8_a16", card, a16)
    except TrainerError as err:
        a16_error = str(err)
    seconds = time.monotonic() - t0
    keras.backend.clear_session()

    (test,) = load_split(recipe, "test", data_dir)[:1]
    shipped = models_dir / f"{config.appliance}.json"
    log(f"{config.appliance}: scoring float, PTQ and QAT on {test.label}")
    rows = {
        "float parent": _scores(
            test.house, card, keras_predictor(parent.model_path, card, 2048), "keras"
        ),
        "PTQ w8 (weights only)": _tflite_scores(test.house, w8_path),
        "PTQ w8_a16 (16x8)": (
            _tflite_scores(test.house, a16_path)
            if a16_path is not None
            else {"backend": "-", "not_converted": a16_error}
        ),
        f"PTQ w8_a8 ({'shipped' if bundled else 'exported'})": (
            _tflite_scores(test.house, shipped)
        ),
        "QAT w8_a8": _tflite_scores(test.house, card_path),
    }
    log(f"{config.appliance}: inspecting the converted files")
    inspection = inspect_files(
        {
            "PTQ w8": (w8_path.with_suffix(".tflite"), parent.load_model()),
            "PTQ w8_a8": (models_dir / f"{config.appliance}.tflite", parent.load_model()),
            "QAT w8_a8": (tflite, load_keras_model(str(folder / MODEL_KERAS))),
        },
        rep,
        folder,
    )
    keras.backend.clear_session()
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
        "architecture": recipe.architecture,
        "model_settings": recipe.model_config().to_dict(),
        "qat_tflite_bytes": len(converted.data),
        "inspection": inspection,
        "bytes": {
            "PTQ w8": len(weights_only.data),
            **({"PTQ w8_a16": a16_path.with_suffix(".tflite").stat().st_size} if a16_path else {}),
            "PTQ w8_a8": (models_dir / f"{config.appliance}.tflite").stat().st_size,
            "QAT w8_a8": len(converted.data),
        },
        "command": " ".join(
            [
                f"nilm-trainer qat {config.appliance} --epochs {config.epochs} --out {out_dir}",
                *([] if bundled else [f"--models-dir {models_dir}"]),
                *([] if own_parents else [f"--parents-dir {parents_dir}"]),
            ]
        ),
    }
    write_json(folder / "qat.json", summary)
    write_json(folder / CONFIG_JSON, {"qat": config.to_dict(), "recipe": recipe.to_dict()})
    (folder / "qat.md").write_text(markdown(summary), encoding="utf-8")
    return summary


def markdown(summary: dict[str, Any]) -> str:
    def cell(v: Any, spec: str) -> str:
        return spec.format(v) if isinstance(v, (int, float)) else "n/a"

    arch = summary.get("architecture", "compact")
    settings = summary.get("model_settings") or {}
    shape = (
        f"d_model {settings['d_model']}, {settings['blocks']} blocks, {settings['norm']} norm, "
        f"{settings['activation']}"
        if arch == "transformer" and settings
        else arch
    )
    sizes = summary.get("bytes") or {}
    lines = [
        f"### {summary['appliance']} ({arch}): float, PTQ and QAT on {summary['test_house']}",
        "",
        f"Model: {shape}; file sizes "
        + ", ".join(f"{k} {v / 1024:.0f} KB" for k, v in sizes.items())
        + ".",
        "",
        "| model | run by | F1 | MCC | MAE | SAE | energy predicted / metered |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in summary["models"].items():
        if "not_converted" in m:
            continue
        lines.append(
            f"| {name} | {m.get('backend', '')} | {cell(m['f1'], '{:.3f}')} | "
            f"{cell(m['mcc'], '{:.3f}')} | "
            f"{cell(m['mae_w'], '{:.1f} W')} | {cell(m['sae'], '{:.3f}')} | "
            f"{cell(m['predicted_energy_kwh'], '{:.1f}')} / "
            f"{cell(m['true_energy_kwh'], '{:.1f}')} kWh |"
        )
    c = summary["config"]
    lines += [
        "",
        f"QAT: {c['epochs']} epochs at learning rate {c['learning_rate']:g} from the "
        f"exported model's float parent (seed {summary['parent_seed']}) on "
        f"{summary['training_windows']:,} training windows of the bundle's own mix; "
        f"{summary['seconds']:.0f} s; mean training loss per epoch "
        f"{', '.join(f'{v:.4f}' for v in summary['losses'])}; quantized validation loss "
        f"before and after each epoch {', '.join(f'{v:.4f}' for v in summary['val_losses'])}, "
        f"kept: epoch {summary['best_epoch']} (0: the parent unchanged). "
        f"{summary['post_processing'][0].upper()}{summary['post_processing'][1:]} (threshold "
        f"{summary['qat_threshold']:.2f}, bridge {summary['qat_min_off_s']:.0f} s); "
        f"validation F1 parent {cell(summary['validation_f1']['parent'], '{:.3f}')}, "
        f"QAT {cell(summary['validation_f1']['qat'], '{:.3f}')}.",
        "",
    ]
    for name, m in summary["models"].items():
        if "not_converted" in m:
            lines += ["", f"{name}: not converted ({m['not_converted']})."]
    refused = {n: m["numpy_engine"] for n, m in summary["models"].items() if "numpy_engine" in m}
    for name, why in refused.items():
        lines += ["", f"{name}: the numpy engine refuses this file ({why}); scored on LiteRT."]
    if summary.get("inspection"):
        lines += [
            "",
            "Inspection ([inspection.md](inspection.md); RMSE/scale of every int8 tensor "
            "against the float model, ideal rounding 0.289; latency of one window):",
            "",
            "| file | size | worst RMSE/scale | suspected layers | numpy | LiteRT XNNPACK | "
            "LiteRT reference | peak memory (numpy) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, d in summary["inspection"].items():
            b = d["backends"]

            def ms(key: str, b: dict[str, Any] = b) -> str:
                v = b.get(key, {}).get("latency_ms")
                return f"{v:.3f} ms" if isinstance(v, (int, float)) else "n/a"

            peak = b.get("numpy", {}).get("peak_memory_kb")
            lines.append(
                f"| {name} | {d['bytes'] / 1024:.0f} KB | "
                f"{cell(d['max_rmse_over_scale'], '{:.3f}')} | {len(d['suspected_layers'])} | "
                f"{ms('numpy')} | {ms('litert')} | {ms('litert_ref')} | "
                f"{cell(peak, '{:.0f} KB')} |"
            )
    lines += ["", f"Regenerate: `{summary['command']}`", ""]
    return "\n".join(lines)
