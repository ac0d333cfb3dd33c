"""Shared pieces of the benchmarks: a real server on a temp dir, event generators, medians."""

from __future__ import annotations

import platform
import statistics
from pathlib import Path

import psutil

from tests.server import ServerProcess, seed_catalog


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def start_server(tmp: Path) -> ServerProcess:
    data_dir = tmp / "data"
    if not data_dir.exists():
        seed_catalog(data_dir)
    return ServerProcess(data_dir).start()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its living child processes so far (a server's /import worker
    processes, mixhouse/workers): on a shared machine, what a server spent, apart from the wall time others'
    load adds."""
    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set size (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def event(i: int, *, base_time: int = 1704067200, users: int = 100_000) -> dict[str, object]:
    return {
        "event": ("Viewed Page", "Signed Up", "Purchase", "Added To Cart")[i % 4],
        "properties": {
            "distinct_id": f"user-{(i * 7919) % users}",
            "time": base_time + i % 86_400 * 10,
            "$insert_id": f"ins-{i}",
            "$browser": ("Chrome", "Firefox", "Safari")[i % 3],
            "plan": ("free", "pro", "team")[i % 3],
            "amount": (i % 100) + 0.5,
            "$current_url": f"https://example.com/page/{i % 50}",
        },
    }


def median(values: list[float]) -> float:
    return statistics.median(values)
