"""The served heap (mixhouse/heap.py): frozen after start-up, the youngest generation collected less often,
and cycles made afterwards still collected without anyone calling gc.collect()."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixhouse.errors import SettingsError
from mixhouse.settings import Settings, load_settings

PROBE = """
import gc, weakref
from mixhouse import heap
heap.freeze_after(lambda: None).join()
print(gc.get_threshold()[0], gc.get_freeze_count() > 0)

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

probe = cycle()  # garbage at once, kept alive only by its cycle
print(probe() is not None)
keep = [[] for _ in range(heap.YOUNG_COLLECTION_ALLOCATIONS * 3)]  # allocations that trigger collections
print(probe() is None)
"""


def test_frozen_heap_collects_the_young_generation_less_often_and_still_frees_cycles() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["50000", "True", "True", "True"]


SWITCH_PROBE = """
import asyncio, sys
from pathlib import Path
from mixhouse.http.app import create_app
from mixhouse.settings import Settings, load_settings
from tests.server import seed_catalog

data_dir = Path(sys.argv[1])
seed_catalog(data_dir)
settings = load_settings({"data_dir": data_dir})  # MIXHOUSE_SWITCH_INTERVAL_SECONDS from the environment
app = create_app(settings, geoip="off")

async def serve() -> float:
    async with app.router.lifespan_context(app):
        return sys.getswitchinterval()

before = sys.getswitchinterval()
print(before, asyncio.run(serve()))
"""


def _served_switch_interval(tmp_path: Path, value: str | None) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "MIXHOUSE_SWITCH_INTERVAL_SECONDS"}
    if value is not None:
        env["MIXHOUSE_SWITCH_INTERVAL_SECONDS"] = value
    done = subprocess.run(
        [sys.executable, "-c", SWITCH_PROBE, str(tmp_path / value_dir(value) / "data")],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    return [float(x) for x in done.stdout.split()]


def value_dir(value: str | None) -> str:
    return "default" if value is None else value.replace(".", "_")


def test_the_served_interpreter_hands_its_lock_over_at_the_setting(tmp_path: Path) -> None:
    """The server sets the interpreter's switch interval once at start to MIXHOUSE_SWITCH_INTERVAL_SECONDS
    (default CPython's 5 ms); a value the interpreter refuses (0) stops the start with one line."""
    assert _served_switch_interval(tmp_path, "0.0002") == pytest.approx([0.005, 0.0002])
    assert Settings().switch_interval_seconds == 0.005
    with pytest.raises(SettingsError, match="MIXHOUSE_SWITCH_INTERVAL_SECONDS must be a positive number of seconds"):
        load_settings({"data_dir": tmp_path}, env={"MIXHOUSE_SWITCH_INTERVAL_SECONDS": "0"})
