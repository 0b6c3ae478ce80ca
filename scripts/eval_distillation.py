"""Distillation measured: the compact model trained with and without a teacher, same
recipe, data and seeds, each seed scored on the whole of REFIT House 20.

Protocol (issue #16): the teacher is the reference ``cnn`` trained by the same bundle
recipe (``nilm-trainer bundle <appliance> --arch cnn --no-export --run-root
runs/reference``), its seed chosen on validation. The students are the bundle's compact
recipe for seeds 0, 1, 2: once plain (what ships) and once with ``--teacher`` (labels
blended with the teacher's soft outputs, plus unlabelled mains windows of the training
houses). Every seed is scored float (Keras) and int8 (calibrated and converted as the
bundle exports, run by the numpy engine) on House 20; the teacher is scored float. Which
variant would ship is decided by validation F1 alone; House 20 is only reported.

Usage: python scripts/eval_distillation.py [--appliance kettle] [--reuse]
Writes reports/distill/<appliance>.json and .md (runs under runs/distill/).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.nilm.engine.card import load_card  # noqa: E402
from trainer import bundle  # noqa: E402
from trainer.config import DistillConfig, EvalConfig  # noqa: E402
from trainer.data import default_data_dir  # noqa: E402
from trainer.evaluate import evaluate  # noqa: E402
from trainer.files import load_json, write_json  # noqa: E402
from trainer.recipes import load_recipes, load_split  # noqa: E402
from trainer.summary import format_spread, spread  # noqa: E402

KEYS = ("f1", "mcc", "mae_w", "sae", "predicted_energy_kwh", "true_energy_kwh")
SHIPPED = ROOT / "custom_components" / "nilm" / "models"


def _scores(house: Any, model: str) -> dict[str, Any]:
    ev = evaluate(house, EvalConfig(model=model, plots=False, rule_baseline=False))
    return {k: ev.metrics.get(k) for k in KEYS}


def _build(appliance: str, data_dir: Path, root: Path, reuse: bool, **kwargs: Any) -> None:
    if reuse and (root / appliance / "selection.json").is_file():
        return
    bundle.build(appliance, data_dir, root, SHIPPED, export=False, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appliance", default="kettle")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--reference-root", type=Path, default=ROOT / "runs" / "reference")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "distill")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "distill")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs")
    args = parser.parse_args()
    app, data_dir = args.appliance, args.data_dir or default_data_dir()
    recipe = load_recipes()[app]
    t0 = time.monotonic()

    teacher_sel = args.reference_root / app / "selection.json"
    if not teacher_sel.is_file():
        print(f"no teacher: run `nilm-trainer bundle {app} --arch cnn --no-export "
              f"--run-root {args.reference_root}` first")  # fmt: skip
        return 2
    teacher_seed = int(load_json(teacher_sel)["selected_seed"])
    teacher_dir = args.reference_root / app / f"seed{teacher_seed}"
    distill = DistillConfig(teacher=str(teacher_dir))

    variants = {"plain": args.runs / "plain", "distilled": args.runs / "distilled"}
    _build(app, data_dir, variants["plain"], args.reuse)
    _build(app, data_dir, variants["distilled"], args.reuse, distill=distill)
    train_seconds = time.monotonic() - t0

    (test,) = load_split(recipe, "test", data_dir)[:1]
    out: dict[str, Any] = {
        "appliance": app,
        "test_house": test.label,
        "recipe_architecture": recipe.architecture,
        "teacher": {
            "run": str(teacher_dir.relative_to(ROOT)),
            "architecture": load_json(teacher_sel)["recipe"]["architecture"],
            "seed": teacher_seed,
            "validation_f1": next(
                s["validation"]["f1"]
                for s in load_json(teacher_sel)["seeds"]
                if s["seed"] == teacher_seed
            ),
            "float": _scores(test.house, str(teacher_dir)),
        },
        "distill": distill.to_dict() | {"teacher": str(teacher_dir.relative_to(ROOT))},
        "variants": {},
    }
    shipped_sha = load_card(SHIPPED / f"{app}.json").tflite_sha256
    for name, root in variants.items():
        selection = load_json(root / app / "selection.json")
        rows = []
        for entry in selection["seeds"]:
            seed = int(entry["seed"])
            run_dir = root / app / f"seed{seed}"
            # Converted exactly as the bundle exports a chosen seed (its calibration set).
            int8 = bundle.export_seed(recipe, run_dir, models_dir=run_dir / "int8", seed=seed)
            sha = hashlib.sha256(int8.with_suffix(".tflite").read_bytes()).hexdigest()
            row = {
                "seed": seed,
                "validation_f1": entry["validation"]["f1"],
                "float": _scores(test.house, str(run_dir)),
                "int8": _scores(test.house, str(int8)),
                "int8_is_the_shipped_file": sha == shipped_sha,
                "seconds": entry["seconds"],
            }
            if name == "distilled":
                row["distillation"] = load_json(run_dir / "result.json")["distillation"]
            rows.append(row)
            print(f"{name} seed {seed}: float F1 {row['float']['f1']:.3f}, "
                  f"int8 F1 {row['int8']['f1']:.3f}")  # fmt: skip
        out["variants"][name] = {
            "selected_seed": selection["selected_seed"],
            "seeds": rows,
            "validation_f1": spread(r["validation_f1"] for r in rows),
            "float_f1": spread(r["float"]["f1"] for r in rows),
            "int8_f1": spread(r["int8"]["f1"] for r in rows),
        }
    val = {n: v["validation_f1"]["mean"] for n, v in out["variants"].items()}
    out["chosen_on_validation"] = max(val, key=lambda n: val[n] or -1.0)
    out["seconds"] = {"training": round(train_seconds), "total": round(time.monotonic() - t0)}
    out["command"] = f"python scripts/eval_distillation.py --appliance {app}"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{app}.json", out)
    (args.out / f"{app}.md").write_text(markdown(out), encoding="utf-8")
    print(f"wrote {args.out / (app + '.md')}")
    return 0


def markdown(r: dict[str, Any]) -> str:
    def f(v: Any, spec: str = "{:.3f}") -> str:
        return spec.format(v) if isinstance(v, (int, float)) else "n/a"

    t = r["teacher"]
    lines = [
        f"### {r['appliance']}: the compact model with and without distillation, {r['test_house']}",
        "",
        f"Teacher: the reference `{t['architecture']}` of the same recipe (seed {t['seed']}, "
        f"chosen on validation; validation F1 {f(t['validation_f1'])}), float F1 on "
        f"{r['test_house']} {f(t['float']['f1'])}. Students: the bundle's compact recipe, "
        f"seeds 0-2, labels weighted {r['distill']['alpha']:g} against the teacher, "
        f"{r['distill']['unlabelled_windows']:,} unlabelled mains windows of the training "
        f"houses, temperature {r['distill']['temperature']:g}.",
        "",
        "| variant | seed | validation F1 | float F1 | int8 F1 (numpy) | int8 MAE | "
        "int8 energy predicted / metered |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        for row in v["seeds"]:
            m = row["int8"]
            shipped = " (the shipped file)" if row["int8_is_the_shipped_file"] else ""
            lines.append(
                f"| {name} | {row['seed']}{shipped} | {f(row['validation_f1'])} | "
                f"{f(row['float']['f1'])} | {f(m['f1'])} | {f(m['mae_w'], '{:.1f} W')} | "
                f"{f(m['predicted_energy_kwh'], '{:.1f}')} / "
                f"{f(m['true_energy_kwh'], '{:.1f}')} kWh |"
            )
    lines += ["", "| variant | validation F1 mean | float F1 mean (min-max) | "
              "int8 F1 mean (min-max) |", "|---|---|---|---|"]  # fmt: skip
    for name, v in r["variants"].items():
        fl, i8 = v["float_f1"], v["int8_f1"]
        lines.append(
            f"| {name} | {f(v['validation_f1']['mean'])} | {format_spread(fl, sd=False)} | "
            f"{format_spread(i8, sd=False)} |"
        )
    lines += [
        "",
        f"Chosen on validation (mean F1 over the seeds): **{r['chosen_on_validation']}**. "
        f"Training {r['seconds']['training']} s, all {r['seconds']['total']} s on this machine.",
        "",
        f"Regenerate: `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
