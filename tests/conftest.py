"""Shared by every test folder: where the real data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("NILM_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared REFIT/UK-DALE data (../shared/data beside the project root)."""
    if not (DATA_DIR / "refit_30s").is_dir():
        pytest.fail(f"real data not found at {DATA_DIR}; set NILM_DATA_DIR")
    return DATA_DIR
