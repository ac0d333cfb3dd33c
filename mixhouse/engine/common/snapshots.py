"""The engage paging cache every engine keeps: recently computed ordered id lists by (project, session
id), so later pages of a query read the same list (least recently used evicted first)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import pyarrow as pa

from mixhouse.domain.query.engage import EngageSpec

SNAPSHOT_TTL_S = 30 * 60
MAX_SNAPSHOTS = 64
MAX_SNAPSHOT_IDS = 5_000_000  # all snapshots together


class IdListCache:
    """Recently computed id lists by (project, session id), least recently used evicted first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[int, str], tuple[EngageSpec, pa.Array, float]] = OrderedDict()
        self._ids = 0

    def get(self, key: tuple[int, str], spec: EngageSpec) -> pa.Array | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != spec or item[2] < time.monotonic() - SNAPSHOT_TTL_S:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple[int, str], spec: EngageSpec, ids: pa.Array) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._ids -= len(old[1])
            self._items[key] = (spec, ids, time.monotonic())
            self._ids += len(ids)
            while self._items and (len(self._items) > MAX_SNAPSHOTS or self._ids > MAX_SNAPSHOT_IDS):
                _, (_, dropped, _) = self._items.popitem(last=False)
                self._ids -= len(dropped)

    def forget(self, project_id: int) -> None:
        """Drop the project's id lists (their users changed: a deletion); later pages recompute them."""
        with self._lock:
            for key in [k for k in self._items if k[0] == project_id]:
                self._ids -= len(self._items.pop(key)[1])
