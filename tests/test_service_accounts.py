"""Organisations and service accounts over real HTTP (docs/auth.md): the Service Accounts API's routes
and shapes, the secret shown once and stored only as argon2id, PBKDF2 hashes of older data folders
upgraded on the next successful login, organisation roles, expiry on every route of every family, the
cache of verified secrets at its bound, and `mixhouse service-accounts list|delete|rotate`."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.accounts.hashing import PBKDF2_ROUNDS, VerifiedCache
from mixhouse.catalog import CATALOG_FILE, Catalog
from mixhouse.domain.project import Role
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog
from tests.test_roles import API_ROUTES, call

ORG = "/api/app/organizations/1/service-accounts"
OTHER_ORG_PROJECT = 7070
ROLE_SECRET = "role-secret"
FAR_FUTURE = "2099-01-01T00:00:00Z"
PAST = 1_600_000_000.0  # 2020-09-13: a fixed moment long gone


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("service-accounts") / "data"
    seed_catalog(data_dir)
    catalog = Catalog(data_dir)
    catalog.create_project(project_id=OTHER_ORG_PROJECT, name="elsewhere", organization_id=2)
    catalog.create_service_account(
        username="sa.elsewhere", secret=ROLE_SECRET, project_id=OTHER_ORG_PROJECT, role=Role.OWNER
    )
    for role in Role:
        catalog.create_service_account(
            username=f"org.{role.value}", secret=ROLE_SECRET, project_id=PROJECT_ID, role=role
        )
    catalog.create_service_account(
        username="sa.expired", secret=ROLE_SECRET, project_id=PROJECT_ID, role=Role.OWNER, expires_at=PAST
    )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def owner() -> tuple[str, str]:
    return (SA_USER, SA_SECRET)


def as_role(role: Role) -> tuple[str, str]:
    return (f"org.{role.value}", ROLE_SECRET)


def create(server: ServerProcess, body: dict[str, Any], auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.post(server.url + ORG, json=body, auth=auth or owner(), timeout=30)


def row(data_dir: Path, username: str) -> tuple[Any, ...]:
    with sqlite3.connect(data_dir / CATALOG_FILE) as conn:
        found = conn.execute(
            "SELECT secret_phc, secret_salt, secret_hash FROM service_accounts WHERE username = ?", (username,)
        ).fetchone()
    assert found is not None
    return tuple(found)


def test_create_shows_the_secret_once_and_stores_only_argon2id(server: ServerProcess) -> None:
    made = create(
        server,
        {
            "username": "bot.once",
            "role": "analyst",
            "expires": FAR_FUTURE,
            "projects": [{"id": PROJECT_ID, "role": "consumer"}],
        },
    )
    assert made.status_code == 200, made.text
    results = made.json()["results"]
    assert made.json()["status"] == "ok"
    assert {"id", "username", "token", "created", "expires", "last_used", "creator"} <= set(results)
    assert results["username"] == "bot.once" and results["expires"] == FAR_FUTURE and results["last_used"] is None
    secret = results["token"]
    assert len(secret) >= 32

    listed = httpx.get(server.url + ORG, auth=owner()).json()["results"]
    assert "token" not in str(listed) and secret not in str(listed)
    one = httpx.get(f"{server.url}{ORG}/{results['id']}", auth=owner())
    assert one.status_code == 200 and "token" not in one.json()["results"]

    # The new account works on its project with its project role (consumer: reads, no writes).
    names = httpx.get(
        f"{server.url}/api/query/events/names", params={"project_id": PROJECT_ID}, auth=("bot.once", secret)
    )
    assert names.status_code == 200, names.text
    refused = httpx.post(
        f"{server.url}/api/app/projects/{PROJECT_ID}/funnels",
        json={"name": "f", "steps": [{"event": "a"}, {"event": "b"}]},
        auth=("bot.once", secret),
    )
    assert refused.status_code == 403

    phc, salt, digest = row(server.data_dir, "bot.once")
    assert phc.startswith("$argon2id$") and salt == b"" and digest == b""
    catalog_bytes = b"".join(p.read_bytes() for p in server.data_dir.glob(CATALOG_FILE + "*"))
    assert secret.encode() not in catalog_bytes


def test_list_get_delete_and_membership(server: ServerProcess) -> None:
    made = create(server, {"username": "bot.member"}).json()["results"]
    account_id, secret = made["id"], made["token"]
    assert made["role"] == "consumer" and made["projects"] == []  # documented defaults
    assert httpx.get(f"{server.url}/api/query/events/names", params={"project_id": PROJECT_ID},
                     auth=("bot.member", secret)).status_code == 403  # fmt: skip

    added = httpx.post(
        f"{server.url}{ORG}/add-to-project",
        json={"service_account_ids": [account_id], "projects": [{"id": PROJECT_ID, "role": "analyst"}]},
        auth=owner(),
    )
    assert added.status_code == 200 and added.json() == {"status": "ok"}
    members = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/service-accounts", auth=owner()).json()["results"]
    assert {"id": account_id, "role": "analyst"}.items() <= next(m for m in members if m["id"] == account_id).items()

    removed = httpx.post(
        f"{server.url}{ORG}/remove-from-project",
        json={"projects": [{"id": PROJECT_ID, "service_account_ids": [account_id]}]},
        auth=owner(),
    )
    assert removed.status_code == 200 and removed.json() == {"status": "ok"}
    members = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/service-accounts", auth=owner()).json()["results"]
    assert account_id not in [m["id"] for m in members]

    assert httpx.delete(f"{server.url}{ORG}/{account_id}", auth=owner()).json() == {"status": "ok"}
    assert httpx.get(f"{server.url}{ORG}/{account_id}", auth=owner()).status_code == 404
    gone = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/service-accounts", auth=("bot.member", secret))
    assert gone.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"username": "x", "colour": "red"}, "unknown field(s) colour"),
        ({"role": "admin"}, "Missing required parameter: username"),
        ({"username": "a:b"}, "may not contain a colon"),
        ({"username": "x", "role": "boss"}, "role must be one of owner, admin, analyst, consumer"),
        ({"username": "x", "expires": "next week"}, "expires must be an ISO 8601 date-time"),
        ({"username": "x", "expires": "2020-01-01T00:00:00Z"}, "expires must be in the future"),
        ({"username": "x", "projects": [{"id": PROJECT_ID}]}, 'every item of projects needs "id" and "role"'),
        (
            {"username": "x", "projects": [{"id": 999_999, "role": "admin"}]},
            "no project with id 999999 in organization 1",
        ),
        ({"username": "x", "projects": [{"id": OTHER_ORG_PROJECT, "role": "admin"}]}, "no project with id 7070"),
        ({"username": SA_USER}, "already exists"),
    ],
)
def test_invalid_creations_are_clear_errors_and_create_nothing(
    server: ServerProcess, body: dict[str, Any], message: str
) -> None:
    before = httpx.get(server.url + ORG, auth=owner()).json()["results"]
    refused = create(server, body)
    assert refused.status_code in (400, 404), refused.text
    assert refused.json()["status"] == "error" and message in refused.json()["error"]
    assert httpx.get(server.url + ORG, auth=owner()).json()["results"] == before


@pytest.mark.parametrize("role", list(Role))
def test_organisation_roles(server: ServerProcess, role: Role) -> None:
    """Any member reads the list; only admins and owners create, delete or change membership."""
    listed = httpx.get(server.url + ORG, auth=as_role(role))
    assert listed.status_code == 200
    made = create(server, {"username": f"made.by.{role.value}"}, as_role(role))
    may_manage = role in (Role.ADMIN, Role.OWNER)
    assert made.status_code == (200 if may_manage else 403), made.text
    if not may_manage:
        assert (
            made.json()["error"]
            == f"service account 'org.{role.value}' with the {role.value} role may not manage this project"
        )
        target = create(server, {"username": f"target.{role.value}"}).json()["results"]["id"]
        assert httpx.delete(f"{server.url}{ORG}/{target}", auth=as_role(role)).status_code == 403
        moved = httpx.post(
            f"{server.url}{ORG}/add-to-project",
            json={"service_account_ids": [target], "projects": [{"id": PROJECT_ID, "role": "consumer"}]},
            auth=as_role(role),
        )
        assert moved.status_code == 403
        assert httpx.get(f"{server.url}{ORG}/{target}", auth=owner()).json()["results"]["projects"] == []


def test_an_admin_grants_no_owner(server: ServerProcess) -> None:
    refused = create(server, {"username": "would.be.owner", "role": "owner"}, as_role(Role.ADMIN))
    assert refused.status_code == 403 and "may not grant owner" in refused.json()["error"]
    refused = create(
        server, {"username": "would.be.owner", "projects": [{"id": PROJECT_ID, "role": "owner"}]}, as_role(Role.ADMIN)
    )
    assert refused.status_code == 403
    assert create(server, {"username": "an.admin.made", "role": "admin"}, as_role(Role.ADMIN)).status_code == 200


def test_another_organisation_is_closed(server: ServerProcess) -> None:
    theirs = httpx.get(f"{server.url}/api/app/organizations/2/service-accounts", auth=owner())
    assert theirs.status_code == 403 and "does not belong to organization 2" in theirs.json()["error"]
    ours = httpx.get(f"{server.url}/api/app/organizations/2/service-accounts", auth=("sa.elsewhere", ROLE_SECRET))
    assert [a["username"] for a in ours.json()["results"]] == ["sa.elsewhere"]
    # Project credentials manage one project, not an organisation.
    assert httpx.get(server.url + ORG, auth=(SECRET, "")).status_code == 401
    assert httpx.get(server.url + ORG).status_code == 401


def test_an_expired_account_is_refused_everywhere(server: ServerProcess) -> None:
    """Every authenticated route of every family (Query, export, import, App, organisation)."""
    expired = ("sa.expired", ROLE_SECRET)
    checked = 0
    for path, method in API_ROUTES:
        if call(server, path, method, None).status_code != 401:
            continue  # public routes (feature flags by token, ...)
        response = call(server, path, method, expired)
        assert response.status_code == 401, f"{method} {path}: {response.status_code} {response.text[:200]}"
        checked += 1
    assert checked > 40
    assert httpx.get(server.url + ORG, auth=expired).status_code == 401
    assert httpx.get(server.url + ORG, auth=as_role(Role.OWNER)).status_code == 200  # same secret, not expired


def _legacy_catalog(data_dir: Path, username: str, secret: str) -> None:
    """A catalog as data folders were before organisations and argon2id: PBKDF2 digests, no ids."""
    data_dir.mkdir(parents=True)
    salt = os.urandom(16)
    with sqlite3.connect(data_dir / CATALOG_FILE) as conn:
        conn.executescript(
            """
            CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL, token TEXT NOT NULL UNIQUE,
                secret TEXT NOT NULL UNIQUE, api_key TEXT NOT NULL UNIQUE, timezone TEXT NOT NULL,
                id_merge TEXT NOT NULL, time_mode TEXT NOT NULL, residency TEXT NOT NULL, created_at REAL NOT NULL,
                rate_limits TEXT NOT NULL DEFAULT 'none');
            CREATE TABLE service_accounts (username TEXT PRIMARY KEY, secret_salt BLOB NOT NULL,
                secret_hash BLOB NOT NULL, expires_at REAL, created_at REAL NOT NULL);
            CREATE TABLE service_account_projects (username TEXT NOT NULL REFERENCES service_accounts(username),
                project_id INTEGER NOT NULL REFERENCES projects(id), role TEXT NOT NULL, PRIMARY KEY (username, project_id));
            """
        )
        conn.execute(
            "INSERT INTO projects VALUES (?, 'old', 'OLDTOKEN', 'OLDSECRET', 'OLDKEY', 'UTC', 'simplified', 'utc', 'us', 1.0, 'none')",
            (PROJECT_ID,),
        )
        digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, PBKDF2_ROUNDS)
        conn.execute("INSERT INTO service_accounts VALUES (?, ?, ?, NULL, 1.0)", (username, salt, digest))
        conn.execute("INSERT INTO service_account_projects VALUES (?, ?, 'admin')", (username, PROJECT_ID))


def test_an_older_data_folder_is_migrated_and_its_pbkdf2_hash_upgraded_on_login(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _legacy_catalog(data_dir, "old.account", "old-secret")
    server = ServerProcess(data_dir).start()
    try:
        assert row(data_dir, "old.account")[0] is None  # migrated, not yet upgraded: still PBKDF2
        wrong = httpx.get(server.url + ORG, auth=("old.account", "not-it"))
        assert wrong.status_code == 401
        assert row(data_dir, "old.account")[0] is None  # a failed login upgrades nothing

        listed = httpx.get(server.url + ORG, auth=("old.account", "old-secret"))
        assert listed.status_code == 200, listed.text
        account = listed.json()["results"][0]
        assert (
            account["id"] == 1
            and account["role"] == "admin"
            and account["projects"] == [{"id": PROJECT_ID, "role": "admin"}]
        )
        phc, salt, digest = row(data_dir, "old.account")
        assert phc.startswith("$argon2id$") and salt == b"" and digest == b""
        assert Catalog(data_dir).project_by_id(PROJECT_ID).organization_id == 1  # type: ignore[union-attr]
    finally:
        server.stop()
    # After a restart (no cache) the upgraded hash verifies; the old secret still works.
    server = ServerProcess(data_dir).start()
    try:
        again = httpx.get(f"{server.url}/api/query/events/names", params={"project_id": PROJECT_ID},
                          auth=("old.account", "old-secret"))  # fmt: skip
        assert again.status_code == 200
    finally:
        server.stop()


def _cli(data_dir: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "mixhouse", "service-accounts", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, orjson.loads(done.stdout)


def test_cli_lists_rotates_and_deletes_while_a_server_runs(server: ServerProcess) -> None:
    made = create(server, {"username": "bot.rotated", "projects": [{"id": PROJECT_ID, "role": "consumer"}]}).json()[
        "results"
    ]
    old = ("bot.rotated", made["token"])
    names = f"{server.url}/api/query/events/names"
    assert httpx.get(names, params={"project_id": PROJECT_ID}, auth=old).status_code == 200  # now cached

    status, listed = _cli(server.data_dir, "list")
    assert status == 0 and "bot.rotated" in [a["username"] for a in listed]
    assert made["token"] not in orjson.dumps(listed).decode()

    status, rotated = _cli(server.data_dir, "rotate", "--username", "bot.rotated")
    assert status == 0 and rotated["secret"] != made["token"]
    assert httpx.get(names, params={"project_id": PROJECT_ID}, auth=old).status_code == 401  # cached, still refused
    new = ("bot.rotated", rotated["secret"])
    assert httpx.get(names, params={"project_id": PROJECT_ID}, auth=new).status_code == 200

    status, deleted = _cli(server.data_dir, "delete", "--username", "bot.rotated")
    assert status == 0 and deleted == {"deleted": "bot.rotated", "id": made["id"]}
    assert httpx.get(names, params={"project_id": PROJECT_ID}, auth=new).status_code == 401
    status, refused = _cli(server.data_dir, "delete", "--username", "bot.rotated")
    assert status == 1 and refused == {"error": "no service account named 'bot.rotated'"}


def test_the_verified_cache_is_bounded_and_keyed_by_a_keyed_hash() -> None:
    cache = VerifiedCache(max_entries=2)
    keys = [cache.key("user", f"secret-{i}") for i in range(3)]
    assert all(len(k) == 32 and b"secret" not in k for k in keys)
    assert VerifiedCache(max_entries=2).key("user", "secret-0") != keys[0]  # a key per process
    assert cache.key("us", "ersecret-0") != cache.key("use", "rsecret-0")  # the username is length-prefixed
    for key in keys[:2]:
        cache.put(key, "hash")
    assert len(cache) == 2 and cache.get(keys[0]) == "hash"  # at the bound, and keys[0] is now most recent
    cache.put(keys[2], "hash")
    assert len(cache) == 2 and cache.get(keys[1]) is None and cache.get(keys[0]) == "hash"
    off = VerifiedCache(max_entries=0)
    off.put(keys[0], "hash")
    assert len(off) == 0


def test_projects_create_takes_an_organisation(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "mixhouse", "projects", "create", "--data-dir", str(data_dir), "--id", "12",
         "--organization", "9"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["organization_id"] == 9
    default = Catalog(data_dir).create_project(project_id=13)
    assert default.organization_id == 1


def test_an_account_does_not_delete_itself(server: ServerProcess) -> None:
    me = next(a for a in httpx.get(server.url + ORG, auth=owner()).json()["results"] if a["username"] == SA_USER)
    refused = httpx.delete(f"{server.url}{ORG}/{me['id']}", auth=owner())
    assert refused.status_code == 400 and "cannot delete itself" in refused.json()["error"]
    assert httpx.get(server.url + ORG, auth=owner()).status_code == 200
