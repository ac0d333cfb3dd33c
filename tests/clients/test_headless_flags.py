"""PyPI `mixpanel-headless` 0.4.0's `mp flags` commands, unmodified, against a real mixhouse server (the
App API's workspace-scoped `feature-flags` routes): create, list, get, update (enable with a ruleset),
archive, restore, delete. MP_WORKSPACE_ID names the project's one workspace, whose id is the project id."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.support import SA_AUTH, run_json, start_server, venv_python
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess

RULESET = {
    "variants": [
        {"key": "on", "value": True, "is_control": False, "split": 1.0},
        {"key": "off", "value": False, "is_control": True, "split": 0.0},
    ],
    "rollout": [{"rollout_percentage": 1.0}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("headless-flags")
    proc = start_server(tmp / "data")
    yield proc, tmp
    proc.stop()


def _env(server: tuple[ServerProcess, Path]) -> dict[str, str]:
    proc, tmp = server
    return {
        "MP_API_BASE_URL": proc.url,
        "MP_USERNAME": SA_USER,
        "MP_SECRET": SA_SECRET,
        "MP_PROJECT_ID": str(PROJECT_ID),
        "MP_WORKSPACE_ID": str(PROJECT_ID),
        "MP_REGION": "us",
        "MP_CONFIG_PATH": str(tmp / "config.toml"),  # never ~/.mp/config.toml
    }


def _mp_path() -> str:
    return str(venv_python("mixpanel-headless").parent / "mp")


def _mp(server: tuple[ServerProcess, Path], *args: str) -> Any:
    """A command whose stdout is JSON."""
    return run_json([_mp_path(), "flags", *args], env=_env(server), cwd=server[1])


def _mp_run(server: tuple[ServerProcess, Path], *args: str) -> subprocess.CompletedProcess[str]:
    """A command that prints only a confirmation or an error."""
    env = {**os.environ, **_env(server)}
    return subprocess.run([_mp_path(), "flags", *args], env=env, cwd=server[1], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def _flags_for(proc: ServerProcess, distinct_id: str) -> dict[str, Any]:
    r = httpx.get(f"{proc.url}/flags", params={"context": json.dumps({"distinct_id": distinct_id})}, auth=(TOKEN, ""))
    assert r.status_code == 200, r.text
    flags: dict[str, Any] = r.json()["flags"]
    return flags


def test_mp_flags_lifecycle(server: tuple[ServerProcess, Path]) -> None:
    proc, _ = server
    created = _mp(server, "create", "--name", "Dark Mode", "--key", "dark_mode", "--description", "night",
                  "--tags", "ui,beta", "--format", "json")  # fmt: skip
    flag_id = created["id"]
    assert (created["key"], created["name"], created["status"], created["tags"]) == (
        "dark_mode", "Dark Mode", "disabled", ["ui", "beta"]
    )  # fmt: skip
    assert created["project_id"] == PROJECT_ID and created["context"] == "distinct_id" and created["hash_salt"]
    assert _flags_for(proc, "u1") == {}  # disabled: not served

    listed = _mp(server, "list", "--format", "json")
    assert [f["id"] for f in listed] == [flag_id]
    assert _mp(server, "get", flag_id, "--format", "json")["description"] == "night"

    updated = _mp(server, "update", flag_id, "--name", "Dark Mode", "--key", "dark_mode", "--status", "enabled",
                  "--ruleset", json.dumps(RULESET), "--format", "json")  # fmt: skip
    assert updated["status"] == "enabled" and updated["ruleset"] == RULESET and updated["enabled_at"]
    assert updated["hash_salt"] == created["hash_salt"]  # assignment is stable across edits
    assert _flags_for(proc, "u1")["dark_mode"]["variant_key"] == "on"

    assert _mp_run(server, "archive", flag_id).returncode == 0
    assert _mp(server, "list", "--format", "json") == []
    [archived] = _mp(server, "list", "--include-archived", "--format", "json")
    assert archived["status"] == "archived" and _flags_for(proc, "u1") == {}

    restored = _mp(server, "restore", flag_id, "--format", "json")
    assert restored["status"] == "disabled"

    assert _mp_run(server, "delete", flag_id).returncode == 0
    assert _mp(server, "list", "--include-archived", "--format", "json") == []
    r = httpx.get(f"{proc.url}/api/app/projects/{PROJECT_ID}/feature-flags/{flag_id}", auth=SA_AUTH)
    assert r.status_code == 404 and r.json() == {"status": "error", "error": f"Feature flag not found for id {flag_id}"}


def test_mp_flags_refuses_a_duplicate_key(server: tuple[ServerProcess, Path]) -> None:
    _mp(server, "create", "--name", "A", "--key", "dup_key", "--format", "json")
    done = _mp_run(server, "create", "--name", "B", "--key", "dup_key")
    assert done.returncode != 0 and "already exists" in done.stdout + done.stderr
