"""Cohorts: the App API routes that define them, `/cohorts/list` (https://developer.mixpanel.com/reference/cohorts-list) with live counts, and
`filter_by_cohort` on `/engage` in every encoding real clients send (a JSON string in the query string, a form or a JSON body; docs/clients.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog
from tests.test_query_engage import add_project, import_events, post_engage_batches

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

AUTH = (SA_USER, SA_SECRET)
COHORTS = f"/api/app/projects/{PROJECT_ID}/cohorts"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("cohorts") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    # 12 profiles: plan pro for i % 3 == 0 (0, 3, 6, 9); events: Played by p0..p4, twice by p0 and p1.
    post_engage_batches(
        proc.url,
        [
            {
                "$token": TOKEN,
                "$distinct_id": f"p{i}",
                "$ignore_time": True,
                "$set": {"plan": "pro" if i % 3 == 0 else "free"},
            }
            for i in range(12)
        ],
    )
    now = int(time.time())
    played = [f"p{i}" for i in range(5)] + ["p0", "p1", "ghost"]
    import_events(
        proc.url,
        [
            {"event": "Played", "properties": {"distinct_id": d, "time": now - 60 * (k + 1), "$insert_id": f"k{k}"}}
            for k, d in enumerate(played)
        ],
    )
    yield proc
    proc.stop()


def create(server: ServerProcess, body: dict[str, Any], path: str = COHORTS) -> dict[str, Any]:
    response = httpx.post(f"{server.url}{path}", json=body, auth=AUTH)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"]
    return result


def engage_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["$distinct_id"] for r in response.json()["results"]]


def test_define_read_update_delete(server: ServerProcess) -> None:
    made = create(server, {"name": "Pro users", "description": "plan is pro", "filter": 'user["plan"] == "pro"'})
    assert made["count"] == 4 and made["is_visible"] == 1 and made["project_id"] == PROJECT_ID
    assert made["filter"] == 'user["plan"] == "pro"' and made["behavior"] is None
    assert len(made["created"]) == 19 and made["created"][10] == " "  # YYYY-MM-DD HH:MM:SS
    item = f"{server.url}{COHORTS}/{made['id']}"
    assert httpx.get(item, auth=AUTH).json()["results"] == made

    patched = httpx.patch(
        item,
        json={"name": "Pro players", "behavior": {"event": "Played", "min_count": 1, "days": 1}, "is_visible": False},
        auth=AUTH,
    ).json()["results"]
    # pro and played in the last day: p0, p3 (p6, p9 never played)
    assert (patched["name"], patched["count"], patched["is_visible"]) == ("Pro players", 2, 0)
    assert patched["description"] == "plan is pro" and patched["created"] == made["created"]

    assert httpx.delete(item, auth=AUTH).json() == {"status": "ok", "results": {"id": made["id"], "deleted": True}}
    gone = httpx.get(item, auth=AUTH)
    assert gone.status_code == 404
    assert gone.json() == {"status": "error", "error": f"Cohort not found for id {made['id']}"}


def test_list_counts_live_on_every_prefix_and_method(server: ServerProcess) -> None:
    cohort = create(server, {"name": "Played twice", "behavior": {"event": "Played", "min_count": 2, "days": 7}})
    for method in ("GET", "POST"):
        for prefix in ("/api/2.0", "/api/query"):
            response = httpx.request(
                method, f"{server.url}{prefix}/cohorts/list", params={"project_id": str(PROJECT_ID)}, auth=AUTH
            )
            assert response.status_code == 200, response.text
            listed = {c["id"]: c for c in response.json()}
            assert listed[cohort["id"]] == {
                "count": 2,  # p0 and p1
                "is_visible": 1,
                "description": "",
                "created": cohort["created"],
                "project_id": PROJECT_ID,
                "id": cohort["id"],
                "name": "Played twice",
            }
    # airbyte's check: GET /api/query/cohorts/list with the bare secret
    assert httpx.get(f"{server.url}/api/query/cohorts/list", auth=(SECRET, "")).status_code == 200
    # The count follows the data: a third Played by p2 makes it a member.
    import_events(server.url, [{"event": "Played", "properties": {"distinct_id": "p2", "time": int(time.time()) - 5}}])
    listed = httpx.get(f"{server.url}/api/2.0/cohorts/list", auth=(SECRET, "")).json()
    assert {c["id"]: c["count"] for c in listed}[cohort["id"]] == 3


def test_filter_by_cohort_in_every_client_encoding(server: ServerProcess) -> None:
    cohort = create(
        server, {"name": "Free players", "filter": 'user["plan"] == "free"', "behavior": {"event": "Played"}}
    )
    cid = cohort["id"]
    want = ["p1", "p2", "p4"]
    project = {"project_id": str(PROJECT_ID)}
    # airbyte: JSON body whose filter_by_cohort is a JSON string
    airbyte = httpx.post(
        f"{server.url}/api/query/engage", params={**project, "page_size": "1000"},
        json={"filter_by_cohort": f'{{"id":{cid}}}'}, auth=AUTH,
    )  # fmt: skip
    assert engage_ids(airbyte) == want
    # tap: a hand-built, unescaped query string
    tap = httpx.get(f'{server.url}/api/2.0/engage?filter_by_cohort={{"id":%20{cid}}}&page_size=250', auth=(SECRET, ""))
    assert engage_ids(tap) == want
    # mixpanel-import: form body
    mpi = httpx.post(
        f"{server.url}/api/2.0/engage", params=project,
        data={"filter_by_cohort": f'{{"id":{cid}}}', "include_all_users": "false"}, auth=AUTH,
    )  # fmt: skip
    assert engage_ids(mpi) == want
    # a bare id and a JSON object value inside a JSON body are read the same way
    bare = httpx.post(
        f"{server.url}/api/query/engage", params=project, json={"filter_by_cohort": {"id": str(cid)}}, auth=AUTH
    )
    assert engage_ids(bare) == want


def test_members_without_profile_follow_include_all_users(server: ServerProcess) -> None:
    cid = create(server, {"name": "Everyone who played", "behavior": {"event": "Played", "min_count": 1, "days": 7}})[
        "id"
    ]
    base = f"{server.url}/api/2.0/engage"
    everyone = httpx.get(base, params={"filter_by_cohort": f'{{"id": {cid}}}'}, auth=(SECRET, ""))
    assert engage_ids(everyone) == ["ghost", "p0", "p1", "p2", "p3", "p4"]
    assert everyone.json()["results"][0] == {"$distinct_id": "ghost", "$properties": {}}
    profiled = httpx.get(
        base, params={"filter_by_cohort": f'{{"id": {cid}}}', "include_all_users": "0"}, auth=(SECRET, "")
    )
    assert engage_ids(profiled) == ["p0", "p1", "p2", "p3", "p4"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "name is required"),
        (
            {"name": "x", "behavior": {"event": "Played", "min_count": 0}},
            "behavior.min_count must be an integer of at least 1",
        ),
        ({"name": "x", "behavior": {"event": "Played", "days": 0}}, "behavior.days must be an integer from 1 to 3650"),
        (
            {"name": "x", "behavior": {"min_count": 2}},
            'behavior must be {"event": <name>, "min_count": <n>, "days": <d>}',
        ),
        ({"name": "x", "is_visible": "yes"}, "is_visible must be a boolean"),
        ({"name": 5}, "name must be a string"),
    ],
)
def test_bad_definitions_are_refused(server: ServerProcess, body: dict[str, Any], error: str) -> None:
    response = httpx.post(f"{server.url}{COHORTS}", json=body, auth=AUTH)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "error": error}


def test_bad_filter_expression_is_refused_with_a_caret(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}{COHORTS}", json={"name": "x", "filter": 'user["plan"] =! "pro"'}, auth=AUTH)
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.splitlines()[1] == 'user["plan"] =! "pro"' and message.splitlines()[2].endswith("^")


def test_a_filter_reading_event_fields_is_refused_when_saved(server: ServerProcess) -> None:
    # A cohort's filter runs over profiles: they have no event fields, and that is known before any query.
    text = 'user["plan"] == "pro" and event["$time"] > 1'
    response = httpx.post(f"{server.url}{COHORTS}", json={"name": "x", "filter": text}, auth=AUTH)
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.splitlines()[1:] == [text, " " * text.index("event") + "^"]


def test_cohorts_belong_to_their_project(server: ServerProcess) -> None:
    add_project(server, 4343)
    cid = create(server, {"name": "theirs"}, path="/api/app/projects/4343/cohorts")["id"]
    assert httpx.get(f"{server.url}{COHORTS}/{cid}", auth=AUTH).status_code == 404
    ours = httpx.get(f"{server.url}/api/2.0/cohorts/list", params={"project_id": str(PROJECT_ID)}, auth=AUTH).json()
    assert cid not in {c["id"] for c in ours}
    response = httpx.get(
        f"{server.url}/api/2.0/engage",
        params={"project_id": str(PROJECT_ID), "filter_by_cohort": f'{{"id": {cid}}}'},
        auth=AUTH,
    )
    assert response.status_code == 400
    assert response.json()["error"] == f"Invalid parameter: filter_by_cohort (no cohort with id {cid})"
    # An empty cohort definition (no filter, no behaviour) holds every profile: none in the new project.
    assert httpx.get(f"{server.url}/api/app/projects/4343/cohorts/{cid}", auth=AUTH).json()["results"]["count"] == 0


def test_non_ascii_digits_in_an_id_are_a_404_not_a_500(server: ServerProcess) -> None:
    """'²' passes str.isdigit() but int() refuses it (found by the scaled-up HTTP fuzz)."""
    for kind in ("cohorts", "bookmarks"):
        response = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/{kind}/²", auth=(SA_USER, SA_SECRET))
        assert response.status_code in (400, 404), response.text
        assert response.json()["status"] == "error"
