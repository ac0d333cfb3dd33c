"""The served heap (mixhouse/heap.py): frozen after start-up, the youngest generation collected less often,
and cycles made afterwards still collected without anyone calling gc.collect()."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, weakref
from mixhouse import heap
heap.freeze_after(lambda: None).join()
print(gc.get_threshold()[0], gc.get_freeze_count() > 0)

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

probe = cycle()  # garbage at once, kept alive only by its cycle
print(probe() is not None)
keep = [[] for _ in range(heap.YOUNG_COLLECTION_ALLOCATIONS * 3)]  # allocations that trigger collections
print(probe() is None)
"""


def test_frozen_heap_collects_the_young_generation_less_often_and_still_frees_cycles() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["50000", "True", "True", "True"]
