"""``nilm-trainer``: one argparse sub-command per concern module.

Each module in :data:`MODULES` exposes ``add_cli(subparsers)`` and sets ``func`` (returning
an exit code) on its parser. User-facing problems (:class:`TrainerError`, unreadable files,
malformed CSV, bad model files) become one line ``nilm-trainer: error: ...`` and exit
status 2, like argparse's own usage errors; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence

from . import __version__
from .errors import TrainerError

PROG = "nilm-trainer"
MODULES: tuple[str, ...] = (
    "trainer.data",
    "trainer.train",
    "trainer.evaluate",
    "trainer.quantize",
    "trainer.inspect",
    "trainer.export",
    "trainer.pipeline",
    "trainer.bundle",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Train, evaluate and export seq2point NILM models for the Home Assistant 'nilm' "
            "integration, from REFIT/UK-DALE, a household CSV or Home Assistant's recorder."
        ),
        epilog=f"Run '{PROG} COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that describe bad input rather than a bug."""
    errors: list[type[BaseException]] = [
        TrainerError, OSError, UnicodeDecodeError, sqlite3.DatabaseError,
    ]  # fmt: skip
    try:
        import pandas as pd

        errors += [pd.errors.ParserError, pd.errors.EmptyDataError]
    except ImportError:  # pragma: no cover - pandas is a trainer dependency
        pass
    from custom_components.nilm.engine.errors import EngineError

    errors.append(EngineError)
    return tuple(errors)


def _describe(err: BaseException) -> str:
    if isinstance(err, sqlite3.DatabaseError):
        return f"the recorder database does not have the schema this trainer reads ({err})"
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"file not found: {err.filename}"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror or err}"
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ log lines (even "E0000 ... NodeDef mentions attribute") would bury
    # the one-line error a user needs; Python-level TF errors still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _user_errors() as err:
        print(f"{PROG}: error: {_describe(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
