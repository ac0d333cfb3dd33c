"""`Client.jql` / `AsyncClient.jql` and `mixhouse query jql` against a live server on loopback: scripts over
events the client imported, checked against the raw export, with `params`, errors, and the result as a
table, JSON and CSV."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mixhouse_client import AsyncClient, BadRequest, Client, ServiceAccount

from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

MIXHOUSE = Path(sys.executable).parent / "mixhouse"
T0 = int(datetime(2024, 7, 1, tzinfo=UTC).timestamp())
SA = ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)
BY_BROWSER = """
function main() {
  return Events({from_date: params.from, to_date: params.to, event_selectors: [{event: params.event}]})
    .groupBy(["properties.browser"], mixpanel.reducer.count());
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("client-jql") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    with Client(base_url=proc.url, credentials=SA) as mp:
        browsers = ["Chrome", "Firefox", "Chrome", "Safari", "Chrome", "Firefox"]
        events = [
            {
                "event": "Login" if i % 4 else "Signup",
                "properties": {"distinct_id": f"j{i % 5}", "time": T0 + i * 3600, "browser": browsers[i % 6]},
            }
            for i in range(48)
        ]
        assert mp.import_events(events).accepted == 48
    yield proc
    proc.stop()


def expected_by_browser(server: ServerProcess) -> dict[str, int]:
    stored = export(server.url, from_date="2024-07-01", to_date="2024-07-02", event='["Login"]')
    return dict(Counter(e["properties"]["browser"] for e in stored))


def test_jql_with_params_matches_the_stored_events(server: ServerProcess) -> None:
    params = {"from": "2024-07-01", "to": "2024-07-02", "event": "Login"}
    with Client(base_url=server.url, credentials=SA) as mp:
        result = mp.jql(BY_BROWSER, params)
        total = mp.jql(
            "function main() { return Events({from_date: '2024-07-01', to_date: '2024-07-02'}).reduce(mixpanel.reducer.count()); }"
        )
    assert {r["key"][0]: r["value"] for r in result} == expected_by_browser(server)
    assert sum(r["value"] for r in result) == 36  # 48 events, every fourth a Signup
    assert total == [48]

    async def in_async() -> Any:
        async with AsyncClient(base_url=server.url, credentials=SA) as amp:
            return await amp.jql(BY_BROWSER, params)

    assert asyncio.run(in_async()) == result


def test_jql_errors_carry_the_query_apis_body(server: ServerProcess) -> None:
    with Client(base_url=server.url, credentials=SA) as mp:
        with pytest.raises(BadRequest) as no_main:
            mp.jql("var x = 1;")
        assert set(no_main.value.body) == {"request", "error"}
        with pytest.raises(BadRequest):
            mp.jql("function main() { throw new Error('boom'); }")


def test_query_jql_command(server: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "by_browser.js"
    script.write_text(BY_BROWSER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIXHOUSE_", "MP_"))}
    env.update(
        MIXHOUSE_BASE_URL=server.url,
        MIXHOUSE_USERNAME=SA_USER,
        MIXHOUSE_SECRET=SA_SECRET,
        MIXHOUSE_PROJECT_ID=str(PROJECT_ID),
        COLUMNS="120",
    )
    params = json.dumps({"from": "2024-07-01", "to": "2024-07-02", "event": "Login"})

    def cli(*args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(MIXHOUSE), "query", "jql", *args], capture_output=True, text=True, env=env, input=stdin, timeout=120
        )
        assert (result.returncode == 0) is ok, result.stderr
        assert "Traceback" not in result.stderr
        return result

    expected = expected_by_browser(server)
    table = cli(str(script), "--params", params).stdout
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in table.splitlines() if line.startswith("│")]
    assert {c[0]: int(c[1]) for c in cells} == expected
    as_json = json.loads(cli(str(script), "--params", params, "--json").stdout)
    assert {r["key"][0]: r["value"] for r in as_json} == expected
    csv_lines = cli("-", "--params", params, "--csv", stdin=BY_BROWSER).stdout.splitlines()
    assert csv_lines[0] == "key,value" and sorted(csv_lines[1:]) == sorted(f"{k},{v}" for k, v in expected.items())
    objects = """function main() {
      return Events({from_date: '2024-07-01', to_date: '2024-07-02'})
        .reduce(mixpanel.reducer.count()).map(function (n) { return {events: n, by: {kind: "all"}}; });
    }"""
    assert json.loads(cli("-", "--json", stdin=objects).stdout) == [{"events": 48, "by": {"kind": "all"}}]
    assert cli("-", "--csv", stdin=objects).stdout.splitlines() == ["events,by", '48,"{""kind"":""all""}"']
    bad = cli("-", stdin="function main() { throw new Error('boom'); }", ok=False)
    assert bad.stderr.startswith("error: 400 ") and len(bad.stderr.splitlines()) == 1
    bad_params = cli(str(script), "--params", "[1]", ok=False)
    assert bad_params.returncode == 2 and "must be a JSON object" in bad_params.stderr
