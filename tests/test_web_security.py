"""The web app's people and sessions over real HTTP: users made with the real CLI, argon2id at rest, login,
the session cookie's attributes, a session as credentials for the Query and App APIs (only with its CSRF
token, only from the app's own origin, only for the user's projects), logout, expiry, dashboards that
cannot point at another project's reports, and that no secret ever reaches the page."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from mixhouse.catalog import Catalog
from mixhouse.web.accounts import MIN_PASSWORD_LENGTH
from tests.server import API_KEY, PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

B_ID, B_SECRET, B_TOKEN = 5353, "B-SECRET-5353", "B-TOKEN-5353"
A_USER = ("a@example.com", "a-password-123")
B_USER = ("b@example.com", "b-password-456")
BOTH_USER = ("both@example.com", "both-password-789")
DAY = {"from_date": "2024-03-01", "to_date": "2024-03-02"}
CSRF = "X-CSRF-Token"


def users_create(data_dir: Path, email: str, password: str, project: int, role: str = "analyst") -> Any:
    """`mixhouse users create`, exactly as documented."""
    return subprocess.run(
        [sys.executable, "-m", "mixhouse", "users", "create", "--data-dir", str(data_dir), "--email", email,
         "--password", password, "--project", str(project), "--role", role],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("websec") / "data"
    seed_catalog(data_dir)
    seed_catalog(data_dir, project_id=B_ID, token=B_TOKEN, secret=B_SECRET, api_key="B-APIKEY", sa_user=None)
    for email, password, project in ((*A_USER, PROJECT_ID), (*B_USER, B_ID), (*BOTH_USER, PROJECT_ID)):
        assert users_create(data_dir, email, password, project).returncode == 0
    assert users_create(data_dir, *BOTH_USER, B_ID, "consumer").returncode == 0
    proc = ServerProcess(data_dir).start()
    for secret, project in ((SECRET, PROJECT_ID), (B_SECRET, B_ID)):
        event = {"event": "Signed Up", "properties": {"time": 1709287200, "distinct_id": f"user-{project}"}}
        assert httpx.post(f"{proc.url}/import", json=[event], auth=(secret, "")).status_code == 200
    yield proc
    proc.stop()


_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def login(base: str, email: str, password: str) -> tuple[httpx.Client, str]:
    """A client sending the session cookie, and the session's CSRF token. The cookie is Secure, so httpx's
    jar would keep it off plain http (browsers send it to loopback): the client sends it as a header."""
    r = httpx.post(f"{base}/web/login", json={"email": email, "password": password}, timeout=30)
    assert r.status_code == 200, r.text
    token = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    client = httpx.Client(base_url=base, timeout=30, headers={"Cookie": f"mixhouse_session={token}"})
    _clients.append(client)
    return client, r.json()["results"]["csrf_token"]


def token_of(client: httpx.Client) -> str:
    return client.headers["cookie"].split("=", 1)[1]


def segmentation(client: httpx.Client, project: int, headers: dict[str, str] | None = None) -> httpx.Response:
    params = {"project_id": str(project), "event": "Signed Up", **DAY}
    return client.get("/api/query/segmentation", params=params, headers=headers or {})


def test_the_page_is_public_and_holds_nothing(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert httpx.get(f"{server.url}/static/app.js").status_code == 200
    assert httpx.get(f"{server.url}/static/../catalog.sqlite3").status_code == 404


def test_nothing_is_reachable_without_a_session_or_credentials(server: ServerProcess) -> None:
    base = server.url
    assert httpx.get(f"{base}/web/session").status_code == 401
    assert httpx.post(f"{base}/web/logout").status_code == 401
    assert httpx.get(f"{base}/api/query/segmentation", params={"project_id": PROJECT_ID, **DAY}).status_code == 401
    for path in ("/bookmarks", "/funnels", "/dashboards", "/cohorts"):
        r = httpx.get(f"{base}/api/app/projects/{PROJECT_ID}{path}")
        assert r.status_code == 401, path
        assert r.json()["status"] == "error"
    # A made-up cookie is no session.
    r = httpx.get(f"{base}/api/query/segmentation", params={"project_id": PROJECT_ID, **DAY},
                  headers={"Cookie": "mixhouse_session=forged", CSRF: "forged"})  # fmt: skip
    assert r.status_code == 401


def test_login_refuses_wrong_or_missing_credentials_alike(server: ServerProcess) -> None:
    base = server.url
    for body in (
        {"email": A_USER[0], "password": "wrong-password"},
        {"email": "nobody@example.com", "password": A_USER[1]},
        {"email": A_USER[0]},
        {},
        {"email": A_USER[0], "password": "x" * 5000},
    ):
        r = httpx.post(f"{base}/web/login", json=body)
        assert (r.status_code, r.json()) == (401, {"status": "error", "error": "invalid email or password"}), body
        assert "set-cookie" not in r.headers
    # Email case does not matter.
    assert httpx.post(f"{base}/web/login", json={"email": "A@Example.COM", "password": A_USER[1]}).status_code == 200


def test_login_sets_a_strict_httponly_secure_cookie_and_sends_no_secret(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/web/login", json={"email": BOTH_USER[0], "password": BOTH_USER[1]})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("mixhouse_session=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/", "Max-Age="):
        assert attribute.lower() in cookie.lower(), cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    results = r.json()["results"]
    assert results["email"] == BOTH_USER[0]
    assert [(p["id"], p["role"]) for p in results["projects"]] == [(PROJECT_ID, "analyst"), (B_ID, "consumer")]
    for secret in (SECRET, TOKEN, API_KEY, B_SECRET, B_TOKEN, token, BOTH_USER[1]):
        assert secret not in r.text, "a secret reached the page"
    session = httpx.get(f"{server.url}/web/session", headers={"Cookie": f"mixhouse_session={token}"})
    assert session.json() == r.json()


def test_passwords_and_sessions_are_stored_as_hashes(server: ServerProcess) -> None:
    conn = sqlite3.connect(server.data_dir / "catalog.sqlite3")
    try:
        (stored,) = conn.execute("SELECT password_hash FROM web_users WHERE email = ?", (A_USER[0],)).fetchone()
        assert stored.startswith("$argon2id$")
        client, _ = login(server.url, *A_USER)
        token = token_of(client)
        rows = [r[0] for r in conn.execute("SELECT token_sha256 FROM web_sessions")]
        assert token not in rows and all(len(r) == 64 for r in rows)
    finally:
        conn.close()


def test_a_session_reads_its_project_with_its_csrf_token(server: ServerProcess) -> None:
    client, csrf = login(server.url, *A_USER)
    r = segmentation(client, PROJECT_ID, {CSRF: csrf})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["values"] == {"Signed Up": {"2024-03-01": 1, "2024-03-02": 0}}
    r = client.get(f"/api/app/projects/{PROJECT_ID}/bookmarks", headers={CSRF: csrf})
    assert r.json() == {"status": "ok", "results": []}


def test_a_session_of_project_a_sees_nothing_of_project_b(server: ServerProcess) -> None:
    client, csrf = login(server.url, *A_USER)
    headers = {CSRF: csrf}
    r = segmentation(client, B_ID, headers)
    assert r.status_code == 403 and "Signed Up" not in r.text
    assert client.get("/api/query/events/names", params={"project_id": B_ID}, headers=headers).status_code == 403
    for path in ("/bookmarks", "/funnels", "/dashboards", "/cohorts", "/bookmarks/1", "/dashboards/1"):
        r = client.get(f"/api/app/projects/{B_ID}{path}", headers=headers)
        assert r.status_code == 403, path
    r = client.post(f"/api/app/projects/{B_ID}/dashboards", json={"name": "x", "items": []}, headers=headers)
    assert r.status_code == 403
    # B's own user sees B's data; A's session never names B's project in its session.
    b_client, b_csrf = login(server.url, *B_USER)
    assert segmentation(b_client, B_ID, {CSRF: b_csrf}).status_code == 200
    assert segmentation(b_client, PROJECT_ID, {CSRF: b_csrf}).status_code == 403
    assert [p["id"] for p in client.get("/web/session").json()["results"]["projects"]] == [PROJECT_ID]


def test_a_session_without_its_csrf_token_is_refused_reads_and_writes(server: ServerProcess) -> None:
    client, csrf = login(server.url, *A_USER)
    assert segmentation(client, PROJECT_ID).status_code == 403
    assert segmentation(client, PROJECT_ID, {CSRF: csrf[:-2] + "xx"}).status_code == 403
    body = {"name": "via CSRF", "query": {"event": "Signed Up", **DAY}}
    for headers in ({}, {CSRF: "wrong"}, {CSRF: ""}):
        r = client.post(f"/api/app/projects/{PROJECT_ID}/bookmarks", json=body, headers=headers)
        assert r.status_code == 403, headers
        assert r.json()["error"].startswith("a session request needs its CSRF token")
    r = client.post(f"/api/app/projects/{PROJECT_ID}/dashboards", json={"name": "x", "items": []})
    assert r.status_code == 403
    listed = client.get(f"/api/app/projects/{PROJECT_ID}/bookmarks", headers={CSRF: csrf}).json()["results"]
    assert all(b["name"] != "via CSRF" for b in listed), "a CSRF-less write went through"
    # A form POST from another site: no token, and a foreign Origin.
    r = client.post(
        f"/api/app/projects/{PROJECT_ID}/bookmarks",
        content=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"},
    )
    assert r.status_code == 403


def test_a_session_from_another_origin_is_refused(server: ServerProcess) -> None:
    client, csrf = login(server.url, *A_USER)
    evil = {CSRF: csrf, "Origin": "http://127.0.0.1:1"}
    assert segmentation(client, PROJECT_ID, evil).status_code == 403
    assert client.get("/web/session", headers={"Origin": "http://evil.example"}).status_code == 403
    r = httpx.post(
        f"{server.url}/web/login",
        json={"email": A_USER[0], "password": A_USER[1]},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers
    # What browsers say of a request's source: another port of the same host is "same-site", not "same-origin".
    for source in ("same-site", "cross-site"):
        assert segmentation(client, PROJECT_ID, {CSRF: csrf, "Sec-Fetch-Site": source}).status_code == 403
        assert client.get("/web/session", headers={"Sec-Fetch-Site": source}).status_code == 403
    same = {CSRF: csrf, "Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    assert segmentation(client, PROJECT_ID, same).status_code == 200


def test_basic_credentials_win_over_a_session_cookie(server: ServerProcess) -> None:
    """Existing credentials are untouched: with an Authorization header the cookie is ignored."""
    client, csrf = login(server.url, *A_USER)
    wrong_basic = {"Authorization": "Basic d3Jvbmc6d3Jvbmc=", CSRF: csrf}  # a valid session, wrong Basic
    assert segmentation(client, PROJECT_ID, wrong_basic).status_code == 401
    r = client.get(
        "/api/query/segmentation",
        params={"project_id": PROJECT_ID, "event": "Signed Up", **DAY},
        auth=(SA_USER, SA_SECRET),
    )
    assert r.status_code == 200


def test_writes_through_a_session_and_dashboards_of_own_reports_only(server: ServerProcess) -> None:
    client, csrf = login(server.url, *A_USER)
    headers = {CSRF: csrf}
    query = {"event": "Signed Up", "on": 'properties["plan"]', **DAY}
    bookmark = client.post(
        f"/api/app/projects/{PROJECT_ID}/bookmarks", json={"name": "mine", "query": query}, headers=headers
    ).json()["results"]
    # /insights answers what the app saved.
    r = client.get(
        "/api/query/insights", params={"project_id": PROJECT_ID, "bookmark_id": bookmark["id"]}, headers=headers
    )
    assert r.status_code == 200 and r.json()["headers"] == ["$event", "plan"]
    b_client, b_csrf = login(server.url, *B_USER)
    theirs = b_client.post(
        f"/api/app/projects/{B_ID}/bookmarks", json={"name": "theirs", "query": query}, headers={CSRF: b_csrf}
    ).json()["results"]
    dashboards = f"/api/app/projects/{PROJECT_ID}/dashboards"
    r = client.post(
        dashboards, json={"name": "d", "items": [{"type": "bookmark", "id": theirs["id"]}]}, headers=headers
    )
    assert r.status_code == 400 and "no saved bookmark" in r.json()["error"]
    r = client.post(
        dashboards, json={"name": "d", "items": [{"type": "bookmark", "id": bookmark["id"]}]}, headers=headers
    )
    assert r.status_code == 200, r.text
    dashboard = r.json()["results"]
    assert dashboard["items"] == [{"type": "bookmark", "id": bookmark["id"]}]
    assert (
        b_client.get(f"/api/app/projects/{B_ID}/dashboards/{dashboard['id']}", headers={CSRF: b_csrf}).status_code
        == 404
    )
    for bad in ({"items": [{"type": "funnel", "id": 1}]}, {"items": "x"}, {"name": ""}, {"name": "n" * 201}):
        r = client.patch(f"{dashboards}/{dashboard['id']}", json=bad, headers=headers)
        assert r.status_code == 400, bad
    too_many = [{"type": "bookmark", "id": bookmark["id"]}] * 41
    assert client.patch(f"{dashboards}/{dashboard['id']}", json={"items": too_many}, headers=headers).status_code == 400
    forty = too_many[:40]
    assert client.patch(f"{dashboards}/{dashboard['id']}", json={"items": forty}, headers=headers).status_code == 200
    assert client.delete(f"{dashboards}/{dashboard['id']}", headers=headers).json()["results"]["deleted"] is True


def test_annotation_writes_through_a_session_need_the_token_a_writing_role_and_the_project(
    server: ServerProcess,
) -> None:
    """What the app's "Add annotation" sends: refused without the CSRF token, for a consumer, and for a
    project the user has no role on; an annotation of one project is "not found" from another."""
    a_path, b_path = f"/api/app/projects/{PROJECT_ID}/annotations", f"/api/app/projects/{B_ID}/annotations"
    body = {"date": "2024-03-01", "description": "launch"}

    def count(path: str, secret: str) -> int:
        return len(httpx.get(f"{server.url}{path}", auth=(secret, "")).json()["results"])

    a_before, b_before = count(a_path, SECRET), count(b_path, B_SECRET)
    client, csrf = login(server.url, *A_USER)  # analyst on A
    assert client.post(a_path, json=body).status_code == 403
    assert client.post(a_path, json=body, headers={CSRF: "wrong"}).status_code == 403
    assert client.post(a_path, json=body, headers={CSRF: csrf, "Origin": "http://evil.example"}).status_code == 403
    r = client.post(b_path, json=body, headers={CSRF: csrf})
    assert r.status_code == 403 and "no access to project" in r.json()["error"]
    assert (count(a_path, SECRET), count(b_path, B_SECRET)) == (a_before, b_before), "nothing written"
    r = client.post(a_path, json=body, headers={CSRF: csrf})
    assert r.status_code == 201, r.text
    created = r.json()["results"]
    assert created["user"]["first_name"] == A_USER[0]
    assert count(a_path, SECRET) == a_before + 1
    # A consumer reads annotations and may not write them (BOTH_USER is a consumer on B, analyst on A).
    both, both_csrf = login(server.url, *BOTH_USER)
    assert both.get(b_path, headers={CSRF: both_csrf}).status_code == 200
    r = both.post(b_path, json=body, headers={CSRF: both_csrf})
    assert r.status_code == 403 and "consumer role" in r.json()["error"]
    assert count(b_path, B_SECRET) == b_before
    # Project A's annotation is not found through project B, for an analyst of B.
    b_client, b_csrf = login(server.url, *B_USER)
    item = f"{b_path}/{created['id']}"
    assert b_client.get(item, headers={CSRF: b_csrf}).status_code == 404
    assert b_client.patch(item, json={"description": "mine now"}, headers={CSRF: b_csrf}).status_code == 404
    assert b_client.delete(item, headers={CSRF: b_csrf}).status_code == 404
    assert b_client.delete(f"{a_path}/{created['id']}", headers={CSRF: b_csrf}).status_code == 403
    assert client.get(f"{a_path}/{created['id']}", headers={CSRF: csrf}).json()["results"]["description"] == "launch"


def test_the_lexicon_is_read_through_a_session_and_written_by_admins_only(server: ServerProcess) -> None:
    schema = {"description": "x", "properties": {}}
    path = f"/api/app/projects/{PROJECT_ID}/schemas/event/Signed%20Up"
    client, csrf = login(server.url, *A_USER)  # analyst
    assert client.get(f"/api/app/projects/{PROJECT_ID}/schemas/event", headers={CSRF: csrf}).status_code == 200
    assert client.post(path, json=schema, headers={CSRF: csrf}).status_code == 403
    assert client.get(f"/api/app/projects/{B_ID}/schemas/event", headers={CSRF: csrf}).status_code == 403


def test_static_files_are_cached_by_their_content_hash(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.headers["cache-control"] == "no-cache"
    assert '<link rel="preload" href="/web/session" as="fetch" crossorigin>' in page.text
    versioned = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(versioned) == 4 and all("?v=" in v for v in versioned), versioned
    for url in versioned:
        path, version = url.split("?v=")
        r = httpx.get(f"{server.url}{url}", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=31536000, immutable"
        local = Path(__file__).parent.parent / "mixhouse" / "web" / path.lstrip("/")
        assert hashlib.sha256(local.read_bytes()).hexdigest()[:16] == version
        assert r.content == local.read_bytes()
        if len(r.content) >= 512:  # compressed (once, at start) when large
            assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
        assert (
            "content-encoding" not in httpx.get(f"{server.url}{url}", headers={"Accept-Encoding": "identity"}).headers
        )
        assert r.headers["x-content-type-options"] == "nosniff"
        # Without the hash, or with another, the file is revalidated every time: 304 while the ETag holds.
        for other in (path, f"{path}?v=0000000000000000"):
            again = httpx.get(f"{server.url}{other}")
            assert again.headers["cache-control"] == "no-cache"
            revalidated = httpx.get(f"{server.url}{other}", headers={"If-None-Match": again.headers["etag"]})
            assert revalidated.status_code == 304 and revalidated.content == b""
    assert httpx.get(f"{server.url}/static/app.js").headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    assert httpx.head(f"{server.url}/static/app.js").status_code == 200
    assert httpx.post(f"{server.url}/static/app.js").status_code == 405
    for missing in ("/static/missing.js", "/static/%2e%2e/routes.py", "/static/vendor/../../routes.py"):
        assert httpx.get(f"{server.url}{missing}").status_code == 404, missing


def test_logout_needs_the_token_and_ends_the_session(server: ServerProcess) -> None:
    client, csrf = login(server.url, *A_USER)
    token = token_of(client)
    assert client.post("/web/logout").status_code == 403
    assert segmentation(client, PROJECT_ID, {CSRF: csrf}).status_code == 200
    r = client.post("/web/logout", headers={CSRF: csrf})
    assert r.status_code == 200 and 'mixhouse_session=""' in r.headers["set-cookie"]
    # The old cookie, replayed, opens nothing.
    again = httpx.get(f"{server.url}/web/session", headers={"Cookie": f"mixhouse_session={token}"})
    assert again.status_code == 401
    replay = httpx.get(
        f"{server.url}/api/query/segmentation",
        params={"project_id": PROJECT_ID, "event": "Signed Up", **DAY},
        headers={"Cookie": f"mixhouse_session={token}", CSRF: csrf},
    )
    assert replay.status_code == 401


def test_users_create_refuses_short_passwords_at_the_edge(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    short = users_create(data_dir, "e@example.com", "p" * (MIN_PASSWORD_LENGTH - 1), PROJECT_ID)
    assert short.returncode == 1 and "password" in short.stdout
    assert users_create(data_dir, "e@example.com", "p" * MIN_PASSWORD_LENGTH, PROJECT_ID).returncode == 0
    assert users_create(data_dir, "e@example.com", "q" * MIN_PASSWORD_LENGTH, PROJECT_ID).returncode == 1
    assert users_create(data_dir, "not-an-email", "p" * MIN_PASSWORD_LENGTH, PROJECT_ID).returncode == 1
    assert users_create(data_dir, "f@example.com", "p" * MIN_PASSWORD_LENGTH, 999).returncode == 1
    bad_role = users_create(data_dir, "f@example.com", "p" * MIN_PASSWORD_LENGTH, PROJECT_ID, "king")
    assert bad_role.returncode == 2
    missing = users_create(tmp_path / "typo", "f@example.com", "p" * MIN_PASSWORD_LENGTH, PROJECT_ID)
    assert missing.returncode == 1 and orjson.loads(missing.stdout)["error"].startswith("no mixhouse data dir")
    assert not (tmp_path / "typo").exists()


def test_a_session_ends_at_its_lifetime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    assert users_create(data_dir, *A_USER, PROJECT_ID).returncode == 0
    monkeypatch.setenv("MIXHOUSE_WEB_SESSION_SECONDS", "1.5")
    proc = ServerProcess(data_dir).start()
    try:
        client, csrf = login(proc.url, *A_USER)
        started = time.monotonic()
        assert (
            "max-age=1"
            in httpx.post(f"{proc.url}/web/login", json={"email": A_USER[0], "password": A_USER[1]})
            .headers["set-cookie"]
            .lower()
        )
        if time.monotonic() - started < 1.0:  # still inside the lifetime (a loaded machine may be slower)
            assert segmentation(client, PROJECT_ID, {CSRF: csrf}).status_code == 200
        time.sleep(max(0.0, 1.6 - (time.monotonic() - started)))
        assert segmentation(client, PROJECT_ID, {CSRF: csrf}).status_code == 401
        assert client.get("/web/session").status_code == 401
    finally:
        proc.stop()


def test_session_queries_count_in_the_projects_rate_limit(tmp_path: Path) -> None:
    """The page is a client like any other: its queries spend the project's Query API budget."""
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    assert users_create(data_dir, *A_USER, PROJECT_ID).returncode == 0
    Catalog(data_dir).set_rate_limits(PROJECT_ID, '{"query": {"per_hour": 3}}')
    proc = ServerProcess(data_dir).start()
    try:
        client, csrf = login(proc.url, *A_USER)
        assert [segmentation(client, PROJECT_ID, {CSRF: csrf}).status_code for _ in range(3)] == [200] * 3
        limited = segmentation(client, PROJECT_ID, {CSRF: csrf})
        assert limited.status_code == 429 and "Query rate limit exceeded" in limited.json()["error"]
        # The same budget as a service account's.
        basic = httpx.get(
            f"{proc.url}/api/query/segmentation",
            params={"project_id": PROJECT_ID, "event": "Signed Up", **DAY},
            auth=(SA_USER, SA_SECRET),
        )
        assert basic.status_code == 429
        # A session request without its token is refused, and spends nothing.
        assert segmentation(client, PROJECT_ID).status_code == 403
    finally:
        proc.stop()


def test_failed_logins_are_throttled_at_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    assert users_create(data_dir, *A_USER, PROJECT_ID).returncode == 0
    assert users_create(data_dir, *BOTH_USER, PROJECT_ID).returncode == 0
    monkeypatch.setenv("MIXHOUSE_WEB_LOGIN_FAILURES", "3")
    proc = ServerProcess(data_dir).start()
    try:
        url = f"{proc.url}/web/login"
        wrong = {"email": A_USER[0], "password": "not-the-password"}
        assert [httpx.post(url, json=wrong).status_code for _ in range(3)] == [401, 401, 401]
        # The fourth attempt is refused before the password is looked at, the right one included.
        locked = httpx.post(url, json={"email": A_USER[0].upper(), "password": A_USER[1]})
        assert locked.status_code == 429 and "set-cookie" not in locked.headers
        assert locked.json()["error"].startswith("too many failed logins")
        assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
        # Other users are not affected.
        assert httpx.post(url, json={"email": BOTH_USER[0], "password": BOTH_USER[1]}).status_code == 200
    finally:
        proc.stop()


def test_the_login_throttle_forgets_failures_after_its_window() -> None:
    from mixhouse.errors import RateLimited
    from mixhouse.web.throttle import DEFAULT_LOGIN_FAILURES, LOGIN_WINDOW_SECONDS, LoginThrottle

    throttle = LoginThrottle()
    for i in range(DEFAULT_LOGIN_FAILURES - 1):
        throttle.failed("a@example.com", "10.0.0.1", now=1000.0 + i)
    throttle.check("a@example.com", "10.0.0.1", now=1010.0)  # one below the limit: allowed
    throttle.failed("a@example.com", "10.0.0.1", now=1010.0)
    with pytest.raises(RateLimited):
        throttle.check("a@example.com", "10.0.0.1", now=1010.0)
    throttle.check("a@example.com", "10.0.0.2", now=1010.0)  # another address: allowed
    throttle.check("a@example.com", "10.0.0.1", now=1000.0 + LOGIN_WINDOW_SECONDS)  # the first failure left
    throttle.succeeded("a@example.com", "10.0.0.1")
    throttle.check("a@example.com", "10.0.0.1", now=1011.0)


def test_the_vendored_chart_library_is_the_pinned_one() -> None:
    """What the page loads is the version the lock file pins (scripts/vendor-web copies it), with its licence."""
    root = Path(__file__).resolve().parent.parent
    lock = orjson.loads((root / "scripts" / "web-vendor" / "package-lock.json").read_bytes())
    pinned = lock["packages"]["node_modules/uplot"]["version"]
    vendor = root / "mixhouse" / "web" / "static" / "vendor"
    assert (
        (vendor / "uPlot.iife.min.js").read_text().startswith(f"/*! https://github.com/leeoniya/uPlot (v{pinned}) */")
    )
    assert (vendor / "VERSIONS").read_text().strip() == f"uplot {pinned}"
    assert "MIT License" in (vendor / "uPlot.LICENSE").read_text()
