"""The user's view: Debian's headless Chromium logs in and opens the Kettle device page.

The driver and the shadow-root walks are scripts/ha_dev/browser.py's (shared with
scripts/ha_dev/screenshot.py); the ``browser`` fixture is in conftest.py. The screenshot
lands in build/artifacts/ (git-ignored) for CI to keep.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from scripts.ha_dev.browser import LOGIN_JS, wait_for_text

from .conftest import ARTIFACTS, HaInstance, Replayed, error_lines, run

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def _kettle_device(ha: HaInstance, entry_id: str) -> tuple[str, str, list[str]]:
    async with ha.client() as client:
        registry = await client.entity_registry("nilm")
        devices = {d["id"]: d for d in await client.device_registry()}
        states = await client.get_states()
    entities = [e for e in registry if e["config_entry_id"] == entry_id]
    kettle = next(e for e in entities if "_kettle_" in e["unique_id"] and e["device_id"])
    device = devices[kettle["device_id"]]
    device_name = device["name_by_user"] or device["name"]
    names = []
    for entity in entities:
        if entity["device_id"] != device["id"]:
            continue
        friendly = states[entity["entity_id"]]["attributes"].get("friendly_name", "")
        names.append(friendly.removeprefix(device_name).strip() or friendly)
    return device["id"], device_name, names


@pytest.fixture(scope="session")
def ha_realtime(ha: HaInstance, replayed: Replayed) -> HaInstance:
    """The same instance restarted on a real-time clock.

    At x120 HA's 10 s WebSocket auth timeout is 83 ms of real time, too short for a
    browser. Restarting also shows the entry, devices and restored totals survive.
    HA's clock continues from where the fast run left it (as a real clock would).
    """
    ha.restart(speed=1.0, start_at=replayed.posted_at[-1][1] + timedelta(minutes=1))
    return ha


def test_energy_totals_survive_a_real_restart(ha_realtime: HaInstance, replayed: Replayed) -> None:
    """SIGTERM + start of the real process: restore state must bring every total back."""

    async def energies() -> dict[str, str]:
        async with ha_realtime.client() as client:
            registry = await client.entity_registry("nilm")
            states = await client.get_states()
        return {
            e["entity_id"]: states[e["entity_id"]]["state"]
            for e in registry
            if e["unique_id"].endswith("_energy") and e["entity_id"] in states
        }

    after = run(energies())
    before = replayed.snapshots[-1][1]
    assert after, "no energy entities after the restart"
    for entity_id, value in after.items():
        assert value not in ("unknown", "unavailable"), (entity_id, value)
        # The total comes back, and may have grown a little since: an appliance that was
        # running at the end of the replay (the fridge) keeps running on the held mains.
        restored, last = float(value), float(before[entity_id])
        assert last - 1e-6 <= restored <= last + 0.005, (entity_id, last, restored)


def test_device_page_shows_the_kettle_entities(
    ha_realtime: HaInstance, replayed: Replayed, browser: Any
) -> None:
    ha = ha_realtime
    device_id, device_name, names = run(_kettle_device(ha, replayed.entry["entry_id"]))
    assert names, "the kettle device has no entities"

    browser.get(f"{ha.url}/")
    deadline = time.monotonic() + 60
    while not browser.execute_script(LOGIN_JS, ha.login.username, ha.login.password):
        assert time.monotonic() < deadline, "login form never appeared"
        time.sleep(0.5)
    welcome = wait_for_text(browser, ["Overview"], 60)
    assert "Overview" in welcome, f"not logged in; page shows: {welcome[:500]}"

    browser.get(f"{ha.url}/config/devices/device/{device_id}")
    text = wait_for_text(browser, [device_name, *names], 60)
    time.sleep(1.0)  # let icons and state badges finish rendering for the picture
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "nilm-kettle-device-page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    missing = [n for n in [device_name, *names] if n not in text]
    assert not missing, f"device page lacks {missing}; it shows: {text[:1500]}"
    bad = error_lines(ha.process.log_text())
    assert not bad, "\n".join(bad[:20])
