"""npm `mixpanel-import` 3.1.43, unmodified, against a real mixhouse server (real-clients §10): programmatic
event imports (gzip bodies with the project secret, plain with a service account, a strict failure), user
and group imports (JSON arrays on /engage and /groups), an event export and a profile export to files, and
the unmodified CLI on an NDJSON file. The redirect is a patch of the `Job.prototype.url` getter (in the
driver, and in `--require` preload for the CLI) plus `transport: "got"`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.support import (
    EVENTS,
    NODE_DIR,
    PROFILES,
    RUN_TIMEOUT_S,
    SA_AUTH,
    export_all,
    load_data_set,
    profiles,
    run_node,
    start_server,
)
from tests.server import PROJECT_ID, SECRET

JAN_1 = 1704067200
IMPORTED = [("Imported", "m1", JAN_1 + 60), ("Imported", "m2", JAN_1 + 120), ("SA Imported", "m3", JAN_1 + 180)]
CLI_EVENTS: list[dict[str, Any]] = [
    {"event": "CLI Imported", "properties": {"distinct_id": "c1", "time": JAN_1 + 240, "$insert_id": "cli-1"}},
    {"event": "CLI Imported", "properties": {"distinct_id": "c2", "time": JAN_1 + 300, "$insert_id": "cli-2"}},
]


def brief(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return sorted((e["event"], e["properties"]["distinct_id"], e["properties"]["time"]) for e in events)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("mixpanel-import")
    server = start_server(folder / "data")
    try:
        load_data_set(server.url)
        got = run_node("mixpanel_import.js", env={"MP_BASE": server.url, "MP_OUT": str(folder / "out")})
        source = folder / "cli.ndjson"
        source.write_text("".join(json.dumps(e) + "\n" for e in CLI_EVENTS))
        cli = subprocess.run(
            ["node", "--require", "./import_preload.js", "node_modules/mixpanel-import/index.js", str(source),
             "--secret", SECRET, "--format", "jsonl", "--logs", "false"],
            cwd=NODE_DIR, env={**os.environ, "MP_BASE": server.url, "HOME": str(folder)},
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stdout + cli.stderr
        groups = httpx.get(
            f"{server.url}/api/2.0/engage",
            params={"project_id": str(PROJECT_ID), "data_group_id": "company"},
            auth=SA_AUTH,
        ).json()
        yield {"got": got, "cli": cli.stdout, "events": export_all(server.url), "profiles": profiles(server.url),
               "groups": groups}  # fmt: skip
    finally:
        server.stop()


def test_importer_counts_what_the_server_accepted(run: dict[str, Any]) -> None:
    got = run["got"]
    expected = {
        "events_secret": ("event", 2, 2, 0),
        "events_service_account": ("event", 1, 1, 0),
        "events_bad": ("event", 1, 0, 1),  # strict: no time -> failed_records
        "users": ("user", 2, 2, 0),
        "groups": ("group", 1, 1, 0),
    }
    for name, (record_type, total, success, failed) in expected.items():
        s = got[name]
        assert (s["recordType"], s["total"], s["success"], s["failed"]) == (record_type, total, success, failed), name


def test_imports_are_stored(run: dict[str, Any]) -> None:
    cli = [(e["event"], e["properties"]["distinct_id"], e["properties"]["time"]) for e in CLI_EVENTS]
    assert brief(run["events"]) == sorted([*brief(EVENTS), *IMPORTED, *cli])
    m1 = next(e for e in run["events"] if e["properties"].get("$insert_id") == "mi-1")
    assert m1["properties"]["plan"] == "pro"
    assert not any(e["event"] == "No Time" for e in run["events"])
    assert run["profiles"]["m1"]["plan"] == "pro" and run["profiles"]["m1"]["$email"] == "m1@example.com"
    assert run["profiles"]["m2"]["plan"] == "free"
    [group] = run["groups"]["results"]
    assert (group["$distinct_id"], group["$properties"]) == ("acme", {"size": 10})


def test_exports_read_the_server(run: dict[str, Any]) -> None:
    got = run["got"]
    # the event export ran after the imports above and before the CLI
    assert brief(got["exported"]) == sorted([*brief(EVENTS), *IMPORTED])
    assert got["export"]["total"] == len(EVENTS) + len(IMPORTED)
    exported = {p["$distinct_id"]: p["$properties"] for p in got["profiles_exported"]}
    assert set(exported) == {*PROFILES, "m1", "m2"}
    assert {d: exported[d] for d in PROFILES} == PROFILES
    assert got["profile_export"]["total"] == len(PROFILES) + 2


def test_cli_reports_its_import(run: dict[str, Any]) -> None:
    # the CLI's own summary table
    assert "IMPORT COMPLETE" in run["cli"]
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in run["cli"].splitlines()
        if line.count("│") == 3
    }
    assert (rows["total"], rows["success"], rows["failed"]) == ("'2'", "'2'", "'0'")
