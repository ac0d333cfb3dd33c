"""Funnels, retention and unique segmentation of this checkout next to another git revision's, on the same events.

    .venv/bin/python -m bench.compare_revisions --ref 8735c03 [--events 10000000] [--users 1000000] [--runs 7]
        [--merged 100000] [--duplicates 0.01] [--keep DIR]

`--keep DIR` writes the events once into DIR and reuses them on later runs (10M events take minutes).

The other revision is checked out in a temporary git worktree and served from there (same venv); both
servers get a copy of one data dir written as bench_funnels writes it, and every query alternates
between them, so that the machine's noise falls on both alike. Prints medians and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bench_funnels import AUTH, FROM, TO, write_events
from bench.common import machine, median
from tests.server import PROJECT_ID, ServerProcess, seed_catalog

ROOT = Path(__file__).resolve().parent.parent


def save_funnel(client: httpx.Client, url: str, steps: int, counting: str) -> int:
    body = {"name": f"{steps} {counting}", "steps": [f"e{i}" for i in range(steps)], "length": 7, "counting": counting}
    r = client.post(f"{url}/api/app/projects/{PROJECT_ID}/funnels", json=body, auth=AUTH)
    assert r.status_code == 200, r.text
    return int(r.json()["results"]["funnel_id"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", required=True, help="the git revision to compare with")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--merged", type=int, default=0, help="ids merged into others (identity join)")
    parser.add_argument("--duplicates", type=float, default=0.0, help="share of superseded copies (dedup)")
    parser.add_argument("--keep", type=Path, help="a folder to keep the written events in between runs")
    parser.add_argument("--only", default="", help="only the queries whose label contains this text")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"data: {args.events:,} events, {args.users:,} users; this checkout vs {args.ref}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        worktree = base / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.ref], check=True)
        try:
            ours_dir, theirs_dir = base / "ours" / "data", base / "theirs" / "data"
            kept = args.keep / f"{args.events}-{args.users}-{args.merged}-{args.duplicates}" if args.keep else None
            if kept is not None and (kept / "data").exists():
                shutil.copytree(kept / "data", ours_dir)
            else:
                seed_catalog(ours_dir)
                write_events(ours_dir, args.events, args.users, args.merged, args.duplicates)
                if kept is not None:
                    shutil.copytree(ours_dir, kept / "data")
            shutil.copytree(ours_dir, theirs_dir)
            ours = ServerProcess(ours_dir).start(timeout=120)
            theirs = ServerProcess(theirs_dir, source_dir=worktree).start(timeout=120)
            try:
                compare(ours, theirs, args.runs, args.only)
            finally:
                ours.stop()
                theirs.stop()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True)


def _comparable(answer: Any) -> Any:
    """The answer without the moment it was computed at."""
    if isinstance(answer, dict):
        return {k: v for k, v in answer.items() if k != "computed_at"}
    return answer


def cpu_seconds(server: ServerProcess) -> float:
    """On-CPU time of the server process's live threads, in ns from the scheduler (Linux): unlike wall time,
    it barely moves when other work shares the machine's cores. Engine and server threads are pooled, so
    threads that ended between two readings are rare."""
    assert server.proc is not None
    total = 0
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # the thread ended while we read
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def compare(ours: ServerProcess, theirs: ServerProcess, runs: int, only: str = "") -> None:
    client = httpx.Client(timeout=3600)
    whole = {"from_date": FROM, "to_date": TO, "interval": 14}
    ret = {"from_date": FROM, "to_date": "2024-01-10", "born_event": "e0", "event": "e1", "interval_count": 10}
    queries: list[tuple[str, str, dict[str, Any]]] = []
    for steps, counting in ((3, "uniques"), (5, "uniques"), (3, "totals")):
        ids = {s.url: save_funnel(client, s.url, steps, counting) for s in (ours, theirs)}
        queries.append((f"{steps}-step funnel, {counting}, one bucket", "funnels", {"ids": ids, **whole}))
        if (steps, counting) == (3, "uniques"):
            queries.append(
                ("3-step funnel, 14 daily buckets", "funnels", {"ids": ids, "from_date": FROM, "to_date": TO})
            )
            queries.append(("3-step funnel, on plan", "funnels", {"ids": ids, **whole, "on": 'properties["plan"]'}))
    queries.append(("retention, 10 daily cohorts x 11 intervals", "retention", ret))
    queries.append(("retention, any event as the return", "retention", {k: v for k, v in ret.items() if k != "event"}))
    ret_where = {**ret, "where": 'properties["plan"] != "2"'}
    queries.append(("retention, with where", "retention", ret_where))
    seg = {"event": "e0", "from_date": FROM, "to_date": TO, "type": "unique"}
    queries.append(("segmentation, unique, daily", "segmentation", seg))
    queries.append(("segmentation, unique, on plan", "segmentation", {**seg, "on": 'properties["plan"]'}))
    general = {"event": "e0", "from_date": FROM, "to_date": TO}
    queries.append(
        ("segmentation, where plan, daily", "segmentation", {**general, "where": 'properties["plan"] == "1"'})
    )
    queries.append(
        ("segmentation, hourly, on plan", "segmentation", {**general, "unit": "hour", "on": 'properties["plan"]'})
    )
    queries.append(
        (
            "segmentation, weekly, on number(plan)",
            "segmentation",
            {**general, "unit": "week", "on": 'number(properties["plan"])'},
        )
    )
    queries.append(
        ("segmentation/numeric on plan", "segmentation/numeric", {**general, "on": 'number(properties["plan"])'})
    )
    queries.append(("segmentation/sum of plan", "segmentation/sum", {**general, "on": 'number(properties["plan"])'}))
    events = {"event": '["e0", "e1", "e2"]', "type": "general", "unit": "day", "from_date": FROM, "to_date": TO}
    queries.append(("events, 3 events, daily", "events", events))
    queries.append(
        (
            "events/properties, plan values",
            "events/properties",
            {**general, "name": "plan", "type": "general", "unit": "day"},
        )
    )
    queries.append(
        ("funnel, where plan", "funnels", {"ids": queries[0][2]["ids"], **whole, "where": 'properties["plan"] == "0"'})
    )
    day = {"from_date": "2024-01-03", "to_date": "2024-01-03"}
    queries.append(("export one day, where plan", "/api/2.0/export", {**day, "where": 'properties["plan"] == "1"'}))
    print("ratio = baseline / this: above 1 this checkout is faster, below 0.95 it is more than 5% slower")
    print("cpu: the server process's CPU time for the query (all threads), the same ratio; steadier on a busy machine")
    print(f"{'query':<46} {'this':>8} {'baseline':>9} {'ratio':>7} {'cpu this':>9} {'baseline':>9} {'ratio':>7}")
    for label, path, params in queries:
        if only not in label:
            continue
        times: dict[str, list[float]] = {ours.url: [], theirs.url: []}
        cpu: dict[str, list[float]] = {ours.url: [], theirs.url: []}
        answers: dict[str, Any] = {}
        for run in range(runs + 1):  # the first round is untimed: caches settle on both sides
            # Each round alternates which side goes first: whatever one leaves behind (a GC, freed memory,
            # warm caches) falls on both alike.
            for server in (theirs, ours) if run % 2 else (ours, theirs):
                query = {k: v for k, v in params.items() if k != "ids"}
                if "ids" in params:
                    query["funnel_id"] = params["ids"][server.url]
                c0, t0 = cpu_seconds(server), time.perf_counter()
                url = f"{server.url}{path}" if path.startswith("/") else f"{server.url}/api/query/{path}"
                r = client.get(url, params={"project_id": PROJECT_ID, **query}, auth=AUTH)
                if run:
                    times[server.url].append(time.perf_counter() - t0)
                    cpu[server.url].append(cpu_seconds(server) - c0)
                assert r.status_code == 200, r.text
                answers[server.url] = r.content if path.startswith("/") else _comparable(r.json())
        same = "" if answers[ours.url] == answers[theirs.url] else "  (answers differ)"
        a, b = median(times[ours.url]), median(times[theirs.url])
        ca, cb = median(cpu[ours.url]), median(cpu[theirs.url])
        cpu_ratio = f"{cb / ca:>5.2f}x" if ca else "    -"
        print(
            f"{label:<46} {a * 1000:>6.0f} ms {b * 1000:>6.0f} ms {b / a:>5.2f}x"
            f" {ca * 1000:>6.0f} ms {cb * 1000:>6.0f} ms {cpu_ratio}{same}"
        )


if __name__ == "__main__":
    main()
