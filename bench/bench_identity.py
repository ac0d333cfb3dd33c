"""Identity resolution cost: unique-user counting with and without the identity_map join, and the time the
writer takes to apply identity merges.

The store is generated in bulk with SQL straight into a data dir (the engine's schema, no HTTP): users
u0..uN; 30% of them merged, each with 1-5 devices whose events carry `$device:` ids mapped to the user;
every other event carries the user id. Then `count(DISTINCT distinct_id)` over
`scoped_events(..., resolve_identity=True/False)`, median of runs. Merges go through the real writer
(`DuckDBEngine.submit`, one transaction and fsync per write group) as Original `$merge` links and as
Simplified device links.

    .venv/bin/python -m bench.bench_identity                       # 10M events, 100k merges
    .venv/bin/python -m bench.bench_identity --events 2000000      # smaller
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from bench.common import machine
from mixhouse.domain.events import StoredEvent
from mixhouse.domain.identity import IdentityLink, LinkKind
from mixhouse.domain.writes import WriteBatch
from mixhouse.engine.duckdb.engine import DuckDBEngine
from mixhouse.engine.duckdb.relations import scoped_events

PROJECT_ID = 1
T0_MS = 1_704_067_200_000


def generate(data_dir: Path, events: int, users: int) -> tuple[int, int]:
    """Events and map rows; returns (merged users, mapped devices)."""
    DuckDBEngine(data_dir).close()  # creates the schema
    conn = duckdb.connect(str(data_dir / "events.duckdb"))
    # Users with u % 10 < 3 are merged (30%) and own 1 + u % 5 devices.
    conn.execute(
        """INSERT INTO identity_map (project_id, distinct_id, canonical_id)
           SELECT 1, '$device:d' || u || '-' || k, 'u' || u
           FROM range($users) t(u), LATERAL (SELECT * FROM range(1 + u % 5)) d(k)
           WHERE u % 10 < 3""",
        {"users": users},
    )
    # Event i belongs to user (i * 7919) % users; a merged user's events alternate over its devices and itself.
    conn.execute(
        """INSERT INTO events (project_id, seq, time_ms, event, distinct_id, insert_id, properties)
           SELECT 1, i + 1, $t0 + i * 37 % 2592000000, ['Viewed Page', 'Signed Up', 'Purchase'][1 + i % 3],
                  CASE WHEN u % 10 < 3 AND i % 2 = 0 THEN '$device:d' || u || '-' || (i // 2) % (1 + u % 5)
                       ELSE 'u' || u END,
                  'ins-' || i, '{}'
           FROM (SELECT i, (i * 7919::BIGINT) % $users AS u FROM range($events) t(i))""",
        {"events": events, "users": users, "t0": T0_MS},
    )
    merged = conn.execute("SELECT count(DISTINCT canonical_id), count(*) FROM identity_map").fetchall()[0]
    conn.execute("CHECKPOINT")
    conn.close()
    return int(merged[0]), int(merged[1])


def count_users(data_dir: Path, runs: int) -> dict[bool, tuple[float, int]]:
    conn = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
    out: dict[bool, tuple[float, int]] = {}
    for resolve in (False, True):
        rel = scoped_events(PROJECT_ID, None, None, resolve_identity=resolve)
        sql = f"SELECT count(DISTINCT distinct_id) FROM ({rel.sql})"
        times, value = [], 0
        for _ in range(runs):
            start = time.perf_counter()
            value = int(conn.execute(sql, rel.params).fetchall()[0][0])
            times.append(time.perf_counter() - start)
        out[resolve] = (statistics.median(times), value)
    conn.close()
    return out


def apply_merges(data_dir: Path, merges: int, kind: LinkKind, per_group: int) -> float:
    """Seconds to write `merges` events that each carry one identity link, `per_group` per write group."""
    engine = DuckDBEngine(data_dir)
    batches = []
    for first in range(0, merges, per_group):
        events = []
        for i in range(first, min(first + per_group, merges)):
            if kind is LinkKind.DEVICE:
                link = IdentityLink(kind, T0_MS + i, f"m{i}", f"$device:md{i}")
            else:
                link = IdentityLink(kind, T0_MS + i, f"m{i}", f"a{i}")
            events.append(StoredEvent(PROJECT_ID, T0_MS + i, "e", link.primary, f"mg-{i}", b"{}", link))
        batches.append(WriteBatch(events=events))
    start = time.perf_counter()
    for batch in batches:
        engine.submit(batch).result()
    elapsed = time.perf_counter() - start
    mapped = engine.reader().execute("SELECT count(*) FROM identity_map WHERE canonical_id LIKE 'm%'").fetchall()
    engine.close()
    assert int(mapped[0][0]) == merges, mapped
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=None, help="default: events / 20")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--merges", type=int, default=100_000)
    parser.add_argument("--per-group", type=int, default=2000, help="links per write group (one /import)")
    args = parser.parse_args()
    users = args.users or max(args.events // 20, 1)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        start = time.perf_counter()
        merged, devices = generate(data_dir, args.events, users)
        print(
            f"generated {args.events:,} events, {users:,} users, {merged:,} merged with {devices:,} devices "
            f"in {time.perf_counter() - start:.1f} s"
        )
        result = count_users(data_dir, args.runs)
        plain, resolved = result[False], result[True]
        print(f"unique users, no resolution : {plain[0] * 1000:8.1f} ms median  ({plain[1]:,} ids)")
        print(f"unique users, resolved      : {resolved[0] * 1000:8.1f} ms median  ({resolved[1]:,} users)")
        print(f"resolution overhead         : {resolved[0] / plain[0]:.2f}x")
        assert resolved[1] == users, (resolved[1], users)
    for kind in (LinkKind.MERGE, LinkKind.DEVICE):
        with tempfile.TemporaryDirectory() as tmp:
            seconds = apply_merges(Path(tmp) / "data", args.merges, kind, args.per_group)
            label = "Original $merge" if kind is LinkKind.MERGE else "Simplified device links"
            print(
                f"apply {args.merges:,} {label:<24}: {seconds:6.2f} s "
                f"({args.merges / seconds:,.0f}/s, {args.per_group} per write group)"
            )


if __name__ == "__main__":
    main()
