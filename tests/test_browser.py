"""The real npm `mixpanel-browser` SDK, unmodified, in Debian's headless Chromium, against a real
mixhouse server on loopback (the recipe is in docs/clients.md).

A small page, served from another loopback port (cross-origin, as on a real site), inits the SDK with
`api_host` = the server, tracks two events anonymously, identifies as `user-1`, tracks three more
(one with `send_immediately`), sets a people property and a group property. `tests/browser/driver.js`
(playwright-core, `executablePath` = Debian's chromium) loads it once per SDK configuration, each in a
fresh browser context, and reports the requests it saw. The test then reads `/api/2.0/export` and checks
that each event arrived exactly once with the properties the browser sent, identified the way
Simplified ID Merge identifies them.

Chromium and the npm packages come from `scripts/install-test-deps` (`make test-deps`); when they are
missing the test fails, it does not skip.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import export
from tests.server import TOKEN, ServerProcess, seed_catalog

BROWSER_DIR = Path(__file__).parent / "browser"
NODE_MODULES = BROWSER_DIR / "node_modules"
SDK_DIST = NODE_MODULES / "mixpanel-browser" / "dist"
DRIVER_TIMEOUT_S = 60
RUN_TIMEOUT_MS = 10_000  # one page load, from navigation until the SDK has sent everything
EXPORT_WAIT_S = 15.0

USER_ID = "user-1"
ANONYMOUS_EVENTS = ("Page Viewed", "Clicked Button")
# What page.html tracks, in order; the SDK adds $identify when identify() changes the distinct id.
EVENTS = (*ANONYMOUS_EVENTS, "$identify", "Signed Up", "Purchase", "Sent Immediately")
# Properties every event of the SDK carries, whatever the configuration.
BROWSER_PROPERTIES = (
    "$os",
    "$browser",
    "$browser_version",
    "$current_url",
    "$screen_height",
    "$screen_width",
    "mp_lib",
    "$lib_version",
    "$insert_id",
    "$device_id",
)
# What the server consumes instead of storing (mixhouse/domain/events.py).
CONSUMED = frozenset({"time", "distinct_id", "token", "ip"})


@dataclass(frozen=True)
class SdkConfig:
    """One configuration of the SDK, and the requests it is expected to make."""

    name: str
    options: dict[str, Any]
    method: Literal["POST", "GET"]
    encoding: Literal["base64", "json"]
    resource_type: Literal["xhr", "ping"]  # "ping": navigator.sendBeacon
    batched: bool
    preflight: bool = False


CONFIGS = (
    # Batches POST base64 forms with verbose=1; send_immediately POSTs a single event, non-verbose.
    SdkConfig("default", {}, "POST", "base64", "xhr", batched=True),
    # data=<percent-encoded JSON> (the SDK picks base64 for any host but *.mixpanel.com).
    SdkConfig("json", {"api_payload_format": "json"}, "POST", "json", "xhr", batched=True),
    # One beacon per call, Content-Type text/plain, reply never read by the SDK.
    SdkConfig(
        "beacon", {"batch_requests": False, "api_transport": "sendBeacon"}, "POST", "base64", "ping", batched=False
    ),
    # GET ?data=<base64>. Unbatched: the batcher POSTs whatever api_method says.
    SdkConfig("get", {"api_method": "GET", "batch_requests": False}, "GET", "base64", "xhr", batched=False),
    # A custom header makes every POST non-simple: an OPTIONS preflight precedes each.
    SdkConfig("xhr_headers", {"xhr_headers": {"X-Test": "1"}}, "POST", "base64", "xhr", batched=True, preflight=True),
)


class SiteHandler(BaseHTTPRequestHandler):
    """The test site: page.html and the SDK's ES module build, nothing else (favicon -> 404)."""

    files: ClassVar[dict[str, tuple[Path, str]]] = {
        "/page.html": (BROWSER_DIR / "page.html", "text/html; charset=utf-8"),
        "/mixpanel.module.js": (SDK_DIST / "mixpanel.module.js", "text/javascript; charset=utf-8"),
    }

    def do_GET(self) -> None:
        entry = self.files.get(urlsplit(self.path).path)
        if entry is None:
            self.send_error(404)
            return
        body = entry[0].read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", entry[1])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Run:
    """What one page load did: the driver's report plus the events exported for it."""

    config: SdkConfig
    report: dict[str, Any]
    exported: list[dict[str, Any]] = field(default_factory=list)

    @property
    def device_id(self) -> str:
        return str(self.report["device_id"])

    def api_requests(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.report["requests"] if urlsplit(r["url"]).path.rstrip("/") == path]


@dataclass
class BrowserSession:
    api: str
    site: str
    sdk_version: str
    runs: dict[str, Run]


def _require(path: Path | None, what: str) -> Path:
    assert path is not None and path.exists(), f"{what} is missing: run `bash scripts/install-test-deps`"
    return path


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="browser-test-site", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def _run_driver(api: str, site: str) -> dict[str, Any]:
    chromium = _require(_which("chromium"), "Debian's chromium")
    node = _require(_which("node"), "node")
    _require(SDK_DIST / "mixpanel.module.js", "npm mixpanel-browser (tests/browser/node_modules)")
    _require(NODE_MODULES / "playwright-core" / "package.json", "npm playwright-core (tests/browser/node_modules)")
    driver_input = {
        "chromium": str(chromium),
        "page": f"{site}/page.html",
        "api": api,
        "runs": [{"name": c.name, "cfg": c.options} for c in CONFIGS],
        "timeout_ms": RUN_TIMEOUT_MS,
    }
    proc = subprocess.run(
        [str(node), str(BROWSER_DIR / "driver.js"), json.dumps(driver_input)],
        cwd=BROWSER_DIR,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"driver.js failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"driver.js printed nothing; stderr:\n{proc.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def _exported_by_run(api: str) -> dict[str, list[dict[str, Any]]]:
    by_run: dict[str, list[dict[str, Any]]] = {}
    for line in export(api):
        properties = line.get("properties")
        if isinstance(properties, dict):
            by_run.setdefault(str(properties.get("test_run")), []).append(line)
    return by_run


@pytest.fixture(scope="module")
def browser_session(api_server: ServerProcess, site: str) -> BrowserSession:
    """Every configuration loaded once, in one browser; then export polled until each run's events are in
    (the driver already waited for every reply, so this is a bounded safety margin, not a sleep)."""
    report = _run_driver(api_server.url, site)
    runs = {c.name: Run(c, r) for c, r in zip(CONFIGS, report["runs"], strict=True)}
    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        by_run = _exported_by_run(api_server.url)
        complete = all(Counter(e["event"] for e in by_run.get(name, [])) >= Counter(EVENTS) for name in runs)
        if complete or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for name, run in runs.items():
        run.exported = by_run.get(name, [])
    package = json.loads((NODE_MODULES / "mixpanel-browser" / "package.json").read_text())
    return BrowserSession(api=api_server.url, site=site, sdk_version=package["version"], runs=runs)


def _data_param(request: dict[str, Any]) -> str:
    """The `data` the SDK sent: from the form body (POST, XHR or beacon) or the query string (GET)."""
    source: str
    if request["method"] == "GET":
        source = urlsplit(request["url"]).query
    else:
        assert request["post_data"], f"POST without a body: {request['url']}"
        source = request["post_data"]
    values: list[str] = parse_qs(source, keep_blank_values=True).get("data", [])
    assert len(values) == 1, f"expected exactly one data parameter in {source[:200]!r}"
    return values[0]


def _decode(data: str, encoding: str) -> list[dict[str, Any]]:
    if encoding == "json":
        assert data[:1] in ("{", "["), f"expected raw JSON, got {data[:40]!r}"
        decoded = json.loads(data)
    else:
        assert data[:1] not in ("{", "["), f"expected base64, got raw JSON {data[:40]!r}"
        decoded = json.loads(base64.b64decode(data, validate=True))
    return decoded if isinstance(decoded, list) else [decoded]


def _is_favicon_404(error: dict[str, str]) -> bool:
    return urlsplit(error.get("url", "")).path == "/favicon.ico" and "404" in error.get("text", "")


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_page_ran_cleanly(browser_session: BrowserSession, config: SdkConfig) -> None:
    report = browser_session.runs[config.name].report
    console_errors = [e for e in report["console_errors"] if not _is_favicon_404(e)]
    assert console_errors == [], "console errors in the page"
    assert report["page_errors"] == [], "uncaught errors in the page (or the driver)"
    assert report["mp_errors"] == [], "the SDK reported errors"
    assert report["settled"], "the SDK still had requests queued or in flight when the run timed out"


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_requests_have_the_configured_shape(browser_session: BrowserSession, config: SdkConfig) -> None:
    """The configuration took effect (else the other checks would test the default again), and every request
    was answered the way the SDK reads it."""
    run = browser_session.runs[config.name]
    requests = run.report["requests"]
    assert {urlsplit(r["url"]).path for r in requests} == {"/track/", "/engage/", "/groups/"}
    for request in requests:
        where = f"{request['method']} {request['url']}"
        assert request["failure"] is None, f"{where} failed: {request['failure']}"
        assert request["status"] == 200, f"{where} -> {request['status']} {request['body']!r}"
        assert request["method"] == config.method, where
        assert request["resource_type"] == config.resource_type, where
        query = parse_qs(urlsplit(request["url"]).query)
        verbose = query.get("verbose") == ["1"]
        if verbose:
            assert json.loads(request["body"]) == {"status": 1, "error": None}, where
        else:
            assert request["body"] == "1", f"{where} -> {request['body']!r}"
        if config.method == "POST":
            expected_type = (
                "text/plain;charset=UTF-8" if config.resource_type == "ping" else "application/x-www-form-urlencoded"
            )
            assert request["headers"].get("content-type") == expected_type, where
        if config.preflight:
            assert request["headers"].get("x-test") == "1", where
        records = _decode(_data_param(request), config.encoding)
        assert len(records) == 1 or verbose, f"{where}: a batch of {len(records)} sent without verbose=1"

    batches = [r for r in requests if parse_qs(urlsplit(r["url"]).query).get("verbose") == ["1"]]
    if config.batched:
        assert batches, "batch_requests is on but no verbose batch was sent"
    else:
        assert batches == []
        assert len(run.api_requests("/track")) == len(EVENTS), "expected one request per event"

    preflights = run.report["preflights"]
    if config.preflight:
        assert preflights, "xhr_headers set but no CORS preflight was seen"
        for preflight in preflights:
            assert preflight["status"] in (200, 204), preflight
            assert preflight["headers"].get("Access-Control-Request-Headers") == "x-test", preflight
        preflighted = {urlsplit(p["url"]).path for p in preflights}
        assert preflighted == {urlsplit(r["url"]).path for r in requests}, "each endpoint needs a preflight"
    else:
        assert preflights == [], "simple requests should not be preflighted"


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_profile_and_group_updates_accepted(browser_session: BrowserSession, config: SdkConfig) -> None:
    """people.set and group set reached the server and were accepted (there is no engage read endpoint yet,
    so the reply is what can be checked)."""
    run = browser_session.runs[config.name]
    people = [u for r in run.api_requests("/engage") for u in _decode(_data_param(r), config.encoding)]
    sets = [u for u in people if "$set" in u]
    assert any(u["$set"].get("plan") == "pro" and u.get("$distinct_id") == USER_ID for u in sets), people
    assert all(u.get("$token") == TOKEN for u in people)
    groups = [u for r in run.api_requests("/groups") for u in _decode(_data_param(r), config.encoding)]
    assert [(g["$group_key"], g["$group_id"], g["$set"]) for g in groups] == [("company", "acme", {"size": 10})]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_events_exported_with_browser_properties(browser_session: BrowserSession, config: SdkConfig) -> None:
    run = browser_session.runs[config.name]
    device_id = run.device_id
    assert device_id, "the page did not report the SDK's $device_id"
    assert run.report["anon_distinct_id"] == f"$device:{device_id}"

    sent = {
        e["properties"]["$insert_id"]: e
        for r in run.api_requests("/track")
        for e in _decode(_data_param(r), config.encoding)
    }
    assert Counter(e["event"] for e in sent.values()) == Counter(EVENTS), "the page did not send what it should"

    exported = run.exported
    assert Counter(e["event"] for e in exported) == Counter(EVENTS), "each tracked event is exported exactly once"
    for line in exported:
        event = line["event"]
        props: dict[str, Any] = line["properties"]
        for name in BROWSER_PROPERTIES:
            assert name in props, f"{event}: {name} missing"
        assert props["$browser"] == "Chrome", event
        assert props["$os"] == "Linux", event
        assert props["$current_url"].startswith(f"{browser_session.site}/page.html?"), event
        assert props["mp_lib"] == "web", event
        assert props["$lib_version"] == browser_session.sdk_version, event
        assert props["$device_id"] == device_id, event
        assert props["$mp_api_endpoint"] == "127.0.0.1", event
        assert props["test_run"] == config.name, event  # a super property (register)

        if event in ANONYMOUS_EVENTS:
            # Re-attributed to the user by Simplified ID Merge; export shows the canonical id (docs/identity.md).
            assert props["distinct_id"] == USER_ID, event
            assert props["$distinct_id_before_identity"] == f"$device:{device_id}", event
            assert "$user_id" not in props, event
        else:
            assert props["distinct_id"] == USER_ID, event
            assert props["$user_id"] == USER_ID, event
        if event == "$identify":
            assert props["$anon_distinct_id"] == f"$device:{device_id}"

        # Everything the browser sent is stored as sent, but for what the server consumes.
        original = sent.get(props["$insert_id"])
        assert original is not None, f"{event}: $insert_id {props['$insert_id']} was never sent"
        assert original["event"] == event
        sent_props: dict[str, Any] = original["properties"]
        assert sent_props["token"] == TOKEN
        assert abs(props["time"] - sent_props["time"]) < 1, f"{event}: time {props['time']}, sent {sent_props['time']}"
        for name, value in sent_props.items():
            if name not in CONSUMED:
                assert props.get(name) == value, f"{event}: {name} exported as {props.get(name)!r}, sent {value!r}"

    by_name = {e["event"]: e["properties"] for e in exported}
    assert by_name["Purchase"]["amount"] == 9.99
    assert by_name["Purchase"]["items"] == ["a", "b"]
    assert by_name["Clicked Button"]["label"] == "Sign up"
