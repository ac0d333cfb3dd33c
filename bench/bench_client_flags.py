"""The client's flags: local evaluation in process (`LocalFlags.evaluate`) against remote evaluation
(`Client.flags`, one `/flags` request each) over the same flags and contexts.

    .venv/bin/python -m bench.bench_client_flags [--contexts 5000]

A real server on a fresh data dir (plain HTTP on loopback) holding the flags of tests/flags/fixtures.py
(multivariate, JsonLogic rules with Mixpanel's operators, a legacy definition, QA testers, device-scoped;
the cohort-targeted flag left out, as the client asks the server for it), random contexts from the same
module. Checks that every local answer equals the remote one, then prints contexts/s and per-context
latency of each, and the load average (the machine may be shared)."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from mixhouse_client import Client

from bench.common import machine
from tests.flags.fixtures import COHORT_FLAGS, random_context
from tests.flags.server import flag_server
from tests.server import TOKEN


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contexts", type=int, default=5000)
    args = parser.parse_args()
    rng = random.Random(7)
    contexts = [random_context(rng) for _ in range(args.contexts)]
    load = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory() as tmp,
        flag_server(Path(tmp), tls=False) as fs,
        Client(base_url=fs.url, token=TOKEN) as client,
    ):
        definitions = [d for d in client.flag_definitions() if d["key"] not in COHORT_FLAGS]
        local = client.local_flags(definitions)
        keys = [d["key"] for d in definitions]
        remote_ms: list[float] = []
        remote_answers = []
        for context in contexts:
            t = time.perf_counter()
            remote_answers.append(client.flags(context))
            remote_ms.append((time.perf_counter() - t) * 1000)
        local_us: list[float] = []
        local_answers = []
        for context in contexts:
            t = time.perf_counter()
            local_answers.append(local.evaluate(context))
            local_us.append((time.perf_counter() - t) * 1e6)
    for remote, here in zip(remote_answers, local_answers, strict=True):
        assert {k: v for k, v in remote.items() if k in keys} == here
    q = statistics.quantiles
    print(f"{args.contexts} contexts, {len(keys)} flags; every local answer equals the server's")
    print(
        f"local : {len(contexts) / (sum(local_us) / 1e6):,.0f} contexts/s; p50 {q(local_us, n=100)[49]:.0f} µs, p99 {q(local_us, n=100)[98]:.0f} µs"
    )
    print(
        f"remote: {len(contexts) / (sum(remote_ms) / 1e3):,.0f} contexts/s; p50 {q(remote_ms, n=100)[49]:.2f} ms, p99 {q(remote_ms, n=100)[98]:.2f} ms"
    )
    print(f"machine: {machine()}; load average before/after: {load:.1f}/{os.getloadavg()[0]:.1f} (shared machine)")


if __name__ == "__main__":
    main()
