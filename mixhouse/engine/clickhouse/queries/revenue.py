"""Revenue on ClickHouse: the `$transactions` of every live profile, one row per item, with a day range on
`$time`, under the embedded engine's rules (mixhouse/engine/duckdb/queries/revenue.py): items that are not
objects, or whose `$amount` is not a JSON number, are not transactions. A `$time` that is not a string
reads as '' here (DuckDB gives its JSON text): neither is an ISO datetime, so the domain drops both."""

from __future__ import annotations

from mixhouse.domain.query.revenue import RevenueSpec, Transaction
from mixhouse.engine.clickhouse.relations import profiles_sql
from mixhouse.engine.clickhouse.store import Store


def transactions(store: Store, spec: RevenueSpec) -> list[Transaction]:
    sql = f"""
        SELECT distinct_id, JSONExtractString(t, '$time') AS time, JSONExtractFloat(t, '$amount') AS amount
        FROM {profiles_sql(store.db, "project")} AS p
        ARRAY JOIN JSONExtractArrayRaw(p.properties, '$transactions') AS t
        WHERE JSONType(p.properties, '$transactions') = 'Array'
          AND JSONType(t) = 'Object'
          AND JSONType(t, '$amount') IN ('Int64', 'UInt64', 'Double')
          AND substring(JSONExtractString(t, '$time'), 1, 10) BETWEEN {{first:String}} AND {{last:String}}
    """
    params = {"project": spec.project_id, "first": spec.first_day.isoformat(), "last": spec.last_day.isoformat()}
    return [Transaction(r["distinct_id"], r["time"], float(r["amount"])) for r in store.rows(sql, params)]
