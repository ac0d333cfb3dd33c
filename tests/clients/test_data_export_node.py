"""npm `mixpanel-data-export-node` 2.1.0, unmodified, in Node. Constructed with `api_key` it signs every
request the legacy v2 way (api_key + expire + sig, no Authorization header), raw export included; without
it, it sends Basic secret. The one redirect: a wrapper around `MixpanelExport.prototype._buildRequestURL`.
Its annotation calls (`createAnnotation`, `updateAnnotation`, `annotations`) hit /api/2.0/annotations[/...]."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.support import EVENTS, load_data_set, run_node, start_server
from tests.server import API_KEY, PROJECT_ID, SECRET


def brief(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return sorted((e["event"], e["properties"]["distinct_id"], e["properties"]["time"]) for e in events)


SEEDED = brief(EVENTS)


@pytest.fixture(scope="module")
def got(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = start_server(tmp_path_factory.mktemp("data-export-node") / "data")
    try:
        seeded = load_data_set(server.url)
        env = {"MP_BASE": server.url, "MP_API_KEY": API_KEY, "MP_SECRET": SECRET, "MP_FUNNEL_ID": str(seeded.funnel_id)}
        out: dict[str, Any] = run_node("data_export_node.js", env=env)
        out["funnel_id"] = seeded.funnel_id
        yield out
    finally:
        server.stop()


def test_no_call_failed(got: dict[str, Any]) -> None:
    assert [name for name, value in got.items() if isinstance(value, dict) and "driver_error" in value] == []


def test_signed_export(got: dict[str, Any]) -> None:
    assert brief(got["export"]) == [e for e in SEEDED if e[0] == "Signed Up"]


def test_signed_export_stream_is_gzip_when_asked(got: dict[str, Any]) -> None:
    stream = got["exportStream"]
    assert (stream["status"], stream["encoding"]) == (200, "gzip")  # a small body, gzip all the same
    assert brief([json.loads(line) for line in stream["text"].splitlines()]) == [
        e for e in SEEDED if e[0] == "Purchase"
    ]


def test_signed_query_api(got: dict[str, Any]) -> None:
    assert got["segmentation"]["data"]["values"] == {
        "pro": {"2024-01-01": 2, "2024-01-02": 0},
        "free": {"2024-01-01": 1, "2024-01-02": 0},
    }
    assert got["listFunnels"] == [{"funnel_id": got["funnel_id"], "name": "Signup funnel"}]
    # a one-week window, as length_unit=week
    steps = got["funnels"]["data"]["2024-01-01"]["steps"]
    assert [s["count"] for s in steps] == [3, 2]
    assert got["retention"]["2024-01-01"] == {"counts": [0, 2], "first": 3}
    assert sorted(p["$distinct_id"] for p in got["engage"]["results"]) == ["u1", "u3"]


def test_basic_secret_and_a_wrong_secret(got: dict[str, Any]) -> None:
    assert brief(got["basicExport"]) == [e for e in SEEDED if e[0] == "Purchase"]
    assert got["wrongSecret"]["error"] == "Invalid request signature"
    assert got["wrongSecret"]["request"].startswith("/api/2.0/funnels/list?api_key=")


def test_annotations_signed_and_with_the_secret(got: dict[str, Any]) -> None:
    created = got["createAnnotation"]["annotation"]
    assert got["createAnnotation"] == {
        "annotation": {"id": created["id"], "project_id": PROJECT_ID, "date": "2024-01-01 09:00:00",
                       "description": "Launch"},
        "error": False,
    }  # fmt: skip
    assert got["updateAnnotation"]["annotation"]["description"] == "Launch day"
    # the 2024-01-01..02 window holds the updated one only; the one of 2023-12-30 is outside it
    assert got["annotations"] == {
        "annotations": [{"id": created["id"], "project_id": PROJECT_ID, "date": "2024-01-01 09:00:00",
                         "description": "Launch day"}],
        "error": False,
    }  # fmt: skip
    assert [a["description"] for a in got["basicAnnotations"]["annotations"]] == ["Before the window"]
