"""``nilm-trainer``: the one module that owns argparse.

Every sub-command's options take their defaults from the configuration dataclasses
(:mod:`trainer.config`, read through :func:`trainer.config.default`), and each ``_run_*``
function turns the parsed options into those dataclasses and calls the library. User-facing
problems (:class:`TrainerError`, unreadable files, malformed CSV, bad model files) become
one line ``nilm-trainer: error: ...`` and exit status 2, like argparse's own usage errors;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shlex
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import __version__
from .appliances import CANONICAL
from .config import (
    ARCHITECTURES,
    BACKENDS,
    DEFAULT_EPOCHS,
    DEFAULT_TEST_HOUSE,
    FINETUNE_SOURCES,
    MODES,
    PIPELINE_TRAINING,
    SOURCES,
    STRATEGIES,
    UNITS,
    DataConfig,
    DistillConfig,
    EvalConfig,
    FinetuneConfig,
    InspectConfig,
    PipelineConfig,
    QatConfig,
    QuantizeConfig,
    SourceConfig,
    TrainConfig,
    build_train_config,
    default,
    train_default,
)
from .errors import TrainerError

PROG = "nilm-trainer"
COMMANDS: tuple[str, ...] = (
    "data",
    "train",
    "evaluate",
    "quantize",
    "inspect",
    "export",
    "pipeline",
    "bundle",
    "finetune",
    "qat",
)
Subparsers = Any  # argparse._SubParsersAction


def _first_line(module: str) -> str:
    import importlib

    doc = importlib.import_module(module).__doc__ or ""
    return doc.split("\n")[0]


# ---------------------------------------------------------------------------- data


def add_data_arguments(
    parser: argparse.ArgumentParser, *, default_house: int = default(SourceConfig, "house")
) -> None:
    """The data-selection options (a :class:`SourceConfig` and a :class:`DataConfig`),
    shared by every sub-command that reads data."""
    from .data import default_data_dir

    g = parser.add_argument_group("data")
    source = default(SourceConfig, "source")
    g.add_argument(
        "--source", choices=SOURCES, default=source, help=f"data layout (default: {source})"
    )
    g.add_argument(
        "--house",
        type=int,
        default=default_house,
        help=f"REFIT house number (default: {default_house})",
    )
    g.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        help="shared data folder (default: $NILM_DATA_DIR or ../shared/data)",
    )
    g.add_argument("--path", help="file for refit-clean/csv/recorder/ukdale/refit8s sources")
    g.add_argument(
        "--months", nargs="+", metavar="YYYY-MM", help="refit30s: only these monthly files"
    )
    g.add_argument(
        "--appliance",
        action="append",
        metavar="NAME",
        help=f"keep only this appliance (repeatable; known: {', '.join(CANONICAL)})",
    )
    g.add_argument(
        "--period",
        type=float,
        metavar="S",
        help="resample to this period in seconds (default: native)",
    )
    g.add_argument(
        "--max-zero-run",
        type=float,
        default=default(DataConfig, "max_zero_run_s"),
        metavar="S",
        help="mask zero-aggregate runs longer than this (default: %(default)s s)",
    )
    g.add_argument(
        "--max-constant-run",
        type=float,
        default=default(DataConfig, "max_constant_run_s"),
        metavar="S",
        help="mask constant-aggregate runs longer than this (default: %(default)s s)",
    )
    g.add_argument(
        "--clip",
        type=float,
        default=default(DataConfig, "clip_aggregate_w"),
        metavar="W",
        help="clip the aggregate at this power (default: %(default)s W, as REFIT 30 s)",
    )
    g.add_argument("--no-clip", action="store_true", help="do not clip the aggregate")
    g.add_argument("--config", help="csv: JSON/TOML file with the column mapping")
    g.add_argument(
        "--timestamp-col", help="csv: timestamp column (ISO or unix seconds; naive = UTC)"
    )
    g.add_argument("--mains-col", help="csv: mains power column")
    g.add_argument(
        "--map",
        action="append",
        metavar="APPLIANCE=COLUMN",
        help="csv: appliance column, recorder: appliance entity (repeatable)",
    )
    unit = default(SourceConfig, "unit")
    g.add_argument("--unit", choices=UNITS, default=unit, help=f"csv: power unit (default: {unit})")
    g.add_argument(
        "--timezone",
        metavar="ZONE",
        help="csv: naive timestamps are local time in ZONE, e.g. Europe/London (default: UTC)",
    )
    g.add_argument("--mains-entity", help="recorder: mains power entity id")


def data_config_from_args(args: argparse.Namespace) -> DataConfig:
    """DataConfig from the options of :func:`add_data_arguments`."""
    return DataConfig(
        period_s=args.period,
        max_zero_run_s=args.max_zero_run,
        max_constant_run_s=args.max_constant_run,
        clip_aggregate_w=None if args.no_clip else args.clip,
        appliances=tuple(dict.fromkeys(args.appliance)) if args.appliance else None,
    )


def source_from_args(args: argparse.Namespace) -> SourceConfig:
    """SourceConfig from the options of :func:`add_data_arguments`."""
    return SourceConfig(
        source=args.source,
        house=args.house,
        data_dir=args.data_dir,
        path=args.path,
        months=tuple(args.months) if args.months else None,
        config=args.config,
        timestamp_col=args.timestamp_col,
        mains_col=args.mains_col,
        mapping=tuple(args.map or ()),
        unit=args.unit,
        timezone=args.timezone,
        mains_entity=args.mains_entity,
    )


def load_source(args: argparse.Namespace) -> Any:
    """Load the data selected by the options of :func:`add_data_arguments`."""
    from .sources import load_selected

    return load_selected(source_from_args(args), data_config_from_args(args))


def _run_data(args: argparse.Namespace) -> int:
    if args.list_entities:
        from .recorder import list_entities

        if not args.path:
            raise TrainerError("--list-entities needs --path home-assistant_v2.db")
        for entity, count, unit in list_entities(args.path):
            print(f"{entity}\t{count} states\t{unit or ''}")
        return 0
    house = load_source(args)
    print(house.report())
    return 0


def add_data_cli(subparsers: Subparsers) -> None:
    """``nilm-trainer data``: load a source and print its masking report."""
    parser = subparsers.add_parser(
        "data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  nilm-trainer data --source refit30s --house 2\n"
            "  nilm-trainer data --source refit30s --house 20 --months 2014-03 2014-04\n"
            "  nilm-trainer data --source refit-clean --path CLEAN_House5.csv --period 30\n"
            "  nilm-trainer data --source csv --config my_house.toml\n"
            "  nilm-trainer data --source csv --path house.csv --timestamp-col time \\\n"
            "      --mains-col mains_kw --unit kW --map kettle=kettle_kw\n"
            "  nilm-trainer data --source recorder --path home-assistant_v2.db --list-entities\n"
            "  nilm-trainer data --source recorder --path home-assistant_v2.db \\\n"
            "      --mains-entity sensor.grid_power --map kettle=sensor.kettle_plug_power \\\n"
            "      --map dishwasher=binary_sensor.dishwasher_running"
        ),
        help="load a data source and report how much is masked and why",
        description=(
            "Load REFIT, UK-DALE, a household CSV or a Home Assistant recorder database, "
            "resample it, mask gaps (zero/constant runs, missing data) and print one line: "
            "rows, period, span, masked share by reason and the appliances found."
        ),
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--list-entities",
        action="store_true",
        help="recorder: list the power and on/off entities of --path and exit",
    )
    parser.set_defaults(func=_run_data)


# ---------------------------------------------------------------------------- distillation


def add_distill_arguments(parser: argparse.ArgumentParser) -> None:
    """``--teacher`` and its settings, shared by ``train`` and ``bundle``."""
    dd = functools.partial(default, DistillConfig)
    g = parser.add_argument_group("distillation (trainer.distill)")
    g.add_argument(
        "--teacher", type=Path, default=None,
        help="a finished run directory with model.keras and card.json (a `train` run or a "
        "bundle seed, e.g. runs/reference/kettle/seed0): train against its soft outputs "
        "as well as the labels",
    )  # fmt: skip
    g.add_argument(
        "--distill-alpha", type=float, default=dd("alpha"),
        help="weight of the labels on labelled windows (default %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--unlabelled-windows", type=int, default=dd("unlabelled_windows"),
        help="mains windows of the training data labelled by the teacher alone "
        "(default %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--temperature", type=float, default=dd("temperature"),
        help="softens the teacher's probabilities (default %(default)s)",
    )  # fmt: skip


def distill_config_from_args(args: argparse.Namespace) -> DistillConfig | None:
    if args.teacher is None:
        return None
    return DistillConfig(
        teacher=str(args.teacher),
        alpha=args.distill_alpha,
        unlabelled_windows=args.unlabelled_windows,
        temperature=args.temperature,
    )


# ---------------------------------------------------------------------------- train


def _target(value: str) -> float | int:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None


# The training options shared by `train` and `pipeline`, one row each: (group, flag, flat
# option of config.build_train_config, type, metavar, help). The default is the preset's
# or the dataclasses' (config.train_default); "%(default)s" is argparse's.
_MODEL = "model and windows"
_OPTIM = "optimisation"
_TRAINING_OPTIONS: tuple[tuple[str, str, str, Any, str | None, str], ...] = (
    (_MODEL, "--window", "window_length", int, "N", "window length in samples"),
    (_MODEL, "--target", "target_position", _target, "POS",
     "target position: fraction of the window (0.5 = midpoint) or index (-1 = last sample); "
     "the samples after it are the model's delay"),
    (_MODEL, "--stride", "stride", int, "N", "keep every N-th window start"),
    (_MODEL, "--on-share", "on_share", float, "F",
     "share of training windows with the appliance on; 0 keeps the natural mix"),
    (_MODEL, "--max-windows", "max_windows", int, "N", "cap on the balanced training windows"),
    (_MODEL, "--validation-fraction", "validation_fraction", float, "F",
     "last share of the house (by time) used for validation"),
    (_MODEL, "--max-validation-windows", "max_validation_windows", int, "N",
     "evenly thin the validation block to N windows"),
    (_MODEL, "--dropout", "dropout", float, None, "dropout rate"),
    (_MODEL, "--d-model", "d_model", int, "N", "transformer width"),
    (_MODEL, "--width", "width", float, "F", "compact CNN channel multiplier"),
    (_OPTIM, "--steps-per-epoch", "steps_per_epoch", int, "N",
     "batches per epoch; None: one pass over the training windows"),
    (_OPTIM, "--batch-size", "batch_size", int, "N", "batch size per replica"),
    (_OPTIM, "--lr", "learning_rate", float, None, "Adam learning rate"),
    (_OPTIM, "--patience", "patience", int, None, "early-stopping patience in epochs"),
    (_OPTIM, "--mae-weight", "mae_weight", float, "LAMBDA",
     "weight of the MAE term on relevant samples"),
    (_OPTIM, "--seed", "seed", int, None,
     "random seed of training, window sampling and calibration"),
    (_OPTIM, "--logical-cpus", "logical_cpus", int, "N",
     "split the CPU into N logical devices (for --strategy mirrored without GPUs)"),
)  # fmt: skip
# flat option -> argparse dest, for every option read back by train_config_from_args
_TRAIN_DESTS: dict[str, str] = {
    **{field: flag[2:].replace("-", "_") for _, flag, field, *_ in _TRAINING_OPTIONS},
    "architecture": "arch",
    "strategy": "strategy",
    "epochs": "epochs",
}


def add_training_arguments(
    parser: argparse.ArgumentParser, preset: Mapping[str, Any] = MappingProxyType({})
) -> None:
    """The model, window and optimisation options of one training run, shared by ``train``
    and ``pipeline``; defaults are ``preset``'s, else the dataclasses' (:func:`train_default`).
    """
    d = functools.partial(train_default, preset=preset)
    groups = {name: parser.add_argument_group(name) for name in (_MODEL, _OPTIM)}
    groups[_MODEL].add_argument(
        "--arch", choices=ARCHITECTURES, default=d("architecture"),
        help="architecture (default: %(default)s)",
    )  # fmt: skip
    epochs = preset.get("epochs")  # None: TrainConfig's, or with --resume the run's own
    shown = epochs or f"{DEFAULT_EPOCHS}; with --resume: the run's own"
    groups[_OPTIM].add_argument(
        "--epochs", type=int, default=epochs, help=f"maximum epochs (default: {shown})"
    )
    for group, flag, name, kind, metavar, text in _TRAINING_OPTIONS:
        groups[group].add_argument(
            flag, type=kind, default=d(name), metavar=metavar, help=f"{text} (default: %(default)s)"
        )
    t = groups[_OPTIM]
    t.add_argument(
        "--strategy", choices=STRATEGIES, default=d("strategy"),
        help="tf.distribute strategy: mirrored = all local GPUs (or logical "
        "CPUs), multi-worker = TF_CONFIG cluster (default: %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--nondeterministic", action="store_true",
        help="allow non-deterministic TF ops (faster on some GPUs; runs no longer repeat)",
    )  # fmt: skip
    add_distill_arguments(parser)


def train_config_from_args(
    args: argparse.Namespace, preset: Mapping[str, Any] = MappingProxyType({})
) -> TrainConfig:
    """The :class:`TrainConfig` of :func:`add_data_arguments` + :func:`add_training_arguments`."""
    if not args.appliance or len(args.appliance) != 1:
        raise TrainerError(f"{args.command} needs exactly one --appliance")
    values = {name: getattr(args, dest) for name, dest in _TRAIN_DESTS.items()}
    values["on_share"] = values["on_share"] or None  # 0: the natural mix
    values["deterministic"] = not args.nondeterministic
    if values["epochs"] is None:
        del values["epochs"]
    data = {
        k: getattr(args, k)
        for k in ("source", "house", "path", "months", "period", "data_dir")
        if getattr(args, k, None) is not None
    }
    return build_train_config(
        args.appliance[0], values, preset=preset, data=data, distill=distill_config_from_args(args)
    )


def _run_train(args: argparse.Namespace) -> int:
    from .files import CONFIG_JSON, load_json
    from .train import make_strategy, train

    config = train_config_from_args(args)
    if args.resume and args.epochs is None:
        saved = Path(args.run_dir) / CONFIG_JSON
        if saved.is_file():
            epochs = load_json(saved).get("epochs", config.epochs)
            config = dataclasses.replace(config, epochs=int(epochs))
    if config.logical_cpus > 1:
        make_strategy("default", config.logical_cpus)  # before TF starts working
    house = load_source(args)
    print(house.report())
    result = train(
        house, config, Path(args.run_dir), resume=args.resume, progress=not args.no_progress
    )
    print(f"run directory: {result.run_dir}")
    return 0


def add_train_cli(subparsers: Subparsers) -> None:
    """``nilm-trainer train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a seq2point model for one appliance",
        description=(
            "Train a two-headed seq2point model (power + on-probability) for one appliance "
            "on one house, split by time into training and validation blocks. Writes a run "
            "directory (config.json, checkpoint/, history.json, best.weights.h5, model.keras, "
            "metrics.json, card.json); --resume continues an interrupted run. The status "
            "threshold is chosen on the validation block of the training house."
        ),
        epilog=(
            "examples:\n"
            "  nilm-trainer train --house 2 --appliance kettle --arch cnn --run-dir runs/teacher\n"
            "  nilm-trainer train --house 2 --appliance kettle --arch compact "
            "--run-dir runs/kettle \\\n      --teacher runs/teacher"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(parser)
    add_training_arguments(parser)
    o = parser.add_argument_group("output")
    o.add_argument("--run-dir", required=True, help="run directory (created)")
    o.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir with its saved configuration (--epochs may "
        "extend or shorten it)",
    )
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_train)


# ---------------------------------------------------------------------------- evaluate


def command_line(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The ``nilm-trainer evaluate`` command that repeats this run: every option whose
    value differs from its default, in the parser's order (machine-independent when the
    defaults, e.g. the data folder, were used)."""
    words = ["nilm-trainer", "evaluate"]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "func"):
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # a switch such as --no-plots
            words.append(flag)
        elif isinstance(value, list) and action.nargs is None:  # action="append"
            for item in value:
                words += [flag, str(item)]
        elif isinstance(value, (list, tuple)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


def _run_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    from .evaluate import evaluate, markdown_table, resolve_model, write_report

    command = command_line(args, parser) if parser is not None else None
    config = EvalConfig(
        model=args.model,
        backend=args.backend,
        batch_size=args.batch_size,
        delay_tolerance_s=args.delay_tolerance,
        day=args.day,
        plots=not args.no_plots,
    )
    _, card, _ = resolve_model(config.model)
    if args.appliance and args.appliance != [card.appliance]:
        raise TrainerError(f"the model is for {card.appliance}, not {', '.join(args.appliance)}")
    if args.period is None:
        # The model's own period: the loaders resample (e.g. REFIT's 30 s to 60 s).
        args.period = card.sample_period_s
    house = load_source(args)
    print(house.report())
    ev = evaluate(house, config)
    write_report(ev, config, house, Path(args.out), command=command)
    print(markdown_table(ev.metrics, f"{card.appliance} on {house.source}", ev.rule_metrics))
    print(f"report: {args.out}")
    return 0


def add_evaluate_cli(subparsers: Subparsers) -> None:
    """``nilm-trainer evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model on the unseen test house, next to a rule baseline",
        description=(
            "Run a model (a training run directory, a model.keras, or an exported .tflite "
            "with its card) over every complete window of a test house (default: all of "
            "REFIT House 20, loaded at the card's sample period) on the engine users run "
            "(default: numpy), and score it and a non-learned rule baseline with the same "
            "metrics: MAE, SAE, NDE, energy-per-day error, accuracy, F1, MCC, event recall "
            "and precision, energy predicted vs metered, and the on/off delays of the "
            "'Running' entity (the streaming tracker, with the model's latency). Truth is "
            "the appliance's own definition of running; predictions use the card's rule. "
            "Writes metrics.json, metrics.md, day.png and errors.png."
        ),
        epilog=(
            "example: nilm-trainer evaluate --model custom_components/nilm/models/kettle.json "
            "--out reports/bundled/kettle"
        ),
    )
    parser.add_argument(
        "--model", required=True, help="run directory, model.keras, model .tflite or its card .json"
    )
    parser.add_argument("--out", required=True, help="report directory (created)")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default(EvalConfig, "backend"),
        help=".tflite backend (default: %(default)s, what Home Assistant OS runs)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=default(EvalConfig, "batch_size"),
        metavar="N",
        help="windows per inference batch (default: %(default)s)",
    )
    parser.add_argument(
        "--delay-tolerance",
        type=float,
        default=default(EvalConfig, "delay_tolerance_s"),
        metavar="S",
        help="max seconds between a true and a predicted switch-on to pair "
        "them (default: %(default)s)",
    )
    parser.add_argument(
        "--day", metavar="YYYY-MM-DD", help="day to plot (default: the one with most switch-ons)"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_data_arguments(parser, default_house=DEFAULT_TEST_HOUSE)
    parser.set_defaults(func=functools.partial(_run_evaluate, parser=parser))


# ---------------------------------------------------------------------------- quantize


def add_calibration_args(parser: argparse.ArgumentParser) -> None:
    """Calibration options shared by quantize and inspect."""
    parser.add_argument("--data-dir", default=None, help="shared data folder")
    parser.add_argument(
        "--test-house",
        default=str(DEFAULT_TEST_HOUSE),
        help=f"house never used for calibration (default: {DEFAULT_TEST_HOUSE})",
    )
    parser.add_argument(
        "--representative-size", type=int, default=default(QuantizeConfig, "representative_size")
    )
    parser.add_argument("--seed", type=int, default=default(QuantizeConfig, "seed"))


def _run_quantize(args: argparse.Namespace) -> int:
    from .files import beside_path, write_json
    from .quantize import convert
    from .runs import TrainedRun

    run = TrainedRun.load(args.train_run, args.data_dir)
    rep = run.representative(args.representative_size, args.seed, [f"house {args.test_house}"])
    modes = list(MODES) if args.mode == "all" else [args.mode]
    args.out.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    for mode in modes:
        cfg = QuantizeConfig(
            mode=mode,
            int8_io=args.int8_io and mode == "w8_a8",
            representative_size=args.representative_size,
            seed=args.seed,
        )
        try:
            converted = convert(run.model, cfg, rep if cfg.needs_calibration else None)
        except TrainerError as err:
            failed[cfg.label] = str(err)
            print(f"{cfg.label}: FAILED: {err}")
            continue
        path = args.out / f"{cfg.label}.tflite"
        path.write_bytes(converted.data)
        meta = {
            "config": cfg.to_dict(),
            "train_run": str(args.train_run),
            "representative": rep.summary(),
            "output_order": list(converted.output_order),
        }
        write_json(beside_path(path), meta, sort_keys=False, strict=False)
        print(f"{cfg.label}: {path} ({len(converted.data):,} bytes)")
    return 1 if len(failed) == len(modes) else 0


def add_quantize_cli(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="convert a trained model to .tflite in one or all quantization modes",
        description=_first_line("trainer.quantize"),
    )
    parser.add_argument("train_run", type=Path, help="run directory written by `train`")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--int8-io", action="store_true", help="w8_a8 with int8 I/O (Edge TPU)")
    add_calibration_args(parser)
    parser.set_defaults(func=_run_quantize)


# ---------------------------------------------------------------------------- inspect


def add_inspect_cli(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="per-layer quantization error, ops per backend, size, memory and latency",
        description=_first_line("trainer.inspection"),
    )
    parser.add_argument("tflite", type=Path, nargs="+", help="converted model(s)")
    parser.add_argument("--out", type=Path, default=None, help="write inspection.md/.json here")
    parser.add_argument(
        "--train-run", type=Path, default=None, help="training run: per-layer error (w8_a8)"
    )
    parser.add_argument(
        "--suspect-ratio", type=float, default=default(InspectConfig, "suspect_ratio")
    )
    parser.add_argument("--no-selective", action="store_true")
    parser.add_argument("--runs", type=int, default=default(InspectConfig, "latency_runs"))
    add_calibration_args(parser)
    parser.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    import numpy as np

    from . import inspection as insp
    from .files import write_json

    config = InspectConfig(
        suspect_ratio=args.suspect_ratio, selective=not args.no_selective, latency_runs=args.runs
    )
    layers: tuple[insp.LayerError, ...] = ()
    selective: insp.SelectiveResult | None = None
    window: Any = None
    if args.train_run is not None:
        from .runs import TrainedRun

        run = TrainedRun.load(args.train_run, args.data_dir)
        rep = run.representative(args.representative_size, args.seed, [f"house {args.test_house}"])
        found, selective = insp.layer_errors(
            run.model, rep, config, eval_windows=run.validation_inputs(256)
        )
        layers = tuple(found)
        window = rep.windows[0]
    sections: list[str] = ["# Inspection", ""]
    payload: list[dict[str, Any]] = []
    for path in args.tflite:
        data = path.read_bytes()
        insp.check_format(data, path)
        if window is None:
            # Latency of these ops does not depend on the values; a fixed pattern will do.
            size = int(np.prod(insp.input_shape_of(data)))
            window = np.sin(np.arange(size, dtype=np.float32) / 7.0)
        int8 = insp.is_full_int8(data)
        ins = insp.inspect_model(
            path.stem, data, "w8_a8" if int8 else path.stem, window, config,
            layers=layers if int8 else (), selective=selective if int8 else None,
        )  # fmt: skip
        sections.append(ins.markdown())
        payload.append(ins.to_dict())
    text = "\n".join(sections)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "inspection.md").write_text(text)
        write_json(args.out / "inspection.json", payload, sort_keys=False, strict=False)
        write_json(
            args.out / "inspection.config.json", config.to_dict(), sort_keys=False, strict=False
        )
    return 0


# ---------------------------------------------------------------------------- export


def add_export_cli(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="copy a converted model + card from a pipeline run into a models folder",
        description=_first_line("trainer.export"),
    )
    parser.add_argument("run_dir", type=Path, nargs="?", help="pipeline run directory")
    parser.add_argument("--mode", choices=MODES, default=None, help="default: the run's choice")
    parser.add_argument("--name", default=None, help="model name (default: the run's)")
    parser.add_argument(
        "--out", type=Path, default=None, help="models folder (default: the run's export/)"
    )
    parser.add_argument(
        "--edgetpu-card",
        type=Path,
        default=None,
        metavar="COMPILED",
        help="write the card of a compiled <name>_edgetpu.tflite and exit",
    )
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    if args.edgetpu_card is not None:
        from .export import write_edgetpu_card

        print(write_edgetpu_card(args.edgetpu_card))
        return 0
    if args.run_dir is None:
        raise TrainerError("export needs a pipeline run directory (or --edgetpu-card)")
    from .pipeline import export_from_run

    result = export_from_run(args.run_dir, mode=args.mode, name=args.name, out_dir=args.out)
    print(f"wrote {result.model_path} and {result.card_path}")
    if result.compiler_command:
        print(f"Edge TPU: {result.compiler_command}")
    return 0


# ---------------------------------------------------------------------------- pipeline


def add_pipeline_cli(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="train -> quantize -> inspect -> evaluate -> export for one appliance",
        description=_first_line("trainer.pipeline"),
        epilog="The training options are train's; their defaults are the pipeline's quicker "
        "preset (trainer.config.PIPELINE_TRAINING).",
    )
    d = functools.partial(default, PipelineConfig)
    add_data_arguments(parser)
    add_training_arguments(parser, PIPELINE_TRAINING)
    test = parser.add_argument_group(
        "test house (only evaluated: never trained, calibrated or tuned on)"
    )
    test_default: SourceConfig = d("test")
    test.add_argument(
        "--test-source", choices=SOURCES, default=test_default.source,
        help="data layout of the test house (default: %(default)s)",
    )  # fmt: skip
    test.add_argument(
        "--test-house", type=int, default=test_default.house,
        help="test house number (default: %(default)s)",
    )  # fmt: skip
    test.add_argument("--test-path", help="test file, for the sources that read one")
    test.add_argument(
        "--test-months", nargs="+", metavar="YYYY-MM",
        help="refit30s: only these monthly files of the test house (default: all)",
    )  # fmt: skip
    steps = parser.add_argument_group("quantize, inspect, evaluate, export")
    steps.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(d("modes")),
        help="conversions to make and compare: float TFLite, int8 weights, int8 weights + "
        "int8 or int16 activations (default: all: %(choices)s)",
    )  # fmt: skip
    steps.add_argument(
        "--export-mode", choices=MODES, default=d("export_mode"),
        help="the conversion exported for the integration; must be among --modes "
        "(default: %(default)s)",
    )  # fmt: skip
    steps.add_argument(
        "--representative-size", type=int, default=d("representative_size"), metavar="N",
        help="calibration windows, drawn from the training house (default: %(default)s)",
    )  # fmt: skip
    steps.add_argument(
        "--suspect-ratio", type=float, default=default(InspectConfig, "suspect_ratio"),
        metavar="R", help="flag a layer whose quantization RMSE/scale exceeds R x 0.289 "
        "(ideal rounding) (default: %(default)s)",
    )  # fmt: skip
    steps.add_argument(
        "--no-selective", action="store_true",
        help="skip the selective model that keeps flagged layers in float (default: made)",
    )  # fmt: skip
    steps.add_argument(
        "--latency-runs", type=int, default=default(InspectConfig, "latency_runs"), metavar="N",
        help="timed inferences per backend in the inspection (default: %(default)s)",
    )  # fmt: skip
    steps.add_argument(
        "--eval-max-windows", type=int, default=d("eval_max_windows"), metavar="N",
        help="evaluate the first N windows (in time order) of the validation block and "
        "of the test house; 0 = every window (default: %(default)s)",
    )  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument(
        "--run-dir", type=Path, required=True,
        help="run directory for the model, reports, plots and export (required; created)",
    )  # fmt: skip
    out.add_argument(
        "--name", default=d("name"), help="exported model name (default: the appliance)"
    )
    out.add_argument(
        "--export-dir", default=d("export_dir"),
        help="models folder to export into (default: RUN_DIR/export)",
    )  # fmt: skip
    out.add_argument(
        "--no-plots", action="store_true", help="write no plots (default: plots in RUN_DIR/plots)"
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown)")
    parser.set_defaults(func=_run_pipeline)


def pipeline_config_from_args(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(
        train=train_config_from_args(args, PIPELINE_TRAINING),
        test=SourceConfig(
            source=args.test_source,
            house=args.test_house,
            data_dir=args.data_dir,
            path=args.test_path,
            months=tuple(args.test_months) if args.test_months else None,
        ),
        data=data_config_from_args(args),
        name=args.name,
        modes=tuple(args.modes),
        export_mode=args.export_mode,
        representative_size=args.representative_size,
        inspect=InspectConfig(
            suspect_ratio=args.suspect_ratio,
            selective=not args.no_selective,
            latency_runs=args.latency_runs,
        ),
        eval_max_windows=args.eval_max_windows or None,
        export_dir=args.export_dir,
        plots=not args.no_plots,
    )


def _run_pipeline(args: argparse.Namespace) -> int:
    from .pipeline import run_pipeline

    result = run_pipeline(
        pipeline_config_from_args(args), args.run_dir, progress=not args.no_progress
    )
    print(f"report: {result.run_dir / 'report.md'}")
    print(f"exported: {result.export.model_path} + {result.export.card_path}")
    return 0


# ---------------------------------------------------------------------------- bundle

BUNDLE_RUN_ROOT = Path("runs/bundled")
BUNDLE_MODELS_DIR = Path("custom_components/nilm/models")
BUNDLE_REPORTS_DIR = Path("reports/bundled")


def add_bundle_cli(subparsers: Subparsers) -> None:
    import importlib

    doc = importlib.import_module("trainer.bundle").__doc__
    p = subparsers.add_parser(
        "bundle",
        help="build a bundled model from its recipe (trainer/bundled.json)",
        description=doc.split("\n\n")[0] if doc else None,
    )
    p.add_argument("appliance", help="kettle, microwave, dishwasher, washing_machine or fridge")
    p.add_argument("--data-dir", type=Path, default=None, help="default: ../shared/data")
    p.add_argument("--run-root", type=Path, default=BUNDLE_RUN_ROOT, help="per-seed runs")
    p.add_argument(
        "--models-dir", type=Path, default=BUNDLE_MODELS_DIR,
        help="where the chosen int8 model and its card are written",
    )  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the recipe's")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's")
    p.add_argument("--patience", type=int, default=None, help="override the recipe's")
    p.add_argument("--learning-rate", type=float, default=None, help="override the recipe's")
    p.add_argument("--max-real-windows", type=int, default=None, help="override the recipe's")
    p.add_argument("--synthetic-windows", type=int, default=None, help="override the recipe's")
    p.add_argument("--arch", default=None, help="override the recipe's architecture (cnn)")
    p.add_argument(
        "--model", action="append", default=[], metavar="KEY=VALUE",
        help="a model setting of the architecture on top of the recipe's "
        "(e.g. norm=batch activation=relu d_model=64)",
    )  # fmt: skip
    add_distill_arguments(p)
    p.add_argument(
        "--no-export", action="store_true", help="train and select only (comparison runs)"
    )
    p.add_argument(
        "--reference-root", type=Path, default=None,
        help="with --report: run root of a reference (cnn) build to report beside",
    )  # fmt: skip
    p.add_argument(
        "--report", action="store_true",
        help="no training: evaluate the recipe's seeds on its test split (after export)",
    )  # fmt: skip
    p.add_argument(
        "--report-reference", action="store_true",
        help="no training: re-measure only the reference block of the existing report "
        "from --reference-root (the shipped build's seed runs need not be here)",
    )  # fmt: skip
    p.add_argument(
        "--reports-dir", type=Path, default=None,
        help="with --report: where seeds.json goes (default reports/bundled/<appliance>)",
    )  # fmt: skip
    p.add_argument(
        "--save-parent", action="store_true",
        help="no training: ship the exported seed's float model with the trainer "
        "(trainer/parents/<appliance>/, bound to the bundled card's sha256)",
    )  # fmt: skip
    p.add_argument(
        "--parents-dir", type=Path, default=None,
        help="with --save-parent: where the parent goes (default: trainer/parents)",
    )  # fmt: skip
    p.set_defaults(func=_run_bundle)


def _model_settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a number is read as one (``d_model=64``, ``dropout=0.1``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise TrainerError(f"--model takes KEY=VALUE, got {pair!r}")
        value: Any = raw
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
        out[key] = value
    return out


def _run_bundle(args: argparse.Namespace) -> int:
    from .bundle import build, refresh_reference, report
    from .data import default_data_dir

    data_dir = args.data_dir or default_data_dir()
    if args.save_parent:
        from .parents import PARENTS_DIR, save_parent

        parents = args.parents_dir or PARENTS_DIR
        written = save_parent(args.appliance, args.run_root, args.models_dir, parents)
        print(f"wrote {written}")
        return 0
    reports = args.reports_dir or BUNDLE_REPORTS_DIR / args.appliance
    if args.report_reference:
        if args.reference_root is None:
            raise TrainerError("--report-reference needs --reference-root")
        refresh_reference(args.appliance, data_dir, reports, args.reference_root)
        print(f"updated the reference block of {reports / 'seeds.json'}")
        return 0
    if args.report:
        report(args.appliance, data_dir, args.run_root, reports, args.reference_root)
        return 0
    overrides: dict[str, Any] = {}
    if args.seeds is not None:
        overrides["seeds"] = tuple(args.seeds)
    if args.arch is not None:
        overrides["architecture"] = args.arch
    for name in ("epochs", "patience", "learning_rate", "max_real_windows", "synthetic_windows"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    build(
        args.appliance,
        data_dir,
        args.run_root,
        args.models_dir,
        overrides=overrides,
        model_settings=_model_settings(args.model),
        distill=distill_config_from_args(args),
        export=not args.no_export,
    )
    return 0


# ---------------------------------------------------------------------------- qat

QAT_RUN_ROOT = Path("runs/qat")


def add_qat_cli(subparsers: Subparsers) -> None:
    """``nilm-trainer qat``."""
    d = functools.partial(default, QatConfig)
    p = subparsers.add_parser(
        "qat",
        help="quantization-aware fine-tune of a bundled model's float parent, vs PTQ",
        description=_first_line("trainer.qat"),
    )
    p.add_argument("appliance", help="kettle, microwave, dishwasher, washing_machine or fridge")
    p.add_argument("--data-dir", type=Path, default=None, help="default: ../shared/data")
    p.add_argument("--out", type=Path, default=QAT_RUN_ROOT, help="run root (default %(default)s)")
    p.add_argument("--epochs", type=int, default=d("epochs"), help="default %(default)s")
    p.add_argument("--lr", type=float, default=d("learning_rate"), help="default %(default)s")
    p.add_argument("--seed", type=int, default=d("seed"), help="default %(default)s")
    p.add_argument("--max-real-windows", type=int, default=None, help="override the recipe's")
    p.add_argument("--synthetic-windows", type=int, default=None, help="override the recipe's")
    p.add_argument(
        "--models-dir", type=Path, default=BUNDLE_MODELS_DIR,
        help="the PTQ model and card the parent was exported as (default: the bundled ones)",
    )  # fmt: skip
    p.add_argument(
        "--parents-dir", type=Path, default=None,
        help="where the float parent is (default: the trainer's own, trainer/parents)",
    )  # fmt: skip
    p.set_defaults(func=_run_qat)


def _run_qat(args: argparse.Namespace) -> int:
    from .data import default_data_dir
    from .parents import PARENTS_DIR
    from .qat import run

    config = QatConfig(
        appliance=args.appliance, epochs=args.epochs, learning_rate=args.lr, seed=args.seed,
        max_real_windows=args.max_real_windows, synthetic_windows=args.synthetic_windows,
    )  # fmt: skip
    summary = run(
        config, args.data_dir or default_data_dir(), args.out,
        models_dir=args.models_dir, parents_dir=args.parents_dir or PARENTS_DIR,
    )  # fmt: skip
    for name, m in summary["models"].items():
        if "not_converted" in m:
            print(f"{name}: not converted ({m['not_converted']})")
        else:
            print(f"{name}: F1 {m['f1']:.3f} ({m['backend']})")
    print(f"report: {args.out / args.appliance / 'qat.md'}")
    return 0


# ---------------------------------------------------------------------------- finetune

FINETUNE_RUN_ROOT = Path("runs/finetune")


def add_finetune_cli(subparsers: Subparsers) -> None:
    """``nilm-trainer finetune``."""
    d = functools.partial(default, FinetuneConfig)
    p = subparsers.add_parser(
        "finetune",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="fine-tune a bundled model on a household's smart-plug labels",
        description=_first_line("trainer.finetune"),
        epilog=(
            "examples:\n"
            "  nilm-trainer finetune kettle --source history \\\n"
            "      --url http://homeassistant.local:8123 \\\n"
            "      --mains-entity sensor.grid_power --map kettle=sensor.kettle_plug_power \\\n"
            "      --start 2024-05-01 --end 2024-05-08 --install /config\n"
            "  nilm-trainer finetune kettle --source recorder --path home-assistant_v2.db \\\n"
            "      --mains-entity sensor.grid_power --map kettle=sensor.kettle_plug_power\n"
            "  nilm-trainer finetune dishwasher --source csv --path house.csv \\\n"
            "      --timestamp-col time --mains-col mains_w --map dishwasher=dishwasher_w"
        ),
    )
    p.add_argument("appliance", help="kettle, microwave, dishwasher, washing_machine or fridge")
    g = p.add_argument_group("data")
    g.add_argument(
        "--source", choices=FINETUNE_SOURCES, required=True,
        help="history: Home Assistant's REST API; recorder: its SQLite file; csv: your CSV",
    )  # fmt: skip
    g.add_argument("--path", help="recorder database, CSV or REFIT file")
    g.add_argument("--house", type=int, default=default(SourceConfig, "house"), help="REFIT house")
    g.add_argument("--data-dir", default=None, help="REFIT/UK-DALE sources: shared data folder")
    g.add_argument("--months", nargs="+", metavar="YYYY-MM", help="refit30s: these months")
    g.add_argument("--mains-entity", help="recorder/history: mains power entity id")
    g.add_argument(
        "--map", action="append", metavar="APPLIANCE=ENTITY_OR_COLUMN",
        help="the label: recorder/history entity (power W/kW or on/off) or csv column",
    )  # fmt: skip
    g.add_argument("--config", help="csv: JSON/TOML mapping file")
    g.add_argument("--timestamp-col", help="csv: timestamp column")
    g.add_argument("--mains-col", help="csv: mains power column")
    g.add_argument("--unit", choices=UNITS, default=default(SourceConfig, "unit"), help="csv unit")
    g.add_argument("--timezone", metavar="ZONE", help="csv: zone of naive timestamps")
    g.add_argument(
        "--url", help="history: Home Assistant URL, e.g. http://homeassistant.local:8123"
    )
    g.add_argument(
        "--token", default=None,
        help="history: long-lived access token (default: $HA_TOKEN; a flag shows in `ps`)",
    )  # fmt: skip
    g.add_argument("--start", metavar="DATE", help="first day used (history: required)")
    g.add_argument("--end", metavar="DATE", help="day after the last one used (default: all)")
    g.add_argument(
        "--test-from", metavar="DATE",
        help="hold out the data from DATE on: only scored before/after, never trained on "
        "(default: the report scores the validation days, optimistic)",
    )  # fmt: skip
    t = p.add_argument_group("training")
    t.add_argument(
        "--freeze-features", action="store_true",
        help="train only the head (head_dense, power, status); the features stay the parent's",
    )  # fmt: skip
    t.add_argument("--epochs", type=int, default=d("epochs"), help="maximum (default: %(default)s)")
    t.add_argument("--patience", type=int, default=d("patience"), help="(default: %(default)s)")
    t.add_argument("--lr", type=float, default=d("learning_rate"), help="(default: %(default)s)")
    t.add_argument(
        "--max-windows", type=int, default=d("max_windows"), help="(default: %(default)s)"
    )
    t.add_argument("--seed", type=int, default=d("seed"), help="(default: %(default)s)")
    p.add_argument(
        "--out", type=Path, default=None,
        help="output folder (default: runs/finetune/<appliance>/model)",
    )  # fmt: skip
    p.add_argument(
        "--install", type=Path, metavar="HA_CONFIG",
        help="copy the model to HA_CONFIG/nilm/models/ (replaces the bundled one there)",
    )  # fmt: skip
    p.add_argument(
        "--force", action="store_true",
        help="with --install: install even a model that scored worse than the bundled one",
    )  # fmt: skip
    p.set_defaults(func=_run_finetune)


def _run_finetune(args: argparse.Namespace) -> int:
    from .finetune import finetune, install, load_household, worse_than_bundled
    from .parents import load_parent

    config = FinetuneConfig(
        appliance=args.appliance, epochs=args.epochs, patience=args.patience,
        learning_rate=args.lr, freeze_features=args.freeze_features,
        max_windows=args.max_windows, seed=args.seed,
    )  # fmt: skip
    card = load_parent(args.appliance).card  # refuse early: before any data is read
    selection = SourceConfig(
        source="recorder" if args.source == "history" else args.source,
        house=args.house, data_dir=args.data_dir, path=args.path,
        months=tuple(args.months) if args.months else None, config=args.config,
        timestamp_col=args.timestamp_col, mains_col=args.mains_col,
        mapping=tuple(args.map or ()), unit=args.unit, timezone=args.timezone,
        mains_entity=args.mains_entity,
    )  # fmt: skip
    house, record = load_household(
        args.source, selection, card.sample_period_s, appliance=args.appliance, start=args.start,
        end=args.end, url=args.url, token=args.token or os.environ.get("HA_TOKEN"),
    )  # fmt: skip
    record["source_kind"] = args.source
    print(house.report())
    test = None
    if args.test_from:
        test = house.time_slice(args.test_from, None)
        house = house.time_slice(None, args.test_from)
    out = args.out or FINETUNE_RUN_ROOT / args.appliance / "model"
    result = finetune(house, config, out, test=test, household=record)
    print(f"report: {out / 'finetune.md'}")
    print(f"model: {result.model_path} + {result.card_path}")
    if args.install:
        worse = worse_than_bundled(result.summary)
        if worse and not args.force:
            raise TrainerError(
                f"not installed: {worse}; the bundled model stays (--force installs anyway)"
            )
        copied = install(out, args.appliance, args.install)
        print(f"installed {copied[0]} + {copied[1]}: reload the NILM integration to use it")
    return 0


# ---------------------------------------------------------------------------- main

REGISTER: dict[str, Callable[[Subparsers], None]] = {
    "data": add_data_cli,
    "train": add_train_cli,
    "evaluate": add_evaluate_cli,
    "quantize": add_quantize_cli,
    "inspect": add_inspect_cli,
    "export": add_export_cli,
    "pipeline": add_pipeline_cli,
    "bundle": add_bundle_cli,
    "finetune": add_finetune_cli,
    "qat": add_qat_cli,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Train, evaluate and export seq2point NILM models for the Home Assistant 'nilm' "
            "integration, from REFIT/UK-DALE, a household CSV or Home Assistant's recorder."
        ),
        epilog=f"Run '{PROG} COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        REGISTER[name](subparsers)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that describe bad input rather than a bug."""
    errors: list[type[BaseException]] = [
        TrainerError, OSError, UnicodeDecodeError, sqlite3.DatabaseError,
    ]  # fmt: skip
    try:
        import pandas as pd

        errors += [pd.errors.ParserError, pd.errors.EmptyDataError]
    except ImportError:  # pragma: no cover - pandas is a trainer dependency
        pass
    from custom_components.nilm.engine.errors import EngineError

    errors.append(EngineError)
    return tuple(errors)


def _describe(err: BaseException) -> str:
    if isinstance(err, sqlite3.DatabaseError):
        return f"the recorder database does not have the schema this trainer reads ({err})"
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"file not found: {err.filename}"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ log lines (even "E0000 ... NodeDef mentions attribute") would bury
    # the one-line error a user needs; Python-level TF errors still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _user_errors() as err:
        print(f"{PROG}: error: {_describe(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
