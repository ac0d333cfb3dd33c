"""Arrival order does not matter: the same events and identity events, sent in any permutation and split into
any write groups, give the same identity map and the same resolved user counts as in-order arrival, and the
map equals the pure rules of `mixhouse.domain.identity` applied to the set of links.

Runs the real DuckDB engine (its writer thread, its store on disk) in-process: a server per example would
cost seconds; the HTTP path to the same writer is covered by tests/test_identity_golden.py."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mixhouse.domain import events as ev
from mixhouse.domain import identity as rules
from mixhouse.domain.project import IdMerge, Project
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb.engine import DuckDBEngine
from mixhouse.engine.duckdb.relations import scoped_events

PROJECT_ID = 1
T0 = 1_704_067_200
ANON = [
    "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
    "6f9619ff-8b86-4d11-b42d-00c04fc964ff",
    "c56a4180-65aa-42ec-a945-5fd21dec0538",
]
ORIGINAL_IDS = [*ANON, "cookie-1", "U0", "U1", "U2"]

times = st.integers(min_value=0, max_value=6)  # few distinct times: ties are common


@st.composite
def simplified_record(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = {"time": T0 + draw(times), "$device_id": f"D{draw(st.integers(0, 2))}"}
    if draw(st.booleans()):
        props["$user_id"] = f"U{draw(st.integers(0, 2))}"
    return {"event": "e", "properties": props}


@st.composite
def original_record(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["event", "$identify", "$create_alias", "$merge"]))
    a, b = draw(st.sampled_from(ORIGINAL_IDS)), draw(st.sampled_from(ORIGINAL_IDS))
    props: dict[str, Any] = {"time": T0 + draw(times)}
    if kind == "event":
        props["distinct_id"] = a
    elif kind == "$identify":
        props.update({"$identified_id": a, "$anon_id": b})
    elif kind == "$create_alias":
        props.update({"distinct_id": a, "alias": b})
    else:
        props["$distinct_ids"] = [a, b]
    return {"event": "e" if kind == "event" else kind, "properties": props}


def _prepare(records: list[dict[str, Any]], project: Project) -> list[ev.StoredEvent]:
    for i, record in enumerate(records):
        record["properties"]["$insert_id"] = f"r{i}"
    ctx = ev.IngestContext(ev.Endpoint.IMPORT, int(time.time() * 1000), "127.0.0.1", merge_allowed=True)
    batch = ev.prepare_events(records, lambda _p: project, ctx)
    assert batch.failed == []
    return batch.events


def _answers(
    engine: DuckDBEngine, project_id: int, stored: list[ev.StoredEvent], groups: list[int]
) -> tuple[list[tuple[Any, ...]], int, int]:
    """(identity_map rows, resolved users, unresolved users) of a project after writing `stored` into it in
    write groups of these sizes (what is left after the last group goes in one more)."""
    mine = [replace(e, project_id=project_id) for e in stored]
    start = 0
    for size in groups:
        if start >= len(mine):
            break
        engine.submit(WriteBatch(events=mine[start : start + size])).result()
        start += size
    if start < len(mine):
        engine.submit(WriteBatch(events=mine[start:])).result()
    conn = engine.reader()
    rows = conn.execute(
        "SELECT distinct_id, canonical_id FROM identity_map WHERE project_id = ? ORDER BY ALL", [project_id]
    ).fetchall()
    counts = []
    for resolve in (True, False):
        rel = scoped_events(project_id, None, None, resolve_identity=resolve)
        row = conn.execute(f"SELECT count(DISTINCT distinct_id) FROM ({rel.sql})", rel.params).fetchall()
        counts.append(int(row[0][0]))
    return rows, counts[0], counts[1]


def _check_permutation(records: list[dict[str, Any]], project: Project, data: st.DataObject) -> None:
    stored = _prepare(records, project)
    in_order = sorted(stored, key=lambda e: e.time_ms)
    shuffled = data.draw(st.permutations(stored))
    groups = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=10))
    expected_map = rules.resolve(e.identity for e in stored if e.identity is not None)
    # One store, one project per arrival order (identity is per project).
    with tempfile.TemporaryDirectory() as tmp:
        engine = DuckDBEngine(Path(tmp) / "data", memory_limit="256MB")
        try:
            first = _answers(engine, 1, in_order, [len(in_order)])
            assert dict(first[0]) == expected_map
            # Any arrival order in any write groups; and the two extremes, one event per write group.
            assert _answers(engine, 2, list(shuffled), groups) == first
            assert _answers(engine, 3, in_order, [1] * len(in_order)) == first
            assert _answers(engine, 4, in_order[::-1], [1] * len(in_order)) == first
        finally:
            engine.close()


@settings(max_examples=15, deadline=None)
@given(records=st.lists(simplified_record(), min_size=1, max_size=14), data=st.data())
def test_simplified_answers_do_not_depend_on_arrival_order(records: list[dict[str, Any]], data: st.DataObject) -> None:
    _check_permutation(records, Project(PROJECT_ID, "p", "t", "s", "k", id_merge=IdMerge.SIMPLIFIED), data)


@settings(max_examples=15, deadline=None)
@given(records=st.lists(original_record(), min_size=1, max_size=14), data=st.data())
def test_original_answers_do_not_depend_on_arrival_order(records: list[dict[str, Any]], data: st.DataObject) -> None:
    _check_permutation(records, Project(PROJECT_ID, "p", "t", "s", "k", id_merge=IdMerge.ORIGINAL), data)
