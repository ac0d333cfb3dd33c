"""A data dir written before the store's version stamp opens with this version: the upgrade runs once at
start (logged), survives kill -9 midway, and the store answers as the old version did."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from mixhouse.engine.duckdb import migrations
from mixhouse.engine.duckdb.engine import DuckDBEngine
from tests.fixtures.make_store_v1 import answers
from tests.server import ServerProcess

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1"
UPGRADE_LINE = "upgrading the event store to version"


def v1_data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    with tarfile.open(FIXTURE / "data.tar.gz") as tar:
        tar.extractall(data_dir, filter="data")
    return data_dir


def version_of(data_dir: Path) -> int | None:
    conn = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
    try:
        return migrations.stored_version(conn)
    finally:
        conn.close()


def expected() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((FIXTURE / "answers.json").read_bytes())
    loaded["engage"] = [list(pair) for pair in loaded["engage"]]
    return loaded


def current_answers(server: ServerProcess) -> dict[str, Any]:
    with httpx.Client(timeout=60) as client:
        got = answers(client, server.url)
    got["engage"] = [list(pair) for pair in got["engage"]]
    return got


def test_the_fixture_is_an_unstamped_store(tmp_path: Path) -> None:
    assert version_of(v1_data_dir(tmp_path)) == migrations.UNSTAMPED_VERSION


def test_a_v1_store_upgrades_once_and_answers_as_before(tmp_path: Path) -> None:
    data_dir = v1_data_dir(tmp_path)
    server = ServerProcess(data_dir).start(timeout=120)
    try:
        assert current_answers(server) == expected()
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert log.count(UPGRADE_LINE) == len(migrations.MIGRATIONS)
    assert f"the event store is at version {migrations.CURRENT_VERSION}" in log
    assert version_of(data_dir) == migrations.CURRENT_VERSION
    # Started again: nothing left to do.
    server.start(timeout=120)
    try:
        assert current_answers(server) == expected()
    finally:
        server.stop()
    assert server.log_path.read_text().count(UPGRADE_LINE) == len(migrations.MIGRATIONS)


def test_an_upgrade_killed_midway_runs_again_on_the_next_start(tmp_path: Path) -> None:
    data_dir = v1_data_dir(tmp_path)
    # The drill holds the first step open before its commit: the server is killed inside it.
    server = ServerProcess(data_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MIXHOUSE_MIGRATION_DRILL_PAUSE_SECONDS": "60"}
    with open(server.log_path, "ab") as log:
        server.proc = subprocess.Popen(
            [sys.executable, "-m", "mixhouse", "serve", *server.serve_args()],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 120
    while UPGRADE_LINE not in server.log_path.read_text():
        assert time.monotonic() < deadline, server.log_path.read_text()
        assert server.proc is not None and server.proc.poll() is None, server.log_path.read_text()
        time.sleep(0.05)
    time.sleep(0.5)  # inside the step now
    server.kill()
    assert version_of(data_dir) == migrations.UNSTAMPED_VERSION  # the step was rolled back

    server.start(timeout=120)
    try:
        assert current_answers(server) == expected()
    finally:
        server.stop()
    assert version_of(data_dir) == migrations.CURRENT_VERSION


def test_a_store_of_a_newer_version_refuses_to_open(tmp_path: Path) -> None:
    data_dir = v1_data_dir(tmp_path)
    DuckDBEngine(data_dir).close()
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    conn.execute(
        "UPDATE engine_meta SET value = ? WHERE key = ?", [str(migrations.CURRENT_VERSION + 1), "schema_version"]
    )
    conn.close()
    with pytest.raises(migrations.StoreTooNew, match="newer than this mixhouse knows"):
        DuckDBEngine(data_dir)


def test_a_new_store_is_stamped_with_the_current_version(tmp_path: Path) -> None:
    DuckDBEngine(tmp_path / "data").close()
    assert version_of(tmp_path / "data") == migrations.CURRENT_VERSION


def test_steps_run_in_order_each_with_its_stamp(tmp_path: Path) -> None:
    """The registration point: a step appended after the current ones runs once, after them."""
    data_dir = v1_data_dir(tmp_path)
    ran: list[int] = []

    def step(version: int) -> migrations.Migration:
        def apply(conn: duckdb.DuckDBPyConnection) -> None:
            assert migrations.stored_version(conn) == version - 1
            ran.append(version)

        return migrations.Migration(version, f"test step {version}", apply)

    extra = [step(migrations.CURRENT_VERSION + 1), step(migrations.CURRENT_VERSION + 2)]
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    try:
        assert migrations.open_store(conn, migrations=[*migrations.MIGRATIONS, *extra]) == extra[-1].version
        assert ran == [extra[0].version, extra[1].version]
        assert migrations.open_store(conn, migrations=[*migrations.MIGRATIONS, *extra]) == extra[-1].version
        assert ran == [extra[0].version, extra[1].version]  # not again
    finally:
        conn.close()
