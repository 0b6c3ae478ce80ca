"""A finished :func:`trainer.train.train` run directory, reloaded: :class:`TrainedRun`.

The run's data is reloaded from the resolved configuration the run wrote
(``config.json``'s ``data`` record, a :class:`~trainer.config.SourceConfig`), with the
same windows, so calibration and inspection see the run's own training/validation split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .calibration import RepresentativeSet, representative_from_windows
from .config import DataConfig, SourceConfig, TrainConfig
from .files import CARD_JSON, CONFIG_JSON, MODEL_KERAS, check_finished_run, load_json
from .sources import load_selected
from .train import thin
from .windows import make_windows

FloatArray = npt.NDArray[np.float32]


def load_run_house(config: TrainConfig, data_dir: str | None = None) -> Any:
    """The house a run trained on, from its saved ``data`` record (``data_dir``
    overrides the saved folder); only the run's appliance is kept."""
    selection = SourceConfig.from_saved(config.data, data_dir=data_dir or None)
    period = config.data.get("period")
    return load_selected(selection, DataConfig(period_s=period, appliances=(config.appliance,)))


@dataclass(slots=True)
class TrainedRun:
    """A trainer.train run directory reloaded: model, card template, data and windows."""

    run_dir: Path
    model: Any
    card: Any
    train_config: Any
    house: Any
    split: Any

    @classmethod
    def load(cls, run_dir: Path, data_dir: str | None = None, house: Any = None) -> TrainedRun:
        from custom_components.nilm.engine.card import ModelCard

        from .models import load_keras_model

        run_dir = Path(run_dir)
        check_finished_run(run_dir)
        config = TrainConfig.from_dict(load_json(run_dir / CONFIG_JSON))
        if house is None:
            house = load_run_house(config, data_dir)
        card = ModelCard.from_dict(load_json(run_dir / CARD_JSON))
        return cls(
            run_dir=run_dir,
            model=load_keras_model(str(run_dir / MODEL_KERAS)),
            card=card,
            train_config=config,
            house=house,
            split=make_windows(house, config.appliance, config.windows),
        )

    def representative(
        self, size: int, seed: int, test_houses: Sequence[str | int]
    ) -> RepresentativeSet:
        """Balanced calibration windows from this run's training and validation blocks."""
        return representative_from_windows(
            [self.split.train, self.split.validation],
            house=self.house.source,
            test_houses=test_houses,
            source=f"{self.house.source}: training + validation blocks",
            size=size,
            seed=seed,
        )

    def validation_inputs(self, limit: int) -> FloatArray:
        pick = thin(len(self.split.validation), limit)
        return self.split.validation.inputs(pick)  # type: ignore[no-any-return]
