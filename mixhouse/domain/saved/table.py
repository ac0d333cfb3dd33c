"""One kind of saved object (funnel, cohort, bookmark) in the catalog database: create, read, update and
delete, always scoped by project so that no id reaches another project's rows. Table and column names
come from this package's own code, never from a request; values always travel as parameters."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from mixhouse.catalog import Catalog
from mixhouse.catalogdb import Connection

T = TypeVar("T")


class SavedTable(Generic[T]):
    def __init__(
        self, catalog: Catalog, *, schema: str, table: str, columns: str, row: Callable[[tuple[Any, ...]], T]
    ) -> None:
        self._conn: Connection = catalog.connection()
        self._conn.executescript(schema)
        self._table = table
        self._columns = columns  # "id, project_id, ..., created_at", in the order `row` reads them
        self._row = row

    def insert(self, project_id: int, values: Mapping[str, object]) -> T:
        fields = {"project_id": project_id, **values, "created_at": time.time()}
        cur = self._conn.execute(
            f"INSERT INTO {self._table} ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))}) RETURNING id",
            tuple(fields.values()),
        )
        saved = self.get(project_id, int(cur.fetchone()[0]))
        assert saved is not None
        return saved

    def get(self, project_id: int, object_id: int) -> T | None:
        if not -(2**63) <= object_id < 2**63:  # SQLite would raise OverflowError: no such object
            return None
        return self.first(project_id, "id", object_id)

    def first(self, project_id: int, column: str, value: object) -> T | None:
        row = self._conn.execute(
            f"SELECT {self._columns} FROM {self._table} WHERE project_id = ? AND {column} = ? ORDER BY id LIMIT 1",
            (project_id, value),
        ).fetchone()
        return self._row(row) if row else None

    def list(self, project_id: int) -> list[T]:
        rows = self._conn.execute(
            f"SELECT {self._columns} FROM {self._table} WHERE project_id = ? ORDER BY id", (project_id,)
        ).fetchall()
        return [self._row(r) for r in rows]

    def update(self, project_id: int, object_id: int, values: Mapping[str, object]) -> T:
        assignments = ", ".join(f"{name} = ?" for name in values)
        self._conn.execute(
            f"UPDATE {self._table} SET {assignments} WHERE project_id = ? AND id = ?",
            (*values.values(), project_id, object_id),
        )
        updated = self.get(project_id, object_id)
        assert updated is not None
        return updated

    def delete(self, project_id: int, object_id: int) -> bool:
        if not -(2**63) <= object_id < 2**63:
            return False
        cur = self._conn.execute(f"DELETE FROM {self._table} WHERE project_id = ? AND id = ?", (project_id, object_id))
        return cur.rowcount > 0
