"""The web app in Debian's headless Chromium against a real server: a user created with the real CLI logs
in, builds an Insights report with a breakdown and a filter, saves it, opens it from a dashboard, builds a
funnel and a retention report, searches users and opens a profile, opens the Lexicon, logs out. Every
number the pages show is checked against the API's answer to the same query, asked with a service
account. Screenshots of each page go to tests/artifacts/web/.

Events are on fixed historical days (March 2024); only the activity stream, which Mixpanel limits to the
last 365 days, reads events placed three days before today at noon UTC, so the test passes at any hour.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import orjson
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog
from tests.test_browser import BROWSER_DIR, NODE_MODULES, _require, _which

ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
EMAIL, PASSWORD = "ada@example.com", "correct horse battery"
CONSUMER = "grace@example.com"  # a consumer of the same project: reads annotations, may not add one
FROM, TO = "2024-03-01", "2024-03-10"
USERS = 30
BULK = 125  # profiles without events, so that the Users list has a second page (ids p000..p124 sort first)
# Annotations of the project: three in the report's days (two on 3 March, one bucket), one before them.
ANNOTATIONS = [
    ("2024-03-03 09:30:00", "Pricing page launched"),
    ("2024-03-03", "Newsletter sent"),
    ("2024-03-08 18:00:00", "Checkout outage"),
    ("2024-02-20", "Before the report's days"),
]
# Lexicon's schema of Signed Up: a display name, a description, a tag, typed and described properties, and
# one property that no event carries in the range.
SIGNED_UP_SCHEMA = {
    "description": "A visitor creates an account",
    "properties": {
        "plan": {"type": "string", "description": "Pricing plan chosen at sign-up"},
        "country": {"type": "string", "description": "ISO country code"},
        "referrer": {"type": "string", "description": "Where the visitor came from"},
    },
    "metadata": {"com.mixpanel": {"displayName": "Sign-up", "tags": ["growth"]}},
}
DRIVER_TIMEOUT_S = 180


def _events(now: datetime) -> list[dict[str, Any]]:
    base = datetime(2024, 3, 1, tzinfo=UTC)
    out: list[dict[str, Any]] = []

    def add(event: str, at: datetime, user: str, **props: Any) -> None:
        out.append(
            {
                "event": event,
                "properties": {"time": int(at.timestamp()), "distinct_id": user, "$insert_id": f"i{len(out)}", **props},
            }
        )

    for i in range(USERS):
        user = f"u{i}"
        plan = "pro" if i % 3 == 0 else "free"
        country = "DE" if i % 4 == 0 else "US"
        signed = base + timedelta(days=i % 10, hours=10, minutes=i)
        add("Signed Up", signed, user, plan=plan, country=country)
        for k in range(1, i % 5 + 1):
            add("Viewed Page", signed + timedelta(days=k, hours=2), user, page=f"/p{k}")
        if i % 2 == 0:
            add("Purchase", signed + timedelta(hours=1, minutes=i), user, amount=10 + i, plan=plan)
    recent = datetime(now.year, now.month, now.day, 12, tzinfo=UTC) - timedelta(days=3)
    add("Viewed Page", recent, "u0", page="/recent")
    add("Purchase", recent + timedelta(minutes=5), "u0", amount=99, plan="pro")
    return out


def _profiles() -> list[dict[str, Any]]:
    return [
        {
            "$token": TOKEN,
            "$distinct_id": f"u{i}",
            "$set": {"$name": f"User {i}", "$email": f"u{i}@example.com", "plan": "pro" if i % 3 == 0 else "free"},
        }
        for i in range(USERS)
    ] + [{"$token": TOKEN, "$distinct_id": f"p{i:03d}", "$set": {"$name": f"Prospect {i}"}} for i in range(BULK)]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Any], datetime]]:
    chromium = _require(_which("chromium"), "Debian's chromium")
    node = _require(_which("node"), "node")
    _require(NODE_MODULES / "playwright-core" / "package.json", "npm playwright-core (tests/browser/node_modules)")
    data_dir = tmp_path_factory.mktemp("webapp") / "data"
    seed_catalog(data_dir)
    created = subprocess.run(
        [sys.executable, "-m", "mixhouse", "users", "create", "--data-dir", str(data_dir), "--email", EMAIL,
         "--password", PASSWORD, "--project", str(PROJECT_ID), "--role", "analyst"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    assert json.loads(created.stdout) == {"email": EMAIL, "projects": {str(PROJECT_ID): "analyst"}}
    consumer = subprocess.run(
        [sys.executable, "-m", "mixhouse", "users", "create", "--data-dir", str(data_dir), "--email", CONSUMER,
         "--password", PASSWORD, "--project", str(PROJECT_ID), "--role", "consumer"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert consumer.returncode == 0, consumer.stdout + consumer.stderr
    server = ServerProcess(data_dir).start()
    now = datetime.now(UTC)
    try:
        r = httpx.post(f"{server.url}/import", json=_events(now), auth=(SECRET, ""), params={"strict": "1"})
        assert r.status_code == 200, r.text
        for chunk in (_profiles()[:100], _profiles()[100:]):  # /engage takes 2,000 a batch; two batches anyway
            assert httpx.post(f"{server.url}/engage", data={"data": orjson.dumps(chunk).decode()}).text == "1"
        app_api = f"{server.url}/api/app/projects/{PROJECT_ID}"
        for date, description in ANNOTATIONS:
            r = httpx.post(f"{app_api}/annotations", json={"date": date, "description": description}, auth=(SECRET, ""))
            assert r.status_code == 201, r.text
        r = httpx.post(f"{app_api}/schemas/event/Signed%20Up", json=SIGNED_UP_SCHEMA, auth=(SECRET, ""))
        assert r.status_code == 200, r.text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver_input = {
            "chromium": str(chromium),
            "base": server.url,
            "email": EMAIL,
            "consumer_email": CONSUMER,
            "password": PASSWORD,
            "from": FROM,
            "to": TO,
            "shots": str(ARTIFACTS),
            "profile_id": "u0",
            "profile_from": (now - timedelta(days=10)).strftime("%Y-%m-%d"),
            "profile_to": now.strftime("%Y-%m-%d"),
        }
        proc = subprocess.run(
            [str(node), str(BROWSER_DIR / "webapp.js"), json.dumps(driver_input)],
            cwd=BROWSER_DIR, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, f"webapp.js failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        report["driver_input"] = driver_input
        yield server, report, now
    finally:
        server.stop()


def _api(server: ServerProcess, path: str, **params: Any) -> Any:
    r = httpx.get(
        f"{server.url}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=(SA_USER, SA_SECRET)
    )
    assert r.status_code == 200, r.text
    return r.json()


def _hash_params(hash_: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(hash_.lstrip("#")).query))


def test_the_pages_ran_cleanly(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    _, report, _ = web
    assert report["page_errors"] == []
    # The only refused request is the first look for a session, before logging in.
    assert [f for f in report["failed"] if not f.endswith("/web/session")] == []
    assert [e for e in report["console_errors"] if "401" not in e] == []
    assert report["after_login_view"] == "insights"
    assert report["nav_hidden_at_login"] is True
    assert report["after_logout_view"] == "login"
    assert len(report["shots"]) == 21 and all(Path(p).stat().st_size > 5_000 for p in report["shots"])


def test_session_cookie_is_httponly_secure_samesite(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    _, report, _ = web
    cookie = {c["name"]: c for c in report["cookies_logged_in"]}["mixhouse_session"]
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == (True, True, "Strict", "/")
    assert report["page_can_read_cookie"] is False
    assert "mixhouse_session" not in {c["name"] for c in report["cookies"]}, "logout removes the cookie"


def test_insights_with_breakdown_and_filter_shows_what_segmentation_answers(
    web: tuple[ServerProcess, dict[str, Any], datetime],
) -> None:
    server, report, _ = web
    assert report["where"] == 'properties["country"] != "DE"'
    assert report["where_rows_after_run"] == [["country", "!=", "DE"]], "the builder's rows come back from the URL"
    q = _hash_params(report["insights"]["hash"])
    assert (q["event"], q["on"], q["type"], q["from"], q["to"]) == ("Signed Up", "plan", "unique", FROM, TO)
    answer = _api(
        server, "segmentation", event=q["event"], type=q["type"], unit=q["unit"], from_date=q["from"],
        to_date=q["to"], on='properties["plan"]', where=q["where"],
    )  # fmt: skip
    assert report["insights"]["table"] == answer["data"]["values"]
    assert set(answer["data"]["values"]) == {"pro", "free"}
    # 30 users, those in DE (every 4th) filtered out.
    assert sum(sum(v.values()) for v in answer["data"]["values"].values()) == USERS - len(range(0, USERS, 4))
    assert report["insights"]["canvases"] >= 1


def test_saved_report_and_dashboard_show_what_insights_answers(
    web: tuple[ServerProcess, dict[str, Any], datetime],
) -> None:
    server, report, _ = web
    bookmark_id = report["bookmark"]["hash"].split("/")[-1]
    answer = _api(server, "insights", bookmark_id=bookmark_id)
    flat = {segment: points for event in answer["series"].values() for segment, points in event.items()}
    assert report["bookmark"]["table"] == flat
    assert report["dashboard"]["title"] == "Growth"
    assert report["dashboard"]["table"] == flat
    assert report["emptied_dashboard_cards"] == 0
    dashboards = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/dashboards", auth=(SA_USER, SA_SECRET))
    assert [(d["name"], len(d["items"])) for d in dashboards.json()["results"]] == [("Growth", 2), ("Scratch", 0)]
    # The saved bookmark's numbers equal the unsaved report's (same query, other key format).
    unsaved = report["insights"]["table"]
    assert {s: sorted(p.values()) for s, p in flat.items()} == {s: sorted(p.values()) for s, p in unsaved.items()}


def test_several_events_on_one_chart_show_what_the_api_answers(
    web: tuple[ServerProcess, dict[str, Any], datetime],
) -> None:
    server, report, _ = web
    q = parse_qs(urlsplit(report["two_events"]["hash"].lstrip("#")).query)
    assert (q["event"], q["also"]) == (["Signed Up"], ["Purchase"])
    expected = {}
    for event in ("Signed Up", "Purchase"):
        answer = _api(server, "segmentation", event=event, type="general", unit="day", from_date=FROM, to_date=TO)
        expected |= answer["data"]["values"]
    assert report["two_events"]["table"] == expected
    assert sum(expected["Purchase"].values()) == USERS // 2
    bookmark_id = report["two_events_saved"]["hash"].split("/")[-1]
    saved = _api(server, "insights", bookmark_id=bookmark_id)
    assert set(saved["series"]) == {"Signed Up", "Purchase"}
    assert report["two_events_saved"]["table"] == saved["series"]
    assert {e: sorted(v.values()) for e, v in saved["series"].items()} == {
        e: sorted(v.values()) for e, v in expected.items()
    }


def test_funnel_shows_what_funnels_answers(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    server, report, _ = web
    funnel_id = urlsplit(report["funnel"]["hash"].lstrip("#")).path.split("/")[-1]
    answer = _api(server, "funnels", funnel_id=funnel_id, from_date=FROM, to_date=TO, interval=10)
    steps = answer["data"][answer["meta"]["dates"][0]]["steps"]
    assert report["funnel"]["counts"] == [s["count"] for s in steps] == [USERS, USERS // 2]
    assert report["funnel"]["ratios"] == [s["overall_conv_ratio"] for s in steps]
    # On the dashboard, beside the saved report, with the same numbers (the dates it was added with).
    assert report["dashboard_with_funnel"]["cards"] == ["bookmark", "funnel"]
    assert report["dashboard_with_funnel"]["counts"] == [s["count"] for s in steps]
    # Broken down by plan (the same saved funnel, re-run with `on`).
    assert report["funnel_breakdown"]["hash"].split("/")[2].split("?")[0] == funnel_id
    on = _api(server, "funnels", funnel_id=funnel_id, from_date=FROM, to_date=TO, interval=10, on='properties["plan"]')
    bucket = on["data"][on["meta"]["dates"][0]]
    segments = {name: [s["count"] for s in steps] for name, steps in bucket.items() if name != "$overall"}
    assert report["funnel_breakdown"]["segments"] == segments
    assert set(segments) == {"pro", "free"} and sum(v[0] for v in segments.values()) == USERS


def test_retention_shows_what_retention_answers(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    server, report, _ = web
    answer = _api(
        server, "retention", born_event="Signed Up", event="Viewed Page", retention_type="birth", unit="day",
        interval_count=5, from_date=FROM, to_date=TO,
    )  # fmt: skip
    assert report["retention"]["cohorts"] == {
        d: {"first": c["first"], "counts": c["counts"]} for d, c in answer.items()
    }
    assert sum(c["first"] for c in answer.values()) == USERS
    compounded = _api(
        server, "retention", born_event="Signed Up", event="Viewed Page", retention_type="compounded", unit="day",
        interval_count=5, from_date=FROM, to_date=TO,
    )  # fmt: skip
    assert _hash_params(report["retention_compounded"]["hash"])["type"] == "compounded"
    assert report["retention_compounded"]["cohorts"] == {
        d: {"first": c["first"], "counts": c["counts"]} for d, c in compounded.items()
    }


def test_users_and_profile_show_what_engage_and_the_stream_answer(
    web: tuple[ServerProcess, dict[str, Any], datetime],
) -> None:
    server, report, _ = web
    engage = _api(server, "engage", where='user["plan"] == "pro"')
    assert report["users"] == [p["$distinct_id"] for p in engage["results"]]
    assert len(report["users"]) == len(range(0, USERS, 3))
    cohort_id = _hash_params(report["cohort"]["hash"])["cohort"]
    members = _api(server, "engage", filter_by_cohort=json.dumps({"id": int(cohort_id)}))
    assert report["cohort"]["users"] == [p["$distinct_id"] for p in members["results"]] == report["users"]
    listed = {str(c["id"]): c for c in _api(server, "cohorts/list")}
    assert report["cohort"]["label"] == f"Pro users ({listed[cohort_id]['count']})"
    d = report["driver_input"]
    stream = _api(server, "stream/query", distinct_ids='["u0"]', from_date=d["profile_from"], to_date=d["profile_to"])
    events = [[e["event"], e["properties"]["time"]] for e in stream["results"]["events"]]
    assert report["profile"]["stream"] == list(reversed(events))
    assert [e for e, _ in report["profile"]["stream"]] == ["Purchase", "Viewed Page"]


def test_annotations_on_the_chart_are_the_apis_and_an_analyst_adds_one_from_it(
    web: tuple[ServerProcess, dict[str, Any], datetime],
) -> None:
    server, report, _ = web
    notes = report["annotations"]
    listed = httpx.get(
        f"{server.url}/api/app/projects/{PROJECT_ID}/annotations",
        params={"fromDate": FROM, "toDate": TO},
        auth=(SA_USER, SA_SECRET),
    ).json()["results"]
    added = [a for a in listed if a["description"] == "Referral bonus started"]
    seeded = [a for a in listed if a not in added]
    assert [(a["date"], a["description"]) for a in seeded] == [
        ("2024-03-03 00:00:00", "Newsletter sent"),
        ("2024-03-03 09:30:00", "Pricing page launched"),
        ("2024-03-08 18:00:00", "Checkout outage"),
    ]
    assert [[a["id"], a["date"]] for a in seeded] == [x[:2] for x in notes["before"]["listed"]]
    assert all(a["description"] in text for a, (_, _, text) in zip(seeded, notes["before"]["listed"], strict=True))
    # One marker per day carrying annotations, named by what happened; the one before the range is not shown.
    assert notes["before"]["marks"] == [
        "Annotations on 2024-03-03: Newsletter sent; Pricing page launched",
        "Annotation on 2024-03-08: Checkout outage",
    ]
    # Tab from the last control before the chart reaches the first marker, and its note shows.
    assert notes["tab"] == {"cls": "note-mark", "label": notes["before"]["marks"][0], "tip": "block"}
    # Clicking the fifth day of the chart picks that day and moves to the description; the new annotation
    # is the API's, made by the logged-in user, and is listed and marked at once.
    assert notes["form"] is True
    assert (notes["clicked_date"], notes["focused_after_click"]) == ("2024-03-05", "annotation-description")
    assert [(a["date"], a["description"], a["user"]["first_name"]) for a in added] == [
        ("2024-03-05 00:00:00", "Referral bonus started", EMAIL)
    ]
    assert [x[:2] for x in notes["after"]["listed"]] == [[a["id"], a["date"]] for a in listed]
    assert "Annotation on 2024-03-05: Referral bonus started" in notes["after"]["marks"]
    # The saved report shows the same annotations; a consumer sees them and gets no form.
    assert report["bookmark"]["annotations"] == [a["id"] for a in listed]
    consumer = report["consumer"]
    assert (consumer["listed"], consumer["form"]) == ([a["id"] for a in listed], 0)
    assert consumer["text"].endswith("Checkout outage"), "the list and nothing after it"


def test_users_pages_past_the_first_hundred_profiles(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    server, report, _ = web
    first, second, back = report["users_pages"]
    page0 = _api(server, "engage", page_size=100)
    page1 = _api(server, "engage", page_size=100, page=1, session_id=page0["session_id"])
    assert first["ids"] == [p["$distinct_id"] for p in page0["results"]]
    assert second["ids"] == [p["$distinct_id"] for p in page1["results"]]
    assert int(first["total"]) == page0["total"] == USERS + BULK
    assert first["text"] == f"{USERS + BULK} profiles · showing 1–100"
    assert second["text"] == f"{USERS + BULK} profiles · showing 101–{USERS + BULK}"
    assert second["next"] == 0, "no page after the last"
    assert _hash_params(second["hash"])["page"] == "1"
    assert back["ids"] == first["ids"]


def test_lexicon_shows_the_schemas_descriptions_and_types(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    server, report, _ = web
    schemas = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/schemas/event", auth=(SA_USER, SA_SECRET))
    by_name = {e["name"]: e["schemaJson"] for e in schemas.json()["results"]}
    lexicon = report["lexicon"]
    assert lexicon["event_descriptions"]["Signed Up"] == by_name["Signed Up"]["description"]
    assert lexicon["event_descriptions"]["Purchase"] == "", "an event without a schema has no description"
    assert "Sign-up" in lexicon["event_labels"] and "Signed Up" not in lexicon["event_labels"]
    top = _api(server, "events/properties/top", event='["Signed Up"]', limit=100, from_date=FROM, to_date=TO)
    props = by_name["Signed Up"]["properties"]
    for name, (kind, description, count) in lexicon["property_schema"].items():
        assert kind == props.get(name, {}).get("type", ""), name
        assert description == props.get(name, {}).get("description", ""), name
        assert count == (top[name]["count"] if name in top else None), name
    assert lexicon["property_schema"]["referrer"] == ["string", "Where the visitor came from", None]
    assert lexicon["property_schema"]["plan"] == ["string", "Pricing plan chosen at sign-up", USERS]


def test_lexicon_shows_event_and_property_volumes(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    server, report, _ = web
    names = _api(server, "events/names", type="general", from_date=FROM, to_date=TO)
    totals = _api(server, "events", event=json.dumps(names), type="general", unit="month", from_date=FROM, to_date=TO)
    expected = {n: sum(totals["data"]["values"][n].values()) for n in names}
    assert report["lexicon"]["events_values"] == expected
    assert expected["Signed Up"] == USERS
    top = _api(server, "events/properties/top", event='["Signed Up"]', limit=100, from_date=FROM, to_date=TO)
    assert report["lexicon"]["properties"] == {p: v["count"] for p, v in top.items()}
    assert report["lexicon"]["properties"]["plan"] == USERS


def test_usable_on_a_phone_and_with_the_keyboard(web: tuple[ServerProcess, dict[str, Any], datetime]) -> None:
    _, report, _ = web
    wide = {view: px for view, px in report["phone_overflow"].items() if px > 0}
    assert wide == {}, "pages that scroll sideways at 390 px (tables scroll inside their card instead)"
    reached = report["tab_order"]
    for label in ("Insights", "Funnels", "Retention", "Users", "Lexicon", "Dashboards"):
        assert label in reached, f"{label} not reachable with Tab: {reached}"
