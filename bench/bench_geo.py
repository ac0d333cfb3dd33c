"""What IP geolocation costs on the ingestion path, in process (no HTTP): the locators alone, and
`prepare_events` (validation and normalisation of a 2,000-event /import batch) with geolocation off,
with the built-in country table, and with a city .mmdb file written here (mmdb-writer, 20,000 networks).

    .venv/bin/python -m bench.bench_geo [--runs 7]

Each batch carries an `ip` per event, drawn from 500 addresses (a batch from one site repeats users'
addresses) or all distinct (the worst case for the caches), all inside the file's networks so both
locators find every one. The locators live on across runs, as in a server: after the first run their
caches hold the batch. Prints medians of `--runs` runs, µs per event."""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mmdb_writer import MMDBWriter  # type: ignore[import-untyped]
from netaddr import IPNetwork, IPSet  # type: ignore[import-untyped]

from bench.common import event, machine, median
from mixhouse.domain.events import Endpoint, IngestContext, prepare_events
from mixhouse.domain.project import Project
from mixhouse.geo import Locator
from mixhouse.geo.builtin import CountryTable
from mixhouse.geo.mmdb import MmdbLocator

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


if __name__ == "__main__":
    main()
