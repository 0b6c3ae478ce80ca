"""Per-model inspection: where quantization hurts, which backend runs what, and at what cost.

Everything a deployment decision needs is measured in one run on one machine, so the
numbers compare: per-layer quantization error (TFLite's quantization debugger, run on
LiteRT's interpreter; RMSE over the quantization step against the 1/sqrt(12) ~ 0.289 of
ideal rounding), an optional selective model that keeps suspected layers in float, the op
list per backend, file size, peak memory of one inference and latency on LiteRT (XNNPACK
and reference kernels) and the numpy engine, with the numpy engine's per-operator times.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .calibration import RepresentativeSet
from .config import (
    BACKEND_LABELS,
    DEFAULT_INSPECT_CONFIG,
    IDEAL_RMSE_OVER_SCALE,
    InspectConfig,
    QuantizeConfig,
)
from .errors import TrainerError
from .files import jsonable
from .quantize import (
    input_shape,
    make_converter,
    open_litert,
    output_names,
    output_order,
    run_litert,
)

__all__ = [
    "BACKEND_LABELS", "EDGETPU_OPS", "IDEAL_RMSE_OVER_SCALE", "BackendRun", "InspectConfig",
    "Inspection", "LayerError", "OpRow", "SelectiveResult", "check_format", "input_shape_of",
    "inspect_model", "is_full_int8", "layer_errors", "numpy_engine_support", "opcodes",
]  # fmt: skip
# Documented Edge TPU operations (coral.ai "TensorFlow models on the Edge TPU"); only a
# hint: the compiler decides, and maps everything after the first unsupported op to CPU.
EDGETPU_OPS = frozenset(
    {
        "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
        "EXPAND_DIMS", "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM",
        "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE",
        "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE",
        "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX",
        "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM",
        "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LayerError:
    """One quantized tensor's error against the float model (averaged over samples)."""

    op_name: str
    tensor_name: str
    tensor_index: int
    scale: float
    rmse: float
    rmse_over_scale: float
    mean_error: float
    max_abs_error: float
    suspected: bool


@dataclass(frozen=True, slots=True)
class SelectiveResult:
    """Full-int8 vs selective model (suspected layers kept in float) on the same windows."""

    denylisted: tuple[str, ...]
    full_int8_rmse: float
    selective_rmse: float
    selective_size_bytes: int
    data: bytes = field(repr=False, default=b"")


@dataclass(frozen=True, slots=True)
class OpRow:
    opcode: str
    count: int
    numpy: bool
    litert: bool
    edgetpu: bool | None


@dataclass(frozen=True, slots=True)
class BackendRun:
    """Latency (ms, batch 1) and memory of one backend; ``error`` when it could not run."""

    backend: str
    median_ms: float = math.nan
    p90_ms: float = math.nan
    runs: int = 0
    peak_memory_bytes: int | None = None
    memory_method: str = ""
    op_times_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class Inspection:
    name: str
    mode: str
    size_bytes: int
    ops: tuple[OpRow, ...]
    backends: tuple[BackendRun, ...]
    layers: tuple[LayerError, ...] = ()
    layer_note: str = ""
    selective: SelectiveResult | None = None
    config: InspectConfig = field(default_factory=InspectConfig)

    @property
    def suspected(self) -> list[LayerError]:
        return [layer for layer in self.layers if layer.suspected]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.selective is not None:
            out["selective"].pop("data", None)
        out["ideal_rmse_over_scale"] = IDEAL_RMSE_OVER_SCALE
        out["suspect_threshold"] = self.config.suspect_threshold
        safe: dict[str, Any] = jsonable(out)
        return safe

    def markdown(self) -> str:
        return "\n".join(_markdown(self)) + "\n"


# --------------------------------------------------------------------------- layer errors


def layer_errors(
    model: Any,
    rep: RepresentativeSet,
    config: InspectConfig = DEFAULT_INSPECT_CONFIG,
    *,
    eval_windows: npt.NDArray[np.float32] | None = None,
) -> tuple[list[LayerError], SelectiveResult | None]:
    """Per-layer error of the full-int8 model; optionally a selective model re-measured.

    The debugger only instruments int8 activations, so this describes ``w8_a8``; 16x8
    error is covered by the output comparison instead. The selective comparison runs the
    full-int8 and the selective model on ``eval_windows`` (held-out, float I/O) against
    the float model and reports the RMSE of the first output.
    """
    import tensorflow as tf

    shape = input_shape(model)
    converter = make_converter(model, QuantizeConfig(mode="w8_a8"), rep)
    dataset = rep.dataset(shape, config.debug_samples)
    try:
        with _debugger_runs_litert():
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=dataset
            )
            debugger.run()
    except Exception as err:  # converter/debugger errors carry no stable type
        raise TrainerError(f"quantization debugger failed: {str(err).splitlines()[0]}") from err
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    buffer.seek(0)
    layers: list[LayerError] = []
    for row in csv.DictReader(buffer):
        scale = float(row["scale"])
        rmse = math.sqrt(max(float(row["mean_squared_error"]), 0.0))
        ratio = rmse / scale if scale > 0 else math.nan
        layers.append(
            LayerError(
                op_name=row["op_name"],
                tensor_name=row["tensor_name"],
                tensor_index=int(row["tensor_idx"]),
                scale=scale,
                rmse=rmse,
                rmse_over_scale=ratio,
                mean_error=float(row["mean_error"]),
                max_abs_error=float(row["max_abs_error"]),
                suspected=bool(ratio > config.suspect_threshold),
            )
        )
    suspected = [layer.tensor_name for layer in layers if layer.suspected]
    selective: SelectiveResult | None = None
    if config.selective and suspected and eval_windows is not None:
        full = debugger.get_nondebug_quantized_model()
        with _debugger_runs_litert():  # setting options re-creates its interpreters
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=suspected
            )
        partial = bytes(debugger.get_nondebug_quantized_model())
        selective = SelectiveResult(
            denylisted=tuple(suspected),
            full_int8_rmse=_power_rmse(model, bytes(full), eval_windows),
            selective_rmse=_power_rmse(model, partial, eval_windows),
            selective_size_bytes=len(partial),
            data=partial,
        )
    return layers, selective


@contextlib.contextmanager
def _debugger_runs_litert() -> Iterator[None]:
    """TensorFlow's quantization debugger, on LiteRT's interpreter instead of tf.lite's.

    The debugger builds ``tf.lite.Interpreter`` objects itself (deprecated, a warning on
    each); ``ai_edge_litert.interpreter`` is the same API (private op/tensor details, the
    NumericVerify op, ``experimental_preserve_all_tensors``), so the debugger's module is
    pointed at it while it creates interpreters.
    """
    from ai_edge_litert import interpreter as litert
    from tensorflow.lite.tools.optimize.debugging.python import debugger as tf_debugger

    saved = tf_debugger._interpreter
    tf_debugger._interpreter = litert
    try:
        yield
    finally:
        tf_debugger._interpreter = saved


def _power_rmse(model: Any, data: bytes, windows: npt.NDArray[np.float32]) -> float:
    """RMSE of Keras output 0 (power, scaled) between the float model and ``data``."""
    reference = model.predict(windows, verbose=0)
    reference = reference[0] if isinstance(reference, (list, tuple)) else reference
    order = output_order(data, output_names(model))
    got = run_litert(data, windows)[order.index(0)]
    return float(np.sqrt(np.mean((got.reshape(-1) - np.asarray(reference).reshape(-1)) ** 2)))


# --------------------------------------------------------------------------- ops


def opcodes(data: bytes) -> list[str]:
    """Operator names in execution order (one entry per operator)."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    sub = model.Subgraphs(0)
    out: list[str] = []
    for i in range(sub.OperatorsLength()):
        code = model.OperatorCodes(sub.Operators(i).OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == tflite.BuiltinOperator.CUSTOM:
            out.append(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            out.append(names.get(builtin, f"BUILTIN_{builtin}"))
    return out


def numpy_engine_support(data: bytes) -> tuple[frozenset[str], str]:
    """Ops of this model the numpy engine cannot run ("" when it runs them all), found by
    preparing the model exactly as the engine does (dtype-specific kernels included)."""
    from custom_components.nilm.engine.errors import ModelError, UnsupportedOpError
    from custom_components.nilm.engine.interpreter import NumpyInterpreter
    from custom_components.nilm.engine.reader import read_model

    try:
        NumpyInterpreter(read_model(data))
    except UnsupportedOpError as err:
        names = frozenset(name.split("(")[0] for name in err.op_names)
        return names, str(err)
    except ModelError as err:
        return frozenset(opcodes(data)), str(err)
    return frozenset(), ""


def op_table(data: bytes, *, int8_model: bool) -> list[OpRow]:
    """Each distinct op with who runs it (LiteRT runs every builtin it was built with)."""
    ops = opcodes(data)
    unsupported, _ = numpy_engine_support(data)
    rows: dict[str, int] = {}
    for op in ops:
        rows[op] = rows.get(op, 0) + 1
    return [
        OpRow(
            opcode=op,
            count=count,
            numpy=op not in unsupported,
            litert=not op.startswith("CUSTOM"),
            edgetpu=(op in EDGETPU_OPS or op == "DEQUANTIZE") if int8_model else None,
        )
        for op, count in rows.items()
    ]


# --------------------------------------------------------------------------- backends


# Runs in a fresh interpreter process: TensorFlow (already loaded here) keeps memory pools
# mapped, so an in-process RSS delta would mostly read 0.
_LITERT_MEMORY_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[3])
import numpy as np
import ai_edge_litert.interpreter  # loaded before the first reading, so not counted
from custom_components.nilm.engine.backends import open_litert_interpreter

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}

data = open(sys.argv[1], "rb").read()
before = status()
interp = open_litert_interpreter(data, reference=sys.argv[2] == "ref", num_threads=1)
inp = interp.get_input_details()[0]
interp.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
interp.invoke()
after = status()
print(json.dumps({k: after[k] - before[k] for k in after}))
"""
LITERT_MEMORY_METHOD = (
    "peak RSS (VmHWM) growth of a fresh Python process with LiteRT imported, from before "
    "interpreter creation to after allocate_tensors + one invoke: arena, packed weights, "
    "delegate set-up and kernel code pages touched; page-granular"
)


def _litert_memory(data: bytes, ref: bool) -> int | None:
    """Peak memory of one LiteRT inference, measured in a child process (None: no /proc)."""
    import subprocess
    import sys
    import tempfile

    if not Path("/proc/self/status").exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _LITERT_MEMORY_PROBE,
                str(path),
                "ref" if ref else "auto",
                str(Path(__file__).resolve().parents[1]),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return None
    return max(int(json.loads(lines[-1])["VmHWM"]), 0)


def _time_runs(fn: Callable[[], Any], runs: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def _litert_run(
    data: bytes, x: npt.NDArray[np.float32], ref: bool, cfg: InspectConfig
) -> BackendRun:
    name = "litert_ref" if ref else "litert"
    lite = open_litert(data, reference=ref, num_threads=1)
    lite.set_input(x)
    interp = lite.interpreter
    interp.invoke()
    median, p90 = _time_runs(interp.invoke, cfg.latency_runs, cfg.warmup_runs)
    return BackendRun(
        backend=name,
        median_ms=median,
        p90_ms=p90,
        runs=cfg.latency_runs,
        peak_memory_bytes=_litert_memory(data, ref),
        memory_method=LITERT_MEMORY_METHOD,
    )


def _numpy_run(data: bytes, x: npt.NDArray[np.float32], cfg: InspectConfig) -> BackendRun:
    from custom_components.nilm.engine.interpreter import NumpyInterpreter
    from custom_components.nilm.engine.reader import read_model

    graph = read_model(data)
    interp = NumpyInterpreter(graph)
    shape = graph.tensors[graph.inputs[0]].shape
    dtype = graph.tensors[graph.inputs[0]].dtype
    value = x.reshape(shape)
    quant = graph.tensors[graph.inputs[0]].quantization
    if dtype != "float32" and quant is not None:
        info = np.iinfo(np.dtype(dtype))
        value = np.clip(
            np.round(value / float(quant.scale[0])) + int(quant.zero_point[0]), info.min, info.max
        )
    arr = value.astype(dtype)
    interp.run([arr])  # warm: exclude one-time caches from the peak
    tracemalloc.start()
    try:
        interp.run([arr])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    median, p90 = _time_runs(lambda: interp.run([arr]), cfg.latency_runs, cfg.warmup_runs)
    return BackendRun(
        backend="numpy",
        median_ms=median,
        p90_ms=p90,
        runs=cfg.latency_runs,
        peak_memory_bytes=int(peak),
        memory_method="tracemalloc peak of one run() after a warm-up run (numpy buffers included)",
        op_times_ms=_numpy_op_times(interp, arr, cfg),
    )


def _numpy_op_times(interp: Any, arr: npt.NDArray[Any], cfg: InspectConfig) -> dict[str, float]:
    """Per-opcode time (ms per inference, summed over the ops of a type) from the engine's
    own profiler."""
    runs = max(3, cfg.latency_runs // 3)
    interp.profile.clear()
    for _ in range(runs):
        interp.run([arr], profile=True)
    totals = {str(op): float(sec) * 1000.0 / runs for op, sec in interp.profile.items()}
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def measure_backends(
    data: bytes, window: npt.NDArray[np.float32], config: InspectConfig = DEFAULT_INSPECT_CONFIG
) -> list[BackendRun]:
    """Latency and memory of each configured backend on the same window, same process."""
    x = np.asarray(window, dtype=np.float32)
    out: list[BackendRun] = []
    for backend in config.backends:
        try:
            if backend == "numpy":
                out.append(_numpy_run(data, x, config))
            else:
                out.append(_litert_run(data, x, backend == "litert_ref", config))
        except Exception as err:  # an unsupported op/backend is a finding, not a crash
            out.append(BackendRun(backend=backend, error=f"{type(err).__name__}: {err}"))
    return out


def inspect_model(
    name: str,
    data: bytes,
    mode: str,
    window: npt.NDArray[np.float32],
    config: InspectConfig = DEFAULT_INSPECT_CONFIG,
    *,
    layers: tuple[LayerError, ...] = (),
    layer_note: str = "",
    selective: SelectiveResult | None = None,
) -> Inspection:
    """Ops, size and backend measurements of one converted model."""
    int8 = mode.startswith("w8_a8")
    return Inspection(
        name=name,
        mode=mode,
        size_bytes=len(data),
        ops=tuple(op_table(data, int8_model=int8)),
        backends=tuple(measure_backends(data, window, config)),
        layers=layers,
        layer_note=layer_note,
        selective=selective,
        config=config,
    )


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _short(name: str, width: int = 60) -> str:
    """Fused op names list every folded op; the first and the end identify the layer."""
    return name if len(name) <= width else name[: width // 2 - 2] + " .. " + name[-width // 2 + 2 :]


def layer_table(layers: tuple[LayerError, ...] | list[LayerError], threshold: float) -> list[str]:
    """Markdown table of per-layer error with the suspected flag."""
    lines = [
        f"Ideal RMSE/scale {IDEAL_RMSE_OVER_SCALE:.3f}; suspected above {threshold:.3f}.",
        "",
        "| # | op | tensor | scale | RMSE | RMSE/scale | max abs err | suspected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for layer in layers:
        lines.append(
            f"| {layer.tensor_index} | {layer.op_name} | `{_short(layer.tensor_name)}` | "
            f"{layer.scale:.4g} | {layer.rmse:.4g} | {_fmt(layer.rmse_over_scale)} | "
            f"{layer.max_abs_error:.4g} | {'**yes**' if layer.suspected else 'no'} |"
        )
    return lines


def _markdown(ins: Inspection) -> list[str]:
    lines = [f"### {ins.name} ({ins.mode})", "", f"File size: {ins.size_bytes:,} bytes.", ""]
    lines += [
        "| op | count | numpy engine | LiteRT | Edge TPU (documented) |",
        "|---|---|---|---|---|",
    ]
    for op in ins.ops:
        tpu = "-" if op.edgetpu is None else ("yes" if op.edgetpu else "**no**")
        lines.append(
            f"| {op.opcode} | {op.count} | {'yes' if op.numpy else '**no**'} | "
            f"{'yes' if op.litert else 'no'} | {tpu} |"
        )
    lines += ["", "| backend | median ms | p90 ms | peak memory | note |", "|---|---|---|---|---|"]
    for run in ins.backends:
        mem = "-" if run.peak_memory_bytes is None else f"{run.peak_memory_bytes / 1024:.1f} KiB"
        lines.append(
            f"| {BACKEND_LABELS.get(run.backend, run.backend)} | {_fmt(run.median_ms)} | "
            f"{_fmt(run.p90_ms)} | {mem} | {run.error or run.memory_method} |"
        )
    for run in ins.backends:
        if run.op_times_ms:
            lines += [
                "",
                f"Per-operator time, {BACKEND_LABELS[run.backend]} (ms per inference):",
                "",
            ]
            lines += ["| op | ms |", "|---|---|"]
            lines += [f"| {op} | {ms:.4f} |" for op, ms in run.op_times_ms.items()]
    if ins.layers:
        lines += ["", "Per-layer quantization error (full int8, quantization debugger):", ""]
        lines += layer_table(ins.layers, ins.config.suspect_threshold)
    if ins.layer_note:
        lines += ["", ins.layer_note]
    if ins.selective is not None:
        sel = ins.selective
        lines += [
            "",
            f"Selective quantization (float: {', '.join(f'`{n}`' for n in sel.denylisted)}): "
            f"output RMSE vs float {sel.full_int8_rmse:.5f} (full int8) -> "
            f"{sel.selective_rmse:.5f} (selective), {sel.selective_size_bytes:,} bytes.",
        ]
    return lines


# --------------------------------------------------------------------------- file checks


def check_format(data: bytes, path: Path) -> None:
    """A malformed file is one clear error; ops the engine lacks are a finding, not one."""
    from custom_components.nilm.engine.errors import ModelFormatError, UnsupportedOpError
    from custom_components.nilm.engine.reader import read_model

    try:
        read_model(data)
    except UnsupportedOpError:
        pass
    except ModelFormatError as err:
        raise TrainerError(f"{path}: not a valid .tflite model: {err}") from err


def is_full_int8(data: bytes) -> bool:
    """Full-integer int8 model: every FULLY_CONNECTED/CONV_2D output is int8."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    dtypes = {
        str(interp._get_tensor_details(op["outputs"][0], 0)["dtype"].__name__)
        for op in interp._get_ops_details()
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")
    }
    return dtypes == {"int8"}


def input_shape_of(data: bytes) -> tuple[int, ...]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    return tuple(int(d) for d in interp.get_input_details()[0]["shape"])
