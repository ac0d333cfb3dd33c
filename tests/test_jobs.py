"""The job runner (docs/jobs.md) with kinds of its own, on a real catalog and engine: states, results and
failures, the cancel window, a job a crash left STARTED run again, an unknown kind failed, not lost."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mixhouse.catalog import Catalog
from mixhouse.engine.duckdb import DuckDBEngine
from mixhouse.jobs import Job, JobContext, JobRunner, JobState, JobStore, NotCancellable
from tests.server import PROJECT_ID, seed_catalog


class Echo:
    name = "echo"
    window = 0.0

    def __init__(self) -> None:
        self.runs: list[str] = []

    def cancel_window_seconds(self) -> float:
        return self.window

    def run(self, job: Job, ctx: JobContext) -> Mapping[str, Any]:
        self.runs.append(job.id)
        if job.payload.get("fail"):
            raise ValueError(f"asked to fail: {job.payload['fail']}")
        return {"echo": job.payload["value"]}

    def revoked(self, job: Job, ctx: JobContext) -> None:
        self.runs.append(f"revoked {job.id}")


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    seed_catalog(tmp_path / "data")
    return Catalog(tmp_path / "data")


@pytest.fixture
def engine(tmp_path: Path, catalog: Catalog) -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(tmp_path / "data")
    yield engine
    engine.close()


def _runner(catalog: Catalog, engine: DuckDBEngine, kind: Echo) -> JobRunner:
    runner = JobRunner(JobContext(catalog, engine, Path(".")))
    runner.register(kind)
    return runner


def _wait(catalog: Catalog, job_id: str, states: set[JobState]) -> Job:
    deadline = time.monotonic() + 20
    while True:
        job = JobStore(catalog).get(job_id)
        assert job is not None
        if job.state in states:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def test_results_failures_and_order(catalog: Catalog, engine: DuckDBEngine) -> None:
    kind = Echo()
    runner = _runner(catalog, engine, kind)
    first = runner.submit("echo", PROJECT_ID, {"value": 1})
    failing = runner.submit("echo", PROJECT_ID, {"fail": "on purpose"})
    runner.start()
    try:
        done = _wait(catalog, failing.id, {JobState.FAILURE})
        assert done.error == "asked to fail: on purpose" and done.attempts == 1
        ok = _wait(catalog, first.id, {JobState.SUCCESS})
        assert ok.result == {"echo": 1} and ok.start_after is not None
        assert kind.runs == [first.id, failing.id]  # oldest first
        with pytest.raises(NotCancellable):
            runner.cancel(ok)
        with pytest.raises(ValueError, match="no job kind"):
            runner.submit("nope", PROJECT_ID, {})
    finally:
        runner.stop()


def test_a_job_stays_cancellable_through_its_window(catalog: Catalog, engine: DuckDBEngine) -> None:
    kind = Echo()
    kind.window = 60
    runner = _runner(catalog, engine, kind)
    runner.start()
    try:
        job = runner.submit("echo", PROJECT_ID, {"value": 2})
        staged = _wait(catalog, job.id, {JobState.STAGING})
        assert staged.start_after is not None and staged.start_after > time.time() + 50
        assert runner.cancel(staged).state is JobState.REVOKED
        assert runner.cancel(staged).state is JobState.REVOKED  # again: no error
        assert kind.runs == [f"revoked {job.id}"]
    finally:
        runner.stop()


def test_a_job_left_started_by_a_crash_runs_again_and_unknown_kinds_fail(
    catalog: Catalog, engine: DuckDBEngine
) -> None:
    store = JobStore(catalog)
    crashed = store.create("echo", PROJECT_ID, {"value": 3})
    assert store.transition(crashed.id, (JobState.PENDING,), JobState.STAGING, start_after=0)
    assert store.transition(crashed.id, (JobState.STAGING,), JobState.STARTED)
    orphan = store.create("pipeline-of-a-newer-version", PROJECT_ID, {})
    kind = Echo()
    runner = _runner(catalog, engine, kind)  # a new process: the runner finds both at its start
    runner.start()
    try:
        done = _wait(catalog, crashed.id, {JobState.SUCCESS})
        assert done.attempts == 2 and done.result == {"echo": 3}
        failed = _wait(catalog, orphan.id, {JobState.FAILURE})
        assert failed.error == "no job kind named 'pipeline-of-a-newer-version'"
    finally:
        runner.stop()
    # A cancel that loses the race to a start changes nothing.
    assert not store.transition(crashed.id, (JobState.PENDING, JobState.STAGING), JobState.REVOKED)
