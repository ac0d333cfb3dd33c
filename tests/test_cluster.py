"""Several mixhouse processes on one PostgreSQL (mixhouse/cluster): migrations, leases, a job runner
per process with each job run by exactly one of them, and rate limits counted across two servers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from mixhouse.catalog import Catalog
from mixhouse.cluster.leases import Duty, Heartbeat, Leases
from mixhouse.cluster.limits import SharedLimiter
from mixhouse.cluster.pg import MIGRATIONS, Database, migrate
from mixhouse.domain.limits import Api, Rule
from mixhouse.errors import RateLimited, SettingsError
from mixhouse.jobs.model import JobState
from mixhouse.jobs.store import JobStore
from mixhouse.settings import load_settings
from tests.postgres import PostgresCluster, postgres_cluster  # noqa: F401  (registers the fixture)
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, free_port, seed_catalog

ROOT = Path(__file__).resolve().parent.parent
UNLIMITED, UNLIMITED_TOKEN = 4343, "TOKEN4343"  # a second project, without rate limits


def _expire(pg: PostgresCluster, name: str) -> None:
    """What the passing of the lease's time does (no waiting in tests)."""
    with psycopg.connect(pg.uri, autocommit=True) as conn:
        conn.execute("UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = %s", (name,))


def test_migrations_run_once_and_again_do_nothing(postgres: PostgresCluster) -> None:
    with psycopg.connect(postgres.uri, autocommit=True) as a, psycopg.connect(postgres.uri, autocommit=True) as b:
        assert migrate(a) == len(MIGRATIONS)
        assert migrate(b) == len(MIGRATIONS)
        rows = a.execute("SELECT version FROM mixhouse_schema ORDER BY version").fetchall()
        assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))


def test_a_lease_has_one_holder_until_it_expires_or_is_released(postgres: PostgresCluster) -> None:
    with Database(postgres.uri) as db_a, Database(postgres.uri) as db_b:
        _one_holder(postgres, Leases(db_a, "a"), Leases(db_b, "b"))


def _one_holder(postgres: PostgresCluster, a: Leases, b: Leases) -> None:
    assert a.acquire("duty-1", 30)
    assert not b.acquire("duty-1", 30)
    assert a.acquire("duty-1", 30)  # the holder renews
    assert b.holder_of("duty-1") == "a"
    _expire(postgres, "duty-1")
    assert b.acquire("duty-1", 30)  # a holder that stopped renewing loses it
    assert not a.acquire("duty-1", 30)
    b.release("duty-1")
    assert a.acquire("duty-1", 30)  # released: taken at once
    a.release("duty-1")


def test_a_duty_renews_only_after_a_third_of_its_time(postgres: PostgresCluster) -> None:
    with Database(postgres.uri) as db_a, Database(postgres.uri) as db_b:
        _renewal(postgres, Leases(db_a, "a"), Leases(db_b, "b"))


def _renewal(postgres: PostgresCluster, a: Leases, b: Leases) -> None:
    duty = Duty(a, "duty-2", 30)
    assert duty.held(100.0)
    _expire(postgres, "duty-2")
    assert duty.held(105.0)  # within a third of 30 s: no round trip, still believed held
    assert b.acquire("duty-2", 30)  # the expired row went to b
    assert not duty.held(111.0)  # renewing finds b's live lease
    b.release("duty-2")


def test_many_processes_racing_for_a_lease_give_it_to_one(postgres: PostgresCluster) -> None:
    code = (
        "import sys; from mixhouse.cluster.leases import Leases; from mixhouse.cluster.pg import Database\n"
        "with Database(sys.argv[1]) as db: print(Leases(db, sys.argv[2]).acquire('race', 30))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, postgres.uri, f"p{i}"], stdout=subprocess.PIPE, cwd=ROOT)
        for i in range(4)
    ]
    answers = [p.communicate(timeout=60)[0].decode().strip() for p in procs]
    assert sorted(answers) == ["False", "False", "False", "True"]


def test_a_bad_cluster_url_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PostgreSQL URL"):
        load_settings({"data_dir": tmp_path, "cluster_url": "mysql://x"})


# -- the job runner in two processes ------------------------------------------------------------------


def _worker(data_dir: Path, pg: PostgresCluster, runs: Path, ttl: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster_worker", str(data_dir), pg.uri, str(runs), str(ttl)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def _wait_done(store: JobStore, ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [store.get(i) for i in ids]
        if all(j is not None and j.state is JobState.SUCCESS for j in jobs):
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs not done: {[store.get(i) for i in ids]}")


def _runs(path: Path) -> list[tuple[str, int]]:
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


def test_each_job_runs_in_exactly_one_process_and_a_dead_holder_is_replaced(
    postgres: PostgresCluster, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared"
    seed_catalog(data_dir)
    runs = tmp_path / "runs.txt"
    runs.touch()
    ttl = 3.0
    workers = [_worker(data_dir, postgres, runs, ttl) for _ in range(2)]
    try:
        store = JobStore(Catalog(data_dir))
        first = [store.create("record", PROJECT_ID, {"n": n}).id for n in range(6)]
        _wait_done(store, first)
        done = _runs(runs)
        assert sorted(job for job, _ in done) == sorted(first)  # each job once
        holders = {pid for _, pid in done}
        assert len(holders) == 1  # by the lease's holder alone
        (holder,) = holders
        dead = next(w for w in workers if w.pid == holder)
        dead.kill()  # SIGKILL: the lease is not released, it expires
        dead.wait()
        later = [store.create("record", PROJECT_ID, {"n": n}).id for n in range(2)]
        _wait_done(store, later, timeout=ttl * 10)
        after = _runs(runs)[len(done) :]
        assert sorted(job for job, _ in after) == sorted(later)
        assert {pid for _, pid in after} == {next(w.pid for w in workers if w is not dead)}
    finally:
        for w in workers:
            w.kill()
            w.wait()
            if w.stdout is not None:
                w.stdout.close()


# -- rate limits across two servers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_servers(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    servers = []
    try:
        for name in ("a", "b"):
            data_dir = tmp_path_factory.mktemp(f"cluster-{name}") / "data"
            seed_catalog(data_dir)
            Catalog(data_dir).set_rate_limits(PROJECT_ID, '{"query": {"per_minute": 3}}')
            seed_catalog(data_dir, project_id=UNLIMITED, token=UNLIMITED_TOKEN, secret="S4343", api_key="K4343")
            servers.append(ServerProcess(data_dir, env={"MIXHOUSE_CLUSTER_URL": postgres.uri}).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_two_servers_share_a_projects_query_budget(two_servers: list[ServerProcess]) -> None:
    a, b = two_servers

    def names(server: ServerProcess) -> httpx.Response:
        return httpx.get(
            f"{server.url}/api/query/events/names",
            params={"project_id": str(PROJECT_ID), "type": "general"},
            auth=(SA_USER, SA_SECRET),
            timeout=30,
        )

    codes = [names(s).status_code for s in (a, b, a)]
    assert codes == [200, 200, 200]
    refused = [names(b), names(a)]  # 3 per minute across both servers, not 3 each
    assert [r.status_code for r in refused] == [429, 429]
    assert "at most 3 queries per minute" in refused[0].json()["error"]
    assert int(refused[0].headers["Retry-After"]) >= 1


def test_a_paging_session_of_one_server_is_answered_by_the_other(two_servers: list[ServerProcess]) -> None:
    """Engage paging behind a load balancer: page 0 on one server, the next pages on the other, with the
    same profiles on both (each server here has its own store; a session carries its snapshot time, so a
    server that did not make it recomputes the same ordered pages)."""
    updates = [{"$token": UNLIMITED_TOKEN, "$distinct_id": f"u{i:02d}", "$set": {"n": i}} for i in range(7)]
    for server in two_servers:
        assert httpx.post(f"{server.url}/engage", json=updates, timeout=30).json() == 1

    def page(server: ServerProcess, **params: str) -> dict[str, Any]:
        response = httpx.get(
            f"{server.url}/api/2.0/engage",
            params={"project_id": str(UNLIMITED), "page_size": "3", **params},
            auth=(SA_USER, SA_SECRET),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    a, b = two_servers
    first = page(a, page="0")
    assert first["total"] == 7
    session = first["session_id"]
    seen = [r["$distinct_id"] for r in first["results"]]
    for n, server in ((1, b), (2, a), (3, b)):
        seen += [r["$distinct_id"] for r in page(server, page=str(n), session_id=session)["results"]]
    assert seen == [f"u{i:02d}" for i in range(7)]


def test_while_the_database_is_away_each_process_counts_alone(postgres: PostgresCluster) -> None:
    rule = Rule(per_minute=2)
    with Database(f"postgresql://nobody:x@127.0.0.1:{free_port()}/none") as away:
        limiter = SharedLimiter(away)
        for _ in range(2):
            limiter.release(limiter.acquire(PROJECT_ID, Api.QUERY, rule))
        with pytest.raises(RateLimited):  # the budget still holds, in this process
            limiter.acquire(PROJECT_ID, Api.QUERY, rule)
    with Database(postgres.uri) as db:  # and with the database: shared, across two limiters
        first, second = SharedLimiter(db), SharedLimiter(db)
        first.release(first.acquire(PROJECT_ID + 1, Api.QUERY, rule))
        second.release(second.acquire(PROJECT_ID + 1, Api.JQL, rule))  # JQL spends the Query API's budget
        with pytest.raises(RateLimited, match="2 queries per minute"):
            first.acquire(PROJECT_ID + 1, Api.QUERY, rule)


def test_an_away_database_is_not_asked_again_for_a_few_seconds() -> None:
    """While PostgreSQL is down, a request must not wait out a connection attempt each: after one failure
    the limiter counts in this process for RETRY_SECONDS, then tries the database again."""
    rule = Rule(per_minute=100)
    with Database(f"postgresql://nobody:x@127.0.0.1:{free_port()}/none") as away:
        limiter = SharedLimiter(away)
        asked: list[int] = []
        connect = away.conn

        def counted() -> Any:
            asked.append(1)
            return connect()

        away.conn = counted  # type: ignore[method-assign]
        for _ in range(5):
            limiter.release(limiter.acquire(PROJECT_ID, Api.QUERY, rule))
        assert len(asked) == 1
        limiter._away_until = 0.0  # RETRY_SECONDS later
        limiter.release(limiter.acquire(PROJECT_ID, Api.QUERY, rule))
        assert len(asked) == 2


def test_a_heartbeat_renews_the_lease_while_a_long_step_runs(postgres: PostgresCluster) -> None:
    with Database(postgres.uri) as db, psycopg.connect(postgres.uri, autocommit=True) as look:

        def expiry() -> object:
            row = look.execute("SELECT expires_at FROM leases WHERE name = 'duty-3'").fetchone()
            assert row is not None
            return row[0]

        duty = Duty(Leases(db, "a"), "duty-3", 1.0)  # renewed every third of a second
        assert duty.held(0.0)
        before = expiry()
        with Heartbeat(duty):
            deadline = time.monotonic() + 10
            while expiry() == before and time.monotonic() < deadline:
                time.sleep(0.05)
        assert expiry() != before
        assert len(db._all) == 1  # the heartbeat's thread closed its connection
        duty.release()
