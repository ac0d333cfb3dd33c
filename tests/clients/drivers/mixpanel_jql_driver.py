"""Drives the unmodified PyPI `mixpanel-jql` 0.5.1 against MP_BASE (run with its own venv's python).

Redirect: the class attribute `JQL.ENDPOINT` (a `%s` stands for the API version, 2.0). The client's own
validation of selectors uses `collections.Iterable`, which Python 3.10 removed: the alias is put back
before the import (the client's code is not touched). Prints one JSON object: the rows each query streamed."""

from __future__ import annotations

import collections
import collections.abc
import json
import os
import sys
from datetime import datetime
from typing import Any

collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from mixpanel_jql import JQL, Events, People, Reducer, raw  # type: ignore[import-not-found]  # noqa: E402

BASE = os.environ["MP_BASE"].rstrip("/")
JQL.ENDPOINT = f"{BASE}/api/%s/jql"


def main() -> None:
    out: dict[str, Any] = {}
    dates = {"from_date": datetime(2024, 1, 1), "to_date": datetime(2024, 1, 2)}
    # the README's first example: events of one name per day
    per_day = JQL("SECRET123", events=Events({"event_selectors": [{"event": "Signed Up"}], **dates})).group_by(
        keys=["new Date(e.time).toISOString().split('T')[0]"], accumulator=Reducer.count()
    )
    out["signups_per_day"] = list(per_day.send())
    # its second: unique users per day, through group_by_user and a second group_by
    unique = (
        JQL("SECRET123", events=Events(dates))
        .group_by_user(
            keys=["new Date(e.time).toISOString().split('T')[0]"], accumulator=raw("mixpanel.reducer.null()")
        )
        .group_by(keys=["e.key[1]"], accumulator=Reducer.count())
    )
    out["users_per_day"] = list(unique.send())
    # filter, map and sort
    amounts = (
        JQL("SECRET123", events=Events(dates))
        .filter('e.name == "Purchase"')
        .map("{user: e.distinct_id, amount: e.properties.amount}")
        .sort_desc("e.amount")
    )
    out["purchases"] = list(amounts.send())
    # a join with People: each purchase with its buyer's plan
    joined = (
        JQL("SECRET123", events=Events(dates), people=People(), join_params={"type": "inner"})
        .filter('e.event.name == "Purchase"')
        .map("[e.distinct_id, e.user.properties.plan]")
    )
    out["purchases_with_plan"] = list(joined.send())
    out["people_count"] = list(JQL("SECRET123", people=People()).reduce(Reducer.count()).send())
    json.dump(out, sys.stdout, default=float)  # ijson yields non-integral numbers as Decimal
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
