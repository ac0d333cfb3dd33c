"""The real npm `mixpanel-browser` SDK's feature flags, unmodified, in Debian's headless Chromium against a
real server: the page (tests/browser/flags.html, driven by tests/browser/driver.js) fetches `/flags/`
cross-origin with `Authorization: Basic base64(token:)`, reads a variant (the SDK then tracks
`$experiment_started`) and all variants, and tracks what it got. Each run's answer equals the server's
`/flags` answer for the very context the browser sent (taken from its request)."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.flags.server import SA_AUTH, FlagServer, flag_server
from tests.server import PROJECT_ID, TOKEN
from tests.test_browser import BROWSER_DIR, DRIVER_TIMEOUT_S, RUN_TIMEOUT_MS, SDK_DIST, SiteHandler, _require, _which

RUNS = {
    "qa": {"user": "qa-ben", "props": {"plan": "Pro", "age": 40, "country": "us"}},
    "cohort": {"user": "u102", "props": {"plan": "free", "age": 12, "country": "FR", "app_version": "3.0"}},
    "anyone": {"user": "visitor-7", "props": {"Plan": "PRO", "age": "30", "Country": "CA"}},
}


class FlagsSite(SiteHandler):
    files: ClassVar[dict[str, tuple[Path, str]]] = {
        "/flags.html": (BROWSER_DIR / "flags.html", "text/html; charset=utf-8"),
        "/mixpanel.module.js": (SDK_DIST / "mixpanel.module.js", "text/javascript; charset=utf-8"),
    }


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlagServer]:
    with flag_server(tmp_path_factory.mktemp("flags-browser"), tls=False) as server:
        yield server


@pytest.fixture(scope="module")
def report(fs: FlagServer) -> dict[str, Any]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FlagsSite)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        chromium = _require(_which("chromium"), "Debian's chromium")
        node = _require(_which("node"), "node")
        driver_input = {
            "chromium": str(chromium),
            "page": f"http://127.0.0.1:{httpd.server_address[1]}/flags.html",
            "api": fs.url,
            "runs": [{"name": name, "cfg": cfg} for name, cfg in RUNS.items()],
            "timeout_ms": RUN_TIMEOUT_MS,
        }
        proc = subprocess.run(
            [str(node), str(BROWSER_DIR / "driver.js"), json.dumps(driver_input)],
            cwd=BROWSER_DIR, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S, check=False,
        )  # fmt: skip
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 0, f"driver.js failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _exported(fs: FlagServer, event: str, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        with fs.client() as client:
            r = client.get(
                "/api/2.0/export",
                params={"project_id": PROJECT_ID, "from_date": "2024-01-01",
                        "to_date": time.strftime("%Y-%m-%d", time.gmtime()), "event": json.dumps([event])},
                auth=SA_AUTH,
            )  # fmt: skip
        assert r.status_code == 200, r.text
        rows = [json.loads(line) for line in r.text.splitlines() if line]
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_browser_gets_the_servers_variants(fs: FlagServer, report: dict[str, Any]) -> None:
    results = {e["properties"]["test_run"]: e["properties"] for e in _exported(fs, "Flag Result", len(RUNS))}
    assert set(results) == set(RUNS)
    for run in report["runs"]:
        assert run["page_errors"] == [] and run["mp_errors"] == [], run
        [fetch] = [r for r in run["requests"] if urlsplit(r["url"]).path.rstrip("/") == "/flags"]
        assert fetch["status"] == 200 and fetch["method"] == "GET"
        assert fetch["headers"]["authorization"] == "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
        query = parse_qs(urlsplit(fetch["url"]).query)
        assert query["token"] == [TOKEN] and query["mp_lib"] == ["web"]
        context = json.loads(query["context"][0])
        assert context["distinct_id"] == RUNS[run["name"]]["user"] and context["device_id"] == run["device_id"]
        with fs.client() as client:
            server = client.get("/flags", params={"context": json.dumps(context)}, auth=(TOKEN, "")).json()["flags"]
        assert json.loads(fetch["body"])["flags"] == server
        got = results[run["name"]]
        assert got["all_variants"] == {k: v["variant_key"] for k, v in server.items()}
        want = server.get("checkout_colors")
        assert (got["variant_key"], got["variant_value"]) == (
            (want["variant_key"], want["variant_value"]) if want else ("fallback", None)
        )
    assert results["qa"]["all_variants"]["qa_colors"] == "red"  # QA tester, case-insensitive variant key
    assert "pro_cohort" in results["cohort"]["all_variants"]  # u102: in the cohort and in its 75 % rollout
    assert "pro_adults" in results["anyone"]["all_variants"]  # rule on case-folded properties
    assert "pro_cohort" not in results["anyone"]["all_variants"]  # no profile: not in the cohort


def test_browser_exposure_events(fs: FlagServer, report: dict[str, Any]) -> None:
    served = sum(1 for run in report["runs"] if _checkout_served(run))
    exposures = _exported(fs, "$experiment_started", served)
    assert len(exposures) == served > 0
    for e in exposures:
        p = e["properties"]
        assert p["Experiment name"] == "checkout_colors" and p["$experiment_id"] == "exp-checkout"
        assert p["Variant name"] in ("red", "green", "blue") and p["mp_lib"] == "web"


def _checkout_served(run: dict[str, Any]) -> bool:
    [fetch] = [r for r in run["requests"] if urlsplit(r["url"]).path.rstrip("/") == "/flags"]
    return "checkout_colors" in json.loads(fetch["body"])["flags"]
