"""Loaders, resampling, units and gap masking on the real shared data."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainer.cli import add_data_cli
from trainer.data import (
    REFIT_APPLIANCE_MAP,
    DataConfig,
    HouseData,
    load_refit_8s,
    load_refit_30s,
    load_refit_clean,
    load_refit_day,
    load_ukdale,
    load_user_csv,
    parse_mapping,
    read_user_spec,
)
from trainer.errors import TrainerError

REFIT30_COLUMNS = ["aggregate", "kettle", "microwave", "dishwasher", "washing_machine"]
HOUSE2_ROWS = 1_778_156


def _assert_tidy(house: HouseData, period_s: float) -> None:
    frame = house.frame
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC"
    assert house.period_s == period_s
    steps = np.diff(frame.index.asi8)
    assert (steps == round(period_s * 1e9)).all()  # regular grid, no holes
    assert all(dtype == np.float32 for dtype in frame.dtypes)
    assert frame.columns[0] == "aggregate"


@pytest.fixture(scope="module")
def house2(data_dir: Path) -> HouseData:
    """All 21 monthly files of REFIT House 2 (about 2 s)."""
    return load_refit_30s(data_dir, 2)


def test_house2_masked_fraction_is_plausible(house2: HouseData) -> None:
    """The README: a zero block 2013-10-25 .. 2014-02-13 and ~145 days in runs > 6 h.

    Lower bound: 140 days of rows (the gap fills alone); upper bound: all zero rows
    (425,823) plus a generous 5 % for constant fills - above that we mask real data.
    """
    _assert_tidy(house2, 30.0)
    assert list(house2.frame.columns) == REFIT30_COLUMNS
    assert len(house2.frame) == HOUSE2_ROWS
    frac = house2.masked_fraction
    assert 140 * 2880 / HOUSE2_ROWS < frac < (425_823 + 0.05 * HOUSE2_ROWS) / HOUSE2_ROWS
    block = house2.frame.loc["2013-10-26":"2014-02-12"]
    # The block holds one 3.6 h island of live readings (2013-12-26, ~137 W, varying):
    # that stays; every zero in the block is masked, in every column.
    assert block["aggregate"].isna().mean() > 0.99
    assert not (block["aggregate"] == 0).any()
    assert block.isna().all(axis=1).sum() == block["aggregate"].isna().sum()
    report = house2.report()
    assert report.startswith("REFIT house 2: 1,778,156 rows at 30 s")
    assert f"{100 * frac:.1f} % masked" in report
    assert "zero runs > 5 min" in report
    assert "constant runs > 30 min" in report
    info = ("clipped", "appliance spikes")
    counted = sum(v for k, v in house2.mask_reasons.items() if not k.startswith(info))
    assert counted == house2.frame["aggregate"].isna().sum()


def test_house20_masking_matches_the_readme(data_dir: Path) -> None:
    """Thresholds were chosen on House 2 only; on House 20 they find the README's ~43 days
    of gap fills (zero and constant runs), without touching its appliance columns."""
    house = load_refit_30s(data_dir, 20)
    masked_days = house.frame["aggregate"].isna().sum() * 30 / 86400
    assert 38 < masked_days < 48


def test_time_slice(house2: HouseData) -> None:
    part = house2.time_slice("2015-01-04", "2015-01-18")
    assert part.frame.index[0] == pd.Timestamp("2015-01-04", tz="UTC")
    assert part.frame.index[-1] == pd.Timestamp("2015-01-17 23:59:30", tz="UTC")
    assert len(part.frame) == 14 * 2880
    assert part.masked_fraction == part.frame["aggregate"].isna().mean()
    with pytest.raises(TrainerError, match="nothing left between"):
        house2.time_slice("2013-11-01", "2013-12-01")  # inside the zero block


def test_masking_matches_an_independent_run_length_count(data_dir: Path) -> None:
    """Two months around the start of the zero block, checked against a pandas groupby."""
    months = ["2013-10", "2013-11"]
    house = load_refit_30s(data_dir, 2, months, DataConfig(max_constant_run_s=1e9))
    raw = pd.concat(
        pd.read_csv(data_dir / "refit_30s" / "house2" / f"REFIT_House2_{m}.csv.gz") for m in months
    )
    zero = raw["Aggregate"].to_numpy() == 0
    run_id = np.cumsum(np.concatenate(([True], zero[1:] != zero[:-1])))
    run_len = pd.Series(zero).groupby(run_id).transform("size").to_numpy()
    expected = zero & (run_len * 30 > 300)
    np.testing.assert_array_equal(house.frame["aggregate"].isna().to_numpy(), expected)
    # Short zero runs (<= 5 min) stay as data.
    assert (zero & ~expected).sum() == (house.frame["aggregate"] == 0).sum()


def test_resampling_is_the_mean_over_bins(data_dir: Path) -> None:
    house = load_refit_30s(data_dir, 2, ["2014-03"], DataConfig(period_s=120))
    _assert_tidy(house, 120.0)
    raw = pd.read_csv(data_dir / "refit_30s" / "house2" / "REFIT_House2_2014-03.csv.gz")
    agg = np.minimum(raw["Aggregate"].to_numpy(), 6000.0)
    assert len(raw) % 4 == 0 and raw["Time"].iloc[0].endswith("00:00:00")
    means = agg.reshape(-1, 4).mean(axis=1)
    got = house.frame["aggregate"].to_numpy()
    ok = ~np.isnan(got)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(got[ok], means[ok], rtol=1e-5)
    kettle = raw["Kettle"].to_numpy().reshape(-1, 4).mean(axis=1)
    np.testing.assert_allclose(house.frame["kettle"].to_numpy()[ok], kettle[ok], rtol=1e-5)


def test_root_forms_and_appliance_selection(data_dir: Path) -> None:
    only = DataConfig(appliances=("kettle",))
    for root in (data_dir, data_dir / "refit_30s", data_dir / "refit_30s" / "house2"):
        house = load_refit_30s(root, 2, ["2014-03"], only)
        assert list(house.frame.columns) == ["aggregate", "kettle"]
        assert len(house.frame) == 31 * 2880
    with pytest.raises(TrainerError, match=r"has no fridge data \(appliances present: kettle"):
        load_refit_30s(data_dir, 2, ["2014-03"], DataConfig(appliances=("fridge",)))
    with pytest.raises(TrainerError, match="unknown appliance 'oven'"):
        DataConfig(appliances=("oven",))
    with pytest.raises(TrainerError, match="months must look like 2014-03"):
        load_refit_30s(data_dir, 2, ["March"])


def test_clip_is_optional(data_dir: Path) -> None:
    clipped = load_refit_8s(data_dir / "refit_8s_house2")
    raw = load_refit_8s(data_dir / "refit_8s_house2", DataConfig(clip_aggregate_w=None))
    assert clipped.frame["aggregate"].max() == 6000.0
    assert raw.frame["aggregate"].max() > 10_000  # real 8 s peaks above the 30 s clip
    assert any(k.startswith("clipped at 6000 W") for k in clipped.mask_reasons)


def test_refit_8s(data_dir: Path) -> None:
    house = load_refit_8s(data_dir / "refit_8s_house2")
    _assert_tidy(house, 8.0)
    assert list(house.frame.columns) == [
        "aggregate",
        "microwave",
        "dishwasher",
        "washing_machine",
        "fridge",
    ]
    assert len(house.frame) == 2 * 7 * 86400 // 8
    # The raw fridge holds a 32768 W glitch; sub-meter spikes are masked, not learned.
    raw = pd.read_csv(data_dir / "refit_8s_house2" / "REFIT_HF_validation.csv.gz")
    assert raw["fridge"].max() >= 32768
    assert house.frame["fridge"].max() <= 4 * 300
    assert house.mask_reasons["appliance spikes"] > 0
    # The known 13 h constant fill of 2015-01-05/06 (2729 W) is masked.
    assert house.frame.loc["2015-01-05 22:00":"2015-01-06 08:00", "aggregate"].isna().all()


def test_refit_day_houses(data_dir: Path) -> None:
    house = load_refit_day(data_dir, 2)
    _assert_tidy(house, 8.0)
    assert set(house.appliances) == {
        "fridge",
        "washing_machine",
        "dishwasher",
        "microwave",
        "kettle",
    }
    raw = pd.read_csv(data_dir / "refit_1day_20houses" / "house_2_day.csv.gz")
    # Kettle is Appliance8 in House 2; its energy is preserved by the 8 s resampling.
    t = raw["Unix"].to_numpy()
    duration = t[-1] - t[0]
    raw_kwh = np.sum(raw["Appliance8"].to_numpy()[:-1] * np.diff(t)) / 3.6e6
    got_kwh = float(np.nansum(house.frame["kettle"].to_numpy()) * 8 / 3.6e6)
    assert raw_kwh > 0.3
    assert got_kwh == pytest.approx(raw_kwh, rel=0.05)
    assert len(house.frame) == pytest.approx(duration / 8, abs=2)
    # Houses whose 2015 columns do not follow the map: aggregate only.
    assert load_refit_day(data_dir, 3).appliances == ()
    mapped = load_refit_day(data_dir, 3, appliance_map=REFIT_APPLIANCE_MAP[3])
    assert "kettle" in mapped.appliances


def test_ukdale(data_dir: Path) -> None:
    house = load_ukdale(data_dir / "ukdale_house1_6s")
    _assert_tidy(house, 6.0)
    assert set(house.appliances) == {"dishwasher", "fridge", "microwave", "washing_machine"}
    assert len(house.frame) == 14_400
    assert house.masked_fraction < 0.01


def _write_clean(data_dir: Path, path: Path, issues_rows: slice) -> pd.DataFrame:
    """A CLEAN_House2.csv in the published layout, from the real one-day House 2 file."""
    raw = pd.read_csv(data_dir / "refit_1day_20houses" / "house_2_day.csv.gz")
    raw["Issues"] = 0
    raw.loc[raw.index[issues_rows], "Issues"] = 1
    raw.to_csv(path, index=False)
    return raw


def test_refit_clean_with_builtin_map_and_issues(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "CLEAN_House2.csv"
    raw = _write_clean(data_dir, path, slice(5000, 5100))
    house = load_refit_clean(path)  # house number from the file name
    _assert_tidy(house, 8.0)
    assert house.source == "REFIT CLEAN house 2"
    assert set(house.appliances) == {
        "fridge",
        "washing_machine",
        "dishwasher",
        "microwave",
        "kettle",
    }
    flagged = pd.to_datetime(raw["Unix"].iloc[5000:5100], unit="s", utc=True)
    assert house.frame["aggregate"].reindex(flagged.dt.floor("8s")).isna().all()
    assert house.mask_reasons["issues"] >= 80
    # The same file without flagged rows: nothing masked there.
    clean = tmp_path / "CLEAN_House2_noissues.csv"
    _write_clean(data_dir, clean, slice(0, 0))
    assert load_refit_clean(clean, 2).masked_fraction < house.masked_fraction


def _user_csv(data_dir: Path, path: Path, *, scale: float = 1.0) -> pd.DataFrame:
    raw = pd.read_csv(data_dir / "ukdale_house1_6s" / "UKDALE_House1_2014-11-09.csv.gz")
    out = pd.DataFrame(
        {
            "when": raw["timestamp"],
            "mains": raw["aggregate"] * scale,
            "micro": raw["microwave"] * scale,
        }
    )
    out.to_csv(path, index=False)
    return out


def test_user_csv_in_w_and_kw(data_dir: Path, tmp_path: Path) -> None:
    watts = tmp_path / "w.csv"
    kw = tmp_path / "kw.csv"
    _user_csv(data_dir, watts)
    _user_csv(data_dir, kw, scale=1e-3)
    in_w = load_user_csv(watts, "when", "mains", {"microwave": "micro"})
    _assert_tidy(in_w, 6.0)
    in_kw = load_user_csv(kw, "when", "mains", {"microwave": "micro"}, unit="kW")
    np.testing.assert_allclose(in_kw.frame.to_numpy(), in_w.frame.to_numpy(), rtol=1e-5)
    auto = load_user_csv(kw, "when", "mains", {"microwave": "micro"}, unit="auto")
    np.testing.assert_allclose(auto.frame.to_numpy(), in_w.frame.to_numpy(), rtol=1e-5)
    with pytest.raises(TrainerError, match=r"implausibly low.*is it in kW\? pass unit kW"):
        load_user_csv(kw, "when", "mains", {"microwave": "micro"})
    with pytest.raises(TrainerError, match=r"implausibly high.*pass unit W"):
        load_user_csv(watts, "when", "mains", {"microwave": "micro"}, unit="kW")
    at30 = load_user_csv(watts, "when", "mains", {}, config=DataConfig(period_s=30))
    _assert_tidy(at30, 30.0)
    assert len(at30.frame) == 14_400 // 5


def test_user_csv_config_files(data_dir: Path, tmp_path: Path) -> None:
    _user_csv(data_dir, tmp_path / "kw.csv", scale=1e-3)
    toml = tmp_path / "house.toml"
    toml.write_text(
        'csv = "kw.csv"\ntimestamp = "when"\nmains = "mains"\nunit = "kW"\nperiod_s = 30\n'
        '[appliances]\nmicrowave = "micro"\n'
    )
    spec = read_user_spec(toml)
    assert spec.appliance_cols == {"microwave": "micro"}
    assert spec.unit == "kW" and spec.period_s == 30.0
    js = tmp_path / "house.json"
    js.write_text(
        json.dumps(
            {
                "csv": "kw.csv",
                "timestamp": "when",
                "mains": "mains",
                "appliances": {"toaster": "micro"},
            }
        )
    )
    with pytest.raises(TrainerError, match="unknown appliance 'toaster'"):
        read_user_spec(js)
    js.write_text("{not json")
    with pytest.raises(TrainerError, match="not valid JSON"):
        read_user_spec(js)
    assert parse_mapping(["kettle=Kettle W"]) == {"kettle": "Kettle W"}
    with pytest.raises(TrainerError, match="kettle=COLUMN"):
        parse_mapping(["kettle"])


def test_bad_input_gives_one_clear_error(data_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    _user_csv(data_dir, good)
    with pytest.raises(TrainerError, match="file not found"):
        load_user_csv(tmp_path / "missing.csv", "when", "mains", {})
    with pytest.raises(
        TrainerError,
        match=r"missing column\(s\) kettle_w .*columns present: "
        r"when, mains, micro",
    ):
        load_user_csv(good, "when", "mains", {"kettle": "kettle_w"})
    with pytest.raises(TrainerError, match=r"unknown appliance 'toaster'.*known: kettle"):
        load_user_csv(good, "when", "mains", {"toaster": "micro"})
    binary = tmp_path / "binary.csv.gz"
    binary.write_bytes(b"\x00\x01not gzip at all")
    with pytest.raises(TrainerError, match="cannot read CSV"):
        load_user_csv(binary, "when", "mains", {})
    text = tmp_path / "text.csv"
    text.write_text("when,mains\n2014-01-01 00:00:00,12x\n2014-01-01 00:00:06,300\n")
    with pytest.raises(TrainerError, match=r"'mains' has 1 non-numeric value\(s\), e.g. '12x'"):
        load_user_csv(text, "when", "mains", {})
    text.write_text("when,mains\nyesterday,100\ntoday,300\n")
    with pytest.raises(TrainerError, match="'when' is not a timestamp"):
        load_user_csv(text, "when", "mains", {})
    with pytest.raises(TrainerError, match="no REFIT house 2 30 s file for month"):
        load_refit_30s(data_dir, 2, ["2030-01"])
    with pytest.raises(TrainerError, match="no REFIT 30 s files for house 7"):
        load_refit_30s(data_dir, 7)
    with pytest.raises(TrainerError, match="has no fridge data"):
        load_refit_30s(data_dir, 2, ["2014-03"]).column("fridge")


def test_empty_selection_after_masking(tmp_path: Path) -> None:
    """A meter that only ever reported 0 W (an outage exported as zeros)."""
    times = pd.date_range("2015-01-01", periods=2000, freq="30s", tz="UTC")
    path = tmp_path / "zeros.csv"
    pd.DataFrame({"t": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p": 0.0, "k": 0.0}).iloc[
        :, :3
    ].to_csv(path, index=False)
    with pytest.raises(TrainerError, match="no non-zero numeric values"):
        load_user_csv(path, "t", "p", {"kettle": "k"})
    frame = pd.DataFrame({"t": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p": 431.0})
    frame.to_csv(path, index=False)
    with pytest.raises(TrainerError, match="every sample is masked"):
        load_user_csv(path, "t", "p", {})


def test_negative_mains_is_masked(data_dir: Path, tmp_path: Path) -> None:
    """A net meter with solar export: the exporting samples cannot train seq2point."""
    path = tmp_path / "net.csv"
    frame = _user_csv(data_dir, path)
    frame.loc[6000:6599, "mains"] -= 5000.0  # an hour of export around midday
    frame.to_csv(path, index=False)
    house = load_user_csv(path, "when", "mains", {"microwave": "micro"})
    exporting = int((frame["mains"] < 0).sum())
    assert exporting > 500
    assert house.mask_reasons["negative (export)"] == exporting
    assert house.frame["aggregate"].isna().sum() == exporting
    assert "negative (export): " in house.report()


def test_local_time_csv_with_dst(data_dir: Path, tmp_path: Path) -> None:
    """Naive local timestamps across the October DST change (the hour 01:00-02:00 repeats)."""
    raw = pd.read_csv(data_dir / "ukdale_house1_6s" / "UKDALE_House1_2014-11-09.csv.gz")
    utc = pd.date_range("2014-10-25 22:00", periods=len(raw), freq="6s", tz="UTC")
    local = utc.tz_convert("Europe/London").tz_localize(None)
    path = tmp_path / "local.csv"
    pd.DataFrame({"t": local.strftime("%Y-%m-%d %H:%M:%S"), "p": raw["aggregate"]}).to_csv(
        path, index=False
    )
    no_clip = DataConfig(clip_aggregate_w=None)
    house = load_user_csv(path, "t", "p", {}, timezone="Europe/London", config=no_clip)
    _assert_tidy(house, 6.0)
    assert house.frame.index[0] == pd.Timestamp("2014-10-25 22:00", tz="UTC")
    # Both passes of the repeated hour (UTC 00:00-02:00) are dropped: masked as missing.
    assert house.mask_reasons["missing"] == 2 * 600
    ok = house.frame["aggregate"].dropna()
    expected = pd.Series(raw["aggregate"].to_numpy(), index=utc)
    np.testing.assert_allclose(ok.to_numpy(), expected.reindex(ok.index).to_numpy())
    with pytest.raises(TrainerError, match="unknown time zone 'Mars/Olympus'"):
        load_user_csv(path, "t", "p", {}, timezone="Mars/Olympus")


def test_gzip_csv_and_unix_timestamps(data_dir: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(data_dir / "refit_1day_20houses" / "house_5_day.csv.gz")
    path = tmp_path / "h5.csv.gz"
    with gzip.open(path, "wt") as fh:
        raw[["Unix", "Aggregate", "Appliance8"]].to_csv(fh, index=False)
    house = load_user_csv(
        path, "Unix", "Aggregate", {"kettle": "Appliance8"}, config=DataConfig(period_s=8)
    )
    _assert_tidy(house, 8.0)
    assert house.frame["kettle"].max() > 1500  # House 5 kettle boils


def test_cli_prints_the_report(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="nilm-trainer")
    add_data_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "data",
            "--source",
            "refit30s",
            "--house",
            "2",
            "--data-dir",
            str(data_dir),
            "--months",
            "2013-10",
            "2013-11",
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("REFIT house 2 (2013-10, 2013-11): ")
    assert "% masked (zero runs > 5 min: " in out
    help_text = parser._subparsers._group_actions[0].choices["data"].format_help()  # type: ignore[union-attr]
    assert "--max-zero-run" in help_text and "--mains-entity" in help_text


# ----------------------------------------------------------------- bounded, honest input


def _csv(path: Path, times: list[str], mains: list[float]) -> Path:
    path.write_text(
        "when,mains\n" + "".join(f"{t},{m}\n" for t, m in zip(times, mains, strict=True)),
        encoding="utf-8",
    )
    return path


def _minutes(n: int, start: str = "2024-01-01") -> list[str]:
    base = pd.Timestamp(start, tz="UTC")
    return [(base + pd.Timedelta(minutes=i)).isoformat() for i in range(n)]


def test_glitch_readings_are_missing_not_clipped_to_real_power(tmp_path: Path) -> None:
    mains = [300.0 + (i % 7) for i in range(400)]  # not a constant run (those are masked)
    for i, glitch in ((100, "inf"), (150, "1e308"), (200, "4294967295"), (250, "1e12")):
        mains[i] = float(glitch)
    house = load_user_csv(_csv(tmp_path / "g.csv", _minutes(400), mains), "when", "mains", {})
    agg = house.frame["aggregate"].to_numpy()
    assert np.isnan(agg[[100, 150, 200, 250]]).all()
    assert np.nanmax(agg) == 306.0  # nothing became a 6000 W sample
    assert any("implausible" in reason for reason in house.mask_reasons)


def test_a_typo_in_a_year_is_refused_before_building_a_huge_grid(tmp_path: Path) -> None:
    times = _minutes(400)
    times[200] = times[200].replace("2024", "2224")
    with pytest.raises(TrainerError, match=r"typo|memory budget"):
        load_user_csv(_csv(tmp_path / "y.csv", times, [300.0] * 400), "when", "mains", {})


def test_absurd_periods_are_refused() -> None:
    with pytest.raises(TrainerError, match=r"between 0\.1 and 3600"):
        DataConfig(period_s=1e-6)
    with pytest.raises(TrainerError, match=r"between 0\.1 and 3600"):
        DataConfig(period_s=1e6)


def test_millisecond_epochs_are_named(tmp_path: Path) -> None:
    ms = [str(1_700_000_000_000 + 60_000 * i) for i in range(50)]
    with pytest.raises(TrainerError, match="milliseconds"):
        load_user_csv(_csv(tmp_path / "ms.csv", ms, [300.0] * 50), "when", "mains", {})


def test_a_mix_of_watts_and_kilowatts_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    watts = list(rng.uniform(200, 800, 300))
    kilowatts = list(rng.uniform(0.2, 0.8, 300))
    path = _csv(tmp_path / "mix.csv", _minutes(600), watts + kilowatts)
    with pytest.raises(TrainerError, match="mix of W and kW"):
        load_user_csv(path, "when", "mains", {})


def test_a_gzip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.data.core as data_core  # the limit is read where the CSV is read

    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("when,mains\n" + "2024-01-01T00:00:00Z,300\n" * 20_000)
    monkeypatch.setattr(data_core, "MAX_CSV_BYTES", 100_000)  # the file expands to ~500 kB
    with pytest.raises(TrainerError, match="decompresses to more than"):
        load_user_csv(path, "when", "mains", {})


def test_neighbouring_flat_stretches_are_not_one_constant_run(tmp_path: Path) -> None:
    """A sensor reporting every 2 min, held on a 1 min grid, repeats each value once: each
    repeat is its own short run, not a 400 min 'constant run' that masks everything."""
    mains = [300.0 + (i // 2) % 50 for i in range(400)]
    house = load_user_csv(_csv(tmp_path / "slow.csv", _minutes(400), mains), "when", "mains", {})
    assert not np.isnan(house.frame["aggregate"].to_numpy()).any()


def test_one_value_held_for_longer_than_the_limit_is_masked_alone(tmp_path: Path) -> None:
    mains = [300.0 + (i % 7) for i in range(400)]
    mains[100:160] = [2729.0] * 60  # a 60 min fill, like REFIT's 2015-01-05 one
    house = load_user_csv(_csv(tmp_path / "fill.csv", _minutes(400), mains), "when", "mains", {})
    masked = np.isnan(house.frame["aggregate"].to_numpy())
    assert masked[100:160].all()
    assert not masked[:100].any() and not masked[160:].any()
