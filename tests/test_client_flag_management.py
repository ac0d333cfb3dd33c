"""The client's feature-flag management (`Client.feature_flags`, the App API's `feature-flags` routes) and
the `flags list|show|create|update|enable|disable|archive|restore|delete|test-users|readout` commands,
against a live server on loopback: each change checked in the server's flag store and in what `/flags`
serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mixhouse_client import BadRequest, Client, NotFound, PermissionDenied, ServiceAccount

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from mixhouse.flags.service import FlagService
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, seed_catalog

MIXHOUSE = Path(sys.executable).parent / "mixhouse"
RULESET = {
    "variants": [
        {"key": "off", "value": False, "is_control": True, "split": 0.5},
        {"key": "on", "value": True, "is_control": False, "split": 0.5},
    ],
    "rollout": [{"rollout_percentage": 1.0}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("flag-management") / "data"
    seed_catalog(data_dir)
    Catalog(data_dir).create_service_account(
        username="sa.analyst", secret="analyst-secret", project_id=PROJECT_ID, role=Role.ANALYST
    )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(base_url=server.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID), token=TOKEN) as c:
        yield c


def store(server: ServerProcess) -> FlagService:
    catalog = Catalog(server.data_dir)
    project = catalog.project_by_id(PROJECT_ID)
    assert project is not None
    return FlagService(catalog, project)


def served(client: Client, distinct_id: str = "user-1") -> dict[str, dict[str, Any]]:
    return client.flags({"distinct_id": distinct_id})


def test_the_lifecycle_of_a_flag(server: ServerProcess, client: Client) -> None:
    flag = client.feature_flags.create({"name": "Beta", "key": "beta", "ruleset": RULESET, "tags": ["web"]})
    fid = flag["id"]
    assert (flag["status"], flag["key"], flag["tags"], flag["creator_name"]) == ("disabled", "beta", ["web"], SA_USER)
    assert store(server).get(fid) == flag
    assert "beta" not in served(client)

    enabled = client.feature_flags.enable(fid)
    assert enabled["status"] == "enabled" and enabled["enabled_at"] and enabled["hash_salt"] == flag["hash_salt"]
    assert store(server).get(fid)["status"] == "enabled"
    assert served(client)["beta"]["variant_key"] in ("on", "off")

    testers = client.feature_flags.set_test_users(fid, {"on": "qa-on", "off": "qa-off"})
    assert testers["ruleset"]["test"] == {"users": {"qa-on": "on", "qa-off": "off"}}
    assert served(client, "qa-on")["beta"] == {
        "variant_key": "on",
        "variant_value": True,
        "experiment_id": None,
        "is_experiment_active": None,
        "is_qa_tester": True,
    }
    assert served(client, "qa-off")["beta"]["variant_key"] == "off"

    renamed = client.feature_flags.update(fid, {"name": "Beta, renamed", "description": "the new checkout"})
    assert (renamed["name"], renamed["description"], renamed["status"]) == (
        "Beta, renamed",
        "the new checkout",
        "enabled",
    )
    assert renamed["hash_salt"] == flag["hash_salt"] and renamed["ruleset"]["test"] == testers["ruleset"]["test"]
    assert client.feature_flags.get(fid) == renamed == store(server).get(fid)

    disabled = client.feature_flags.disable(fid)
    assert disabled["status"] == "disabled" and "beta" not in served(client, "qa-on")

    archived = client.feature_flags.archive(fid)
    assert archived["status"] == "archived"
    assert "beta" not in [f["key"] for f in client.feature_flags.list()]
    assert "beta" in [f["key"] for f in client.feature_flags.list(include_archived=True)]
    assert client.feature_flags.restore(fid)["status"] == "disabled"
    assert "beta" in [f["key"] for f in client.feature_flags.list()]

    replaced = client.feature_flags.replace(
        fid, {"name": "Beta 2", "key": "beta2", "status": "enabled", "ruleset": RULESET}
    )
    assert (replaced["id"], replaced["key"], replaced["created"]) == (fid, "beta2", flag["created"])
    assert "beta2" in served(client) and "beta2" in [d["key"] for d in client.flag_definitions()]

    client.feature_flags.delete(fid)
    assert fid not in [f["id"] for f in store(server).list_flags(True)]
    with pytest.raises(NotFound) as gone:
        client.feature_flags.get(fid)
    assert gone.value.body["status"] == "error"
    assert "beta2" not in served(client)


def test_workspaces_roles_and_refusals(server: ServerProcess, client: Client) -> None:
    with Client(
        base_url=server.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID), workspace_id=PROJECT_ID
    ) as in_workspace:
        made = in_workspace.feature_flags.create({"name": "Workspace", "key": "in-workspace", "ruleset": RULESET})
        assert made["workspace_id"] == PROJECT_ID and in_workspace.feature_flags.get(made["id"]) == made
    with (
        Client(
            base_url=server.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID), workspace_id=1
        ) as elsewhere,
        pytest.raises(NotFound, match="Workspace not found for id 1"),
    ):
        elsewhere.feature_flags.list()
    with Client(base_url=server.url, credentials=ServiceAccount("sa.analyst", "analyst-secret", PROJECT_ID)) as analyst:
        assert "in-workspace" in [f["key"] for f in analyst.feature_flags.list()]
        with pytest.raises(PermissionDenied):
            analyst.feature_flags.enable(made["id"])
    before = store(server).list_flags(True)
    with pytest.raises(BadRequest, match="already exists"):
        client.feature_flags.create({"name": "Again", "key": "in-workspace", "ruleset": RULESET})
    with pytest.raises(BadRequest):
        client.feature_flags.create({"name": "No variants", "key": "bad", "ruleset": {"variants": []}})
    assert store(server).list_flags(True) == before
    client.feature_flags.delete(made["id"])


def exposures_and_purchases(key: str) -> list[dict[str, Any]]:
    """January 2024: users e0..e9 exposed (even: 'on', odd: 'off'); e0, e2, e4 (on) and e1 (off) buy after."""
    t0 = int(datetime(2024, 1, 10, 12, tzinfo=UTC).timestamp())
    events: list[dict[str, Any]] = []
    for i in range(10):
        variant = "on" if i % 2 == 0 else "off"
        props = {"distinct_id": f"e{i}", "time": t0 + i, "Experiment name": key, "Variant name": variant}
        events.append({"event": "$experiment_started", "properties": props})
        if i in (0, 1, 2, 4):
            events.append({"event": "Purchase", "properties": {"distinct_id": f"e{i}", "time": t0 + 3600 + i}})
    return events


def test_the_readout_of_an_experiment(server: ServerProcess, client: Client) -> None:
    flag = client.feature_flags.create(
        {"name": "Checkout", "key": "checkout", "ruleset": RULESET, "status": "enabled", "experiment_id": "exp-1"}
    )
    assert client.import_events(exposures_and_purchases("checkout")).accepted == 14
    readout = client.feature_flags.readout(flag["id"], "Purchase", "2024-01-01", "2024-01-31", confidence=0.9)
    assert (readout["flag_key"], readout["control"], readout["exposed_users"], readout["confidence"]) == (
        "checkout",
        "off",
        10,
        0.9,
    )
    by_variant = {v["variant"]: v for v in readout["variants"]}
    assert (by_variant["on"]["exposed_users"], by_variant["on"]["converted_users"]) == (5, 3)
    assert (by_variant["off"]["exposed_users"], by_variant["off"]["converted_users"]) == (5, 1)
    assert by_variant["on"]["lift"] == pytest.approx(3 / 5 / (1 / 5) - 1)
    with pytest.raises(BadRequest):
        client.feature_flags.readout(flag["id"], "", "2024-01-01", "2024-01-31")


# -- the command line ------------------------------------------------------------------------------


def cli(
    server: ServerProcess, *args: str, ok: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXHOUSE_", "MP_"))}
    env.update(
        MIXHOUSE_BASE_URL=server.url,
        MIXHOUSE_USERNAME=SA_USER,
        MIXHOUSE_SECRET=SA_SECRET,
        MIXHOUSE_PROJECT_ID=str(PROJECT_ID),
        COLUMNS="200",
    )
    result = subprocess.run([str(MIXHOUSE), *args], capture_output=True, text=True, timeout=120, env=env, input=stdin)
    assert (result.returncode == 0) is ok, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and SA_SECRET not in result.stdout + result.stderr
    return result


def test_flags_commands(server: ServerProcess, client: Client, tmp_path: Path) -> None:
    definition = tmp_path / "flag.json"
    definition.write_text(json.dumps({"name": "Dark mode", "key": "dark-mode", "ruleset": RULESET}))
    made = json.loads(cli(server, "flags", "create", str(definition)).stdout)
    assert made["key"] == "dark-mode" and store(server).get(made["id"])["status"] == "disabled"

    assert cli(server, "flags", "enable", "dark-mode").stderr == "enabled dark-mode (now enabled)\n"
    assert store(server).get(made["id"])["status"] == "enabled" and "dark-mode" in served(client)
    table = cli(server, "flags", "list").stdout
    assert "dark-mode" in table and "enabled" in table and "off, on" in table and "100%" in table
    listed = json.loads(cli(server, "flags", "list", "--json").stdout)
    assert made["id"] in [f["id"] for f in listed]

    changed = json.loads(cli(server, "flags", "update", "dark-mode", "-", stdin='{"description": "night"}').stdout)
    assert changed["description"] == "night" and store(server).get(made["id"])["description"] == "night"
    assert json.loads(cli(server, "flags", "show", made["id"]).stdout) == store(server).get(made["id"])

    testers = json.loads(cli(server, "flags", "test-users", "dark-mode", "--user", "on=qa-1").stdout)
    assert testers == {"qa-1": "on"} and served(client, "qa-1")["dark-mode"]["is_qa_tester"] is True
    bad = cli(server, "flags", "test-users", "dark-mode", "--user", "on", ok=False)
    assert bad.returncode == 2 and bad.stderr.splitlines() == [
        "mixhouse: error: Invalid value for --user: expected VARIANT=DISTINCT_ID, got 'on'"
    ]

    cli(server, "flags", "disable", "dark-mode")
    assert "dark-mode" not in served(client)
    assert cli(server, "flags", "archive", "dark-mode").stderr == "archived dark-mode (now archived)\n"
    assert cli(server, "flags", "restore", "dark-mode").stderr == "restored dark-mode (now disabled)\n"
    assert cli(server, "flags", "delete", "dark-mode").stderr == "deleted dark-mode\n"
    assert made["id"] not in [f["id"] for f in store(server).list_flags(True)]
    missing = cli(server, "flags", "show", "dark-mode", ok=False)
    assert missing.stderr == "error: 404 no feature flag with key or id 'dark-mode'\n"
    elsewhere = cli(server, "flags", "list", "--workspace-id", "1", ok=False)
    assert elsewhere.stderr == "error: 404 Workspace not found for id 1\n"
    assert "error" not in cli(server, "flags", "list", "--workspace-id", str(PROJECT_ID)).stderr
    not_json = cli(server, "flags", "create", "-", stdin="{", ok=False)
    assert not_json.stderr.startswith("error: -: not JSON")


def test_the_readout_command(server: ServerProcess, client: Client) -> None:
    client.feature_flags.create({"name": "Banner", "key": "banner", "ruleset": RULESET, "status": "enabled"})
    client.import_events(exposures_and_purchases("banner"))
    args = ["flags", "readout", "banner", "--conversion-event", "Purchase", "--from-date", "2024-01-01"]
    table = cli(server, *args, "--to-date", "2024-01-31").stdout
    assert "banner: Purchase" in table
    rows = [" ".join(line.replace("│", " ").split()) for line in table.splitlines() if line.startswith("│")]
    assert rows == ["off (control) 5 1 20.0%", "on 5 3 60.0% +200.0% 0.1967 no"]
    as_json = json.loads(cli(server, *args, "--to-date", "2024-01-31", "--json").stdout)
    assert {v["variant"]: v["converted_users"] for v in as_json["variants"]} == {"on": 3, "off": 1}
