"""A NILM model ready to use: card + backend + the pre/post-processing the card demands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .backends import Backend, create_backend
from .card import ModelCard, load_card, tflite_path_for
from .errors import ModelError

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Prediction:
    """Per-window model output at the card's target position.

    ``power_w`` is already gated: 0 W wherever ``on`` is False (ungated seq2point models
    leak tens of watts into off periods, which would corrupt energy totals).
    """

    power_w: FloatArray
    raw_power_w: FloatArray
    probability: FloatArray | None
    on: npt.NDArray[np.bool_]


class NilmModel:
    """Runs one appliance model on windows of mains power in watts."""

    def __init__(self, card: ModelCard, backend: Backend) -> None:
        self.card = card
        self.backend = backend

    def predict(self, mains_windows_w: npt.ArrayLike) -> Prediction:
        """Predict for a batch of windows, shape (N, window_length), in watts."""
        windows = np.asarray(mains_windows_w, dtype=np.float32)
        if windows.ndim == 1:
            windows = windows[np.newaxis, :]
        if windows.ndim != 2 or windows.shape[1] != self.card.window_length:
            raise ValueError(
                f"expected windows of shape (N, {self.card.window_length}), got {windows.shape}"
            )
        card = self.card
        x = (windows - np.float32(card.input_mean_w)) / np.float32(card.input_std_w)
        outputs = self.backend.run(x)
        if card.power_output >= len(outputs):
            raise ModelError(f"model has no output {card.power_output} for power")
        raw_power = np.maximum(
            outputs[card.power_output].reshape(len(windows), -1)[:, 0] * card.power_scale_w, 0.0
        ).astype(np.float32)
        probability: FloatArray | None = None
        if card.status_output is not None:
            if card.status_output >= len(outputs):
                raise ModelError(f"model has no output {card.status_output} for status")
            probability = (
                outputs[card.status_output].reshape(len(windows), -1)[:, 0].astype(np.float32)
            )
            on = probability >= card.status.probability_threshold
        else:
            on = raw_power >= card.status.on_power_threshold_w
        power = np.where(on, raw_power, np.float32(0.0)).astype(np.float32)
        return Prediction(power_w=power, raw_power_w=raw_power, probability=probability, on=on)


def load_model(card_path: Path, backend: str = "auto") -> NilmModel:
    """Load a card, verify its model file's hash, and open it on a backend.

    Raises :class:`ModelError` subclasses for every problem with the files.
    """
    card = load_card(card_path, verify_hash=True)
    return NilmModel(card, create_backend(tflite_path_for(card_path, card), backend))
