"""The bundled-model recipe end to end on a small slice of real data: seeds trained,
one chosen on validation, exported int8 with a card the engine loads and runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from custom_components.nilm.engine import load_model
from trainer import bundle
from trainer.errors import TrainerError
from trainer.recipes import load_recipes

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "refit_30s").is_dir(), reason="no shared data")


def test_smoke_build_exports_a_model_the_engine_runs(tmp_path: Path) -> None:
    split = {
        "train": ("refit_day:1,4,6,7", "ukdale:1"),
        "validation": ("refit_day:5,9",),
        "test": ("refit30s:20",),
    }
    summary = bundle.build(
        "kettle",
        DATA,
        tmp_path / "runs",
        tmp_path / "models",
        overrides={
            "seeds": (0, 1),
            "epochs": 1,
            "max_real_windows": 2000,
            "synthetic_windows": 500,
            "split": split,
            "representative_size": 32,
        },
        log=lambda *_: None,
    )
    assert summary["selected_seed"] in (0, 1)
    assert len(summary["seeds"]) == 2
    chosen = max(summary["seeds"], key=lambda s: s["validation"]["f1"])
    assert chosen["seed"] == summary["selected_seed"]
    card_path = tmp_path / "models" / "kettle.json"
    card = json.loads(card_path.read_text())
    assert card["quantization"] == "w8_a8"
    assert card["window_length"] == 99 and card["target_index"] == 97
    assert card["training"]["recipe"]["split"]["train"] == list(split["train"])
    assert "UK-DALE" in card["training"]["attribution"]
    assert not any("house 20" in s.lower() for s in card["training"]["data"]["train_sources"])
    # The power scale carries the energy calibration measured on validation, recorded.
    cal = summary["energy_calibration"]
    assert card["training"]["energy_calibration"] == json.loads(json.dumps(cal))
    assert bundle.ENERGY_FACTOR_LIMITS[0] <= cal["factor"] <= bundle.ENERGY_FACTOR_LIMITS[1]
    lo, hi = bundle.ENERGY_FACTOR_LIMITS
    assert cal["factor"] == min(max(cal["metered_kwh"] / cal["predicted_kwh"], lo), hi)
    run_card = json.loads(
        (tmp_path / "runs" / "kettle" / summary["selected_run"] / "card.json").read_text()
    )
    assert card["power_scale_w"] == pytest.approx(run_card["power_scale_w"] * cal["factor"])
    model = load_model(card_path, "numpy")
    windows = np.full((2, 99), 300.0, dtype=np.float32)
    windows[1, -4:] += 2800.0
    out = model.predict(windows)
    assert out.power_w.shape == (2,) and np.all(np.isfinite(out.power_w))
    assert (tmp_path / "runs" / "kettle" / "selection.json").is_file()

    # The seeds' ensemble was scored on validation too, and ships if it beats their mean.
    ensemble = summary["ensemble"]
    assert ensemble["seeds"] == [0, 1]
    mean = np.mean([s["validation"]["f1"] for s in summary["seeds"]])
    beats = ensemble["validation"]["f1"] >= mean
    assert summary["selected_run"] == ("ensemble" if beats else f"seed{chosen['seed']}")
    # Exported, it is one model with one two-headed ending over both members' features,
    # so Home Assistant's adapter can re-fit it like a single seed.
    from custom_components.nilm.engine.adapter import head_spec
    from custom_components.nilm.engine.card import load_card
    from custom_components.nilm.engine.reader import read_model_file

    path = bundle.export_seed(
        bundle.load_recipes()["kettle"],
        tmp_path / "runs" / "kettle" / "ensemble",
        models_dir=tmp_path / "ensemble",
        seed=summary["selected_seed"],
    )
    ens_card = load_card(path)
    spec = head_spec(read_model_file(path.with_suffix(".tflite")), ens_card)
    assert spec is not None and spec.features == 2 * 64
    assert ens_card.training["ensemble_of_seeds"] == [0, 1]
    assert "ensemble of seeds 0, 1" in (path.parent / "kettle.export.md").read_text()
    out = load_model(path, "numpy").predict(windows)
    assert np.all(np.isfinite(out.power_w))
    # Shipped, the ensemble is the float parent fine-tuning starts from, bound to it.
    from trainer.parents import load_parent, requantize_parent, save_parent

    selection_path = tmp_path / "runs" / "kettle" / "selection.json"
    selection = json.loads(selection_path.read_text())
    selection_path.write_text(json.dumps({**selection, "selected_run": "ensemble"}))
    save_parent("kettle", tmp_path / "runs", tmp_path / "ensemble", tmp_path / "parents")
    parent = load_parent("kettle", tmp_path / "ensemble", tmp_path / "parents")
    assert parent.record["run"] == "ensemble"
    assert requantize_parent(parent) == (tmp_path / "ensemble" / "kettle.tflite").read_bytes()


@pytest.mark.parametrize(
    ("ensemble_f1", "run"),
    [(0.6, "ensemble"), (0.45, "ensemble"), (0.44, "seed2"), (None, "seed2")],
)
def test_the_ensemble_ships_when_it_scores_at_least_the_seeds_mean_on_validation(
    ensemble_f1: float | None, run: str
) -> None:
    """Seeds 0.40 / 0.45 / 0.50 (mean 0.45): the ensemble need not beat the luckiest
    seed, only what a seed gives on average; without it the best seed ships."""
    seeds = [
        {"seed": i, "val_loss": 0.1, "validation": {"f1": f}}
        for i, f in enumerate((0.4, 0.45, 0.5))
    ]
    ensemble = None if ensemble_f1 is None else {"validation": {"f1": ensemble_f1}}
    assert bundle.choose_run(seeds, ensemble) == run


def test_float_parent_is_bound_to_the_bundled_model_it_produced(tmp_path: Path) -> None:
    """The parent shipped for fine-tuning: requantized with its own calibration set it
    gives the exported .tflite byte for byte, and a changed bundled model refuses it."""
    from trainer.errors import TrainerError
    from trainer.parents import load_parent, requantize_parent, save_parent

    models = tmp_path / "models"
    bundle.build(
        "kettle", DATA, tmp_path / "runs", models,
        overrides={
            "seeds": (0,), "epochs": 1, "max_real_windows": 1500, "synthetic_windows": 300,
            "split": {"train": ("refit_day:1,4",), "validation": ("refit_day:5",),
                      "test": ("refit30s:20",)},
            "representative_size": 32,
        },
        log=lambda *_: None,
    )  # fmt: skip
    # Trained on REFIT alone, the card credits REFIT alone.
    attribution = json.loads((models / "kettle.json").read_text())["training"]["attribution"]
    assert attribution.startswith("REFIT") and "UK-DALE" not in attribution
    parents = tmp_path / "parents"
    record = save_parent("kettle", tmp_path / "runs", models, parents)
    assert record == parents / "kettle" / "parent.json"
    parent = load_parent("kettle", models, parents)
    assert parent.seed == 0
    assert requantize_parent(parent) == (models / "kettle.tflite").read_bytes()

    card = json.loads((models / "kettle.json").read_text())
    (models / "kettle.tflite").write_bytes(b"TFL3" + bytes(64))
    card["tflite_sha256"] = __import__("hashlib").sha256(b"TFL3" + bytes(64)).hexdigest()
    (models / "kettle.json").write_text(json.dumps(card))
    with pytest.raises(TrainerError, match="built for another bundled model"):
        load_parent("kettle", models, parents)
    with pytest.raises(TrainerError, match="no float parent"):
        load_parent("fridge", models, parents)


class _LastSampleBackend:
    """A stand-in backend: 'running' where the window's newest sample is above 1 kW."""

    @staticmethod
    def run(x: np.ndarray) -> list[np.ndarray]:
        prob = (np.asarray(x)[:, -1:] > 1000.0).astype(np.float32)
        return [prob, prob]


class _LastSampleModel:
    """A stand-in Keras model whose cached backend (what ``bundle`` compiles once per
    model) is the one above."""

    _nilm_backend = _LastSampleBackend()


def _cycle_series(gap: int) -> bundle.Series:
    """Three cycles; the first one's middle ``gap`` samples draw nothing (a dishwasher
    drying), the others draw power from start to end."""
    n = 600
    agg = np.full(n, 100.0, dtype=np.float32)
    on = np.zeros(n, dtype=bool)
    for start, end in ((50, 110), (250, 300), (450, 500)):
        agg[start:end] = 2000.0
        on[start:end] = True  # the truth covers the pause: the cycle is in progress
    agg[75 : 75 + gap] = 100.0
    return bundle.Series("house", agg, np.where(on, 50.0, 0.0).astype(np.float32), on, None)


def test_validation_bridges_the_pause_of_a_cycle_within_the_off_delay_budget() -> None:
    base = load_recipes()["dishwasher"].with_overrides(
        window_length=4, target_index=3, min_off_choices_s=(), max_off_delay_s=None
    )
    series = [_cycle_series(gap=15)]
    fixed = bundle.validation_scores(_LastSampleModel(), base, series, mean_w=0.0, std_w=1.0)
    assert fixed["min_off_s"] == base.min_off_s and fixed["f1"] < 0.96
    chooser = base.with_overrides(min_off_choices_s=(180.0, 600.0, 1200.0, 1800.0))
    chosen = bundle.validation_scores(_LastSampleModel(), chooser, series, mean_w=0.0, std_w=1.0)
    # 15 min pause: 1200 s is the shortest bridge that covers it, and F1 is then perfect...
    assert chosen["min_off_s"] == 1200.0
    assert chosen["f1"] == pytest.approx(1.0)
    assert chosen["f1_by_min_off_s"]["180.0"] == pytest.approx(fixed["f1"])
    # ... but "Running" then turns off ~19 min after every cycle's end (3 min bridge: 2 min).
    assert chosen["off_delay_s_by_min_off_s"]["1200.0"] == pytest.approx(1140.0)
    assert chosen["off_delay_s_by_min_off_s"]["180.0"] == pytest.approx(120.0)
    budgeted = chooser.with_overrides(max_off_delay_s=300.0)
    prompt = bundle.validation_scores(_LastSampleModel(), budgeted, series, mean_w=0.0, std_w=1.0)
    assert prompt["min_off_s"] == 180.0
    assert prompt["f1"] == pytest.approx(fixed["f1"])


def test_a_report_without_a_reference_run_keeps_the_last_measured_one_and_says_so(
    tmp_path: Path,
) -> None:
    seeds = tmp_path / "seeds.json"
    assert bundle._previous_reference(seeds) is None
    seeds.write_text(json.dumps({"seeds": [], "reference_cnn": {"seeds": [{"seed": 0}]}}))
    block = bundle._previous_reference(seeds)
    assert block is not None and block["seeds"] == [{"seed": 0}]
    assert "not re-run" in block["carried_over"]


def test_refreshing_the_reference_replaces_only_its_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bundle --report-reference`: the re-trained reference's seeds replace the carried
    over block; the shipped seeds' numbers, measured with their runs, stay as they were."""
    reports, reference = tmp_path / "reports", tmp_path / "reference"
    with pytest.raises(TrainerError, match="no report at"):
        bundle.refresh_reference("kettle", tmp_path, reports, reference)
    reports.mkdir()
    old_ref = {"seeds": [{"seed": 0}], "carried_over": "measured in an earlier build"}
    shipped = [{"seed": 1, "test_house_20": {"f1": 0.8}}]
    (reports / "seeds.json").write_text(json.dumps({"seeds": shipped, "reference_cnn": old_ref}))
    with pytest.raises(TrainerError, match="no reference build of kettle"):
        bundle.refresh_reference("kettle", tmp_path, reports, reference)
    (reference / "kettle").mkdir(parents=True)
    selection = {"appliance": "kettle", "recipe": {"architecture": "cnn", "epochs": 8}}
    (reference / "kettle" / "selection.json").write_text(json.dumps(selection))
    seen: list[Any] = []
    monkeypatch.setattr(bundle, "load_split", lambda recipe, part, data_dir: [part])
    monkeypatch.setattr(
        bundle, "_seed_spread", lambda sel, root, tests: seen.append((root, tests)) or ["new"]
    )
    out = bundle.refresh_reference("kettle", tmp_path, reports, reference)
    assert seen == [(reference, ["test"])]
    assert out["reference_cnn"]["seeds"] == ["new"] and "carried_over" not in out["reference_cnn"]
    assert out["reference_cnn"]["architecture"] == "cnn"
    written = json.loads((reports / "seeds.json").read_text())
    assert written["seeds"] == shipped and written["reference_cnn"] == out["reference_cnn"]
