"""The query deadline on ClickHouse (chDB in process): the time a request has left reaches ClickHouse as
`max_execution_time` (with `timeout_overflow_mode = 'throw'`), ClickHouse stops a query at it, and a timed-out
query is the same QueryTimedOut (504, same message) as on the embedded engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mixhouse.compose import open_engine
from mixhouse.domain.limits import QueryTimedOut, query_deadline
from mixhouse.domain.query.events import EventNamesSpec
from mixhouse.engine.base import Engine
from mixhouse.engine.clickhouse.driver import DriverError, DriverTimeout
from mixhouse.engine.clickhouse.engine import ClickHouseEngine, unavailable
from mixhouse.settings import load_settings

# Minutes of work for ClickHouse: only its own deadline ends it in time.
SLOW = "SELECT count() AS n FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3"
SETTINGS = "SELECT getSetting('max_execution_time') AS m, getSetting('timeout_overflow_mode') AS o"


def _open(name: str, data_dir: Path) -> Engine:
    return open_engine(load_settings({"engine": name, "data_dir": data_dir}, env={}))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, ClickHouseEngine]]:
    duck = _open("duckdb", tmp_path_factory.mktemp("deadline-duckdb"))
    chdb = _open("chdb", tmp_path_factory.mktemp("deadline-chdb"))
    assert isinstance(chdb, ClickHouseEngine)
    try:
        yield duck, chdb
    finally:
        chdb.close()
        duck.close()


def test_the_time_left_reaches_clickhouse(engines: tuple[Engine, ClickHouseEngine]) -> None:
    store = engines[1].store
    assert store.rows(SETTINGS) == [{"m": 0.0, "o": "throw"}]  # no deadline: ClickHouse's default, no limit
    with query_deadline(30):
        (row,) = store.rows(SETTINGS)
    assert 29 < float(row["m"]) <= 30 and row["o"] == "throw"


def test_clickhouse_stops_a_query_at_its_deadline(engines: tuple[Engine, ClickHouseEngine]) -> None:
    store = engines[1].store
    started = time.monotonic()
    with query_deadline(0.3):
        with pytest.raises(DriverTimeout, match="TIMEOUT_EXCEEDED") as raised:
            store.rows(SLOW)
        answer = unavailable(raised.value)  # what the engine raises for it, inside the request
    assert time.monotonic() - started < 10  # ClickHouse stopped it, not the end of the scan
    assert isinstance(answer, QueryTimedOut) and answer.status == 504
    assert str(answer) == (
        "Query timed out: it ran longer than this project's 0.3 second limit; narrow the date range or filters"
    )


def test_a_query_within_its_deadline_answers(engines: tuple[Engine, ClickHouseEngine]) -> None:
    with query_deadline(60):
        assert engines[1].store.rows("SELECT count() AS n FROM numbers(1000)") == [{"n": 1000}]


def test_a_query_past_its_deadline_is_the_same_error_on_both_engines(
    engines: tuple[Engine, ClickHouseEngine],
) -> None:
    spec = EventNamesSpec(1, 1_704_067_200_000, 1_706_745_600_000, 10)
    for engine in engines:
        assert engine.query(spec) == []
    messages = []
    for engine in engines:
        with query_deadline(0.001, "the server's"), pytest.raises(QueryTimedOut) as raised:
            time.sleep(0.002)
            engine.query(spec)
        messages.append((raised.value.status, str(raised.value)))
    assert (
        messages[0]
        == messages[1]
        == (
            504,
            "Query timed out: it ran longer than the server's 0.001 second limit; narrow the date range or filters",
        )
    )


def test_a_query_that_failed_midway_leaves_nothing_for_the_next(engines: tuple[Engine, ClickHouseEngine]) -> None:
    """chDB kept the partial Arrow output of a failed query and the next query failed to parse it."""
    store = engines[1].store
    for failing in (SLOW, "SELECT throwIf(number = 5) AS x FROM numbers(10)"):
        with query_deadline(0.2), pytest.raises(DriverError):
            store.rows(failing)
        assert store.rows("SELECT count() AS n FROM numbers(1000)") == [{"n": 1000}]
