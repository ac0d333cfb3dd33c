"""Authentication on /api/2.0/export and /import: every credential form Mixpanel's clients send,
and that one project's credentials never reach another project's data.

One server holds two projects: 4242 (the harness defaults) and 5151, whose secret has characters
that make standard and URL-safe base64 differ."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from tests.conftest import today
from tests.server import API_KEY, PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

# Reads the clock ("today", "now"): also run at other hours by `make test` (scripts/at-time).
pytestmark = pytest.mark.clock

OTHER_ID = 5151
OTHER_TOKEN = "TOKEN5151"
OTHER_SECRET = "s3cr3t>>?~~~"  # base64 "czNjcjN0Pj4/fn5+", URL-safe "czNjcjN0Pj4_fn5-"
OTHER_SA = ("sa.other", "other-secret")
ANALYST = ("sa.analyst", "analyst-secret")
EXPIRED = ("sa.expired", "expired-secret")
PROBE = "auth-probe"


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("auth") / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir,
        project_id=OTHER_ID,
        token=OTHER_TOKEN,
        secret=OTHER_SECRET,
        api_key="APIKEY5151",
        sa_user=OTHER_SA[0],
        sa_secret=OTHER_SA[1],
    )
    catalog = Catalog(data_dir)
    catalog.create_service_account(username=ANALYST[0], secret=ANALYST[1], project_id=PROJECT_ID, role=Role.ANALYST)
    catalog.create_service_account(
        username=EXPIRED[0], secret=EXPIRED[1], project_id=PROJECT_ID, role=Role.OWNER, expires_at=time.time() - 60
    )
    server = ServerProcess(data_dir).start()
    for project, secret in ((PROJECT_ID, SECRET), (OTHER_ID, OTHER_SECRET)):
        event = {"event": PROBE, "properties": {"distinct_id": "p", "time": 1704067200, "project": project}}
        assert httpx.post(f"{server.url}/import", json=[event], auth=(secret, "")).status_code == 200
    yield server
    server.stop()


def basic(raw: str, *, urlsafe: bool = False) -> dict[str, str]:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return {"Authorization": "Basic " + encode(raw.encode()).decode()}


def plain(raw: str) -> dict[str, str]:
    return {"Authorization": f"Basic {raw}"}


def export_raw(server: ServerProcess, headers: dict[str, str], **params: str) -> httpx.Response:
    query = {"from_date": "2023-12-01", "to_date": today(), "event": orjson.dumps([PROBE]).decode(), **params}
    return httpx.get(f"{server.url}/api/2.0/export", params=query, headers=headers)


def probe_projects(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line)["properties"]["project"] for line in response.content.splitlines() if line]


def import_raw(server: ServerProcess, headers: dict[str, str], name: str, **params: str) -> httpx.Response:
    event = {"event": name, "properties": {"distinct_id": "i", "time": 1704067200, "$insert_id": "x1"}}
    return httpx.post(f"{server.url}/import", params=params, json=[event], headers=headers)


def stored_in(server: ServerProcess, project_id: int, secret: str, name: str) -> list[dict[str, Any]]:
    query = {"from_date": "2023-12-01", "to_date": today(), "event": orjson.dumps([name]).decode()}
    response = httpx.get(f"{server.url}/api/2.0/export", params=query, auth=(secret, ""))
    assert response.status_code == 200, response.text
    rows = [orjson.loads(line) for line in response.content.splitlines() if line]
    return rows


# -- accepted credential forms -----------------------------------------------------------------------

ACCEPTED: dict[str, tuple[dict[str, str], dict[str, str], int]] = {
    # name: (headers, params, project whose data comes back)
    "service-account": (basic(f"{SA_USER}:{SA_SECRET}"), {"project_id": str(PROJECT_ID)}, PROJECT_ID),
    "other-service-account": (basic(f"{OTHER_SA[0]}:{OTHER_SA[1]}"), {"project_id": str(OTHER_ID)}, OTHER_ID),
    "service-account-plain-text": (plain(f"{SA_USER}:{SA_SECRET}"), {"project_id": str(PROJECT_ID)}, PROJECT_ID),
    "secret-colon": (basic(f"{SECRET}:"), {}, PROJECT_ID),
    "secret-no-colon": (basic(SECRET), {}, PROJECT_ID),
    "secret-plain-text": (plain(f"{SECRET}:"), {}, PROJECT_ID),
    "secret-with-matching-project-id": (basic(f"{SECRET}:"), {"project_id": str(PROJECT_ID)}, PROJECT_ID),
    "other-secret-colon": (basic(f"{OTHER_SECRET}:"), {}, OTHER_ID),
    "other-secret-no-colon": (basic(OTHER_SECRET), {}, OTHER_ID),
    "other-secret-urlsafe": (basic(OTHER_SECRET, urlsafe=True), {}, OTHER_ID),
    "other-secret-urlsafe-colon": (basic(f"{OTHER_SECRET}:", urlsafe=True), {}, OTHER_ID),
    "other-secret-plain-text": (plain(f"{OTHER_SECRET}:"), {}, OTHER_ID),
}


@pytest.mark.parametrize("form", list(ACCEPTED))
def test_export_accepts_credential_form(two_projects: ServerProcess, form: str) -> None:
    headers, params, project = ACCEPTED[form]
    assert probe_projects(export_raw(two_projects, headers, **params)) == [project]


@pytest.mark.parametrize("form", list(ACCEPTED))
def test_import_accepts_credential_form(two_projects: ServerProcess, form: str) -> None:
    headers, params, project = ACCEPTED[form]
    name = f"auth-import-{uuid.uuid4().hex[:10]}"
    response = import_raw(two_projects, headers, name, **params)
    assert response.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    secret = SECRET if project == PROJECT_ID else OTHER_SECRET
    other = OTHER_SECRET if project == PROJECT_ID else SECRET
    assert len(stored_in(two_projects, project, secret, name)) == 1
    assert stored_in(two_projects, project, other, name) == []


def test_token_as_basic_user_on_import(two_projects: ServerProcess) -> None:
    name = f"auth-token-{uuid.uuid4().hex[:10]}"
    response = import_raw(two_projects, basic(f"{OTHER_TOKEN}:"), name)
    assert response.status_code == 200
    assert len(stored_in(two_projects, OTHER_ID, OTHER_SECRET, name)) == 1
    assert stored_in(two_projects, PROJECT_ID, SECRET, name) == []
    # A token is not a read credential.
    refused = export_raw(two_projects, basic(f"{TOKEN}:"))
    assert refused.status_code == 401
    assert "Unable to authenticate request" in refused.json()["error"]


def test_track_routes_events_by_token(two_projects: ServerProcess) -> None:
    name = f"auth-track-{uuid.uuid4().hex[:10]}"
    for token in (TOKEN, OTHER_TOKEN):
        event = {"event": name, "properties": {"token": token, "distinct_id": "t", "via": token}}
        assert httpx.post(f"{two_projects.url}/track", data={"data": orjson.dumps(event).decode()}).content == b"1"
    assert [r["properties"]["via"] for r in stored_in(two_projects, PROJECT_ID, SECRET, name)] == [TOKEN]
    assert [r["properties"]["via"] for r in stored_in(two_projects, OTHER_ID, OTHER_SECRET, name)] == [OTHER_TOKEN]
    mixed = f"auth-mixed-{uuid.uuid4().hex[:10]}"
    batch = [{"event": mixed, "properties": {"token": t, "distinct_id": "t", "via": t}} for t in (TOKEN, OTHER_TOKEN)]
    assert httpx.post(f"{two_projects.url}/track", json=batch).content == b"1"
    assert [r["properties"]["via"] for r in stored_in(two_projects, PROJECT_ID, SECRET, mixed)] == [TOKEN]
    assert [r["properties"]["via"] for r in stored_in(two_projects, OTHER_ID, OTHER_SECRET, mixed)] == [OTHER_TOKEN]


def test_import_ignores_the_token_inside_events(two_projects: ServerProcess) -> None:
    # /import stores into the authenticated project, whatever `token` the events carry.
    name = f"auth-import-token-{uuid.uuid4().hex[:10]}"
    event = {"event": name, "properties": {"token": OTHER_TOKEN, "distinct_id": "i", "time": 1704067200}}
    assert httpx.post(f"{two_projects.url}/import", json=[event], auth=(SECRET, "")).status_code == 200
    assert len(stored_in(two_projects, PROJECT_ID, SECRET, name)) == 1
    assert stored_in(two_projects, OTHER_ID, OTHER_SECRET, name) == []


# -- refusals -----------------------------------------------------------------------------------------


def test_service_account_without_project_id_is_a_clear_400(two_projects: ServerProcess) -> None:
    exported = export_raw(two_projects, basic(f"{SA_USER}:{SA_SECRET}"))
    assert exported.status_code == 400
    assert "project_id" in exported.json()["error"]
    assert exported.json()["request"].startswith("/api/2.0/export?")
    name = f"auth-no-pid-{uuid.uuid4().hex[:10]}"
    imported = import_raw(two_projects, basic(f"{SA_USER}:{SA_SECRET}"), name)
    assert imported.status_code == 400
    body = imported.json()
    assert (body["code"], body["status"]) == (400, "Bad Request")
    assert "project_id" in body["error"]
    assert stored_in(two_projects, PROJECT_ID, SECRET, name) == []


UNAUTHORIZED: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "no-credentials": ({}, {}),
    "wrong-secret": (basic("SECRET999:"), {}),
    "wrong-secret-no-colon": (basic("SECRET999"), {}),
    "wrong-service-account-secret": (basic(f"{SA_USER}:nope"), {"project_id": str(PROJECT_ID)}),
    "unknown-service-account": (basic("sa.nobody:nope"), {"project_id": str(PROJECT_ID)}),
    "expired-service-account": (basic(f"{EXPIRED[0]}:{EXPIRED[1]}"), {"project_id": str(PROJECT_ID)}),
    "bearer-garbage": ({"Authorization": "Bearer abc"}, {}),
    "token-with-project-id": (basic(f"{TOKEN}:"), {"project_id": str(PROJECT_ID)}),
}


@pytest.mark.parametrize("case", list(UNAUTHORIZED))
def test_bad_credentials_are_401(two_projects: ServerProcess, case: str) -> None:
    headers, params = UNAUTHORIZED[case]
    if case != "token-with-project-id":  # a token is never an export credential: covered above
        exported = export_raw(two_projects, headers, **params)
        assert exported.status_code == 401
        assert set(exported.json()) == {"request", "error"}
        assert "Unable to authenticate request" in exported.json()["error"]
    name = f"auth-401-{uuid.uuid4().hex[:10]}"
    imported = import_raw(two_projects, headers, name, **params)
    assert imported.status_code == 401
    body = imported.json()
    assert body == {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}
    assert stored_in(two_projects, PROJECT_ID, SECRET, name) == []


FORBIDDEN: dict[str, tuple[dict[str, str], str]] = {
    "service-account-of-4242-on-5151": (basic(f"{SA_USER}:{SA_SECRET}"), str(OTHER_ID)),
    "service-account-of-5151-on-4242": (basic(f"{OTHER_SA[0]}:{OTHER_SA[1]}"), str(PROJECT_ID)),
    "secret-of-4242-on-5151": (basic(f"{SECRET}:"), str(OTHER_ID)),
    "secret-of-5151-on-4242": (basic(f"{OTHER_SECRET}:"), str(PROJECT_ID)),
    "service-account-on-missing-project": (basic(f"{SA_USER}:{SA_SECRET}"), "999999"),
}


@pytest.mark.parametrize("case", list(FORBIDDEN))
def test_other_projects_credentials_are_refused(two_projects: ServerProcess, case: str) -> None:
    headers, project_id = FORBIDDEN[case]
    exported = export_raw(two_projects, headers, project_id=project_id)
    assert exported.status_code == 403
    assert exported.json()["error"]
    name = f"auth-403-{uuid.uuid4().hex[:10]}"
    imported = import_raw(two_projects, headers, name, project_id=project_id)
    assert imported.status_code == 403
    assert (imported.json()["code"], imported.json()["status"]) == (403, "Forbidden")
    assert stored_in(two_projects, PROJECT_ID, SECRET, name) == []
    assert stored_in(two_projects, OTHER_ID, OTHER_SECRET, name) == []


def test_analyst_service_account_may_export_but_not_import(two_projects: ServerProcess) -> None:
    headers = basic(f"{ANALYST[0]}:{ANALYST[1]}")
    assert probe_projects(export_raw(two_projects, headers, project_id=str(PROJECT_ID))) == [PROJECT_ID]
    name = f"auth-analyst-{uuid.uuid4().hex[:10]}"
    refused = import_raw(two_projects, headers, name, project_id=str(PROJECT_ID))
    assert refused.status_code == 403
    assert refused.json()["code"] == 403
    assert stored_in(two_projects, PROJECT_ID, SECRET, name) == []


def test_project_id_must_be_an_integer(two_projects: ServerProcess) -> None:
    response = export_raw(two_projects, basic(f"{SA_USER}:{SA_SECRET}"), project_id="forty-two")
    assert response.status_code == 400
    assert "project_id" in response.json()["error"]


def test_import_with_only_api_key_is_the_npm_sdks_legacy_way_in(server: ServerProcess) -> None:
    """npm `mixpanel` over plain http reaches /import only with its `key` option: ?api_key=... and no header."""
    name = f"auth-apikey-{uuid.uuid4().hex[:10]}"
    event = {"event": name, "properties": {"distinct_id": "u1", "time": 1704067200000}}
    data = base64.b64encode(orjson.dumps(event)).decode()
    ok = httpx.get(f"{server.url}/import", params={"ip": "0", "verbose": "0", "data": data, "api_key": API_KEY})
    assert (ok.status_code, ok.text) == (200, "1")
    refused = httpx.get(f"{server.url}/import", params={"data": data, "api_key": "NOT-A-KEY", "strict": "1"})
    assert refused.status_code == 401
    exported = httpx.get(
        f"{server.url}/api/2.0/export",
        params={"from_date": "2024-01-01", "to_date": "2024-01-01", "event": orjson.dumps([name]).decode()},
        auth=(SECRET, ""),
    )
    assert len(exported.content.splitlines()) == 1
    # The api key is no read credential.
    assert httpx.get(f"{server.url}/api/2.0/export", params={"api_key": API_KEY}).status_code in (400, 401)


@pytest.mark.parametrize("path", ["funnels/list", "funnels", "export", "segmentation", "engage"])
def test_the_project_token_reads_nothing(server: ServerProcess, path: str) -> None:
    # Mixpanel's Query and Export APIs take the secret or a service account; the token is public (it ships
    # in every web page that tracks), so it only authenticates ingestion. The 401 says so.
    params = {"from_date": "2024-01-01", "to_date": "2024-01-01", "funnel_id": "1", "event": "x"}
    url = f"{server.url}/api/2.0/{path}"
    refused = httpx.get(url, params=params, headers=basic(f"{TOKEN}:"))
    assert refused.status_code == 401
    assert refused.json()["error"] == (
        "Unable to authenticate request: a project token authenticates ingestion only; "
        "use the project's API secret or a service account"
    )
    assert httpx.get(url, params=params, headers=basic(f"{SECRET}:")).status_code != 401
