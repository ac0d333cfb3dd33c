"""The Python client (clients/python, `mixhouse_client`): every method against a live server on loopback,
each checked against what the server stores or computes (raw export, plain HTTP), plus the in-process
transport seam and the public surface."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import mixhouse_client
import pytest
from mixhouse_client import (
    AppTransport,
    AuthenticationFailed,
    BadRequest,
    Client,
    ConfigurationError,
    NotFound,
    ProjectSecret,
    RetryPolicy,
    ServiceAccount,
    content_insert_id,
)
from mixhouse_client._config import Family, base_urls

from mixhouse.domain.project import IdMerge
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

DAY = 86400
T0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
ORIGINAL = 5151  # a project in Original ID Merge, for identify / alias / merge


def make_events() -> list[dict[str, Any]]:
    """Three days of events without $insert_id: 2024-03-01..03."""
    events = []
    for i in range(60):
        events.append(
            {
                "event": "Purchase" if i % 3 else "Signed Up",
                "properties": {
                    "distinct_id": f"u{i % 7}",
                    "time": T0 + (i % 3) * DAY + i * 60,
                    "plan": "pro" if i % 2 else "free",
                    "amount": i,
                },
            }
        )
    return events


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("client") / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir,
        project_id=ORIGINAL,
        token="T5151",
        secret="S5151",
        api_key="K5151",
        id_merge=IdMerge.ORIGINAL,
        sa_user=None,
    )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(base_url=server.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID), token=TOKEN) as c:
        yield c


@pytest.fixture(scope="module")
def imported(client: Client) -> list[dict[str, Any]]:
    events = make_events()
    result = client.import_events(events, max_records=7)
    assert result.ok and result.accepted == 60 and result.requests == 9  # ceil(60 / 7) batches
    return events


def strip(event: dict[str, Any]) -> tuple[str, str, int, str, int, str]:
    p = event["properties"]
    return (event["event"], p["distinct_id"], p["time"], p["plan"], p["amount"], p["$insert_id"])


def test_import_batches_and_gives_every_event_a_content_insert_id(
    server: ServerProcess, imported: list[dict[str, Any]]
) -> None:
    stored = [e for e in export(server.url, from_date="2024-03-01", to_date="2024-03-03")]
    expected = [
        (e["event"], *(e["properties"][k] for k in ("distinct_id", "time", "plan", "amount")), content_insert_id(e))
        for e in imported
    ]
    assert sorted(strip(e) for e in stored) == sorted(expected)
    assert all("$insert_id" not in e["properties"] for e in imported)  # the caller's objects are unchanged


def test_reimporting_the_same_events_is_deduplicated_by_reports(client: Client, imported: list[dict[str, Any]]) -> None:
    before = client.segmentation("Purchase", "2024-03-01", "2024-03-03")
    assert client.import_events(imported).accepted == 60
    after = client.segmentation("Purchase", "2024-03-01", "2024-03-03")
    assert after == before
    assert sum(before["data"]["values"]["Purchase"].values()) == 40


def test_import_reports_refused_records_by_their_index_and_keeps_the_valid_ones(
    server: ServerProcess, client: Client
) -> None:
    events = [{"event": "Strict", "properties": {"distinct_id": f"s{i}", "time": T0 + 10 * DAY + i}} for i in range(12)]
    del events[3]["properties"]["time"]
    events[9]["event"] = ""
    result = client.import_events(events, max_records=5)
    assert result.accepted == 10
    assert [(f.index, f.field) for f in result.failed] == [(3, "properties.time"), (9, "event")]
    assert result.failed[0].insert_id == content_insert_id(events[3])
    stored = export(server.url, from_date="2024-03-11", to_date="2024-03-11", event='["Strict"]')
    assert sorted(e["properties"]["distinct_id"] for e in stored) == sorted(
        f"s{i}" for i in range(12) if i not in (3, 9)
    )


def test_import_batches_yields_one_result_per_request(server: ServerProcess, client: Client) -> None:
    events = [{"event": "Paced", "properties": {"distinct_id": f"q{i}", "time": T0 + 14 * DAY + i}} for i in range(25)]
    results = list(client.import_batches(events, max_records=10))
    assert [(r.accepted, r.requests) for r in results] == [(10, 1), (10, 1), (5, 1)]
    assert len(export(server.url, from_date="2024-03-15", to_date="2024-03-15", event='["Paced"]')) == 25


def test_batches_at_the_edges_of_both_limits() -> None:
    from mixhouse_client._batching import Batch, batches

    tiny = [{"event": "e", "properties": {"i": i}} for i in range(2001)]
    assert [b.size for b in batches(tiny[:2000]) if isinstance(b, Batch)] == [2000]
    assert [b.size for b in batches(tiny) if isinstance(b, Batch)] == [2000, 1]
    # two records whose body ("[a,b]") is exactly max_bytes fit in one request; one byte less splits them
    pair = [{"event": "e", "properties": {"pad": "x" * 400}}] * 2
    body = len(next(iter(batches(pair, max_bytes=10_000))).body())  # type: ignore[union-attr]
    assert [b.size for b in batches(pair, max_bytes=body) if isinstance(b, Batch)] == [2]
    assert [b.size for b in batches(pair, max_bytes=body - 1) if isinstance(b, Batch)] == [1, 1]
    with pytest.raises(ValueError):
        list(batches(tiny, max_records=2001))


def test_a_record_larger_than_a_request_is_reported_without_a_request(client: Client) -> None:
    big = {"event": "Big", "properties": {"distinct_id": "b", "time": T0, "blob": "x" * 3_000_000}}
    result = client.import_events([big])
    assert result.requests == 0 and result.accepted == 0
    assert "exceeds" in result.failed[0].message


def test_batches_close_before_two_megabytes(server: ServerProcess, client: Client) -> None:
    # 30 events of ~100 KB: at most 20 fit under 2 MB, so two requests
    events = [
        {"event": "Wide", "properties": {"distinct_id": f"w{i}", "time": T0 + 12 * DAY, "pad": "p" * 100_000}}
        for i in range(30)
    ]
    result = client.import_events(events)
    assert result.ok and result.accepted == 30 and result.requests == 2
    assert len(export(server.url, from_date="2024-03-13", to_date="2024-03-13", event='["Wide"]')) == 30


def test_track_sends_recent_events_with_the_token(server: ServerProcess, client: Client) -> None:
    now = datetime.now(UTC)
    result = client.track([{"event": "Live", "properties": {"distinct_id": "t1", "time": int(now.timestamp()) - 60}}])
    assert result.ok and result.accepted == 1
    since = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    stored = export(server.url, from_date=since, event='["Live"]')
    assert [e["properties"]["distinct_id"] for e in stored] == ["t1"]
    assert "$insert_id" in stored[0]["properties"]


def test_export_streams_one_chunk_per_day_and_resumes_from_any_day(
    server: ServerProcess, client: Client, imported: list[dict[str, Any]]
) -> None:
    chunks = list(client.export_chunks("2024-03-01", "2024-03-03", event="Purchase"))
    assert [c.day for c in chunks] == [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)]
    by_day = {c.day: [e for e in c.events()] for c in chunks}
    assert len({e["properties"]["$insert_id"] for v in by_day.values() for e in v}) == 40
    for day, events in by_day.items():
        assert {datetime.fromtimestamp(e["properties"]["time"], UTC).date() for e in events} <= {day}
    plain = export(server.url, from_date="2024-03-01", to_date="2024-03-03", event='["Purchase"]')
    streamed = list(client.export("2024-03-01", "2024-03-03", event=["Purchase"]))
    assert streamed == plain
    resumed = list(client.export("2024-03-02", "2024-03-03", event="Purchase"))
    assert resumed == by_day[date(2024, 3, 2)] + by_day[date(2024, 3, 3)]


def test_export_where_limit_and_milliseconds(client: Client, imported: list[dict[str, Any]]) -> None:
    pro = list(client.export("2024-03-01", "2024-03-03", where='properties["plan"] == "pro"'))
    assert pro and all(e["properties"]["plan"] == "pro" for e in pro)
    assert len(list(client.export("2024-03-01", "2024-03-03", limit=5))) == 5
    ms = next(client.export("2024-03-01", "2024-03-01", time_in_ms=True))
    assert ms["properties"]["time"] == T0 * 1000


def test_engage_groups_and_profiles_paginated_lazily(server: ServerProcess, client: Client) -> None:
    updates = [{"$distinct_id": f"p{i:02d}", "$set": {"customer_id": f"c{i}", "tier": i % 3}} for i in range(25)]
    assert client.engage(updates).accepted == 25
    assert client.groups([{"$group_key": "company", "$group_id": "acme", "$set": {"size": 10}}]).ok
    pages: list[int] = []
    original_send = client._send

    def counting_send(*args: Any, **kwargs: Any) -> Any:
        pages.append(1)
        return original_send(*args, **kwargs)

    client._send = counting_send  # type: ignore[method-assign]
    try:
        profiles = client.profiles(where='user["tier"] == 1', page_size=3)
        first = next(profiles)
        assert len(pages) == 1  # lazy: one page fetched for the first profile
        rest = list(profiles)
    finally:
        del client._send
    assert [p["$distinct_id"] for p in [first, *rest]] == [f"p{i:02d}" for i in range(25) if i % 3 == 1]
    assert len(pages) == 3  # 8 profiles, pages of 3
    raw = httpx.post(
        f"{server.url}/api/query/engage",
        params={"project_id": PROJECT_ID},
        data={"where": 'user["tier"] == 1'},
        auth=(SA_USER, SA_SECRET),
    ).json()
    assert [p["$distinct_id"] for p in raw["results"]] == [p["$distinct_id"] for p in [first, *rest]]
    only = list(client.profiles(distinct_ids=["p01", "p02"], output_properties=["customer_id"]))
    assert only == [
        {"$distinct_id": "p01", "$properties": {"customer_id": "c1"}},
        {"$distinct_id": "p02", "$properties": {"customer_id": "c2"}},
    ]
    groups = list(client.profiles(group_key="company"))
    assert [(g["$distinct_id"], g["$properties"]["size"]) for g in groups] == [("acme", 10)]


def test_identity_identify_alias_and_merge(server: ServerProcess) -> None:
    with Client(base_url=server.url, credentials=ProjectSecret("S5151", ORIGINAL), token="T5151") as c:
        now = int(datetime.now(UTC).timestamp()) - 120
        anon = str(uuid.uuid4())
        c.track(
            [
                {"event": "Browse", "properties": {"distinct_id": anon, "time": now}},
                {"event": "Browse", "properties": {"distinct_id": "nick", "time": now}},
                {"event": "Browse", "properties": {"distinct_id": "laptop", "time": now}},
            ]
        )
        assert c.identify("ada", anon, timestamp=now + 1).ok
        assert c.alias("nick", "ada", timestamp=now + 2).ok
        assert c.merge("ada", "laptop", timestamp=now + 3).ok
        since = datetime.fromtimestamp(now - DAY, UTC).date()
        stream = c.activity_stream(["ada"], since, datetime.now(UTC).date())
        browses = [e for e in stream if e["event"] == "Browse"]
        assert len(browses) == 3 and {e["properties"]["$distinct_id"] for e in browses} == {"ada"}


def test_reports_match_the_imported_events(client: Client, imported: list[dict[str, Any]]) -> None:
    seg = client.segmentation("Purchase", "2024-03-01", "2024-03-03", on='properties["plan"]')
    expected: Counter[tuple[str, str]] = Counter()
    for e in imported:
        if e["event"] == "Purchase":
            day = datetime.fromtimestamp(e["properties"]["time"], UTC).strftime("%Y-%m-%d")
            expected[(e["properties"]["plan"], day)] += 1
    got = {(plan, day): n for plan, days in seg["data"]["values"].items() for day, n in days.items() if n}
    assert got == dict(expected)

    funnel = client.saved_funnels.create({"name": "signup to purchase", "steps": ["Signed Up", "Purchase"]})
    assert {"funnel_id": funnel["funnel_id"], "name": "signup to purchase"} in client.funnels_list()
    result = client.funnel(funnel["funnel_id"], "2024-03-01", "2024-03-03", unit="week")
    steps = next(iter(result["data"].values()))["steps"]
    signed_up = {e["properties"]["distinct_id"] for e in imported if e["event"] == "Signed Up"}
    assert steps[0]["count"] == len(signed_up) and steps[1]["count"] <= steps[0]["count"]
    assert client.saved_funnels.update(funnel["funnel_id"], {"name": "renamed"})["name"] == "renamed"
    assert client.saved_funnels.get(funnel["funnel_id"])["name"] == "renamed"
    client.saved_funnels.delete(funnel["funnel_id"])
    with pytest.raises(NotFound):
        client.saved_funnels.get(funnel["funnel_id"])

    retention = client.retention("2024-03-01", "2024-03-03", born_event="Signed Up", interval_count=2)
    assert sum(row["first"] for row in retention.values()) == len(signed_up)

    cohort = client.saved_cohorts.create({"name": "tier one", "filter": 'user["tier"] == 1'})
    assert any(c["id"] == cohort["id"] for c in client.saved_cohorts.list())
    listed = {c["id"]: c for c in client.cohorts_list()}
    assert listed[cohort["id"]]["name"] == "tier one"

    report = client.saved_reports.create(
        {"name": "purchases", "query": {"event": "Purchase", "from_date": "2024-03-01", "to_date": "2024-03-03"}}
    )
    series = client.insights(report["id"])["series"]["Purchase"]
    assert sum(series.values()) == 40
    # the generic escape hatch, for every other Query API endpoint
    sums = client.query(
        "segmentation/sum", event="Purchase", from_date="2024-03-01", to_date="2024-03-03", on='properties["amount"]'
    )
    assert sum(sums["results"].values()) == sum(e["properties"]["amount"] for e in imported if e["event"] == "Purchase")


def test_errors_carry_mixpanels_body_and_are_not_retried(server: ServerProcess) -> None:
    wrong = ServiceAccount(SA_USER, "wrong", PROJECT_ID)
    with Client(base_url=server.url, credentials=wrong) as bad, pytest.raises(AuthenticationFailed) as auth_error:
        bad.segmentation("Purchase", "2024-03-01", "2024-03-03")
    assert auth_error.value.status == 401 and auth_error.value.attempts == 1
    assert "wrong" not in str(auth_error.value) and "wrong" not in auth_error.value.url
    with Client(base_url=server.url, credentials=ProjectSecret(SECRET)) as c:
        with pytest.raises(BadRequest) as bad_where:
            c.segmentation("Purchase", "2024-03-01", "2024-03-03", where='properties["x"] ==')
        assert bad_where.value.attempts == 1 and bad_where.value.body["request"].startswith("/api/query/segmentation")
        assert bad_where.value.message == bad_where.value.body["error"]
        with pytest.raises(NotFound):
            c.insights(987654)
        with pytest.raises(ConfigurationError):
            c.saved_funnels.list()  # the App API needs a project id in its path
    with Client(base_url=server.url) as anonymous, pytest.raises(ConfigurationError):
        anonymous.export("2024-03-01", "2024-03-01").__next__()


def test_credentials_never_appear_in_reprs() -> None:
    c = Client(base_url="http://127.0.0.1:9", credentials=ServiceAccount("sa", "s3cr3t", 1))
    assert "s3cr3t" not in repr(c) and "s3cr3t" not in repr(ProjectSecret("s3cr3t"))
    c.close()


def test_region_hosts_per_api_family() -> None:
    eu = base_urls(None, "eu")
    assert eu[Family.INGESTION] == "https://api-eu.mixpanel.com"
    assert eu[Family.EXPORT] == "https://data-eu.mixpanel.com"
    assert eu[Family.QUERY] == "https://eu.mixpanel.com"
    assert base_urls(None, "in")[Family.EXPORT] == "https://data-in.mixpanel.com"
    assert base_urls(None, "us")[Family.INGESTION] == "https://api.mixpanel.com"
    assert set(base_urls("http://h:1/", "eu").values()) == {"http://h:1"}
    with pytest.raises(ConfigurationError):
        base_urls(None, "mars")


def test_the_same_client_runs_the_app_in_process(tmp_path: Path) -> None:
    from mixhouse.http.app import create_app

    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    transport = AppTransport(create_app(data_dir))
    with Client(
        base_url="http://mixhouse.test",
        credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID),
        transport=transport,
        retry=RetryPolicy(max_attempts=1),
    ) as c:
        assert c.import_events(make_events()).accepted == 60
        assert len(list(c.export("2024-03-01", "2024-03-03"))) == 60
        seg = c.segmentation("Signed Up", "2024-03-01", "2024-03-03")
        assert sum(seg["data"]["values"]["Signed Up"].values()) == 20


def test_public_surface() -> None:
    assert sorted(mixhouse_client.__all__) == sorted(
        [
            "MAX_BYTES",
            "MAX_RECORDS",
            "APIError",
            "Annotation",
            "AnnotationTag",
            "AnnotationTagRef",
            "AnnotationUser",
            "Annotations",
            "AppTransport",
            "AsyncAnnotations",
            "AsyncAppTransport",
            "AsyncClient",
            "AsyncExportChunk",
            "AsyncFeatureFlags",
            "AsyncLegacyAnnotations",
            "AsyncSavedObjects",
            "AuthenticationFailed",
            "BadRequest",
            "Client",
            "ConfigurationError",
            "ExportChunk",
            "FailedRecord",
            "Family",
            "FeatureFlag",
            "FeatureFlags",
            "IngestResult",
            "LegacyAnnotation",
            "LegacyAnnotations",
            "LocalFlags",
            "MixpanelError",
            "NotFound",
            "PermissionDenied",
            "ProjectSecret",
            "RateLimited",
            "Region",
            "RetryPolicy",
            "SavedObjects",
            "ServerError",
            "ServiceAccount",
            "TransportError",
            "__version__",
            "content_insert_id",
            "AsyncGDPR",
            "AsyncLookupTables",
            "AsyncSchemas",
            "AsyncServiceAccounts",
            "GDPR",
            "LookupTables",
            "Schemas",
            "ServiceAccounts",
        ]
    )
    for name in mixhouse_client.__all__:
        assert hasattr(mixhouse_client, name)
    package = Path(mixhouse_client.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "cli"}
    assert all(m.startswith("_") for m in modules), modules
    for name in mixhouse_client.__all__:
        obj = getattr(mixhouse_client, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, mixhouse_client.MixpanelError), name
    # the exception tree drawn in _exceptions.py names every exception class
    tree = (package / "_exceptions.py").read_text()
    for name in mixhouse_client.__all__:
        obj = getattr(mixhouse_client, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert re.search(rf"[─ ]{name}\b", tree), name


def test_the_client_distribution_depends_on_httpx_alone() -> None:
    import tomllib

    pyproject = Path(mixhouse_client.__file__).parents[2] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    assert project["dependencies"] == ["httpx==0.28.1"]
