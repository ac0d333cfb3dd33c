"""A whole /import batch of valid, flat events is prepared in a few passes over all its events
(mixhouse/domain/events.py `_prepare_plain_batch`); in a batch with events that need a look, those take
the per-event path (`_prepare_one`) and the others the batch path together (`_prepare_plain_events`).
Every path must give the same stored events, failures and ignored counts as the per-event path alone, at
every edge of every check the batch path makes: here each edge is tried on both sides, by hand, by
hypothesis, and once over HTTP."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixhouse.domain import events as ev
from mixhouse.domain.project import IdMerge, Project
from mixhouse.geo.builtin import CountryTable
from tests.conftest import export
from tests.fuzzing import examples
from tests.server import SECRET, ServerProcess

SIMPLIFIED = Project(id=7, name="p", token="t", secret="s", api_key="k")
ORIGINAL = Project(id=7, name="p", token="t", secret="s", api_key="k", id_merge=IdMerge.ORIGINAL)
NOW_MS = 1_704_153_600_000  # 2024-01-02T00:00:00Z: fixed, whatever the day the tests run
CTX = ev.IngestContext(endpoint=ev.Endpoint.IMPORT, received_ms=NOW_MS, api_host="127.0.0.1")
GEO_CTX = ev.IngestContext(endpoint=ev.Endpoint.IMPORT, received_ms=NOW_MS, api_host="h", geo=CountryTable())
A255, A256 = "a" * 255, "a" * 256
T = 1_704_067_200  # 2024-01-01T00:00:00Z


def plain(i: int, **props: Any) -> dict[str, Any]:
    """A valid event of the usual shape, its properties then `props` (None: the property left out)."""
    base: dict[str, Any] = {
        "time": T + i,
        "distinct_id": f"user-{i}",
        "$insert_id": f"ins-{i}",
        "plan": ("free", "pro")[i % 2],
        "amount": i + 0.5,
        "ok": i % 2 == 0,
        "nil": None,
    }
    base.update(props)
    return {"event": "Viewed Page", "properties": {k: v for k, v in base.items() if v is not None or k == "nil"}}


def batch_path_takes(records: list[Any], project: Project = SIMPLIFIED, ctx: ev.IngestContext = CTX) -> bool:
    """Whether the batch path takes the whole batch (a copy of it)."""
    copy = orjson.loads(orjson.dumps(records))
    encoded = ev.encoded_records(copy)
    return encoded is not None and ev._prepare_plain_batch(copy, encoded, project, ctx) is not None


def both(
    records: list[Any], project: Project = SIMPLIFIED, ctx: ev.IngestContext = CTX
) -> tuple[ev.PreparedBatch, ev.PreparedBatch, bool]:
    """(what prepare_events answers for an /import batch, what the per-event path answers, whether the batch
    path took it), each from a copy of its own."""
    sent = orjson.dumps(records)
    taken = batch_path_takes(records, project, ctx)
    ours = ev.prepare_events(orjson.loads(sent), lambda _p: project, ctx, project=project)
    loop = ev.prepare_events(orjson.loads(sent), lambda _p: project, ctx)
    return ours, loop, taken


def assert_same(ours: ev.PreparedBatch, loop: ev.PreparedBatch) -> None:
    assert ours.failed == loop.failed
    assert ours.ignored == loop.ignored
    assert ours.events == loop.events  # every field but `values`
    for a, b in zip(ours.events, loop.events, strict=True):
        assert list(orjson.loads(a.properties)) == list(orjson.loads(b.properties))  # key order too
        assert a.values == orjson.loads(a.properties) == b.values
        assert list(a.values or {}) == list(b.values or {})


# (name, the one event that varies among plain ones, whether the batch path may take the batch)
EDGES: list[tuple[str, dict[str, Any] | Any, bool]] = [
    ("plain", plain(9), True),
    ("value of 255 characters", plain(9, v=A255), True),
    ("value of 256 characters", plain(9, v=A256), False),
    ("key of 255 characters", plain(9, **{A255: 1}), True),
    ("key of 256 characters", plain(9, **{A256: 1}), False),
    ("event name of 255 characters", {**plain(9), "event": A255}, True),
    ("event name of 256 characters", {**plain(9), "event": A256}, False),
    ("63 four-byte characters", plain(9, v="😀" * 63), True),
    ("64 four-byte characters", plain(9, v="😀" * 64), False),  # 256 bytes: the loop decides, nothing cut
    ("255 two-byte characters", plain(9, v="é" * 255), False),
    ("256 two-byte characters", plain(9, v="é" * 256), False),
    ("a quote", plain(9, v='say "hi"'), False),
    ("a backslash", plain(9, v="C:\\temp"), False),
    ("a newline", plain(9, v="a\nb"), False),
    ("a brace in a string", plain(9, v="{x}"), False),
    ("a bracket in a string", plain(9, v="[x]"), False),
    ("a list", plain(9, v=["a", "b"]), False),
    ("an empty list", plain(9, v=[]), False),
    ("an object", plain(9, v={"k": "v"}), False),
    ("an object at the top", {**plain(9), "extra": {}}, False),
    ("another key at the top", {**plain(9), "extra": 1}, True),
    ("255 properties", plain(9, **{f"p{i}": i for i in range(255 - 7)}), True),
    ("256 properties", plain(9, **{f"p{i}": i for i in range(256 - 7)}), False),
    ("large numbers", plain(9, v=1e300, w=-(2**63), x=2**64 - 1), True),
    ("time in milliseconds", plain(9, time=T * 1000 + 5), True),
    ("time as a float", plain(9, time=T + 0.0005), True),
    ("time as a float in milliseconds", plain(9, time=T * 1000 + 0.5), True),
    ("time at the earliest", plain(9, time=31_536_000), True),
    ("time before the earliest", plain(9, time=31_535_999), False),
    ("time just past now", plain(9, time=NOW_MS // 1000 + 10), True),  # stored as now
    ("time an hour ahead", plain(9, time=(NOW_MS + 3_600_000) // 1000), True),
    ("time past an hour ahead", plain(9, time=(NOW_MS + 3_600_000) // 1000 + 1), False),
    ("time as a string", plain(9, time=str(T)), False),
    ("time as a boolean", plain(9, time=True), False),
    ("time null", {"event": "E", "properties": {"time": None, "distinct_id": "u"}}, False),
    ("time missing", {"event": "E", "properties": {"distinct_id": "u"}}, False),
    ("no insert id", {"event": "E", "properties": {"time": T, "distinct_id": "u"}}, True),
    ("insert id null", {"event": "E", "properties": {"time": T, "distinct_id": "u", "$insert_id": None}}, True),
    ("insert id of 36 characters", plain(9, **{"$insert_id": "a-" * 18}), True),
    ("insert id of 37 characters", plain(9, **{"$insert_id": "a-" * 18 + "b"}), False),
    ("insert id with an underscore", plain(9, **{"$insert_id": "a_b"}), False),
    ("insert id empty", plain(9, **{"$insert_id": ""}), False),
    ("insert id a placeholder", plain(9, **{"$insert_id": "Undefined"}), False),
    ("insert id a number", plain(9, **{"$insert_id": 12}), False),
    ("distinct id of 255 characters", plain(9, distinct_id=A255), True),
    ("distinct id empty", plain(9, distinct_id=""), False),
    ("distinct id a placeholder", plain(9, distinct_id="NULL"), False),
    ("distinct id a number", plain(9, distinct_id=42), False),
    ("distinct id missing", {"event": "E", "properties": {"time": T}}, False),
    ("$ignore true", plain(9, **{"$ignore": True}), False),
    ("$ignore false", plain(9, **{"$ignore": False}), True),
    ("$ignore 1", plain(9, **{"$ignore": 1}), False),
    ("consumed keys", plain(9, token="t", ip="1.2.3.4", **{"$ip": "5.6.7.8"}), True),
    ("keys the server sets", plain(9, **{"$mp_event_size": 1, "$import": False, "mp_processing_time_ms": 2}), True),
    ("an identity event", {**plain(9), "event": "$identify"}, False),
    ("a blank event name", {**plain(9), "event": "  "}, False),
    ("a numeric event name", {**plain(9), "event": 5}, False),
    ("no properties", {"event": "E"}, False),
    ("properties null", {"event": "E", "properties": None}, False),
    ("properties a list", {"event": "E", "properties": []}, False),
    ("not an object", "E", False),
    ("$user_id", plain(9, **{"$user_id": "u"}), False),
    ("$device_id", plain(9, **{"$device_id": "d"}), False),
]


@pytest.mark.parametrize(("name", "varied", "taken"), EDGES, ids=[e[0] for e in EDGES])
def test_both_paths_store_the_same_at_every_edge(name: str, varied: Any, taken: bool) -> None:
    records = [plain(1), varied, plain(2)]
    ours, loop, took = both(records)
    assert took is taken, "the batch path took a batch it must leave" if took else "a plain batch took the loop"
    assert_same(ours, loop)


@pytest.mark.parametrize(
    ("extra", "taken"),
    [({}, True), ({"$user_id": "u"}, True), ({"$device_id": "d", "$user_id": "u"}, True), ({"distinct_id": ""}, False)],
)
def test_original_id_merge(extra: dict[str, Any], taken: bool) -> None:
    """Only Simplified ID Merge derives the distinct id from $user_id/$device_id."""
    ours, loop, took = both([plain(1), plain(2, **extra)], ORIGINAL)
    assert took is taken
    assert_same(ours, loop)


@pytest.mark.parametrize(
    ("records", "ctx", "taken"),
    [
        ([plain(1), plain(2)], GEO_CTX, True),  # nothing to locate
        ([plain(1), plain(2, ip="81.2.69.160")], GEO_CTX, False),
        ([plain(1), plain(2, **{"$ip": "8.8.8.8"})], GEO_CTX, False),
        ([plain(1), plain(2, ip="0")], GEO_CTX, False),
        ([plain(1), plain(2)], replace(GEO_CTX, locate_request=True, client_ip="8.8.8.8"), False),
    ],
)
def test_geolocation(records: list[Any], ctx: ev.IngestContext, taken: bool) -> None:
    ours, loop, took = both(records, ctx=ctx)
    assert took is taken
    assert_same(ours, loop)


MIXED: list[tuple[str, list[Any], set[int] | None]] = [
    # (name, batch, the events the batch path takes within it: None when all take the per-event path)
    ("a list and an escape", [plain(0), plain(1, v=["a"]), plain(2), plain(3, v="x\\y"), plain(4)], {0, 2, 4}),
    ("a long string first", [plain(0, v=A256), plain(1), plain(2)], {1, 2}),
    ("a too long list", [plain(0), plain(1, v=list(range(256))), plain(2)], {0, 2}),
    ("a deep object", [plain(0), plain(1, v={"a": {"b": {"c": {}}}}), plain(2)], {0, 2}),
    ("an ignored object", [plain(0), plain(1, v={"a": 1}, **{"$ignore": True}), plain(2)], {0, 2}),
    ("an object in an event with a bad time", [plain(0), plain(1, v={"a": 1}, time="x")], {0}),
    ("a bad time in a flat event", [plain(0), plain(1, time="x"), plain(2, v=[1])], None),
    ("an escape in every event", [plain(0, v="\\"), plain(1, v="\\")], None),
    ("an identity event among them", [plain(0), {**plain(1), "event": "$identify"}, plain(2, v=[1])], None),
    ("an address to locate among them", [plain(0), plain(1, ip="8.8.8.8"), plain(2, v=[1])], None),
]


@pytest.mark.parametrize(("name", "records", "taken"), MIXED, ids=[m[0] for m in MIXED])
def test_the_plain_events_of_a_mixed_batch(name: str, records: list[Any], taken: set[int] | None) -> None:
    """A batch the batch path refuses because of some events' JSON: the others take it together, the
    rest the per-event path, in the batch's order; anything else refused sends every event to the loop."""
    copy = orjson.loads(orjson.dumps(records))
    plain_events = ev._prepare_plain_events(copy, ev.encoded_records(copy) or [], ORIGINAL, GEO_CTX)
    assert (None if plain_events is None else set(plain_events)) == taken
    for ctx in (CTX, GEO_CTX):
        for project in (SIMPLIFIED, ORIGINAL):
            ours, loop, took = both(records, project, ctx)
            assert not took
            assert_same(ours, loop)


def test_a_batch_path_event_is_what_the_server_stores() -> None:
    ours, _, taken = both([plain(3, token="t", ip="1.2.3.4")])
    assert taken
    (stored,) = ours.events
    assert (stored.project_id, stored.time_ms, stored.event) == (7, (T + 3) * 1000, "Viewed Page")
    assert (stored.distinct_id, stored.insert_id, stored.identity) == ("user-3", "ins-3", None)
    assert list(orjson.loads(stored.properties)) == [
        "$insert_id",
        "plan",
        "amount",
        "ok",
        "nil",
        "$import",
        "$mp_api_endpoint",
        "$mp_api_timestamp_ms",
        "$mp_event_size",
        "mp_processing_time_ms",
    ]
    assert stored.values is not None
    assert stored.values["$mp_event_size"] == len(orjson.dumps(plain(3, token="t", ip="1.2.3.4")))


def test_other_endpoints_and_an_empty_batch_take_the_loop() -> None:
    track = ev.IngestContext(endpoint=ev.Endpoint.TRACK, received_ms=NOW_MS, api_host="h")
    assert not batch_path_takes([])
    records = [plain(1, time=T - 10 * 86_400)]  # older than /track takes; /import would take it
    ours = ev.prepare_events(records, lambda _p: SIMPLIFIED, track, project=SIMPLIFIED)
    assert ours.failed and ours.failed[0].message.startswith("'properties.time' is invalid: /track accepts")


# -- hypothesis: batches near every edge, both paths --------------------------------------------------------

EDGE_TEXT = st.sampled_from(["", " ", A255, A256, "é" * 128, "😀" * 64, '"', "\\", "{", "[", "\n", "null", "0"])
TEXT = st.text(alphabet='ab{["\\\n é😀-', max_size=40) | EDGE_TEXT
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
VALUE = SCALAR | st.lists(SCALAR, max_size=2) | st.dictionaries(TEXT, SCALAR, max_size=2)
TIME = st.sampled_from([T, T + 0.25, T * 1000, 31_535_999, NOW_MS // 1000 + 4000, "1", True, None]) | st.integers(
    31_000_000, NOW_MS + 3_700_000
)
INSERT_ID = st.sampled_from(["a" * 36, "a" * 37, "", "null", "x_y", 3]) | st.text(
    alphabet="aZ9-", min_size=1, max_size=8
)
DISTINCT_ID = st.sampled_from(["", "anon", "u1", A255, A256, 7, None]) | st.text(alphabet="aé-", max_size=6)
KEY = st.sampled_from(["plan", "token", "ip", "$ip", "$ignore", "$user_id", "$device_id", "$import", "$mp_event_size"])


@st.composite
def event_records(draw: st.DrawFn) -> Any:
    props: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        props["time"] = draw(TIME)
    if draw(st.integers(0, 9)):
        props["distinct_id"] = draw(DISTINCT_ID)
    if draw(st.booleans()):
        props["$insert_id"] = draw(INSERT_ID)
    props.update(draw(st.dictionaries(KEY | TEXT, SCALAR, max_size=3)))
    if draw(st.integers(0, 9)) == 0:
        props.update(draw(st.dictionaries(TEXT, VALUE, max_size=2)))
    name = draw(st.sampled_from(["Viewed", "Signed Up", " ", "$merge", A256]) | TEXT)
    return {"event": name, "properties": props} if draw(st.integers(0, 30)) else draw(VALUE)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_records(), min_size=1, max_size=4), st.sampled_from([SIMPLIFIED, ORIGINAL]), st.booleans())
def test_both_paths_agree_on_any_batch(records: list[Any], project: Project, geo: bool) -> None:
    ours, loop, _ = both(records, project, GEO_CTX if geo else CTX)
    assert_same(ours, loop)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.builds(
            lambda i, extra: plain(i, **extra),
            st.integers(0, 10**6),
            st.dictionaries(KEY | st.text(alphabet="ab$_", min_size=1, max_size=8), SCALAR, max_size=3),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_both_paths_agree_on_plain_batches(records: list[Any]) -> None:
    """Mostly batches the batch path takes (the previous test mostly finds a reason to leave)."""
    ours, loop, _ = both(records)
    assert_same(ours, loop)


# -- over HTTP ----------------------------------------------------------------------------------------------


def test_the_server_stores_the_same_whichever_path_a_batch_takes(server: ServerProcess) -> None:
    """The same events in two /import requests, one that the batch path takes and one it leaves (a fourth
    event with a brace in a string): exported, they differ only in their name and arrival time."""
    run = uuid.uuid4().hex[:8]
    events = [plain(i, run=run, token="t") for i in range(3)]
    batch_path = [{**e, "event": f"batch-{run}"} for e in events]
    per_event = [{**e, "event": f"loops-{run}"} for e in events] + [{**plain(4), "event": f"brace-{run}", "note": "{"}]
    assert batch_path_takes(batch_path) and not batch_path_takes(per_event)
    for batch in (batch_path, per_event):
        response = httpx.post(f"{server.url}/import?strict=1", content=orjson.dumps(batch), auth=(SECRET, ""))
        assert response.json() == {"code": 200, "num_records_imported": len(batch), "status": "OK"}, response.text

    def stored(name: str) -> list[dict[str, Any]]:
        rows = export(server.url, event=orjson.dumps([name]).decode(), from_date="2023-12-31", to_date="2024-01-02")
        out = []
        for row in sorted(rows, key=lambda r: str(r["properties"]["$insert_id"])):  # type: ignore[index]
            props = dict(row["properties"])  # type: ignore[call-overload]
            for arrival in ("$mp_api_timestamp_ms", "mp_processing_time_ms"):
                assert isinstance(props.pop(arrival), int)
            out.append(props)
        return out

    taken, left = stored(f"batch-{run}"), stored(f"loops-{run}")
    assert len(taken) == 3 and taken == left
    assert [list(p) for p in taken] == [list(p) for p in left]
    assert taken[0]["$mp_event_size"] == len(orjson.dumps(batch_path[0]))


@pytest.mark.parametrize(
    ("records", "found"),
    [
        ([], False),
        ([{"event": "x"}, {"event": "$merge"}], True),
        ([{"event": "x"}, {}], False),
        (["$merge"], False),  # not an object: not an event
        ([1, {"event": "$create_alias"}], True),
        ([{"event": ["$merge"]}, {"event": "$identify"}], True),  # an unhashable name before it
        ([{"event": ["$merge"]}], False),
        ([{"event": {"$merge": 1}}, {"event": 5}], False),
    ],
)
def test_identity_events_in_a_batch(records: list[Any], found: bool) -> None:
    """What refuses a whole /import batch under Simplified ID Merge (one pass in C, or the per-record look
    when a record is not an object or its name cannot be hashed)."""
    assert ev.has_identity_events(records) is found
