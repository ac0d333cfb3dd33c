"""PyPI `airbyte-source-mixpanel` 4.0.2 (airbyte-cdk 6.61.6), unmodified, in a venv of its own, run like its
`source-mixpanel` console script through `drivers/airbyte_mixpanel_local.py` (real-clients §5: URL bases
rewritten and the 1-request-per-minute budgets removed at run time) against a real mixhouse server.

`check` (cohorts/list with the colon-less Basic secret), `discover` (engage/properties, events/properties/top
with no event), a full read of cohorts, engage, cohort_members, funnels and export with the project secret,
then an incremental export read with a service account and a state (`where properties["$time"] >=
datetime(<epoch s>)`), and the annotations stream both ways: `/api/query/annotations` with the project
secret, `/api/app/projects/{id}/annotations` with a service account. The venv is the heaviest of the
clients: about 1.5 min to build on first run."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.support import DRIVERS_DIR, RUN_TIMEOUT_S, load_data_set, start_server, venv_python
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess

STREAMS = ("cohorts", "engage", "cohort_members", "funnels", "export", "annotations")
ANNOTATIONS = [("2023-12-31 23:00:00", "Launch"), ("2024-01-02 08:15:00", "Campaign")]
BASE_CONFIG = {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-02T00:00:00Z", "project_timezone": "UTC",
               "attribution_window": 0, "date_window_size": 30, "page_size": 1000, "reqs_per_hour_limit": 0}  # fmt: skip
SECRET_CONFIG = {**BASE_CONFIG, "credentials": {"option_title": "Project Secret", "api_secret": SECRET}}
SA_CONFIG = {**BASE_CONFIG, "credentials": {"option_title": "Service Account", "username": SA_USER,
                                            "secret": SA_SECRET, "project_id": PROJECT_ID}}  # fmt: skip


def source(server: ServerProcess, folder: Path, *args: str) -> list[dict[str, Any]]:
    """The connector's Airbyte protocol messages, LOG and TRACE lines left out."""
    python = venv_python("airbyte-source-mixpanel")
    done = subprocess.run(
        [str(python), str(DRIVERS_DIR / "airbyte_mixpanel_local.py"), *args],
        env={**os.environ, "MP_BASE": server.url}, cwd=folder, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    out = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [m for m in out if m["type"] == "TRACE" and m["trace"].get("type") == "ERROR"]
    assert errors == [], errors
    return [m for m in out if m["type"] not in ("LOG", "TRACE")]


def catalog(streams: tuple[str, ...], mode: str = "full_refresh") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "sync_mode": mode,
        "destination_sync_mode": "append" if mode == "incremental" else "overwrite",
    }
    if mode == "incremental":
        entry["cursor_field"] = ["time"]
    return {"streams": [{"stream": {"name": s, "json_schema": {}, "supported_sync_modes": [mode]}, **entry}
                        for s in streams]}  # fmt: skip


def records(messages: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["record"]["data"] for m in messages if m["type"] == "RECORD" and m["record"]["stream"] == stream]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    venv_python("airbyte-source-mixpanel")
    folder = tmp_path_factory.mktemp("airbyte")
    server = start_server(folder / "data")
    try:
        seeded = load_data_set(server.url)
        for day, text in ANNOTATIONS:
            made = httpx.post(
                f"{server.url}/api/app/projects/{PROJECT_ID}/annotations",
                json={"date": day, "description": text},
                auth=(SA_USER, SA_SECRET),
            )
            assert made.status_code == 201, made.text
        files = {
            "secret.json": SECRET_CONFIG,
            "sa.json": SA_CONFIG,
            "full.json": catalog(STREAMS),
            "incremental.json": catalog(("export",), "incremental"),
            "annotations.json": catalog(("annotations",)),
            "state.json": [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "export"},
                                                         "stream_state": {"time": "2024-01-01T12:00:00Z"}}}],
        }  # fmt: skip
        for name, body in files.items():
            (folder / name).write_text(json.dumps(body))
        yield {
            "seeded": seeded,
            "check": source(server, folder, "check", "--config", "secret.json"),
            "discover": source(server, folder, "discover", "--config", "secret.json"),
            "read": source(server, folder, "read", "--config", "secret.json", "--catalog", "full.json"),
            "incremental": source(server, folder, "read", "--config", "sa.json", "--catalog", "incremental.json",
                                  "--state", "state.json"),
            "sa_annotations": source(server, folder, "read", "--config", "sa.json", "--catalog", "annotations.json"),
        }  # fmt: skip
    finally:
        server.stop()


def test_check_and_discover(run: dict[str, Any]) -> None:
    assert [m["connectionStatus"] for m in run["check"]] == [{"status": "SUCCEEDED"}]
    [message] = run["discover"]
    streams = {s["name"]: s["json_schema"]["properties"] for s in message["catalog"]["streams"]}
    assert set(streams) == {*STREAMS, "annotations"}
    # engage's schema adds the server's profile properties ($ names lose the $) to its fixed ones
    assert {"distinct_id", "email", "plan", "last_seen"} <= set(streams["engage"])


def test_cohorts_engage_and_members(run: dict[str, Any]) -> None:
    cohort_id = run["seeded"].cohort_id
    [cohort] = records(run["read"], "cohorts")
    assert (cohort["id"], cohort["name"], cohort["count"], cohort["is_visible"]) == (cohort_id, "Pro users", 2, 1)
    engage = {r["distinct_id"]: (r.get("email"), r["plan"], r["last_seen"]) for r in records(run["read"], "engage")}
    assert engage == {
        "u1": ("u1@example.com", "pro", "2024-01-02T10:00:00"),
        "u2": ("u2@example.com", "free", "2024-01-02T11:00:00"),
        "u3": (None, "pro", "2024-01-01T12:00:00"),
    }
    # one POST /api/query/engage {"filter_by_cohort": "{\"id\":N}"} per cohort
    members = records(run["read"], "cohort_members")
    assert [(m["cohort_id"], m["distinct_id"], m["plan"]) for m in members] == [
        (cohort_id, "u1", "pro"),
        (cohort_id, "u3", "pro"),
    ]


def test_funnels(run: dict[str, Any]) -> None:
    got = records(run["read"], "funnels")
    assert [(r["funnel_id"], r["name"], r["date"]) for r in got] == [
        (run["seeded"].funnel_id, "Signup funnel", "2024-01-01"),
        (run["seeded"].funnel_id, "Signup funnel", "2024-01-02"),
    ]
    first = got[0]["steps"]
    assert [(s["event"], s["count"], s["avg_time"]) for s in first] == [("Signed Up", 3, None), ("Purchase", 2, 86400)]
    assert first[1]["overall_conv_ratio"] == pytest.approx(2 / 3, abs=1e-4)


def test_export_full_and_incremental(run: dict[str, Any]) -> None:
    full = records(run["read"], "export")
    assert [(r["event"], r["distinct_id"], r["time"], r["insert_id"]) for r in full] == [
        ("Signed Up", "u1", "2024-01-01T10:00:00Z", "su-u1"),
        ("Signed Up", "u2", "2024-01-01T11:00:00Z", "su-u2"),
        ("Signed Up", "u3", "2024-01-01T12:00:00Z", "su-u3"),
        ("Purchase", "u1", "2024-01-02T10:00:00Z", "pu-u1"),
        ("Purchase", "u2", "2024-01-02T11:00:00Z", "pu-u2"),
    ]
    assert full[0]["plan"] == "pro" and full[3]["amount"] == "9.5"  # the connector stringifies non-schema values
    # state time 12:00 -> where=properties["$time"]>=datetime(1704110400): 12:00 itself is included
    inc = records(run["incremental"], "export")
    assert [(r["event"], r["distinct_id"]) for r in inc] == [
        ("Signed Up", "u3"),
        ("Purchase", "u1"),
        ("Purchase", "u2"),
    ]
    states = [m["state"]["stream"]["stream_state"] for m in run["incremental"] if m["type"] == "STATE"]
    assert states[-1] == {"time": "2024-01-02T11:00:00Z"}


def test_annotations_with_the_secret_and_with_a_service_account(run: dict[str, Any]) -> None:
    """The secret reads `{"annotations": [...]}` from /api/query/annotations; a service account reads
    `{"results": [...]}` from the App API. No date parameters: every annotation of the project."""
    by_secret = records(run["read"], "annotations")
    assert [(r["date"], r["description"], r["project_id"]) for r in by_secret] == [
        ("2023-12-31 23:00:00", "Launch", PROJECT_ID),
        ("2024-01-02 08:15:00", "Campaign", PROJECT_ID),
    ]
    by_account = records(run["sa_annotations"], "annotations")
    assert [(r["id"], r["date"], r["description"]) for r in by_account] == [
        (r["id"], r["date"], r["description"]) for r in by_secret
    ]
    assert by_account[0]["user"]["first_name"] == SA_USER and by_account[0]["tags"] == []
