"""Lookup tables against a real server (docs/lookup-tables.md): created through the App API, listed and
replaced at Mixpanel's `/lookup-tables` paths with CSV (gzip too), validated as RFC 4180 with Mixpanel's
error body and at most the first 10 failed records, replaced atomically, values typed; limits at their edges."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from mixhouse.lookup.csvtable import records, typed
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

AUTH = (SA_USER, SA_SECRET)
P = {"project_id": str(PROJECT_ID)}
GOOD = (
    "id,artist,genre,is_platinum,name,num_listens,release_date,tags,rating\r\n"
    'c994bb,Drake,Pop,True,Hotline Bling,1700000000,2015-10-18T22:00:00,"[""a"",""b""]",4.5\r\n'
    'd8d949,Gipsy Kings,"Flamenco, Rumba",False,"Say ""Bamboleo""",1170000,1987-07-12T05:00:00+02:00,,\r\n'
    "007,Bond,Spy,false,Skyfall,,2012-10-05,,-1e3\r\n"
)
MAX_BYTES = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("lookup") / "data"
    seed_catalog(data_dir)
    Catalog(data_dir).create_service_account(
        username="sa.analyst", secret="analyst-secret", project_id=PROJECT_ID, role=Role.ANALYST
    )
    env = {"MIXHOUSE_LOOKUP_MAX_BYTES": str(MAX_BYTES), "MIXHOUSE_LOOKUP_REPLACES_PER_DAY": "1000"}
    proc = ServerProcess(data_dir, env=env).start()
    yield proc
    proc.stop()


def _create(server: ServerProcess, name: str) -> str:
    r = httpx.post(f"{server.url}/api/app/projects/{PROJECT_ID}/lookup-tables", json={"name": name}, auth=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["results"]["name"] == name and r.json()["results"]["row_count"] == 0
    return str(r.json()["results"]["id"])


def _put(server: ServerProcess, table_id: str, body: bytes | str, **headers: str) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return httpx.put(
        f"{server.url}/lookup-tables/{table_id}",
        params=P,
        content=data,
        headers={"Content-Type": "text/csv", **headers},
        auth=AUTH,
        timeout=30,
    )


def _rows(server: ServerProcess, table_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/api/app/projects/{PROJECT_ID}/lookup-tables/{table_id}", auth=AUTH)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["results"]["rows"]
    return rows


def test_create_list_replace_and_read_typed_rows(server: ServerProcess) -> None:
    table_id = _create(server, "Songs")
    listed = httpx.get(f"{server.url}/lookup-tables", params=P, auth=AUTH)
    assert listed.status_code == 200
    assert {"id": table_id, "name": "Songs"} in listed.json()["results"]
    assert listed.json()["code"] == 200 and listed.json()["status"] == "OK"

    r = _put(server, table_id, GOOD)
    assert (r.status_code, r.json()) == (200, {"code": 200, "status": "OK"})
    rows = _rows(server, table_id)
    assert rows[0] == {
        "id": "c994bb", "artist": "Drake", "genre": "Pop", "is_platinum": True, "name": "Hotline Bling",
        "num_listens": 1700000000, "release_date": "2015-10-18T22:00:00", "tags": ["a", "b"], "rating": 4.5,
    }  # fmt: skip
    # Quoted commas and quotes, an offset turned into UTC, empty fields absent.
    assert rows[1] == {
        "id": "d8d949", "artist": "Gipsy Kings", "genre": "Flamenco, Rumba", "is_platinum": False,
        "name": 'Say "Bamboleo"', "num_listens": 1170000, "release_date": "1987-07-12T03:00:00",
    }  # fmt: skip
    # The row id stays the string it was sent as; a bare date is no RFC 3339 timestamp.
    assert rows[2] == {"id": "007", "artist": "Bond", "genre": "Spy", "is_platinum": False, "name": "Skyfall",
                       "release_date": "2012-10-05", "rating": -1000.0}  # fmt: skip

    # gzip, as Content-Encoding
    r = _put(server, table_id, gzip.compress(b"id,v\nx,1\n"), **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert _rows(server, table_id) == [{"id": "x", "v": 1}]


def test_one_bad_row_changes_nothing_and_the_body_is_exact(server: ServerProcess) -> None:
    table_id = _create(server, "Accounts")
    assert _put(server, table_id, "id,name,size\na1,Acme,10\na2,Globex,20\n").status_code == 200
    before = _rows(server, table_id)

    r = _put(server, table_id, "id,name,size\nb1,Initech,5\n,Blank,7\nb3,Short\nb1,Again,1\n")
    assert r.status_code == 400
    assert r.json() == {
        "code": 400,
        "error": "Some data points in the request failed validation",
        "status": "Bad Request",
        "failed_records": [
            {"index": 2, "message": "primary key is required and cannot be blank"},
            {"index": 3, "message": "invalid row: wrong number of fields"},
            {"index": 4, "message": "invalid row: row indexes 1 and 4 have the same primary key"},
        ],
    }
    assert _rows(server, table_id) == before

    # Only the first 10 failures are listed.
    many = "id,v\n" + "".join(f",{i}\n" for i in range(25))
    r = _put(server, table_id, many)
    assert [f["index"] for f in r.json()["failed_records"]] == list(range(1, 11))
    # Not RFC 4180: a quote inside a bare field, text after a closing quote, an unclosed quote.
    r = _put(server, table_id, 'id,v\nq1,a"b\n"q2"x,1\nq3,"open\n')
    assert r.json()["failed_records"] == [
        {"index": 1, "message": "invalid row: a double quote inside a field that is not quoted"},
        {"index": 2, "message": "invalid row: characters after a closing double quote"},
        {"index": 3, "message": "invalid row: a quoted field is not closed"},
    ]
    r = _put(server, table_id, "id,v,v\nx,1,2\n")
    assert r.json()["failed_records"] == [
        {"index": 0, "message": "invalid header: column name 'v' appears more than once"}
    ]
    assert _rows(server, table_id) == before


def test_errors_and_limits(server: ServerProcess) -> None:
    table_id = _create(server, "Limits")
    missing = _put(server, "no-such-table", "id\nx\n")
    assert (missing.status_code, missing.json()) == (
        404,
        {"code": 404, "error": "Lookup table with id 'no-such-table' was not found.", "status": "Not Found"},
    )
    header = "id,pad\n"
    row = "k,"
    exact = header + row + "x" * (MAX_BYTES - len(header) - len(row))
    assert len(exact.encode()) == MAX_BYTES
    assert _put(server, table_id, exact).status_code == 200
    over = _put(server, table_id, exact + "x")
    assert over.status_code == 413 and over.json()["code"] == 413
    bomb = _put(server, table_id, gzip.compress((exact + "x").encode()), **{"Content-Encoding": "gzip"})
    assert bomb.status_code == 413
    assert _rows(server, table_id)[0]["id"] == "k"
    refused = httpx.put(
        f"{server.url}/lookup-tables/{table_id}", params=P, content=b"id\nz\n", auth=("sa.analyst", "analyst-secret")
    )
    assert refused.status_code == 403
    assert httpx.get(f"{server.url}/lookup-tables", params=P).status_code == 401
    dup = httpx.post(f"{server.url}/api/app/projects/{PROJECT_ID}/lookup-tables", json={"name": "Limits"}, auth=AUTH)
    assert dup.status_code == 400


def test_replacements_a_day_are_limited(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir, env={"MIXHOUSE_LOOKUP_REPLACES_PER_DAY": "2"}).start()
    try:
        table_id = _create(server, "Budget")
        assert [_put(server, table_id, "id\nx\n").status_code for _ in range(2)] == [200, 200]
        third = _put(server, table_id, "id\ny\n")
        assert third.status_code == 429 and int(third.headers["Retry-After"]) > 86_000
        assert _rows(server, table_id) == [{"id": "x"}]
    finally:
        server.stop()


def test_the_parser_and_typing_directly() -> None:
    assert records('a,"b\r\nc"\r\n1,2') == [(["a", "b\r\nc"], None), (["1", "2"], None)]
    assert records("a\n\nb\n") == [(["a"], None), ([""], None), (["b"], None)]
    assert typed("1.5e2") == 150.0 and typed("-3") == -3 and typed("TRUE") is True
    assert typed("2024-02-30T00:00:00") == "2024-02-30T00:00:00"
    assert typed("2024-02-03 04:05:06Z") == {"$datetime": "2024-02-03T04:05:06"}
    assert typed('["a", 1]') == '["a", 1]' and typed("NaN") == "NaN" and typed("") is None
