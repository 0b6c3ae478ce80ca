"""Fixtures for the integration tests: user models on disk, a mains sensor, real data."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.nilm import model_store
from custom_components.nilm.const import (
    CONF_APPLIANCES,
    CONF_BACKEND,
    CONF_MAINS_ENTITIES,
    DOMAIN,
)
from scripts.ha_dev.refit import REFIT_30S_COLUMNS, read_refit_csv, refit_30s_file

FIXTURE_MODELS = Path(__file__).parent / "fixtures" / "models"
# The test models' geometry, read from their card (both test models share it), so the
# tests follow the fixtures the trainer builds instead of repeating 99 and 96.
_TEST_CARD = json.loads((FIXTURE_MODELS / "test_kettle.json").read_text(encoding="utf-8"))
WINDOW: int = _TEST_CARD["window_length"]
LOOK_AHEAD: int = WINDOW - 1 - _TEST_CARD["target_index"]
LAG = LOOK_AHEAD + 1  # the tick after slot i is set reports target sample i - LAG
FIRST_VALID_STEP = WINDOW  # a whole window of closed slots is needed
REAL_BUNDLED = Path(__file__).parents[3] / "custom_components" / "nilm" / "models"
MAINS = "sensor.mains_power"
W_ATTRS = {"unit_of_measurement": "W", "device_class": "power", "friendly_name": "Mains power"}
# Grid-aligned start of the replay (REFIT House 20, 2014-06-01 05:00 UTC).
REPLAY_START = datetime(2014, 6, 1, 5, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_bundled_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tests must not depend on which models are bundled: start from none."""
    empty = tmp_path / "bundled"
    empty.mkdir()
    monkeypatch.setattr(model_store, "BUNDLED_MODELS_DIR", empty)
    return empty


@pytest.fixture
def bundled_kettle(no_bundled_models: Path) -> Path:
    """The real bundled kettle (its card names a head: adaptable), the only bundled model."""
    for suffix in (".json", ".tflite"):
        shutil.copy(REAL_BUNDLED / f"kettle{suffix}", no_bundled_models / f"kettle{suffix}")
    return no_bundled_models / "kettle.json"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Every test here loads the custom integration, with a private config dir.

    A test that uses the recorder gets it set up before ``hass`` (the plugin requires it).
    """
    if "recorder_mock" in request.fixturenames:
        request.getfixturevalue("recorder_mock")
    request.getfixturevalue("enable_custom_integrations")
    hass: HomeAssistant = request.getfixturevalue("hass")
    hass.config.config_dir = str(tmp_path)


@pytest.fixture(params=["litert", "numpy"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on one CPU engine: 'cpu' maps to exactly this engine backend."""
    monkeypatch.setitem(model_store.ENGINE_PREFERENCES, "cpu", (request.param,))
    return str(request.param)


@pytest.fixture
def user_models(hass: HomeAssistant) -> Path:
    """The tiny real-data test models, installed as user models."""
    target = Path(hass.config.path("nilm/models"))
    target.mkdir(parents=True, exist_ok=True)
    for name in ("test_kettle", "test_microwave"):
        for suffix in (".tflite", ".json"):
            shutil.copy(FIXTURE_MODELS / f"{name}{suffix}", target / f"{name}{suffix}")
    return target


@pytest.fixture
def house20(data_dir: Path) -> dict[str, np.ndarray]:
    """REFIT House 20, June 2014 (30 s): the unseen test house."""
    return read_refit_csv(refit_30s_file(data_dir, 20, "2014-06"), columns=REFIT_30S_COLUMNS)


def install(folder: Path, name: str, source: str, appliance: str | None = None) -> None:
    """A copy of a fixture model under another name (and appliance)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE_MODELS / f"{source}.tflite", folder / f"{name}.tflite")
    raw = json.loads((FIXTURE_MODELS / f"{source}.json").read_text(encoding="utf-8"))
    raw.update(name=name, tflite_file=f"{name}.tflite")
    if appliance is not None:
        raw["appliance"] = appliance
    (folder / f"{name}.json").write_text(json.dumps(raw), encoding="utf-8")


def appliance_entities(hass: HomeAssistant, entry: MockConfigEntry, name: str) -> dict[str, str]:
    """The entity ids of one appliance's power, energy, energy today and running (found
    through the entity registry by unique id), and of the entry's untracked power."""
    reg = er.async_get(hass)
    out = {}
    for domain, key in (
        ("sensor", "power"),
        ("sensor", "energy"),
        ("sensor", "energy_today"),
        ("binary_sensor", "running"),
    ):
        entity_id = reg.async_get_entity_id(domain, DOMAIN, f"{entry.entry_id}_{name}_{key}")
        assert entity_id is not None
        out[key] = entity_id
    untracked = reg.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_untracked_power")
    assert untracked is not None
    out["untracked"] = untracked
    return out


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


def make_entry(
    appliances: list[str] | None = None,
    mains: list[str] | None = None,
    backend: str = "cpu",
    options: dict[str, object] | None = None,
) -> MockConfigEntry:
    mains = mains or [MAINS]
    return MockConfigEntry(
        domain=DOMAIN,
        title="Mains power",
        unique_id="+".join(sorted(mains)),
        data={
            CONF_MAINS_ENTITIES: mains,
            CONF_APPLIANCES: appliances or ["test_kettle", "test_microwave"],
            CONF_BACKEND: backend,
        },
        options=options or {},
    )


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


class Replayer:
    """Feeds a sensor one value per 30 s slot and fires the clock like a running HA."""

    def __init__(self, hass: HomeAssistant, freezer: FrozenDateTimeFactory, start: datetime):
        self.hass = hass
        self.freezer = freezer
        self.now = start

    async def step(
        self,
        value: str | float | None,
        entity_id: str = MAINS,
        attrs: dict[str, str] | None = None,
        seconds: float = 30.0,
    ) -> None:
        """Set the state at the slot start, then let the tick due 10 s into the slot run."""
        self.freezer.move_to(self.now)
        if value is None:
            self.hass.states.async_remove(entity_id)
        else:
            text = value if isinstance(value, str) else f"{value:.1f}"
            self.hass.states.async_set(entity_id, text, attrs or W_ATTRS)
        await self.hass.async_block_till_done()  # deliver the event before the tick runs
        await self.tick(15.0)
        self.now += timedelta(seconds=seconds)

    async def tick(self, after: float) -> None:
        moment = self.now + timedelta(seconds=after)
        self.freezer.move_to(moment)
        async_fire_time_changed(self.hass, moment)
        await self.hass.async_block_till_done()

    async def silence(self, seconds: float) -> None:
        """No reports at all: only the clock moves."""
        end = self.now + timedelta(seconds=seconds)
        while self.now < end:
            await self.tick(15.0)
            self.now += timedelta(seconds=30)


@pytest.fixture
def replayer(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> Iterator[Replayer]:
    freezer.move_to(REPLAY_START - timedelta(seconds=20))
    # asyncio's debug mode times callbacks with the frozen clock: every jump would be
    # reported as a 30 s "slow callback".
    hass.loop.slow_callback_duration = 24 * 3600
    yield Replayer(hass, freezer, REPLAY_START)
