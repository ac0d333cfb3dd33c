"""Feature flags of each project in the catalog database, one JSON document a flag.

Every write bumps the project's revision in the same transaction, so a server caching compiled
definitions sees writes made by any process (the `mixhouse flags import` command, another worker) with
one indexed read per request."""

from __future__ import annotations

from typing import Any

import orjson

from mixhouse.catalogdb import Connection
from mixhouse.domain.catalog import CatalogStore
from mixhouse.errors import BadRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feature_flags (
    id          TEXT PRIMARY KEY,
    project_id  INTEGER NOT NULL,
    key         TEXT NOT NULL,
    doc         TEXT NOT NULL,           -- the App API's flag object, JSON
    UNIQUE (project_id, key)
);
CREATE TABLE IF NOT EXISTS feature_flag_revisions (
    project_id  INTEGER PRIMARY KEY,
    revision    INTEGER NOT NULL
);
"""


def _bump(conn: Connection, project_id: int) -> None:
    conn.execute(
        "INSERT INTO feature_flag_revisions (project_id, revision) VALUES (?, 1)"
        " ON CONFLICT(project_id) DO UPDATE SET revision = feature_flag_revisions.revision + 1",
        (project_id,),
    )


class FlagStore(CatalogStore):
    schema = _SCHEMA

    def revision(self, project_id: int) -> int:
        row = self._conn.execute(
            "SELECT revision FROM feature_flag_revisions WHERE project_id = ?", (project_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def docs(self, project_id: int) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT doc FROM feature_flags WHERE project_id = ? ORDER BY rowid", (project_id,)
        ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def get(self, project_id: int, flag_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT doc FROM feature_flags WHERE project_id = ? AND id = ?", (project_id, flag_id)
        ).fetchone()
        return orjson.loads(row[0]) if row else None

    def by_key(self, project_id: int, key: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT doc FROM feature_flags WHERE project_id = ? AND key = ?", (project_id, key)
        ).fetchone()
        return orjson.loads(row[0]) if row else None

    def put(self, project_id: int, docs: list[dict[str, Any]]) -> None:
        """Insert or replace these flags (by id) in one transaction; a key taken by another flag is refused."""
        with self._write() as conn:
            for doc in docs:
                taken = conn.execute(
                    "SELECT id FROM feature_flags WHERE project_id = ? AND key = ? AND id != ?",
                    (project_id, doc["key"], doc["id"]),
                ).fetchone()
                if taken:
                    raise BadRequest(f"A feature flag with key {doc['key']!r} already exists in this project")
                elsewhere = conn.execute(
                    "SELECT 1 FROM feature_flags WHERE id = ? AND project_id != ?", (doc["id"], project_id)
                ).fetchone()
                if elsewhere:
                    raise BadRequest(f"The feature flag id {doc['id']!r} is used by another project")
                conn.execute(
                    "INSERT INTO feature_flags (id, project_id, key, doc) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(id) DO UPDATE SET key = excluded.key, doc = excluded.doc"
                    " WHERE feature_flags.project_id = excluded.project_id",
                    (doc["id"], project_id, doc["key"], orjson.dumps(doc).decode()),
                )
            _bump(conn, project_id)

    def delete(self, project_id: int, flag_id: str) -> bool:
        with self._write() as conn:
            deleted = conn.execute(
                "DELETE FROM feature_flags WHERE project_id = ? AND id = ?", (project_id, flag_id)
            ).rowcount
            _bump(conn, project_id)
        return deleted > 0
