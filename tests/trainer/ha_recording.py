"""A real Home Assistant's REST history answers, served again over HTTP for the tests.

``tests/trainer/fixtures/ha_history_house20.json.gz`` holds every request that
``trainer.history_api`` sent to a real ``hass`` and that HA's answer, recorded by
``python -m scripts.ha_dev.record_history`` (REFIT House 20, 2014-04-01 .. 04-12: the
mains and the microwave sub-meter as a smart plug). :class:`RecordedHomeAssistant` answers
those requests byte for byte and anything else with HA's own 404, so the REST path runs
against real answers without a running HA (and a changed request shows up as a miss).
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

RECORDING = Path(__file__).resolve().parent / "fixtures" / "ha_history_house20.json.gz"
TOKEN = "a-long-lived-token"


@dataclass(frozen=True)
class Recording:
    home_assistant: str
    mains_entity: str
    plug_entity: str
    start: datetime
    end: datetime
    answers: dict[str, Any]  # request target (path?query) -> decoded JSON answer


def load_recording(path: Path = RECORDING) -> Recording:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        raw = json.load(f)
    return Recording(
        home_assistant=raw["home_assistant"],
        mains_entity=raw["mains_entity"],
        plug_entity=raw["plug_entity"],
        start=datetime.fromisoformat(raw["start"]),
        end=datetime.fromisoformat(raw["end"]),
        answers={r["target"]: r["answer"] for r in raw["requests"]},
    )


class RecordedHomeAssistant:
    """``with RecordedHomeAssistant(recording) as ha:`` serves it on ``ha.url``; requests
    it has no answer for are kept in ``ha.misses``."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.misses: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"message": "Invalid authentication"})
                    return
                answer = owner.recording.answers.get(self.path)
                if answer is None:
                    owner.misses.append(self.path)
                    self._send(404, {"message": "Entity not found."})
                    return
                self._send(200, answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> RecordedHomeAssistant:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
