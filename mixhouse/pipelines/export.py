"""One export unit to its destination, through fsspec (local folders, S3 via s3fs, GCS via gcsfs, Azure
Blob via adlfs).

A unit's folder is `<bucket>/<prefix>/<project_id>/YYYY/MM/DD/full_day` (daily) or `.../DD/HH` (hourly),
Mixpanel's raw layout. Its export is safe to repeat: whatever an earlier, interrupted attempt (or an
earlier sync) left in the folder is removed first, the parts are written under fixed names, and the empty
`complete` file last: no `complete`, an export still under way (as Mixpanel documents it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from mixhouse.domain.scan import ScanQuery
from mixhouse.engine.base import Engine
from mixhouse.errors import BadRequest
from mixhouse.expr.plan import EventExpr
from mixhouse.pipelines.files import (
    IDENTITY_TABLE,
    PEOPLE_TABLE,
    Fingerprint,
    PeopleSchematizer,
    Schematizer,
    gzip_part,
    identity_mapping,
    identity_parts,
    raw_lines,
)
from mixhouse.pipelines.model import Destination, PipelineSpec, Unit

COMPLETE = "complete"


@dataclass(frozen=True)
class Credentials:
    """The server's object-store credentials (settings aws_access_key_id / aws_secret_access_key,
    azure_storage_account_key, google_application_credentials: a key file's path), never shown."""

    key: str | None = None
    secret: str | None = None
    azure_key: str | None = None
    google_key_file: str | None = None

    def __repr__(self) -> str:
        return "Credentials(***)"


@dataclass(frozen=True)
class Outcome:
    events: int
    files: int
    fingerprint: str


def filesystem(dest: Destination, credentials: Credentials, local_dir: Path | None) -> tuple[Any, str]:
    """The fsspec filesystem and the root path (no trailing slash) of a destination."""
    if dest.store == "local":
        import fsspec  # type: ignore[import-untyped]

        if local_dir is None:
            raise BadRequest("local destinations need the pipeline_local_dir setting")
        return fsspec.filesystem("file", auto_mkdir=True), str((local_dir / dest.prefix).resolve())
    root = "/".join(p for p in (dest.bucket, dest.prefix) if p)
    if dest.store == "s3":
        import s3fs  # type: ignore[import-untyped]

        client: dict[str, Any] = {}
        if dest.region:
            client["region_name"] = dest.region
        if dest.endpoint_url:
            client["endpoint_url"] = dest.endpoint_url
        options: dict[str, Any] = {"client_kwargs": client, "skip_instance_cache": True}
        if credentials.key and credentials.secret:
            options.update(key=credentials.key, secret=credentials.secret)
        return s3fs.S3FileSystem(**options), root
    if dest.store == "gcs":
        # gcsfs's core filesystem: the package's default one is an experimental variant that first asks a
        # gRPC control plane for each bucket's layout (a minute's timeout against an emulator).
        from gcsfs.core import GCSFileSystem  # type: ignore[import-untyped]

        token: str | None = credentials.google_key_file  # None: Google's default chain
        if not dest.endpoint_url:
            return GCSFileSystem(token=token, skip_instance_cache=True), root
        # A GCS-compatible store or emulator: the key file when the server has one, else anonymous (Google's
        # default chain would first wait on a metadata server that is not there).
        return GCSFileSystem(endpoint_url=dest.endpoint_url, token=token or "anon", skip_instance_cache=True), root
    import adlfs  # type: ignore[import-untyped]

    if dest.endpoint_url:
        # A blob endpoint of its own (Azurite, Azure Stack, a private endpoint): a connection string
        # naming it, signed with the server's account key.
        parts = [f"AccountName={dest.account}", f"BlobEndpoint={dest.endpoint_url}"]
        if credentials.azure_key:
            parts.append(f"AccountKey={credentials.azure_key}")
        return adlfs.AzureBlobFileSystem(connection_string=";".join(parts) + ";", skip_instance_cache=True), root
    if credentials.azure_key:
        return adlfs.AzureBlobFileSystem(
            account_name=dest.account, account_key=credentials.azure_key, skip_instance_cache=True
        ), root
    return adlfs.AzureBlobFileSystem(account_name=dest.account, skip_instance_cache=True), root


def unit_query(project_id: int, spec: PipelineSpec, unit: Unit, timezone: str, batch_rows: int) -> ScanQuery:
    if spec.data_source == "people":  # every profile as it is now, whatever the unit's span
        return ScanQuery(project_id=project_id, kind="profiles", batch_rows=batch_rows)
    start, end = unit.bounds_ms(timezone)
    where = EventExpr.parse(spec.where, timezone=timezone) if spec.where else None
    return ScanQuery(
        project_id=project_id,
        kind="events",
        from_ms=start,
        to_ms=end,
        events=spec.events,
        where=where,
        order="time",
        batch_rows=batch_rows,
    )


def fingerprint(engine: Engine, query: ScanQuery) -> str:
    """The digest of what the unit holds now (sync compares it with the one of its last export). A people
    unit holds the profiles and the identity mappings: a merge changes it as a profile update does."""
    digest = Fingerprint()
    for batch in engine.scan(query):
        digest.update(batch)
    if query.kind != "profiles":
        return digest.hexdigest()
    mappings = Fingerprint()
    for batch in engine.identity_mappings(query.project_id, batch_rows=query.batch_rows):
        mappings.update(batch)
    return _people_fingerprint(digest, mappings)


def _people_fingerprint(profiles: Fingerprint, mappings: Fingerprint) -> str:
    return f"{profiles.hexdigest()}+{mappings.hexdigest()}"


def _batches(engine: Engine, query: ScanQuery, digest: Fingerprint) -> Iterator[pa.RecordBatch]:
    return _digested(engine.scan(query), digest)


def _digested(batches: Iterator[pa.RecordBatch], digest: Fingerprint) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        digest.update(batch)
        yield batch


def _clear(fs: Any, folder: str) -> None:
    """Remove what a folder holds: an interrupted attempt's parts, or the last sync's. The `complete` marker
    goes first, so that a reader never finds it over a folder whose parts are being removed."""
    if fs.exists(folder):
        if fs.exists(f"{folder}/{COMPLETE}"):
            fs.rm(f"{folder}/{COMPLETE}")
        fs.rm(folder, recursive=True)


def export_unit(
    engine: Engine,
    project_id: int,
    timezone: str,
    spec: PipelineSpec,
    unit: Unit,
    *,
    fs: Any,
    root: str,
    file_rows: int,
) -> Outcome:
    people = spec.data_source == "people"
    # Profiles have no day: each export replaces the one people table (Mixpanel: "the data in the table is
    # replaced every time an export happens").
    folder = f"{root}/{project_id}/{PEOPLE_TABLE}" if people else f"{root}/{project_id}/{unit.folder()}"
    _clear(fs, folder)
    query = unit_query(project_id, spec, unit, timezone, min(file_rows, 50_000))
    digest = Fingerprint()
    files = 0
    if people:
        return _export_people(engine, query, fs=fs, root=root, file_rows=file_rows)
    if spec.raw:
        pending: list[bytes] = []
        for batch in _batches(engine, query, digest):
            for line in raw_lines(batch):
                pending.append(line)
                if len(pending) >= file_rows:
                    fs.pipe_file(f"{folder}/export-part-{files:05d}.json.gz", gzip_part(pending))
                    files += 1
                    pending = []
        if pending:
            fs.pipe_file(f"{folder}/export-part-{files:05d}.json.gz", gzip_part(pending))
            files += 1
    else:
        schema = Schematizer(spec.schema_type or "monoschema")
        for batch in _batches(engine, query, digest):
            schema.add(batch)
        for name, data in schema.parquet_files(file_rows):
            fs.pipe_file(f"{folder}/{name}", data)
            files += 1
        _merge_mapping(fs, f"{root}/{project_id}/schema/events.json", schema.mapping())
    fs.pipe_file(f"{folder}/{COMPLETE}", b"")
    return Outcome(events=digest.rows, files=files, fingerprint=digest.hexdigest())


def _export_people(engine: Engine, query: ScanQuery, *, fs: Any, root: str, file_rows: int) -> Outcome:
    """Every profile to `mp_people_data`, then, beside it, Mixpanel's identity mappings table
    `mp_identity_mappings_data` (every project here has ID merge), each replaced whole, each with its
    `complete` marker; the fingerprint covers both, so a merge makes a sync export them again as a profile
    update does."""
    project_id = query.project_id
    people, mappings = Fingerprint(), Fingerprint()
    files = 0
    folder = f"{root}/{project_id}/{PEOPLE_TABLE}"  # cleared by the caller
    schema = PeopleSchematizer()
    for batch in _batches(engine, query, people):
        schema.add(batch)
    for name, data in schema.parquet_files(file_rows):
        fs.pipe_file(f"{folder}/{name}", data)
        files += 1
    _merge_mapping(fs, f"{root}/{project_id}/schema/people.json", schema.mapping())
    fs.pipe_file(f"{folder}/{COMPLETE}", b"")
    folder = f"{root}/{project_id}/{IDENTITY_TABLE}"
    _clear(fs, folder)
    stream = engine.identity_mappings(project_id, batch_rows=query.batch_rows)
    for name, data in identity_parts(_digested(stream, mappings), file_rows):
        fs.pipe_file(f"{folder}/{name}", data)
        files += 1
    _merge_mapping(fs, f"{root}/{project_id}/schema/identities.json", identity_mapping())
    fs.pipe_file(f"{folder}/{COMPLETE}", b"")
    return Outcome(events=people.rows, files=files, fingerprint=_people_fingerprint(people, mappings))


def _merge_mapping(fs: Any, path: str, mapping: dict[str, Any]) -> None:
    """`schema/events.json` (`people.json`, `identities.json`): original event and property names -> tables
    and columns, all units so far."""
    current: dict[str, Any] = {"tables": {}}
    if fs.exists(path):
        current = orjson.loads(fs.cat_file(path))
    if "events" in mapping:
        current.setdefault("events", {}).update(mapping["events"])
    for table, columns in mapping["tables"].items():
        current["tables"].setdefault(table, {}).update(columns)
    fs.pipe_file(path, orjson.dumps(current, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
