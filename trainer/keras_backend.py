"""A Keras model behind the engine's ``Backend`` protocol, so a float training run goes
through ``engine.model.NilmModel`` (normalisation, output selection, clipping, status
gating) exactly like an exported ``.tflite`` does."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
DEFAULT_BATCH_SIZE = 2048


class KerasBackend:
    """``run`` takes normalised windows (N, L) and returns every model output, batch by
    batch through one compiled call (``model.predict`` would build a tf.data pipeline per
    chunk)."""

    name = "keras"

    def __init__(self, model: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        import tensorflow as tf

        self.model = model
        self.batch_size = max(1, int(batch_size))

        @tf.function(autograph=False, reduce_retracing=True)
        def call(x: tf.Tensor) -> list[tf.Tensor]:
            return list(model(x, training=False))

        self._call = call

    def run(self, inputs: npt.NDArray[np.float32]) -> list[FloatArray]:
        x = np.asarray(inputs, dtype=np.float32)
        step = self.batch_size
        batches = [self._call(x[i : i + step]) for i in range(0, len(x), step)]
        return [np.concatenate([b[k].numpy() for b in batches]) for k in range(len(batches[0]))]


def keras_model(run_path: str, card: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> Any:
    """``engine.model.NilmModel`` of a saved ``model.keras`` and its card."""
    from custom_components.nilm.engine.model import NilmModel

    from .models import load_keras_model

    return NilmModel(card, KerasBackend(load_keras_model(run_path), batch_size))
