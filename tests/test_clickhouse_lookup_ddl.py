"""How a lookup table version becomes a `Join` table on ClickHouse (mixhouse/engine/clickhouse/lookups.py).

On a cluster the statements are checked against a snapshot (tests/snapshots/clickhouse-lookup-cluster.sql)
and ClickHouse's own parser reads each one (no Keeper or cluster is here to run them). On one server they
run for real, through the HTTP driver against the loopback endpoint, from two engines' worth of
`LookupTables` (two API processes): a version loaded by one is used by the other, and two loads of one
version racing end with one table. After an intended change, regenerate the snapshot with
`MIXHOUSE_UPDATE_SNAPSHOTS=1 pytest tests/test_clickhouse_lookup_ddl.py` and review the diff."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from mixhouse.engine.clickhouse.driver import HTTPDriver
from mixhouse.engine.clickhouse.lookups import LookupTables, drop_statement, load_statements
from mixhouse.engine.clickhouse.store import Store
from mixhouse.expr import ast
from mixhouse.lookup.binding import MappedTable
from tests.clickhouse_endpoint import ClickHouseEndpoint

SNAPSHOT = Path(__file__).parent / "snapshots" / "clickhouse-lookup-cluster.sql"


def _cluster_statements() -> list[str]:
    before, target, after = load_statements("mixhouse", "lookup_7_3", "0123456789ab", "mixhouse")
    insert = f"INSERT INTO mixhouse.{target} (k, v) FORMAT JSONEachRow"
    return [*before, insert, *after, drop_statement("mixhouse", "lookup_7_2", "mixhouse")]


def test_the_cluster_load_matches_its_snapshot() -> None:
    text = "".join(s.strip() + ";\n\n" for s in _cluster_statements())
    if os.environ.get("MIXHOUSE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()
    stmts = _cluster_statements()
    assert all("ON CLUSTER mixhouse" in s for s in stmts if not s.startswith("INSERT"))
    assert "ReplicatedMergeTree('/clickhouse/tables/all/mixhouse/lookup_7_3_rows_0123456789ab'" in stmts[0]
    assert stmts.index("SYSTEM SYNC REPLICA ON CLUSTER mixhouse mixhouse.lookup_7_3_rows_0123456789ab") == 2


_PARSE = """
import sys, chdb, orjson
for sql in orjson.loads(sys.stdin.buffer.read()):
    print(str(chdb.query("EXPLAIN AST " + sql, "TSVRaw")).splitlines()[0])
"""


def test_clickhouse_parses_every_cluster_load_statement() -> None:
    """In a process of its own (chDB holds one ClickHouse instance per process)."""
    stmts = [s for s in _cluster_statements() if not s.startswith("INSERT")]
    done = subprocess.run(
        [sys.executable, "-c", _PARSE], input=orjson.dumps(stmts), capture_output=True, check=True, timeout=120
    )
    firsts = done.stdout.decode().splitlines()
    assert [line.split(" ")[0] for line in firsts] == [
        "CreateQuery",
        "SYSTEM",
        "CreateQuery",
        "Rename",
        "DropQuery",
        "DropQuery",
    ], firsts


class Rows:
    """A lookup source with one table (id 7) whose versions are fixed rows: what the catalog's lookup
    store hands the engine (`rows` of a version), counted."""

    def __init__(self) -> None:
        self.reads = 0

    def mapped(self, project_id: int, source: str, prop: str) -> MappedTable | None:
        return None

    def rows(self, ref: ast.LookupRef) -> pa.Table | None:
        self.reads += 1
        return pa.table({"k": ["a", "b"], "v": [f'{{"n": "{ref.version}-a"}}', f'{{"n": "{ref.version}-b"}}']})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with ClickHouseEndpoint(tmp_path_factory.mktemp("lookups") / "clickhouse") as endpoint:
        driver = HTTPDriver(endpoint.url, "lk")
        try:
            yield Store(driver)
        finally:
            driver.close()


def _cell(store: Store, version: str, key: str) -> object:
    table = f"lk.lookup_7_{version}"
    return store.rows(f"SELECT joinGetOrNull('{table}', 'v', {{k:String}}) AS v", {"k": key})[0]["v"]


def test_a_version_loaded_by_one_process_is_used_by_another(store: Store) -> None:
    first_source, second_source = Rows(), Rows()
    first, second = LookupTables(store, first_source), LookupTables(store, second_source)
    assert first.load(ast.LookupRef("7", "1"))
    assert second.load(ast.LookupRef("7", "1"))
    assert (first_source.reads, second_source.reads) == (1, 0)  # the second found the table complete
    assert _cell(store, "1", "b") == '{"n": "1-b"}'


def test_two_loads_of_one_version_at_once_leave_one_table(store: Store) -> None:
    """Both started before either finished: each loads under a name of its own; the second rename finds the
    version there, and that load drops its own table rather than failing the query."""
    first, second = LookupTables(store, Rows()), LookupTables(store, Rows())
    ref = ast.LookupRef("7", "2")
    first._create("lookup_7_2", ["a"], ['{"n": "2-a"}'])
    second._create("lookup_7_2", ["a"], ['{"n": "other"}'])
    assert first.load(ref) and second.load(ref)
    names = {str(r["name"]) for r in store.rows("SELECT name FROM system.tables WHERE database = 'lk'")}
    assert {n for n in names if n.startswith("lookup_7_2")} == {"lookup_7_2"}
    assert _cell(store, "2", "a") == '{"n": "2-a"}'
