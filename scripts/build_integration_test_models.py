"""Build the tiny real-data models the integration tests load as user models.

Two models (kettle, microwave) go through the trainer's own pipeline with a smoke
configuration (:data:`SMOKE`): REFIT House 2 (30 s) loaded by ``trainer.data``, windows
and the time split by ``trainer.windows``, a small ``compact`` CNN built by
``trainer.models`` and trained for a few seconds by ``trainer.train``, full-int8 with float
I/O by ``trainer.quantize`` on a ``trainer.calibration`` set from the training house, and a
card from ``trainer.export``. They are written to ``tests/components/nilm/fixtures/models/``
and rebuilt the same way (seeded, deterministic ops) by running this script again; they
exist so the integration never depends on which models happen to be bundled. The metrics
in the cards are ``trainer.evaluate``'s on a held-out House 2 month (House 20, the test
house, is never touched here).

Run: ``TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python scripts/build_integration_test_models.py``
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.nilm.engine.card import ModelCard, StatusRule, load_card  # noqa: E402
from trainer.appliances import get_appliance  # noqa: E402
from trainer.config import (  # noqa: E402
    DEFAULT_TEST_HOUSE,
    PIPELINE_TRAINING,
    DataConfig,
    EvalConfig,
    QuantizeConfig,
    TrainConfig,
    build_train_config,
)
from trainer.data import default_data_dir, load_refit_30s  # noqa: E402
from trainer.files import jsonable  # noqa: E402
from trainer.pipeline import METRIC_COLUMNS  # noqa: E402

OUT_DIR = ROOT / "tests" / "components" / "nilm" / "fixtures" / "models"
APPLIANCES = ("kettle", "microwave")
TRAIN_HOUSE = 2
TRAIN_MONTHS = ("2014-03", "2014-04", "2014-05", "2014-06")
VAL_MONTH = "2014-07"  # held out: the cards' metrics, never trained or calibrated on
# The pipeline's geometry: 99 samples, target 96 = 2 samples (60 s) of look-ahead, so
# entities lag real time by one minute.
WINDOW: int = PIPELINE_TRAINING["window_length"]
TARGET_INDEX: int = PIPELINE_TRAINING["target_position"]
SEED = 7
# The smoke configuration: the pipeline's training preset (compact CNN, time split,
# validation chooses the status threshold) at a tiny width and 800 steps at most, seconds on
# a CPU. 5 % "on" training windows: the "on" windows are all kept, so this buys more "off"
# ones (a House 2 microwave runs for only ~500 of the training months' windows).
SMOKE: dict[str, Any] = {
    "architecture": "compact",
    "width": 0.5,
    "dropout": 0.0,
    "epochs": 10,
    "batch_size": 256,
    "learning_rate": 3e-3,
    "patience": 4,
    "steps_per_epoch": 80,
    "max_windows": 40_000,
    "on_share": 0.05,
    "max_validation_windows": 10_000,
    "seed": SEED,
}
REPRESENTATIVE_SIZE = 200
# What the cards record of it (their "smoke_config").
SMOKE_RECORD: dict[str, Any] = {
    **SMOKE,
    "representative_size": REPRESENTATIVE_SIZE,
    "train_house": TRAIN_HOUSE,
    "train_months": list(TRAIN_MONTHS),
}
# What the cards keep of trainer.evaluate's metrics on the held-out month.
CARD_METRICS = (
    *METRIC_COLUMNS,
    "precision",
    "recall",
    "event_recall",
    "event_precision",
    "running_on_delay_s",
    "running_off_delay_s",
    "samples",
)
# Only the unsupported-op fixture below uses these (it is not trained on data).
PERIOD_S = 30.0
INPUT_MEAN_W = 400.0
INPUT_STD_W = 700.0


def smoke_config(appliance: str, data_dir: Path) -> TrainConfig:
    """The training configuration these fixtures are trained with."""
    cfg = build_train_config(
        appliance,
        SMOKE,
        preset=PIPELINE_TRAINING,
        data={"source": "refit30s", "house": TRAIN_HOUSE, "months": list(TRAIN_MONTHS),
              "data_dir": str(data_dir)},
    )  # fmt: skip
    assert cfg.windows.target_index == TARGET_INDEX
    return cfg


def build_fixture(appliance: str, data_dir: Path, held_out: Any, work: Path) -> None:
    """Train, calibrate, convert, evaluate and write ``test_<appliance>`` (model + card)."""
    from trainer.evaluate import evaluate
    from trainer.export import card_for
    from trainer.quantize import convert
    from trainer.runs import TrainedRun
    from trainer.train import train

    started = time.perf_counter()
    cfg = smoke_config(appliance, data_dir)
    house = load_refit_30s(
        data_dir, TRAIN_HOUSE, list(TRAIN_MONTHS), DataConfig(appliances=(appliance,))
    )
    run_dir = work / appliance / "train"
    result = train(house, cfg, run_dir, progress=False, log=print)
    run = TrainedRun.load(run_dir, house=house)  # trainer.windows split, model, card template

    test_label = f"REFIT house {DEFAULT_TEST_HOUSE}"  # excluded from calibration, never loaded
    rep = run.representative(REPRESENTATIVE_SIZE, SEED, [test_label])
    quant = QuantizeConfig(
        mode="w8_a8", int8_io=False, seed=SEED, representative_size=REPRESENTATIVE_SIZE
    )
    converted = convert(run.model, quant, rep)

    name = f"test_{appliance}"
    training = {
        "train_house": f"REFIT house {TRAIN_HOUSE}",
        "months": list(TRAIN_MONTHS),
        "windows": len(run.split.train),
        "epochs": result.epochs_run,
        "representative": rep.summary(),
        "smoke_config": SMOKE_RECORD,
        "purpose": "integration tests only (tiny, trained in seconds)",
    }

    def write(folder: Path, metrics: dict[str, Any] | None) -> Path:
        card = card_for(run.card, converted, name=name, metrics=metrics, training=training)
        # No head in the card: the integration tests' user models are the non-adaptable
        # ones (the bundled kettle is the adaptable model they test re-fits with).
        card = dataclasses.replace(card, head=None)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.tflite"
        path.write_bytes(converted.data)
        card_path = path.with_suffix(".json")
        card_path.write_text(card.with_file(path).to_json(), encoding="utf-8")
        load_card(card_path, verify_hash=True)  # what the integration will do
        return card_path

    # Held-out House 2 month, every complete window, on the engine's LiteRT backend: the
    # card reports what ships.
    draft = write(work / appliance / "draft", None)
    ev = evaluate(
        held_out, EvalConfig(model=str(draft), backend="litert", plots=False, rule_baseline=False)
    )
    metrics = {
        f"held_out_{VAL_MONTH.replace('-', '_')}": {
            "split": f"REFIT house {TRAIN_HOUSE} {VAL_MONTH} (held out, every window)",
            **{
                k: round(float(v), 4)
                for k, v in jsonable(ev.metrics).items()
                if k in CARD_METRICS and isinstance(v, int | float)
            },
        }
    }
    card_path = write(OUT_DIR, metrics)
    card = load_card(card_path, verify_hash=True)
    held = card.metrics[next(iter(metrics))]
    print(
        f"{name}.tflite: {len(converted.data)} bytes, {time.perf_counter() - started:.0f} s, "
        f"threshold {card.status.probability_threshold}, held-out F1 {held.get('f1')}, "
        f"MAE {held.get('mae_w')} W"
    )


def main() -> None:
    data_dir = default_data_dir()
    held_out = load_refit_30s(data_dir, TRAIN_HOUSE, [VAL_MONTH], DataConfig(appliances=APPLIANCES))
    with tempfile.TemporaryDirectory(prefix="nilm-fixtures-") as tmp:
        for appliance in APPLIANCES:
            build_fixture(appliance, data_dir, held_out, Path(tmp))


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
