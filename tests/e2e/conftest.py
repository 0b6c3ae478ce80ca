"""A real ``hass`` process for the end-to-end and browser tests (run with -p no:homeassistant).

One instance per session, in a temporary config folder on a free 127.0.0.1 port, with its
clock accelerated by libfaketime (see scripts/ha_dev/hass.py). It is onboarded through the
HTTP API, the NILM entry is added through the config-flow REST endpoints, and a few hours
of REFIT House 20 around known kettle boils are replayed. Tests then look at the result.
HA is always stopped at the end (SIGTERM, then SIGKILL of its process group).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scripts.ha_dev.client import HaClient, Login, field_options
from scripts.ha_dev.hass import (
    HassProcess,
    find_faketime,
    free_port,
    model_timing,
    prepare_config,
)
from scripts.ha_dev.replay import (
    MAINS_ATTRIBUTES,
    MAINS_ENTITY,
    PERIOD_S,
    Sample,
    house20_samples,
    replay,
)
from tests.conftest import DATA_DIR, PROJECT_ROOT

SPEED = float(os.environ.get("NILM_E2E_SPEED", "120"))
# Two clean kettle boils in House 20 (the unseen test house): 2014-04-02 14:23:30 UTC
# (~2.8 kW, 1.5 min) and 16:06:30 UTC (~2.8 kW, 2 min). The replay starts one model input
# window plus MARGIN before the first and ends MARGIN after the second (plus output delay).
MARGIN = timedelta(minutes=30)
KETTLE_EVENTS = (
    datetime(2014, 4, 2, 14, 23, 30, tzinfo=UTC),
    datetime(2014, 4, 2, 16, 6, 30, tzinfo=UTC),
)
ARTIFACTS = PROJECT_ROOT / "build" / "artifacts"
# Errors that are not ours on an offline box: Debian's libturbojpeg missing (HA's camera
# helper), and, should onboarding's core-config step run (prepare_config marks it done on a
# new folder), the flows it starts for met / radio_browser / google_translate, whose PyPI
# packages --skip-pip leaves out. Anything else in the log fails the run.
ONBOARDING_NOISE = re.compile(
    r"No module named '(metno|radios|gtts)'|integration (met|radio_browser|google_translate)\b"
    r"|entry Google Translate|Error loading libturbojpeg"
)


RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: they restart HA on a real-time clock (see test_browser.py).

    With the homeassistant plugin loaded (it blocks sockets) these tests cannot work.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
    if config.pluginmanager.hasplugin("homeassistant"):
        skip = pytest.mark.skip(reason="e2e tests run with -p no:homeassistant (real sockets)")
        for item in items:
            if "tests/e2e/" in item.nodeid:
                item.add_marker(skip)


def run(coro: Any) -> Any:
    """Run one coroutine to completion (tests stay synchronous; one loop per call)."""
    return asyncio.run(coro)


@dataclass
class HaInstance:
    """A running, onboarded Home Assistant."""

    url: str
    config_dir: Path
    process: HassProcess
    login: Login
    models: list[str]

    def client(self) -> HaClient:
        return HaClient(self.url, self.login.token)

    def restart(self, speed: float, start_at: datetime | None = None) -> None:
        """Stop HA (it saves restore state) and start it again on the same config folder."""
        self.process.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "e2e-home-assistant.log").write_text(self.process.log_text())
        self.process = HassProcess(self.config_dir, speed=speed, start_at=start_at)
        self.process.start()

        async def wait() -> None:
            async with self.client() as client:
                await client.wait_until_up(240, self.process.alive)
                await client.wait_until_running(240)

        run(wait())


@dataclass
class Replayed:
    """What the e2e setup did and saw; the tests assert on it."""

    form: dict[str, Any]
    entry: dict[str, Any]
    appliances: list[str]
    samples: list[Sample]
    # (data time of the last sample posted, {entity_id: state}) every few samples
    snapshots: list[tuple[datetime, dict[str, str]]] = field(default_factory=list)
    # (data time, HA time on its accelerated clock) for every sample posted
    posted_at: list[tuple[datetime, datetime]] = field(default_factory=list)


def error_lines(log: str) -> list[str]:
    """ERROR/CRITICAL records (with their tracebacks) in HA's log, minus onboarding noise."""
    records: list[str] = []
    for line in log.splitlines():
        if RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return [
        record
        for record in records
        if (" ERROR " in record.split("\n", 1)[0] or " CRITICAL " in record.split("\n", 1)[0])
        and ("nilm" in record or not ONBOARDING_NOISE.search(record))
    ]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium (scripts/ha_dev/browser.py); skipped where it is missing."""
    from scripts.ha_dev.browser import CHROMEDRIVER, CHROMIUM, chromium_available, start_chromium

    if not chromium_available():
        pytest.skip(f"Debian's chromium/chromedriver not found ({CHROMIUM}, {CHROMEDRIVER})")
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaInstance]:
    """Start and onboard a real Home Assistant; always stop it afterwards."""
    if find_faketime() is None:
        message = "libfaketime missing: apt-get install faketime (accelerated HA clock)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not (DATA_DIR / "refit_30s" / "house20").is_dir():
        pytest.fail(f"real data not found at {DATA_DIR}; set NILM_DATA_DIR")
    config_dir = tmp_path_factory.mktemp("ha_config")
    port = free_port()
    models = prepare_config(config_dir, port)
    process = HassProcess(config_dir, speed=SPEED)
    url = f"http://127.0.0.1:{port}"
    process.start()
    instance: HaInstance | None = None
    try:

        async def onboard() -> Login:
            async with HaClient(url) as client:
                await client.wait_until_up(240, process.alive)
                login = await client.onboard("E2E", "e2e", "e2e-password")
                await client.wait_until_running(240)
                return login

        login = run(onboard())
        instance = HaInstance(url, config_dir, process, login, models)
        yield instance
    finally:
        last = instance.process if instance is not None else process
        last.stop()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = "e2e-home-assistant.log" if last is process else "e2e-home-assistant-restarted.log"
        (ARTIFACTS / name).write_text(last.log_text())


async def _add_entry(client: HaClient) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The "Add integration" dialog: open the flow, read the form, submit it."""
    form = await client.start_flow("nilm")
    assert form["type"] == "form", form
    assert form["step_id"] == "user", form
    offered = field_options(form["data_schema"], "appliances")
    result = await client.flow_step(
        form["flow_id"],
        {"mains_entities": [MAINS_ENTITY], "appliances": offered, "backend": "auto"},
    )
    assert result["type"] == "create_entry", result
    return form, result["result"], offered


@pytest.fixture(scope="session")
def replayed(ha: HaInstance) -> Replayed:
    """Add the NILM entry like the UI does and replay REFIT House 20 around two kettle boils."""
    window_s, delay_s = model_timing(ha.config_dir, ha.models)
    start = KETTLE_EVENTS[0] - timedelta(seconds=window_s) - MARGIN
    start = start.replace(minute=start.minute - start.minute % 10, second=0)
    end = KETTLE_EVENTS[-1] + timedelta(seconds=delay_s) + MARGIN
    samples = list(house20_samples(start, end))
    assert len(samples) == int((end - start).total_seconds() / PERIOD_S)

    async def go() -> Replayed:
        async with ha.client() as client:
            await client.set_state(MAINS_ENTITY, f"{samples[0].aggregate:.1f}", MAINS_ATTRIBUTES)
            form, entry, appliances = await _add_entry(client)
            outcome = Replayed(form, entry, appliances, samples)
            chunk = 20
            for start in range(0, len(samples), chunk):
                part = samples[start : start + chunk]
                await replay(
                    client,
                    part,
                    speed=SPEED,
                    on_posted=lambda s, st: outcome.posted_at.append((s.time, ha_time(st))),
                )
                states = await client.get_states()
                outcome.snapshots.append(
                    (part[-1].time, {k: v["state"] for k, v in states.items()})
                )
            # Let the last samples work through the models' delay (a few HA seconds).
            await asyncio.sleep(4 * PERIOD_S / SPEED)
            states = await client.get_states()
            outcome.snapshots.append((samples[-1].time, {k: v["state"] for k, v in states.items()}))
            return outcome

    t0 = time.monotonic()
    outcome: Replayed = run(go())
    print(f"replayed {len(samples)} samples at x{SPEED:g} in {time.monotonic() - t0:.0f} s")
    return outcome


def ha_time(state: dict[str, Any]) -> datetime:
    """HA's clock when it last accepted a write of this state."""
    return datetime.fromisoformat(state.get("last_reported") or state["last_updated"])


def data_time_at(replayed: Replayed, when: datetime) -> datetime | None:
    """The data time of the mains sample HA was holding at HA time ``when``."""
    held = None
    for data_time, posted in replayed.posted_at:
        if posted <= when:
            held = data_time
        else:
            break
    return held
