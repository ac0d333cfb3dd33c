"""Feature flags on ClickHouse: the members of a cohort (cohort-targeted rollouts) and the experiment
readout (exposed and converted users per variant), as on the embedded engine
(mixhouse/engine/duckdb/queries/flags.py)."""

from __future__ import annotations

from mixhouse.engine.clickhouse.printer import quote
from mixhouse.engine.clickhouse.queries.engage import members_relation
from mixhouse.engine.clickhouse.relations import identity_map_sql, scoped_events
from mixhouse.engine.clickhouse.store import Store
from mixhouse.flags.cohorts import CohortMembersSpec
from mixhouse.flags.readout import EXPOSURE_EVENT, ReadoutRow, ReadoutSpec


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


def json_text(document: str, key: str) -> str:
    """A top-level value as text, as DuckDB's `json_extract_string`: a string unquoted, any other value its
    JSON text, NULL when absent or null."""
    k = quote(key)
    return (
        f"multiIf(JSONType({document}, {k}) = 'String', toNullable(JSONExtractString({document}, {k})),"
        f" JSONType({document}, {k}) = 'Null', CAST(NULL AS Nullable(String)),"
        f" toNullable(JSONExtractRaw({document}, {k})))"
    )


def readout_rows(store: Store, spec: ReadoutSpec) -> list[ReadoutRow]:
    """Per variant: users whose first exposure to the flag (in the range) was to that variant, and how many
    of them did the conversion event at or after that first exposure, within the range."""
    ev = scoped_events(
        store.db, spec.project_id, spec.start_ms, spec.end_ms, events=[EXPOSURE_EVENT, spec.conversion_event]
    )
    params = {**ev.params, "ro_flag": spec.flag_key, "ro_conv": spec.conversion_event, "ro_expo": EXPOSURE_EVENT}
    sql = f"""
        WITH ev AS ({ev.sql}),
        exposed AS (
            SELECT distinct_id, min(time_ms) AS first_ms,
                   argMin(coalesce({json_text("properties", "Variant name")}, ''), (time_ms, seq)) AS variant
            FROM ev
            WHERE event = {{ro_expo:String}} AND {json_text("properties", "Experiment name")} = {{ro_flag:String}}
            GROUP BY distinct_id
        ),
        converted AS (
            SELECT DISTINCT e.distinct_id AS distinct_id FROM ev AS e INNER JOIN exposed AS x ON e.distinct_id = x.distinct_id
            WHERE e.event = {{ro_conv:String}} AND e.time_ms >= x.first_ms
        )
        SELECT x.variant AS v, count() AS n, countIf(c.distinct_id != '') AS k
        FROM exposed AS x LEFT JOIN converted AS c ON c.distinct_id = x.distinct_id
        GROUP BY v ORDER BY v
    """
    return [ReadoutRow(str(r["v"]), int(r["n"]), int(r["k"])) for r in store.rows(sql, params)]
