"""The recorder's recent mains history, for the warm start.

Reading runs in the recorder's executor; the points come back as one time-ordered stream
(a generator: a 10 Hz meter leaves 36,000 states per hour) for the coordinator to replay
in the executor.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from homeassistant.core import HomeAssistant, State

from .engine.resample import keepalive_times


def recorder_loaded(hass: HomeAssistant) -> bool:
    return "recorder" in hass.config.components


async def async_read_history(
    hass: HomeAssistant, start: datetime, end: datetime, entity_ids: Sequence[str]
) -> dict[str, list[State]]:
    """Every recorded state of ``entity_ids`` from ``start`` to ``end`` (the state at
    ``start`` included), read in the recorder's executor."""
    # Imported here: the recorder is optional and heavy to import.
    from homeassistant.components.recorder import history  # noqa: PLC0415
    from homeassistant.helpers.recorder import get_instance  # noqa: PLC0415

    return await get_instance(hass).async_add_executor_job(
        _read_history, hass, history, start, end, list(entity_ids)
    )


def _read_history(
    hass: HomeAssistant, history: Any, start: datetime, end: datetime, entity_ids: list[str]
) -> dict[str, list[State]]:
    """Recorder executor side. ``state_changes_during_period`` (unlike significant states)
    returns each row's ``last_reported``, which proves a constant value stayed alive."""
    out: dict[str, list[State]] = {}
    for entity_id in entity_ids:
        out.update(
            history.state_changes_during_period(
                hass, start, end, entity_id, no_attributes=False, include_start_time_state=True
            )
        )
    return out


def _entity_points(
    entity_id: str, states: list[State], max_gap_s: float, start_ts: float, end_ts: float
) -> Iterator[tuple[float, str, State]]:
    """One sensor's rows as points: each row at its start, again every ``max_gap_s / 2``
    while it was re-reported (so a constant value is no gap), and at its last report."""
    for state in states:
        first = max(state.last_updated_timestamp, start_ts)
        last = min(state.last_reported_timestamp, end_ts)
        for ts in keepalive_times(first, last, max_gap_s):
            yield ts, entity_id, state


def merged_history_points(
    raw: dict[str, list[State]], max_gap_s: float, start_ts: float, end_ts: float
) -> Iterator[tuple[float, str, State]]:
    """The points of every sensor in time order (each sensor's rows are in order)."""
    streams = [
        _entity_points(entity_id, states, max_gap_s, start_ts, end_ts)
        for entity_id, states in raw.items()
    ]
    return heapq.merge(*streams, key=lambda point: point[0])
