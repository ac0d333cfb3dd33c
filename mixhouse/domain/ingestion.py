"""Ingestion use cases: from decoded records to a WriteBatch plus what to tell the sender."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mixhouse.domain import events as ev
from mixhouse.domain import profiles as pr
from mixhouse.domain.catalog import CatalogPort
from mixhouse.domain.payloads import as_records
from mixhouse.domain.project import IdMerge, Project
from mixhouse.domain.writes import WriteBatch
from mixhouse.errors import BadRequest, PayloadTooLarge
from mixhouse.geo import Locator
from mixhouse.lexicon import effects as lexicon


@dataclass
class IngestResult:
    batch: WriteBatch = field(default_factory=WriteBatch)
    accepted: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    failed_messages: list[str] = field(default_factory=list)  # whole-batch refusals, as plain strings

    @property
    def first_error(self) -> str | None:
        if self.failed_messages:
            return self.failed_messages[0]
        return str(self.failed[0]["message"]) if self.failed else None


def check_batch_size(records: list[Any], limit: int = ev.MAX_BATCH_EVENTS) -> None:
    if len(records) > limit:
        raise PayloadTooLarge(f"request exceeds max limit of {limit} records per batch")


class _TokenProjects:
    """Token -> project, looked up once per request; unknown or missing tokens fail the record."""

    def __init__(self, catalog: CatalogPort) -> None:
        self._catalog = catalog
        self._cache: dict[str, Project | None] = {}

    def __call__(self, token: Any) -> Project:
        if not isinstance(token, str) or not token:
            raise ValueError("token, missing or empty")
        if token not in self._cache:
            self._cache[token] = self._catalog.project_by_token(token)
        project = self._cache[token]
        if project is None:
            raise ValueError("token, not a token of any project")
        return project


def _project_id_of_token(projects: _TokenProjects) -> Callable[[Any], int | None]:
    def project_id(record: Any) -> int | None:
        props = record.get("properties")
        try:
            return projects(props.get("token")).id if isinstance(props, dict) else None
        except ValueError:
            return None  # validation reports the token

    return project_id


def track(
    catalog: CatalogPort,
    records: list[Any],
    ctx: ev.IngestContext,
    dropped_by: Callable[[int], lexicon.Drops] | None = None,
) -> IngestResult:
    """`dropped_by`: what a project's Lexicon schemas drop (default: asked of the catalog once per project)."""
    check_batch_size(records)
    projects = _TokenProjects(catalog)
    # Events a Lexicon schema drops fail like invalid records (mixhouse/lexicon/effects.py).
    records, kept_index, dropped = lexicon.split_dropped(
        records, _project_id_of_token(projects), dropped_by or lexicon.DroppedEvents(catalog)
    )
    prepared = ev.prepare_events(records, lambda props: projects(props.get("token")), ctx)
    lexicon.merge_failures(prepared, kept_index, dropped)
    result = IngestResult(accepted=prepared.accepted)
    result.batch.events = prepared.events
    result.failed = [f.as_dict() for f in prepared.failed]
    return result


def import_events(
    project: Project, records: list[Any], ctx: ev.IngestContext, dropped: lexicon.Drops = lexicon.NO_DROPS
) -> IngestResult:
    """`dropped`: what the project's Lexicon schemas drop (a dropped event's records fail)."""
    check_batch_size(records)
    if project.id_merge is IdMerge.SIMPLIFIED and ev.has_identity_events(records):
        # Mixpanel refuses the whole batch, with failed_records as plain strings (https://developer.mixpanel.com/reference/import-events).
        return IngestResult(failed_messages=[ev.SIMPLIFIED_REFUSES_IDENTITY])
    if dropped.events or dropped.properties:
        records, kept_index, dropped_failures = lexicon.split_dropped(
            records, lambda _r: project.id, lambda _p: dropped
        )
    else:  # the usual project: nothing to drop, no pass over the records
        kept_index, dropped_failures = [], []
    prepared = ev.prepare_events(records, lambda _props: project, ctx, project=project)
    lexicon.merge_failures(prepared, kept_index, dropped_failures)
    result = IngestResult(accepted=prepared.accepted)
    result.batch.events = prepared.events
    result.failed = [f.as_dict() for f in prepared.failed]
    return result


def update_profiles(
    catalog: CatalogPort,
    records: list[Any],
    *,
    group: bool,
    received_ms: int,
    geo: Locator | None = None,
    request_ip: str | None = None,
    ip_param_off: bool = False,
) -> IngestResult:
    check_batch_size(records, pr.MAX_UPDATES)
    projects = _TokenProjects(catalog)

    def project_for(token: str) -> Project:
        try:
            return projects(token)
        except ValueError as exc:
            raise pr.ProfileError(str(exc)) from exc

    prepared = pr.prepare_updates(
        records,
        project_for,
        group=group,
        received_ms=received_ms,
        geo=geo,
        request_ip=request_ip,
        ip_param_off=ip_param_off,
    )
    result = IngestResult(accepted=len(prepared.updates))
    if group:
        result.batch.group_updates = prepared.updates
    else:
        result.batch.profile_updates = prepared.updates
    result.failed = [{"index": i, "message": m} for i, m in prepared.failed]
    return result


def records_from(data: Any) -> list[Any]:
    if data is None:
        raise BadRequest("data, missing or empty")
    return as_records(data)
