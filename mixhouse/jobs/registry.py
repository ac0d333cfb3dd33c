"""The job kinds the server runs: one line per package that brings some (pipelines and warehouse
imports add theirs here)."""

from __future__ import annotations

from pathlib import Path

from mixhouse.catalog import Catalog
from mixhouse.engine.base import Engine
from mixhouse.jobs.runner import JobContext, JobRunner


def start_jobs(catalog: Catalog, engine: Engine, data_dir: Path) -> JobRunner:
    """The server's runner, every kind registered, its thread started (resuming what a crash left)."""
    from mixhouse.flags.service import COHORTS
    from mixhouse.gdpr.kinds import all_kinds as gdpr_kinds

    runner = JobRunner(JobContext(catalog, engine, data_dir, services={"forget_users": COHORTS.forget}))
    for kind in gdpr_kinds():
        runner.register(kind)
    runner.start()
    return runner
