"""The access log (docs/operations.md): one JSON line per request, whose `project` is the project the
request acted on, and no line lost to a hostile parameter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("access-log") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def lines_of(server: ServerProcess, call: Any) -> list[dict[str, Any]]:
    before = len(server.log_path.read_text())
    call()
    time.sleep(0.2)
    new = server.log_path.read_text()[before:]
    # The line of the start-up's last /healthz poll may be written after its answer reached the poller.
    lines = [orjson.loads(line) for line in new.splitlines() if line.startswith("{")]
    return [line for line in lines if line["path"] != "/healthz"]


def test_a_project_id_above_2_63_keeps_the_line_of_a_stored_track_write(logged: ServerProcess) -> None:
    recent = int(time.time()) - 60  # /track takes the last 5 days only
    event = {"event": "logged", "properties": {"token": TOKEN, "distinct_id": "u", "time": recent}}

    def send() -> None:
        r = httpx.post(
            f"{logged.url}/track",
            params={"project_id": str(2**64), "verbose": "1"},
            data={"data": orjson.dumps(event).decode()},
        )
        assert r.json() == {"status": 1, "error": None}

    lines = lines_of(logged, send)
    assert [(line["path"], line["status"], line["project"]) for line in lines] == [("/track", 200, PROJECT_ID)]


@pytest.mark.parametrize(
    "name",
    ["export by secret", "export by service account", "query by secret", "import by secret", "app api", "engage"],
)
def test_the_project_field_is_the_project_acted_on(logged: ServerProcess, name: str) -> None:
    dates = {"from_date": "2023-11-14", "to_date": "2023-11-15"}
    calls = {
        "export by secret": lambda: httpx.get(f"{logged.url}/api/2.0/export", params=dates, auth=(SECRET, "")),
        "export by service account": lambda: httpx.get(
            f"{logged.url}/api/2.0/export", params={**dates, "project_id": PROJECT_ID}, auth=(SA_USER, SA_SECRET)
        ),
        "query by secret": lambda: httpx.get(f"{logged.url}/api/query/events/names", auth=(SECRET, "")),
        "import by secret": lambda: httpx.post(
            f"{logged.url}/import",
            json=[{"event": "e", "properties": {"time": 1_700_000_000, "distinct_id": "u", "$insert_id": "log1"}}],
            auth=(SECRET, ""),
        ),
        "app api": lambda: httpx.get(f"{logged.url}/api/app/projects/{PROJECT_ID}/funnels", auth=(SECRET, "")),
        "engage": lambda: httpx.post(
            f"{logged.url}/engage",
            data={"data": orjson.dumps({"$token": TOKEN, "$distinct_id": "u", "$set": {"a": 1}}).decode()},
        ),
    }

    def call() -> None:
        assert calls[name]().status_code == 200

    lines = lines_of(logged, call)
    assert len(lines) == 1 and lines[0]["status"] == 200
    assert lines[0]["project"] == PROJECT_ID


def test_an_unknown_project_id_is_null_not_a_lost_line(logged: ServerProcess) -> None:
    lines = lines_of(
        logged,
        lambda: httpx.get(f"{logged.url}/api/query/events/names", params={"project_id": str(2**70)}),
    )
    assert [(line["status"], line["project"]) for line in lines] == [(401, None)]


def test_the_documented_line_shape(logged: ServerProcess) -> None:
    ops = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    assert '"project": 4242' in ops
