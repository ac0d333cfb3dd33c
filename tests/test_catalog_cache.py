"""The catalog's answers kept in memory (mixhouse/catalog_cache.py): a lookup is answered without a query
until the catalog changes, and any change is seen by the next lookup, whoever made it: the command line
(another connection, another process), another thread of the server, or this thread's own connection.
Over HTTP: a project created by the command line and a Lexicon drop set or lifted through the API are
seen by the very next /track request."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.catalog_cache import CachedCatalog, WalIndex
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, seed_catalog
from tests.test_cli import create_project


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    seed_catalog(tmp_path / "data")
    return Catalog(tmp_path / "data")


def _queries(catalog: Catalog) -> list[str]:
    """The statements this thread's connection runs from now on."""
    statements: list[str] = []
    catalog.connection().raw.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    return statements


@pytest.mark.parametrize("check", ["wal-index", "data_version"])
def test_a_lookup_is_kept_until_another_connection_changes_the_catalog(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: str
) -> None:
    if check == "data_version":  # the check without a wal-index to read
        monkeypatch.setattr(WalIndex, "of", classmethod(lambda cls, conn: None))
    cached = CachedCatalog(catalog)
    project = cached.current().project_by_token(TOKEN)
    assert project is not None and project.id == PROJECT_ID
    assert cached.current().project_by_token("NEW-TOKEN") is None
    statements = _queries(catalog)
    view = cached.current()
    assert view.project_by_token(TOKEN) == project and view.project_by_token("NEW-TOKEN") is None
    # The wal-index header is read in memory: no statement at all; else one PRAGMA per view, no query.
    assert statements == ([] if check == "wal-index" else ["PRAGMA data_version"])

    # The command line writes through its own connection: the next view sees the new project.
    Catalog(tmp_path / "data").create_project(project_id=77, token="NEW-TOKEN", secret="s77", api_key="k77")
    created = cached.current().project_by_token("NEW-TOKEN")
    assert created is not None and created.id == 77
    Catalog(tmp_path / "data").set_rate_limits(77, "mixpanel")
    changed = cached.current().project_by_id(77)
    assert changed is not None and changed.rate_limits == "mixpanel"


def test_writes_of_this_thread_and_of_other_threads_are_seen_at_once(catalog: Catalog) -> None:
    cached = CachedCatalog(catalog)
    assert cached.current().project_by_secret("s88") is None
    catalog.create_project(project_id=88, token="t88", secret="s88", api_key="k88")  # this thread's connection
    found = cached.current().project_by_secret("s88")
    assert found is not None and found.id == 88

    assert cached.current().project_by_api_key("k89") is None
    other = threading.Thread(
        target=lambda: catalog.create_project(project_id=89, token="t89", secret="s89", api_key="k89")
    )
    other.start()
    other.join()
    found = cached.current().project_by_api_key("k89")
    assert found is not None and found.id == 89


def test_nothing_is_kept_inside_a_transaction(catalog: Catalog) -> None:
    """A rollback would leave answers that never were: inside a transaction every lookup asks."""
    cached = CachedCatalog(catalog)
    conn = catalog.connection().raw  # type: ignore[attr-defined]  # the sqlite3 connection under the wrapper
    conn.execute("BEGIN")
    conn.execute("UPDATE projects SET token = 'ROLLED-BACK' WHERE id = ?", (PROJECT_ID,))
    assert cached.current().project_by_token("ROLLED-BACK") is not None
    conn.execute("ROLLBACK")
    assert cached.current().project_by_token("ROLLED-BACK") is None
    assert cached.current().project_by_token(TOKEN) is not None


def test_the_kept_answers_are_bounded(catalog: Catalog) -> None:
    """Made-up tokens cannot grow the process: at max_entries the kept answers start over."""
    cached = CachedCatalog(catalog, max_entries=3)
    for k in range(3):
        assert cached.current().project_by_token(f"made-up-{k}") is None
    statements = _queries(catalog)
    assert cached.current().project_by_token("made-up-0") is None
    assert any("FROM projects" in s for s in statements)  # started over: asked again
    statements.clear()
    assert cached.current().project_by_token("made-up-0") is None
    assert statements == []


def test_a_catalog_with_its_own_change_check_or_none_at_all() -> None:
    """Another catalog (a shared database) keeps answers only if it offers `change_stamp()`."""

    class Counting(Catalog):
        stamp: object = 1
        asked = 0

        def change_stamp(self) -> object:
            return self.stamp

        def project_by_token(self, token: str) -> None:  # type: ignore[override]
            self.asked += 1

    class Unchecked(Counting):
        stamp = None

    for kind, kept in ((Counting, True), (Unchecked, False)):
        catalog = kind.__new__(kind)
        cached = CachedCatalog(catalog)
        cached.current().project_by_token("t")
        cached.current().project_by_token("t")
        assert catalog.asked == (1 if kept else 2), kind
    catalog = Counting.__new__(Counting)
    cached = CachedCatalog(catalog)
    cached.current().project_by_token("t")
    catalog.stamp = 2
    cached.current().project_by_token("t")
    assert catalog.asked == 2


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("catalog-cache") / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    yield server
    server.stop()


def _track(server: ServerProcess, token: str, event: str) -> object:
    # A fixed historical time is refused by /track (older than 5 days), so the reply names the token's
    # fate without storing anything: unknown token, dropped event, or the time.
    record = {"event": event, "properties": {"token": token, "distinct_id": "u", "time": 1704067200}}
    r = httpx.post(f"{server.url}/track", data={"data": orjson.dumps(record).decode(), "verbose": "1"})
    assert r.status_code == 200, r.text
    return r.json()["error"]


def test_track_sees_a_project_the_command_line_creates_at_once(tracking_server: ServerProcess) -> None:
    assert _track(tracking_server, "CLI-TOKEN", "e") == "token, not a token of any project"
    create_project(tracking_server.data_dir, 7474, "CLI-TOKEN", "CLI-SECRET")
    assert "'properties.time' is invalid" in str(_track(tracking_server, "CLI-TOKEN", "e"))


def test_track_sees_a_lexicon_drop_set_and_lifted_at_once(tracking_server: ServerProcess) -> None:
    assert "'properties.time' is invalid" in str(_track(tracking_server, TOKEN, "Spam"))
    schemas = f"{tracking_server.url}/api/app/projects/{PROJECT_ID}/schemas/event/Spam"
    dropped = {"metadata": {"com.mixpanel": {"dropped": True}}}
    assert httpx.post(schemas, json=dropped, auth=(SA_USER, SA_SECRET)).status_code == 200
    assert "dropped by this project's Lexicon schema" in str(_track(tracking_server, TOKEN, "Spam"))
    assert httpx.post(schemas, json={}, auth=(SA_USER, SA_SECRET)).status_code == 200
    assert "'properties.time' is invalid" in str(_track(tracking_server, TOKEN, "Spam"))


_TRUNCATED_SHM = """
import os, sys
from pathlib import Path
from mixhouse.catalog_cache import WalIndex
path = Path(sys.argv[1])
path.write_bytes(bytes(12) + b"\\x01" + bytes(32768 - 13))  # an initialised header
index = WalIndex(path)
assert index._map is not None and index.header() is not None
os.truncate(path, 3)  # as SQLite does before it rebuilds the wal-index (os_unix.c, unixLockSharedMemory)
print(index.header())
"""


def test_a_truncated_wal_index_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    """SQLite truncates the -shm file to 3 bytes when it rebuilds it: the mapped page reads as zeros past
    the file's end (a page wholly past it would kill the server with SIGBUS), the check fails and the lookup
    goes to the catalog."""
    done = subprocess.run(
        [sys.executable, "-c", _TRUNCATED_SHM, str(tmp_path / "catalog.sqlite3-shm")], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr


def test_a_wal_index_too_short_to_map_is_read_until_it_can_be_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.sqlite3-shm"
    path.write_bytes(b"\0\0\0")  # truncated, not yet rebuilt
    index = WalIndex(path)
    assert index._map is None and index.header() is None
    header = bytes(12) + b"\x01" + bytes(35)
    path.write_bytes(header + bytes(32768 - 48))  # rebuilt in place (same file)
    assert index.header() == header  # read with pread until the next look
    monkeypatch.setattr(WalIndex, "RECHECK_SECONDS", 0.0)
    assert index.header() == header and index._map is not None  # mapped from then on
    changed = bytes(8) + b"\x07" + bytes(3) + b"\x01" + bytes(35)
    path.write_bytes(changed + bytes(32768 - 48))
    assert index.header() == changed
