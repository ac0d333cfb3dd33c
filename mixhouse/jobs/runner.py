"""The job runner: one thread of the server process runs jobs one at a time, oldest first.

It wakes when a job is submitted or cancelled, when a staged job's cancel window closes, and every
`POLL_SECONDS` otherwise (to notice jobs created by another process on the same data dir). A job that a
crash left STARTED is run again at the next start. While the store is unavailable (a full disk) a
started job waits and retries rather than failing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixhouse.cluster.leases import Duty, Heartbeat
from mixhouse.domain.catalog import CatalogPort
from mixhouse.engine.base import Engine
from mixhouse.errors import Unavailable
from mixhouse.jobs.model import Job, JobKind, JobState, NotCancellable
from mixhouse.jobs.store import JobStore

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
RETRY_UNAVAILABLE_SECONDS = 2.0


@dataclass
class JobContext:
    """What a kind's `run` may use."""

    catalog: CatalogPort
    engine: Engine
    data_dir: Path
    services: dict[str, Any] = field(default_factory=dict)  # anything else a kind needs, by name


class JobRunner:
    def __init__(self, ctx: JobContext, duty: Duty | None = None) -> None:
        """`duty`: a lease that several processes on one catalog compete for; only its holder steps
        (schedules and jobs), so each job runs in exactly one process (mixhouse/cluster/leases.py)."""
        self.ctx = ctx
        self.duty = duty
        self._kinds: dict[str, JobKind] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tickers: list[Callable[[], float]] = []

    # -- registry -------------------------------------------------------------------------------

    def register(self, kind: JobKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"a job kind named {kind.name!r} is registered already")
        self._kinds[kind.name] = kind

    def kind(self, name: str) -> JobKind:
        return self._kinds[name]

    def add_ticker(self, tick: Callable[[], float]) -> None:
        """Call `tick()` on the runner's thread before each step (a schedule that submits due jobs); it
        returns the seconds until it wants to be called again."""
        self._tickers.append(tick)

    def wake(self) -> None:
        """Step now (a schedule changed)."""
        self._wake.set()

    # -- requests -------------------------------------------------------------------------------

    def submit(self, kind: str, project_id: int, payload: Mapping[str, Any]) -> Job:
        if kind not in self._kinds:
            raise ValueError(f"no job kind named {kind!r}")
        job = JobStore(self.ctx.catalog).create(kind, project_id, payload)
        self._wake.set()
        return job

    def cancel(self, job: Job) -> Job:
        """REVOKED if the job had not started (cancelling a revoked job again is no error); NotCancellable
        (405) once it has started or finished."""
        store = JobStore(self.ctx.catalog)
        if store.transition(job.id, (JobState.PENDING, JobState.STAGING), JobState.REVOKED):
            kind = self._kinds.get(job.kind)
            if kind is not None:
                kind.revoked(job, self.ctx)
            self._wake.set()
        current = store.get(job.id)
        assert current is not None
        if current.state is not JobState.REVOKED:
            raise NotCancellable(f"the task is {current.state.value} and can no longer be cancelled")
        return current

    # -- the thread -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mixhouse-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the job that runs now (a job still running after `timeout` resumes at the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        running = self._thread is not None and self._thread.is_alive()
        if self.duty is not None and not running:  # (a job still running keeps the lease until it expires)
            try:
                self.duty.release()  # another process takes over at once, not after the lease's time
            except Exception:
                log.warning("could not release the job runner's lease", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._step()
            except Exception:
                log.exception("the job runner failed a step; retrying")
                wait = POLL_SECONDS
            if wait > 0:
                self._wake.wait(wait)
            self._wake.clear()

    def _step(self) -> float:
        """Advance the oldest job that can move; seconds to wait before the next step (0: at once)."""
        if self.duty is not None and not self.duty.held(time.monotonic()):
            return min(POLL_SECONDS, self.duty.ttl / 3)  # another process runs jobs; look again later
        store = JobStore(self.ctx.catalog)
        wait = POLL_SECONDS
        if self.duty is not None:
            wait = min(wait, self.duty.ttl / 3)  # renew the lease in time
        for tick in self._tickers:
            try:
                wait = min(wait, max(0.0, tick()))
            except Exception:
                log.exception("a job schedule failed to tick")
        now = time.time()
        for job in store.active():
            if self._stop.is_set():
                return 0
            kind = self._kinds.get(job.kind)
            if kind is None:
                store.transition(job.id, (job.state,), JobState.FAILURE, error=f"no job kind named {job.kind!r}")
                continue
            if job.state is JobState.PENDING:
                start_after = now + max(0.0, kind.cancel_window_seconds())
                store.transition(job.id, (JobState.PENDING,), JobState.STAGING, start_after=start_after)
                return 0  # look again: it may start at once
            if job.state is JobState.STAGING:
                if job.start_after is not None and job.start_after > now:
                    wait = min(wait, job.start_after - now)
                    continue
                if store.transition(job.id, (JobState.STAGING,), JobState.STARTED):
                    self._run(kind, job)
                return 0
            # STARTED: a crash interrupted it; run it again.
            log.warning("resuming job %s (%s), interrupted while it ran", job.id, job.kind)
            store.transition(job.id, (JobState.STARTED,), JobState.STARTED)
            self._run(kind, job)
            return 0
        return wait

    def _run(self, kind: JobKind, job: Job) -> None:
        store = JobStore(self.ctx.catalog)
        started = time.perf_counter()
        while True:
            try:
                if self.duty is not None:
                    with Heartbeat(self.duty):  # a job may outlast the lease
                        result = kind.run(job, self.ctx)
                else:
                    result = kind.run(job, self.ctx)
            except Unavailable as exc:
                if self._stop.is_set():
                    return  # stays STARTED: resumed at the next start
                log.warning("job %s waits for the store: %s", job.id, exc.message)
                self._stop.wait(RETRY_UNAVAILABLE_SECONDS)
                continue
            except Exception as exc:
                log.exception("job %s (%s) failed", job.id, job.kind)
                store.transition(job.id, (JobState.STARTED,), JobState.FAILURE, error=str(exc) or type(exc).__name__)
                return
            break
        store.transition(job.id, (JobState.STARTED,), JobState.SUCCESS, result=dict(result))
        log.info("job %s (%s) done in %.3f s", job.id, job.kind, time.perf_counter() - started)


__all__ = ["JobContext", "JobRunner", "NotCancellable"]
