"""Saved Insights reports (bookmarks): a name and a segmentation-style query, read by `/insights`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from mixhouse.catalog import Catalog
from mixhouse.domain.saved.table import SavedTable

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
        self._table = SavedTable(catalog, schema=_SCHEMA, table="bookmarks", columns=_COLUMNS, row=_row)

    def create(self, project_id: int, *, name: str, description: str, query: dict[str, Any]) -> Bookmark:
        return self._table.insert(
            project_id, {"name": name, "description": description, "query": orjson.dumps(query).decode()}
        )

    def get(self, project_id: int, bookmark_id: int) -> Bookmark | None:
        return self._table.get(project_id, bookmark_id)

    def list(self, project_id: int) -> list[Bookmark]:
        return self._table.list(project_id)

    def update(self, bookmark: Bookmark) -> Bookmark:
        values = {
            "name": bookmark.name,
            "description": bookmark.description,
            "query": orjson.dumps(bookmark.query).decode(),
        }
        return self._table.update(bookmark.project_id, bookmark.id, values)

    def delete(self, project_id: int, bookmark_id: int) -> bool:
        return self._table.delete(project_id, bookmark_id)
