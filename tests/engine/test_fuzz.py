"""Robustness: thousands of mutated model files raise only the documented exceptions.

Random damage (truncation, flipped bytes, overwritten words) and targeted damage (huge
or negative shapes, lying vector lengths, out-of-range indices, unknown opcodes and
versions, external buffers pointing outside the file) is applied to the committed test
models, seeded so a failure replays. Each case must end quickly, the whole loop must stay
within a memory bound, and a targeted lie that the reader must catch has to be refused.
"""

from __future__ import annotations

import random
import struct
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
