"""The served process freezes its start-up heap out of the garbage collector's scans (mixhouse/heap.py):
checked on a real server's log, and the freeze itself in a fresh interpreter (never in the test process,
whose objects it would keep forever)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.server import ServerProcess, seed_catalog


class InfoLogServer(ServerProcess):
    def serve_args(self) -> list[str]:
        return [*super().serve_args(), "--log-level", "info"]


def test_a_server_freezes_its_start_up_objects(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    server = InfoLogServer(data_dir).start(timeout=60)
    try:
        deadline = time.monotonic() + 30
        while "start-up objects out of the garbage collector" not in server.log_path.read_text():
            assert time.monotonic() < deadline, server.log_path.read_text()[-2000:]
            time.sleep(0.1)
        line = next(x for x in server.log_path.read_text().splitlines() if "start-up objects" in x)
        frozen = int(line.split("froze ", 1)[1].split(" ", 1)[0])
        assert frozen > 10_000  # the web stack, the bindings and the kernels
    finally:
        server.stop()


def test_the_freeze_waits_for_the_warm_up_and_runs_once() -> None:
    script = (
        "import gc, threading\n"
        "from mixhouse import heap\n"
        "warmed = []\n"
        "def warm():\n"
        "    warmed.append([object() for _ in range(3)])\n"
        "heap.freeze_after(warm).join()\n"
        "first = gc.get_freeze_count()\n"
        "assert warmed and first > 1000, first\n"
        "heap.freeze_after(warm).join()\n"
        "assert len(warmed) == 1, 'a second start in the same process neither warms nor freezes again'\n"
        "print(first)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 1000
