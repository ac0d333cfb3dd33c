"""Where a record's parts are in this engine's SQL (the same fields as the embedded engine's Scope)."""

from __future__ import annotations

from dataclasses import dataclass

from mixhouse.expr.plan import EventExpr

PROFILE_ALIAS = "u"  # the user's profile, joined only when an expression reads user["..."]


@dataclass(frozen=True)
class Scope:
    """properties_sql       String of JSON: the record's properties, e.g. "e.properties"
    time_ms_sql          Int64 epoch ms of an event; None for profiles
    distinct_id_sql      String id, e.g. "e.distinct_id" (the resolved one in analyses)
    user_properties_sql  String of JSON of the user's profile for `user["x"]`; None: `user[...]` is refused
    timezone             IANA zone in which a date string without an offset is read and keys are rendered
    behaviors_sql        JSON {name: count} for `behaviors["name"]`; None: refused
    """

    properties_sql: str
    time_ms_sql: str | None
    distinct_id_sql: str
    user_properties_sql: str | None = None
    timezone: str = "UTC"
    behaviors_sql: str | None = None

    @classmethod
    def events(cls, alias: str = "e", *, user_properties_sql: str | None = None, timezone: str = "UTC") -> Scope:
        return cls(f"{alias}.properties", f"{alias}.time_ms", f"{alias}.distinct_id", user_properties_sql, timezone)

    @classmethod
    def profiles(cls, alias: str = "p", *, timezone: str = "UTC") -> Scope:
        props = f"{alias}.properties"
        return cls(props, None, f"{alias}.distinct_id", props, timezone)

    @classmethod
    def events_with_user(cls, expr: EventExpr | None, alias: str = "e", timezone: str = "UTC") -> Scope:
        user = f"{PROFILE_ALIAS}.properties" if expr is not None and expr.reads("user") else None
        return cls.events(alias, user_properties_sql=user, timezone=timezone)
