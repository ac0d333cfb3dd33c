"""`mixhouse migrate --from DIR --to-engine chdb|clickhouse [--clickhouse-url URL ...]`: copy the embedded
event store of DIR into the ClickHouse engine (docs/scale-out.md#migrating-an-embedded-data-dir). Logs its
progress to stderr; prints the rows copied (or `{"error": ...}` and exit status 1)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click
import orjson

from mixhouse.errors import MixhouseError


@click.command()
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="The data dir whose embedded (DuckDB) event store is copied; stop its server first.",
)
@click.option(
    "--to-engine",
    type=click.Choice(["chdb", "clickhouse"]),
    required=True,
    help="chdb: into DIR/clickhouse (serve it with --engine chdb --data-dir DIR); clickhouse: into the server.",
)
@click.option("--clickhouse-url", default=None, help="ClickHouse HTTP URL (--to-engine clickhouse).")
@click.option("--clickhouse-database", default=None, help="ClickHouse database of the tables.  [default: mixhouse]")
@click.option("--clickhouse-user", default=None, help="(or MIXHOUSE_CLICKHOUSE_USER)")
@click.option("--clickhouse-cluster", default=None, help="Create the tables ON CLUSTER this cluster.")
@click.option("--batch-rows", type=click.IntRange(1, 1_000_000), default=100_000, show_default=True)
@click.option("--drill-pause-seconds", type=float, default=0.0, hidden=True)  # crash drills: a pause per batch
def migrate(
    from_dir: Path,
    to_engine: str,
    clickhouse_url: str | None,
    clickhouse_database: str | None,
    clickhouse_user: str | None,
    clickhouse_cluster: str | None,
    batch_rows: int,
    drill_pause_seconds: float,
) -> None:
    """Copy a data dir's embedded event store into ClickHouse (chDB or a server), resumably."""
    from mixhouse.engine.clickhouse.engine import ClickHouseEngine
    from mixhouse.migrate.copy import Progress, open_source
    from mixhouse.migrate.copy import migrate as run
    from mixhouse.settings import load_settings

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    flags = {
        "engine": to_engine,
        "data_dir": from_dir,
        "clickhouse_url": clickhouse_url,
        "clickhouse_database": clickhouse_database,
        "clickhouse_user": clickhouse_user,
        "clickhouse_cluster": clickhouse_cluster,
    }
    try:
        settings = load_settings({k: v for k, v in flags.items() if v is not None})
        where = (
            str(from_dir / "clickhouse")
            if to_engine == "chdb"
            else f"{settings.clickhouse_url}/{settings.clickhouse_database}"
        )
        progress = Progress(from_dir / f"migrate-{to_engine}.json", where)
        source = open_source(from_dir)
        try:
            target = ClickHouseEngine.from_settings(settings)
            try:
                started = time.monotonic()
                copied = run(
                    source,
                    target,
                    progress,
                    batch_rows=batch_rows,
                    after_batch=(lambda: time.sleep(drill_pause_seconds)) if drill_pause_seconds else lambda: None,
                )
            finally:
                target.close()
        finally:
            source.close()
    except MixhouseError as exc:
        click.echo(orjson.dumps({"error": exc.message}).decode())
        sys.exit(1)
    seconds = round(time.monotonic() - started, 3)
    click.echo(orjson.dumps({"migrated_to": where, "rows_copied": copied, "seconds": seconds}).decode())
