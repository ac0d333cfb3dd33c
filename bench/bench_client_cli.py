"""The command line's throughput over loopback: `mixhouse import FILE` and `mixhouse export --output F`
for a million events, each timed end to end (process start, reading, batching, gzip, HTTP, the server's
fsync'd writes; for export the server's scan, the stream and the file write).

    .venv/bin/python -m bench.bench_client_cli [--events 1000000] [--workers 2] [--gzip]

The command, the server and the file generator share the machine's cores. Prints events/s for each and
checks that the exported file holds every imported event.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import event, machine, start_server
from tests.server import PROJECT_ID, SA_SECRET, SA_USER

MIXHOUSE = Path(sys.executable).parent / "mixhouse"


def write_events(path: Path, n: int, compress: bool) -> None:
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:  # type: ignore[operator]
        chunk: list[bytes] = []
        for i in range(n):
            chunk.append(orjson.dumps(event(i)))
            if len(chunk) == 10_000:
                f.write(b"\n".join(chunk) + b"\n")
                chunk.clear()
        if chunk:
            f.write(b"\n".join(chunk) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gzip", action="store_true", help="a .jsonl.gz input file")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / ("events.jsonl.gz" if args.gzip else "events.jsonl")
        write_events(source, args.events, args.gzip)
        print(f"input: {args.events:,} events, {source.stat().st_size / 2**20:.0f} MiB ({source.name})")
        server = start_server(tmp)
        env = {
            **os.environ,
            "MIXHOUSE_BASE_URL": server.url,
            "MIXHOUSE_USERNAME": SA_USER,
            "MIXHOUSE_SECRET": SA_SECRET,
            "MIXHOUSE_PROJECT_ID": str(PROJECT_ID),
        }
        try:
            started = time.perf_counter()
            subprocess.run([str(MIXHOUSE), "import", str(source), "--workers", str(args.workers)], env=env, check=True)
            import_s = time.perf_counter() - started
            print(
                f"import: {args.events / import_s:,.0f} events/s ({import_s:.1f} s, {args.workers} requests in flight)"
            )
            out = tmp / "back.jsonl"
            started = time.perf_counter()
            # the events span 2024-01-01 .. 2024-01-11 (bench.common.event); one request per day
            subprocess.run(
                [str(MIXHOUSE), "export", "--from-date", "2024-01-01", "--to-date", "2024-01-11", "--output", str(out)],
                env=env,
                check=True,
            )
            export_s = time.perf_counter() - started
            with open(out, "rb") as f:
                back = [orjson.loads(line) for line in f]
            lines = len(back)
            print(f"export: {lines / export_s:,.0f} events/s ({export_s:.1f} s, {out.stat().st_size / 2**20:.0f} MiB)")
            # the same events: every insert id once, with its event name, user and time
            expected = {
                (e["properties"]["$insert_id"], e["event"], e["properties"]["distinct_id"], e["properties"]["time"])
                for e in map(event, range(args.events))
            }  # type: ignore[index]
            got = {
                (e["properties"]["$insert_id"], e["event"], e["properties"]["distinct_id"], e["properties"]["time"])
                for e in back
            }
            assert lines == args.events and got == expected, (
                f"exported {lines} of {args.events}; differing: {len(got ^ expected)}"
            )
            print("export holds exactly the imported events")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
