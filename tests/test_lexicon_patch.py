"""Lexicon schema edits with PATCH over real HTTP (docs/lexicon.md, "Editing with PATCH"): a partial
schemaJson merged into the stored schema as RFC 7396 JSON Merge Patch, one schema or many; the merged
schema is validated as strictly as a new one, its effects (dropped, hidden) follow at once, and
admins and owners only may edit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mixhouse.domain.project import Role
from mixhouse.lexicon.model import merge_patch
from tests.server import PROJECT_ID, SECRET, ServerProcess
from tests.test_lexicon import PURCHASE, ROLE_SECRET, _server, bulk, entry, sa

SCHEMAS = f"/api/app/projects/{PROJECT_ID}/schemas"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _server(tmp_path_factory.mktemp("lexicon-patch"))
    yield proc
    proc.stop()


def _patch(server: ServerProcess, path: str, body: Any, auth: Any = None) -> httpx.Response:
    return httpx.patch(f"{server.url}{SCHEMAS}{path}", json=body, auth=auth or sa(), timeout=30)


def _get(server: ServerProcess, path: str) -> Any:
    r = httpx.get(f"{server.url}{SCHEMAS}{path}", auth=sa())
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_merge_patch_is_rfc_7396() -> None:
    # The examples of RFC 7396 section 3.
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_one_schema_merged(server: ServerProcess) -> None:
    assert bulk(server, [entry("Purchase", PURCHASE)]).status_code == 200
    r = _patch(
        server,
        "/event/Purchase",
        {
            "description": "Checkout completed",
            "properties": {"tax": {"type": "number"}, "product_id": None},
            "metadata": {"com.mixpanel": {"tags": ["revenue"], "contacts": None}},
        },
    )
    assert r.status_code == 200, r.text
    merged = r.json()["results"]
    assert merged == _get(server, "/event/Purchase")
    assert merged["description"] == "Checkout completed"
    assert merged["properties"] == {"amount": PURCHASE["properties"]["amount"], "tax": {"type": "number"}}
    meta = merged["metadata"]["com.mixpanel"]
    assert meta["tags"] == ["revenue"] and "contacts" not in meta and meta["displayName"] == "Purchase Event"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/event/Nope", {"description": "x"}, 404, "no event schema named 'Nope' in this project"),
        ("/event/Purchase", {"properties": {"x": {"format": "date"}}}, 400, "unknown key 'format'"),
        ("/event/Purchase", {"properties": {"amount": {"type": "decimal"}}}, 400, "type must be one of"),
        ("/event/Purchase", {"owner": "me"}, 400, "unknown key 'owner'"),
        ("/event/Purchase", ["not", "an", "object"], 400, "a JSON object"),
        ("/nope/Purchase", {"description": "x"}, 404, "unknown entity type"),
    ],
)
def test_a_bad_patch_changes_nothing(server: ServerProcess, path: str, body: Any, status: int, message: str) -> None:
    assert bulk(server, [entry("Purchase", PURCHASE)]).status_code == 200
    r = _patch(server, path, body)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert r.json()["status"] == "error"
    assert _get(server, "/event/Purchase") == PURCHASE


def test_many_schemas_each_with_its_result(server: ServerProcess) -> None:
    assert (
        bulk(server, [entry("A", {}), entry("B", {"description": "b"}), entry("$user", {}, "profile")]).status_code
        == 200
    )
    r = _patch(
        server,
        "",
        {
            "entries": [
                entry("A", {"description": "a"}),
                entry("Missing", {"description": "m"}),
                entry("B", {"properties": {"p": {"type": "bool"}}}),
                {"entityType": "event", "name": "C"},
                entry("$user", {"properties": {"plan": {"type": "string"}}}, "profile"),
            ]
        },
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["entityType"], x["name"], x["status"]) for x in results] == [
        ("event", "A", "ok"),
        ("event", "Missing", "error"),
        ("event", "B", "error"),
        ("event", "C", "error"),
        ("profile", "$user", "ok"),
    ]
    assert "no event schema named 'Missing'" in results[1]["error"]
    assert "type must be one of" in results[2]["error"]
    assert "missing schemaJson" in results[3]["error"]
    assert _get(server, "/event/A") == {"description": "a"}
    assert _get(server, "/event/B") == {"description": "b"}  # its error left it as it was
    assert _get(server, "/profile/$user") == {"properties": {"plan": {"type": "string"}}}
    for body, message in [
        ({"entries": [], "truncate": True}, "truncate cannot be used with PATCH"),
        ({"entries": "A"}, "entries must be a list"),
        ({}, "missing entries"),
        ({"entries": [entry("A", {}), entry("A", {})]}, "appears twice"),
    ]:
        r = _patch(server, "", body)
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)


def test_dropping_by_patch_takes_effect_at_once(server: ServerProcess) -> None:
    assert bulk(server, [entry("Noise", {"description": "n"})]).status_code == 200
    at = int(time.time()) - 3600
    event = {"event": "Noise", "properties": {"time": at, "distinct_id": "u1", "$insert_id": "n1"}}
    assert httpx.post(f"{server.url}/import", json=[event], auth=(SECRET, "")).status_code == 200
    assert _patch(server, "/event/Noise", {"metadata": {"com.mixpanel": {"dropped": True}}}).status_code == 200
    refused = httpx.post(
        f"{server.url}/import",
        json=[{**event, "properties": {**event["properties"], "$insert_id": "n2"}}],
        auth=(SECRET, ""),
    )
    assert refused.status_code == 400 and "dropped by this project's Lexicon schema" in refused.text
    # null removes the flag again: the event is accepted.
    assert _patch(server, "/event/Noise", {"metadata": {"com.mixpanel": {"dropped": None}}}).status_code == 200
    again = httpx.post(
        f"{server.url}/import",
        json=[{**event, "properties": {**event["properties"], "$insert_id": "n3"}}],
        auth=(SECRET, ""),
    )
    assert again.status_code == 200, again.text


@pytest.mark.parametrize("role", list(Role))
def test_roles(server: ServerProcess, role: Role) -> None:
    assert bulk(server, [entry("Roles", {})]).status_code == 200
    auth = (f"lex.{role.value}", ROLE_SECRET)
    may = role in (Role.ADMIN, Role.OWNER)
    for r in (
        _patch(server, "/event/Roles", {"description": "r"}, auth=auth),
        _patch(server, "", {"entries": [entry("Roles", {"description": "r"})]}, auth=auth),
    ):
        assert r.status_code == (200 if may else 403), r.text


def test_patches_count_against_the_items_per_minute(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A patch counts one item per entry plus one per property it sends (the setting at its edge)."""
    proc = _server(tmp_path_factory.mktemp("lexicon-patch-limit"), env={"MIXHOUSE_LEXICON_ITEMS_PER_MINUTE": "4"})
    try:
        assert bulk(proc, [entry("E", {})]).status_code == 200  # 1 item
        two = {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
        assert _patch(proc, "/event/E", two).status_code == 200  # 3 more: 4, the limit
        over = _patch(proc, "", {"entries": [entry("E", {"description": "late"})]})
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert "at most 4 Lexicon events and properties updated per minute" in over.json()["error"]
        assert "description" not in _get(proc, "/event/E")
    finally:
        proc.stop()
