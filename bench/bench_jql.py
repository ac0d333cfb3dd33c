"""JQL next to the Query API asking the same question, over HTTP against a real server process.

    .venv/bin/python -m bench.bench_jql                       # 1M events, 100k users
    .venv/bin/python -m bench.bench_jql --events 10000000 --profiles 1000000

The data set is bench_segmentation's (one SQL INSERT into a fresh data dir: 4 event names over 30 days,
1% duplicate insert ids, 10% of users merged). Three questions, each as a JQL script and as the
equivalent report:

  events by name     Events().groupBy(["name"], count)          /events?event=[4 names]&unit=month
  unique users       groupByUser(null) -> reduce(count)         /segmentation?type=unique&unit=month
  purchases by plan  join(Events, People).groupBy([plan], count)  /segmentation?on=user["plan"]&unit=month

Prints, per query, the median latency of --repeat runs and the server's peak RSS during them (VmHWM,
reset before each query through /proc/PID/clear_refs), and checks that both answers agree.
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


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def measure(server: ServerProcess, call: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    assert server.proc is not None
    pid = server.proc.pid
    reset_peak(pid)
    runs, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), peak_rss_mib(pid), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-limit", default="2GB")
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
        print(f"loaded {args.events:,} events (+1% duplicates), {args.profiles:,} profiles in {time.perf_counter() - start:.1f}s")

        env = {"MIXHOUSE_JQL_TIMEOUT_SECONDS": "1800", "MIXHOUSE_QUERY_TIMEOUT_SECONDS": "1800"}
        server = ServerProcess(data_dir, env=env).start()
        client = httpx.Client(base_url=server.url, auth=(SECRET, ""), timeout=1800)
        try:
            assert server.proc is not None
            print(f"server idle RSS {peak_rss_mib(server.proc.pid):.0f} MiB")

            def jql(script: str) -> Callable[[], Any]:
                def call() -> Any:
                    response = client.post("/api/query/jql", data={"script": script})
                    assert response.status_code == 200, response.text
                    return response.json()

                return call

            def report(path: str, **params: str) -> Callable[[], Any]:
                def call() -> Any:
                    response = client.get(path, params={**params, **DATES, "unit": "month"})
                    assert response.status_code == 200, response.text
                    return response.json()

                return call

            pairs: list[tuple[str, Callable[[], Any], Callable[[], Any], Callable[[Any, Any], bool]]] = [
                (
                    "events by name",
                    jql(BY_NAME),
                    report("/api/query/events", event=orjson.dumps(NAMES).decode(), type="general"),
                    lambda j, r: {g["key"][0]: g["value"] for g in j}
                    == {n: sum(r["data"]["values"][n].values()) for n in NAMES},
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
                    lambda j, r: {str(g["key"][0]).lower(): g["value"] for g in j if g["key"][0] is not None}
                    == {k.lower(): sum(v.values()) for k, v in r["data"]["values"].items() if k != "undefined"},
                ),
            ]
            print(f"{'question':38} {'JQL s':>8} {'JQL MiB':>8} {'report s':>9} {'report MiB':>10}  agree")
            for name, jql_call, report_call, agree in pairs:
                j_s, j_mib, j_out = measure(server, jql_call, args.repeat)
                r_s, r_mib, r_out = measure(server, report_call, args.repeat)
                print(f"{name:38} {j_s:8.2f} {j_mib:8.0f} {r_s:9.3f} {r_mib:10.0f}  {agree(j_out, r_out)}")
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
