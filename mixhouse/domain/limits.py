"""Per-project rate limits: the rules (which API may be called how often) and the limiter that enforces
them. Nothing here knows HTTP; the HTTP layer maps paths to an `Api` and renders `RateLimited`.

A project's setting is stored as JSON text in the catalog:

    "none"                      no limits (the default, for self-hosted production)
    "mixpanel"                  Mixpanel's published limits (https://developer.mixpanel.com/reference/rate-limits)
    {"preset": "mixpanel", "query": {"per_hour": 600, "concurrent": 10}, "export": null}
                                a preset with per-API overrides; a key set to null drops that limit,
                                an API set to null drops all its limits

Keys of an API object: per_second, per_minute, per_hour, per_day (request counts in a rolling window),
concurrent, timeout_seconds, bytes_per_minute (ingestion volume).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson

from mixhouse.errors import BadRequest, MixhouseError, RateLimited


class Api(StrEnum):
    QUERY = "query"
    JQL = "jql"
    EXPORT = "export"
    GDPR = "gdpr"
    LEXICON = "lexicon"
    INGESTION = "ingestion"


# JQL runs on the Query API's budget (https://developer.mixpanel.com/reference/query-jql: its rate limits are shared with the Query API).
_BUCKET = {Api.JQL: Api.QUERY}

_WINDOW_KEYS = {"per_second": 1.0, "per_minute": 60.0, "per_hour": 3600.0, "per_day": 86400.0}
_OTHER_KEYS = ("concurrent", "timeout_seconds", "bytes_per_minute")
_WINDOW_NAMES = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}


@dataclass(frozen=True)
class Rule:
    """The limits of one API for one project. Empty fields mean "no limit"."""

    per_second: int | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    concurrent: int | None = None
    timeout_seconds: float | None = None
    bytes_per_minute: int | None = None

    def windows(self) -> list[tuple[int, float]]:
        """(allowed requests, window seconds), shortest window first."""
        pairs = [(getattr(self, key), seconds) for key, seconds in _WINDOW_KEYS.items()]
        return [(int(limit), seconds) for limit, seconds in pairs if limit is not None]

    @property
    def empty(self) -> bool:
        return self == Rule()


MIXPANEL: dict[Api, Rule] = {
    Api.QUERY: Rule(per_hour=60, concurrent=5, timeout_seconds=10.0),
    Api.JQL: Rule(per_hour=60, concurrent=5, timeout_seconds=120.0),
    Api.EXPORT: Rule(per_hour=60, per_second=3, concurrent=100),
    Api.GDPR: Rule(per_second=1),
    Api.LEXICON: Rule(per_minute=5),
    Api.INGESTION: Rule(bytes_per_minute=2 * 1024**3),
}
PRESETS: dict[str, dict[Api, Rule]] = {"none": {}, "mixpanel": MIXPANEL}


@dataclass(frozen=True)
class RateLimits:
    rules: Mapping[Api, Rule] = field(default_factory=dict)

    def rule(self, api: Api) -> Rule:
        return self.rules.get(api, Rule())


def normalize_setting(raw: str | Mapping[str, Any] | None) -> str:
    """The canonical JSON text to store for a setting given on the command line or in a settings
    file; raises BadRequest (with what is wrong) on anything `parse_setting` would not accept."""
    if raw is None:
        return "none"
    if isinstance(raw, str):
        text = raw.strip()
        if text in PRESETS:
            return text
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"rate limits must be 'none', 'mixpanel' or a JSON object, got {raw!r}") from exc
    else:
        value = dict(raw)
    if isinstance(value, str) and value in PRESETS:
        return value
    if not isinstance(value, dict):
        raise BadRequest("rate limits must be 'none', 'mixpanel' or a JSON object")
    _build(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@lru_cache(maxsize=1024)
def parse_setting(text: str | None) -> RateLimits:
    """The limits of a stored setting (see the module docstring). Cached: called on every request."""
    if text is None or text.strip() in ("", "none"):
        return RateLimits()
    stripped = text.strip()
    if stripped in PRESETS:
        return RateLimits(PRESETS[stripped])
    value = orjson.loads(stripped)
    if isinstance(value, str):
        return RateLimits(PRESETS[value])
    return _build(value)


def _build(value: dict[str, Any]) -> RateLimits:
    preset_name = value.get("preset", "none")
    if preset_name not in PRESETS:
        raise BadRequest(f"unknown rate-limit preset {preset_name!r}; use one of {sorted(PRESETS)}")
    rules = dict(PRESETS[preset_name])
    for key, override in value.items():
        if key == "preset":
            continue
        try:
            api = Api(key)
        except ValueError as exc:
            raise BadRequest(f"unknown API {key!r} in rate limits; use one of {[a.value for a in Api]}") from exc
        if override is None:
            rules.pop(api, None)
            continue
        if not isinstance(override, dict):
            raise BadRequest(f"rate limits for {key!r} must be an object or null")
        rules[api] = _merge(rules.get(api, Rule()), key, override)
    return RateLimits({api: rule for api, rule in rules.items() if not rule.empty})


def _merge(base: Rule, api: str, override: dict[str, Any]) -> Rule:
    changes: dict[str, Any] = {}
    for key, number in override.items():
        if key not in _WINDOW_KEYS and key not in _OTHER_KEYS:
            raise BadRequest(f"unknown limit {key!r} for {api!r}; use {[*_WINDOW_KEYS, *_OTHER_KEYS]}")
        if number is None:
            changes[key] = None
            continue
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) or number <= 0:
            raise BadRequest(f"limit {api}.{key} must be a positive number or null, got {number!r}")
        changes[key] = float(number) if key == "timeout_seconds" else int(number)
        if changes[key] <= 0:
            raise BadRequest(f"limit {api}.{key} must be at least 1, got {number!r}")
    return replace(base, **changes)


# -- enforcement --------------------------------------------------------------------------------


def _limit_message(api: Api, what: str) -> str:
    if api is Api.INGESTION:
        return "Project exceeded rate limits. Please retry the request with exponential backoff."  # https://developer.mixpanel.com/reference/import-events
    if api in (Api.QUERY, Api.JQL, Api.EXPORT):
        # Clients (Airbyte's manifest) recognise a Query API 429 by this text.
        noun = "export requests" if api is Api.EXPORT else "queries"
        return f"Query rate limit exceeded: at most {what.format(noun=noun)} per project"
    noun = "GDPR requests" if api is Api.GDPR else "Lexicon requests"
    return f"Rate limit exceeded: at most {what.format(noun=noun)} per project"


@dataclass
class Permit:
    """An admitted request; hand it back to `Limiter.release` when the request is over."""

    key: tuple[int, Api] | None


class Limiter:
    """Rolling-window counters and concurrency slots, per project and API. One lock makes the check and
    the count one step, so concurrent requests cannot slip past a limit between them."""

    # Whether `acquire` may wait on I/O (a limiter shared across processes): the HTTP layer then calls it
    # off the event loop, so one slow admission never holds up every other request.
    blocking = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[tuple[int, Api, float], deque[float]] = {}
        self._running: dict[tuple[int, Api], int] = {}
        self._bytes: dict[tuple[int, Api], deque[tuple[float, int]]] = {}
        self._byte_totals: dict[tuple[int, Api], int] = {}

    def acquire(self, project_id: int, api: Api, rule: Rule, *, size: int = 0) -> Permit:
        """Admit one request (of `size` body bytes) or raise RateLimited with the seconds to wait."""
        bucket = _BUCKET.get(api, api)
        key = (project_id, bucket)
        with self._lock:
            now = self._clock()
            if rule.concurrent is not None and self._running.get(key, 0) >= rule.concurrent:
                raise RateLimited(_limit_message(api, f"{rule.concurrent} concurrent {{noun}}"), retry_after=1)
            windows = [
                (limit, seconds, self._window(project_id, bucket, seconds, now)) for limit, seconds in rule.windows()
            ]
            for limit, seconds, hits in windows:
                if len(hits) >= limit:
                    wait = hits[-limit] + seconds - now
                    per = _WINDOW_NAMES[seconds]
                    raise RateLimited(_limit_message(api, f"{limit} {{noun}} per {per}"), retry_after=_ceil(wait))
            if rule.bytes_per_minute is not None and size > 0:
                self._charge_bytes(key, rule.bytes_per_minute, size, now, api)
            for _, _, hits in windows:
                hits.append(now)
            if rule.concurrent is None:
                return Permit(None)
            self._running[key] = self._running.get(key, 0) + 1
            return Permit(key)

    def release(self, permit: Permit) -> None:
        if permit.key is None:
            return
        with self._lock:
            left = self._running.get(permit.key, 1) - 1
            if left > 0:
                self._running[permit.key] = left
            else:
                self._running.pop(permit.key, None)
            permit.key = None  # releasing twice must not free a slot someone else holds

    def running(self, project_id: int, api: Api) -> int:
        with self._lock:
            return self._running.get((project_id, _BUCKET.get(api, api)), 0)

    def _window(self, project_id: int, bucket: Api, seconds: float, now: float) -> deque[float]:
        hits = self._hits.setdefault((project_id, bucket, seconds), deque())
        while hits and hits[0] <= now - seconds:
            hits.popleft()
        return hits

    def _charge_bytes(self, key: tuple[int, Api], limit: int, size: int, now: float, api: Api) -> None:
        sizes = self._bytes.setdefault(key, deque())
        total = self._byte_totals.get(key, 0)
        while sizes and sizes[0][0] <= now - 60.0:
            total -= sizes.popleft()[1]
        # One request bigger than the whole budget still passes when nothing else was sent: refusing it
        # forever would be worse than letting it through.
        if total > 0 and total + size > limit:
            freed, wait = 0, 60.0
            for at, n in sizes:
                freed += n
                if total - freed + size <= limit:
                    wait = at + 60.0 - now
                    break
            self._byte_totals[key] = total
            raise RateLimited(_limit_message(api, ""), retry_after=_ceil(wait))
        sizes.append((now, size))
        self._byte_totals[key] = total + size


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))


# -- query deadlines ----------------------------------------------------------------------------

QUERY_DEADLINE: ContextVar[float | None] = ContextVar("mixhouse_query_deadline", default=None)
"""time.monotonic() by which the current request's engine query must be done; None: no deadline.
Set by the HTTP layer, read by engines (the DuckDB engine interrupts its connection)."""


class QueryTimedOut(MixhouseError):
    status = 504
    code = "query_timed_out"

    def __init__(self, seconds: float, whose: str = "this project's") -> None:
        shown = f"{seconds:g}"
        super().__init__(
            f"Query timed out: it ran longer than {whose} {shown} second limit; narrow the date range or filters"
        )
        self.seconds = seconds


QUERY_TIMEOUT_SECONDS: ContextVar[float | None] = ContextVar("mixhouse_query_timeout", default=None)
QUERY_TIMEOUT_OWNER: ContextVar[str] = ContextVar("mixhouse_query_timeout_owner", default="this project's")


@contextmanager
def query_deadline(timeout_seconds: float | None, whose: str = "this project's") -> Iterator[None]:
    """Give queries run inside this block (and in threads started from it with the context copied, as
    Starlette's threadpool does) `timeout_seconds` to finish, engine and Python alike. Nested deadlines
    only tighten: an earlier deadline already in force stays."""
    if timeout_seconds is None:
        yield
        return
    new_deadline = time.monotonic() + timeout_seconds
    current = QUERY_DEADLINE.get()
    if current is not None and current <= new_deadline:
        yield
        return
    deadline = QUERY_DEADLINE.set(new_deadline)
    timeout = QUERY_TIMEOUT_SECONDS.set(timeout_seconds)
    owner = QUERY_TIMEOUT_OWNER.set(whose)
    try:
        yield
    finally:
        QUERY_DEADLINE.reset(deadline)
        QUERY_TIMEOUT_SECONDS.reset(timeout)
        QUERY_TIMEOUT_OWNER.reset(owner)


def check_deadline() -> None:
    """Raise QueryTimedOut once the current deadline has passed: Python work between and after engine
    statements (shaping a reply) calls this, so the deadline bounds a query end to end."""
    deadline = QUERY_DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise timed_out()


def remaining_seconds() -> float | None:
    deadline = QUERY_DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def timed_out() -> QueryTimedOut:
    return QueryTimedOut(QUERY_TIMEOUT_SECONDS.get() or 0.0, QUERY_TIMEOUT_OWNER.get())


DEFAULT_QUERY_TIMEOUT_SECONDS = 300.0  # the query_timeout_seconds setting (mixhouse.settings) when unset


# -- reply size --------------------------------------------------------------------------------------

MAX_REPLY_VALUES: ContextVar[int] = ContextVar("mixhouse_max_reply_values", default=1_000_000)
"""The most values (segments x buckets) one reply may hold (~25 MB of JSON): the max_reply_values
setting, set by the HTTP layer for each query request."""


def max_reply_values() -> int:
    return MAX_REPLY_VALUES.get()


@contextmanager
def reply_values_cap(values: int) -> Iterator[None]:
    token = MAX_REPLY_VALUES.set(values)
    try:
        yield
    finally:
        MAX_REPLY_VALUES.reset(token)
