"""Segmentation event counts skip the identity-map join unless the answer can depend on the resolved id
(`mixhouse/engine/duckdb/queries/segmentation.py`, `_needs_identity`): these pin the cases that must not."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock


def _linked_events(server: ServerProcess) -> tuple[str, str, str]:
    """Two events of one person: anonymous on a device, then identified (Simplified ID Merge links them)."""
    tag = uuid.uuid4().hex[:10]
    event, device, user = f"seg-identity-{tag}", f"dev-{tag}", f"user-{tag}"
    now = int(time.time()) - 60
    events = [
        {"event": event, "properties": {"time": now, "distinct_id": f"$device:{device}", "$device_id": device,
                                        "$insert_id": f"a-{tag}"}},
        {"event": event, "properties": {"time": now + 1, "distinct_id": user, "$device_id": device,
                                        "$user_id": user, "$insert_id": f"b-{tag}"}},
    ]  # fmt: skip
    for sent in events:  # one request each: the anonymous event is stored before the link exists
        r = httpx.post(f"{server.url}/import", json=[sent], auth=(SECRET, ""), timeout=30)
        assert r.status_code == 200, r.text
    day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    return event, user, day


def _values(server: ServerProcess, **params: str) -> object:
    r = httpx.get(
        f"{server.url}/api/query/segmentation",
        params={"project_id": str(PROJECT_ID), "unit": "day", **params},
        auth=(SA_USER, SA_SECRET),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["data"]["values"]


def test_event_counts_by_the_id_read_the_resolved_id(server: ServerProcess) -> None:
    event, user, day = _linked_events(server)
    dates = {"from_date": day, "to_date": day}
    # `on` reads the id: both events belong to the identified user, the anonymous one included.
    assert _values(server, event=event, on='properties["$distinct_id"]', **dates) == {user: {day: 2}}
    # So does a `where` on the id.
    where = f'properties["$distinct_id"] == "{user}"'
    assert _values(server, event=event, where=where, **dates) == {event: {day: 2}}
    # Uniques count the person once.
    assert _values(server, event=event, type="unique", **dates) == {event: {day: 1}}
    # Plain event counts do not need the id.
    assert _values(server, event=event, **dates) == {event: {day: 2}}
