"""IP geolocation for ingestion: an IP address to the country, region and city Mixpanel adds to events
(`mp_country_code`, `$region`, `$city`) and profiles (`$country_code`, `$region`, `$city`).

Two locators, chosen by the `--geoip` setting of `mixhouse serve` (docs/ingestion.md):
- `builtin` (the default): `iptocc`, an offline IPv4/IPv6-to-country table shipped in its PyPI wheel and
  republished as the registries change. Country only.
- a path to a MaxMind DB file the user supplies (GeoIP2/GeoLite2 City or Country, DB-IP's mmdb...), read
  with `maxminddb`: country, region (first subdivision) and city, in English.
- `off`: nothing is added.

A locator answers a whole batch at once (`locate`), so the ingestion path asks once per request for its
distinct addresses instead of once per event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mixhouse.errors import SettingsError


@dataclass(frozen=True)
class Location:
    country_code: str | None = None
    region: str | None = None
    city: str | None = None


class Locator(Protocol):
    def locate(self, ips: Sequence[str]) -> list[Location | None]:
        """One answer per address, in order; None where the address is unknown or not an address."""
        ...


class GeoSettingError(SettingsError):
    code = "invalid_geoip_setting"


def open_locator(setting: str | None) -> Locator | None:
    """The locator a `--geoip` setting names: `builtin` (or empty), `off`, or the path of a .mmdb file."""
    value = (setting or "builtin").strip()
    if value == "off":
        return None
    if value == "builtin":
        from mixhouse.geo.builtin import CountryTable

        return CountryTable()
    path = Path(value)
    if not path.is_file():
        raise GeoSettingError(f"--geoip: {value!r} is neither builtin, off, nor a MaxMind DB (.mmdb) file")
    from mixhouse.geo.mmdb import MmdbLocator

    return MmdbLocator(path)
