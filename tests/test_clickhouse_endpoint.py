"""The engine's HTTP driver (clickhouse-connect) against the loopback ClickHouse endpoint
(tests/clickhouse_endpoint.py), and the endpoint's own contract: ClickHouse's HTTP interface as a server
answers it (https://clickhouse.com/docs/interfaces/http), on real chDB."""

from __future__ import annotations

import concurrent.futures
import http.client
from collections.abc import Iterator

import clickhouse_connect
import httpx
import orjson
import pytest

from mixhouse.domain.limits import query_deadline
from mixhouse.domain.profiles import ProfileUpdate
from mixhouse.domain.query.engage import EngageSpec
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.clickhouse import ClickHouseEngine
from mixhouse.engine.clickhouse.driver import DriverError, DriverTimeout, HTTPDriver
from tests.clickhouse_endpoint import ClickHouseEndpoint


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEndpoint]:
    with ClickHouseEndpoint(tmp_path_factory.mktemp("endpoint") / "clickhouse") as ch:
        yield ch


@pytest.fixture(scope="module")
def driver(endpoint: ClickHouseEndpoint) -> Iterator[HTTPDriver]:
    d = HTTPDriver(endpoint.url, "drv")
    d.command("CREATE TABLE IF NOT EXISTS drv.t (k Int64, s String, n Nullable(Float64)) ENGINE = MergeTree ORDER BY k")
    yield d
    d.close()


def test_the_http_driver_runs_statements_from_many_threads_at_once(driver: HTTPDriver) -> None:
    """The engine shares one driver between its writer thread and every request's thread. clickhouse-connect
    gives a client one HTTP session id of its own by default, and a ClickHouse session runs one query at a
    time (the client refuses a second one itself, the server answers SESSION_IS_LOCKED): the driver must
    not use a session."""

    def work(worker: int) -> int:
        for i in range(8):
            row = f'{{"k": {worker * 100 + i}, "s": "w{worker}", "n": null}}\n'.encode()
            driver.insert("drv.t", ("k", "s", "n"), row, {"insert_deduplication_token": f"w{worker}-{i}"})
            driver.arrow("SELECT count() AS c FROM drv.t WHERE s = {s:String}", {"s": f"w{worker}"})
        return int(
            driver.arrow("SELECT count() AS c FROM drv.t WHERE s = {s:String}", {"s": f"w{worker}"})[0][0].as_py()
        )

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        assert list(pool.map(work, range(6))) == [8] * 6


def test_a_retried_insert_with_the_same_token_is_stored_once(driver: HTTPDriver) -> None:
    driver.command(
        "CREATE TABLE IF NOT EXISTS drv.dedup (k Int64) ENGINE = MergeTree ORDER BY k"
        " SETTINGS non_replicated_deduplication_window = 100"
    )
    for _ in range(3):
        driver.insert("drv.dedup", ("k",), b'{"k": 1}\n{"k": 2}\n', {"insert_deduplication_token": "once"})
    assert driver.arrow("SELECT count() AS c FROM drv.dedup")[0][0].as_py() == 2


def test_values_survive_the_round_trip(driver: HTTPDriver) -> None:
    """Parameters (text form, escapes), JSONEachRow inserts and Arrow reads keep every byte."""
    text = 'tab\there "q" \\ back\nline é 😀'
    driver.insert("drv.t", ("k", "s", "n"), orjson.dumps({"k": -1, "s": text, "n": 2.5}) + b"\n", {})
    table = driver.arrow(
        "SELECT s, n, {p:String} AS p, {a:Array(String)} AS a FROM drv.t WHERE k = -1", {"p": text, "a": [text, "x"]}
    )
    assert table.to_pylist() == [{"s": text, "n": 2.5, "p": text, "a": [text, "x"]}]


def test_parameters_too_long_for_a_url_travel_as_form_fields(driver: HTTPDriver) -> None:
    """clickhouse-connect moves long parameters (the engine's dedup keys of a large batch) into a
    multipart/form-data body."""
    big = "k" * 300_000
    assert driver.arrow("SELECT length({b:String}) AS n", {"b": big})[0][0].as_py() == 300_000


def test_errors_carry_clickhouses_text_code_and_status(endpoint: ClickHouseEndpoint, driver: HTTPDriver) -> None:
    r = httpx.post(endpoint.url, content=b"SELECT * FROM drv.missing")
    assert r.status_code == 404
    assert r.headers["X-ClickHouse-Exception-Code"] == "60"
    assert r.text.startswith("Code: 60. DB::Exception: ") and "(UNKNOWN_TABLE)" in r.text
    r = httpx.post(endpoint.url, content=b"SELEC 1")
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    r = httpx.post(endpoint.url, params={"no_such_setting": "1"}, content=b"SELECT 1")
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (404, "115")
    with pytest.raises(DriverError, match=r"UNKNOWN_TABLE") as caught:
        driver.arrow("SELECT * FROM drv.missing")
    assert not isinstance(caught.value, DriverTimeout)


def test_a_query_past_its_deadline_is_a_driver_timeout(endpoint: ClickHouseEndpoint, driver: HTTPDriver) -> None:
    """The deadline travels as `max_execution_time`; ClickHouse's TIMEOUT_EXCEEDED (HTTP 408) is DriverTimeout."""
    with query_deadline(0.2), pytest.raises(DriverTimeout):
        driver.arrow("SELECT count() FROM numbers_mt(100000000000) WHERE sipHash64(number) = 7")
    r = httpx.post(endpoint.url, params={"max_execution_time": "0.1"}, content=b"SELECT count() FROM numbers(1e11)")
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (408, "159")
    assert driver.arrow("SELECT 1 AS one")[0][0].as_py() == 1  # the next statement runs as usual


def test_settings_hold_for_their_request_only(endpoint: ClickHouseEndpoint) -> None:
    sql = b"SELECT value FROM system.settings WHERE name = 'max_result_rows'"
    assert httpx.post(endpoint.url, params={"max_result_rows": "7"}, content=sql).text == "7\n"
    assert httpx.post(endpoint.url, content=sql).text == "0\n"


def test_ping_formats_headers_and_compression(endpoint: ClickHouseEndpoint) -> None:
    assert httpx.get(f"{endpoint.url}/ping").text == "Ok.\n"
    r = httpx.post(endpoint.url, params={"default_format": "JSONEachRow", "query_id": "q-1"}, content=b"SELECT 1 AS x")
    assert r.text == '{"x":1}\n'
    assert r.headers["X-ClickHouse-Format"] == "JSONEachRow" and r.headers["X-ClickHouse-Query-Id"] == "q-1"
    assert r.headers["X-ClickHouse-Timezone"] == "UTC" and "read_rows" in r.headers["X-ClickHouse-Summary"]
    r = httpx.post(endpoint.url, content=b"CREATE TABLE IF NOT EXISTS default.none (x Int8) ENGINE = Memory")
    assert r.status_code == 200 and "X-ClickHouse-Format" not in r.headers and r.content == b""
    r = httpx.post(
        endpoint.url,
        params={"enable_http_compression": "1"},
        headers={"Accept-Encoding": "gzip"},
        content=b"SELECT number FROM numbers(1000) FORMAT TSV",
    )
    assert r.headers["Content-Encoding"] == "gzip" and r.text.splitlines()[-1] == "999"
    for compress in ("lz4", "zstd", "gzip"):  # request bodies (inserts) and answers, as the client negotiates
        client = clickhouse_connect.get_client(dsn=endpoint.url, compress=compress, autogenerate_session_id=False)
        try:
            client.command("CREATE TABLE IF NOT EXISTS default.c (k Int64, s String) ENGINE = MergeTree ORDER BY k")
            client.insert("default.c", [[1, compress], [2, "é"]], column_names=["k", "s"])
            rows = client.query("SELECT s FROM default.c WHERE s = {s:String}", parameters={"s": compress}).result_rows
            assert rows == [(compress,)]
        finally:
            client.close()


def test_an_http_session_runs_one_query_at_a_time(endpoint: ClickHouseEndpoint) -> None:
    """A second query of a session while another runs is refused with SESSION_IS_LOCKED, as a server does
    (whichever of the two arrived second)."""
    slow = {"session_id": "s-1", "max_block_size": "1"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            httpx.post, endpoint.url, params=slow, content=b"SELECT sleepEachRow(0.1) FROM numbers(6)", timeout=30
        )
        answers = []
        while not first.done():
            answers.append(httpx.post(endpoint.url, params={"session_id": "s-1"}, content=b"SELECT 1"))
        answers.append(first.result())
    refused = [r for r in answers if r.status_code != 200]
    assert refused and all(r.headers["X-ClickHouse-Exception-Code"] == "373" for r in refused)
    assert "(SESSION_IS_LOCKED)" in refused[0].text and len(refused) < len(answers)


def _profiles(project: int, ids: list[str]) -> WriteBatch:
    ops = (("$set", {"seen": True}),)
    return WriteBatch(profile_updates=[ProfileUpdate(project, (d,), ops, 1_704_067_200_000, False) for d in ids])


def test_paging_lists_are_shared_and_dropped_by_a_deletion(endpoint: ClickHouseEndpoint) -> None:
    """Two engines on one ClickHouse (what two API processes hold): page 0 on one, the next pages on the
    other read the list page 0 counted; a GDPR deletion through either drops the project's lists, so a later
    page is recomputed without the deleted user (rather than listing an id whose profile is gone)."""
    first, second = (ClickHouseEngine(HTTPDriver(endpoint.url, "paging")) for _ in range(2))
    try:
        first.submit(_profiles(77, [f"p{i}" for i in range(0, 10, 2)])).result(timeout=30)
        page0 = first.query(EngageSpec(77, page=0, page_size=2, session_id="1704067200000-AAAAAA"))
        assert (page0.total, [d for d, _ in page0.rows]) == (5, ["p0", "p2"])
        second.submit(_profiles(77, ["p1", "p3"])).result(timeout=30)
        page1 = second.query(EngageSpec(77, page=1, page_size=2, session_id="1704067200000-AAAAAA"))
        assert (page1.total, [d for d, _ in page1.rows]) == (5, ["p4", "p6"])  # page 0's list, not p1, p3
        second.delete_users(77, ["p6"])
        page1 = first.query(EngageSpec(77, page=1, page_size=2, session_id="1704067200000-AAAAAA"))
        assert (page1.total, [d for d, _ in page1.rows]) == (6, ["p2", "p3"])  # recomputed: p0 p1 p2 p3 p4 p8
        other = first.query(EngageSpec(77, page=1, page_size=2, session_id="1704067200000-BBBBBB"))
        assert [d for d, _ in other.rows] == ["p2", "p3"]
    finally:
        first.close()
        second.close()


def test_a_statement_with_parameters_past_the_uri_limit_runs(endpoint: ClickHouseEndpoint, driver: HTTPDriver) -> None:
    """The dedup keys of a large batch and an engage id list travel as one JSON parameter of an
    INSERT ... SELECT: more than a server's URI limit (1 MiB), so they must not go in the URL."""
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=30)
    try:
        conn.request("POST", "/?param_x=" + "k" * (1024 * 1024), body=b"SELECT 1")
        assert conn.getresponse().status == 414
    finally:
        conn.close()
    driver.command("CREATE TABLE IF NOT EXISTS drv.ids (id String) ENGINE = MergeTree ORDER BY id")
    ids = [f"user-{i:08d}-{'x' * 20}" for i in range(60_000)]  # ~2.3 MB of JSON
    driver.command(
        "INSERT INTO drv.ids SELECT arrayJoin(JSONExtract({ids:String}, 'Array(String)'))",
        {"ids": orjson.dumps(ids).decode()},
    )
    assert driver.arrow("SELECT count() AS c FROM drv.ids")[0][0].as_py() == 60_000
