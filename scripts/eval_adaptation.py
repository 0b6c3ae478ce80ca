"""House 20 as the household: a week of smart-plug labels re-fits the bundled models' heads
in numpy (``engine.adapter``: what Home Assistant runs, no TensorFlow), then every
remaining day of House 20 scores the bundled model, the re-fitted one and the rule
baseline side by side (``trainer.evaluate``: the same metrics as the bundled-model reports).

Protocol (issue #15): the plug labels are the sub-meter of House 20's first 7 days whose
mains and sub-meter are both unmasked (the span up to the 7th such day; masked samples
stay gaps); the test is everything after that span. The adapter chooses its own settings
inside those 7 days and is adopted only if it beats the bundled model on the newest 30 %
of them, as in Home Assistant. "re-fitted" scores the fitted heads even when they were not
adopted; "user gets" is what the integration would run.

Usage: python scripts/eval_adaptation.py [--appliances kettle ...] [--days 7]
Writes reports/adaptation/house20_<days>d.json and .md.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One BLAS thread: the CPU time below is the fit's, not idle threads spinning.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from custom_components.nilm.engine.adapter import AdaptableModel, adapt, series_for  # noqa: E402
from custom_components.nilm.engine.card import load_card  # noqa: E402
from custom_components.nilm.engine.model import Prediction  # noqa: E402
from scripts.ha_dev import household  # noqa: E402
from scripts.ha_dev.household import command_line, first_unmasked_days, fmt  # noqa: E402
from trainer.config import EvalConfig  # noqa: E402
from trainer.data import default_data_dir  # noqa: E402
from trainer.evaluate import Evaluation, evaluate_predictor  # noqa: E402
from trainer.recipes import load_source  # noqa: E402

MODELS = ROOT / "custom_components" / "nilm" / "models"
KEYS = (
    "f1", "mcc", "event_recall", "event_precision", "predicted_energy_kwh", "true_energy_kwh",
    "running_on_delay_s", "running_off_delay_s",
)  # fmt: skip


class Replay:
    """Runs the model once over the test house, keeping the head's features, so the
    bundled and the re-fitted heads are scored on exactly the same pass."""

    def __init__(self, model: AdaptableModel) -> None:
        self.model = model
        self.features: list[np.ndarray] = []

    def shipped(self, windows: np.ndarray) -> Prediction:
        prediction, features = self.model.run(windows)
        self.features.append(features)
        return prediction

    def heads(self, heads: Any) -> Any:
        batches = iter(self.features)

        def predict(windows: np.ndarray) -> Prediction:
            features = next(batches)
            assert len(features) == len(windows)
            return heads.predict(self.model.card, features)

        return predict


def _metrics(ev: Evaluation) -> dict[str, float]:
    return {k: ev.metrics[k] for k in KEYS if k in ev.metrics}


def run_one(appliance: str, data_dir: Path, days: int) -> dict[str, Any]:
    card_path = MODELS / f"{appliance}.json"
    card = load_card(card_path)
    sources = load_source("refit30s:20", data_dir, card.sample_period_s, appliance, "test")
    if not sources:
        return {"appliance": appliance, "skipped": "House 20 has no sub-meter for it"}
    house = sources[0].house
    end = first_unmasked_days(house.frame, appliance, days)
    if end is None:
        return {"appliance": appliance, "skipped": f"fewer than {days} unmasked days"}
    fit = house.frame[house.frame.index < end]
    model = AdaptableModel(card, card_path.with_suffix(".tflite"))
    started = time.process_time()
    series = series_for(
        model, fit["aggregate"].to_numpy(np.float64), fit[appliance].to_numpy(np.float64)
    )
    result = adapt(model, series)
    fit_cpu_s = time.process_time() - started

    test = house.time_slice(end.tz_localize(None), None)  # time_slice takes naive UTC
    config = EvalConfig(model=str(card_path), plots=False)
    replay = Replay(model)
    before = evaluate_predictor(test, card, replay.shipped, config, "numpy")
    out: dict[str, Any] = {
        "appliance": appliance,
        "fit": {
            "from": str(fit.index[0]),
            "to": str(end),
            "samples": int(series.targets.size),
            "cpu_s": round(fit_cpu_s, 2),
            **result.summary(),
        },
        "test": {"from": str(end), "to": str(house.frame.index[-1]), "bundled": _metrics(before)},
        "rule_f1": (before.rule_metrics or {}).get("f1"),
    }
    if result.heads is not None:
        refit_card = replace(
            card, status=replace(card.status, probability_threshold=result.heads.threshold)
        )
        after = evaluate_predictor(test, refit_card, replay.heads(result.heads), config, "numpy")
        out["test"]["refitted"] = _metrics(after)
    out["test"]["user_gets"] = out["test"]["refitted" if result.adopted else "bundled"]
    return out


def markdown(results: list[dict[str, Any]], days: int, command: str) -> str:
    lines = [
        "# Adaptation in Home Assistant: House 20 as the household",
        "",
        f"Generated by `{command}` (plug labels: the first {days} "
        "unmasked days of REFIT House 20; test: every later day; shipped int8 bodies on the "
        'numpy engine). "re-fitted" is the re-fit as adopted: each head only where it beat '
        "the bundled model on the newest 30 % of the plug days (status: F1; power: energy "
        'closer to the plug), the whole re-fit where neither did; "user gets" is it where it '
        "was adopted, else the bundled model.",
        "",
        "| appliance | runs fit / check | adopted | F1 bundled | F1 re-fitted | F1 user gets "
        "| F1 rule | energy bundled / re-fitted / metered (kWh) | fit CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['appliance']} | {r['skipped']} | | | | | | | |")
            continue
        fit, test = r["fit"], r["test"]
        b, a, u = test["bundled"], test.get("refitted", {}), test["user_gets"]
        energy = (
            f"{fmt(b.get('predicted_energy_kwh'), '{:.1f}')} / "
            f"{fmt(a.get('predicted_energy_kwh'), '{:.1f}')} / "
            f"{fmt(b.get('true_energy_kwh'), '{:.1f}')}"
        )
        lines.append(
            f"| {r['appliance']} | {fit['runs_fit']} / {fit['runs_validation']} "
            f"| {'yes' if fit['adopted'] else 'no'}: {fit['reason']} | {fmt(b.get('f1'))} "
            f"| {fmt(a.get('f1'))} | {fmt(u.get('f1'))} | {fmt(r['rule_f1'])} | {energy} "
            f"| {fit['cpu_s']:.1f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = household.parser(__doc__.split("\n\n")[0], ROOT / "reports" / "adaptation").parse_args(
        argv
    )
    data_dir = args.data_dir or default_data_dir()
    household.run_all(
        args.appliances,
        lambda appliance: run_one(appliance, data_dir, args.days),
        args.out,
        args.days,
        lambda results: markdown(results, args.days, command_line(__file__, argv)),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
