"""The HTTP API served on ClickHouse (`--engine chdb`, real server processes) gives the same answers as on
the embedded engine for the same ingested events: segmentation with and without `on`, unique counts, a
filter, event discovery, retention, the activity stream, saved Insights reports, revenue, the flags
experiment readout, and the raw export byte for byte. What ClickHouse does not answer yet is refused with 501
in the Query API's error format."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, import_events, seed_catalog

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
AUTH = (SA_USER, SA_SECRET)


def _events() -> list[dict[str, object]]:
    rng = random.Random(22)
    names = ["view", "signup", "buy", "Événement «x»"]
    out: list[dict[str, object]] = []
    for i in range(600):
        user = f"user-{rng.randrange(40)}"
        props: dict[str, object] = {
            "time": T0 + rng.randrange(10 * 86_400),
            "distinct_id": user,
            "$insert_id": f"i{i % 580}",  # 20 duplicates of earlier insert ids (same key only when all match)
            "plan": rng.choice(["free", "pro", "team", None]),
            "amount": rng.choice([1, 2.5, 10, "7", -3]),
            "tags": rng.sample(["a", "b", "c", 'q"uote', "naïve"], k=rng.randrange(3)),
            "browser": rng.choice(["Chrome", "Firefox", "Safari\\n", "😀"]),
        }
        if i % 50 == 0:  # a device later identified as the user (Simplified ID Merge)
            props["$device_id"] = f"dev-{i}"
            props["distinct_id"] = f"$device:dev-{i}"
        if i % 50 == 1:
            props["$device_id"] = f"dev-{i - 1}"
            props["$user_id"] = user
        out.append({"event": rng.choice(names), "properties": props})
    out += [dict(e) for e in out[:20]]  # exact re-sends: collapsed by $insert_id in reports, all exported
    return out


FEB = 1_706_745_600  # 2024-02-01T00:00:00Z: the experiment's events, outside the other queries' dates


def _experiment_events() -> list[dict[str, object]]:
    """Exposures to flag "beta" (first exposure decides the variant; one without a variant, one numeric, one
    of another flag) and conversions before and after them, for the readout."""
    rng = random.Random(23)
    out: list[dict[str, object]] = []
    for i in range(160):
        user = f"user-{rng.randrange(30)}"
        at = FEB + rng.randrange(5 * 86_400)
        props: dict[str, object] = {"time": at, "distinct_id": user, "$insert_id": f"x{i}"}
        kind = rng.randrange(10)
        if kind < 5:
            variant: object = rng.choice(["control", "treatment", "treatment", None, 2])
            props.update({"Experiment name": rng.choice(["beta", "beta", "beta", "other"])})
            if variant is not None:
                props["Variant name"] = variant
            out.append({"event": "$experiment_started", "properties": props})
        else:
            out.append({"event": "buy", "properties": props})
    return out


RECENT = int(datetime.now(UTC).timestamp()) - 36 * 3600  # once: both servers get the same events


def _recent_events() -> list[dict[str, object]]:
    """The activity stream reads the last 365 days: events 36 hours ago (yesterday or the day before in
    UTC, whatever the hour), for a user, a device merged into a user in January, and another user."""
    at = RECENT
    out: list[dict[str, object]] = []
    for i, user in enumerate(["user-1", "$device:dev-0", "user-2", "user-1", "dev-0-user", "user-1"]):
        props: dict[str, object] = {
            "time": at + i * (1 - 2 * (i % 2)) * 60,
            "distinct_id": user,
            "$insert_id": f"s{i % 5}",
            "path": ["/a/b", "Événement «x»", 'q"uote', "tab\there", "😀", "/a/b"][i],
        }
        out.append({"event": ["view", "buy", "Événement «x»"][i % 3], "properties": props})
    return out


def _serve(tmp_path_factory: pytest.TempPathFactory, engine: str) -> ServerProcess:
    data_dir = tmp_path_factory.mktemp(engine) / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env={"MIXHOUSE_ENGINE": engine}).start()
    try:  # a failed load must not leave the server running (the fixture never gets to stop it)
        events = _events() + _experiment_events() + _recent_events()
        import_events(server.url, events, 200)
        updates = [
            {"$token": TOKEN, "$distinct_id": f"user-{n}", "$set": {"tier": ["gold", "silver"][n % 2]}}
            for n in range(40)
        ]
        # Revenue: `people.track_charge` appends to `$transactions`; some items are not transactions.
        charges: list[object] = [
            {"$time": f"2024-01-{1 + n % 12:02d}T{n % 24:02d}:30:00", "$amount": [9.99, 20, -5, "7", 0.5][n % 5]}
            for n in range(60)
        ]
        charges += ["not an object", {"$time": "2024-01-03T10:00:00"}, {"$time": 20240103, "$amount": 3}]
        updates += [
            {"$token": TOKEN, "$distinct_id": f"user-{n % 40}", "$append": {"$transactions": charge}}
            for n, charge in enumerate(charges)
        ]
        updates.append({"$token": TOKEN, "$distinct_id": "user-39", "$set": {"$transactions": "not a list"}})
        r = httpx.post(f"{server.url}/engage", data={"data": orjson.dumps(updates).decode()}, timeout=60)
        assert r.status_code == 200 and r.text == "1", r.text
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    duck = _serve(tmp_path_factory, "duckdb")
    try:
        chdb = _serve(tmp_path_factory, "chdb")
        try:
            yield duck, chdb
        finally:
            chdb.stop()
    finally:
        duck.stop()


DATES = {"from_date": "2024-01-01", "to_date": "2024-01-12"}
QUERIES = [
    ("segmentation", {"event": "view", **DATES}),
    ("segmentation", {"event": "buy", "type": "unique", "unit": "day", **DATES}),
    ("segmentation", {"event": "view", "on": 'properties["plan"]', **DATES}),
    ("segmentation", {"event": "view", "on": 'properties["tags"]', "type": "unique", **DATES}),
    ("segmentation", {"event": "signup", "on": 'user["tier"]', "where": 'properties["amount"] > 2', **DATES}),
    ("segmentation", {"event": "Événement «x»", "on": 'properties["browser"]', "unit": "hour", **DATES}),
    ("segmentation/sum", {"event": "buy", "on": 'number(properties["amount"])', **DATES}),
    ("segmentation/numeric", {"event": "buy", "on": 'number(properties["amount"])', "buckets": "3", **DATES}),
    ("events", {"event": '["view", "buy"]', "type": "general", "unit": "day", **DATES}),
    ("events/properties", {"event": "view", "name": "plan", "type": "unique", "unit": "week", **DATES}),
    ("retention", {"born_event": "signup", "event": "buy", "unit": "day", **DATES}),
    (
        "retention",
        {"born_event": "view", "event": "buy", "retention_type": "compounded", "on": 'properties["plan"]', **DATES},
    ),
    ("retention/addiction", {"event": "view", "unit": "week", "addiction_unit": "day", **DATES}),
    ("engage/revenue", {"unit": "day", **DATES}),
    ("engage/revenue", {"unit": "week", "from_date": "2023-12-25", "to_date": "2024-01-14"}),
]


@pytest.mark.parametrize(("path", "params"), QUERIES, ids=[f"{p}:{q.get('on', '')}" for p, q in QUERIES])
def test_query_answers_are_the_same(
    servers: tuple[ServerProcess, ServerProcess], path: str, params: dict[str, str]
) -> None:
    answers = []
    for server in servers:
        r = httpx.get(
            f"{server.url}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH, timeout=60
        )
        assert r.status_code == 200, r.text
        body = r.json()
        body.pop("computed_at", None)
        body.pop("session_id", None)
        answers.append(body)
    assert answers[0] == answers[1]
    assert answers[0]  # not trivially equal
    if path == "engage/revenue":
        assert answers[0]["results"]["$overall"]["count"] > 0


REPORTS = [
    {"event": ["view", "buy"], "on": 'properties["plan"]', "where": 'properties["amount"] > 2', "unit": "day"},
    {"event": "view", "on": 'properties["tags"]', "type": "unique", "unit": "week"},
    {"event": ["Événement «x»", "signup"], "type": "average", "unit": "hour"},
    {"event": "buy", "unit": "month", "type": "unique", "on": 'number(properties["amount"])'},
]


@pytest.mark.parametrize("query", REPORTS, ids=range(len(REPORTS)))
def test_saved_insights_reports_are_the_same(
    servers: tuple[ServerProcess, ServerProcess], query: dict[str, object]
) -> None:
    answers = []
    for server in servers:
        app = f"{server.url}/api/app/projects/{PROJECT_ID}/bookmarks"
        r = httpx.post(app, json={"name": "r", "query": {**query, **DATES}}, auth=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        params = {"project_id": PROJECT_ID, "bookmark_id": r.json()["results"]["id"]}
        r = httpx.get(f"{server.url}/api/query/insights", params=params, auth=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        body.pop("computed_at")
        answers.append(body)
    assert answers[0] == answers[1]
    assert answers[0]["series"] and re.search(rb":[1-9]", orjson.dumps(answers[0]["series"]))


def test_the_activity_stream_is_the_same(servers: tuple[ServerProcess, ServerProcess]) -> None:
    today = datetime.now(UTC).date()
    recent = {"from_date": str(today - timedelta(days=3)), "to_date": str(today)}
    for ids, limit in (('["user-1", "$device:dev-0"]', "100"), ('["user-2", "nobody"]', "100"), ('["user-1"]', "2")):
        params = {"project_id": str(PROJECT_ID), "distinct_ids": ids, "limit": limit, **recent}
        bodies = []
        for server in servers:
            r = httpx.get(f"{server.url}/api/2.0/stream/query", params=params, auth=AUTH, timeout=60)
            assert r.status_code == 200, r.text
            bodies.append(re.sub(rb'"\$?mp_(api_timestamp_ms|processing_time_ms)":[0-9]+', b"CLOCK", r.content))
        assert bodies[0] == bodies[1]
        assert bodies[0].count(b'"event":') >= int(limit == "2") + 1


def test_the_experiment_readout_is_the_same(servers: tuple[ServerProcess, ServerProcess]) -> None:
    flag = {
        "name": "Beta",
        "key": "beta",
        "ruleset": {
            "variants": [
                {"key": "control", "value": False, "is_control": True, "split": 0.5},
                {"key": "treatment", "value": True, "is_control": False, "split": 0.5},
            ],
            "rollout": [{"rollout_percentage": 1.0}],
        },
    }
    answers = []
    for server in servers:
        app = f"{server.url}/api/app/projects/{PROJECT_ID}/feature-flags"
        r = httpx.post(app, json=flag, auth=AUTH, timeout=60)
        assert r.status_code in (200, 201), r.text
        flag_id = r.json()["results"]["id"]
        params = {"conversion_event": "buy", "from_date": "2024-02-01", "to_date": "2024-02-05"}
        r = httpx.get(f"{app}/{flag_id}/readout", params=params, auth=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        results.pop("flag_id")
        answers.append(results)
    assert answers[0] == answers[1]
    assert {v["variant"] for v in answers[0]["variants"]} >= {"control", "treatment", "", "2"}
    assert all(v["exposed_users"] >= v["converted_users"] for v in answers[0]["variants"])


def test_export_is_the_same_byte_for_byte_but_the_ingestion_clock(servers: tuple[ServerProcess, ServerProcess]) -> None:
    bodies = []
    for server in servers:
        for params in ({}, {"event": '["buy"]', "where": 'properties["plan"] == "pro"'}):
            r = httpx.get(
                f"{server.url}/api/2.0/export",
                params={"project_id": PROJECT_ID, **DATES, **params},
                auth=AUTH,
                timeout=60,
            )
            assert r.status_code == 200, r.text
            # Ingestion stamps each server's own clock: the only bytes that may differ.
            bodies.append(re.sub(rb'"\$?mp_(api_timestamp_ms|processing_time_ms)":[0-9]+', b"CLOCK", r.content))
    assert bodies[0] == bodies[2] and bodies[1] == bodies[3]
    assert bodies[0].count(b"\n") == 620  # every copy of a re-sent event is exported
    assert b"$distinct_id_before_identity" in bodies[0]


def test_lookup_tables_in_queries_are_the_same(servers: tuple[ServerProcess, ServerProcess]) -> None:
    """Lookup tables (docs/lookup-tables.md) mapped to an event property (string ids) and to a number
    property (number ids in their key form), read in `on`, `where`, the export's `where` and retention."""
    for server in servers:
        app = f"{server.url}/api/app/projects/{PROJECT_ID}/lookup-tables"
        for name, csv, prop in (
            ("plans", 'plan,tier,label\nfree,0,Free\npro,1,"Pro, """\nteam,2,\n', "plan"),
            ("amounts", "amount,size,big\n1,small,false\n2.5,small,false\n10,large,true\n7,text,\n", "amount"),
        ):
            r = httpx.post(app, json={"name": name}, auth=AUTH, timeout=60)
            assert r.status_code == 201, r.text
            table_id = str(r.json()["results"]["id"])
            r = httpx.put(
                f"{server.url}/lookup-tables/{table_id}", params={"project_id": PROJECT_ID}, content=csv, auth=AUTH
            )
            assert r.status_code == 200, r.text
            mapping = {"event_properties": [prop], "user_properties": []}
            r = httpx.put(f"{app}/{table_id}/mappings", json=mapping, auth=AUTH, timeout=60)
            assert r.status_code == 200, r.text
    queries = [
        ("segmentation", {"event": "view", "on": 'properties["plan"]["tier"]', **DATES}),
        ("segmentation", {"event": "view", "on": 'properties["plan"]["label"]', "type": "unique", **DATES}),
        ("segmentation", {"event": "buy", "on": 'properties["amount"]["size"]', **DATES}),
        ("segmentation", {"event": "buy", "where": 'properties["amount"]["big"] == false', **DATES}),
        ("segmentation", {"event": "view", "where": 'number(properties["plan"]["tier"]) >= 1', "on": 'properties["browser"]', **DATES}),
        ("retention", {"born_event": "view", "event": "buy", "born_where": 'properties["plan"]["tier"] != "0"', "on": 'properties["amount"]["size"]', **DATES}),
    ]  # fmt: skip
    for path, params in queries:
        answers = []
        for server in servers:
            r = httpx.get(
                f"{server.url}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH, timeout=60
            )
            assert r.status_code == 200, (path, params, r.text)
            body = r.json()
            body.pop("computed_at", None)
            answers.append(body)
        assert answers[0] == answers[1], (path, params)
        assert answers[0]
    bodies = []
    for server in servers:
        params = {"project_id": str(PROJECT_ID), "where": 'properties["plan"]["label"] == "Free"', **DATES}
        r = httpx.get(f"{server.url}/api/2.0/export", params=params, auth=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        bodies.append(re.sub(rb'"\$?mp_(api_timestamp_ms|processing_time_ms)":[0-9]+', b"CLOCK", r.content))
    assert bodies[0] == bodies[1] and bodies[0].count(b'"plan":"free"') == bodies[0].count(b"\n") > 0


def test_mixhouse_backup_of_a_clickhouse_store_is_refused_clearly(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    """`mixhouse backup` asks the running server; on ClickHouse it answers what to use instead, exit 1."""
    chdb = servers[1]
    done = subprocess.run(
        [sys.executable, "-m", "mixhouse", "backup", "--data-dir", str(chdb.data_dir), "--to", str(tmp_path / "b")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert orjson.loads(done.stdout) == {
        "error": "mixhouse backup copies the embedded store only: back up a ClickHouse store with ClickHouse's"
        " BACKUP DATABASE (docs/scale-out.md, Backup)"
    }
    assert not (tmp_path / "b").exists()  # a refused backup leaves no empty folder behind
