"""A large export on chDB is staged: its rows are copied once into a table ordered by (time, seq) and the
windows read from there (mixhouse/engine/clickhouse/engine.py, `_staged_export`). The lines are the same,
byte for byte, as the embedded engine's and as the unstaged windows', with an event filter, a `where` and a
limit that ends inside a later window; the staging table is gone once the export ends, once it is
abandoned midway (and after a crash at the next start: test_clickhouse_restart.py). The window size is made small here so that a few
thousand events span several windows."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import orjson
import pytest

from mixhouse.compose import open_engine
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.export import ExportQuery
from mixhouse.domain.project import Project
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.base import Engine
from mixhouse.engine.clickhouse import engine as ch
from mixhouse.engine.clickhouse.engine import ClickHouseEngine
from mixhouse.expr import EventExpr
from mixhouse.settings import load_settings

T = 1_704_067_200_000  # 2024-01-01 UTC
HOUR = 3_600_000
P = 7
EVENTS = 3_000
WINDOW = 400  # rows per window in these tests (the engine's default is 50,000)


def _events() -> list[StoredEvent]:
    names = ("a", "b", "c")
    return [
        StoredEvent(
            P,
            T + (i * 7_919) % (48 * HOUR),  # two days, rows in no time order
            names[i % 3],
            f"u{(i * 31) % 97}",
            f"x{i}" if i % 50 else "x0",  # a few copies of one key, as a client retrying would send
            orjson.dumps({"n": i, "plan": ("free", "pro")[i % 2]}),
        )
        for i in range(EVENTS)
    ]


def _open(name: str, data_dir: Path) -> Engine:
    return open_engine(load_settings({"engine": name, "data_dir": data_dir}, env={}))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, ClickHouseEngine]]:
    duck = _open("duckdb", tmp_path_factory.mktemp("export-duckdb"))
    chdb = _open("chdb", tmp_path_factory.mktemp("export-chdb"))
    assert isinstance(chdb, ClickHouseEngine)
    events = _events()
    for engine in (duck, chdb):
        for first in range(0, EVENTS, 1_000):
            engine.submit(WriteBatch(events=events[first : first + 1_000])).result()
    yield duck, chdb
    duck.close()
    chdb.close()


def _query(events: tuple[str, ...] | None = None, where: str | None = None, limit: int | None = None) -> ExportQuery:
    project = Project(P, "p", "t", "s", "k")
    expr = EventExpr.parse(where) if where is not None else None
    return ExportQuery(project, T, T + 48 * HOUR, events, expr, limit, False)


def _staging_tables(engine: ClickHouseEngine) -> list[str]:
    rows = engine.store.rows(
        "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {p:String})",
        {"db": engine.db, "p": ch.STAGING_PREFIX},
    )
    return [str(r["name"]) for r in rows]


@pytest.mark.parametrize(
    ("events", "where", "limit"),
    [
        (None, None, None),
        (("a", "c"), None, None),
        (None, 'properties["plan"] == "pro"', None),
        (None, None, 1_000),  # the limit is reached inside the third window
        (None, 'properties["n"] > 100', 900),
    ],
)
def test_a_staged_export_writes_the_embedded_engines_bytes(
    engines: tuple[Engine, ClickHouseEngine],
    monkeypatch: pytest.MonkeyPatch,
    events: tuple[str, ...] | None,
    where: str | None,
    limit: int | None,
) -> None:
    duck, chdb = engines
    query = _query(events, where, limit)
    expected = b"".join(duck.export_lines(query))
    monkeypatch.setattr(ch, "EXPORT_WINDOW_ROWS", WINDOW)
    staged = list(chdb.export_lines(query))
    assert b"".join(staged) == expected
    assert len(staged) >= 2  # several windows were read
    if limit is not None:
        assert expected.count(b"\n") == limit
    assert _staging_tables(chdb) == []
    monkeypatch.setattr(type(chdb._driver), "staging", False)  # the same windows read from the events
    assert b"".join(chdb.export_lines(query)) == expected


def test_an_export_within_one_window_is_not_staged(
    engines: tuple[Engine, ClickHouseEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    duck, chdb = engines
    created: list[str] = []
    command = chdb._driver.command

    def spy(sql: str, params: object = None) -> None:
        created.append(sql)
        command(sql, params)  # type: ignore[arg-type]

    monkeypatch.setattr(chdb._driver, "command", spy)
    query = _query(("b",))  # 1,000 rows: one window of the default size
    assert b"".join(chdb.export_lines(query)) == b"".join(duck.export_lines(query))
    assert not [sql for sql in created if ch.STAGING_PREFIX in sql]


def test_an_abandoned_export_drops_its_staging_table(
    engines: tuple[Engine, ClickHouseEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    _duck, chdb = engines
    monkeypatch.setattr(ch, "EXPORT_WINDOW_ROWS", WINDOW)
    lines = chdb.export_lines(_query())
    assert isinstance(lines, Generator)
    next(lines)
    assert len(_staging_tables(chdb)) == 1
    lines.close()  # what the server does when the client goes away
    assert _staging_tables(chdb) == []
