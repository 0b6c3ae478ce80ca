"""What a user needs to judge a model's entities, read from its card.

Shown as the attributes of each appliance's diagnostic "Model" sensor and in the
diagnostics download. Everything comes from the card (``training``, ``metrics``) written
by the trainer; a key the card lacks is simply left out, never invented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .engine.backends import EDGETPU_SUFFIX
from .engine.card import ModelCard
from .engine.model import NilmModel

ARCHITECTURES = {
    "compact": "Compact CNN",
    "cnn": "CNN",
    "transformer": "Transformer",
}
QUANTIZATIONS = {
    "convert_only": "float32",
    "w8": "int8 weights",
    "w8_a8": "int8",
    "w8_a16": "int8 weights, int16 activations",
}
# Test metrics shown (card key -> attribute), measured on a house the model never saw.
TEST_METRICS = {
    "f1": "test_f1",
    "event_recall": "test_event_recall",
    "event_precision": "test_event_precision",
    "running_on_delay_s": "test_running_on_delay_s",
    "running_off_delay_s": "test_running_off_delay_s",
}
MAX_LIST = 20
MAX_TEXT = 200


def architecture_label(card: ModelCard) -> str:
    return ARCHITECTURES.get(card.architecture) or card.architecture.replace("_", " ").capitalize()


def quantization_label(card: ModelCard) -> str:
    return QUANTIZATIONS.get(card.quantization, card.quantization)


def is_edgetpu_card(card: ModelCard) -> bool:
    return card.tflite_file.endswith(EDGETPU_SUFFIX)


def model_label(card: ModelCard) -> str:
    """E.g. "Compact CNN, int8" (the device's model in Home Assistant)."""
    label = f"{architecture_label(card)}, {quantization_label(card)}"
    return label + (", Edge TPU" if is_edgetpu_card(card) else "")


def model_version(card: ModelCard) -> str | None:
    """The model file's identity: the first 12 hex digits of its sha256."""
    return card.tflite_sha256[:12] or card.trainer_version or None


def _number(value: Any, digits: int = 3) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return round(number, digits) if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) and value else None


def _texts(value: Any) -> list[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return None
    out = [t for t in (_text(v) for v in value[:MAX_LIST]) if t is not None]
    return out or None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _test_key(metrics: Mapping[str, Any]) -> str | None:
    """The card's metrics on unseen data (``test_house_20``, ``test_unseen_houses``)."""
    keys = sorted(k for k, v in metrics.items() if k.startswith("test_") and isinstance(v, Mapping))
    return keys[0] if keys else None


def model_facts(model: NilmModel | ModelCard, backend: str | None = None) -> dict[str, Any]:
    """The facts of a loaded model (or a card, with the backend named separately)."""
    if isinstance(model, NilmModel):
        card = model.card
        backend = backend or str(getattr(model.backend, "name", "")) or None
    else:
        card = model
    training = _mapping(card.training)
    data = _mapping(training.get("data"))
    metrics = _mapping(card.metrics)
    facts: dict[str, Any] = {
        "model": card.name,
        "appliance": card.appliance,
        "architecture": architecture_label(card),
        "quantization": quantization_label(card),
        "backend": backend,
        "version": model_version(card),
        "sample_period_s": _number(card.sample_period_s, 1),
        "window_samples": card.window_length,
        "prediction_delay_s": _number(card.delay_s, 1),
        "warm_up_min": _number(card.window_s / 60.0, 1),
    }
    if card.status_output is not None:
        facts["on_probability_threshold"] = _number(card.status.probability_threshold)
    else:
        facts["on_power_threshold_w"] = _number(card.status.on_power_threshold_w, 1)
    facts["trained_on"] = _texts(data.get("train_sources")) or _texts(
        training.get("train_house") or training.get("source") or training.get("dataset")
    )
    synthetic = data.get("synthetic_windows")
    if isinstance(synthetic, int) and not isinstance(synthetic, bool) and synthetic > 0:
        facts["synthetic_training_windows"] = synthetic
    facts["validated_on"] = _texts(training.get("validation_sources"))
    key = _test_key(metrics)
    if key is not None:
        test = _mapping(metrics[key])
        where = key.removeprefix("test_").replace("_", " ")  # "house 20", "unseen houses"
        # The card's test house names the house of ``test_house_<n>`` (and says it was
        # never used for training); other test sets (the fridge's pooled unseen houses)
        # are named by their key.
        named = _text(training.get("test_house")) if key.startswith("test_house_") else None
        facts["tested_on"] = named or where
        for name, attribute in TEST_METRICS.items():
            digits = 0 if name.endswith("_delay_s") else 3
            facts[attribute] = _number(test.get(name), digits)
        rule = _mapping(metrics.get("rule_" + key.removeprefix("test_")))
        facts["rule_baseline_f1"] = _number(rule.get("f1", test.get("rule_f1")))
    validation = _mapping(metrics.get("validation"))
    facts["validation_f1"] = _number(validation.get("f1", training.get("validation_f1")))
    facts["attribution"] = _text_long(training.get("attribution"))
    return {k: v for k, v in facts.items() if v is not None}


def _text_long(value: Any) -> str | None:
    """Attribution texts are long (several references): up to 1,000 characters."""
    return value[:1000] if isinstance(value, str) and value else None
