"""The catalog: projects and service accounts, in the catalog database (mixhouse/catalogdb).

By default that is SQLite beside the event store (`catalog.sqlite3`), writable by the CLI while a server
runs on the same data dir (the event engine holds an exclusive lock on its own file), every change
visible to the server at once. With `--catalog-url postgresql://...` it is one PostgreSQL database that
several server processes and the CLI share (docs/scale-out.md#a-shared-catalog).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mixhouse.accounts import hashing
from mixhouse.accounts.schema import DEFAULT_ORGANIZATION_ID, migrate
from mixhouse.catalogdb import Connection, Database, IntegrityError, is_postgres_url
from mixhouse.catalogdb.sqlite import SQLiteDatabase
from mixhouse.domain.limits import normalize_setting
from mixhouse.domain.project import MAX_PROJECT_ID, RESIDENCIES, IdMerge, Project, Role, ServiceAccount, TimeMode
from mixhouse.errors import BadRequest, MixhouseError
from mixhouse.private import private_dir, private_file, restrict_existing

if TYPE_CHECKING:
    from mixhouse.catalogdb.postgres import ChangeListener

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

# The PostgreSQL catalog's migrations, numbered as the cluster database's are (mixhouse/catalogdb/postgres.py):
# append only. Step 1 is the shape the SQLite catalog reaches after its own migrations (accounts/schema.py).
PG_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE organizations (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE projects (
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
        rate_limits TEXT NOT NULL DEFAULT 'none',
        organization_id INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE service_accounts (
        username    TEXT PRIMARY KEY,
        secret_salt BLOB NOT NULL,
        secret_hash BLOB NOT NULL,
        expires_at  REAL,
        created_at  REAL NOT NULL,
        id          INTEGER,
        organization_id INTEGER NOT NULL DEFAULT 1,
        role        TEXT,
        secret_phc  TEXT,
        creator     TEXT,
        last_used   REAL
    );
    CREATE UNIQUE INDEX service_accounts_by_id ON service_accounts(id);
    CREATE TABLE service_account_projects (
        username   TEXT NOT NULL REFERENCES service_accounts(username),
        project_id INTEGER NOT NULL REFERENCES projects(id),
        role       TEXT NOT NULL,
        PRIMARY KEY (username, project_id)
    );
    """,
    # 2: every committed change to these tables notifies the listeners (the project cache of each process)
    """-- postgresql
    CREATE FUNCTION mixhouse_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('mixhouse_catalog', TG_TABLE_NAME);
        RETURN NULL;
    END $$;
    CREATE TRIGGER projects_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON projects
        FOR EACH STATEMENT EXECUTE FUNCTION mixhouse_catalog_changed();
    CREATE TRIGGER organizations_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organizations
        FOR EACH STATEMENT EXECUTE FUNCTION mixhouse_catalog_changed();
    """,
)

_PROJECT_COLUMNS = (
    "id, name, token, secret, api_key, timezone, id_merge, time_mode, residency, rate_limits, organization_id"
)
# last_used is written at most this often per account (it is read by the Service Accounts API).
LAST_USED_RESOLUTION_SECONDS = 60.0
# A refused (username, secret) is remembered briefly, so the later checks of the same request (the rate
# limiter's, the handler's) cost nothing; short, so that an account created meanwhile by the CLI works.
REFUSED_TTL_SECONDS = 5.0
_REFUSED_MAX = 10_000
# Projects kept by a process whose catalog is shared (PostgreSQL), dropped at every change notification.
PROJECT_CACHE_MAX = 10_000


def _row_to_project(row: tuple[object, ...]) -> Project:
    pid, name, token, secret, api_key, tz, id_merge, time_mode, residency, rate_limits, organization_id = row
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
        organization_id=int(str(organization_id)),
    )


CATALOG_FILE = "catalog.sqlite3"


def open_database(data_dir: Path, url: str | None = None) -> Database:
    """The catalog database: PostgreSQL at `url`, else `catalog.sqlite3` in `data_dir`."""
    if url:
        if not is_postgres_url(url):
            raise BadRequest(f"a catalog URL starts with postgresql://: {url!r}")
        from mixhouse.catalogdb.postgres import PostgresDatabase

        return PostgresDatabase(url)
    private_dir(data_dir)
    return SQLiteDatabase(private_file(data_dir / CATALOG_FILE))  # its WAL and shm files take its mode


class Catalog:
    def __init__(
        self,
        data_dir: Path,
        verified_cache_entries: int = hashing.DEFAULT_CACHE_ENTRIES,
        *,
        url: str | None = None,
        cache_projects: bool = False,
    ) -> None:
        """The catalog of `data_dir` (SQLite), or the shared one at `url` (PostgreSQL). `cache_projects`
        (a server): with PostgreSQL, keep the projects found, each good until PostgreSQL notifies a change
        of the projects table (LISTEN/NOTIFY); SQLite is read every time (a local read costs microseconds)."""
        self.database = open_database(data_dir, url)
        self.shared = self.database.dialect != "sqlite"  # several processes may share it
        self._changes: ChangeListener | None = None
        # (column, value) -> (listener's generation, this process's writes, the project)
        self._projects: dict[tuple[str, object], tuple[int, int, Project]] = {}
        self._writes = 0
        conn = self._conn()
        if self.shared:
            from mixhouse.catalogdb.postgres import PostgresDatabase
            from mixhouse.catalogdb.postgres import migrate as pg_migrate

            pg_migrate(conn, PG_MIGRATIONS)
            if cache_projects and isinstance(self.database, PostgresDatabase):
                self._changes = self.database.changes()
            conn.execute(
                "INSERT INTO organizations VALUES (?, 'default', ?) ON CONFLICT DO NOTHING",
                (DEFAULT_ORGANIZATION_ID, time.time()),
            )
        else:
            conn.executescript(_SCHEMA)
            if "rate_limits" not in conn.columns("projects"):  # a catalog from before per-project rate limits
                conn.execute("ALTER TABLE projects ADD COLUMN rate_limits TEXT NOT NULL DEFAULT 'none'")
            migrate(conn)  # organisations, service-account ids and argon2id (mixhouse/accounts/schema.py)
            restrict_existing(data_dir, ("catalog.sqlite3-wal", "catalog.sqlite3-shm"))
        # Verifying a service-account secret costs an argon2 verification; successes are cached per
        # process, bounded and keyed by a keyed hash (mixhouse/accounts/hashing.py).
        self._verified = hashing.VerifiedCache(verified_cache_entries)
        self._refused: OrderedDict[tuple[str, bytes], float] = OrderedDict()
        self._refused_lock = threading.Lock()

    def _conn(self) -> Connection:
        return self.database.connection()

    def connection(self) -> Connection:
        """This thread's connection, for stores of saved objects (funnels, cohorts, bookmarks, ...)
        that keep their own tables in the catalog database: create them with CREATE TABLE IF NOT EXISTS
        (in SQLite's dialect: mixhouse/catalogdb maps it for PostgreSQL)."""
        return self._conn()

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        organization_id: int = DEFAULT_ORGANIZATION_ID,
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
        if not 1 <= organization_id <= MAX_PROJECT_ID:
            raise BadRequest(f"organization id must be between 1 and {MAX_PROJECT_ID}: {organization_id}")
        conn = self._conn()
        # An organisation comes into being with its first project (there is nothing else to configure).
        conn.execute(
            "INSERT INTO organizations VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (organization_id, f"organization {organization_id}", time.time()),
        )
        # SQLite numbers a NULL id itself (one more than the highest); PostgreSQL is told to.
        id_value = "?" if conn.dialect == "sqlite" else "COALESCE(?, (SELECT COALESCE(MAX(id), 0) + 1 FROM projects))"
        try:
            cur = conn.execute(
                f"INSERT INTO projects ({_PROJECT_COLUMNS}, created_at)"
                f" VALUES ({id_value},?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
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
                    organization_id,
                    time.time(),
                ),
            )
            pid = int(cur.fetchone()[0])
            self._wrote()
        except IntegrityError as exc:
            raise BadRequest(f"project not created: {_integrity_reason(exc)}") from exc
        project = self.project_by_id(pid)
        assert project is not None
        return project

    def _one_project(self, where: str, value: object) -> Project | None:
        changes = self._changes
        if changes is None or not changes.listening:
            row = (
                self._conn().execute(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE {where} = ?", (value,)).fetchone()
            )
            return _row_to_project(row) if row else None
        key, generation, writes = (where, value), changes.generation, self._writes
        cached = self._projects.get(key)
        if cached is not None and cached[0] == generation and cached[1] == writes:
            return cached[2]
        row = self._conn().execute(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE {where} = ?", (value,)).fetchone()
        if row is None:
            return None  # never cached absent: a project created anywhere is found at once
        project = _row_to_project(row)
        if changes.listening and changes.generation == generation and self._writes == writes:
            if len(self._projects) >= PROJECT_CACHE_MAX:
                self._projects.clear()
            self._projects[key] = (generation, writes, project)
        return project

    def _wrote(self) -> None:
        """This process changed a project: its cache must not wait for the notification."""
        self._writes += 1

    def set_rate_limits(self, project_id: int, setting: str) -> Project:
        """Change a project's rate limits ("none", "mixpanel" or JSON); a running server sees it at once."""
        text = normalize_setting(setting)
        cur = self._conn().execute("UPDATE projects SET rate_limits = ? WHERE id = ?", (text, project_id))
        self._wrote()
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
        """Create the account, or grant an existing one (same secret) a role on one more project.
        A new account belongs to the project's organisation, with `role` as its organisation role."""
        project = self.project_by_id(project_id)
        if project is None:
            raise BadRequest(f"no project with id {project_id}")
        secret = secret or hashing.new_secret()
        if len(secret) > hashing.MAX_SECRET_LENGTH:
            raise BadRequest(f"a service-account secret is at most {hashing.MAX_SECRET_LENGTH} characters")
        conn = self._conn()
        row = conn.execute(
            "SELECT secret_phc, secret_salt, secret_hash, organization_id FROM service_accounts WHERE username = ?",
            (username,),
        ).fetchone()
        if row is not None:
            if not hashing.verify(hashing.StoredSecret(row[0], row[1], row[2]), secret).ok:
                raise BadRequest(f"service account {username!r} exists with another secret")
            if int(row[3]) != project.organization_id:
                raise BadRequest(
                    f"service account {username!r} belongs to organization {row[3]}, "
                    f"project {project_id} to organization {project.organization_id}"
                )
        phc = hashing.hash_secret(secret) if row is None else None  # argon2 outside the write lock
        with conn.write():
            if phc is not None:
                conn.execute(
                    "INSERT INTO service_accounts (username, secret_salt, secret_hash, expires_at, created_at, id,"
                    " organization_id, role, secret_phc) VALUES (?, ?, ?, ?, ?,"
                    " (SELECT COALESCE(MAX(id), 0) + 1 FROM service_accounts), ?, ?, ?)",
                    (username, b"", b"", expires_at, time.time(), project.organization_id, role.value, phc),
                )
            conn.execute(
                "INSERT INTO service_account_projects VALUES (?,?,?)"
                " ON CONFLICT (username, project_id) DO UPDATE SET role = excluded.role",
                (username, project_id, role.value),
            )
        with self._refused_lock:
            self._refused.clear()
        account = self.service_account(username)
        assert account is not None
        return account, secret

    def service_account(self, username: str) -> ServiceAccount | None:
        conn = self._conn()
        row = conn.execute(
            "SELECT expires_at, id, organization_id, role FROM service_accounts WHERE username = ?", (username,)
        ).fetchone()
        if row is None:
            return None
        grants = conn.execute(
            "SELECT project_id, role FROM service_account_projects WHERE username = ?", (username,)
        ).fetchall()
        return ServiceAccount(
            username=username,
            roles={int(p): Role(r) for p, r in grants},
            expires_at=row[0],
            id=int(row[1]),
            organization_id=int(row[2]),
            role=Role(row[3]),
        )

    def forget_verified(self) -> None:
        """Drop the cache of verified secrets (after a secret is rotated or an account deleted; a
        changed stored hash misses the cache anyway, this also frees the memory)."""
        self._verified.clear()

    def known_good(self, username: str, secret: str) -> bool:
        """These credentials were verified before in this process (no argon2 verification needed)."""
        return self._verified.get(self._verified.key(username, secret)) is not None

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
        argon2 verification whether or not the name exists; a success is cached (see hashing.py), and
        a PBKDF2 digest of an older catalog is replaced by an argon2id hash on its first success."""
        key = self._verified.key(username, secret)
        cached = self._verified.get(key)
        refused_key = (username, key)
        if cached is None and self._refused_recently(refused_key):
            return None
        conn = self._conn()
        row = conn.execute(
            "SELECT secret_phc, secret_salt, secret_hash, expires_at, last_used FROM service_accounts"
            " WHERE username = ?",
            (username,),
        ).fetchone()
        if row is None:
            hashing.burn_one_verification(secret)
            self._remember_refusal(refused_key)
            return None
        stored = hashing.StoredSecret(row[0], row[1], row[2])
        expires_at, last_used = row[3], row[4]
        now = time.time()
        if cached != stored.fingerprint:
            verdict = hashing.verify(stored, secret)
            if not verdict.ok:
                self._remember_refusal(refused_key)
                return None
            fingerprint = stored.fingerprint
            if verdict.rehash is not None:
                # Only if the row still holds what was verified (a concurrent rotation wins). A catalog
                # that cannot be written now (locked, read-only) upgrades at a later login instead.
                with suppress(MixhouseError, *conn.errors):
                    cur = conn.execute(
                        "UPDATE service_accounts SET secret_phc = ?, secret_salt = ?, secret_hash = ?"
                        " WHERE username = ? AND COALESCE(secret_phc, '') = COALESCE(?, '') AND secret_hash = ?",
                        (verdict.rehash, b"", b"", username, stored.phc, stored.legacy_hash),
                    )
                    if cur.rowcount == 1:
                        fingerprint = verdict.rehash
            self._verified.put(key, fingerprint)
        if expires_at is not None and expires_at < now:
            return None
        if last_used is None or now - float(last_used) > LAST_USED_RESOLUTION_SECONDS:
            with suppress(MixhouseError, *conn.errors):  # bookkeeping: never the reason a login fails
                conn.execute("UPDATE service_accounts SET last_used = ? WHERE username = ?", (now, username))
        return self.service_account(username)


def _integrity_reason(exc: IntegrityError) -> str:
    if exc.table == "projects" and len(exc.columns) == 1 and exc.columns[0] in ("id", "token", "secret", "api_key"):
        return f"another project has this {exc.columns[0]}"
    return exc.message
