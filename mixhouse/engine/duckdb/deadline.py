"""Query deadlines on DuckDB: a timer interrupts the connection when the request's deadline passes,
so a runaway analysis stops using CPU and gives its worker thread back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from mixhouse.domain.limits import remaining_seconds, timed_out

_REPEAT_SECONDS = 0.05  # a handler may run several statements; keep interrupting until it gives up


@contextmanager
def interrupt_at_deadline(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block under the current request's deadline (`mixhouse.domain.limits.query_deadline`);
    past it, DuckDB's InterruptException becomes QueryTimedOut."""
    remaining = remaining_seconds()
    if remaining is None:
        yield
        return
    if remaining <= 0:
        raise timed_out()
    lock = threading.Lock()
    done = threading.Event()
    fired = threading.Event()

    def interrupt() -> None:
        while not done.is_set():
            with lock:  # never interrupt the connection after the block has left it
                if done.is_set():
                    return
                fired.set()
                conn.interrupt()
            done.wait(_REPEAT_SECONDS)

    timer = threading.Timer(remaining, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException as exc:
        raise timed_out() from exc
    except duckdb.Error as exc:
        if fired.is_set():  # an interrupt can surface as another error class mid-statement
            raise timed_out() from exc
        raise
    finally:
        with lock:
            done.set()
        timer.cancel()
    if fired.is_set():
        # The block finished, but only because it swallowed the interrupt: its answer may be partial.
        raise timed_out()
