"""Events whose properties need no per-value look are stored without the per-property loop
(mixhouse/domain/events.py `_plain_properties`); what is stored must be exactly what the loop stores, at
every edge of the 255-character cut: keys and values, multi-byte characters, escapes, nested values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mixhouse.domain import events as ev
from mixhouse.domain.identity import LinkKind, link_of
from mixhouse.domain.project import IdMerge, Project

PROJECT = Project(id=7, name="p", token="t", secret="s", api_key="k")
CTX = ev.IngestContext(endpoint=ev.Endpoint.IMPORT, received_ms=1_704_153_600_000, api_host="127.0.0.1")
A255, A256 = "a" * 255, "a" * 256

CASES: list[tuple[str, dict[str, Any], bool]] = [
    # (name, extra properties, whether the fast path may take it)
    ("plain", {"plan": "pro", "n": 3, "x": 1.5, "ok": True, "no": False, "nil": None}, True),
    ("value of 255 characters", {"v": A255}, True),
    ("value of 256 characters", {"v": A256}, False),
    ("key of 255 characters", {A255: 1}, True),
    ("key of 256 characters", {A256: 1}, False),
    ("255 two-byte characters", {"v": "é" * 255}, False),  # 510 bytes: the loop decides, nothing is cut
    ("256 two-byte characters", {"v": "é" * 256}, False),
    ("256 characters with an escaped quote", {"v": "a" * 128 + '"' + "a" * 127}, False),
    ("255 characters with escaped quotes", {"v": '"' * 255}, False),
    ("a backslash", {"v": "C:\\temp"}, False),
    ("a large number", {"v": 1e300, "w": -(2**63)}, True),
    ("a list", {"v": ["a", A256]}, False),
    ("an object", {"v": {"k": A256}}, False),
    ("an emoji of 300", {"v": "😀" * 300}, False),
    ("consumed keys", {"token": "t", "ip": "1.2.3.4", "$ip": "1.2.3.4"}, True),
]


def record(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "Viewed",
        "properties": {"time": 1_704_067_200, "distinct_id": "u1", "$insert_id": "abc-1", **extra},
    }


def prepared(records: list[Any]) -> list[ev.StoredEvent]:
    batch = ev.prepare_events(records, lambda _props: PROJECT, CTX)
    assert not batch.failed
    return batch.events


@pytest.mark.parametrize(("name", "extra", "fast"), CASES, ids=[c[0] for c in CASES])
def test_the_fast_path_stores_what_the_loop_stores(
    name: str, extra: dict[str, Any], fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = record(extra)
    taken = ev._plain_properties(rec["properties"], orjson.dumps(rec)) is not None
    if not fast:
        assert not taken, "a value that needs a look must take the loop"
    else:
        assert taken, "a plain event should not take the loop"
    (ours,) = prepared([record(extra)])
    monkeypatch.setattr(ev, "_plain_properties", lambda _props, _encoded: None)
    (loop,) = prepared([record(extra)])
    assert ours.properties == loop.properties
    assert list(orjson.loads(ours.properties)) == list(orjson.loads(loop.properties))  # key order too
    assert ours.values == orjson.loads(ours.properties)  # what the writer reads instead of parsing


def test_the_cut_is_at_255_characters() -> None:
    (short, long_) = prepared([record({"v": A255, A256: "k"}), record({"v": "é" * 300})])
    stored = orjson.loads(short.properties)
    assert stored["v"] == A255 and stored[A255] == "k" and A256 not in stored
    assert orjson.loads(long_.properties)["v"] == "é" * 255
    assert "time" not in stored and "distinct_id" not in stored


def test_the_senders_properties_are_left_as_they_were() -> None:
    rec = record({"token": "t", "plan": "pro"})
    before = orjson.dumps(rec)
    prepared([rec])
    assert orjson.dumps(rec) == before


LINK_CASES = [
    ("Viewed", {"$user_id": "u", "$device_id": "d"}),
    ("Viewed", {"$user_id": "u"}),
    ("Viewed", {"$device_id": "d"}),
    ("Viewed", {"$user_id": "u", "$device_id": "$device:"}),
    ("$identify", {"$identified_id": "u", "$anon_id": "a"}),
    ("$identify", {"distinct_id": "u", "$anon_distinct_id": "a"}),
    ("$create_alias", {"distinct_id": "u", "alias": "a"}),
    ("$merge", {"$distinct_ids": ["a", "b"]}),
    ("Viewed", {"$identified_id": "u", "$anon_id": "a", "alias": "x", "$distinct_ids": ["a", "b"]}),
]


@pytest.mark.parametrize("id_merge", list(IdMerge))
@pytest.mark.parametrize(("name", "extra"), LINK_CASES)
def test_events_that_skip_the_identity_look_carry_no_link(name: str, extra: dict[str, Any], id_merge: IdMerge) -> None:
    """_prepare_one calls identity.link_of only for the events that may carry a link; the others must be
    exactly those for which it returns None."""
    assert {k.value for k in LinkKind if k is not LinkKind.DEVICE} == ev.IDENTITY_EVENTS
    project = Project(id=7, name="p", token="t", secret="s", api_key="k", id_merge=id_merge)
    props = {"time": 1_704_067_200, "distinct_id": "u1", **extra}
    ctx = ev.IngestContext(endpoint=ev.Endpoint.IMPORT, received_ms=1_704_153_600_000, api_host="h", merge_allowed=True)
    expected = link_of(name, props, 1_704_067_200_000, id_merge, merge_allowed=True)
    batch = ev.prepare_events([{"event": name, "properties": props}], lambda _props: project, ctx)
    if batch.failed:  # Simplified refuses identity events before this point (ingestion.import_events)
        return
    (stored,) = batch.events
    assert stored.identity == expected
