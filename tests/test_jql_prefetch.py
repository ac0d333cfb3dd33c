"""The read-ahead between the engine's scan and V8 (mixhouse/jql/runner.py::prefetched): items in order,
errors on either side stop both, the producer's generator is always closed, and a slow producer cannot
keep the consumer past its deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from mixhouse.jql.runner import prefetched


def _nothing() -> None:
    return None


def test_items_in_order_and_the_producer_closed() -> None:
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    assert list(prefetched(produce, 2, _nothing)) == list(range(1000))
    assert closed.is_set()


def test_a_producer_error_reaches_the_consumer() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise RuntimeError("the store failed")

    got = []
    with pytest.raises(RuntimeError, match="the store failed"):
        for item in prefetched(produce, 2, _nothing):
            got.append(item)
    assert got == [1]


def test_a_consumer_that_stops_stops_the_producer() -> None:
    closed = threading.Event()
    made = []

    def produce() -> Iterator[int]:
        try:
            for i in range(10**9):
                made.append(i)
                yield i
        finally:
            closed.set()

    for item in prefetched(produce, 2, _nothing):
        if item == 5:
            break
    assert closed.wait(5)
    assert len(made) <= 5 + 2 + 2  # at most `depth` ahead (plus the one in hand)


def test_waiting_for_a_slow_producer_checks_the_deadline() -> None:
    def produce() -> Iterator[int]:
        time.sleep(3)
        yield 1

    deadline = time.monotonic() + 0.3

    def check() -> None:
        if time.monotonic() > deadline:
            raise TimeoutError("past the deadline")

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(prefetched(produce, 2, check))
    assert time.monotonic() - started < 10  # it gave up (closing waits for the batch in hand)
