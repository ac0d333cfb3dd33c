"""Saved Insights reports (bookmarks): a name and a segmentation-style query, read by `/insights`."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson

from mixhouse.catalog import Catalog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookmarks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    query       TEXT NOT NULL,     -- JSON: event, on, where, unit, type, from_date/to_date or last
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS bookmarks_by_project ON bookmarks(project_id, id);
"""


@dataclass(frozen=True)
class Bookmark:
    id: int
    project_id: int
    name: str
    description: str
    query: dict[str, Any]
    created_at: float


_COLUMNS = "id, project_id, name, description, query, created_at"


def _row(row: tuple[Any, ...]) -> Bookmark:
    bid, pid, name, description, query, created = row
    return Bookmark(int(bid), int(pid), str(name), str(description), orjson.loads(query), float(created))


class BookmarkStore:
    def __init__(self, catalog: Catalog) -> None:
        self._conn: sqlite3.Connection = catalog.connection()
        self._conn.executescript(_SCHEMA)

    def create(self, project_id: int, *, name: str, description: str, query: dict[str, Any]) -> Bookmark:
        cur = self._conn.execute(
            "INSERT INTO bookmarks (project_id, name, description, query, created_at) VALUES (?,?,?,?,?)",
            (project_id, name, description, orjson.dumps(query).decode(), time.time()),
        )
        bookmark = self.get(project_id, int(cur.lastrowid or 0))
        assert bookmark is not None
        return bookmark

    def get(self, project_id: int, bookmark_id: int) -> Bookmark | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM bookmarks WHERE project_id = ? AND id = ?", (project_id, bookmark_id)
        ).fetchone()
        return _row(row) if row else None

    def list(self, project_id: int) -> list[Bookmark]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM bookmarks WHERE project_id = ? ORDER BY id", (project_id,)
        ).fetchall()
        return [_row(r) for r in rows]

    def update(self, bookmark: Bookmark) -> Bookmark:
        self._conn.execute(
            "UPDATE bookmarks SET name = ?, description = ?, query = ? WHERE project_id = ? AND id = ?",
            (
                bookmark.name,
                bookmark.description,
                orjson.dumps(bookmark.query).decode(),
                bookmark.project_id,
                bookmark.id,
            ),
        )
        updated = self.get(bookmark.project_id, bookmark.id)
        assert updated is not None
        return updated

    def delete(self, project_id: int, bookmark_id: int) -> bool:
        cur = self._conn.execute("DELETE FROM bookmarks WHERE project_id = ? AND id = ?", (project_id, bookmark_id))
        return cur.rowcount > 0
