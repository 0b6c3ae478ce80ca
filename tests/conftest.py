"""Shared by every test folder: where the real data lives."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("NILM_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (the scripts folder is not a package of them)."""
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared REFIT/UK-DALE data (../shared/data beside the project root)."""
    if not (DATA_DIR / "refit_30s").is_dir():
        pytest.fail(f"real data not found at {DATA_DIR}; set NILM_DATA_DIR")
    return DATA_DIR
