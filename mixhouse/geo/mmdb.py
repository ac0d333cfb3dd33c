"""A user-supplied MaxMind DB file (GeoIP2/GeoLite2 City or Country, or any mmdb with the same layout),
read with `maxminddb`. Lookups are cached per address (most traffic repeats addresses): a bounded dict,
emptied when full, costs one dict probe on a hit."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import maxminddb

from mixhouse.geo import GeoSettingError, Location

CACHE_ENTRIES = 65_536


def _name(record: Any) -> str | None:
    if isinstance(record, Mapping):
        names = record.get("names")
        if isinstance(names, Mapping):
            name = names.get("en")
            return name if isinstance(name, str) and name else None
    return None


def location_of(record: Any) -> Location | None:
    """A GeoIP2-shaped record to a Location (country iso_code, first subdivision, city)."""
    if not isinstance(record, Mapping):
        return None
    country = record.get("country") or record.get("registered_country")
    code = country.get("iso_code") if isinstance(country, Mapping) else None
    subdivisions = record.get("subdivisions")
    region = _name(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else None
    found = Location(
        country_code=code if isinstance(code, str) else None, region=region, city=_name(record.get("city"))
    )
    return found if found != Location() else None


class MmdbLocator:
    def __init__(self, path: Path) -> None:
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise GeoSettingError(f"--geoip: {path} is not a readable MaxMind DB file: {exc}") from exc
        self._cache: dict[str, Location | None] = {}

    def _one(self, ip: str) -> Location | None:
        try:
            address = ipaddress.ip_address(ip)
            return location_of(self._reader.get(address))
        except ValueError:  # not an address, or IPv6 in an IPv4-only file
            return None

    def locate(self, ips: Sequence[str]) -> list[Location | None]:
        cache = self._cache
        out: list[Location | None] = []
        for ip in ips:
            if ip in cache:
                out.append(cache[ip])
                continue
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()
            found = cache[ip] = self._one(ip)
            out.append(found)
        return out
