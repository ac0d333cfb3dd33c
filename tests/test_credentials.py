"""Secrets and where they live: refusals that do not tell which service-account names exist, clients
that keep failing throttled, and a data folder only its owner can read (docs/auth.md)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mixhouse.accounts import hashing
from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

FAILURES_PER_MINUTE = 5


class CountingHash:
    """Calls through to the real argon2 hasher and counts its verifications."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = hashing._hasher

    def verify(self, hash: str, secret: str) -> bool:
        self.calls += 1
        return self.real.verify(hash, secret)

    def hash(self, secret: str) -> str:
        return self.real.hash(secret)

    def check_needs_rehash(self, hash: str) -> bool:
        return self.real.check_needs_rehash(hash)


def test_an_unknown_name_costs_the_same_key_derivation_as_a_wrong_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog(tmp_path)
    project = catalog.create_project(name="p")
    catalog.create_service_account(username="known", secret="right", project_id=project.id, role=Role.OWNER)
    counting = CountingHash()
    monkeypatch.setattr(hashing, "_hasher", counting)

    assert catalog.verify_service_account("nobody", "guess") is None
    assert counting.calls == 1  # a dummy hash, as for a known name
    assert catalog.verify_service_account("known", "wrong") is None
    assert counting.calls == 2
    # The same refused pair again (the rate limiter's and the handler's checks of one request): free.
    assert catalog.verify_service_account("nobody", "guess") is None
    assert catalog.verify_service_account("known", "wrong") is None
    assert counting.calls == 2
    account = catalog.verify_service_account("known", "right")
    assert account is not None and account.roles == {project.id: Role.OWNER}
    assert catalog.verify_service_account("known", "right") is not None
    assert counting.calls == 3


def test_an_account_created_after_a_refusal_works_at_once(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    project = catalog.create_project(name="p")
    assert catalog.verify_service_account("late", "s") is None
    catalog.create_service_account(username="late", secret="s", project_id=project.id, role=Role.OWNER)
    assert catalog.verify_service_account("late", "s") is not None


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"MIXHOUSE_AUTH_FAILURES_PER_MINUTE": str(FAILURES_PER_MINUTE)}).start()
    yield proc
    proc.stop()


def test_a_client_that_keeps_failing_is_throttled_but_good_credentials_pass(throttled: ServerProcess) -> None:
    url = f"{throttled.url}/api/query/events/names"
    params = {"project_id": str(PROJECT_ID), "type": "general"}
    assert httpx.get(url, params=params, auth=(SA_USER, SA_SECRET)).status_code == 200
    for k in range(FAILURES_PER_MINUTE):
        refused = httpx.get(url, params=params, auth=(f"guess{k}", "wrong"))
        assert refused.status_code == 401
    throttled_answer = httpx.get(url, params=params, auth=(SA_USER, "wrong-again"))
    assert throttled_answer.status_code == 429
    assert 1 <= int(throttled_answer.headers["Retry-After"]) <= 60
    assert throttled_answer.json() == {
        "request": "/api/query/events/names?project_id=4242&type=general",
        "error": "Too many failed authentication attempts from this address; retry later",
    }
    app = httpx.get(f"{throttled.url}/api/app/projects/{PROJECT_ID}/funnels", auth=("nobody", "x"))
    assert app.status_code == 429 and app.json()["status"] == "error"
    # Credentials that worked before are never throttled.
    assert httpx.get(url, params=params, auth=(SA_USER, SA_SECRET)).status_code == 200


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_and_its_files_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    seed_catalog(data_dir)
    os.chmod(data_dir / "catalog.sqlite3", 0o644)  # as a catalog from before this rule was
    proc = ServerProcess(data_dir).start()
    try:
        import_ = httpx.post(
            f"{proc.url}/import",
            params={"project_id": PROJECT_ID},
            json=[{"event": "e", "properties": {"time": 1_700_000_000, "distinct_id": "u", "$insert_id": "perm1"}}],
            auth=(SA_USER, SA_SECRET),
        )
        assert import_.status_code == 200
        assert mode(data_dir) == 0o700
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"catalog.sqlite3", "events.duckdb"}
        for path in files:
            assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"
        for path in data_dir.rglob("*"):
            if path.is_dir():
                assert mode(path) == 0o700, path
    finally:
        proc.stop()
    assert mode(data_dir / "catalog.sqlite3") == 0o600
