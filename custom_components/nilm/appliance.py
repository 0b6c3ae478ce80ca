"""One tracked appliance at run time: its model, on/off tracker and live state, and how a
batch of predictions becomes power, on/off and energy."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .const import LATENCY_SAMPLES
from .data import AdaptationSnapshot, ApplianceSnapshot, ModelInfo
from .engine.model import NilmModel
from .engine.status import StatusTracker
from .facts import model_facts, model_label, model_version, quantization_label


def model_info(model: NilmModel) -> ModelInfo:
    card = model.card
    return ModelInfo(
        appliance=card.appliance,
        card_name=card.name,
        label=model_label(card),
        quantization=quantization_label(card),
        version=model_version(card),
        facts=model_facts(model),
    )


@dataclass(slots=True)
class ApplianceRuntime:
    """Live state of one tracked appliance (published in the coordinator's snapshot)."""

    name: str
    model: NilmModel
    tracker: StatusTracker
    available: bool = False
    power_w: float | None = None
    probability: float | None = None
    on: bool | None = None
    energy_kwh: float = 0.0  # since this runtime started; entities add restored totals
    predictions: int = 0
    last_slot: int | None = None  # newest grid slot already run through the model
    ever_available: bool = False  # had a full window once (for the log: "again")
    last_error: str | None = None  # the newest inference error, until the next success
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    info: ModelInfo | None = None  # set from the model on first use (see model_info)
    adaptation: AdaptationSnapshot = field(default_factory=AdaptationSnapshot)

    @property
    def period_s(self) -> float:
        return self.model.card.sample_period_s

    @property
    def window_length(self) -> int:
        return self.model.card.window_length

    def reset(self) -> None:
        """Nothing is known about the appliance until a full window of data exists."""
        self.available = False
        self.power_w = self.probability = self.on = None
        self.tracker.reset()

    def fail(self, error: str) -> None:
        """An inference error: unavailable until the model runs again."""
        self.last_error = error
        self.available = False
        self.tracker.reset()

    def apply(
        self,
        valid: npt.NDArray[np.bool_],
        raw_power_w: npt.NDArray[np.float32] | None,
        raw_on: npt.NDArray[np.bool_] | None,
        probability: npt.NDArray[np.float32] | None,
        *,
        count_energy: bool,
    ) -> None:
        """The predictions for the closed slots (``valid``: one per slot, oldest first;
        the arrays hold one value per valid slot)."""
        self.last_error = None
        period_h = self.period_s / 3600.0
        k = 0
        for is_valid in valid:
            if not is_valid:
                # A gap: nothing is known about the appliance; never guess.
                self.available = False
                self.power_w = self.probability = self.on = None
                self.tracker.reset()
                continue
            assert raw_on is not None and raw_power_w is not None
            raw_power = float(raw_power_w[k])
            if not math.isfinite(raw_power):  # never an infinite energy total
                raw_power = 0.0
            is_raw_on = bool(raw_on[k])
            # Energy follows the card's minimum durations exactly as evaluation does: a
            # run's first samples are credited once it is confirmed, a short gap's once
            # the run resumes. Power shows only what is on now.
            counted_w = self.tracker.update(is_raw_on, raw_power)
            on = self.tracker.is_on
            self.available = True
            self.on = on
            self.power_w = raw_power if on and is_raw_on else 0.0
            self.probability = float(probability[k]) if probability is not None else None
            self.predictions += 1
            if count_energy:
                self.energy_kwh += counted_w * period_h / 1000.0
            k += 1

    def snapshot(self) -> ApplianceSnapshot:
        if self.info is None:
            self.info = model_info(self.model)
        return ApplianceSnapshot(
            name=self.name,
            model=self.info,
            available=self.available,
            power_w=self.power_w,
            on=self.on,
            probability=self.probability,
            energy_kwh=self.energy_kwh,
            adaptation=self.adaptation,
        )
