"""The job kinds the server runs: one line per package that brings some (pipelines and warehouse
imports add theirs here)."""

from __future__ import annotations

from collections.abc import Callable

from mixhouse.domain.catalog import CatalogPort
from mixhouse.engine.base import Engine
from mixhouse.jobs.runner import JobContext, JobRunner
from mixhouse.settings import Settings


def start_jobs(
    settings: Settings, catalog: CatalogPort, engine: Engine, forget_users: Callable[[int], None]
) -> JobRunner:
    """The server's runner, every kind registered, its thread started (resuming what a crash left).
    `forget_users(project_id)` drops what caches hold about a project's users after a deletion."""
    from mixhouse.gdpr.kinds import all_kinds as gdpr_kinds

    context = JobContext(catalog, engine, settings.data_dir, services={"forget_users": forget_users})
    runner = JobRunner(context)
    for kind in gdpr_kinds(settings.gdpr_cancel_window_seconds):
        runner.register(kind)
    runner.start()
    return runner
