"""Revenue on DuckDB: the `$transactions` of every profile, unnested, with a day range on `$time`."""

from __future__ import annotations

import duckdb

from mixhouse.domain.query.revenue import RevenueSpec, Transaction


def transactions(conn: duckdb.DuckDBPyConnection, spec: RevenueSpec) -> list[Transaction]:
    # Items that are not objects, or whose $amount is not a number, are not transactions: left out.
    sql = """
        SELECT p.distinct_id, t.value ->> '$."$time"' AS time, TRY_CAST(t.value -> '$."$amount"' AS DOUBLE) AS amount
        FROM profiles p, json_each(p.properties -> '$."$transactions"') t
        WHERE p.project_id = $project
          AND json_type(p.properties -> '$."$transactions"') = 'ARRAY'
          AND json_type(t.value) = 'OBJECT'
          AND json_type(t.value -> '$."$amount"') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
          AND substr(t.value ->> '$."$time"', 1, 10) BETWEEN $first AND $last
    """
    rows = conn.execute(
        sql, {"project": spec.project_id, "first": spec.first_day.isoformat(), "last": spec.last_day.isoformat()}
    ).fetchall()
    return [Transaction(r[0], r[1], float(r[2])) for r in rows]
