"""Bad input: each answer is in the Mixpanel format of the endpoint's family with Mixpanel's status,
nothing that was rejected is stored, and nothing is ever a 500.

/track, /engage and /groups answer bad data with HTTP 200 and `0` (or `{"status": 0, "error"}` with
verbose=1), except 413 for oversize requests; /import answers `{"code", "error", "status"}` with the
HTTP status; export answers `{"request", "error"}`."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixhouse.catalog import Catalog
from mixhouse.domain.project import IdMerge
from mixhouse.engine.duckdb import DuckDBEngine
from tests.conftest import export, today
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess

Send = Callable[[str, str], httpx.Response]  # (base url, unique event name) -> response
TWO_MB = 2 * 1024 * 1024


def unique() -> str:
    return f"bad-{uuid.uuid4().hex[:12]}"


def ok_event(name: str, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"token": TOKEN, "distinct_id": "bad-user", "time": int(time.time()), **props}}


def b64(payload: Any) -> str:
    return base64.b64encode(orjson.dumps(payload)).decode()


DEEP = "__deep__"


def deep(payload: Any, depth: int = 300) -> str:
    """The JSON of payload with every DEEP string replaced by lists nested `depth` deep: more than
    orjson (and so the server) can encode again, though it parses."""
    return orjson.dumps(payload).decode().replace(f'"{DEEP}"', "[" * depth + "]" * depth)


def json_post(path: str, payload: bytes, **headers: str) -> Send:
    def send(base: str, name: str) -> httpx.Response:
        body = payload.replace(b"NAME", name.encode())
        return httpx.post(
            f"{base}{path}", content=body, headers={"Content-Type": "application/json", **headers}, auth=(SECRET, "")
        )

    return send


def form_post(path: str, data: Callable[[str], str], **extra: str) -> Send:
    def send(base: str, name: str) -> httpx.Response:
        return httpx.post(f"{base}{path}", data={"data": data(name), **extra}, auth=(SECRET, ""))

    return send


def oversize_batch(path: str) -> Send:
    def send(base: str, name: str) -> httpx.Response:
        return httpx.post(f"{base}{path}?verbose=1", json=[ok_event(name)] * 2001, auth=(SECRET, ""))

    return send


def oversize_body(path: str) -> Send:
    def send(base: str, name: str) -> httpx.Response:
        event = ok_event(name, pad="x" * 2000)
        count = TWO_MB // len(orjson.dumps(event)) + 10  # under 2000 events, over 2 MB
        assert count < 2000
        return httpx.post(f"{base}{path}?verbose=1", json=[event] * count, auth=(SECRET, ""))

    return send


def bad_gzip(path: str) -> Send:
    def send(base: str, name: str) -> httpx.Response:
        body = gzip.compress(orjson.dumps([ok_event(name)]))[:-12]  # truncated stream
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return httpx.post(f"{base}{path}?verbose=1", content=body, headers=headers, auth=(SECRET, ""))

    return send


def gzip_bomb(path: str) -> Send:
    def send(base: str, name: str) -> httpx.Response:
        body = gzip.compress(orjson.dumps([ok_event(name, pad=" " * (3 * 1024 * 1024))]))
        assert len(body) < 100_000
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return httpx.post(f"{base}{path}?verbose=1", content=body, headers=headers, auth=(SECRET, ""))

    return send


# -- /track ------------------------------------------------------------------------------------------

TRACK_CASES: dict[str, tuple[Send, int, str]] = {
    # name: (request, HTTP status, fragment of the verbose error)
    "malformed-json-in-data": (form_post("/track", lambda n: '{"event": "' + n + '", ', verbose="1"), 200, "JSON"),
    "malformed-json-body": (json_post("/track?verbose=1", b'[{"event": "NAME", "properties": {'), 200, "JSON"),
    "bad-base64": (form_post("/track", lambda n: "eyJldmVudCI6!!!" + n, verbose="1"), 200, "base64"),
    "base64-of-non-json": (
        form_post("/track", lambda n: base64.b64encode(b"not json " + n.encode()).decode(), verbose="1"),
        200,
        "JSON",
    ),
    "data-is-a-number": (form_post("/track", lambda n: "12345", verbose="1"), 200, ""),
    "empty-data": (form_post("/track", lambda n: "", verbose="1"), 200, "data"),
    "event-not-a-string": (
        form_post("/track", lambda n: orjson.dumps({**ok_event(n), "event": 7, "n": n}).decode(), verbose="1"),
        200,
        "event",
    ),
    "properties-a-list": (
        form_post("/track", lambda n: orjson.dumps({"event": n, "properties": [TOKEN]}).decode(), verbose="1"),
        200,
        "properties",
    ),
    "time-a-string": (form_post("/track", lambda n: b64(ok_event(n, time="now")), verbose="1"), 200, "time"),
    "distinct-id-an-object": (
        form_post("/track", lambda n: b64(ok_event(n, distinct_id={"a": 1})), verbose="1"),
        200,
        "distinct_id",
    ),
    "insert-id-bad-characters": (
        form_post("/track", lambda n: b64(ok_event(n, **{"$insert_id": "no spaces/slashes!"})), verbose="1"),
        200,
        "$insert_id",
    ),
    "too-deeply-nested": (
        form_post("/track", lambda n: base64.b64encode(deep(ok_event(n, x=DEEP)).encode()).decode(), verbose="1"),
        200,
        "",
    ),
    "unknown-token": (
        form_post("/track", lambda n: b64(ok_event(n, token="no-such-token")), verbose="1"),
        200,
        "token",
    ),
    "missing-token": (
        form_post("/track", lambda n: b64({"event": n, "properties": {"distinct_id": "x"}}), verbose="1"),
        200,
        "token, missing or empty",
    ),
    "oversize-batch": (oversize_batch("/track"), 413, "2000"),
    "oversize-body": (oversize_body("/track"), 413, "2097152"),
    "bad-gzip": (bad_gzip("/track"), 200, "gzip"),
    "gzip-bomb": (gzip_bomb("/track"), 413, "2097152"),
    "unsupported-content-encoding": (
        json_post("/track?verbose=1", b'[{"event": "NAME"}]', **{"Content-Encoding": "br"}),
        200,
        "Content-Encoding",
    ),
}


@pytest.mark.parametrize("case", list(TRACK_CASES))
def test_track_rejects(server: ServerProcess, case: str) -> None:
    send, status, fragment = TRACK_CASES[case]
    name = unique()
    response = send(server.url, name)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == 0
    assert fragment in body["error"]
    assert export(server.url, event=orjson.dumps([name]).decode()) == []


def test_track_without_verbose_answers_0(server: ServerProcess) -> None:
    name = unique()
    response = httpx.get(f"{server.url}/track", params={"data": "%%%not-base64" + name})
    assert (response.status_code, response.content) == (200, b"0")
    assert response.headers["content-type"].startswith("text/plain")
    too_many = httpx.post(f"{server.url}/track", json=[ok_event(name)] * 2001)
    assert (too_many.status_code, too_many.content) == (413, b"0")
    assert export(server.url, event=orjson.dumps([name]).decode()) == []


# -- /import -----------------------------------------------------------------------------------------


def imp(name: str, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"distinct_id": "bad-user", "time": int(time.time()) - 60, **props}}


IMPORT_CASES: dict[str, tuple[Send, int, str]] = {
    "malformed-json": (json_post("/import", b'[{"event": "NAME", "properties": {"time": 1'), 400, "JSON"),
    "malformed-ndjson": (json_post("/import", b'{"event": "NAME"}\n{"event": '), 400, "JSON"),
    "malformed-json-in-form": (form_post("/import", lambda n: '[{"event":"' + n + '",'), 400, "JSON"),
    "bad-base64": (form_post("/import", lambda n: "@@@" + n), 400, "base64"),
    "empty-body": (json_post("/import", b""), 400, "data"),
    "json-scalar-body": (json_post("/import", b"42"), 400, "data"),
    "event-not-a-string": (
        form_post("/import", lambda n: orjson.dumps([{**imp(n), "event": ["x"], "n": n}]).decode()),
        400,
        "failed validation",
    ),
    "properties-not-an-object": (
        form_post("/import", lambda n: orjson.dumps([{"event": n, "properties": "x"}]).decode()),
        400,
        "failed validation",
    ),
    "time-a-string": (
        form_post("/import", lambda n: orjson.dumps([imp(n, time="2024-01-01")]).decode()),
        400,
        "failed validation",
    ),
    "time-before-1971": (
        form_post("/import", lambda n: orjson.dumps([imp(n, time=86400)]).decode()),
        400,
        "failed validation",
    ),
    "distinct-id-a-list": (
        form_post("/import", lambda n: orjson.dumps([imp(n, distinct_id=["a"])]).decode()),
        400,
        "failed validation",
    ),
    "insert-id-too-long": (
        form_post("/import", lambda n: orjson.dumps([imp(n, **{"$insert_id": "x" * 37})]).decode()),
        400,
        "failed validation",
    ),
    "too-many-properties": (
        form_post("/import", lambda n: orjson.dumps([imp(n, **{f"p{i}": i for i in range(300)})]).decode()),
        400,
        "failed validation",
    ),
    "object-nested-too-deep": (
        form_post("/import", lambda n: orjson.dumps([imp(n, o={"a": {"b": {"c": {"d": 1}}}})]).decode()),
        400,
        "failed validation",
    ),
    "list-too-long": (
        form_post("/import", lambda n: orjson.dumps([imp(n, l=list(range(300)))]).decode()),
        400,
        "failed validation",
    ),
    "too-deeply-nested-lists": (
        form_post("/import", lambda n: deep([imp(n, x=DEEP)])),
        400,
        "failed validation",
    ),
    "too-deeply-nested-json-body": (
        lambda base, n: httpx.post(
            f"{base}/import",
            content=deep({"event": n, "x": DEEP}).encode(),
            headers={"Content-Type": "application/json"},
            auth=(SECRET, ""),
        ),
        400,
        "failed validation",
    ),
    "oversize-batch": (oversize_batch("/import"), 413, "2000"),
    "oversize-body": (oversize_body("/import"), 413, "request exceeds max limit of 2097152 bytes"),
    "bad-gzip": (bad_gzip("/import"), 400, "gzip"),
    "gzip-bomb": (gzip_bomb("/import"), 413, "2097152"),
}

STATUS_PHRASES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Request Entity Too Large"}


@pytest.mark.parametrize("case", list(IMPORT_CASES))
def test_import_rejects(server: ServerProcess, case: str) -> None:
    send, status, fragment = IMPORT_CASES[case]
    name = unique()
    response = send(server.url, name)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    assert body["status"] == STATUS_PHRASES[status]
    assert fragment in body["error"]
    if body["error"] == "some data points in the request failed validation":
        assert body["num_records_imported"] == 0
        assert [f["index"] for f in body["failed_records"]] == [0]
    assert export(server.url, event=orjson.dumps([name]).decode()) == []


IMPORT_AUTH_CASES: dict[str, tuple[dict[str, str], tuple[str, str] | None, int, str]] = {
    # name: (query params, Basic credentials, status, fragment)
    # /import's 401 body is documented word for word: {"code": 401, "error": "Invalid credentials", ...}
    "no-credentials": ({}, None, 401, "Invalid credentials"),
    "unknown-token": ({}, ("NO-SUCH-TOKEN", ""), 401, "Invalid credentials"),
    "wrong-secret": ({}, ("WRONG-SECRET", ""), 401, "Invalid credentials"),
    "wrong-service-account": ({"project_id": str(PROJECT_ID)}, (SA_USER, "wrong"), 401, "Invalid credentials"),
    "service-account-without-project-id": ({}, (SA_USER, SA_SECRET), 400, "project_id"),
    "unknown-project": ({"project_id": "987654"}, (SA_USER, SA_SECRET), 403, "987654"),
    "project-id-not-a-number": ({"project_id": "abc"}, (SA_USER, SA_SECRET), 400, "project_id"),
}


@pytest.mark.parametrize("case", list(IMPORT_AUTH_CASES))
def test_import_refuses_credentials(server: ServerProcess, case: str) -> None:
    params, auth, status, fragment = IMPORT_AUTH_CASES[case]
    name = unique()
    response = httpx.post(f"{server.url}/import", params=params, json=[imp(name)], auth=auth)
    assert response.status_code == status
    body = response.json()
    assert (body["code"], body["status"]) == (status, STATUS_PHRASES[status])
    assert fragment in body["error"]
    assert export(server.url, event=orjson.dumps([name]).decode()) == []


# -- /engage and /groups -----------------------------------------------------------------------------


def test_profile_updates_reject_bad_input(fresh_server: ServerProcess) -> None:
    url = fresh_server.url

    def engage(data: str, path: str = "/engage") -> httpx.Response:
        return httpx.post(f"{url}{path}", data={"data": data, "verbose": "1"})

    def update(distinct_id: str, **ops: Any) -> str:
        return orjson.dumps({"$token": TOKEN, "$distinct_id": distinct_id, **ops}).decode()

    cases: dict[str, tuple[httpx.Response, str]] = {
        "malformed": (engage('{"$token": "TOKEN123", "$distinct_id": "m1", "$set": {'), "JSON"),
        "bad-base64": (engage("!!notbase64"), "base64"),
        "set-not-an-object": (engage(update("m2", **{"$set": ["a"]})), "$set"),
        "add-not-a-number": (engage(update("m3", **{"$add": {"n": "1"}})), "$add"),
        "union-not-a-list": (engage(update("m4", **{"$union": {"l": 1}})), "$union"),
        "unset-not-a-list": (engage(update("m5", **{"$unset": "a"})), "$unset"),
        "no-operation": (engage(update("m6")), "operation"),
        "distinct-id-an-object": (engage(update({"a": 1}, **{"$set": {"a": 1}})), "$distinct_id"),  # type: ignore[arg-type]
        "missing-token": (engage(orjson.dumps({"$distinct_id": "m7", "$set": {"a": 1}}).decode()), "$token"),
        "unknown-token": (
            engage(orjson.dumps({"$token": "nope", "$distinct_id": "m8", "$set": {"a": 1}}).decode()),
            "token",
        ),
        "too-deeply-nested": (engage(deep({"$token": TOKEN, "$distinct_id": "m9", "$set": {"x": DEEP}})), ""),
        "group-missing-id": (
            engage(orjson.dumps({"$token": TOKEN, "$group_key": "company", "$set": {"a": 1}}).decode(), "/groups"),
            "$group_id",
        ),
    }
    for case, (response, fragment) in cases.items():
        assert response.status_code == 200, (case, response.text)
        assert response.json()["status"] == 0, case
        assert fragment in response.json()["error"], (case, response.json())
    oversize = httpx.post(f"{url}/engage", json=[orjson.loads(update("m10", **{"$set": {"a": 1}}))] * 2001)
    assert (oversize.status_code, oversize.content) == (413, b"0")
    fresh_server.stop()
    engine = DuckDBEngine(fresh_server.data_dir)
    try:
        stored = [d for d in [f"m{i}" for i in range(1, 11)] if engine.profile(PROJECT_ID, d) is not None]
        assert engine.group_profile(PROJECT_ID, "company", "") is None
    finally:
        engine.close()
    assert stored == []


# -- export ------------------------------------------------------------------------------------------

EXPORT_CASES: dict[str, tuple[dict[str, str], tuple[str, str] | None, int, str]] = {
    "from-date-not-a-date": ({"from_date": "2024/01/01", "to_date": "2024-01-02"}, None, 400, "from_date"),
    "to-date-not-a-date": ({"from_date": "2024-01-01", "to_date": "2024-02-30"}, None, 400, "to_date"),
    "from-after-to": ({"from_date": "2024-01-03", "to_date": "2024-01-02"}, None, 400, "from_date"),
    "to-date-in-the-future": (
        {"from_date": "2024-01-01", "to_date": "2999-01-01"},
        None,
        400,
        "to_date cannot be later than today",
    ),
    "missing-dates": ({}, None, 400, "from_date"),
    "event-not-json": ({"from_date": "2024-01-01", "to_date": "2024-01-02", "event": "[signup"}, None, 400, "event"),
    "event-not-strings": ({"from_date": "2024-01-01", "to_date": "2024-01-02", "event": "[1, 2]"}, None, 400, "event"),
    "limit-negative": ({"from_date": "2024-01-01", "to_date": "2024-01-02", "limit": "-5"}, None, 400, "limit"),
    "wrong-credentials": (
        {"from_date": "2024-01-01", "to_date": "2024-01-02"},
        ("sa.user", "nope"),
        401,
        "authenticate",
    ),
    "no-credentials": ({"from_date": "2024-01-01", "to_date": "2024-01-02"}, ("", ""), 401, "authenticate"),
    "unknown-project": (
        {"from_date": "2024-01-01", "to_date": "2024-01-02", "project_id": "987654"},
        None,
        403,
        "987654",
    ),
    "service-account-without-project-id": (
        {"from_date": "2024-01-01", "to_date": "2024-01-02", "project_id": ""},
        None,
        400,
        "project_id",
    ),
}


@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export_rejects(server: ServerProcess, case: str) -> None:
    params, auth, status, fragment = EXPORT_CASES[case]
    query = {"project_id": str(PROJECT_ID), **params}
    if not query["project_id"]:
        del query["project_id"]
    credentials = auth if auth is not None else (SA_USER, SA_SECRET)
    response = httpx.get(f"{server.url}/api/2.0/export", params=query, auth=credentials if credentials[0] else None)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"request", "error"}
    assert body["request"].startswith("/api/2.0/export")
    assert fragment in body["error"]


# -- never a 500 -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
special_keys = st.sampled_from(
    [
        "event",
        "properties",
        "time",
        "distinct_id",
        "token",
        "$insert_id",
        "$token",
        "$distinct_id",
        "$set",
        "$add",
        "$append",
        "$union",
        "$remove",
        "$unset",
        "$delete",
        "$group_key",
        "$group_id",
        "$time",
        "$ignore_time",
        "data",
    ]
)
records = st.recursive(
    json_values,
    lambda children: (
        st.dictionaries(special_keys | st.text(max_size=8), children, max_size=6) | st.lists(children, max_size=3)
    ),
    max_leaves=30,
)
ORIGINAL_TOKEN, ORIGINAL_SECRET = "TOKEN-ORIGINAL", "SECRET-ORIGINAL"  # a second project, on Original ID Merge
now_ish = st.integers(int(time.time()) - 10 * 86400, int(time.time()) + 7200)
plausible = st.one_of(
    st.sampled_from([TOKEN, ORIGINAL_TOKEN, "u1", "u2", "$device:d1", "d1", "", "anonymous", 0, -1, True]),
    now_ish,
    now_ish.map(lambda t: t * 1000),
    st.lists(st.sampled_from(["u1", "u2", "$device:d1", "d1"]), max_size=3),
    json_values,
)
event_records = st.fixed_dictionaries(
    {
        "event": st.sampled_from(["$identify", "$merge", "$create_alias", "Signed Up", ""]) | json_values,
        "properties": st.dictionaries(
            st.sampled_from(
                [
                    "token",
                    "distinct_id",
                    "time",
                    "$insert_id",
                    "$device_id",
                    "$user_id",
                    "$anon_id",
                    "$identified_id",
                    "$distinct_ids",
                    "alias",
                    "$ignore",
                    "ip",
                    "$time",
                    "x",
                ]
            ),
            plausible,
            max_size=8,
        ),
    }
)
profile_records = st.dictionaries(
    st.sampled_from(
        [
            "$token",
            "$distinct_id",
            "$group_key",
            "$group_id",
            "$set",
            "$set_once",
            "$add",
            "$append",
            "$union",
            "$remove",
            "$unset",
            "$delete",
            "$time",
            "$ignore_time",
            "$ignore_alias",
            "$ip",
        ]
    ),
    plausible | st.dictionaries(st.sampled_from(["a", "b", "$email"]), plausible, max_size=3),
    max_size=7,
)
structured = st.lists(event_records | profile_records, min_size=1, max_size=4)
bodies = st.one_of(
    records.map(lambda r: ("json", orjson.dumps(r))),
    records.map(lambda r: ("form", b"data=" + orjson.dumps(r))),
    records.map(lambda r: ("form", b"data=" + base64.b64encode(orjson.dumps(r)))),
    structured.map(lambda r: ("json", orjson.dumps(r))),
    structured.map(lambda r: ("form", b"data=" + base64.b64encode(orjson.dumps(r)))),
    st.binary(max_size=200).map(lambda b: ("form", b)),
    st.binary(max_size=200).map(lambda b: ("gzip", b)),
)
PATHS = ["/track", "/engage", "/groups", "/import", "/api/2.0/export", "/track/", "/import?strict=0"]
FUZZ_EXAMPLES = 200


def test_no_request_is_a_500(fresh_server: ServerProcess) -> None:
    Catalog(fresh_server.data_dir).create_project(
        project_id=4343,
        token=ORIGINAL_TOKEN,
        secret=ORIGINAL_SECRET,
        api_key="APIKEY-ORIGINAL",
        id_merge=IdMerge.ORIGINAL,
    )
    failures: list[str] = []
    with httpx.Client(base_url=fresh_server.url, timeout=30) as http:

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(
            path=st.sampled_from(PATHS),
            body=bodies,
            verbose=st.sampled_from(["", "1", "2"]),
            secret=st.sampled_from([SECRET, ORIGINAL_SECRET]),
        )
        def check(path: str, body: tuple[str, bytes], verbose: str, secret: str) -> None:
            kind, content = body
            headers = {"Content-Type": "application/json" if kind == "json" else "application/x-www-form-urlencoded"}
            if kind == "gzip":
                headers["Content-Encoding"] = "gzip"
            sep = "&" if "?" in path else "?"
            query = f"{sep}verbose={verbose}&from_date=2024-01-01&to_date={today()}"
            response = http.post(path + query, content=content, headers=headers, auth=(secret, ""))
            if response.status_code >= 500:
                failures.append(f"{path} {body!r} -> {response.status_code} {response.text}")

        check()
    # Whatever got in, both projects still export valid JSON lines.
    export(fresh_server.url)
    export(fresh_server.url, project_id=4343, auth=(ORIGINAL_SECRET, ""))
    log = fresh_server.log_path.read_text()
    assert not failures, failures[:5]
    assert "Traceback" not in log, log[-3000:]
