"""Saved cohorts: a name, a filter over profile properties (an expression) and, optionally, a behaviour
("did event X at least N times in the last D days"). Membership is computed live by the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from mixhouse.catalog import Catalog
from mixhouse.domain.saved.table import SavedTable

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
        self._table = SavedTable(catalog, schema=_SCHEMA, table="cohorts", columns=_COLUMNS, row=_row)

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
        return self._table.insert(project_id, _values(name, description, filter, behavior, is_visible))

    def get(self, project_id: int, cohort_id: int) -> Cohort | None:
        return self._table.get(project_id, cohort_id)

    def list(self, project_id: int) -> list[Cohort]:
        return self._table.list(project_id)

    def update(self, cohort: Cohort) -> Cohort:
        values = _values(cohort.name, cohort.description, cohort.filter, cohort.behavior, cohort.is_visible)
        return self._table.update(cohort.project_id, cohort.id, values)

    def delete(self, project_id: int, cohort_id: int) -> bool:
        return self._table.delete(project_id, cohort_id)


def _values(
    name: str, description: str, filter: str | None, behavior: Behavior | None, is_visible: bool
) -> dict[str, object]:
    return {
        "name": name,
        "description": description,
        "filter": filter,
        "behavior": orjson.dumps(behavior.as_dict()).decode() if behavior else None,
        "is_visible": int(is_visible),
    }
