"""IP geolocation at ingestion (mixhouse.geo, mixhouse.domain.geolocation), on Mixpanel's rules
(https://docs.mixpanel.com/docs/tracking-best-practices/geolocation): events by their `ip` property or by
the request's address (/track unless `?ip=0`, /import with `?ip=1`); profiles by `$ip` or the request's address unless `ip=0`;
explicit locations win; the address is never stored.

The request's address comes through `X-Forwarded-For`, which uvicorn trusts from loopback (the tests'
only network). The built-in table knows countries; a MaxMind DB file written here knows cities."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from mmdb_writer import MMDBWriter  # type: ignore[import-untyped]
from netaddr import IPSet  # type: ignore[import-untyped]

from mixhouse.geo import Location
from mixhouse.geo.builtin import CountryTable
from mixhouse.geo.mmdb import MmdbLocator
from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog

GB, US = "81.2.69.160", "8.8.8.8"  # in every IP-to-country table: United Kingdom, United States
LONDON = {
    "country": {"iso_code": "GB"},
    "subdivisions": [{"names": {"en": "England"}}],
    "city": {"names": {"en": "London"}},
}
MOUNTAIN_VIEW = {
    "country": {"iso_code": "US"},
    "subdivisions": [{"names": {"en": "California"}}],
    "city": {"names": {"en": "Mountain View"}},
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def track(
    server: ServerProcess, events: list[dict[str, Any]], *, ip: str | None = None, client: str | None = None
) -> None:
    for e in events:
        e["properties"].setdefault("token", TOKEN)
    headers = {"X-Forwarded-For": client} if client else {}
    params = {"ip": ip} if ip is not None else {}
    body = {"data": orjson.dumps(events).decode()}
    response = httpx.post(f"{server.url}/track", data=body, params=params, headers=headers)
    assert response.content == b"1", response.text


def stored(server: ServerProcess, name: str) -> list[dict[str, Any]]:
    return [row["properties"] for row in export(server.url, event=orjson.dumps([name]).decode())]


def profile(server: ServerProcess, distinct_id: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/api/2.0/engage",
        data={"project_id": PROJECT_ID, "distinct_id": distinct_id},
        auth=(SA_USER, SA_SECRET),
    )
    [row] = response.json()["results"]
    props: dict[str, Any] = row["$properties"]
    return props


def engage(server: ServerProcess, update: dict[str, Any], *, client: str | None = None, ip: str | None = None) -> None:
    headers = {"X-Forwarded-For": client} if client else {}
    params = {"verbose": "1", **({"ip": ip} if ip is not None else {})}
    response = httpx.post(f"{server.url}/engage", json=[{"$token": TOKEN, **update}], params=params, headers=headers)
    assert response.json()["status"] == 1, response.text


# -- the built-in table (the default): countries ----------------------------------------------------------


def test_track_with_ip_1_locates_the_request(server: ServerProcess) -> None:
    name = unique("geo-ip1")
    track(server, [{"event": name, "properties": {"distinct_id": "g1"}}], ip="1", client=GB)
    [props] = stored(server, name)
    assert props["mp_country_code"] == "GB"
    assert "$city" not in props and "$region" not in props  # the built-in table knows countries only


def test_track_locates_the_request_unless_ip_0(server: ServerProcess) -> None:
    # Mixpanel's server-side SDKs send ip=0 so that their server's address does not locate the users.
    name = unique("geo-ip0")
    track(server, [{"event": name, "properties": {"distinct_id": "g1"}}], client=GB)
    track(server, [{"event": name, "properties": {"distinct_id": "g2"}}], ip="0", client=GB)
    got = {p["distinct_id"]: p.get("mp_country_code") for p in stored(server, name)}
    assert got == {"g1": "GB", "g2": None}


def test_the_events_ip_property_wins_and_is_not_stored(server: ServerProcess) -> None:
    name = unique("geo-prop")
    track(
        server,
        [
            {"event": name, "properties": {"distinct_id": "a", "ip": US}},
            {"event": name, "properties": {"distinct_id": "b", "$ip": US}},
            {"event": name, "properties": {"distinct_id": "c", "ip": "0"}},  # off, even with ?ip=1
            {"event": name, "properties": {"distinct_id": "d", "ip": 0}},
            {"event": name, "properties": {"distinct_id": "e", "ip": US, "mp_country_code": "FR"}},  # explicit
            {"event": name, "properties": {"distinct_id": "f", "ip": "not an address"}},
            {"event": name, "properties": {"distinct_id": "g", "ip": "127.0.0.1"}},
        ],
        ip="1",
        client=GB,
    )
    got = {p["distinct_id"]: p for p in stored(server, name)}
    assert {d: p.get("mp_country_code") for d, p in got.items()} == {
        "a": "US", "b": "US", "c": None, "d": None, "e": "FR", "f": None, "g": None,
    }  # fmt: skip
    assert all("ip" not in p and "$ip" not in p for p in got.values())


def test_import_locates_by_the_ip_property(server: ServerProcess) -> None:
    name = unique("geo-import")
    events = [
        {"event": name, "properties": {"distinct_id": "i1", "time": 1704067200, "$insert_id": "gi1", "ip": GB}},
        {"event": name, "properties": {"distinct_id": "i2", "time": 1704067200, "$insert_id": "gi2"}},
    ]
    response = httpx.post(f"{server.url}/import", json=events, auth=(SECRET, ""), headers={"X-Forwarded-For": US})
    assert response.status_code == 200, response.text
    got = {p["distinct_id"]: p.get("mp_country_code") for p in stored(server, name)}
    assert got == {"i1": "GB", "i2": None}  # /import without ?ip=1: the sending server is not the user
    name = unique("geo-import-ip1")
    events = [{"event": name, "properties": {"distinct_id": "i3", "time": 1704067200, "$insert_id": "gi3"}}]
    response = httpx.post(
        f"{server.url}/import", json=events, params={"ip": "1"}, auth=(SECRET, ""), headers={"X-Forwarded-For": US}
    )
    assert response.status_code == 200, response.text
    assert [p.get("mp_country_code") for p in stored(server, name)] == ["US"]


def test_profiles_are_located_by_the_request_unless_ip_0(server: ServerProcess) -> None:
    engage(server, {"$distinct_id": "gp-1", "$set": {"plan": "pro"}}, client=GB)
    assert profile(server, "gp-1")["$country_code"] == "GB"
    engage(server, {"$distinct_id": "gp-2", "$set": {"plan": "pro"}}, client=GB, ip="0")
    assert "$country_code" not in profile(server, "gp-2")
    engage(server, {"$distinct_id": "gp-3", "$ip": US, "$set": {"plan": "pro"}}, client=GB)
    assert profile(server, "gp-3")["$country_code"] == "US"
    engage(server, {"$distinct_id": "gp-4", "$ip": "0", "$set": {"plan": "pro"}}, client=GB)
    assert "$country_code" not in profile(server, "gp-4")
    engage(server, {"$distinct_id": "gp-5", "$set": {"$country_code": "DE"}}, client=GB)
    assert profile(server, "gp-5")["$country_code"] == "DE"  # set explicitly: kept
    assert "$ip" not in profile(server, "gp-3")


def test_locators_answer_in_batches() -> None:
    table = CountryTable()
    assert table.locate([GB, US, "::1", "nonsense", "2001:4860:4860::8888", f"::ffff:{GB}"]) == [
        Location("GB"), Location("US"), None, None, Location("US"), Location("GB"),
    ]  # fmt: skip


# -- a MaxMind DB file the user supplies: cities --------------------------------------------------------------


def write_mmdb(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City", languages=["en"])
    writer.insert_network(IPSet(["81.2.69.0/24"]), LONDON)
    writer.insert_network(IPSet(["8.8.8.0/24", "2001:4860::/32"]), MOUNTAIN_VIEW)
    writer.to_db_file(str(path))
    return path


class GeoServer(ServerProcess):
    def __init__(self, data_dir: Path, mmdb: Path) -> None:
        super().__init__(data_dir)
        self.mmdb = mmdb

    def serve_args(self) -> list[str]:
        return [*super().serve_args(), "--geoip", str(self.mmdb)]


@pytest.fixture(scope="module")
def city_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("geo")
    seed_catalog(folder / "data")
    server = GeoServer(folder / "data", write_mmdb(folder / "cities.mmdb")).start()
    yield server
    server.stop()


def test_a_supplied_mmdb_gives_region_and_city(city_server: ServerProcess) -> None:
    name = unique("geo-city")
    track(
        city_server,
        [
            {"event": name, "properties": {"distinct_id": "c1"}},
            {"event": name, "properties": {"distinct_id": "c2", "ip": "2001:4860:4860::8888"}},
            {"event": name, "properties": {"distinct_id": "c3", "ip": "10.0.0.1"}},  # not in the file
        ],
        ip="1",
        client=GB,
    )
    got = {
        p["distinct_id"]: {k: p.get(k) for k in ("mp_country_code", "$region", "$city")}
        for p in stored(city_server, name)
    }
    assert got == {
        "c1": {"mp_country_code": "GB", "$region": "England", "$city": "London"},
        "c2": {"mp_country_code": "US", "$region": "California", "$city": "Mountain View"},
        "c3": {"mp_country_code": None, "$region": None, "$city": None},
    }


def test_profiles_with_a_supplied_mmdb_and_geo_source(city_server: ServerProcess) -> None:
    engage(city_server, {"$distinct_id": "cp-1", "$set": {"plan": "pro"}}, client=GB)
    props = profile(city_server, "cp-1")
    assert (props["$country_code"], props["$region"], props["$city"]) == ("GB", "England", "London")
    engage(city_server, {"$distinct_id": "cp-1", "$ip": US, "$set": {"plan": "team"}})
    assert profile(city_server, "cp-1")["$city"] == "Mountain View"
    # A location from coordinates ($geo_source) is not overwritten by an address.
    engage(
        city_server, {"$distinct_id": "cp-2", "$set": {"$geo_source": "reverse_geocoding", "$city": "Paris"}}, ip="0"
    )
    engage(city_server, {"$distinct_id": "cp-2", "$set": {"plan": "pro"}}, client=GB)
    assert profile(city_server, "cp-2")["$city"] == "Paris"


def test_mmdb_locator_caches_and_reads_country_only_files(tmp_path: Path) -> None:
    path = tmp_path / "countries.mmdb"
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-Country", languages=["en"])
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB"}})
    writer.to_db_file(str(path))
    locator = MmdbLocator(path)
    assert locator.locate([GB, GB, "::1", "x"]) == [Location("GB"), Location("GB"), None, None]


def test_a_bad_geoip_setting_stops_the_server_at_once(tmp_path: Path) -> None:
    for setting in (str(tmp_path / "missing.mmdb"), str(write_text(tmp_path / "junk.mmdb"))):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mixhouse",
                "serve",
                "--data-dir",
                str(tmp_path / "data"),
                "--port",
                "1",
                "--geoip",
                setting,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "--geoip" in done.stderr


def write_text(path: Path) -> Path:
    path.write_text("not a MaxMind DB")
    return path


def test_the_address_caches_stay_within_their_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mixhouse.geo.builtin as builtin
    import mixhouse.geo.mmdb as mmdb

    monkeypatch.setattr(builtin, "CACHE_ENTRIES", 3)
    monkeypatch.setattr(mmdb, "CACHE_ENTRIES", 3)
    table, city = CountryTable(), MmdbLocator(write_mmdb(tmp_path / "cities.mmdb"))
    addresses = [GB, US, "81.2.69.1", "8.8.8.1", GB, "81.2.69.2"]
    for locator in (table, city):
        for ip in addresses:  # one at a time: the cache fills, starts over, and answers stay right
            [found] = locator.locate([ip])
            assert found is not None and found.country_code == ("GB" if ip.startswith("81.") else "US")
            assert len(locator._cache) <= 3  # type: ignore[attr-defined]
        assert [loc.country_code if loc else None for loc in locator.locate(addresses)] == [
            "GB", "US", "GB", "US", "GB", "GB",
        ]  # fmt: skip
