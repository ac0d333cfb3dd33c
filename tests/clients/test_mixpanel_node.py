"""npm `mixpanel-node` 0.0.17 (a TypeScript wrapper of the ingestion API over axios), unmodified, in Node:
`/track` and `/import` with JSON array bodies, and every profile operation on `/engage` (its paths carry a
`#profile-set`-style fragment, which never reaches the server). The one redirect: the exported axios
instance's `defaults.baseURL`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.support import SA_AUTH, export_all, profiles, run_node, start_server
from tests.server import PROJECT_ID, SECRET, TOKEN, ServerProcess


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    server = start_server(tmp_path_factory.mktemp("mixpanel-node") / "data")
    try:
        env = {
            "MP_BASE": server.url,
            "MP_TOKEN": TOKEN,
            "MP_SECRET": SECRET,
            "MP_PROJECT_ID": str(PROJECT_ID),
            "MP_SA_USER": SA_AUTH[0],
            "MP_SA_SECRET": SA_AUTH[1],
        }
        yield server, run_node("mixpanel_node.js", env=env)
    finally:
        server.stop()


def test_no_call_failed(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    _, got = run
    assert [name for name, value in got.items() if isinstance(value, dict) and "driver_error" in value] == []


def test_track_and_import(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, got = run
    assert got["track"] == {"status": 1, "error": None, "num_good_events": 2}
    assert got["import"] == {"code": 200, "num_records_imported": 1, "status": "OK"}
    assert got["importBadTime"]["status"] == 400
    assert got["importBadTime"]["body"]["failed_records"][0]["field"] == "properties.time"
    events = export_all(server.url)
    assert sorted(e["properties"]["n"] for e in events if e["event"] == "Node Tracked") == [1, 2]
    assert [e["properties"]["time"] for e in events if e["event"] == "Node Imported"] == [1704067200]


def test_profile_operations(run: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, got = run
    for name in ("set", "add", "append", "union", "unset", "setN2", "deleteN2"):
        assert got[name] == {"status": 1, "error": None, "num_good_events": 1}, name
    stored = profiles(server.url)
    assert "n2" not in stored
    n1 = stored["n1"]
    assert (n1["seats"], n1["tags"], "plan" in n1) == (3, ["a", "b"], False)
    assert n1["$transactions"] == [{"$amount": 30, "$time": "2024-01-02T10:00:00"}]
    revenue = httpx.get(
        f"{server.url}/api/2.0/engage/revenue",
        params={"project_id": PROJECT_ID, "from_date": "2024-01-02", "to_date": "2024-01-02"},
        auth=SA_AUTH,
    ).json()["results"]
    assert revenue["2024-01-02"] == {"amount": 30, "count": 1, "paid_count": 1}
