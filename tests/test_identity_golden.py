"""Golden identity cases (tests/golden/identity/*.json, format in its README): every rule of https://docs.mixpanel.com/docs/tracking-methods/id-management
for both ID Merge systems, sent over real HTTP to a real server, each case in a project of its own, and
checked through what a client sees: the export (canonical id, `$distinct_id_before_identity`), distinct
users over the exported ids, and profiles through the Query API's `/engage`."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixhouse.domain.project import IdMerge
from tests.conftest import export
from tests.server import ServerProcess, seed_catalog

GOLDEN_DIR = Path(__file__).parent / "golden" / "identity"
CASES = sorted(GOLDEN_DIR.glob("*.json"))
FIRST_PROJECT_ID = 7100


@dataclass(frozen=True)
class CaseProject:
    project_id: int
    token: str
    secret: str


@dataclass(frozen=True)
class GoldenServer:
    server: ServerProcess
    projects: dict[str, CaseProject]


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    for key in ("rule", "source", "id_merge", "requests", "expected"):
        assert key in case, f"{path.name}: missing {key!r}"
    assert "https://" in case["source"], f"{path.name}: the source must name Mixpanel's page for the rule"
    return case


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoldenServer]:
    data_dir = tmp_path_factory.mktemp("identity-golden") / "data"
    projects: dict[str, CaseProject] = {}
    for index, path in enumerate(CASES):
        project = CaseProject(FIRST_PROJECT_ID + index, f"id-token-{index}", f"id-secret-{index}")
        seed_catalog(
            data_dir,
            project_id=project.project_id,
            token=project.token,
            secret=project.secret,
            api_key=f"id-key-{index}",
            id_merge=IdMerge(_load(path)["id_merge"]),
            sa_user=None,
        )
        projects[path.name] = project
    proc = ServerProcess(data_dir).start()
    yield GoldenServer(proc, projects)
    proc.stop()


def _substitute(value: Any, i: int) -> Any:
    if isinstance(value, str):
        return value.replace("{i}", str(i))
    if isinstance(value, list):
        return [_substitute(v, i) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, i) for k, v in value.items()}
    return value


def _expand(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in events:
        if "$repeat" not in entry:
            out.append(entry)
            continue
        for i in range(int(entry["$repeat"])):
            event = _substitute(copy.deepcopy(entry["event"]), i)
            event["properties"]["time"] += i
            out.append(event)
    return out


def _send(base: str, project: CaseProject, request: dict[str, Any]) -> httpx.Response:
    endpoint = request["endpoint"]
    if endpoint == "import":
        auth = (project.token if request.get("auth") == "token" else project.secret, "")
        return httpx.post(f"{base}/import", params={"strict": "1"}, json=_expand(request["events"]), auth=auth)
    if endpoint == "track":
        now = int(time.time())
        events = copy.deepcopy(request["events"])
        for event in events:
            props = event["properties"]
            props["token"] = project.token
            if props["time"] <= 0:
                props["time"] = now + props["time"]
        return httpx.post(f"{base}/track", data={"data": json.dumps(events), "verbose": "1"})
    assert endpoint == "engage", endpoint
    updates = [{**u, "$token": project.token} for u in request["updates"]]
    return httpx.post(f"{base}/engage", data={"data": json.dumps(updates), "verbose": "1"})


def _profile(base: str, project: CaseProject, distinct_id: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{base}/api/2.0/engage",
        params={"project_id": str(project.project_id), "distinct_id": distinct_id},
        auth=(project.secret, ""),
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert len(results) <= 1
    return results[0]["$properties"] if results else None


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_identity_case(golden: GoldenServer, path: Path) -> None:
    case = _load(path)
    base, project = golden.server.url, golden.projects[path.name]
    for number, request in enumerate(case["requests"]):
        response = _send(base, project, request)
        expect = request.get("expect")
        if expect is not None:
            assert response.status_code == expect["status"], f"request {number}: {response.text}"
            assert response.json() == expect["json"], f"request {number}"
        elif request["endpoint"] == "import":
            assert response.status_code == 200, f"request {number}: {response.text}"
        else:
            assert response.json() == {"status": 1, "error": None}, f"request {number}: {response.text}"

    expected = case["expected"]
    lines = export(base, project_id=project.project_id, auth=(project.secret, ""))
    labelled = [line for line in lines if isinstance(line["properties"], dict) and "n" in line["properties"]]
    seen: dict[str, list[str | None]] = {}
    for line in labelled:
        props: dict[str, Any] = line["properties"]  # type: ignore[assignment]
        assert props["n"] not in seen, f"label {props['n']} exported twice"
        seen[props["n"]] = [props["distinct_id"], props.get("$distinct_id_before_identity")]
    assert seen == expected["export"]

    users = {
        line["properties"]["distinct_id"]  # type: ignore[index]
        for line in labelled
        if not str(line["event"]).startswith("$")
    }
    assert len(users) == expected["unique_users"]

    for distinct_id, wanted in expected.get("profiles", {}).items():
        found = _profile(base, project, distinct_id)
        if wanted is None:
            assert found is None, f"{distinct_id} should have no profile, has {found}"
        else:
            assert found is not None, f"{distinct_id} has no profile"
            assert {k: found.get(k) for k in wanted} == wanted, f"{distinct_id}: {found}"
    for distinct_id, absent in expected.get("profiles_without", {}).items():
        found = _profile(base, project, distinct_id)
        assert found is not None
        assert [k for k in absent if k in found] == [], f"{distinct_id}: {found}"


def test_every_golden_case_names_its_rule_and_source() -> None:
    assert len(CASES) >= 15
    systems = {_load(p)["id_merge"] for p in CASES}
    assert systems == {"simplified", "original"}
