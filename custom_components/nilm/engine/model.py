"""A NILM model ready to use: card + backend + the pre/post-processing the card demands."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .backends import Backend, create_backend
from .card import MAX_POWER_W, ModelCard, load_card, tflite_path_for
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
    """Runs one appliance model on windows of mains power in watts.

    The card and the model must agree (see :func:`check_model_io`), else ModelError.
    """

    def __init__(self, card: ModelCard, backend: Backend) -> None:
        check_model_io(card, backend)
        self.card = card
        self.backend = backend

    def predict(self, mains_windows_w: npt.ArrayLike) -> Prediction:
        """Predict for a batch of windows, shape (N, window_length), in watts."""
        return self.interpret(self.backend.run(self.normalise(mains_windows_w)))

    def normalise(self, mains_windows_w: npt.ArrayLike) -> FloatArray:
        """Windows in watts, (N, window_length) or one window, to the model's input."""
        windows = np.asarray(mains_windows_w, dtype=np.float32)
        if windows.ndim == 1:
            windows = windows[np.newaxis, :]
        if windows.ndim != 2 or windows.shape[1] != self.card.window_length:
            raise ValueError(
                f"expected windows of shape (N, {self.card.window_length}), got {windows.shape}"
            )
        card = self.card
        x: FloatArray = (windows - np.float32(card.input_mean_w)) / np.float32(card.input_std_w)
        return x

    def interpret(self, outputs: list[FloatArray]) -> Prediction:
        """The card's post-processing of the backend's outputs for N windows."""
        card = self.card
        if card.power_output >= len(outputs):
            raise ModelError(f"model has no output {card.power_output} for power")
        n = len(outputs[card.power_output])
        scaled = outputs[card.power_output].reshape(n, -1)[:, 0] * card.power_scale_w
        probability: FloatArray | None = None
        if card.status_output is not None:
            if card.status_output >= len(outputs):
                raise ModelError(f"model has no output {card.status_output} for status")
            probability = outputs[card.status_output].reshape(n, -1)[:, 0]
        return gated_prediction(card, scaled, probability, card.status.probability_threshold)


def gated_prediction(
    card: ModelCard,
    power_w: npt.ArrayLike,
    probability: npt.ArrayLike | None,
    threshold: float,
) -> Prediction:
    """Clip, sanitise and gate raw head outputs into a :class:`Prediction` (shared by the
    shipped heads and a household's re-fitted ones, :mod:`.adapter`)."""
    # A float model can emit NaN/inf: that is "no power", never an infinite energy.
    raw_power = np.clip(
        np.nan_to_num(np.asarray(power_w, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0),
        0.0,
        MAX_POWER_W,
    ).astype(np.float32)
    prob: FloatArray | None = None
    if probability is not None:
        prob = np.clip(
            np.nan_to_num(np.asarray(probability, dtype=np.float32), nan=0.0), 0.0, 1.0
        ).astype(np.float32)
        on = prob >= threshold
    else:
        on = raw_power >= card.status.on_power_threshold_w
    power = np.where(on, raw_power, np.float32(0.0)).astype(np.float32)
    return Prediction(power_w=power, raw_power_w=raw_power, probability=prob, on=on)


def check_model_io(card: ModelCard, backend: Backend) -> None:
    """Refuse a model whose input does not take the card's windows, or that lacks the
    outputs the card names: caught at load, not as one warning per tick."""
    inputs = getattr(backend, "inputs", None)
    if inputs:
        shape = tuple(inputs[0].shape)
        per_window = math.prod(shape[1:])
        if len(shape) < 2 or shape[0] != 1 or per_window != card.window_length:
            raise ModelError(
                f"model input shape {shape} does not take one window of "
                f"{card.window_length} samples (the card's window_length); expected "
                f"(1, {card.window_length}) or (1, {card.window_length}, 1)"
            )
    outputs = getattr(backend, "outputs", None)
    if outputs is None:
        return
    for role, index in (("power_output", card.power_output), ("status_output", card.status_output)):
        if index is None:
            continue
        if index >= len(outputs):
            raise ModelError(
                f"the card's {role} is {index}, but the model has {len(outputs)} output(s)"
            )
        if math.prod(tuple(outputs[index].shape)[1:]) < 1:
            raise ModelError(f"model output {index} ({role}) is empty")


def load_model(card_path: Path, backend: str = "auto") -> NilmModel:
    """Load a card, verify its model file's hash, and open it on a backend.

    Raises :class:`ModelError` subclasses for every problem with the files.
    """
    card = load_card(card_path, verify_hash=True)
    return NilmModel(card, create_backend(tflite_path_for(card_path, card), backend))
