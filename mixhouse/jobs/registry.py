"""The job kinds the server runs: one line per package that brings some (pipelines and warehouse
imports add theirs here)."""

from __future__ import annotations

from collections.abc import Callable

from mixhouse.cluster.leases import Duty, Leases
from mixhouse.cluster.pg import Database, coordination_url
from mixhouse.domain.catalog import CatalogPort
from mixhouse.engine.base import Engine
from mixhouse.jobs.runner import JobContext, JobRunner
from mixhouse.pipelines.service import DataChanges, pipeline_config
from mixhouse.settings import Settings

JOBS_LEASE = "jobs"


def job_duty(settings: Settings) -> Duty | None:
    """With a shared catalog, the lease that lets one process at a time run its jobs, schedules and
    pipelines (docs/scale-out.md#a-shared-catalog); None: this process's catalog is its own."""
    if not settings.catalog_url:
        return None
    url = coordination_url(settings)
    assert url is not None
    return Duty(Leases(Database(url)), JOBS_LEASE, settings.job_lease_seconds)


def start_jobs(
    settings: Settings,
    catalog: CatalogPort,
    engine: Engine,
    forget_users: Callable[[int], None],
    changes: DataChanges | None = None,
) -> JobRunner:
    """The server's runner, every kind registered, its thread started (resuming what a crash left).
    `forget_users(project_id)` drops what caches hold about a project's users after a deletion;
    `changes` learns of new and deleted events (pipelines' sync)."""
    from mixhouse.gdpr.kinds import all_kinds as gdpr_kinds
    from mixhouse.imports.run import ImportKind, Schedule
    from mixhouse.pipelines.service import start_pipelines

    changes = changes or DataChanges()

    def forget(project_id: int) -> None:
        forget_users(project_id)
        changes.deleted(project_id)

    context = JobContext(catalog, engine, settings.data_dir, services={"forget_users": forget})
    runner = JobRunner(context, duty=job_duty(settings))
    for kind in gdpr_kinds(settings.gdpr_cancel_window_seconds):
        runner.register(kind)
    start_pipelines(context, runner, pipeline_config(settings), changes)
    runner.register(ImportKind(settings.warehouse_files_dir, settings.warehouse_batch_rows))
    runner.add_ticker(Schedule(runner))
    runner.start()
    return runner
