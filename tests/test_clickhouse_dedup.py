"""The ClickHouse engine's dedup marks (mixhouse/engine/clickhouse/dedup.py) on chDB: the older copies of a
key (event, distinct_id, time, $insert_id) are listed whether they arrive in one batch or later ones, a key
differing in any part is not a copy, and the look-up reads the small granules of dedup_keys holding the
batch's key hashes, then (only for repeated hashes) the granules of those keys' own (user, time) pairs, not
every stored event of the batch's time range (which made ingestion slow down as the store grew)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mixhouse.compose import open_engine
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.clickhouse import dedup
from mixhouse.engine.clickhouse.engine import ClickHouseEngine
from mixhouse.settings import load_settings

T = 1_704_103_200_000  # 2024-01-01T10:00:00Z
GRANULE = 8192  # the events table's index_granularity (ClickHouse's default)
KEY_GRANULE = 256  # dedup_keys' index_granularity


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseEngine]:
    data_dir: Path = tmp_path_factory.mktemp("chdb-dedup")
    opened = open_engine(load_settings({"engine": "chdb", "data_dir": data_dir}, env={}))
    assert isinstance(opened, ClickHouseEngine)
    yield opened
    opened.close()


def put(engine: ClickHouseEngine, *events: StoredEvent) -> None:
    engine.submit(WriteBatch(events=list(events))).result()


def superseded(engine: ClickHouseEngine, project: int) -> list[tuple[int, str]]:
    """(time offset, properties) of the project's events listed as older copies."""
    rows = engine.store.rows(
        f"""SELECT time_ms - {T} AS t, properties FROM {engine.db}.events
            WHERE project_id = {{p:Int64}}
              AND seq IN (SELECT seq FROM {engine.db}.superseded_events WHERE project_id = {{p:Int64}})
            ORDER BY seq""",
        {"p": project},
    )
    return [(int(r["t"]), str(r["properties"])) for r in rows]


def test_older_copies_are_listed_in_one_batch_and_across_batches(engine: ClickHouseEngine) -> None:
    p = 101
    put(engine, StoredEvent(p, T, "e", "u", "a", b'{"n":1}'), StoredEvent(p, T, "e", "u", "a", b'{"n":2}'))
    put(engine, StoredEvent(p, T, "e", "u", "a", b'{"n":3}'))
    put(engine, StoredEvent(p, T + 5, "e", "u", "b", b'{"n":4}'), StoredEvent(p, T, "e", "u", "a", b'{"n":5}'))
    assert superseded(engine, p) == [(0, '{"n":1}'), (0, '{"n":2}'), (0, '{"n":3}')]


def test_a_key_differing_in_any_part_is_not_a_copy(engine: ClickHouseEngine) -> None:
    p = 102
    put(engine, StoredEvent(p, T, "e", "u", "a", b"{}"), StoredEvent(p, T, "e", "u", None, b"{}"))
    put(
        engine,
        StoredEvent(p, T + 1, "e", "u", "a", b"{}"),  # another time
        StoredEvent(p, T, "f", "u", "a", b"{}"),  # another event
        StoredEvent(p, T, "e", "v", "a", b"{}"),  # another user
        StoredEvent(p, T, "e", "u", "A", b"{}"),  # another insert id
        StoredEvent(p, T, "e", "u", None, b"{}"),  # no insert id: never a copy
        StoredEvent(103, T, "e", "u", "a", b"{}"),  # another project
    )
    assert superseded(engine, p) == []
    assert superseded(engine, 103) == []


def test_a_copy_in_another_month_partition_of_the_same_batch(engine: ClickHouseEngine) -> None:
    p = 104
    feb = T + 40 * 86_400_000
    put(engine, StoredEvent(p, T, "e", "u", "a", b'{"n":1}'), StoredEvent(p, feb, "e", "u", "z", b'{"n":2}'))
    put(engine, StoredEvent(p, feb, "e", "u", "z", b'{"n":3}'), StoredEvent(p, T, "e", "u", "a", b'{"n":4}'))
    assert sorted(superseded(engine, p)) == [(0, '{"n":1}'), (feb - T, '{"n":2}')]


def test_the_look_up_reads_the_batchs_granules_not_the_stored_time_range(engine: ClickHouseEngine) -> None:
    p = 105
    stored = 5 * GRANULE
    # One heavy user's events over the same minute as the batch: all in the batch's time range, none its key.
    put(engine, *(StoredEvent(p, T + i % 60_000, "e", "heavy", f"h{i}", b"{}") for i in range(stored)))
    keys = {("e", f"u{i}", T + i * 6_000, f"x{i}") for i in range(10)}
    put(engine, *(StoredEvent(p, t, e, d, x, b"{}") for e, d, t, x in keys))
    params = {"p": p, "keys": dedup.keys_param(keys)}
    # The first look-up reads dedup_keys only, at most one of its small granules per key of the batch.
    estimate = engine.store.rows(f"EXPLAIN ESTIMATE {dedup.repeated_select(engine.db)}", params)
    assert [r["table"] for r in estimate] == ["dedup_keys"]
    assert sum(int(r["rows"]) for r in estimate) <= len(keys) * KEY_GRANULE + len(keys) < stored
    assert engine.store.rows(dedup.repeated_select(engine.db), params) == []  # no key is there twice
    # Were every key repeated, the exact match would read at most the two granules the heavy user's rows
    # share with the batch's users once parts merge (the heavy user's key sorts between theirs); the time
    # range alone would read every stored row.
    hashes = engine.store.rows(
        f"{dedup._BATCH} SELECT groupArray({dedup._batch_hash()}) AS h FROM batch", {"keys": params["keys"]}
    )[0]["h"]
    estimate = engine.store.rows(
        f"EXPLAIN ESTIMATE {dedup.superseded_select(engine.db)}", {**params, "repeated": list(hashes)}
    )
    read = sum(int(r["rows"]) for r in estimate)
    assert read <= 2 * GRANULE + len(keys) < stored
    put(engine, *(StoredEvent(p, t, e, d, x, b'{"again":1}') for e, d, t, x in sorted(keys)[:3]))
    assert [props for _t, props in superseded(engine, p)] == ["{}"] * 3


def test_keys_with_quotes_escapes_and_non_ascii_text(engine: ClickHouseEngine) -> None:
    p = 106
    who, iid, name = 'o\'ne "two"\\ \t\n€😀', "id\\n'\"\u00e9", "Événement «x»"
    put(engine, StoredEvent(p, T, name, who, iid, b'{"n":1}'), StoredEvent(p, T, name, who + " ", iid, b'{"n":2}'))
    put(engine, StoredEvent(p, T, name, who, iid, b'{"n":3}'))
    assert superseded(engine, p) == [(0, '{"n":1}')]


def test_deleting_a_users_events_deletes_their_key_hashes(engine: ClickHouseEngine) -> None:
    p = 107
    put(
        engine,
        StoredEvent(p, T, "e", "gone", "a", b"{}"),
        StoredEvent(p, T + 1, "e", "gone", "b", b"{}"),
        StoredEvent(p, T + 2, "e", "kept", "c", b"{}"),
    )
    put(engine, StoredEvent(p, T + 3, "e", "kept", "d", b"{}"), StoredEvent(p + 1, T, "e", "x", "y", b"{}"))

    def hashes(project: int) -> int:
        rows = engine.store.rows(
            f"SELECT count() AS n FROM {engine.db}.dedup_keys WHERE project_id = {{p:Int64}}", {"p": project}
        )
        return int(rows[0]["n"])

    assert hashes(p) == 4
    engine.delete_users(p, ["gone"])  # GDPR: no hash of the deleted user's keys is left behind
    assert hashes(p) == 2
    assert engine.delete_events(p, ["d"]) == 1
    assert (hashes(p), hashes(p + 1)) == (1, 1)
