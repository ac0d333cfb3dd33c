"""Two `mixhouse serve --engine clickhouse` processes on one ClickHouse, as behind a load balancer.

Both processes (A and B, two ports) reach one ClickHouse over HTTP through the engine's HTTP driver
(clickhouse-connect), each with a data folder of its own, and share one PostgreSQL database: the catalog
(`MIXHOUSE_CATALOG_URL`) and the cluster state (`--cluster-url`: rate limits, the job lease, the event
sequence numbers). The ClickHouse is
`tests/clickhouse_endpoint.py`: real chDB behind ClickHouse's HTTP interface, one node, statements run one
at a time (what that leaves out: replication, Keeper, ON CLUSTER, concurrent statements; see its
docstring and docs/scale-out.md). A third process, a single `--engine chdb` server, gets the same requests
and is the reference: what one process on its own store answers, the pair answers too.

Checked: events sent to A are read from B (segmentation, export byte for byte with the reference);
identity merges whose links arrive through A and B; a batch retried through the other process counts once
(and is exported twice, as by one process); an engage paging session started on A and continued on B reads
one snapshot of the ids; and no sequence number is given twice."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import orjson
import pytest

from mixhouse.cluster.pg import Database
from mixhouse.domain.project import IdMerge
from mixhouse.engine.clickhouse.sequence import SharedSequence
from tests.clickhouse_endpoint import ClickHouseEndpoint
from tests.postgres import PostgresCluster, postgres_cluster  # noqa: F401  (registers the fixture)
from tests.server import SA_SECRET, SA_USER, ServerProcess, seed_catalog

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
DATES = {"from_date": "2024-01-01", "to_date": "2024-01-12"}
AUTH = (SA_USER, SA_SECRET)
# One project per test, so that the tests do not read each other's events.
EVENTS, IDENTITY, ORIGINAL, RETRY, PAGING = 5001, 5002, 5003, 5004, 5005
PROJECTS = {
    EVENTS: IdMerge.SIMPLIFIED,
    IDENTITY: IdMerge.SIMPLIFIED,
    ORIGINAL: IdMerge.ORIGINAL,
    RETRY: IdMerge.SIMPLIFIED,
    PAGING: IdMerge.SIMPLIFIED,
}


def secret(project: int) -> str:
    return f"S{project}"


def token(project: int) -> str:
    return f"T{project}"


def seed(data_dir: Path, catalog_url: str | None = None) -> None:
    for project, id_merge in PROJECTS.items():
        seed_catalog(
            data_dir,
            project_id=project,
            token=token(project),
            secret=secret(project),
            api_key=f"K{project}",
            id_merge=id_merge,
            catalog_url=catalog_url,
        )  # one service account (SA_USER), granted every project


class ClickHouseServer(ServerProcess):
    """`mixhouse serve --engine clickhouse --clickhouse-url URL --cluster-url PG` on its own port."""

    def __init__(self, data_dir: Path, clickhouse_url: str, cluster_url: str) -> None:
        super().__init__(data_dir, env={"MIXHOUSE_CATALOG_URL": cluster_url})
        self.clickhouse_url = clickhouse_url
        self.cluster_url = cluster_url

    def serve_args(self) -> list[str]:
        engine = ["--engine", "clickhouse", "--clickhouse-url", self.clickhouse_url, "--cluster-url", self.cluster_url]
        return [*super().serve_args(), *engine]


@pytest.fixture(scope="module")
def processes(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess, ServerProcess, ClickHouseEndpoint]]:
    root = tmp_path_factory.mktemp("two-processes")
    started: list[ServerProcess] = []
    endpoint = ClickHouseEndpoint(root / "clickhouse").start()
    try:
        postgres.execute("CREATE DATABASE two_processes", database="postgres")
        shared = postgres.uri.rsplit("/", 1)[0] + "/two_processes"
        seed(root / "seed", shared)
        for name in ("a", "b"):
            (root / name).mkdir()
            started.append(ClickHouseServer(root / name / "data", endpoint.url, shared).start())
        reference = root / "reference" / "data"
        seed(reference)
        started.append(ServerProcess(reference, env={"MIXHOUSE_ENGINE": "chdb"}).start())
        yield started[0], started[1], started[2], endpoint
    finally:
        for server in started:
            server.stop()
        endpoint.stop()


def send(server: ServerProcess, project: int, events: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{server.url}/import", params={"strict": "1"}, json=events, auth=(secret(project), ""), timeout=60)
    assert r.status_code == 200, r.text


def query(server: ServerProcess, path: str, project: int, **params: str) -> Any:
    r = httpx.get(f"{server.url}/api/query/{path}", params={"project_id": project, **params}, auth=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    if isinstance(body, dict):
        body.pop("computed_at", None)
        body.pop("session_id", None)
    return body


def export(server: ServerProcess, project: int) -> bytes:
    params = {"project_id": str(project), **DATES}
    r = httpx.get(f"{server.url}/api/2.0/export", params=params, auth=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.content


def unclocked(body: bytes) -> bytes:
    """An export without the ingestion clock each server stamps (the only bytes that may differ between
    two stores given the same requests)."""
    return re.sub(rb'"\$?mp_(api_timestamp_ms|processing_time_ms)":[0-9]+', b"CLOCK", body)


def _events() -> list[dict[str, Any]]:
    rng = random.Random(2201)
    out: list[dict[str, Any]] = []
    for i in range(300):
        user = f"user-{rng.randrange(30)}"
        props: dict[str, Any] = {
            "time": T0 + rng.randrange(10 * 86_400),
            "distinct_id": user,
            "$insert_id": f"e{i % 290}",
            "plan": rng.choice(["free", "pro", None]),
            "amount": rng.choice([1, 2.5, "7", -3]),
            "tags": rng.sample(["a", "b", 'q"uote', "naïve"], k=rng.randrange(3)),
        }
        if i % 40 == 0:
            props["$device_id"] = f"dev-{i}"
            props["distinct_id"] = f"$device:dev-{i}"
        if i % 40 == 1:
            props["$device_id"] = f"dev-{i - 1}"
            props["$user_id"] = user
        out.append({"event": rng.choice(["view", "signup", "buy", "Événement «x»"]), "properties": props})
    return out + [dict(e) for e in out[:10]]  # exact re-sends: all exported, counted once


QUERIES = [
    ("segmentation", {"event": "view", **DATES}),
    ("segmentation", {"event": "buy", "type": "unique", "unit": "day", **DATES}),
    ("segmentation", {"event": "view", "on": 'properties["plan"]', **DATES}),
    ("segmentation", {"event": "view", "on": 'properties["tags"]', "type": "unique", **DATES}),
    ("events", {"event": '["view", "buy"]', "type": "general", "unit": "day", **DATES}),
    ("retention", {"born_event": "signup", "event": "buy", "unit": "day", **DATES}),
]


def test_events_sent_to_one_process_are_read_from_the_other(
    processes: tuple[ServerProcess, ServerProcess, ServerProcess, ClickHouseEndpoint],
) -> None:
    a, b, reference, _ = processes
    events = _events()
    for i in range(0, len(events), 100):
        for server in (a, reference):
            send(server, EVENTS, events[i : i + 100])
    for path, params in QUERIES:
        expected = query(reference, path, EVENTS, **params)
        assert query(b, path, EVENTS, **params) == expected, (path, params)
        assert query(a, path, EVENTS, **params) == expected, (path, params)
    exported = export(b, EVENTS)
    assert exported.count(b"\n") == len(events)
    assert export(a, EVENTS) == exported  # one store: the same bytes, clock included
    assert unclocked(exported) == unclocked(export(reference, EVENTS))
    assert exported != unclocked(exported)


def _identity_steps(project: int) -> list[list[dict[str, Any]]]:
    """Batches in order, alternately sent to A and B: events of two devices, then the links that merge them
    with users (Simplified: `$device_id` with `$user_id`; Original: `$identify` and `$create_alias`), then
    more events of the users and of the devices."""

    def event(name: str, at: int, distinct_id: str, n: int, **props: Any) -> dict[str, Any]:
        return {
            "event": name,
            "properties": {"time": T0 + at, "distinct_id": distinct_id, "$insert_id": f"{project}-{n}", **props},
        }

    if PROJECTS[project] is IdMerge.SIMPLIFIED:
        return [
            [event("view", 60, "$device:d1", 1, **{"$device_id": "d1"}), event("view", 70, "$device:d2", 2)],
            [event("signup", 3600, "alice", 3, **{"$device_id": "d1", "$user_id": "alice"})],
            [event("buy", 7200, "alice", 4), event("view", 7300, "$device:d1", 5, **{"$device_id": "d1"})],
            [event("signup", 9000, "bob", 6, **{"$device_id": "d2", "$user_id": "bob"})],
            [event("buy", 86_400 + 60, "bob", 7), event("buy", 86_400 + 120, "$device:d2", 8, **{"$device_id": "d2"})],
        ]
    return [
        [event("view", 60, "anon-1", 1), event("view", 70, "anon-2", 2)],
        [event("$identify", 3600, "alice", 3, **{"$anon_distinct_id": "anon-1", "$identified_id": "alice"})],
        [event("buy", 7200, "alice", 4), event("view", 7300, "anon-1", 5)],
        [event("$create_alias", 9000, "anon-2", 6, alias="bob")],
        [event("buy", 86_400 + 60, "bob", 7), event("buy", 86_400 + 120, "anon-2", 8)],
    ]


@pytest.mark.parametrize("project", [IDENTITY, ORIGINAL], ids=["simplified", "original"])
def test_identity_merges_through_both_processes(
    processes: tuple[ServerProcess, ServerProcess, ServerProcess, ClickHouseEndpoint], project: int
) -> None:
    a, b, reference, _ = processes
    for n, batch in enumerate(_identity_steps(project)):
        send((a, b)[n % 2], project, batch)
        send(reference, project, batch)
    for server in (a, b):
        for event in ("view", "buy"):
            params = {"event": event, "type": "unique", "unit": "day", **DATES}
            assert query(server, "segmentation", project, **params) == query(
                reference, "segmentation", project, **params
            )
        assert unclocked(export(server, project)) == unclocked(export(reference, project))
    unique = query(b, "segmentation", project, event="buy", type="unique", unit="month", **DATES)
    assert unique["data"]["values"]["buy"]["2024-01-01"] == 2  # alice and bob, each merged with a device
    buys = [orjson.loads(line) for line in export(b, project).splitlines() if b'"event":"buy"' in line]
    assert len(buys) == 3 and len({e["properties"]["distinct_id"] for e in buys}) == 2  # exported as resolved


def test_a_batch_retried_through_the_other_process_is_counted_once(
    processes: tuple[ServerProcess, ServerProcess, ServerProcess, ClickHouseEndpoint],
) -> None:
    """A client whose answer from A was lost sends the batch again, and the load balancer hands it to B:
    both copies are stored (different requests), reports count one (`$insert_id`), export shows both, as a
    single process does with the same two requests."""
    a, b, reference, _ = processes
    batch = [
        {"event": "buy", "properties": {"time": T0 + 3600 * i, "distinct_id": f"r{i % 3}", "$insert_id": f"r{i}"}}
        for i in range(12)
    ]
    send(a, RETRY, batch)
    send(b, RETRY, batch)
    send(reference, RETRY, batch)
    send(reference, RETRY, batch)
    for server in (a, b):
        body = query(server, "segmentation", RETRY, event="buy", unit="month", **DATES)
        assert body["data"]["values"]["buy"]["2024-01-01"] == 12
        assert body == query(reference, "segmentation", RETRY, event="buy", unit="month", **DATES)
        exported = export(server, RETRY)
        assert exported.count(b"\n") == 24
        assert unclocked(exported) == unclocked(export(reference, RETRY))


def _page(server: ServerProcess, **params: str) -> dict[str, Any]:
    r = httpx.get(
        f"{server.url}/api/2.0/engage",
        params={"project_id": str(PAGING), "page_size": "3", **params},
        auth=AUTH,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_an_engage_session_started_on_one_process_pages_on_the_other(
    processes: tuple[ServerProcess, ServerProcess, ServerProcess, ClickHouseEndpoint],
) -> None:
    """Page 0 from A, the next pages from B and A with its session id: one list of ids, the one page 0
    counted, even though a profile that sorts into page 1 arrives (through B) after page 0."""
    a, b, _, _ = processes
    updates = [{"$token": token(PAGING), "$distinct_id": f"u{i:02d}", "$set": {"n": i}} for i in range(0, 14, 2)]
    assert httpx.post(f"{a.url}/engage", json=updates, timeout=30).json() == 1
    first = _page(a, page="0")
    assert first["total"] == 7
    session = first["session_id"]
    late = [{"$token": token(PAGING), "$distinct_id": "u05", "$set": {"n": 5}}]
    assert httpx.post(f"{b.url}/engage", json=late, timeout=30).json() == 1
    seen = [r["$distinct_id"] for r in first["results"]]
    for n, server in ((1, b), (2, a), (3, b)):
        body = _page(server, page=str(n), session_id=session)
        assert "total" not in body and body["session_id"] == session
        seen += [r["$distinct_id"] for r in body["results"]]
    assert seen == [f"u{i:02d}" for i in range(0, 14, 2)]  # the snapshot of page 0, not u05
    fresh = _page(b, page="0")  # a new session sees the new profile
    assert fresh["total"] == 8 and fresh["session_id"] != session


def test_no_sequence_number_is_given_twice(
    processes: tuple[ServerProcess, ServerProcess, ServerProcess, ClickHouseEndpoint],
) -> None:
    """Both processes wrote events (these, sent to both at once, and the tests' above when they ran on the
    same pytest worker): every stored event has its own seq, across processes and projects."""
    a, b, _, endpoint = processes
    batches = [
        [{"event": "ping", "properties": {"time": T0 + n * 60 + i, "distinct_id": f"p{i}"}} for i in range(20)]
        for n in range(6)
    ]
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda nb: send((a, b)[nb[0] % 2], RETRY, nb[1]), enumerate(batches)))
    client = clickhouse_connect.get_client(dsn=endpoint.url, autogenerate_session_id=False)
    try:
        stored, distinct = client.query("SELECT count(), uniqExact(seq) FROM mixhouse.events").result_rows[0]
    finally:
        client.close()
    assert stored >= 120 and stored == distinct


def test_the_shared_counter_starts_after_the_store_and_never_repeats(postgres: PostgresCluster) -> None:
    """What each process does at start (`start_after` the largest stored seq) and per batch (`take`)."""
    with Database(postgres.uri) as db_a, Database(postgres.uri) as db_b:
        a, b = SharedSequence(db_a, "counter-test"), SharedSequence(db_b, "counter-test")
        a.start_after(100)
        b.start_after(40)  # a process that saw an older maximum does not move the counter back
        assert a.take(10) == 101
        assert b.take(5) == 111
        assert a.take(1) == 116
        b.start_after(1000)  # a store that grew meanwhile (a migration) moves it on
        assert a.take(1) == 1001
