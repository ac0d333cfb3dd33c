"""Data pipelines as Mixpanel's (deprecated) pipelines API defines them
(https://docs.mixpanel.com/reference/create-warehouse-pipeline): what `create` accepts, how a pipeline is
named, and which export units (a day, or an hour, of the project's timezone) it owes.

Nothing here knows of HTTP or of the store: `parse_create` turns form parameters into a `PipelineSpec`
(or a BadRequest in Mixpanel's words), `due_units` says which units a pipeline must have exported by now."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mixhouse.domain.calendar import parse_date
from mixhouse.errors import BadRequest, MissingParameter
from mixhouse.expr.plan import EventExpr

RAW_TYPES = ("s3-raw", "gcs-raw", "azure-raw")
SCHEMA_TYPES = ("aws", "gcs-schema", "azure-blob")
WAREHOUSE_TYPES = ("bigquery", "snowflake")  # named by Mixpanel; refused here (no warehouse to load)
ALL_TYPES = RAW_TYPES + SCHEMA_TYPES + WAREHOUSE_TYPES
FREQUENCIES = ("daily", "hourly")
IDENTITY_SOURCES = ("identity", "identities", "identity_mappings")  # refused with a pointer to people
SCHEMAS = ("monoschema", "multischema")
TRIAL_DAYS = 30  # https://docs.mixpanel.com/docs/data-pipelines/old-pipelines/overview#free-trial
MAX_RECURRING = 2  # event pipelines per project with no to_date
MAX_BOUNDED = 1  # event pipelines per project with a to_date
# What a pipeline's destination is made of, per type: the parameters `create` reads (Mixpanel's names).
_DESTINATION_PARAMS = {
    "s3": ("s3_bucket", "s3_prefix", "s3_region", "s3_endpoint_url"),
    "gcs": ("gcs_bucket", "gcs_prefix", "gcs_region", "gcs_endpoint_url"),
    "azure": ("azure_account_name", "azure_container_name", "azure_prefix", "azure_endpoint_url"),
}
# Other spellings of the Azure parameters that are taken too (Mixpanel's API reference does not list the
# Azure ones; its Azure setup guide speaks of the storage account and container).
_AZURE_ALIASES = {"azure_account_name": "storage_account", "azure_container_name": "container_name"}
_URL = re.compile(r"https?://[^\s/]+(/[^\s]*)?")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")


def store_of(pipeline_type: str) -> str:
    """The object store a type writes to: s3, gcs or azure."""
    if pipeline_type in ("s3-raw", "aws"):
        return "s3"
    if pipeline_type in ("gcs-raw", "gcs-schema"):
        return "gcs"
    return "azure"


@dataclass(frozen=True)
class Destination:
    """Where files go: an object store, bucket (or Azure container) and prefix; `endpoint_url` for a
    self-hosted S3-compatible store, a GCS emulator or compatible store, or an Azure Blob endpoint; `local_prefix` for a folder under the pipeline_local_dir setting."""

    store: str  # s3, gcs, azure or local
    bucket: str
    prefix: str = ""
    region: str = ""
    endpoint_url: str = ""
    account: str = ""  # Azure storage account

    def public(self) -> dict[str, str]:
        """What the API shows of it (never a credential: there is none here to show)."""
        out = {"store": self.store, "bucket": self.bucket, "prefix": self.prefix}
        if self.region:
            out["region"] = self.region
        if self.endpoint_url:
            out["endpoint_url"] = self.endpoint_url
        return out


@dataclass(frozen=True)
class PipelineSpec:
    type: str
    data_source: str
    trial: bool
    from_date: date
    to_date: date | None
    frequency: str
    events: tuple[str, ...] | None
    where: str | None
    data_format: str  # json or parquet
    schema_type: str | None
    sync: bool
    destination: Destination

    @property
    def raw(self) -> bool:
        return self.type in RAW_TYPES

    @property
    def recurring(self) -> bool:
        return self.to_date is None

    def base_name(self) -> str:
        """Mixpanel's naming: `[trial-]<data_source>-<frequency>-<type>[-<schema_type>]`."""
        parts = (["trial"] if self.trial else []) + [self.data_source, self.frequency, self.type]
        if self.schema_type and not self.raw:
            parts.append(self.schema_type)
        return "-".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "data_source": self.data_source,
            "trial": self.trial,
            "from_date": self.from_date.isoformat(),
            "to_date": self.to_date.isoformat() if self.to_date else None,
            "frequency": self.frequency,
            "events": list(self.events) if self.events is not None else None,
            "where": self.where,
            "data_format": self.data_format,
            "schema_type": self.schema_type,
            "sync": self.sync,
            "destination": {
                "store": self.destination.store,
                "bucket": self.destination.bucket,
                "prefix": self.destination.prefix,
                "region": self.destination.region,
                "endpoint_url": self.destination.endpoint_url,
                "account": self.destination.account,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PipelineSpec:
        return cls(
            type=data["type"],
            data_source=data["data_source"],
            trial=bool(data["trial"]),
            from_date=date.fromisoformat(data["from_date"]),
            to_date=date.fromisoformat(data["to_date"]) if data.get("to_date") else None,
            frequency=data["frequency"],
            events=tuple(data["events"]) if data.get("events") is not None else None,
            where=data.get("where"),
            data_format=data["data_format"],
            schema_type=data.get("schema_type"),
            sync=bool(data["sync"]),
            destination=Destination(**data["destination"]),
        )


@dataclass(frozen=True)
class Limits:
    """The settings that bound `create` (docs/pipelines.md)."""

    max_backfill_days: int = 183
    local_dir_set: bool = False


def _flag(name: str, value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    text = value.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise BadRequest(f"Invalid parameter: {name} must be true or false, got {value!r}")


def _choice(name: str, value: str | None, options: Sequence[str], default: str | None) -> str | None:
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    if text not in options:
        raise BadRequest(f"Invalid parameter: {name} must be one of {', '.join(options)}, got {value!r}")
    return text


def parse_events(values: Iterable[str]) -> tuple[str, ...] | None:
    """`events`, passed once per event (or as one JSON array): the event names to export, None for all."""
    names: list[str] = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        if text.startswith("["):
            import orjson

            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"Invalid parameter: events must be event names, got {value!r}") from exc
            if not isinstance(parsed, list) or not all(isinstance(e, str) and e for e in parsed):
                raise BadRequest(f"Invalid parameter: events must be event names, got {value!r}")
            names.extend(parsed)
        else:
            names.append(text)
    return tuple(dict.fromkeys(names)) if names else None


def check_where(text: str | None, timezone: str) -> str | None:
    """The `where` selector, checked now so that a bad one is a 400 at `create`, not a failed export."""
    if text is None or not text.strip():
        return None
    EventExpr.parse(text, timezone=timezone)
    return text


def _destination(params: Mapping[str, str], pipeline_type: str, limits: Limits) -> Destination:
    local = (params.get("local_prefix") or "").strip()
    if local:
        if not limits.local_dir_set:
            raise BadRequest("Invalid parameter: local_prefix needs the server's pipeline_local_dir setting")
        parts = [p for p in local.replace("\\", "/").split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise BadRequest(f"Invalid parameter: local_prefix must be a relative folder, got {local!r}")
        return Destination("local", "", "/".join(parts))
    store = store_of(pipeline_type)
    names = _DESTINATION_PARAMS[store]
    endpoint = (params.get(names[3]) or "").strip()
    if endpoint and not _URL.fullmatch(endpoint):
        raise BadRequest(f"Invalid parameter: {names[3]} must be an http(s) URL, got {endpoint!r}")
    if store == "azure":
        account = (params.get("azure_account_name") or params.get(_AZURE_ALIASES["azure_account_name"]) or "").strip()
        container = (
            params.get("azure_container_name") or params.get(_AZURE_ALIASES["azure_container_name"]) or ""
        ).strip()
        if not account:
            raise MissingParameter("azure_account_name")
        if not container:
            raise MissingParameter("azure_container_name")
        if not _BUCKET.fullmatch(container):
            raise BadRequest(f"Invalid parameter: azure_container_name is not a container name, got {container!r}")
        prefix = _prefix(params.get("azure_prefix"))
        return Destination("azure", container, prefix, endpoint_url=endpoint, account=account)
    bucket = (params.get(names[0]) or "").strip()
    if not bucket:
        raise MissingParameter(names[0])
    if not _BUCKET.fullmatch(bucket):
        raise BadRequest(f"Invalid parameter: {names[0]} is not a bucket name, got {bucket!r}")
    region = (params.get(names[2]) or "").strip()
    return Destination(store, bucket, _prefix(params.get(names[1])), region, endpoint)


def _prefix(value: str | None) -> str:
    parts = [p for p in (value or "").strip().split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise BadRequest(f"Invalid parameter: the prefix must not contain . or .. parts, got {value!r}")
    return "/".join(parts)


def parse_create(
    params: Mapping[str, str], events: Iterable[str], timezone: str, today: date, limits: Limits
) -> PipelineSpec:
    """A `create` request's parameters (form fields; `events` may repeat), checked as Mixpanel documents
    them. `today` is today in the project's timezone."""
    pipeline_type = params.get("type")
    if pipeline_type is None or not pipeline_type.strip():
        raise MissingParameter("type")
    pipeline_type = pipeline_type.strip()
    if pipeline_type not in ALL_TYPES:
        raise BadRequest(f"Invalid parameter: type must be one of {', '.join(ALL_TYPES)}, got {pipeline_type!r}")
    if pipeline_type in WAREHOUSE_TYPES:
        raise BadRequest(
            f"Invalid parameter: type {pipeline_type} loads a warehouse, which this server does not do; "
            "use aws, gcs-schema or azure-blob for schematized files"
        )
    trial = _flag("trial", params.get("trial"), False)
    if (params.get("data_source") or "").strip().lower() in IDENTITY_SOURCES:
        # The data source of Mixpanel's newer JSON pipelines; this API exports the mappings with profiles.
        raise BadRequest(
            "Invalid parameter: data_source must be one of events, people; identity mappings "
            "(mp_identity_mappings_data) are exported by every people pipeline"
        )
    data_source = _choice("data_source", params.get("data_source"), ("events", "people"), "events") or "events"
    raw = pipeline_type in RAW_TYPES
    people = data_source == "people"
    if people and raw:
        raise BadRequest(f"Invalid parameter: {pipeline_type} pipelines export events only; data_source people "
                         "needs a schematized type (aws, gcs-schema, azure-blob)")  # fmt: skip
    events = [e for e in events if e.strip()]
    if people and (events or (params.get("where") or "").strip()):
        raise BadRequest("Invalid parameter: events and where filter events; a people pipeline exports every profile")
    data_format = _choice("data_format", params.get("data_format"), ("json", "parquet"), "json" if raw else "parquet")
    assert data_format is not None
    if raw and data_format != "json":
        raise BadRequest(f"Invalid parameter: data_format must be json for {pipeline_type} pipelines")
    if not raw and data_format != "parquet":
        raise BadRequest("Invalid parameter: schematized pipelines write parquet; data_format must be parquet")
    schema_type = _choice("schema_type", params.get("schema_type"), SCHEMAS, None if raw else "monoschema")
    if raw:
        schema_type = None
    if people:
        if schema_type == "multischema":
            raise BadRequest("Invalid parameter: schema_type is for events; people go to one table, mp_people_data")
        schema_type = None
    if trial:
        if schema_type == "multischema":
            raise BadRequest("Invalid parameter: trial pipelines export to one table (monoschema)")
        if params.get("events"):
            raise BadRequest("Invalid parameter: trial pipelines cannot filter by event name")
        from_date = today - timedelta(days=1)
        to_date: date | None = today + timedelta(days=TRIAL_DAYS - 2)  # 30 days of exports, yesterday first
        frequency = "daily"
        sync = False
    else:
        from_date = parse_date("from_date", params.get("from_date"))
        to_raw = params.get("to_date")
        to_date = parse_date("to_date", to_raw) if to_raw not in (None, "") else None
        if to_date is not None and to_date < from_date:
            raise BadRequest("Invalid parameter: to_date cannot be earlier than from_date")
        freq_raw = params.get("frequency")
        if to_date is not None and freq_raw not in (None, "") and freq_raw.strip() != "daily":
            raise BadRequest("Invalid parameter: frequency can only be set for pipelines with no to_date")
        frequency = _choice("frequency", freq_raw, FREQUENCIES, "daily") or "daily"
        sync = _flag("sync", params.get("sync"), not raw)
        if not raw and not sync:
            raise BadRequest("Invalid parameter: sync must be true for schematized pipelines")
        if (today - from_date).days > limits.max_backfill_days:
            raise BadRequest(
                f"Invalid parameter: from_date cannot be more than {limits.max_backfill_days} days in the past"
            )
        if people and to_date is None and from_date < today - timedelta(days=1):
            # Profiles have no past to backfill: every export writes them as they are now.
            from_date = today - timedelta(days=1)
    return PipelineSpec(
        type=pipeline_type,
        data_source=data_source,
        trial=trial,
        from_date=from_date,
        to_date=to_date,
        frequency=frequency,
        events=None if trial else parse_events(events),
        where=check_where(params.get("where"), timezone),
        data_format=data_format,
        schema_type=schema_type,
        sync=sync,
        destination=_destination(params, pipeline_type, limits),
    )


def check_room(spec: PipelineSpec, existing: Sequence[PipelineSpec]) -> None:
    """Mixpanel's limits per project: two recurring and one bounded event pipeline, one trial."""
    if spec.trial and any(p.trial for p in existing):
        raise BadRequest("A project can have only one trial pipeline")
    same = [p for p in existing if p.data_source == spec.data_source and p.recurring == spec.recurring]
    cap = MAX_RECURRING if spec.recurring else MAX_BOUNDED
    if len(same) >= cap:
        kind = "recurring (no to_date)" if spec.recurring else "non-recurring (with a to_date)"
        raise BadRequest(f"A project can have at most {cap} {kind} {spec.data_source} pipelines")


def unique_name(base: str, taken: Iterable[str]) -> str:
    names = set(taken)
    if base not in names:
        return base
    n = 2
    while f"{base}-{n}" in names:
        n += 1
    return f"{base}-{n}"


# -- export units ----------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Unit:
    """One export: a day (hour None) or an hour of a day, in the project's timezone."""

    day: date
    hour: int | None = None

    @property
    def key(self) -> str:
        return self.day.isoformat() if self.hour is None else f"{self.day.isoformat()}T{self.hour:02d}"

    @classmethod
    def from_key(cls, key: str) -> Unit:
        day, _, hour = key.partition("T")
        return cls(date.fromisoformat(day), int(hour) if hour else None)

    def bounds_ms(self, timezone: str) -> tuple[int, int]:
        """[start, end) in UTC epoch ms."""
        zone = ZoneInfo(timezone)
        if self.hour is None:
            start = datetime(self.day.year, self.day.month, self.day.day, tzinfo=zone)
            end_day = self.day + timedelta(days=1)
            end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone)
        else:
            start = datetime(self.day.year, self.day.month, self.day.day, self.hour, tzinfo=zone)
            end = start + timedelta(hours=1)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    def folder(self) -> str:
        """Mixpanel's raw layout under `<prefix>/<project_id>/`: `YYYY/MM/DD/full_day` or `YYYY/MM/DD/HH`."""
        tail = "full_day" if self.hour is None else f"{self.hour:02d}"
        return f"{self.day.year:04d}/{self.day.month:02d}/{self.day.day:02d}/{tail}"


def due_units(spec: PipelineSpec, now: datetime, timezone: str) -> list[Unit]:
    """Every unit of the pipeline's window that has ended by `now` (an aware datetime), oldest first."""
    local = now.astimezone(ZoneInfo(timezone))
    today = local.date()
    last = spec.to_date if spec.to_date is not None else today
    units: list[Unit] = []
    day = spec.from_date
    while day <= last:
        if spec.frequency == "hourly":
            for hour in range(24):
                unit = Unit(day, hour)
                if unit.bounds_ms(timezone)[1] <= int(now.timestamp() * 1000):
                    units.append(unit)
        elif day < today:
            units.append(Unit(day))
        day += timedelta(days=1)
    return units
