"""The server's settings: one frozen `Settings`, read once when `mixhouse serve` starts and passed down.

Each setting comes from, in order of precedence: a command-line flag of `mixhouse serve`, a `MIXHOUSE_*`
environment variable, a key of the TOML file named by `--config PATH` (or `MIXHOUSE_SERVER_CONFIG`),
else its default. docs/operations.md has the table (generated from `FIELDS`, checked by a test).

This is the one module of the package that reads the environment (tests/test_architecture.py).
A value that cannot be used stops the server with one line naming where it came from:
`MIXHOUSE_MAX_URL_BYTES must be a positive integer, got 'lots'`.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from mixhouse.errors import SettingsError

CONFIG_ENV = "MIXHOUSE_SERVER_CONFIG"  # MIXHOUSE_CONFIG is the client's config file (clients/python)
ENGINES = ("duckdb", "chdb", "clickhouse")  # chdb: ClickHouse in process; clickhouse: a server (docs/scale-out.md)
LOOPS = ("auto", "asyncio", "uvloop")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_MEMORY = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|[KMGT]|B|bytes|%)?", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    engine: str = "duckdb"
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "warning"
    loop: str = "auto"
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    geoip: str = "builtin"
    access_log: bool = True
    switch_interval_seconds: float = 0.005  # the interpreter lock's hand-over (mixhouse/heap.py; CPython's)
    # the connection (mixhouse/http/protocol.py)
    max_url_bytes: int = 64 * 1024
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    max_connections: int = 1000
    keep_alive_seconds: float = 5.0
    # requests
    auth_failures_per_minute: int = 30
    auth_cache_entries: int = 10_000
    lexicon_items_per_minute: int = 4000
    lexicon_deletions_per_request: int = 3000
    query_timeout_seconds: float = 300.0
    max_reply_values: int = 1_000_000
    max_concurrent_exports: int = 8
    export_queue_seconds: float = 30.0
    flags_cohort_ttl_s: float = 60.0
    web_session_seconds: float = 12 * 3600.0
    web_login_failures: int = 10
    # the store
    memory_limit: str = "2GB"
    disk_reserve_bytes: int = 64 * 1024 * 1024
    idle_checkpoint_seconds: float = 5.0
    checkpoint_threshold_bytes: int = 256 * 1024 * 1024
    reopen_after_rows: int = 200_000
    import_workers: int = 1
    import_worker_min_bytes: int = 256 * 1024
    kernel_cache_bytes: int = 1 << 30
    delete_drill_pause_seconds: float = 0.0
    migration_drill_pause_seconds: float = 0.0
    clickhouse_url: str = "http://127.0.0.1:8123"
    clickhouse_database: str = "mixhouse"
    clickhouse_user: str = "default"
    clickhouse_password: str = ""
    clickhouse_cluster: str = ""  # empty: a single node; else the cluster the engine creates its tables ON
    # several processes (docs/scale-out.md#several-api-processes)
    cluster_url: str | None = dataclass_field(default=None, repr=False)
    catalog_url: str | None = dataclass_field(default=None, repr=False)  # None: catalog.sqlite3 in data_dir
    job_lease_seconds: float = 30.0
    # compliance and lookup tables
    gdpr_max_ids: int = 2000
    gdpr_cancel_window_seconds: float = 0.0
    lookup_max_bytes: int = 100 * 1024 * 1024
    lookup_replaces_per_day: int = 100
    lookup_max_project_rows: int = 5_000_000
    # JQL (docs/jql.md)
    jql_timeout_seconds: float = 120.0
    jql_max_memory_mb: int = 512
    jql_workers: int = 2
    jql_queue_seconds: float = 30.0
    jql_max_output_mb: int = 256
    jql_batch_rows: int = 10_000
    jql_resolve_identity: bool = True
    jql_pushdown: bool = True
    # data pipelines (docs/pipelines.md)
    pipeline_tick_seconds: float = 60.0
    pipeline_max_backfill_days: int = 183
    pipeline_file_rows: int = 100_000
    pipeline_sync_days: int = 10
    pipeline_sync_interval_seconds: float = 3600.0
    pipeline_local_dir: Path | None = None
    aws_access_key_id: str | None = dataclass_field(default=None, repr=False)
    aws_secret_access_key: str | None = dataclass_field(default=None, repr=False)
    azure_storage_account_key: str | None = dataclass_field(default=None, repr=False)
    google_application_credentials: str | None = None
    # warehouse imports (docs/warehouse-imports.md)
    warehouse_files_dir: Path | None = None
    warehouse_batch_rows: int = 50_000
    warehouse_manual_syncs_per_hour: int = 5


# -- what each setting accepts -------------------------------------------------------------------------

Parse = Callable[[object, str], Any]


def _number(raw: object, where: str, what: str) -> float:
    if isinstance(raw, bool):
        raise SettingsError(f"{where} must be {what}, got {raw!r}")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError(f"{where} must be {what}, got {raw!r}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{where} must be {what}, got {raw!r}")
    return value


def _int(minimum: int) -> Parse:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(raw: object, where: str) -> int:
        value = _number(raw, where, what)
        if value != int(value) or value < minimum:
            raise SettingsError(f"{where} must be {what}, got {raw!r}")
        return int(value)

    return parse


def _port(raw: object, where: str) -> int:
    value = _int(1)(raw, where)
    if value > 65535:
        raise SettingsError(f"{where} must be a port number (1-65535), got {raw!r}")
    return int(value)


def _seconds(*, zero: bool = False) -> Parse:
    what = "a number of seconds >= 0" if zero else "a positive number of seconds"

    def parse(raw: object, where: str) -> float:
        value = _number(raw, where, what)
        if value < 0 or (value == 0 and not zero):
            raise SettingsError(f"{where} must be {what}, got {raw!r}")
        return value

    return parse


def _choice(options: tuple[str, ...]) -> Parse:
    def parse(raw: object, where: str) -> str:
        value = str(raw).strip().lower() if isinstance(raw, str) else raw
        if value not in options:
            raise SettingsError(f"{where} must be one of {', '.join(options)}, got {raw!r}")
        return str(value)

    return parse


def _postgres_url(raw: object, where: str) -> str:
    value = _text(raw, where)
    if not value.startswith(("postgresql://", "postgres://")):
        raise SettingsError(f"{where}: a PostgreSQL URL (postgresql://user:password@host:port/database)")
    return value


def _text(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise SettingsError(f"{where} must be a non-empty string, got {raw!r}")
    return raw.strip()


def _secret(raw: object, where: str) -> str:
    """Any string, the empty one included (a password)."""
    if not isinstance(raw, str):
        raise SettingsError(f"{where} must be a string")
    return raw


def _path(raw: object, where: str) -> Path:
    return raw if isinstance(raw, Path) else Path(_text(raw, where))


def _file(raw: object, where: str) -> Path:
    path = _path(raw, where)
    if not path.is_file():
        raise SettingsError(f"{where} must name an existing file, got {raw!r}")
    return path


def _bool(raw: object, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{where} must be 1 or 0 (true or false), got {raw!r}")


def _memory(raw: object, where: str) -> str:
    value = _text(raw, where)
    if not _MEMORY.fullmatch(value):
        raise SettingsError(f"{where} must be a size such as 2GB or 512MiB, got {raw!r}")
    return value


@dataclass(frozen=True)
class Field:
    name: str  # the Settings attribute and the TOML key
    env: str | None  # the environment variable, if any
    flag: str | None  # the `mixhouse serve` flag, if any
    parse: Parse
    meaning: str


FIELDS: tuple[Field, ...] = (
    Field("data_dir", None, "--data-dir", _path, "folder holding the catalog and the event store"),
    Field("engine", "MIXHOUSE_ENGINE", "--engine", _choice(ENGINES), "the storage engine: duckdb, chdb or clickhouse"),
    Field("host", None, "--host", _text, "address to listen on"),
    Field("port", None, "--port", _port, "port to listen on (1-65535)"),
    Field("log_level", None, "--log-level", _choice(LOG_LEVELS), "the server's own log lines on stderr"),
    Field("loop", "MIXHOUSE_LOOP", "--loop", _choice(LOOPS), "event loop; asyncio under libfaketime"),
    Field("ssl_certfile", None, "--ssl-certfile", _file, "serve HTTPS with this certificate"),
    Field("ssl_keyfile", None, "--ssl-keyfile", _file, "the certificate's key"),
    Field("geoip", "MIXHOUSE_GEOIP", "--geoip", _text, "IP geolocation: builtin, off, or a .mmdb file"),
    Field("access_log", "MIXHOUSE_ACCESS_LOG", None, _bool, "one JSON line per request on stderr (0: off)"),
    Field(
        "switch_interval_seconds",
        "MIXHOUSE_SWITCH_INTERVAL_SECONDS",
        None,
        _seconds(),
        "how long a thread waits for the interpreter lock before it asks its holder to let go",
    ),
    Field("max_url_bytes", "MIXHOUSE_MAX_URL_BYTES", None, _int(1), "request target cap (414)"),
    Field("max_header_bytes", "MIXHOUSE_MAX_HEADER_BYTES", None, _int(1), "header lines cap (431)"),
    Field("header_timeout_seconds", "MIXHOUSE_HEADER_TIMEOUT_SECONDS", None, _seconds(), "head deadline (408)"),
    Field("body_timeout_seconds", "MIXHOUSE_BODY_TIMEOUT_SECONDS", None, _seconds(), "body deadline (408)"),
    Field("max_connections", "MIXHOUSE_MAX_CONNECTIONS", None, _int(1), "open connections served (503 past)"),
    Field("keep_alive_seconds", "MIXHOUSE_KEEP_ALIVE_SECONDS", None, _seconds(), "idle keep-alive close"),
    Field(
        "auth_failures_per_minute",
        "MIXHOUSE_AUTH_FAILURES_PER_MINUTE",
        None,
        _int(1),
        "refused service-account logins per address per minute, then 429",
    ),
    Field(
        "auth_cache_entries",
        "MIXHOUSE_AUTH_CACHE_ENTRIES",
        None,
        _int(0),
        "verified service-account secrets cached per process (0: none)",
    ),
    Field(
        "lexicon_items_per_minute",
        "MIXHOUSE_LEXICON_ITEMS_PER_MINUTE",
        None,
        _int(0),
        "Lexicon events and properties written per project per minute (0: no limit)",
    ),
    Field(
        "lexicon_deletions_per_request",
        "MIXHOUSE_LEXICON_DELETIONS_PER_REQUEST",
        None,
        _int(0),
        "Lexicon schemas one request may delete or truncate (0: no limit)",
    ),
    Field("query_timeout_seconds", "MIXHOUSE_QUERY_TIMEOUT_SECONDS", None, _seconds(), "every query's deadline (504)"),
    Field("max_reply_values", "MIXHOUSE_MAX_REPLY_VALUES", None, _int(1), "values (segments x buckets) per reply"),
    Field("max_concurrent_exports", "MIXHOUSE_MAX_CONCURRENT_EXPORTS", None, _int(1), "exports streaming at once"),
    Field(
        "export_queue_seconds",
        "MIXHOUSE_EXPORT_QUEUE_SECONDS",
        None,
        _seconds(zero=True),
        "wait for an export slot, then 503",
    ),
    Field(
        "flags_cohort_ttl_s",
        "MIXHOUSE_FLAGS_COHORT_TTL_S",
        None,
        _seconds(zero=True),
        "cohort membership cache of flag evaluation (0: none)",
    ),
    Field("web_session_seconds", "MIXHOUSE_WEB_SESSION_SECONDS", None, _seconds(), "web app session lifetime"),
    Field("web_login_failures", "MIXHOUSE_WEB_LOGIN_FAILURES", None, _int(1), "failed web logins per 15 min, then 429"),
    Field("memory_limit", "MIXHOUSE_MEMORY_LIMIT", None, _memory, "DuckDB's memory_limit; beyond it work spills"),
    Field(
        "disk_reserve_bytes",
        "MIXHOUSE_DISK_RESERVE_BYTES",
        None,
        _int(0),
        "free disk kept beyond the next checkpoint's need (503 under)",
    ),
    Field(
        "idle_checkpoint_seconds",
        "MIXHOUSE_IDLE_CHECKPOINT_SECONDS",
        None,
        _seconds(),
        "checkpoint once writes pause this long",
    ),
    Field(
        "checkpoint_threshold_bytes",
        "MIXHOUSE_CHECKPOINT_THRESHOLD_BYTES",
        None,
        _int(1),
        "WAL size at which a commit also checkpoints (DuckDB's checkpoint_threshold)",
    ),
    Field(
        "import_workers",
        "MIXHOUSE_IMPORT_WORKERS",
        None,
        _int(0),
        "processes that validate large /import bodies beside the server's (0: none, all in the server)",
    ),
    Field(
        "import_worker_min_bytes",
        "MIXHOUSE_IMPORT_WORKER_MIN_BYTES",
        None,
        _int(0),
        "an /import body of at least this many bytes (decompressed) goes to a worker process",
    ),
    Field(
        "reopen_after_rows",
        "MIXHOUSE_REOPEN_AFTER_ROWS",
        None,
        _int(0),
        "reopen the idle store after this many new events (0: never)",
    ),
    Field("kernel_cache_bytes", "MIXHOUSE_KERNEL_CACHE_BYTES", None, _int(0), "kernel arrays kept between queries"),
    Field(
        "delete_drill_pause_seconds",
        "MIXHOUSE_DELETE_DRILL_PAUSE_SECONDS",
        None,
        _seconds(zero=True),
        "crash drills only: hold each GDPR deletion open this long before its commit",
    ),
    Field(
        "migration_drill_pause_seconds",
        "MIXHOUSE_MIGRATION_DRILL_PAUSE_SECONDS",
        None,
        _seconds(zero=True),
        "crash drills only: hold each store upgrade step open this long before its commit",
    ),
    Field(
        "clickhouse_url",
        "MIXHOUSE_CLICKHOUSE_URL",
        "--clickhouse-url",
        _text,
        "ClickHouse HTTP URL (engine clickhouse)",
    ),
    Field("clickhouse_database", "MIXHOUSE_CLICKHOUSE_DATABASE", None, _text, "ClickHouse database of the tables"),
    Field("clickhouse_user", "MIXHOUSE_CLICKHOUSE_USER", None, _text, "ClickHouse user (engine clickhouse)"),
    Field(
        "clickhouse_password", "MIXHOUSE_CLICKHOUSE_PASSWORD", None, _secret, "ClickHouse password (engine clickhouse)"
    ),
    Field(
        "clickhouse_cluster",
        "MIXHOUSE_CLICKHOUSE_CLUSTER",
        "--clickhouse-cluster",
        _secret,
        "ClickHouse cluster (remote_servers name) to create replicated, sharded tables on; empty: one node",
    ),
    Field(
        "cluster_url",
        "MIXHOUSE_CLUSTER_URL",
        "--cluster-url",
        _postgres_url,
        "PostgreSQL URL shared by several processes (rate-limit windows, job lease; default: catalog_url)",
    ),
    Field(
        "catalog_url",
        "MIXHOUSE_CATALOG_URL",
        "--catalog-url",
        _postgres_url,
        "PostgreSQL URL of the catalog shared by several processes; none: catalog.sqlite3 in data_dir",
    ),
    Field(
        "job_lease_seconds",
        "MIXHOUSE_JOB_LEASE_SECONDS",
        None,
        _seconds(),
        "with a shared catalog: how long the job runner's lease lasts unrenewed (another process takes over after)",
    ),
    Field("gdpr_max_ids", "MIXHOUSE_GDPR_MAX_IDS", None, _int(1), "distinct ids a GDPR request may name"),
    Field(
        "gdpr_cancel_window_seconds",
        "MIXHOUSE_GDPR_CANCEL_WINDOW_SECONDS",
        None,
        _seconds(zero=True),
        "time a GDPR request stays STAGING (cancellable)",
    ),
    Field("lookup_max_bytes", "MIXHOUSE_LOOKUP_MAX_BYTES", None, _int(1), "largest lookup-table upload, inflated"),
    Field(
        "lookup_replaces_per_day",
        "MIXHOUSE_LOOKUP_REPLACES_PER_DAY",
        None,
        _int(1),
        "lookup-table replaces a project may make in 24 hours",
    ),
    Field(
        "lookup_max_project_rows",
        "MIXHOUSE_LOOKUP_MAX_PROJECT_ROWS",
        None,
        _int(1),
        "rows of all a project's lookup tables together",
    ),
    Field(
        "jql_timeout_seconds", "MIXHOUSE_JQL_TIMEOUT_SECONDS", None, _seconds(), "a JQL script's run time (400 past)"
    ),
    Field(
        "jql_max_memory_mb", "MIXHOUSE_JQL_MAX_MEMORY_MB", None, _int(1), "a JQL script's JavaScript heap (400 past)"
    ),
    Field("jql_workers", "MIXHOUSE_JQL_WORKERS", None, _int(1), "JQL scripts running at once"),
    Field(
        "jql_queue_seconds",
        "MIXHOUSE_JQL_QUEUE_SECONDS",
        None,
        _seconds(zero=True),
        "wait for a JQL worker, then 429",
    ),
    Field("jql_max_output_mb", "MIXHOUSE_JQL_MAX_OUTPUT_MB", None, _int(1), "a JQL answer's JSON (400 past)"),
    Field("jql_batch_rows", "MIXHOUSE_JQL_BATCH_ROWS", None, _int(1), "events handed to JavaScript per batch"),
    Field(
        "jql_resolve_identity",
        "MIXHOUSE_JQL_RESOLVE_IDENTITY",
        None,
        _bool,
        "JQL sees ids resolved by ID Merge (0: as ingested)",
    ),
    Field(
        "jql_pushdown",
        "MIXHOUSE_JQL_PUSHDOWN",
        None,
        _bool,
        "JQL's common aggregate shapes answered by the engine (0: all in JavaScript)",
    ),
    Field(
        "pipeline_tick_seconds",
        "MIXHOUSE_PIPELINE_TICK_SECONDS",
        None,
        _seconds(),
        "how often data pipelines look for ended days and hours to export",
    ),
    Field(
        "pipeline_max_backfill_days",
        "MIXHOUSE_PIPELINE_MAX_BACKFILL_DAYS",
        None,
        _int(0),
        "how far back a pipeline's from_date may reach",
    ),
    Field("pipeline_file_rows", "MIXHOUSE_PIPELINE_FILE_ROWS", None, _int(1), "events per exported file"),
    Field("pipeline_sync_days", "MIXHOUSE_PIPELINE_SYNC_DAYS", None, _int(0), "days back that pipeline sync checks"),
    Field(
        "pipeline_sync_interval_seconds",
        "MIXHOUSE_PIPELINE_SYNC_INTERVAL_SECONDS",
        None,
        _seconds(),
        "least time between two sync checks of late data",
    ),
    Field(
        "pipeline_local_dir",
        "MIXHOUSE_PIPELINE_LOCAL_DIR",
        None,
        _path,
        "folder that pipelines with local_prefix write under (none: refused)",
    ),
    Field("aws_access_key_id", "AWS_ACCESS_KEY_ID", None, _text, "S3 key of pipelines (never shown)"),
    Field("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", None, _text, "S3 secret of pipelines (never shown)"),
    Field(
        "azure_storage_account_key",
        "AZURE_STORAGE_ACCOUNT_KEY",
        None,
        _text,
        "Azure Blob account key of pipelines (never shown)",
    ),
    Field(
        "google_application_credentials",
        "GOOGLE_APPLICATION_CREDENTIALS",
        None,
        _text,
        "service-account key file GCS pipelines write with (unset: Google's default credentials)",
    ),
    Field(
        "warehouse_files_dir",
        "MIXHOUSE_WAREHOUSE_FILES_DIR",
        None,
        _path,
        "folder whose DuckDB and Parquet files warehouse sources may read (unset: none)",
    ),
    Field(
        "warehouse_batch_rows",
        "MIXHOUSE_WAREHOUSE_BATCH_ROWS",
        None,
        _int(1),
        "warehouse rows read, converted and committed per batch",
    ),
    Field(
        "warehouse_manual_syncs_per_hour",
        "MIXHOUSE_WAREHOUSE_MANUAL_SYNCS_PER_HOUR",
        None,
        _int(0),
        "manual-sync calls per import per hour, then 429 (0: no limit)",
    ),
)


# -- reading them --------------------------------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    known = {f.name for f in FIELDS}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SettingsError(f"config file {path}: unknown setting {unknown[0]!r} (see docs/operations.md#settings)")
    return table


def load_settings(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> Settings:
    """The settings from `flags` (None values: not given), `env` (default: this process's environment)
    and the TOML file `config` (default: the one `env` names, if any). Raises SettingsError."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    if config is None and env.get(CONFIG_ENV, "").strip():
        config = Path(env[CONFIG_ENV].strip())
    table = _read_config(config) if config is not None else {}
    values: dict[str, Any] = {}
    for field in FIELDS:
        if field.name in flags:
            raw, where = flags[field.name], field.flag or field.name
        elif field.env is not None and env.get(field.env, "").strip():
            raw, where = env[field.env], field.env
        elif field.name in table:
            raw, where = table[field.name], f"{field.name} in {config}"
        else:
            continue
        values[field.name] = field.parse(raw, where)
    return Settings(**values)


def defaults() -> Settings:
    """The settings when nothing is set (tests and tools that open a store in-process)."""
    return Settings()


assert {f.name for f in FIELDS} == {f.name for f in fields(Settings)}, "every setting has a row in FIELDS"
