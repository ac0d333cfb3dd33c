"""Jobs in the catalog database (beside projects and saved reports): durable on commit
(SQLite with synchronous=FULL, or PostgreSQL), readable by the server and the command line alike.
Every change of state is a compare-and-set on the current state, so a cancel and a start that race
cannot both win."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from mixhouse.domain.catalog import CatalogStore
from mixhouse.jobs.model import Job, JobState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    project_id  INTEGER NOT NULL,
    payload     TEXT NOT NULL,      -- JSON
    state       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    start_after REAL,
    result      TEXT,               -- JSON
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at);
"""

_COLUMNS = "id, kind, project_id, payload, state, created_at, updated_at, start_after, result, error, attempts"
_ACTIVE = (JobState.PENDING, JobState.STAGING, JobState.STARTED)


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        id=str(row[0]),
        kind=str(row[1]),
        project_id=int(row[2]),
        payload=orjson.loads(row[3]),
        state=JobState(row[4]),
        created_at=float(row[5]),
        updated_at=float(row[6]),
        start_after=None if row[7] is None else float(row[7]),
        result=None if row[8] is None else orjson.loads(row[8]),
        error=None if row[9] is None else str(row[9]),
        attempts=int(row[10]),
    )


class JobStore(CatalogStore):
    schema = _SCHEMA

    def create(self, kind: str, project_id: int, payload: Mapping[str, Any], *, now: float | None = None) -> Job:
        now = time.time() if now is None else now
        job_id = uuid.uuid4().hex
        self._conn.execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, 0)",
            [job_id, kind, project_id, orjson.dumps(payload).decode(), JobState.PENDING.value, now, now],
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str, *, kind: str | None = None, project_id: int | None = None) -> Job | None:
        """The job, or None when there is none of this id (of this kind, in this project)."""
        where: list[str] = ["id = ?"]
        args: list[object] = [job_id]
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if project_id is not None:
            where.append("project_id = ?")
            args.append(project_id)
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)}", args).fetchall()
        return _job(rows[0]) if rows else None

    def active(self) -> list[Job]:
        """Jobs not finished yet, oldest first."""
        marks = ", ".join("?" for _ in _ACTIVE)
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY created_at, id", [s.value for s in _ACTIVE]
        ).fetchall()
        return [_job(r) for r in rows]

    def transition(
        self,
        job_id: str,
        from_states: Iterable[JobState],
        to_state: JobState,
        *,
        start_after: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Move the job to `to_state` if it is in one of `from_states` now; False if it was not."""
        now = time.time() if now is None else now
        states = [s.value for s in from_states]
        marks = ", ".join("?" for _ in states)
        cursor = self._conn.execute(
            f"""UPDATE jobs SET state = ?, updated_at = ?,
                    start_after = coalesce(?, start_after),
                    result = coalesce(?, result),
                    error = coalesce(?, error),
                    attempts = attempts + ?
                WHERE id = ? AND state IN ({marks})""",
            [
                to_state.value,
                now,
                start_after,
                None if result is None else orjson.dumps(result).decode(),
                error,
                1 if to_state is JobState.STARTED else 0,
                job_id,
                *states,
            ],
        )
        return cursor.rowcount == 1
