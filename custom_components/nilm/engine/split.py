"""Where to cut a household's labelled history in time: the older part fits, the newer
part judges, and each side holds whole runs of the appliance.

Why: a week of plug labels holds two or three dishwasher runs. A cut at a fixed share
of the time (the newest quarter validates) can leave every run on one side, and then
nothing can be fitted or judged although the runs are there. Shared by the trainer's
fine-tune and the integration's head re-fit, so both split a household the same way.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .status import run_bounds


def runs_each_side(on: npt.ArrayLike, cut: int) -> tuple[int, int]:
    """Runs of ``on`` with a sample before ``cut``, and runs with a sample from it on (a
    run the cut goes through counts on both sides)."""
    starts, ends = run_bounds(on)
    return int(np.count_nonzero(starts < cut)), int(np.count_nonzero(ends > cut))


def time_cut(
    on: npt.ArrayLike,
    preferred: int,
    *,
    min_before: int,
    min_after: int,
    context: int = 0,
) -> int | None:
    """The sample index to cut ``on`` at: ``preferred`` when at least ``min_before`` runs
    lie before it and ``min_after`` from it on; otherwise a cut in the off gap between two
    runs, with as many runs before it as the preferred cut had, as far as the minima
    allow, and ``context`` samples ahead of the first judging run where the gap is that
    long (a window needs that much history inside its own part). None when there are
    fewer than ``min_before + min_after`` runs: the caller says how many it needs."""
    if min_before < 1 or min_after < 1:
        raise ValueError("each side needs at least one run")
    mask = np.asarray(on, dtype=bool).reshape(-1)
    before, after = runs_each_side(mask, preferred)
    if before >= min_before and after >= min_after:
        return int(preferred)
    starts, ends = run_bounds(mask)
    if starts.size < min_before + min_after:
        return None
    whole_before = int(np.count_nonzero(ends <= preferred))
    k = min(max(whole_before, min_before), starts.size - min_after)
    return int(max(ends[k - 1], starts[k] - context))
