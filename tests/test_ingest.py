"""Ingestion over real HTTP: every body encoding Mixpanel's clients send, the reply formats they
read, the validation rules of /track and /import, and what the server adds to each event.

Every test uses event names of its own on the shared server and reads back through /export."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest

from tests.conftest import export
from tests.server import SECRET, TOKEN, ServerProcess

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

Event = dict[str, Any]


def unique(prefix: str = "ev") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def now_s() -> int:
    return int(time.time())


def tracked(name: str, distinct_id: str = "user-1", **props: Any) -> Event:
    return {"event": name, "properties": {"token": TOKEN, "distinct_id": distinct_id, "time": now_s(), **props}}


def imported(name: str, distinct_id: str = "user-1", **props: Any) -> Event:
    return {"event": name, "properties": {"distinct_id": distinct_id, "time": now_s() - 3600, **props}}


def exported(server: ServerProcess, *names: str, **params: str) -> list[Event]:
    return export(server.url, event=orjson.dumps(list(names)).decode(), **params)


def b64(payload: Any) -> str:
    return base64.b64encode(orjson.dumps(payload)).decode()


# -- body encodings -------------------------------------------------------------------------------


def _form_raw_json(url: str, payload: Any) -> httpx.Response:
    # The JSON left as it is in the form body (curl -d, PyPI SDK for plain values).
    body = b"data=" + orjson.dumps(payload) + b"&verbose=1&ip=0"
    return httpx.post(url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})


def _form_urlencoded_json(url: str, payload: Any) -> httpx.Response:
    return httpx.post(url, data={"data": orjson.dumps(payload).decode(), "verbose": "1"})


def _form_base64(url: str, payload: Any) -> httpx.Response:
    return httpx.post(url, data={"data": b64(payload), "verbose": "1"})


def _get_base64(url: str, payload: Any) -> httpx.Response:
    return httpx.get(url, params={"data": b64(payload), "verbose": "1"})


def _json_array_body(url: str, payload: Any) -> httpx.Response:
    items = payload if isinstance(payload, list) else [payload]
    return httpx.post(f"{url}?verbose=1", content=orjson.dumps(items), headers={"Content-Type": "application/json"})


def _gzip_json_body(url: str, payload: Any) -> httpx.Response:
    items = payload if isinstance(payload, list) else [payload]
    return httpx.post(
        f"{url}?verbose=1",
        content=gzip.compress(orjson.dumps(items)),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


def _beacon_text_plain(url: str, payload: Any) -> httpx.Response:
    body = f"data={quote(b64(payload))}&verbose=1".encode()
    return httpx.post(url, content=body, headers={"Content-Type": "text/plain;charset=UTF-8"})


def _empty_content_encoding(url: str, payload: Any) -> httpx.Response:
    items = payload if isinstance(payload, list) else [payload]
    return httpx.post(
        f"{url}?verbose=1",
        content=orjson.dumps(items),
        headers={"Content-Type": "application/json", "Content-Encoding": ""},
    )


ENCODINGS: dict[str, Callable[[str, Any], httpx.Response]] = {
    "form-raw-json": _form_raw_json,
    "form-urlencoded-json": _form_urlencoded_json,
    "form-base64": _form_base64,
    "get-base64": _get_base64,
    "json-array-body": _json_array_body,
    "gzip-json-body": _gzip_json_body,
    "sendbeacon-text-plain": _beacon_text_plain,
    "empty-content-encoding": _empty_content_encoding,
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_track_accepts_every_body_encoding(server: ServerProcess, encoding: str) -> None:
    name = unique(encoding)
    event = tracked(name, "enc-user", plan="pro", n=3, tags=["a", "b"])
    response = ENCODINGS[encoding](f"{server.url}/track", event)
    assert response.status_code == 200
    assert response.json()["status"] == 1
    assert response.json()["error"] is None
    [row] = exported(server, name)
    props = row["properties"]
    assert row["event"] == name
    assert props["distinct_id"] == "enc-user"
    assert (props["plan"], props["n"], props["tags"]) == ("pro", 3, ["a", "b"])
    assert props["time"] == event["properties"]["time"]
    assert "token" not in props


@pytest.mark.parametrize("encoding", ["form-urlencoded-json", "form-base64", "get-base64", "json-array-body"])
def test_track_accepts_an_array_of_events(server: ServerProcess, encoding: str) -> None:
    name = unique("array")
    batch = [tracked(name, f"arr-{i}", i=i) for i in range(3)]
    assert ENCODINGS[encoding](f"{server.url}/track", batch).json()["status"] == 1
    rows = exported(server, name)
    assert sorted(r["properties"]["i"] for r in rows) == [0, 1, 2]


def test_track_accepts_a_single_json_object_body(server: ServerProcess) -> None:
    name = unique("single-object")
    response = httpx.post(
        f"{server.url}/track?verbose=1",
        content=orjson.dumps(tracked(name)),
        headers={"Content-Type": "application/json"},
    )
    assert response.json()["status"] == 1
    assert len(exported(server, name)) == 1


def test_import_accepts_ndjson(server: ServerProcess) -> None:
    name = unique("ndjson")
    lines = b"\n".join(orjson.dumps(imported(name, f"nd-{i}", i=i)) for i in range(3)) + b"\n"
    response = httpx.post(
        f"{server.url}/import",
        content=lines,
        headers={"Content-Type": "application/x-ndjson"},
        auth=(SECRET, ""),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"code": 200, "num_records_imported": 3, "status": "OK"}
    assert sorted(r["properties"]["i"] for r in exported(server, name)) == [0, 1, 2]


@pytest.mark.parametrize("encoding", ["json-array-body", "gzip-json-body", "empty-content-encoding", "form-base64"])
def test_import_accepts_json_gzip_and_form_bodies(server: ServerProcess, encoding: str) -> None:
    name = unique(f"import-{encoding}")
    batch = [imported(name, "imp-user", i=i) for i in range(2)]
    url = f"{server.url}/import"
    if encoding == "form-base64":
        response = httpx.post(url, data={"data": b64(batch), "strict": "1"}, auth=(SECRET, ""))
    else:
        items = orjson.dumps(batch)
        headers = {"Content-Type": "application/json"}
        if encoding == "gzip-json-body":
            items = gzip.compress(items)
            headers["Content-Encoding"] = "gzip"
        elif encoding == "empty-content-encoding":
            headers["Content-Encoding"] = ""
        response = httpx.post(url, content=items, headers=headers, auth=(SECRET, ""))
    assert response.status_code == 200, response.text
    assert response.json()["num_records_imported"] == 2
    assert len(exported(server, name)) == 2


def test_import_legacy_form_and_get_get_tracking_replies(server: ServerProcess) -> None:
    # npm `mixpanel` sends every call, /import included, as GET ?data=<base64>&verbose=0 and needs exactly `1`;
    # the PyPI SDK posts data=<JSON>&verbose=1 and needs {"status": 1, "error": null}.
    name = unique("import-legacy")
    npm = httpx.get(
        f"{server.url}/import", params={"data": b64(imported(name)), "ip": "0", "verbose": "0"}, auth=(SECRET, "")
    )
    assert (npm.status_code, npm.content) == (200, b"1")
    pypi = httpx.post(
        f"{server.url}/import",
        data={"data": orjson.dumps(imported(name)).decode(), "verbose": "1", "ip": "0"},
        auth=(SECRET, ""),
    )
    assert pypi.json() == {"status": 1, "error": None}
    strict = httpx.get(f"{server.url}/import", params={"data": b64(imported(name)), "strict": "1"}, auth=(SECRET, ""))
    assert strict.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    assert len(exported(server, name)) == 3
    failed = httpx.get(f"{server.url}/import", params={"data": b64({"event": name}), "verbose": "0"}, auth=(SECRET, ""))
    assert failed.status_code == 400
    assert failed.json()["failed_records"][0]["index"] == 0
    assert len(exported(server, name)) == 3


# -- reply formats --------------------------------------------------------------------------------


def test_track_replies_1_or_0_as_text_without_verbose(server: ServerProcess) -> None:
    ok = httpx.post(f"{server.url}/track", data={"data": b64(tracked(unique()))})
    assert (ok.status_code, ok.content) == (200, b"1")
    assert ok.headers["content-type"].startswith("text/plain")
    no_token = {"event": unique(), "properties": {"distinct_id": "x"}}
    bad = httpx.post(f"{server.url}/track", data={"data": b64(no_token)})
    assert (bad.status_code, bad.content) == (200, b"0")


def test_track_verbose_replies_json(server: ServerProcess) -> None:
    ok = httpx.post(f"{server.url}/track", data={"data": b64(tracked(unique())), "verbose": "1"})
    assert ok.json() == {"status": 1, "error": None}
    name = unique("no-token")
    bad = httpx.post(
        f"{server.url}/track", data={"data": b64({"event": name, "properties": {"distinct_id": "x"}}), "verbose": "1"}
    )
    assert bad.status_code == 200
    assert bad.json() == {"status": 0, "error": "token, missing or empty"}
    assert exported(server, name) == []


def test_img_1_answers_a_gif_pixel(server: ServerProcess) -> None:
    name = unique("pixel")
    response = httpx.get(f"{server.url}/track", params={"data": b64(tracked(name)), "img": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert len(exported(server, name)) == 1


def test_redirect_parameter_redirects_after_storing(server: ServerProcess) -> None:
    name = unique("redirect")
    target = "https://example.test/landing?x=1"
    response = httpx.get(f"{server.url}/track", params={"data": b64(tracked(name)), "redirect": target})
    assert response.status_code == 302
    assert response.headers["location"] == target
    assert len(exported(server, name)) == 1


def test_jsonp_callback(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/track", params={"data": b64(tracked(unique())), "callback": "mpCb_1"})
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.text == "mpCb_1(1);"
    verbose = httpx.get(
        f"{server.url}/track", params={"data": b64(tracked(unique())), "callback": "cb", "verbose": "1"}
    )
    assert verbose.text == 'cb({"status":1,"error":null});'
    failed = httpx.get(f"{server.url}/track", params={"data": b64({"event": "x"}), "callback": "cb"})
    assert failed.text == "cb(0);"


# -- /import validation ---------------------------------------------------------------------------


def test_import_strict_partial_success(server: ServerProcess) -> None:
    name = unique("strict")
    now = now_s()
    batch = [
        {"event": name, "properties": {"distinct_id": "s1", "time": now - 60, "$insert_id": "ok-1"}},
        {"event": name, "properties": {"time": now - 60, "$insert_id": "no-distinct-id"}},
        {"event": name, "properties": {"distinct_id": "s3", "time": now + 7 * 3600, "$insert_id": "future-7h"}},
        {"event": name, "properties": {"distinct_id": "s4", "time": "yesterday", "$insert_id": "bad-time"}},
        {"event": name, "properties": {"distinct_id": "s5", "time": now - 60, "$insert_id": "ok-2"}},
    ]
    response = httpx.post(f"{server.url}/import?strict=1", json=batch, auth=(SECRET, ""))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400
    assert body["status"] == "Bad Request"
    assert body["error"] == "some data points in the request failed validation"
    assert body["num_records_imported"] == 2
    failures = {f["index"]: f for f in body["failed_records"]}
    assert sorted(failures) == [1, 2, 3]
    assert failures[1]["$insert_id"] == "no-distinct-id"
    assert failures[1]["field"] == "properties.distinct_id"
    assert failures[1]["message"] == "'properties.distinct_id' is invalid: must not be missing"
    assert failures[2]["$insert_id"] == "future-7h"
    assert failures[2]["field"] == "properties.time"
    assert failures[2]["message"] == "'properties.time' is invalid: must not be in the future"
    assert failures[3]["field"] == "properties.time"
    assert failures[3]["message"] == "'properties.time' is invalid: must be specified as seconds since epoch"
    rows = exported(server, name)
    assert sorted(r["properties"]["$insert_id"] for r in rows) == ["ok-1", "ok-2"]


def test_import_strict_0_stores_valid_rows_and_answers_200(server: ServerProcess) -> None:
    name = unique("lenient")
    batch = [imported(name, "a"), {"event": name, "properties": {"time": now_s()}}]
    response = httpx.post(f"{server.url}/import?strict=0", json=batch, auth=(SECRET, ""))
    assert response.status_code == 200
    assert response.json()["num_records_imported"] == 1
    assert len(exported(server, name)) == 1


def test_time_in_seconds_or_milliseconds(server: ServerProcess) -> None:
    name = unique("units")
    batch = [
        {"event": name, "properties": {"distinct_id": "u", "time": 1704067200, "unit": "s"}},
        {"event": name, "properties": {"distinct_id": "u", "time": 1704067200.5, "unit": "s-float"}},
        {"event": name, "properties": {"distinct_id": "u", "time": 1704067260123, "unit": "ms"}},
    ]
    assert httpx.post(f"{server.url}/import", json=batch, auth=(SECRET, "")).status_code == 200
    by_unit = {r["properties"]["unit"]: r["properties"]["time"] for r in exported(server, name, time_in_ms="true")}
    assert by_unit == {"s": 1704067200000, "s-float": 1704067200500, "ms": 1704067260123}
    seconds = {r["properties"]["unit"]: r["properties"]["time"] for r in exported(server, name)}
    assert seconds == {"s": 1704067200, "s-float": 1704067200, "ms": 1704067260}


def test_future_times_rejected_beyond_an_hour_and_clamped_within(server: ServerProcess) -> None:
    name = unique("future")
    before_ms = int(time.time() * 1000)
    batch = [
        {"event": name, "properties": {"distinct_id": "f", "time": now_s() + 2 * 3600, "which": "2h"}},
        {"event": name, "properties": {"distinct_id": "f", "time": now_s() + 30 * 60, "which": "30min"}},
    ]
    response = httpx.post(f"{server.url}/import?strict=1", json=batch, auth=(SECRET, ""))
    after_ms = int(time.time() * 1000)
    assert response.status_code == 400
    [failure] = response.json()["failed_records"]
    assert failure["index"] == 0
    assert "must not be in the future" in failure["message"]
    [row] = exported(server, name, time_in_ms="true")
    assert row["properties"]["which"] == "30min"
    assert before_ms <= row["properties"]["time"] <= after_ms


def test_track_future_time_beyond_an_hour_is_rejected(server: ServerProcess) -> None:
    name = unique("track-future")
    event = tracked(name)
    event["properties"]["time"] = now_s() + 3 * 3600
    response = httpx.post(f"{server.url}/track", data={"data": b64(event), "verbose": "1"})
    assert response.json()["status"] == 0
    assert "must not be in the future" in response.json()["error"]
    assert exported(server, name) == []


def test_track_accepts_only_the_last_5_days(server: ServerProcess) -> None:
    name = unique("age")
    old = tracked(name, which="6-days")
    old["properties"]["time"] = now_s() - 6 * 86400
    recent = tracked(name, which="4-days")
    recent["properties"]["time"] = now_s() - 4 * 86400
    rejected = httpx.post(f"{server.url}/track", data={"data": b64(old), "verbose": "1"})
    assert rejected.json()["status"] == 0
    assert "5 days" in rejected.json()["error"]
    assert httpx.post(f"{server.url}/track", data={"data": b64(recent), "verbose": "1"}).json()["status"] == 1
    assert [r["properties"]["which"] for r in exported(server, name)] == ["4-days"]
    # /import has no such window.
    assert httpx.post(f"{server.url}/import", json=[old], auth=(SECRET, "")).status_code == 200
    assert len(exported(server, name)) == 2


def test_track_without_time_is_stamped_with_arrival_time(server: ServerProcess) -> None:
    name = unique("no-time")
    event = tracked(name)
    del event["properties"]["time"]
    before = int(time.time() * 1000)
    assert httpx.post(f"{server.url}/track", data={"data": b64(event)}).content == b"1"
    after = int(time.time() * 1000)
    [row] = exported(server, name, time_in_ms="1")
    assert before <= row["properties"]["time"] <= after


def test_import_requires_time(server: ServerProcess) -> None:
    name = unique("import-no-time")
    response = httpx.post(
        f"{server.url}/import", json=[{"event": name, "properties": {"distinct_id": "x"}}], auth=(SECRET, "")
    )
    assert response.status_code == 400
    assert response.json()["failed_records"][0]["field"] == "properties.time"
    assert exported(server, name) == []


def test_simplified_project_derives_distinct_id_from_device_and_user_ids(server: ServerProcess) -> None:
    name = unique("derived")
    device_a, device_b, user_id = unique("dev"), unique("dev"), unique("user")
    batch = [
        {"event": name, "properties": {"time": now_s() - 10, "$device_id": device_a, "which": "device-only"}},
        {"event": name, "properties": {"time": now_s() - 9, "$device_id": device_b, "which": "before-login"}},
        {
            "event": name,
            "properties": {"time": now_s() - 8, "$device_id": device_b, "$user_id": user_id, "which": "login"},
        },
    ]
    assert httpx.post(f"{server.url}/import", json=batch, auth=(SECRET, "")).status_code == 200
    rows = {r["properties"]["which"]: r["properties"] for r in exported(server, name)}
    assert rows["device-only"]["distinct_id"] == f"$device:{device_a}"
    assert rows["login"]["distinct_id"] == user_id
    # The device's earlier event is exported under the user it merged into (https://docs.mixpanel.com/docs/tracking-methods/id-management/identifying-users-simplified).
    assert rows["before-login"]["distinct_id"] == user_id
    assert rows["before-login"]["$distinct_id_before_identity"] == f"$device:{device_b}"


def test_import_accepts_an_empty_distinct_id(server: ServerProcess) -> None:
    name = unique("empty-id")
    response = httpx.post(f"{server.url}/import?strict=1", json=[imported(name, "")], auth=(SECRET, ""))
    assert response.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    [row] = exported(server, name)
    assert row["properties"]["distinct_id"] == ""


def test_disallowed_distinct_ids_fail(server: ServerProcess) -> None:
    name = unique("bad-ids")
    batch = [imported(name, bad) for bad in ("anonymous", "NULL", "undefined", "00000000-0000-0000-0000-000000000000")]
    response = httpx.post(f"{server.url}/import", json=batch, auth=(SECRET, ""))
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["failed_records"]] == ["properties.distinct_id"] * 4
    assert exported(server, name) == []


# -- what the server stores -----------------------------------------------------------------------


def test_server_added_properties_on_track(server: ServerProcess) -> None:
    name = unique("added")
    event = tracked(name, "added-user", **{"$insert_id": "track-insert-1", "color": "red"})
    before = int(time.time() * 1000)
    assert httpx.post(f"{server.url}/track", data={"data": orjson.dumps(event).decode()}).content == b"1"
    after = int(time.time() * 1000)
    [row] = exported(server, name)
    props = row["properties"]
    assert props["$insert_id"] == "track-insert-1"
    assert props["color"] == "red"
    assert props["$mp_api_endpoint"] == "127.0.0.1"
    assert before <= props["$mp_api_timestamp_ms"] <= after
    assert before <= props["mp_processing_time_ms"] <= after
    assert props["$mp_event_size"] == len(orjson.dumps(event))
    assert "$import" not in props
    assert "token" not in props


def test_server_added_properties_on_import(server: ServerProcess) -> None:
    name = unique("added-import")
    event = imported(name, "imp", **{"$insert_id": "import-insert-1"})
    before = int(time.time() * 1000)
    assert httpx.post(f"{server.url}/import", json=[event], auth=(SECRET, "")).status_code == 200
    [row] = exported(server, name)
    props = row["properties"]
    assert props["$import"] is True
    assert props["$insert_id"] == "import-insert-1"
    assert props["mp_processing_time_ms"] >= before
    assert props["$mp_api_timestamp_ms"] >= before
    assert props["$mp_event_size"] == len(orjson.dumps(event))


def test_import_without_insert_id_is_accepted(server: ServerProcess) -> None:
    name = unique("no-insert-id")
    event = imported(name)
    responses = [httpx.post(f"{server.url}/import", json=[event], auth=(SECRET, "")) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    rows = exported(server, name)
    assert len(rows) == 2
    assert all("$insert_id" not in r["properties"] for r in rows)


def test_duplicates_are_stored_and_exported_both(server: ServerProcess) -> None:
    name = unique("dup")
    event = imported(name, "dup-user", **{"$insert_id": "same-insert-id"})
    for _ in range(2):
        assert httpx.post(f"{server.url}/import", json=[event], auth=(SECRET, "")).status_code == 200
    tracked_twice = tracked(name, "dup-user", **{"$insert_id": "same-track-id"})
    assert httpx.post(f"{server.url}/track", json=[tracked_twice, tracked_twice]).content == b"1"
    rows = exported(server, name)
    ids = sorted(r["properties"]["$insert_id"] for r in rows)
    assert ids == ["same-insert-id", "same-insert-id", "same-track-id", "same-track-id"]


def test_ignore_property_drops_the_event(server: ServerProcess) -> None:
    name = unique("ignored")
    kept = tracked(name, which="kept")
    dropped = tracked(name, which="dropped", **{"$ignore": True})
    response = httpx.post(f"{server.url}/track", data={"data": b64([kept, dropped]), "verbose": "1"})
    assert response.json() == {"status": 1, "error": None}
    imported_ignored = imported(name, which="import-dropped", **{"$ignore": True})
    assert httpx.post(f"{server.url}/import", json=[imported_ignored], auth=(SECRET, "")).status_code == 200
    assert [r["properties"]["which"] for r in exported(server, name)] == ["kept"]


def test_simplified_project_refuses_identity_events_on_import(server: ServerProcess) -> None:
    name = unique("with-identify")
    batch = [
        imported(name, "plain"),
        {"event": "$identify", "properties": {"distinct_id": "a", "$anon_id": "b", "time": now_s() - 60}},
    ]
    response = httpx.post(f"{server.url}/import?strict=1", json=batch, auth=(SECRET, ""))
    assert response.status_code == 400
    body = response.json()
    assert body["num_records_imported"] == 0
    assert body["failed_records"] == [
        "identity events are not allowed when project is using simplified identity management"
    ]
    assert exported(server, name) == []


# -- HTTP details -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/track/", "/engage/", "/groups/", "/import/"])
def test_trailing_slashes(server: ServerProcess, path: str) -> None:
    name = unique("slash")
    payloads: dict[str, Any] = {
        "/track/": tracked(name),
        "/engage/": {"$token": TOKEN, "$distinct_id": name, "$set": {"a": 1}},
        "/groups/": {"$token": TOKEN, "$group_key": "company", "$group_id": name, "$set": {"a": 1}},
        "/import/": imported(name),
    }
    response = httpx.post(f"{server.url}{path}", data={"data": b64(payloads[path]), "verbose": "1"}, auth=(SECRET, ""))
    assert response.status_code == 200
    assert response.json()["status"] == 1
    if path in ("/track/", "/import/"):
        assert len(exported(server, name)) == 1
    slash_export = httpx.get(
        f"{server.url}/api/2.0/export/",
        params={"from_date": "2020-01-01", "to_date": time.strftime("%Y-%m-%d", time.gmtime()), "limit": "1"},
        auth=(SECRET, ""),
    )
    assert slash_export.status_code == 200


def test_cors_echoes_origin_with_credentials(server: ServerProcess) -> None:
    origin = "http://localhost:3000"
    response = httpx.post(f"{server.url}/track", data={"data": b64(tracked(unique()))}, headers={"Origin": origin})
    assert response.content == b"1"
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    plain = httpx.post(f"{server.url}/track", data={"data": b64(tracked(unique()))})
    assert "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize("path", ["/track/", "/engage", "/import", "/api/2.0/export"])
def test_cors_preflight_is_answered(server: ServerProcess, path: str) -> None:
    origin = "http://127.0.0.1:5173"
    response = httpx.options(
        f"{server.url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-custom",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type,x-custom"


def test_unknown_path_is_a_404_in_mixpanel_format(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/api/2.0/no-such-thing?x=1")
    assert response.status_code == 404
    body = response.json()
    assert body["request"] == "/api/2.0/no-such-thing?x=1"
    assert "no-such-thing" in body["error"]
    app = httpx.get(f"{server.url}/api/app/no-such-thing")
    assert app.status_code == 404
    assert app.json()["status"] == "error"


def test_extra_parameters_are_ignored(server: ServerProcess) -> None:
    # mixpanel-browser adds ip=1, _=<ms> and test=1.
    name = unique("extra-params")
    query = urlencode({"ip": "1", "_": str(int(time.time() * 1000)), "test": "1", "verbose": "1"})
    response = httpx.post(f"{server.url}/track?{query}", data={"data": b64(tracked(name))})
    assert response.json()["status"] == 1
    assert len(exported(server, name)) == 1


@pytest.mark.parametrize("path", ["/track/extra", "/engage/x/y", "/trackers", "/import/extra"])
def test_unknown_path_under_an_ingestion_prefix_is_a_404(server: ServerProcess, path: str) -> None:
    response = httpx.post(f"{server.url}{path}", data={"data": b64(tracked(unique()))})
    assert response.status_code == 404


def test_wrong_method_is_a_405(server: ServerProcess) -> None:
    assert httpx.put(f"{server.url}/track", content=b"data=e30=").status_code == 405
    assert httpx.delete(f"{server.url}/import", auth=(SECRET, "")).status_code == 405


def test_long_strings_and_names_are_truncated_to_255(server: ServerProcess) -> None:
    name = unique("truncate")
    long_key = "k" * 300
    event = tracked(name, text="x" * 1000, nested={"inner": "y" * 300}, items=["z" * 400], **{long_key: 1})
    assert httpx.post(f"{server.url}/track", data={"data": b64(event)}).content == b"1"
    [row] = exported(server, name)
    props = row["properties"]
    assert props["text"] == "x" * 255
    assert props["nested"] == {"inner": "y" * 255}
    assert props["items"] == ["z" * 255]
    assert props["k" * 255] == 1
    assert long_key not in props


def test_ip_property_is_consumed_and_ip_1_derives_a_distinct_id(server: ServerProcess) -> None:
    name = unique("ip")
    with_ip = tracked(name, which="ip-prop", ip="203.0.113.9")
    anonymous = [{"event": name, "properties": {"token": TOKEN, "which": f"anon-{i}"}} for i in range(2)]
    assert httpx.post(f"{server.url}/track", data={"data": b64(with_ip)}).content == b"1"
    assert httpx.post(f"{server.url}/track?ip=1", data={"data": b64(anonymous)}).content == b"1"
    no_ip = {"event": name, "properties": {"token": TOKEN, "which": "ip-0"}}
    assert httpx.post(f"{server.url}/track?ip=0", data={"data": b64(no_ip)}).content == b"1"
    rows = {r["properties"]["which"]: r["properties"] for r in exported(server, name)}
    assert "ip" not in rows["ip-prop"]
    derived = rows["anon-0"]["distinct_id"]
    assert derived and derived == rows["anon-1"]["distinct_id"]
    assert rows["ip-0"]["distinct_id"] == ""


@pytest.mark.parametrize(
    ("host", "stored"),
    [
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("[2001:db8::7]:443", "[2001:db8::7]"),
        ("api.example.com:8443", "api.example.com"),
        ("api.example.com", "api.example.com"),
        ("127.0.0.1:80", "127.0.0.1"),
    ],
)
def test_mp_api_endpoint_is_the_host_without_its_port(server: ServerProcess, host: str, stored: str) -> None:
    name = unique("host")
    event = tracked(name, "host-user")
    response = httpx.post(f"{server.url}/track", data={"data": orjson.dumps(event).decode()}, headers={"Host": host})
    assert response.content == b"1"
    [row] = exported(server, name)
    assert row["properties"]["$mp_api_endpoint"] == stored
