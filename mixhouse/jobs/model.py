"""Jobs and their states.

    PENDING ──> STAGING ──> STARTED ──> SUCCESS
       │           │           └──────> FAILURE
       └───────────┴──> REVOKED      (cancelled; only before STARTED)

A job is created PENDING; the runner stages it (STAGING: it waits out its kind's cancel window), then
starts it (STARTED: no longer cancellable) and records SUCCESS with a result or FAILURE with a reason.
A job found STARTED when the server starts was interrupted (a crash): it is run again, so a kind's work
must be safe to repeat (each kind's `run` is one transaction, or idempotent)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from mixhouse.errors import MethodNotAllowed

if TYPE_CHECKING:
    from mixhouse.jobs.runner import JobContext


class JobState(StrEnum):
    PENDING = "PENDING"
    STAGING = "STAGING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILURE, JobState.REVOKED)

    @property
    def cancellable(self) -> bool:
        return self in (JobState.PENDING, JobState.STAGING)


class NotCancellable(MethodNotAllowed):
    """A cancel asked of a job that has started or finished (405, as Mixpanel answers)."""

    code = "not_cancellable"


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    project_id: int
    payload: Mapping[str, Any]  # the kind's input, as JSON
    state: JobState
    created_at: float  # epoch seconds
    updated_at: float
    start_after: float | None = None  # STAGING: when the cancel window closes
    result: Mapping[str, Any] | None = None  # SUCCESS: the kind's output, as JSON
    error: str | None = None  # FAILURE: why
    attempts: int = 0  # times the job was STARTED (more than 1: resumed after a crash)


class JobKind(Protocol):
    """What a kind of job does. `run` returns the result stored with SUCCESS; an exception is a FAILURE
    (its message stored). `run` may be called again for the same job after a crash."""

    name: str

    def cancel_window_seconds(self) -> float:
        """How long a job of this kind stays STAGING (cancellable) before it starts."""
        ...

    def run(self, job: Job, ctx: JobContext) -> Mapping[str, Any]: ...

    def revoked(self, job: Job, ctx: JobContext) -> None:
        """Called once a job of this kind is cancelled (to drop what staging prepared)."""
        ...
