"""Feature flags on ClickHouse: the members of a cohort (cohort-targeted rollouts). The experiment readout
is not written for ClickHouse yet (docs/scale-out.md)."""

from __future__ import annotations

from mixhouse.engine.clickhouse.queries.engage import members_relation
from mixhouse.engine.clickhouse.relations import identity_map_sql
from mixhouse.engine.clickhouse.store import Store
from mixhouse.flags.cohorts import CohortMembersSpec


def cohort_members(store: Store, spec: CohortMembersSpec) -> list[str]:
    """Members are canonical ids and every id merged into them."""
    members = members_relation(store, spec.project_id, spec.rule, "c")
    params = {**members.params, "cm_project": spec.project_id}
    sql = f"""
        SELECT DISTINCT distinct_id FROM (
            SELECT distinct_id FROM ({members.sql})
            UNION ALL
            SELECT i.distinct_id AS distinct_id FROM {identity_map_sql(store.db, "cm_project")} AS i
            WHERE i.canonical_id IN (SELECT distinct_id FROM ({members.sql}))
        )
    """
    return [str(r["distinct_id"]) for r in store.rows(sql, params)]
