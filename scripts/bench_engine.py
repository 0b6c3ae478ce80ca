"""Benchmark the numpy engine against LiteRT on the engine's test models.

For every model in ``tests/engine/models/manifest.json`` it prints, measured in the same
run on the same inputs:

* single-window latency of the numpy engine, LiteRT with its default delegate
  (XNNPACK) and LiteRT's reference kernels (``BUILTIN_REF``), and the numpy/reference
  ratio (target: <= 10x). Each round times the median of ``--repeats`` calls of all
  three back to back; rounds cycle through all models, so one model's rounds are spread
  over the whole run, and the best round of each is reported: a noisy neighbour on a
  shared machine then spoils a round, not a result;
* batched throughput: ``--batch`` windows (10,000 by default) in one numpy call versus
  LiteRT resized to the same batch, with the numpy wall time (target for the small int8
  CNN: < 10 s).

Run: ``TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python scripts/bench_engine.py [--only cnn]``;
``--markdown docs/BENCHMARKS.md`` also writes the table there (the committed copy was made
that way, on the machine its header names).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.nilm.engine.backends import open_litert_interpreter  # noqa: E402
from custom_components.nilm.engine.interpreter import NumpyInterpreter  # noqa: E402
from custom_components.nilm.engine.reader import read_model_file  # noqa: E402

MODELS = ROOT / "tests" / "engine" / "models"


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _round(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """One round: the median of ``repeats`` calls of each function, back to back."""
    return [_median_seconds(fn, repeats) for fn in fns]


def _inputs(spec_dtype: str, shape: tuple[int, ...], n: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    if spec_dtype == "float32":
        return rng.standard_normal((n, *shape)).astype(np.float32)
    info = np.iinfo(spec_dtype)
    return rng.integers(info.min, info.max + 1, (n, *shape)).astype(spec_dtype)


def _litert(path: Path, reference: bool) -> Any:
    return open_litert_interpreter(path, reference=reference, num_threads=1)


def _litert_single(path: Path, reference: bool, x: Any) -> Callable[[], object]:
    """One set_tensor + invoke on a batch-1 interpreter (what a live tick would call)."""
    interp = _litert(path, reference)
    idx = interp.get_input_details()[0]["index"]

    def call() -> None:
        interp.set_tensor(idx, x)
        interp.invoke()

    return call


def _litert_batch(path: Path, reference: bool, x: Any) -> float:
    """One invoke on a batch-resized interpreter (falls back to a loop if it can't)."""
    interp = _litert(path, reference)
    idx = interp.get_input_details()[0]["index"]
    try:
        interp.resize_tensor_input(idx, list(x.shape), strict=False)
        interp.allocate_tensors()
        interp.set_tensor(idx, x)
        t0 = time.perf_counter()
        interp.invoke()
        return time.perf_counter() - t0
    except (RuntimeError, ValueError):
        interp = _litert(path, reference)
        t0 = time.perf_counter()
        for w in x:
            interp.set_tensor(idx, w[None])
            interp.invoke()
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="model names (e.g. cnn transformer)")
    parser.add_argument("--modes", nargs="*", help="quantization modes (e.g. w8_a8)")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, float, float, float, float]] = []
    manifest = json.loads((MODELS / "manifest.json").read_text())

    header = (
        f"{'model':28s} {'np 1win':>9s} {'xnnpack':>9s} {'ref':>9s} {'np/ref':>7s} "
        f"| {'np batch':>9s} {'xnn batch':>9s} {'ref batch':>9s} {'np/ref':>7s}"
    )
    selected = [
        (f"{name}/{mode}", MODELS / info["file"])
        for name, modes in manifest.items()
        if not args.only or name in args.only
        for mode, info in modes.items()
        if not args.modes or mode in args.modes
    ]
    # Single windows: every model gets one round per pass over all models, so its rounds
    # are minutes apart and a burst of noise from a neighbour cannot spoil all of them.
    singles: dict[str, list[Callable[[], object]]] = {}
    batches: dict[str, tuple[NumpyInterpreter, Any]] = {}
    for label, path in selected:
        interp = NumpyInterpreter(read_model_file(path))
        spec = interp.input_tensors[0]
        x = _inputs(spec.dtype, tuple(spec.shape[1:]), args.batch, seed=1)
        batches[label] = (interp, x)
        one = x[:1]
        singles[label] = [
            lambda i=interp, w=one: i.run([w]),
            _litert_single(path, False, one),
            _litert_single(path, True, one),
        ]
    best = {label: [float("inf")] * 3 for label in singles}
    for _ in range(args.rounds):
        for label, fns in singles.items():
            times = _round(fns, args.repeats)
            best[label] = [min(b, t) for b, t in zip(best[label], times, strict=True)]
    print(
        f"single window: best of {args.rounds} rounds spread over the run, each the median "
        f"of {args.repeats} calls; batch: {args.batch} windows"
    )
    print(header)
    print("-" * len(header))
    for label, path in selected:
        np_single, xnn_single, ref_single = best[label]
        interp, x = batches.pop(label)
        t0 = time.perf_counter()  # the first call of this size: its folding included
        interp.run([x])
        np_batch = time.perf_counter() - t0
        xnn_batch = _litert_batch(path, False, x)
        ref_batch = _litert_batch(path, True, x)
        print(
            f"{label:28s} {np_single * 1e3:7.2f}ms {xnn_single * 1e3:7.3f}ms "
            f"{ref_single * 1e3:7.3f}ms {np_single / ref_single:6.2f}x "
            f"| {np_batch:8.2f}s {xnn_batch:8.2f}s {ref_batch:8.2f}s "
            f"{np_batch / ref_batch:6.2f}x",
            flush=True,
        )
        single = (np_single, xnn_single, ref_single)
        rows.append((label, *single, np_batch, xnn_batch, ref_batch))
    if args.markdown:
        args.markdown.write_text(_markdown(rows, args))


def _markdown(rows: list[tuple[str, float, float, float, float, float, float]], args: Any) -> str:
    import ai_edge_litert

    met = sum(r[1] / r[3] <= 10 for r in rows)
    lines = [
        "# Numpy engine vs LiteRT: single-window latency and batched throughput",
        "",
        f"Generated by `TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python scripts/bench_engine.py "
        f"--markdown docs/BENCHMARKS.md` on {datetime.date.today().isoformat()}: "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')}.",
        "",
        f"Single window: best of {args.rounds} rounds spread over the run, each the median "
        f"of {args.repeats} calls (numpy `run`, LiteRT `set_tensor` + `invoke`). Batch: "
        f"{args.batch} windows in one call (LiteRT resized to the batch), first call "
        "included. Target (issue #2): numpy within 10x of BUILTIN_REF for one window; "
        f"met by {met} of {len(rows)} models.",
        "",
        "| model | numpy 1 window | XNNPACK | BUILTIN_REF | numpy / REF | "
        f"numpy {args.batch} | XNNPACK {args.batch} | REF {args.batch} | numpy / REF |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, np1, xnn1, ref1, npb, xnnb, refb in rows:
        flag = "" if np1 / ref1 <= 10 else " (missed)"
        lines.append(
            f"| {name} | {np1 * 1e3:.3f} ms | {xnn1 * 1e3:.3f} ms | {ref1 * 1e3:.3f} ms | "
            f"{np1 / ref1:.1f}x{flag} | {npb * 1e3:.0f} ms | {xnnb * 1e3:.0f} ms | "
            f"{refb * 1e3:.0f} ms | "
            f"{npb / refb:.2f}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
