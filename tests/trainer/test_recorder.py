"""The recorder import against a real SQLite file with Home Assistant's own schema.

The database is created by the recorder's SQLAlchemy models (``db_schema``), filled with
one day of real REFIT House 2 data written the way the recorder writes it (a row per
state change, units in shared attributes, 'unavailable' states, 5-minute statistics).
Only this test imports Home Assistant; ``trainer.recorder`` uses plain sqlite3.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trainer.data import DataConfig, load_refit_8s
from trainer.errors import TrainerError
from trainer.recorder import list_entities, load_recorder, parse_entity_mapping

db_schema = pytest.importorskip("homeassistant.components.recorder.db_schema")
sqlalchemy = pytest.importorskip("sqlalchemy")

PERIOD = 32.0  # a multiple of the 8 s samples: hold-resampling == bin mean exactly
NO_CLIP = DataConfig(period_s=PERIOD, clip_aggregate_w=None, appliance_spike_factor=None)
MICROWAVE_ON_W = 200.0


def _changes(values: np.ndarray) -> np.ndarray:
    """Indices where the recorder would write a row: the first and every change."""
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return np.flatnonzero(keep)


@pytest.fixture(scope="module")
def refit_day(data_dir: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """First day of REFIT House 2's 8 s test week: unix seconds and columns in W."""
    import pandas as pd

    frame = pd.read_csv(data_dir / "refit_8s_house2" / "REFIT_HF_test.csv.gz", nrows=10_800)
    t = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True)).as_unit("ns").asi8 / 1e9
    cols = {
        c: frame[c].to_numpy(dtype=np.float64)
        for c in ("aggregate", "microwave", "dishwasher")
        if c in frame.columns
    }
    return t, cols


def _create_db(path: Path) -> sqlalchemy.Engine:
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    db_schema.Base.metadata.create_all(engine)
    return engine


def _insert_states(
    engine: sqlalchemy.Engine,
    meta_id: int,
    entity_id: str,
    rows: list[tuple[float, str, float]],
    attrs: dict[str, str],
) -> None:
    """States as the recorder writes them: a states_meta row, shared attributes, and
    one states row per change (rows: (unix time, state string, last re-reported))."""
    shared = json.dumps(attrs)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.insert(db_schema.StatesMeta.__table__),
            [{"metadata_id": meta_id, "entity_id": entity_id}],
        )
        conn.execute(
            sqlalchemy.insert(db_schema.StateAttributes.__table__),
            [{"attributes_id": meta_id, "hash": hash(shared) & 0xFFFFFFFF, "shared_attrs": shared}],
        )
        conn.execute(
            sqlalchemy.insert(db_schema.States.__table__),
            [
                {
                    "metadata_id": meta_id,
                    "state": state,
                    "attributes_id": meta_id,
                    "last_updated_ts": t,
                    "last_changed_ts": t,
                    "last_reported_ts": reported,
                    "origin_idx": 0,
                }
                for t, state, reported in rows
            ],
        )


def _insert_statistics(
    engine: sqlalchemy.Engine,
    meta_id: int,
    entity_id: str,
    unit: str,
    series: tuple[np.ndarray, np.ndarray],
) -> None:
    """5-minute means as the recorder's statistics compiler writes them."""
    times, values = series
    bins = (times // 300).astype(np.int64)
    starts = np.unique(bins)
    means = [float(values[bins == b].mean()) for b in starts]
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.insert(db_schema.StatisticsMeta.__table__),
            [
                {
                    "id": meta_id,
                    "statistic_id": entity_id,
                    "source": "recorder",
                    "unit_of_measurement": unit,
                    "has_mean": True,
                    "has_sum": False,
                    "name": None,
                    "mean_type": 1,
                }
            ],
        )
        conn.execute(
            sqlalchemy.insert(db_schema.StatisticsShortTerm.__table__),
            [
                {
                    "metadata_id": meta_id,
                    "start_ts": float(b * 300),
                    "created_ts": float(b * 300 + 310),
                    "mean": m,
                    "min": m,
                    "max": m,
                }
                for b, m in zip(starts, means, strict=True)
            ],
        )


def _change_rows(
    t: np.ndarray, values: np.ndarray, fmt: Callable[[float], str]
) -> list[tuple[float, str, float]]:
    """One row per change, last re-reported at the sample before the next change (a meter
    reports every sample; the recorder updates the row's last_reported)."""
    idx = _changes(values)
    last = np.append(idx[1:] - 1, values.size - 1)
    return [(float(t[i]), fmt(values[i]), float(t[j])) for i, j in zip(idx, last, strict=True)]


@pytest.fixture(scope="module")
def recorder_db(
    tmp_path_factory: pytest.TempPathFactory, refit_day: tuple[np.ndarray, dict[str, np.ndarray]]
) -> Path:
    """Mains in kW (as many meters report), microwave plug in W, dishwasher as on/off, and a
    mains outage of 'unavailable' states; plus 5-minute statistics of mains and microwave."""
    t, cols = refit_day
    path = tmp_path_factory.mktemp("ha") / "home-assistant_v2.db"
    engine = _create_db(path)
    mains_kw = cols["aggregate"] / 1000.0
    mains = _change_rows(t, mains_kw, lambda v: repr(float(v)))
    # A 10-minute outage at 12:00: unavailable, then the meter comes back.
    outage = float(t[0]) + 12 * 3600
    mains = [
        *((t0, state, min(seen, outage - 8.0)) for t0, state, seen in mains if t0 < outage),
        (outage, "unavailable", outage),
        *(r for r in mains if r[0] >= outage + 600),
    ]
    power = {"unit_of_measurement": "kW", "device_class": "power"}
    _insert_states(engine, 1, "sensor.mains_power", mains, power)
    micro = _change_rows(t, cols["microwave"], lambda v: repr(float(v)))
    _insert_states(engine, 2, "sensor.microwave_plug_power", micro, {"unit_of_measurement": "W"})
    dish = _change_rows(t, cols["dishwasher"] >= 10.0, lambda v: "on" if v else "off")
    _insert_states(engine, 3, "binary_sensor.dishwasher_running", dish, {"device_class": "running"})
    _insert_statistics(engine, 1, "sensor.mains_power", "kW", (t, mains_kw))
    _insert_statistics(engine, 2, "sensor.microwave_plug_power", "W", (t, cols["microwave"]))
    # Purged: only an 'unknown' state left, but the statistics remain.
    _insert_states(engine, 4, "sensor.purged_mains", [(float(t[0]), "unknown", float(t[0]))], power)
    _insert_statistics(engine, 3, "sensor.purged_mains", "kW", (t, mains_kw))
    engine.dispose()
    return path


def test_states_match_the_refit_loader(recorder_db: Path, data_dir: Path) -> None:
    """kW mains and W plug, read from the recorder, equal the REFIT loader's 32 s means."""
    house = load_recorder(
        recorder_db,
        "sensor.mains_power",
        {
            "microwave": "sensor.microwave_plug_power",
            "dishwasher": "binary_sensor.dishwasher_running",
        },
        NO_CLIP,
    )
    assert house.period_s == PERIOD
    assert list(house.frame.columns) == ["aggregate", "microwave", "dishwasher"]
    assert house.status_columns == frozenset({"dishwasher"})
    ref = load_refit_8s(data_dir / "refit_8s_house2" / "REFIT_HF_test.csv.gz", NO_CLIP)
    ref_frame = ref.frame.loc[house.frame.index]
    both = house.frame["aggregate"].notna() & ref_frame["aggregate"].notna()
    # The bins at either edge of the 10 min outage are the mean of their known part, as in
    # the integration's resampler (the REFIT file has the whole bin).
    index = house.frame.index
    noon = index[0].normalize() + np.timedelta64(12, "h")
    for edge in (noon, noon + np.timedelta64(10, "m")):
        both &= ~((index > edge - np.timedelta64(int(PERIOD), "s")) & (index <= edge))
    assert both.sum() > 2000
    np.testing.assert_allclose(
        house.frame.loc[both, "aggregate"], ref_frame.loc[both, "aggregate"], rtol=1e-5
    )
    np.testing.assert_allclose(
        house.frame.loc[both, "microwave"], ref_frame.loc[both, "microwave"], rtol=1e-5, atol=1e-3
    )
    assert house.frame["microwave"].max() > MICROWAVE_ON_W  # real uses survived the import
    dish = house.frame["dishwasher"].dropna().to_numpy()
    assert set(np.unique(dish)) <= {0.0, 1.0} or (dish.min() >= 0 and dish.max() <= 1)
    assert dish.max() > 0


def test_unavailable_states_are_masked(recorder_db: Path) -> None:
    house = load_recorder(recorder_db, "sensor.mains_power", {}, NO_CLIP)
    noon = house.frame.index[0].normalize() + np.timedelta64(12, "h")
    outage = house.frame.loc[noon : noon + np.timedelta64(9, "m"), "aggregate"]
    assert len(outage) >= 15
    assert outage.isna().all()
    assert house.masked_fraction < 0.05
    assert "missing" in house.report()


def test_statistics_fallback_when_states_are_purged(recorder_db: Path) -> None:
    house = load_recorder(recorder_db, "sensor.purged_mains", {}, DataConfig(clip_aggregate_w=None))
    assert house.period_s == 300.0
    assert "statistics_short_term" in house.source
    assert 200 < house.frame["aggregate"].mean() < 3000  # kW converted to W
    with pytest.raises(TrainerError, match="5-minute statistics"):
        load_recorder(recorder_db, "sensor.purged_mains", {}, DataConfig(period_s=30))


def test_statistics_table_read_explicitly(recorder_db: Path) -> None:
    stats = load_recorder(
        recorder_db,
        "sensor.mains_power",
        {"microwave": "sensor.microwave_plug_power"},
        DataConfig(clip_aggregate_w=None),
        table="statistics",
    )
    states = load_recorder(
        recorder_db,
        "sensor.mains_power",
        {"microwave": "sensor.microwave_plug_power"},
        DataConfig(period_s=300, clip_aggregate_w=None),
    )
    both = (
        stats.frame["aggregate"].notna()
        & states.frame["aggregate"].reindex(stats.frame.index).notna()
    )
    diff = (
        stats.frame.loc[both, "aggregate"]
        - states.frame["aggregate"].reindex(stats.frame.index)[both]
    )
    # Same 5-minute bins from two recorder tables: agree to a watt or so.
    assert both.sum() > 200
    assert float(np.abs(diff).median()) < 2.0


def test_errors_are_clear(recorder_db: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="not found"):
        load_recorder(tmp_path / "nope.db", "sensor.mains_power", {})
    with pytest.raises(TrainerError, match="neither states nor"):
        load_recorder(recorder_db, "sensor.does_not_exist", {})
    with pytest.raises(TrainerError, match="unknown appliance 'toaster'"):
        load_recorder(recorder_db, "sensor.mains_power", {"toaster": "sensor.x"})
    with pytest.raises(TrainerError, match=r"no states for sensor\.x"):
        load_recorder(recorder_db, "sensor.mains_power", {"kettle": "sensor.x"})
    with pytest.raises(TrainerError, match="on/off entity"):
        load_recorder(recorder_db, "binary_sensor.dishwasher_running", {})
    not_db = tmp_path / "x.db"
    not_db.write_text("hello")
    with pytest.raises(TrainerError, match=r"not a readable SQLite database"):
        load_recorder(not_db, "sensor.mains_power", {})
    with pytest.raises(TrainerError, match="kettle=sensor"):
        parse_entity_mapping(["microwave"])


def test_database_is_opened_read_only(recorder_db: Path) -> None:
    before = recorder_db.stat().st_mtime_ns
    load_recorder(recorder_db, "sensor.mains_power", {}, NO_CLIP)
    assert recorder_db.stat().st_mtime_ns == before
    from trainer.recorder import connect_readonly

    con = connect_readonly(recorder_db)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        con.execute("DELETE FROM states")
    con.close()


def test_list_entities(recorder_db: Path) -> None:
    found = {e: (n, u) for e, n, u in list_entities(recorder_db)}
    assert found["sensor.mains_power"][1] == "kW"
    assert "binary_sensor.dishwasher_running" in found
    assert found["sensor.microwave_plug_power"][0] > 10


def test_cli_lists_entities_and_reports(
    recorder_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer.cli import main

    assert (
        main(["data", "--source", "recorder", "--path", str(recorder_db), "--list-entities"]) == 0
    )
    listed = capsys.readouterr().out
    assert "sensor.mains_power\t" in listed and "kW" in listed
    argv = [
        "data",
        "--source",
        "recorder",
        "--path",
        str(recorder_db),
        "--mains-entity",
        "sensor.mains_power",
        "--map",
        "microwave=sensor.microwave_plug_power",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("HA recorder home-assistant_v2.db (states): 2,879 rows at 30 s")
    assert main([*argv[:-1], "toaster=sensor.microwave_plug_power"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "nilm-trainer: error: unknown appliance 'toaster' (known: kettle, microwave, "
        "dishwasher, washing_machine, fridge)"
    ]


def test_list_entities_on_a_foreign_schema_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from trainer.cli import main

    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE states (state_id INTEGER, state TEXT)")  # no metadata_id
    con.execute("CREATE TABLE states_meta (entity_id TEXT)")
    con.commit()
    con.close()
    code = main(["data", "--source", "recorder", "--path", str(db), "--list-entities"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "schema" in err and "Traceback" not in err
