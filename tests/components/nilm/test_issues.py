"""issues.py: the repair issues and their texts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.nilm import issues
from custom_components.nilm.const import DOMAIN

from .conftest import make_entry, setup_entry


def test_every_repair_has_texts_with_the_placeholders_it_gets() -> None:
    en = json.loads(
        (Path(issues.__file__).parent / "translations" / "en.json").read_text(encoding="utf-8")
    )
    given = {key: {"model", "error", "folder"} for key in issues.MODEL_REPAIRS}
    given["mains_missing"] = {"sensor", "entry"}
    given["adapter_invalid"] = {"model", "error", "path"}
    for key, placeholders in given.items():
        texts = en["issues"][key]
        for part in (texts["title"], description(texts)):
            assert set(re.findall(r"{(\w+)}", part)) <= placeholders, (key, part)
    assert set(en["issues"]) == set(given)


def description(texts: dict[str, Any]) -> str:
    """A repair's text: its description, or for a fixable one its fix flow's step."""
    if "fix_flow" in texts:
        assert "description" not in texts  # Home Assistant shows one or the other
        return str(texts["fix_flow"]["step"]["confirm"]["description"])
    return str(texts["description"])


async def test_repair_texts_read_cleanly(hass: HomeAssistant, user_models: Path) -> None:
    """The engine's message ends in "..." (a hash prefix): the repair's text must not add
    a full stop to it ("e399191a8967.... Its file")."""
    data = bytearray((user_models / "test_microwave.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (user_models / "test_microwave.tflite").write_bytes(bytes(data))
    entry = await setup_entry(hass, make_entry())
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"{entry.entry_id}_test_microwave")
    assert issue is not None
    placeholders = issue.translation_placeholders or {}
    assert placeholders["error"].endswith("...")
    en = json.loads(
        (Path(issues.__file__).parent / "translations" / "en.json").read_text(encoding="utf-8")
    )
    for key in issues.MODEL_REPAIRS:  # the repairs that get these placeholders
        text = description(en["issues"][key]).format(**placeholders)
        assert "...." not in text, key
        assert ".." not in text.replace(placeholders["error"], ""), key
