"""Cohort membership for cohort-targeted rollouts (`cohort_hash` = the id of a saved cohort).

A cohort's members are computed by the engine (the same membership rule `/cohorts/list` counts) and kept
for the flags_cohort_ttl_s setting (MIXHOUSE_FLAGS_COHORT_TTL_S, default 60 s), the way Mixpanel syncs cohorts to its flag service periodically rather than on every
request. The set holds canonical ids and every id merged into them, so a device id or an alias of a
member is a member too. An unknown cohort has no members."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from mixhouse.catalog import Catalog
from mixhouse.domain.query.engage import MembershipRule, membership_rule
from mixhouse.domain.saved.cohorts import CohortStore
from mixhouse.domain.spec import Spec
from mixhouse.engine.base import Engine

DEFAULT_COHORT_TTL_S = 60.0


@dataclass(frozen=True)
class CohortMembersSpec(Spec[list[str]]):
    """Every distinct id (canonical ids and the ids merged into them) of the users matching `rule`."""

    project_id: int
    rule: MembershipRule


class CohortMembers:
    def __init__(self, ttl_s: float = DEFAULT_COHORT_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._items: dict[tuple[int, str], tuple[float, frozenset[str]]] = {}

    def members(self, catalog: Catalog, engine: Engine, project_id: int, cohort: str) -> frozenset[str]:
        key = (project_id, cohort)
        now = time.monotonic()
        item = self._items.get(key)
        if item is not None and item[0] > now:
            return item[1]
        found: frozenset[str] = frozenset()
        if cohort.isascii() and cohort.isdigit():
            saved = CohortStore(catalog).get(project_id, int(cohort))
            if saved is not None:
                rule = membership_rule(saved, int(time.time() * 1000))
                found = frozenset(engine.query(CohortMembersSpec(project_id, rule)))
        with self._lock:
            self._items[key] = (now + self._ttl_s, found)
        return found

    def forget(self, project_id: int) -> None:
        """Drop the project's cached memberships (after users were deleted): computed again when asked."""
        with self._lock:
            for key in [k for k in self._items if k[0] == project_id]:
                del self._items[key]

    def fresh(self, project_id: int, cohorts: frozenset[str]) -> bool:
        """Whether every one of these cohorts is cached: evaluation then needs no engine query."""
        now = time.monotonic()
        for cohort in cohorts:
            item = self._items.get((project_id, cohort))
            if item is None or item[0] <= now:
                return False
        return True

    def is_member(self, catalog: Catalog, engine: Engine, project_id: int, cohort: str, distinct_id: str) -> bool:
        return distinct_id in self.members(catalog, engine, project_id, cohort)
