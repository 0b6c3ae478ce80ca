"""Device info: what Home Assistant's device page shows for each appliance."""

from __future__ import annotations

import json
import re
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .conftest import FIXTURE_MODELS, MAINS, W_ATTRS, make_entry, setup_entry


async def test_device_info_reads_cleanly(hass: HomeAssistant, user_models: Path) -> None:
    hass.states.async_set(MAINS, "100", W_ATTRS)
    entry = await setup_entry(hass, make_entry())
    devices = {
        d.name: d for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }
    kettle = devices["Kettle"]
    assert kettle.model == "Compact CNN, int8"
    assert kettle.model_id == "test_kettle"
    assert kettle.manufacturer == "NILM"
    # The model file's identity, not the trainer's version ("Firmware: 0.1.0").
    raw = json.loads((FIXTURE_MODELS / "test_kettle.json").read_text(encoding="utf-8"))
    assert kettle.sw_version == raw["tflite_sha256"][:12]
    for device in devices.values():
        # The device page shows "<model> (<manufacturer>)": no brackets inside.
        shown = f"{device.model} ({device.manufacturer})"
        assert not re.search(r"\([^)]*\(", shown), shown
    assert devices["NILM"].model == "Energy disaggregation"
