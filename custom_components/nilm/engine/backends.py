"""Backends behind one interface (contract stub, implemented by the engine work).

``Backend.run`` takes float32 model inputs of shape (N, *input_shape[1:]) and returns the
model outputs as float32 arrays of shape (N, *output_shape[1:]), (de)quantizing int8/int16
model I/O itself. ``create_backend(path, preference)`` with preference one of
"auto", "numpy", "litert", "litert_ref", "edgetpu".
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

BACKENDS = ("auto", "numpy", "litert", "litert_ref", "edgetpu")


class Backend(Protocol):
    name: str

    def run(self, inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]: ...


def create_backend(model_path: Path, preference: str = "auto") -> Backend:
    raise NotImplementedError
