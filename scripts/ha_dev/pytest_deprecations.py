"""pytest plugin: Home Assistant saying this integration uses a deprecated API fails the run.

Loaded by ``scripts/test`` for the integration tests on every Home Assistant version CI
runs (``-p scripts.ha_dev.pytest_deprecations``). Home Assistant reports deprecated use by
logging, not by raising, so such a report would otherwise pass unnoticed until the
version that removes the API. What counts:

- a log record (WARNING or worse) from Home Assistant's frame helper naming this
  integration: "Detected that custom integration 'nilm' ... This will stop working in
  Home Assistant X" (``homeassistant.helpers.frame.report_usage``);
- a log record whose text says "deprecated" and either names this integration (the
  deprecation helper's "The deprecated constant X was used from nilm", entity warnings
  that quote our classes) or comes from one of its loggers (``custom_components.nilm.*``,
  where ``deprecated_substitute`` logs);
- a Python ``DeprecationWarning`` / ``PendingDeprecationWarning`` whose frame is in
  ``custom_components/nilm/`` (HA and libraries point their warnings at the caller).

A log record fails the test that caused it (an error in its teardown); a warning fails
the session (pytest reports warnings only after a test's teardown), listed at the end.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Generator
from pathlib import Path

import pytest

DOMAIN = "nilm"
INTEGRATION_DIR = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN
_FRAME_REPORT = re.compile(rf"Detected that (custom )?integration '{DOMAIN}'")
_NAMES_US = re.compile(rf"\b{DOMAIN}\b|custom_components[./]{DOMAIN}\b")
_DEPRECATED = re.compile(r"deprecat", re.IGNORECASE)
_RECORDS_KEY = pytest.StashKey["_DeprecationHandler"]()
# (test id, warning) for each Python deprecation warning pointing into the integration
_FOUND_WARNINGS: list[str] = []


def is_deprecation_report(record: logging.LogRecord) -> bool:
    """Whether a log record is Home Assistant reporting deprecated use by this integration."""
    if record.levelno < logging.WARNING:
        return False
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is not ours to judge
        return False
    if _FRAME_REPORT.search(message):
        return True
    if not _DEPRECATED.search(message):
        return False
    ours = record.name == f"custom_components.{DOMAIN}" or record.name.startswith(
        f"custom_components.{DOMAIN}."
    )
    return ours or bool(_NAMES_US.search(message))


class _DeprecationHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if is_deprecation_report(record):
            self.found.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def _is_ours(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(INTEGRATION_DIR)
    except (OSError, ValueError):
        return False


def pytest_configure(config: pytest.Config) -> None:
    _FOUND_WARNINGS.clear()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None]:
    handler = _DeprecationHandler()
    item.stash[_RECORDS_KEY] = handler
    logging.getLogger().addHandler(handler)
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None]:
    try:
        result = yield
    finally:
        handler = item.stash.get(_RECORDS_KEY, None)
        if handler is not None:
            logging.getLogger().removeHandler(handler)
    if handler is not None and handler.found:
        lines = "\n  ".join(handler.found)
        pytest.fail(
            f"Home Assistant reported deprecated use by custom_components.{DOMAIN}:\n  {lines}",
            pytrace=False,
        )
    return result


def pytest_warning_recorded(
    warning_message: warnings.WarningMessage, when: str, nodeid: str, location: object
) -> None:
    if issubclass(
        warning_message.category, DeprecationWarning | PendingDeprecationWarning
    ) and _is_ours(warning_message.filename):
        _FOUND_WARNINGS.append(
            f"{nodeid or when}: {warning_message.filename}:{warning_message.lineno}: "
            f"{warning_message.category.__name__}: {warning_message.message}"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FOUND_WARNINGS:
        terminalreporter.section("deprecated APIs used by this integration", red=True)
        for line in _FOUND_WARNINGS:
            terminalreporter.line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _FOUND_WARNINGS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
