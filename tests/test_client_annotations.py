"""The client's annotations (`Client.annotations`, App API; `Client.legacy_annotations`, `/api/2.0`) and the
`annotations` commands, against a live server on loopback, each checked against what the server stores
(its annotation store, read from the data folder) and what the other shape answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
from mixhouse_client import (
    BadRequest,
    Client,
    ConfigurationError,
    NotFound,
    PermissionDenied,
    ProjectSecret,
    ServiceAccount,
)

from mixhouse.annotations.store import AnnotationStore
from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

MIXHOUSE = Path(sys.executable).parent / "mixhouse"
OTHER = 5252  # another project: its annotations are never seen from PROJECT_ID


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("annotations") / "data"
    seed_catalog(data_dir)
    seed_catalog(data_dir, project_id=OTHER, token="T5252", secret="S5252", api_key="K5252", sa_user="sa.other")
    Catalog(data_dir).create_service_account(
        username="sa.viewer", secret="viewer-secret", project_id=PROJECT_ID, role=Role.CONSUMER
    )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(base_url=server.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)) as c:
        yield c


def stored(server: ServerProcess, project_id: int = PROJECT_ID) -> dict[int, tuple[str, str, list[str], str | None]]:
    """What the server keeps: {id: (date, description, tag names, creator)}."""
    store = AnnotationStore(Catalog(server.data_dir))
    return {
        a.id: (a.date, a.description, sorted(t.name for t in a.tags), a.user.name if a.user else None)
        for a in store.in_range(project_id)
    }


def test_tags_and_annotations_through_the_app_api(server: ServerProcess, client: Client) -> None:
    release = client.annotations.create_tag("release")
    outage = client.annotations.create_tag("outage")
    assert release["name"] == "release" and release["project_id"] == PROJECT_ID and not release["has_annotations"]

    launch = client.annotations.create(datetime(2024, 1, 15, 12, 0), "v2.0 launched", tags=[release["id"]])
    assert launch["date"] == "2024-01-15 12:00:00" and launch["description"] == "v2.0 launched"
    assert launch["tags"] == [{"id": release["id"], "name": "release"}]
    assert launch["user"] is not None and launch["user"]["first_name"] == SA_USER
    down = client.annotations.create("2024-01-20 03:30:00", "EU outage", tags=[outage["id"], release["id"]])
    plain = client.annotations.create(date(2024, 2, 1), "pricing change")
    assert plain["date"] == "2024-02-01 00:00:00" and plain["tags"] == []

    assert {k: v for k, v in stored(server).items() if k in (launch["id"], down["id"], plain["id"])} == {
        launch["id"]: ("2024-01-15 12:00:00", "v2.0 launched", ["release"], SA_USER),
        down["id"]: ("2024-01-20 03:30:00", "EU outage", ["outage", "release"], SA_USER),
        plain["id"]: ("2024-02-01 00:00:00", "pricing change", [], SA_USER),
    }
    tags = {t["name"]: t for t in client.annotations.tags()}
    assert tags["release"]["has_annotations"] and tags["outage"]["has_annotations"]

    # listing: oldest first, whole days inclusive, either side open, tags = any of
    january = client.annotations.list(from_date="2024-01-01", to_date="2024-02-29")
    assert [a["id"] for a in january] == [launch["id"], down["id"], plain["id"]]
    assert [a["id"] for a in client.annotations.list(from_date="2024-01-16", to_date="2024-01-20")] == [down["id"]]
    assert [a["id"] for a in client.annotations.list(from_date="2024-01-15", to_date=date(2024, 1, 15))] == [
        launch["id"]
    ]
    assert [a["id"] for a in client.annotations.list(from_date="2024-01-21", to_date="2024-02-29")] == [plain["id"]]
    assert [a["id"] for a in client.annotations.list(tags=[outage["id"]])] == [down["id"]]
    assert [a["id"] for a in client.annotations.list(tags=[outage["id"], release["id"]])] == [launch["id"], down["id"]]
    assert client.annotations.get(down["id"]) == down

    # update: only the fields given; tags=[] removes them all
    moved = client.annotations.update(down["id"], date="2024-01-21")
    assert moved["date"] == "2024-01-21 00:00:00" and moved["description"] == "EU outage" and len(moved["tags"]) == 2
    retagged = client.annotations.update(down["id"], description="EU outage (resolved)", tags=[])
    assert retagged["tags"] == [] and retagged["date"] == "2024-01-21 00:00:00"
    assert stored(server)[down["id"]] == ("2024-01-21 00:00:00", "EU outage (resolved)", [], SA_USER)

    client.annotations.delete(plain["id"])
    assert plain["id"] not in stored(server)
    with pytest.raises(NotFound) as missing:
        client.annotations.get(plain["id"])
    assert missing.value.body == {"status": "error", "error": f"no annotation with id {plain['id']} in this project"}


def test_the_legacy_shape_reads_and_writes_the_same_annotations(server: ServerProcess, client: Client) -> None:
    tag = client.annotations.create_tag("legacy-kept")
    tagged = client.annotations.create("2023-06-01 08:00:00", "tagged in the app", tags=[tag["id"]])
    listed = client.legacy_annotations.list(from_date="2023-06-01", to_date="2023-06-30")
    assert listed == [
        {
            "id": tagged["id"],
            "project_id": PROJECT_ID,
            "date": "2023-06-01 08:00:00",
            "description": "tagged in the app",
        }
    ]
    made = client.legacy_annotations.create(datetime(2023, 6, 2, 9, 15, 30), "made through /api/2.0")
    assert made == {
        "id": made["id"],
        "project_id": PROJECT_ID,
        "date": "2023-06-02 09:15:30",
        "description": "made through /api/2.0",
    }
    user = client.annotations.get(made["id"])["user"]
    assert user is not None and (user["first_name"], user["last_name"]) == (SA_USER, "")

    # a legacy update changes the text and keeps the tags set through the App API
    updated = client.legacy_annotations.update(tagged["id"], description="renamed through /api/2.0")
    assert updated["description"] == "renamed through /api/2.0" and updated["date"] == "2023-06-01 08:00:00"
    assert stored(server)[tagged["id"]] == ("2023-06-01 08:00:00", "renamed through /api/2.0", ["legacy-kept"], SA_USER)
    assert client.legacy_annotations.update(made["id"], date="2023-06-03")["date"] == "2023-06-03 00:00:00"

    client.legacy_annotations.delete(made["id"])
    assert made["id"] not in stored(server)
    with pytest.raises(NotFound) as missing:
        client.legacy_annotations.delete(made["id"])
    assert missing.value.status == 404 and "request" in missing.value.body  # the Query API's error envelope
    # the raw legacy route agrees with the client
    raw = httpx.get(
        f"{server.url}/api/2.0/annotations",
        params={"from_date": "2023-06-01", "to_date": "2023-06-30"},
        auth=(SECRET, ""),
    ).json()
    assert raw == {
        "annotations": client.legacy_annotations.list(from_date="2023-06-01", to_date="2023-06-30"),
        "error": False,
    }


def test_project_secret_credentials_and_the_project_boundary(server: ServerProcess, client: Client) -> None:
    with Client(base_url=server.url, credentials=ProjectSecret(SECRET)) as legacy_only:
        made_legacy = legacy_only.legacy_annotations.create("2022-02-02", "with the secret, legacy")
        assert legacy_only.legacy_annotations.list(from_date="2022-02-02", to_date="2022-02-02") == [made_legacy]
        with pytest.raises(ConfigurationError, match="project id"):
            legacy_only.annotations.list()  # the App API path names the project
    with Client(base_url=server.url, credentials=ProjectSecret(SECRET, PROJECT_ID)) as owner:
        made = owner.annotations.create("2022-01-01", "with the project secret")
        assert made["user"] is None
        assert stored(server)[made["id"]][3] is None
    with Client(base_url=server.url, credentials=ServiceAccount("sa.other", SA_SECRET, OTHER)) as other:
        other.annotations.create("2022-01-01", "another project's")
        assert [a["description"] for a in other.annotations.list()] == ["another project's"]
        with pytest.raises(NotFound):
            other.annotations.get(made["id"])
    assert "another project's" not in [a["description"] for a in client.annotations.list()]
    assert [d for _, d, _, _ in stored(server, OTHER).values()] == ["another project's"]


def test_refusals_carry_the_servers_body_and_write_nothing(server: ServerProcess, client: Client) -> None:
    client.annotations.create_tag("unique")
    before = stored(server), client.annotations.tags()
    with pytest.raises(BadRequest) as too_long:
        client.annotations.create("2024-03-01", "x" * 513)
    assert too_long.value.status == 400 and too_long.value.body["status"] == "error"
    with pytest.raises(BadRequest, match="2021-02-30"):
        client.annotations.create("2021-02-30", "no such day")
    with pytest.raises(BadRequest):
        client.annotations.create("2024-03-01", "unknown tag", tags=[999_999])
    with pytest.raises(BadRequest):
        client.annotations.create_tag("unique")  # names are unique in a project
    with pytest.raises(BadRequest) as legacy_bad:
        client.legacy_annotations.create("not a date", "legacy")
    assert set(legacy_bad.value.body) == {"request", "error"}
    with Client(base_url=server.url, credentials=ServiceAccount("sa.viewer", "viewer-secret", PROJECT_ID)) as viewer:
        assert [a["id"] for a in viewer.annotations.list()] == [a["id"] for a in client.annotations.list()]
        with pytest.raises(PermissionDenied):
            viewer.annotations.create("2024-03-01", "a consumer may not write")
        with pytest.raises(PermissionDenied):
            viewer.legacy_annotations.create("2024-03-01", "nor through /api/2.0")
    assert (stored(server), client.annotations.tags()) == before


# -- the command line ------------------------------------------------------------------------------


def cli(server: ServerProcess, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXHOUSE_", "MP_"))}
    env.update(
        MIXHOUSE_BASE_URL=server.url,
        MIXHOUSE_USERNAME=SA_USER,
        MIXHOUSE_SECRET=SA_SECRET,
        MIXHOUSE_PROJECT_ID=str(PROJECT_ID),
        COLUMNS="160",
    )
    result = subprocess.run([str(MIXHOUSE), *args], capture_output=True, text=True, timeout=120, env=env)
    assert (result.returncode == 0) is ok, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and SA_SECRET not in result.stdout + result.stderr
    return result


def test_annotations_commands(server: ServerProcess) -> None:
    made = json.loads(
        cli(
            server, "annotations", "create", "--date", "2021-05-04", "--description", "May the 4th", "--tag", "cli"
        ).stdout
    )
    assert made["date"] == "2021-05-04 00:00:00" and [t["name"] for t in made["tags"]] == ["cli"]  # tag made
    again = json.loads(
        cli(
            server, "annotations", "create", "--date", "2021-05-05 10:00:00", "--description", "next", "--tag", "cli"
        ).stdout
    )
    assert again["tags"] == made["tags"]  # the existing tag reused
    assert stored(server)[made["id"]] == ("2021-05-04 00:00:00", "May the 4th", ["cli"], SA_USER)

    table = cli(server, "annotations", "list", "--from-date", "2021-05-01", "--to-date", "2021-05-31").stdout
    assert "May the 4th" in table and "2021-05-05 10:00:00" in table and "sa.user" in table
    as_json = json.loads(
        cli(server, "annotations", "list", "--from-date", "2021-05-01", "--to-date", "2021-05-31", "--json").stdout
    )
    assert [a["id"] for a in as_json] == [made["id"], again["id"]]
    csv_lines = cli(server, "annotations", "list", "--tag", "cli", "--csv").stdout.splitlines()
    assert csv_lines == [
        "id,date,description,tags,by",
        f"{made['id']},2021-05-04 00:00:00,May the 4th,cli,sa.user",
        f"{again['id']},2021-05-05 10:00:00,next,cli,sa.user",
    ]
    updated = json.loads(
        cli(server, "annotations", "update", str(again["id"]), "--description", "later", "--no-tags").stdout
    )
    assert updated["description"] == "later" and updated["tags"] == []
    tags = json.loads(cli(server, "annotations", "tags", "--json").stdout)
    assert [t["has_annotations"] for t in tags if t["name"] == "cli"] == [True]

    deleted = cli(server, "annotations", "delete", str(made["id"]))
    assert deleted.stderr == f"deleted annotation {made['id']}\n"
    assert made["id"] not in stored(server)
    missing = cli(server, "annotations", "delete", str(made["id"]), ok=False)
    assert missing.stderr == f"error: 404 no annotation with id {made['id']} in this project\n"
    secret_only = subprocess.run(
        [str(MIXHOUSE), "annotations", "list", "--base-url", server.url, "--api-secret", SECRET],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("MIXHOUSE_", "MP_"))},
        timeout=60,
    )
    assert secret_only.returncode == 1 and SECRET not in secret_only.stderr
    assert secret_only.stderr.startswith("error: this call needs the project id")
    unknown = cli(server, "annotations", "list", "--tag", "nope", ok=False)
    assert unknown.stderr == "error: no annotation tag named 'nope'\n"
