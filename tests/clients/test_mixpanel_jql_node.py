"""npm `mixpanel-jql` 0.0.3, unmodified, in Node against a real mixhouse server: the client posts a whole
browserify bundle of the script (from a string or a file) plus `params` to `/api/2.0/jql`.
The one redirect: a wrapper around the `superagent.post` the client resolves (its endpoint is a constant)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.support import load_data_set, run_node, start_server


@pytest.fixture(scope="module")
def got(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = start_server(tmp_path_factory.mktemp("mixpanel-jql-node") / "data")
    try:
        load_data_set(server.url)
        yield run_node("mixpanel_jql.js", env={"MP_BASE": server.url})
    finally:
        server.stop()


def test_bundled_scripts_get_the_right_rows(got: dict[str, Any]) -> None:
    assert got["byName"] == [{"key": ["Purchase"], "value": 2}, {"key": ["Signed Up"], "value": 3}]
    assert got["usersPerDay"] == [{"key": ["2024-01-01"], "value": 3}, {"key": ["2024-01-02"], "value": 2}]
    # signups.js, read and bundled by the client
    assert got["signupsByPlanFromFile"] == [{"key": ["free"], "value": 1}, {"key": ["pro"], "value": 2}]


def test_a_script_error_reaches_the_client(got: dict[str, Any]) -> None:
    assert got["scriptError"]["status"] == 400
    assert got["scriptError"]["driver_error"].startswith("Mixpanel Error: Error: no luck")
