"""The ``nilm-trainer`` command line: help texts, one-line errors, an end-to-end evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import cli

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nilm-trainer: error:")]
    assert len(errors) == 1, proc.stderr
    assert fragment in errors[0], errors[0]


def test_top_level_help_lists_every_command() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: nilm-trainer")
    for name in ("data", "train", "evaluate"):
        assert f"    {name} " in proc.stdout


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("train", ("--arch", "--resume", "--strategy", "--appliance", "--teacher", "examples:")),
        ("evaluate", ("--model", "--out", "--backend", "--delay-tolerance", "example:")),
        ("data", ("--source", "--months")),
    ],
)
def test_sub_command_help_reads_well(command: str, expected: tuple[str, ...]) -> None:
    parser = cli.build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, "--help"])
    assert exit_info.value.code == 0
    sub = run_cli(command, "--help")
    assert sub.returncode == 0
    for text in expected:
        assert text in sub.stdout, text
    assert "default:" in sub.stdout


def test_modules_all_register_a_handler() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--appliance", "kettle", "--run-dir", "x"])
    assert callable(args.func)
    assert "train" in cli.COMMANDS and "evaluate" in cli.COMMANDS


def test_unknown_appliance_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("train", "--appliance", "toaster", "--run-dir", str(tmp_path / "r"))
    assert_one_line_error(proc, "unknown appliance 'toaster'")


def test_two_appliances_for_train_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "train", "--appliance", "kettle", "--appliance", "microwave",
        "--run-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert_one_line_error(proc, "exactly one --appliance")


def test_empty_selection_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "train", "--data-dir", str(data_dir), "--months", "1999-01", "--appliance", "kettle",
        "--run-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert_one_line_error(proc, "1999-01")


def test_bad_csv_and_missing_column_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\xff\xfe garbage\n\x00\x01")
    proc = run_cli(
        "train", "--source", "csv", "--path", str(bad), "--timestamp-col", "time",
        "--mains-col", "mains", "--map", "kettle=kettle_w", "--appliance", "kettle",
        "--run-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert_one_line_error(proc, "cannot read CSV")
    good = tmp_path / "house.csv"
    good.write_text("time,mains\n2024-01-01T00:00:00,100\n2024-01-01T00:00:30,120\n")
    proc = run_cli(
        "train", "--source", "csv", "--path", str(good), "--timestamp-col", "time",
        "--mains-col", "mains", "--map", "kettle=kettle_w", "--appliance", "kettle",
        "--run-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert_one_line_error(proc, "kettle_w")


def test_missing_model_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("evaluate", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "not found")


def test_argparse_usage_errors_exit_2() -> None:
    proc = run_cli("train", "--arch", "resnet", "--appliance", "kettle", "--run-dir", "x")
    assert proc.returncode == 2
    assert "invalid choice: 'resnet'" in proc.stderr


def test_evaluate_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from tests.trainer.training_fixtures import smoke_config
    from trainer.data import load_refit_30s
    from trainer.train import train

    run = tmp_path / "run"
    house = load_refit_30s(data_dir, 2, ["2014-03"])
    config = smoke_config(epochs=1, steps_per_epoch=5, max_validation_windows=300)
    train(house, config, run, progress=False, log=lambda *_: None)
    out = tmp_path / "report"
    proc = run_cli(
        "evaluate", "--model", str(run), "--data-dir", str(data_dir), "--house", "20",
        "--months", "2014-05", "--out", str(out), "--no-plots",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| F1 |" in proc.stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["appliance"] == "kettle"
    assert "REFIT house 20" in report["test_data"]
    assert not (out / "day.png").exists()
    wrong = run_cli(
        "evaluate", "--model", str(run), "--data-dir", str(data_dir), "--months", "2014-05",
        "--appliance", "microwave", "--out", str(out),
    )  # fmt: skip
    assert_one_line_error(wrong, "the model is for kettle")
