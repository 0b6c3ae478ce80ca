"""Soak test set-up: the HA test harness (pytest-homeassistant-custom-component) with models.

Runs WITH the homeassistant pytest plugin (not ``-p no:homeassistant``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant

# Imported first so HA's loader finds *our* custom_components package, not the test
# harness's own testing_config/custom_components.
import custom_components.nilm  # noqa: F401
from scripts.ha_dev.hass import BUNDLED_MODELS, FIXTURE_MODELS, fixture_model_names, model_names


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Load custom_components/nilm, with a private config folder per test."""
    request.getfixturevalue("enable_custom_integrations")
    hass: HomeAssistant = request.getfixturevalue("hass")
    hass.config.config_dir = str(tmp_path)


@pytest.fixture
def soak_models(hass: HomeAssistant) -> list[str]:
    """Bundled models when the integration ships them, else the tests' tiny real-data ones."""
    bundled = model_names(BUNDLED_MODELS)
    if bundled:
        return bundled
    target = Path(hass.config.path("nilm/models"))
    target.mkdir(parents=True, exist_ok=True)
    for name in fixture_model_names():
        for suffix in (".json", ".tflite"):
            shutil.copy(FIXTURE_MODELS / f"{name}{suffix}", target / f"{name}{suffix}")
    return model_names(target)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The soak test needs the HA test harness: skip it clearly when the plugin is off."""
    if config.pluginmanager.hasplugin("homeassistant"):
        return
    skip = pytest.mark.skip(reason="soak runs WITH the homeassistant plugin (no -p no:...)")
    for item in items:
        if "tests/soak/" in item.nodeid:
            item.add_marker(skip)
