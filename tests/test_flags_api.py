"""Managing flags over the App API (create, edit, enable/disable, archive, restore, QA testers, delete),
`mixhouse flags import`, and the readout's errors, against a real server over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from tests.flags.fixtures import flag_definitions
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, seed_catalog

SA = (SA_USER, SA_SECRET)
APP = f"/api/app/projects/{PROJECT_ID}"
RULESET = {
    "variants": [
        {"key": "off", "value": False, "is_control": True, "split": 0.0},
        {"key": "on", "value": True, "is_control": False, "split": 1.0},
    ],
    "rollout": [{"rollout_percentage": 1.0}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("flags-api") / "data"
    seed_catalog(data_dir)
    Catalog(data_dir).create_service_account(username="viewer", secret="viewer-secret", project_id=PROJECT_ID,
                                             role=Role.ANALYST)  # fmt: skip
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=SA, timeout=30) as c:
        yield c


def _served(client: httpx.Client, distinct_id: str = "user-1") -> dict[str, Any]:
    r = client.get("/flags", params={"context": json.dumps({"distinct_id": distinct_id})}, auth=(TOKEN, ""))
    assert r.status_code == 200, r.text
    flags: dict[str, Any] = r.json()["flags"]
    return flags


def test_lifecycle(client: httpx.Client) -> None:
    r = client.post(f"{APP}/feature-flags", json={"name": "Beta", "key": "beta", "ruleset": RULESET})
    assert r.status_code == 200, r.text
    flag = r.json()["results"]
    fid = flag["id"]
    assert (flag["status"], flag["context"], flag["serving_method"], flag["workspace_id"]) == (
        "disabled", "distinct_id", "client", PROJECT_ID
    )  # fmt: skip
    assert "beta" not in _served(client)

    enabled = client.patch(f"{APP}/feature-flags/{fid}", json={"status": "enabled"}).json()["results"]
    assert enabled["status"] == "enabled" and enabled["enabled_at"] and enabled["hash_salt"] == flag["hash_salt"]
    assert _served(client)["beta"] == {"variant_key": "on", "variant_value": True, "experiment_id": None,
                                       "is_experiment_active": None, "is_qa_tester": None}  # fmt: skip
    # QA testers: {variant key: distinct id}
    r = client.put(f"{APP}/workspaces/{PROJECT_ID}/feature-flags/{fid}/test-users", json={"users": {"off": "tester"}})
    assert r.status_code == 200 and r.json()["results"]["ruleset"]["test"] == {"users": {"tester": "off"}}
    assert _served(client, "tester")["beta"]["is_qa_tester"] is True
    assert _served(client, "tester")["beta"]["variant_key"] == "off"

    client.patch(f"{APP}/feature-flags/{fid}", json={"status": "disabled"})
    assert "beta" not in _served(client)

    assert client.post(f"{APP}/feature-flags/{fid}/archive").json()["results"]["status"] == "archived"
    assert [f["key"] for f in client.get(f"{APP}/feature-flags").json()["results"]] == []
    listed = client.get(f"{APP}/feature-flags", params={"include_archived": "true"}).json()["results"]
    assert [f["key"] for f in listed] == ["beta"]
    assert client.delete(f"{APP}/feature-flags/{fid}/archive").json()["results"]["status"] == "disabled"
    assert client.delete(f"{APP}/feature-flags/{fid}/archive").json()["results"]["status"] == "disabled"  # no-op

    replaced = client.put(f"{APP}/feature-flags/{fid}", json={"name": "Beta 2", "key": "beta2", "status": "enabled",
                                                              "ruleset": RULESET}).json()["results"]  # fmt: skip
    assert (replaced["name"], replaced["key"], replaced["id"], replaced["created"]) == (
        "Beta 2", "beta2", fid, flag["created"]
    )  # fmt: skip
    assert "beta2" in _served(client)
    assert client.delete(f"{APP}/feature-flags/{fid}").json() == {
        "status": "ok",
        "results": {"id": fid, "deleted": True},
    }
    assert client.delete(f"{APP}/feature-flags/{fid}").status_code == 404
    assert "beta2" not in _served(client)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/feature-flags", {"name": "x", "key": "x"}, 400, "ruleset is required"),
        ("POST", "/feature-flags", {"key": "x", "ruleset": RULESET}, 400, "name is required"),
        ("POST", "/feature-flags", {"name": "x", "key": "x", "ruleset": RULESET, "status": "on"}, 400,
         "status must be one of: enabled, disabled, archived"),
        ("POST", "/feature-flags", [1], 400, "the body must be a JSON object"),
        ("POST", "/feature-flags", {"id": "x" * 256, "name": "x", "key": "x", "ruleset": RULESET}, 400,
         "id must be a string of at most 255 characters"),
        ("GET", "/feature-flags/nope", None, 404, "Feature flag not found for id nope"),
        ("GET", "/workspaces/1/feature-flags", None, 404, "Workspace not found for id 1"),
        ("PUT", "/feature-flags/nope/test-users", {"users": {}}, 404, "Feature flag not found for id nope"),
    ],
)  # fmt: skip
def test_errors(client: httpx.Client, method: str, path: str, body: Any, status: int, error: str) -> None:
    r = client.request(method, APP + path, json=body)
    assert (r.status_code, r.json()) == (status, {"status": "error", "error": error})


def test_duplicate_key_and_roles(client: httpx.Client) -> None:
    body = {"name": "Dup", "key": "dup", "ruleset": RULESET}
    assert client.post(f"{APP}/feature-flags", json=body).status_code == 200
    r = client.post(f"{APP}/feature-flags", json=body)
    assert r.status_code == 400 and "already exists" in r.json()["error"]
    viewer = ("viewer", "viewer-secret")
    assert client.get(f"{APP}/feature-flags", auth=viewer).status_code == 200
    r = client.post(f"{APP}/feature-flags", json={**body, "key": "v"}, auth=viewer)
    assert r.status_code == 403


def test_readout_errors(client: httpx.Client) -> None:
    fid = client.post(f"{APP}/feature-flags", json={"name": "R", "key": "r", "ruleset": RULESET}).json()["results"][
        "id"
    ]
    r = client.get(f"{APP}/feature-flags/{fid}/readout", params={"from_date": "2024-01-01", "to_date": "2024-01-02"})
    assert (r.status_code, r.json()["error"]) == (400, "Missing required parameter: conversion_event")
    r = client.get(f"{APP}/feature-flags/{fid}/readout", params={"conversion_event": "P", "from_date": "2024-01-01",
                                                                 "to_date": "2024-01-02", "confidence": "2"})  # fmt: skip
    assert (r.status_code, r.json()["error"]) == (400, "confidence must be a number between 0 and 1")
    r = client.get(f"{APP}/feature-flags/{fid}/readout", params={"conversion_event": "P", "from_date": "2024-01-01",
                                                                 "to_date": "2024-01-02"})  # fmt: skip
    assert r.status_code == 200 and r.json()["results"]["variants"] == [] and r.json()["results"]["control"] == "off"


def _import(data_dir: Path, project: int, file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixhouse", "flags", "import", "--data-dir", str(data_dir), "--project", str(project),
         str(file)], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_import_command(server: ServerProcess, client: httpx.Client, tmp_path: Path) -> None:
    """A running server serves imported definitions at once, unchanged (ids, salts, rulesets)."""
    flags = flag_definitions(cohort_id=1)
    file = tmp_path / "definitions.json"
    file.write_text(json.dumps({"flags": flags}))
    done = _import(server.data_dir, PROJECT_ID, file)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["imported"] == len(flags)
    served = client.get("/flags/definitions", params={"token": TOKEN}, auth=(TOKEN, "")).json()["flags"]
    by_key = {f["key"]: f for f in served}
    for f in flags:
        if f["status"] == "enabled":
            got = by_key[f["key"]]
            assert (got["id"], got["hash_salt"], got["ruleset"]) == (f["id"], f["hash_salt"], f["ruleset"])
    # Again, with one flag changed: replaced by key, same ids.
    flags[0] = {**flags[0], "ruleset": {**flags[0]["ruleset"], "rollout": [{"rollout_percentage": 0.1}]}}
    file.write_text(json.dumps({"flags": flags}))
    assert _import(server.data_dir, PROJECT_ID, file).returncode == 0
    got = client.get(f"{APP}/feature-flags/{flags[0]['id']}").json()["results"]
    assert got["ruleset"]["rollout"] == [{"rollout_percentage": 0.1}]
    # All or nothing.
    before = client.get(f"{APP}/feature-flags", params={"include_archived": "true"}).json()["results"]
    bad = [{**flags[0], "key": "fresh_one", "id": "new-id"}, {**flags[1], "key": "broken", "id": "b", "ruleset": {}}]
    file.write_text(json.dumps({"flags": bad}))
    done = _import(server.data_dir, PROJECT_ID, file)
    assert done.returncode == 1 and "flags[1] ('broken')" in json.loads(done.stdout)["error"]
    assert client.get(f"{APP}/feature-flags", params={"include_archived": "true"}).json()["results"] == before
    file.write_text("{nope")
    assert _import(server.data_dir, PROJECT_ID, file).returncode == 1
    assert json.loads(_import(server.data_dir, 999, file).stdout) == {"error": "no project with id 999"}
    missing = _import(tmp_path / "nowhere", PROJECT_ID, file)
    assert missing.returncode == 1 and "no mixhouse data dir" in json.loads(missing.stdout)["error"]
