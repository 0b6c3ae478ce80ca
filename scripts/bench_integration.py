"""Benchmark the integration's runtime work, numpy engine vs LiteRT side by side.

* CPU time per tick for five appliances: resampler advance + window extraction + the one
  executor job that runs every model (exactly what a 30 s tick does), averaged over many
  ticks fed with real mains data.
* Warm start for 24 h of history: one real day of irregular (~7 s) REFIT House 20 readings
  replayed through the combiner/resampler, then the batched warm-start inference. The
  recorder's database query is not included (it depends on the database, not on us).

Models: the bundled models when five exist, else the tiny integration test models repeated
to five appliances (say so in any report). Numbers are machine-dependent; compare the
ratio between the engines measured in the same run.

Run: ``TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python scripts/bench_integration.py``
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.nilm.const import BUNDLED_MODELS_DIR, WARM_START_MAX_WINDOWS  # noqa: E402
from custom_components.nilm.coordinator import (  # noqa: E402
    ApplianceRuntime,
    MainsCombiner,
    _Job,
    _run_jobs,
)
from custom_components.nilm.engine.model import NilmModel, load_model  # noqa: E402
from custom_components.nilm.engine.resample import ZohResampler  # noqa: E402
from custom_components.nilm.engine.status import StatusTracker  # noqa: E402

DATA_DIR = Path(os.environ.get("NILM_DATA_DIR", ROOT.parent / "shared" / "data"))
TEST_MODELS = ROOT / "tests" / "components" / "nilm" / "fixtures" / "models"
MAX_GAP_S = 300.0


def card_paths() -> tuple[list[Path], str]:
    bundled = sorted(BUNDLED_MODELS_DIR.glob("*.json"))
    if len(bundled) >= 5:
        return bundled[:5], "bundled models"
    tests = [TEST_MODELS / "test_kettle.json", TEST_MODELS / "test_microwave.json"]
    return [tests[i % 2] for i in range(5)], "integration test models (tiny CNN, int8) x5"


def load_models(paths: list[Path], backend: str) -> list[NilmModel]:
    return [load_model(p, backend) for p in paths]


def real_day() -> tuple[np.ndarray, np.ndarray]:
    """REFIT House 20, 2015-01-08: irregular ~7 s samples (Unix seconds, watts)."""
    path = DATA_DIR / "refit_1day_20houses" / "house_20_day.csv.gz"
    with gzip.open(path, "rt") as handle:
        next(handle)
        rows = [line.split(",") for line in handle]
    return np.array([float(r[1]) for r in rows]), np.array([float(r[2]) for r in rows])


def bench_ticks(models: list[NilmModel], ts: np.ndarray, watts: np.ndarray, ticks: int) -> float:
    """Mean CPU seconds per tick, after the windows are full."""
    period = models[0].card.sample_period_s
    capacity = max(m.card.window_length for m in models) + WARM_START_MAX_WINDOWS
    resampler = ZohResampler(period, capacity, MAX_GAP_S)
    combiner = MainsCombiner(["sensor.mains"], MAX_GAP_S)
    runtimes = [
        ApplianceRuntime(f"m{i}", m, StatusTracker(m.card.status, period))
        for i, m in enumerate(models)
    ]
    next_tick = (ts[0] // period + 1) * period + 2.0
    cpu = 0.0
    done = 0
    for t, w in zip(ts, watts, strict=True):
        while t >= next_tick:
            start = time.process_time()
            resampler.advance(next_tick)
            jobs = []
            for r in runtimes:
                windows, valid = resampler.windows(r.window_length, 1)
                jobs.append(_Job(r, windows[valid], valid))
            _run_jobs(jobs)
            elapsed = time.process_time() - start
            if resampler.window(capacity - WARM_START_MAX_WINDOWS) is not None:
                cpu += elapsed
                done += 1
            next_tick += period
            if done >= ticks:
                return cpu / done
        resampler.update(float(t), combiner.update("sensor.mains", float(w), float(t)))
    return cpu / max(done, 1)


def bench_warm_start(models: list[NilmModel], ts: np.ndarray, watts: np.ndarray) -> float:
    """CPU seconds to replay 24 h of history and run the batched warm-start inference."""
    start = time.process_time()
    period = models[0].card.sample_period_s
    capacity = max(m.card.window_length for m in models) + WARM_START_MAX_WINDOWS
    resampler = ZohResampler(period, capacity, MAX_GAP_S)
    combiner = MainsCombiner(["sensor.mains"], MAX_GAP_S)
    for t, w in zip(ts, watts, strict=True):
        resampler.update(float(t), combiner.update("sensor.mains", float(w), float(t)))
    resampler.advance(float(ts[-1]))
    jobs = []
    for i, m in enumerate(models):
        r = ApplianceRuntime(f"m{i}", m, StatusTracker(m.card.status, period))
        windows, valid = resampler.windows(r.window_length, WARM_START_MAX_WINDOWS)
        jobs.append(_Job(r, windows[valid], valid))
    _run_jobs(jobs)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths, label = card_paths()
    ts, watts = real_day()
    print(f"models: {label}; history: {len(ts)} readings over {(ts[-1] - ts[0]) / 3600:.1f} h")
    results: dict[str, tuple[float, float]] = {}
    for backend in ("numpy", "litert"):
        models = load_models(paths, backend)
        tick = min(bench_ticks(models, ts, watts, args.ticks) for _ in range(args.repeat))
        warm = min(bench_warm_start(models, ts, watts) for _ in range(args.repeat))
        results[backend] = (tick, warm)
    print(f"{'engine':8} {'CPU ms / tick (5 appl.)':>24} {'warm start 24 h (CPU s)':>24}")
    for backend, (tick, warm) in results.items():
        print(f"{backend:8} {tick * 1000:24.2f} {warm:24.3f}")
    (nt, nw), (lt, lw) = results["numpy"], results["litert"]
    print(f"numpy / litert: tick x{nt / lt:.1f}, warm start x{nw / lw:.1f}")


if __name__ == "__main__":
    main()
