"""A bundled recipe's variants compared on validation data only, every seed of each.

Issue #10 asks that sample period, window length, target position and the training mix
be per-appliance data chosen on validation houses. This trains the recipe of
``trainer/bundled.json`` as it is and once per variant (``KEY=VALUE,...`` overrides of
its fields), every seed, through ``bundle.build`` without export, and tabulates the
validation score that ``bundle`` chooses seeds by (the mean of the F1 over the training
houses' later months and over validation houses no model trained on). The test house is
never loaded: what to ship is decided here, House 20 is measured afterwards by
``scripts/build_bundled_models.sh``.

Usage:
  python scripts/sweep_recipe.py microwave \\
      --variant window_length=49,target_index=47 --variant on_share=0.4 [--reuse]
Writes reports/sweeps/<appliance>.json and .md (runs under runs/sweep/<appliance>/).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer import bundle  # noqa: E402
from trainer.config import Recipe, SyntheticSettings  # noqa: E402
from trainer.data import default_data_dir  # noqa: E402
from trainer.errors import TrainerError  # noqa: E402
from trainer.files import load_json, write_json  # noqa: E402
from trainer.recipes import load_recipes  # noqa: E402
from trainer.summary import format_spread, spread  # noqa: E402

SHIPPED = ROOT / "custom_components" / "nilm" / "models"
KEYS = ("f1", "f1_training_houses", "f1_unseen_houses")


def parse_variant(text: str) -> dict[str, Any]:
    """``window_length=49,target_index=47`` -> overrides (values read as JSON, else text)."""
    out: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, sep, raw = part.partition("=")
        if not sep or not key:
            raise TrainerError(f"variant {text!r}: expected KEY=VALUE[,KEY=VALUE...]")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw.strip()
    return out


def resolve(recipe: Recipe, overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides as ``Recipe.with_overrides`` takes them: ``synthetic.<field>`` keys
    replace fields of the recipe's synthetic settings. A TrainerError for a field the
    recipe lacks or a value it refuses, so a typo fails before hours of training."""
    known = {f.name for f in fields(Recipe)}
    synthetic_known = {f.name for f in fields(SyntheticSettings)}
    plain = {k: v for k, v in overrides.items() if not k.startswith("synthetic.")}
    synthetic = {k.removeprefix("synthetic."): v for k, v in overrides.items() if k not in plain}
    unknown = sorted(
        {*(set(plain) - known), *(f"synthetic.{k}" for k in set(synthetic) - synthetic_known)}
    )
    if unknown:
        raise TrainerError(f"{recipe.appliance}: no recipe field {', '.join(unknown)}")
    if synthetic:
        plain["synthetic"] = replace(recipe.synthetic, **synthetic)
    try:
        recipe.with_overrides(**plain).model_config()
    except (TypeError, ValueError) as err:
        raise TrainerError(f"{recipe.appliance}: {variant_name(overrides)}: {err}") from err
    return plain


def variant_name(overrides: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in overrides.items()) or "recipe"


def _reusable(selection: Path, recipe: dict[str, Any]) -> bool:
    """A finished run of exactly this recipe (``bundled.json`` may have changed since)."""
    return selection.is_file() and load_json(selection).get("recipe") == recipe


def run_variant(
    recipe: Recipe,
    overrides: dict[str, Any],
    resolved: dict[str, Any],
    *,
    data_dir: Path,
    root: Path,
    reuse: bool,
) -> dict[str, Any]:
    appliance = recipe.appliance
    run_root = root / variant_name(overrides).replace("=", "-").replace(",", "_")
    selection = run_root / appliance / "selection.json"
    if not (reuse and _reusable(selection, recipe.with_overrides(**resolved).to_dict())):
        bundle.build(
            appliance, data_dir, run_root, SHIPPED, overrides=resolved or None, export=False
        )
    summary = load_json(selection)
    seeds = summary["seeds"]
    data = load_json(run_root / appliance / f"seed{seeds[0]['seed']}" / "result.json")["data"]
    return {
        "variant": variant_name(overrides),
        "overrides": overrides,
        "selected_seed": summary["selected_seed"],
        "seeds": [
            {
                "seed": s["seed"],
                "best_epoch": s["best_epoch"],
                "val_loss": s["val_loss"],
                "threshold": s["validation"]["threshold"],
                **{k: s["validation"][k] for k in KEYS},
            }
            for s in seeds
        ],
        **{k: spread([s["validation"][k] for s in seeds]) for k in KEYS},
        "training_windows": {
            k: data.get(k) for k in ("real_windows", "real_on_share", "synthetic_windows")
        },
        "train_seconds": sum(float(s["seconds"]) for s in seeds),
        "recipe": summary["recipe"],
    }


def markdown(appliance: str, rows: list[dict[str, Any]], command: str) -> str:
    best = max(rows, key=lambda r: r["f1"]["mean"] if r["f1"]["mean"] is not None else -1.0)
    lines = [
        f"# Recipe sweep: {appliance} (validation data only)",
        "",
        f"Generated by `{command}`. Every variant trains every seed of the recipe in "
        "`trainer/bundled.json` with the overrides shown, on the recipe's training "
        "sources, and is scored on its validation sources as `bundle` chooses seeds: "
        "the mean of the F1 over the training houses' later months and over validation "
        "houses no model trained on (threshold chosen per seed on the same data). The "
        "test house (REFIT House 20) is not read.",
        "",
        "| variant | validation F1 mean ± sd (range) | training houses' months | unseen "
        "validation houses | seeds' thresholds | training windows: real (running) + synthetic "
        "| train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        thresholds = ", ".join(f"{s['threshold']:g}" for s in r["seeds"])
        mark = " **(best)**" if r is best else ""
        w = r["training_windows"]
        windows = (
            f"{w['real_windows']:,} ({100 * w['real_on_share']:.0f} %) + {w['synthetic_windows']:,}"
            if w.get("real_windows") is not None
            else "—"
        )
        f1s = (format_spread(r[k], missing="—") for k in KEYS)
        lines.append(
            f"| `{r['variant']}`{mark} | {' | '.join(f1s)} | {thresholds} | {windows} "
            f"| {r['train_seconds']:.0f} s |"
        )
    lines += [
        "",
        f"Seeds: {', '.join(str(s['seed']) for s in rows[0]['seeds'])}. A variant is worth "
        "shipping only if its mean beats the recipe's by more than the seeds' spread; then "
        "it goes into `trainer/bundled.json` and `scripts/build_bundled_models.sh "
        f"{appliance}` rebuilds and measures it on the test house. A mix setting that "
        "leaves the training windows unchanged (an on share above what the sub-meters hold) "
        "trains the same models.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("appliance")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE,...")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--run-root", type=Path, default=ROOT / "runs" / "sweep")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "sweeps")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse finished runs of the same recipe"
    )
    args = parser.parse_args(argv)
    recipe = load_recipes().get(args.appliance)
    if recipe is None:
        parser.error(f"no bundled recipe for {args.appliance!r}")
    try:
        variants = [{}, *(parse_variant(v) for v in args.variant)]
        resolved = [resolve(recipe, v) for v in variants]
    except TrainerError as err:
        parser.error(str(err))
    data_dir = args.data_dir or default_data_dir()
    root = args.run_root / args.appliance
    rows = [
        run_variant(recipe, v, r, data_dir=data_dir, root=root, reuse=args.reuse)
        for v, r in zip(variants, resolved, strict=True)
    ]
    command = "python scripts/sweep_recipe.py " + shlex.join(
        [args.appliance, *(x for v in args.variant for x in ("--variant", v))]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.appliance}.json", {"command": command, "variants": rows})
    text = markdown(args.appliance, rows, command)
    (args.out / f"{args.appliance}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
