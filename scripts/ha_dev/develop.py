"""Bring up a real Home Assistant with the NILM integration and a replayed mains sensor.

Called by ``scripts/develop``. Steps: prepare the config folder (integration symlinked
in), start ``hass`` (clock accelerated with libfaketime when --speed > 1), onboard it
through the HTTP API on the first run, create a long-lived token; at 1x import the past
``--history-days`` of REFIT House 20 into the recorder, shifted to end now
(scripts/ha_dev/history.py), add the NILM config entry (or reload it, so its warm start
reads that history), back-fill what NILM would have shown over those days, point the
Energy dashboard at the mains and the appliances; then replay House 20 live, continuing
the same timeline, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.ha_dev.client import HaApiError, HaClient, field_options
from scripts.ha_dev.hass import (
    BUNDLED_MODELS,
    PROJECT_ROOT,
    HassProcess,
    find_faketime,
    prepare_config,
)
from scripts.ha_dev.history import (
    DEFAULT_DAY,
    NilmEntities,
    Timeline,
    energy_until,
    mains_payload,
    nilm_backfill,
    write_payload,
)
from scripts.ha_dev.replay import (
    ENERGY_ATTRIBUTES,
    ENERGY_ENTITY,
    MAINS_ATTRIBUTES,
    MAINS_ENTITY,
    PERIOD_S,
    house20_samples,
    replay,
)

DEV_USER = "dev"
DEV_PASSWORD = "dev-password"
LOGIN_FILE = ".nilm_dev_login.json"
CLOCK_FILE = ".nilm_dev_clock"
FAST_START = "2014-04-01T05:00:00"
DEFAULT_HISTORY_DAYS = 3.0


async def add_nilm_entry(client: HaClient, appliances: list[str] | None) -> dict[str, Any]:
    """Add the integration through the config-flow REST API, like the UI dialog."""
    existing = await client.config_entries("nilm")
    if existing:
        return existing[0]
    form = await client.start_flow("nilm")
    if form.get("type") != "form":
        raise HaApiError(f"nilm config flow did not show a form: {form}")
    offered = field_options(form.get("data_schema", []), "appliances")
    chosen = appliances or offered
    if not chosen:
        raise HaApiError("no NILM models found (bundled or in <config>/nilm/models)")
    result = await client.flow_step(
        form["flow_id"],
        {"mains_entities": [MAINS_ENTITY], "appliances": chosen, "backend": "auto"},
    )
    if result.get("type") != "create_entry":
        raise HaApiError(f"nilm config flow did not create an entry: {result}")
    entry: dict[str, Any] = result["result"]
    return entry


def load_clock(config_dir: Path) -> datetime | None:
    """HA's clock when the last run stopped, if it ran ahead of the real one.

    An accelerated run leaves HA's clock (and the issue time of its tokens) in the
    future; starting the next run from there keeps tokens valid and time monotonic.
    """
    path = config_dir / CLOCK_FILE
    if not path.exists():
        return None
    try:
        last = datetime.fromisoformat(path.read_text().strip())
    except ValueError:
        return None
    if last <= datetime.now(UTC):
        return None
    if find_faketime() is None:
        print("note: HA's clock ran ahead last time; without libfaketime it restarts at now")
        return None
    return last + timedelta(seconds=5)


async def run(
    args: argparse.Namespace, config_dir: Path, models: list[str], start_at: datetime | None
) -> int:
    hass = HassProcess(config_dir, speed=args.speed, start_at=start_at)
    clock_path = config_dir / CLOCK_FILE
    seen = [0]

    def remember_clock(_sample: Any, state: dict[str, Any]) -> None:
        seen[0] += 1
        if seen[0] % 20 == 0 and (when := state.get("last_reported")):
            clock_path.write_text(str(when))

    url = f"http://127.0.0.1:{args.port}"
    login_path = config_dir / LOGIN_FILE
    since = f", continuing from {start_at:%Y-%m-%d %H:%M:%S} UTC" if start_at else ""
    print(f">> starting Home Assistant in {config_dir} (clock x{args.speed:g}{since}) ...")
    hass.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with HaClient(url) as client:
            await client.wait_until_up(180, hass.alive)
            if login_path.exists():
                login = json.loads(login_path.read_text())
                client.token = login["token"]
                if not await client.token_works():
                    login["token"] = await client.login(login["username"], login["password"])
                    login_path.write_text(json.dumps(login))
            else:
                made = await client.onboard("Developer", DEV_USER, DEV_PASSWORD)
                login = {"username": made.username, "password": made.password}
                login["token"] = made.token
                login_path.write_text(json.dumps(login))
                login_path.chmod(0o600)
            await client.wait_until_running(300)
            timeline = live_start = None
            energy_kwh: float | None = None
            span: tuple[datetime, datetime] | None = None
            if args.history_days > 0:
                timeline, span, energy_kwh = await import_mains_history(client, args, config_dir)
                live_start = span[1]
            data_start = timeline.to_data(live_start) if timeline and live_start else _start(args)
            # Create the mains sensor before the entry so the flow can validate it.
            first = next(house20_samples(data_start))
            await client.set_state(MAINS_ENTITY, f"{first.aggregate:.1f}", MAINS_ATTRIBUTES)
            if energy_kwh is not None:
                await client.set_state(ENERGY_ENTITY, f"{energy_kwh:.4f}", ENERGY_ATTRIBUTES)
            existing = await client.config_entries("nilm")
            entry: dict[str, Any] | None = None
            if existing and span is not None:
                entry = existing[0]
                await client.reload_entry(entry["entry_id"])  # warm start from the import
            elif args.add_entry or existing:
                entry = existing[0] if existing else await add_nilm_entry(client, args.appliances)
            if entry is not None:
                print(f">> NILM entry: {entry.get('title')} ({entry.get('entry_id')})")
            if entry is not None and timeline is not None and span is not None:
                await backfill_nilm(client, config_dir, timeline, span, entry["entry_id"])
            if timeline is not None:
                await configure_energy(client, entry["entry_id"] if entry else None)
            print()
            print("=" * 72)
            print(f"  Home Assistant:  {url}")
            print(f"  login:           {login['username']} / {login['password']}")
            print(f"  token:           {config_dir / LOGIN_FILE}")
            print(f"  mains sensor:    {MAINS_ENTITY} (REFIT House 20, x{args.speed:g})")
            if span is not None and timeline is not None:
                days = (span[1] - timeline.to_real(timeline.origin)).total_seconds() / 86400
                print(f"  history:         {days:.1f} days of House 20 in the recorder")
            print(f"  models found:    {', '.join(models) or 'none yet'}")
            if entry is None:
                print("  add NILM:        Settings > Devices & services > Add integration > NILM")
            print("  stop:            Ctrl-C")
            print("=" * 72, flush=True)
            samples = house20_samples(data_start)
            due = (live_start - datetime.now(UTC)).total_seconds() if live_start else 0.0
            await replay(
                client,
                samples,
                speed=args.speed,
                progress_every=120,
                stop=stop,
                on_posted=remember_clock,
                energy_kwh=energy_kwh,
                first_due_s=max(0.0, due),
            )
    except HaApiError as err:
        print(f"error: {err}\n(last lines of the HA log follow)", file=sys.stderr)
        print("\n".join(hass.log_text().splitlines()[-30:]), file=sys.stderr)
        return 1
    finally:
        print(">> stopping Home Assistant ...")
        with contextlib.suppress(Exception):
            hass.stop()
    return 0


def _start(args: argparse.Namespace) -> datetime:
    return datetime.fromisoformat(args.start or FAST_START).replace(tzinfo=UTC)


def _utc_iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def last_recorded(client: HaClient, entity_id: str, since: datetime) -> datetime | None:
    """When the recorder last recorded ``entity_id`` (after ``since``), if it did."""
    rows = await client.history(
        entity_id, _utc_iso(since), _utc_iso(datetime.now(UTC) + timedelta(minutes=1))
    )
    times = [
        datetime.fromisoformat(r.get("last_updated") or r["last_changed"])
        for r in rows
        if r.get("last_updated") or r.get("last_changed")
    ]
    newest = max(times, default=None)
    return newest if newest is not None and newest > since + timedelta(seconds=1) else None


async def import_mains_history(
    client: HaClient, args: argparse.Namespace, config_dir: Path
) -> tuple[Timeline, tuple[datetime, datetime], float]:
    """Import what the recorder lacks of the last ``--history-days``; returns the timeline,
    the imported real-time span (it ends where the live replay starts) and the mains
    energy counter there."""
    if not await client.has_service("nilm_demo", "import_history"):
        raise HaApiError("the nilm_demo helper is not loaded (configuration.yaml: nilm_demo:)")
    now = datetime.now(UTC)
    timeline = None if args.start else Timeline.load(config_dir)
    if timeline is None:
        start = datetime.fromisoformat(args.start).replace(tzinfo=UTC) if args.start else None
        timeline = Timeline.new(now, start, args.history_days)
        timeline.save(config_dir)
    # The live replay starts at the next sample of the timeline.
    data_now = timeline.to_data(now)
    grid = math.ceil(data_now.timestamp() / PERIOD_S) * PERIOD_S
    span_end = timeline.to_real(datetime.fromtimestamp(grid, UTC))
    since = span_end - timedelta(days=args.history_days)
    last = await last_recorded(client, MAINS_ENTITY, since)
    span_start = max(since, last + timedelta(seconds=PERIOD_S)) if last else since
    data_end = timeline.to_data(span_end)
    if span_end - span_start < timedelta(seconds=PERIOD_S):
        return timeline, (span_end, span_end), energy_until(timeline.origin, data_end)
    t0 = time.monotonic()
    payload, energy_kwh = mains_payload(timeline, span_start, span_end)
    path = write_payload(config_dir, payload)
    built = time.monotonic() - t0
    result = await client.call_service("nilm_demo", "import_history", {"path": str(path)})
    hours = (span_end - span_start).total_seconds() / 3600
    print(
        f">> imported {hours:.1f} h of House 20 (data {timeline.to_data(span_start):%Y-%m-%d %H:%M}"
        f" to {data_end:%Y-%m-%d %H:%M} UTC) into the recorder: {result} "
        f"(payload built in {built:.1f} s)"
    )
    return timeline, (span_start, span_end), energy_kwh


def _card_path(config_dir: Path, name: str) -> Path | None:
    for folder in (config_dir / "nilm" / "models", BUNDLED_MODELS):
        if (folder / f"{name}.json").is_file() and (folder / f"{name}.tflite").is_file():
            return folder / f"{name}.json"
    return None


async def nilm_entities(
    client: HaClient, config_dir: Path, entry_id: str, timeout_s: float = 120
) -> list[NilmEntities]:
    """The entry's appliances with their entity ids, once each has a state."""
    deadline = time.monotonic() + timeout_s
    while True:
        registry = [
            e for e in await client.entity_registry("nilm") if e["config_entry_id"] == entry_id
        ]
        states = await client.get_states()
        by_model: dict[str, dict[str, str]] = {}
        for e in registry:
            rest = e["unique_id"].removeprefix(f"{entry_id}_")
            for key in ("power", "energy", "running"):
                if rest.endswith(f"_{key}"):
                    by_model.setdefault(rest.removesuffix(f"_{key}"), {})[key] = e["entity_id"]
        found = []
        for model, ids in sorted(by_model.items()):
            card = _card_path(config_dir, model)
            if card is None or "power" not in ids:
                continue
            attrs = {
                key: {
                    k: v
                    for k, v in (states.get(ids.get(key, ""), {}).get("attributes") or {}).items()
                    if k
                    in (
                        "unit_of_measurement",
                        "device_class",
                        "state_class",
                        "friendly_name",
                        "icon",
                    )
                }
                for key in ("power", "running")
            }
            found.append(
                NilmEntities(
                    model,
                    card,
                    ids.get("power"),
                    ids.get("energy"),
                    ids.get("running"),
                    attrs["power"],
                    attrs["running"],
                )
            )
        ready = found and all(
            f.power in states and states[f.power]["attributes"].get("unit_of_measurement")
            for f in found
        )
        if ready or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1.0)


async def backfill_nilm(
    client: HaClient,
    config_dir: Path,
    timeline: Timeline,
    span: tuple[datetime, datetime],
    entry_id: str,
) -> None:
    """Record over ``span`` what the entry's appliances would have shown (history.py)."""
    if span[1] - span[0] < timedelta(seconds=PERIOD_S):
        return
    appliances = await nilm_entities(client, config_dir, entry_id)
    if not appliances:
        print(">> NILM back-fill skipped: no appliance entities found")
        return
    t0 = time.monotonic()
    payload = await asyncio.to_thread(nilm_backfill, timeline, span[0], span[1], appliances)
    path = write_payload(config_dir, payload, ".nilm_dev_backfill.json")
    built = time.monotonic() - t0
    result = await client.call_service("nilm_demo", "import_history", {"path": str(path)})
    names = ", ".join(a.model for a in appliances)
    print(f">> back-filled NILM ({names}) over the same span: {result} (computed in {built:.1f} s)")


async def configure_energy(client: HaClient, entry_id: str | None) -> None:
    """Energy dashboard: grid consumption from the mains counter, NILM's appliances as
    individual devices (only when the dashboard is not configured yet)."""
    try:
        prefs = await client.energy_prefs()
    except HaApiError:  # not configured yet
        prefs = {}
    if prefs.get("energy_sources") or prefs.get("device_consumption"):
        return
    devices = []
    if entry_id is not None:
        registry = await client.entity_registry("nilm")
        devices = [
            {"stat_consumption": e["entity_id"]}
            for e in registry
            if e["config_entry_id"] == entry_id and e["unique_id"].endswith("_energy")
        ]
    grid = {
        "type": "grid",
        "flow_from": [
            {
                "stat_energy_from": ENERGY_ENTITY,
                "stat_cost": None,
                "entity_energy_price": None,
                "number_energy_price": None,
            }
        ],
        "flow_to": [],
        "cost_adjustment_day": 0,
    }
    await client.save_energy_prefs({"energy_sources": [grid], "device_consumption": devices})
    print(f">> Energy dashboard: grid = {ENERGY_ENTITY}, {len(devices)} NILM devices")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/develop", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(PROJECT_ROOT / "config"), help="config folder")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="replay and HA clock speed-up (e.g. 60); >1 needs Debian's faketime package",
    )
    parser.add_argument(
        "--start",
        default=None,
        help="data time (UTC) the live replay starts at; at 1x with history it is 'now' of "
        f"a new timeline (default: at 1x, {DEFAULT_DAY:%Y-%m-%d} at the current time of day,"
        f" kept across restarts; with --speed > 1: {FAST_START}, a kettle boils at 06:04)",
    )
    parser.add_argument(
        "--history-days",
        type=float,
        default=None,
        help="days of House 20 before 'now' imported into the recorder at start (default: "
        f"{DEFAULT_HISTORY_DAYS:g} at 1x, 0 with --speed > 1)",
    )
    parser.add_argument(
        "--add-entry",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the NILM config entry automatically (default: yes when history is "
        "imported, so it warm-starts from it and is back-filled)",
    )
    parser.add_argument(
        "--appliance",
        dest="appliances",
        action="append",
        help="model name to track (repeatable; default: all offered by the config flow)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.speed <= 600:
        parser.error("--speed must be between 1 and 600")
    if args.history_days is None:
        args.history_days = DEFAULT_HISTORY_DAYS if args.speed == 1 else 0.0
    if args.history_days and args.speed != 1:
        parser.error("--history-days needs --speed 1 (the timeline maps data to the real clock)")
    if not 0 <= args.history_days <= 10:
        parser.error("--history-days must be between 0 and 10 (the recorder keeps 10 days)")
    if args.add_entry is None:
        args.add_entry = args.history_days > 0
    return args


def port_in_use(port: int) -> bool:
    """Something already listens there (another HA?): we would talk to it instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    args = parse_args()
    if port_in_use(args.port):
        print(f"error: 127.0.0.1:{args.port} is in use; pick another with --port", file=sys.stderr)
        return 1
    config_dir = Path(args.config).resolve()
    models = prepare_config(config_dir, args.port)
    return asyncio.run(run(args, config_dir, models, load_clock(config_dir)))


if __name__ == "__main__":
    sys.exit(main())
