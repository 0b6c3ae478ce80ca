"""Portable NILM inference engine: pure Python + numpy, no Home Assistant, no TensorFlow.

It reads .tflite files, runs them with a numpy interpreter (or LiteRT / Coral when
importable), and holds the logic shared by the integration and the trainer: model cards,
resampling, on/off status and metrics.
"""

from __future__ import annotations

from .card import ModelCard, StatusRule, load_card
from .errors import (
    BackendUnavailableError,
    EngineError,
    HashMismatchError,
    ModelCardError,
    ModelError,
    ModelFormatError,
    UnsupportedOpError,
)
from .model import NilmModel, Prediction, load_model

__all__ = [
    "BackendUnavailableError",
    "EngineError",
    "HashMismatchError",
    "ModelCard",
    "ModelCardError",
    "ModelError",
    "ModelFormatError",
    "NilmModel",
    "Prediction",
    "StatusRule",
    "UnsupportedOpError",
    "load_card",
    "load_model",
]
