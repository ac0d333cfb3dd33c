from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engine", default=None, help="run the engine contract suite on this engine only (default: all)")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the read-mostly tests; tests that need isolation use project ids of their own."""
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server on an empty data dir of its own."""
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def export(
    base: str, *, project_id: int = PROJECT_ID, auth: tuple[str, str] = (SA_USER, SA_SECRET), **params: str
) -> list[dict[str, object]]:
    """Every exported event, parsed from the JSONL body."""
    import orjson

    query = {"project_id": str(project_id), "from_date": "2020-01-01", "to_date": today(), **params}
    response = httpx.get(f"{base}/api/2.0/export", params=query, auth=auth, timeout=60)
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line]
