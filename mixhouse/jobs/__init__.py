"""Background jobs of the server process (docs/jobs.md): persisted in the catalog database, run one at a
time on a thread of the server, resumed after a restart (a crash included).

`model` is the state machine, `store` keeps jobs in SQLite, `runner` runs them; a kind of job (a GDPR
deletion, later a pipeline or a warehouse import) registers a `JobKind` with the runner."""

from mixhouse.jobs.model import Job, JobKind, JobState, NotCancellable
from mixhouse.jobs.runner import JobContext, JobRunner
from mixhouse.jobs.store import JobStore

__all__ = ["Job", "JobContext", "JobKind", "JobRunner", "JobState", "JobStore", "NotCancellable"]
