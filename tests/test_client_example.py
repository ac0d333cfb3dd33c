"""The integration workflow docs/client.md shows (find a profile by a CRM's customer id with /engage, then
export that user's raw events with /export): the code block is taken from the page and run against a live
server, so the documentation cannot drift from the client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mixhouse_client import Client, ServiceAccount

from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, seed_catalog

DOC = Path(__file__).parents[1] / "docs" / "client.md"
T0 = int(datetime(2024, 6, 3, tzinfo=UTC).timestamp())


def example_code() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- example: crm-export -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/client.md lost its crm-export example"
    return match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("example") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def test_the_documented_workflow_finds_the_user_and_exports_their_events(server: ServerProcess) -> None:
    code = example_code()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 10, code
    with Client(base_url=server.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID), token=TOKEN) as client:
        client.engage(
            [
                {"$distinct_id": "ada", "$set": {"customer_id": "hs-42", "$email": "ada@example.com"}},
                {"$distinct_id": "bob", "$set": {"customer_id": "hs-7"}},
            ]
        )
        events: list[dict[str, Any]] = [
            {"event": name, "properties": {"distinct_id": user, "time": T0 + i * 3600, "n": i}}
            for i, (name, user) in enumerate(
                [
                    ("Signed Up", "ada"),
                    ("Signed Up", "bob"),
                    ("Purchase", "ada"),
                    ("Purchase", "bob"),
                    ("Churned", "ada"),
                ]
            )
        ]
        client.import_events(events)
        namespace: dict[str, Any] = {}
        exec(compile(code, str(DOC), "exec"), namespace)
        found = namespace["events_of_customer"](client, "hs-42", "2024-06-01", "2024-06-30")
        assert namespace["events_of_customer"](client, "hs-404", "2024-06-01", "2024-06-30") == []
        quoted = namespace["events_of_customer"](client, 'hs-"42', "2024-06-01", "2024-06-30")
        assert quoted == []  # a customer id with a quote is a literal, not an expression
    assert [e["event"] for e in found] == ["Signed Up", "Purchase", "Churned"]
    assert found == [
        e
        for e in export(server.url, from_date="2024-06-01", to_date="2024-06-30")
        if e["properties"]["distinct_id"] == "ada"
    ]
