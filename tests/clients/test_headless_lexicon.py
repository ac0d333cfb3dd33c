"""PyPI `mixpanel-headless` 0.4.0, unmodified, in its own venv, pointed at a real mixhouse server with
`MP_API_BASE_URL`: its Lexicon calls (`create_schema`, `create_schemas_bulk` with and without `truncate`,
`list_schema_registry`, `lexicon_schemas`, `lexicon_schema`, `update_schema` and `update_schemas_bulk`
(PATCH), `delete_schemas`) against
`/api/app/projects/{id}/schemas` (docs/lexicon.md), and a hidden event leaving its `events()`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.support import DRIVERS_DIR, run_json, start_server, venv_python
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET


@pytest.fixture(scope="module")
def got(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    python = venv_python("mixpanel-headless")
    tmp = tmp_path_factory.mktemp("headless-lexicon")
    server = start_server(tmp / "data")
    try:
        recent = int(time.time()) - 3600  # events() looks at the last 31 days
        events = [
            {"event": name, "properties": {"distinct_id": "u1", "time": recent, "$insert_id": f"h{i}"}}
            for i, name in enumerate(("Signed Up", "Purchase"))
        ]
        assert httpx.post(f"{server.url}/import", json=events, auth=(SECRET, "")).status_code == 200
        env = {
            "MP_API_BASE_URL": server.url,
            "MP_USERNAME": SA_USER,
            "MP_SECRET": SA_SECRET,
            "MP_PROJECT_ID": str(PROJECT_ID),
            "MP_REGION": "us",
            "MP_CONFIG_PATH": str(tmp / "config.toml"),  # never ~/.mp/config.toml
            "PYTHONPATH": str(DRIVERS_DIR),
        }
        yield run_json([str(python), str(DRIVERS_DIR / "headless_lexicon_driver.py")], env=env, cwd=tmp)
    finally:
        server.stop()


@pytest.mark.clock
def test_lexicon_calls(got: dict[str, Any]) -> None:
    errors = {k: v for k, v in got.items() if isinstance(v, dict) and "error" in v and k != "invalid"}
    assert errors == {}
    assert got["create_schema"] == {"status": "ok"}
    assert got["create_schemas_bulk"] == {"added": 2, "deleted": 0}
    registry = {(e["entity_type"], e["name"]) for e in got["list_schema_registry"]}
    assert registry == {("event", "Purchase"), ("event", "Signed Up"), ("profile", "$user")}
    assert {e["name"] for e in got["list_schema_registry_events"]} == {"Purchase", "Signed Up"}
    assert sorted(s["name"] for s in got["lexicon_schemas"]) == ["$user", "Purchase", "Signed Up"]
    assert got["lexicon_schema"]["schema_json"]["description"] == "User completes a purchase"
    assert set(got["update_schema"]["properties"]) == {"amount", "tax"}  # PATCH merges
    patched = [(r["name"], r["status"]) for r in got["update_schemas_bulk"]]
    assert patched == [("Signed Up", "ok"), ("Nope", "error")]
    assert got["events_after_hiding"] == ["Purchase"]  # "Signed Up" is hidden (the PATCH kept the flag)
    assert got["delete_one"]["delete_count"] == 1 and got["delete_profiles"]["delete_count"] == 1
    assert [e["name"] for e in got["list_after_delete"]] == ["Signed Up"]
    assert got["truncate"] == {"added": 1, "deleted": 1}
    assert [e["name"] for e in got["list_after_truncate"]] == ["Purchase"]
    assert "type must be one of" in got["invalid"]["error"]
