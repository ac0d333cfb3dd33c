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


def report(config: pytest.Config, suite: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    line = f"fuzz {suite}: {CASES[suite]} cases, {SERVER_ERRORS[suite]} server errors (5xx/crash)"
    if reporter is not None:
        reporter.write_line(line)
    else:  # pragma: no cover - without a terminal, the line still goes somewhere visible
        print(line)
