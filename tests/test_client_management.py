"""The client's Lexicon schemas (`Client.schemas`) and the Service Accounts API (`Client.service_accounts`)
against a live server on loopback, each change checked in the server's catalog (the schema store, the
service accounts it authenticates)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mixhouse_client import (
    AsyncClient,
    AuthenticationFailed,
    BadRequest,
    Client,
    NotFound,
    PermissionDenied,
    ProjectSecret,
    ServiceAccount,
)

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from mixhouse.lexicon.store import SchemaStore
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

SA = ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)
ORG = 1
PURCHASE = {
    "description": "User completes a purchase",
    "properties": {"amount": {"type": "number", "description": "Purchase amount"}, "sku": {"type": "string"}},
    "metadata": {"com.mixpanel": {"displayName": "Purchase", "tags": ["revenue"], "hidden": False}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("management") / "data"
    seed_catalog(data_dir)
    Catalog(data_dir).create_service_account(
        username="sa.analyst", secret="analyst-secret", project_id=PROJECT_ID, role=Role.ANALYST
    )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def schemas(server: ServerProcess, entity_type: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """What the server keeps: {(entityType, name): schemaJson}."""
    store = SchemaStore(Catalog(server.data_dir))
    return {(e.entity_type, e.name): e.schema for e in store.list(PROJECT_ID, entity_type)}


def test_lexicon_schemas(server: ServerProcess) -> None:
    with Client(base_url=server.url, credentials=SA) as mp:
        added = mp.schemas.upsert(
            [
                {"entityType": "event", "name": "Purchase", "schemaJson": PURCHASE},
                {"entityType": "event", "name": "Page /home", "schemaJson": {"description": "a slash in the name"}},
                {"entityType": "profile", "name": "$email", "schemaJson": {"description": "the email"}},
            ]
        )
        assert added["added"] == 3
        assert schemas(server)[("event", "Purchase")] == PURCHASE
        listed = mp.schemas.list()
        assert {(e["entityType"], e["name"]): e["schemaJson"] for e in listed} == schemas(server)
        assert [e["name"] for e in mp.schemas.list("profile")] == ["$email"]
        assert mp.schemas.get("event", "Purchase") == PURCHASE
        assert mp.schemas.get("event", "Page /home") == {"description": "a slash in the name"}

        mp.schemas.put("event", "Signed Up", {"description": "one schema, written alone"})
        assert schemas(server)[("event", "Signed Up")] == {"description": "one schema, written alone"}
        assert mp.schemas.delete("event", "Page /home")["delete_count"] == 1
        assert ("event", "Page /home") not in schemas(server)
        with pytest.raises(NotFound):
            mp.schemas.get("event", "Page /home")
        before = schemas(server)
        with pytest.raises(BadRequest):
            mp.schemas.upsert([{"entityType": "event", "name": "Bad", "schemaJson": {"unknown key": 1}}])
        assert schemas(server) == before
        assert mp.schemas.delete("profile")["delete_count"] == 1
        assert schemas(server, "profile") == {}
        replaced = mp.schemas.upsert([{"entityType": "event", "name": "Only", "schemaJson": {}}], truncate=True)
        assert replaced == {"added": 1, "deleted": 2}
        assert list(schemas(server)) == [("event", "Only")]
        assert mp.schemas.delete()["delete_count"] == 1
        assert schemas(server) == {}
    with Client(base_url=server.url, credentials=ServiceAccount("sa.analyst", "analyst-secret", PROJECT_ID)) as analyst:
        assert analyst.schemas.list() == []
        with pytest.raises(PermissionDenied):
            analyst.schemas.put("event", "X", {})


def test_service_accounts(server: ServerProcess) -> None:
    with Client(base_url=server.url, credentials=SA) as mp:
        made = mp.service_accounts.create(
            ORG, "sa.made", role="consumer", projects=[{"id": PROJECT_ID, "role": "analyst"}]
        )
        secret = made["token"]
        assert made["username"] == "sa.made" and made["projects"] == [{"id": PROJECT_ID, "role": "analyst"}]
        stored = Catalog(server.data_dir).service_account("sa.made")
        assert stored is not None and stored.roles == {PROJECT_ID: Role.ANALYST}
        # the new account works with the secret shown once, with its project role
        with Client(base_url=server.url, credentials=ServiceAccount("sa.made", secret, PROJECT_ID)) as new:
            assert new.annotations.list() == []
        assert "token" not in mp.service_accounts.get(ORG, made["id"])
        assert "sa.made" in [a["username"] for a in mp.service_accounts.list(ORG)]
        assert {a["username"]: a["role"] for a in mp.service_accounts.of_project()}["sa.made"] == "analyst"

        mp.service_accounts.remove_from_project(ORG, [made["id"]], [PROJECT_ID])
        assert Catalog(server.data_dir).service_account("sa.made").roles == {}  # type: ignore[union-attr]
        mp.service_accounts.add_to_project(ORG, [made["id"]], [{"id": PROJECT_ID, "role": "admin"}])
        assert Catalog(server.data_dir).service_account("sa.made").roles == {PROJECT_ID: Role.ADMIN}  # type: ignore[union-attr]

        with pytest.raises(BadRequest):
            mp.service_accounts.create(ORG, "sa.made")  # the username exists
        mp.service_accounts.delete(ORG, made["id"])
        assert Catalog(server.data_dir).service_account("sa.made") is None
        with pytest.raises(NotFound):
            mp.service_accounts.get(ORG, made["id"])
    gone = ServiceAccount("sa.made", secret, PROJECT_ID)
    with Client(base_url=server.url, credentials=gone) as mp, pytest.raises(AuthenticationFailed):
        mp.annotations.list()
    # a project secret manages a project, not an organisation
    with Client(base_url=server.url, credentials=ProjectSecret(SECRET)) as mp, pytest.raises(AuthenticationFailed):
        mp.service_accounts.list(ORG)


def test_async_schemas_and_accounts(server: ServerProcess) -> None:
    async def scenario() -> tuple[dict[str, Any], list[str]]:
        async with AsyncClient(base_url=server.url, credentials=SA) as mp:
            await mp.schemas.put("event", "Async", {"description": "from AsyncClient"})
            schema = await mp.schemas.get("event", "Async")
            await mp.schemas.delete("event", "Async")
            names = [a["username"] for a in await mp.service_accounts.list(ORG)]
            return schema, names

    schema, names = asyncio.run(scenario())
    assert schema == {"description": "from AsyncClient"} and SA_USER in names
    raw = httpx.get(f"{server.url}/api/app/organizations/{ORG}/service-accounts", auth=(SA_USER, SA_SECRET)).json()
    assert sorted(a["username"] for a in raw["results"]) == sorted(names)
