"""npm `mixpanel-data-export` 2.0.2, unmodified, in Node (GET with `Authorization: Basic base64(secret:)`,
trailing-slash paths such as `/api/2.0/funnels/list/?`) against a real mixhouse server (real-clients §11).
The one redirect: a wrapper around `MixpanelExport.prototype._buildAPIStub`.

Every read method of the client, each checked against the data set by hand, and its annotation calls
(`createAnnotation`, `updateAnnotation`, `annotations`, `deleteAnnotation`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.support import FROM_DATE, TO_DATE, load_data_set, run_node, start_server
from tests.server import PROJECT_ID, SECRET

DAYS = [FROM_DATE, TO_DATE]


def series(**values: list[int | float]) -> dict[str, Any]:
    return {
        "series": DAYS,
        "values": {name.replace("_", " "): dict(zip(DAYS, v, strict=True)) for name, v in values.items()},
    }


@pytest.fixture(scope="module")
def got(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = start_server(tmp_path_factory.mktemp("data-export") / "data")
    try:
        seeded = load_data_set(server.url)
        # discovery and events/top look at today and the last 31 days: one Signed Up today (UTC project)
        now = int(time.time())
        today = {"event": "Signed Up", "properties": {"distinct_id": "u4", "time": max(now - 60, now - now % 86400),
                                                      "$insert_id": "today-u4", "plan": "trial"}}  # fmt: skip
        assert httpx.post(f"{server.url}/import", json=[today], auth=(SECRET, "")).status_code == 200
        out: dict[str, Any] = run_node(
            "data_export.js", env={"MP_BASE": server.url, "MP_FUNNEL_ID": str(seeded.funnel_id)}
        )
        out["funnel_id"] = seeded.funnel_id
        yield out
    finally:
        server.stop()


def test_no_call_failed(got: dict[str, Any]) -> None:
    # the annotation answers carry `"error": false`
    failed = {k: v for k, v in got.items() if isinstance(v, dict) and ("driver_error" in v or v.get("error"))}
    assert failed == {}


def test_event_breakdowns(got: dict[str, Any]) -> None:
    assert got["events"] == {"data": series(Signed_Up=[3, 0], Purchase=[0, 2]), "legend_size": 2}
    assert got["eventProperties"] == {"data": series(pro=[2, 0], free=[1, 0]), "legend_size": 2}
    assert got["topEvents"] == {
        "events": [{"amount": 1, "event": "Signed Up", "percent_change": 1.0}],
        "type": "general",
    }
    assert got["eventNames"] == ["Signed Up"]
    assert got["topEventProperties"]["plan"] == {"count": 1}
    assert got["eventPropertyValues"] == ["trial"]


def test_segmentation_family(got: dict[str, Any]) -> None:
    assert got["segmentation"] == {"data": series(pro=[2, 0], free=[1, 0]), "legend_size": 2}
    # amounts 9.5 and 20 in two buckets
    assert got["numericSegmentation"]["data"]["values"] == {
        "0 - 10": {FROM_DATE: 0, TO_DATE: 1},
        "10 - 20": {FROM_DATE: 0, TO_DATE: 1},
    }
    assert got["sumSegmentation"]["results"] == {FROM_DATE: 0, TO_DATE: 29.5}
    assert got["averageSegmentation"]["results"] == {FROM_DATE: 0, TO_DATE: 14.75}


def test_funnels_and_retention(got: dict[str, Any]) -> None:
    assert got["listFunnels"] == [{"funnel_id": got["funnel_id"], "name": "Signup funnel"}]
    assert got["funnels"]["meta"] == {"dates": DAYS}
    day = got["funnels"]["data"][FROM_DATE]
    assert [(s["event"], s["count"]) for s in day["steps"]] == [("Signed Up", 3), ("Purchase", 2)]
    assert day["analysis"] == {"completion": 2, "starting_amount": 3, "steps": 2, "worst": 1}
    # born Jan 1: three users; two return exactly one day later
    assert got["retention"] == {FROM_DATE: {"counts": [0, 2], "first": 3}, TO_DATE: {"counts": [0, 0], "first": 0}}
    # each user signed up in one hour of the day: all 3 in the ">= 1 hour" bucket
    assert got["addiction"]["data"][FROM_DATE][:2] == [3, 0] and set(got["addiction"]["data"][TO_DATE]) == {0}


def test_engage_and_export(got: dict[str, Any]) -> None:
    assert got["engage"]["total"] == 2
    assert [p["$distinct_id"] for p in got["engage"]["results"]] == ["u1", "u3"]
    assert [(e["event"], e["properties"]["distinct_id"], e["properties"]["time"]) for e in got["export"]] == [
        ("Signed Up", "u1", 1704103200),
        ("Signed Up", "u2", 1704106800),
        ("Signed Up", "u3", 1704110400),
    ]


def test_annotations_created_updated_listed_and_deleted(got: dict[str, Any]) -> None:
    created = got["createAnnotation"]["annotation"]
    assert (created["date"], created["description"], created["project_id"]) == (
        "2024-01-02 10:00:00",
        "Price change",
        PROJECT_ID,
    )
    moved = {**created, "date": "2024-01-01 08:00:00"}
    assert got["updateAnnotation"] == {"annotation": moved, "error": False}
    assert got["annotations"] == {"annotations": [moved], "error": False}
    assert got["deleteAnnotation"] == {"error": False}
    assert got["annotationsAfterDelete"] == {"annotations": [], "error": False}
