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
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.nilm.appliance import ApplianceRuntime  # noqa: E402
from custom_components.nilm.const import BUNDLED_MODELS_DIR, WARM_START_MAX_WINDOWS  # noqa: E402
from custom_components.nilm.engine.model import NilmModel, load_model  # noqa: E402
from custom_components.nilm.engine.resample import ZohResampler  # noqa: E402
from custom_components.nilm.engine.status import StatusTracker  # noqa: E402
from custom_components.nilm.inference import InferenceJob, run_jobs  # noqa: E402
from custom_components.nilm.mains import MainsCombiner  # noqa: E402
from scripts.ha_dev.refit import DATA_DIR, read_refit_csv  # noqa: E402

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
    day = read_refit_csv(path, columns=("Unix", "Aggregate"))
    return day["Unix"], day["Aggregate"]


def _resamplers(models: list[NilmModel]) -> dict[float, ZohResampler]:
    """One resampler per model period, as the coordinator keeps them."""
    out: dict[float, ZohResampler] = {}
    for period in sorted({m.card.sample_period_s for m in models}):
        need = max(m.card.window_length for m in models if m.card.sample_period_s == period)
        out[period] = ZohResampler(period, need + WARM_START_MAX_WINDOWS, MAX_GAP_S)
    return out


def bench_ticks(
    models: list[NilmModel], ts: np.ndarray, watts: np.ndarray, ticks: int
) -> tuple[float, float]:
    """CPU seconds per tick after the windows are full: (mean over every tick of the
    shortest period, mean over the ticks on which every model runs)."""
    resamplers = _resamplers(models)
    step = min(resamplers)
    combiner = MainsCombiner(["sensor.mains"], MAX_GAP_S)
    runtimes = [
        ApplianceRuntime(f"m{i}", m, StatusTracker(m.card.status, m.card.sample_period_s))
        for i, m in enumerate(models)
    ]
    next_tick = (ts[0] // max(resamplers) + 1) * max(resamplers) + 2.0
    all_cpu, all_done, full_cpu, full_done = 0.0, 0, 0.0, 0
    for t, w in zip(ts, watts, strict=True):
        while t >= next_tick:
            start = time.process_time()
            jobs = []
            ran = 0
            for period, resampler in resamplers.items():
                if round((next_tick - 2.0) / step) % round(period / step):
                    continue  # not this period's slot
                resampler.advance(next_tick)
                for r in runtimes:
                    if r.period_s != period:
                        continue
                    windows, valid = resampler.windows(r.window_length, 1)
                    jobs.append(InferenceJob(r, windows[valid], valid))
                    ran += 1
            run_jobs(jobs)
            elapsed = time.process_time() - start
            warm = all(
                rs.window(max(r.window_length for r in runtimes if r.period_s == p)) is not None
                for p, rs in resamplers.items()
            )
            if warm:
                all_cpu += elapsed
                all_done += 1
                if ran == len(runtimes):
                    full_cpu += elapsed
                    full_done += 1
            next_tick += step
            if all_done >= ticks:
                return all_cpu / all_done, full_cpu / max(full_done, 1)
        value = combiner.update("sensor.mains", float(w), float(t))
        for resampler in resamplers.values():
            resampler.update(float(t), value)
    return all_cpu / max(all_done, 1), full_cpu / max(full_done, 1)


def bench_warm_start(models: list[NilmModel], ts: np.ndarray, watts: np.ndarray) -> float:
    """CPU seconds to replay 24 h of history and run the batched warm-start inference."""
    start = time.process_time()
    resamplers = _resamplers(models)
    combiner = MainsCombiner(["sensor.mains"], MAX_GAP_S)
    for t, w in zip(ts, watts, strict=True):
        value = combiner.update("sensor.mains", float(w), float(t))
        for resampler in resamplers.values():
            resampler.update(float(t), value)
    jobs = []
    for i, m in enumerate(models):
        resampler = resamplers[m.card.sample_period_s]
        resampler.advance(float(ts[-1]))
        r = ApplianceRuntime(f"m{i}", m, StatusTracker(m.card.status, m.card.sample_period_s))
        windows, valid = resampler.windows(r.window_length, WARM_START_MAX_WINDOWS)
        jobs.append(InferenceJob(r, windows[valid], valid))
    run_jobs(jobs)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    paths, label = card_paths()
    ts, watts = real_day()
    lines = [
        f"models: {label} ({', '.join(p.stem for p in paths)}); history: {len(ts)} readings "
        f"over {(ts[-1] - ts[0]) / 3600:.1f} h",
        "",
        "| engine | CPU ms / tick (mean) | CPU ms / tick (all five run) "
        "| warm start 24 h (CPU s) |",
        "|---|---|---|---|",
    ]
    results: dict[str, tuple[float, float, float]] = {}
    for backend in ("numpy", "litert"):
        models = load_models(paths, backend)
        runs = [bench_ticks(models, ts, watts, args.ticks) for _ in range(args.repeat)]
        warm = min(bench_warm_start(models, ts, watts) for _ in range(args.repeat))
        results[backend] = (min(r[0] for r in runs), min(r[1] for r in runs), warm)
        mean, full, warm = results[backend]
        lines.append(f"| {backend} | {mean * 1000:.2f} | {full * 1000:.2f} | {warm:.3f} |")
    (nm, nf, nw), (lm, lf, lw) = results["numpy"], results["litert"]
    lines += ["", f"numpy / litert: tick x{nm / lm:.1f} (all five x{nf / lf:.1f}), "
              f"warm start x{nw / lw:.1f}"]  # fmt: skip
    print("\n".join(lines))
    if args.markdown:
        header = [
            "# Integration benchmark",
            "",
            "Generated by `TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python scripts/bench_integration.py "
            f"--markdown {args.markdown}` on {os.cpu_count()} CPUs; compare the engines' "
            "ratio, measured in the same run, not the absolute times.",
            "",
        ]
        args.markdown.write_text("\n".join(header + lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
