"""Pipelines at run time: the job kind that exports one unit, and the scheduler that decides which units
are owed (ended days or hours of the project's timezone, from `from_date` on) and which finished ones a
sync must export again (their rows changed: late data, an import into the past, a GDPR deletion).

The scheduler is one thread of the server; it only submits jobs, which the server's job runner runs one at
a time (docs/jobs.md). Every decision reads the catalog (`pipelines`, `pipeline_tasks`, `jobs`), so a
restart resumes where the last process stopped: a job a crash left STARTED is run again by the runner, a
unit never queued is queued at the first tick."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mixhouse.engine.base import Commit
from mixhouse.errors import Unavailable
from mixhouse.jobs import Job, JobContext, JobRunner, JobStore
from mixhouse.pipelines.export import Credentials, export_unit, filesystem, fingerprint, unit_query
from mixhouse.pipelines.model import Unit, due_units
from mixhouse.pipelines.store import Pipeline, PipelineStore, Task
from mixhouse.settings import Settings

log = logging.getLogger(__name__)

EXPORT = "pipeline_export"
SERVICE = "pipelines"


@dataclass(frozen=True)
class PipelineConfig:
    """The settings pipelines run by (docs/pipelines.md)."""

    credentials: Credentials
    local_dir: Path | None
    file_rows: int
    tick_seconds: float
    sync_days: int
    sync_interval_seconds: float


class DataChanges:
    """Whether stored events may have changed since the last sync check: set by the engine's commit
    observer (new events, maybe late, or profile updates; an identity merge arrives in an event, so its
    commit counts too) and by GDPR deletions (which also ask for a check at once)."""

    def __init__(self) -> None:
        self._dirty = threading.Event()
        self._dirty.set()  # what happened while the server was down is unknown
        self._urgent = threading.Event()
        self.wake: threading.Event | None = None

    def observe(self, commit: Commit) -> None:
        if commit.events or commit.profile_updates:  # profiles and merges: what people pipelines export
            self._dirty.set()

    def deleted(self, project_id: int) -> None:
        self._dirty.set()
        self._urgent.set()
        if self.wake is not None:
            self.wake.set()

    def again(self) -> None:
        """Check again at the next chance: a unit was still being exported when this check ran, and its
        export may have read the store before the change that asked for the check."""
        self._dirty.set()

    def take(self, interval_due: bool) -> bool:
        """True (and cleared) when a sync check should run now."""
        if self._urgent.is_set() or (interval_due and self._dirty.is_set()):
            self._urgent.clear()
            self._dirty.clear()
            return True
        return False


class ExportKind:
    """One unit of one pipeline: the job's payload is `{"pipeline_id", "unit", "sync"}`."""

    name = EXPORT

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    def cancel_window_seconds(self) -> float:
        return 0.0

    def run(self, job: Job, ctx: JobContext) -> Mapping[str, Any]:
        store = PipelineStore(ctx.catalog)
        pipeline = store.get_id(int(job.payload["pipeline_id"]))
        unit_key = str(job.payload["unit"])
        if pipeline is None or pipeline.canceled:
            return {"skipped": "canceled"}
        task = store.task(pipeline.id, unit_key)
        if task is None or task.job_id not in (None, job.id):
            return {"skipped": "superseded"}  # a later job owns this unit now
        if task.state == "succeeded":
            return {"skipped": "done"}
        if pipeline.paused:
            return {"skipped": "paused"}  # stays pending; resume queues it again
        project = ctx.catalog.project_by_id(pipeline.project_id)
        if project is None:
            return {"skipped": "no project"}
        store.running(pipeline.id, unit_key)
        try:
            fs, root = filesystem(pipeline.spec.destination, self.config.credentials, self.config.local_dir)
            outcome = export_unit(
                ctx.engine,
                project.id,
                project.timezone,
                pipeline.spec,
                Unit.from_key(unit_key),
                fs=fs,
                root=root,
                file_rows=self.config.file_rows,
            )
        except Unavailable:
            raise  # the runner waits for the store and runs it again
        except Exception as exc:
            store.failed(pipeline.id, unit_key, str(exc) or type(exc).__name__)
            raise
        store.succeeded(
            pipeline.id, unit_key, events=outcome.events, files=outcome.files, fingerprint=outcome.fingerprint
        )
        store.dispatched(pipeline.id, time.time())
        return {"events": outcome.events, "files": outcome.files, "unit": unit_key, "sync": job.payload.get("sync")}

    def revoked(self, job: Job, ctx: JobContext) -> None:
        return None


class Scheduler:
    def __init__(self, ctx: JobContext, runner: JobRunner, config: PipelineConfig, changes: DataChanges) -> None:
        self.ctx = ctx
        self.runner = runner
        self.config = config
        self.changes = changes
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sync = 0.0
        changes.wake = self._wake

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mixhouse-pipelines", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Unavailable as exc:
                log.warning("pipelines wait for the store: %s", exc.message)
            except Exception:
                log.exception("the pipeline scheduler failed a tick; retrying")
            self._wake.wait(self.config.tick_seconds)
            self._wake.clear()

    # -- one look ---------------------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        store = PipelineStore(self.ctx.catalog)
        pipelines = store.active()
        sync_now = self.changes.take(time.time() - self._last_sync >= self.config.sync_interval_seconds)
        for pipeline in pipelines:
            if self._stop.is_set():
                return
            project = self.ctx.catalog.project_by_id(pipeline.project_id)
            if project is None:
                continue
            tasks = {t.unit: t for t in store.tasks(pipeline.id)}
            for unit in due_units(pipeline.spec, now, project.timezone):
                task = tasks.get(unit.key)
                if task is None or self._stalled(task):
                    self._submit(store, pipeline, unit.key, sync=False)
            if sync_now and pipeline.spec.sync:
                self._sync(store, pipeline, list(tasks.values()), project.timezone, now)
        if sync_now:
            self._last_sync = time.time()

    def _stalled(self, task: Task) -> bool:
        """A task no live job will finish: failed (tried again every tick), or its job gone or finished
        without finishing it (paused meanwhile)."""
        if task.state == "failed":
            return True
        if task.state == "succeeded":
            return False
        job = JobStore(self.ctx.catalog).get(task.job_id) if task.job_id else None
        return job is None or job.state.finished

    def _sync(self, store: PipelineStore, pipeline: Pipeline, tasks: list[Task], timezone: str, now: datetime) -> None:
        oldest = now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=self.config.sync_days)
        if pipeline.spec.data_source == "people" and tasks:
            # Every unit of a people pipeline writes the same tables whole, so only the latest export's
            # digest says whether they are current: one scan and at most one export per check, not one per
            # unit of the window.
            tasks = [max(tasks, key=lambda t: t.unit)]  # keys sort as their days and hours
        for task in tasks:
            unit = Unit.from_key(task.unit)
            if unit.day < oldest:
                continue
            if task.state != "succeeded":
                self.changes.again()
                continue
            query = unit_query(pipeline.project_id, pipeline.spec, unit, timezone, 50_000)
            if fingerprint(self.ctx.engine, query) != task.fingerprint:
                log.info("pipeline %s: %s changed since its export; syncing", pipeline.name, task.unit)
                self._submit(store, pipeline, task.unit, sync=True)

    def _submit(self, store: PipelineStore, pipeline: Pipeline, unit: str, *, sync: bool) -> None:
        store.schedule(pipeline.id, unit)
        job = self.runner.submit(EXPORT, pipeline.project_id, {"pipeline_id": pipeline.id, "unit": unit, "sync": sync})
        store.attach(pipeline.id, unit, job.id)


def start_pipelines(ctx: JobContext, runner: JobRunner, config: PipelineConfig, changes: DataChanges) -> Scheduler:
    """Register the export kind with the runner and start the scheduler (kept in ctx.services)."""
    runner.register(ExportKind(config))
    scheduler = Scheduler(ctx, runner, config, changes)
    ctx.services[SERVICE] = scheduler
    scheduler.start()
    return scheduler


def stop_pipelines(runner: JobRunner) -> None:
    scheduler = runner.ctx.services.get(SERVICE)
    if isinstance(scheduler, Scheduler):
        scheduler.stop()


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        credentials=Credentials(
            settings.aws_access_key_id,
            settings.aws_secret_access_key,
            settings.azure_storage_account_key,
            settings.google_application_credentials,
        ),
        local_dir=settings.pipeline_local_dir,
        file_rows=settings.pipeline_file_rows,
        tick_seconds=settings.pipeline_tick_seconds,
        sync_days=settings.pipeline_sync_days,
        sync_interval_seconds=settings.pipeline_sync_interval_seconds,
    )
