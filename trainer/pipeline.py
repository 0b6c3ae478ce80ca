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

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import __version__
from .errors import TrainerError
from .quantize import MODES, ConvertedModel, RepresentativeSet, check_not_test_house

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


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Everything the one-shot pipeline needs; written to ``config.json``.

    ``target_index`` None puts the target at the window's midpoint. ``eval_max_windows``
    bounds each evaluation (the first N valid windows in time order: a contiguous stretch,
    so onsets and delays stay meaningful); None evaluates every window.
    """

    appliance: str
    name: str = ""
    data_dir: str = ""
    train_house: int = 2
    test_house: int = 20
    train_months: tuple[str, ...] | None = None
    test_months: tuple[str, ...] | None = None
    architecture: str = "compact"
    window_length: int = 99
    target_index: int | None = 96
    width: float = 1.0
    dropout: float = 0.1
    epochs: int = 20
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 4
    steps_per_epoch: int | None = None
    max_windows: int | None = 200_000
    on_share: float | None = 0.2
    max_validation_windows: int | None = 50_000
    validation_fraction: float = 0.2
    seed: int = 0
    modes: tuple[str, ...] = MODES
    export_mode: str = "w8_a8"
    representative_size: int = 256
    eval_max_windows: int | None = 100_000
    suspect_ratio: float = 2.5
    selective: bool = True
    latency_runs: int = 30
    export_dir: str = ""
    plots: bool = True

    def __post_init__(self) -> None:
        from .data import check_appliance

        check_appliance(self.appliance)
        if self.train_house == self.test_house:
            raise TrainerError("the test house must differ from the training house")
        unknown = sorted(set(self.modes) - set(MODES))
        if unknown:
            raise TrainerError(f"unknown mode(s) {unknown}; known: {', '.join(MODES)}")
        if self.export_mode not in self.modes:
            raise TrainerError(f"export mode {self.export_mode} is not among the modes run")

    @property
    def model_name(self) -> str:
        return self.name or self.appliance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(payload), indent=2, sort_keys=True) + "\n", "utf-8")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _beside(artifact: Path, config: dict[str, Any]) -> None:
    """The resolved configuration next to an artifact, so a file found alone explains itself."""
    _write_json(artifact.with_name(artifact.stem + ".config.json"), config)


# --------------------------------------------------------------------------- trained runs


@dataclass(slots=True)
class TrainedRun:
    """A trainer.train run directory reloaded: model, card template, data and windows."""

    run_dir: Path
    model: Any
    card: Any
    train_config: Any
    house: Any
    split: Any

    @classmethod
    def load(cls, run_dir: Path, data_dir: str | None = None, house: Any = None) -> TrainedRun:
        from custom_components.nilm.engine.card import ModelCard

        from .data import add_data_arguments, load_source
        from .models import load_keras_model
        from .train import TrainConfig
        from .windows import make_windows

        run_dir = Path(run_dir)
        for needed in ("model.keras", "config.json", "card.json"):
            if not (run_dir / needed).is_file():
                raise TrainerError(f"{run_dir} is not a finished training run (no {needed})")
        config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text("utf-8")))
        if house is None:
            parser = argparse.ArgumentParser()
            add_data_arguments(parser)
            args = parser.parse_args([])
            for key, value in dict(config.data).items():
                if value is not None:  # None means "the default" (e.g. the data folder)
                    setattr(args, key, value)
            if data_dir:
                args.data_dir = data_dir
            args.appliance = [config.appliance]
            house = load_source(args)
        card = ModelCard.from_dict(json.loads((run_dir / "card.json").read_text("utf-8")))
        return cls(
            run_dir=run_dir,
            model=load_keras_model(str(run_dir / "model.keras")),
            card=card,
            train_config=config,
            house=house,
            split=make_windows(house, config.appliance, config.windows),
        )

    def representative(
        self, size: int, seed: int, test_houses: Sequence[str | int]
    ) -> RepresentativeSet:
        """Balanced calibration windows from this run's training and validation blocks."""
        from .quantize import representative_from_windows

        return representative_from_windows(
            [self.split.train, self.split.validation],
            house=self.house.source,
            test_houses=test_houses,
            source=f"{self.house.source}: training + validation blocks",
            size=size,
            seed=seed,
        )

    def validation_inputs(self, limit: int) -> FloatArray:
        from .train import thin

        pick = thin(len(self.split.validation), limit)
        return self.split.validation.inputs(pick)  # type: ignore[no-any-return]


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


def _load_house(cfg: PipelineConfig, house: int, months: tuple[str, ...] | None) -> Any:
    from .data import DataConfig, default_data_dir, load_refit_30s

    root = Path(cfg.data_dir) if cfg.data_dir else default_data_dir()
    return load_refit_30s(
        root, house, list(months) if months else None, DataConfig(appliances=(cfg.appliance,))
    )


def _train_config(cfg: PipelineConfig) -> Any:
    from .models import ModelConfig
    from .train import TrainConfig
    from .windows import WindowConfig

    target: float | int = 0.5 if cfg.target_index is None else cfg.target_index
    return TrainConfig(
        appliance=cfg.appliance,
        model=ModelConfig(
            architecture=cfg.architecture,
            window_length=cfg.window_length,
            dropout=cfg.dropout,
            width=cfg.width,
        ),
        windows=WindowConfig(
            window_length=cfg.window_length,
            target_position=target,
            seed=cfg.seed,
            validation_fraction=cfg.validation_fraction,
            max_windows=cfg.max_windows,
            on_share=cfg.on_share,
        ),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        patience=cfg.patience,
        seed=cfg.seed,
        steps_per_epoch=cfg.steps_per_epoch,
        max_validation_windows=cfg.max_validation_windows,
        data={
            "source": "refit30s",
            "house": cfg.train_house,
            "months": list(cfg.train_months) if cfg.train_months else None,
            "data_dir": cfg.data_dir or None,
        },
    )


def run_pipeline(
    cfg: PipelineConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    log: Callable[[str], Any] = print,
    train_run: TrainedRun | None = None,
) -> PipelineResult:
    """Run every step into ``run_dir``; ``train_run`` skips training (tests, re-runs)."""
    from . import inspect as insp
    from .export import export_model
    from .quantize import convert_all

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = cfg.to_dict()
    _write_json(run_dir / "config.json", resolved)
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

        house = _load_house(cfg, cfg.train_house, cfg.train_months)
        train(house, _train_config(cfg), run_dir / "train", progress=False, log=log)
        train_run = TrainedRun.load(run_dir / "train", house=house)
    tr = train_run
    test_label = f"REFIT house {cfg.test_house}"
    check_not_test_house(tr.house.source, [test_label])
    step("train")

    # 2. quantize
    rep = tr.representative(cfg.representative_size, cfg.seed, [test_label])
    converted, failed = convert_all(tr.model, rep, modes=cfg.modes, seed=cfg.seed)
    models_dir = run_dir / "models"
    models_dir.mkdir(exist_ok=True)
    for label, conv in converted.items():
        path = write_variant(models_dir, label, conv, tr.card)
        _beside(path, {"pipeline": resolved, "quantize": conv.config.to_dict(),
                       "representative": rep.summary(),
                       "output_order": list(conv.output_order)})  # fmt: skip
    if cfg.export_mode not in converted:
        raise TrainerError(f"export mode {cfg.export_mode} failed: {failed[cfg.export_mode]}")
    step("quantize")

    # 3. inspect
    inspect_cfg = insp.InspectConfig(
        suspect_ratio=cfg.suspect_ratio, selective=cfg.selective, latency_runs=cfg.latency_runs
    )
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
        _beside(sel_path, {"pipeline": resolved, "inspect": inspect_cfg.to_dict(),
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

    rows = None if cfg.eval_max_windows is None else cfg.eval_max_windows + cfg.window_length - 1
    val_start = max(0, tr.split.boundary)
    datasets = {
        "validation": house_slice(tr.house, val_start, rows, "validation block"),
        "test": house_slice(
            _load_house(cfg, cfg.test_house, cfg.test_months), 0, rows, "test house"
        ),
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
    metrics = {
        "validation": accuracy[cfg.export_mode]["validation"],
        f"test_house_{cfg.test_house}": accuracy[cfg.export_mode]["test"],
    }
    training = {
        "source": tr.house.source,
        "train_house": f"REFIT house {cfg.train_house}",
        "test_house": test_label,
        "representative": rep.summary(),
        "pipeline": {k: v for k, v in resolved.items() if k not in ("data_dir", "export_dir")},
    }
    summary_md = _accuracy_table(accuracy, cfg.test_house)
    exported = export_model(
        export_dir, cfg.model_name, chosen, tr.card, edgetpu=edgetpu,
        metrics=_json_safe(metrics), training=_json_safe(training), report=summary_md,
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
        },
        "timings_s": timings,
    }  # fmt: skip
    _write_json(run_dir / "report.json", report)
    md = _report_markdown(cfg, report, inspections, summary_md, rep, delay_s=tr.card.delay_s)
    (run_dir / "report.md").write_text(md, "utf-8")
    _beside(run_dir / "report.md", resolved)
    step("report")
    bar.close()
    return PipelineResult(run_dir, report, exported, converted)


_LAYER_NOTES = {
    "w8": "No per-layer table: dynamic-range models keep float activations (the quantization "
    "debugger instruments full-int8 models); the accuracy table shows this mode's cost.",
    "w8_a16": "No per-layer table: the quantization debugger instruments int8 activations "
    "only; the accuracy table shows this mode's cost.",
}


def _variant_card(template: Any, conv: ConvertedModel | None) -> Any:
    """The card a converted variant would ship with (output indices may move)."""
    if conv is None:
        return template
    return dataclasses.replace(
        template,
        power_output=conv.tflite_output_index(template.power_output),
        status_output=None
        if template.status_output is None
        else conv.tflite_output_index(template.status_output),
    )


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _accuracy_table(accuracy: dict[str, dict[str, dict[str, float]]], test_house: int) -> str:
    """One table: every variant's metrics on the validation block and the test house side by
    side, with its distance to the float parent (the cost of the mode)."""
    metrics = [("MAE W", "mae_w", 1), ("SAE", "sae", 3), ("F1", "f1", 3), ("MCC", "mcc", 3),
               ("delay s", "detection_delay_s", 0), ("mean abs Δ W", "mean_abs_diff_vs_float_w", 2),
               ("on/off agr.", "on_agreement_vs_float", 4)]  # fmt: skip
    splits = (("validation", "val"), ("test", "test"))
    header = [f"{short} {name}" for _, short in splits for name, _, _ in metrics]
    lines = [
        f"val = House 2 validation block (held out from training); test = House {test_house} "
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
    delay_s: float,
) -> str:
    from .inspect import BACKEND_LABELS

    s = rep.summary()
    lines = [
        f"# NILM pipeline report: {cfg.appliance} ({cfg.architecture})",
        "",
        f"Trainer {__version__}. Train: REFIT house {cfg.train_house}; test: REFIT house "
        f"{cfg.test_house} (evaluated only). Window {cfg.window_length}, target index "
        f"{cfg.target_index}.",
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
        f"prediction lags real time by the window geometry ({delay_s:g} s).",
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

    from .inspect import BACKEND_LABELS, IDEAL_RMSE_OVER_SCALE

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
    _beside(path, resolved)
    return f"plots/{path.name}"


# --------------------------------------------------------------------------- export from run


def export_from_run(
    run_dir: Path, *, mode: str | None = None, name: str | None = None, out_dir: Path | None = None
) -> Any:
    """Re-export a variant of a finished pipeline run (e.g. another mode)."""
    from custom_components.nilm.engine.card import ModelCard

    from .export import export_model, load_json
    from .quantize import QuantizeConfig

    run_dir = Path(run_dir)
    report = load_json(run_dir / "report.json")
    cfg = report["config"]
    mode = mode or cfg["export_mode"]
    path = run_dir / "models" / f"{mode}.tflite"
    if not path.is_file():
        raise TrainerError(f"{run_dir} has no converted {mode} model")

    def converted(p: Path, label_cfg: QuantizeConfig) -> ConvertedModel:
        meta = load_json(p.with_name(p.stem + ".config.json"))
        return ConvertedModel(
            p.read_bytes(), label_cfg, tuple(meta["output_order"]), (1, cfg["window_length"])
        )

    chosen = converted(path, QuantizeConfig(mode=mode))
    tpu_path = run_dir / "models" / "w8_a8_int8io.tflite"
    tpu = (
        converted(tpu_path, QuantizeConfig(mode="w8_a8", int8_io=True))
        if tpu_path.is_file()
        else None
    )
    template = ModelCard.from_dict(load_json(Path(report["train_run"]) / "card.json"))
    test_key = f"test_house_{cfg['test_house']}"
    return export_model(
        out_dir or run_dir / "export",
        name or cfg["name"] or cfg["appliance"],
        chosen,
        template,
        edgetpu=tpu,
        metrics={
            "validation": report["accuracy"][mode]["validation"],
            test_key: report["accuracy"][mode]["test"],
        },
        training={"representative": report["representative"], "pipeline": cfg},
    )


# --------------------------------------------------------------------------- CLI


def add_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="train -> quantize -> inspect -> evaluate -> export for one appliance",
        description=__doc__.split("\n")[0],
    )
    d = PipelineConfig(appliance="kettle")
    parser.add_argument(
        "--appliance",
        required=True,
        help="appliance to train, e.g. kettle, microwave, dishwasher, washing_machine (required)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        required=True,
        help="run directory for the model, reports, plots and export (required; created)",
    )
    parser.add_argument("--name", default="", help="exported model name (default: the appliance)")
    parser.add_argument(
        "--data-dir",
        default="",
        help="shared data folder (default: $NILM_DATA_DIR or ../shared/data)",
    )
    parser.add_argument(
        "--train-house",
        type=int,
        default=d.train_house,
        help="REFIT house trained and calibrated on (default: %(default)s)",
    )
    parser.add_argument(
        "--test-house",
        type=int,
        default=d.test_house,
        help="REFIT house only evaluated on, never trained, calibrated or tuned on "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--train-months",
        nargs="+",
        default=None,
        metavar="YYYY-MM",
        help="only these monthly files of the training house (default: all)",
    )
    parser.add_argument(
        "--test-months",
        nargs="+",
        default=None,
        metavar="YYYY-MM",
        help="only these monthly files of the test house (default: all)",
    )
    parser.add_argument(
        "--arch", default=d.architecture, help="model architecture (default: %(default)s)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=d.window_length,
        metavar="N",
        help="input window length in samples (default: %(default)s)",
    )
    parser.add_argument(
        "--target-index",
        type=int,
        default=d.target_index,
        metavar="I",
        help="index in the window of the sample the model predicts; the window's end "
        "minus this is the model's delay (default: %(default)s)",
    )
    parser.add_argument(
        "--width",
        type=float,
        default=d.width,
        metavar="F",
        help="compact CNN channel multiplier (default: %(default)s)",
    )
    parser.add_argument(
        "--dropout", type=float, default=d.dropout, help="dropout rate (default: %(default)s)"
    )
    parser.add_argument(
        "--epochs", type=int, default=d.epochs, help="maximum epochs (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="training batch size (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=d.learning_rate,
        help="Adam learning rate (default: %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="epochs without a better validation loss before stopping (default: %(default)s)",
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        metavar="N",
        help="batches per epoch (default: one pass over the training windows)",
    )
    parser.add_argument(
        "--max-windows",
        type=int,
        default=d.max_windows,
        metavar="N",
        help="cap on the balanced training windows (default: %(default)s)",
    )
    parser.add_argument(
        "--on-share",
        type=float,
        default=d.on_share,
        metavar="F",
        help="share of training windows whose target is on; 0 keeps the natural mix "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-validation-windows",
        type=int,
        default=d.max_validation_windows,
        metavar="N",
        help="evenly thin the validation block to N windows (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help="random seed for training, window sampling and calibration (default: %(default)s)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="conversions to make and compare: float TFLite, int8 weights, int8 weights + "
        "int8 or int16 activations (default: all: %(choices)s)",
    )
    parser.add_argument(
        "--export-mode",
        choices=MODES,
        default=d.export_mode,
        help="the conversion exported for the integration; must be among --modes "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--representative-size",
        type=int,
        default=d.representative_size,
        metavar="N",
        help="calibration windows, drawn from the training house (default: %(default)s)",
    )
    parser.add_argument(
        "--eval-max-windows",
        type=int,
        default=d.eval_max_windows,
        metavar="N",
        help="evaluate the first N windows (in time order) of the validation block and "
        "of the test house; 0 = every window "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--suspect-ratio",
        type=float,
        default=d.suspect_ratio,
        metavar="R",
        help="flag a layer whose quantization RMSE/scale exceeds R x 0.289 (ideal "
        "rounding) (default: %(default)s)",
    )
    parser.add_argument(
        "--no-selective",
        action="store_true",
        help="skip the selective model that keeps flagged layers in float (default: made)",
    )
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=d.latency_runs,
        metavar="N",
        help="timed inferences per backend in the inspection (default: %(default)s)",
    )
    parser.add_argument(
        "--export-dir", default="", help="models folder to export into (default: RUN_DIR/export)"
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="write no plots (default: plots in RUN_DIR/plots)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: shown)"
    )
    parser.set_defaults(func=_cli_pipeline)


def _cli_pipeline(args: argparse.Namespace) -> int:
    cfg = PipelineConfig(
        appliance=args.appliance,
        name=args.name,
        data_dir=args.data_dir,
        train_house=args.train_house,
        test_house=args.test_house,
        train_months=tuple(args.train_months) if args.train_months else None,
        test_months=tuple(args.test_months) if args.test_months else None,
        architecture=args.arch,
        window_length=args.window,
        target_index=args.target_index,
        width=args.width,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        steps_per_epoch=args.steps_per_epoch,
        max_windows=args.max_windows,
        on_share=args.on_share or None,
        max_validation_windows=args.max_validation_windows,
        seed=args.seed,
        modes=tuple(args.modes),
        export_mode=args.export_mode,
        representative_size=args.representative_size,
        eval_max_windows=args.eval_max_windows or None,
        suspect_ratio=args.suspect_ratio,
        selective=not args.no_selective,
        latency_runs=args.latency_runs,
        export_dir=args.export_dir,
        plots=not args.no_plots,
    )
    result = run_pipeline(cfg, args.run_dir, progress=not args.no_progress)
    print(f"report: {result.run_dir / 'report.md'}")
    print(f"exported: {result.export.model_path} + {result.export.card_path}")
    return 0
