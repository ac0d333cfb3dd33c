"""Rate limits per project: Mixpanel's published limits (`--rate-limits mixpanel`), custom limits,
429 with Retry-After in each family's body, concurrency caps that hold under concurrent clients,
query deadlines that interrupt DuckDB, and the writer's disk reserve."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.domain.limits import Api, Limiter, QueryTimedOut, Rule, normalize_setting, parse_setting, query_deadline
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.engine.duckdb.deadline import interrupt_at_deadline
from mixhouse.errors import BadRequest, RateLimited
from tests.conftest import today
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

NAMES = "/api/2.0/events/names"


def _create_project_cli(data_dir: Path, project_id: int, secret: str, rate_limits: str) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mixhouse",
            "projects",
            "create",
            "--data-dir",
            str(data_dir),
            "--id",
            str(project_id),
            "--name",
            f"limits{project_id}",
            "--secret",
            secret,
            "--token",
            f"tok{project_id}",
            "--api-key",
            f"key{project_id}",
            "--rate-limits",
            rate_limits,
        ],
        check=True,
        capture_output=True,
    )
    result: dict[str, object] = orjson.loads(out.stdout)
    return result


def _events(n: int, prefix: str = "e") -> list[dict[str, object]]:
    now = int(time.time()) - 60
    return [
        {"event": "Limit test", "properties": {"distinct_id": f"u{i}", "time": now, "$insert_id": f"{prefix}{i}"}}
        for i in range(n)
    ]


# -- the rules ----------------------------------------------------------------------------------


def test_settings_parse_presets_overrides_and_reject_nonsense() -> None:
    mixpanel = parse_setting("mixpanel")
    assert mixpanel.rule(Api.QUERY) == Rule(per_hour=60, concurrent=5, timeout_seconds=10.0)
    assert mixpanel.rule(Api.EXPORT) == Rule(per_hour=60, per_second=3, concurrent=100)
    assert mixpanel.rule(Api.JQL).timeout_seconds == 120.0
    assert mixpanel.rule(Api.GDPR) == Rule(per_second=1)
    assert mixpanel.rule(Api.LEXICON) == Rule(per_minute=5)
    assert parse_setting("none").rule(Api.QUERY).empty
    custom = parse_setting(
        '{"preset": "mixpanel", "query": {"per_hour": 600, "timeout_seconds": null}, "export": null}'
    )
    assert custom.rule(Api.QUERY) == Rule(per_hour=600, concurrent=5)
    assert custom.rule(Api.EXPORT).empty
    for bad in (
        '{"query": {"per_hour": 0}}',
        '{"querry": {}}',
        '{"query": {"per_week": 3}}',
        "fast",
        '{"preset": "x"}',
    ):
        with pytest.raises(BadRequest):
            normalize_setting(bad)


def test_limiter_retry_after_counts_down_to_the_oldest_request() -> None:
    now = [1000.0]
    limiter = Limiter(clock=lambda: now[0])
    rule = Rule(per_minute=2)
    limiter.acquire(1, Api.LEXICON, rule)
    now[0] += 10
    limiter.acquire(1, Api.LEXICON, rule)
    with pytest.raises(RateLimited) as refused:
        limiter.acquire(1, Api.LEXICON, rule)
    assert refused.value.retry_after == 50
    limiter.acquire(2, Api.LEXICON, rule)  # another project has its own budget
    now[0] += 50
    limiter.acquire(1, Api.LEXICON, rule)


def test_jql_shares_the_query_api_budget() -> None:
    limiter = Limiter()
    rule = Rule(per_hour=2)
    limiter.acquire(1, Api.QUERY, rule)
    limiter.acquire(1, Api.JQL, rule)
    with pytest.raises(RateLimited):
        limiter.acquire(1, Api.QUERY, rule)


# -- over HTTP ----------------------------------------------------------------------------------


def test_mixpanel_preset_lets_exactly_60_queries_per_hour_through_under_16_concurrent_clients(
    fresh_server: ServerProcess,
) -> None:
    project = _create_project_cli(fresh_server.data_dir, 77, "S77SECRET", "mixpanel")
    assert project["rate_limits"] == "mixpanel"
    hourly_refusals: list[httpx.Response] = []
    admitted = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=fresh_server.url, auth=("S77SECRET", ""), timeout=30) as http:
            while True:
                r = http.get(NAMES, params={"project_id": "77", "type": "general"})
                with lock:
                    if r.status_code == 200:
                        admitted.append(r)
                    elif r.status_code == 429 and "per hour" in r.json()["error"]:
                        hourly_refusals.append(r)
                        return
                    else:  # the 5-concurrent cap: a client retries those
                        assert r.status_code == 429, r.text
                        assert "concurrent" in r.json()["error"]

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(client) for _ in range(16)]:
            future.result()
    assert len(admitted) == 60
    refusal = hourly_refusals[0]
    assert refusal.json() == {
        "request": f"{NAMES}?project_id=77&type=general",
        "error": "Query rate limit exceeded: at most 60 queries per hour per project",
    }
    assert 3000 < int(refusal.headers["retry-after"]) <= 3600
    # Another project on the same server (limits "none") is not affected.
    other = httpx.get(
        fresh_server.url + NAMES, params={"project_id": str(PROJECT_ID), "type": "general"}, auth=(SA_USER, SA_SECRET)
    )
    assert other.status_code == 200
    # Rejected requests were counted in /metrics.
    metrics = httpx.get(fresh_server.url + "/metrics").text
    assert 'mixhouse_rate_limited_total{api="query"}' in metrics


def _raw_post_headers(port: int, path: str, secret: str, body_length: int) -> socket.socket:
    """A POST whose headers are sent but whose body is held back: the request stays in flight."""
    sock = socket.create_connection(("127.0.0.1", port))
    auth = base64.b64encode(f"{secret}:".encode()).decode()
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {body_length}\r\n\r\n"
        ).encode()
    )
    return sock


def _read_response(sock: socket.socket, timeout: float) -> bytes | None:
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return None
    return data


def test_concurrency_cap_holds_exactly_five_queries_in_flight(fresh_server: ServerProcess) -> None:
    Catalog(fresh_server.data_dir).set_rate_limits(PROJECT_ID, '{"query": {"concurrent": 5}}')
    path = f"{NAMES}?project_id={PROJECT_ID}&type=general"
    body = b"limit=10&type=general"
    socks = [_raw_post_headers(fresh_server.port, path, SECRET, len(body)) for _ in range(12)]
    try:
        time.sleep(0.5)
        answered = {i: _read_response(s, 0.3) for i, s in enumerate(socks)}
        refused = [i for i, data in answered.items() if data is not None]
        assert len(refused) == 7, answered
        for i in refused:
            data = answered[i]
            assert data is not None
            assert data.startswith(b"HTTP/1.1 429"), data
            assert b"retry-after: 1" in data.lower()
            assert b"Query rate limit exceeded: at most 5 concurrent queries per project" in data
        held = [s for i, s in enumerate(socks) if i not in refused]
        # A sixth request, sent whole, is refused while five are in flight.
        sixth = httpx.get(fresh_server.url + path, auth=(SECRET, ""))
        assert sixth.status_code == 429
        for s in held:
            s.sendall(body)
        for s in held:
            data = _read_response(s, 10)
            assert data is not None and data.startswith(b"HTTP/1.1 200"), data
    finally:
        for s in socks:
            s.close()
    # The slots were given back.
    assert httpx.get(fresh_server.url + path, auth=(SECRET, "")).status_code == 200


def test_export_three_per_second_and_import_volume_answer_in_their_own_envelopes(fresh_server: ServerProcess) -> None:
    Catalog(fresh_server.data_dir).set_rate_limits(
        PROJECT_ID, '{"preset": "mixpanel", "ingestion": {"bytes_per_minute": 2500}}'
    )
    base = fresh_server.url
    first = httpx.post(f"{base}/import", params={"strict": "1"}, json=_events(20), auth=(SECRET, ""))
    assert first.status_code == 200, first.text
    second = httpx.post(f"{base}/import", params={"strict": "1"}, json=_events(20, "f"), auth=(SECRET, ""))
    assert second.status_code == 429
    assert second.json() == {
        "code": 429,
        "error": "Project exceeded rate limits. Please retry the request with exponential backoff.",
        "status": "Too Many Requests",
    }
    assert int(second.headers["retry-after"]) >= 1

    params = {"project_id": str(PROJECT_ID), "from_date": "2020-01-01", "to_date": "2020-01-02"}
    statuses = []
    started = time.monotonic()
    for _ in range(4):
        statuses.append(httpx.get(f"{base}/api/2.0/export", params=params, auth=(SA_USER, SA_SECRET)))
    if time.monotonic() - started < 1.0:  # four within one second: the fourth is over 3/second
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[3].headers["retry-after"] == "1"
        assert (
            statuses[3].json()["error"] == "Query rate limit exceeded: at most 3 export requests per second per project"
        )
    time.sleep(1.1)
    assert httpx.get(f"{base}/api/2.0/export", params=params, auth=(SA_USER, SA_SECRET)).status_code == 200


def test_lexicon_five_per_minute_in_the_app_envelope(fresh_server: ServerProcess) -> None:
    Catalog(fresh_server.data_dir).set_rate_limits(PROJECT_ID, "mixpanel")
    url = f"{fresh_server.url}/api/app/projects/{PROJECT_ID}/schemas"
    answers = [httpx.get(url, auth=(SA_USER, SA_SECRET)) for _ in range(6)]
    assert all(r.status_code != 429 for r in answers[:5])
    assert answers[5].status_code == 429
    assert answers[5].json() == {
        "status": "error",
        "error": "Rate limit exceeded: at most 5 Lexicon requests per minute per project",
    }
    assert 1 <= int(answers[5].headers["retry-after"]) <= 60


def test_bad_credentials_do_not_spend_a_projects_budget(fresh_server: ServerProcess) -> None:
    Catalog(fresh_server.data_dir).set_rate_limits(PROJECT_ID, '{"query": {"per_minute": 2}}')
    params = {"project_id": str(PROJECT_ID), "type": "general"}
    for _ in range(5):
        r = httpx.get(fresh_server.url + NAMES, params=params, auth=(SA_USER, "wrong"))
        assert r.status_code == 401
    ok = [httpx.get(fresh_server.url + NAMES, params=params, auth=(SA_USER, SA_SECRET)) for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 429]


# -- query deadlines -------------------------------------------------------------------------------


def test_deadline_interrupts_a_running_duckdb_query_and_frees_the_connection(tmp_path: Path) -> None:
    engine = DuckDBEngine(tmp_path / "data")
    try:
        conn = engine.reader()
        started = time.monotonic()
        with pytest.raises(QueryTimedOut) as timed_out, query_deadline(0.3), interrupt_at_deadline(conn):
            conn.execute("SELECT count(*) FROM range(10000000000) t(i) WHERE i % 7 = 3").fetchall()
        assert time.monotonic() - started < 3
        assert timed_out.value.status == 504
        assert "0.3 second limit" in timed_out.value.message
        # The same connection answers the next query, and a fast query under a deadline is not hurt.
        with query_deadline(5), interrupt_at_deadline(conn):
            assert conn.execute("SELECT 42").fetchall() == [(42,)]
        time.sleep(0.1)
        assert conn.execute("SELECT 43").fetchall() == [(43,)]
    finally:
        engine.close()


# -- the disk reserve -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MB tmpfs when we may mount one (root), else a folder on the test filesystem."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)], capture_output=True)
    yield mount
    if mounted.returncode == 0:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_low_disk_refuses_writes_with_503_and_recovers(small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    data_dir = small_disk / "data"
    seed_catalog(data_dir)
    free = shutil.disk_usage(small_disk).free
    # The reserve sits 40 MB under today's free space; a 60 MB ballast file pushes free space under it.
    monkeypatch.setenv("MIXHOUSE_DISK_RESERVE_BYTES", str(free - 40 * 1024 * 1024))
    server = ServerProcess(data_dir)
    server.log_path = small_disk.parent / "server.log"
    server.start()
    ballast = small_disk / "ballast"
    try:
        base = server.url
        assert httpx.post(f"{base}/import", json=_events(10, "a"), auth=(SECRET, "")).status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        with open(ballast, "wb") as f:
            f.write(b"\0" * (60 * 1024 * 1024))
            f.flush()
        refused = httpx.post(f"{base}/import", json=_events(10, "b"), auth=(SECRET, ""))
        assert refused.status_code == 503
        assert refused.json()["error"] == "the server is low on disk space; retry with backoff"
        tracked = [{"event": "t", "properties": {"token": TOKEN, "distinct_id": "u1"}}]
        track = httpx.post(f"{base}/track", data={"data": orjson.dumps(tracked).decode()})
        assert track.status_code == 503 and track.text == "0"
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and "under the reserve" in ready.json()["problems"][0]
        # Reads still work while writes are refused.
        assert (
            httpx.get(
                f"{base}/api/2.0/export", params={"from_date": "2020-01-01", "to_date": today()}, auth=(SECRET, "")
            ).status_code
            == 200
        )
        ballast.unlink()
        assert httpx.post(f"{base}/import", json=_events(10, "c"), auth=(SECRET, "")).status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        lines = httpx.get(
            f"{base}/api/2.0/export", params={"from_date": "2020-01-01", "to_date": today()}, auth=(SECRET, "")
        ).content.splitlines()
        ids = sorted(orjson.loads(line)["properties"]["$insert_id"] for line in lines)
        assert ids == sorted([f"a{i}" for i in range(10)] + [f"c{i}" for i in range(10)])
    finally:
        server.stop()
        ballast.unlink(missing_ok=True)
