"""Per-appliance settings as data, not branches.

Thresholds and maximum powers follow the seq2point literature for REFIT/UK-DALE
(Zhang et al. 2018; goruck/nilm), adjusted to 30 s averaging where noted.
"""

from __future__ import annotations

from dataclasses import dataclass

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


APPLIANCES: dict[str, ApplianceSpec] = {
    spec.name: spec
    for spec in (
        # 30 s averaging smears a 2-3 kW kettle boil across two samples: keep the
        # threshold well below the element's rating.
        ApplianceSpec("kettle", 500.0, 3100.0, 0.0, 0.0, ("Kettle", "kettle")),
        ApplianceSpec("microwave", 200.0, 3000.0, 0.0, 0.0, ("Microwave", "microwave")),
        ApplianceSpec("dishwasher", 10.0, 2500.0, 1800.0, 1800.0, ("Dishwasher", "dishwasher")),
        ApplianceSpec(
            "washing_machine",
            20.0,
            2500.0,
            1800.0,
            160.0,
            ("WashingMachine", "washing_machine", "Washing Machine", "washer_dryer"),
        ),
        ApplianceSpec("fridge", 50.0, 300.0, 60.0, 12.0, ("fridge", "Fridge", "fridge_freezer")),
    )
}


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
