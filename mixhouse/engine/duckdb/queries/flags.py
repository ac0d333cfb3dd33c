"""Feature flags on DuckDB: the members of a cohort (cohort-targeted rollouts) and the experiment readout
(exposed and converted users per variant)."""

from __future__ import annotations

import duckdb

from mixhouse.engine.duckdb.queries.engage import members_relation
from mixhouse.engine.duckdb.relations import scoped_events
from mixhouse.flags.cohorts import CohortMembersSpec
from mixhouse.flags.readout import EXPOSURE_EVENT, ReadoutRow, ReadoutSpec


def cohort_members(conn: duckdb.DuckDBPyConnection, spec: CohortMembersSpec) -> list[str]:
    members = members_relation(conn, spec.project_id, spec.rule, "c")
    params = {**members.params, "cm_project": spec.project_id}
    sql = f"""
        WITH m AS (SELECT DISTINCT distinct_id FROM ({members.sql}) x)
        SELECT distinct_id FROM m
        UNION
        SELECT i.distinct_id FROM identity_map i JOIN m ON i.canonical_id = m.distinct_id
        WHERE i.project_id = $cm_project
    """
    return [str(r[0]) for r in conn.execute(sql, params).fetchall()]


def readout_rows(conn: duckdb.DuckDBPyConnection, spec: ReadoutSpec) -> list[ReadoutRow]:
    """Per variant: users whose first exposure to the flag (in the range) was to that variant, and how many
    of them did the conversion event at or after that first exposure, within the range."""
    ev = scoped_events(spec.project_id, spec.start_ms, spec.end_ms, events=[EXPOSURE_EVENT, spec.conversion_event])
    params = {**ev.params, "ro_flag": spec.flag_key, "ro_conv": spec.conversion_event, "ro_expo": EXPOSURE_EVENT}
    sql = f"""
        WITH ev AS ({ev.sql}),
        firsts AS (
            SELECT distinct_id, time_ms,
                   json_extract_string(properties, '$."Variant name"') AS variant,
                   row_number() OVER (PARTITION BY distinct_id ORDER BY time_ms, seq) AS n
            FROM ev
            WHERE event = $ro_expo AND json_extract_string(properties, '$."Experiment name"') = $ro_flag
        ),
        exposed AS (SELECT distinct_id, time_ms AS first_ms, variant FROM firsts WHERE n = 1),
        converted AS (
            SELECT DISTINCT e.distinct_id FROM ev e JOIN exposed x ON e.distinct_id = x.distinct_id
            WHERE e.event = $ro_conv AND e.time_ms >= x.first_ms
        )
        SELECT coalesce(x.variant, ''), count(*), count(c.distinct_id)
        FROM exposed x LEFT JOIN converted c ON c.distinct_id = x.distinct_id
        GROUP BY 1 ORDER BY 1
    """
    return [ReadoutRow(str(v), int(n), int(k)) for v, n, k in conn.execute(sql, params).fetchall()]
