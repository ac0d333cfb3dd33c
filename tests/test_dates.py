"""Dates are `yyyy-mm-dd` and nothing else on every endpoint that takes them (the docs' only format):
the compact ISO form, ISO weeks, unpadded parts and times are 400s in the Query API's envelope."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import today
from tests.funnel_helpers import AUTH, save_funnel
from tests.server import PROJECT_ID, ServerProcess

BAD = ["20240105", "2024-W01-5", "2024-1-05", "2024-01-05T00:00:00", "2024-001", "２０２４-01-05"]
ENDPOINTS: list[tuple[str, dict[str, Any]]] = [
    ("/api/2.0/export", {}),
    ("/api/query/segmentation", {"event": "x"}),
    ("/api/query/segmentation/sum", {"event": "x", "on": 'properties["n"]'}),
    ("/api/query/events", {"event": '["x"]', "type": "general", "unit": "day"}),
    ("/api/query/events/properties", {"event": "x", "name": "n", "type": "general", "unit": "day"}),
    ("/api/query/retention", {"born_event": "x"}),
    ("/api/query/retention/addiction", {"event": "x"}),
    ("/api/2.0/events/retention", {"event": '["x"]'}),
    ("/api/query/stream/query", {"distinct_ids": '["u"]'}),
    ("/api/query/funnels", {}),
]


@pytest.mark.parametrize(("path", "params"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
def test_only_yyyy_mm_dd(server: ServerProcess, path: str, params: dict[str, Any]) -> None:
    if path.endswith("/funnels"):
        params = {"funnel_id": save_funnel(server.url, {"name": "dates", "steps": ["a", "b"]})}

    def get(from_date: str, to_date: str) -> httpx.Response:
        query = {"project_id": PROJECT_ID, "from_date": from_date, "to_date": to_date, **params}
        return httpx.get(server.url + path, params=query, auth=AUTH, timeout=30)

    # The activity stream reaches back 365 days only: its good range is today.
    good = (today(), today()) if path.endswith("/stream/query") else ("2024-01-05", "2024-01-06")
    assert get(*good).status_code == 200
    for bad in BAD:
        for name, response in (("from_date", get(bad, good[1])), ("to_date", get(good[0], bad))):
            assert response.status_code == 400, (path, bad, response.text)
            body = response.json()
            assert body["error"] == f"Invalid parameter: {name} must be a date in yyyy-mm-dd format, got {bad!r}"
            assert body["request"].startswith(path)
