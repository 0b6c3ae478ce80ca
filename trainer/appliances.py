"""Per-appliance settings as data, not branches: each appliance's ``truth`` block of
``bundled.json``, the one data file that also holds the bundled models' recipes.

Thresholds and maximum powers follow the seq2point literature for REFIT/UK-DALE
(Zhang et al. 2018; goruck/nilm), adjusted to 30 s averaging where the block's ``why``
says so. Read with the standard library: this layer sits below every other one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custom_components.nilm.engine.card import StatusRule

from .errors import TrainerError


@dataclass(frozen=True, slots=True)
class ApplianceSpec:
    """How one appliance is recognised and scaled.

    ``max_power_w`` scales the regression target to about [0, 1]. ``on_power_threshold_w``
    defines "on" in ground truth and in predictions without a status head.
    ``aliases`` are column names used by the datasets for this appliance.
    """

    name: str
    on_power_threshold_w: float
    max_power_w: float
    min_on_s: float
    min_off_s: float
    aliases: tuple[str, ...]


SETTINGS_PATH = Path(__file__).with_name("bundled.json")


def _specs(path: Path) -> dict[str, ApplianceSpec]:
    """The ``truth`` block of every appliance in ``path``; a broken file is an error at
    import, naming the file, never a silently different appliance."""
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: ApplianceSpec(
                name,
                float(own["truth"]["on_power_threshold_w"]),
                float(own["truth"]["max_power_w"]),
                float(own["truth"]["min_on_s"]),
                float(own["truth"]["min_off_s"]),
                tuple(str(a) for a in own["truth"]["aliases"]),
            )
            for name, own in raw["appliances"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise TrainerError(f"cannot read the appliance settings in {path}: {err!r}") from err


APPLIANCES: dict[str, ApplianceSpec] = _specs(SETTINGS_PATH)


CANONICAL: tuple[str, ...] = tuple(APPLIANCES)


def check_appliance(name: str) -> str:
    """Validate an appliance name with a TrainerError listing the known ones."""
    if name not in APPLIANCES:
        known = ", ".join(CANONICAL)
        raise TrainerError(f"unknown appliance {name!r} (known: {known})")
    return name


def get_appliance(name: str) -> ApplianceSpec:
    """Look up an appliance by canonical name; the error lists the known ones."""
    try:
        return APPLIANCES[name]
    except KeyError:
        known = ", ".join(sorted(APPLIANCES))
        raise KeyError(f"unknown appliance {name!r} (known: {known})") from None


def truth_rule(name: str) -> StatusRule:
    """Ground-truth "running" for evaluation and labels: the appliance's own definition
    (sub-meter power above its threshold, short gaps bridged, short runs dropped), never a
    model's. For cycle appliances this spans the whole cycle, low-power phases included;
    a model card's status rule only says how *predictions* become on/off."""
    spec = get_appliance(name)
    return StatusRule(
        on_power_threshold_w=spec.on_power_threshold_w,
        min_on_s=spec.min_on_s,
        min_off_s=spec.min_off_s,
    )
