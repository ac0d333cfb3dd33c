"""The hand-computed golden suites, served by a real server on the engine under test: segmentation and
event discovery (tests/golden/segmentation), funnels and retention (tests/golden/funnels, .../retention)
and identity merge (tests/golden/identity). The cases and their checks are the ones the embedded engine
passes (the test functions of tests/test_query_segmentation.py, test_funnels_golden.py and
test_identity_golden.py are called as they are); only the server's engine differs. What an engine does not
answer yet must be refused in the family's error format with 501, never a 500 or a wrong answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests import test_funnels_golden as funnels
from tests import test_identity_golden as identity
from tests import test_query_segmentation as segmentation
from tests.funnel_helpers import AUTH, load
from tests.server import SA_SECRET, SA_USER, ServerProcess, seed_catalog


@pytest.fixture(scope="module")
def segmentation_server(
    tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]
) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("segmentation") / "data"
    seed_catalog(data_dir)
    for i, path in enumerate(segmentation.FILES):
        seed_catalog(
            data_dir,
            project_id=segmentation.BASE_PROJECT + i,
            token=f"SEG-TOKEN-{i}",
            secret=segmentation._secret(i),
            api_key=f"SEG-KEY-{i}",
            timezone=segmentation._load(path)["timezone"],
            sa_user=None,
        )
    server = ServerProcess(data_dir, env=engine_env).start()
    try:
        for i, path in enumerate(segmentation.FILES):
            golden = segmentation._load(path)
            if golden["events"]:
                events = [segmentation._with_ms(e) for e in golden["events"]]
                response = httpx.post(f"{server.url}/import", json=events, auth=(segmentation._secret(i), ""))
                assert response.status_code == 200, response.text
            for update in golden.get("profiles", []):
                body = orjson.dumps({"$token": f"SEG-TOKEN-{i}", **update}).decode()
                response = httpx.post(f"{server.url}/engage", data={"data": body, "verbose": "1"})
                assert response.json()["status"] == 1, response.text
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(("index", "case"), segmentation._cases())
def test_segmentation_golden(segmentation_server: ServerProcess, index: int, case: dict[str, Any]) -> None:
    segmentation.test_golden(segmentation_server, index, case)


@pytest.fixture(scope="module")
def funnels_server(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("golden-funnels") / "data"
    for i, path in enumerate(funnels.FILES):
        fixture = orjson.loads(path.read_bytes())
        seed_catalog(
            data_dir,
            project_id=funnels.FIRST_PROJECT + i,
            token=f"gf-token-{i}",
            secret=f"gf-secret-{i}",
            api_key=f"gf-key-{i}",
            timezone=fixture.get("timezone", "UTC"),
            sa_user=SA_USER,
            sa_secret=SA_SECRET,
        )
    proc = ServerProcess(data_dir, env=engine_env).start()
    try:
        for i, path in enumerate(funnels.FILES):
            fixture = orjson.loads(path.read_bytes())
            events = [{**e, "time": funnels._ms(e["time"])} for e in fixture["events"]]
            load(proc.url, events, secret=f"gf-secret-{i}")
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("path", funnels.FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_funnels_and_retention_golden(
    funnels_server: ServerProcess, path: Path, answers: Callable[[str], bool]
) -> None:
    fixture = orjson.loads(path.read_bytes())
    if "funnel" not in fixture and not answers("RetentionSpec"):
        # Refused in the Query API's format, with a status that says "not here", not "broken".
        params = {"project_id": funnels.FIRST_PROJECT + funnels.FILES.index(path), **fixture["query"]}
        endpoint = fixture.get("endpoint", "retention")
        r = httpx.get(f"{funnels_server.url}/api/query/{endpoint}", params=params, auth=AUTH, timeout=60)
        assert r.status_code == 501, r.text
        assert "not available on the ClickHouse engine" in r.json()["error"]
        return
    funnels.test_golden(funnels_server, path)


@pytest.fixture(scope="module")
def identity_server(
    tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]
) -> Iterator[identity.GoldenServer]:
    data_dir = tmp_path_factory.mktemp("identity-golden") / "data"
    projects: dict[str, identity.CaseProject] = {}
    for index, path in enumerate(identity.CASES):
        project = identity.CaseProject(identity.FIRST_PROJECT_ID + index, f"id-token-{index}", f"id-secret-{index}")
        seed_catalog(
            data_dir,
            project_id=project.project_id,
            token=project.token,
            secret=project.secret,
            api_key=f"id-key-{index}",
            id_merge=identity.IdMerge(identity._load(path)["id_merge"]),
            sa_user=None,
        )
        projects[path.name] = project
    proc = ServerProcess(data_dir, env=engine_env).start()
    try:
        yield identity.GoldenServer(proc, projects)
    finally:
        proc.stop()


@pytest.mark.parametrize("path", identity.CASES, ids=[p.stem for p in identity.CASES])
def test_identity_golden(identity_server: identity.GoldenServer, path: Path) -> None:
    identity.test_golden_identity_case(identity_server, path)
