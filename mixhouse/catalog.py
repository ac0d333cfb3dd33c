"""The catalog: projects and service accounts, in SQLite beside the event store.

SQLite because the catalog must be writable by the CLI while a server runs on the same data dir
(the event engine holds an exclusive lock on its own file), and every change must be visible to the
server at once. The server re-reads a project only when SQLite's data_version says something changed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mixhouse.domain.limits import normalize_setting
from mixhouse.domain.project import MAX_PROJECT_ID, RESIDENCIES, IdMerge, Project, Role, ServiceAccount, TimeMode
from mixhouse.errors import BadRequest
from mixhouse.private import private_dir, private_file, restrict_existing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    token      TEXT NOT NULL UNIQUE,
    secret     TEXT NOT NULL UNIQUE,
    api_key    TEXT NOT NULL UNIQUE,
    timezone   TEXT NOT NULL,
    id_merge   TEXT NOT NULL,
    time_mode  TEXT NOT NULL,
    residency  TEXT NOT NULL,
    created_at REAL NOT NULL,
    rate_limits TEXT NOT NULL DEFAULT 'none'
);
CREATE TABLE IF NOT EXISTS service_accounts (
    username    TEXT PRIMARY KEY,
    secret_salt BLOB NOT NULL,
    secret_hash BLOB NOT NULL,
    expires_at  REAL,
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS service_account_projects (
    username   TEXT NOT NULL REFERENCES service_accounts(username),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    role       TEXT NOT NULL,
    PRIMARY KEY (username, project_id)
);
"""

_PROJECT_COLUMNS = "id, name, token, secret, api_key, timezone, id_merge, time_mode, residency, rate_limits"


def _hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, 10_000)


# An unknown username is checked against this, so that it costs the same key derivation as a known name
# with a wrong secret: the time of a refusal does not tell which names exist.
_DUMMY_SALT = b"mixhouse-no-such-account"
_DUMMY_HASH = _hash_secret("", _DUMMY_SALT)
# A refused (username, secret) is remembered briefly, so the later checks of the same request (the rate
# limiter's, the handler's) cost nothing; short, so that an account created meanwhile by the CLI works.
REFUSED_TTL_SECONDS = 5.0
_REFUSED_MAX = 10_000


def _row_to_project(row: tuple[object, ...]) -> Project:
    pid, name, token, secret, api_key, tz, id_merge, time_mode, residency, rate_limits = row
    return Project(
        id=int(str(pid)),
        name=str(name),
        token=str(token),
        secret=str(secret),
        api_key=str(api_key),
        timezone=str(tz),
        id_merge=IdMerge(str(id_merge)),
        time_mode=TimeMode(str(time_mode)),
        residency=str(residency),
        rate_limits=str(rate_limits),
    )


CATALOG_FILE = "catalog.sqlite3"


class Catalog:
    def __init__(self, data_dir: Path) -> None:
        private_dir(data_dir)
        self._path = private_file(data_dir / CATALOG_FILE)  # its WAL and shm files take its mode
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(projects)")}
            if "rate_limits" not in columns:  # a catalog from before per-project rate limits
                conn.execute("ALTER TABLE projects ADD COLUMN rate_limits TEXT NOT NULL DEFAULT 'none'")
        restrict_existing(data_dir, ("catalog.sqlite3-wal", "catalog.sqlite3-shm"))
        # Verifying a service-account secret costs a key derivation; cache successes per process.
        self._verified: dict[tuple[str, str], bytes] = {}
        self._refused: OrderedDict[tuple[str, bytes], float] = OrderedDict()
        self._refused_lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for stores of saved objects (funnels, cohorts, bookmarks, ...)
        that keep their own tables in the catalog database: create them with CREATE TABLE IF NOT EXISTS."""
        return self._conn()

    # -- projects -------------------------------------------------------------------------------

    def create_project(
        self,
        *,
        project_id: int | None = None,
        name: str = "default",
        token: str | None = None,
        secret: str | None = None,
        api_key: str | None = None,
        timezone: str = "UTC",
        id_merge: IdMerge = IdMerge.SIMPLIFIED,
        time_mode: TimeMode = TimeMode.UTC,
        residency: str = "us",
        rate_limits: str = "none",
    ) -> Project:
        if project_id is not None and not 1 <= project_id <= MAX_PROJECT_ID:
            raise BadRequest(f"project id must be between 1 and {MAX_PROJECT_ID}: {project_id}")
        if residency not in RESIDENCIES:
            raise BadRequest(f"unknown residency: {residency!r} (one of {', '.join(RESIDENCIES)})")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadRequest(f"unknown timezone: {timezone!r}") from exc
        token = token or secrets.token_hex(16)
        secret = secret or secrets.token_hex(16)
        api_key = api_key or secrets.token_hex(16)
        rate_limits = normalize_setting(rate_limits)
        conn = self._conn()
        try:
            cur = conn.execute(
                f"INSERT INTO projects ({_PROJECT_COLUMNS}, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    project_id,
                    name,
                    token,
                    secret,
                    api_key,
                    timezone,
                    id_merge.value,
                    time_mode.value,
                    residency,
                    rate_limits,
                    time.time(),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise BadRequest(f"project not created: {_integrity_reason(exc)}") from exc
        pid = project_id if project_id is not None else cur.lastrowid
        project = self.project_by_id(int(pid or 0))
        assert project is not None
        return project

    def _one_project(self, where: str, value: object) -> Project | None:
        row = self._conn().execute(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE {where} = ?", (value,)).fetchone()
        return _row_to_project(row) if row else None

    def set_rate_limits(self, project_id: int, setting: str) -> Project:
        """Change a project's rate limits ("none", "mixpanel" or JSON); a running server sees it at once."""
        text = normalize_setting(setting)
        cur = self._conn().execute("UPDATE projects SET rate_limits = ? WHERE id = ?", (text, project_id))
        if cur.rowcount == 0:
            raise BadRequest(f"no project with id {project_id}")
        project = self.project_by_id(project_id)
        assert project is not None
        return project

    def project_by_id(self, project_id: int) -> Project | None:
        if not -(2**63) <= project_id < 2**63:  # SQLite would raise OverflowError: no such project
            return None
        return self._one_project("id", project_id)

    def project_by_token(self, token: str) -> Project | None:
        return self._one_project("token", token)

    def project_by_secret(self, secret: str) -> Project | None:
        return self._one_project("secret", secret)

    def project_by_api_key(self, api_key: str) -> Project | None:
        return self._one_project("api_key", api_key)

    def projects(self) -> list[Project]:
        rows = self._conn().execute(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY id").fetchall()
        return [_row_to_project(r) for r in rows]

    # -- service accounts -----------------------------------------------------------------------

    def create_service_account(
        self,
        *,
        username: str,
        secret: str | None,
        project_id: int,
        role: Role,
        expires_at: float | None = None,
    ) -> tuple[ServiceAccount, str]:
        """Create the account, or grant an existing one (same secret) a role on one more project."""
        if self.project_by_id(project_id) is None:
            raise BadRequest(f"no project with id {project_id}")
        secret = secret or secrets.token_urlsafe(24)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT secret_salt, secret_hash FROM service_accounts WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                salt = os.urandom(16)
                conn.execute(
                    "INSERT INTO service_accounts VALUES (?,?,?,?,?)",
                    (username, salt, _hash_secret(secret, salt), expires_at, time.time()),
                )
            elif not hmac.compare_digest(_hash_secret(secret, row[0]), row[1]):
                raise BadRequest(f"service account {username!r} exists with another secret")
            conn.execute(
                "INSERT OR REPLACE INTO service_account_projects VALUES (?,?,?)",
                (username, project_id, role.value),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        with self._refused_lock:
            self._refused.clear()
        account = self.service_account(username)
        assert account is not None
        return account, secret

    def service_account(self, username: str) -> ServiceAccount | None:
        conn = self._conn()
        row = conn.execute("SELECT expires_at FROM service_accounts WHERE username = ?", (username,)).fetchone()
        if row is None:
            return None
        grants = conn.execute(
            "SELECT project_id, role FROM service_account_projects WHERE username = ?", (username,)
        ).fetchall()
        return ServiceAccount(username=username, roles={int(p): Role(r) for p, r in grants}, expires_at=row[0])

    def known_good(self, username: str, secret: str) -> bool:
        """These credentials were verified before in this process (no key derivation needed)."""
        return (username, secret) in self._verified

    def _refused_recently(self, key: tuple[str, bytes]) -> bool:
        with self._refused_lock:
            at = self._refused.get(key)
            if at is None:
                return False
            if time.monotonic() - at > REFUSED_TTL_SECONDS:
                del self._refused[key]
                return False
            return True

    def _remember_refusal(self, key: tuple[str, bytes]) -> None:
        with self._refused_lock:
            self._refused[key] = time.monotonic()
            self._refused.move_to_end(key)
            while len(self._refused) > _REFUSED_MAX:
                self._refused.popitem(last=False)

    def verify_service_account(self, username: str, secret: str) -> ServiceAccount | None:
        """The account if the secret is right and it has not expired, else None. A refusal costs one
        key derivation whether or not the name exists."""
        refused_key = (username, hashlib.sha256(secret.encode()).digest())
        if (username, secret) not in self._verified and self._refused_recently(refused_key):
            return None
        row = (
            self._conn()
            .execute(
                "SELECT secret_salt, secret_hash, expires_at FROM service_accounts WHERE username = ?",
                (username,),
            )
            .fetchone()
        )
        if row is None:
            hmac.compare_digest(_hash_secret(secret, _DUMMY_SALT), _DUMMY_HASH)
            self._remember_refusal(refused_key)
            return None
        salt, stored, expires_at = row
        key = (username, secret)
        if self._verified.get(key) != stored:
            if not hmac.compare_digest(_hash_secret(secret, salt), stored):
                self._remember_refusal(refused_key)
                return None
            self._verified[key] = stored
        if expires_at is not None and expires_at < time.time():
            return None
        return self.service_account(username)


def _integrity_reason(exc: sqlite3.IntegrityError) -> str:
    text = str(exc)
    for column in ("id", "token", "secret", "api_key"):
        if text.endswith(f"projects.{column}"):
            return f"another project has this {column}"
    return text
