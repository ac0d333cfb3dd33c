"""Pipelines and their export tasks in the catalog database (SQLite, synchronous=FULL): a restart finds
every schedule, every finished export and every day that still owes one.

`pipelines`       one row per pipeline (its spec as JSON, paused, canceled)
`pipeline_tasks`  one row per export unit (a day or an hour): its state, the job that runs it, what it
                  exported (events, files, a fingerprint of the rows) and when it was synced."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mixhouse.domain.catalog import CatalogStore
from mixhouse.pipelines.model import PipelineSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,          -- JSON (PipelineSpec.to_json)
    paused      INTEGER NOT NULL DEFAULT 0,
    canceled    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    last_dispatched REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS pipelines_by_name ON pipelines (project_id, name) WHERE canceled = 0;
CREATE TABLE IF NOT EXISTS pipeline_tasks (
    pipeline_id INTEGER NOT NULL,
    unit        TEXT NOT NULL,          -- 2024-05-01 (a day) or 2024-05-01T13 (an hour)
    state       TEXT NOT NULL,          -- pending, running, succeeded, failed, retried, canceled
    job_id      TEXT,
    run_at      REAL NOT NULL,
    last_finish REAL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    events      INTEGER,
    files       INTEGER,
    fingerprint TEXT,
    sync_times  TEXT NOT NULL DEFAULT '[]',   -- JSON list of epoch seconds
    error       TEXT,
    PRIMARY KEY (pipeline_id, unit)
);
"""

STATES = ("pending", "running", "retried", "failed", "canceled", "timed_out", "succeeded")


@dataclass(frozen=True)
class Pipeline:
    id: int
    project_id: int
    name: str
    spec: PipelineSpec
    paused: bool
    canceled: bool
    created_at: float
    last_dispatched: float | None


@dataclass(frozen=True)
class Task:
    pipeline_id: int
    unit: str
    state: str
    job_id: str | None
    run_at: float
    last_finish: float | None
    attempts: int
    events: int | None
    files: int | None
    fingerprint: str | None
    sync_times: tuple[float, ...]
    error: str | None


_P_COLS = "id, project_id, name, spec, paused, canceled, created_at, last_dispatched"
_T_COLS = (
    "pipeline_id, unit, state, job_id, run_at, last_finish, attempts, events, files, fingerprint, sync_times, error"
)


def _pipeline(row: Sequence[Any]) -> Pipeline:
    return Pipeline(
        id=int(row[0]),
        project_id=int(row[1]),
        name=str(row[2]),
        spec=PipelineSpec.from_json(orjson.loads(row[3])),
        paused=bool(row[4]),
        canceled=bool(row[5]),
        created_at=float(row[6]),
        last_dispatched=None if row[7] is None else float(row[7]),
    )


def _task(row: Sequence[Any]) -> Task:
    return Task(
        pipeline_id=int(row[0]),
        unit=str(row[1]),
        state=str(row[2]),
        job_id=row[3],
        run_at=float(row[4]),
        last_finish=None if row[5] is None else float(row[5]),
        attempts=int(row[6]),
        events=row[7],
        files=row[8],
        fingerprint=row[9],
        sync_times=tuple(orjson.loads(row[10])),
        error=row[11],
    )


class PipelineStore(CatalogStore):
    schema = _SCHEMA

    # -- pipelines ------------------------------------------------------------------------------------

    def create(self, project_id: int, name: str, spec: PipelineSpec) -> Pipeline:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO pipelines (project_id, name, spec, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                [project_id, name, orjson.dumps(spec.to_json()).decode(), time.time()],
            )
            pipeline_id = int(cur.fetchone()[0])
        found = self.get_id(pipeline_id)
        assert found is not None
        return found

    def get_id(self, pipeline_id: int) -> Pipeline | None:
        rows = self._conn.execute(f"SELECT {_P_COLS} FROM pipelines WHERE id = ?", [pipeline_id]).fetchall()
        return _pipeline(rows[0]) if rows else None

    def get(self, project_id: int, name: str) -> Pipeline | None:
        """The pipeline of this name that is not canceled."""
        rows = self._conn.execute(
            f"SELECT {_P_COLS} FROM pipelines WHERE project_id = ? AND name = ? AND canceled = 0", [project_id, name]
        ).fetchall()
        return _pipeline(rows[0]) if rows else None

    def of_project(self, project_id: int) -> list[Pipeline]:
        rows = self._conn.execute(
            f"SELECT {_P_COLS} FROM pipelines WHERE project_id = ? AND canceled = 0 ORDER BY id", [project_id]
        ).fetchall()
        return [_pipeline(r) for r in rows]

    def active(self) -> list[Pipeline]:
        """Every pipeline that is neither paused nor canceled."""
        rows = self._conn.execute(
            f"SELECT {_P_COLS} FROM pipelines WHERE canceled = 0 AND paused = 0 ORDER BY id"
        ).fetchall()
        return [_pipeline(r) for r in rows]

    def update_spec(self, pipeline_id: int, spec: PipelineSpec) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE pipelines SET spec = ? WHERE id = ?", [orjson.dumps(spec.to_json()).decode(), pipeline_id]
            )

    def set_paused(self, pipeline_id: int, paused: bool) -> None:
        with self._write() as conn:
            conn.execute("UPDATE pipelines SET paused = ? WHERE id = ?", [int(paused), pipeline_id])

    def cancel(self, pipeline_id: int) -> None:
        """Delete the pipeline and its history (Mixpanel: cannot be undone)."""
        with self._write() as conn:
            conn.execute("UPDATE pipelines SET canceled = 1 WHERE id = ?", [pipeline_id])
            conn.execute("DELETE FROM pipeline_tasks WHERE pipeline_id = ?", [pipeline_id])

    def dispatched(self, pipeline_id: int, when: float) -> None:
        with self._write() as conn:
            conn.execute("UPDATE pipelines SET last_dispatched = ? WHERE id = ?", [when, pipeline_id])

    # -- tasks ----------------------------------------------------------------------------------------

    def tasks(self, pipeline_id: int) -> list[Task]:
        rows = self._conn.execute(
            f"SELECT {_T_COLS} FROM pipeline_tasks WHERE pipeline_id = ? ORDER BY unit", [pipeline_id]
        ).fetchall()
        return [_task(r) for r in rows]

    def task(self, pipeline_id: int, unit: str) -> Task | None:
        rows = self._conn.execute(
            f"SELECT {_T_COLS} FROM pipeline_tasks WHERE pipeline_id = ? AND unit = ?", [pipeline_id, unit]
        ).fetchall()
        return _task(rows[0]) if rows else None

    def schedule(self, pipeline_id: int, unit: str) -> None:
        """A unit's export is about to be queued (first time, or again for a sync); `attach` names its job."""
        with self._write() as conn:
            conn.execute(
                """INSERT INTO pipeline_tasks (pipeline_id, unit, state, job_id, run_at) VALUES (?, ?, 'pending', NULL, ?)
                   ON CONFLICT (pipeline_id, unit) DO UPDATE SET state = 'pending', job_id = NULL,
                       run_at = excluded.run_at, error = NULL""",
                [pipeline_id, unit, time.time()],
            )

    def attach(self, pipeline_id: int, unit: str, job_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE pipeline_tasks SET job_id = ? WHERE pipeline_id = ? AND unit = ? AND job_id IS NULL",
                [job_id, pipeline_id, unit],
            )

    def running(self, pipeline_id: int, unit: str) -> None:
        """Started (again, after a crash: `retried`)."""
        with self._write() as conn:
            conn.execute(
                """UPDATE pipeline_tasks SET attempts = attempts + 1,
                       state = CASE WHEN attempts > 0 THEN 'retried' ELSE 'running' END
                   WHERE pipeline_id = ? AND unit = ?""",
                [pipeline_id, unit],
            )

    def succeeded(self, pipeline_id: int, unit: str, *, events: int, files: int, fingerprint: str) -> None:
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT sync_times FROM pipeline_tasks WHERE pipeline_id = ? AND unit = ?", [pipeline_id, unit]
            ).fetchone()
            syncs = list(orjson.loads(row[0])) if row else []
            syncs.append(now)
            conn.execute(
                """UPDATE pipeline_tasks SET state = 'succeeded', last_finish = ?, events = ?, files = ?,
                       fingerprint = ?, sync_times = ?, error = NULL, attempts = 0
                   WHERE pipeline_id = ? AND unit = ?""",
                [now, events, files, fingerprint, orjson.dumps(syncs).decode(), pipeline_id, unit],
            )

    def failed(self, pipeline_id: int, unit: str, error: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE pipeline_tasks SET state = 'failed', last_finish = ?, error = ? WHERE pipeline_id = ? AND unit = ?",
                [time.time(), error, pipeline_id, unit],
            )
