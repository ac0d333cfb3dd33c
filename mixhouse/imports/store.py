"""Warehouse sources, imports and their runs in the catalog database (durable on commit). The
schedule (`next_run`) and the time_based cursor live here, so a restart loses neither."""

from __future__ import annotations

import time
from typing import Any

import orjson

from mixhouse.domain.catalog import CatalogStore
from mixhouse.imports.model import (
    HISTORY_RUNS,
    ImportRun,
    ImportSpec,
    ImportType,
    RunStatus,
    SourceSpec,
    SourceType,
    SyncMode,
    WarehouseImport,
    WarehouseSource,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS warehouse_sources (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    type        TEXT NOT NULL,
    name        TEXT NOT NULL,
    params      TEXT NOT NULL,     -- JSON, without the password
    password    TEXT,
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS warehouse_imports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL,
    import_type     TEXT NOT NULL,
    sync_mode       TEXT NOT NULL,
    source_id       INTEGER NOT NULL,
    table_params    TEXT NOT NULL,  -- JSON
    config          TEXT NOT NULL,  -- JSON
    paused          INTEGER NOT NULL,
    run_every       INTEGER NOT NULL,
    created         REAL NOT NULL,
    creator_id      INTEGER,
    creator_name    TEXT NOT NULL,
    next_run        REAL,
    last_dispatch   REAL,
    cursor          TEXT,           -- JSON
    lookup_table_id TEXT,
    is_deleted      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS warehouse_import_runs (
    id          TEXT PRIMARY KEY,   -- the job's id
    import_id   INTEGER NOT NULL,
    status      TEXT NOT NULL,
    start_time  REAL NOT NULL,
    end_time    REAL,
    imported    INTEGER,
    error       TEXT,
    manual      INTEGER NOT NULL DEFAULT 0  -- dispatched by manual-sync (counted by its rate limit)
);
CREATE INDEX IF NOT EXISTS warehouse_import_runs_by_import ON warehouse_import_runs (import_id, start_time);
"""

_IMPORT_COLUMNS = (
    "id, project_id, import_type, sync_mode, source_id, table_params, config, paused, run_every, created, "
    "creator_id, creator_name, next_run, last_dispatch, cursor, lookup_table_id, is_deleted"
)


def _import(row: tuple[Any, ...], source_type: SourceType) -> WarehouseImport:
    return WarehouseImport(
        id=int(row[0]),
        project_id=int(row[1]),
        import_type=ImportType(row[2]),
        sync_mode=SyncMode(row[3]),
        source_id=int(row[4]),
        source_type=source_type,
        table_params=orjson.loads(row[5]),
        config=orjson.loads(row[6]),
        paused=bool(row[7]),
        run_every=int(row[8]),
        created=float(row[9]),
        creator_id=None if row[10] is None else int(row[10]),
        creator_name=str(row[11]),
        next_run=None if row[12] is None else float(row[12]),
        last_dispatch=None if row[13] is None else float(row[13]),
        cursor=None if row[14] is None else orjson.loads(row[14]),
        lookup_table_id=None if row[15] is None else str(row[15]),
        is_deleted=bool(row[16]),
    )


def _source(row: tuple[Any, ...]) -> WarehouseSource:
    return WarehouseSource(
        id=int(row[0]),
        project_id=int(row[1]),
        type=SourceType(row[2]),
        name=str(row[3]),
        params=orjson.loads(row[4]),
        password=None if row[5] is None else str(row[5]),
        created=float(row[6]),
    )


def _run(row: tuple[Any, ...]) -> ImportRun:
    return ImportRun(
        id=str(row[0]),
        import_id=int(row[1]),
        status=RunStatus(row[2]),
        start_time=float(row[3]),
        end_time=None if row[4] is None else float(row[4]),
        num_events_imported=None if row[5] is None else int(row[5]),
        error=None if row[6] is None else str(row[6]),
    )


class ImportStore(CatalogStore):
    schema = _SCHEMA

    # -- sources ----------------------------------------------------------------------------------

    def create_source(self, project_id: int, spec: SourceSpec) -> WarehouseSource:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO warehouse_sources (project_id, type, name, params, password, created)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    project_id,
                    spec.type.value,
                    spec.name,
                    orjson.dumps(spec.params).decode(),
                    spec.password,
                    time.time(),
                ],
            )
            source_id = int(cursor.fetchone()[0])
        found = self.source(project_id, source_id)
        assert found is not None
        return found

    def source(self, project_id: int, source_id: int) -> WarehouseSource | None:
        rows = self._conn.execute(
            "SELECT id, project_id, type, name, params, password, created FROM warehouse_sources WHERE project_id = ? AND id = ?",
            [project_id, source_id],
        ).fetchall()
        return _source(rows[0]) if rows else None

    def sources(self, project_id: int) -> list[WarehouseSource]:
        rows = self._conn.execute(
            "SELECT id, project_id, type, name, params, password, created FROM warehouse_sources WHERE project_id = ? ORDER BY id",
            [project_id],
        ).fetchall()
        return [_source(r) for r in rows]

    # -- imports ----------------------------------------------------------------------------------

    def create(
        self, project_id: int, spec: ImportSpec, source_type: SourceType, creator_id: int | None, creator_name: str
    ) -> WarehouseImport:
        now = time.time()
        with self._write() as conn:
            cursor = conn.execute(
                f"""INSERT INTO warehouse_imports ({_IMPORT_COLUMNS.removeprefix("id, ")})
                    VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, NULL, NULL, NULL, NULL, 0) RETURNING id""",
                [
                    project_id,
                    spec.import_type.value,
                    spec.sync_mode.value,
                    spec.source_id,
                    orjson.dumps(spec.table_params).decode(),
                    orjson.dumps(spec.config).decode(),
                    spec.run_every,
                    now,
                    creator_id,
                    creator_name,
                ],
            )
            import_id = int(cursor.fetchone()[0])
        found = self.get(project_id, import_id)
        assert found is not None
        return found

    def _select(self, where: str, args: list[Any]) -> list[WarehouseImport]:
        rows = self._conn.execute(
            f"""SELECT {", ".join("i." + c.strip() for c in _IMPORT_COLUMNS.split(","))}, s.type
                FROM warehouse_imports i JOIN warehouse_sources s ON s.id = i.source_id
                WHERE {where} ORDER BY i.id""",
            args,
        ).fetchall()
        return [_import(r[:-1], SourceType(r[-1])) for r in rows]

    def get(self, project_id: int, import_id: int) -> WarehouseImport | None:
        found = self._select("i.project_id = ? AND i.id = ? AND i.is_deleted = 0", [project_id, import_id])
        return found[0] if found else None

    def imports(self, project_id: int) -> list[WarehouseImport]:
        return self._select("i.project_id = ? AND i.is_deleted = 0", [project_id])

    def due(self, now: float) -> list[WarehouseImport]:
        """Imports whose scheduled run is due and that have no run going."""
        return self._select(
            """i.is_deleted = 0 AND i.paused = 0 AND i.next_run IS NOT NULL AND i.next_run <= ?
               AND NOT EXISTS (SELECT 1 FROM warehouse_import_runs r WHERE r.import_id = i.id AND r.status = 'RUNNING')""",
            [now],
        )

    def next_due(self) -> float | None:
        rows = self._conn.execute(
            "SELECT min(next_run) FROM warehouse_imports WHERE is_deleted = 0 AND paused = 0 AND next_run IS NOT NULL"
        ).fetchall()
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def set_schedule(self, import_id: int, *, paused: bool | None = None, run_every: int | None = None) -> None:
        """Pause, resume or change the frequency; the next run is `run_every` after now (none when 0)."""
        with self._write() as conn:
            row = conn.execute("SELECT paused, run_every FROM warehouse_imports WHERE id = ?", [import_id]).fetchone()
            if row is None:
                return
            new_paused = bool(row[0]) if paused is None else paused
            new_every = int(row[1]) if run_every is None else run_every
            next_run = None if new_every == 0 else time.time() + new_every / 1e9
            conn.execute(
                "UPDATE warehouse_imports SET paused = ?, run_every = ?, next_run = ? WHERE id = ?",
                [int(new_paused), new_every, next_run, import_id],
            )

    def dispatched(self, import_id: int, run_id: str, at: float, *, manual: bool = False) -> bool:
        """Record a run as started (RUNNING) and move the schedule on; False when one is running already."""
        with self._write() as conn:
            running = conn.execute(
                "SELECT 1 FROM warehouse_import_runs WHERE import_id = ? AND status = 'RUNNING'", [import_id]
            ).fetchone()
            if running is not None:
                return False
            conn.execute(
                "INSERT INTO warehouse_import_runs (id, import_id, status, start_time, manual) VALUES (?, ?, 'RUNNING', ?, ?)",
                [run_id, import_id, at, int(manual)],
            )
            conn.execute(
                """UPDATE warehouse_imports SET last_dispatch = ?,
                       next_run = CASE WHEN run_every > 0 THEN ? + run_every / 1e9 END
                   WHERE id = ?""",
                [at, at, import_id],
            )
        return True

    def running(self, import_id: int) -> ImportRun | None:
        rows = self._conn.execute(
            "SELECT id, import_id, status, start_time, end_time, imported, error FROM warehouse_import_runs "
            "WHERE import_id = ? AND status = 'RUNNING'",
            [import_id],
        ).fetchall()
        return _run(rows[0]) if rows else None

    def running_ids(self) -> list[str]:
        rows = self._conn.execute("SELECT id FROM warehouse_import_runs WHERE status = 'RUNNING'").fetchall()
        return [str(r[0]) for r in rows]

    def finish_run(self, run_id: str, status: RunStatus, imported: int | None, error: str | None = None) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE warehouse_import_runs SET status = ?, end_time = ?, imported = ?, error = ? WHERE id = ?",
                [status.value, time.time(), imported, error, run_id],
            )

    def runs(self, import_id: int, limit: int = HISTORY_RUNS) -> list[ImportRun]:
        rows = self._conn.execute(
            "SELECT id, import_id, status, start_time, end_time, imported, error FROM warehouse_import_runs "
            "WHERE import_id = ? ORDER BY start_time DESC, rowid DESC LIMIT ?",
            [import_id, limit],
        ).fetchall()
        return [_run(r) for r in rows]

    def manual_runs_since(self, import_id: int, since: float) -> list[float]:
        rows = self._conn.execute(
            "SELECT start_time FROM warehouse_import_runs WHERE import_id = ? AND manual = 1 AND start_time > ? "
            "ORDER BY start_time",
            [import_id, since],
        ).fetchall()
        return [float(r[0]) for r in rows]

    def succeeded_once(self, import_id: int) -> bool:
        return (
            self._conn.execute(
                "SELECT 1 FROM warehouse_import_runs WHERE import_id = ? AND status = 'SUCCEEDED'", [import_id]
            ).fetchone()
            is not None
        )

    def set_cursor(self, import_id: int, cursor: Any) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE warehouse_imports SET cursor = ? WHERE id = ?", [orjson.dumps(cursor).decode(), import_id]
            )

    def set_lookup_table(self, import_id: int, table_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE warehouse_imports SET lookup_table_id = ? WHERE id = ?", [table_id, import_id])

    def delete(self, import_id: int) -> None:
        """Marked deleted (its runs stay for the record); never scheduled again."""
        with self._write() as conn:
            conn.execute("UPDATE warehouse_imports SET is_deleted = 1, next_run = NULL WHERE id = ?", [import_id])
