"""scripts/sweep_recipe.py: variants parsed and checked before training, each variant
trained through bundle.build without export, the table built from the seeds' validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_script
from trainer.errors import TrainerError
from trainer.files import write_json
from trainer.recipes import load_recipes

sweep = load_script("sweep_recipe")


def test_a_variant_is_key_value_pairs_read_as_json() -> None:
    assert sweep.parse_variant("window_length=49,target_index=47,architecture=cnn") == {
        "window_length": 49,
        "target_index": 47,
        "architecture": "cnn",
    }
    assert sweep.parse_variant("on_share=0.4") == {"on_share": 0.4}
    with pytest.raises(TrainerError, match="KEY=VALUE"):
        sweep.parse_variant("window_length")


def test_a_bad_variant_is_refused_before_any_training() -> None:
    recipe = load_recipes()["microwave"]
    assert sweep.resolve(recipe, {"window_length": 49, "target_index": 47}) == {
        "window_length": 49,
        "target_index": 47,
    }
    resolved = sweep.resolve(recipe, {"synthetic.stretch": 0.3})
    assert resolved["synthetic"] == replace(recipe.synthetic, stretch=0.3)
    with pytest.raises(TrainerError, match=r"no recipe field synthetic\.strech, windw_length"):
        sweep.resolve(recipe, {"windw_length": 49, "synthetic.strech": 0.3})
    with pytest.raises(TrainerError, match="target index outside the window"):
        sweep.resolve(recipe, {"target_index": recipe.window_length})


def test_each_variant_is_trained_without_export_and_tabulated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_build(appliance: str, data_dir: Path, run_root: Path, models: Path, **kw: Any) -> None:
        calls.append({"run_root": run_root, **kw})
        good = bool(kw["overrides"])  # the variant beats the recipe on every seed
        seeds = [
            {
                "seed": seed,
                "best_epoch": 3,
                "val_loss": 0.05,
                "seconds": 10.0,
                "validation": {
                    "f1": 0.5 + 0.1 * good + 0.01 * seed,
                    "f1_training_houses": 0.6,
                    "f1_unseen_houses": 0.4 + 0.2 * good,
                    "threshold": 0.5,
                },
            }
            for seed in (0, 1, 2)
        ]
        data = {"real_windows": 6000, "real_on_share": 0.06, "synthetic_windows": 4000}
        write_json(run_root / appliance / "seed0" / "result.json", {"data": data})
        recipe = load_recipes()[appliance].with_overrides(**(kw["overrides"] or {}))
        write_json(
            run_root / appliance / "selection.json",
            {"selected_seed": 2, "seeds": seeds, "recipe": recipe.to_dict()},
        )

    monkeypatch.setattr(sweep.bundle, "build", fake_build)
    out = tmp_path / "reports"
    argv = ["microwave", "--variant", "on_share=0.4", "--run-root", str(tmp_path / "runs")]
    assert sweep.main([*argv, "--out", str(out), "--data-dir", str(tmp_path)]) == 0

    assert [c["overrides"] for c in calls] == [None, {"on_share": 0.4}]
    assert all(c["export"] is False for c in calls)
    assert calls[0]["run_root"] != calls[1]["run_root"]
    report = sweep.load_json(out / "microwave.json")
    recipe_row, variant_row = report["variants"]
    assert recipe_row["f1"]["mean"] == pytest.approx(0.51)
    assert recipe_row["f1"]["min"] == pytest.approx(0.50)
    assert variant_row["f1_unseen_houses"]["mean"] == pytest.approx(0.6)
    table = (out / "microwave.md").read_text(encoding="utf-8")
    assert "| `on_share=0.4` **(best)** | 0.610 ± 0.010 (0.600-0.620)" in table
    assert "| 6,000 (6 %) + 4,000 | 30 s |" in table
    assert "sweep_recipe.py microwave --variant on_share=0.4" in table

    # --reuse: finished variants are read back, not trained again
    calls.clear()
    assert sweep.main([*argv, "--out", str(out), "--data-dir", str(tmp_path), "--reuse"]) == 0
    assert calls == []

    # ... unless the run was made with another recipe (bundled.json changed since)
    stale = tmp_path / "runs" / "microwave" / "recipe" / "microwave" / "selection.json"
    selection = sweep.load_json(stale)
    selection["recipe"]["window_length"] += 1
    write_json(stale, selection)
    assert sweep.main([*argv, "--out", str(out), "--data-dir", str(tmp_path), "--reuse"]) == 0
    assert [c["overrides"] for c in calls] == [None]
