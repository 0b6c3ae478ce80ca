"""Screenshot a page of the running demo (scripts/develop) with Debian's headless Chromium.

    scripts/develop                 # in one terminal: HA with the imported history
    .venv/bin/python -m scripts.ha_dev.screenshot            # docs/img/energy-dashboard.png

Default: the Energy dashboard of the previous (whole) day, where the NILM appliances are
the individual devices. Logs in with the demo's user from ``<config>/.nilm_dev_login.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.ha_dev.browser import (
    CLICK_LABEL_JS,
    chart_points,
    chromium_available,
    log_in,
    start_chromium,
    wait_for_text,
)
from scripts.ha_dev.hass import PROJECT_ROOT


def _dates_in(text: str) -> list[date]:
    """Dates written as the dashboard's header writes them ("December 1, 2026")."""
    found = []
    for match in re.finditer(r"\b([A-Z][a-z]+) (\d{1,2}), (\d{4})\b", text):
        try:
            found.append(datetime.strptime(" ".join(match.groups()), "%B %d %Y").date())
        except ValueError:
            continue
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8123", help="(default: %(default)s)")
    parser.add_argument(
        "--config", default=str(PROJECT_ROOT / "config"), help="demo config (default: ./config)"
    )
    parser.add_argument("--path", default="/energy", help="page (default: %(default)s)")
    parser.add_argument(
        "--days-back",
        type=int,
        default=1,
        help="on the Energy dashboard, days before today to show (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=str(PROJECT_ROOT / "docs" / "img" / "energy-dashboard.png"),
        help="PNG to write (default: docs/img/energy-dashboard.png)",
    )
    parser.add_argument("--width", type=int, default=1400, help="(default: %(default)s)")
    parser.add_argument("--height", type=int, default=1800, help="(default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not chromium_available():
        print("error: Debian's chromium and chromium-driver are needed", file=sys.stderr)
        return 1
    login = json.loads((Path(args.config) / ".nilm_dev_login.json").read_text())
    driver = start_chromium(args.width, args.height)
    try:
        log_in(driver, args.url, login["username"], login["password"])
        driver.get(f"{args.url}{args.path}")
        if args.path.startswith("/energy"):
            # The dashboard opens on a day of its choosing: step to the one wanted.
            day = datetime.now(UTC).date() - timedelta(days=args.days_back)  # HA's zone: UTC
            label = f"{day:%B} {day.day}, {day.year}"
            text = wait_for_text(driver, ["Electricity usage"], 60)
            for _ in range(10):
                if label in text:
                    break
                shown = [d for d in _dates_in(text) if d != day]
                step = "^next$" if shown and shown[0] < day else "^previous$"
                if not driver.execute_script(CLICK_LABEL_JS, step):
                    print(f"warning: no {step} button found", file=sys.stderr)
                    break
                time.sleep(1.0)
                text = wait_for_text(driver, ["Electricity usage"], 10)
            if label not in text:
                print(f"warning: could not open {label}", file=sys.stderr)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until every chart has drawn its data
            charts = chart_points(driver)
            if charts and all(any(s["points"] for s in c) for c in charts):
                break
            time.sleep(1.0)
        time.sleep(3.0)  # animations
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"wrote {out} ({out.stat().st_size} bytes); charts: {chart_points(driver)}")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
