"""Identity end to end, the find-a-user-then-export-their-events workflow: real clients track anonymously, identify, track more; then the
Query API sees one user across the identify — `/segmentation?type=unique`, a 2-step funnel that converts
across it, `/engage` finding the profile by the user id — and export shows the whole history under that id.

- mixpanel-browser (npm, unmodified) in Debian's headless Chromium, driven by tests/browser/driver.js on
  tests/browser/page.html (tracks 'Page Viewed' and 'Clicked Button' anonymously, identify('user-1'), then
  'Signed Up', 'Purchase', 'Sent Immediately', people.set plan=pro), in a Simplified project.
- The PyPI `mixpanel` SDK: in a Simplified project through `/import` ($device_id, then $device_id+$user_id);
  in an Original project through `/track` plus an `$identify` sent with `import_data` to `/import`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from mixpanel import Consumer, Mixpanel

from mixhouse.domain.project import IdMerge
from tests.conftest import export, today
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog
from tests.test_browser import SiteHandler

BROWSER_DIR = Path(__file__).parent / "browser"
NODE_MODULES = BROWSER_DIR / "node_modules"
SDK_DIST = NODE_MODULES / "mixpanel-browser" / "dist"
BROWSER_USER = "user-1"  # what page.html identifies as

ORIGINAL_PROJECT = 4343
ORIGINAL_TOKEN, ORIGINAL_SECRET, ORIGINAL_SA = "ORIGTOKEN", "ORIGSECRET", "sa.original"
PYPI_PROJECT = 4444  # Simplified, a project of its own so that counts are the PyPI flow's alone
PYPI_TOKEN, PYPI_SECRET, PYPI_SA = "PYPITOKEN", "PYPISECRET", "sa.pypi"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("identity-e2e") / "data"
    seed_catalog(data_dir)  # project 4242, Simplified, the token page.html uses
    seed_catalog(
        data_dir,
        project_id=ORIGINAL_PROJECT,
        token=ORIGINAL_TOKEN,
        secret=ORIGINAL_SECRET,
        api_key="ORIGKEY",
        id_merge=IdMerge.ORIGINAL,
        sa_user=ORIGINAL_SA,
    )
    seed_catalog(
        data_dir, project_id=PYPI_PROJECT, token=PYPI_TOKEN, secret=PYPI_SECRET, api_key="PYPIKEY", sa_user=PYPI_SA
    )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: run `bash scripts/install-test-deps`"
    return found


def _run_browser(api_url: str) -> dict[str, Any]:
    assert (SDK_DIST / "mixpanel.module.js").exists(), "npm mixpanel-browser missing: run scripts/install-test-deps"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        driver_input = {
            "chromium": _tool("chromium"),
            "page": f"http://127.0.0.1:{httpd.server_address[1]}/page.html",
            "api": api_url,
            "runs": [{"name": "identity", "cfg": {}}],
            "timeout_ms": 10_000,
        }
        proc = subprocess.run(
            [_tool("node"), str(BROWSER_DIR / "driver.js"), json.dumps(driver_input)],
            cwd=BROWSER_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 0, proc.stderr[-4000:]
    run: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])["runs"][0]
    assert run["settled"] and run["page_errors"] == [], run
    return run


def _wait_for_events(base: str, project_id: int, auth: tuple[str, str], count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        lines = export(base, project_id=project_id, auth=auth)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def _query(base: str, path: str, project_id: int, auth: tuple[str, str], **params: str) -> Any:
    response = httpx.get(f"{base}/api/2.0/{path}", params={"project_id": str(project_id), **params}, auth=auth)
    assert response.status_code == 200, response.text
    return response.json()


def _assert_one_user(
    base: str, project_id: int, auth: tuple[str, str], before: str, after: str, user_id: str, plan: str
) -> None:
    """The facts that workflow needs: one user across the identify, found by the user id."""
    day = today()
    dates = {"from_date": day, "to_date": day}
    for event in (before, after):
        seg = _query(base, "segmentation", project_id, auth, event=event, type="unique", unit="day", **dates)
        assert seg["data"]["values"] == {event: {day: 1}}, seg
        # The one unique user of each event is the user id, so both events count the same user.
        by_id = _query(
            base,
            "segmentation",
            project_id,
            auth,
            event=event,
            type="unique",
            unit="day",
            on='properties["$distinct_id"]',
            **dates,
        )
        assert by_id["data"]["values"] == {user_id: {day: 1}}, by_id

    created = httpx.post(
        f"{base}/api/app/projects/{project_id}/funnels",
        json={"name": f"identity {uuid.uuid4().hex[:8]}", "steps": [{"event": before}, {"event": after}]},
        auth=auth,
    )
    assert created.status_code in (200, 201), created.text
    funnel_id = created.json()["results"]["funnel_id"]
    funnel = _query(base, "funnels", project_id, auth, funnel_id=str(funnel_id), unit="day", **dates)
    steps = funnel["data"][day]["steps"]
    assert [s["count"] for s in steps] == [1, 1], funnel  # the anonymous step converts after identify

    engage = _query(base, "engage", project_id, auth, distinct_id=user_id)
    assert [r["$distinct_id"] for r in engage["results"]] == [user_id], engage
    assert engage["results"][0]["$properties"]["plan"] == plan

    # The whole history of the user, by the user id (https://developer.mixpanel.com/reference/raw-event-export, `where` on `properties["$distinct_id"]`).
    history = export(base, project_id=project_id, auth=auth, where=f'properties["$distinct_id"] == "{user_id}"')
    assert {line["event"] for line in history} >= {before, after}


def test_browser_identify_gives_one_user(api: ServerProcess) -> None:
    run = _run_browser(api.url)
    device = f"$device:{run['device_id']}"
    auth = (SA_USER, SA_SECRET)
    lines = _wait_for_events(api.url, PROJECT_ID, auth, 6)
    by_event = {line["event"]: line["properties"] for line in lines}
    # Anonymous events were re-attributed to the user; export says so.
    assert by_event["Page Viewed"]["distinct_id"] == BROWSER_USER
    assert by_event["Page Viewed"]["$distinct_id_before_identity"] == device
    assert "$distinct_id_before_identity" not in by_event["Purchase"]
    _assert_one_user(api.url, PROJECT_ID, auth, "Page Viewed", "Purchase", BROWSER_USER, "pro")


def test_pypi_sdk_simplified_import_gives_one_user(api: ServerProcess) -> None:
    consumer = Consumer(request_timeout=10, import_url=f"{api.url}/import", people_url=f"{api.url}/engage")
    mp = Mixpanel(PYPI_TOKEN, consumer=consumer)
    now = int(time.time())
    device, user = uuid.uuid4().hex, "customer-42"
    # import_data needs a distinct_id argument; Simplified derives the stored one from $device_id / $user_id.
    mp.import_data(None, "ignored", "Page Viewed", now - 120, {"$device_id": device}, api_secret=PYPI_SECRET)
    mp.import_data(
        None, "ignored", "Purchase", now - 60, {"$device_id": device, "$user_id": user}, api_secret=PYPI_SECRET
    )
    mp.people_set(user, {"plan": "team"})
    _assert_one_user(api.url, PYPI_PROJECT, (PYPI_SA, SA_SECRET), "Page Viewed", "Purchase", user, "team")


def test_pypi_sdk_original_identify_gives_one_user(api: ServerProcess) -> None:
    consumer = Consumer(
        request_timeout=10,
        events_url=f"{api.url}/track",
        import_url=f"{api.url}/import",
        people_url=f"{api.url}/engage",
    )
    mp = Mixpanel(ORIGINAL_TOKEN, consumer=consumer)
    anon, user = str(uuid.uuid4()), "customer-7"
    mp.track(anon, "Page Viewed")
    mp.people_set(anon, {"plan": "trial", "source": "ad"})  # a profile made before identify is folded in
    mp.import_data(
        None,
        user,
        "$identify",
        int(time.time()),
        {"$identified_id": user, "$anon_id": anon},
        api_secret=ORIGINAL_SECRET,
    )
    mp.track(user, "Purchase")
    mp.people_set(user, {"plan": "pro"})
    _assert_one_user(api.url, ORIGINAL_PROJECT, (ORIGINAL_SA, SA_SECRET), "Page Viewed", "Purchase", user, "pro")
    engage = _query(api.url, "engage", ORIGINAL_PROJECT, (ORIGINAL_SA, SA_SECRET), distinct_id=user)
    assert engage["results"][0]["$properties"]["source"] == "ad"
