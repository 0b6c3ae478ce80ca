"""Executor side of a tick: every appliance's new windows through its model, in chunks of
at most :data:`.const.INFERENCE_CHUNK_WINDOWS` windows per backend call."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .appliance import ApplianceRuntime
from .const import INFERENCE_CHUNK_WINDOWS
from .engine.model import NilmModel

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class InferenceJob:
    runtime: ApplianceRuntime
    windows: FloatArray  # only the complete windows
    valid: npt.NDArray[np.bool_]  # one entry per closed slot, oldest first


@dataclass(slots=True)
class InferenceResult:
    raw_power_w: npt.NDArray[np.float32] | None
    raw_on: npt.NDArray[np.bool_] | None
    probability: npt.NDArray[np.float32] | None
    latency_ms: float
    error: str | None


def predict_chunked(model: NilmModel, windows: FloatArray, chunk: int) -> InferenceResult:
    """Run ``windows`` through ``model`` at most ``chunk`` at a time.

    A backend's memory grows with the batch (LiteRT sizes every activation for it: a
    104 KB model with a wide layer peaked at 1.4 GB on a whole warm start as one
    batch), so no call ever gets more than ``chunk`` windows.
    """
    powers: list[npt.NDArray[np.float32]] = []
    ons: list[npt.NDArray[np.bool_]] = []
    probabilities: list[npt.NDArray[np.float32]] = []
    for begin in range(0, len(windows), chunk):
        prediction = model.predict(windows[begin : begin + chunk])
        powers.append(prediction.raw_power_w)
        ons.append(prediction.on)
        if prediction.probability is not None:
            probabilities.append(prediction.probability)
    probability = np.concatenate(probabilities) if len(probabilities) == len(powers) else None
    return InferenceResult(np.concatenate(powers), np.concatenate(ons), probability, 0.0, None)


def run_jobs(
    jobs: list[InferenceJob], chunk: int = INFERENCE_CHUNK_WINDOWS
) -> list[InferenceResult]:
    """Executor side: every appliance's windows of this tick, in chunks of ``chunk``."""
    results: list[InferenceResult] = []
    for job in jobs:
        start = time.perf_counter()
        if not len(job.windows):
            results.append(InferenceResult(None, None, None, 0.0, None))
            continue
        try:
            result = predict_chunked(job.runtime.model, job.windows, max(1, chunk))
        except Exception as err:  # one faulty model must not stop the others
            results.append(
                InferenceResult(
                    None, None, None, 0.0, f"{job.runtime.name}: {type(err).__name__}: {err}"
                )
            )
            continue
        result.latency_ms = (time.perf_counter() - start) * 1000.0
        results.append(result)
    return results


def latency_stats(samples: Iterable[float]) -> dict[str, float | int]:
    values = np.asarray(list(samples), dtype=np.float64)
    if not values.size:
        return {"count": 0}
    return {
        "count": int(values.size),
        "mean": round(float(values.mean()), 3),
        "p50": round(float(np.percentile(values, 50)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(float(values.max()), 3),
    }
