"""The per-user questions at the port: funnels, retention, profile queries, cohorts and export, each asked
with plans (expression trees, bucket anchors chosen by the domain), never with SQL. An engine answers in
the domain's terms: bucket and cohort starts counted from the anchor it is given, identities resolved, a
`where` it cannot run refused with a caret into the user's own text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from mixhouse.domain.calendar import Buckets, Unit
from mixhouse.domain.export import ExportQuery
from mixhouse.domain.project import Project
from mixhouse.domain.query.engage import (
    BehaviorCount,
    CohortCountSpec,
    EngageSpec,
    EventSelector,
    MembershipRule,
    profile_filter,
)
from mixhouse.domain.query.funnels import OVERALL, FunnelSpec, FunnelStepSpec
from mixhouse.domain.query.retention import RetentionSpec
from mixhouse.engine.base import Engine
from mixhouse.errors import NotSupportedByEngine
from mixhouse.expr import EventExpr, ExpressionScopeError
from mixhouse.flags.cohorts import CohortMembersSpec
from tests.server import PROJECT_ID, SECRET, TOKEN, ServerProcess, seed_catalog

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
D = int(datetime(2024, 1, 3, 12, tzinfo=UTC).timestamp() * 1000)  # a Wednesday, noon UTC
START = int(datetime(2024, 1, 3, tzinfo=UTC).timestamp() * 1000)
END = START + 14 * DAY_MS


def _event(name: str, at_ms: int, distinct_id: str, insert_id: str, **props: object) -> dict[str, object]:
    return {
        "event": name,
        "properties": {"time": at_ms // 1000, "distinct_id": distinct_id, "$insert_id": insert_id, **props},
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Path:
    """alice signs up twice a week apart and buys after each; bob signs up and never buys; a device signs
    up and then buys as carol (the device is merged into carol). alice and bob have profiles."""
    data_dir = tmp_path_factory.mktemp("per_user") / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env=engine_env).start()
    try:
        events = [
            _event("signup", D, "alice", "a1", plan="pro"),
            _event("buy", D + HOUR_MS, "alice", "a2", plan="pro"),
            _event("signup", D + 8 * DAY_MS, "alice", "a3", plan="pro"),
            _event("buy", D + 8 * DAY_MS + HOUR_MS, "alice", "a4", plan="pro"),
            _event("signup", D + DAY_MS, "bob", "b1", plan="free"),
            _event("view", D + 2 * DAY_MS, "bob", "b2"),
            _event("signup", D + 2 * DAY_MS, "$device:d1", "c1", plan="free", **{"$device_id": "d1"}),
            _event(
                "buy", D + 2 * DAY_MS + HOUR_MS, "carol", "c2", plan="pro", **{"$device_id": "d1", "$user_id": "carol"}
            ),
        ]
        r = httpx.post(f"{server.url}/import", params={"strict": "1"}, json=events, auth=(SECRET, ""), timeout=30)
        assert r.status_code == 200, r.text
        updates = [
            {"$token": TOKEN, "$distinct_id": "alice", "$set": {"tier": "gold"}},
            {"$token": TOKEN, "$distinct_id": "bob", "$set": {"tier": "silver"}},
        ]
        r = httpx.post(f"{server.url}/engage", data={"data": orjson.dumps(updates).decode()}, timeout=30)
        assert r.status_code == 200 and r.text == "1", r.text
    finally:
        server.stop()
    return data_dir


SIGNUP_THEN_BUY = (FunnelStepSpec("signup", None), FunnelStepSpec("buy", None))


def _funnel(
    buckets: Buckets,
    *,
    steps: tuple[FunnelStepSpec, ...] = SIGNUP_THEN_BUY,
    where: EventExpr | None = None,
    segment: EventExpr | None = None,
) -> FunnelSpec:
    return FunnelSpec(PROJECT_ID, START, END, DAY_MS, steps, False, buckets, where=where, segment=segment)


def test_funnel_weeks_count_from_the_anchor_the_domain_gives(
    store: Path, open_engine: Callable[[Path], Engine]
) -> None:
    engine = open_engine(store)
    monday = engine.query(_funnel(Buckets.every(START, END, "UTC", 7, date(2024, 1, 1))))
    # The device's signup and carol's buy are one user: 3 entries, 2 conversions in the first week.
    assert {(f.bucket, f.counts) for f in monday} == {(date(2024, 1, 1), (3, 2)), (date(2024, 1, 8), (1, 1))}
    wednesday = engine.query(_funnel(Buckets.every(START, END, "UTC", 7, date(2024, 1, 3))))
    assert {(f.bucket, f.counts) for f in wednesday} == {(date(2024, 1, 3), (3, 2)), (date(2024, 1, 10), (1, 1))}
    months = engine.query(_funnel(Buckets.of(START, END, "UTC", Unit.MONTH)))
    # Unique users: alice's two attempts in January count once.
    assert [(f.bucket, f.counts) for f in months] == [(date(2024, 1, 1), (3, 2))]


def test_funnel_plans_filter_and_segment_by_the_resolved_id(store: Path, open_engine: Callable[[Path], Engine]) -> None:
    engine = open_engine(store)
    weeks = Buckets.of(START, END, "UTC", Unit.MONTH)
    on_id = engine.query(_funnel(weeks, segment=EventExpr.parse('properties["$distinct_id"]')))
    by_segment = {f.segment: f.counts for f in on_id}
    assert by_segment == {OVERALL: (3, 2), "alice": (1, 1), "bob": (1, 0), "carol": (1, 1)}
    free = engine.query(
        _funnel(
            weeks,
            steps=(
                FunnelStepSpec("signup", EventExpr.parse('properties["plan"] == "free"')),
                FunnelStepSpec("buy", None),
            ),
        )
    )
    assert [f.counts for f in free] == [(2, 1)]
    text = 'properties["plan"] == "pro" and user["tier"] == "gold"'
    with pytest.raises(ExpressionScopeError) as refused:
        engine.query(_funnel(weeks, where=EventExpr.parse(text)))
    assert refused.value.expression == text and refused.value.column - 1 == text.index("user")


def test_retention_cohorts_start_where_the_domain_says(
    store: Path, open_engine: Callable[[Path], Engine], answers: Callable[[str], bool]
) -> None:
    engine = open_engine(store)

    def cohorts(first_period: date) -> list[tuple[date, int, tuple[int, ...]]]:
        spec = RetentionSpec(
            PROJECT_ID, START, START + 7 * DAY_MS, "UTC", False, "signup", None, "buy", None, "week", first_period, 1, 2
        )
        return sorted((r.cohort, r.first, r.returned) for r in engine.query(spec))

    if not answers("RetentionSpec"):
        with pytest.raises(NotSupportedByEngine):
            cohorts(date(2024, 1, 1))
        return
    # Births: alice (Jan 3), bob (Jan 4), carol's device (Jan 5); buys after birth: alice in weeks 0 and 1, carol in 0.
    assert cohorts(date(2024, 1, 1)) == [(date(2024, 1, 1), 3, (2, 1, 0))]
    assert cohorts(date(2024, 1, 3)) == [(date(2024, 1, 3), 3, (2, 1, 0))]


def test_profile_queries_read_behaviours_by_name(
    store: Path, open_engine: Callable[[Path], Engine], answers: Callable[[str], bool]
) -> None:
    engine = open_engine(store)
    if not answers("EngageSpec"):
        with pytest.raises(NotSupportedByEngine):
            engine.query(EngageSpec(PROJECT_ID))
        return
    buys = BehaviorCount("buys", (EventSelector("buy", EventExpr.parse('properties["plan"] == "pro"')),), START, END)

    def ids(where: str) -> list[str]:
        spec = EngageSpec(PROJECT_ID, where=profile_filter(where, behaviors=True), behaviors=(buys,))
        return [d for d, _ in engine.query(spec).rows]

    assert ids('behaviors["buys"] == 2 and user["tier"] == "gold"') == ["alice"]
    assert ids('behaviors["buys"] == 0') == ["bob"]
    assert ids('not defined(behaviors["other"])') == ["alice", "bob"]
    page = engine.query(EngageSpec(PROJECT_ID, where=profile_filter('properties["tier"] == "silver"')))
    assert page.total == 1 and [(d, orjson.loads(p)["tier"]) for d, p in page.rows] == [("bob", "silver")]


def test_cohort_rules_and_members(store: Path, open_engine: Callable[[Path], Engine]) -> None:
    engine = open_engine(store)
    silver = MembershipRule(profile_filter('user["tier"] == "silver"'))
    bought = MembershipRule(None, "buy", 1, START, END)
    twice = MembershipRule(profile_filter('properties["tier"] == "gold"'), "buy", 2, START, END)
    assert engine.query(CohortCountSpec(PROJECT_ID, (silver, bought, twice))) == [1, 2, 1]
    # Members are canonical ids and every id merged into them.
    assert set(engine.query(CohortMembersSpec(PROJECT_ID, bought))) == {"alice", "carol", "$device:d1"}


def test_export_compiles_its_where_in_the_engine(store: Path, open_engine: Callable[[Path], Engine]) -> None:
    engine = open_engine(store)
    project = Project(PROJECT_ID, "p", TOKEN, SECRET, "key")

    def export(where: str) -> list[tuple[str, str]]:
        query = ExportQuery(project, START, END, None, EventExpr.parse(where), None, False)
        lines = b"".join(engine.export_lines(query)).splitlines()
        return [(e["event"], e["properties"]["distinct_id"]) for e in map(orjson.loads, lines)]

    assert export('properties["plan"] == "free"') == [("signup", "bob"), ("signup", "carol")]
    assert export('properties["$distinct_id"] == "carol"') == [("signup", "carol"), ("buy", "carol")]
    text = 'user["tier"] == "gold"'
    with pytest.raises(ExpressionScopeError) as refused:
        engine.export_lines(ExportQuery(project, START, END, None, EventExpr.parse(text), None, False))
    assert refused.value.column == 1 and refused.value.expression == text
