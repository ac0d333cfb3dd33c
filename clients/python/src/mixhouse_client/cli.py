"""The command line over the client: `import`, `export`, `query segmentation|funnel|retention|insights`,
`engage`, `flags eval`, and (in `_cli_manage.py`) `annotations ...` and `flags list|create|...`. Installed
as `mixhouse-client`, and added to the server's own `mixhouse` command.

Settings come from options, else the environment (`MIXHOUSE_*`, else `MP_*`), else a TOML file
(`$MIXHOUSE_CONFIG`, default `~/.config/mixhouse/client.toml`); secrets are never printed.
Every error is one line on stderr (`error: ...`) and exit status 1; never a traceback.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
import time
import tomllib
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn, ParamSpec, TypeVar

import click

with warnings.catch_warnings():  # typer 0.25 re-exports click names that click 8.5 marks deprecated
    warnings.simplefilter("ignore", DeprecationWarning)
    import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from mixhouse_client import _cli_render as render
from mixhouse_client._batching import Batch, Oversized, batches, with_insert_id
from mixhouse_client._cli_files import BadLine, StateFile, detect_format, fingerprint, open_binary, read_events
from mixhouse_client._client import Client, IngestResult, __version__
from mixhouse_client._config import Credentials, ProjectSecret, ServiceAccount
from mixhouse_client._exceptions import MixpanelError

app = typer.Typer(
    name="mixhouse-client",
    help="Import, export and query Mixpanel's HTTP APIs (a mixhouse server or Mixpanel itself).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
query_app = typer.Typer(help="Reports: segmentation, funnel, retention, insights.", no_args_is_help=True)
app.add_typer(query_app, name="query")
flags_app = typer.Typer(help="Feature flags: evaluate them for a user, and manage them.", no_args_is_help=True)
app.add_typer(flags_app, name="flags")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mixhouse-client {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Import, export and query Mixpanel's HTTP APIs (a mixhouse server or Mixpanel itself)."""


P = ParamSpec("P")
R = TypeVar("R")


def _env(*names: str) -> list[str]:
    return [f"MIXHOUSE_{n}" for n in names] + [f"MP_{n}" for n in names]


BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url", envvar=_env("BASE_URL"), help="One server for every API family (mixhouse).", show_default=False
    ),
]
RegionOpt = Annotated[
    str | None,
    typer.Option("--region", envvar=_env("REGION"), help="Mixpanel's hosts without --base-url: us (default), eu, in."),
]
Username = Annotated[
    str | None,
    typer.Option("--username", envvar=_env("USERNAME"), help="Service account username.", show_default=False),
]
Secret = Annotated[
    str | None, typer.Option("--secret", envvar=_env("SECRET"), help="Service account secret.", show_default=False)
]
ProjectId = Annotated[
    int | None, typer.Option("--project-id", envvar=_env("PROJECT_ID"), help="Project id.", show_default=False)
]
ApiSecret = Annotated[
    str | None,
    typer.Option("--api-secret", envvar=_env("API_SECRET"), help="Project API secret (legacy).", show_default=False),
]
Timeout = Annotated[
    float | None, typer.Option("--timeout", envvar=_env("TIMEOUT"), help="Seconds per request (default 120).")
]
FromDate = Annotated[str, typer.Option("--from-date", help="First day, YYYY-MM-DD (inclusive).")]
ToDate = Annotated[str, typer.Option("--to-date", help="Last day, YYYY-MM-DD (inclusive).")]
Where = Annotated[str | None, typer.Option("--where", help="Filter expression.", show_default=False)]
On = Annotated[str | None, typer.Option("--on", help="Breakdown expression.", show_default=False)]
Unit = Annotated[str | None, typer.Option("--unit", help="hour, day, week or month.", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="The server's JSON reply.")]
AsCsv = Annotated[bool, typer.Option("--csv", help="The table as CSV.")]
Chart = Annotated[bool, typer.Option("--chart", help="A terminal chart.")]


CONFIG_KEYS = frozenset({"base_url", "region", "username", "secret", "project_id", "api_secret", "timeout", "token"})


def config_file() -> dict[str, Any]:
    """The settings file, or {} when there is none."""
    path = Path(os.environ.get("MIXHOUSE_CONFIG") or Path.home() / ".config" / "mixhouse" / "client.toml")
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MixpanelError(f"{path}: {exc}") from exc
    unknown = sorted(set(settings) - CONFIG_KEYS)
    if unknown:
        raise MixpanelError(f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(CONFIG_KEYS))})")
    return settings


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _client(
    base_url: str | None,
    region: str | None,
    username: str | None,
    secret: str | None,
    project_id: int | None,
    api_secret: str | None,
    timeout: float | None,
    token: str | None = None,
    gdpr_token: str | None = None,
) -> Client:
    """A client from options, the environment and the settings file. `token` (the project token) is enough
    for the calls that accept it (`flags eval`), `gdpr_token` for the GDPR API; the others need credentials."""
    given = {
        "base_url": base_url,
        "region": region,
        "username": username,
        "secret": secret,
        "project_id": project_id,
        "api_secret": api_secret,
        "timeout": timeout,
        "token": token,
    }
    if any(v is None for v in given.values()):
        for key, value in config_file().items():
            if given[key] is None:
                given[key] = value
    base_url, username, secret, api_secret = (
        _text(given["base_url"]),
        _text(given["username"]),
        _text(given["secret"]),
        _text(given["api_secret"]),
    )
    project_id = int(given["project_id"]) if given["project_id"] is not None else None
    region = str(given["region"] or "us")
    timeout = float(given["timeout"] or 120.0)
    token = _text(given["token"])
    credentials: Credentials | None
    if username:
        if not project_id:
            raise MixpanelError("a service account needs --project-id (or MIXHOUSE_PROJECT_ID)")
        credentials = ServiceAccount(username, secret or "", project_id)
    elif api_secret:
        credentials = ProjectSecret(api_secret, project_id)
    elif token or gdpr_token:
        credentials = None
    else:
        raise MixpanelError(
            "no credentials: set MIXHOUSE_USERNAME, MIXHOUSE_SECRET and MIXHOUSE_PROJECT_ID, or MIXHOUSE_API_SECRET"
        )
    return Client(
        base_url=base_url, region=region, credentials=credentials, token=token, timeout=timeout, gdpr_token=gdpr_token
    )


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Errors as one line on stderr and exit status 1 (130 when interrupted); never a traceback."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except MixpanelError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        except Exception as exc:
            _fail(f"{type(exc).__name__}: {exc}")

    return run


def _fail(message: str, status: int = 1) -> NoReturn:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.stderr.flush()
    sys.exit(status)  # SystemExit, not click's Exit: a host group run with standalone_mode=False returns on Exit


def _err_console() -> Console:
    return Console(stderr=True)


# -- import ----------------------------------------------------------------------------------------


@app.command("import")
@one_line_errors
def import_command(
    file: Annotated[Path, typer.Argument(help="Events: JSON lines, CSV or Parquet; gzip-compressed or not.")],
    fmt: Annotated[str, typer.Option("--format", help="auto (by extension), jsonl, csv or parquet.")] = "auto",
    errors: Annotated[
        Path | None, typer.Option("--errors", help="Refused records go here (default FILE.errors.jsonl).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict/--no-strict", help="Validate every record (strict=1).")] = True,
    restart: Annotated[bool, typer.Option("--restart", help="Ignore where an interrupted run stopped.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, max=16, help="Requests in flight.")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=2000, help="Events per request.")] = 2000,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Import FILE's events through /import.

    Batches of at most 2,000 events and 2 MB, gzip, an $insert_id for every event (so re-running never
    duplicates); resumes where an interrupted run stopped.
    """
    client = _client(base_url, region, username, secret, project_id, api_secret, timeout)
    file_format = detect_format(file, fmt)
    stat = file.stat()
    state = StateFile(file.with_name(file.name + ".mixhouse-import"))
    identity = fingerprint(str(file.resolve()), stat.st_size, stat.st_mtime_ns, file_format)
    saved = None if restart else state.load()
    done = int(saved["done"]) if saved and saved.get("file") == identity else 0
    errors_path = errors or file.with_name(file.name + ".errors.jsonl")
    error_file: IO[str] | None = None
    refused = 0

    def record_error(entry: dict[str, Any]) -> None:
        nonlocal error_file, refused
        if error_file is None:
            error_file = open(errors_path, "a" if done else "w", encoding="utf-8")  # noqa: SIM115
        error_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        refused += 1

    stream, counting = open_binary(file)
    numbers: deque[int] = deque()  # record numbers of the records handed to the batcher, in order

    def good_records() -> Iterator[dict[str, Any]]:
        for number, item in read_events(stream, file_format, skip=done):
            if isinstance(item, BadLine):
                record_error({"line": item.line, "field": None, "message": item.message, "record": item.raw})
                continue
            numbers.append(number)
            yield with_insert_id(item)

    params = {"strict": "1" if strict else "0"}
    client._auth()  # no credentials: fail before reading the file
    console = _err_console()
    started = time.monotonic()
    imported = 0
    progress = Progress(
        TextColumn("[bold]import"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[events]:>12,} events"),
        TextColumn("{task.fields[rate]:>10,.0f} events/s"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    in_flight: deque[tuple[Future[IngestResult], Batch | Oversized, list[int]]] = deque()

    def settle(future: Future[IngestResult], item: Batch | Oversized, lines: list[int]) -> None:
        nonlocal imported, done
        result = future.result()
        imported += result.accepted
        for failed in result.failed:
            position = (failed.index - item_start(item)) if failed.index is not None else None
            entry: dict[str, Any] = {
                "line": lines[position] if position is not None and 0 <= position < len(lines) else None,
                "$insert_id": failed.insert_id,
                "field": failed.field,
                "message": failed.message,
            }
            if isinstance(item, Batch) and position is not None and 0 <= position < item.size:
                entry["record"] = json.loads(item.records[position])
            record_error(entry)
        done = lines[-1] if lines else done
        state.save({"file": identity, "done": done})

    try:
        with progress, ThreadPoolExecutor(max_workers=workers) as pool:
            task = progress.add_task("import", total=stat.st_size, events=0, rate=0.0)
            try:
                for item in batches(good_records(), max_records=batch_size):
                    size = item.size if isinstance(item, Batch) else 1
                    lines = [numbers.popleft() for _ in range(size)]
                    in_flight.append((pool.submit(client._send_batch, item, params), item, lines))
                    while len(in_flight) > workers * 2 or (in_flight and in_flight[0][0].done()):
                        settle(*in_flight.popleft())
                        elapsed = max(time.monotonic() - started, 1e-9)
                        progress.update(task, completed=counting.bytes_read, events=imported, rate=imported / elapsed)
                while in_flight:
                    settle(*in_flight.popleft())
            finally:
                for future, _, _ in in_flight:
                    future.cancel()  # the pool still waits for the requests already sent
            elapsed = max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=stat.st_size, events=imported, rate=imported / elapsed)
    finally:
        stream.close()
        if error_file is not None:
            error_file.close()
        client.close()
    state.clear()
    summary = f"imported {imported:,} events in {elapsed:.1f} s ({imported / elapsed:,.0f} events/s)"
    if refused:
        _fail(f"{summary}; {refused:,} refused, see {errors_path}")
    sys.stderr.write(summary + "\n")


def item_start(item: Batch | Oversized) -> int:
    return item.start if isinstance(item, Batch) else item.index


# -- export ----------------------------------------------------------------------------------------


@app.command("export")
@one_line_errors
def export_command(
    from_date: FromDate,
    to_date: ToDate,
    event: Annotated[list[str] | None, typer.Option("--event", help="Event name (repeat for several).")] = None,
    where: Where = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    time_in_ms: Annotated[bool, typer.Option("--time-in-ms", help="Times in milliseconds.")] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="With --output: start over, ignore a partial run.")
    ] = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Raw events as JSON lines, one request per day.

    With --output, an interrupted export resumes at the first day it had not finished.
    """
    client = _client(base_url, region, username, secret, project_id, api_secret, timeout)
    start, end = date.fromisoformat(from_date), date.fromisoformat(to_date)
    identity = fingerprint(start, end, event, where, time_in_ms)
    state = StateFile(output.with_name(output.name + ".mixhouse-export")) if output else None
    saved = state.load() if state and not restart else None
    resume_day: date | None = None
    offset = 0
    if saved and saved.get("query") == identity and output is not None and output.exists():
        resume_day, offset = date.fromisoformat(saved["day"]), int(saved["offset"])
    sink: IO[bytes]
    if output is None:
        sink = sys.stdout.buffer
    else:
        sink = open(output, "r+b" if resume_day else "wb")  # noqa: SIM115
        sink.truncate(offset)
        sink.seek(offset)
    console = _err_console()
    total_days = (end - start).days + 1
    progress = Progress(
        TextColumn("[bold]export {task.fields[day]}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[events]:>12,} events"),
        TextColumn("{task.fields[rate]:>10,.0f} events/s"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal or (output is None and sys.stdout.isatty()),
    )
    started = time.monotonic()
    count = 0
    first = (resume_day.toordinal() + 1) if resume_day else start.toordinal()
    try:
        with progress:
            task = progress.add_task("export", total=total_days, day="", events=0, rate=0.0)
            progress.update(task, completed=first - start.toordinal())
            chunks = client.export_chunks(
                date.fromordinal(first) if first <= end.toordinal() else end,
                end,
                event=event or None,
                where=where,
                time_in_ms=time_in_ms,
            )
            for chunk in chunks if first <= end.toordinal() else []:
                progress.update(task, day=chunk.day.isoformat())
                pending: list[bytes] = []
                for line in chunk.lines():
                    pending.append(line)
                    if len(pending) >= 4096:
                        sink.write(b"\n".join(pending) + b"\n")
                        count += len(pending)
                        pending.clear()
                        progress.update(task, events=count, rate=count / max(time.monotonic() - started, 1e-9))
                if pending:
                    sink.write(b"\n".join(pending) + b"\n")
                    count += len(pending)
                sink.flush()
                if state is not None:
                    state.save({"query": identity, "day": chunk.day.isoformat(), "offset": sink.tell()})
                progress.update(task, advance=1, events=count, rate=count / max(time.monotonic() - started, 1e-9))
    finally:
        if output is not None:
            sink.close()
        client.close()
    if state is not None:
        state.clear()
    elapsed = max(time.monotonic() - started, 1e-9)
    sys.stderr.write(f"exported {count:,} events in {elapsed:.1f} s ({count / elapsed:,.0f} events/s)\n")


# -- reports ---------------------------------------------------------------------------------------


def _show(
    reply: Any,
    rows: render.Rows,
    as_json: bool,
    as_csv: bool,
    chart: bool = False,
    draw: Callable[[Console], None] | None = None,
) -> None:
    """The reply as JSON, the rows as CSV, a chart, or (by default) the rows as a table."""
    if as_json:
        sys.stdout.write(json.dumps(reply, ensure_ascii=False) + "\n")
    elif as_csv:
        sys.stdout.write(render.csv_text(rows))
    elif chart and draw is not None:
        draw(Console())
    else:
        render.print_table(Console(), rows)


@query_app.command("segmentation")
@one_line_errors
def segmentation_command(
    event: Annotated[str, typer.Option("--event", help="Event name.")],
    from_date: FromDate,
    to_date: ToDate,
    on: On = None,
    unit: Unit = None,
    where: Where = None,
    count_type: Annotated[
        str | None, typer.Option("--type", help="general, unique or average.", show_default=False)
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Top segments.", show_default=False)] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    chart: Chart = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Event counts over time, optionally broken down --on an expression."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        reply = client.segmentation(
            event, from_date, to_date, on=on, unit=unit, where=where, type=count_type, limit=limit
        )
    rows = render.segmentation_rows(event, reply)
    _show(reply, rows, as_json, as_csv, chart, lambda c: render.series_chart(c, rows))


@query_app.command("funnel")
@one_line_errors
def funnel_command(
    funnel_id: Annotated[int, typer.Option("--funnel-id", help="A saved funnel's id.")],
    from_date: FromDate,
    to_date: ToDate,
    unit: Unit = None,
    interval: Annotated[int | None, typer.Option("--interval", help="Days per bucket.", show_default=False)] = None,
    length: Annotated[int | None, typer.Option("--length", help="Conversion window.", show_default=False)] = None,
    length_unit: Annotated[str | None, typer.Option("--length-unit", show_default=False)] = None,
    on: On = None,
    where: Where = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    chart: Chart = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """A saved funnel's steps and conversion, summed over the range."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        reply = client.funnel(
            funnel_id,
            from_date,
            to_date,
            unit=unit,
            interval=interval,
            length=length,
            length_unit=length_unit,
            on=on,
            where=where,
        )
    rows = render.funnel_rows(funnel_id, reply)
    _show(reply, rows, as_json, as_csv, chart, lambda c: render.funnel_chart(c, funnel_id, reply))


@query_app.command("retention")
@one_line_errors
def retention_command(
    from_date: FromDate,
    to_date: ToDate,
    born_event: Annotated[str | None, typer.Option("--born-event", show_default=False)] = None,
    event: Annotated[str | None, typer.Option("--event", help="Return event.", show_default=False)] = None,
    born_where: Annotated[str | None, typer.Option("--born-where", show_default=False)] = None,
    where: Where = None,
    retention_type: Annotated[str | None, typer.Option("--retention-type", show_default=False)] = None,
    unit: Unit = None,
    interval_count: Annotated[int | None, typer.Option("--interval-count", show_default=False)] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """Cohorts by first --born-event and how many came back in each interval."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        reply = client.retention(
            from_date,
            to_date,
            born_event=born_event,
            event=event,
            born_where=born_where,
            where=where,
            retention_type=retention_type,
            unit=unit,
            interval_count=interval_count,
        )
    _show(reply, render.retention_rows(reply), as_json, as_csv, False, None)


@query_app.command("insights")
@one_line_errors
def insights_command(
    bookmark_id: Annotated[int, typer.Option("--bookmark-id", help="A saved report's id.")],
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    chart: Chart = False,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """A saved Insights report."""
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        reply = client.insights(bookmark_id)
    rows = render.insights_rows(reply)
    _show(reply, rows, as_json, as_csv, chart, lambda c: render.series_chart(c, rows))


# -- profiles --------------------------------------------------------------------------------------


@app.command("engage")
@one_line_errors
def engage_command(
    where: Where = None,
    distinct_id: Annotated[list[str] | None, typer.Option("--distinct-id", help="Repeat for several.")] = None,
    output_properties: Annotated[list[str] | None, typer.Option("--property", help="Keep only these.")] = None,
    cohort_id: Annotated[int | None, typer.Option("--cohort-id", show_default=False)] = None,
    group_key: Annotated[str | None, typer.Option("--group-key", help="Group profiles of this key.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """User (or group) profiles, every page, as JSON lines or CSV."""
    if fmt not in ("jsonl", "csv"):
        raise MixpanelError(f"unknown --format {fmt!r}: expected jsonl or csv")
    with _client(base_url, region, username, secret, project_id, api_secret, timeout) as client:
        profiles = client.profiles(
            where=where,
            distinct_ids=distinct_id or None,
            output_properties=output_properties or None,
            cohort_id=cohort_id,
            group_key=group_key,
        )
        sink: IO[str] = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        try:
            if fmt == "jsonl":
                for profile in profiles:
                    sink.write(json.dumps(profile, ensure_ascii=False) + "\n")
            else:
                # columns: the --property names, streamed; without them every property seen, after the last page
                everything: Iterable[dict[str, Any]] = profiles if output_properties else list(profiles)
                keys = list(output_properties or sorted({k for p in everything for k in p.get("$properties", {})}))
                writer = csv.writer(sink, lineterminator="\n")
                writer.writerow(["$distinct_id", *keys])
                for p in everything:
                    writer.writerow([p["$distinct_id"], *(_csv_value(p["$properties"].get(k)) for k in keys)])
        finally:
            if output:
                sink.close()


# -- flags eval ------------------------------------------------------------------------------------

Token = Annotated[
    str | None,
    typer.Option("--token", envvar=_env("TOKEN"), help="Project token (enough for flags).", show_default=False),
]


@flags_app.command("eval")
@one_line_errors
def flags_eval_command(
    distinct_id: Annotated[str, typer.Option("--distinct-id", help="The user to evaluate the flags for.")],
    flag: Annotated[str | None, typer.Option("--flag", help="One flag's key (default every flag).")] = None,
    context: Annotated[
        str | None,
        typer.Option("--context", help='More context, a JSON object: {"device_id": ..., "custom_properties": {...}}.'),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Evaluate in process over /flags/definitions (cohort flags: remote).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The /flags reply's flags object.")] = False,
    token: Token = None,
    base_url: BaseUrl = None,
    region: RegionOpt = None,
    username: Username = None,
    secret: Secret = None,
    project_id: ProjectId = None,
    api_secret: ApiSecret = None,
    timeout: Timeout = None,
) -> None:
    """The variant of each flag the user gets: `flag<TAB>variant` lines, the variant alone with --flag."""
    extra: Any = {}
    if context is not None:
        try:
            extra = json.loads(context)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--context") from exc
        if not isinstance(extra, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--context")
    ctx = {**extra, "distinct_id": distinct_id}
    with _client(base_url, region, username, secret, project_id, api_secret, timeout, token) as client:
        flags = client.local_flags().evaluate(ctx, flag) if local else client.flags(ctx, flag)
    if as_json:
        typer.echo(json.dumps(flags, ensure_ascii=False, sort_keys=True))
    elif flag is not None:
        if flag in flags:
            typer.echo(flags[flag]["variant_key"])
    else:
        for key in sorted(flags):
            typer.echo(f"{key}\t{flags[key]['variant_key']}")


def _csv_value(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value


# -- entry points ----------------------------------------------------------------------------------


def add_commands(group: click.Group) -> None:
    """Add `import`, `export`, `query`, `engage` and `flags eval` to another click group (the server's
    `mixhouse`). A group the host has already (its `flags`, with `import`) gets our subcommands added to it."""
    commands = typer.main.get_group(app)
    for name, command in commands.commands.items():
        existing = group.commands.get(name)
        if isinstance(existing, click.Group) and isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                if sub_name not in existing.commands:
                    existing.add_command(sub, sub_name)
        else:
            group.add_command(command, name)


# the commands of these modules register themselves on `app` (they import it from here)
from mixhouse_client import _cli_manage, _cli_more  # noqa: E402, F401


def main() -> None:
    """The `mixhouse-client` console script; usage errors are one line too (status 2)."""
    command = typer.main.get_command(app)
    try:
        command.main(prog_name="mixhouse-client", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
