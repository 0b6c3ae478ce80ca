"""JSON helpers and the run-directory layout, shared by every step that writes files.

A training run directory (:func:`trainer.train.train`) holds :data:`CONFIG_JSON`,
:data:`STATE_JSON`, :data:`HISTORY_JSON`, :data:`CHECKPOINT` (``checkpoint/last``),
:data:`BEST_WEIGHTS`, and at the end :data:`MODEL_KERAS`, :data:`METRICS_JSON` and
:data:`CARD_JSON`. Any artifact may have its resolved configuration beside it
(:func:`beside`: ``<stem>.config.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TrainerError

CONFIG_JSON = "config.json"
STATE_JSON = "state.json"
HISTORY_JSON = "history.json"
CHECKPOINT = "checkpoint/last"
BEST_WEIGHTS = "best.weights.h5"
MODEL_KERAS = "model.keras"
METRICS_JSON = "metrics.json"
CARD_JSON = "card.json"
FINISHED_RUN = (MODEL_KERAS, CONFIG_JSON, CARD_JSON)


def jsonable(value: Any) -> Any:
    """NaN/inf become null (strict JSON readers reject the tokens ``json`` writes), numpy
    scalars Python numbers, paths strings, tuples lists, keys strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(payload: Any, *, sort_keys: bool = True, strict: bool = True) -> str:
    """Indented JSON text with a final newline; ``strict`` applies :func:`jsonable`."""
    value = jsonable(payload) if strict else payload
    return json.dumps(value, indent=2, sort_keys=sort_keys) + "\n"


def write_json(path: Path, payload: Any, *, sort_keys: bool = True, strict: bool = True) -> Path:
    """Write :func:`dumps` atomically (temporary file, then rename), creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps(payload, sort_keys=sort_keys, strict=strict), "utf-8")
    tmp.replace(path)
    return path


def load_json(path: Path) -> Any:
    """Read a JSON file; an unreadable or malformed one is a TrainerError naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise TrainerError(f"cannot read {path}: {err}") from err


def beside_path(artifact: Path) -> Path:
    """``<stem>.config.json`` next to an artifact."""
    return artifact.with_name(artifact.stem + ".config.json")


def beside(artifact: Path, config: Any) -> Path:
    """The resolved configuration next to an artifact, so a file found alone explains itself."""
    return write_json(beside_path(artifact), config)


def check_finished_run(run_dir: Path) -> None:
    """Refuse a folder that is not a finished training run."""
    for needed in FINISHED_RUN:
        if not (run_dir / needed).is_file():
            raise TrainerError(f"{run_dir} is not a finished training run (no {needed})")
