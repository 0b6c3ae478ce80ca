"""The float parents shipped with the trainer are the ones the bundled models came from."""

from __future__ import annotations

import pytest

from trainer.parents import PARENTS_DIR, load_parent, requantize_parent

SHIPPED = sorted(p.name for p in PARENTS_DIR.iterdir() if (p / "parent.json").is_file())


def test_every_bundled_model_has_a_parent() -> None:
    assert SHIPPED == ["dishwasher", "fridge", "kettle", "microwave", "washing_machine"]


@pytest.mark.parametrize("appliance", SHIPPED)
def test_parent_requantizes_to_the_bundled_model_byte_for_byte(appliance: str) -> None:
    parent = load_parent(appliance)
    assert parent.record["bundled_tflite_sha256"] == parent.card.tflite_sha256
    tflite = parent.card.tflite_file or f"{appliance}.tflite"
    bundled = PARENTS_DIR.parents[1] / "custom_components" / "nilm" / "models" / tflite
    assert requantize_parent(parent) == bundled.read_bytes()
