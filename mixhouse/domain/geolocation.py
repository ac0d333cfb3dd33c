"""Mixpanel's geolocation rules at ingestion (https://docs.mixpanel.com/docs/tracking-best-practices/geolocation):
which address an event or a profile update is located by, and which properties that adds.

Events: the `ip` property (or `$ip`) names the address and is never stored; `ip: 0` / `"0"` turns
geolocation off for that event. Without it, the request's address is used: on /track unless the request
says `ip=0` (as Mixpanel's server-side SDKs do), on /import only when it says `ip=1`.
An event that already carries `mp_country_code`, `$region` or `$city` is left as sent. Found: the
event gets `mp_country_code`, `$region`, `$city` (those the locator knows).

Profiles (`/engage`): `$ip` beside the operations names the address, `$ip: 0` / `"0"` or `?ip=0` turns it
off; otherwise the request's address is used. Updates that write properties set `$country_code`,
`$region`, `$city`, unless they `$set` those themselves or the profile's location came from coordinates
(`$geo_source` is set: Mixpanel's reverse geocoding of `$latitude`/`$longitude`).

Addresses are looked up once per request, distinct ones only, in one batch (`locate_all`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mixhouse.geo import Location, Locator

EVENT_GEO = ("mp_country_code", "$region", "$city")
PROFILE_GEO = ("$country_code", "$region", "$city")


_EVENT_GEO_KEYS = frozenset(EVENT_GEO)


def _off(value: Any) -> bool:
    return value == "0" or (value == 0 and not isinstance(value, bool))


def event_ip(props: Mapping[str, Any], request_ip: str | None, use_request_ip: bool) -> str | None:
    """The address an event is located by, or None. Runs once per event: set and dict probes only."""
    if not _EVENT_GEO_KEYS.isdisjoint(props):
        return None  # explicit geolocation bypasses the IP (Mixpanel's docs)
    value = props["ip"] if "ip" in props else props.get("$ip")
    if value is not None:
        if _off(value):
            return None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return request_ip if use_request_ip and request_ip else None


def profile_ip(record: Mapping[str, Any], request_ip: str | None, ip_param_off: bool) -> str | None:
    """The address a profile update is located by, or None."""
    if "$ip" in record:
        value = record["$ip"]
        if _off(value):
            return None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None if ip_param_off else request_ip


def locate_all(locator: Locator | None, ips: Sequence[str | None]) -> list[Location | None]:
    """One answer per entry (None where there is no address), each distinct address asked once."""
    if locator is None:
        return [None] * len(ips)
    distinct = sorted({ip for ip in ips if ip})
    found = dict(zip(distinct, locator.locate(distinct), strict=True)) if distinct else {}
    return [found.get(ip) if ip else None for ip in ips]


def properties(location: Location | None, names: tuple[str, str, str]) -> dict[str, str]:
    """The geolocation properties of a location, under `names` (country, region, city)."""
    out: dict[str, str] = {}
    if location is not None:
        if location.country_code:
            out[names[0]] = location.country_code
        if location.region:
            out[names[1]] = location.region
        if location.city:
            out[names[2]] = location.city
    return out
