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

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .calibration import RepresentativeSet, check_not_test_house
from .config import MODES, QuantizeConfig
from .errors import TrainerError

__all__ = [
    "MODES", "ConvertedModel", "LiteRT", "QuantizeConfig", "convert", "convert_all",
    "failing_op", "input_shape", "make_converter", "open_litert", "output_names",
    "output_order", "run_litert", "to_tflite",
]  # fmt: skip

FloatArray = npt.NDArray[np.float32]


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
    converter.representative_dataset = rep.dataset(shape)  # (N, L) or (N, L, 1) windows
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


def to_tflite(model: Any, *, optimizations: bool = False) -> bytes:
    """Float TFLite (``convert_only``; ``optimizations``: int8 weights, ``w8``) with a
    static batch-1 input and builtin ops only, the contract the engine relies on."""
    return convert(model, QuantizeConfig(mode="w8" if optimizations else "convert_only")).data


@dataclass(slots=True)
class LiteRT:
    """A LiteRT interpreter with tensors allocated and the engine's I/O (de)quantization
    of its input and outputs, so LiteRT is fed exactly what the engine feeds."""

    interpreter: Any
    input: dict[str, Any]
    outputs: list[dict[str, Any]]
    input_io: Any  # engine.backends.TensorIO
    output_io: list[Any]

    def set_input(self, window: npt.ArrayLike) -> None:
        x = np.asarray(window, dtype=np.float32).reshape(self.input["shape"])
        self.interpreter.set_tensor(self.input["index"], self.input_io.to_model(x))

    def output(self, k: int) -> FloatArray:
        raw = self.interpreter.get_tensor(self.outputs[k]["index"])
        return self.output_io[k].from_model(raw)  # type: ignore[no-any-return]


def open_litert(data: bytes, *, reference: bool = False, num_threads: int | None = None) -> LiteRT:
    """``reference`` selects LiteRT's reference kernels instead of the default (XNNPACK):
    XNNPACK's int8 requantization rounds differently, so the two may differ by a few
    output steps on int8 models."""
    from custom_components.nilm.engine.backends import TensorIO, open_litert_interpreter

    interp = open_litert_interpreter(data, reference=reference, num_threads=num_threads)
    inp = interp.get_input_details()[0]
    outs = interp.get_output_details()
    return LiteRT(
        interp, inp, outs, TensorIO.from_details(inp), [TensorIO.from_details(o) for o in outs]
    )


def run_litert(data: bytes, windows: npt.ArrayLike, *, reference: bool = False) -> list[FloatArray]:
    """Run a converted model window by window with LiteRT, (de)quantizing int I/O
    (``reference``: see :func:`open_litert`)."""
    lite = open_litert(data, reference=reference)
    x = np.asarray(windows, dtype=np.float32).reshape(-1, *lite.input["shape"][1:])
    results: list[list[FloatArray]] = [[] for _ in lite.outputs]
    for row in x:
        lite.set_input(row[np.newaxis])
        lite.interpreter.invoke()
        for k in range(len(lite.outputs)):
            results[k].append(lite.output(k).reshape(-1))
    return [np.stack(r).astype(np.float32) for r in results]
