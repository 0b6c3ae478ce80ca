"""One reader for the REFIT gzip CSV files in ../shared/data (numpy + standard library only).

Used by the tests (also in the Home Assistant venv without pandas) and the scripts. The
trainer has its own pandas loader with gap masking (trainer/data/); this one reads the
values as published, nothing masked.

Files: ``refit_30s/house<N>/REFIT_House<N>_<YYYY-MM>.csv.gz`` (header ``Time, Aggregate,
Kettle, Dishwasher, WashingMachine, Microwave``) and ``refit_1day_20houses/house_<N>_day.csv.gz``
(``Time, Unix, Aggregate, Appliance1..9``). ``Time`` is naive UTC (``YYYY-MM-DD HH:MM:SS``);
it is returned as Unix seconds. Data: REFIT (Murray et al. 2017), CC-BY 4.0.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import numpy as np
import numpy.typing as npt

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIME_COLUMN = "Time"
# The value columns of every refit_30s file (watts), in file order, after ``Time``.
REFIT_30S_COLUMNS = ("Aggregate", "Kettle", "Dishwasher", "WashingMachine", "Microwave")


def default_data_dir() -> Path:
    """``$NILM_DATA_DIR``, else ``../shared/data`` beside the project root (read now)."""
    return Path(os.environ.get("NILM_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


DATA_DIR = default_data_dir()


def refit_30s_file(data_dir: Path, house: int, month: str) -> Path:
    """``data_dir/refit_30s/house<house>/REFIT_House<house>_<month>.csv.gz`` (month: YYYY-MM)."""
    return data_dir / "refit_30s" / f"house{house}" / f"REFIT_House{house}_{month}.csv.gz"


def refit_30s_months(data_dir: Path, house: int) -> list[str]:
    """The months (YYYY-MM, sorted) that have a 30 s file for ``house``."""
    pattern = re.compile(rf"REFIT_House{house}_(\d{{4}}-\d{{2}})\.csv\.gz")
    folder = data_dir / "refit_30s" / f"house{house}"
    found = (pattern.fullmatch(p.name) for p in folder.glob(f"REFIT_House{house}_*.csv.gz"))
    return sorted(m.group(1) for m in found if m)


def _unix_seconds(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def read_refit_csv(
    path: Path, rows: int | None = None, columns: Sequence[str] | None = None
) -> dict[str, npt.NDArray[np.float64]]:
    """Columns of a REFIT gzip CSV as float64 arrays, by header name, in the order asked.

    ``rows``: only the first ``rows`` data rows (all when None). ``columns``: the header
    names to return (all when None); an unknown name raises KeyError. ``Time`` is parsed to
    Unix seconds (UTC); every other value with ``float()``. Convert the dtype at the call
    site (e.g. ``.astype(np.float32)``): float64 -> float32 rounds exactly as parsing the
    text straight into a float32 array of Python floats does.
    """
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader)]
        names = list(header if columns is None else columns)
        missing = [name for name in names if name not in header]
        if missing:
            raise KeyError(f"{path.name} has no column(s) {missing}; header: {header}")
        index = [header.index(name) for name in names]
        parsers = [_unix_seconds if name == TIME_COLUMN else float for name in names]
        values: list[list[float]] = [[] for _ in names]
        for row in islice(reader, rows):
            for out, k, parse in zip(values, index, parsers, strict=True):
                out.append(parse(row[k]))
    return {name: np.asarray(v, dtype=np.float64) for name, v in zip(names, values, strict=True)}
