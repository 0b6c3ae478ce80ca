"""Home Assistant's REST history API -> :class:`HouseData`, with the standard library only.

``GET {url}/api/history/period/{start}?filter_entity_id=a,b&end_time=...&minimal_response
&no_attributes`` with ``Authorization: Bearer <token>`` (a long-lived access token from
the user's HA profile), one UTC day per request so memory stays bounded by the states of
one day; 5xx answers and timeouts are retried a few times with a growing pause. The unit
of each power entity comes from ``GET {url}/api/states/<entity_id>`` (``no_attributes``
leaves it out of the history), which also tells a wrong entity id (404) apart from an
entity without history.

States become the recorder import's :class:`~trainer.recorder.EntitySeries` with the same
rules (``unavailable``/``unknown`` missing, on/off entities as 1/0 status columns, W or
kW) and go onto the grid with the recorder's own :func:`~trainer.recorder.grid_house`
(the integration's resampler: zero-order hold, time-weighted bin means). The history
names no re-reports, so each state counts as alive until the next one.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from .data import DataConfig, HouseData, check_appliance, check_units
from .errors import TrainerError
from .recorder import _MISSING, _OFF, _ON, DEFAULT_PERIOD_S, EntitySeries, grid_house
from .recorder import _unit_factor as unit_factor

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 1.0
DAY = timedelta(days=1)
PAGE_OVERLAP = timedelta(milliseconds=1)


def parse_time(text: str) -> datetime:
    """``2024-05-01`` or an ISO timestamp; naive means UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise TrainerError(f"not a date or ISO timestamp: {text!r}") from err
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class HistoryClient:
    """GET requests against one Home Assistant instance, with retries on 5xx/timeouts."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise TrainerError(f"--url must start with http:// or https://, got {url!r}")
        if not token:
            raise TrainerError("no access token: pass --token or set $HA_TOKEN")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.sleep = sleep

    @staticmethod
    def request_target(path: str, query: Mapping[str, str | None] | None = None) -> str:
        """``{path}?{query}`` as sent (None values: bare flags)."""
        if not query:
            return path
        parts = [
            k if v is None else f"{k}={urllib.parse.quote(v, safe=',:')}" for k, v in query.items()
        ]
        return path + "?" + "&".join(parts)

    def get(self, path: str, query: Mapping[str, str | None] | None = None) -> Any:
        """The decoded JSON of ``GET {url}{path}?{query}`` (None values: bare flags)."""
        target = self.url + self.request_target(path, query)
        request = urllib.request.Request(
            target,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body = response.read()
            except urllib.error.HTTPError as err:
                if err.code == 401:
                    raise TrainerError(
                        f"{self.url} refused the access token (401 Unauthorized): it is "
                        "expired or wrong; create a long-lived access token in your Home "
                        "Assistant profile"
                    ) from None
                if err.code == 404:
                    raise TrainerError(f"{self.url}{path}: not found (404)") from None
                if err.code >= 500:
                    last = f"HTTP {err.code}"
                    continue
                raise TrainerError(f"{target}: HTTP {err.code} {err.reason}") from None
            except TimeoutError:
                last = f"no answer within {self.timeout_s:g} s"
                continue
            except urllib.error.URLError as err:
                if isinstance(err.reason, TimeoutError):
                    last = f"no answer within {self.timeout_s:g} s"
                    continue
                raise TrainerError(f"cannot reach {self.url}: {err.reason}") from None
            except (ConnectionError, OSError) as err:
                last = str(err) or type(err).__name__
                continue
            try:
                return json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise TrainerError(
                    f"{target}: the answer is not JSON (is {self.url} Home Assistant?)"
                ) from None
        raise TrainerError(f"{self.url}{path}: {last} after {self.retries + 1} tries")


def _values(states: Sequence[str]) -> tuple[np.ndarray, bool]:
    lowered = [s.strip().lower() for s in states]
    present = [s for s in lowered if s not in _MISSING]
    binary = bool(present) and all(s in _ON or s in _OFF for s in present)
    if binary:
        values = [1.0 if s in _ON else 0.0 if s in _OFF else np.nan for s in lowered]
        return np.array(values, dtype=np.float64), True
    out = np.full(len(states), np.nan)
    for i, s in enumerate(states):
        with contextlib.suppress(ValueError):
            out[i] = float(s)
    return out, False


def entity_unit(client: HistoryClient, entity_id: str) -> str | None:
    """``unit_of_measurement`` of the entity's current state; TrainerError on 404."""
    try:
        state = client.get(f"/api/states/{urllib.parse.quote(entity_id)}")
    except TrainerError as err:
        if "(404)" in str(err):
            raise TrainerError(
                f"{client.url} has no entity {entity_id} (404): check the entity id"
            ) from None
        raise
    attrs = state.get("attributes") if isinstance(state, dict) else None
    unit = attrs.get("unit_of_measurement") if isinstance(attrs, dict) else None
    return unit if isinstance(unit, str) else None


def fetch_states(
    client: HistoryClient, entity_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per entity: unix times and raw states, one day per request, in time order."""
    if not end > start:
        raise TrainerError(f"the end {end.isoformat()} is not after the start")
    times: dict[str, list[np.ndarray]] = {e: [] for e in entity_ids}
    states: dict[str, list[str]] = {e: [] for e in entity_ids}
    day = start
    while day < end:
        stop = min(day + DAY, end)
        # HA keeps rows with start < time < end (and the state in force before start):
        # a state stamped exactly on a page boundary would be in neither page, so each
        # page starts a millisecond early (the grid starts at ``start`` all the same).
        since = day - PAGE_OVERLAP
        answer = client.get(
            f"/api/history/period/{urllib.parse.quote(since.isoformat())}",
            {
                "filter_entity_id": ",".join(entity_ids),
                "end_time": stop.isoformat(),
                "minimal_response": None,
                "no_attributes": None,
            },
        )
        if not isinstance(answer, list):
            raise TrainerError(f"{client.url}: unexpected history answer (not a list)")
        for rows in answer:
            if not isinstance(rows, list) or not rows:
                continue
            entity = rows[0].get("entity_id") if isinstance(rows[0], dict) else None
            if entity not in times:
                continue
            stamps, values = [], []
            for row in rows:
                when = row.get("last_changed") or row.get("last_updated")
                if not isinstance(when, str):
                    continue
                stamps.append(parse_time(when).timestamp())
                values.append(str(row.get("state", "")))
            times[entity].append(np.array(stamps, dtype=np.float64))
            states[entity].extend(values)
        day = stop
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    for entity in entity_ids:
        t = np.concatenate(times[entity]) if times[entity] else np.zeros(0)
        if t.size == 0:
            raise TrainerError(
                f"{client.url} returned no history for {entity} between {start:%Y-%m-%d} "
                f"and {end:%Y-%m-%d}: check the entity id and the recorder's settings"
            )
        order = np.argsort(t, kind="stable")
        t = t[order]
        s = [states[entity][i] for i in order]
        # A page repeats the state in force at its start: drop repeats of a time.
        keep = np.ones(t.size, dtype=bool)
        keep[1:] = t[1:] > t[:-1]
        out[entity] = (t[keep], [x for x, k in zip(s, keep, strict=True) if k])
    return out


def load_history(
    client: HistoryClient,
    mains_entity: str,
    appliance_entities: Mapping[str, str],
    *,
    start: datetime,
    end: datetime,
    config: DataConfig | None = None,
) -> HouseData:
    """The mains and each appliance entity from the REST history, on the recorder
    import's grid (``config.period_s``, default 30 s)."""
    config = config or DataConfig()
    for name in appliance_entities:
        check_appliance(name)
    entities = [mains_entity, *appliance_entities.values()]
    units = {e: entity_unit(client, e) for e in entities}
    raw = fetch_states(client, entities, start, end)
    series: dict[str, EntitySeries] = {}
    for entity in entities:
        t, s = raw[entity]
        values, binary = _values(s)
        if not binary:
            values = values * unit_factor(units[entity], entity)
        # The history names no re-reports: a state is taken as alive until the next one
        # (the last until the end asked for), so only "unavailable" makes a gap.
        alive = np.append(t[1:], max(end.timestamp(), float(t[-1])))
        unit = None if binary else units[entity]
        series[entity] = EntitySeries(entity, t, values, binary, unit, alive)
    mains = series[mains_entity]
    if mains.binary:
        raise TrainerError(f"{mains_entity} is an on/off entity, not a power sensor")
    if np.isfinite(mains.values).sum() < 2:
        raise TrainerError(f"{mains_entity}: fewer than two numeric states in the period")
    check_units(
        mains.values, "W", f"{mains_entity} ({units[mains_entity] or 'no unit'})", hint=False
    )
    period = float(config.period_s or DEFAULT_PERIOD_S)
    t0 = np.floor(max(mains.times_s[0], start.timestamp()) / period) * period
    n_bins = int(np.floor((end.timestamp() - t0) / period))
    if n_bins < 1:
        raise TrainerError(f"{mains_entity}: less than one {period:g} s period of data")
    apps = {name: series[entity] for name, entity in appliance_entities.items()}
    source = f"HA history {urllib.parse.urlsplit(client.url).netloc}"
    return grid_house(
        mains, apps, t0=t0, n_bins=n_bins, period=period, source=source, config=config
    )
