"""Robustness: thousands of mutated model files raise only the documented exceptions.

Random damage (truncation, flipped bytes, overwritten words) and targeted damage (huge
or negative shapes, lying vector lengths, out-of-range indices, unknown opcodes and
versions, external buffers pointing outside the file) is applied to the committed test
models, seeded so a failure replays. Each case must end quickly, the whole loop must stay
within a memory bound, and a targeted lie that the reader must catch has to be refused.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tflite

from custom_components.nilm.engine.errors import ModelFormatError, UnsupportedOpError
from custom_components.nilm.engine.reader import read_model

from .tflite_builder import External, build, dense_model

MODELS = Path(__file__).parent / "models"
ROOT = Path(__file__).resolve().parents[2]
FUZZ_MODELS = (
    "cnn_w8_a8.tflite",
    "transformer_w8_a8_io.tflite",
    "depthwise_w8_a16.tflite",
    "elementwise_float32.tflite",
    "batch_shapes_w8.tflite",
)
DOCUMENTED = (ModelFormatError, UnsupportedOpError)
RANDOM_CASES_PER_MODEL = 700
# A hang guard per case, not a speed target (the fuzz loop shares CI's two cores).
MAX_CASE_SECONDS = 2.0
MAX_PEAK_BYTES = 32 * 1024 * 1024
TRACE_EVERY = 7
TARGETED_PER_KIND = 25
INTERESTING_U32 = (0, 1, 3, 4, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


@dataclass
class Positions:
    """Byte positions of fields in one valid model, found by walking it with the bindings."""

    dims: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    tensor_buffers: list[int] = field(default_factory=list)
    builtin_codes: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    opcode_indices: list[int] = field(default_factory=list)


def _field(table: Any, slot: int) -> int | None:
    offset = table._tab.Offset(slot)
    return table._tab.Pos + offset if offset else None


def _vector(table: Any, slot: int, width: int, into: list[int] | None, lengths: list[int]) -> None:
    offset = table._tab.Offset(slot)
    if not offset:
        return
    start = table._tab.Vector(offset)
    lengths.append(start - 4)
    if into is not None:
        into.extend(start + width * i for i in range(table._tab.VectorLen(offset)))


def find_positions(data: bytes) -> Positions:
    pos = Positions()
    model = tflite.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        _vector(tensor, 4, 4, pos.dims, pos.lengths)
        if (p := _field(tensor, 8)) is not None:
            pos.tensor_buffers.append(p)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if (p := _field(op, 4)) is not None:
            pos.opcode_indices.append(p)
        _vector(op, 6, 4, pos.indices, pos.lengths)
        _vector(op, 8, 4, pos.indices, pos.lengths)
    _vector(graph, 6, 4, pos.indices, pos.lengths)
    _vector(graph, 8, 4, pos.indices, pos.lengths)
    for slot in (4, 6):  # subgraph tensors and operators vectors
        _vector(graph, slot, 4, None, pos.lengths)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if (p := _field(code, 10)) is not None:
            pos.builtin_codes.append(p)
        if (p := _field(code, 8)) is not None:
            pos.versions.append(p)
    for i in range(model.BuffersLength()):
        _vector(model.Buffers(i), 4, 1, None, pos.lengths)
    for slot in (6, 8, 12):  # operator codes, subgraphs, buffers
        _vector(model, slot, 4, None, pos.lengths)
    return pos


def _put(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


# --- random damage: the reader may accept the result, but only documented errors escape --


def random_mutations(data: bytes, rng: random.Random, count: int) -> Iterator[bytes]:
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            yield data[: rng.randrange(len(data))]
        elif kind == 1:
            out = bytearray(data)
            for _ in range(rng.randint(1, 16)):
                out[rng.randrange(len(out))] ^= rng.randint(1, 255)
            yield bytes(out)
        elif kind == 2:
            at = rng.randrange(0, len(data) - 4) & ~3
            yield _put(data, at, "<I", rng.choice(INTERESTING_U32))
        else:
            start = rng.randrange(len(data))
            length = rng.randint(1, 64)
            junk = bytes(rng.getrandbits(8) for _ in range(length))
            yield data[:start] + junk + data[start + length :]


# --- targeted lies: each must be refused -----------------------------------------------


def targeted_mutations(data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    pos = find_positions(data)

    def some(positions: list[int]) -> list[int]:
        return rng.sample(positions, min(TARGETED_PER_KIND, len(positions)))

    for at in some(pos.dims):
        yield "huge dim", _put(data, at, "<i", rng.choice((10**9, 2**31 - 1, 2**27)))
        yield "negative dim", _put(data, at, "<i", rng.choice((-2, -(2**31))))
    for at in some(pos.lengths):
        yield "huge vector length", _put(data, at, "<I", rng.choice((2**31, 2**32 - 1, 10**8)))
    for at in some(pos.indices):
        yield "tensor index out of range", _put(data, at, "<i", rng.choice((10**6, -7)))
    for at in some(pos.tensor_buffers):
        yield "buffer index out of range", _put(data, at, "<I", 10**7)
    for at in some(pos.opcode_indices):
        yield "opcode index out of range", _put(data, at, "<I", 10**6)
    for at in some(pos.versions):
        yield "unknown version", _put(data, at, "<i", rng.choice((0, -1, 99, 2**31 - 1)))
    for at in some(pos.builtin_codes):
        yield "unknown opcode", _put(data, at, "<i", rng.choice((209, 5000, 2**31 - 1)))
    yield "bad identifier", data[:4] + b"TFL2" + data[8:]
    yield "root outside file", _put(data, 0, "<I", len(data) + 4)
    yield "truncated header", data[:7]


def external_buffer_lies() -> Iterator[tuple[str, bytes]]:
    """Large-model format buffers whose offset/size point outside the file."""
    weights = dense_model(external=True)
    good = weights.buffers[1]
    assert isinstance(good, External)
    for shift, size in ((10**6, None), (0, 10**9), (0, 2**63), (1, None)):
        spec = dense_model(external=True)
        spec.buffers[1] = External(good.data, offset_shift=shift, size_override=size)
        yield f"external buffer shift={shift} size={size}", build(spec)


def _timed(parse: Callable[[], Any]) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        parse()
    except DOCUMENTED as err:
        return time.perf_counter() - start, err
    return time.perf_counter() - start, None


@pytest.fixture(scope="module")
def model_bytes() -> dict[str, bytes]:
    return {name: (MODELS / name).read_bytes() for name in FUZZ_MODELS}


def test_random_damage_raises_only_documented_errors(model_bytes: dict[str, bytes]) -> None:
    rng = random.Random(20240601)
    cases = refused = peak = 0
    slowest = 0.0
    started = time.perf_counter()
    for data in model_bytes.values():
        for mutated in random_mutations(data, rng, RANDOM_CASES_PER_MODEL):
            # tracemalloc slows parsing ~5x: trace every TRACE_EVERY-th case only.
            traced = cases % TRACE_EVERY == 0
            if traced:
                tracemalloc.start()
            try:
                elapsed, err = _timed(lambda m=mutated: read_model(m))
                if traced:
                    peak = max(peak, tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
            slowest = max(slowest, elapsed)
            cases += 1
            refused += err is not None
    total = time.perf_counter() - started
    assert cases == RANDOM_CASES_PER_MODEL * len(model_bytes)
    assert slowest < MAX_CASE_SECONDS, f"one case took {slowest:.2f}s ({cases} in {total:.1f}s)"
    assert peak < MAX_PEAK_BYTES, f"peak traced memory {peak / 2**20:.1f} MiB"
    # Most random damage must be detected; a reader that accepts everything fails here.
    assert refused > cases // 2, f"only {refused} of {cases} damaged files were refused"


def test_targeted_lies_are_refused(model_bytes: dict[str, bytes]) -> None:
    rng = random.Random(7)
    cases = 0
    tracemalloc.start()
    try:
        for name, data in model_bytes.items():
            for what, mutated in targeted_mutations(data, rng):
                elapsed, err = _timed(lambda m=mutated: read_model(m))
                assert err is not None, f"{name}: {what} was accepted"
                assert elapsed < MAX_CASE_SECONDS, f"{name}: {what} took {elapsed:.2f}s"
                cases += 1
        for _what, mutated in external_buffer_lies():
            with pytest.raises(ModelFormatError, match="outside the file"):
                read_model(mutated)
            cases += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cases > 250
    assert peak < MAX_PEAK_BYTES, f"peak traced memory {peak / 2**20:.1f} MiB"


def test_unknown_opcode_and_version_name_the_operator(model_bytes: dict[str, bytes]) -> None:
    data = model_bytes["cnn_w8_a8.tflite"]
    pos = find_positions(data)
    with pytest.raises(UnsupportedOpError, match="BUILTIN_5000"):
        read_model(_put(data, pos.builtin_codes[0], "<i", 5000))
    with pytest.raises(UnsupportedOpError, match=r" v99"):
        read_model(_put(data, pos.versions[0], "<i", 99))
    with pytest.raises(ModelFormatError, match="version 0"):
        read_model(_put(data, pos.versions[0], "<i", 0))


# --- both engines, in a child process: a native crash fails the test, not the run ---------


@dataclass
class QuantField:
    tensor: int
    name: str
    dtype: int
    count: int
    scales: int  # byte position of the scale vector's first float32
    zero_points: int  # byte position of the zero point vector's first int64


def quant_fields(data: bytes) -> list[QuantField]:
    model = tflite.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        q = tensor.Quantization()
        if q is None or q.ScaleLength() == 0 or q.ZeroPointLength() == 0:
            continue
        out.append(
            QuantField(
                i,
                (tensor.Name() or b"").decode(),
                tensor.Type(),
                q.ScaleLength(),
                q._tab.Vector(q._tab.Offset(8)),
                q._tab.Vector(q._tab.Offset(10)),
            )
        )
    return out


def with_zero_point(data: bytes, name: str, value: int) -> bytes:
    field = next(f for f in quant_fields(data) if f.name == name)
    return _put(data, field.zero_points, "<q", value)


def litert_crasher() -> bytes:
    """A model the reader accepts and LiteRT 1.x aborts on (SIGABRT in ADD's Prepare): one
    constant's quantization scale changed from 3.9e-6 to 1e8. Found by this fuzzing."""
    data = (MODELS / "transformer_w8_a8_io.tflite").read_bytes()
    field = next(f for f in quant_fields(data) if f.name == "arith.constant4")
    out = bytearray(data)
    struct.pack_into("<f", out, field.scales, 1e8)
    return bytes(out)


def plausible_mutations(data: bytes, rng: random.Random, count: int) -> Iterator[bytes]:
    """Damage the reader cannot see: in-range zero points, odd but finite scales, other
    activation shapes, a few random bytes."""
    fields = quant_fields(data)
    pos = find_positions(data)
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0 and fields:
            f = rng.choice(fields)
            at = f.zero_points + 8 * rng.randrange(f.count)
            yield _put(data, at, "<q", rng.choice((-128, -1, 0, 1, 127, 255, 32767)))
        elif kind == 1 and fields:
            f = rng.choice(fields)
            out = bytearray(data)
            scale = rng.choice((1e-29, 1e-12, 1e-6, 0.5, 3.0, 1e6, 1e8, 1e12, 1e29))
            struct.pack_into("<f", out, f.scales + 4 * rng.randrange(f.count), scale)
            yield bytes(out)
        elif kind == 2:
            at = rng.choice(pos.dims)
            (dim,) = struct.unpack_from("<i", data, at)
            yield _put(data, at, "<i", rng.choice((0, 1, 2, dim + 1, max(dim - 1, 0), 2 * dim)))
        else:
            out = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                out[rng.randrange(len(out))] ^= rng.randint(1, 255)
            yield bytes(out)


CHILD_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
from custom_components.nilm.engine import backends
from custom_components.nilm.engine.errors import BackendUnavailableError, ModelError

report = {"cases": [], "undocumented": []}
rng = np.random.default_rng(0)
for path in sorted(Path(sys.argv[1]).glob("*.tflite")):
    case = {"file": path.name}
    print("opening", path.name, flush=True)  # the last line names a crash's culprit
    for label, open_backend in (
        ("auto", lambda p=path: backends.create_backend(p, "auto")),
        ("numpy", lambda p=path: backends.NumpyBackend(p)),
    ):
        try:
            backend = open_backend()
        except (ModelError, BackendUnavailableError) as err:
            case[label] = "refused: " + type(err).__name__
            continue
        except Exception as err:
            report["undocumented"].append(f"{path.name} {label}: {type(err).__name__}: {err}")
            continue
        case[label] = backend.name
        try:
            x = rng.standard_normal((3, *backend.inputs[0].shape[1:])).astype(np.float32)
            outputs = backend.run(x)
            case[label + "_run"] = "ok" if all(len(y) == 3 for y in outputs) else "bad batch"
        except Exception as err:  # the coordinator reports these per tick, one model only
            case[label + "_run"] = type(err).__name__
    case["vetting"] = {mode: why for (sha, mode), why in backends._vetted.items()}
    backends._vetted.clear()
    report["cases"].append(case)
print("REPORT " + json.dumps(report))
"""


def test_fuzzed_models_never_crash_either_engine(tmp_path: Path) -> None:
    """Mutants the reader accepts are opened as the integration opens them (auto: LiteRT
    only for bundled or vetted models) and on numpy, then run. In a child process: if a
    native crash took it down, this test fails naming the file instead of killing pytest.
    """
    crasher = litert_crasher()
    read_model(crasher)  # the reader accepts it: only isolation protects the process
    (tmp_path / "00_litert_crasher.tflite").write_bytes(crasher)
    rng = random.Random(11)
    accepted = 0
    for name in FUZZ_MODELS:
        data = (MODELS / name).read_bytes()
        for i, mutated in enumerate(plausible_mutations(data, rng, 12)):
            try:
                read_model(mutated)
            except DOCUMENTED:
                continue
            (tmp_path / f"{Path(name).stem}_{i:02d}.tflite").write_bytes(mutated)
            accepted += 1
    assert accepted >= 15
    result = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    last = result.stdout.strip().splitlines()[-1:] or [""]
    assert result.returncode == 0, (
        f"the child died (status {result.returncode}) at: {last[0]}\n{result.stderr[-3000:]}"
    )
    report = json.loads(last[0].removeprefix("REPORT "))
    assert report["undocumented"] == []
    cases = {c["file"]: c for c in report["cases"]}
    crashed = cases["00_litert_crasher.tflite"]
    # LiteRT aborts on it in the vetting child, so this process ran it on numpy.
    assert crashed["auto"] == "numpy", crashed
    assert "crashed" in crashed["vetting"]["litert"], crashed
    assert crashed["numpy_run"] == "ok"
    assert sum(c.get("auto") == "litert" for c in cases.values()) >= 5  # vetting lets good ones in


def test_zero_point_2_31_that_crashed_litert_is_refused_by_the_reader() -> None:
    """One changed byte used to SIGSEGV LiteRT during entry setup; now the reader refuses it."""
    data = (MODELS / "cnn_w8_a8.tflite").read_bytes()
    field = next(f for f in quant_fields(data) if f.tensor == 21)
    with pytest.raises(ModelFormatError, match=r"zero point 2147483648 out of range"):
        read_model(with_zero_point(data, field.name, 2**31))
