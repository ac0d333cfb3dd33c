"""PyPI `pipelinewise-tap-mixpanel` 1.2.0 (Singer, PipelineWise's fork of tap-mixpanel), unmodified, its own
console script in a venv of its own. The redirect is tap-mixpanel's: `drivers/sitecustomize/sitecustomize.py`
on PYTHONPATH rewrites `https://(*.)mixpanel.com` URLs in `requests`.

Runs discovery, then a sync of the `revenue` stream (`/api/2.0/engage/revenue`, one record per day, the
`$overall` key skipped by the tap) and the `engage` stream. The tap clamps `start_date` to one year back, so
the charges here are dated relative to the run (20 and 19 days back), never near the window's edges."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.support import DRIVERS_DIR, PROFILES, RUN_TIMEOUT_S, load_data_set, start_server, venv_python
from tests.server import SECRET, TOKEN, ServerProcess

SYNCED = ("revenue", "engage")


def tap(server: ServerProcess, folder: Path, *args: str) -> str:
    exe = venv_python("pipelinewise-tap-mixpanel").parent / "tap-mixpanel"
    env = {**os.environ, "MP_BASE": server.url, "PYTHONPATH": str(DRIVERS_DIR / "sitecustomize")}
    done = subprocess.run(
        [str(exe), *args], env=env, cwd=folder, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def select(catalog: dict[str, Any], streams: tuple[str, ...]) -> dict[str, Any]:
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in streams
    return catalog


def records(stdout: str, stream: str) -> list[dict[str, Any]]:
    messages = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    venv_python("pipelinewise-tap-mixpanel")
    folder = tmp_path_factory.mktemp("pipelinewise")
    server = start_server(folder / "data")
    try:
        load_data_set(server.url)
        now = datetime.now(UTC)
        day1, day2 = (now - timedelta(days=20)).date(), (now - timedelta(days=19)).date()
        charges = [
            ("u1", 9.5, f"{day1}T10:00:00"),
            ("u2", 20, f"{day1}T11:00:00"),
            ("u1", 5, f"{day2}T09:00:00"),
        ]
        updates = [
            {"$token": TOKEN, "$distinct_id": who, "$append": {"$transactions": {"$amount": amount, "$time": when}}}
            for who, amount, when in charges
        ]
        response = httpx.post(f"{server.url}/engage", json=updates, params={"verbose": "1"}, timeout=60)
        assert response.status_code == 200 and response.json()["status"] == 1, response.text
        config = {
            "api_secret": SECRET,
            "project_timezone": "UTC",
            "attribution_window": 5,
            "start_date": f"{now - timedelta(days=25):%Y-%m-%d}T00:00:00Z",
            "user_agent": "mixhouse-tests",
            "date_window_size": 60,
            "select_properties_by_default": "true",
        }
        (folder / "config.json").write_text(json.dumps(config))
        catalog = json.loads(tap(server, folder, "--config", "config.json", "--discover"))
        (folder / "catalog.json").write_text(json.dumps(select(catalog, SYNCED)))
        sync = tap(server, folder, "--config", "config.json", "--catalog", "catalog.json")
        yield {"catalog": catalog, "sync": sync, "days": (day1.isoformat(), day2.isoformat()), "now": now}
    finally:
        server.stop()


def test_discovery_lists_the_revenue_stream(run: dict[str, Any]) -> None:
    streams = {s["tap_stream_id"]: s for s in run["catalog"]["streams"]}
    assert {"revenue", "engage", "export", "funnels", "cohorts"} <= set(streams)
    assert {"date", "amount", "count", "paid_count"} <= set(streams["revenue"]["schema"]["properties"])


def test_revenue_stream_syncs(run: dict[str, Any]) -> None:
    got = {r["date"]: r for r in records(run["sync"], "revenue")}
    day1, day2 = run["days"]
    assert (got[day1]["amount"], got[day1]["count"], got[day1]["paid_count"]) == (29.5, 2, 2)
    assert (got[day2]["amount"], got[day2]["count"], got[day2]["paid_count"]) == (5, 1, 1)
    assert got[day1]["datetime"].startswith(day1)
    # every other day of the synced range is there, with zeros; no `$overall` record
    assert "$overall" not in got
    assert all(r["amount"] == 0 and r["count"] == 0 for d, r in got.items() if d not in (day1, day2))
    assert len(got) >= 20


def test_engage_stream_syncs(run: dict[str, Any]) -> None:
    got = {r["distinct_id"]: r for r in records(run["sync"], "engage")}
    assert set(got) == set(PROFILES)
    assert got["u1"]["mp_reserved_email"] == "u1@example.com"
