"""Lexicon Schemas over real HTTP (docs/lexicon.md): every route and response, strict validation of
schemaJson, the limits at their edges, roles, and the effects: a dropped event fails at ingestion (and
the rest of the batch is stored), a dropped property is removed from its event, hidden events and
properties leave discovery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

SCHEMAS = f"/api/app/projects/{PROJECT_ID}/schemas"
ROLE_SECRET = "role-secret"
PURCHASE = {
    "description": "User completes a purchase",
    "properties": {
        "amount": {"type": "number", "description": "Purchase amount"},
        "product_id": {"type": "string", "metadata": {"com.mixpanel": {"displayName": "Product", "hidden": False}}},
    },
    "metadata": {
        "com.mixpanel": {
            "$source": "api",
            "displayName": "Purchase Event",
            "tags": ["core", "revenue"],
            "hidden": False,
            "dropped": False,
            "contacts": ["owner@example.com"],
            "teamContacts": ["Analytics Team"],
        }
    },
}


def _server(tmp: Path, env: dict[str, str] | None = None) -> ServerProcess:
    data_dir = tmp / "data"
    seed_catalog(data_dir)
    catalog = Catalog(data_dir)
    for role in Role:
        catalog.create_service_account(
            username=f"lex.{role.value}", secret=ROLE_SECRET, project_id=PROJECT_ID, role=role
        )
    return ServerProcess(data_dir, env=env).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _server(tmp_path_factory.mktemp("lexicon"))
    yield proc
    proc.stop()


def sa() -> tuple[str, str]:
    return (SA_USER, SA_SECRET)


def entry(name: str, schema: dict[str, Any], entity_type: str = "event") -> dict[str, Any]:
    return {"entityType": entity_type, "name": name, "schemaJson": schema}


def bulk(
    server: ServerProcess, entries: list[dict[str, Any]], truncate: bool = False, auth: Any = None
) -> httpx.Response:
    return httpx.post(
        server.url + SCHEMAS, json={"entries": entries, "truncate": truncate}, auth=auth or sa(), timeout=30
    )


def test_every_route_and_response(server: ServerProcess) -> None:
    base = server.url + SCHEMAS
    assert httpx.delete(base, auth=sa()).status_code == 200
    created = bulk(
        server, [entry("Purchase", PURCHASE), entry("$user", {"properties": {"plan": {"type": "string"}}}, "profile")]
    )
    assert created.json() == {"results": {"added": 2, "deleted": 0}, "status": "ok"}

    listed = httpx.get(base, auth=sa()).json()
    assert listed == {
        "results": [
            entry("Purchase", PURCHASE),
            entry("$user", {"properties": {"plan": {"type": "string"}}}, "profile"),
        ],
        "status": "ok",
    }
    events = httpx.get(f"{base}/event", auth=sa()).json()
    assert events == {"results": [entry("Purchase", PURCHASE)], "status": "ok"}
    assert httpx.get(f"{base}/event/Purchase", auth=sa()).json() == {"results": PURCHASE, "status": "ok"}
    # mixpanel-headless asks for one schema as ?entity_name=
    assert httpx.get(f"{base}/event", params={"entity_name": "Purchase"}, auth=sa()).json()["results"] == PURCHASE

    one = httpx.post(f"{base}/event/Page%20%2Fhome", json={"description": "a page"}, auth=sa())
    assert one.json() == {"status": "ok"}
    assert httpx.get(f"{base}/event/Page%20%2Fhome", auth=sa()).json()["results"] == {"description": "a page"}
    replaced = httpx.post(f"{base}/event/Page%20%2Fhome", json={"description": "replaced"}, auth=sa())
    assert replaced.status_code == 200
    assert httpx.get(f"{base}/event/Page%20%2Fhome", auth=sa()).json()["results"] == {"description": "replaced"}

    gone = httpx.delete(f"{base}/event/Page%20%2Fhome", auth=sa())
    assert gone.json() == {"results": {"delete_count": 1, "deleteCount": 1}, "status": "ok"}
    missing = httpx.get(f"{base}/event/Page%20%2Fhome", auth=sa())
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    assert httpx.delete(f"{base}/profile", auth=sa()).json()["results"]["delete_count"] == 1
    assert httpx.get(f"{base}/profile", auth=sa()).json() == {"results": [], "status": "ok"}
    assert httpx.get(f"{base}/nonsense", auth=sa()).status_code == 404

    truncated = bulk(server, [entry("Only", {})], truncate=True)
    assert truncated.json() == {"results": {"added": 1, "deleted": 1}, "status": "ok"}
    assert [e["name"] for e in httpx.get(base, auth=sa()).json()["results"]] == ["Only"]
    assert httpx.delete(base, auth=sa()).json()["results"]["delete_count"] == 1
    assert httpx.get(base, auth=sa()).json()["results"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"entries": [entry("E", {"colour": "red"})]},
            "entries[0].schemaJson: unknown key 'colour' (allowed: description, metadata, properties)",
        ),
        (
            {"entries": [entry("E", {"properties": {"p": {"type": "string", "format": "email"}}})]},
            "entries[0].schemaJson.properties['p']: unknown key 'format'",
        ),
        (
            {"entries": [entry("E", {"metadata": {"com.mixpanel": {"hiden": True}}})]},
            "entries[0].schemaJson.metadata.com.mixpanel: unknown key 'hiden'",
        ),
        (
            {"entries": [entry("E", {"metadata": {"com.segment": {}}})]},
            "entries[0].schemaJson.metadata: unknown key 'com.segment'",
        ),
        (
            {
                "entries": [
                    entry("E", {"properties": {"p": {"type": "number", "metadata": {"com.mixpanel": {"tags": []}}}}})
                ]
            },
            "unknown key 'tags'",
        ),
        (
            {"entries": [entry("E", {"properties": {"p": {"description": "no type"}}})]},
            "entries[0].schemaJson.properties['p'].type is required",
        ),
        (
            {"entries": [entry("E", {"properties": {"p": {"type": "decimal"}}})]},
            "type must be one of array, boolean, integer, null, number, object, string, got 'decimal'",
        ),
        (
            {"entries": [entry("E", {"metadata": {"com.mixpanel": {"hidden": "yes"}}})]},
            "entries[0].schemaJson.metadata.com.mixpanel.hidden must be true or false",
        ),
        (
            {"entries": [entry("E", {"metadata": {"com.mixpanel": {"contacts": ["nobody"]}}})]},
            "contacts[0] must be an email address",
        ),
        (
            {"entries": [entry("$user", {"metadata": {"com.mixpanel": {"dropped": True}}}, "profile")]},
            "dropped applies to events only",
        ),
        ({"entries": [entry("E", {}, "group")]}, "entries[0].entityType must be one of event, custom_event, profile"),
        ({"entries": [{"entityType": "event", "name": "E"}]}, "entries[0]: missing schemaJson"),
        ({"entries": [{**entry("E", {}), "extra": 1}]}, "entries[0]: unknown key 'extra'"),
        ({"entries": [entry("E", {}), entry("E", {})]}, "entries[1]: event 'E' appears twice in this request"),
        ({"entries": [], "truncate": "yes"}, "truncate must be true or false"),
        ({"entries": [], "replace": True}, "request body: unknown key 'replace'"),
        ({"entry": []}, "request body: unknown key 'entry'"),
        ([], "request body must be a JSON object"),
    ],
)
def test_schema_json_is_validated_strictly(server: ServerProcess, body: Any, message: str) -> None:
    before = httpx.get(server.url + SCHEMAS, auth=sa()).json()
    refused = httpx.post(server.url + SCHEMAS, json=body, auth=sa())
    assert refused.status_code == 400, refused.text
    assert refused.json()["status"] == "error" and message in refused.json()["error"], refused.json()["error"]
    assert httpx.get(server.url + SCHEMAS, auth=sa()).json() == before  # all or nothing


def test_one_schema_is_validated_too(server: ServerProcess) -> None:
    refused = httpx.post(f"{server.url}{SCHEMAS}/event/E", json={"properties": {"p": {"type": "str"}}}, auth=sa())
    assert refused.status_code == 400 and "schemaJson.properties['p'].type must be one of" in refused.json()["error"]
    no_body = httpx.post(f"{server.url}{SCHEMAS}/event/E", auth=sa())
    assert no_body.status_code == 400
    assert httpx.get(f"{server.url}{SCHEMAS}/event/E", auth=sa()).status_code == 404


@pytest.mark.parametrize("role", list(Role))
def test_roles(server: ServerProcess, role: Role) -> None:
    """Every role reads; only admins and owners create, replace or delete (docs/auth.md)."""
    auth = (f"lex.{role.value}", ROLE_SECRET)
    assert httpx.get(server.url + SCHEMAS, auth=auth).status_code == 200
    assert httpx.get(f"{server.url}{SCHEMAS}/event", auth=auth).status_code == 200
    may = role in (Role.ADMIN, Role.OWNER)
    name = f"ByRole{role.value}"
    writes = [
        bulk(server, [entry(name, {})], auth=auth),
        httpx.post(f"{server.url}{SCHEMAS}/event/{name}", json={}, auth=auth),
        httpx.delete(f"{server.url}{SCHEMAS}/event/{name}", auth=auth),
        httpx.delete(f"{server.url}{SCHEMAS}/profile", auth=auth),
    ]
    for response in writes:
        assert response.status_code == (200 if may else 403), response.text
        if not may:
            assert f"with the {role.value} role may not manage this project" in response.json()["error"]


def _event(name: str, insert_id: str, **props: Any) -> dict[str, Any]:
    at = int(time.time()) - 3600  # discovery looks at the last 31 days
    return {"event": name, "properties": {"time": at, "distinct_id": "u1", "$insert_id": insert_id, **props}}


@pytest.mark.clock
def test_a_dropped_event_is_refused_at_ingestion_and_reported(tmp_path: Path) -> None:
    server = _server(tmp_path)
    try:
        no_ssn = {"properties": {"ssn": {"type": "string", "metadata": {"com.mixpanel": {"dropped": True}}}}}
        schemas = [entry("Spam", {"metadata": {"com.mixpanel": {"dropped": True}}}), entry("Keep", no_ssn)]
        assert bulk(server, schemas).status_code == 200
        batch = [
            _event("Keep", "k1", ssn="123-45-6789", plan="pro"),
            _event("Spam", "s1"),
            {"event": "Keep"},
            _event("Spam", "s2"),
            _event("Keep", "k2"),
        ]
        imported = httpx.post(f"{server.url}/import", json=batch, auth=(SECRET, ""), timeout=30)
        assert imported.status_code == 400
        body = imported.json()
        assert body["num_records_imported"] == 2
        failed = {f["index"]: f for f in body["failed_records"]}
        assert sorted(failed) == [1, 2, 3]
        assert failed[1]["field"] == "event" and failed[1]["$insert_id"] == "s1"
        assert "event 'Spam' is dropped by this project's Lexicon schema" in failed[1]["message"]
        assert failed[2]["field"] != "event"  # the invalid record keeps its own error, at its own index

        tracked = httpx.post(
            f"{server.url}/track",
            data={"data": orjson.dumps([{**_event("Spam", "s3"), "properties": {**_event("Spam", "s3")["properties"],
                                                                                 "token": TOKEN}}]).decode(),
                  "verbose": "1"},
            timeout=60,
        )  # fmt: skip
        assert tracked.json() == {
            "status": 0,
            "error": "event 'Spam' is dropped by this project's Lexicon schema (schemaJson.metadata.com.mixpanel.dropped)",
        }
        strict = httpx.post(
            f"{server.url}/track",
            params={"strict": "1"},
            timeout=60,
            json=[{**_event("Spam", "s4"), "properties": {**_event("Spam", "s4")["properties"], "token": TOKEN}}],
        )
        assert strict.status_code == 400 and strict.json()["failed_records"][0]["field"] == "event"
        from_date = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
        stored = export(server.url, from_date=from_date)
        assert sorted(e["properties"]["$insert_id"] for e in stored) == ["k1", "k2"]
        k1 = next(e["properties"] for e in stored if e["properties"]["$insert_id"] == "k1")
        assert k1["plan"] == "pro" and "ssn" not in k1  # a dropped property is removed, its event kept

        # Un-dropped: the same event is accepted again.
        assert httpx.post(f"{server.url}{SCHEMAS}/event/Spam", json={}, auth=sa(), timeout=60).status_code == 200
        again = httpx.post(f"{server.url}/import", json=[_event("Spam", "s5")], auth=(SECRET, ""), timeout=30)
        assert again.status_code == 200 and again.json()["num_records_imported"] == 1
    finally:
        server.stop()


@pytest.mark.clock
def test_hidden_events_and_properties_leave_discovery(tmp_path: Path) -> None:
    server = _server(tmp_path)
    try:
        batch = [_event("Shown", f"a{i}", color="red", size=i, secret_prop="x") for i in range(3)]
        batch += [_event("Hidden", f"b{i}", color="blue", secret_prop="y") for i in range(5)]
        assert httpx.post(f"{server.url}/import", json=batch, auth=(SECRET, ""), timeout=30).status_code == 200
        names_url = f"{server.url}/api/query/events/names"
        top_url = f"{server.url}/api/query/events/properties/top"
        params = {"project_id": str(PROJECT_ID)}
        assert httpx.get(names_url, params=params, auth=sa(), timeout=60).json() == ["Hidden", "Shown"]
        assert "secret_prop" in httpx.get(top_url, params={**params, "event": "Shown"}, auth=sa(), timeout=60).json()

        hide = [
            entry("Hidden", {"metadata": {"com.mixpanel": {"hidden": True}}}),
            entry(
                "Shown",
                {"properties": {"secret_prop": {"type": "string", "metadata": {"com.mixpanel": {"hidden": True}}}}},
            ),
        ]
        assert bulk(server, hide).status_code == 200
        assert httpx.get(names_url, params=params, auth=sa(), timeout=60).json() == ["Shown"]
        assert httpx.get(names_url, params={**params, "limit": "1"}, auth=sa(), timeout=60).json() == [
            "Shown"
        ]  # limit after hiding
        top = httpx.get(top_url, params={**params, "event": "Shown"}, auth=sa(), timeout=60).json()
        assert set(top) == {"color", "size"}
        assert set(httpx.get(top_url, params={**params, "limit": "2"}, auth=sa(), timeout=60).json()) == {
            "color",
            "size",
        }
        # Still queryable: hiding is about discovery, not data.
        assert httpx.get(f"{server.url}/api/query/events/properties/values", auth=sa(), timeout=60,
                         params={**params, "event": "Shown", "name": "secret_prop"}).json() == ["x"]  # fmt: skip
    finally:
        server.stop()


def test_limits_at_their_edges(tmp_path: Path) -> None:
    """Items written per minute and deletions per request (small settings, same code as the defaults),
    and the request rate of the `mixpanel` preset (5 a minute)."""
    server = _server(
        tmp_path, env={"MIXHOUSE_LEXICON_ITEMS_PER_MINUTE": "6", "MIXHOUSE_LEXICON_DELETIONS_PER_REQUEST": "3"}
    )
    try:
        two_props = {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
        assert bulk(server, [entry("E1", two_props), entry("E2", two_props)]).status_code == 200  # 6 items: the limit
        over = bulk(server, [entry("E3", {})])
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert "at most 6 Lexicon events and properties updated per minute" in over.json()["error"]
        too_big = httpx.post(
            f"{server.url}{SCHEMAS}/event/E4",
            json={"properties": {k: {"type": "string"} for k in "abcdefg"}},
            auth=sa(),
        )
        assert too_big.status_code == 400 and "updates 8 events and properties; at most 6" in too_big.json()["error"]
        assert [e["name"] for e in httpx.get(server.url + SCHEMAS, auth=sa()).json()["results"]] == ["E1", "E2"]
    finally:
        server.stop()

    server = _server(tmp_path / "again", env={"MIXHOUSE_LEXICON_DELETIONS_PER_REQUEST": "3"})
    try:
        assert bulk(server, [entry(f"E{i}", {}) for i in range(3)]).status_code == 200
        assert (
            httpx.delete(f"{server.url}{SCHEMAS}/event", auth=sa()).json()["results"]["delete_count"] == 3
        )  # at the limit
        assert bulk(server, [entry(f"E{i}", {}) for i in range(4)]).status_code == 200
        refused = httpx.delete(server.url + SCHEMAS, auth=sa())
        assert refused.status_code == 400 and "would delete 4 schemas; at most 3" in refused.json()["error"]
        refused = bulk(server, [entry("New", {})], truncate=True)
        assert refused.status_code == 400
        assert len(httpx.get(server.url + SCHEMAS, auth=sa()).json()["results"]) == 4  # nothing changed

        Catalog(server.data_dir).set_rate_limits(PROJECT_ID, "mixpanel")
        statuses = [httpx.get(server.url + SCHEMAS, auth=sa()).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
    finally:
        server.stop()
