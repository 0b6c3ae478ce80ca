"""The data layer: every source read into one tidy, masked :class:`HouseData` frame.

Inner order, lowest first: :mod:`.core` (HouseData, masking, resampling, units, bounded CSV
reading), then one module per source that builds on it and never on another source:
:mod:`.refit`, :mod:`.ukdale`, :mod:`.user_csv`. Everything is re-exported here, so
callers import from ``trainer.data``.
"""

from ..appliances import CANONICAL, check_appliance
from ..config import MAX_PERIOD_S, MIN_PERIOD_S, SOURCES, DataConfig
from .core import (
    HouseData,
    build_house,
    canonical_name,
    check_units,
    default_data_dir,
    parse_mapping,
)
from .refit import (
    REFIT_APPLIANCE_MAP,
    load_refit_8s,
    load_refit_30s,
    load_refit_clean,
    load_refit_day,
)
from .ukdale import load_ukdale
from .user_csv import UserCsvSpec, load_user_csv, read_user_spec

__all__ = [
    "CANONICAL",
    "MAX_PERIOD_S",
    "MIN_PERIOD_S",
    "REFIT_APPLIANCE_MAP",
    "SOURCES",
    "DataConfig",
    "HouseData",
    "UserCsvSpec",
    "build_house",
    "canonical_name",
    "check_appliance",
    "check_units",
    "default_data_dir",
    "load_refit_8s",
    "load_refit_30s",
    "load_refit_clean",
    "load_refit_day",
    "load_ukdale",
    "load_user_csv",
    "parse_mapping",
    "read_user_spec",
]  # fmt: skip
