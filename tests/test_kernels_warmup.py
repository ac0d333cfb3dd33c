"""A server whose query kernels are not compiled yet (a fresh install that skipped the install step)
says so: a log line before and after the compile, `/readyz` lists them under `warming` while taking
reads and writes, and a funnel that arrives meanwhile waits for them (logged) and then answers.

Once warm, queries compile nothing more: a kernel compiled during a query writes numba's cache while
other processes read it, and two processes that compile new signatures of one kernel at once can leave
an index that names the other's code (numba's cache files carry no check of what they hold)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.funnel_helpers import load, query, save_funnel
from tests.server import ServerProcess, seed_catalog


def test_a_compile_at_start_is_announced_and_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty numba cache of its own: this server compiles, the shared cache stays as it is.
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = ServerProcess(data_dir).start()
    try:
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["status"] == "ok"
        assert "compiling the query kernels" in ready["warming"][0]
        t0 = 1_704_880_800_000  # 2024-01-10 10:00 UTC
        load(server.url, [{"event": step, "distinct_id": "u1", "time": t0 + i} for i, step in enumerate("AB")])
        funnel_id = save_funnel(server.url, {"name": "warm", "steps": [{"event": "A"}, {"event": "B"}]})
        answer = query(server.url, "funnels", funnel_id=funnel_id, from_date="2024-01-10", to_date="2024-01-10")
        assert answer["data"]["2024-01-10"]["steps"][1]["count"] == 1  # waited for the compile, then answered
        deadline = time.monotonic() + 120
        while httpx.get(f"{server.url}/readyz").json() != {"status": "ok"}:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        compiled = _cache_files(tmp_path / "numba-cache")
        # Every shape of input the funnels hand the kernels: merged ids (the alias table), totals, and a
        # breakdown (a fifth column).
        load(
            server.url,
            [
                {"event": "A", "distinct_id": "$device:d1", "time": t0 + 10, "$device_id": "d1"},
                {"event": "B", "distinct_id": "u2", "time": t0 + 20, "$device_id": "d1", "$user_id": "u2"},
            ],
        )
        for definition, params in [
            ({"steps": [{"event": "A"}, {"event": "B"}]}, {}),
            ({"steps": [{"event": "A"}, {"event": "B"}], "counting": "totals"}, {}),
            ({"steps": [{"event": "A"}, {"event": "B"}]}, {"on": 'properties["$device_id"]'}),
        ]:
            funnel_id = save_funnel(server.url, {"name": f"shape {len(params)}", **definition})
            answer = query(
                server.url, "funnels", funnel_id=funnel_id, from_date="2024-01-10", to_date="2024-01-10", **params
            )
            assert answer["data"]
        merged = query(server.url, "funnels", funnel_id=funnel_id - 2, from_date="2024-01-10", to_date="2024-01-10")
        assert merged["data"]["2024-01-10"]["steps"][1]["count"] == 2  # u1, and d1 merged into u2
        assert _cache_files(tmp_path / "numba-cache") == compiled
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "compiling the query kernels (once per install" in log
    assert "a query waits for the query kernels" in log
    assert "query kernels compiled in" in log
    assert any((tmp_path / "numba-cache").rglob("*.nbi"))  # compiled into its own cache


def _cache_files(folder: Path) -> dict[str, int]:
    """numba's cache, file by file: an index grows by a signature, and gets a data file, per compile."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
