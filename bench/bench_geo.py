"""What IP geolocation costs on the ingestion path, in process (no HTTP): the locators alone, and
`prepare_events` (validation and normalisation of a 2,000-event /import batch) with geolocation off,
with the built-in country table, and with a city .mmdb file written here (mmdb-writer, 20,000 networks).

    .venv/bin/python -m bench.bench_geo [--runs 7] [--http-batches 10]

Each batch carries an `ip` per event, drawn from 500 addresses (a batch from one site repeats users'
addresses) or all distinct (the worst case for the caches), all inside the file's networks so both
locators find every one. The locators live on across runs, as in a server: after the first run their
caches hold the batch. Prints medians of `--runs` runs, µs per event.

Then end to end: two servers on one machine, `--geoip off` and `--geoip builtin`, each sent the same
2,000-event /import batches (fresh addresses, so nothing is cached), one server then the other, batch by
batch; prints the median events/s of each."""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from mmdb_writer import MMDBWriter  # type: ignore[import-untyped]
from netaddr import IPNetwork, IPSet  # type: ignore[import-untyped]

from bench.common import event, machine, median
from mixhouse.domain.events import Endpoint, IngestContext, prepare_events
from mixhouse.domain.project import Project
from mixhouse.geo import Locator
from mixhouse.geo.builtin import CountryTable
from mixhouse.geo.mmdb import MmdbLocator
from tests.server import SECRET, ServerProcess, seed_catalog

BATCH = 2000


def write_city_mmdb(path: Path, networks: int = 20_000) -> list[str]:
    """A city file of `networks` random /24s; returns their prefixes (`a.b.c.`)."""
    rng = random.Random(7)
    writer = MMDBWriter(ip_version=4, database_type="GeoIP2-City", languages=["en"])
    seen: set[str] = set()
    while len(seen) < networks:
        seen.add(f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.")
    prefixes = sorted(seen)
    for i, prefix in enumerate(prefixes):
        record = {
            "country": {"iso_code": ("GB", "US", "DE", "FR", "JP")[i % 5]},
            "subdivisions": [{"names": {"en": f"Region {i % 300}"}}],
            "city": {"names": {"en": f"City {i}"}},
        }
        writer.insert_network(IPSet([IPNetwork(prefix + "0/24")]), record)
    writer.to_db_file(str(path))
    return prefixes


def addresses(n: int, seed: int, prefixes: list[str]) -> list[str]:
    """Addresses inside the file's networks, so both locators find every one."""
    rng = random.Random(seed)
    return [f"{rng.choice(prefixes)}{rng.randint(1, 254)}" for _ in range(n)]


def timed(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--http-batches", type=int, default=10, help="2000-event /import batches a run, end to end")
    args = parser.parse_args()
    print(f"machine: {machine()} (shared with other work while measuring)")
    with tempfile.TemporaryDirectory() as tmp:
        mmdb_path = Path(tmp) / "cities.mmdb"
        started = time.perf_counter()
        prefixes = write_city_mmdb(mmdb_path)
        print(f"city mmdb: 20,000 networks written in {time.perf_counter() - started:.1f} s")
        project = Project(id=1, name="p", token="t", secret="s", api_key="k")
        repeated = addresses(500, 1, prefixes)
        pools = {
            "500 addresses": [repeated[i % 500] for i in range(BATCH)],
            "all distinct": addresses(BATCH, 2, prefixes),
        }

        def locators() -> dict[str, Locator | None]:
            return {"off": None, "builtin (iptocc)": CountryTable(), "city mmdb": MmdbLocator(mmdb_path)}

        print(f"\nlocator alone, one batch of {BATCH} addresses (µs per address):")
        for pool_name, pool in pools.items():
            for name, locator in locators().items():
                if locator is None:
                    continue
                cold = timed(lambda loc=locator, pool=pool: loc.locate(pool), 1)
                warm = timed(lambda loc=locator, pool=pool: loc.locate(pool), args.runs)
                print(f"  {name:18} {pool_name:14} first {cold / BATCH * 1e6:7.2f}   again {warm / BATCH * 1e6:7.2f}")

        print(f"\nprepare_events, {BATCH} /import events with an `ip` each (µs per event; the settings in turn):")
        for pool_name, pool in pools.items():
            records = []
            for i in range(BATCH):
                record = event(i)
                record["properties"]["ip"] = pool[i]  # type: ignore[index]
                records.append(record)
            contexts = {
                name: IngestContext(Endpoint.IMPORT, received_ms=int(time.time() * 1000), api_host="h", geo=locator)
                for name, locator in locators().items()
            }
            samples: dict[str, list[float]] = {name: [] for name in contexts}
            for _ in range(args.runs):  # alternating, so a busy moment of the shared machine hits all alike
                for name, ctx in contexts.items():
                    run = lambda ctx=ctx, records=records: prepare_events(records, lambda _p: project, ctx)  # noqa: E731
                    samples[name].append(timed(run, 1))
            base = median(samples["off"]) / BATCH * 1e6
            for name in contexts:
                per_event = median(samples[name]) / BATCH * 1e6
                extra = "" if name == "off" else f"  ({per_event - base:+.2f} µs, {(per_event / base - 1) * 100:+.0f}%)"
                print(f"  {name:18} {pool_name:14} {per_event:7.2f}{extra}")

    http(args.runs, args.http_batches)


class _Geo(ServerProcess):
    def __init__(self, data_dir: Path, setting: str) -> None:
        super().__init__(data_dir)
        self.setting = setting

    def serve_args(self) -> list[str]:
        return [*super().serve_args(), "--geoip", self.setting]


def http(runs: int, batches: int) -> None:
    print(f"\n/import end to end, {batches} batches of {BATCH} events a run, servers in turn (events/s):")
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        for setting in ("off", "builtin"):
            seed_catalog(Path(tmp) / setting / "data")
            servers[setting] = _Geo(Path(tmp) / setting / "data", setting).start()
        try:
            rates: dict[str, list[float]] = {name: [] for name in servers}
            with httpx.Client(timeout=120) as client:
                for run in range(runs):
                    pool = addresses(BATCH * batches, 100 + run, [f"{a}.{b}.{c}." for a, b, c in _prefixes(run)])
                    bodies = []
                    for b in range(batches):
                        records = []
                        for i in range(BATCH):
                            record = event(run * 10_000_000 + b * BATCH + i)
                            record["properties"]["ip"] = pool[b * BATCH + i]  # type: ignore[index]
                            records.append(record)
                        bodies.append(orjson.dumps(records))
                    spent = dict.fromkeys(servers, 0.0)
                    for body in bodies:
                        for name, server in servers.items():
                            started = time.perf_counter()
                            response = client.post(
                                f"{server.url}/import",
                                content=body,
                                auth=(SECRET, ""),
                                headers={"Content-Type": "application/json"},
                            )
                            spent[name] += time.perf_counter() - started
                            assert response.status_code == 200, response.text
                    for name in servers:
                        rates[name].append(batches * BATCH / spent[name])
            for name, values in rates.items():
                print(
                    f"  --geoip {name:8} median {median(values):9,.0f}   runs: {', '.join(f'{v:,.0f}' for v in values)}"
                )
        finally:
            for server in servers.values():
                server.stop()


def _prefixes(seed: int) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255)) for _ in range(5000)]


if __name__ == "__main__":
    main()
