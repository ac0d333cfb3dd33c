"""Query-time deduplication (https://developer.mixpanel.com/reference/event-deduplication) whatever way the copies arrive: in one batch, in later
batches, out of time order, and across a restart of a store written before the writer kept the list.
Reports count one copy; raw export returns every copy."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest

from mixhouse.domain.events import StoredEvent
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb import DuckDBEngine, dedup, property_columns
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

T0 = 1704103200  # 2024-01-01T10:00:00Z


def ev(name: str, insert_id: str | None, t: int = T0, who: str = "u1", **props: object) -> dict[str, object]:
    properties: dict[str, object] = {"distinct_id": who, "time": t, **props}
    if insert_id is not None:
        properties["$insert_id"] = insert_id
    return {"event": name, "properties": properties}


def send(server: ServerProcess, *events: dict[str, object]) -> None:
    r = httpx.post(f"{server.url}/import", json=list(events), auth=(SECRET, ""))
    assert r.status_code == 200, r.text


def count(server: ServerProcess, event: str) -> int:
    r = httpx.get(
        f"{server.url}/api/query/segmentation",
        params={"project_id": PROJECT_ID, "event": event, "from_date": "2024-01-01", "to_date": "2024-01-01"},
        auth=(SA_USER, SA_SECRET),
    )
    assert r.status_code == 200, r.text
    return int(r.json()["data"]["values"][event]["2024-01-01"])


def test_copies_collapse_in_one_batch_and_across_batches(fresh_server: ServerProcess) -> None:
    send(fresh_server, ev("same-batch", "a1"), ev("same-batch", "a1"), ev("same-batch", "a2"))
    assert count(fresh_server, "same-batch") == 2
    send(fresh_server, ev("later", "b1"))
    send(fresh_server, ev("later", "b1", v=2))  # other properties do not matter to the key
    send(fresh_server, ev("later", "b1", v=3))
    assert count(fresh_server, "later") == 1
    # A different time, user or event name is another key; no $insert_id never collapses.
    send(fresh_server, ev("keys", "c1"), ev("keys", "c1", t=T0 + 1), ev("keys", "c1", who="u2"))
    send(fresh_server, ev("keys", None), ev("keys", None))
    assert count(fresh_server, "keys") == 5
    exported = export(fresh_server.url, event='["same-batch","later","keys"]', from_date="2024-01-01")
    assert len(exported) == 3 + 3 + 5


def test_the_latest_ingested_copy_is_the_one_counted(fresh_server: ServerProcess) -> None:
    send(fresh_server, ev("pick", "p1", plan="old"))
    send(fresh_server, ev("pick", "p1", plan="new"))
    r = httpx.get(
        f"{fresh_server.url}/api/query/segmentation",
        params={
            "project_id": PROJECT_ID,
            "event": "pick",
            "from_date": "2024-01-01",
            "to_date": "2024-01-01",
            "on": 'properties["plan"]',
        },
        auth=(SA_USER, SA_SECRET),
    )
    assert r.json()["data"]["values"] == {"new": {"2024-01-01": 1}}


def test_a_store_written_before_the_superseded_list_is_backfilled(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    DuckDBEngine(data_dir).close()
    # Copies written straight into the table (as an older store holds them), and the marker removed.
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    for seq in (1, 2, 3):
        conn.execute(
            "INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties) VALUES (?, ?, ?, 'old', 'u1', 'k1', '{}')",
            [PROJECT_ID, seq, T0 * 1000],
        )
    conn.execute("DELETE FROM superseded_events")
    conn.execute("DELETE FROM engine_meta")
    conn.close()
    server = ServerProcess(data_dir).start()
    try:
        assert count(server, "old") == 1
    finally:
        server.stop()


def test_the_writers_keys_are_exact_behind_a_saturated_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SeenKeys.holds` answers exactly which keys were added, also where the Bloom filter in front of it
    would send every key to the join (a filter far over capacity), across merges of its sorted runs and a
    filter grown from them."""
    monkeypatch.setattr(dedup, "MIN_CAPACITY", 64)
    rng = np.random.default_rng(5)
    seen = dedup.SeenKeys(64)
    added = []
    for size in (1, 7, 300, 2000, 3, 2000, 50):  # runs of unlike sizes, merged as they come
        keys = rng.integers(0, 2**64, size, dtype=np.uint64)
        seen.add(keys)
        added.append(keys)
    stored = np.concatenate(added)
    asked = np.concatenate((stored[::3], rng.integers(0, 2**64, 5000, dtype=np.uint64)))
    assert seen.may_hold(asked).mean() > 0.9  # the filter alone: nearly every key a maybe
    assert (seen.holds(asked) == np.isin(asked, stored)).all()
    assert len(seen._runs) < 7  # merged
    grown = seen.grown()
    assert grown.capacity == 2 * len(stored) and not grown.full
    assert grown.may_hold(asked).mean() < 0.5
    assert (grown.holds(asked) == np.isin(asked, stored)).all()


def test_the_writers_key_filter_misses_no_copy_across_rebuilds_and_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer joins only the rows its in-memory filter may have seen (dedup.SeenKeys): with a tiny
    capacity the filter is rebuilt from the table many times, and rebuilt again on every open; every
    older copy is still found, whatever batch or open it came in, and nothing else is marked."""
    monkeypatch.setattr(dedup, "MIN_CAPACITY", 64)
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    rng = random.Random(7)
    keys = [(f"e{k % 3}", f"u{k % 5}", 1_700_000_000_000 + k * 1000, f"k{k}") for k in range(150)]
    sent: list[tuple[int, tuple[str, str, int, str]]] = []  # (seq, key) in ingestion order
    seq = 0
    for _ in range(3):  # opens: the filter is rebuilt from the store each time
        engine = DuckDBEngine(data_dir)
        try:
            for _ in range(8):
                chosen = [rng.choice(keys) for _ in range(rng.randint(1, 60))]
                batch = WriteBatch(
                    events=[StoredEvent(PROJECT_ID, t, name, who, iid, b"{}") for name, who, t, iid in chosen]
                )
                engine.submit(batch).result()
                for key in chosen:
                    seq += 1
                    sent.append((seq, key))
            superseded = {int(r[0]) for r in engine.reader().execute("SELECT seq FROM superseded_events").fetchall()}
        finally:
            engine.close()
    latest = {key: s for s, key in sent}
    assert superseded == {s for s, key in sent if latest[key] != s}
    assert len(superseded) > 100  # copies in the same batch, in later batches and after reopening


@pytest.mark.parametrize("parameter_rows", [0, 1000], ids=["arrow-insert", "parameter-insert"])
def test_copies_sent_after_a_reopen_supersede_the_stored_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parameter_rows: int
) -> None:
    """With the filter at its real size (sparse: no false positive to hide a wrong key), the keys an insert
    returns must be the very hashes the filter is rebuilt from at the next open, or a copy sent after a
    restart would not be joined with the one stored before it."""
    monkeypatch.setattr(property_columns, "PARAMETER_ROWS", parameter_rows)
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    events = [StoredEvent(PROJECT_ID, T0 * 1000 + k, "e", f"u{k}", f"k{k}", b'{"p": 1}') for k in range(20)]
    for _ in range(2):
        engine = DuckDBEngine(data_dir)
        try:
            for event in events:  # one a commit: no copy in the same batch forces the join
                engine.submit(WriteBatch(events=[event])).result()
            superseded = engine.reader().execute("SELECT count(*) FROM superseded_events").fetchall()[0][0]
        finally:
            engine.close()
    assert superseded == len(events)
