"""Fuzzing the HTTP API with schemathesis, from the OpenAPI document the server serves at /openapi.json
(generated from the route table, so routes added later are fuzzed too). Every generated request goes
to a real server; none may answer 5xx or hang, and afterwards every stored event is whole."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from mixhouse.http.app import create_app
from mixhouse.http.openapi import build
from tests.conftest import today
from tests.fuzzing import CASES, SCALE, SERVER_ERRORS, examples, report
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog

SUITE = "http api (schemathesis)"
DOCUMENT = build(list(create_app(Path(tempfile.gettempdir()) / "mixhouse-openapi-unused").routes))
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
# CI: random cases only. The long run adds schemathesis's coverage phase (boundary and invalid values
# of every parameter: thousands of cases), which rides on hypothesis's explicit phase.
PHASES = [Phase.generate] if SCALE == 1 else [Phase.explicit, Phase.generate]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("fuzz-api") / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    yield server
    server.stop()
    report(request.config, SUITE)


@pytest.fixture(scope="module")
def http(fuzz_server: ServerProcess) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = (SA_USER, SA_SECRET)
        yield session


def test_the_served_document_is_the_fuzzed_one(fuzz_server: ServerProcess) -> None:
    served = httpx.get(fuzz_server.url + "/openapi.json")
    assert served.status_code == 200
    assert served.json() == orjson.loads(orjson.dumps(DOCUMENT))
    assert {"/track", "/import", "/api/2.0/export", "/api/2.0/events/names"} <= set(DOCUMENT["paths"])


def _aim_at_our_project(case: Any) -> None:
    """Most cases use the fuzz project's id, so they get past authentication into the endpoint."""
    if case.path_parameters and "project_id" in case.path_parameters:
        case.path_parameters["project_id"] = PROJECT_ID
    if isinstance(case.query, dict) and "project_id" in case.query:
        case.query["project_id"] = PROJECT_ID


@SCHEMA.parametrize()
@settings(max_examples=examples(5), deadline=None, suppress_health_check=list(HealthCheck), phases=PHASES)
def test_no_request_gets_a_server_error(case: Any, fuzz_server: ServerProcess, http: requests.Session) -> None:
    _aim_at_our_project(case)
    CASES[SUITE] += 1
    try:
        response = case.call(base_url=fuzz_server.url, session=http, timeout=15)
    except requests.exceptions.RequestException as exc:  # a hang or a dropped connection
        SERVER_ERRORS[SUITE] += 1
        raise AssertionError(f"{case.method} {case.path}: {exc}") from exc
    if response.status_code >= 500:
        SERVER_ERRORS[SUITE] += 1
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )


def test_zz_every_stored_event_is_whole(fuzz_server: ServerProcess) -> None:
    """After the fuzzing (named to run last): the store holds whole events only."""
    response = httpx.get(
        fuzz_server.url + "/api/2.0/export",
        params={"project_id": str(PROJECT_ID), "from_date": "1971-01-01", "to_date": today()},
        auth=(SA_USER, SA_SECRET),
        timeout=60,
    )
    assert response.status_code == 200
    for line in response.content.splitlines():
        event = orjson.loads(line)
        assert isinstance(event["event"], str) and event["event"]
        assert isinstance(event["properties"]["time"], int)
        assert isinstance(event["properties"]["distinct_id"], str)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method.upper() in ("GET", "POST", "PATCH", "DELETE")
    ]


def _url(path: str) -> str:
    return path.replace("{project_id}", str(PROJECT_ID)).replace("{", "").replace("}", "")


NUL_VALUES = ["\x00", "A\x00B", "ok\x00' OR 1=1 --"]


@pytest.mark.parametrize(("path", "method", "operation"), _operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_nul_byte_in_any_parameter_is_a_client_error(
    path: str, method: str, operation: dict[str, Any], fuzz_server: ServerProcess, http: requests.Session
) -> None:
    """Every operation, every query parameter of the document, each with NUL bytes (the fuzz run's whole
    class of 500s): never a server error, and a 400 wherever the family answers bad input with a status."""
    names = [p["name"] for p in operation["parameters"] if p["in"] == "query"] or ["event"]
    for name in names:
        for value in NUL_VALUES:
            CASES[SUITE] += 1
            params = {"project_id": str(PROJECT_ID), "from_date": "2024-01-01", "to_date": "2024-01-02", name: value}
            if method == "GET" or method == "DELETE":
                response = http.request(method, fuzz_server.url + _url(path), params=params, timeout=15)
            else:
                response = http.request(method, fuzz_server.url + _url(path), data=params, timeout=15)
            if response.status_code >= 500:
                SERVER_ERRORS[SUITE] += 1
            assert response.status_code < 500, f"{method} {path} {name}={value!r}: {response.text[:300]}"
            if path in ("/track", "/engage", "/groups"):
                assert response.text in ("0", "") or "NUL" in response.text
            elif path.startswith(("/api/", "/import")):
                assert response.status_code == 400, f"{method} {path} {name}={value!r}: {response.text[:300]}"
                assert "NUL" in response.text


@pytest.mark.parametrize("path", ["/api/2.0/segmentation", "/api/2.0/events/properties/values"])
def test_a_nul_byte_in_a_json_body_of_parameters_is_a_400(
    path: str, fuzz_server: ServerProcess, http: requests.Session
) -> None:
    body = {
        "project_id": PROJECT_ID,
        "event": "A\x00B",
        "name": "x",
        "from_date": "2024-01-01",
        "to_date": "2024-01-02",
    }
    response = http.post(fuzz_server.url + path, json=body, timeout=15)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "Invalid parameter: event contains a NUL byte"


def test_a_nul_byte_in_a_saved_object_is_a_400(fuzz_server: ServerProcess, http: requests.Session) -> None:
    url = f"{fuzz_server.url}/api/app/projects/{PROJECT_ID}/funnels"
    response = http.post(url, json={"name": "f", "steps": [{"event": "A\x00B"}]}, timeout=15)
    assert response.status_code == 400, response.text
    assert response.json() == {"status": "error", "error": "Invalid body: a string contains a NUL byte"}


@pytest.mark.parametrize(("path", "method", "operation"), _operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_oversized_urls_and_headers_are_refused_on_every_route(
    path: str, method: str, operation: dict[str, Any], fuzz_server: ServerProcess, http: requests.Session
) -> None:
    """Past the default caps (docs/operations.md), every route answers 414 / 431, never 5xx or a hang."""
    from mixhouse.http.protocol import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_URL_BYTES

    url = fuzz_server.url + _url(path)
    CASES[SUITE] += 2
    long_url = http.request(method, url, params={"pad": "a" * DEFAULT_MAX_URL_BYTES}, timeout=15)
    assert long_url.status_code == 414, long_url.text[:200]
    big_header = http.request(method, url, headers={"X-Pad": "b" * DEFAULT_MAX_HEADER_BYTES}, timeout=15)
    assert big_header.status_code == 431, big_header.text[:200]
