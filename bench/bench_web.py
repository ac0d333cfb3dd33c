"""Time to first report in the web app, and its page weight, in Debian's headless Chromium against a real
server on loopback.

    .venv/bin/python -m bench.bench_web                        # 200k events, quick
    .venv/bin/python -m bench.bench_web --events 10000000      # the real run

Events come from bench_segmentation's loader (one SQL INSERT into a fresh data dir: 4 event names over 30
days of January 2024, plan, browser, amount, tags, 1% duplicates, 10% merged users). A user made with
`mixhouse users create` logs in once; then each run opens a fresh tab at a report's URL and stops the clock
(`performance.now()`, from navigation start) when the report's numbers and chart are on the page:

- Insights: Viewed Page over the 30 days by day, broken down by plan (3 API calls: event names, property
  names, segmentation, the last asked for at once);
- the same report saved, opened from a dashboard (`/insights?bookmark_id=`).

Page weight: the page, its CSS and scripts (decoded and as sent, gzip) and the API replies of one load.
Each report is timed cold (every request sent, the browser's cache kept out) and cached (a returning
visitor: the page's scripts and styles, named by content hash, come from the browser's cache). The time is
split into the page's share (navigation until its first Query or App API request leaves: page, styles,
scripts, `/web/session`) and the queries' share (from there until the chart is drawn).
Prints medians of --repeat runs, after one warm-up run each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.bench_segmentation import PROJECT, load
from bench.common import cpu_seconds, machine
from mixhouse.catalog import Catalog
from mixhouse.engine.duckdb import DuckDBEngine
from tests.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "tests" / "browser" / "node_modules"
EMAIL, PASSWORD = "bench@example.com", "bench-password"
QUERY = {
    "event": "Viewed Page",
    "from_date": "2024-01-01",
    "to_date": "2024-01-30",
    "unit": "day",
    "on": 'properties["plan"]',
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="a folder to keep the loaded data dir in between runs")
    parser.add_argument("--timeline", action="store_true", help="print the requests of the last run, with their times")
    args = parser.parse_args()
    chromium, node = shutil.which("chromium"), shutil.which("node")
    assert chromium and node and NODE_MODULES.exists(), "run `bash scripts/install-test-deps` first"

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        kept = args.keep / f"web-{args.events}-{args.profiles}" if args.keep else None
        if kept is not None and (kept / "data").exists():
            shutil.copytree(kept / "data", data_dir)
        else:
            Catalog(data_dir).create_project(project_id=PROJECT, name="bench", token="T", secret="S", api_key="K")
            engine = DuckDBEngine(data_dir)
            load(engine, args.events, args.profiles)
            engine.close()
            # The rows went in by SQL, past the writer: the upgrade a server runs at start fills their
            # property columns (as for any store), here rather than inside the server's start timeout.
            DuckDBEngine(data_dir).close()
            created = subprocess.run(
                [sys.executable, "-m", "mixhouse", "users", "create", "--data-dir", str(data_dir), "--email", EMAIL,
                 "--password", PASSWORD, "--project", str(PROJECT), "--role", "owner"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            assert created.returncode == 0
            if kept is not None:
                shutil.copytree(data_dir, kept / "data")
        server = ServerProcess(data_dir).start(timeout=600)
        cpu_before = server_cpu_seconds(server)
        try:
            saved = httpx.post(
                f"{server.url}/api/app/projects/{PROJECT}/bookmarks",
                json={"name": "Views by plan", "query": {k: v for k, v in QUERY.items()}},
                auth=("S", ""),
            ).json()["results"]
            dashboard = httpx.post(
                f"{server.url}/api/app/projects/{PROJECT}/dashboards",
                json={"name": "Bench", "items": [{"type": "bookmark", "id": saved["id"]}]},
                auth=("S", ""),
            ).json()["results"]
            insights = "#/insights?event=Viewed%20Page&from=2024-01-01&to=2024-01-30&unit=day&on=plan"
            driver_input = {
                "chromium": chromium,
                "base": server.url,
                "email": EMAIL,
                "password": PASSWORD,
                "repeat": args.repeat,
                "reports": [
                    {"name": "Insights by plan", "hash": insights, "ready": "#result[data-loaded] canvas"},
                    {"name": "Dashboard", "hash": f"#/dashboards/{dashboard['id']}", "ready": "[data-bookmark] canvas"},
                ],
            }
            proc = subprocess.run(
                [node, str(Path(__file__).parent / "web_first_report.js"), json.dumps(driver_input)],
                capture_output=True, text=True, check=False, env={"NODE_PATH": str(NODE_MODULES), "PATH": "/usr/bin:/bin"},
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-3000:]
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            cpu = server_cpu_seconds(server) - cpu_before
        finally:
            server.stop()

    print(machine())
    print(f"{args.events:,} events (+1% duplicates), {args.profiles:,} profiles; medians of {args.repeat} cold tabs")
    loads = len(out["runs"]) * (args.repeat + 1)
    print(f"server CPU time: {cpu:.1f} s over {loads} page loads ({cpu / loads * 1000:.0f} ms a load; shared machine)")
    print("first report = page share (until its first report request leaves) + query share (the rest)")
    for name, runs in out["runs"].items():
        w = out["weight"][name]
        share = out["page_share"][name]
        queries = [r - p for r, p in zip(runs, share, strict=True)]
        print(
            f"{name:<27} first report {statistics.median(runs):6.0f} ms (min {min(runs):.0f}, max {max(runs):.0f})"
            f" = page {statistics.median(share):4.0f} ms (min {min(share):.0f}, max {max(share):.0f})"
            f" + queries {statistics.median(queries):5.0f} ms (min {min(queries):.0f}, max {max(queries):.0f})"
            f" | page {w['static_bytes'] / 1024:.1f} KB, {w['static_encoded'] / 1024:.1f} KB sent"
            f" | API replies {w['api_encoded'] / 1024:.1f} KB | {w['requests']} requests"
        )
        if args.timeline:
            for name_, start, end in w["timeline"]:
                print(f"    {start:6d} -> {end:6d} ms  {name_}")


def server_cpu_seconds(server: ServerProcess) -> float:
    assert server.proc is not None
    return cpu_seconds(server.proc.pid)


if __name__ == "__main__":
    main()
