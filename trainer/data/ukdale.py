"""UK-DALE loader: house 1 at 6 s (``UKDALE_*.csv.gz``: timestamp, aggregate, appliances)."""

from __future__ import annotations

from pathlib import Path

from ..config import DEFAULT_DATA_CONFIG, DataConfig
from ..errors import TrainerError
from .core import HouseData, _read_csv, tidy_frame_to_house

__all__ = ["load_ukdale"]


def load_ukdale(path: str | Path, config: DataConfig = DEFAULT_DATA_CONFIG) -> HouseData:
    """UK-DALE house 1 at 6 s (``timestamp, aggregate, <appliance>...``)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("UKDALE_*.csv.gz")) or sorted(
            (p / "ukdale_house1_6s").glob("UKDALE_*.csv.gz")
        )
        if not files:
            raise TrainerError(f"no UKDALE_*.csv.gz files in {p}")
        p = files[0]
    frame = _read_csv(p, "UK-DALE")
    return tidy_frame_to_house(
        frame, p, native_period_s=6.0, source="UK-DALE house 1", config=config
    )
