"""Debian's headless Chromium driven by Selenium, for the browser test and screenshots.

Selenium gets /usr/bin/chromedriver explicitly, so Selenium Manager never runs and nothing
is downloaded. HA's frontend renders inside nested shadow roots, so text, inputs and
charts are found by a JS walk through every shadowRoot.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

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
# Points drawn by the frontend's charts (ha-chart-base, ECharts series): per chart, the
# series names and how many data points each has.
CHART_POINTS_JS = (
    DEEP_JS
    + """
const charts = [];
walk(document, (n) => {
  if (n.tagName === "HA-CHART-BASE") {
    const data = n.data || [];
    charts.push((Array.isArray(data) ? data : [data]).map((s) => ({
      name: String(s.name || ""),
      points: Array.isArray(s.data) ? s.data.length : 0,
    })));
  }
});
return charts;
"""
)
# Click the first button whose label matches (icon buttons carry it in "label").
CLICK_LABEL_JS = (
    DEEP_JS
    + """
const pattern = new RegExp(arguments[0], "i");
let found = null;
walk(document, (n) => {
  if (found || !n.tagName) return;
  const label = (n.getAttribute && (n.getAttribute("label") || n.getAttribute("aria-label"))) || "";
  if (/BUTTON/.test(n.tagName) && pattern.test(label)) found = n;
});
if (found) found.click();
return Boolean(found);
"""
)


def chromium_available() -> bool:
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def start_chromium(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium WebDriver (caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    return driver


def wait_for_text(driver: Any, needles: list[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = driver.execute_script(DEEP_TEXT_JS) or ""
        if all(n in text for n in needles):
            return str(text)
        time.sleep(0.5)
    return str(text)


def log_in(driver: Any, url: str, username: str, password: str, timeout_s: float = 60) -> None:
    """Open ``url`` and log in through HA's login page; raises if it never works."""
    driver.get(f"{url}/")
    deadline = time.monotonic() + timeout_s
    while not driver.execute_script(LOGIN_JS, username, password):
        if time.monotonic() > deadline:
            raise RuntimeError("login form never appeared")
        time.sleep(0.5)
    text = wait_for_text(driver, ["Overview"], timeout_s)
    if "Overview" not in text:
        raise RuntimeError(f"not logged in; page shows: {text[:500]}")


def chart_points(driver: Any) -> list[list[dict[str, Any]]]:
    result = driver.execute_script(CHART_POINTS_JS) or []
    return list(result)
