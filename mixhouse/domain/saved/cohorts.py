"""Saved cohorts: a name, a filter over profile properties (an expression) and, optionally, a behaviour
("did event X at least N times in the last D days"). Membership is computed live by the engine."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson

from mixhouse.catalog import Catalog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cohorts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    filter      TEXT,              -- expression over user[...] / properties[...], or NULL for everyone
    behavior    TEXT,              -- JSON {"event", "min_count", "days"} or NULL
    is_visible  INTEGER NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cohorts_by_project ON cohorts(project_id, id);
"""


@dataclass(frozen=True)
class Behavior:
    event: str
    min_count: int
    days: int

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "min_count": self.min_count, "days": self.days}


@dataclass(frozen=True)
class Cohort:
    id: int
    project_id: int
    name: str
    description: str
    filter: str | None
    behavior: Behavior | None
    is_visible: bool
    created_at: float


_COLUMNS = "id, project_id, name, description, filter, behavior, is_visible, created_at"


def _row(row: tuple[Any, ...]) -> Cohort:
    cid, pid, name, description, filt, behavior, visible, created = row
    parsed = orjson.loads(behavior) if behavior else None
    return Cohort(
        id=int(cid),
        project_id=int(pid),
        name=str(name),
        description=str(description),
        filter=filt,
        behavior=Behavior(str(parsed["event"]), int(parsed["min_count"]), int(parsed["days"])) if parsed else None,
        is_visible=bool(visible),
        created_at=float(created),
    )


class CohortStore:
    def __init__(self, catalog: Catalog) -> None:
        self._conn: sqlite3.Connection = catalog.connection()
        self._conn.executescript(_SCHEMA)

    def create(
        self,
        project_id: int,
        *,
        name: str,
        description: str,
        filter: str | None,
        behavior: Behavior | None,
        is_visible: bool,
    ) -> Cohort:
        cur = self._conn.execute(
            "INSERT INTO cohorts (project_id, name, description, filter, behavior, is_visible, created_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                project_id,
                name,
                description,
                filter,
                orjson.dumps(behavior.as_dict()).decode() if behavior else None,
                int(is_visible),
                time.time(),
            ),
        )
        cohort = self.get(project_id, int(cur.lastrowid or 0))
        assert cohort is not None
        return cohort

    def get(self, project_id: int, cohort_id: int) -> Cohort | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cohorts WHERE project_id = ? AND id = ?", (project_id, cohort_id)
        ).fetchone()
        return _row(row) if row else None

    def list(self, project_id: int) -> list[Cohort]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM cohorts WHERE project_id = ? ORDER BY id", (project_id,)
        ).fetchall()
        return [_row(r) for r in rows]

    def update(self, cohort: Cohort) -> Cohort:
        self._conn.execute(
            "UPDATE cohorts SET name = ?, description = ?, filter = ?, behavior = ?, is_visible = ?"
            " WHERE project_id = ? AND id = ?",
            (
                cohort.name,
                cohort.description,
                cohort.filter,
                orjson.dumps(cohort.behavior.as_dict()).decode() if cohort.behavior else None,
                int(cohort.is_visible),
                cohort.project_id,
                cohort.id,
            ),
        )
        updated = self.get(cohort.project_id, cohort.id)
        assert updated is not None
        return updated

    def delete(self, project_id: int, cohort_id: int) -> bool:
        cur = self._conn.execute("DELETE FROM cohorts WHERE project_id = ? AND id = ?", (project_id, cohort_id))
        return cur.rowcount > 0
