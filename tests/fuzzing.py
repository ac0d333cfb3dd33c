"""Shared settings of the fuzz suites: bounded case counts in CI, many more in a long run.

    MIXHOUSE_FUZZ_SCALE=50 .venv/bin/pytest tests/test_fuzz_*.py    # the documented long run

Every suite counts the cases it ran and prints the count (and the 500s it saw) at the end of the run.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

SCALE = max(1, int(os.environ.get("MIXHOUSE_FUZZ_SCALE", "1")))
CASES: Counter[str] = Counter()
SERVER_ERRORS: Counter[str] = Counter()


def examples(base: int) -> int:
    return base * SCALE


class _Summary:
    """Prints every suite's counts in pytest's terminal summary (visible without -s)."""

    def __init__(self) -> None:
        self.suites: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("fuzzing")
        for suite in self.suites:
            terminalreporter.write_line(
                f"fuzz {suite}: {CASES[suite]} cases, {SERVER_ERRORS[suite]} server errors (5xx/crash/hang)"
            )


_SUMMARY = _Summary()


def report(config: pytest.Config, suite: str) -> None:
    if not config.pluginmanager.is_registered(_SUMMARY):
        config.pluginmanager.register(_SUMMARY, "mixhouse-fuzz-summary")
    if suite not in _SUMMARY.suites:
        _SUMMARY.suites.append(suite)
