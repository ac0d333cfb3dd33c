"""`mixhouse migrate --from DIR --to-engine chdb` (real processes): an embedded data dir served on DuckDB,
migrated into chDB and served again, gives the same answers to a fixed set of queries (export byte for
byte, segmentation with and without `on`, a saved funnel, retention, engage, a group profile); a migration
killed with SIGKILL mid-copy and run again gives the same answers, with no event stored twice."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.funnel_helpers import save_funnel
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, import_events, seed_catalog

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z, a fixed historical date
AUTH = (SA_USER, SA_SECRET)
DATES = {"from_date": "2024-01-01", "to_date": "2024-01-10"}


def _events() -> list[dict[str, object]]:
    rng = random.Random(2222)
    out: list[dict[str, object]] = []
    for i in range(900):
        user = f"user-{rng.randrange(60)}"
        props: dict[str, object] = {
            "time": T0 + rng.randrange(8 * 86_400),
            "distinct_id": user,
            "$insert_id": f"i{i % 870}",
            "plan": rng.choice(["free", "pro", "team", None]),
            "amount": rng.choice([1, 2.5, 10, "7"]),
            "tags": rng.sample(["a", "b", 'q"uote', "naïve"], k=rng.randrange(3)),
        }
        if i % 40 == 0:  # a device, identified later (Simplified ID Merge)
            props["$device_id"] = f"dev-{i}"
            props["distinct_id"] = f"$device:dev-{i}"
        if i % 40 == 1:
            props["$device_id"] = f"dev-{i - 1}"
            props["$user_id"] = user
        out.append({"event": rng.choice(["view", "signup", "buy", "Événement"]), "properties": props})
    return out + [dict(e) for e in out[:30]]  # re-sends: collapsed in reports, every copy exported


def _queries(url: str, funnel_id: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    queries: list[tuple[str, str, dict[str, Any]]] = [
        ("segmentation", "segmentation", {"event": "view", **DATES}),
        ("segmentation on", "segmentation", {"event": "buy", "on": 'properties["plan"]', "type": "unique", **DATES}),
        ("segmentation on user", "segmentation", {"event": "view", "on": 'user["tier"]', **DATES}),
        ("funnel", "funnels", {"funnel_id": funnel_id, **DATES}),
        ("retention", "retention", {"born_event": "signup", "event": "buy", "unit": "day", **DATES}),
    ]
    for name, path, params in queries:
        r = httpx.get(f"{url}/api/query/{path}", params={"project_id": PROJECT_ID, **params}, auth=AUTH, timeout=60)
        assert r.status_code == 200, (name, r.text)
        body = r.json()
        if isinstance(body, dict):
            body.pop("computed_at", None)
        answers[name] = body
    r = httpx.post(
        f"{url}/api/query/engage",
        params={"project_id": PROJECT_ID},
        data={"where": 'properties["tier"] == "gold"'},
        auth=AUTH,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    engage = r.json()
    engage.pop("computed_at", None)
    engage.pop("session_id", None)
    answers["engage"] = engage
    r = httpx.get(f"{url}/api/2.0/export", params={"project_id": PROJECT_ID, **DATES}, auth=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    answers["export"] = r.content
    return answers


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], int]]:
    """A data dir written by a DuckDB server (stopped), and that server's answers."""
    data_dir = tmp_path_factory.mktemp("migrate") / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    try:
        events = _events()
        import_events(server.url, events, 300)
        updates = [
            {"$token": TOKEN, "$distinct_id": f"user-{n}", "$set": {"tier": ["gold", "silver"][n % 2]}}
            for n in range(60)
        ]
        r = httpx.post(f"{server.url}/engage", data={"data": orjson.dumps(updates).decode()}, timeout=60)
        assert r.status_code == 200 and r.text == "1", r.text
        group = [{"$token": TOKEN, "$group_key": "company", "$group_id": "acme", "$set": {"seats": 12}}]
        r = httpx.post(f"{server.url}/groups", data={"data": orjson.dumps(group).decode()}, timeout=60)
        assert r.status_code == 200 and r.text == "1", r.text
        funnel_id = save_funnel(server.url, {"name": "migrated", "steps": ["view", "signup", "buy"]})
        answers = _queries(server.url, funnel_id)
        answers["group"] = _group(server.url)
    finally:
        server.stop()
    assert answers["export"].count(b"\n") == 930
    yield data_dir, answers, funnel_id


def _group(url: str) -> Any:
    r = httpx.post(
        f"{url}/api/query/engage",
        params={"project_id": PROJECT_ID},
        data={"data_group_id": "company"},
        auth=AUTH,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["results"]


def _migrate(data_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mixhouse", "migrate", "--from", str(data_dir), "--to-engine", "chdb", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _served_on_chdb(data_dir: Path, funnel_id: int) -> dict[str, Any]:
    server = ServerProcess(data_dir, env={"MIXHOUSE_ENGINE": "chdb"}).start()
    try:
        answers = _queries(server.url, funnel_id)
        answers["group"] = _group(server.url)
        return answers
    finally:
        server.stop()


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], name
    assert before["funnel"] and before["engage"]["results"]  # not trivially equal


def test_a_migrated_data_dir_gives_the_same_answers_on_chdb(
    embedded: tuple[Path, dict[str, Any], int], tmp_path: Path
) -> None:
    source, before, funnel_id = embedded
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    done = _migrate(data_dir, "--batch-rows", "200")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err.decode()
    summary = orjson.loads(out)
    assert summary["rows_copied"]["events"] == 930
    assert summary["rows_copied"]["profiles"] == 60
    assert b"migrate: events 930/930 rows (100%" in err  # progress in the log
    _assert_same(before, _served_on_chdb(data_dir, funnel_id))


def test_a_migration_killed_mid_copy_and_run_again_gives_the_same_answers(
    embedded: tuple[Path, dict[str, Any], int], tmp_path: Path
) -> None:
    source, before, funnel_id = embedded
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    progress = data_dir / "migrate-chdb.json"
    # small batches with a pause after each insert, before its position is written: SIGKILL lands there
    running = _migrate(data_dir, "--batch-rows", "50", "--drill-pause-seconds", "0.1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if progress.exists() and orjson.loads(progress.read_bytes())["tables"].get("events", 0) > 300:
            break
        assert running.poll() is None, running.communicate()[1].decode()
        time.sleep(0.02)
    os.kill(running.pid, signal.SIGKILL)
    running.communicate(timeout=30)
    state = orjson.loads(progress.read_bytes())
    assert not state["done"] and state["tables"]["events"] < 930
    rerun = _migrate(data_dir, "--batch-rows", "50")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    assert 0 < orjson.loads(out)["rows_copied"]["events"] < 930
    assert orjson.loads(progress.read_bytes())["done"]
    _assert_same(before, _served_on_chdb(data_dir, funnel_id))  # export byte-identical: no event twice


def test_a_data_dir_without_an_embedded_store_is_refused(tmp_path: Path) -> None:
    done = _migrate(tmp_path)
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 1
    assert "holds no embedded event store" in orjson.loads(out)["error"]
