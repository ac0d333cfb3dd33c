"""PyPI `mixpanel-jql` 0.5.1, unmodified, in a venv of its own, against a real mixhouse server: its README's
queries (events per day, unique users per day), filter/map/sort, a join with People, streamed from
`/api/2.0/jql` with the project secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.support import DRIVERS_DIR, load_data_set, run_json, start_server, venv_python


@pytest.fixture(scope="module")
def got(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    python = venv_python("mixpanel-jql")
    server = start_server(tmp_path_factory.mktemp("mixpanel-jql") / "data")
    try:
        load_data_set(server.url)
        yield run_json(
            [str(python), str(DRIVERS_DIR / "mixpanel_jql_driver.py")], env={"MP_BASE": server.url}, cwd=Path.cwd()
        )
    finally:
        server.stop()


def test_readme_queries(got: dict[str, Any]) -> None:
    assert got["signups_per_day"] == [{"key": ["2024-01-01"], "value": 3}]
    # u1, u2, u3 on Jan 1; u1, u2 on Jan 2
    assert got["users_per_day"] == [{"key": ["2024-01-01"], "value": 3}, {"key": ["2024-01-02"], "value": 2}]


def test_filter_map_sort_and_join(got: dict[str, Any]) -> None:
    assert got["purchases"] == [{"user": "u2", "amount": 20}, {"user": "u1", "amount": 9.5}]
    assert got["purchases_with_plan"] == [["u1", "pro"], ["u2", "free"]]
    assert got["people_count"] == [3]
