"""One PostgreSQL catalog shared by two real `mixhouse serve` processes (each with its own DuckDB data
dir for events) and the command line: what one creates the other sees at once, a rate-limit change
reaches the other's project cache, jobs run in the lease holder only and move when it dies; and
`mixhouse catalog copy` moves a data folder's SQLite catalog into PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.cluster.leases import Leases
from mixhouse.cluster.pg import Database
from mixhouse.domain.project import Role
from mixhouse.domain.saved.bookmarks import BookmarkStore
from mixhouse.flags.store import FlagStore
from mixhouse.gdpr.model import DELETION
from mixhouse.jobs.model import Job, JobState
from mixhouse.jobs.registry import JOBS_LEASE
from mixhouse.jobs.store import JobStore
from mixhouse.lookup.csvtable import parse
from mixhouse.lookup.store import LookupStore
from tests.postgres import PostgresCluster
from tests.postgres import postgres_cluster as postgres_cluster
from tests.server import API_KEY, PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
LEASE_SECONDS = 2.0


def _database(pg: PostgresCluster, name: str) -> str:
    pg.execute(f"CREATE DATABASE {name}", database="postgres")
    return pg.uri.rsplit("/", 1)[0] + f"/{name}"


def _cli(*args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "mixhouse", *args], capture_output=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return orjson.loads(done.stdout)


@pytest.fixture(scope="module")
def shared(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[ServerProcess]]]:
    url = _database(postgres, "shared")
    seed = Catalog(tmp_path_factory.mktemp("seed"), url=url)
    seed.create_project(project_id=PROJECT_ID, name="p", token=TOKEN, secret=SECRET, api_key=API_KEY)
    seed.create_service_account(username=SA_USER, secret=SA_SECRET, project_id=PROJECT_ID, role=Role.OWNER)
    seed.close()
    env = {"MIXHOUSE_CATALOG_URL": url, "MIXHOUSE_JOB_LEASE_SECONDS": str(LEASE_SECONDS)}
    servers: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            servers.append(ServerProcess(tmp_path_factory.mktemp(f"shared-{name}") / "data", env=env).start())
        yield url, servers
    finally:
        for server in servers:
            server.stop()


def _names(server: ServerProcess, project_id: int, auth: tuple[str, str]) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/query/events/names",
        params={"project_id": str(project_id), "type": "general"},
        auth=auth,
        timeout=30,
    )


def _track(server: ServerProcess, token: str, distinct_id: str, n: int) -> None:
    events = [
        {
            "event": "e",
            "properties": {
                "token": token,
                "distinct_id": distinct_id,
                "$insert_id": f"{distinct_id}-{server.port}-{i}",
            },
        }
        for i in range(n)
    ]
    response = httpx.post(f"{server.url}/track?verbose=1", json=events, timeout=30)
    assert response.status_code == 200 and response.json()["status"] == 1, response.text


def test_what_one_process_creates_the_other_sees_at_once(shared: tuple[str, list[ServerProcess]]) -> None:
    url, (a, b) = shared
    # a project and a service account made by the command line: both servers know them at once
    _cli("projects", "create", "--catalog-url", url, "--id", "5001", "--token", "TOK5001", "--secret", "SEC5001")
    _cli(
        "service-accounts",
        "create",
        "--catalog-url",
        url,
        "--username",
        "cli.sa",
        "--secret",
        "cli-secret",
        "--project",
        "5001",
        "--role",
        "admin",
    )
    for server in (b, a):
        _track(server, "TOK5001", "u", 1)
        assert _names(server, 5001, ("cli.sa", "cli-secret")).status_code == 200
    listed = _cli("projects", "list", "--catalog-url", url)
    assert [p["id"] for p in listed] == [PROJECT_ID, 5001]
    # a service account made through one server's API logs in on the other
    made = httpx.post(
        f"{a.url}/api/app/organizations/1/service-accounts",
        json={"username": "api.sa", "role": "analyst", "projects": [{"id": PROJECT_ID, "role": "analyst"}]},
        auth=(SA_USER, SA_SECRET),
        timeout=30,
    )
    assert made.status_code == 200, made.text
    assert _names(b, PROJECT_ID, ("api.sa", made.json()["results"]["token"])).status_code == 200
    # a saved report made on one is listed by the other
    bookmarks = f"/api/app/projects/{PROJECT_ID}/bookmarks"
    saved = httpx.post(
        f"{a.url}{bookmarks}", json={"name": "shared", "query": {"event": "e"}}, auth=(SA_USER, SA_SECRET), timeout=30
    )
    assert saved.status_code == 200, saved.text
    listed_b = httpx.get(f"{b.url}{bookmarks}", auth=(SA_USER, SA_SECRET), timeout=30).json()["results"]
    assert [r["name"] for r in listed_b] == ["shared"]
    with Catalog(Path("/nonexistent"), url=url) as catalog:  # the store itself, as both servers read it
        assert [p.id for p in catalog.projects()] == [PROJECT_ID, 5001]


def test_a_changed_project_reaches_the_others_cache(shared: tuple[str, list[ServerProcess]]) -> None:
    url, (a, b) = shared
    _cli("projects", "create", "--catalog-url", url, "--id", "5002", "--token", "TOK5002", "--secret", "SEC5002")
    _cli(
        "service-accounts",
        "create",
        "--catalog-url",
        url,
        "--username",
        "sa5002",
        "--secret",
        "s5002",
        "--project",
        "5002",
    )
    auth = ("sa5002", "s5002")
    assert _names(b, 5002, auth).status_code == 200  # b now holds the project in its cache
    _cli("projects", "set-rate-limits", "--catalog-url", url, "--id", "5002", '{"query": {"per_minute": 2}}')
    deadline = time.monotonic() + 10
    codes: list[int] = []
    while time.monotonic() < deadline:  # the notification reaches b within milliseconds
        codes.append(_names(b, 5002, auth).status_code)
        if codes[-1] == 429:
            break
    assert codes[-1] == 429 and len(codes) <= 3, codes  # the budget of 2 counted from the change on
    refused = _names(a, 5002, auth)  # and counted across both servers
    assert refused.status_code == 429 and "2 queries per minute" in refused.json()["error"]


def test_copy_a_sqlite_catalog_into_postgres(postgres: PostgresCluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    source = Catalog(data_dir)
    source.create_project(project_id=3, name="three", token="T3", secret="S3", rate_limits="mixpanel")
    source.create_project(project_id=9, name="nine", token="T9", secret="S9", organization_id=2)
    _, secret = source.create_service_account(username="sa", secret=None, project_id=3, role=Role.ADMIN)
    bookmarks = BookmarkStore(source)
    for name in ("one", "two", "three"):
        bookmarks.create(3, name=name, description="", query={"event": name})
    bookmarks.delete(3, 1)
    FlagStore(source).put(3, [{"id": "f2", "key": "b"}, {"id": "f1", "key": "a"}])
    lookups = LookupStore(source)
    table = lookups.create(3, "songs")
    lookups.replace(3, table.id, parse("id,name\nx,X\ny,Y\n"))
    job = JobStore(source).create("gdpr-deletion", 3, {"distinct_ids": ["u"]}, now=5.0)
    url = _database(postgres, "copied")

    copied = _cli("catalog", "copy", "--data-dir", str(data_dir), "--catalog-url", url)["copied"]
    assert copied["projects"] == 2 and copied["bookmarks"] == 2 and copied["lookup_rows"] == 2
    with Catalog(data_dir, url=url) as target:
        assert target.projects() == source.projects()
        assert target.verify_service_account("sa", secret) == source.service_account("sa")
        assert target.project_by_token("T9") is not None and target.project_by_token("T9").organization_id == 2  # type: ignore[union-attr]
        copied_bookmarks = BookmarkStore(target)
        assert copied_bookmarks.list(3) == bookmarks.list(3)
        assert copied_bookmarks.create(3, name="four", description="", query={}).id == 4  # ids go on after the copy
        assert [d["id"] for d in FlagStore(target).docs(3)] == ["f2", "f1"]  # insertion order kept
        assert LookupStore(target).rows(table.id) == lookups.rows(table.id)
        assert JobStore(target).get(job.id) == job
        assert target.create_project(name="next").id == 10
    again = subprocess.run(
        [sys.executable, "-m", "mixhouse", "catalog", "copy", "--data-dir", str(data_dir), "--catalog-url", url],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode == 1 and b"holds projects already" in again.stdout


def test_the_other_catalog_commands_take_the_shared_catalog(
    shared: tuple[str, list[ServerProcess]], tmp_path: Path
) -> None:
    url, (a, b) = shared
    _cli(
        "service-accounts",
        "create",
        "--catalog-url",
        url,
        "--username",
        "rot.sa",
        "--secret",
        "old-secret",
        "--project",
        str(PROJECT_ID),
    )
    assert _names(a, PROJECT_ID, ("rot.sa", "old-secret")).status_code == 200  # a caches the verification
    rotated = _cli("service-accounts", "rotate", "--catalog-url", url, "--username", "rot.sa")
    assert _names(a, PROJECT_ID, ("rot.sa", "old-secret")).status_code == 401  # the stored hash changed
    assert _names(b, PROJECT_ID, ("rot.sa", rotated["secret"])).status_code == 200
    listed = _cli("service-accounts", "list", "--catalog-url", url)
    assert "rot.sa" in [account["username"] for account in listed]
    token = _cli(
        "gdpr-tokens", "create", "--data-dir", str(tmp_path), "--catalog-url", url, "--project", str(PROJECT_ID)
    )
    with Catalog(tmp_path, url=url) as catalog:
        from mixhouse.gdpr.tokens import GdprTokens

        assert GdprTokens(catalog).verify(token["token"]) is not None
    flags = tmp_path / "flags.json"
    flags.write_bytes(orjson.dumps({"flags": []}))
    _cli("flags", "import", "--data-dir", str(tmp_path), "--catalog-url", url, "--project", str(PROJECT_ID), str(flags))
    _cli(
        "users",
        "create",
        "--catalog-url",
        url,
        "--email",
        "ann@example.com",
        "--password",
        "long enough pw",
        "--project",
        str(PROJECT_ID),
    )
    login = httpx.post(
        f"{b.url}/web/login", json={"email": "ann@example.com", "password": "long enough pw"}, timeout=30
    )
    assert login.status_code == 200, login.text


def _wait(store: JobStore, job_id: str, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job is not None and job.state in (JobState.SUCCESS, JobState.FAILURE):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job not done: {store.get(job_id)}")


def test_jobs_run_in_the_lease_holder_and_move_when_it_dies(shared: tuple[str, list[ServerProcess]]) -> None:
    # (last in the module: it kills a server)
    """A GDPR deletion runs on the engine of the process that runs it: a has 2 events of each user, b 1,
    so the count it reports names the process."""
    url, servers = shared
    for user in ("gone1", "gone2"):
        _track(servers[0], TOKEN, user, 2)
        _track(servers[1], TOKEN, user, 1)
    counts = {servers[0].proc.pid: 2, servers[1].proc.pid: 1}  # type: ignore[union-attr]
    with Catalog(Path("/nonexistent"), url=url) as catalog, Database(url) as db:
        store = JobStore(catalog)
        job = _wait(store, store.create(DELETION, PROJECT_ID, {"distinct_ids": ["gone1"]}).id, 30)
        holder = Leases(db).holder_of(JOBS_LEASE)
        assert holder is not None
        holder_pid = int(holder.split(":")[1])
        assert job.state is JobState.SUCCESS and job.attempts == 1
        assert job.result is not None and job.result["events"] == counts[holder_pid]  # run there, once
        dead = next(s for s in servers if s.proc is not None and s.proc.pid == holder_pid)
        survivor = next(s for s in servers if s is not dead)
        dead.kill()  # SIGKILL: the lease is not released; it expires after LEASE_SECONDS
        job = _wait(store, store.create(DELETION, PROJECT_ID, {"distinct_ids": ["gone2"]}).id, LEASE_SECONDS * 10)
        assert job.state is JobState.SUCCESS and job.result is not None
        assert job.result["events"] == counts[survivor.proc.pid]  # type: ignore[union-attr]
        new_holder = Leases(db).holder_of(JOBS_LEASE)
        assert new_holder is not None and int(new_holder.split(":")[1]) == survivor.proc.pid  # type: ignore[union-attr]
