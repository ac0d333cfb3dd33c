"""The catalog's organisation and service-account columns, and the migration of older data folders.

Older catalogs have no organisations, key service accounts by username only and store PBKDF2 digests.
Opening one adds (idempotently, in one transaction):
- `organizations`, with organisation 1 ("default") owning every existing project;
- `projects.organization_id` (default 1);
- `service_accounts.id` (numbered in creation order), `organization_id` (1), `role` (the account's
  organisation role: its highest project role), `secret_phc` (argon2id, empty until the next successful
  login upgrades the PBKDF2 digest), `creator` and `last_used`.
"""

from __future__ import annotations

import time

from mixhouse.catalogdb import Connection

DEFAULT_ORGANIZATION_ID = 1

_ORGANIZATIONS = """
CREATE TABLE IF NOT EXISTS organizations (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

_SERVICE_ACCOUNT_COLUMNS = (
    ("id", "INTEGER"),
    ("organization_id", f"INTEGER NOT NULL DEFAULT {DEFAULT_ORGANIZATION_ID}"),
    ("role", "TEXT"),
    ("secret_phc", "TEXT"),
    ("creator", "TEXT"),
    ("last_used", "REAL"),
)

# Highest first: a migrated account's organisation role is the highest of its project roles.
_ROLE_RANK = ("owner", "admin", "analyst", "consumer")


def _columns(conn: Connection, table: str) -> set[str]:
    return conn.columns(table)


def migrate(conn: Connection) -> None:
    """Bring a SQLite catalog (tables `projects`, `service_accounts`, `service_account_projects` already
    there) to the current shape. Safe to run on every open; concurrent opens serialise on the write lock.
    (A PostgreSQL catalog is created in this shape: mixhouse/catalog.py PG_MIGRATIONS.)"""
    if "role" in _columns(conn, "service_accounts") and "organization_id" in _columns(conn, "projects"):
        conn.executescript(_ORGANIZATIONS)  # (cheap) in case a table was dropped by hand
        return
    with conn.write():
        conn.execute(_ORGANIZATIONS)
        conn.execute(
            "INSERT INTO organizations VALUES (?, 'default', ?) ON CONFLICT DO NOTHING",
            (DEFAULT_ORGANIZATION_ID, time.time()),
        )
        if "organization_id" not in _columns(conn, "projects"):
            conn.execute(
                f"ALTER TABLE projects ADD COLUMN organization_id INTEGER NOT NULL DEFAULT {DEFAULT_ORGANIZATION_ID}"
            )
        existing = _columns(conn, "service_accounts")
        for name, ddl in _SERVICE_ACCOUNT_COLUMNS:
            if name not in existing:
                conn.execute(f"ALTER TABLE service_accounts ADD COLUMN {name} {ddl}")
        conn.execute(
            "UPDATE service_accounts SET id = (SELECT COUNT(*) FROM service_accounts AS o"
            " WHERE o.created_at < service_accounts.created_at"
            " OR (o.created_at = service_accounts.created_at AND o.username <= service_accounts.username))"
            " WHERE id IS NULL"
        )
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS service_accounts_by_id ON service_accounts(id)")
        roles = conn.execute("SELECT username, role FROM service_account_projects").fetchall()
        best: dict[str, str] = {}
        for username, role in roles:
            current = best.get(username)
            if current is None or _ROLE_RANK.index(role) < _ROLE_RANK.index(current):
                best[username] = role
        for (username,) in conn.execute("SELECT username FROM service_accounts WHERE role IS NULL").fetchall():
            conn.execute(
                "UPDATE service_accounts SET role = ? WHERE username = ?", (best.get(username, "consumer"), username)
            )
