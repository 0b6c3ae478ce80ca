"""Prepare a Home Assistant config folder and run a real ``hass`` process in it.

Speed-up: HA stamps states and runs its timers with its own clock, so replaying data
N times faster only makes sense if HA's clock runs N times faster too. We preload
Debian's libfaketime (package ``faketime``) with ``FAKETIME="+0 xN"``: wall clock *and*
monotonic clock start at the real "now" and advance N times faster, so state timestamps,
asyncio timers, energy integration and midnight resets all agree with each other. At 1x
nothing is preloaded. Side effect worth knowing: HA's own timeouts shrink by the same
factor, so keep N modest (<= ~300) and let start-up finish before relying on timers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).with_name("configuration.yaml")
INTEGRATION = PROJECT_ROOT / "custom_components" / "nilm"
BUNDLED_MODELS = INTEGRATION / "models"
# Development-only helper integration: imports past history into the recorder.
DEMO_INTEGRATION = Path(__file__).with_name("nilm_demo")
FIXTURE_MODELS = PROJECT_ROOT / "tests" / "components" / "nilm" / "fixtures" / "models"
APPLIANCES = ("kettle", "microwave", "dishwasher", "washing_machine", "fridge")
FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_faketime() -> str | None:
    """Path of libfaketime (multi-thread variant: HA runs executor and recorder threads)."""
    for candidate in FAKETIME_LIBS:
        if Path(candidate).is_file():
            return candidate
    return None


def model_names(folder: Path) -> list[str]:
    """Model card names (``<name>.json`` next to ``<name>.tflite``) in a folder."""
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.with_suffix(".tflite").is_file())


def fixture_model_names() -> list[str]:
    """The integration tests' working appliance models (``test_<appliance>``).

    That folder also holds deliberately broken models for error-path tests; skip those.
    """
    return [n for n in model_names(FIXTURE_MODELS) if n.removeprefix("test_") in APPLIANCES]


def model_timing(config_dir: Path, names: list[str]) -> tuple[float, float]:
    """(longest input window, longest output delay) in seconds over the given models.

    Replays must start at least one window before the events they want detected.
    """
    window_s = delay_s = 0.0
    for name in names:
        for folder in (config_dir / "nilm" / "models", BUNDLED_MODELS):
            card_path = folder / f"{name}.json"
            if card_path.is_file():
                card = json.loads(card_path.read_text())
                period = float(card["sample_period_s"])
                length = int(card["window_length"])
                window_s = max(window_s, length * period)
                delay_s = max(delay_s, (length - 1 - int(card["target_index"])) * period)
                break
    return window_s, delay_s


def prepare_config(config_dir: Path, port: int, *, overwrite: bool = False) -> list[str]:
    """Write configuration.yaml, link the integration in, provide models.

    Returns the model names HA will find. Bundled models win; until the integration
    ships some, the integration tests' small real-data models are copied in as user
    models (``<config>/nilm/models``).
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    conf = config_dir / "configuration.yaml"
    if overwrite or not conf.exists():
        conf.write_text(TEMPLATE.read_text().replace("@PORT@", str(port)))
    else:
        text = conf.read_text()
        for line in text.splitlines():
            if line.strip().startswith("server_port:"):
                text = text.replace(line, f"  server_port: {port}")
                break
        if not any(line.startswith("nilm_demo:") for line in text.splitlines()):
            text += "\n# Development only: scripts/develop's history import.\nnilm_demo:\n"
        conf.write_text(text)
    mark_core_config_onboarded(config_dir)
    components = config_dir / "custom_components"
    components.mkdir(exist_ok=True)
    for name, source in (("nilm", INTEGRATION), ("nilm_demo", DEMO_INTEGRATION)):
        link = components / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and link.resolve() == source.resolve():
                pass
            elif link.is_symlink():
                link.unlink()
            else:
                raise RuntimeError(f"{link} exists and is not our symlink; remove it first")
        if not link.exists():
            link.symlink_to(source.resolve(), target_is_directory=True)
    bundled = model_names(BUNDLED_MODELS)
    if bundled:
        return bundled
    user_models = config_dir / "nilm" / "models"
    fixtures = fixture_model_names()
    if fixtures:
        user_models.mkdir(parents=True, exist_ok=True)
        for name in fixtures:
            for suffix in (".json", ".tflite"):
                shutil.copy2(FIXTURE_MODELS / f"{name}{suffix}", user_models / f"{name}{suffix}")
    return model_names(user_models)


def mark_core_config_onboarded(config_dir: Path) -> None:
    """On a new config folder, mark onboarding's "core config" step as done.

    configuration.yaml already holds what that step asks for (location, units, currency),
    and finishing it through the API starts flows for Met.no, Radio Browser and Google
    Translate: packages HA would pip-install (we run it with --skip-pip, offline-friendly)
    and network access, so each fails with an import error in the log. The other steps
    (user, analytics, integration) still go through HA's onboarding API, as in the UI.
    The file is written in HA's own storage format, before HA's first start only.
    """
    from homeassistant.components.onboarding import STORAGE_KEY, STORAGE_VERSION
    from homeassistant.components.onboarding.const import STEP_CORE_CONFIG

    storage = config_dir / ".storage"
    if (storage / STORAGE_KEY).exists() or (storage / "auth").exists():
        return  # HA has run here: its onboarding state is its own
    storage.mkdir(parents=True, exist_ok=True)
    data = {
        "version": STORAGE_VERSION,
        "minor_version": 1,
        "key": STORAGE_KEY,
        "data": {"done": [STEP_CORE_CONFIG]},
    }
    (storage / STORAGE_KEY).write_text(json.dumps(data, indent=4))


class HassProcess:
    """A ``hass -c <config>`` child process, optionally on an accelerated clock."""

    def __init__(
        self,
        config_dir: Path,
        *,
        speed: float = 1.0,
        start_at: datetime | None = None,
        log_path: Path | None = None,
    ) -> None:
        """``start_at`` (UTC) starts HA's clock there, e.g. to continue an accelerated run.

        Tokens carry HA's issue time; one issued on a clock that ran ahead is "not yet
        valid" for a HA whose clock restarts from the real now.
        """
        self.config_dir = config_dir
        self.speed = speed
        self.start_at = start_at
        self.log_path = log_path or config_dir / "hass.stdout.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.speed != 1.0 or self.start_at is not None:
            lib = find_faketime()
            if lib is None:
                raise RuntimeError(
                    "a speed-up needs libfaketime: install Debian's 'faketime' package "
                    "(apt-get install faketime) or run with --speed 1"
                )
            env["LD_PRELOAD"] = lib
            if self.start_at is not None:
                env["TZ"] = "UTC"  # libfaketime reads "@..." in local time
                start = self.start_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
                env["FAKETIME"] = f"@{start} x{self.speed:g}"
            else:
                env["FAKETIME"] = f"+0 x{self.speed:g}"
            env["FAKETIME_DONT_RESET"] = "1"
            env.pop("DONT_FAKE_MONOTONIC", None)
        return env

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "homeassistant",
            "--config",
            str(self.config_dir),
            "--skip-pip",
            "--log-no-color",
        ]
        log = self.log_path.open("ab")
        try:
            # In the config folder: ``python -m`` puts the working directory first on
            # sys.path, and from the project root ``custom_components`` would be the
            # project's own folder instead of the config's (which also links nilm_demo).
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.config_dir,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (HA saves restore state and stops cleanly), then SIGKILL if needed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_text(self) -> str:
        """HA's own log file (home-assistant.log), falling back to captured stdout."""
        ha_log = self.config_dir / "home-assistant.log"
        path = ha_log if ha_log.exists() else self.log_path
        return path.read_text(errors="replace") if path.exists() else ""
