"""One run of a warehouse import, as a job of the server's job runner (docs/jobs.md), and the schedule
that dispatches runs when they are due.

A run reads the table in Arrow batches, converts each batch whole (mixhouse/imports/convert.py), hands
it to the same use cases as /import, /engage and /groups (mixhouse/domain/ingestion.py) in chunks of
their 2000-record limit, and submits one WriteBatch per Arrow batch to the engine's writer, waiting for
its fsync. Then it records the batch's row hashes (mixhouse/imports/state.py) and, for time_based, the
largest insert time seen. A row whose hash is recorded is never sent again, so a second run, or a run
resumed after a crash, imports nothing twice; a crash between a commit and its record re-sends that one
batch with the same `$insert_id`s, which reports count once (docs/storage.md, deduplication)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mixhouse.domain import ingestion
from mixhouse.domain.events import MAX_BATCH_EVENTS, Endpoint, IngestContext
from mixhouse.domain.project import Project
from mixhouse.domain.writes import WriteBatch
from mixhouse.errors import BadRequest, Unavailable
from mixhouse.imports import convert
from mixhouse.imports.model import ImportType, RunStatus, SyncMode, WarehouseImport
from mixhouse.imports.sources import HASH_COLUMN, Read, SourceError, cursor_of, reader_for
from mixhouse.imports.state import SCHEMA as STATE_SCHEMA
from mixhouse.imports.state import ImportState
from mixhouse.imports.store import ImportStore
from mixhouse.jobs.model import Job
from mixhouse.jobs.runner import JobContext, JobRunner
from mixhouse.jobs.store import JobStore
from mixhouse.lexicon.effects import DroppedEvents
from mixhouse.lookup.csvtable import Table
from mixhouse.lookup.store import LookupStore

log = logging.getLogger(__name__)

KIND = "warehouse-import"
API_HOST = "warehouse"  # $mp_api_endpoint of imported events: they came through no HTTP host


class ImportDeleted(Exception):
    """The import was deleted while it ran: the run stops after the batch it was committing."""


@dataclass(frozen=True)
class RunTotals:
    imported: int = 0  # events stored, or profile updates applied
    failed: int = 0  # rows the ingestion rules refused (a time in the future, a placeholder id, ...)
    deleted: int = 0  # Mirror: events or profiles deleted


class Importer:
    def __init__(
        self, ctx: JobContext, imp: WarehouseImport, job_id: str, run_id: str, files_dir: Path | None, batch_rows: int
    ) -> None:
        self.ctx = ctx
        self.imp = imp
        self.job_id = job_id
        self.run_id = run_id
        self.files_dir = files_dir
        self.batch_rows = batch_rows
        self.store = ImportStore(ctx.catalog)
        self.state = ImportState(ctx.data_dir, imp.project_id, imp.id)
        project = ctx.catalog.project_by_id(imp.project_id)
        if project is None:
            raise SourceError(f"project {imp.project_id} no longer exists")
        self.project: Project = project

    # -- reading ------------------------------------------------------------------------------------

    def _batches(self, *, incremental: bool) -> Iterator[pa.RecordBatch]:
        source = self.store.source(self.imp.project_id, self.imp.source_id)
        if source is None:
            raise SourceError(f"warehouse source {self.imp.source_id} no longer exists")
        read = Read(dict(self.imp.table_params), batch_rows=self.batch_rows)
        if incremental:
            column = str(self.imp.config["insert_time_column_name"])
            read = Read(dict(self.imp.table_params), column, self.imp.cursor, self.batch_rows)
        try:
            yield from reader_for(source, self.files_dir).batches(read)
        except BadRequest as exc:
            raise SourceError(exc.message) from None

    def _table(self) -> str:
        params = self.imp.table_params
        return ".".join(str(p) for p in (params.get("schema_name"), params["table_name"]) if p)

    # -- writing ------------------------------------------------------------------------------------

    def _commit(self, batch: WriteBatch) -> None:
        if len(batch):
            self.ctx.engine.submit(batch).result()

    def _events(self, records: list[dict[str, Any]]) -> tuple[WriteBatch, list[bool]]:
        ctx = IngestContext(endpoint=Endpoint.IMPORT, received_ms=int(time.time() * 1000), api_host=API_HOST)
        dropped = DroppedEvents(self.ctx.catalog)(self.project.id)
        write = WriteBatch()
        accepted = [True] * len(records)
        for start in range(0, len(records), MAX_BATCH_EVENTS):
            chunk = records[start : start + MAX_BATCH_EVENTS]
            result = ingestion.import_events(self.project, chunk, ctx, dropped)
            if result.failed_messages:
                raise SourceError(result.failed_messages[0])
            write.events.extend(result.batch.events)
            for failure in result.failed:
                accepted[start + int(failure["index"])] = False
        return write, accepted

    def _profiles(self, records: list[dict[str, Any]]) -> tuple[WriteBatch, list[bool]]:
        group = self.imp.import_type is ImportType.GROUPS
        write = WriteBatch()
        accepted = [True] * len(records)
        for start in range(0, len(records), MAX_BATCH_EVENTS):
            chunk = records[start : start + MAX_BATCH_EVENTS]
            result = ingestion.update_profiles(
                self.ctx.catalog, chunk, group=group, received_ms=int(time.time() * 1000)
            )
            write.profile_updates.extend(result.batch.profile_updates)
            write.group_updates.extend(result.batch.group_updates)
            for failure in result.failed:
                accepted[start + int(failure["index"])] = False
        return write, accepted

    # -- a run --------------------------------------------------------------------------------------

    def run(self) -> RunTotals:
        if self.imp.import_type is ImportType.LOOKUP_TABLE:
            return self._lookup()
        mode = self.imp.sync_mode
        incremental = mode is SyncMode.TIME_BASED
        skip_known = mode is not SyncMode.FULL_SYNC
        known = self.state.load() if skip_known else STATE_SCHEMA.empty_table()
        known_hashes = known.column("hash").combine_chunks() if known.num_rows else pa.array([], pa.string())
        seen: list[pa.Array] = []  # Mirror: every hash in the warehouse now
        seen_keys: list[pa.Array] = []
        imported = failed = 0
        group_key = self.imp.config.get("group_key") if self.imp.import_type is ImportType.GROUPS else None
        stamp = convert.Stamp(self.imp.source_type.value, self.imp.id, self.job_id, self.run_id, self._table())
        for batch in self._batches(incremental=incremental):
            if batch.num_rows == 0:
                continue
            if self.store.get(self.imp.project_id, self.imp.id) is None:
                raise ImportDeleted("the import was deleted while it ran")
            hashes = batch.column(HASH_COLUMN)
            if mode is SyncMode.MIRROR_MODE:
                seen.append(hashes)
            if skip_known and len(known_hashes):
                fresh = pc.invert(pc.is_in(hashes, value_set=known_hashes))
                new_rows = batch.filter(fresh)
            else:
                new_rows = batch
            keys: pa.Array | None = None
            if self.imp.import_type is ImportType.EVENT_STREAM:
                write, accepted = self._events(convert.events(new_rows, self.imp.config, stamp))
            else:
                records, keys = convert.profile_sets(new_rows, self.imp.config, self.project.token, group_key=group_key)
                write, accepted = self._profiles(records)
                if mode is SyncMode.MIRROR_MODE:
                    seen_keys.append(convert.profile_keys(batch, self.imp.config, group=group_key is not None))
            self._commit(write)
            mask = pa.array(accepted, pa.bool_())
            stored_hashes = new_rows.column(HASH_COLUMN).filter(mask)
            imported += int(pc.sum(mask).as_py() or 0)
            failed += len(accepted) - int(pc.sum(mask).as_py() or 0)
            if mode is not SyncMode.FULL_SYNC:
                self.state.append(stored_hashes, None if keys is None else keys.filter(mask))
            if incremental:
                column = str(self.imp.config["insert_time_column_name"])
                top = pc.max(batch.column(column)).as_py()
                cursor = cursor_of(top)
                if cursor is not None:
                    self.store.set_cursor(self.imp.id, cursor)
                    self.imp = replace(self.imp, cursor=cursor)
        deleted = 0
        if mode is SyncMode.MIRROR_MODE:
            deleted = self._mirror_deletes(seen, seen_keys, group_key)
        return RunTotals(imported, failed, deleted)

    def _mirror_deletes(self, seen: list[pa.Array], seen_keys: list[pa.Array], group_key: str | None) -> int:
        """What left the warehouse since the last run: its events deleted, or its profiles (a key no row has
        any more); the state becomes what is in the warehouse now."""
        state = self.state.load()
        if state.num_rows == 0:
            return 0
        current = pa.chunked_array(seen, pa.string()).combine_chunks() if seen else pa.array([], pa.string())
        still = pc.is_in(state.column("hash"), value_set=current)
        gone = state.filter(pc.invert(still))
        deleted = 0
        if gone.num_rows:
            if self.imp.import_type is ImportType.EVENT_STREAM:
                deleted = self.ctx.engine.delete_events(self.project.id, gone.column("hash").to_pylist())
                events_deleted(self.ctx, self.project.id)
            else:
                keys_now = (
                    pa.chunked_array(seen_keys, pa.string()).combine_chunks()
                    if seen_keys
                    else pa.array([], pa.string())
                )
                gone_keys = gone.column("key").combine_chunks()
                orphan = pc.invert(pc.fill_null(pc.is_in(gone_keys, value_set=keys_now), False))
                keys = sorted({k for k in gone_keys.filter(orphan).to_pylist() if k is not None})
                if keys:
                    write, accepted = self._profiles(
                        convert.profile_deletes(keys, self.project.token, group_key=group_key)
                    )
                    self._commit(write)
                    deleted = sum(accepted)
        self.state.replace(state.filter(still))
        return deleted

    def _lookup(self) -> RunTotals:
        batches = list(self._batches(incremental=False))
        table = pa.Table.from_batches(batches) if batches else None
        if table is None or table.num_rows == 0:
            rows = Table((str(self.imp.config["property_key_column_name"]),), [])
        else:
            rows = convert.lookup_rows(table, str(self.imp.config["property_key_column_name"]))
        lookups = LookupStore(self.ctx.catalog)
        table_id = self.imp.lookup_table_id
        if table_id is None or lookups.get(self.project.id, table_id) is None:
            name = f"{self.imp.table_params['table_name']} (warehouse import {self.imp.id})"
            existing = next((t for t in lookups.tables(self.project.id) if t.name == name), None)
            table_id = existing.id if existing is not None else lookups.create(self.project.id, name).id
            self.store.set_lookup_table(self.imp.id, table_id)
        lookups.replace(self.project.id, table_id, rows)
        return RunTotals(imported=len(rows.rows))


# -- the job kind -----------------------------------------------------------------------------------


class ImportKind:
    name = KIND

    def __init__(self, files_dir: Path | None, batch_rows: int) -> None:
        self.files_dir = files_dir
        self.batch_rows = batch_rows

    def cancel_window_seconds(self) -> float:
        return 0.0

    def revoked(self, job: Job, ctx: JobContext) -> None:
        ImportStore(ctx.catalog).finish_run(str(job.payload["run_id"]), RunStatus.CANCELLED, None)

    def run(self, job: Job, ctx: JobContext) -> Mapping[str, Any]:
        store = ImportStore(ctx.catalog)
        run_id = str(job.payload["run_id"])
        imp = store.get(job.project_id, int(job.payload["import_id"]))
        if imp is None:
            store.finish_run(run_id, RunStatus.CANCELLED, None, "the import was deleted")
            return {"cancelled": True}
        try:
            totals = Importer(ctx, imp, job.id, run_id, self.files_dir, self.batch_rows).run()
        except Unavailable:
            raise  # the runner waits for the store and runs the job again
        except ImportDeleted as exc:
            store.finish_run(run_id, RunStatus.CANCELLED, None, str(exc))
            ImportState(ctx.data_dir, imp.project_id, imp.id).drop()
            return {"cancelled": True}
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            store.finish_run(run_id, RunStatus.FAILED, None, message)
            if isinstance(exc, SourceError):
                return {"failed": message}  # the warehouse's fault: the run FAILED, the job did its work
            raise
        store.finish_run(run_id, RunStatus.SUCCEEDED, totals.imported)
        return {"num_events_imported": totals.imported, "failed_rows": totals.failed, "deleted": totals.deleted}


def dispatch(runner: JobRunner, imp: WarehouseImport, *, manual: bool = False) -> str | None:
    """Start a run of `imp` (a job); its run id, or None when a run of it is going already."""
    store = ImportStore(runner.ctx.catalog)
    run_id = uuid.uuid4().hex
    if not store.dispatched(imp.id, run_id, time.time(), manual=manual):
        return None
    runner.submit(KIND, imp.project_id, {"import_id": imp.id, "run_id": run_id})
    return run_id


class Schedule:
    """Dispatches the runs that are due (`next_run` in the catalog: a restart keeps the schedule)."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self.reconciled = False

    def _reconcile(self, store: ImportStore) -> None:
        """At start: a run left RUNNING without a job (the server stopped between recording the run and
        submitting its job) is FAILED, or its import could never run again. A run whose job a crash
        interrupted keeps its job, which the runner runs again."""
        jobs = {str(j.payload.get("run_id")) for j in JobStore(self.runner.ctx.catalog).active() if j.kind == KIND}
        for run_id in store.running_ids():
            if run_id not in jobs:
                store.finish_run(run_id, RunStatus.FAILED, None, "interrupted before it started")

    def __call__(self) -> float:
        store = ImportStore(self.runner.ctx.catalog)
        if not self.reconciled:
            self._reconcile(store)
            self.reconciled = True
        now = time.time()
        for imp in store.due(now):
            dispatch(self.runner, imp)
        upcoming = store.next_due()
        return 3600.0 if upcoming is None else max(0.0, upcoming - time.time())


def events_deleted(ctx: JobContext, project_id: int) -> None:
    """Tell what watches stored events (pipelines' sync, caches of users) that some were deleted, as a GDPR
    deletion does."""
    forget = ctx.services.get("forget_users")
    if forget is not None:
        forget(project_id)
