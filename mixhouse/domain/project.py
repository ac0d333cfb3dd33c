"""Projects and service accounts: who may send and read which data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson

# Mixpanel's data residencies (US, EU and India clusters), each with its own API hosts.
RESIDENCIES = ("us", "eu", "in")
MAX_PROJECT_ID = 2**63 - 1  # project ids are SQLite integers


class IdMerge(StrEnum):
    SIMPLIFIED = "simplified"
    ORIGINAL = "original"


class TimeMode(StrEnum):
    """How event times are exported and how export dates are read.

    UTC: true epoch times, dates in UTC (Mixpanel projects created from 2023 on).
    PROJECT: times shifted into the project timezone and dates read there (older projects).
    """

    UTC = "utc"
    PROJECT = "project"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    ANALYST = "analyst"
    CONSUMER = "consumer"

    @property
    def may_import(self) -> bool:
        from mixhouse.domain.permissions import Action, allowed  # the one table of what roles may do

        return allowed(self, Action.IMPORT)


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    token: str
    secret: str
    api_key: str
    timezone: str = "UTC"
    id_merge: IdMerge = IdMerge.SIMPLIFIED
    time_mode: TimeMode = TimeMode.UTC
    residency: str = "us"
    rate_limits: str = "none"  # "none", "mixpanel" or JSON text: see mixhouse.domain.limits
    organization_id: int = 1  # the organisation that owns it (mixhouse/accounts)

    def public_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "token": self.token,
            "api_secret": self.secret,
            "api_key": self.api_key,
            "timezone": self.timezone,
            "id_merge": self.id_merge.value,
            "time_mode": self.time_mode.value,
            "residency": self.residency,
            "rate_limits": orjson.loads(self.rate_limits) if self.rate_limits.startswith("{") else self.rate_limits,
            "organization_id": self.organization_id,
        }


@dataclass(frozen=True)
class ServiceAccount:
    username: str
    roles: dict[int, Role]  # project id -> role
    expires_at: float | None = None
    id: int = 0
    organization_id: int = 1
    role: Role = Role.CONSUMER  # its role in its organisation (what it may do on the Service Accounts API)
