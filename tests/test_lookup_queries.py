"""Lookup table values in queries, over real HTTP (docs/lookup-tables.md, "Lookup values in queries"):
golden files (tests/golden/lookup/*.json: events, profiles, tables and their mappings in; requests and
hand-computed answers out, each with its rule and source), the same cases checked against the reference
interpreter, a replace seen by the next query, and the refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.expr import EventExpr, passes
from mixhouse.expr.ast import LookupRef
from mixhouse.expr.interpreter import DateTime
from mixhouse.lookup.csvtable import DATETIME_KEY
from mixhouse.lookup.csvtable import parse as parse_csv
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

GOLDEN = Path(__file__).parent / "golden" / "lookup"
FILES = sorted(GOLDEN.glob("*.json"))
AUTH = (SA_USER, SA_SECRET)
APP = f"/api/app/projects/{PROJECT_ID}/lookup-tables"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _create_table(url: str, table: dict[str, Any]) -> str:
    r = httpx.post(f"{url}{APP}", json={"name": table["name"]}, auth=AUTH)
    assert r.status_code == 201, r.text
    table_id = str(r.json()["results"]["id"])
    r = httpx.put(f"{url}/lookup-tables/{table_id}", params={"project_id": PROJECT_ID}, content=table["csv"], auth=AUTH)
    assert r.status_code == 200, r.text
    body = {k: table.get(k, []) for k in ("event_properties", "user_properties")}
    r = httpx.put(f"{url}{APP}/{table_id}/mappings", json=body, auth=AUTH)
    assert r.status_code == 200 and r.json()["results"] == body, r.text
    return table_id


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[ServerProcess, dict[str, str]]]]:
    """One server (one data folder) per golden file."""
    out: dict[str, tuple[ServerProcess, dict[str, str]]] = {}
    try:
        for path in FILES:
            golden = _load(path)
            data_dir = tmp_path_factory.mktemp(f"lookup-{path.stem}") / "data"
            seed_catalog(data_dir, timezone=golden["timezone"])
            server = ServerProcess(data_dir).start()
            out[path.stem] = (server, {})
            events = [
                {"event": e["event"], "properties": {**e["properties"], "time": _ms(e["properties"]["time"])}}
                for e in golden["events"]
            ]
            r = httpx.post(f"{server.url}/import", json=events, auth=(SECRET, ""))
            assert r.status_code == 200, r.text
            for update in golden.get("profiles", []):
                data = orjson.dumps({"$token": TOKEN, **update}).decode()
                r = httpx.post(f"{server.url}/engage", data={"data": data, "verbose": "1"})
                assert r.json()["status"] == 1, r.text
            for table in golden["tables"]:
                out[path.stem][1][table["name"]] = _create_table(server.url, table)
            for funnel in golden.get("funnels", []):
                r = httpx.post(f"{server.url}/api/app/projects/{PROJECT_ID}/funnels", json=funnel, auth=AUTH)
                assert r.status_code == 200, r.text
                out[path.stem][1][f"$funnel:{funnel['name']}"] = str(r.json()["results"]["funnel_id"])
        yield out
    finally:
        for server, _ in out.values():
            server.stop()


def _cases() -> list[Any]:
    return [
        pytest.param(path.stem, case, id=f"{path.stem}: {case['name']}")
        for path in FILES
        for case in _load(path)["cases"]
    ]


def _get(server: ServerProcess, path: str, params: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params={**params, "project_id": PROJECT_ID}, auth=AUTH, timeout=60)


@pytest.mark.parametrize(("stem", "case"), _cases())
def test_golden(servers: dict[str, tuple[ServerProcess, dict[str, str]]], stem: str, case: dict[str, Any]) -> None:
    server, ids = servers[stem]
    r = _get(server, case["path"], {k: ids.get(v, v) for k, v in case["params"].items()})
    if "status" in case and case["status"] != 200:
        assert r.status_code == case["status"], r.text
        assert case["error_contains"] in r.json()["error"], r.text
        return
    assert r.status_code == 200, r.text
    if "expect_engage_ids" in case:
        assert [p["$distinct_id"] for p in r.json()["results"]] == case["expect_engage_ids"]
        return
    if "expect_export_ids" in case:
        lines = [orjson.loads(line) for line in r.text.splitlines() if line]
        assert [e["properties"]["distinct_id"] for e in lines] == case["expect_export_ids"]
        return
    body = r.json()
    if "expect_steps" in case:  # a funnel over one interval: step counts, overall or per segment
        (figures,) = body["data"].values()
        if "steps" in figures:
            found = {"steps": [s["count"] for s in figures["steps"]]}
        else:
            found = {seg: [s["count"] for s in steps] for seg, steps in figures.items()}
        assert found == case["expect_steps"]
        return
    for key, expected in case["expect"].items():
        assert body[key] == expected, (key, body)


def _interpreter_rows(golden: dict[str, Any]) -> tuple[dict[str, LookupRef], dict[LookupRef, dict[str, Any]]]:
    refs: dict[str, LookupRef] = {}
    rows: dict[LookupRef, dict[str, Any]] = {}

    def cell(v: Any) -> Any:
        return DateTime(_ms(v[DATETIME_KEY] + "Z")) if isinstance(v, dict) and DATETIME_KEY in v else v

    for table in golden["tables"]:
        ref = LookupRef(table["name"], "1")
        rows[ref] = {k: {c: cell(v) for c, v in values.items()} for k, values in parse_csv(table["csv"]).rows}
        for prop in table.get("event_properties", []):
            refs[f"event:{prop}"] = ref
        for prop in table.get("user_properties", []):
            refs[f"user:{prop}"] = ref
    return refs, rows


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_interpreter_agrees_with_the_golden_where(path: Path) -> None:
    """The reference interpreter, given the same tables, passes exactly the events the server counted."""
    golden = _load(path)
    refs, rows = _interpreter_rows(golden)
    profiles = {p["$distinct_id"]: p["$set"] for p in golden.get("profiles", [])}
    checked = 0
    for case in golden["cases"]:
        where = case["params"].get("where")
        skip = "on" in case["params"] or "funnel_id" in case["params"] or case["path"].endswith("/engage")
        if case.get("status", 200) != 200 or not where or skip:
            continue
        expr = EventExpr.parse(where).bind_lookups(
            lambda n: refs[("user:" if n.base.source == "user" else "event:") + n.base.name]
        )
        passed: dict[str, int] = {}
        ids = []
        for e in golden["events"]:
            if e["event"] != case["params"].get("event", e["event"]):
                continue
            props = e["properties"]
            record = {"time_ms": _ms(props["time"]), "distinct_id": props["distinct_id"], "properties": props}
            if passes(expr.tree, record, user=profiles.get(props["distinct_id"]), lookups=rows):
                day = props["time"][:10]
                passed[day] = passed.get(day, 0) + 1
                ids.append(props["distinct_id"])
        if "expect_export_ids" in case:
            assert ids == case["expect_export_ids"], case["name"]
        else:
            counts = next(iter(case["expect"]["data"]["values"].values()))
            assert {d: n for d, n in counts.items() if n} == passed, case["name"]
        checked += 1
    assert checked >= 3


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    from mixhouse.catalog import Catalog
    from mixhouse.domain.project import Role

    data_dir = tmp_path_factory.mktemp("lookup-versions") / "data"
    seed_catalog(data_dir)
    Catalog(data_dir).create_service_account(
        username="sa.analyst", secret="analyst-secret", project_id=PROJECT_ID, role=Role.ANALYST
    )
    server = ServerProcess(data_dir).start()
    events = [
        {"event": "Buy", "properties": {"distinct_id": f"u{i}", "time": _ms("2024-06-01T12:00:00Z"), "sku": sku}}
        for i, sku in enumerate(["a", "a", "b", 7])
    ]
    assert httpx.post(f"{server.url}/import", json=events, auth=(SECRET, "")).status_code == 200
    yield server
    server.stop()


def _by_category(server: ServerProcess) -> Any:
    r = _get(
        server,
        "/api/2.0/segmentation",
        {"event": "Buy", "from_date": "2024-06-01", "to_date": "2024-06-01", "on": 'properties["sku"]["category"]'},
    )
    assert r.status_code == 200, r.text
    return {k: v["2024-06-01"] for k, v in r.json()["data"]["values"].items()}


def test_a_replace_is_seen_by_the_next_query_and_a_bad_one_changes_nothing(fresh: ServerProcess) -> None:
    table_id = _create_table(
        fresh.url, {"name": "Products", "csv": "sku,category\na,toys\nb,books\n7,toys\n", "event_properties": ["sku"]}
    )
    assert _by_category(fresh) == {"toys": 3, "books": 1}
    url = f"{fresh.url}/lookup-tables/{table_id}"
    r = httpx.put(url, params={"project_id": PROJECT_ID}, content="sku,category\na,games\nb,books\n", auth=AUTH)
    assert r.status_code == 200, r.text
    assert _by_category(fresh) == {"games": 2, "books": 1}  # 7 has no row any more
    # One bad row (a repeated id): the upload is refused whole and queries keep the last good version.
    bad = "sku,category\na,music\nb,music\nb,music\n"
    r = httpx.put(url, params={"project_id": PROJECT_ID}, content=bad, auth=AUTH)
    assert r.status_code == 400 and r.json()["failed_records"][0]["index"] == 3
    assert _by_category(fresh) == {"games": 2, "books": 1}
    # Deleting the table removes its mapping: the read is refused with the expression's caret.
    assert httpx.delete(f"{fresh.url}{APP}/{table_id}", auth=AUTH).status_code == 200
    r = _get(
        fresh,
        "/api/2.0/segmentation",
        {"event": "Buy", "from_date": "2024-06-01", "to_date": "2024-06-01", "on": 'properties["sku"]["category"]'},
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith('no lookup table is mapped to the event property properties["sku"] at column 1')


def test_mapping_rules(fresh: ServerProcess) -> None:
    first = _create_table(
        fresh.url, {"name": "Regions", "csv": "code,region\nde,EU\n", "event_properties": ["country"]}
    )
    second = _create_table(fresh.url, {"name": "Countries", "csv": "code,name\nde,Germany\n"})
    put = f"{fresh.url}{APP}/{second}/mappings"
    # One table a property (Mixpanel's Lexicon); many properties may share one table.
    r = httpx.put(put, json={"event_properties": ["country"]}, auth=AUTH)
    assert r.status_code == 400 and "mapped to the lookup table 'Regions' already" in r.json()["error"], r.text
    r = httpx.put(
        put, json={"event_properties": ["first_country", "last_country"], "user_properties": ["home"]}, auth=AUTH
    )
    assert r.json()["results"] == {"event_properties": ["first_country", "last_country"], "user_properties": ["home"]}
    got = httpx.get(f"{fresh.url}{APP}/{second}", auth=AUTH).json()["results"]["mapped_properties"]
    assert got == {"event_properties": ["first_country", "last_country"], "user_properties": ["home"]}
    for body, message in [
        ({"event_properties": ["$distinct_id"]}, "cannot be mapped"),
        ({"event_properties": ["time"]}, "cannot be mapped"),
        ({"event_properties": "country"}, "must be a list"),
        ({"event_properties": ["a", "a"]}, "more than once"),
        ({"properties": ["a"]}, "unknown field"),
        ([], "must be a JSON object"),
    ]:
        r = httpx.put(put, json=body, auth=AUTH)
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
    # Mapping is managing (admins and owners); any role reads.
    analyst = ("sa.analyst", "analyst-secret")
    assert httpx.put(put, json={"event_properties": []}, auth=analyst).status_code == 403
    assert httpx.get(put, auth=analyst).status_code == 200
    assert httpx.get(f"{fresh.url}{APP}/nope/mappings", auth=AUTH).status_code == 404
    assert httpx.get(f"{fresh.url}{APP}/{first}/mappings", auth=AUTH).json()["results"]["event_properties"] == [
        "country"
    ]


def test_a_table_without_the_column_yet(fresh: ServerProcess) -> None:
    """A mapped table that was never uploaded has no columns: the read names none."""
    r = httpx.post(f"{fresh.url}{APP}", json={"name": "Empty"}, auth=AUTH)
    table_id = r.json()["results"]["id"]
    httpx.put(f"{fresh.url}{APP}/{table_id}/mappings", json={"event_properties": ["empty_key"]}, auth=AUTH)
    r = _get(
        fresh,
        "/api/2.0/segmentation",
        {"event": "Buy", "from_date": "2024-06-01", "to_date": "2024-06-01", "where": 'properties["empty_key"]["x"]'},
    )
    assert r.status_code == 400
    assert "lookup table 'Empty' has no column 'x' (columns: none: nothing uploaded yet)" in r.json()["error"]


def test_jql_refuses_lookup_reads_clearly(fresh: ServerProcess) -> None:
    """JQL filters events in its own runner, which joins no lookup tables: a 400, never a 500."""
    _create_table(fresh.url, {"name": "Skus", "csv": "sku,kind\na,toy\n", "event_properties": ["jql_sku"]})
    script = (
        "function main() { return Events({from_date: '2024-06-01', to_date: '2024-06-01', "
        'event_selectors: [{event: \'Buy\', selector: \'properties["jql_sku"]["kind"] == "toy"\'}]}); }'
    )
    r = httpx.post(
        f"{fresh.url}/api/2.0/jql", data={"script": script, "project_id": str(PROJECT_ID)}, auth=AUTH, timeout=60
    )
    assert r.status_code == 400, r.text
    assert "lookup table values are not available in this query" in r.text


def test_rows_of_a_project_are_limited(tmp_path: Path) -> None:
    """MIXHOUSE_LOOKUP_MAX_PROJECT_ROWS at its edge (Mixpanel: 5 million rows over all tables)."""
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env={"MIXHOUSE_LOOKUP_MAX_PROJECT_ROWS": "5"}).start()
    try:
        first = _create_table(server.url, {"name": "A", "csv": "id,v\n1,a\n2,b\n3,c\n"})
        second = _create_table(server.url, {"name": "B", "csv": "id,v\nx,1\ny,2\n"})  # 5 rows: the limit

        def put(table_id: str, csv: str) -> httpx.Response:
            return httpx.put(
                f"{server.url}/lookup-tables/{table_id}", params={"project_id": PROJECT_ID}, content=csv, auth=AUTH
            )

        r = put(second, "id,v\nx,1\ny,2\nz,3\n")
        assert r.status_code == 400, r.text
        assert r.json() == {
            "code": 400,
            "error": "the project's lookup tables would hold 6 rows together; at most 5 (this table: 3)",
            "status": "Bad Request",
        }
        rows = httpx.get(f"{server.url}{APP}/{second}", auth=AUTH).json()["results"]["rows"]
        assert [row["id"] for row in rows] == ["x", "y"]  # unchanged
        assert put(first, "id,v\n1,a\n2,b\n4,d\n").status_code == 200  # its old rows do not count twice
    finally:
        server.stop()
