"""Backends behind one interface: numpy everywhere, LiteRT when importable, Coral when present.

``Backend.run`` takes float32 model inputs of shape (N, *input_shape[1:]) and returns the
model outputs as float32 arrays of shape (N, *output_shape[1:]), (de)quantizing int8/int16
model I/O itself, so callers never see raw integer tensors.

``create_backend(path, preference)`` with preference one of "auto", "numpy", "litert",
"litert_ref", "edgetpu". A forced backend that cannot load raises
:class:`BackendUnavailableError`; "auto" falls back (edgetpu -> litert -> numpy) and logs
why. Every model file is first validated by the pure-Python reader, so a malformed file
raises :class:`ModelFormatError` before any native code parses it.

Native code can still crash the whole process (SIGSEGV) on a crafted file that passes
every check the reader can make, so :func:`create_backend` opens a file in LiteRT only
when it is trusted: its sha256 is one of the bundled models' (:func:`trusted_sha256`), or
a vetting run of exactly this configuration in a child process (:func:`vet_model`)
finished. Otherwise "auto" runs the numpy engine and a forced LiteRT backend raises
:class:`BackendUnavailableError` with the reason. ``LiteRTBackend`` itself opens
whatever it is given (tests and the vetting child use it directly).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .errors import BackendUnavailableError, ModelError, ModelFormatError
from .graph import Graph, Tensor
from .reader import MAX_FILE_BYTES, read_model_file, read_regular_file

_LOGGER = logging.getLogger(__name__)

BACKENDS = ("auto", "numpy", "litert", "litert_ref", "edgetpu")
EDGETPU_SUFFIX = "_edgetpu.tflite"
EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
# Windows per native call: bounds activation memory when a warm start replays hours.
MAX_CHUNK = 256
_LITERT_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
# What LiteRT's Python layer raises on a model it dislikes (TypeError and IndexError
# come from its tensor-details code on odd quantization parameters).
_LITERT_ERRORS = (ValueError, RuntimeError, TypeError, IndexError, KeyError, OverflowError)
BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# A vetting run loads a small model and runs a few windows: seconds, even on a Pi.
VET_TIMEOUT_S = 60.0
_QUANTIZED_DTYPES = ("int8", "uint8", "int16")

FloatArray = npt.NDArray[np.float32]


class Backend(Protocol):
    name: str

    def run(self, inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]: ...


# --- model I/O: shapes and (de)quantization -------------------------------------------------


@dataclass(frozen=True, slots=True)
class TensorIO:
    """What a backend needs to feed or read one model I/O tensor."""

    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in _QUANTIZED_DTYPES and self.scale > 0.0

    @classmethod
    def from_tensor(cls, tensor: Tensor) -> TensorIO:
        q = tensor.quantization
        if q is None or q.scale.size != 1:
            return cls(tensor.shape, tensor.dtype)
        return cls(tensor.shape, tensor.dtype, float(q.scale[0]), int(q.zero_point[0]))

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> TensorIO:
        """From a LiteRT ``get_input_details()`` entry."""
        scale, zero_point = details.get("quantization", (0.0, 0))
        return cls(
            tuple(int(d) for d in details["shape"]),
            np.dtype(details["dtype"]).name,
            float(scale),
            int(zero_point),
        )

    def to_model(self, x: FloatArray) -> npt.NDArray[Any]:
        """Quantize a float batch (round half away from zero and saturate, as TFLite)."""
        if not self.quantized:
            return x.astype(self.dtype, copy=False)
        info = np.iinfo(self.dtype)
        scaled = x.astype(np.float64) / self.scale
        rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + self.zero_point
        quantized: npt.NDArray[Any] = np.clip(rounded, info.min, info.max).astype(self.dtype)
        return quantized

    def from_model(self, y: npt.NDArray[Any]) -> FloatArray:
        if not self.quantized:
            return np.asarray(y, dtype=np.float32)
        return (
            (y.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)
        ).astype(np.float32)


def _as_batch(inputs: npt.ArrayLike, spec: TensorIO) -> FloatArray:
    """Shape (N, ...) floats to (N, *input_shape[1:]); (N, L) also feeds (1, L, 1)."""
    x = np.asarray(inputs, dtype=np.float32)
    per_window = int(np.prod(spec.shape[1:], dtype=np.int64))
    if x.ndim == 0 or len(x) == 0 or x[0].size != per_window:
        raise ValueError(f"input of shape {x.shape} does not fit model input {spec.shape}")
    return x.reshape((x.shape[0], *spec.shape[1:]))


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _run_chunked(
    x: FloatArray, chunk: int, run_raw: Callable[[FloatArray], list[FloatArray]]
) -> list[FloatArray]:
    parts = [run_raw(x[s]) for s in _chunks(len(x), chunk)]
    return [np.concatenate(outs, axis=0) for outs in zip(*parts, strict=True)]


# --- numpy --------------------------------------------------------------------------------


class NumpyBackend:
    """The pure-Python interpreter: runs wherever numpy does (Home Assistant OS).

    ``extra_outputs`` (tensor indices) are also returned by :meth:`run_with_extras`: the
    features a head re-fit needs (:mod:`.adapter`), computed in the same pass.
    """

    name = "numpy"

    def __init__(
        self, model_path: Path, graph: Graph | None = None, *, extra_outputs: Sequence[int] = ()
    ) -> None:
        from .interpreter import NumpyInterpreter  # noqa: PLC0415 - owned by the kernels work

        self.graph = graph if graph is not None else read_model_file(model_path)
        extras = tuple(extra_outputs)
        run_graph = (
            replace(self.graph, outputs=self.graph.outputs + extras) if extras else self.graph
        )
        try:
            self._interpreter = NumpyInterpreter(run_graph)
        except ModelError:
            raise
        except (ArithmeticError, ValueError, LookupError, TypeError, MemoryError) as err:
            # Parameters the reader accepted but a kernel's preparation cannot use.
            raise ModelFormatError(
                f"{model_path.name}: the numpy engine cannot prepare this model "
                f"({type(err).__name__}: {err})"[:400]
            ) from err
        self.inputs = [TensorIO.from_tensor(self.graph.tensors[i]) for i in self.graph.inputs]
        self.outputs = [TensorIO.from_tensor(self.graph.tensors[i]) for i in self.graph.outputs]
        self.extras = [TensorIO.from_tensor(self.graph.tensors[i]) for i in extras]
        if len(self.inputs) != 1:
            raise ModelFormatError(f"model has {len(self.inputs)} inputs; NILM models take 1")

    def run(self, inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        return self.run_with_extras(inputs)[0]

    def run_with_extras(
        self, inputs: npt.NDArray[np.float32]
    ) -> tuple[list[FloatArray], list[FloatArray]]:
        """The model's outputs and the ``extra_outputs``, all dequantized to float32."""
        # The interpreter bounds its own memory by chunking the batch.
        x = _as_batch(inputs, self.inputs[0])
        raw = self._interpreter.run([self.inputs[0].to_model(x)])
        k = len(self.outputs)
        outputs = [spec.from_model(y) for spec, y in zip(self.outputs, raw[:k], strict=True)]
        extras = [spec.from_model(y) for spec, y in zip(self.extras, raw[k:], strict=True)]
        return outputs, extras


# --- LiteRT / tflite_runtime ----------------------------------------------------------------


@cache
def litert_module() -> ModuleType | None:
    """``ai_edge_litert.interpreter``, else ``tflite_runtime.interpreter``, else None."""
    for name in _LITERT_MODULES:
        try:
            return importlib.import_module(name)
        except (ImportError, OSError) as err:
            _LOGGER.debug("%s not importable: %s", name, err)
    return None


def open_litert_interpreter(
    model: Path | bytes,
    *,
    reference: bool = False,
    delegates: Sequence[Any] = (),
    num_threads: int | None = None,
) -> Any:
    """A LiteRT interpreter over a model file or its bytes, tensors allocated: the one
    place that knows LiteRT's loading options (the backend, the trainer's parity checks
    and the benchmarks all open it here). ``reference``: TFLite's reference kernels,
    which the numpy engine matches bit for bit, instead of XNNPACK.

    Raises BackendUnavailableError when no LiteRT is installed or it refuses the model."""
    module = litert_module()
    if module is None:
        raise BackendUnavailableError("neither ai_edge_litert nor tflite_runtime is installed")
    kwargs: dict[str, Any] = {"num_threads": num_threads}
    if isinstance(model, bytes):
        kwargs["model_content"] = model
    else:
        kwargs["model_path"] = str(model)
    if delegates:
        kwargs["experimental_delegates"] = list(delegates)
    if reference:
        resolver = getattr(module, "OpResolverType", None)
        if resolver is None:
            raise BackendUnavailableError(f"{module.__name__} has no reference op resolver")
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_REF
    try:
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except _LITERT_ERRORS as err:
        name = "the model" if isinstance(model, bytes) else model.name
        raise BackendUnavailableError(f"LiteRT cannot load {name}: {err}") from err
    return interpreter


class LiteRTBackend:
    """LiteRT's native kernels: XNNPACK by default, TFLite reference kernels on request.

    A batch is run by resizing the input to N windows when the model allows it (Keras
    exports keep a dynamic batch), else one window at a time.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        reference: bool = False,
        delegates: Sequence[Any] = (),
        num_threads: int | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or ("litert_ref" if reference else "litert")
        self._interpreter = self._open(model_path, reference, delegates, num_threads)
        try:
            details = self._interpreter.get_input_details()
            if len(details) != 1:
                raise ModelFormatError(f"model has {len(details)} inputs; NILM models take 1")
            self._input_index = int(details[0]["index"])
            self.inputs = [TensorIO.from_details(details[0])]
            self._output_details = self._interpreter.get_output_details()
            self.outputs = [TensorIO.from_details(d) for d in self._output_details]
        except ModelFormatError:
            raise
        except _LITERT_ERRORS as err:
            raise BackendUnavailableError(
                f"{self.name} cannot describe {model_path.name}: {type(err).__name__}: {err}"
            ) from err
        self._batch = 1
        try:
            self._run_raw(np.zeros((1, *self.inputs[0].shape[1:]), np.float32))
        except _LITERT_ERRORS as err:
            # Kernels check types at their first invoke: surface that at load time.
            raise BackendUnavailableError(
                f"{self.name} cannot run {model_path.name}: {err}"
            ) from err
        # A delegated (Edge TPU) graph is compiled for batch 1.
        self.batched = not delegates and self._batch_works()

    def _open(
        self, model_path: Path, reference: bool, delegates: Sequence[Any], threads: int | None
    ) -> Any:
        try:
            return open_litert_interpreter(
                model_path, reference=reference, delegates=delegates, num_threads=threads
            )
        except BackendUnavailableError as err:
            raise BackendUnavailableError(f"{self.name}: {err}") from err

    def _batch_works(self) -> bool:
        """Whether the model runs 2 windows at once (dynamic batch); else loop per window.

        Keras exports compute shapes at run time, so only an invoke tells."""
        probe = np.zeros((2, *self.inputs[0].shape[1:]), np.float32)
        try:
            outputs = self._run_raw(probe)
            ok = all(len(y) == 2 for y in outputs)
        except (ValueError, RuntimeError) as err:
            _LOGGER.debug("%s: batched run unsupported, looping: %s", self.name, err)
            ok = False
        if not ok:
            self._resize(1)
        return ok

    def _resize(self, n: int) -> None:
        shape = [n, *self.inputs[0].shape[1:]]
        self._interpreter.resize_tensor_input(self._input_index, shape, strict=False)
        self._interpreter.allocate_tensors()
        self._batch = n

    def run(self, inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        x = _as_batch(inputs, self.inputs[0])
        return _run_chunked(x, MAX_CHUNK if self.batched else 1, self._run_raw)

    def _run_raw(self, x: FloatArray) -> list[FloatArray]:
        if len(x) != self._batch:
            self._resize(len(x))
        self._interpreter.set_tensor(self._input_index, self.inputs[0].to_model(x))
        self._interpreter.invoke()
        return [
            spec.from_model(self._interpreter.get_tensor(d["index"]))
            for spec, d in zip(self.outputs, self._output_details, strict=True)
        ]


# Replaceable in tests, which have no Coral either.
edgetpu_library_loader: Callable[[str], Any] = ctypes.CDLL


def is_edgetpu_model(model_path: Path) -> bool:
    return model_path.name.endswith(EDGETPU_SUFFIX)


def load_edgetpu_delegate() -> Any:
    """Load the Coral delegate; raise BackendUnavailableError with the loader's reason."""
    module = litert_module()
    if module is None:
        raise BackendUnavailableError("the Edge TPU needs ai_edge_litert or tflite_runtime")
    try:
        # dlopen first: a missing library then fails quietly, whereas a failed
        # load_delegate leaves a half-built Delegate whose __del__ prints a traceback.
        edgetpu_library_loader(EDGETPU_LIBRARY)
        return module.load_delegate(EDGETPU_LIBRARY)
    except (ValueError, OSError) as err:
        raise BackendUnavailableError(f"cannot load {EDGETPU_LIBRARY}: {err}") from err


def create_edgetpu_backend(model_path: Path) -> LiteRTBackend:
    """A Coral Edge TPU backend for a ``*_edgetpu.tflite`` model (batch of one per call)."""
    if not is_edgetpu_model(model_path):
        raise BackendUnavailableError(
            f"{model_path.name} is not compiled for the Edge TPU (*{EDGETPU_SUFFIX})"
        )
    read_model_file(model_path, custom_ops=(EDGETPU_CUSTOM_OP,))
    if litert_module() is None:
        raise BackendUnavailableError("the Edge TPU needs ai_edge_litert or tflite_runtime")
    try:
        edgetpu_library_loader(EDGETPU_LIBRARY)
    except OSError as err:
        raise BackendUnavailableError(f"cannot load {EDGETPU_LIBRARY}: {err}") from err
    # Vetted before this process opens the device: the child needs it to itself.
    require_trusted(model_path, "edgetpu")
    return LiteRTBackend(model_path, delegates=[load_edgetpu_delegate()], name="edgetpu")


# --- selection ------------------------------------------------------------------------------


@cache
def _edgetpu_loadable() -> bool:
    try:
        load_edgetpu_delegate()
    except BackendUnavailableError:
        return False
    return True


def available_backends() -> list[str]:
    """Backends that can load on this machine (the Edge TPU only with its delegate)."""
    names = ["numpy"]
    module = litert_module()
    if module is not None:
        names.append("litert")
        if hasattr(module, "OpResolverType"):
            names.append("litert_ref")
        if _edgetpu_loadable():
            names.append("edgetpu")
    return names


def _forced(model_path: Path, preference: str) -> Backend:
    if preference == "numpy":
        return NumpyBackend(model_path)
    if preference == "edgetpu":
        return create_edgetpu_backend(model_path)
    read_model_file(model_path)  # a malformed file never reaches native code
    if litert_module() is None:
        raise BackendUnavailableError("neither ai_edge_litert nor tflite_runtime is installed")
    require_trusted(model_path, preference)
    return LiteRTBackend(model_path, reference=preference == "litert_ref")


def _auto(model_path: Path) -> Backend:
    if is_edgetpu_model(model_path):
        try:
            return create_edgetpu_backend(model_path)
        except BackendUnavailableError as err:
            _LOGGER.warning("Edge TPU unavailable for %s, falling back: %s", model_path.name, err)
    graph = read_model_file(model_path)
    if litert_module() is not None:
        try:
            require_trusted(model_path, "litert")
            return LiteRTBackend(model_path)
        except BackendUnavailableError as err:
            _LOGGER.warning("LiteRT unavailable for %s, using numpy: %s", model_path.name, err)
    return NumpyBackend(model_path, graph)


# --- trust: bundled hashes, or a vetting run in a child process -----------------------------


@cache
def trusted_sha256() -> frozenset[str]:
    """The sha256 of every bundled model (from the cards shipped beside them)."""
    found: set[str] = set()
    for card_path in sorted(BUNDLED_MODELS_DIR.rglob("*.json")):
        try:
            sha = json.loads(card_path.read_text(encoding="utf-8")).get("tflite_sha256")
        except (OSError, ValueError, AttributeError) as err:
            _LOGGER.debug("bundled card %s unreadable: %s", card_path.name, err)
            continue
        if isinstance(sha, str) and len(sha) == 64:
            found.add(sha.lower())
    return frozenset(found)


_vetted: dict[tuple[str, str], str | None] = {}
_vet_lock = threading.Lock()


def require_trusted(model_path: Path, mode: str) -> None:
    """Raise BackendUnavailableError unless LiteRT may open ``model_path`` in ``mode``
    ("litert", "litert_ref" or "edgetpu") in this process."""
    try:
        data = read_regular_file(model_path, MAX_FILE_BYTES)
    except (OSError, ValueError) as err:
        raise ModelFormatError(f"{model_path.name}: cannot read model file: {err}") from err
    sha = hashlib.sha256(data).hexdigest()
    if sha in trusted_sha256():
        return
    key = (sha, mode)
    with _vet_lock:  # one vetting run per file and mode, however many threads ask
        if key not in _vetted:
            _vetted[key] = vet_model(model_path, mode)
        refusal = _vetted[key]
    if refusal is not None:
        raise BackendUnavailableError(
            f"{mode} is not used for {model_path.name}, a user model whose test run in a "
            f"separate process failed: {refusal}"
        )


def _import_root() -> tuple[str, str]:
    """(folder to put on sys.path, module name) to import this module in a child."""
    depth = __name__.count(".")
    root = Path(__file__).resolve().parents[depth]
    return str(root), __name__


_VET_SCRIPT = """
import importlib, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
backends = importlib.import_module(sys.argv[2])
from pathlib import Path
path, mode = Path(sys.argv[3]), sys.argv[4]
delegates = [backends.load_edgetpu_delegate()] if mode == "edgetpu" else []
backend = backends.LiteRTBackend(path, reference=mode == "litert_ref", delegates=delegates)
shape = backend.inputs[0].shape[1:]
rng = np.random.default_rng(0)
for n in (1, 3, 1):
    backend.run(rng.standard_normal((n, *shape)).astype(np.float32) * 3)
print("vetted")
"""


def vet_model(model_path: Path, mode: str) -> str | None:
    """Open and run ``model_path`` on LiteRT in a child process, as this process would.

    Returns None when the child loaded the model and ran a few batches, else why not
    (killed by a signal, timed out, or the error it raised: LiteRT would fail here too, so
    the numpy engine is the better choice). Replaceable in tests: a child process cannot
    see a test's stand-in modules.
    """
    if not sys.executable:
        return "no Python executable to run the test in"
    root, module = _import_root()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, sys.path)])}
    try:
        result = subprocess.run(
            [sys.executable, "-c", _VET_SCRIPT, root, module, str(model_path), mode],
            capture_output=True,
            text=True,
            timeout=VET_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"it did not finish within {VET_TIMEOUT_S:g} s"
    except OSError as err:
        return f"cannot start it: {err}"
    if result.returncode < 0:
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        return f"LiteRT crashed with {name}"
    if result.returncode != 0 or "vetted" not in result.stdout:
        _LOGGER.debug("vetting %s (%s) failed: %s", model_path.name, mode, result.stderr[-2000:])
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"exit status {result.returncode}: {last[:300]}"
    return None


def create_backend(model_path: Path, preference: str = "auto") -> Backend:
    """Open ``model_path`` on the preferred backend.

    Raises ValueError for an unknown preference, BackendUnavailableError when a forced
    backend cannot load, and ModelError subclasses for a bad model file.
    """
    if preference not in BACKENDS:
        raise ValueError(f"unknown backend {preference!r}; choose one of {', '.join(BACKENDS)}")
    backend = _auto(model_path) if preference == "auto" else _forced(model_path, preference)
    _LOGGER.debug("%s runs on the %s backend", model_path.name, backend.name)
    return backend
