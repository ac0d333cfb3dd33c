"""Warehouse imports (docs/warehouse-imports.md): a real PostgreSQL cluster (tests/postgres.py) and Parquet
files read by a real server over loopback HTTP; what they import checked through the Query API
(/api/2.0/segmentation, /api/2.0/engage, /api/2.0/export). Event times are fixed dates in January 2024."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import export
from tests.postgres import DATABASE, PASSWORD, USER, PostgresCluster, postgres_cluster  # noqa: F401  (the fixture)
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
BASE = f"/api/app/projects/{PROJECT_ID}/warehouse-sources"


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, files_dir: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("imports") / "data"
    seed_catalog(data_dir)
    env = {"MIXHOUSE_WAREHOUSE_FILES_DIR": str(files_dir), "MIXHOUSE_WAREHOUSE_MANUAL_SYNCS_PER_HOUR": "0"}
    proc = ServerProcess(data_dir, env=env).start()
    yield proc
    proc.stop()


def call(server: ServerProcess, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}{BASE}{path}", json=body, auth=AUTH, timeout=60, **kwargs)


def pg_source(server: ServerProcess, postgres: PostgresCluster) -> int:
    body = {"type": "postgres", "host": "127.0.0.1", "port": postgres.port, "database": DATABASE, "user": USER}
    response = call(server, "POST", "", {**body, "password": PASSWORD, "name": "app db"})
    assert response.status_code == 200, response.text
    assert PASSWORD not in response.text
    shown = response.json()["results"]
    assert shown["password_set"] is True and shown["host"] == "127.0.0.1" and "password" not in shown
    return int(shown["id"])


def wait_run(server: ServerProcess, import_id: int, runs: int, timeout: float = 120) -> dict[str, Any]:
    """The newest run once `runs` runs exist and none is RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = call(server, "GET", f"/imports/{import_id}/history")
        assert response.status_code == 200, response.text
        found = response.json()["results"]["runs"]
        if len(found) >= runs and all(r["status"] != "RUNNING" for r in found):
            assert found[0]["status"] == "SUCCEEDED", found
            return dict(found[0])
        time.sleep(0.1)
    raise AssertionError(f"import {import_id} did not finish run {runs}")


def segmentation_total(
    server: ServerProcess, event: str, from_date: str = "2024-01-01", to_date: str = "2024-01-31"
) -> int:
    params = {
        "project_id": str(PROJECT_ID),
        "event": event,
        "from_date": from_date,
        "to_date": to_date,
        "unit": "month",
    }
    response = httpx.get(f"{server.url}/api/2.0/segmentation", params=params, auth=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return sum(sum(series.values()) for series in response.json()["data"]["values"].values())


def test_time_based_then_manual_sync_then_rerun_imports_nothing_twice(
    server: ServerProcess, postgres: PostgresCluster
) -> None:
    postgres.execute(
        """CREATE TABLE purchases (id bigint PRIMARY KEY, name text, user_id text, at timestamptz,
                                  inserted_at timestamptz, amount double precision, plan text)""",
        """INSERT INTO purchases SELECT g, 'Purchase', 'u' || (g % 1000), timestamptz '2024-01-01 00:00:00+00'
                  + (g % 864000) * interval '1 second', timestamptz '2024-02-01 00:00:00+00', g * 0.5,
                  CASE WHEN g % 2 = 0 THEN 'pro' ELSE NULL END
           FROM generate_series(1, 100000) g""",
    )
    source_id = pg_source(server, postgres)
    body = {
        "import_type": "event_stream",
        "warehouse_source_id": source_id,
        "table_params": {"schema_name": "public", "table_name": "purchases"},
        "event_column_name": "name",
        "time_column_name": "at",
        "user_column_name": "user_id",
        "insert_time_column_name": "inserted_at",
        "property_mappings": {"amount": "Amount"},
        "sync_mode": "time_based",
        "run_every": 0,
    }
    response = call(server, "POST", "/imports/event-stream", body)
    assert response.status_code == 200, response.text
    created = response.json()["results"]
    import_id = created["id"]
    assert created["import_type"] == "event_stream" and created["sync_mode"] == "time_based"
    assert created["run_every"] == 0 and created["paused"] is False
    assert created["insert_time_column_name"] == "inserted_at"
    first = wait_run(server, import_id, 1)
    assert first["num_events_imported"] == 100_000
    assert segmentation_total(server, "Purchase") == 100_000

    postgres.execute(
        """INSERT INTO purchases SELECT g, 'Purchase', 'u' || (g % 1000), timestamptz '2024-01-20 00:00:00+00'
                  + (g % 1000) * interval '1 minute', timestamptz '2024-02-02 00:00:00+00', 1, 'free'
           FROM generate_series(100001, 101000) g"""
    )
    response = call(server, "PUT", f"/imports/{import_id}/manual-sync", {})
    assert response.status_code == 200, response.text
    run_id = response.json()["results"]["run_id"]
    assert response.json()["status"] == "ok" and isinstance(run_id, str)
    assert wait_run(server, import_id, 2)["num_events_imported"] == 1000
    assert segmentation_total(server, "Purchase") == 101_000
    assert segmentation_total(server, "Purchase", "2024-01-20", "2024-01-20") >= 1000

    # Nothing new: the run imports nothing, and a row at the cursor's own insert time is not sent again.
    assert call(server, "PUT", f"/imports/{import_id}/manual-sync", {}).status_code == 200
    assert wait_run(server, import_id, 3)["num_events_imported"] == 0
    assert segmentation_total(server, "Purchase") == 101_000

    runs = call(server, "GET", f"/imports/{import_id}/history").json()["results"]["runs"]
    assert [r["num_events_imported"] for r in runs] == [0, 1000, 100_000]  # newest first
    assert all(isinstance(r["start_time"], int) and r["end_time"] >= r["start_time"] for r in runs)

    events = export(server.url, from_date="2024-01-20", to_date="2024-01-20", event='["Purchase"]')
    late = [e for e in events if e["properties"].get("plan") == "free"]
    assert len(late) == 1000
    props = late[0]["properties"]
    assert props["$warehouse_type"] == "postgres"
    assert props["$warehouse_import_id"] == import_id
    assert props["$warehouse_table"] == "public.purchases"
    assert props["$warehouse_import_run_id"] == run_id
    assert isinstance(props["$warehouse_import_job_id"], str) and props["$warehouse_import_job_id"]
    assert len(props["$insert_id"]) == 32 and props["Amount"] == 1
    assert "inserted_at" not in props and "user_id" not in props and props["distinct_id"].startswith("u")
    # a NULL column sets no property
    early = export(server.url, from_date="2024-01-01", to_date="2024-01-01", event='["Purchase"]')
    assert any("plan" not in e["properties"] for e in early) and any(
        e["properties"].get("plan") == "pro" for e in early
    )


def test_mirror_mode_reflects_deleted_and_changed_rows(server: ServerProcess, postgres: PostgresCluster) -> None:
    postgres.execute(
        "CREATE TABLE tickets (id int PRIMARY KEY, opened_by text, opened_at timestamp, priority text)",
        """INSERT INTO tickets SELECT g, 'user-' || g, timestamp '2024-01-05 10:00:00' + g * interval '1 hour',
                  'low' FROM generate_series(1, 10) g""",
    )
    source_id = pg_source(server, postgres)
    body = {
        "import_type": "event_stream",
        "warehouse_source_id": source_id,
        "table_params": {"table_name": "tickets"},
        "event_name": "Ticket Opened",
        "time_column_name": "opened_at",
        "user_column_name": "opened_by",
        "sync_mode": "mirror_mode",
    }
    response = call(server, "POST", "/imports/event-stream", body)
    assert response.status_code == 200, response.text
    import_id = response.json()["results"]["id"]
    assert wait_run(server, import_id, 1)["num_events_imported"] == 10
    assert segmentation_total(server, "Ticket Opened") == 10

    postgres.execute("DELETE FROM tickets WHERE id = 3", "UPDATE tickets SET priority = 'high' WHERE id = 7")
    assert call(server, "PUT", f"/imports/{import_id}/manual-sync", {}).status_code == 200
    assert wait_run(server, import_id, 2)["num_events_imported"] == 1  # the changed row, sent again
    assert segmentation_total(server, "Ticket Opened") == 9
    events = export(server.url, from_date="2024-01-05", to_date="2024-01-06", event='["Ticket Opened"]')
    by_user = {e["properties"]["distinct_id"]: e["properties"] for e in events}
    assert "user-3" not in by_user and len(events) == 9  # deleted, and the old copy of row 7 gone
    assert by_user["user-7"]["priority"] == "high" and by_user["user-6"]["priority"] == "low"

    assert call(server, "PUT", f"/imports/{import_id}/manual-sync", {}).status_code == 200
    assert wait_run(server, import_id, 3)["num_events_imported"] == 0
    assert segmentation_total(server, "Ticket Opened") == 9

    # delete with delete_data: its events go too
    response = call(server, "DELETE", f"/imports/{import_id}", {"delete_data": True})
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert segmentation_total(server, "Ticket Opened") == 0
    assert call(server, "GET", f"/imports/{import_id}").status_code == 404


def engage(server: ServerProcess, **params: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{server.url}/api/2.0/engage", params={"project_id": str(PROJECT_ID)}, data=params, auth=AUTH, timeout=60
    )
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_people_import_is_visible_in_engage(server: ServerProcess, postgres: PostgresCluster) -> None:
    postgres.execute(
        "CREATE TABLE crm_users (uid text, email text, tier text, signed_up timestamptz, seats int, extra jsonb)",
        """INSERT INTO crm_users VALUES
             ('crm-1', 'ada@example.com', 'pro', '2024-01-02 03:04:05+00', 5, '{"region": "emea", "score": 9}'),
             ('crm-2', 'bob@example.com', NULL, '2024-01-03 00:00:00+00', 1, NULL)""",
    )
    body = {
        "import_type": "people",
        "warehouse_source_id": pg_source(server, postgres),
        "table_params": {"table_name": "crm_users"},
        "user_column_name": "uid",
        "json_properties_column_name": "extra",
        "property_mappings": {"email": "$email"},
        "sync_mode": "full_sync",
        "run_every": 86_400_000_000_000,
    }
    response = call(server, "POST", "/imports/people", body)
    assert response.status_code == 200, response.text
    import_id = response.json()["results"]["id"]
    assert response.json()["results"]["run_every"] == 86_400_000_000_000
    assert wait_run(server, import_id, 1)["num_events_imported"] == 2
    (ada,) = engage(server, distinct_id="crm-1")
    props = ada["$properties"]
    assert props["$email"] == "ada@example.com" and props["tier"] == "pro" and props["seats"] == 5
    assert props["signed_up"] == "2024-01-02T03:04:05" and props["region"] == "emea" and props["score"] == 9
    (bob,) = engage(server, distinct_id="crm-2")
    assert "tier" not in bob["$properties"] and "extra" not in bob["$properties"]

    postgres.execute("UPDATE crm_users SET tier = 'enterprise' WHERE uid = 'crm-1'")
    assert call(server, "PUT", f"/imports/{import_id}/manual-sync", {}).status_code == 200
    assert wait_run(server, import_id, 2)["num_events_imported"] == 2  # full_sync sends the whole table
    assert engage(server, distinct_id="crm-1")[0]["$properties"]["tier"] == "enterprise"

    # pause, then resume weekly; list shows it
    response = call(server, "PATCH", f"/imports/{import_id}", {"paused": True, "run_every": 604_800_000_000_000})
    assert response.status_code == 200, response.text
    assert response.json()["results"]["paused"] is True
    listed = {i["id"]: i for i in call(server, "GET", "/imports").json()["results"]}
    assert listed[import_id]["paused"] is True and listed[import_id]["run_every"] == 604_800_000_000_000


def test_groups_and_lookup_table_imports(server: ServerProcess, postgres: PostgresCluster) -> None:
    postgres.execute(
        "CREATE TABLE accounts (account_id text, name text, arr numeric(12, 2))",
        "INSERT INTO accounts VALUES ('acme', 'Acme', 45000.50), ('globex', 'Globex', 2000)",
    )
    source_id = pg_source(server, postgres)
    groups = {
        "import_type": "groups",
        "warehouse_source_id": source_id,
        "table_params": {"table_name": "accounts"},
        "group_key": "company_id",
        "group_id_column": "account_id",
        "sync_mode": "full_sync",
    }
    response = call(server, "POST", "/imports/groups", groups)
    assert response.status_code == 200, response.text
    assert wait_run(server, response.json()["results"]["id"], 1)["num_events_imported"] == 2
    found = engage(server, data_group_id="company_id")
    by_id = {r["$distinct_id"]: r["$properties"] for r in found}
    assert by_id["acme"]["name"] == "Acme" and by_id["acme"]["arr"] == 45000.5

    lookup = {
        "import_type": "lookup_table",
        "warehouse_source_id": source_id,
        "table_params": {"table_name": "accounts"},
        "mixpanel_property": {"value": "account", "resourceType": "event"},
        "property_key_column_name": "account_id",
        "sync_mode": "full_sync",
    }
    response = call(server, "POST", "/imports/lookup-table", lookup)
    assert response.status_code == 200, response.text
    import_id = response.json()["results"]["id"]
    assert wait_run(server, import_id, 1)["num_events_imported"] == 2
    table_id = call(server, "GET", f"/imports/{import_id}").json()["results"]["lookup_table_id"]
    response = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/lookup-tables/{table_id}", auth=AUTH)
    assert response.status_code == 200, response.text
    assert "Globex" in response.text and "45000.5" in response.text


def test_parquet_files_one_time(server: ServerProcess, files_dir: Path) -> None:
    (files_dir / "lake").mkdir()
    table = pa.table(
        {
            "user": ["p1", "p2", "p3"],
            "ts": pa.array([1704153600, 1704157200, 1704160800], pa.int64()),  # 2024-01-02, epoch seconds
            "kind": ["Lake Event", "Lake Event", "Lake Other"],
            "size": [1.5, 2.5, None],
        }
    )
    pq.write_table(table, files_dir / "lake" / "part-1.parquet")
    response = call(server, "POST", "", {"type": "parquet", "path": "lake"})
    assert response.status_code == 200, response.text
    source_id = response.json()["results"]["id"]
    body = {
        "import_type": "event_stream",
        "warehouse_source_id": source_id,
        "table_params": {"table_name": "*.parquet"},
        "event_column_name": "kind",
        "time_column_name": "ts",
        "user_column_name": "user",
        "sync_mode": "one_time",
    }
    response = call(server, "POST", "/imports/event-stream", body)
    assert response.status_code == 200, response.text
    import_id = response.json()["results"]["id"]
    assert wait_run(server, import_id, 1)["num_events_imported"] == 3
    assert segmentation_total(server, "Lake Event") == 2
    events = export(server.url, from_date="2024-01-02", to_date="2024-01-02", event='["Lake Event"]')
    assert {e["properties"]["$warehouse_type"] for e in events} == {"parquet"}
    response = call(server, "PUT", f"/imports/{import_id}/manual-sync", {})
    assert response.status_code == 400
    assert response.json() == {"status": "error", "error": "a one_time import runs once, and this one has run"}


def test_a_source_that_fails_fails_the_run_not_the_server(server: ServerProcess, postgres: PostgresCluster) -> None:
    body = {
        "import_type": "event_stream",
        "warehouse_source_id": pg_source(server, postgres),
        "table_params": {"table_name": "no_such_table"},
        "event_name": "X",
        "time_column_name": "t",
        "sync_mode": "mirror_mode",
    }
    response = call(server, "POST", "/imports/event-stream", body)
    assert response.status_code == 200, response.text
    import_id = response.json()["results"]["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = call(server, "GET", f"/imports/{import_id}/history").json()["results"]["runs"]
        if runs and runs[0]["status"] != "RUNNING":
            break
        time.sleep(0.1)
    assert runs[0]["status"] == "FAILED" and runs[0]["num_events_imported"] is None
    # a wrong password: the run fails, the password never appears
    response = call(
        server,
        "POST",
        "",
        {
            "type": "postgres",
            "host": "127.0.0.1",
            "port": postgres.port,
            "database": DATABASE,
            "user": USER,
            "password": "nope-42",
        },
    )
    assert response.status_code == 200 and "nope-42" not in response.text
    assert "nope-42" not in call(server, "GET", "").text and PASSWORD not in call(server, "GET", "").text


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (
            "/imports/event-stream",
            {"import_type": "event_stream"},
            400,
            "warehouse_source_id is required and must be an integer",
        ),
        ("/imports/event-stream", [1], 400, "request body must be a JSON object"),
        (
            "/imports/event-stream",
            {"import_type": "event_stream", "warehouse_source_id": 999},
            400,
            "warehouse_source_id 999 is not a warehouse source of this project",
        ),
        ("/imports/nope", {}, 405, None),
    ],
)
def test_bad_requests_answer_in_the_app_envelope(
    server: ServerProcess, path: str, body: Any, status: int, error: str | None
) -> None:
    response = call(server, "POST", path, body)
    assert response.status_code == status, response.text
    assert response.json()["status"] == "error"
    if error is not None:
        assert response.json()["error"] == error


def test_bad_create_bodies(server: ServerProcess, postgres: PostgresCluster) -> None:
    source_id = pg_source(server, postgres)
    good = {
        "import_type": "event_stream",
        "warehouse_source_id": source_id,
        "table_params": {"table_name": "purchases"},
        "event_name": "E",
        "time_column_name": "at",
        "insert_time_column_name": "inserted_at",
        "sync_mode": "time_based",
    }
    cases = [
        (
            {"sync_mode": "full_sync"},
            "sync_mode must be one of time_based, mirror_mode, one_time for a event_stream import, got 'full_sync'",
        ),
        (
            {"sync_mode": "sometimes"},
            "sync_mode must be one of time_based, mirror_mode, one_time for a event_stream import, got 'sometimes'",
        ),
        (
            {"run_every": 60},
            "run_every must be one of 0, 3600000000000, 86400000000000, 604800000000000 (nanoseconds), got 60",
        ),
        ({"event_column_name": "name"}, "give exactly one of event_name and event_column_name"),
        ({"insert_time_column_name": None}, "insert_time_column_name is required with sync_mode time_based"),
        ({"time_column_name": None}, "time_column_name is required"),
        (
            {"table_params": {"table_name": "t", "dataset": "x"}},
            "table_params: unknown parameter 'dataset' for a postgres source",
        ),
        ({"import_type": "people"}, "import_type must be 'event_stream', got 'people'"),
    ]
    for change, error in cases:
        body = {k: v for k, v in {**good, **change}.items() if v is not None}
        response = call(server, "POST", "/imports/event-stream", body)
        assert response.status_code == 400, (change, response.text)
        assert response.json() == {"status": "error", "error": error}, change

    assert call(server, "GET", "/imports/424242").json() == {
        "status": "error",
        "error": "Warehouse import 424242 not found",
    }
    assert call(server, "GET", "/imports/424242").status_code == 404
    assert call(server, "PUT", "/imports/424242/manual-sync", {}).status_code == 404
    response = call(server, "PATCH", "/imports/424242", {"paused": True})
    assert response.status_code == 404
    # an import of this project (its own: the test may run alone or on another worker): patch rules
    # (from a table that does not exist: its run fails at once and imports nothing beside other tests)
    created = call(server, "POST", "/imports/event-stream", {**good, "table_params": {"table_name": "absent"}})
    assert created.status_code in (200, 201), created.text
    some = created.json()["results"]["id"]
    for body, error in [
        ({}, "paused is required and must be true or false"),
        ({"paused": "yes"}, "paused is required and must be true or false"),
        (
            {"paused": False, "run_every": 7},
            "run_every must be one of 0, 3600000000000, 86400000000000, 604800000000000 (nanoseconds), got 7",
        ),
        ({"paused": False, "sync_mode": "full_sync"}, "sync_mode cannot be changed (patchable: paused, run_every)"),
    ]:
        response = call(server, "PATCH", f"/imports/{some}", body)
        assert response.status_code == 400 and response.json() == {"status": "error", "error": error}
    response = call(server, "DELETE", f"/imports/{some}", {"delete_data": "yes"})
    assert response.status_code == 400 and response.json()["error"] == "delete_data must be true or false"
    # file sources stay inside the files folder
    response = call(server, "POST", "", {"type": "parquet", "path": "../etc"})
    assert (response.status_code == 400 and "inside" not in response.json()["error"]) or "relative" in response.json()[
        "error"
    ]
    # no credentials, wrong project
    assert httpx.get(f"{server.url}{BASE}/imports").status_code == 401
    other = httpx.get(f"{server.url}/api/app/projects/999/warehouse-sources/imports", auth=AUTH)
    assert other.status_code in (403, 404) and other.json()["status"] == "error"


def test_manual_sync_limit_at_its_edge(tmp_path: Path, files_dir: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    (files_dir / "small").mkdir(exist_ok=True)
    pq.write_table(pa.table({"u": ["a"], "t": [1704067200]}), files_dir / "small" / "one.parquet")
    env = {"MIXHOUSE_WAREHOUSE_FILES_DIR": str(files_dir), "MIXHOUSE_WAREHOUSE_MANUAL_SYNCS_PER_HOUR": "2"}
    proc = ServerProcess(data_dir, env=env).start()
    try:
        source_id = call(proc, "POST", "", {"type": "parquet", "path": "small"}).json()["results"]["id"]
        body = {
            "import_type": "event_stream",
            "warehouse_source_id": source_id,
            "table_params": {"table_name": "one.parquet"},
            "event_name": "Small",
            "time_column_name": "t",
            "user_column_name": "u",
            "sync_mode": "mirror_mode",
            "run_every": 3_600_000_000_000,
        }
        import_id = call(proc, "POST", "/imports/event-stream", body).json()["results"]["id"]
        wait_run(proc, import_id, 1)
        for n in (2, 3):
            assert call(proc, "PUT", f"/imports/{import_id}/manual-sync", {}).status_code == 200
            wait_run(proc, import_id, n)
        response = call(proc, "PUT", f"/imports/{import_id}/manual-sync", {})
        assert response.status_code == 429, response.text
        assert response.json()["status"] == "error" and int(response.headers["Retry-After"]) > 3500
        # the schedule and the runs outlive a restart; a run that fell due while the server was down
        # (next_run moved into the past, as an hour passing would) starts by itself when it is back
        proc.stop()
        with sqlite3.connect(data_dir / "catalog.sqlite3") as db:
            db.execute("UPDATE warehouse_imports SET next_run = 1 WHERE id = ?", [import_id])
        proc.start()
        detail = call(proc, "GET", f"/imports/{import_id}").json()["results"]
        assert detail["run_every"] == 3_600_000_000_000 and detail["last_dispatch"] is not None
        assert wait_run(proc, import_id, 4)["num_events_imported"] == 0
        assert len(call(proc, "GET", f"/imports/{import_id}/history").json()["results"]["runs"]) == 4
        assert (
            call(proc, "PUT", f"/imports/{import_id}/manual-sync", {}).status_code == 429
        )  # scheduled runs don't count
        assert segmentation_total(proc, "Small") == 1
    finally:
        proc.stop()


def test_kill_9_mid_run_resumes_with_nothing_missing_or_counted_twice(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    rows = 200_000
    postgres.execute(
        "CREATE TABLE clicks (id bigint, who text, at timestamptz, inserted_at timestamptz)",
        f"""INSERT INTO clicks SELECT g, 'w' || (g % 500), timestamptz '2024-01-10 00:00:00+00' + (g % 86400) * interval '1 second',
                  timestamptz '2024-02-01 00:00:00+00' + (g / 100) * interval '1 second' FROM generate_series(1, {rows}) g""",
    )
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"MIXHOUSE_WAREHOUSE_BATCH_ROWS": "5000"}).start()
    try:
        body = {
            "import_type": "event_stream",
            "warehouse_source_id": pg_source(proc, postgres),
            "table_params": {"table_name": "clicks"},
            "event_name": "Click",
            "time_column_name": "at",
            "user_column_name": "who",
            "insert_time_column_name": "inserted_at",
            "sync_mode": "time_based",
        }
        import_id = call(proc, "POST", "/imports/event-stream", body).json()["results"]["id"]
        deadline = time.monotonic() + 120
        while not 0 < segmentation_total(proc, "Click", "2024-01-10", "2024-01-10") < rows // 2:
            assert time.monotonic() < deadline, "the import never got going"
            time.sleep(0.05)
        proc.kill()
        proc.start()
        run = wait_run(proc, import_id, 1)  # the same run, resumed
        assert run["status"] == "SUCCEEDED"
        assert segmentation_total(proc, "Click", "2024-01-10", "2024-01-10") == rows
        stored = export(proc.url, from_date="2024-01-10", to_date="2024-01-10", event='["Click"]')
        assert len({e["properties"]["$insert_id"] for e in stored}) == rows
        assert len(stored) <= rows + 5000  # at most the one batch in flight at the kill, sent again
        assert len(call(proc, "GET", f"/imports/{import_id}/history").json()["results"]["runs"]) == 1
    finally:
        proc.stop()


def test_duckdb_file_people_mirror_deletes_a_profile_whose_row_is_gone(server: ServerProcess, files_dir: Path) -> None:
    import duckdb

    path = files_dir / "warehouse.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA crm")
        db.execute("CREATE TABLE crm.members (member text, team text, joined date)")
        db.execute(
            "INSERT INTO crm.members VALUES ('m-1', 'red', DATE '2024-01-03'), ('m-2', 'blue', DATE '2024-01-04')"
        )
    source_id = call(server, "POST", "", {"type": "duckdb", "path": "warehouse.duckdb"}).json()["results"]["id"]
    body = {
        "import_type": "people",
        "warehouse_source_id": source_id,
        "table_params": {"schema_name": "crm", "table_name": "members"},
        "user_column_name": "member",
        "sync_mode": "mirror_mode",
    }
    response = call(server, "POST", "/imports/people", body)
    assert response.status_code == 200, response.text
    import_id = response.json()["results"]["id"]
    assert wait_run(server, import_id, 1)["num_events_imported"] == 2
    assert engage(server, distinct_id="m-2")[0]["$properties"]["joined"] == "2024-01-04T00:00:00"

    with duckdb.connect(str(path)) as db:
        db.execute("DELETE FROM crm.members WHERE member = 'm-2'")
        db.execute("UPDATE crm.members SET team = 'green' WHERE member = 'm-1'")
    assert call(server, "PUT", f"/imports/{import_id}/manual-sync", {}).status_code == 200
    assert wait_run(server, import_id, 2)["num_events_imported"] == 1
    assert engage(server, distinct_id="m-2") == []
    assert engage(server, distinct_id="m-1")[0]["$properties"]["team"] == "green"
