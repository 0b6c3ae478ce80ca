"""The coordinator: house consumption from grid, export and solar sensors; its status.

The solar tests replay real mains data (REFIT House 20, never used for training) as the
house consumption of a home with panels: a synthetic clear-sky PV curve with a cloudy
spell, so the grid sensors go negative (export) for most of the morning and positive
during the cloud and the kettle boils.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.nilm.const import DOMAIN
from custom_components.nilm.coordinator import MainsCombiner, parse_power_w

from .conftest import MAINS, W_ATTRS, Replayer, make_entry, setup_entry

WINDOW = 99
ROWS = slice(700, 1300)  # 2014-06-01 05:50-10:50 UTC: kettle boils at rows 815 and 1263
W = {"unit_of_measurement": "W", "device_class": "power"}


def _pv_w(rows: slice) -> np.ndarray:
    """A clear June day's PV (3.5 kWp, 04:00-20:00 UTC) with a 40-minute cloud."""
    hours = np.arange(rows.start, rows.stop) * 30.0 / 3600.0
    clear = np.clip(3500.0 * np.sin(np.pi * (hours - 4.0) / 16.0), 0.0, None)
    cloud = np.where((hours >= 8.0) & (hours < 8.67), 0.05, 1.0)
    return np.asarray(clear * cloud, dtype=np.float64)


def _entry(data: dict[str, object], unique_id: str) -> MockConfigEntry:
    # Literal keys: on code that does not know them, the entry still sets up (and
    # treats the grid sensor as consumption): the test then fails on its assertions.
    return MockConfigEntry(
        domain=DOMAIN,
        title="Grid",
        unique_id=unique_id,
        data={**data, "appliances": ["test_kettle"], "backend": "cpu"},
        version=1,
        minor_version=2,
    )


def _entity(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> str:
    domain = "binary_sensor" if key == "running" else "sensor"
    uid = f"{entry.entry_id}_test_kettle_{key}" if key != "untracked_power" else None
    entity_id = er.async_get(hass).async_get_entity_id(
        domain, DOMAIN, uid or f"{entry.entry_id}_untracked_power"
    )
    assert entity_id is not None
    return entity_id


def _value(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def test_solar_homes_match_the_consumption_sensor(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    """Three homes measured three ways, one house: a consumption sensor (an entry from
    before the mains type existed), two signed grid phases plus the inverter, and grid
    import/export sensors plus the inverter. All stay available through the export and
    agree on power, untracked power and energy."""
    await hass.config.async_set_time_zone("UTC")
    consumption = house20["Aggregate"][ROWS]
    pv = _pv_w(ROWS)
    net = consumption - pv  # the grid: negative while exporting
    assert (net < 0).mean() > 0.5, "the replay must export most of the time"
    assert (net > 0).sum() >= 60, "and import during the cloud"
    assert (net > 1000).sum() >= 4, "and during the boils"

    legacy = await setup_entry(hass, make_entry(["test_kettle"]))  # no mains_type: 1.1
    grid = await setup_entry(
        hass,
        _entry(
            {
                "mains_type": "grid",
                "mains_entities": ["sensor.grid_l1", "sensor.grid_l2"],
                "solar_entities": ["sensor.solar"],
            },
            "grid",
        ),
    )
    split = await setup_entry(
        hass,
        _entry(
            {
                "mains_type": "import_export",
                "mains_entities": ["sensor.grid_import"],
                "export_entities": ["sensor.grid_export"],
                "solar_entities": ["sensor.solar"],
            },
            "split",
        ),
    )
    entries = {"consumption": legacy, "grid": grid, "import_export": split}
    power = {k: _entity(hass, e, "power") for k, e in entries.items()}
    untracked = {k: _entity(hass, e, "untracked_power") for k, e in entries.items()}
    status = {
        k: er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{e.entry_id}_status")
        for k, e in entries.items()
    }

    peak = 0.0
    compared = 0
    for i, (house, solar, grid_w) in enumerate(zip(consumption, pv, net, strict=True)):
        replayer.freezer.move_to(replayer.now)
        # Solar on phase 1: that phase exports, phase 2 only imports.
        hass.states.async_set("sensor.grid_l1", f"{0.5 * house - solar:.1f}", W)
        hass.states.async_set("sensor.grid_l2", f"{0.5 * house:.1f}", W)
        hass.states.async_set("sensor.solar", f"{solar:.1f}", W)
        hass.states.async_set("sensor.grid_import", f"{max(grid_w, 0.0):.1f}", W)
        hass.states.async_set("sensor.grid_export", f"{max(-grid_w, 0.0):.1f}", W)
        await replayer.step(float(house))
        if i < WINDOW:
            continue
        for kind in entries:
            assert _value(hass, power[kind]) != STATE_UNAVAILABLE, (kind, i, grid_w)
            assert _value(hass, untracked[kind]) != STATE_UNAVAILABLE, (kind, i)
        for kind, entity_id in status.items():
            assert entity_id is not None
            assert _value(hass, entity_id) == "running", (kind, i)
        reference = float(_value(hass, power["consumption"]))
        for kind in ("grid", "import_export"):
            assert float(_value(hass, power[kind])) == pytest.approx(
                reference, abs=max(25.0, 0.03 * reference)
            ), (kind, i)
            assert float(_value(hass, untracked[kind])) == pytest.approx(
                float(_value(hass, untracked["consumption"])), abs=30.0
            ), (kind, i)
        peak = max(peak, reference)
        compared += 1
    assert compared > 400
    assert peak > 1000  # the boils were seen, so the comparison covered a real load

    energy = {k: float(_value(hass, _entity(hass, e, "energy"))) for k, e in entries.items()}
    assert energy["consumption"] > 0.02
    for kind in ("grid", "import_export"):
        assert energy[kind] == pytest.approx(energy["consumption"], rel=0.02, abs=1e-3), kind
    # The derived consumption is what the consumption sensor read.
    for kind in ("grid", "import_export"):
        resampler = entries[kind].runtime_data.coordinator.resamplers[30.0]
        # (the newest closed slot is the one before the last value)
        assert resampler.latest_value() == pytest.approx(consumption[-2], abs=0.5)
        assert resampler.masked_fraction == 0.0


async def test_signed_grid_without_solar_is_missing_while_exporting(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    """Without a production sensor the consumption is unknown while exporting: never
    guessed; the status says the consumption came out negative."""
    entry = await setup_entry(
        hass,
        _entry({"mains_type": "grid", "mains_entities": [MAINS], "solar_entities": []}, MAINS),
    )
    power = _entity(hass, entry, "power")
    status = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_status")
    assert status is not None
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        await replayer.step(float(watts))
    assert _value(hass, power) != STATE_UNAVAILABLE
    for _ in range(12):  # six minutes of export: longer than max_gap_s (300 s)
        await replayer.step(-1500.0)
    assert _value(hass, power) == STATE_UNAVAILABLE
    state = hass.states.get(status)
    assert state is not None
    assert state.state == "waiting_for_mains"
    assert state.attributes["missing_sensors"] == []
    assert state.attributes["consumption_negative"] is True
    coordinator = entry.runtime_data.coordinator
    assert coordinator.readings_refused == 0  # a negative grid reading is valid
    assert coordinator.diagnostics()["negative_consumption_refused"] == 12


def test_combiner_sums_grid_export_and_solar_and_refuses_negative() -> None:
    # (Imported here: the solar replays above must fail on their assertions, not on an
    # import, on code from before this existed.)
    from custom_components.nilm.mains import MainsTerm

    combiner = MainsCombiner(
        [
            MainsTerm("sensor.import", 1.0, False, "import"),
            MainsTerm("sensor.export", -1.0, False, "export"),
            MainsTerm("sensor.solar", 1.0, True, "solar"),
            MainsTerm("sensor.import", 1.0, False, "import"),  # listed twice: counted once
        ],
        max_gap_s=60.0,
    )
    assert combiner.entity_ids == ["sensor.import", "sensor.export", "sensor.solar"]
    assert combiner.update("sensor.import", 0.0, 0.0) is None  # the others are unknown
    assert combiner.missing(0.0) == ["sensor.export", "sensor.solar"]
    assert combiner.update("sensor.export", 1200.0, 0.0) is None
    assert combiner.update("sensor.solar", 1500.0, 0.0) == pytest.approx(300.0)
    # The inverter lags behind a cloud: 0 - 1200 + 900 < 0 is not a consumption.
    assert combiner.update("sensor.solar", 900.0, 10.0) is None
    assert combiner.negative == 1
    assert combiner.update("sensor.export", 600.0, 12.0) == pytest.approx(300.0)
    # A silent sensor goes stale after max_gap_s.
    assert combiner.update("sensor.import", 0.0, 75.0) is None
    assert combiner.missing(75.0) == ["sensor.export", "sensor.solar"]
    # Plain entity ids are consumption sensors (the scripts' and older callers' form).
    plain = MainsCombiner(["sensor.a", "sensor.b"], 60.0)
    plain.update("sensor.a", 100.0, 0.0)
    assert plain.update("sensor.b", 50.0, 0.0) == pytest.approx(150.0)


def test_parse_power_w_signed_sensors() -> None:
    w = {"unit_of_measurement": "W"}
    kw = {"unit_of_measurement": "kW"}
    assert parse_power_w(State(MAINS, "-2000", w)) is None
    assert parse_power_w(State(MAINS, "-2000", w), signed=True) == -2000.0
    assert parse_power_w(State(MAINS, "-1.5", kw), signed=True) == -1500.0
    # The plausibility bound holds in both directions.
    assert parse_power_w(State(MAINS, "-25000", w), signed=True) == -25000.0
    for text in ("-25000.1", "-65535", "-inf", "nan"):
        assert parse_power_w(State(MAINS, text, w), signed=True) is None, text


async def test_status_no_models_and_model_error(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    for suffix in (".tflite", ".json"):
        (user_models / f"test_kettle{suffix}").unlink()
    hass.states.async_set(MAINS, "100", W_ATTRS)
    empty = await setup_entry(hass, make_entry(["test_kettle"]))
    assert empty.runtime_data.coordinator.status() == (
        "no_models",
        {"appliances_ready": 0, "appliances": 0},
    )
    entry = await setup_entry(hass, make_entry(["test_microwave"], mains=["sensor.other"]))
    coordinator = entry.runtime_data.coordinator
    model = coordinator.appliances["test_microwave"].model

    def failing(windows: np.ndarray) -> object:
        raise RuntimeError("broken")

    model.predict = failing  # type: ignore[method-assign]
    for watts in house20["Aggregate"][600 : 601 + WINDOW]:
        replayer.freezer.move_to(replayer.now)
        hass.states.async_set("sensor.other", f"{watts:.1f}", W_ATTRS)
        await replayer.step(float(watts))
    state, attrs = coordinator.status()
    assert state == "model_error"
    assert attrs["failing"] == ["test_microwave"]


async def test_available_again_is_logged_only_after_a_gap(
    hass: HomeAssistant,
    user_models: Path,
    replayer: Replayer,
    house20: dict[str, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.nilm")
    entry = await setup_entry(hass, make_entry(["test_kettle"], options={"max_gap_s": 60}))
    feed = iter(house20["Aggregate"][600:1000])
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert entry.runtime_data.coordinator.appliances["test_kettle"].available
    assert "available again" not in caplog.text  # the first full window is no "again"
    for _ in range(3):
        await replayer.step("unavailable")
    for _ in range(WINDOW + 1):
        await replayer.step(float(next(feed)))
    assert caplog.text.count("test_kettle is available again") == 1
    assert caplog.text.count("test_kettle is unavailable") == 1


async def test_warming_up_minutes_count_down(
    hass: HomeAssistant, user_models: Path, replayer: Replayer, house20: dict[str, np.ndarray]
) -> None:
    entry = await setup_entry(hass, make_entry(["test_kettle"]))
    coordinator = entry.runtime_data.coordinator
    minutes: list[int] = []
    for watts in house20["Aggregate"][600 : 600 + WINDOW]:
        await replayer.step(float(watts))
        state, attrs = coordinator.status()
        assert state == "warming_up"
        minutes.append(attrs["minutes_left"])
    assert minutes[0] == math.ceil(WINDOW * 30 / 60)  # 50 min: a window of 99 x 30 s
    assert minutes == sorted(minutes, reverse=True)
    assert minutes[-1] == 1
    await replayer.step(float(house20["Aggregate"][600 + WINDOW]))
    assert coordinator.status()[0] == "running"
    replayer.now += timedelta(seconds=400)  # the meter falls silent
    assert coordinator.status(replayer.now.timestamp())[0] == "waiting_for_mains"
