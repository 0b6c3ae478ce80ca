"""One command: train -> quantize (every mode) -> inspect -> evaluate -> export.

The run directory ends up holding everything a reviewer needs, each artifact with the
resolved configuration beside it (``<artifact>.config.json``)::

    config.json                 the resolved PipelineConfig
    train/                      trainer.train's run (model.keras, card.json, history ...)
    models/<mode>.tflite        every converted variant (+ .config.json)
    report.md, report.json      conversion, inspection, accuracy table, export
    plots/*.png                 per-layer RMSE/scale, latency by mode, float vs quantized traces
    export/                     (or --export-dir) <name>.tflite/.json/.export.md + edgetpu/

Accuracy compares every quantized model with its float parent on the training house's
validation block and on the test house, with the same metrics (engine.metrics) and the same
post-processing (engine.model.NilmModel) the integration uses. The test house is only ever
evaluated: calibration, thresholds and the exported mode never depend on it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import __version__
from .calibration import RepresentativeSet, check_not_test_house
from .config import PipelineConfig, QuantizeConfig, SourceConfig, source_label
from .errors import TrainerError
from .files import CARD_JSON, beside, beside_path, jsonable, load_json, write_json
from .quantize import ConvertedModel
from .runs import TrainedRun

__all__ = [
    "METRIC_COLUMNS", "PipelineConfig", "PipelineResult", "TrainedRun", "export_from_run",
    "house_slice", "load_pipeline_house", "run_pipeline", "write_variant",
]  # fmt: skip

FloatArray = npt.NDArray[np.float32]
METRIC_COLUMNS = (
    "mae_w",
    "sae",
    "nde",
    "energy_per_day_error_wh",
    "f1",
    "mcc",
    "detection_delay_s",
)


# --------------------------------------------------------------------------- evaluation


def house_slice(house: Any, start: int, rows: int | None, label: str) -> Any:
    """A contiguous part of a house (same grid, masks and source tag plus ``label``)."""
    stop = None if rows is None else start + rows
    frame = house.frame.iloc[start:stop]
    if len(frame) == 0:
        raise TrainerError(f"{house.source}: nothing left to evaluate after slicing")
    return dataclasses.replace(house, frame=frame, source=f"{house.source}, {label}")


def write_variant(models_dir: Path, label: str, conv: ConvertedModel, template: Any) -> Path:
    """``<label>.tflite`` + its card (hash included), so the engine can load every variant."""
    from .export import card_for

    path = models_dir / f"{label}.tflite"
    path.write_bytes(conv.data)
    card = card_for(template, conv, name=label).with_file(path)
    path.with_suffix(".json").write_text(card.to_json(), "utf-8")
    return path


# --------------------------------------------------------------------------- pipeline


@dataclass(slots=True)
class PipelineResult:
    run_dir: Path
    report: dict[str, Any]
    export: Any
    converted: dict[str, ConvertedModel] = field(default_factory=dict)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="pipeline", unit="step", disable=not enabled, leave=True)


def load_pipeline_house(cfg: PipelineConfig, source: SourceConfig) -> Any:
    """One of the pipeline's houses (training or test) with the pipeline's data settings,
    only its appliance kept."""
    from .sources import load_selected

    return load_selected(source, dataclasses.replace(cfg.data, appliances=(cfg.appliance,)))


def run_pipeline(
    cfg: PipelineConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    log: Callable[[str], Any] = print,
    train_run: TrainedRun | None = None,
) -> PipelineResult:
    """Run every step into ``run_dir``; ``train_run`` skips training (tests, re-runs)."""
    from . import inspection as insp
    from .export import export_model
    from .quantize import convert_all

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = cfg.to_dict()
    write_json(run_dir / "config.json", resolved)
    steps = ["train", "quantize", "inspect", "evaluate", "plots", "export", "report"]
    bar = _progress(len(steps), progress)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        timings[name] = now - started
        started = now
        bar.set_postfix_str(name)
        bar.update(1)

    # 1. train (or reuse)
    if train_run is None:
        from .train import train

        house = load_pipeline_house(cfg, cfg.train_source)
        train(house, cfg.train, run_dir / "train", progress=False, log=log)
        train_run = TrainedRun.load(run_dir / "train", house=house)
    tr = train_run
    test_label = source_label(cfg.test)
    check_not_test_house(tr.house.source, [test_label])
    step("train")

    # 2. quantize
    seed = cfg.train.seed
    rep = tr.representative(cfg.representative_size, seed, [test_label])
    converted, failed = convert_all(tr.model, rep, modes=cfg.modes, seed=seed)
    models_dir = run_dir / "models"
    models_dir.mkdir(exist_ok=True)
    for label, conv in converted.items():
        path = write_variant(models_dir, label, conv, tr.card)
        beside(path, {"pipeline": resolved, "quantize": conv.config.to_dict(),
                       "representative": rep.summary(),
                       "output_order": list(conv.output_order)})  # fmt: skip
    if cfg.export_mode not in converted:
        raise TrainerError(f"export mode {cfg.export_mode} failed: {failed[cfg.export_mode]}")
    step("quantize")

    # 3. inspect
    inspect_cfg = cfg.inspect
    eval_x = tr.validation_inputs(256)
    layers: tuple[insp.LayerError, ...] = ()
    selective = None
    layer_note = ""
    if "w8_a8" in converted:
        try:
            found, selective = insp.layer_errors(tr.model, rep, inspect_cfg, eval_windows=eval_x)
            layers = tuple(found)
        except TrainerError as err:
            layer_note = f"Per-layer analysis unavailable: {err}"
    if selective is not None:
        sel_path = models_dir / "w8_a8_selective.tflite"
        sel_path.write_bytes(selective.data)
        beside(sel_path, {"pipeline": resolved, "inspect": inspect_cfg.to_dict(),
                           "denylisted_nodes": list(selective.denylisted)})  # fmt: skip
    inspections: dict[str, insp.Inspection] = {}
    for label, conv in converted.items():
        is_int8 = label.startswith("w8_a8")
        inspections[label] = insp.inspect_model(
            label, conv.data, label, eval_x[0], inspect_cfg,
            layers=layers if label == "w8_a8" else (),
            layer_note=layer_note if is_int8 else _LAYER_NOTES.get(label, ""),
            selective=selective if label == "w8_a8" else None,
        )  # fmt: skip
    step("inspect")

    # 4. evaluate: float parent and each float-I/O variant on the validation block of the
    # training house and on the test house, with trainer.evaluate (the same code and
    # metrics as `nilm-trainer evaluate`, the engine's backends for .tflite files).
    from .evaluate import EvalConfig, evaluate

    window = tr.card.window_length
    rows = None if cfg.eval_max_windows is None else cfg.eval_max_windows + window - 1
    val_start = max(0, tr.split.boundary)
    datasets = {
        "validation": house_slice(tr.house, val_start, rows, "validation block"),
        "test": house_slice(load_pipeline_house(cfg, cfg.test), 0, rows, "test house"),
    }
    variants: dict[str, str] = {"float (Keras)": str(tr.run_dir)}
    for label in converted:
        if not label.endswith("int8io"):  # same arithmetic as w8_a8; only its I/O differs
            variants[label] = str(models_dir / f"{label}.json")
    accuracy: dict[str, dict[str, dict[str, float]]] = {}
    evaluated: dict[str, dict[str, Any]] = {}
    for variant, model_ref in variants.items():
        accuracy[variant] = {}
        evaluated[variant] = {}
        for split_name, house_part in datasets.items():
            ev = evaluate(house_part, EvalConfig(model=model_ref, backend="litert", plots=False))
            evaluated[variant][split_name] = ev
            ref = evaluated["float (Keras)"][split_name]
            ok = np.isfinite(ev.true_w)
            diff = np.abs(ev.pred_w[ok] - ref.pred_w[ok])
            accuracy[variant][split_name] = {
                **ev.metrics,
                "max_abs_diff_vs_float_w": float(diff.max()) if diff.size else math.nan,
                "mean_abs_diff_vs_float_w": float(diff.mean()) if diff.size else math.nan,
                "on_agreement_vs_float": float(np.mean(ev.pred_on[ok] == ref.pred_on[ok])),
            }
    step("evaluate")

    # 5. plots
    plots: dict[str, str] = {}
    if cfg.plots:
        plots = _plots(run_dir / "plots", inspections, evaluated, resolved)
    step("plots")

    # 6. export the configured mode (chosen on the training house only)
    chosen = converted[cfg.export_mode]
    edgetpu = converted.get("w8_a8_int8io")
    export_dir = Path(cfg.export_dir) if cfg.export_dir else run_dir / "export"
    test_key = f"test_house_{cfg.test.house}"
    metrics = {
        "validation": accuracy[cfg.export_mode]["validation"],
        test_key: accuracy[cfg.export_mode]["test"],
    }
    training = {
        "source": tr.house.source,
        "train_house": source_label(cfg.train_source),
        "test_house": test_label,
        "representative": rep.summary(),
        "pipeline": _portable(resolved),
    }
    summary_md = _accuracy_table(accuracy, source_label(cfg.train_source), test_label)
    exported = export_model(
        export_dir, cfg.model_name, chosen, tr.card, edgetpu=edgetpu,
        metrics=jsonable(metrics), training=jsonable(training), report=summary_md,
    )  # fmt: skip
    # No .config.json in the models folder: the integration reads every *.json there as a
    # card. The resolved configuration travels inside the card (training.pipeline).
    step("export")

    # 7. report
    report = {
        "trainer_version": __version__,
        "config": resolved,
        "train_run": str(tr.run_dir),
        "representative": rep.summary(),
        "converted": {k: {"bytes": len(v.data), "output_order": list(v.output_order)}
                      for k, v in converted.items()},
        "failed": failed,
        "inspection": {k: v.to_dict() for k, v in inspections.items()},
        "accuracy": accuracy,
        "plots": plots,
        "export": {
            "mode": cfg.export_mode,
            "model": str(exported.model_path),
            "card": str(exported.card_path),
            "edgetpu_input": str(exported.edgetpu_input) if exported.edgetpu_input else None,
            "edgetpu_compiler_command": exported.compiler_command,
            "test_metrics": test_key,
        },
        "timings_s": timings,
    }  # fmt: skip
    write_json(run_dir / "report.json", report)
    md = _report_markdown(cfg, report, inspections, summary_md, rep, card=tr.card)
    (run_dir / "report.md").write_text(md, "utf-8")
    beside(run_dir / "report.md", resolved)
    step("report")
    bar.close()
    return PipelineResult(run_dir, report, exported, converted)


def _portable(resolved: dict[str, Any]) -> dict[str, Any]:
    """The resolved configuration without this machine's folders (it travels in the card)."""
    out = dict(resolved, export_dir=None)
    out["train"] = dict(resolved["train"], data={**resolved["train"]["data"], "data_dir": None})
    out["test"] = dict(resolved["test"], data_dir=None)
    return out


_LAYER_NOTES = {
    "w8": "No per-layer table: dynamic-range models keep float activations (the quantization "
    "debugger instruments full-int8 models); the accuracy table shows this mode's cost.",
    "w8_a16": "No per-layer table: the quantization debugger instruments int8 activations "
    "only; the accuracy table shows this mode's cost.",
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _accuracy_table(
    accuracy: dict[str, dict[str, dict[str, float]]], train_label: str, test_label: str
) -> str:
    """One table: every variant's metrics on the validation block and the test house side by
    side, with its distance to the float parent (the cost of the mode)."""
    metrics = [("MAE W", "mae_w", 1), ("SAE", "sae", 3), ("F1", "f1", 3), ("MCC", "mcc", 3),
               ("delay s", "detection_delay_s", 0), ("mean abs Δ W", "mean_abs_diff_vs_float_w", 2),
               ("on/off agr.", "on_agreement_vs_float", 4)]  # fmt: skip
    splits = (("validation", "val"), ("test", "test"))
    header = [f"{short} {name}" for _, short in splits for name, _, _ in metrics]
    lines = [
        f"val = {train_label} validation block (held out from training); test = {test_label} "
        "(unseen test house, never used to choose anything). Δ and agreement compare with "
        "the float Keras parent on the same windows.",
        "",
        "| variant | " + " | ".join(header) + " |",
        "|---" * (len(header) + 1) + "|",
    ]
    for variant, per_split in accuracy.items():
        cells = [
            _fmt(per_split[split].get(key), digits)
            for split, _ in splits
            for _, key, digits in metrics
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _report_markdown(
    cfg: PipelineConfig,
    report: dict[str, Any],
    inspections: dict[str, Any],
    accuracy_md: str,
    rep: RepresentativeSet,
    *,
    card: Any,
) -> str:
    from .inspection import BACKEND_LABELS

    s = rep.summary()
    lines = [
        f"# NILM pipeline report: {cfg.appliance} ({cfg.train.model.architecture})",
        "",
        f"Trainer {__version__}. Train: {source_label(cfg.train_source)}; test: "
        f"{source_label(cfg.test)} (evaluated only). Window {card.window_length}, target "
        f"index {card.target_index}.",
        "",
        "## Calibration (representative dataset)",
        "",
        f"{s['size']} windows ({s['on']} on / {s['off']} off, threshold "
        f"{s['on_threshold_w']:g} W), seed {s['seed']}, from {s['source']}; excluded: "
        f"{', '.join(s['excluded_houses'])}. {' '.join(s['notes'])}",
        "",
        "## Conversion",
        "",
        "| variant | bytes | ops |",
        "|---|---|---|",
    ]
    for label, ins in inspections.items():
        ops = ", ".join(f"{op.opcode}x{op.count}" for op in ins.ops)
        lines.append(f"| {label} | {ins.size_bytes:,} | {ops} |")
    for label, err in report["failed"].items():
        lines.append(f"| {label} | failed | {err.replace('|', '/')} |")
    backends = list(BACKEND_LABELS)
    header = ["| variant | " + " | ".join(BACKEND_LABELS[b] for b in backends) + " |",
              "|---" * (len(backends) + 1) + "|"]  # fmt: skip

    def latency(r: Any) -> str:
        return f"{r.median_ms:.3f}"

    def memory(r: Any) -> str:
        return "-" if r.peak_memory_bytes is None else f"{r.peak_memory_bytes / 1024:.0f}"

    for title, cell in (
        ("Latency (median ms per window, batch 1, measured in the same run)", latency),
        ("Peak memory of one inference (KiB; how it is measured: see each variant below)", memory),
    ):
        lines += ["", f"## {title}", "", *header]
        for label, ins in inspections.items():
            cells = []
            for b in backends:
                run = next((r for r in ins.backends if r.backend == b), None)
                cells.append("-" if run is None or run.error else cell(run))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Accuracy: each variant vs its float parent",
        "",
        f"Same code and metrics as `nilm-trainer evaluate`, power gated by the status head. "
        f"'delay s' is the median detection delay at the target sample; on top of it every "
        f"prediction lags real time by the window geometry ({card.delay_s:g} s).",
        "",
        accuracy_md,
    ]
    lines += ["## Inspection per variant", ""]
    lines += [ins.markdown() for ins in inspections.values()]
    exp = report["export"]
    lines += [
        "## Export",
        "",
        f"Mode `{exp['mode']}` (chosen in the configuration, never on the test house): "
        f"`{exp['model']}` + `{exp['card']}`.",
    ]
    if exp["edgetpu_compiler_command"]:
        lines += [
            "",
            f"Edge TPU input: `{exp['edgetpu_input']}`. Compile where the compiler exists:",
            "",
            "```sh",
            exp["edgetpu_compiler_command"],
            "```",
        ]
    if report["plots"]:
        lines += ["", "## Plots", ""]
        lines += [f"![{k}]({v})" for k, v in report["plots"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots


def _plots(
    folder: Path,
    inspections: dict[str, Any],
    evaluated: dict[str, dict[str, Any]],
    resolved: dict[str, Any],
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .inspection import BACKEND_LABELS, IDEAL_RMSE_OVER_SCALE

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}

    w8 = inspections.get("w8_a8")
    if w8 is not None and w8.layers:
        fig, ax = plt.subplots(figsize=(9, 4))
        ratios = [layer.rmse_over_scale for layer in w8.layers]
        colors = ["tab:red" if layer.suspected else "tab:blue" for layer in w8.layers]
        ax.bar(range(len(ratios)), ratios, color=colors)
        ax.set_xticks(range(len(ratios)))
        ax.set_xticklabels([f"{la.tensor_index}:{la.op_name}" for la in w8.layers],
                           rotation=60, ha="right", fontsize=7)  # fmt: skip
        ax.axhline(IDEAL_RMSE_OVER_SCALE, color="k", ls="--", label="ideal 1/sqrt(12)")
        ax.axhline(w8.config.suspect_threshold, color="tab:red", ls=":", label="suspected above")
        ax.set_ylabel("RMSE / scale")
        ax.set_title("Per-layer quantization error (full int8)")
        ax.legend()
        fig.tight_layout()
        out["layer_error"] = _save(fig, folder / "layer_error.png", resolved)

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = list(inspections)
    width = 0.8 / len(BACKEND_LABELS)
    for k, backend in enumerate(BACKEND_LABELS):
        vals = []
        for label in labels:
            run = next((r for r in inspections[label].backends if r.backend == backend), None)
            vals.append(np.nan if run is None or run.error else run.median_ms)
        ax.bar(np.arange(len(labels)) + k * width, vals, width, label=BACKEND_LABELS[backend])
    ax.set_xticks(np.arange(len(labels)) + width)
    ax.set_xticklabels(labels, rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("median latency, ms (batch 1)")
    ax.set_title("Latency by mode and backend")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out["latency"] = _save(fig, folder / "latency.png", resolved)

    for split in ("validation", "test"):
        ref = evaluated["float (Keras)"][split]
        truth = np.asarray(ref.true_w, dtype=np.float64)
        span = min(720, truth.size)  # 6 h at 30 s around the largest true activation
        centre = int(np.argmax(np.nan_to_num(truth, nan=-1.0)))
        lo = max(0, min(centre - span // 2, truth.size - span))
        sl = slice(lo, lo + span)
        fig, ax = plt.subplots(figsize=(10, 4))
        t = ref.times[sl]
        ax.plot(t, ref.mains_w[sl], color="0.85", lw=0.8, label="mains")
        ax.plot(t, truth[sl], color="k", lw=1.2, label="ground truth")
        for variant, per_split in evaluated.items():
            ax.plot(t, per_split[split].pred_w[sl], lw=0.9, label=variant)
        ax.set_ylabel("W")
        ax.set_title(f"Float vs quantized predictions ({split}, gated as in the integration)")
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        out[f"traces_{split}"] = _save(fig, folder / f"traces_{split}.png", resolved)
    return out


def _save(fig: Any, path: Path, resolved: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    beside(path, resolved)
    return f"plots/{path.name}"


# --------------------------------------------------------------------------- export from run


def export_from_run(
    run_dir: Path, *, mode: str | None = None, name: str | None = None, out_dir: Path | None = None
) -> Any:
    """Re-export a variant of a finished pipeline run (e.g. another mode)."""
    from custom_components.nilm.engine.card import ModelCard

    from .export import export_model

    run_dir = Path(run_dir)
    report = load_json(run_dir / "report.json")
    exported = report["export"]
    mode = mode or exported["mode"]
    path = run_dir / "models" / f"{mode}.tflite"
    if not path.is_file():
        raise TrainerError(f"{run_dir} has no converted {mode} model")
    template = ModelCard.from_dict(load_json(Path(report["train_run"]) / CARD_JSON))

    def converted(p: Path, label_cfg: QuantizeConfig) -> ConvertedModel:
        meta = load_json(beside_path(p))
        return ConvertedModel(
            p.read_bytes(), label_cfg, tuple(meta["output_order"]), (1, template.window_length)
        )

    chosen = converted(path, QuantizeConfig(mode=mode))
    tpu_path = run_dir / "models" / "w8_a8_int8io.tflite"
    tpu = (
        converted(tpu_path, QuantizeConfig(mode="w8_a8", int8_io=True))
        if tpu_path.is_file()
        else None
    )
    return export_model(
        out_dir or run_dir / "export",
        name or Path(exported["model"]).stem,
        chosen,
        template,
        edgetpu=tpu,
        metrics={
            "validation": report["accuracy"][mode]["validation"],
            exported["test_metrics"]: report["accuracy"][mode]["test"],
        },
        training={
            "representative": report["representative"],
            "pipeline": _portable(report["config"]),
        },
    )
