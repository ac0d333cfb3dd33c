"""Golden funnel and retention fixtures (tests/golden/funnels, tests/golden/retention): events in, the full
response out, each hand-computed from the rule and source named in the file. Every fixture gets a
project of its own (and its timezone) on one server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.funnel_helpers import load, query, save_funnel
from tests.server import SA_SECRET, SA_USER, ServerProcess, seed_catalog

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted((GOLDEN / "funnels").glob("*.json")) + sorted((GOLDEN / "retention").glob("*.json"))
FIRST_PROJECT = 7100


def _ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def golden_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("golden-funnels") / "data"
    for i, path in enumerate(FILES):
        fixture = orjson.loads(path.read_bytes())
        seed_catalog(
            data_dir,
            project_id=FIRST_PROJECT + i,
            token=f"gf-token-{i}",
            secret=f"gf-secret-{i}",
            api_key=f"gf-key-{i}",
            timezone=fixture.get("timezone", "UTC"),
            sa_user=SA_USER,
            sa_secret=SA_SECRET,
        )
    proc = ServerProcess(data_dir).start()
    for i, path in enumerate(FILES):
        fixture = orjson.loads(path.read_bytes())
        events = [{**e, "time": _ms(e["time"])} for e in fixture["events"]]
        load(proc.url, events, secret=f"gf-secret-{i}")
    yield proc
    proc.stop()


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(golden_server: ServerProcess, path: Path) -> None:
    fixture = orjson.loads(path.read_bytes())
    assert fixture["rule"] and fixture["source"]
    project_id = FIRST_PROJECT + FILES.index(path)
    params = dict(fixture["query"])
    if "funnel" in fixture:
        definition = {"name": path.stem, **fixture["funnel"]}
        params["funnel_id"] = save_funnel(golden_server.url, definition, project_id=project_id)
        endpoint = "funnels"
    else:
        endpoint = fixture.get("endpoint", "retention")
    assert query(golden_server.url, endpoint, project_id=project_id, **params) == fixture["expected"]
