"""Project isolation, route by route: with project A's credentials and project B's ids and names, no
route reads, changes or deletes anything of B. The routes come from the app's own route table, so a
route added later is walked too.

B's data carries a marker in property values that no request ever sends; it must never appear in an
answer to A. B's events, profiles and saved objects must be the same after the walk as before. Names
and filters carry SQL-injection text as well.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from starlette.routing import Route

from mixhouse.http.endpoint import Auth
from mixhouse.http.routes import ENDPOINTS, routes
from tests.conftest import today
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

B_ID = 5353
B_SECRET = "B-SECRET-5353"
B_TOKEN = "B-TOKEN-5353"
B_USER, B_USER_SECRET = "sa.b", "sa-b-secret"
MARKER = "LEAKMARK-B-7c1e"  # only in B's stored values; never sent by A
B_EVENT = "B only event"
INJECTIONS = [
    "x' OR project_id = 5353 --",
    '"; DROP TABLE events; --',
    "1 UNION SELECT properties FROM events",
]
A_AUTHS = {"service account": (SA_USER, SA_SECRET), "project secret": (SECRET, "")}
RECENT = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")  # small answers: the walk stays fast
# Endpoints of no project (health, metrics, the OpenAPI document, the web app's page), as the route table
# declares them; and those whose project is in each record (/track, /engage, /groups).
PROJECT_LESS = {e.path for e in ENDPOINTS if e.auth is Auth.NONE}
PROJECT_IN_RECORDS = {e.path for e in ENDPOINTS if e.auth is Auth.RECORD_TOKEN}
ORGANIZATION_LEVEL = {e.path for e in ENDPOINTS if e.auth is Auth.ORGANIZATION}


def _app_routes() -> list[Route]:
    """The routes the route table declares (mixhouse/http/routes.py)."""
    return [r for r in routes() if isinstance(r, Route)]


def _b_events() -> list[dict[str, Any]]:
    now = int(time.time()) - 3600
    return [
        {
            "event": B_EVENT,
            "properties": {
                "time": now - i,
                "distinct_id": "user-b",
                "$insert_id": f"b{i}",
                "secret_value": MARKER,
                "amount": i,
            },
        }
        for i in range(20)
    ]


def _snapshot(base: str, routes: list[Route]) -> dict[str, Any]:
    """Everything of B that A could touch, read with B's own credentials."""
    auth = (B_USER, B_USER_SECRET)
    params = {"project_id": str(B_ID), "from_date": "2020-01-01", "to_date": today()}
    export = httpx.get(f"{base}/api/2.0/export", params=params, auth=auth, timeout=30)
    assert export.status_code == 200
    engage = httpx.post(f"{base}/api/2.0/engage", params={"project_id": str(B_ID)}, auth=auth, timeout=30)
    snapshot: dict[str, Any] = {"export": sorted(export.content.splitlines()), "engage": engage.json().get("results")}
    for route in routes:  # every App API collection B can list
        collection = set(route.param_convertors) == {"project_id"}
        if route.path.startswith("/api/app/projects/") and "GET" in (route.methods or ()) and collection:
            listed = httpx.get(f"{base}{route.path.format(project_id=B_ID)}", auth=auth, timeout=30)
            content = listed.content
            if route.path.endswith("/service-accounts") and listed.status_code == 200:
                # last_used moves with B's own requests (these snapshots), not with A's
                accounts = [{**a, "last_used": None} for a in listed.json()["results"]]
                content = orjson.dumps(accounts)
            snapshot[route.path] = (listed.status_code, content)
    return snapshot


@pytest.fixture
def two_projects(tmp_path: Path) -> Any:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir,
        project_id=B_ID,
        token=B_TOKEN,
        secret=B_SECRET,
        api_key="B-APIKEY",
        sa_user=B_USER,
        sa_secret=B_USER_SECRET,
        organization_id=2,  # another tenant: organisation-level routes keep it apart too
    )
    server = ServerProcess(data_dir).start()
    try:
        base = server.url
        assert httpx.post(f"{base}/import", json=_b_events(), auth=(B_SECRET, "")).status_code == 200
        profile = {"$token": B_TOKEN, "$distinct_id": "user-b", "$set": {"secret_value": MARKER}}
        assert httpx.post(f"{base}/engage", data={"data": orjson.dumps([profile]).decode()}).text == "1"
        a_event = {"event": "A event", "properties": {"time": int(time.time()) - 60, "distinct_id": "user-a"}}
        assert httpx.post(f"{base}/import", json=[a_event], auth=(SECRET, "")).status_code == 200
        yield server
    finally:
        server.stop()


def _saved_objects_of_b(base: str, routes: list[Route]) -> None:
    """Give B a saved object in every App collection that takes one, so ids 1.. exist in B."""
    body = {
        "name": f"B saved {MARKER}",
        "title": f"B saved {MARKER}",
        "description": MARKER,
        "steps": [{"event": B_EVENT}, {"event": B_EVENT}],
        "params": {"events": [{"event": B_EVENT}]},
        "filters": [],
        "query": {},
        "type": "insights",
    }
    for route in routes:
        collection = set(route.param_convertors) == {"project_id"}
        if route.path.startswith("/api/app/projects/") and "POST" in (route.methods or ()) and collection:
            httpx.post(
                f"{base}{route.path.format(project_id=B_ID)}", json=body, auth=(B_USER, B_USER_SECRET), timeout=30
            )


def _ingest_attempt(path: str) -> dict[str, Any]:
    """A write that names B's user and B's project but carries A's token."""
    if path == "/import":
        return {"json": [{"event": B_EVENT, "properties": {"time": int(time.time()), "distinct_id": "user-b"}}]}
    if path in ("/engage", "/groups"):
        op = {"$token": TOKEN, "$distinct_id": "user-b", "$group_key": "company", "$group_id": "b", "$delete": ""}
        return {"data": {"data": orjson.dumps([op]).decode()}}
    return {
        "data": {
            "data": orjson.dumps([{"event": B_EVENT, "properties": {"token": TOKEN, "distinct_id": "user-b"}}]).decode()
        }
    }


def _requests_for(route: Route, method: str, base: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(project named, url, httpx kwargs) for each way A can point a request at B."""
    attempts: list[tuple[int, str, dict[str, Any]]] = []
    other_params = [p for p in route.param_convertors if p != "project_id"]
    for target in (B_ID, PROJECT_ID):
        for object_id in ("1", "2", B_EVENT, INJECTIONS[0]):
            path = route.path
            if "project_id" in route.param_convertors:
                path = path.replace("{project_id}", str(target))
            for name in other_params:
                path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", quote(object_id, safe=""), path)
            for injection in INJECTIONS:
                params = {
                    "project_id": str(target),
                    "from_date": RECENT,
                    "to_date": today(),
                    "event": orjson.dumps([B_EVENT, injection]).decode(),
                    "name": B_EVENT,
                    "on": f'properties["{injection}"]',
                    "where": f'properties["secret_value"] != "{injection}"',
                    "type": "general",
                    "unit": "day",
                    "funnel_id": object_id,
                    "bookmark_id": object_id,
                    "cohort_id": object_id,
                    "distinct_id": "user-b",
                    "distinct_ids": '["user-b"]',
                    "token": B_TOKEN,
                }
                kwargs: dict[str, Any] = {"params": params}
                if route.path in ("/track", "/engage", "/groups", "/import"):
                    kwargs.update(_ingest_attempt(route.path))
                elif method in ("POST", "PUT", "PATCH"):
                    kwargs["json"] = {"name": injection, "description": injection, "project_id": B_ID}
                attempts.append((target, base + path, kwargs))
            if not other_params:
                break
        if "project_id" not in route.param_convertors and target == PROJECT_ID:
            break
    return attempts


def test_every_route_keeps_project_b_out_of_reach_of_project_a(two_projects: ServerProcess) -> None:
    base = two_projects.url
    routes = _app_routes()
    assert len(routes) > 20  # the walk covers the real table, not a hand-kept list
    _saved_objects_of_b(base, routes)
    before = _snapshot(base, routes)
    assert MARKER.encode() in b"".join(before["export"])
    walked = 0
    with httpx.Client(timeout=30) as http:
        for route in routes:
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                for target, url, kwargs in _requests_for(route, method, base):
                    for label, auth in A_AUTHS.items():
                        response = http.request(method, url, auth=auth, **kwargs)
                        walked += 1
                        assert response.status_code < 500, f"{method} {url} ({label}): {response.text[:300]}"
                        assert MARKER.encode() not in response.content, f"{method} {url} ({label}) leaked B's data"
                        # Organisation routes name no project (A's own organisation answers; B's is refused
                        # through its organisation id, walked as an object id).
                        if target == B_ID and route.path not in PROJECT_LESS | PROJECT_IN_RECORDS | ORGANIZATION_LEVEL:
                            # B's id with A's credentials is refused outright, whatever the route.
                            assert response.status_code in (401, 403, 404), (
                                f"{method} {url} ({label}): {response.status_code} {response.text[:200]}"
                            )
    assert walked > 100
    after = _snapshot(base, routes)
    assert after == before, "a request with A's credentials changed or deleted B's data"
