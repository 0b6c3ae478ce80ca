"""inference.py: the executor side of a tick, in bounded chunks."""

from __future__ import annotations

import numpy as np

from custom_components.nilm.inference import InferenceJob, run_jobs

from .conftest import FIXTURE_MODELS, WINDOW


def test_inference_runs_in_bounded_chunks() -> None:
    """Whatever the batch (warm start, catching up after skipped ticks), no backend call
    gets more than the chunk, and the results equal one call on everything."""
    from custom_components.nilm.appliance import ApplianceRuntime
    from custom_components.nilm.const import INFERENCE_CHUNK_WINDOWS
    from custom_components.nilm.engine.model import load_model
    from custom_components.nilm.engine.status import StatusTracker

    model = load_model(FIXTURE_MODELS / "test_kettle.json", "numpy")
    sizes: list[int] = []
    run = model.backend.run

    def spy(inputs: np.ndarray) -> list[np.ndarray]:
        sizes.append(len(inputs))
        return run(inputs)

    model.backend.run = spy  # type: ignore[method-assign]
    rng = np.random.default_rng(1)
    windows = rng.uniform(100.0, 3000.0, size=(240, WINDOW))
    tracker = StatusTracker(model.card.status, model.card.sample_period_s)
    job = InferenceJob(
        ApplianceRuntime("kettle", model, tracker), windows, np.ones(240, dtype=bool)
    )
    (result,) = run_jobs([job])
    assert max(sizes) == INFERENCE_CHUNK_WINDOWS < 240
    assert sum(sizes) == 240 and len(sizes) == -(-240 // INFERENCE_CHUNK_WINDOWS)
    whole = model.predict(windows)
    assert result.error is None and result.raw_power_w is not None and result.raw_on is not None
    np.testing.assert_array_equal(result.raw_power_w, whole.raw_power_w)
    np.testing.assert_array_equal(result.raw_on, whole.on)
    assert whole.probability is not None and result.probability is not None
    np.testing.assert_array_equal(result.probability, whole.probability)
    sizes.clear()
    (result,) = run_jobs(
        [InferenceJob(job.runtime, windows[:37], np.ones(37, dtype=bool))], chunk=10
    )
    assert sizes == [10, 10, 10, 7]
    assert result.raw_power_w is not None and len(result.raw_power_w) == 37
