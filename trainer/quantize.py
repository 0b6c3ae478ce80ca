"""Keras -> .tflite in the four deployment modes, calibrated on balanced training-house data.

Conversion always traces a batch-1 concrete function of the model (static shapes: the numpy engine
and the Edge TPU compiler both want them) and only allows TFLite builtin op sets, so a
model that would need the TensorFlow runtime (SELECT_TF_OPS) fails here, with the op
named, instead of on a user's Raspberry Pi.

Calibration data follows the article's idea (balance the appliance's on and off states so
rare "on" activations get a fair share of the int8 range) but, unlike the article, comes
from the training house only: calibrating on the test house would leak it into the model.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import TrainerError

MODES = ("convert_only", "w8", "w8_a8", "w8_a16")
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class QuantizeConfig:
    """How to convert one model.

    ``int8_io`` only applies to ``w8_a8``: int8 input/output tensors, as the Edge TPU
    compiler needs (the default float I/O keeps QUANTIZE/DEQUANTIZE inside the model so
    callers need not know the scales). ``representative_size`` windows are drawn with
    ``seed``; ``on_fraction`` of them with the appliance on.
    """

    mode: str = "w8_a8"
    int8_io: bool = False
    representative_size: int = 256
    on_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TrainerError(f"quantization mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.int8_io and self.mode != "w8_a8":
            raise TrainerError("int8 input/output is only available for mode w8_a8")
        if self.representative_size < 1:
            raise TrainerError("representative_size must be at least 1")
        if not 0.0 <= self.on_fraction <= 1.0:
            raise TrainerError("on_fraction must be between 0 and 1")

    @property
    def needs_calibration(self) -> bool:
        return self.mode in ("w8_a8", "w8_a16")

    @property
    def label(self) -> str:
        """Unique name of the variant (the int8-I/O Edge TPU input differs from w8_a8)."""
        return f"{self.mode}_int8io" if self.int8_io else self.mode

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RepresentativeSet:
    """Calibration windows (already normalised) and where they came from.

    ``house`` is recorded so every consumer can re-check that it is not the test house.
    """

    windows: FloatArray
    targets_w: FloatArray
    on: npt.NDArray[np.bool_]
    house: str
    source: str
    seed: int
    on_threshold_w: float
    excluded_houses: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def on_fraction(self) -> float:
        return float(np.mean(self.on)) if self.on.size else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "size": int(self.windows.shape[0]),
            "on": int(np.count_nonzero(self.on)),
            "off": int(np.count_nonzero(~self.on)),
            "on_fraction": self.on_fraction,
            "on_threshold_w": self.on_threshold_w,
            "house": self.house,
            "source": self.source,
            "seed": self.seed,
            "excluded_houses": list(self.excluded_houses),
            "notes": list(self.notes),
        }


def _house_key(house: str | int) -> tuple[str, str]:
    """'House 20', 'REFIT house 20 (2014-03)', 'house_20' and 20 name the same house."""
    text = str(house).strip().lower()
    dataset = "ukdale" if re.search(r"uk-?dale", text) else "refit"
    match = re.search(r"house[\s_-]*(\d+)", text) or re.fullmatch(r"\s*(\d+)\s*", text)
    return dataset, (str(int(match.group(1))) if match else text)


def check_not_test_house(house: str | int, test_houses: Sequence[str | int]) -> None:
    """Refuse calibration data from a test house: it would leak into the quantization."""
    key = _house_key(house)
    for test in test_houses:
        if _house_key(test) == key:
            raise TrainerError(
                f"representative data comes from house {house!r}, which is a test house; "
                "calibrate on the training house's training/validation data only"
            )


def _choose(
    targets_w: npt.NDArray[np.float32],
    *,
    valid: npt.NDArray[np.bool_],
    on_threshold_w: float,
    size: int,
    on_fraction: float,
    seed: int,
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Indices of a seeded draw with ``on_fraction`` on windows (on: target >= threshold,
    as engine.status); when one state is too rare the other fills up, and a note says so."""
    on_idx = np.flatnonzero(valid & (targets_w >= on_threshold_w))
    off_idx = np.flatnonzero(valid & (targets_w < on_threshold_w))
    if on_idx.size + off_idx.size == 0:
        raise TrainerError("no unmasked windows to calibrate on")
    size = min(size, on_idx.size + off_idx.size)
    want_on = round(size * on_fraction)
    n_on = min(want_on, on_idx.size)
    n_off = min(size - n_on, off_idx.size)
    n_on = min(size - n_off, on_idx.size)  # off windows too rare: fill with on ones
    notes: list[str] = []
    if n_on != want_on:
        notes.append(
            f"asked for {want_on} 'on' windows, the data holds {on_idx.size}: "
            f"using {n_on} on / {n_off} off"
        )
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.choice(on_idx, n_on, replace=False), rng.choice(off_idx, n_off, replace=False)]
    ).astype(np.int64)
    rng.shuffle(chosen)
    return chosen, notes


def build_representative_set(
    windows: npt.ArrayLike,
    targets_w: npt.ArrayLike,
    *,
    on_threshold_w: float,
    house: str | int,
    test_houses: Sequence[str | int],
    source: str,
    size: int = 256,
    on_fraction: float = 0.5,
    seed: int = 0,
) -> RepresentativeSet:
    """Calibration set from in-memory windows.

    ``windows`` are normalised model inputs (N, L) or (N, L, 1) from the training or
    validation split of the training house; ``targets_w`` their target power in watts.
    """
    check_not_test_house(house, test_houses)
    x = np.asarray(windows, dtype=np.float32)
    y = np.asarray(targets_w, dtype=np.float32).reshape(-1)
    if x.ndim < 2 or x.shape[0] != y.size:
        raise TrainerError(
            f"windows {x.shape} and targets {y.shape} do not describe the same samples"
        )
    valid = np.isfinite(y) & np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
    chosen, notes = _choose(
        y, valid=valid, on_threshold_w=on_threshold_w, size=size, on_fraction=on_fraction, seed=seed
    )
    return _make_set(
        x[chosen], y[chosen], threshold=on_threshold_w, house=house, test_houses=test_houses,
        source=source, seed=seed, notes=notes,
    )  # fmt: skip


def representative_from_windows(
    window_sets: Sequence[Any],
    *,
    house: str | int,
    test_houses: Sequence[str | int],
    source: str,
    size: int = 256,
    on_fraction: float = 0.5,
    seed: int = 0,
) -> RepresentativeSet:
    """Calibration set from :class:`trainer.windows.WindowSet` objects (train and/or
    validation of the training house), materialising only the chosen windows."""
    check_not_test_house(house, test_houses)
    sets = [ws for ws in window_sets if len(ws)]
    if not sets:
        raise TrainerError("no windows to calibrate on")
    threshold = float(sets[0].norm.on_threshold_w)
    targets = np.concatenate([ws.targets_w() for ws in sets]).astype(np.float32)
    owner = np.concatenate([np.full(len(ws), i) for i, ws in enumerate(sets)])
    offset = np.concatenate([np.arange(len(ws)) for ws in sets])
    chosen, notes = _choose(
        targets, valid=np.isfinite(targets), on_threshold_w=threshold, size=size,
        on_fraction=on_fraction, seed=seed,
    )  # fmt: skip
    x = np.stack([sets[owner[i]].inputs([offset[i]])[0] for i in chosen]).astype(np.float32)
    return _make_set(
        x, targets[chosen], threshold=threshold, house=house, test_houses=test_houses,
        source=source, seed=seed, notes=notes,
    )  # fmt: skip


def _make_set(
    x: FloatArray,
    y: FloatArray,
    *,
    threshold: float,
    house: str | int,
    test_houses: Sequence[str | int],
    source: str,
    seed: int,
    notes: list[str],
) -> RepresentativeSet:
    return RepresentativeSet(
        windows=x,
        targets_w=y,
        on=y >= threshold,
        house=str(house),
        source=source,
        seed=seed,
        on_threshold_w=float(threshold),
        excluded_houses=tuple(str(h) for h in test_houses),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- conversion


@dataclass(frozen=True, slots=True)
class ConvertedModel:
    """A converted model plus what the card needs about its outputs.

    ``output_order[i]`` is the Keras output index of the file's i-th output: the
    converter may reorder outputs, and the card must point at the right one.
    """

    data: bytes
    config: QuantizeConfig
    output_order: tuple[int, ...]
    input_shape: tuple[int, ...]

    def tflite_output_index(self, keras_output: int) -> int:
        return self.output_order.index(keras_output)


_OP_PATTERNS = (
    re.compile(r"not yet supported for op: '([^']+)'"),
    re.compile(r"'(tfl?\.[A-Za-z0-9_]+)' op"),
    re.compile(r"op(?:eration)? '([A-Za-z0-9_.]+)'"),
    re.compile(r"\b(tf\.[A-Za-z0-9_]+)\b"),
)


def failing_op(message: str) -> str | None:
    """The op a converter error blames, if the message names one."""
    for pattern in _OP_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def output_names(model: Any) -> list[str]:
    """Keras output names (unique), used as signature keys so the order is traceable."""
    names = [str(n) for n in getattr(model, "output_names", [])]
    if len(names) != len(model.outputs) or len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return names


def input_shape(model: Any) -> tuple[int, ...]:
    """The batch-1 input shape the converted model gets."""
    return (1, *(int(d) for d in model.inputs[0].shape[1:]))


def _converter(model: Any, config: QuantizeConfig, rep: RepresentativeSet | None) -> Any:
    import tensorflow as tf

    shape = input_shape(model)
    names = output_names(model)
    spec = tf.TensorSpec(shape, tf.float32, name="mains")

    # A bare concrete function (no trackable object) freezes the weights into constants
    # and fixes the batch at 1; a dict output makes the file's output order traceable.
    @tf.function(input_signature=[spec])  # type: ignore[untyped-decorator]
    def serve(mains: Any) -> dict[str, Any]:
        out = model(mains, training=False)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return dict(zip(names, outs, strict=True))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if config.mode == "convert_only":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if config.mode == "w8":
        return converter
    if rep is None:
        raise TrainerError(f"mode {config.mode} needs a representative dataset")
    windows = rep.windows.reshape(-1, *shape[1:])  # (N, L) or (N, L, 1)

    def representative() -> Iterator[list[FloatArray]]:
        for w in windows:
            yield [w[np.newaxis].astype(np.float32)]

    converter.representative_dataset = representative
    if config.mode == "w8_a8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if config.int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    else:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    return converter


def make_converter(model: Any, config: QuantizeConfig, rep: RepresentativeSet | None) -> Any:
    """The configured TFLiteConverter (the quantization debugger needs one)."""
    if rep is not None:  # also guards sets built by hand instead of by the builder
        check_not_test_house(rep.house, rep.excluded_houses)
    return _converter(model, config, rep)


def output_order(data: bytes, names: list[str]) -> tuple[int, ...]:
    """Keras output index of each of the file's outputs, through the signature keys."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    details = interp.get_output_details()
    sigs = interp.get_signature_list()
    if not sigs:
        return tuple(range(len(details)))
    runner = interp.get_signature_runner(next(iter(sigs)))
    by_tensor = {d["index"]: key for key, d in runner.get_output_details().items()}
    keys = [by_tensor.get(d["index"], "") for d in details]
    if sorted(keys) != sorted(names):
        raise TrainerError(f"converted outputs {keys} do not match the model's {names}")
    return tuple(names.index(k) for k in keys)


def convert(
    model: Any, config: QuantizeConfig, rep: RepresentativeSet | None = None
) -> ConvertedModel:
    """Convert ``model``; a mode the model's ops do not support raises TrainerError."""
    converter = make_converter(model, config, rep)
    try:
        data = bytes(converter.convert())
    except Exception as err:  # the converter raises ConverterError, RuntimeError, ValueError
        message = str(err).strip()
        op = failing_op(message)
        found = re.search(r"error: ([^\n]+)", message)
        detail = (found.group(1) if found else message.splitlines()[0] if message else "")[:300]
        what = f"op {op}" if op else "an op"
        hint = (
            "; only TFLite builtin ops are allowed (no SELECT_TF_OPS)" if "flex" in message else ""
        )
        raise TrainerError(
            f"mode {config.label} cannot convert this model: {what} is not supported "
            f"({detail or type(err).__name__}{hint})"
        ) from err
    return ConvertedModel(data, config, output_order(data, output_names(model)), input_shape(model))


def convert_all(
    model: Any,
    rep: RepresentativeSet,
    *,
    modes: Sequence[str] = MODES,
    seed: int = 0,
    edgetpu: bool = True,
) -> tuple[dict[str, ConvertedModel], dict[str, str]]:
    """Every mode (plus the int8-I/O Edge TPU input); failures are collected, not fatal."""
    size = max(1, int(rep.windows.shape[0]))
    configs = [QuantizeConfig(mode=m, seed=seed, representative_size=size) for m in modes]
    if edgetpu and "w8_a8" in modes:
        configs.append(
            QuantizeConfig(mode="w8_a8", int8_io=True, seed=seed, representative_size=size)
        )
    done: dict[str, ConvertedModel] = {}
    failed: dict[str, str] = {}
    for cfg in configs:
        try:
            done[cfg.label] = convert(model, cfg, rep if cfg.needs_calibration else None)
        except TrainerError as err:
            failed[cfg.label] = str(err)
    return done, failed


def run_litert(data: bytes, windows: npt.ArrayLike, *, reference: bool = False) -> list[FloatArray]:
    """Run a converted model window by window with LiteRT, (de)quantizing int I/O.

    ``reference`` selects LiteRT's reference kernels instead of the default (XNNPACK):
    XNNPACK's int8 requantization rounds differently, so the two may differ by a few
    output steps on int8 models.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from custom_components.nilm.engine.backends import TensorIO

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interp = Interpreter(model_content=data, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outs = interp.get_output_details()
    # The engine's I/O (de)quantization, so LiteRT is fed exactly what the engine feeds.
    inp_io = TensorIO.from_details(inp)
    out_io = [TensorIO.from_details(out) for out in outs]
    x = np.asarray(windows, dtype=np.float32).reshape(-1, *inp["shape"][1:])
    results: list[list[FloatArray]] = [[] for _ in outs]
    for row in x:
        interp.set_tensor(inp["index"], inp_io.to_model(row[np.newaxis]))
        interp.invoke()
        for k, out in enumerate(outs):
            y = out_io[k].from_model(interp.get_tensor(out["index"]))
            results[k].append(y.reshape(-1))
    return [np.stack(r).astype(np.float32) for r in results]


# --------------------------------------------------------------------------- CLI


def add_cli(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="convert a trained model to .tflite in one or all quantization modes",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("train_run", type=Path, help="run directory written by `train`")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--int8-io", action="store_true", help="w8_a8 with int8 I/O (Edge TPU)")
    add_calibration_args(parser)
    parser.set_defaults(func=_cli_quantize)


def add_calibration_args(parser: argparse.ArgumentParser) -> None:
    """Calibration options shared by quantize and inspect."""
    parser.add_argument("--data-dir", default=None, help="shared data folder")
    parser.add_argument(
        "--test-house", default="20", help="house never used for calibration (default: 20)"
    )
    parser.add_argument("--representative-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)


def _cli_quantize(args: argparse.Namespace) -> int:
    from .pipeline import TrainedRun

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
        path.with_name(path.stem + ".config.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{cfg.label}: {path} ({len(converted.data):,} bytes)")
    return 1 if len(failed) == len(modes) else 0
