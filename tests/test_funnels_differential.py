"""Random event streams: the engine's funnel must equal the brute-force reference, response for response."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mixhouse.domain.query.funnels import StepFigures, analysis, steps_payload
from mixhouse.domain.saved.funnels import Counting, FunnelStep, LengthUnit, SavedFunnel
from tests import analytics_reference as ref
from tests.funnel_helpers import load, query, save_funnel
from tests.server import ServerProcess

BASE_MS = 1_709_251_200_000  # 2024-03-01 00:00 UTC
DAY_MS = 86_400_000
_examples = itertools.count(1)

event_st = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    st.sampled_from(["u1", "u2", "u3"]),
    st.integers(0, 2),  # day
    st.integers(0, 8).map(lambda x: x * 500),  # ms within the day: dense, so ties and the grace period matter
    st.booleans(),  # sent twice with the same $insert_id
)


def expected(
    events: list[ref.Ev], steps: list[str], window_ms: int, totals: bool, funnel: SavedFunnel
) -> dict[str, Any]:
    figures = ref.funnel(events, steps, window_ms, BASE_MS, BASE_MS + 2 * DAY_MS, totals=totals)
    data = {}
    for i in range(2):
        day = date(2024, 3, 1) + timedelta(days=i)
        fig = None
        if day in figures:
            counts, avg, avg_start = figures[day]
            fig = StepFigures(day, "$overall", tuple(counts), tuple(avg), tuple(avg_start))
        counts_t = fig.counts if fig else (0,) * len(steps)
        data[day.isoformat()] = {"steps": steps_payload(funnel, fig), "analysis": analysis(counts_t)}
    return {"meta": {"dates": ["2024-03-01", "2024-03-02"]}, "data": data}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.lists(event_st, min_size=1, max_size=25),
    steps=st.lists(st.sampled_from(["A", "B", "C"]), min_size=2, max_size=4),
    window_s=st.sampled_from([1, 3, 10, 86_400]),
    totals=st.booleans(),
)
@example(raw=[("B", "u1", 0, 0, False), ("A", "u1", 0, 1000, False)], steps=["A", "B"], window_s=10, totals=False)
@example(raw=[("A", "u1", 0, 0, True), ("A", "u1", 0, 0, False)], steps=["A", "A"], window_s=1, totals=True)
def test_engine_matches_brute_force(
    server: ServerProcess, raw: list[tuple[str, str, int, int, bool]], steps: list[str], window_s: int, totals: bool
) -> None:
    n = next(_examples)
    # Names of their own per example, so that examples never see each other's events.
    name = {e: f"{e}-diff{n}" for e in "ABC"}
    events: list[ref.Ev] = []
    sent: list[dict[str, Any]] = []
    for i, (event, user, day, ms, dup) in enumerate(raw):
        t = BASE_MS + day * DAY_MS + ms
        iid = f"d{n}-{i}"
        for _ in range(2 if dup else 1):
            events.append(ref.Ev(name[event], f"{user}-{n}", t, len(events), iid))
            sent.append({"event": name[event], "distinct_id": f"{user}-{n}", "time": t, "insert_id": iid})
    load(server.url, sent)
    step_names = [name[s] for s in steps]
    definition = {
        "name": f"diff {n}",
        "steps": [{"event": s} for s in step_names],
        "length": window_s,
        "length_unit": "second",
        "counting": "totals" if totals else "uniques",
    }
    fid = save_funnel(server.url, definition)
    got = query(server.url, "funnels", funnel_id=fid, from_date="2024-03-01", to_date="2024-03-02")
    funnel = SavedFunnel(
        fid,
        0,
        f"diff {n}",
        tuple(FunnelStep(s) for s in step_names),
        window_s,
        LengthUnit.SECOND,
        Counting.TOTALS if totals else Counting.UNIQUES,
        0.0,
    )
    assert got == expected(events, step_names, window_s * 1000, totals, funnel)
