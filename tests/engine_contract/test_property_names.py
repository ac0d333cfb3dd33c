"""`PropertyNamesSpec` (`/events/properties/top`): how many stored events of a range carry each key, exactly
as a scan of the stored events counts them: keys past the 16 that get slot columns, copies that dedup
hides (discovery counts stored events), ranges that start or end inside an hour (a +05:30 project day),
one event, no event, limits, and after deletions (GDPR and by `$insert_id`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixhouse.domain.events import SERVER_ADDED
from mixhouse.domain.query.events import PropertyNamesSpec
from mixhouse.engine.base import Engine
from tests.server import PROJECT_ID, SECRET, ServerProcess, seed_catalog

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z: not on an hour
HIDDEN = tuple(sorted(SERVER_ADDED))
HOUR = 3_600_000


def _sent() -> list[dict[str, Any]]:
    """Events over three days, every 7 minutes, carrying 2 to 21 keys of 24 (so past the 16 slots), of
    every kind of value; a few sent twice with the same `$insert_id`."""
    out: list[dict[str, Any]] = []
    for i in range(600):
        props: dict[str, Any] = {
            "time": T0 + i * 420,
            "distinct_id": "gone" if i % 11 == 0 else f"u{i % 17}",
            "$insert_id": f"ins-{i}",
        }
        values: list[Any] = ["x", i, 1.5, True, None, ["a", i], {"k": i}]
        for k in range(i % 20 + 2):
            props[f"key{(i + k * 5) % 24:02d}"] = values[(i + k) % len(values)]
        out.append({"event": ("A", "B", "C")[i % 3], "properties": props})
    out += [dict(e) for e in out[100:110]]  # copies: stored twice, hidden from analyses by dedup
    return out


SENT = _sent()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Path:
    data_dir = tmp_path_factory.mktemp("property-names") / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env=engine_env).start()
    try:
        with httpx.Client(timeout=60) as client:
            for at in range(0, len(SENT), 200):  # several writes: keys get slots in more than one batch
                r = client.post(f"{server.url}/import", json=SENT[at : at + 200], auth=(SECRET, ""))
                assert r.status_code == 200, r.text
    finally:
        server.stop()
    return data_dir


@pytest.fixture
def engine(store: Path, open_engine: Callable[[Path], Engine]) -> Iterator[Engine]:
    yield open_engine(store)


def expected(
    sent: list[dict[str, Any]], start_ms: int, end_ms: int, events: tuple[str, ...] | None, limit: int
) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for e in sent:
        t = e["properties"]["time"] * 1000
        if start_ms <= t < end_ms and (events is None or e["event"] in events):
            counts.update(k for k in e["properties"] if k not in ("time", "distinct_id") and k not in HIDDEN)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def _ranges() -> list[tuple[int, int, tuple[str, ...] | None, int]]:
    day0 = (T0 * 1000 // 86_400_000) * 86_400_000
    half = HOUR // 2
    return [
        (day0, day0 + 4 * 86_400_000, None, 100),  # everything, whole UTC days
        (day0, day0 + 4 * 86_400_000, ("A",), 100),  # one event
        (day0, day0 + 4 * 86_400_000, ("A", "C"), 5),  # two events, a limit
        (day0, day0 + 4 * 86_400_000, (), 100),  # no event at all
        (day0 + 86_400_000 - 5 * half, day0 + 2 * 86_400_000 - 5 * half, None, 100),  # a +05:30 day
        (day0 + 86_400_000 + 15 * 60_000, day0 + 86_400_000 + 40 * 60_000, ("B",), 100),  # inside one hour
        (day0 + 30 * HOUR + 1, day0 + 31 * HOUR + 1, None, 100),  # across an hour, by a millisecond
        (day0 + 10 * HOUR, day0 + 10 * HOUR, None, 100),  # empty
    ]


def _check(engine: Engine, sent: list[dict[str, Any]]) -> None:
    for start, end, events, limit in _ranges():
        spec = PropertyNamesSpec(PROJECT_ID, start, end, events, limit, hidden=HIDDEN)
        assert engine.query(spec) == expected(sent, start, end, events, limit), (start, end, events, limit)


def test_counts_every_stored_event_of_the_range(engine: Engine) -> None:
    _check(engine, SENT)


def test_deleted_events_no_longer_count(store: Path, open_engine: Callable[[Path], Engine]) -> None:
    engine = open_engine(store)
    engine.delete_users(PROJECT_ID, ["gone"])
    engine.delete_events(PROJECT_ID, ["ins-3", "ins-104"])  # ins-104 was stored twice: both copies go
    left = [
        e
        for e in SENT
        if e["properties"]["distinct_id"] != "gone" and e["properties"]["$insert_id"] not in ("ins-3", "ins-104")
    ]
    _check(engine, left)
    fold = getattr(engine, "checkpoint_when_idle", None)  # DuckDB: the recent counts folded in, same answers
    if fold is not None:
        fold()
        _check(engine, left)
