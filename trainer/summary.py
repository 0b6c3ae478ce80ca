"""Seed spreads: the one summary of several seeds' numbers that every report prints.

Results swing between seeds, so a report gives the mean, the spread and the range, never
one seed alone. Standard library only, so the documentation scripts stay light.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

__all__ = ["format_spread", "spread"]


def spread(values: Iterable[Any]) -> dict[str, float | int | None]:
    """``{"mean", "sd", "min", "max", "n"}`` over the finite numbers of ``values`` (a
    missing or non-numeric entry, NaN included, is skipped; none left: all ``None``,
    ``n`` 0). One value has sd 0."""
    finite = [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    if not finite:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {
        "mean": statistics.fmean(finite),
        "sd": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "min": min(finite),
        "max": max(finite),
        "n": len(finite),
    }


def format_spread(summary: dict[str, Any], *, sd: bool = True, missing: str = "n/a") -> str:
    """``0.220 ± 0.015 (0.205-0.236)``; ``0.220 (1 seed)`` for one value; without
    ``sd``: ``0.220 (0.205-0.236)``."""
    mean = summary.get("mean")
    if mean is None:
        return missing
    if summary.get("n") == 1:
        return f"{mean:.3f} (1 seed)"
    middle = f" ± {summary['sd']:.3f}" if sd and summary.get("sd") is not None else ""
    return f"{mean:.3f}{middle} ({summary['min']:.3f}-{summary['max']:.3f})"
