"""The REST history client against a local ``http.server`` that answers like Home
Assistant: recorded-style JSON (first state per entity at the page start, then minimal
rows), 401 for a wrong token, 404 for an unknown entity, a 500 that a retry gets past,
an empty answer, a timeout and a non-JSON page; then against a real Home Assistant's
recorded answers (``tests/trainer/ha_recording.py``), which must give REFIT House 20
back on the grid."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest

from tests.trainer.ha_recording import TOKEN as RECORDED_TOKEN
from tests.trainer.ha_recording import RecordedHomeAssistant, load_recording
from trainer.cli import main
from trainer.data import DataConfig, load_refit_30s
from trainer.errors import TrainerError
from trainer.history_api import HistoryClient, entity_unit, load_history

TOKEN = "good-token"
START = datetime(2024, 5, 1, tzinfo=UTC)
END = START + timedelta(days=2)
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
UNITS = {"sensor.mains": "W", "sensor.kettle_plug": "kW", "binary_sensor.kettle_on": None}


def _iso(t: datetime) -> str:
    return t.isoformat()


def _states(entity: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The state in force at the page start, then a new mains value every 30 s (offset
    by 15 s: every grid bin sees a change, as a live mains does); the kettle runs
    08:00-08:05 each day, its plug reporting each change only."""
    rows: list[dict[str, Any]] = []
    t = start
    i = 0
    last = None
    while t < end:
        kettle = t.hour == 8 and t.minute < 5
        if entity == "sensor.mains":
            state = str(300 + (i % 7) * 10 + (2000 if kettle else 0))
        elif entity == "sensor.kettle_plug":
            state = "2.0" if kettle else "0.0"
        else:
            state = "on" if kettle else "off"
        if state != last:
            row: dict[str, Any] = {"state": state, "last_changed": _iso(t)}
            if not rows:
                row["entity_id"] = entity
            rows.append(row)
            last = state
        t = start + timedelta(seconds=15 + 30 * i)
        i += 1
    if entity == "sensor.mains" and rows:
        rows.insert(1, {"state": "unavailable", "last_changed": _iso(start + timedelta(seconds=1))})
        rows.insert(2, {"state": "310", "last_changed": _iso(start + timedelta(seconds=2))})
    return rows


class Server:
    def __init__(self) -> None:
        self.mode = "ok"
        self.history_calls = 0
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any, kind: str = "application/json") -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                owner.paths.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"message": "Invalid authentication"})
                    return
                url = urlsplit(self.path)
                if url.path.startswith("/api/states/"):
                    entity = unquote(url.path.removeprefix("/api/states/"))
                    if entity not in UNITS:
                        self._send(404, {"message": "Entity not found."})
                        return
                    attrs = {"unit_of_measurement": UNITS[entity]} if UNITS[entity] else {}
                    self._send(200, {"entity_id": entity, "state": "0", "attributes": attrs})
                    return
                if not url.path.startswith("/api/history/period/"):
                    self._send(404, {"message": "not found"})
                    return
                owner.history_calls += 1
                if owner.mode == "timeout":
                    time.sleep(1.0)
                if owner.mode == "500-once" and owner.history_calls == 1:
                    self._send(500, {"message": "boom"})
                    return
                if owner.mode == "html":
                    self._send(200, "<html>login</html>", "text/html")
                    return
                if owner.mode == "empty":
                    self._send(200, [])
                    return
                query = parse_qs(url.query, keep_blank_values=True)
                assert "minimal_response" in query and "no_attributes" in query
                asked = datetime.fromisoformat(unquote(url.path.rsplit("/", 1)[1]))
                # The client starts each page a millisecond before the day: the fake
                # house's states stay on whole seconds from the day's start.
                start = datetime.fromtimestamp(math.ceil(asked.timestamp()), UTC)
                end = datetime.fromisoformat(query["end_time"][0])
                assert end - start <= timedelta(days=1, milliseconds=1), "a day per request"
                ids = query["filter_entity_id"][0].split(",")
                self._send(200, [_states(e, start, end) for e in ids])

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the timed-out client hung up: nothing to report

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def _client(server: Server, token: str = TOKEN, **kwargs: Any) -> HistoryClient:
    kwargs.setdefault("sleep", lambda _s: None)
    return HistoryClient(server.url, token, **kwargs)


def _load(client: HistoryClient, entity: str = "sensor.kettle_plug") -> Any:
    return load_history(
        client, "sensor.mains", {"kettle": entity}, start=START, end=END,
        config=DataConfig(period_s=30.0),
    )  # fmt: skip


def test_two_days_become_the_recorder_grid(server: Server) -> None:
    house = _load(_client(server))
    assert server.history_calls == 2  # paged: one request per day
    frame = house.frame
    assert len(frame) == 2 * 24 * 120 and house.period_s == 30.0
    assert str(frame.index[0]) == "2024-05-01 00:00:00+00:00"
    run = frame.loc["2024-05-01 08:00:30":"2024-05-01 08:04:30"]
    assert np.allclose(run["kettle"], 2000.0)  # kW -> W
    assert (run["aggregate"] > 2000).all()
    assert frame.loc["2024-05-02 09:00":"2024-05-02 10:00", "kettle"].max() == 0.0
    # One "unavailable" second is bridged, as the integration's resampler bridges it (an
    # outage longer than max_gap_s is a gap: tests/trainer/test_recorder.py).
    assert frame["aggregate"].iloc[0] == pytest.approx((300 + 300 + 28 * 310) / 30)
    assert "kettle" not in house.status_columns


def test_on_off_entity_is_a_status_column(server: Server) -> None:
    house = _load(_client(server), "binary_sensor.kettle_on")
    assert house.status_columns == frozenset({"kettle"})
    assert (house.frame.loc["2024-05-02 08:01", "kettle"] == 1.0).all()


def test_a_500_is_retried(server: Server) -> None:
    server.mode = "500-once"
    house = _load(_client(server, retries=2))
    assert server.history_calls == 3 and len(house.frame) == 5760


@pytest.mark.parametrize(
    ("mode", "token", "entity", "message"),
    [
        ("ok", "expired", "sensor.kettle_plug", "refused the access token \\(401"),
        ("ok", TOKEN, "sensor.kettle_typo", "no entity sensor.kettle_typo \\(404\\)"),
        ("empty", TOKEN, "sensor.kettle_plug", "no history for sensor.mains"),
        ("timeout", TOKEN, "sensor.kettle_plug", "no answer within 0.2 s after 2 tries"),
        ("html", TOKEN, "sensor.kettle_plug", "not JSON"),
    ],
)
def test_bad_answers_are_clear_errors(
    server: Server, mode: str, token: str, entity: str, message: str
) -> None:
    server.mode = mode
    with pytest.raises(TrainerError, match=message):
        _load(_client(server, token, timeout_s=0.2, retries=1), entity)


def test_cli_expired_token_is_one_line_exit_2(
    server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HA_TOKEN", "expired")
    rc = main(
        ["finetune", "kettle", "--source", "history", "--url", server.url,
         "--mains-entity", "sensor.mains", "--map", "kettle=sensor.kettle_plug",
         "--start", "2024-05-01", "--end", "2024-05-03"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "401" in err


@pytest.mark.skipif(not (DATA / "refit_30s").is_dir(), reason="no shared data")
def test_a_real_home_assistant_history_is_the_house_on_the_grid() -> None:
    """Eleven days of House 20 as a real HA recorded and served them (a row per change,
    pages by day, HA's own start-of-page state) come back as the REFIT file's samples:
    every 30 s bin, both sensors, to the 0.1 W a sensor state is written with. A state
    on a page boundary is not lost (HA keeps start < time < end in a page)."""
    recording = load_recording()
    with RecordedHomeAssistant(recording) as ha:
        house = load_history(
            HistoryClient(ha.url, RECORDED_TOKEN), recording.mains_entity,
            {"microwave": recording.plug_entity}, start=recording.start, end=recording.end,
            config=DataConfig(period_s=30.0),
        )  # fmt: skip
        assert ha.misses == []
    assert house.source.startswith("HA history 127.0.0.1")
    refit = load_refit_30s(DATA / "refit_30s", 20, ["2014-04"], DataConfig(period_s=30.0))
    truth = refit.frame.loc[recording.start : recording.end - timedelta(seconds=1)]
    assert house.frame.index.equals(truth.index) and len(truth) == 11 * 2880
    for column in ("aggregate", "microwave"):
        got, want = house.frame[column].to_numpy(), truth[column].to_numpy()
        assert np.isfinite(got).all() and np.isfinite(want).all()
        np.testing.assert_allclose(got, want, atol=0.0501, rtol=0, err_msg=column)
    # The microwave runs the household's plug recorded: its energy is the sub-meter's.
    kwh = float(house.frame["microwave"].sum()) * 30 / 3.6e6
    assert kwh == pytest.approx(float(truth["microwave"].sum()) * 30 / 3.6e6, rel=1e-4)


def test_a_recorded_home_assistant_refuses_a_wrong_token_and_entity() -> None:
    recording = load_recording()
    with RecordedHomeAssistant(recording) as ha:
        with pytest.raises(TrainerError, match="401"):
            entity_unit(HistoryClient(ha.url, "expired", sleep=lambda _s: None), "sensor.x")
        with pytest.raises(TrainerError, match=r"no entity sensor\.kettle_plug_power \(404\)"):
            entity_unit(HistoryClient(ha.url, RECORDED_TOKEN), "sensor.kettle_plug_power")
        assert entity_unit(HistoryClient(ha.url, RECORDED_TOKEN), recording.plug_entity) == "W"
