"""The one exception type the CLI turns into a single clear error line."""

from __future__ import annotations


class TrainerError(Exception):
    """A user-facing problem: bad CSV, missing column, unknown appliance, empty selection."""
