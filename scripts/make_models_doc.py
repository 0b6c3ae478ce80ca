"""Write docs/models.md and README.md's accuracy table from the bundled models' reports.

Inputs, one folder per appliance under ``--reports`` (default ``reports/bundled``):

* ``<appliance>/metrics.json`` (required): ``nilm-trainer evaluate``'s output for the
  shipped model: ``{"model": {...}, "rule": {...}, "card": {...}, "house", "span",
  "samples", "backend", "command"}``;
* ``<appliance>/seeds.json`` (optional, written by the training script):
  ``{"selected_seed", "seeds": [{"seed", "validation": {"f1", "loss"},
  "test_house_20": {"f1", "mcc", "sae"}}, ...], "reference_cnn": {...}}``;
* ``<appliance>/day.png`` (optional): copied to ``<docs dir>/img/<appliance>_day.png``;
* ``fridge/unseen_houses.json`` (optional): ``{"houses": [{"house", "f1",
  "event_recall"}, ...]}``.

Outputs: ``--docs`` (default ``docs/models.md``) and the block between
``<!-- models:start -->`` and ``<!-- models:end -->`` in ``--readme`` (default
``README.md``); without those markers nothing is written and the exit status is 2.
Both outputs name the command that regenerates them. Standard library and
``trainer.summary`` (itself standard library) only.

Run: ``python scripts/make_models_doc.py [--reports DIR] [--docs FILE] [--readme FILE]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.summary import format_spread, spread

START = "<!-- models:start -->"
END = "<!-- models:end -->"
DEFAULT_REPORTS = "reports/bundled"
DEFAULT_DOCS = "docs/models.md"
DEFAULT_README = "README.md"
ORDER = ("kettle", "microwave", "dishwasher", "washing_machine", "fridge")


class DocError(Exception):
    """A problem with the inputs: one line on stderr, exit status 2."""


# ------------------------------------------------------------------------- formatting


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fmt(value: Any, spec: str = "{:.2f}") -> str:
    v = _num(value)
    return "n/a" if v is None else spec.format(v)


def fmt_delay(value: Any) -> str:
    """Signed seconds, minutes from 10 min on."""
    v = _num(value)
    if v is None:
        return "n/a"
    if abs(v) >= 600:
        return f"{v / 60:+.0f} min"
    return f"{v:+.0f} s"


def fmt_energy(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "n/a"
    pred, true = _num(metrics.get("predicted_energy_kwh")), _num(metrics.get("true_energy_kwh"))
    if pred is None or true is None:
        return "n/a"
    return f"{pred:.1f} / {true:.1f} kWh"


def fmt_delays(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "n/a"
    return (
        f"{fmt_delay(metrics.get('running_on_delay_s'))} / "
        f"{fmt_delay(metrics.get('running_off_delay_s'))}"
    )


def title(appliance: str) -> str:
    return appliance.replace("_", " ").capitalize()


def span_text(report: dict[str, Any]) -> str:
    span = report.get("span") or [None, None]
    first, last = (str(s)[:10] if s else "?" for s in span[:2])
    return f"{first} .. {last}"


def data_text(report: dict[str, Any]) -> str:
    card = report.get("card") or {}
    period = _num(card.get("sample_period_s"))
    samples = report.get("samples")
    parts = [str(report.get("house", "unknown data")), span_text(report)]
    if isinstance(samples, int):
        parts.append(f"{samples:,} samples" + (f" at {period:g} s" if period else ""))
    return ", ".join(parts)


# ------------------------------------------------------------------------- inputs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DocError(f"{path}: {err}") from err


def load_reports(reports: Path) -> dict[str, dict[str, Any]]:
    """``{appliance: {"metrics": ..., "seeds": ... | None, "day": Path | None}}``."""
    if not reports.is_dir():
        raise DocError(f"no reports folder {reports}")
    found: dict[str, dict[str, Any]] = {}
    for folder in sorted(p for p in reports.iterdir() if p.is_dir()):
        metrics_path = folder / "metrics.json"
        seeds_path = folder / "seeds.json"
        unseen_path = folder / "unseen_houses.json"
        day = folder / "day.png"
        metrics = None
        if metrics_path.is_file():
            metrics = _read_json(metrics_path)
            if not isinstance(metrics, dict) or not isinstance(metrics.get("model"), dict):
                raise DocError(f"{metrics_path}: not an evaluate report (no 'model' metrics)")
        elif not unseen_path.is_file():
            continue  # nothing measured here (the fridge has only unseen_houses.json)
        found[folder.name] = {
            "metrics": metrics,
            "seeds": _read_json(seeds_path) if seeds_path.is_file() else None,
            "unseen": _read_json(unseen_path) if unseen_path.is_file() else None,
            "day": day if day.is_file() else None,
        }
    if not found:
        raise DocError(f"no <appliance>/metrics.json (or unseen_houses.json) under {reports}")
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0])))


# ------------------------------------------------------------------------- seeds


def _test_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The test block of a seed entry: ``test_house_20`` (or another ``test_house_*``),
    else the mean over the houses of ``test`` (``{house: {metric: value}}``)."""
    for key, value in entry.items():
        if key.startswith("test_house") and isinstance(value, dict):
            return value
    per_house = entry.get("test")
    if isinstance(per_house, dict):
        houses = [h for h in per_house.values() if isinstance(h, dict)]
        keys = {k for h in houses for k in h}
        means: dict[str, Any] = {}
        for key in keys:
            values = [v for h in houses if (v := _num(h.get(key))) is not None]
            means[key] = statistics.fmean(values) if values else None
        return means
    return {}


def unseen_houses(entry: dict[str, Any]) -> list[dict[str, Any]]:
    unseen = entry.get("unseen")
    houses = unseen.get("houses") if isinstance(unseen, dict) else None
    return [h for h in houses if isinstance(h, dict)] if isinstance(houses, list) else []


def _seed_list(block: Any) -> list[dict[str, Any]]:
    if not isinstance(block, dict):
        return []
    seeds = block.get("seeds")
    if isinstance(seeds, list):
        return [s for s in seeds if isinstance(s, dict)]
    return [block] if ("validation" in block or _test_entry(block)) else []


def seeds_section(seeds: dict[str, Any]) -> list[str]:
    entries = _seed_list(seeds)
    if not entries:
        return []
    ensemble = seeds.get("ensemble") if isinstance(seeds.get("ensemble"), dict) else None
    shipped_ensemble = seeds.get("selected_run") == "ensemble" and ensemble is not None
    selected = None if shipped_ensemble else seeds.get("selected_seed")
    lines = [
        "Seeds, and their ensemble (one model averaging the seeds' heads). What ships is "
        "chosen on the validation score, the mean of the F1 on REFIT House 2's validation "
        "months and on validation houses no model trained on: the ensemble if it scores at "
        "least the seeds' mean, else the best seed. The test-house columns are reported, "
        "never used to choose:",
        "",
        "| seed | validation F1 | validation loss | test F1 | test MCC | test SAE |",
        "|---|---|---|---|---|---|",
    ]
    for entry in entries:
        val = entry.get("validation") or {}
        test = _test_entry(entry)
        mark = " (shipped)" if entry.get("seed") == selected and selected is not None else ""
        lines.append(
            f"| {entry.get('seed', '?')}{mark} | {fmt(val.get('f1'), '{:.3f}')} | "
            f"{fmt(val.get('loss'), '{:.4f}')} | {fmt(test.get('f1'), '{:.3f}')} | "
            f"{fmt(test.get('mcc'), '{:.3f}')} | {fmt(test.get('sae'), '{:.3f}')} |"
        )
    if ensemble is not None:
        members = ", ".join(str(m) for m in ensemble.get("seeds") or [])
        mark = " (shipped)" if shipped_ensemble else ""
        val = ensemble.get("validation") or {}
        test = "int8: the table above | | " if shipped_ensemble else "— | — | — "
        lines.append(
            f"| ensemble of {members}{mark} | {fmt(val.get('f1'), '{:.3f}')} | — | {test}|"
        )
    for key, label in (("f1", "F1"), ("mcc", "MCC")):
        values = [v for e in entries if (v := _num(_test_entry(e).get(key))) is not None]
        lines.append("")
        lines.append(f"Test {label} over seeds: mean ± sd {format_spread(spread(values))}.")
    reference = _seed_list(seeds.get("reference_cnn"))
    if reference:
        f1s = [v for e in reference if (v := _num(_test_entry(e).get("f1"))) is not None]
        vals = [
            v for e in reference if (v := _num((e.get("validation") or {}).get("f1"))) is not None
        ]
        lines.append("")
        lines.append(
            "Reference CNN (seq2point, for comparison): validation F1 "
            f"{format_spread(spread(vals))}; test F1 {format_spread(spread(f1s))}."
        )
        carried = (seeds.get("reference_cnn") or {}).get("carried_over")
        if isinstance(carried, str):
            lines.append(f"The reference was {carried}.")
    return lines


# ------------------------------------------------------------------------- documents

MODEL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("f1", "F1", "{:.3f}"),
    ("mcc", "MCC", "{:.3f}"),
    ("precision", "Precision", "{:.3f}"),
    ("recall", "Recall", "{:.3f}"),
    ("event_recall", "Event recall", "{:.3f}"),
    ("event_precision", "Event precision", "{:.3f}"),
    ("true_events", "True events", "{:.0f}"),
    ("predicted_events", "Predicted events", "{:.0f}"),
    ("mae_w", "MAE", "{:.1f} W"),
    ("sae", "SAE", "{:.3f}"),
    ("nde", "NDE", "{:.3f}"),
    ("energy_per_day_error_wh", "Energy/day error", "{:.0f} Wh"),
)


def appliance_section(name: str, entry: dict[str, Any], img_rel: str | None) -> list[str]:
    report = entry["metrics"]
    if report is None:
        lines = [f"## {title(name)}", ""]
        lines += ["No single test house for this appliance: see the unseen houses below.", ""]
        return lines + extras_section(name, entry, img_rel)
    model = report.get("model") or {}
    rule = report.get("rule") or {}
    card = report.get("card") or {}
    sha = card.get("sha256")
    lines = [
        f"## {title(name)}",
        "",
        f"Model `{card.get('name', name)}`: {card.get('quantization', '?')}, "
        f"{fmt(card.get('sample_period_s'), '{:g}')} s samples, window "
        f"{card.get('window_length', '?')}, target index {card.get('target_index', '?')}"
        + (f", sha256 `{str(sha)[:12]}…`" if sha else "")
        + f". Test data: {data_text(report)}; backend `{report.get('backend', '?')}`.",
        "",
    ]
    if report.get("command"):
        lines += [f"Evaluated with `{report['command']}`.", ""]
    lines += ["| metric | model | rule baseline |", "|---|---|---|"]
    for key, label, spec in MODEL_ROWS:
        lines.append(f"| {label} | {fmt(model.get(key), spec)} | {fmt(rule.get(key), spec)} |")
    lines.append(f"| Energy predicted / metered | {fmt_energy(model)} | {fmt_energy(rule)} |")
    lines.append(
        f"| Energy counted by the live tracker | "
        f"{fmt(model.get('tracker_energy_kwh'), '{:.1f} kWh')} | n/a |"
    )
    for key, label in (("on", "on"), ("off", "off")):
        cells = []
        for m in (model, rule):
            n = _num(m.get(f"running_{key}_delay_events"))
            count = f" ({n:.0f} events)" if n is not None else ""
            cells.append(fmt_delay(m.get(f"running_{key}_delay_s")) + count)
        lines.append(f"| Running {label} delay (median) | {cells[0]} | {cells[1]} |")
    lines.append("")
    baseline = report.get("rule_baseline") or {}
    if baseline.get("summary"):
        lines += [f"Rule baseline: {baseline['summary']}.", ""]
    return lines + extras_section(name, entry, img_rel)


def extras_section(name: str, entry: dict[str, Any], img_rel: str | None) -> list[str]:
    """Seeds, unseen houses and the day plot, where present."""
    lines: list[str] = []
    seeds = entry.get("seeds")
    if isinstance(seeds, dict):
        section = seeds_section(seeds)
        if section:
            lines += [*section, ""]
    houses = unseen_houses(entry)
    if houses:
        lines += [
            "The shipped model on each unseen house:",
            "",
            "| house | F1 | event recall |",
            "|---|---|---|",
        ]
        for h in houses:
            lines.append(
                f"| {h.get('house', '?')} | {fmt(h.get('f1'), '{:.3f}')} | "
                f"{fmt(h.get('event_recall'), '{:.3f}')} |"
            )
        lines.append("")
    if img_rel:
        lines += [f"![{title(name)}: one day of the test house]({img_rel})", ""]
    return lines


def regenerate_command(args: argparse.Namespace) -> str:
    words = ["python", "scripts/make_models_doc.py"]
    for flag, value, default in (
        ("--reports", args.reports, DEFAULT_REPORTS),
        ("--docs", args.docs, DEFAULT_DOCS),
        ("--readme", args.readme, DEFAULT_README),
    ):
        if str(value) != default:
            words += [flag, str(value)]
    return shlex.join(words)


def data_lines(reports: dict[str, dict[str, Any]]) -> list[str]:
    """One line per distinct test data set (the fridge may be scored elsewhere)."""
    by_data: dict[str, list[str]] = {}
    for name, entry in reports.items():
        report = entry["metrics"]
        if report is None:
            key = "unseen houses (listed in the details)"
        else:
            key = f"{data_text(report)} ({report.get('backend', '?')} backend)"
        by_data.setdefault(key, []).append(title(name).lower())
    if len(by_data) == 1:
        return [next(iter(by_data))]
    return [f"{text}: {', '.join(names)}" for text, names in by_data.items()]


def models_doc(reports: dict[str, dict[str, Any]], command: str, images: dict[str, str]) -> str:
    lines = [
        f"<!-- Generated by `{command}` from the evaluate reports; do not edit by hand. -->",
        "",
        "# Bundled models: how good they are",
        "",
        f"Generated by `{command}` from `nilm-trainer evaluate` reports of each shipped "
        "model (its `metrics.json`); do not edit by hand.",
        "",
        "Test data, never used for training or choosing anything:",
        "",
        *[f"- {line}" for line in data_lines(reports)],
        "",
        "How to read the numbers: *truth* is the appliance's own definition of running "
        "(sub-meter power above its threshold with its minimum on/off durations), the "
        "*model* column is the shipped `.tflite` on the engine Home Assistant runs, with the "
        "card's on/off rule, and the *rule baseline* is a non-learned step detector on the "
        "mains (`trainer/baselines.py`) scored on the same samples. An event is a run of "
        "'on'; event recall is the share of true events that a predicted event overlaps, "
        "event precision the share of predicted events that overlap a true one. The "
        "*Running* delays are those of the integration's binary sensor (the streaming "
        "tracker, including the model's latency and the card's minimum on time): median "
        "seconds from the true switch-on/off to the entity's.",
        "",
    ]
    for name, entry in reports.items():
        lines += appliance_section(name, entry, images.get(name))
    return "\n".join(lines).rstrip() + "\n"


def readme_block(reports: dict[str, dict[str, Any]], command: str, docs_link: str) -> str:
    rows = [
        "| appliance | F1 model | F1 rule | energy predicted / metered | "
        "Running on / off delay (median) |",
        "|---|---|---|---|---|",
    ]
    for name, entry in reports.items():
        report = entry["metrics"]
        if report is None:
            f1s = [v for h in unseen_houses(entry) if (v := _num(h.get("f1"))) is not None]
            f1 = f"{statistics.fmean(f1s):.2f} (mean of {len(f1s)} houses)" if f1s else "n/a"
            rows.append(f"| {title(name).lower()} | {f1} | n/a | n/a | n/a |")
            continue
        model = report.get("model") or {}
        rule = report.get("rule") or {}
        rows.append(
            f"| {title(name).lower()} | {fmt(model.get('f1'))} | {fmt(rule.get('f1'))} | "
            f"{fmt_energy(model)} | {fmt_delays(model)} |"
        )
    commands = [e["metrics"].get("command") for e in reports.values() if e["metrics"]]
    first = next((c for c in commands if c), None)
    example = f" (e.g. `{first}`)" if first else ""
    data = data_lines(reports)
    data_text_ = data[0] if len(data) == 1 else "; ".join(data)
    return "\n".join(
        [
            "",
            f"Measured on {data_text_}: the shipped models as Home Assistant runs them, "
            "against a non-learned rule baseline on the same samples. Generated by "
            f"`{command}` from `nilm-trainer evaluate` reports{example}; do not edit "
            f"between the markers. Details, seeds and plots: [{docs_link}]({docs_link}).",
            "",
            *rows,
            "",
        ]
    )


def replace_block(text: str, block: str) -> str:
    start = text.find(START)
    end = text.find(END)
    if start < 0 or end < 0 or end < start:
        raise DocError(f"README has no '{START}' ... '{END}' block to replace")
    return text[: start + len(START)] + block + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", default=DEFAULT_REPORTS, help="default: %(default)s")
    parser.add_argument("--docs", default=DEFAULT_DOCS, help="default: %(default)s")
    parser.add_argument("--readme", default=DEFAULT_README, help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        reports = load_reports(Path(args.reports))
        readme = Path(args.readme)
        try:
            readme_text = readme.read_text(encoding="utf-8")
        except OSError as err:
            raise DocError(f"{readme}: {err}") from err
        command = regenerate_command(args)
        docs = Path(args.docs)
        docs_link = Path(os.path.relpath(docs, readme.parent)).as_posix()
        new_readme = replace_block(readme_text, readme_block(reports, command, docs_link))
    except DocError as err:
        print(f"make_models_doc: error: {err}", file=sys.stderr)
        return 2
    images: dict[str, str] = {}
    img_dir = docs.parent / "img"
    for name, entry in reports.items():
        if entry["day"] is not None:
            img_dir.mkdir(parents=True, exist_ok=True)
            target = img_dir / f"{name}_day.png"
            shutil.copyfile(entry["day"], target)
            images[name] = Path(os.path.relpath(target, docs.parent)).as_posix()
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(models_doc(reports, command, images), encoding="utf-8")
    readme.write_text(new_readme, encoding="utf-8")
    print(f"wrote {docs} and the models block of {readme} ({', '.join(reports)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
