"""Float parents of the bundled models: the Keras model each shipped int8 file was
quantized from, shipped with the trainer so a household can fine-tune from it.

``nilm-trainer bundle <appliance> --save-parent`` (run by scripts/build_bundled_models.sh
right after the export) copies the chosen seed's model and its calibration set into
``trainer/parents/<appliance>/`` with a record (``parent.json``) that binds them to the
bundled card's sha256.
:func:`load_parent` refuses a parent whose bundled model has changed since, and
:func:`requantize_parent` proves the binding: converting the parent with its own
calibration set gives the bundled ``.tflite`` byte for byte.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custom_components.nilm.engine.card import ModelCard, load_card

from . import __version__
from .errors import TrainerError
from .files import MODEL_KERAS, load_json, write_json

PARENTS_DIR = Path(__file__).resolve().parent / "parents"
BUNDLED_MODELS_DIR = Path(__file__).resolve().parents[1] / "custom_components" / "nilm" / "models"
REPRESENTATIVE_FILES = ("representative.npz", "representative.json")
PARENT_JSON = "parent.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class Parent:
    """A parent on disk, checked against the bundled card it produced."""

    appliance: str
    model_path: Path
    record: dict[str, Any]
    card: ModelCard

    @property
    def seed(self) -> int:
        return int(self.record["seed"])

    def load_model(self) -> Any:
        from .models import load_keras_model

        return load_keras_model(str(self.model_path))


def save_parent(
    appliance: str,
    run_root: Path,
    models_dir: Path = BUNDLED_MODELS_DIR,
    parents_dir: Path = PARENTS_DIR,
) -> Path:
    """Copy the chosen run's float model (a seed or the seeds' ensemble, from
    ``selection.json``) beside its record."""
    selection = load_json(run_root / appliance / "selection.json")
    if not selection.get("card"):
        raise TrainerError(f"{appliance}: the build under {run_root} exported no model")
    seed = int(selection["selected_seed"])  # the converter's seed, also for an ensemble
    run = selection.get("selected_run", f"seed{seed}")
    run_dir = run_root / appliance / run
    card = load_card(models_dir / f"{appliance}.json", verify_hash=True)
    folder = parents_dir / appliance
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_KERAS
    for name in (MODEL_KERAS, *REPRESENTATIVE_FILES):
        shutil.copyfile(run_dir / name, folder / name)
    return write_json(
        folder / PARENT_JSON,
        {
            "appliance": appliance,
            "seed": seed,
            "run": run,
            "keras_sha256": _sha256(target),
            "bundled_tflite_sha256": card.tflite_sha256,
            "export_mode": selection["recipe"]["export_mode"],
            "recipe": selection["recipe"],
            "trainer_version": __version__,
        },
    )


def load_parent(
    appliance: str, models_dir: Path = BUNDLED_MODELS_DIR, parents_dir: Path = PARENTS_DIR
) -> Parent:
    """The parent of the bundled ``appliance`` model, or TrainerError saying why not."""
    record_path = parents_dir / appliance / PARENT_JSON
    model_path = parents_dir / appliance / MODEL_KERAS
    if not record_path.is_file() or not model_path.is_file():
        raise TrainerError(f"no float parent for {appliance} in {parents_dir}")
    record = load_json(record_path)
    if _sha256(model_path) != record.get("keras_sha256"):
        raise TrainerError(f"{model_path} does not match its record (sha256 differs)")
    card = load_card(models_dir / f"{appliance}.json", verify_hash=True)
    if card.tflite_sha256 != record.get("bundled_tflite_sha256"):
        raise TrainerError(
            f"the float parent of {appliance} was built for another bundled model "
            f"({str(record.get('bundled_tflite_sha256'))[:12]}..., the card has "
            f"{card.tflite_sha256[:12]}...): rebuild with scripts/build_bundled_models.sh"
        )
    return Parent(appliance, model_path, record, card)


def requantize_parent(parent: Parent) -> bytes:
    """The parent converted exactly as the bundle exported it (its calibration set, its
    seed): equal to the bundled ``.tflite`` when the parent is the true one."""
    from .bundle import load_representative
    from .quantize import QuantizeConfig, convert

    rep = load_representative(parent.model_path.parent)
    config = QuantizeConfig(mode=parent.record["export_mode"], seed=parent.seed)
    converted = convert(parent.load_model(), config, rep)
    data: bytes = converted.data
    return data
