"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's server binaries (scripts/install-test-deps
installs the `postgresql` package), a cluster made by `initdb` under a temporary folder, started by `pg_ctl` on a
free loopback port with password authentication, and removed afterwards.

PostgreSQL refuses to run as root: when the tests run as root, the cluster is made and run as the `postgres`
user (or `nobody`), which owns the temporary folder.

    with PostgresCluster() as pg:
        pg.execute("CREATE TABLE t (x int)")
        pg.uri  # postgresql://mixhouse:<password>@127.0.0.1:<port>/mixhouse

or, in a test module, the `postgres` fixture (one cluster per module):

    from tests.postgres import postgres_cluster  # noqa: F401  (registers the fixture)

    def test_something(postgres: PostgresCluster) -> None: ...
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.server import free_port

USER = "mixhouse"
PASSWORD = "pg-Secret-42"
DATABASE = "mixhouse"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are missing: run scripts/install-test-deps")
    return Path(found[-1]).parent


def _run_as() -> str | None:
    """The user to run the server as (None: this one)."""
    if os.getuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresCluster:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="mixhouse-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.started = False

    @property
    def uri(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def start(self) -> PostgresCluster:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._cmd(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
        subprocess.run(
            self._cmd(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-o",
                options,
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )
        self.started = True
        self.execute(f"CREATE DATABASE {DATABASE}", database="postgres")
        return self

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
            )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, database: str = DATABASE) -> Any:
        """A DB-API connection (ADBC), autocommitting."""
        import adbc_driver_postgresql.dbapi as pg

        uri = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"
        return pg.connect(uri, autocommit=True)

    def execute(self, *statements: str, database: str = DATABASE) -> None:
        with self.connect(database) as conn, conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)

    def scalar(self, sql: str) -> Any:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return None if row is None else row[0]

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture(scope="module", name="postgres")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway cluster for the test module, removed after it."""
    with PostgresCluster() as cluster:
        yield cluster
