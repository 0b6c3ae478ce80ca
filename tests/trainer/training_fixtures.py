"""A CI-sized kettle model trained once per session on real REFIT House 2 data.

Import the fixtures into a test module (``from tests.trainer.training_fixtures import
kettle_run``); they train in ~10 s on two cores. The learning rate is raised to 1e-3 so a
few hundred steps suffice; everything else is the production code path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import ModelConfig
from trainer.data import HouseData, load_refit_30s
from trainer.train import TrainConfig, TrainResult, train
from trainer.windows import WindowConfig

WINDOW = 99
TRAIN_MONTHS = ("2014-03", "2014-04", "2014-05")


def smoke_config(**overrides: object) -> TrainConfig:
    base = TrainConfig(
        appliance="kettle",
        model=ModelConfig("compact", WINDOW),
        windows=WindowConfig(window_length=WINDOW, on_share=0.2, max_windows=30_000),
        epochs=6,
        batch_size=256,
        steps_per_epoch=40,
        max_validation_windows=4_000,
        learning_rate=1e-3,
        seed=0,
    )
    values = {**base.to_dict(), **overrides}
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="session")
def house2_spring(data_dir: Path) -> HouseData:
    return load_refit_30s(data_dir, 2, TRAIN_MONTHS)


@pytest.fixture(scope="session")
def kettle_run(house2_spring: HouseData, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    run_dir = tmp_path_factory.mktemp("kettle") / "run"
    return train(house2_spring, smoke_config(), run_dir, progress=False, log=lambda *_: None)
