"""JQL next to the Query API asking the same question, over HTTP against a real server process.

    .venv/bin/python -m bench.bench_jql                       # 1M events, 100k users
    .venv/bin/python -m bench.bench_jql --events 10000000 --profiles 1000000

The data set is bench_segmentation's (one SQL INSERT into a fresh data dir: 4 event names over 30 days,
1% duplicate insert ids, 10% of users merged). Three questions, each as a JQL script and as the
equivalent report:

  events by name     Events().groupBy(["name"], count)          /events?event=[4 names]&unit=month
  unique users       groupByUser(null) -> reduce(count)         /segmentation?type=unique&unit=month
  purchases by plan  join(Events, People).groupBy([plan], count)  /segmentation?on=user["plan"]&unit=month

Prints, per query, the median latency of --repeat runs and the server's resident memory before and at its
peak (VmHWM; a fresh server for each query), and checks that both answers agree.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.bench_segmentation import DATES, PROJECT, load
from bench.common import machine, peak_rss_mib
from mixhouse.catalog import Catalog
from mixhouse.engine.duckdb import DuckDBEngine
from tests.server import ServerProcess

SECRET = "S"
NAMES = ["Viewed Page", "Signed Up", "Purchase", "Added To Cart"]
RANGE = f'from_date: "{DATES["from_date"]}", to_date: "{DATES["to_date"]}"'

BY_NAME = f'function main() {{ return Events({{{RANGE}}}).groupBy(["name"], mixpanel.reducer.count()); }}'
UNIQUE = (
    f'function main() {{ return Events({{{RANGE}, event_selectors: [{{event: "Viewed Page"}}]}})'
    ".groupByUser(mixpanel.reducer.null()).reduce(mixpanel.reducer.count()); }"
)
BY_PLAN = (
    f'function main() {{ return join(Events({{{RANGE}, event_selectors: [{{event: "Purchase"}}]}}), People(),'
    ' {type: "left"}).groupBy(["user.properties.plan"], mixpanel.reducer.count()); }'
)


def measure(data_dir: Path, call: Callable[[httpx.Client], Any], repeat: int) -> tuple[float, float, float, Any]:
    """(median seconds, idle RSS MiB, peak RSS MiB, answer) on a server of its own, so that each peak is
    this query's alone."""
    env = {"MIXHOUSE_JQL_TIMEOUT_SECONDS": "1800", "MIXHOUSE_QUERY_TIMEOUT_SECONDS": "1800"}
    server = ServerProcess(data_dir, env=env).start(timeout=600)  # a large store opens slowly on a busy machine
    try:
        assert server.proc is not None
        with httpx.Client(base_url=server.url, auth=(SECRET, ""), timeout=1800) as client:
            idle = peak_rss_mib(server.proc.pid)
            runs, result = [], None
            for _ in range(repeat):
                start = time.perf_counter()
                result = call(client)
                runs.append(time.perf_counter() - start)
            return statistics.median(runs), idle, peak_rss_mib(server.proc.pid), result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--only", default="", help="run the questions whose name contains this text")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        catalog = Catalog(data_dir)
        catalog.create_project(
            project_id=PROJECT, name="bench", token="T", secret=SECRET, api_key="K", timezone="America/New_York"
        )
        engine = DuckDBEngine(data_dir, memory_limit=args.memory_limit)
        start = time.perf_counter()
        load(engine, args.events, args.profiles)
        engine.close()
        print(machine())
        print(
            f"loaded {args.events:,} events (+1% duplicates), {args.profiles:,} profiles in {time.perf_counter() - start:.1f}s"
        )

        def jql(script: str) -> Callable[[httpx.Client], Any]:
            def call(client: httpx.Client) -> Any:
                response = client.post("/api/query/jql", data={"script": script})
                assert response.status_code == 200, response.text
                return response.json()

            return call

        def report(path: str, **params: str) -> Callable[[httpx.Client], Any]:
            def call(client: httpx.Client) -> Any:
                response = client.get(path, params={**params, **DATES, "unit": "month"})
                assert response.status_code == 200, response.text
                return response.json()

            return call

        pairs: list[
            tuple[str, Callable[[httpx.Client], Any], Callable[[httpx.Client], Any], Callable[[Any, Any], bool]]
        ] = [
            (
                "events by name",
                jql(BY_NAME),
                report("/api/query/events", event=orjson.dumps(NAMES).decode(), type="general"),
                lambda j, r: (
                    {g["key"][0]: g["value"] for g in j} == {n: sum(r["data"]["values"][n].values()) for n in NAMES}
                ),
            ),
            (
                "unique users of Viewed Page",
                jql(UNIQUE),
                report("/api/query/segmentation", event="Viewed Page", type="unique"),
                lambda j, r: j == [sum(r["data"]["values"]["Viewed Page"].values())],
            ),
            (
                "Purchase by the user's plan (join)",
                jql(BY_PLAN),
                report("/api/query/segmentation", event="Purchase", on='user["plan"]'),
                lambda j, r: (
                    {str(g["key"][0]).lower(): g["value"] for g in j if g["key"][0] is not None}
                    == {k.lower(): sum(v.values()) for k, v in r["data"]["values"].items() if k != "undefined"}
                ),
            ),
        ]
        print(f"medians of {args.repeat}; RSS: idle -> peak MiB, a fresh server per query")
        print(f"{'question':36} {'JQL s':>8} {'JQL RSS':>12} {'report s':>9} {'report RSS':>12}  agree")
        for name, jql_call, report_call, agree in pairs:
            if args.only not in name:
                continue
            j_s, j_idle, j_peak, j_out = measure(data_dir, jql_call, args.repeat)
            r_s, r_idle, r_peak, r_out = measure(data_dir, report_call, args.repeat)
            j_rss, r_rss = f"{j_idle:.0f}->{j_peak:.0f}", f"{r_idle:.0f}->{r_peak:.0f}"
            print(f"{name:36} {j_s:8.2f} {j_rss:>12} {r_s:9.3f} {r_rss:>12}  {agree(j_out, r_out)}")


if __name__ == "__main__":
    main()
