"""PyPI `tap-mixpanel` 1.8.0 (Singer), unmodified, its own console script in a venv of its own, against a real
mixhouse server (real-clients §6). The only redirect is `drivers/sitecustomize/sitecustomize.py` on
PYTHONPATH, which rewrites `https://(*.)mixpanel.com` URLs in `requests` (appendix B).

Runs discovery (check_access on /engage, events/properties/top, engage/properties), then a sync of the
export, engage, funnels, cohorts, cohort_members and annotations streams, then an export-only sync filtered
by `export_events`, and checks every Singer RECORD against the data set."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.support import (
    DRIVERS_DIR,
    EVENTS,
    PROFILES,
    RUN_TIMEOUT_S,
    load_data_set,
    start_server,
    venv_python,
)
from tests.server import PROJECT_ID, SECRET, ServerProcess

SYNCED = ("export", "engage", "funnels", "cohorts", "cohort_members", "annotations")
# (date, description): two inside the sync window, one before it.
ANNOTATIONS = [("2024-01-01 09:30:00", "Launch"), ("2024-01-02 18:00:00", "Campaign"), ("2023-06-01 00:00:00", "Old")]
CONFIG = {
    "api_secret": SECRET,
    "project_timezone": "UTC",
    "attribution_window": 5,
    "start_date": "2024-01-01T00:00:00Z",
    "end_date": "2024-01-02T00:00:00Z",
    "user_agent": "mixhouse-tests",
    "date_window_size": 30,
    "select_properties_by_default": "true",
}


def tap(server: ServerProcess, folder: Path, *args: str) -> str:
    """The unmodified console script; its stdout."""
    exe = venv_python("tap-mixpanel").parent / "tap-mixpanel"
    env = {**os.environ, "MP_BASE": server.url, "PYTHONPATH": str(DRIVERS_DIR / "sitecustomize")}
    done = subprocess.run(
        [str(exe), *args], env=env, cwd=folder, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def messages(stdout: str) -> list[dict[str, Any]]:
    """Singer messages: one JSON document a line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def select(catalog: dict[str, Any], streams: tuple[str, ...]) -> dict[str, Any]:
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in streams
    return catalog


def records(messages: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    venv_python("tap-mixpanel")
    folder = tmp_path_factory.mktemp("tap")
    server = start_server(folder / "data")
    try:
        seeded = load_data_set(server.url)
        # discovery reads the last 31 days to build the export schema: one recent event with the property
        recent = {"event": "Signed Up", "properties": {"distinct_id": "u4", "time": int(time.time()) - 3600,
                                                       "$insert_id": "recent-u4", "plan": "trial"}}  # fmt: skip
        assert httpx.post(f"{server.url}/import", json=[recent], auth=(SECRET, "")).status_code == 200
        for day, text in ANNOTATIONS:
            made = httpx.post(
                f"{server.url}/api/app/projects/{PROJECT_ID}/annotations",
                json={"date": day, "description": text},
                auth=(SECRET, ""),
            )
            assert made.status_code == 201, made.text
        (folder / "config.json").write_text(json.dumps(CONFIG))
        catalog = json.loads(tap(server, folder, "--config", "config.json", "--discover"))
        (folder / "catalog.json").write_text(json.dumps(select(catalog, SYNCED)))
        sync = messages(tap(server, folder, "--config", "config.json", "--catalog", "catalog.json"))
        (folder / "purchases.json").write_text(json.dumps({**CONFIG, "export_events": "Purchase"}))
        (folder / "export.json").write_text(json.dumps(select(catalog, ("export",))))
        purchases = messages(tap(server, folder, "--config", "purchases.json", "--catalog", "export.json"))
        yield {"catalog": catalog, "sync": sync, "purchases": purchases, "seeded": seeded}
    finally:
        server.stop()


def test_discovery_builds_schemas_from_the_server(run: dict[str, Any]) -> None:
    streams = {s["tap_stream_id"]: s for s in run["catalog"]["streams"]}
    assert set(streams) == {*SYNCED, "annotations"}
    # export: the fixed columns plus the event properties of the last 31 days
    assert {"event", "distinct_id", "time", "plan"} <= set(streams["export"]["schema"]["properties"])
    # engage: one column per profile property ($ becomes mp_reserved_)
    assert set(streams["engage"]["schema"]["properties"]) == {
        "distinct_id", "plan", "mp_reserved_email", "mp_reserved_last_seen",
    }  # fmt: skip


def test_export_stream(run: dict[str, Any]) -> None:
    got = records(run["sync"], "export")
    assert [(r["event"], r["distinct_id"], r["time"], r["mp_reserved_insert_id"], r.get("plan")) for r in got] == [
        ("Signed Up", "u1", "2024-01-01T10:00:00.000000Z", "su-u1", "pro"),
        ("Signed Up", "u2", "2024-01-01T11:00:00.000000Z", "su-u2", "free"),
        ("Signed Up", "u3", "2024-01-01T12:00:00.000000Z", "su-u3", "pro"),
        ("Purchase", "u1", "2024-01-02T10:00:00.000000Z", "pu-u1", None),
        ("Purchase", "u2", "2024-01-02T11:00:00.000000Z", "pu-u2", None),
    ]
    assert len(got) == len(EVENTS)
    state = [m["value"] for m in run["sync"] if m["type"] == "STATE"][-1]
    assert state["bookmarks"]["export"] == "2024-01-02T11:00:00.000000Z"
    # export_events="Purchase" -> &event=["Purchase"]
    assert [(r["event"], r["distinct_id"]) for r in records(run["purchases"], "export")] == [
        ("Purchase", "u1"),
        ("Purchase", "u2"),
    ]


def test_engage_and_cohort_streams(run: dict[str, Any]) -> None:
    engage = {r.pop("distinct_id"): r for r in records(run["sync"], "engage")}
    # $-names become mp_reserved_*, date-times become RFC 3339 in UTC
    assert engage == {
        "u1": {
            "mp_reserved_email": "u1@example.com",
            "plan": "pro",
            "mp_reserved_last_seen": "2024-01-02T10:00:00.000000Z",
        },
        "u2": {
            "mp_reserved_email": "u2@example.com",
            "plan": "free",
            "mp_reserved_last_seen": "2024-01-02T11:00:00.000000Z",
        },
        "u3": {"plan": "pro", "mp_reserved_last_seen": "2024-01-01T12:00:00.000000Z"},
    }
    assert set(engage) == set(PROFILES)
    cohort_id = run["seeded"].cohort_id
    [cohort] = records(run["sync"], "cohorts")
    assert (cohort["id"], cohort["name"], cohort["count"], cohort["description"]) == (
        cohort_id,
        "Pro users",
        2,
        "plan is pro",
    )
    # filter_by_cohort={"id": N}, hand-built into the query string
    assert records(run["sync"], "cohort_members") == [
        {"distinct_id": "u1", "cohort_id": cohort_id},
        {"distinct_id": "u3", "cohort_id": cohort_id},
    ]


def test_funnels_stream(run: dict[str, Any]) -> None:
    got = records(run["sync"], "funnels")
    assert [(r["funnel_id"], r["name"], r["date"]) for r in got] == [
        (run["seeded"].funnel_id, "Signup funnel", "2024-01-01"),
        (run["seeded"].funnel_id, "Signup funnel", "2024-01-02"),
    ]
    # Jan 1: u1, u2, u3 sign up; u1 and u2 buy exactly 24 h later
    assert [(s["event"], s["count"]) for s in got[0]["steps"]] == [("Signed Up", 3), ("Purchase", 2)]
    assert got[0]["steps"][1]["avg_time"] == "86400"
    assert [s["count"] for s in got[1]["steps"]] == [0, 0]


def test_annotations_stream(run: dict[str, Any]) -> None:
    """`/api/2.0/annotations?from_date=&to_date=` over the sync window: the annotations dated inside it."""
    got = records(run["sync"], "annotations")
    assert [(r["date"], r["description"], r["project_id"]) for r in got] == [
        ("2024-01-01T09:30:00.000000Z", "Launch", PROJECT_ID),
        ("2024-01-02T18:00:00.000000Z", "Campaign", PROJECT_ID),
    ]
    assert all(isinstance(r["id"], int) for r in got)
