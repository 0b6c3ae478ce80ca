"""Build the tiny real-data models the integration tests load as user models.

Two seq2point models (kettle, microwave) are trained for a few seconds on REFIT House 2
(30 s), converted to full-int8 TFLite with float I/O, and written with a model card to
``tests/components/nilm/fixtures/models/``. They are small, seeded and rebuilt the same
way by running this script again; they exist so the integration never depends on which
models happen to be bundled. The metrics in the cards are measured on a held-out House 2
month (House 20, the test house, is never touched here).

Run: ``TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python scripts/build_integration_test_models.py``
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.nilm.engine.card import REFIT_ATTRIBUTION, ModelCard, StatusRule  # noqa: E402
from scripts.ha_dev.refit import DATA_DIR, read_refit_csv, refit_30s_file  # noqa: E402
from trainer.appliances import get_appliance  # noqa: E402
from trainer.config import PipelineConfig, default  # noqa: E402

OUT_DIR = ROOT / "tests" / "components" / "nilm" / "fixtures" / "models"
TRAIN_MONTHS = ("2014-03", "2014-04", "2014-05", "2014-06")
VAL_MONTH = "2014-07"
COLUMNS = {"kettle": "Kettle", "microwave": "Microwave"}
# The pipeline's geometry: 99 samples, target 96 = 2 samples (60 s) of look-ahead, so
# entities lag real time by one minute.
WINDOW: int = default(PipelineConfig, "window_length")
TARGET_INDEX: int = default(PipelineConfig, "target_index")
PERIOD_S = 30.0
INPUT_MEAN_W = 400.0
INPUT_STD_W = 700.0
SEED = 7
EPOCHS = 10


def load_month(month: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Aggregate and appliance columns of one House 2 month, gaps (zero aggregate) as NaN."""
    table = read_refit_csv(
        refit_30s_file(DATA_DIR, 2, month), columns=("Aggregate", *COLUMNS.values())
    )
    agg = table["Aggregate"].astype(np.float32)
    agg[agg <= 0] = np.nan
    apps = {name: table[col].astype(np.float32) for name, col in COLUMNS.items()}
    return agg, apps


def windows_for(
    agg: np.ndarray, target: np.ndarray, threshold: float, rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gap-free windows, a fifth of them with the appliance on at the target.

    Rebalanced (appliances are on ~1 % of the time) but still mostly "off", so the tiny
    model learns that a high baseline alone is not an appliance."""
    n = agg.size - WINDOW
    starts = np.arange(n)
    valid = ~np.isnan(np.lib.stride_tricks.sliding_window_view(agg, WINDOW)[:n]).any(axis=1)
    starts = starts[valid]
    on = target[starts + TARGET_INDEX] >= threshold
    on_starts, off_starts = starts[on], starts[~on]
    half = count // 5
    picks = np.concatenate(
        [
            rng.choice(on_starts, half, replace=on_starts.size < half),
            rng.choice(off_starts, count - half, replace=False),
        ]
    )
    idx = picks[:, None] + np.arange(WINDOW)[None, :]
    return agg[idx], target[picks + TARGET_INDEX]


def build_model() -> Any:
    from tensorflow import keras

    inp = keras.Input((WINDOW,), name="mains")
    x = keras.layers.Reshape((WINDOW, 1))(inp)
    x = keras.layers.Conv1D(12, 7, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Conv1D(16, 5, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    power = keras.layers.Dense(1, name="power")(x)
    status = keras.layers.Dense(1, activation="sigmoid", name="status")(x)
    return keras.Model(inp, [power, status])


def convert_int8(model: Any, calibration: np.ndarray) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative() -> Any:
        for row in calibration[:200]:
            yield [row[np.newaxis, :].astype(np.float32)]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    return bytes(converter.convert())


def run_tflite(data: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Evaluate the converted file (not the Keras model): the card reports what ships."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], [len(x), WINDOW])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x.astype(np.float32))
    interp.invoke()
    return [interp.get_tensor(d["index"]).reshape(len(x)) for d in interp.get_output_details()]


def main() -> None:
    import tensorflow as tf
    from tensorflow import keras

    random.seed(SEED)
    np.random.seed(SEED)
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    train = [load_month(m) for m in TRAIN_MONTHS]
    val_agg, val_apps = load_month(VAL_MONTH)
    for name in COLUMNS:
        spec = get_appliance(name)
        rng = np.random.default_rng(SEED)
        parts = [
            windows_for(agg, apps[name], spec.on_power_threshold_w, rng, 4000)
            for agg, apps in train
        ]
        x = (np.concatenate([p[0] for p in parts]) - INPUT_MEAN_W) / INPUT_STD_W
        y = np.concatenate([p[1] for p in parts])
        y_power = (y / spec.max_power_w).astype(np.float32)
        y_on = (y >= spec.on_power_threshold_w).astype(np.float32)
        model = build_model()
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss={"power": "mse", "status": "binary_crossentropy"},
        )
        model.fit(
            x,
            {"power": y_power, "status": y_on},
            epochs=EPOCHS,
            batch_size=128,
            verbose=0,
            shuffle=True,
        )
        data = convert_int8(model, x)
        tflite_path = OUT_DIR / f"test_{name}.tflite"
        tflite_path.write_bytes(data)

        # Held-out House 2 month, natural (unbalanced) distribution of gap-free windows.
        vx, vy = windows_for(val_agg, val_apps[name], spec.on_power_threshold_w, rng, 4000)
        vxn = ((vx - INPUT_MEAN_W) / INPUT_STD_W).astype(np.float32)
        heads = run_tflite(data, vxn)
        # The converter may reorder outputs: match each file output to the Keras status head.
        keras_status = model.predict(vxn[:256], verbose=0)[1].reshape(-1)
        errors = [float(np.mean(np.abs(h[:256] - keras_status))) for h in heads]
        status_out = int(np.argmin(errors))
        power_out = 1 - status_out
        prob = heads[status_out]
        power = np.maximum(heads[power_out] * spec.max_power_w, 0.0)
        on_true = vy >= spec.on_power_threshold_w
        on_pred = prob >= 0.5
        gated = np.where(on_pred, power, 0.0)
        tp = float(np.sum(on_pred & on_true))
        f1 = 2 * tp / max(1.0, float(on_pred.sum() + on_true.sum()))
        card = ModelCard(
            name=f"test_{name}",
            appliance=name,
            architecture="cnn_tiny",
            sample_period_s=PERIOD_S,
            window_length=WINDOW,
            target_index=TARGET_INDEX,
            input_mean_w=INPUT_MEAN_W,
            input_std_w=INPUT_STD_W,
            power_scale_w=spec.max_power_w,
            status=StatusRule(
                on_power_threshold_w=spec.on_power_threshold_w,
                min_on_s=spec.min_on_s,
                min_off_s=spec.min_off_s,
                probability_threshold=0.5,
            ),
            quantization="w8_a8",
            power_output=power_out,
            status_output=status_out,
            training={
                "dataset": "REFIT House 2, 30 s",
                "months": list(TRAIN_MONTHS),
                "windows": len(x),
                "epochs": EPOCHS,
                "purpose": "integration tests only (tiny, trained in seconds)",
                "attribution": REFIT_ATTRIBUTION,
            },
            metrics={
                "split": f"REFIT House 2 {VAL_MONTH} (held out, 20 % 'on' windows)",
                "mae_w": round(float(np.mean(np.abs(gated - vy))), 1),
                "f1": round(f1, 3),
            },
            trainer_version="scripts/build_integration_test_models.py",
        ).with_file(tflite_path)
        (OUT_DIR / f"test_{name}.json").write_text(card.to_json(), encoding="utf-8")
        print(f"{tflite_path.name}: {len(data)} bytes, {card.metrics}")


def build_unsupported_op_model() -> None:
    """A (untrained) model using CUMSUM, an op the numpy engine does not implement: the
    integration must turn it into a repair issue at load time, not crash at inference."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(SEED)
    inp = keras.Input((WINDOW,), name="mains")
    x = keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=1))(inp)
    out = keras.layers.Dense(1, name="power")(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, out))
    path = OUT_DIR / "test_unsupported_op.tflite"
    path.write_bytes(bytes(converter.convert()))
    spec = get_appliance("kettle")
    card = ModelCard(
        name="test_unsupported_op",
        appliance="kettle",
        architecture="cumsum_dense (untrained test fixture)",
        sample_period_s=PERIOD_S,
        window_length=WINDOW,
        target_index=TARGET_INDEX,
        input_mean_w=INPUT_MEAN_W,
        input_std_w=INPUT_STD_W,
        power_scale_w=spec.max_power_w,
        status=StatusRule(on_power_threshold_w=spec.on_power_threshold_w),
        quantization="convert_only",
        training={"purpose": "integration tests: an operator the numpy engine lacks"},
        trainer_version="scripts/build_integration_test_models.py",
    ).with_file(path)
    (OUT_DIR / "test_unsupported_op.json").write_text(card.to_json(), encoding="utf-8")
    print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
    build_unsupported_op_model()
