"""`/engage` profile queries over HTTP (https://developer.mixpanel.com/reference/engage-query).

One server for the module, loaded with 2,500 profiles through POST /engage batches: the integration
"find a user by customer_id, then export their events" workflow, every real client's paging loop, where
filters, lookups, errors. Golden cases (tests/golden/engage/*.json) run on projects of their own."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
PROFILES = 2500
GOLDEN = Path(__file__).parent / "golden" / "engage"
T2023 = int(datetime(2023, 6, 1, tzinfo=UTC).timestamp())
T2024 = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp())


def profile_update(i: int) -> dict[str, Any]:
    """Even users were last seen in 2023, odd ones in 2024 ($time sets $last_seen); plan cycles by 3."""
    return {
        "$token": TOKEN,
        "$distinct_id": f"user-{i:05d}",
        "$time": T2023 if i % 2 == 0 else T2024,
        "$set": {"customer_id": f"hubspot-{i}", "plan": ("free", "pro", "team")[i % 3], "n": i},
    }


def post_engage_batches(base: str, updates: list[dict[str, Any]]) -> None:
    for start in range(0, len(updates), 2000):
        response = httpx.post(f"{base}/engage", json=updates[start : start + 2000], params={"verbose": "1"}, timeout=60)
        assert response.status_code == 200 and response.json()["status"] == 1, response.text


def import_events(base: str, events: list[dict[str, Any]], secret: str = SECRET) -> None:
    for start in range(0, len(events), 2000):
        response = httpx.post(f"{base}/import", json=events[start : start + 2000], auth=(secret, ""), timeout=60)
        assert response.status_code == 200, response.text


def add_project(server: ServerProcess, project_id: int, *, timezone: str = "UTC") -> tuple[str, str]:
    """A project of its own on a running server (the catalog is shared through SQLite); (token, secret)."""
    token, secret = f"tok-{project_id}", f"sec-{project_id}"
    catalog = Catalog(server.data_dir)
    catalog.create_project(
        project_id=project_id, name=f"p{project_id}", token=token, secret=secret, api_key=f"key-{project_id}",
        timezone=timezone,
    )  # fmt: skip
    catalog.create_service_account(username=SA_USER, secret=SA_SECRET, project_id=project_id, role=Role.OWNER)
    return token, secret


def query(base: str, path: str, *, project_id: int = PROJECT_ID, method: str = "GET", **params: str) -> httpx.Response:
    all_params: dict[str, str] = {"project_id": str(project_id), **params}
    if method == "GET":
        return httpx.get(f"{base}{path}", params=all_params, auth=AUTH, timeout=60)
    return httpx.post(f"{base}{path}", data=all_params, auth=AUTH, timeout=60)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("engage") / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    post_engage_batches(server.url, [profile_update(i) for i in range(PROFILES)])
    now = int(time.time())
    # user-00042 has 3 events, user-00043 has 2; the export must return only the asked user's.
    events = [
        {"event": ev, "properties": {"distinct_id": who, "time": now - 3600 * k, "$insert_id": f"{who}-{k}"}}
        for k, (ev, who) in enumerate(
            [
                ("Signed Up", "user-00042"),
                ("Purchase", "user-00042"),
                ("Purchase", "user-00042"),
                ("Signed Up", "user-00043"),
                ("Purchase", "user-00043"),
            ]
        )
    ]
    import_events(server.url, events)
    yield server
    server.stop()


def ids_of(body: dict[str, Any]) -> list[str]:
    return [r["$distinct_id"] for r in body["results"]]


# -- integration workflow: find a user by customer_id, then export their events ------------------------


def test_find_user_by_customer_id_then_export_their_events(loaded: ServerProcess) -> None:
    # The usual integration call, verbatim: POST form body, where + output_properties, service account.
    response = httpx.post(
        f"{loaded.url}/api/query/engage",
        params={"project_id": str(PROJECT_ID)},
        auth=AUTH,
        headers={"accept": "application/json", "content-type": "application/x-www-form-urlencoded"},
        content='where=user["customer_id"] == "hubspot-42"&output_properties=["$distinct_id"]',
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["total"] == 1 and body["page"] == 0
    assert body["results"] == [{"$distinct_id": "user-00042", "$properties": {}}]
    distinct_id = body["results"][0]["$distinct_id"]

    # Step 4: the raw export of that user's events, where=properties["$distinct_id"] == "<id>".
    lines = export(loaded.url, where=f'properties["$distinct_id"] == "{distinct_id}"')
    assert [e["event"] for e in lines] == ["Purchase", "Purchase", "Signed Up"]  # oldest first
    assert {cast(dict[str, Any], e["properties"])["distinct_id"] for e in lines} == {"user-00042"}

    # A customer id nobody has: an empty result, which ends the workflow.
    missing = query(loaded.url, "/api/query/engage", method="POST", where='user["customer_id"] == "nope"').json()
    assert missing["results"] == [] and missing["total"] == 0


# -- paging, one loop per real client (docs/query-engage.md) ------------------------------------------------


def _assert_every_profile_once(seen: list[str]) -> None:
    assert len(seen) == PROFILES
    assert set(seen) == {f"user-{i:05d}" for i in range(PROFILES)}


def test_paging_like_mixpanel_headless(loaded: ServerProcess) -> None:
    """POST JSON {"project_id","page","session_id"} to /api/query/engage/; stops only on results == []."""
    seen: list[str] = []
    page, session_id = 0, None
    for _ in range(100):
        payload: dict[str, Any] = {"project_id": str(PROJECT_ID), "page": page}
        if session_id is not None:
            payload["session_id"] = session_id
        response = httpx.post(
            f"{loaded.url}/api/query/engage/",
            params={"project_id": str(PROJECT_ID), "query_origin": "mixpanel-headless"},
            json=payload,
            auth=AUTH,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if body["results"] == []:
            break
        seen += ids_of(body)
        session_id = body["session_id"]
        page += 1
    else:
        pytest.fail("headless would loop forever")
    assert page == 3  # 1000 + 1000 + 500, then the empty page
    _assert_every_profile_once(seen)


def test_paging_like_mixpanel_utils_concurrently(loaded: ServerProcess) -> None:
    """GET /api/2.0/engage; the page count from page 0's total and page_size; the rest fetched at once."""

    def get(params: dict[str, Any]) -> dict[str, Any]:
        response = httpx.get(f"{loaded.url}/api/2.0/engage", params=params, auth=AUTH)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    params: dict[str, Any] = {"project_id": str(PROJECT_ID), "output_properties": '["customer_id"]'}
    first = get(params)
    params["session_id"] = first["session_id"]
    num_pages = math.ceil(first["total"] / float(first["page_size"]))
    with ThreadPool(processes=4) as pool:
        rest = pool.map(lambda page: get({**params, "page": page})["results"], range(first["page"] + 1, num_pages))
    results = first["results"] + [r for page in rest for r in page]
    _assert_every_profile_once([r["$distinct_id"] for r in results])
    assert all(r["$properties"] == {"customer_id": f"hubspot-{int(r['$distinct_id'][5:])}"} for r in results)


def test_paging_like_tap_mixpanel(loaded: ServerProcess) -> None:
    """Hand-built query string, page_size=250, continues while offset <= total and a session_id came back."""
    seen: list[str] = []
    params: dict[str, Any] = {"project_id": PROJECT_ID, "page_size": 250}
    page, offset, total = 0, 0, 0
    session_id: str | None = "initial"
    while offset <= total and session_id is not None:
        if page != 0:
            params["session_id"] = session_id
            params["page"] = page
        querystring = "&".join(f"{k}={v}" for k, v in params.items())
        response = httpx.get(f"{loaded.url}/api/2.0/engage?{querystring}", auth=AUTH)
        assert response.status_code == 200, response.text
        data = response.json()
        session_id = None
        if data["results"]:
            if page == 0:
                total = data.get("total", len(data["results"]))
            seen += ids_of(data)
            session_id = data.get("session_id")
        offset += 250
        page += 1
    assert page == 11  # ten full pages, then the empty one that ends the loop
    _assert_every_profile_once(seen)


def test_paging_like_airbyte(loaded: ServerProcess) -> None:
    """GET /api/query/engage?page_size=1000; continues while total > page_size * (page + 1)."""
    seen: list[str] = []
    page_size, total = 1000, 0
    params: dict[str, Any] = {"project_id": str(PROJECT_ID), "page_size": page_size}
    while True:
        response = httpx.get(f"{loaded.url}/api/query/engage", params=params, auth=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += ids_of(body)
        total = body.get("total") or total  # only on the first page
        page_number = body.get("page")
        if not (total and page_number is not None and total > page_size * (page_number + 1)):
            break
        params = {**params, "session_id": body["session_id"], "page": page_number + 1}
    _assert_every_profile_once(seen)


def test_paging_like_mixpanel_import(loaded: ServerProcess) -> None:
    """POST /api/2.0/engage with page and session_id in the query string and an empty form body."""
    seen: list[str] = []
    query_params: dict[str, Any] = {"project_id": str(PROJECT_ID)}
    for _ in range(100):
        response = httpx.post(
            f"{loaded.url}/api/2.0/engage",
            params=query_params,
            content=b"",
            headers={"content-type": "application/x-www-form-urlencoded"},
            auth=AUTH,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        if not body["results"]:
            break
        seen += ids_of(body)
        query_params = {**query_params, "page": body["page"] + 1, "session_id": body["session_id"]}
    _assert_every_profile_once(seen)


def test_total_only_on_page_zero_and_empty_page_past_the_end(loaded: ServerProcess) -> None:
    first = query(loaded.url, "/api/2.0/engage", page_size="1000").json()
    assert list(first) == ["page", "page_size", "session_id", "status", "total", "results"]
    assert first["total"] == PROFILES and len(first["results"]) == 1000
    second = query(loaded.url, "/api/2.0/engage", page_size="1000", page="2", session_id=first["session_id"]).json()
    assert "total" not in second and second["page"] == 2 and len(second["results"]) == 500
    past = query(loaded.url, "/api/2.0/engage", page_size="1000", page="7", session_id=first["session_id"]).json()
    assert past["results"] == [] and past["session_id"] == first["session_id"]


def test_page_order_is_by_distinct_id_and_survives_a_foreign_session_id(loaded: ServerProcess) -> None:
    # An unknown session id (e.g. from before a restart) recomputes the same order.
    page = query(loaded.url, "/api/2.0/engage", page_size="10", page="3", session_id="1700000000000-ABCDEF").json()
    assert ids_of(page) == [f"user-{i:05d}" for i in range(30, 40)]


def test_page_size_over_the_maximum_is_clamped(loaded: ServerProcess) -> None:
    body = query(loaded.url, "/api/2.0/engage", page_size="5000").json()
    assert body["page_size"] == 1000 and len(body["results"]) == 1000


# -- where ----------------------------------------------------------------------------------------------------


def test_last_seen_after_a_datetime(loaded: ServerProcess) -> None:
    body = query(loaded.url, "/api/2.0/engage", where='user["$last_seen"] > datetime("2024-01-01T00:00:00")').json()
    assert body["total"] == PROFILES // 2  # the odd users
    assert all(int(d[5:]) % 2 == 1 for d in ids_of(body))
    assert body["results"][0]["$properties"]["$last_seen"] == "2024-06-01T00:00:00"


def test_combined_and_filters(loaded: ServerProcess) -> None:
    where = 'user["$last_seen"] > datetime("2024-01-01T00:00:00") and user["plan"] == "pro" and user["n"] < 100'
    body = query(loaded.url, "/api/query/engage", method="POST", where=where).json()
    # odd i < 100 with i % 3 == 1: 1, 7, 13, ..., 97 (every 6th)
    assert ids_of(body) == [f"user-{i:05d}" for i in range(1, 100, 6)]
    assert body["total"] == 17


def test_properties_accessor_and_string_datetime_as_airbyte_sends_it(loaded: ServerProcess) -> None:
    body = query(
        loaded.url, "/api/query/engage", where='properties["$last_seen"] >= "2024-06-01T00:00:00"', page_size="1000"
    ).json()
    assert body["total"] == PROFILES // 2


def test_lookup_by_distinct_id_and_distinct_ids(loaded: ServerProcess) -> None:
    one = query(loaded.url, "/api/2.0/engage", distinct_id="user-00007").json()
    assert ids_of(one) == ["user-00007"]
    assert one["results"][0]["$properties"]["customer_id"] == "hubspot-7"
    many = query(loaded.url, "/api/2.0/engage", distinct_ids='["user-00009","user-00003","nobody"]').json()
    assert ids_of(many) == ["user-00003", "user-00009"] and many["total"] == 2


def test_engage_query_alias_path(loaded: ServerProcess) -> None:
    body = query(loaded.url, "/api/2.0/engage/query", method="POST", distinct_id="user-00001").json()
    assert ids_of(body) == ["user-00001"]


# -- errors ---------------------------------------------------------------------------------------------------


def test_page_above_zero_needs_a_session_id(loaded: ServerProcess) -> None:
    response = query(loaded.url, "/api/2.0/engage", page="1")
    assert response.status_code == 400
    assert response.json() == {
        "request": f"/api/2.0/engage?project_id={PROJECT_ID}&page=1",
        "error": "Missing required parameter: session_id",
    }


def test_bad_where_is_a_400_with_a_caret(loaded: ServerProcess) -> None:
    response = query(loaded.url, "/api/2.0/engage", where='user["plan"] == ')
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.splitlines()[1:] == ['user["plan"] == ', " " * 16 + "^"]


def test_bad_where_with_behaviors_points_its_caret_into_the_users_own_text(loaded: ServerProcess) -> None:
    where = 'behaviors["views"] >= 2 and user["plan"] =! "pro"'
    behaviors = '[{"name":"views","event_selectors":[{"event":"Viewed"}]}]'
    response = query(loaded.url, "/api/2.0/engage", where=where, behaviors=behaviors)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.splitlines()[1:] == [where, " " * where.index("=!") + "^"]
    # behaviors[...] without behaviours is an unknown name; an event field is no part of a profile.
    unknown = query(loaded.url, "/api/2.0/engage", where='behaviors["views"] > 1')
    assert unknown.status_code == 400 and "unknown identifier 'behaviors'" in unknown.json()["error"]
    text = 'user["plan"] == "pro" or event["$time"] > 1'
    event_field = query(loaded.url, "/api/2.0/engage", where=text)
    assert event_field.status_code == 400
    assert event_field.json()["error"].splitlines()[1:] == [text, " " * text.index("event") + "^"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page_size": "0"}, "Invalid parameter: page_size"),
        ({"page": "-1"}, "Invalid parameter: page"),
        ({"distinct_ids": "[1"}, "Invalid JSON Format: distinct_ids"),
        ({"filter_by_cohort": '{"id": 999}'}, "Invalid parameter: filter_by_cohort (no cohort with id 999)"),
        ({"filter_by_cohort": '{"x": 1}'}, 'Invalid parameter: filter_by_cohort must be {"id": <cohort id>}'),
        ({"include_all_users": "maybe"}, "Invalid parameter: include_all_users"),
        (
            {"filter_by_cohort": '{"id": 1}', "behaviors": '[{"name":"b","event_selectors":[{"event":"x"}]}]'},
            "behaviors and filter_by_cohort are mutually exclusive",
        ),
    ],
)
def test_bad_parameters(loaded: ServerProcess, params: dict[str, str], message: str) -> None:
    response = httpx.get(f"{loaded.url}/api/2.0/engage", params={"project_id": str(PROJECT_ID), **params}, auth=AUTH)
    assert response.status_code == 400
    assert response.json()["error"] == message


def test_probe_without_parameters_as_tap_check_access(loaded: ServerProcess) -> None:
    response = httpx.get(f"{loaded.url}/api/2.0/engage", auth=(SECRET, ""))
    assert response.status_code == 200 and response.json()["status"] == "ok"


# -- golden cases ---------------------------------------------------------------------------------------------


def _golden_cases() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def _relative_times(value: Any, now: int) -> Any:
    """Golden event times are offsets from now ("now-3600"), so that time windows stay valid."""
    if isinstance(value, str) and value.startswith("now"):
        return now + int(value[3:] or 0)
    if isinstance(value, dict):
        return {k: _relative_times(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_times(v, now) for v in value]
    return value


def _normalise(body: Any) -> Any:
    if isinstance(body, dict):
        return {
            k: ("<any>" if k in ("session_id", "created", "computed_at", "id") else _normalise(v))
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [_normalise(v) for v in body]
    return body


def _placeholders(value: str, names: dict[str, int]) -> str:
    for name, saved_id in names.items():
        value = value.replace(name, str(saved_id))
    return value


@pytest.mark.parametrize("path", _golden_cases(), ids=lambda p: p.stem)
def test_golden(loaded: ServerProcess, path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    project_id = int(case["project_id"])
    token, secret = add_project(loaded, project_id, timezone=case.get("timezone", "UTC"))
    now = int(time.time())
    if case.get("profiles"):
        post_engage_batches(loaded.url, [{"$token": token, **p} for p in case["profiles"]])
    for update in case.get("groups", []):
        response = httpx.post(f"{loaded.url}/groups", json=[{"$token": token, **update}], params={"verbose": "1"})
        assert response.status_code == 200 and response.json()["status"] == 1, response.text
    if case.get("events"):
        import_events(loaded.url, _relative_times(case["events"], now), secret)
    names: dict[str, int] = {}
    for kind, route in (("cohorts", "cohorts"), ("bookmarks", "bookmarks")):
        for i, saved in enumerate(case.get(kind, [])):
            response = httpx.post(f"{loaded.url}/api/app/projects/{project_id}/{route}", json=saved, auth=AUTH)
            assert response.status_code == 200, response.text
            names[f"${kind[:-1].upper()}{i}"] = response.json()["results"]["id"]
    for request in case["requests"]:
        params = {k: _placeholders(v if isinstance(v, str) else json.dumps(v), names)
                  for k, v in request["params"].items()}  # fmt: skip
        response = query(loaded.url, request["path"], project_id=project_id, **params)
        assert response.status_code == request.get("status", 200), response.text
        assert _normalise(response.json()) == request["expected"], request.get("why", "")
