"""Waiting for the writer's acknowledgements (mixhouse/http/acks.py): every request's future ends as the
writer's did (its result or its exception), a whole group commit wakes the event loop once, a request
cancelled meanwhile neither cancels the writer's future nor keeps the others waiting."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from mixhouse.errors import Unavailable
from mixhouse.http.acks import Acknowledgements, acknowledged


def test_a_group_resolved_on_another_thread_wakes_the_loop_once() -> None:
    async def run() -> tuple[list[object], int]:
        loop = asyncio.get_running_loop()
        acks = Acknowledgements(loop)
        wakes = 0
        threadsafe = loop.call_soon_threadsafe

        def counting(callback: object, *args: object) -> asyncio.Handle:
            nonlocal wakes
            wakes += 1
            return threadsafe(callback, *args)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        futures: list[Future[None]] = [Future() for _ in range(30)]
        waiters = [acks.wait(f) for f in futures]
        cancelled = waiters[5]
        cancelled.cancel()

        def writer() -> None:  # as GroupCommitWriter._commit resolves a group, one future after another
            for i, future in enumerate(futures):
                if i == 7:
                    future.set_exception(Unavailable("the write failed and was not stored; retry with backoff"))
                else:
                    future.set_result(None)

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join()
        outcomes = await asyncio.gather(*(w for w in waiters if w is not cancelled), return_exceptions=True)
        assert not any(f.cancelled() for f in futures)
        return outcomes, wakes

    outcomes, wakes = asyncio.run(run())
    assert wakes == 1
    assert [type(o).__name__ for o in outcomes].count("Unavailable") == 1
    assert outcomes.count(None) == 28


def test_a_future_already_done_and_the_running_loops_own_queue() -> None:
    async def run() -> None:
        done: Future[None] = Future()
        done.set_result(None)
        assert await acknowledged(done) is None
        failed: Future[None] = Future()
        failed.set_exception(Unavailable("the server is shutting down"))
        with pytest.raises(Unavailable):
            await acknowledged(failed)

    asyncio.run(run())
    asyncio.run(run())  # another loop gets its own queue


def test_a_future_cancelled_while_its_group_commits_leaves_the_writer_running() -> None:
    """The writer resolves each caller's future after the commit; one the caller cancelled meanwhile is
    skipped (its write stands), and the writer thread keeps serving the next writes and tasks."""
    from mixhouse.domain.writes import WriteBatch
    from mixhouse.engine.common.writer import GroupCommitWriter

    entered, release = threading.Event(), threading.Event()
    groups: list[int] = []

    def write_group(batches: list[WriteBatch]) -> None:
        groups.append(len(batches))
        entered.set()
        release.wait(10)

    writer = GroupCommitWriter(write_group)
    try:
        first = writer.submit(WriteBatch())
        assert entered.wait(10)
        second = writer.submit(WriteBatch())  # queued behind the commit in progress
        assert second.cancel()
        task = writer.call(lambda: "between commits")
        assert task.cancel()
        release.set()
        assert first.result(10) is None
        third = writer.submit(WriteBatch())
        assert third.result(10) is None
        assert writer.call(lambda: "still running").result(10) == "still running"
        assert writer.health() == []
    finally:
        release.set()
        writer.close()


def test_a_write_refused_for_disk_space_has_the_checkpoint_run_at_once(tmp_path: Path) -> None:
    """Writes keep room for the next checkpoint (twice the WAL); when that room is what refuses a write,
    the writer runs its maintenance (the checkpoint, which folds the WAL in) at once instead of after
    `idle_seconds` without writes, and the retried write is taken."""
    from mixhouse.domain.writes import WriteBatch
    from mixhouse.engine.common.writer import GroupCommitWriter

    wal = {"room": 10**18}  # more than any disk has
    checkpoints = threading.Event()

    def checkpoint() -> None:
        wal["room"] = 0
        checkpoints.set()

    writer = GroupCommitWriter(
        lambda batches: None,
        disk_path=tmp_path,
        disk_reserve_bytes=0,
        checkpoint_reserve=lambda: wal["room"],
        on_idle=checkpoint,
        idle_seconds=3600,
    )
    try:
        with pytest.raises(Unavailable, match="low on disk"):
            writer.submit(WriteBatch())
        assert checkpoints.wait(10)
        assert writer.submit(WriteBatch()).result(10) is None
    finally:
        writer.close()


def test_the_running_loop_is_asked_for_once_per_loop_and_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """`asyncio.get_running_loop()` makes a system call (getpid) in CPython 3.11: asked once per loop, each
    thread's loop gets its own queue, and a loop that stopped is not used again."""
    asked: list[asyncio.AbstractEventLoop] = []
    real = asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop:
        asked.append(real())
        return asked[-1]

    monkeypatch.setattr(asyncio, "get_running_loop", counting)

    async def three() -> asyncio.AbstractEventLoop:
        for _ in range(3):
            done: Future[None] = Future()
            threading.Thread(target=done.set_result, args=(None,)).start()
            assert await acknowledged(done) is None
        return real()

    first = asyncio.run(three())
    assert asked == [first]
    second = asyncio.run(three())  # the first loop stopped: this one is asked for once
    assert asked == [first, second]
    elsewhere: list[asyncio.AbstractEventLoop] = []
    thread = threading.Thread(target=lambda: elsewhere.append(asyncio.run(three())))
    thread.start()
    thread.join()
    assert asked == [first, second, elsewhere[0]]


def test_a_forked_child_asks_for_its_own_loop(tmp_path: Path) -> None:
    import os

    async def one() -> None:
        done: Future[None] = Future()
        done.set_result(None)
        assert await acknowledged(done) is None

    async def fork_inside_the_loop() -> int:
        await one()
        pid = os.fork()
        if pid == 0:  # the child's thread-local still holds the parent's loop, which says it runs
            code = 0
            try:
                asyncio.new_event_loop().run_until_complete(one())  # (asyncio.run refuses: a loop "runs")
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        return status

    assert os.waitstatus_to_exitcode(asyncio.run(fork_inside_the_loop())) == 0
