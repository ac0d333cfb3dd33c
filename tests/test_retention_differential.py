"""Random event streams: the engine's retention must equal the brute-force reference."""

from __future__ import annotations

import itertools
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import analytics_reference as ref
from tests.funnel_helpers import load, query
from tests.server import ServerProcess

BASE_MS = 1_711_929_600_000  # 2024-04-01 00:00 UTC
HOUR_MS = 3_600_000
_examples = itertools.count(1)

event_st = st.tuples(
    st.sampled_from(["S", "R"]),
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.integers(0, 5 * 24).map(lambda h: h * HOUR_MS),  # hourly over 5 days: births, returns, boundaries
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.lists(event_st, min_size=1, max_size=30),
    compounded=st.booleans(),
    unbounded=st.booleans(),
    interval_count=st.integers(0, 4),
)
def test_engine_matches_brute_force(
    server: ServerProcess,
    raw: list[tuple[str, str, int]],
    compounded: bool,
    unbounded: bool,
    interval_count: int,
) -> None:
    n = next(_examples)
    names = {"S": f"S-ret{n}", "R": f"R-ret{n}"}
    events = [ref.Ev(names[e], f"{u}-r{n}", BASE_MS + t, i, f"r{n}-{i}") for i, (e, u, t) in enumerate(raw)]
    load(
        server.url,
        [{"event": e.event, "distinct_id": e.distinct_id, "time": e.time_ms, "insert_id": e.insert_id} for e in events],
    )
    got = query(
        server.url,
        "retention",
        from_date="2024-04-01",
        to_date="2024-04-03",
        born_event=names["S"],
        event=names["R"],
        retention_type="compounded" if compounded else "birth",
        unbounded_retention=str(unbounded).lower(),
        interval_count=interval_count,
    )
    want = ref.retention(
        events,
        names["S"],
        names["R"],
        date(2024, 4, 1),
        date(2024, 4, 3),
        interval_count,
        compounded=compounded,
        unbounded=unbounded,
    )
    assert got == want
