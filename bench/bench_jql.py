"""JQL next to the Query API asking the same question, over HTTP against real server processes.

    .venv/bin/python -m bench.bench_jql                       # 1M events, 100k users
    .venv/bin/python -m bench.bench_jql --events 10000000 --profiles 1000000

The data set is bench_segmentation's (one SQL INSERT into a fresh data dir: 4 event names over 30 days,
1% duplicate insert ids, 10% of users merged). Each question runs three ways, side by side: the JQL script
in JavaScript (before: MIXHOUSE_JQL_PUSHDOWN=0), the same script as the engine answers it (after: the
shapes of docs/jql.md "What the engine answers"), and the equivalent report:

  events by name        groupBy(["name"], count)                    /events?event=[4 names]&unit=month
  all events            reduce(count)                               /events, summed
  Purchase by plan      groupBy(["properties.plan"], count)         /segmentation?on=properties["plan"]
  amount of Purchase    reduce(sum("properties.amount"))            /segmentation/sum?on=properties["amount"]
  avg amount by name    groupBy(["name"], avg("properties.amount")) /segmentation/average, per event
  summary of amount     reduce(numeric_summary("properties.amount")) /segmentation/sum (its sum)
  Viewed Page per user  groupByUser(count)                          /segmentation?type=unique (its length)
  unique users          groupByUser(null) -> reduce(count)          /segmentation?type=unique (JavaScript)
  Purchase by user plan join(Events, People).groupBy(...)           /segmentation?on=user["plan"] (JavaScript)

Prints, per question, the median latency of --repeat runs and the server's resident memory at idle and at
its peak (VmHWM; a fresh server for each), and whether the answers agree: before and after byte for byte,
JQL and the report on the figures both give.
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

R = "mixpanel.reducer"
BY_NAME = f'function main() {{ return Events({{{RANGE}}}).groupBy(["name"], {R}.count()); }}'
ALL = f"function main() {{ return Events({{{RANGE}}}).reduce({R}.count()); }}"
PURCHASES = f'Events({{{RANGE}, event_selectors: [{{event: "Purchase"}}]}})'
BY_PLAN_PROPERTY = f'function main() {{ return {PURCHASES}.groupBy(["properties.plan"], {R}.count()); }}'
AMOUNT = f'function main() {{ return {PURCHASES}.reduce({R}.sum("properties.amount")); }}'
AVG_BY_NAME = f'function main() {{ return Events({{{RANGE}}}).groupBy(["name"], {R}.avg("properties.amount")); }}'
SUMMARY = f'function main() {{ return {PURCHASES}.reduce({R}.numeric_summary("properties.amount")); }}'
PER_USER = (
    f'function main() {{ return Events({{{RANGE}, event_selectors: [{{event: "Viewed Page"}}]}})'
    f".groupByUser({R}.count()); }}"
)
UNIQUE = (
    f'function main() {{ return Events({{{RANGE}, event_selectors: [{{event: "Viewed Page"}}]}})'
    ".groupByUser(mixpanel.reducer.null()).reduce(mixpanel.reducer.count()); }"
)
BY_PLAN = (
    f'function main() {{ return join(Events({{{RANGE}, event_selectors: [{{event: "Purchase"}}]}}), People(),'
    ' {type: "left"}).groupBy(["user.properties.plan"], mixpanel.reducer.count()); }'
)


def measure(
    data_dir: Path, call: Callable[[httpx.Client], Any], repeat: int, pushdown: bool = True
) -> tuple[float, float, float, Any]:
    """(median seconds, idle RSS MiB, peak RSS MiB, answer) on a server of its own, so that each peak is
    this query's alone."""
    env = {
        "MIXHOUSE_JQL_TIMEOUT_SECONDS": "1800",
        "MIXHOUSE_QUERY_TIMEOUT_SECONDS": "1800",
        "MIXHOUSE_JQL_PUSHDOWN": "1" if pushdown else "0",
    }
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
                return response.content

            return call

        def report(path: str, **params: str) -> Callable[[httpx.Client], Any]:
            def call(client: httpx.Client) -> Any:
                response = client.get(path, params={**params, **DATES, "unit": "month"})
                assert response.status_code == 200, response.text
                return response.json()

            return call

        def close(a: float, b: float) -> bool:
            return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))

        def event_totals(r: Any) -> dict[str, int]:
            return {n: sum(r["data"]["values"][n].values()) for n in NAMES}

        def segments(r: Any) -> dict[str, Any]:
            return {k: sum(v.values()) for k, v in r["data"]["values"].items()}

        events = report("/api/query/events", event=orjson.dumps(NAMES).decode(), type="general")
        averages: dict[str, float] = {}

        def average_by_name(client: httpx.Client) -> Any:
            for n in NAMES:
                response = client.get(
                    "/api/query/segmentation/average",
                    params={"event": n, "on": 'properties["amount"]', **DATES, "unit": "month"},
                )
                assert response.status_code == 200, response.text
                averages[n] = next(iter(response.json()["results"].values()))
            return averages

        amount = report("/api/query/segmentation/sum", event="Purchase", on='properties["amount"]')
        questions: list[tuple[str, str, Callable[[httpx.Client], Any], Callable[[Any, Any], bool]]] = [
            ("events by name", BY_NAME, events, lambda j, r: {g["key"][0]: g["value"] for g in j} == event_totals(r)),
            ("all events", ALL, events, lambda j, r: j == [sum(event_totals(r).values())]),
            (
                "Purchase by plan",
                BY_PLAN_PROPERTY,
                report("/api/query/segmentation", event="Purchase", on='properties["plan"]'),
                lambda j, r: {g["key"][0]: g["value"] for g in j} == segments(r),
            ),
            ("amount of Purchase", AMOUNT, amount, lambda j, r: close(j[0], sum(r["results"].values()))),
            (
                "avg amount by name",
                AVG_BY_NAME,
                average_by_name,
                lambda j, r: all(close(g["value"], r[g["key"][0]]) for g in j),
            ),
            ("summary of amount", SUMMARY, amount, lambda j, r: close(j[0]["sum"], sum(r["results"].values()))),
            (
                "Viewed Page per user",
                PER_USER,
                report("/api/query/segmentation", event="Viewed Page", type="unique"),
                lambda j, r: len(j) == segments(r)["Viewed Page"],
            ),
            (
                "unique users of Viewed Page",
                UNIQUE,
                report("/api/query/segmentation", event="Viewed Page", type="unique"),
                lambda j, r: j == [segments(r)["Viewed Page"]],
            ),
            (
                "Purchase by the user's plan (join)",
                BY_PLAN,
                report("/api/query/segmentation", event="Purchase", on='user["plan"]'),
                lambda j, r: (
                    {str(g["key"][0]).lower(): g["value"] for g in j if g["key"][0] is not None}
                    == {k.lower(): v for k, v in segments(r).items() if k != "undefined"}
                ),
            ),
        ]
        print(f"medians of {args.repeat}; RSS: idle -> peak MiB, a fresh server per query")
        print("before: JQL in JavaScript (MIXHOUSE_JQL_PUSHDOWN=0); after: JQL as shipped (the engine answers")
        print("the shapes it knows); agree: before == after byte for byte, and JQL == the report")
        head = f"{'question':36} {'before s':>9} {'RSS':>10} {'after s':>8} {'RSS':>10} {'report s':>9} {'RSS':>10}"
        print(f"{head} {'x faster':>8}  agree")
        for name, script, report_call, agree in questions:
            if args.only not in name:
                continue
            b_s, b_idle, b_peak, b_out = measure(data_dir, jql(script), args.repeat, pushdown=False)
            a_s, a_idle, a_peak, a_out = measure(data_dir, jql(script), args.repeat)
            r_s, r_idle, r_peak, r_out = measure(data_dir, report_call, args.repeat)
            same = b_out == a_out and agree(orjson.loads(a_out), r_out)
            print(
                f"{name:36} {b_s:9.2f} {f'{b_idle:.0f}->{b_peak:.0f}':>10} {a_s:8.3f} {f'{a_idle:.0f}->{a_peak:.0f}':>10}"
                f" {r_s:9.3f} {f'{r_idle:.0f}->{r_peak:.0f}':>10} {b_s / a_s:8.1f}  {same}"
            )


if __name__ == "__main__":
    main()
