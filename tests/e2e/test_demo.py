"""The README's run command as a newcomer meets it: ``scripts/develop`` at 1x on a fresh
config folder imports the previous day of REFIT House 20 into the recorder, and the
History panel in Debian's headless Chromium draws the mains sensor's day within a minute
of the command's start (``--history-days 1`` keeps the test short; the default is 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scripts.ha_dev.browser import chart_points, log_in
from scripts.ha_dev.replay import MAINS_ENTITY
from tests.conftest import DATA_DIR, PROJECT_ROOT

from .conftest import ARTIFACTS, error_lines, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

READY_LINE = "  stop:"
FIRST_POINTS_S = 60.0  # what the issue asks: History shows the imported days within a minute


@dataclass
class Demo:
    url: str
    config_dir: Path
    started: float  # time.monotonic() when scripts/develop was started
    output: list[str]

    def login(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.config_dir / ".nilm_dev_login.json").read_text())
        return data

    def ha_log(self) -> str:
        path = self.config_dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""


def demo_args(config_dir: Path, port: int) -> list[str]:
    return ["--config", str(config_dir), "--port", str(port), "--history-days", "1"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``python -m scripts.ha_dev.develop`` (what scripts/develop runs), stopped with Ctrl-C."""
    if not (DATA_DIR / "refit_30s" / "house20").is_dir():
        pytest.fail(f"real data not found at {DATA_DIR}; set NILM_DATA_DIR")
    config_dir = tmp_path_factory.mktemp("demo_config")
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "scripts.ha_dev.develop", *demo_args(config_dir, port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "NILM_DATA_DIR": str(DATA_DIR)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith(READY_LINE) for line in output):
            if proc.poll() is not None or time.monotonic() > deadline:
                while not lines.empty():
                    output.append(lines.get())
                pytest.fail("scripts/develop did not come up:\n" + "\n".join(output[-40:]))
            try:
                output.append(lines.get(timeout=1.0))
            except queue.Empty:
                continue
        print(f"scripts/develop ready after {time.monotonic() - started:.1f} s")
        yield Demo(f"http://127.0.0.1:{port}", config_dir, started, output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: the demo stops HA itself
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        while not lines.empty():
            output.append(lines.get())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "demo-develop.log").write_text("\n".join(output) + "\n")
        log = config_dir / "home-assistant.log"
        if log.exists():
            (ARTIFACTS / "demo-home-assistant.log").write_text(log.read_text(errors="replace"))


def test_history_shows_the_imported_day_within_a_minute(demo: Demo, browser: Any) -> None:
    imported = [line for line in demo.output if line.startswith(">> imported")]
    assert imported, "\n".join(demo.output)
    login = demo.login()
    log_in(browser, demo.url, login["username"], login["password"])
    since = (datetime.now(UTC) - timedelta(hours=26)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    browser.get(f"{demo.url}/history?entity_id={MAINS_ENTITY}&start_date={since}")
    points = 0
    charts: list[Any] = []
    while time.monotonic() - demo.started < FIRST_POINTS_S + 30:
        charts = chart_points(browser)
        points = max((s["points"] for c in charts for s in c), default=0)
        if points > 1000:  # a day of 30 s samples is 2880
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - demo.started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    time.sleep(2.0)  # the chart draws large series over a few frames
    browser.save_screenshot(str(ARTIFACTS / "demo-history.png"))
    print(f"History drew {points} points {elapsed:.1f} s after scripts/develop started")
    assert points > 1000, f"the History graph has {points} points: {charts}"
    assert elapsed <= FIRST_POINTS_S, f"History had points only {elapsed:.0f} s after the start"
    bad = error_lines(demo.ha_log())
    assert not bad, "\n".join(bad[:20])


def test_the_imported_day_is_in_the_history_api_before_ha_started(demo: Demo) -> None:
    """A span that ends before this HA started still answers: the import refreshes the
    recorder's oldest-state time (HA only reads it at start), so the trainer's REST
    history and the History panel see the imported day, not ``[]``."""
    from scripts.ha_dev.client import HaClient

    started = datetime.now(UTC) - timedelta(seconds=time.monotonic() - demo.started)
    start = (started - timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (started - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def rows() -> list[dict[str, Any]]:
        async with HaClient(demo.url, demo.login()["token"]) as client:
            return await client.history(MAINS_ENTITY, start, end)

    got = asyncio.run(rows())
    assert len(got) > 1000, f"{len(got)} states of {MAINS_ENTITY} between {start} and {end}"
