"""The single writer: one thread owns the write connection and group-commits whatever is waiting.

Requests hand a WriteBatch to `submit` and wait on a future. The thread takes everything queued
at that moment and writes it at once (DuckDB: one transaction, its WAL fsynced on commit; ClickHouse:
one INSERT per table), so one durable write acknowledges many requests. If a group fails, each batch is retried alone so that one bad
batch cannot fail its neighbours.

Overload is refused up front with Unavailable (503, retryable) rather than met by running out of
memory (too many rows waiting) or disk (free space under a reserve, MIXHOUSE_DISK_RESERVE_BYTES, plus
what the engine's next checkpoint may need):
a refused request was never acknowledged, so nothing acknowledged is lost.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.base import Commit, CommitObserver
from mixhouse.errors import Unavailable

log = logging.getLogger(__name__)

_STOP = object()

DEFAULT_DISK_RESERVE_BYTES = 64 * 1024 * 1024
# Free space is looked up again after this long or this many rows admitted since the last look, not on
# every request: a statfs and a stat per single-event /track request were a tenth of its CPU
# (bench/bench_ingest.py), while 50 ms or 1000 rows of writes are far under any reserve.
DISK_CHECK_SECONDS = 0.05
DISK_CHECK_ROWS = 1000


@dataclass
class _Task:
    """Work other than a write batch that must run on the writer thread, alone (a deletion)."""

    fn: Callable[[], Any]
    future: Future[Any]


def _settle(future: Future[Any], result: object, error: BaseException | None) -> None:
    """Resolve a caller's future, unless the caller cancelled it meanwhile: the write stands either way, and
    the writer thread must not die of a caller that stopped waiting (set_* on a cancelled future raises)."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


class GroupCommitWriter:
    # What a failed write raises when nothing was stored and the client may retry (an engine adds its
    # driver's I/O errors in a subclass).
    RETRYABLE: tuple[type[Exception], ...] = (OSError,)

    def __init__(
        self,
        write_group: Callable[[list[WriteBatch]], None],
        *,
        max_pending_rows: int = 500_000,
        disk_path: Path | None = None,
        disk_reserve_bytes: int | None = None,
        checkpoint_reserve: Callable[[], int] | None = None,
        on_idle: Callable[[], None] | None = None,
        idle_seconds: float = 5.0,
        commit_observers: tuple[CommitObserver, ...] = (),
    ) -> None:
        # Called after every group commit (metrics hook in here).
        self._observers = commit_observers
        # Called on the writer thread once no write has arrived for `idle_seconds` after a commit.
        self._on_idle = on_idle
        self._idle_seconds = idle_seconds
        self._write_group = write_group
        self._disk_path = disk_path
        self.disk_reserve_bytes = DEFAULT_DISK_RESERVE_BYTES if disk_reserve_bytes is None else disk_reserve_bytes
        # Free space the engine's next checkpoint may need, on top of the operator's reserve: a checkpoint
        # that runs out of disk can leave the store unusable, so its room is never lent to new writes.
        self._checkpoint_reserve = checkpoint_reserve
        self._queue: queue.SimpleQueue[tuple[WriteBatch, Future[None]] | _Task | object] = queue.SimpleQueue()
        self._pending_rows = 0
        self._max_pending_rows = max_pending_rows
        self._disk_checked_at = -DISK_CHECK_SECONDS  # monotonic time of the last look at free space
        self._rows_since_disk_check = 0
        self._disk_low = False
        self._lock = threading.Lock()
        self._closed = False
        self._maintenance_queued = False  # a maintenance task asked for by a refused write is waiting
        self._maintenance_asked_at = -1.0
        self.commits = 0
        self.last_commit_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="mixhouse-writer", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def free_disk_bytes(self) -> int | None:
        if self._disk_path is None:
            return None
        return shutil.disk_usage(self._disk_path).free

    def required_free_bytes(self) -> int:
        """The operator's reserve plus what the engine's next checkpoint may need."""
        extra = self._checkpoint_reserve() if self._checkpoint_reserve is not None else 0
        return self.disk_reserve_bytes + extra

    def low_on_disk(self) -> bool:
        free = self.free_disk_bytes()
        return free is not None and free < self.required_free_bytes()

    def _low_on_disk_for(self, rows: int) -> bool:
        """low_on_disk(), looked up again only every DISK_CHECK_SECONDS or DISK_CHECK_ROWS admitted rows while
        there is room; while writes are refused, at every write, so that they resume as soon as space is freed."""
        self._rows_since_disk_check += rows
        now = time.monotonic()
        if (
            self._disk_low
            or now - self._disk_checked_at >= DISK_CHECK_SECONDS
            or self._rows_since_disk_check >= DISK_CHECK_ROWS
        ):
            self._disk_low = self.low_on_disk()
            self._disk_checked_at = now
            self._rows_since_disk_check = 0
        return self._disk_low

    def health(self) -> list[str]:
        """What stops this writer from taking writes now (empty when it is ready)."""
        problems = []
        if self._closed or not self._thread.is_alive():
            problems.append("the writer is stopped")
        if self._pending_rows >= self._max_pending_rows:
            problems.append("the write queue is full")
        free = self.free_disk_bytes()
        required = self.required_free_bytes()
        if free is not None and free < required:
            problems.append(
                f"free disk space {free} bytes is under the reserve of {required} bytes"
                f" ({self.disk_reserve_bytes} set, {required - self.disk_reserve_bytes} for the next checkpoint)"
            )
        return problems

    def submit(self, batch: WriteBatch) -> Future[None]:
        future: Future[None] = Future()
        rows = len(batch)
        if self._low_on_disk_for(rows):
            self._maintain_now()
            raise Unavailable("the server is low on disk space; retry with backoff")
        with self._lock:
            if self._closed:
                raise Unavailable("the server is shutting down")
            if self._pending_rows + rows > self._max_pending_rows and self._pending_rows > 0:
                raise Unavailable("the write queue is full; retry with backoff")
            self._pending_rows += rows
        self._queue.put((batch, future))
        return future

    def _maintain_now(self) -> None:
        """A write was refused for disk space: run the idle maintenance (the engine's checkpoint, which folds
        the WAL in and so gives back the room kept for it) now, rather than after `idle_seconds` without
        writes. At most one is queued, and at most one a second."""
        if self._on_idle is None:
            return
        now = time.monotonic()
        with self._lock:
            if self._closed or self._maintenance_queued or now - self._maintenance_asked_at < 1.0:
                return
            self._maintenance_queued = True
            self._maintenance_asked_at = now
        on_idle = self._on_idle

        def maintain() -> None:
            try:
                on_idle()
            except Exception as exc:
                log.warning("maintenance after a write refused for disk space failed: %s", exc)
            finally:
                with self._lock:
                    self._maintenance_queued = False

        self._queue.put(_Task(maintain, Future()))

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the writer thread between two group commits, never beside a write."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise Unavailable("the server is shutting down")
        self._queue.put(_Task(fn, future))
        return future

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        dirty = False  # committed since the last idle callback
        while True:
            try:
                first = self._queue.get(timeout=self._idle_seconds if dirty and self._on_idle else None)
            except queue.Empty:
                dirty = False
                try:
                    self._on_idle()  # type: ignore[misc]
                except Exception as exc:
                    log.warning("idle maintenance failed, will retry after the next write: %s", exc)
                continue
            if first is _STOP:
                return
            dirty = True
            if isinstance(first, _Task):
                self._run_task(first)
                continue
            group = [first]
            stop = False
            task: _Task | None = None
            while True:  # take all that is already waiting, up to a task
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                if isinstance(item, _Task):
                    task = item
                    break
                group.append(item)
            self._commit(group)  # type: ignore[arg-type]
            if task is not None:
                self._run_task(task)
            if stop:
                return

    @staticmethod
    def _run_task(task: _Task) -> None:
        try:
            result = task.fn()
        except BaseException as exc:
            _settle(task.future, None, exc)
        else:
            _settle(task.future, result, None)

    def _commit(self, group: list[tuple[WriteBatch, Future[None]]]) -> None:
        started = time.perf_counter()
        try:
            self._write_group([batch for batch, _ in group])
            results: list[BaseException | None] = [None] * len(group)
        except Exception:
            log.exception("group commit of %d batches failed; retrying each alone", len(group))
            results = []
            for batch, _ in group:
                try:
                    self._write_group([batch])
                    results.append(None)
                except self.RETRYABLE as exc:  # a full or failing disk: nothing was written, the client may retry
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    results.append(Unavailable(f"the write failed and was not stored; retry with backoff ({reason})"))
                except Exception as exc:
                    results.append(exc)
        self.last_commit_seconds = time.perf_counter() - started
        self.commits += 1
        with self._lock:
            self._pending_rows -= sum(len(batch) for batch, _ in group)
        written = [batch for (batch, _), error in zip(group, results, strict=True) if error is None]
        commit = Commit(
            events=sum(b.event_count for b in written),
            profile_updates=sum(len(b.profile_updates) + len(b.group_updates) for b in written),
            seconds=self.last_commit_seconds,
        )
        for observe in self._observers:
            try:
                observe(commit)
            except Exception:
                log.exception("commit observer failed")
        for (_, future), error in zip(group, results, strict=True):
            _settle(future, None, error)
