"""`/flags` throughput for one context over 50 flags, and `/flags/definitions` latency.

    .venv/bin/python -m bench.bench_flags [--flags 50] [--seconds 10] [--connections 16]

A real server on a fresh data dir, 50 enabled flags of every kind (multivariate with variant_splits,
JsonLogic rules, legacy definitions, QA testers, 5 cohort-targeted), one context with custom properties.
`/flags` is driven by wrk (Debian's `wrk`) when installed, else by a Python load generator (threads of
httpx clients, which measures the client as much as the server). Prints requests/s and latency
percentiles, the `/flags/definitions` median and p99 of sequential requests, and the load average
(the benchmark machine may be shared)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.common import machine
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, TOKEN, ServerProcess, seed_catalog

SA = (SA_USER, SA_SECRET)
BASIC = "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
CONTEXT = {"distinct_id": "u3", "device_id": "device-77",
           "custom_properties": {"plan": "Pro", "age": 31, "country": "US", "app_version": "2.4.1"}}  # fmt: skip
VARIANTS = [
    {"key": "control", "value": False, "is_control": True, "split": 0.5},
    {"key": "treatment", "value": True, "is_control": False, "split": 0.3},
    {"key": "z", "value": {"layout": "grid"}, "is_control": False, "split": 0.2},
]


def flag(i: int, cohort_id: int) -> dict[str, Any]:
    kind = i % 5
    rollout: dict[str, Any] = {"rollout_percentage": 0.9}
    if kind == 1:
        rollout["runtime_evaluation_rule"] = {"and": [{"==": [{"var": "plan"}, "pro"]}, {">=": [{"var": "age"}, 18]}]}
    elif kind == 2:
        rollout["runtime_evaluation_definition"] = {"country": "us"}
    elif kind == 3:
        rollout["variant_splits"] = {"control": 0.2, "treatment": 0.2, "z": 0.6}
    elif kind == 4 and i < 25:
        rollout["cohort_hash"] = str(cohort_id)
    ruleset: dict[str, Any] = {"variants": VARIANTS, "rollout": [{"rollout_percentage": 0.05}, rollout]}
    if kind == 0:
        ruleset["test"] = {"users": {"qa-1": "z", "qa-2": "control"}}
    return {"name": f"Flag {i}", "key": f"flag_{i:03d}", "status": "enabled", "ruleset": ruleset,
            "hash_salt": f"salt{i}", "experiment_id": f"exp-{i}", "is_experiment_active": True}  # fmt: skip


def setup(base: str, count: int) -> None:
    with httpx.Client(base_url=base, timeout=60) as c:
        profiles = [{"$token": TOKEN, "$distinct_id": f"u{i}", "$set": {"plan": "pro" if i % 3 == 0 else "free"}}
                    for i in range(30)]  # fmt: skip
        assert c.post("/engage", json=profiles, params={"verbose": "1"}).json()["status"] == 1
        cohort = c.post(f"/api/app/projects/{PROJECT_ID}/cohorts", auth=SA,
                        json={"name": "pro", "filter": 'user["plan"] == "pro"'}).json()["results"]["id"]  # fmt: skip
        for i in range(count):
            r = c.post(f"/api/app/projects/{PROJECT_ID}/feature-flags", json=flag(i, cohort), auth=SA)
            assert r.status_code == 200, r.text


def with_wrk(url: str, seconds: int, connections: int) -> dict[str, str]:
    wrk = shutil.which("wrk")
    assert wrk is not None
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Authorization: {BASIC}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    figures = {"requests/s": re.search(r"Requests/sec:\s+([\d.]+)", out), "errors": re.search(r"Non-2xx.*?(\d+)", out)}
    for p in ("50%", "99%"):
        figures[f"latency p{p[:-1]}"] = re.search(rf"^\s+{p}\s+(\S+)", out, re.M)
    return {k: (m.group(1) if m else "0" if k == "errors" else "?") for k, m in figures.items()}


def with_python(url: str, seconds: int, connections: int) -> dict[str, str]:
    done, latencies, lock = time.monotonic() + seconds, [], threading.Lock()

    def worker() -> None:
        with httpx.Client(headers={"Authorization": BASIC}) as c:
            while time.monotonic() < done:
                t = time.perf_counter()
                assert c.get(url).status_code == 200
                with lock:
                    latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q = statistics.quantiles(latencies, n=100)
    return {"requests/s": f"{len(latencies) / seconds:.0f}", "latency p50": f"{q[49] * 1000:.2f}ms",
            "latency p99": f"{q[98] * 1000:.2f}ms", "errors": "0"}  # fmt: skip


def definitions_latency(base: str, runs: int = 300) -> tuple[float, float, int]:
    times = []
    with httpx.Client(base_url=base, headers={"Authorization": BASIC}) as c:
        size = len(c.get("/flags/definitions").content)
        for _ in range(runs):
            t = time.perf_counter()
            assert c.get("/flags/definitions").status_code == 200
            times.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(times, n=100)
    return q[49], q[98], size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python", action="store_true", help="the Python load generator even if wrk is installed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        seed_catalog(data_dir)
        server = ServerProcess(data_dir).start()
        try:
            setup(server.url, args.flags)
            url = f"{server.url}/flags?" + urlencode({"context": json.dumps(CONTEXT), "token": TOKEN})
            with httpx.Client() as c:
                answer = c.get(url, headers={"Authorization": BASIC}).json()["flags"]
            tool = "python" if args.python or not shutil.which("wrk") else "wrk"
            run = with_python if tool == "python" else with_wrk
            run(url, 2, args.connections)  # warm-up (cohort membership computed, definitions compiled)
            figures = run(url, args.seconds, args.connections)
            p50, p99, size = definitions_latency(server.url)
        finally:
            server.stop()
    print(f"machine: {machine()}; load average before/after: {os.getloadavg()[0]:.1f} (shared machine)")
    print(f"/flags, one context, {args.flags} flags ({len(answer)} served to it), {tool}, "
          f"{args.connections} connections, {args.seconds} s:")  # fmt: skip
    for k, v in figures.items():
        print(f"  {k}: {v}")
    print(f"/flags/definitions ({args.flags} flags, {size} bytes), sequential: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
