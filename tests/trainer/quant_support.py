"""A small model trained briefly on real REFIT House 2 data, shared by the quantization,
inspection, export and pipeline tests (built once per test process: a few seconds)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRAIN_MONTHS = ("2014-03", "2014-04")
TEST_MONTHS = ("2014-06",)
APPLIANCE = "kettle"
WINDOW = 99
TARGET_INDEX = 96

_CACHE: dict[str, Any] = {}


def pipeline_config(data_dir: Path, **overrides: Any) -> Any:
    """The tiny configuration every test trains with (kettle, 99 samples, 60 s delay);
    ``overrides`` are PipelineConfig fields."""
    from trainer.config import PipelineConfig, SourceConfig, build_train_config

    train = build_train_config(
        APPLIANCE,
        {
            "window_length": WINDOW, "target_position": TARGET_INDEX, "width": 0.5,
            "dropout": 0.0, "epochs": 3, "batch_size": 256, "steps_per_epoch": 40,
            "learning_rate": 3e-3, "max_windows": 20_000, "max_validation_windows": 5_000,
        },
        data={"house": 2, "months": TRAIN_MONTHS, "data_dir": str(data_dir)},
    )  # fmt: skip
    values: dict[str, Any] = {
        "train": train,
        "test": SourceConfig(house=20, months=TEST_MONTHS, data_dir=str(data_dir)),
        "eval_max_windows": 5_000,
        "representative_size": 128,
    }
    values.update(overrides)
    cfg = PipelineConfig(**values)
    return dataclasses.replace(cfg, inspect=dataclasses.replace(cfg.inspect, latency_runs=5))


def trained_run(data_dir: Path, root: Path) -> Any:
    """trainer.train on two months of House 2, reloaded as a TrainedRun (cached)."""
    if "run" not in _CACHE:
        from trainer.pipeline import load_pipeline_house
        from trainer.runs import TrainedRun
        from trainer.train import train

        cfg = pipeline_config(data_dir)
        house = load_pipeline_house(cfg, cfg.train_source)
        run_dir = root / "train"
        train(house, cfg.train, run_dir, progress=False, log=lambda *_: None)
        _CACHE["run"] = TrainedRun.load(run_dir, house=house)
    return _CACHE["run"]


def representative(run: Any, size: int = 128, seed: int = 0) -> Any:
    return run.representative(size, seed, ["REFIT house 20"])


def converted_all(run: Any) -> dict[str, Any]:
    """Every mode plus the int8-I/O Edge TPU input, converted once."""
    if "converted" not in _CACHE:
        from trainer.quantize import convert_all

        done, failed = convert_all(run.model, representative(run))
        assert not failed, failed
        _CACHE["converted"] = done
    return _CACHE["converted"]  # type: ignore[no-any-return]
