"""scripts/make_models_doc.py on a temporary reports folder with two fake reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, load_script

SCRIPT = PROJECT_ROOT / "scripts" / "make_models_doc.py"
PNG = b"\x89PNG\r\n\x1a\nfake"


doc = load_script("make_models_doc")


def _metrics(f1: float, rule_f1: float, pred_kwh: float, on_s: float, off_s: float) -> dict:
    model = {
        "f1": f1,
        "mcc": f1 - 0.01,
        "event_recall": 0.875,
        "event_precision": 0.625,
        "predicted_energy_kwh": pred_kwh,
        "true_energy_kwh": 9.75,
        "tracker_energy_kwh": pred_kwh,
        "running_on_delay_s": on_s,
        "running_on_delay_events": 140.0,
        "running_off_delay_s": off_s,
        "running_off_delay_events": 139.0,
    }
    rule = {**model, "f1": rule_f1, "tracker_energy_kwh": None, "predicted_energy_kwh": 20.5}
    return {
        "model": model,
        "rule": rule,
        "card": {
            "name": "x",
            "appliance": "x",
            "sample_period_s": 30.0,
            "window_length": 99,
            "target_index": 96,
            "quantization": "w8_a8",
            "sha256": "ab" * 32,
        },
        "house": "REFIT house 20",
        "span": ["2014-03-20T00:00:00+00:00", "2015-06-23T23:59:30+00:00"],
        "samples": 1325727,
        "backend": "numpy",
        "command": "nilm-trainer evaluate --model m.json --out r",
        "rule_baseline": {"summary": "a step of 1.8-3.2 kW"},
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    for name, values in (
        ("kettle", (0.8123, 0.4211, 12.86, 60.0, 90.0)),
        ("dishwasher", (0.3777, 0.1634, 2.29, 2220.0, -90.0)),
    ):
        (reports / name).mkdir(parents=True)
        (reports / name / "metrics.json").write_text(json.dumps(_metrics(*values)))
    (reports / "kettle" / "day.png").write_bytes(PNG)
    seeds = {
        "appliance": "kettle",
        "selected_seed": 1,
        "seeds": [
            {
                "seed": s,
                "validation": {"f1": 0.8 + s / 100, "loss": 0.01},
                "test_house_20": {"f1": f1, "mcc": f1, "sae": 0.3},
            }
            for s, f1 in ((0, 0.70), (1, 0.80), (2, 0.90))
        ],
    }
    (reports / "kettle" / "seeds.json").write_text(json.dumps(seeds))
    (tmp_path / "README.md").write_text(
        "# NILM\n\nintro\n\n<!-- models:start -->\nold table\n<!-- models:end -->\n\noutro\n"
    )
    return tmp_path


def _run(tree: Path) -> int:
    return int(
        doc.main(
            [
                "--reports", str(tree / "reports"),
                "--docs", str(tree / "docs" / "models.md"),
                "--readme", str(tree / "README.md"),
            ]
        )
    )  # fmt: skip


def test_docs_and_readme_hold_the_numbers(tree: Path) -> None:
    assert _run(tree) == 0
    models = (tree / "docs" / "models.md").read_text()
    readme = (tree / "README.md").read_text()
    # The per-appliance tables, kettle first (canonical order), model next to rule.
    assert models.index("## Kettle") < models.index("## Dishwasher")
    assert "| F1 | 0.812 | 0.421 |" in models
    assert "| F1 | 0.378 | 0.163 |" in models
    assert "| Energy predicted / metered | 12.9 / 9.8 kWh | 20.5 / 9.8 kWh |" in models
    assert "| Running on delay (median) | +60 s (140 events) |" in models
    assert "+37 min (140 events)" in models  # 2220 s
    assert "Evaluated with `nilm-trainer evaluate --model m.json --out r`." in models
    # Seeds: mean ± sd of the test F1 over the three seeds, the shipped one marked.
    assert "| 1 (shipped) |" in models
    assert "0.800 ± 0.100" in models
    # The day plot is copied beside the doc and linked relatively.
    assert (tree / "docs" / "img" / "kettle_day.png").read_bytes() == PNG
    assert "](img/kettle_day.png)" in models
    assert "dishwasher_day.png" not in models
    # README: the block replaced, everything around it kept, the command named.
    assert "old table" not in readme
    assert readme.startswith("# NILM\n\nintro\n\n<!-- models:start -->")
    assert readme.endswith("<!-- models:end -->\n\noutro\n")
    assert "| kettle | 0.81 | 0.42 | 12.9 / 9.8 kWh | +60 s / +90 s |" in readme
    assert "| dishwasher | 0.38 | 0.16 | 2.3 / 9.8 kWh | +37 min / -90 s |" in readme
    assert "REFIT house 20, 2014-03-20 .. 2015-06-23, 1,325,727 samples at 30 s" in readme
    assert "scripts/make_models_doc.py" in readme and "scripts/make_models_doc.py" in models
    assert "[docs/models.md](docs/models.md)" in readme
    # Regenerating gives the same files (the block is replaced, not appended).
    assert _run(tree) == 0
    assert (tree / "README.md").read_text() == readme


def test_missing_markers_exit_2_and_write_nothing(tree: Path) -> None:
    (tree / "README.md").write_text("# NILM without markers\n")
    proc = subprocess.run(
        [
            sys.executable, str(SCRIPT),
            "--reports", str(tree / "reports"),
            "--docs", str(tree / "docs" / "models.md"),
            "--readme", str(tree / "README.md"),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "models:start" in proc.stderr
    assert not (tree / "docs" / "models.md").exists()
    assert (tree / "README.md").read_text() == "# NILM without markers\n"


def test_no_reports_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "README.md").write_text("<!-- models:start --><!-- models:end -->\n")
    argv = ["--reports", str(tmp_path / "reports"), "--readme", str(tmp_path / "README.md")]
    assert doc.main([*argv, "--docs", str(tmp_path / "m.md")]) == 2
    assert not (tmp_path / "m.md").exists()


def test_fridge_unseen_houses_without_a_metrics_json(tree: Path) -> None:
    # As scripts/build_bundled_models.sh leaves it: no single test house for the fridge.
    fridge = tree / "reports" / "fridge"
    fridge.mkdir()
    houses = [
        {"house": "REFIT house 5 (day)", "f1": 0.55, "event_recall": 0.9},
        {"house": "UK-DALE house 1", "f1": 0.75, "event_recall": 0.8},
    ]
    (fridge / "unseen_houses.json").write_text(json.dumps({"houses": houses}))
    seeds = {
        "selected_seed": 0,
        "seeds": [
            {
                "seed": 0,
                "validation": {"f1": 0.7, "loss": 0.1},
                "test": {"a": {"f1": 0.5, "mcc": 0.4}, "b": {"f1": 0.7, "mcc": 0.6}},
                "test_house_20": None,
            }
        ],
    }
    (fridge / "seeds.json").write_text(json.dumps(seeds))
    assert _run(tree) == 0
    models = (tree / "docs" / "models.md").read_text()
    assert "| REFIT house 5 (day) | 0.550 | 0.900 |" in models
    assert "| UK-DALE house 1 | 0.750 | 0.800 |" in models
    assert "| 0 (shipped) | 0.700 | 0.1000 | 0.600 | 0.500 |" in models  # mean of houses
    readme = (tree / "README.md").read_text()
    assert "| fridge | 0.65 (mean of 2 houses) | n/a | n/a | n/a |" in readme
    assert models.index("## Dishwasher") < models.index("## Fridge")
