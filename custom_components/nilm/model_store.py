"""The model store: finding model cards (bundled and user), choosing the one that runs
for each configured appliance and loading it on an engine backend.

Everything here does file I/O and must run in an executor, never in the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .const import (
    BACKEND_CPU,
    BUNDLED_MODELS_DIR,
    ENGINE_PREFERENCES,
    ISSUE_BACKEND_UNAVAILABLE,
    ISSUE_MODEL_CORRUPT,
    ISSUE_MODEL_MISSING,
    ISSUE_MODEL_UNSUPPORTED,
    REPAIR_USER_MODEL_GONE,
    REPAIR_USER_MODEL_REJECTED,
)
from .engine.backends import is_edgetpu_model
from .engine.card import CARD_SUFFIX, ModelCard, load_card, tflite_path_for
from .engine.errors import (
    BackendUnavailableError,
    ModelCardError,
    ModelError,
    UnsupportedOpError,
)
from .engine.model import NilmModel, load_model

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AvailableModel:
    """A card found on disk (not yet verified against its model file).

    A model compiled for the Coral Edge TPU (``*_edgetpu.tflite``) runs nowhere else, so
    ``cpu_fallback`` is the same-name CPU model to run when the Edge TPU is missing or the
    CPU backend is chosen (None: there is none).
    """

    card: ModelCard
    card_path: Path
    user: bool
    cpu_fallback: AvailableModel | None = None

    @property
    def edgetpu(self) -> bool:
        return is_edgetpu_model(tflite_path_for(self.card_path, self.card))


@dataclass(frozen=True, slots=True)
class RejectedCard:
    """A card file that failed validation: the repair issue says why, not "missing"."""

    name: str  # the card's ``name`` if it could be read, else the file name's stem
    card_path: Path
    user: bool
    reason: str

    @property
    def label(self) -> str:
        return f"{'user' if self.user else 'bundled'} model card {self.card_path.name}"


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """Why a configured appliance could not be loaded (becomes a repair issue)."""

    name: str
    reason: str  # one of the ISSUE_* constants
    message: str


def discover_models(user_dir: Path, bundled_dir: Path | None = None) -> dict[str, AvailableModel]:
    """All valid cards by model name; a user card overrides a bundled one of the same name.

    Cards that fail validation are skipped with a warning: a listing must never fail
    because of one broken file (:func:`scan_models` also says which and why).
    """
    return scan_models(user_dir, bundled_dir)[0]


def scan_models(
    user_dir: Path, bundled_dir: Path | None = None
) -> tuple[dict[str, AvailableModel], dict[str, RejectedCard]]:
    """Valid cards by model name (see :func:`discover_models`) and rejected ones by the
    name they were meant to have (the last rejection of a name wins)."""
    found: dict[str, AvailableModel] = {}
    rejected: dict[str, RejectedCard] = {}
    bundled = BUNDLED_MODELS_DIR if bundled_dir is None else bundled_dir
    for folder, user in ((bundled, False), (user_dir, True)):
        try:
            card_paths = sorted(folder.glob(f"*{CARD_SUFFIX}")) if folder.is_dir() else []
        except OSError as err:
            _LOGGER.warning("Cannot list model folder %s: %s", folder, err)
            continue
        # Per name: the CPU card and the Edge TPU card of this folder (later files win).
        local: dict[str, dict[bool, AvailableModel]] = {}
        for card_path in card_paths:
            try:
                card = load_card(card_path, verify_hash=False)
            except Exception as err:  # one broken file must never break a listing
                name = getattr(err, "card_name", None) or _name_from_file(card_path)
                reason = str(err) if isinstance(err, ModelError) else _describe(err)
                _LOGGER.warning("Ignoring model card %s: %s", card_path, reason)
                rejected[name] = RejectedCard(name, card_path, user, reason)
                continue
            model = AvailableModel(card, card_path, user)
            local.setdefault(card.name, {})[model.edgetpu] = model
        for name, kinds in local.items():
            earlier = found.get(name)
            earlier_cpu = earlier.cpu_fallback if earlier and earlier.edgetpu else earlier
            cpu = kinds.get(False)
            tpu = kinds.get(True)
            if tpu is not None:  # prefer the Edge TPU build, keep a CPU model to fall back to
                found[name] = replace(tpu, cpu_fallback=cpu if cpu is not None else earlier_cpu)
            elif cpu is not None:
                found[name] = cpu
    return found, rejected


def replacement_for(found: dict[str, AvailableModel], name: str) -> AvailableModel | None:
    """The model that runs for the configured ``name``.

    A user model replaces the bundled model of the same appliance, whatever its name: a
    configured bundled ``kettle`` runs the user's ``my_kettle`` (the first by name if
    there are several), keeping its device and energy history. None: no such model.
    """
    model = found.get(name)
    if model is None or model.user:
        return model
    users = sorted(
        (m for m in found.values() if m.user and m.card.appliance == model.card.appliance),
        key=lambda m: m.card.name,
    )
    return users[0] if users else model


def offered_models(found: dict[str, AvailableModel]) -> dict[str, AvailableModel]:
    """The models a flow offers: bundled ones whose appliance has a user model are
    left out (the user model replaces them), so each appliance is offered once unless
    the user installed several models for it."""
    user_appliances = {m.card.appliance for m in found.values() if m.user}
    return {
        name: m
        for name, m in sorted(found.items())
        if m.user or m.card.appliance not in user_appliances
    }


def one_per_appliance(models: dict[str, AvailableModel]) -> list[str]:
    """The first model (by name) of each appliance: the flow's default selection."""
    chosen: dict[str, str] = {}
    for name, m in sorted(models.items()):
        chosen.setdefault(m.card.appliance, name)
    return sorted(chosen.values())


def _name_from_file(card_path: Path) -> str:
    return card_path.stem.removesuffix("_edgetpu")


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500]


def load_appliance(
    available: AvailableModel | None,
    name: str,
    backend: str,
    threshold: float | None,
    rejected: RejectedCard | None = None,
) -> tuple[NilmModel | None, LoadFailure | None]:
    """Load one configured model; every problem (any exception) becomes a LoadFailure
    naming the reason, never a raise.

    A forced backend that is missing (no Coral plugged in) falls back to the CPU and
    still reports a failure, so the user learns why inference is slower than expected.
    ``rejected`` is the card of this name that failed validation, if any: without a
    valid card its reason is the failure's message. A rejected *user* card that leaves a
    valid bundled card of its name to run is a failure too
    (:data:`.const.REPAIR_USER_MODEL_REJECTED`): the model runs, and the repair says
    that the user's model was rejected and why, and that the bundled one runs meanwhile.
    """
    if available is None:
        if rejected is not None:
            return None, LoadFailure(
                name, ISSUE_MODEL_CORRUPT, f"{rejected.label} was rejected: {rejected.reason}"
            )
        return None, LoadFailure(name, ISSUE_MODEL_MISSING, "no model card with this name")
    try:
        model, failure = _load_appliance(available, name, backend, threshold)
    except Exception as err:  # a bug or an unforeseen file: a repair, not a failed entry
        _LOGGER.warning("Loading model %s failed unexpectedly", name, exc_info=True)
        model, failure = None, LoadFailure(name, ISSUE_MODEL_CORRUPT, _describe(err))
    if rejected is None or not rejected.user or available.user:
        return model, failure
    shadowed = f"{rejected.label} was rejected: {rejected.reason}"
    if model is None:  # the bundled model failed too: its reason first, then the user's
        if failure is None:
            return None, LoadFailure(name, ISSUE_MODEL_CORRUPT, shadowed)
        return None, replace(failure, message=f"{failure.message}; also, {shadowed}")
    if failure is not None:  # e.g. the bundled model runs on the CPU, not the Coral
        shadowed += f" (also: {failure.message})"
    return model, LoadFailure(name, REPAIR_USER_MODEL_REJECTED, shadowed)


def _load_appliance(
    available: AvailableModel,
    name: str,
    backend: str,
    threshold: float | None,
) -> tuple[NilmModel | None, LoadFailure | None]:
    cpu_preferences = ENGINE_PREFERENCES[BACKEND_CPU]
    if available.edgetpu:
        # Only the Coral runs a compiled model; the CPU runs its same-name sibling.
        preferred: tuple[str, ...] = () if backend == BACKEND_CPU else ("edgetpu",)
        cpu = available.cpu_fallback
    else:
        preferred = ENGINE_PREFERENCES[backend]
        cpu = available
    attempts = [(available, p) for p in preferred]
    if cpu is not None:
        attempts += [(cpu, p) for p in cpu_preferences if (cpu, p) not in attempts]
    fallback: LoadFailure | None = None
    for model_files, preference in attempts:
        try:
            model = load_model(model_files.card_path, preference)
        except UnsupportedOpError as err:
            return None, LoadFailure(name, ISSUE_MODEL_UNSUPPORTED, str(err))
        except ModelCardError as err:
            reason = ISSUE_MODEL_MISSING if _file_missing(model_files) else ISSUE_MODEL_CORRUPT
            return None, LoadFailure(name, reason, str(err))
        except ModelError as err:
            return None, LoadFailure(name, ISSUE_MODEL_CORRUPT, str(err))
        except BackendUnavailableError as err:
            if preference in preferred and fallback is None:
                fallback = LoadFailure(name, ISSUE_BACKEND_UNAVAILABLE, str(err))
            continue
        except Exception as err:  # whatever a backend raised: this model is unusable
            _LOGGER.warning("Model %s failed on %s", name, preference, exc_info=True)
            return None, LoadFailure(name, ISSUE_MODEL_CORRUPT, _describe(err))
        if threshold is not None:
            model.card = with_threshold(model.card, threshold)
        return model, fallback if backend != BACKEND_CPU else None
    if cpu is None:
        why = fallback.message + "; " if fallback is not None else ""
        message = f"{why}compiled for the Edge TPU only, and no CPU model named {name} is installed"
        return None, LoadFailure(name, ISSUE_BACKEND_UNAVAILABLE, message)
    return None, fallback


def with_threshold(card: ModelCard, threshold: float) -> ModelCard:
    """Override the decision threshold: probability with a status head, else watts."""
    if card.status_output is not None:
        status = replace(card.status, probability_threshold=threshold)
    else:
        status = replace(card.status, on_power_threshold_w=threshold)
    return replace(card, status=status)


@dataclass(slots=True)
class LoadedModels:
    """What :func:`load_all` found and loaded for one entry."""

    available: dict[str, AvailableModel] = field(default_factory=dict)
    models: dict[str, NilmModel] = field(default_factory=dict)
    failures: dict[str, LoadFailure] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)  # configured, same appliance again
    # Configured name -> the user model that runs for it, or that ran and is gone (its
    # repair stands until it is back or the user confirms the bundled model).
    user_models: dict[str, str] = field(default_factory=dict)


def load_all(
    user_dir: Path,
    names: Sequence[str],
    backend: str,
    thresholds: Mapping[str, float],
    user_models: Mapping[str, str] | None = None,
) -> LoadedModels:
    """Load every configured model; nothing raised here may fail the whole entry.

    Each configured name runs the model :func:`replacement_for` picks (a user model
    replaces the bundled one of its appliance). An appliance is tracked once: a second
    configured name for it is skipped, so it never gets a second device and the
    untracked power never subtracts it twice. ``thresholds`` are keyed by appliance (or,
    in older entries, by the configured name). ``user_models`` are the user models that
    ran at the last setup (:attr:`LoadedModels.user_models`): one that is no longer
    installed, so that the bundled model runs again, is a
    :data:`.const.REPAIR_USER_MODEL_GONE` failure, never a silent swap.
    """
    out = LoadedModels()
    try:
        out.available, rejected = scan_models(user_dir)
    except Exception as err:  # the listing itself broke: every model says why
        _LOGGER.exception("Listing the NILM models failed")
        reason = f"the model folders cannot be listed: {type(err).__name__}: {err}"
        out.failures = {n: LoadFailure(n, ISSUE_MODEL_CORRUPT, reason) for n in names}
        return out
    tracked: dict[str, str] = {}  # appliance -> configured name
    for name in names:
        chosen = replacement_for(out.available, name)
        if chosen is not None:
            appliance = chosen.card.appliance
            if appliance in tracked:
                _LOGGER.warning(
                    "%s and %s both track the %s; only %s is used (remove %s in the options)",
                    tracked[appliance],
                    name,
                    appliance,
                    tracked[appliance],
                    name,
                )
                out.duplicates.append(name)
                continue
            tracked[appliance] = name
        threshold = thresholds.get(name)
        if chosen is not None:
            threshold = thresholds.get(chosen.card.appliance, threshold)
        try:
            model, failure = load_appliance(chosen, name, backend, threshold, rejected.get(name))
        except Exception as err:
            _LOGGER.exception("Loading model %s failed", name)
            model, failure = None, LoadFailure(name, ISSUE_MODEL_CORRUPT, f"{err!r}"[:500])
        if model is not None:
            out.models[name] = model
        if failure is not None:
            out.failures[name] = failure
        if model is not None and chosen is not None and chosen.user:
            out.user_models[name] = chosen.card.name
        elif (gone := (user_models or {}).get(name)) is not None:
            out.user_models[name] = gone
            if model is not None and failure is None:
                bad = rejected.get(gone)
                out.failures[name] = (
                    LoadFailure(name, REPAIR_USER_MODEL_GONE, f"{gone} is no longer installed")
                    if bad is None
                    else LoadFailure(
                        name, REPAIR_USER_MODEL_REJECTED, f"{bad.label} was rejected: {bad.reason}"
                    )
                )
    return out


def _file_missing(available: AvailableModel) -> bool:
    try:
        path = tflite_path_for(available.card_path, available.card)
        return not path.exists()
    except (OSError, ValueError, ModelError):
        return False
