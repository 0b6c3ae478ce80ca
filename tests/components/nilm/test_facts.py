"""Model facts read from a card: what is there is shown, what is absent is left out."""

from __future__ import annotations

import json
from typing import Any

from custom_components.nilm.engine.card import ModelCard
from custom_components.nilm.facts import model_facts, model_label, model_version

from .conftest import FIXTURE_MODELS

FIXTURE = json.loads((FIXTURE_MODELS / "test_kettle.json").read_text(encoding="utf-8"))


def card(**overrides: Any) -> ModelCard:
    return ModelCard.from_dict({**FIXTURE, **overrides})


# The shape the trainer's bundle writes (trainer/bundle.py), numbers made up.
TRAINING = {
    "data": {
        "train_sources": ["REFIT house 2", "UK-DALE house 1"],
        "synthetic_windows": 50000,
    },
    "validation_sources": ["REFIT house 5"],
    "test_house": "REFIT house 20 (never used for training or choices)",
    "attribution": "REFIT: Murray et al. (2017). CC-BY 4.0.",
}
METRICS = {
    "test_house_20": {
        "f1": 0.81234,
        "event_recall": 0.9,
        "event_precision": 0.7,
        "running_on_delay_s": 29.6,
        "running_off_delay_s": 61.2,
        "mae_w": 6.0,
    },
    "rule_house_20": {"f1": 0.4},
    "validation": {"f1": 0.85},
}


def test_facts_from_a_full_card() -> None:
    facts = model_facts(card(training=TRAINING, metrics=METRICS), "numpy")
    assert facts == {
        "model": "test_kettle",
        "appliance": "kettle",
        "architecture": "Compact CNN",
        "quantization": "int8",
        "backend": "numpy",
        "version": FIXTURE["tflite_sha256"][:12],
        "sample_period_s": 30.0,
        "window_samples": 99,
        "prediction_delay_s": 60.0,
        "warm_up_min": 49.5,
        "on_probability_threshold": FIXTURE["status"]["probability_threshold"],
        "trained_on": ["REFIT house 2", "UK-DALE house 1"],
        "synthetic_training_windows": 50000,
        "validated_on": ["REFIT house 5"],
        "tested_on": "REFIT house 20 (never used for training or choices)",
        "test_f1": 0.812,
        "test_event_recall": 0.9,
        "test_event_precision": 0.7,
        "test_running_on_delay_s": 30.0,
        "test_running_off_delay_s": 61.0,
        "rule_baseline_f1": 0.4,
        "validation_f1": 0.85,
        "attribution": "REFIT: Murray et al. (2017). CC-BY 4.0.",
    }


def test_absent_or_unusable_keys_are_left_out() -> None:
    facts = model_facts(
        card(
            training={
                "data": "not a mapping",
                "validation_sources": [1, 2],
                "test_house": "REFIT house 20",  # not where these metrics come from
            },
            metrics={"test_unseen_houses": {"f1": True, "running_on_delay_s": "soon"}},
            status_output=None,
            tflite_sha256="",
            trainer_version="",
        )
    )
    assert facts["tested_on"] == "unseen houses"
    assert facts["on_power_threshold_w"] == 500.0
    for key in (
        "backend",
        "version",
        "trained_on",
        "validated_on",
        "test_f1",
        "test_running_on_delay_s",
        "rule_baseline_f1",
        "validation_f1",
        "attribution",
        "synthetic_training_windows",
    ):
        assert key not in facts, key
    # The integration tests' own cards name their training house, as the pipeline does;
    # a card may also name its data in "source" or "dataset" alone.
    assert model_facts(card())["trained_on"] == ["REFIT house 2"]
    for key in ("source", "dataset"):
        only = card(training={key: "REFIT House 2, 30 s"})
        assert model_facts(only)["trained_on"] == ["REFIT House 2, 30 s"]


def test_labels_without_nested_brackets() -> None:
    assert model_label(card()) == "Compact CNN, int8"
    assert model_label(card(architecture="compact", quantization="w8_a16")) == (
        "Compact CNN, int8 weights, int16 activations"
    )
    assert model_label(card(architecture="my_net", tflite_file="k_edgetpu.tflite")) == (
        "My net, int8, Edge TPU"
    )
    assert model_version(card(tflite_sha256="", trainer_version="0.2.0")) == "0.2.0"
