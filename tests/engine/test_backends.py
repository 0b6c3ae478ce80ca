"""Backend selection, forced backends, Edge TPU fallback and model I/O quantization."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from custom_components.nilm.engine import backends
from custom_components.nilm.engine.backends import (
    LiteRTBackend,
    NumpyBackend,
    TensorIO,
    available_backends,
    create_backend,
)
from custom_components.nilm.engine.errors import BackendUnavailableError, ModelFormatError

MODELS = Path(__file__).parent / "models"
CNN = MODELS / "cnn_float32.tflite"


def _windows(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape[1:])).astype(np.float32)


@pytest.fixture
def no_litert(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend we run on Home Assistant OS: no native runtime importable."""
    monkeypatch.setattr(backends, "litert_module", lambda: None)


@pytest.fixture
def vetting_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in LiteRT modules are invisible to a vetting child: let every model pass."""
    monkeypatch.setattr(backends, "_vetted", {})
    monkeypatch.setattr(backends, "vet_model", lambda path, mode: None)


@pytest.fixture
def edgetpu_copy(tmp_path: Path) -> Path:
    """A CPU model under an Edge TPU file name, so fallbacks can actually run it."""
    path = tmp_path / "cnn_edgetpu.tflite"
    shutil.copy(CNN, path)
    return path


# --- selection ------------------------------------------------------------------------


def test_available_backends_on_this_machine() -> None:
    names = available_backends()
    assert names[:3] == ["numpy", "litert", "litert_ref"]  # ai-edge-litert is pinned
    assert "auto" not in names


def test_available_backends_without_litert(no_litert: None) -> None:
    assert available_backends() == ["numpy"]


def test_auto_prefers_litert_then_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_backend(CNN).name == "litert"
    monkeypatch.setattr(backends, "litert_module", lambda: None)
    backend = create_backend(CNN, "auto")
    assert isinstance(backend, NumpyBackend)


@pytest.mark.parametrize("preference", ["litert", "litert_ref"])
def test_forced_litert_without_runtime_is_unavailable(no_litert: None, preference: str) -> None:
    with pytest.raises(BackendUnavailableError, match="neither ai_edge_litert"):
        create_backend(CNN, preference)


def test_forced_backends_have_their_names() -> None:
    for preference in ("numpy", "litert", "litert_ref"):
        assert create_backend(CNN, preference).name == preference


def test_unknown_preference() -> None:
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        create_backend(CNN, "gpu")


def test_malformed_file_never_reaches_native_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    data = bytearray(CNN.read_bytes())
    data[4:8] = b"XXXX"
    bad.write_bytes(bytes(data))
    for preference in ("auto", "numpy", "litert", "litert_ref"):
        with pytest.raises(ModelFormatError, match="not a TFLite model"):
            create_backend(bad, preference)


def test_litert_refusing_a_model_is_reported_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    class FailingInterpreter:
        def __init__(self, **kwargs: Any) -> None:
            raise ValueError("Could not open model")

    fake = SimpleNamespace(Interpreter=FailingInterpreter)
    monkeypatch.setattr(backends, "litert_module", lambda: fake)
    with pytest.raises(BackendUnavailableError, match="Could not open model"):
        create_backend(CNN, "litert")
    assert create_backend(CNN, "auto").name == "numpy"


# --- Edge TPU -------------------------------------------------------------------------


def test_edgetpu_forced_on_a_cpu_model_is_unavailable() -> None:
    with pytest.raises(BackendUnavailableError, match="not compiled for the Edge TPU"):
        create_backend(CNN, "edgetpu")


def test_edgetpu_forced_without_libedgetpu(edgetpu_copy: Path) -> None:
    """This machine has no libedgetpu.so.1: the real loader's failure is reported."""
    with pytest.raises(BackendUnavailableError, match=r"libedgetpu\.so\.1"):
        create_backend(edgetpu_copy, "edgetpu")


@pytest.mark.parametrize("error", [ValueError("Failed to load delegate"), OSError("no such file")])
def test_auto_falls_back_when_the_delegate_fails(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    edgetpu_copy: Path,
    error: Exception,
    vetting_passes: None,
) -> None:
    real = backends.litert_module()

    def load_delegate(library: str) -> Any:
        raise error

    fake = SimpleNamespace(
        Interpreter=real.Interpreter,
        OpResolverType=real.OpResolverType,
        load_delegate=load_delegate,
    )
    monkeypatch.setattr(backends, "litert_module", lambda: fake)
    monkeypatch.setattr(backends, "edgetpu_library_loader", lambda name: None)
    with caplog.at_level(logging.WARNING, logger=backends.__name__):
        backend = create_backend(edgetpu_copy, "auto")
    assert backend.name == "litert"
    assert "Edge TPU unavailable for cnn_edgetpu.tflite" in caplog.text
    assert str(error) in caplog.text


def test_edgetpu_when_the_delegate_loads(
    monkeypatch: pytest.MonkeyPatch, edgetpu_copy: Path, vetting_passes: None
) -> None:
    """With a delegate the model runs on LiteRT with it, one window per invoke."""
    real = backends.litert_module()
    seen: dict[str, Any] = {}
    delegate = object()

    def interpreter(**kwargs: Any) -> Any:
        seen.update(kwargs)
        kwargs.pop("experimental_delegates", None)  # the stand-in cannot really run
        return real.Interpreter(**kwargs)

    fake = SimpleNamespace(
        Interpreter=interpreter,
        OpResolverType=real.OpResolverType,
        load_delegate=lambda lib: delegate,
    )
    monkeypatch.setattr(backends, "litert_module", lambda: fake)
    monkeypatch.setattr(backends, "edgetpu_library_loader", lambda name: None)
    backend = create_backend(edgetpu_copy, "auto")
    assert backend.name == "edgetpu"
    assert seen["experimental_delegates"] == [delegate]
    assert isinstance(backend, LiteRTBackend) and not backend.batched
    x = _windows(5, backend.inputs[0].shape)
    reference = LiteRTBackend(CNN).run(x)
    for got, want in zip(backend.run(x), reference, strict=True):
        np.testing.assert_array_equal(got, want)


# --- running and I/O ----------------------------------------------------------------------


@pytest.mark.parametrize("preference", ["numpy", "litert", "litert_ref"])
def test_batched_run_equals_window_by_window(preference: str) -> None:
    backend = create_backend(CNN, preference)
    x = _windows(37, backend.inputs[0].shape)
    batched = backend.run(x)
    single = [backend.run(x[i : i + 1]) for i in range(len(x))]
    assert len(batched) == 2
    for k, out in enumerate(batched):
        assert out.dtype == np.float32
        assert out.shape == (37, 1)
        np.testing.assert_allclose(
            out, np.concatenate([s[k] for s in single]), rtol=1e-5, atol=1e-6
        )


def test_litert_batches_keras_models_by_resizing() -> None:
    backend = create_backend(CNN, "litert")
    assert isinstance(backend, LiteRTBackend) and backend.batched


def test_flat_windows_feed_a_channel_input() -> None:
    """Model input (1, L, 1) accepts windows (N, L), as NilmModel passes them."""
    path = MODELS / "depthwise_float32.tflite"
    backend = create_backend(path, "litert_ref")
    length = backend.inputs[0].shape[1]
    assert backend.inputs[0].shape == (1, length, 1)
    x = _windows(4, (1, length))
    np.testing.assert_array_equal(backend.run(x)[0], backend.run(x[..., None])[0])
    with pytest.raises(ValueError, match="does not fit"):
        backend.run(np.zeros((4, length + 1), np.float32))


@pytest.mark.parametrize("preference", ["litert", "litert_ref"])
def test_int8_io_model_takes_and_returns_floats(preference: str) -> None:
    """An int8-I/O model quantized by the backend gives the float-I/O twin's outputs
    (that twin quantizes inside the graph with the same parameters)."""
    io_backend = create_backend(MODELS / "cnn_w8_a8_io.tflite", preference)
    float_backend = create_backend(MODELS / "cnn_w8_a8.tflite", preference)
    assert io_backend.inputs[0].dtype == "int8" and io_backend.inputs[0].quantized
    x = _windows(64, io_backend.inputs[0].shape, seed=3) * 2
    for got, want, spec in zip(
        io_backend.run(x), float_backend.run(x), io_backend.outputs, strict=True
    ):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=spec.scale * 1.01)


def test_tensor_io_quantization_rounds_half_away_and_saturates() -> None:
    spec = TensorIO((1, 4), "int8", scale=0.5, zero_point=-3)
    x = np.array([[0.25, -0.25, 0.75, 1000.0]], np.float32)
    q = spec.to_model(x)
    assert q.dtype == np.int8
    assert q.tolist() == [[-2, -4, -1, 127]]
    np.testing.assert_array_equal(spec.from_model(q), [[0.5, -0.5, 1.0, 65.0]])
    int16 = TensorIO((1, 1), "int16", scale=1e-3, zero_point=0)
    assert int16.to_model(np.array([[-40.0]], np.float32)).tolist() == [[-32768]]
    plain = TensorIO((1, 2), "float32")
    assert not plain.quantized
    assert plain.to_model(np.ones((1, 2), np.float32)).dtype == np.float32


# --- LiteRT only for trusted models: bundled, or vetted in a child process ----------------

BUNDLED = Path(backends.__file__).resolve().parent.parent / "models"


@pytest.fixture
def fresh_vetting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_vetted", {})


def test_bundled_models_are_trusted_by_their_hash() -> None:
    import hashlib

    tflites = sorted(BUNDLED.rglob("*.tflite"))
    assert tflites
    for path in tflites:
        assert hashlib.sha256(path.read_bytes()).hexdigest() in backends.trusted_sha256()
    assert backends.trusted_sha256().isdisjoint({hashlib.sha256(CNN.read_bytes()).hexdigest()})


def test_bundled_model_opens_on_litert_without_a_vetting_run(
    monkeypatch: pytest.MonkeyPatch, fresh_vetting: None
) -> None:
    def no_vetting(path: Path, mode: str) -> str | None:
        raise AssertionError("a bundled model needs no vetting run")

    monkeypatch.setattr(backends, "vet_model", no_vetting)
    for preference in ("auto", "litert", "litert_ref"):
        assert create_backend(BUNDLED / "kettle.tflite", preference).name in (
            "litert",
            "litert_ref",
        )


def test_user_model_that_fails_vetting_never_opens_in_litert_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_vetting: None
) -> None:
    """The crash happened in the child: this process must not even construct LiteRT's
    interpreter for that file; auto runs numpy, a forced LiteRT says why."""
    calls: list[tuple[str, str]] = []

    def crashed(path: Path, mode: str) -> str | None:
        calls.append((path.name, mode))
        return "LiteRT crashed with SIGSEGV"

    class NeverOpened:
        def __init__(self, **kwargs: Any) -> None:
            raise AssertionError("LiteRT opened an unvetted model in this process")

    real = backends.litert_module()
    fake = SimpleNamespace(Interpreter=NeverOpened, OpResolverType=real.OpResolverType)
    monkeypatch.setattr(backends, "litert_module", lambda: fake)
    monkeypatch.setattr(backends, "vet_model", crashed)
    user = tmp_path / "mine.tflite"
    shutil.copy(CNN, user)
    assert create_backend(user, "auto").name == "numpy"
    for preference in ("litert", "litert_ref"):
        with pytest.raises(BackendUnavailableError, match="crashed with SIGSEGV"):
            create_backend(user, preference)
    # One vetting run per file and mode, however often it is opened.
    assert create_backend(user, "auto").name == "numpy"
    assert calls == [("mine.tflite", "litert"), ("mine.tflite", "litert_ref")]


def test_user_model_that_passes_vetting_runs_on_litert(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_vetting: None
) -> None:
    seen: list[str] = []
    real_vet = backends.vet_model

    def vet(path: Path, mode: str) -> str | None:
        seen.append(mode)
        return real_vet(path, mode)  # a real child process

    monkeypatch.setattr(backends, "vet_model", vet)
    user = tmp_path / "mine.tflite"
    shutil.copy(CNN, user)
    assert create_backend(user, "auto").name == "litert"
    assert create_backend(user, "litert").name == "litert"
    assert seen == ["litert"]


def test_vetting_survives_a_real_litert_crash(tmp_path: Path) -> None:
    """The child really dies (LiteRT aborts on this crafted file); pytest does not."""
    from .test_fuzz import litert_crasher

    path = tmp_path / "crasher.tflite"
    path.write_bytes(litert_crasher())
    for mode in ("litert", "litert_ref"):
        reason = backends.vet_model(path, mode)
        assert reason is not None and "crashed with SIG" in reason, reason
    assert backends.vet_model(CNN, "litert") is None


def test_vetting_reports_a_segfault_and_a_hang(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(backends, "_VET_SCRIPT", "import ctypes; ctypes.string_at(0)")
    assert backends.vet_model(CNN, "litert") == "LiteRT crashed with SIGSEGV"
    monkeypatch.setattr(backends, "_VET_SCRIPT", "import time; time.sleep(60)")
    monkeypatch.setattr(backends, "VET_TIMEOUT_S", 1.0)
    assert backends.vet_model(CNN, "litert") == "it did not finish within 1 s"
    monkeypatch.setattr(backends, "_VET_SCRIPT", "raise SystemExit('no LiteRT here')")
    monkeypatch.setattr(backends, "VET_TIMEOUT_S", 120.0)  # a loaded machine starts slowly
    reason = backends.vet_model(CNN, "litert")
    assert reason is not None and "no LiteRT here" in reason


def test_numpy_engine_errors_during_preparation_are_model_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OverflowError and friends from a kernel's preparation never escape as such."""
    from custom_components.nilm.engine import interpreter

    def overflow(graph: Any, **kwargs: Any) -> Any:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(interpreter, "NumpyInterpreter", overflow)
    with pytest.raises(ModelFormatError, match="OverflowError: cannot convert float infinity"):
        create_backend(CNN, "numpy")
