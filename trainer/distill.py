"""Knowledge distillation: a teacher's soft outputs as training targets beside the labels.

The teacher is a finished run (``model.keras`` + ``card.json``: a ``train`` run or a
bundle seed), typically the reference ``cnn``, about 100x the compact model's size. It
adds two things to a student's training set (:func:`distilled_targets` for windows in
memory, as ``bundle`` holds them; :func:`distilled_starts` for starts into one series,
as ``train`` holds them):

* on the labelled windows, the targets become ``alpha`` x label + (1 - ``alpha``) x
  teacher: the teacher's confidence between 0 and 1 where the label is a hard step
  (its probability centred on its own threshold, :func:`soften`; its power gated by its
  own on decision, as the engine gates it);
* on unlabelled windows of the training houses' mains (:func:`unlabelled_windows`: no
  sub-meter needed, so houses without the appliance's plug count too), the teacher's
  outputs alone, a second source of signal.

Each model sees windows in its own normalisation: the teacher's card says its input
mean/std and power scale, the student's data says its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from custom_components.nilm.engine.card import ModelCard, load_card
from custom_components.nilm.engine.windows import valid_starts

from .config import DistillConfig
from .errors import TrainerError
from .files import CARD_JSON, MODEL_KERAS
from .windows import draw_pooled

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Teacher:
    """A trained float model run as the integration runs models: the engine's
    ``NilmModel`` (normalisation, power scale, status gating) on a Keras backend."""

    run_dir: Path
    model: Any  # engine.model.NilmModel

    @property
    def card(self) -> ModelCard:
        card: ModelCard = self.model.card
        return card

    @property
    def threshold(self) -> float:
        """The teacher's on threshold, chosen on validation when it was trained."""
        return float(self.card.status.probability_threshold)

    def predict(self, x_w: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(power in watts, gated by the teacher's own on decision; on-probability) for
        windows in watts."""
        if len(x_w) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        out = self.model.predict(x_w)
        assert out.probability is not None  # load_teacher refuses a card without status
        return out.power_w, out.probability


def load_teacher(run_dir: Path, *, window_length: int, target_index: int) -> Teacher:
    """The teacher in ``run_dir``; its windows must be the student's (same geometry)."""
    from .keras_backend import keras_model

    model_path, card_path = run_dir / MODEL_KERAS, run_dir / CARD_JSON
    if not model_path.is_file() or not card_path.is_file():
        raise TrainerError(f"no teacher in {run_dir} (needs {MODEL_KERAS} and {CARD_JSON})")
    card = load_card(card_path, verify_hash=False)
    if (card.window_length, card.target_index) != (window_length, target_index):
        raise TrainerError(
            f"the teacher in {run_dir} reads {card.window_length} samples with target "
            f"{card.target_index}; the student needs {window_length} and {target_index}"
        )
    if card.status_output is None:
        raise TrainerError(f"the teacher in {run_dir} has no status output to distil")
    return Teacher(run_dir, keras_model(str(model_path), card))


def _logit(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q / (1 - q)))


def soften(prob: FloatArray, temperature: float, threshold: float = 0.5) -> FloatArray:
    """sigmoid((logit(p) - logit(threshold)) / T): the teacher's confidence relative to
    its own decision (a teacher that decides "on" at 0.97 says 0.5 there), T > 1 pulling
    it towards 0.5."""
    if temperature == 1.0 and threshold == 0.5:
        return prob.astype(np.float32)
    centred = _logit(prob.astype(np.float64)) - float(_logit(np.array(threshold)))
    return (1.0 / (1.0 + np.exp(-centred / temperature))).astype(np.float32)


def draw_unlabelled(pools: list[IntArray], n: int, rng: np.random.Generator) -> list[IntArray]:
    """:func:`~trainer.windows.draw_pooled`, refusing mains without one unmasked window."""
    if n and not any(p.size for p in pools):
        raise TrainerError("no unmasked mains window to distil on")
    return draw_pooled(pools, n, rng)


def unlabelled_windows(
    mains: list[FloatArray], length: int, target_index: int, n: int, rng: np.random.Generator
) -> FloatArray:
    """``n`` windows in watts drawn uniformly from every unmasked stretch of ``mains``."""
    pools = [valid_starts(m, m, length, target_index) for m in mains]
    if n == 0:
        return np.zeros((0, length), np.float32)
    drawn = draw_unlabelled(pools, n, rng)
    out = [
        np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(m, length)[starts])
        for m, starts in zip(mains, drawn, strict=True)
        if starts.size
    ]
    return np.concatenate(out).astype(np.float32)


def teacher_targets(
    teacher: Teacher, config: DistillConfig, x_w: FloatArray, scale_w: float
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """The teacher's targets for windows in watts: (power / the student's scale, its
    softened on-probability, its own on decision)."""
    t_power_w, t_prob = teacher.predict(x_w)
    return (
        (t_power_w / np.float32(scale_w)).astype(np.float32),
        soften(t_prob, config.temperature, teacher.threshold),
        t_prob >= teacher.threshold,
    )


def _blend(alpha: float, label: FloatArray, teacher: FloatArray) -> FloatArray:
    """``alpha`` x label + (1 - ``alpha``) x teacher on the labelled windows (the first
    ``len(label)`` of ``teacher``), the teacher alone on the unlabelled rest."""
    n, a = label.size, np.float32(alpha)
    blended = a * label.reshape(-1) + (1 - a) * teacher[:n]
    return np.concatenate([blended, teacher[n:]]).astype(np.float32)


def _summary(
    teacher: Teacher, config: DistillConfig, label_on: FloatArray, says_on: BoolArray
) -> dict[str, Any]:
    """What the distillation did, for the run's config and card (``says_on``: the
    teacher's decisions on the labelled windows, then the unlabelled ones)."""
    n = len(label_on)
    agree = float(np.mean(says_on[:n] == (label_on.reshape(-1) >= 0.5))) if n else math.nan
    return {
        **config.to_dict(),
        "teacher_architecture": teacher.card.architecture,
        "labelled_windows": n,
        "unlabelled_windows": len(says_on) - n,
        "teacher_agreement_on_labels": round(agree, 4),
        "teacher_on_share_unlabelled": (
            round(float(np.mean(says_on[n:])), 4) if len(says_on) > n else None
        ),
    }


@dataclass(frozen=True)
class DistilledSet:
    """Windows (watts) with their blended targets (power / student scale, on in [0, 1])."""

    x_w: FloatArray
    power: FloatArray
    on: FloatArray
    summary: dict[str, Any]


def distilled_targets(
    teacher: Teacher,
    config: DistillConfig,
    *,
    x_w: FloatArray,
    power: FloatArray,
    on: FloatArray,
    unlabelled_w: FloatArray,
    scale_w: float,
) -> DistilledSet:
    """Labelled windows with blended targets, then unlabelled ones with the teacher's."""
    t_power, t_on, says_on = teacher_targets(
        teacher, config, np.concatenate([x_w, unlabelled_w]), scale_w
    )
    return DistilledSet(
        x_w=np.concatenate([x_w, unlabelled_w]).astype(np.float32),
        power=_blend(config.alpha, power, t_power).reshape(-1, 1),
        on=_blend(config.alpha, on, t_on).reshape(-1, 1),
        summary=_summary(teacher, config, on, says_on),
    )


@dataclass(frozen=True)
class DistilledStarts:
    """The same for windows kept as starts into one series (``trainer.train`` gathers
    its batches in the graph): labelled starts then unlabelled ones, with their targets
    (power / student scale, on in [0, 1])."""

    starts: IntArray
    power: FloatArray
    on: FloatArray
    summary: dict[str, Any]


def distilled_starts(
    teacher: Teacher,
    config: DistillConfig,
    *,
    aggregate_w: FloatArray,
    starts: IntArray,
    power: FloatArray,
    on: FloatArray,
    unlabelled: IntArray,
    window_length: int,
    scale_w: float,
    chunk: int = 8192,
) -> DistilledStarts:
    """:func:`distilled_targets` for windows given as starts into ``aggregate_w``; the
    teacher reads them ``chunk`` at a time, so memory stays one chunk of windows."""
    view = np.lib.stride_tricks.sliding_window_view(aggregate_w, window_length)
    every = np.concatenate([starts, unlabelled]).astype(np.int64)
    parts = [
        teacher_targets(teacher, config, np.ascontiguousarray(view[every[i : i + chunk]]), scale_w)
        for i in range(0, every.size, chunk)
    ]
    t_power, t_on, says_on = (
        (np.concatenate([p[k] for p in parts]) for k in range(3))
        if parts
        else (np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, bool))
    )
    return DistilledStarts(
        starts=every,
        power=_blend(config.alpha, power, t_power),
        on=_blend(config.alpha, on, t_on),
        summary=_summary(teacher, config, on, says_on),
    )
