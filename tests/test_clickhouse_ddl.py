"""The DDL the ClickHouse engine runs at start, single node and cluster, against snapshots
(tests/snapshots/clickhouse-ddl-*.sql, also shown in docs/scale-out.md). ClickHouse's own parser (chDB's
`EXPLAIN AST`) reads every statement, so a snapshot cannot hold SQL the server would refuse to parse; a
cluster's Keeper and macros are not there to run it. After an intended change, regenerate with
`MIXHOUSE_UPDATE_SNAPSHOTS=1 pytest tests/test_clickhouse_ddl.py` and review the diff."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from mixhouse.engine.clickhouse.schema import cluster_statements, ddl, statements
from mixhouse.errors import SettingsError
from mixhouse.settings import load_settings

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _text(stmts: list[str]) -> str:
    return "".join(s.strip() + ";\n\n" for s in stmts)


@pytest.mark.parametrize(
    ("name", "stmts"),
    [("single", statements("mixhouse")), ("cluster", cluster_statements("mixhouse", "mixhouse"))],
)
def test_the_emitted_ddl_matches_its_snapshot(name: str, stmts: list[str]) -> None:
    path = SNAPSHOTS / f"clickhouse-ddl-{name}.sql"
    if os.environ.get("MIXHOUSE_UPDATE_SNAPSHOTS"):
        path.write_text(_text(stmts))
    assert _text(stmts) == path.read_text()


_PARSE = """
import sys, chdb, orjson
for sql in orjson.loads(sys.stdin.buffer.read()):
    print(str(chdb.query("EXPLAIN AST " + sql, "TSVRaw")).splitlines()[0])
"""


def test_clickhouse_parses_every_cluster_statement() -> None:
    """In a process of its own: chDB holds one ClickHouse instance per process, which other tests' sessions
    on their own folders may hold."""
    stmts = cluster_statements("mixhouse", "mixhouse")
    done = subprocess.run(
        [sys.executable, "-c", _PARSE], input=orjson.dumps(stmts), capture_output=True, check=True, timeout=120
    )
    firsts = done.stdout.decode().splitlines()
    assert len(firsts) == len(stmts)
    assert all(line.startswith("CreateQuery mixhouse") for line in firsts), firsts


def test_the_cluster_ddl_shards_events_and_replicates_the_rest() -> None:
    stmts = cluster_statements("analytics", "prod")
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS analytics ON CLUSTER prod"
    assert all(" ON CLUSTER prod" in s for s in stmts)
    assert sum("Distributed(" in s for s in stmts) == 1
    assert "ENGINE = Distributed(prod, analytics, events_local, user_key)" in stmts[2]
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/analytics/events', '{replica}')" in stmts[1]
    assert all("non_replicated_deduplication_window" not in s for s in stmts)
    assert all("fsync_after_insert = 1" in s for s in stmts if "MergeTree" in s)
    assert ddl("analytics", None) == statements("analytics") == ddl("analytics", "")


@pytest.mark.parametrize("bad", ["a b", "x;DROP", "1st", "prod'"])
def test_a_cluster_name_that_is_not_an_identifier_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match="clickhouse_cluster"):
        cluster_statements("mixhouse", bad)


def test_the_cluster_setting_is_read_and_refused_on_chdb(tmp_path: Path) -> None:
    from mixhouse.engine.clickhouse import ClickHouseEngine

    settings = load_settings(
        {"data_dir": tmp_path, "engine": "clickhouse"}, env={"MIXHOUSE_CLICKHOUSE_CLUSTER": "prod"}
    )
    assert settings.clickhouse_cluster == "prod"
    assert load_settings({"data_dir": tmp_path}, env={}).clickhouse_cluster == ""
    chdb_settings = load_settings({"data_dir": tmp_path, "engine": "chdb", "clickhouse_cluster": "prod"}, env={})
    with pytest.raises(SettingsError, match="needs --engine clickhouse"):
        ClickHouseEngine.from_settings(chdb_settings)
