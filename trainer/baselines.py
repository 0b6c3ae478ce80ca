"""A non-learned reference per appliance: a step detector on the mains.

Every learned model is reported next to this rule, scored with exactly the same metrics,
so a number such as "F1 0.8" can be read against what a few lines of arithmetic on the
mains achieve. The rule sees only the mains series (watts, NaN where masked) at the
model's sample period; it is something a user could write as a Home Assistant template
sensor plus an automation:

1. *baseline* = the lowest mains reading of the previous ``baseline_s`` seconds (a rolling
   minimum that excludes the current sample), *excess* = mains - baseline;
2. a *step* is a run of consecutive samples whose excess is at least
   ``edge_fraction * step_min_w`` (30 s averages smear a step's first and last sample, so
   the run's edges are taken at half the step);
3. the step is the appliance if its *level* (the upper quartile of its excess, robust
   to a short coincident load) lies in ``[step_min_w, step_max_w]`` and it lasts
   ``[min_duration_s, max_duration_s]``;
4. short-use appliances (kettle, microwave, fridge) are on during the step and draw the
   excess (at most ``step_max_w``). Cycle appliances (dishwasher, washing machine) are
   recognised by their heating step: the cycle is "running" from ``before_s`` before the
   first heating step's start to ``after_s`` after it (later heating steps inside that
   window belong to the same cycle), drawing the excess during heating steps and
   ``running_w`` for the rest of the cycle.

A causal automation can only say "running" once the step has lasted ``min_duration_s``:
:attr:`RulePrediction.confirmed_at` records that moment per sample, and the evaluation
reports the rule's on delay from it (``max_duration_s`` is checked in hindsight, which
flatters the rule a little: a too-long step would briefly show as on in a live
automation). All thresholds are in seconds and watts, so the rule runs at any period.

Provenance of the numbers. The step bands and durations of kettle, microwave, fridge and
the heating bands are the brief's round figures (element ratings: kettle 1.8-3.2 kW,
microwave 0.8-1.6 kW, dishwasher/washing-machine heaters about 2 kW, fridge compressor
60-200 W), not fitted. The cycle windows (``before_s``, ``after_s``) and ``running_w``
were measured on REFIT House 2's sub-meters (training house; 461 dishwasher and 349
washing-machine cycles under :func:`trainer.appliances.truth_rule`): dishwasher: first
heating (~2.2 kW, ~12 min) starts a median 19 min into the cycle, the cycle ends a median
124 min after that start, non-heating power averages ~60 W; washing machine: first heating
(~2.05 kW, ~14 min) 7.5 min in, end 89 min after it, ~85 W otherwise. Nothing was tuned
on REFIT House 20 (the test house).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from custom_components.nilm.engine.status import run_bounds

from .errors import TrainerError

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class StepRule:
    """One appliance's rule (see the module doc for the algorithm).

    ``after_s`` 0 means a short-use appliance (on exactly during the step); above 0 a cycle
    appliance whose step is its heater and whose running window is
    ``[step start - before_s, step start + after_s)``.
    """

    appliance: str
    step_min_w: float
    step_max_w: float
    min_duration_s: float
    max_duration_s: float
    baseline_s: float
    before_s: float = 0.0
    after_s: float = 0.0
    running_w: float = 0.0
    edge_fraction: float = 0.5
    summary: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.step_min_w <= self.step_max_w:
            raise ValueError(f"{self.appliance}: need 0 < step_min_w <= step_max_w")
        if not 0 <= self.min_duration_s <= self.max_duration_s:
            raise ValueError(f"{self.appliance}: need 0 <= min_duration_s <= max_duration_s")
        if self.baseline_s <= self.max_duration_s:
            # The rolling minimum must still see the level before the step at its end.
            raise ValueError(f"{self.appliance}: baseline_s must exceed max_duration_s")
        if not 0 < self.edge_fraction <= 1:
            raise ValueError(f"{self.appliance}: edge_fraction must be in (0, 1]")

    @property
    def is_cycle(self) -> bool:
        return self.after_s > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RULES: dict[str, StepRule] = {
    rule.appliance: rule
    for rule in (
        StepRule(
            "kettle", 1800.0, 3200.0, 60.0, 360.0, baseline_s=600.0,
            summary="mains step up of 1.8-3.2 kW lasting 1-6 min; power = the step",
        ),
        StepRule(
            "microwave", 800.0, 1600.0, 30.0, 600.0, baseline_s=900.0,
            summary="mains step up of 0.8-1.6 kW lasting 0.5-10 min; power = the step",
        ),
        StepRule(
            "dishwasher", 1800.0, 2600.0, 300.0, 2400.0, baseline_s=3600.0,
            before_s=19 * 60.0, after_s=125 * 60.0, running_w=60.0,
            summary="heating step of 1.8-2.6 kW lasting >= 5 min; running from 19 min "
            "before to 125 min after the first heating step's start; power = the step "
            "while heating, else 60 W",
        ),
        StepRule(
            "washing_machine", 1800.0, 2400.0, 300.0, 2400.0, baseline_s=3600.0,
            before_s=7.5 * 60.0, after_s=90 * 60.0, running_w=85.0,
            summary="heating step of 1.8-2.4 kW lasting >= 5 min; running from 7.5 min "
            "before to 90 min after the first heating step's start; power = the step "
            "while heating, else 85 W",
        ),
        StepRule(
            "fridge", 60.0, 200.0, 300.0, 3600.0, baseline_s=5400.0,
            summary="mains step up of 60-200 W lasting 5-60 min; power = the step",
        ),
    )
}  # fmt: skip


def get_rule(appliance: str) -> StepRule:
    try:
        return RULES[appliance]
    except KeyError:
        known = ", ".join(sorted(RULES))
        raise TrainerError(f"no rule baseline for {appliance!r} (known: {known})") from None


@dataclass(frozen=True, slots=True)
class RulePrediction:
    """Per-sample output of a rule: power (W, 0 where off), on/off, and for every on
    sample the index at which a live automation would have switched "running" on
    (``confirmed_at``, -1 where off)."""

    rule: StepRule
    power_w: FloatArray
    on: BoolArray
    confirmed_at: IntArray
    steps: int


def _samples(seconds: float, period_s: float) -> int:
    return max(1, int(np.ceil(seconds / period_s - 1e-9)))


def mains_excess(mains_w: npt.ArrayLike, period_s: float, baseline_s: float) -> FloatArray:
    """Mains minus the minimum of the previous ``baseline_s`` seconds (NaN ignored in the
    minimum; NaN where the sample or its whole history is masked)."""
    import pandas as pd

    mains = np.asarray(mains_w, dtype=np.float64).reshape(-1)
    n = _samples(baseline_s, period_s)
    baseline = pd.Series(mains).rolling(n, min_periods=1).min().shift(1).to_numpy()
    excess: FloatArray = (mains - baseline).astype(np.float32)
    return excess


def _expand(starts: IntArray, ends: IntArray) -> IntArray:
    """Every index of the runs ``[starts[i], ends[i])``, run after run."""
    lengths = ends - starts
    offsets = np.cumsum(lengths) - lengths
    index: IntArray = np.arange(int(lengths.sum()), dtype=np.intp) + np.repeat(
        starts - offsets, lengths
    )
    return index


def _upper_quartile(values: FloatArray, starts: IntArray, ends: IntArray) -> FloatArray:
    """The value at rank ``3 * len // 4`` of each run, vectorised with one lexsort."""
    if not starts.size:
        return np.zeros(0, dtype=np.float32)
    lengths = ends - starts
    run_id = np.repeat(np.arange(starts.size), lengths)
    vals = values[_expand(starts, ends)]
    order = np.lexsort((vals, run_id))
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    quartile: FloatArray = vals[order][offsets + (3 * lengths) // 4]
    return quartile


def detect_steps(
    mains_w: npt.ArrayLike, rule: StepRule, period_s: float
) -> tuple[IntArray, IntArray, FloatArray]:
    """(starts, ends exclusive, excess): the accepted steps of ``rule`` on the mains."""
    excess = mains_excess(mains_w, period_s, rule.baseline_s)
    above = np.nan_to_num(excess, nan=0.0) >= rule.edge_fraction * rule.step_min_w
    starts, ends = run_bounds(above)
    level = _upper_quartile(excess, starts, ends)
    duration = (ends - starts) * period_s
    keep = (
        (level >= rule.step_min_w)
        & (level <= rule.step_max_w)
        & (duration >= rule.min_duration_s - 1e-9)
        & (duration <= rule.max_duration_s + 1e-9)
    )
    return starts[keep], ends[keep], excess


def predict_rule(mains_w: npt.ArrayLike, rule: StepRule | str, period_s: float) -> RulePrediction:
    """Run ``rule`` (or the rule of the named appliance) over a mains series."""
    if isinstance(rule, str):
        rule = get_rule(rule)
    if period_s <= 0:
        raise TrainerError("the sample period must be positive")
    mains = np.asarray(mains_w, dtype=np.float64).reshape(-1)
    n = mains.size
    starts, ends, excess = detect_steps(mains, rule, period_s)
    confirm = _samples(rule.min_duration_s, period_s) - 1
    if rule.is_cycle:
        before = _samples(rule.before_s, period_s) if rule.before_s > 0 else 0
        after = _samples(rule.after_s, period_s)
        win_start: list[int] = []
        win_end: list[int] = []
        win_step: list[int] = []
        last_end = 0
        for s in cast("list[int]", starts.tolist()):  # accepted heating steps
            if s < last_end:
                continue  # a later heating step of the same cycle
            win_start.append(max(s - before, last_end, 0))
            last_end = min(s + after, n)
            win_end.append(last_end)
            win_step.append(s)
        run_start = np.asarray(win_start, dtype=np.intp)
        run_end = np.asarray(win_end, dtype=np.intp)
        run_confirm = np.asarray(win_step, dtype=np.intp) + confirm
    else:
        run_start, run_end, run_confirm = starts, ends, starts + confirm
    on = np.zeros(n, dtype=bool)
    confirmed_at = np.full(n, -1, dtype=np.intp)
    covered = _expand(run_start, run_end)
    on[covered] = True
    confirmed_at[covered] = np.repeat(run_confirm, run_end - run_start)
    power = np.zeros(n, dtype=np.float32)
    if rule.is_cycle:
        power[on] = rule.running_w
    stepping = np.zeros(n, dtype=bool)
    stepping[_expand(starts, ends)] = True
    stepping &= on
    # A coincident load adds to the excess; the appliance cannot draw more than its step.
    power[stepping] = np.clip(excess[stepping], 0.0, rule.step_max_w)
    finite = np.isfinite(mains)
    on &= finite
    power[~on] = 0.0
    confirmed_at[~on] = -1
    return RulePrediction(
        rule=rule, power_w=power, on=on, confirmed_at=confirmed_at, steps=int(starts.size)
    )
