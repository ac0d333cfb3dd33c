"""A job runner in its own process for tests/test_cluster.py: it runs the jobs of a catalog folder that
other processes share, competing for the runner's lease in PostgreSQL, and records every run it makes.

    python -m tests.cluster_worker DATA_DIR POSTGRES_URL RUNS_FILE LEASE_TTL_SECONDS
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from mixhouse.catalog import Catalog
from mixhouse.cluster.leases import Duty, Leases
from mixhouse.cluster.pg import Database
from mixhouse.engine.base import Engine
from mixhouse.jobs.model import Job
from mixhouse.jobs.runner import JobContext, JobRunner

LEASE = "jobs"


class Record:
    """A job that appends "<job id> <pid>" to the runs file (once per run)."""

    name = "record"

    def __init__(self, runs: Path) -> None:
        self.runs = runs

    def cancel_window_seconds(self) -> float:
        return 0.0

    def run(self, job: Job, ctx: JobContext) -> Mapping[str, Any]:
        with open(self.runs, "a") as out:
            out.write(f"{job.id} {os.getpid()}\n")
        return {"pid": os.getpid()}

    def revoked(self, job: Job, ctx: JobContext) -> None:
        return None


def main() -> None:
    data_dir, url, runs, ttl = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    catalog = Catalog(data_dir)
    ctx = JobContext(catalog, cast(Engine, None), data_dir)  # the record kind reads no events
    runner = JobRunner(ctx, duty=Duty(Leases(Database(url)), LEASE, ttl))
    runner.register(Record(runs))
    runner.start()
    print("ready", flush=True)
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    main()
