"""The user's view: Debian's headless Chromium logs in and opens the Kettle device page.

Selenium drives /usr/bin/chromium through /usr/bin/chromedriver given explicitly, so
Selenium Manager never runs and nothing is downloaded. HA's frontend renders inside
nested shadow roots, so text and inputs are found by a JS walk through every shadowRoot.
The screenshot lands in build/artifacts/ (git-ignored) for CI to keep.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from .conftest import ARTIFACTS, HaInstance, Replayed, error_lines, run

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path(os.environ.get("NILM_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("NILM_CHROMEDRIVER", "/usr/bin/chromedriver"))

DEEP_JS = """
const walk = (node, visit) => {
  visit(node);
  if (node.shadowRoot) walk(node.shadowRoot, visit);
  for (const child of node.childNodes) walk(child, visit);
};
"""
DEEP_TEXT_JS = (
    DEEP_JS
    + """
const parts = [];
walk(document, (n) => {
  if (n.nodeType === Node.TEXT_NODE && n.textContent.trim()
      && !["STYLE", "SCRIPT"].includes(n.parentNode && n.parentNode.nodeName)) {
    parts.push(n.textContent.trim());
  }
});
return parts.join("\\n");
"""
)
# Fill the login form: inputs live in ha-textfield shadow roots; Lit listens to "input".
LOGIN_JS = (
    DEEP_JS
    + """
const [username, password] = arguments;
const inputs = [];
walk(document, (n) => { if (n.tagName === "INPUT") inputs.push(n); });
const user = inputs.find((i) => i.type === "text" || i.autocomplete === "username");
const pass = inputs.find((i) => i.type === "password");
if (!user || !pass) return false;
for (const [el, value] of [[user, username], [pass, password]]) {
  el.focus();
  el.value = value;
  el.dispatchEvent(new Event("input", { bubbles: true, composed: true }));
  el.dispatchEvent(new Event("change", { bubbles: true, composed: true }));
}
const buttons = [];
walk(document, (n) => {
  if (["BUTTON", "MWC-BUTTON", "HA-BUTTON", "HA-PROGRESS-BUTTON"].includes(n.tagName)
      && /log in/i.test(n.textContent || n.getAttribute("label") || "")) buttons.push(n);
});
if (!buttons.length) return false;
buttons[0].click();
return true;
"""
)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        pytest.skip(f"Debian's chromium/chromedriver not found ({CHROMIUM}, {CHROMEDRIVER})")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_text(driver: Any, needles: list[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = driver.execute_script(DEEP_TEXT_JS) or ""
        if all(n in text for n in needles):
            return str(text)
        time.sleep(0.5)
    return str(text)


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
        assert float(value) == pytest.approx(float(before[entity_id]), abs=1e-6), entity_id


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
    welcome = _wait_for_text(browser, ["Overview"], 60)
    assert "Overview" in welcome, f"not logged in; page shows: {welcome[:500]}"

    browser.get(f"{ha.url}/config/devices/device/{device_id}")
    text = _wait_for_text(browser, [device_name, *names], 60)
    time.sleep(1.0)  # let icons and state badges finish rendering for the picture
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "nilm-kettle-device-page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    missing = [n for n in [device_name, *names] if n not in text]
    assert not missing, f"device page lacks {missing}; it shows: {text[:1500]}"
    bad = error_lines(ha.process.log_text())
    assert not bad, "\n".join(bad[:20])
