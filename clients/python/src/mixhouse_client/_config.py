"""Where requests go (a base URL, or Mixpanel's hosts per region and API family) and how they authenticate."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mixhouse_client._exceptions import ConfigurationError


class Family(StrEnum):
    """Mixpanel serves its API families from different hosts."""

    INGESTION = "ingestion"  # /track /engage /groups /import
    EXPORT = "export"  # /api/2.0/export
    QUERY = "query"  # /api/query/*
    APP = "app"  # /api/app/projects/{id}/*


class Region(StrEnum):
    US = "us"
    EU = "eu"
    IN = "in"


# https://docs.mixpanel.com/reference/overview: ingestion, query and raw export hosts per data residency.
_HOSTS: dict[Region, dict[Family, str]] = {
    Region.US: {
        Family.INGESTION: "https://api.mixpanel.com",
        Family.EXPORT: "https://data.mixpanel.com",
        Family.QUERY: "https://mixpanel.com",
        Family.APP: "https://mixpanel.com",
    },
    Region.EU: {
        Family.INGESTION: "https://api-eu.mixpanel.com",
        Family.EXPORT: "https://data-eu.mixpanel.com",
        Family.QUERY: "https://eu.mixpanel.com",
        Family.APP: "https://eu.mixpanel.com",
    },
    Region.IN: {
        Family.INGESTION: "https://api-in.mixpanel.com",
        Family.EXPORT: "https://data-in.mixpanel.com",
        Family.QUERY: "https://in.mixpanel.com",
        Family.APP: "https://in.mixpanel.com",
    },
}


def base_urls(base_url: str | None, region: Region | str) -> dict[Family, str]:
    """One base URL for every family (a mixhouse server), else the region's Mixpanel hosts."""
    if base_url:
        root = base_url.rstrip("/")
        return dict.fromkeys(Family, root)
    try:
        return dict(_HOSTS[Region(str(region).lower())])
    except ValueError as exc:
        raise ConfigurationError(f"unknown region {region!r}: expected us, eu or in") from exc


@dataclass(frozen=True)
class ServiceAccount:
    """Mixpanel's recommended server credential: HTTP Basic with the account's username and secret; every
    call names the project (`project_id`)."""

    username: str
    secret: str = ""
    project_id: int = 0

    def __repr__(self) -> str:  # never print the secret
        return f"ServiceAccount(username={self.username!r}, secret='***', project_id={self.project_id})"


@dataclass(frozen=True)
class ProjectSecret:
    """The legacy project API secret: HTTP Basic with the secret as the username. `project_id` is needed only
    for routes that carry the project in their path (mixhouse's App API)."""

    secret: str
    project_id: int | None = None

    def __repr__(self) -> str:
        return f"ProjectSecret(secret='***', project_id={self.project_id})"


Credentials = ServiceAccount | ProjectSecret
