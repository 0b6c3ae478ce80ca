"""Bring up a real Home Assistant with the NILM integration and a replayed mains sensor.

Called by ``scripts/develop``. Steps: prepare the config folder (integration symlinked
in), start ``hass`` (clock accelerated with libfaketime when --speed > 1), onboard it
through the HTTP API on the first run, create a long-lived token, optionally add the
NILM config entry, then replay REFIT House 20 until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.ha_dev.client import HaApiError, HaClient, field_options
from scripts.ha_dev.hass import PROJECT_ROOT, HassProcess, find_faketime, prepare_config
from scripts.ha_dev.replay import MAINS_ATTRIBUTES, MAINS_ENTITY, house20_samples, replay

DEV_USER = "dev"
DEV_PASSWORD = "dev-password"
LOGIN_FILE = ".nilm_dev_login.json"
CLOCK_FILE = ".nilm_dev_clock"


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
            # Create the mains sensor before the entry so the flow can validate it.
            first = next(house20_samples(_start(args)))
            await client.set_state(MAINS_ENTITY, f"{first.aggregate:.1f}", MAINS_ATTRIBUTES)
            existing = await client.config_entries("nilm")
            if args.add_entry or existing:
                entry = existing[0] if existing else await add_nilm_entry(client, args.appliances)
                print(f">> NILM entry: {entry.get('title')} ({entry.get('entry_id')})")
            print()
            print("=" * 72)
            print(f"  Home Assistant:  {url}")
            print(f"  login:           {login['username']} / {login['password']}")
            print(f"  token:           {config_dir / LOGIN_FILE}")
            print(f"  mains sensor:    {MAINS_ENTITY} (REFIT House 20, x{args.speed:g})")
            print(f"  models found:    {', '.join(models) or 'none yet'}")
            if not existing and not args.add_entry:
                print("  add NILM:        Settings > Devices & services > Add integration > NILM")
            print("  stop:            Ctrl-C")
            print("=" * 72, flush=True)
            samples = house20_samples(_start(args))
            await replay(
                client,
                samples,
                speed=args.speed,
                progress_every=120,
                stop=stop,
                on_posted=remember_clock,
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
    return datetime.fromisoformat(args.start).replace(tzinfo=UTC)


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
        "--start", default="2014-04-01T05:00:00", help="data start (UTC; a kettle boils at 06:04)"
    )
    parser.add_argument(
        "--add-entry", action="store_true", help="add the NILM config entry automatically"
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
