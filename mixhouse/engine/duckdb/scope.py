"""Where a record's parts are in this engine's SQL: the aliases live beside the SQL that defines them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from mixhouse.expr.plan import EventExpr

PROFILE_ALIAS = "u"  # the user's profile, joined only when an expression reads user["..."]


@dataclass(frozen=True)
class Scope:
    """Where the compiled SQL finds a record's parts. All fields are trusted SQL written by this engine.

    properties_sql       JSON of the record's properties, e.g. "e.properties" (a profile's for profiles)
    time_ms_sql          BIGINT epoch ms of an event, e.g. "e.time_ms"; None for profiles
    distinct_id_sql      VARCHAR id, e.g. "e.distinct_id" or the resolved "ids.canonical_id"
    user_properties_sql  JSON of the user's profile for `user["x"]`; None where there is none (then
                         `user[...]` is refused); the same as properties_sql in a profile query
    timezone             IANA zone in which a date string without an offset is read and keys are rendered
    behaviors_sql        JSON {name: count} for `behaviors["name"]` (profile queries with behaviours); None:
                         `behaviors[...]` is refused
    lookups              whether the query adds lookups.lookup_joins after its FROM, so that a bound
                         `properties["p"]["column"]` can be read; otherwise it is refused
    slots                property key -> slot whose columns `<slots_alias>.ps<i>`, `pn<i>`, `po<i>` hold it
                         (property_columns.py); keys absent are read from properties_sql
    """

    properties_sql: str
    time_ms_sql: str | None
    distinct_id_sql: str
    user_properties_sql: str | None = None
    timezone: str = "UTC"
    behaviors_sql: str | None = None
    lookups: bool = False
    slots: Mapping[str, int] | None = None
    slots_alias: str | None = None

    def with_slots(self, slots: Mapping[str, int], alias: str = "e") -> Scope:
        """This scope reading the event properties that have slots from the columns of `alias`."""
        return replace(self, slots=slots, slots_alias=alias) if slots else self

    @classmethod
    def events(
        cls, alias: str = "e", *, user_properties_sql: str | None = None, timezone: str = "UTC", lookups: bool = False
    ) -> Scope:
        return cls(
            f"{alias}.properties",
            f"{alias}.time_ms",
            f"{alias}.distinct_id",
            user_properties_sql,
            timezone,
            None,
            lookups,
        )

    @classmethod
    def profiles(cls, alias: str = "p", *, timezone: str = "UTC") -> Scope:
        props = f"{alias}.properties"
        return cls(props, None, f"{alias}.distinct_id", props, timezone)

    @classmethod
    def events_with_user(cls, expr: EventExpr | None, alias: str = "e", timezone: str = "UTC") -> Scope:
        """The event scope, with the profile (alias `u`) when `expr` reads `user[...]`."""
        user = f"{PROFILE_ALIAS}.properties" if expr is not None and expr.reads("user") else None
        return cls.events(alias, user_properties_sql=user, timezone=timezone)
