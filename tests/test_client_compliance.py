"""The client's GDPR/CCPA jobs (`Client.gdpr`, API v3 with the GDPR bearer token) and lookup tables
(`Client.lookup_tables`), and the `gdpr` commands, against a live server on loopback: deletions checked in
the raw export, retrievals against what the server stored, tables in the server's lookup store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from mixhouse_client import (
    AsyncClient,
    AuthenticationFailed,
    BadRequest,
    Client,
    ConfigurationError,
    NotFound,
    PermissionDenied,
    ProjectSecret,
    ServiceAccount,
)

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from mixhouse.lookup.store import LookupStore
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

MIXHOUSE = Path(sys.executable).parent / "mixhouse"
T0 = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp())
SA = ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("compliance") / "data"
    seed_catalog(data_dir)
    Catalog(data_dir).create_service_account(
        username="sa.analyst", secret="analyst-secret", project_id=PROJECT_ID, role=Role.ANALYST
    )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def gdpr_token(server: ServerProcess) -> str:
    """A GDPR OAuth token, made as docs/gdpr.md says."""
    out = subprocess.run(
        [str(MIXHOUSE), "gdpr-tokens", "create", "--data-dir", str(server.data_dir), "--project", str(PROJECT_ID)],
        capture_output=True,
        check=True,
        text=True,
    )
    return str(orjson.loads(out.stdout)["token"])


def seed(client: Client, prefix: str) -> list[dict[str, Any]]:
    events = [
        {"event": "Visit", "properties": {"distinct_id": f"{prefix}{i % 3}", "time": T0 + i, "n": i}} for i in range(12)
    ]
    assert client.import_events(events).accepted == 12
    client.engage([{"$distinct_id": f"{prefix}0", "$set": {"$email": f"{prefix}0@example.com"}}])
    return events


def stored_ids(server: ServerProcess) -> set[str]:
    return {e["properties"]["distinct_id"] for e in export(server.url, from_date="2024-06-01", to_date="2024-06-01")}


def test_a_deletion_with_the_bearer_token_removes_the_users(server: ServerProcess, gdpr_token: str) -> None:
    with Client(base_url=server.url, credentials=SA, token=TOKEN) as owner:
        seed(owner, "del-")
    assert {"del-0", "del-1", "del-2"} <= stored_ids(server)
    with Client(base_url=server.url, token=TOKEN, gdpr_token=gdpr_token) as mp:
        task = mp.gdpr.create_deletion(["del-0", "del-1"])
        job = mp.gdpr.deletion(task)
        while job["status"] not in ("SUCCESS", "FAILURE"):
            time.sleep(0.05)
            job = mp.gdpr.deletion(task)
    assert (job["status"], job["tracking_id"], job["compliance_type"], job["project_id"]) == (
        "SUCCESS",
        task,
        "GDPR",
        PROJECT_ID,
    )
    assert sorted(job["distinct_ids"]) == ["del-0", "del-1"]
    ids = stored_ids(server)
    assert "del-0" not in ids and "del-1" not in ids and "del-2" in ids


def test_a_retrieval_returns_what_the_server_stored(server: ServerProcess, gdpr_token: str) -> None:
    with Client(base_url=server.url, credentials=SA, token=TOKEN) as owner:
        seed(owner, "get-")
    with Client(base_url=server.url, token=TOKEN, gdpr_token=gdpr_token) as mp:
        task = mp.gdpr.create_retrieval(["get-0"])
        job = mp.gdpr.retrieval(task)
        while job["status"] not in ("SUCCESS", "FAILURE"):
            time.sleep(0.05)
            job = mp.gdpr.retrieval(task)
        assert job["status"] == "SUCCESS" and job["results"]
        data = mp.gdpr.retrieval_file(task)
        # CCPA covers the past twelve months only (docs/gdpr.md): these 2024 events are not in it
        ccpa = mp.gdpr.create_retrieval(["get-0"], compliance_type="CCPA", disclosure_type="Data")
        while mp.gdpr.retrieval(ccpa)["status"] not in ("SUCCESS", "FAILURE"):
            time.sleep(0.05)
        ccpa_data = mp.gdpr.retrieval_file(ccpa)
    assert (ccpa_data["compliance_type"], ccpa_data["events"]) == ("CCPA", [])
    expected = [
        e
        for e in export(server.url, from_date="2024-06-01", to_date="2024-06-01")
        if e["properties"]["distinct_id"] == "get-0"
    ]
    assert data["events"] == expected and len(expected) == 4
    assert data["compliance_type"] == "GDPR" and data["distinct_ids"] == ["get-0"]
    assert [p["$properties"]["$email"] for p in data["profiles"]] == ["get-0@example.com"]


def test_credentials_roles_and_refusals(server: ServerProcess, gdpr_token: str) -> None:
    with Client(base_url=server.url, credentials=SA, token=TOKEN) as owner:
        seed(owner, "ref-")  # its own users: the refused deletions below must leave them
    # an admin's service account or the project secret work too (mixhouse's choice); an analyst does not
    with Client(base_url=server.url, credentials=SA) as owner:
        assert owner.gdpr.deletion(owner.gdpr.create_deletion(["nobody"]))["tracking_id"]
    with Client(base_url=server.url, credentials=ProjectSecret(SECRET), token=TOKEN) as secret:
        assert secret.gdpr.retrieval("no-such-task")["status"] == "NOT_FOUND"
    analyst = ServiceAccount("sa.analyst", "analyst-secret", PROJECT_ID)
    with Client(base_url=server.url, credentials=analyst) as mp, pytest.raises(PermissionDenied):
        mp.gdpr.create_deletion(["ref-2"])
    with (
        Client(base_url=server.url, token=TOKEN, gdpr_token="mxg_not-a-token") as wrong,
        pytest.raises(AuthenticationFailed, match="GDPR OAuth token"),
    ):
        wrong.gdpr.create_retrieval(["x"])
    with Client(base_url=server.url, token=TOKEN) as none, pytest.raises(ConfigurationError, match="bearer token"):
        none.gdpr.create_deletion(["x"])
    with Client(base_url=server.url, token=TOKEN, gdpr_token=gdpr_token) as mp:
        with pytest.raises(BadRequest, match="at most 2000"):
            mp.gdpr.create_deletion([f"u{i}" for i in range(2001)])
        with pytest.raises(BadRequest):
            mp.gdpr.create_deletion([])
        with pytest.raises(NotFound):
            mp.gdpr.cancel_deletion("no-such-task")
    assert "ref-2" in stored_ids(server)


def test_gdpr_commands(server: ServerProcess, gdpr_token: str, tmp_path: Path) -> None:
    with Client(base_url=server.url, credentials=SA, token=TOKEN) as owner:
        seed(owner, "cli-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXHOUSE_", "MP_"))}
    env.update(MIXHOUSE_BASE_URL=server.url, MIXHOUSE_TOKEN=TOKEN, MIXHOUSE_GDPR_TOKEN=gdpr_token)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(MIXHOUSE), "gdpr", *args], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert gdpr_token not in result.stdout + result.stderr
        return result

    out = tmp_path / "cli-1.json"
    retrieved = json.loads(cli("retrieve", "--distinct-id", "cli-1", "--wait", "--output", str(out)).stdout)
    assert retrieved["status"] == "SUCCESS"
    assert len(json.loads(out.read_text())["events"]) == 4
    assert json.loads(cli("status", "--retrieval", retrieved["task_id"]).stdout)["status"] == "SUCCESS"
    task = cli("delete", "--distinct-id", "cli-1").stdout.strip()
    status = json.loads(cli("status", task).stdout)
    assert status["tracking_id"] == task
    done = json.loads(cli("delete", "--distinct-id", "cli-2", "--wait").stdout)
    assert done["status"] == "SUCCESS" and "cli-2" not in stored_ids(server)


def test_lookup_tables(server: ServerProcess) -> None:
    store = LookupStore(Catalog(server.data_dir))
    with Client(base_url=server.url, credentials=SA) as mp:
        table = mp.lookup_tables.create("Accounts")
        assert {"id": table["id"], "name": "Accounts"} in mp.lookup_tables.list()
        assert mp.lookup_tables.replace(
            table["id"], [["id", "plan", "seats"], ["a1", "pro", 10], ["a2", "free", 1]]
        ) == {
            "code": 200,
            "status": "OK",
        }
        assert store.rows(table["id"]) == [
            {"id": "a1", "plan": "pro", "seats": 10},
            {"id": "a2", "plan": "free", "seats": 1},
        ]
        mp.lookup_tables.replace(table["id"], "id,plan\na3,team\n")
        assert store.rows(table["id"]) == [{"id": "a3", "plan": "team"}]
        assert mp.lookup_tables.get(table["id"])["row_count"] == 1
        with pytest.raises(BadRequest) as refused:
            mp.lookup_tables.replace(table["id"], b"id,plan\n,blank\na4\n")
        assert [r["index"] for r in refused.value.body["failed_records"]] == [1, 2]
        assert store.rows(table["id"]) == [{"id": "a3", "plan": "team"}]  # all or nothing
        with pytest.raises(NotFound):
            mp.lookup_tables.replace("00000000-0000-0000-0000-000000000000", "id\nx\n")
        mp.lookup_tables.delete(table["id"])
        assert store.get(PROJECT_ID, table["id"]) is None

    async def in_async() -> list[dict[str, Any]]:
        async with AsyncClient(base_url=server.url, credentials=SA) as amp:
            made = await amp.lookup_tables.create("Songs")
            await amp.lookup_tables.replace(made["id"], [["id", "title"], ["s1", "Yesterday"]])
            return store.rows(made["id"])

    assert asyncio.run(in_async()) == [{"id": "s1", "title": "Yesterday"}]


def test_jobs_are_cancelled_while_staging(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"MIXHOUSE_GDPR_CANCEL_WINDOW_SECONDS": "120"}).start()
    try:
        with Client(base_url=proc.url, credentials=SA, token=TOKEN) as mp:
            seed(mp, "keep-")
            deletion = mp.gdpr.create_deletion(["keep-0"])
            retrieval = mp.gdpr.create_retrieval(["keep-0"])
            assert mp.gdpr.deletion(deletion)["status"] in ("PENDING", "STAGING")
            mp.gdpr.cancel_deletion(deletion)
            mp.gdpr.cancel_retrieval(retrieval)
            assert mp.gdpr.deletion(deletion)["status"] == "REVOKED"
            assert mp.gdpr.retrieval(retrieval)["status"] == "REVOKED"
        assert "keep-0" in stored_ids(proc)  # nothing deleted
    finally:
        proc.stop()
