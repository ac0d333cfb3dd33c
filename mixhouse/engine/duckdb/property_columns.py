"""Property columns: each project's first `SLOTS` property keys also stored as typed columns.

Events keep every property in the JSON `properties` column (the source of truth: export returns it
byte for byte). Next to it the events table has `SLOTS` column triples, `ps<i> VARCHAR`, `pn<i> DOUBLE`
and `po<i> JSON`; `property_slots` says which key of which project a slot `i` holds. For a row, the
triple holds the key's value split by kind, computed from the same JSON value the printer used to read
(`json_extract(properties, pointer)`, text `t`):

    ps  the string, when the value is a JSON string            (the printer's STRING part)
    pn  TRY_CAST(t AS DOUBLE): the number, when it is one       (its NUMBER part)
    po  the JSON value when it is neither (true, false, null, a list, an object); NULL when missing

so the printer reads a slotted key as columns (`printer.DuckDBPrinter._slot_value`) with the exact
semantics of the JSON read, and any other key from the JSON as before. Mixpanel's data is schemaless:
the same key may be a string in one event and a list in the next; each lands in its own column.

Slots are handed out per project, first come first served, just before the write that first stores
the key (most frequent key of the batch first), so every stored row carrying a slotted key has the
slot filled. The table gets a slot's columns when some project first takes that slot: every column
costs each insert, NULL or not. When a project's slots are full, later keys stay JSON-only (`property_layout.overflow`).

The keys the server adds to every event (`UNSLOTTED`: `$mp_api_endpoint`, `$mp_api_timestamp_ms`,
`$mp_event_size`, `mp_processing_time_ms`, `$import`) get no slot: bookkeeping that reports rarely read,
and being on every event they would have taken the first five slots of every project and filled five
columns of every insert. They are read from the JSON like any key without a slot. (Stores whose projects
gave them slots before keep those slots: a slot is never taken back.)

A store written before these columns existed is upgraded by `migrate`: it adds the columns and tables,
takes each project's census of keys (the most frequent get the slots) and fills the slots of the rows
already stored, in chunks, committing the progress with each chunk (`property_layout.backfill_next`),
so it can be killed and resumed. Until a project's backfill is complete, its queries read the JSON.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from mixhouse.domain.columns import MISSING as _MISSING
from mixhouse.domain.columns import EventColumns
from mixhouse.domain.columns import split_value as _split_value
from mixhouse.domain.columns import split_values as _columns_of
from mixhouse.domain.events import SERVER_ADDED
from mixhouse.engine.duckdb.printer import quote

log = logging.getLogger(__name__)

# Column triples in the events table (a layout constant: changing it changes the table).
SLOTS = 16
# Batches of up to this many rows are inserted from list parameters rather than a registered Arrow table
# (SlotWriter.insert): below it the registration's fixed cost is the larger, above it the parameters'.
PARAMETER_ROWS = 64
# Keys that never get a slot (see above).
UNSLOTTED = SERVER_ADDED
# The events table's own columns an insert fills (besides user_key and the slot columns).
_BASE = "project_id, seq, time_ms, event, distinct_id, insert_id, properties"
# Rows filled per committed step of a backfill.
BACKFILL_CHUNK_ROWS = 1_000_000

LAYOUT_SCHEMA = """
CREATE TABLE IF NOT EXISTS property_slots (
    project_id BIGINT  NOT NULL,
    name       VARCHAR NOT NULL,   -- the property key
    slot       INTEGER NOT NULL,   -- columns ps<slot>, pn<slot>, po<slot> of events
    PRIMARY KEY (project_id, name)
);

CREATE TABLE IF NOT EXISTS property_layout (
    project_id    BIGINT  PRIMARY KEY,
    overflow      BOOLEAN NOT NULL,  -- a key was left without a slot (slots full, or a NUL in its name)
    backfill_next BIGINT,            -- rows with seq in [backfill_next, backfill_end) still to fill; NULL: done
    backfill_end  BIGINT
);
"""


def json_text(texts: pa.Array) -> pa.Array:
    """Binary or string Arrow `texts`, each a JSON document orjson wrote, as Arrow's JSON type: DuckDB reads
    it as its JSON type, so inserting it into a JSON column skips the validating parse of every document
    (the writer's own output, always valid JSON; about a quarter of a 2,000-row insert's time)."""
    return pa.ExtensionArray.from_storage(pa.json_(pa.string()), texts.view(pa.string()))


def columns(i: int) -> tuple[str, str, str]:
    return f"ps{i}", f"pn{i}", f"po{i}"


# The names of slot columns, as a regular expression.
COLUMN_PATTERN = "^p[sno][0-9]+$"


def select_list() -> str:
    """Every slot column, for a relation that queries read properties from (however many the table has;
    unused ones cost nothing: DuckDB reads only the columns a query uses). No other table a relation
    joins may have columns of that pattern."""
    return f"COLUMNS('{COLUMN_PATTERN}')"


def pointer(name: str) -> str:
    """The JSON pointer of key `name` (as the printer writes it)."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _split(j: str) -> tuple[str, str, str]:
    """SQL of (ps, pn, po) from the JSON value `j` (NULL when the key is missing)."""
    t = f"CAST({j} AS VARCHAR)"
    return (
        f"CASE WHEN starts_with({t}, '\"') THEN ({j} ->> '$') END",
        f"TRY_CAST({t} AS DOUBLE)",
        f"CASE WHEN NOT starts_with({t}, '\"') AND TRY_CAST({t} AS DOUBLE) IS NULL THEN {j} END",
    )


def _fill(slots: Mapping[str, int]) -> tuple[list[str], list[str], str]:
    """(target columns, SQL values over column `mh_j`, SQL of `mh_j` over `properties`) filling `slots`:
    `mh_j` is the list of the keys' values, so the document is parsed once per row."""
    names = sorted(slots, key=slots.__getitem__)
    paths = "[" + ", ".join(quote(pointer(n)) for n in names) + "]"
    targets: list[str] = []
    values: list[str] = []
    for k, name in enumerate(names, start=1):
        targets.extend(columns(slots[name]))
        values.extend(_split(f"mh_j[{k}]"))
    return targets, values, f"json_extract(properties, {paths})" if names else "NULL"


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """The slot tables, and the slot columns of every slot handed out (at least one, so that the
    relations' column pattern always matches). Idempotent and cheap."""
    conn.execute(LAYOUT_SCHEMA)
    used = conn.execute("SELECT coalesce(max(slot) + 1, 1) FROM property_slots").fetchall()[0][0]
    widen(conn, int(used))


def width(conn: duckdb.DuckDBPyConnection) -> int:
    """How many slots have their columns in the events table."""
    rows = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'events' AND regexp_matches(column_name, ?)",
        [COLUMN_PATTERN],
    ).fetchall()
    return int(rows[0][0]) // 3


def widen(conn: duckdb.DuckDBPyConnection, slots: int) -> None:
    """Columns for slots 0..slots-1 (adds the missing ones; each starts NULL). The table only grows as
    slots are handed out: every column costs each insert, even a NULL one (docs/storage.md)."""
    have = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
        ).fetchall()
    }
    types = ("VARCHAR", "DOUBLE", "JSON")
    for i in range(slots):
        for column, kind in zip(columns(i), types, strict=True):
            if column not in have:
                conn.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")


def ready_slots(conn: duckdb.DuckDBPyConnection, project_id: int) -> dict[str, int]:
    """The slots queries may read for a project: none while its backfill runs."""
    rows = conn.execute(
        """SELECT s.name, s.slot FROM property_slots s JOIN property_layout l USING (project_id)
           WHERE s.project_id = ? AND l.backfill_next IS NULL""",
        [project_id],
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


@dataclass(frozen=True)
class Prepared:
    projects: list[int]
    parsed: list[dict[str, Any]] | None  # None: a document did not parse here, DuckDB splits the values


class SlotWriter:
    """The writer's side: hands out slots to new keys and fills them as events are inserted. Used on the
    writer thread only; `reload` after a rolled-back transaction."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._slots: dict[int, dict[str, int]] = {}
        self._settled: dict[int, frozenset[str]] = {}  # per project: its slotted keys and UNSLOTTED
        self._overflow: set[int] = set()
        self._known: set[int] = set()
        self._width = 0
        self.reload(conn)

    def reload(self, conn: duckdb.DuckDBPyConnection) -> None:
        slots: dict[int, dict[str, int]] = {}
        for project, name, slot in conn.execute("SELECT project_id, name, slot FROM property_slots").fetchall():
            slots.setdefault(int(project), {})[name] = int(slot)
        overflow = {int(r[0]) for r in conn.execute("SELECT project_id FROM property_layout WHERE overflow").fetchall()}
        known = {int(r[0]) for r in conn.execute("SELECT project_id FROM property_layout").fetchall()}
        self._slots, self._overflow, self._known = slots, overflow, known
        self._settled = {}
        self._width = width(conn)

    def _settled_keys(self, project: int) -> frozenset[str]:
        """The keys of `project` that need nothing more: slotted ones, and those that never get a slot."""
        settled = self._settled.get(project)
        if settled is None:
            settled = self._settled[project] = frozenset(self._slots.get(project, {})) | UNSLOTTED
        return settled

    def prepare(
        self,
        conn: duckdb.DuckDBPyConnection,
        name: str,
        table: pa.Table,
        documents: Sequence[bytes],
        values: list[dict[str, Any]] | None = None,
    ) -> Prepared:
        """Before the write transaction: slots for the batch's new keys (committed on their own: a slot
        without rows is harmless) and their columns (an ALTER TABLE, which must not share a transaction
        with inserts). `table` has columns project_id, seq, time_ms, event, distinct_id, insert_id,
        properties; `documents` are its rows' properties, parsed here (a few microseconds a row) unless
        `values` holds them already parsed (the dicts ingestion wrote them from: never changed here)."""
        projects = table.column("project_id").to_pylist()
        parsed: list[dict[str, Any]] | None = values
        if parsed is None:
            try:
                parsed = [orjson.loads(d) for d in documents]
            except orjson.JSONDecodeError:  # none from the ingestion path (orjson wrote them); DuckDB then splits
                parsed = None
        if parsed is None:
            conn.register(name, table)
            try:
                self._assign(conn, name, sorted(set(projects)))
            finally:
                conn.unregister(name)
        else:
            census: dict[int, Counter[str]] = {}
            only = projects[0] if projects and projects.count(projects[0]) == len(projects) else None
            if only is not None and only in self._known and set().union(*parsed) <= self._settled_keys(only):
                counted: list[dict[str, Any]] = []  # one known project, every key settled (the usual batch)
            else:
                counted = parsed
            for project, doc in zip(projects, counted, strict=False):
                if project not in self._known:
                    census.setdefault(project, Counter())
                # Only a document with a key the project has no slot for can change anything.
                if not (self._settled_keys(project) >= doc.keys()) and not self._closed(project):
                    census.setdefault(project, Counter()).update(doc.keys())
            for project, counts in census.items():
                self._add_slots(conn, project, sorted(counts, key=lambda k: (-counts[k], k)))
        needed = max((len(s) for s in self._slots.values()), default=0)
        if needed > self._width:
            widen(conn, needed)
            self._width = needed
        return Prepared(projects, parsed)

    def insert(
        self,
        conn: duckdb.DuckDBPyConnection,
        name: str,
        table: pa.Table,
        prepared: Prepared,
        rest: str,
        returning: str = "",
        *,
        begin: bool = False,
    ) -> dict[str, Any] | None:
        """INSERT `table` into events with the column list `rest` (SQL over its columns, e.g. the user key)
        and the slot columns; inside the caller's transaction. A batch of up to PARAMETER_ROWS rows is
        passed as list parameters, a larger one by `insert_table`; a batch whose values DuckDB splits is
        registered as `name` (left registered). With `returning`
        (SQL over the inserted rows), the inserted rows' values of it as numpy arrays by name (None when
        DuckDB split the values: the caller reads them back). `begin`: open the caller's transaction first,
        in the same call as the insert (a call costs ~0.2 ms of CPU and a wait for the GIL under load)."""
        projects, parsed = prepared.projects, prepared.parsed
        start = "BEGIN TRANSACTION; " if begin else ""
        if parsed is None:
            if begin:
                conn.execute("BEGIN TRANSACTION")
            conn.register(name, table)
            self._insert_sql(conn, name, sorted(set(projects)), rest)
            return None
        if len(projects) > PARAMETER_ROWS:
            return self.insert_table(conn, self.rows_table(table, prepared), rest, returning, begin=begin)
        # A few rows (the usual /track group): list parameters, zipped by unnest. Registering and scanning an
        # Arrow table costs about a millisecond of Python work per statement here, more than the insert of a
        # few rows itself (bench/bench_ingest.py --track-only).
        extra = self._extras(prepared)
        targets = "".join(f", {column}" for column, _, _ in extra)
        tail = f" RETURNING {returning}" if returning else ""
        names = [*table.column_names, *(column for column, _, _ in extra)]
        values = [table.column(column).to_pylist() for column in table.column_names]
        unnested = ", ".join(f"unnest(${i}) AS {column}" for i, column in enumerate(names, start=1))
        result = conn.execute(
            f"{start}INSERT INTO events ({_BASE}, user_key{targets}) SELECT {_BASE}, {rest}{targets} "
            f"FROM (SELECT {unnested}){tail}",
            [*values, *(built for _, built, _ in extra)],
        )
        return result.fetchnumpy() if returning else None

    def _extras(self, prepared: Prepared) -> list[tuple[str, list[Any], pa.DataType]]:
        """The slot columns a prepared batch of rows fills: (column, values, Arrow type), by slot."""
        projects, parsed = prepared.projects, prepared.parsed
        assert parsed is not None
        n = len(projects)
        # Per slot, the columns that hold a value in this batch; a column left out is NULL in every row.
        filled: dict[int, tuple[list[str | None] | None, list[float | None] | None, list[str | None] | None]] = {}
        if len(set(projects)) == 1:
            # One project (the usual batch): a key at a time, over its values' kinds (`_columns_of`).
            for key, slot in self._slots.get(projects[0], {}).items():
                values = [doc.get(key, _MISSING) for doc in parsed]
                triple = _columns_of(values)
                if triple is not None:
                    filled[slot] = triple
        else:
            rows: dict[int, tuple[list[str | None], list[float | None], list[str | None]]] = {}
            for row, (project, doc) in enumerate(zip(projects, parsed, strict=True)):
                slots = self._slots.get(project)
                if not slots:
                    continue
                for key, value in doc.items():
                    at = slots.get(key)
                    if at is None:
                        continue
                    if at not in rows:
                        rows[at] = ([None] * n, [None] * n, [None] * n)
                    ps, pn, po = rows[at]
                    ps[row], pn[row], po[row] = _split_value(value)
            filled.update(rows)
        extra: list[tuple[str, list[Any], pa.DataType]] = []  # the slot columns this batch fills
        for slot, triple in sorted(filled.items()):
            for column, built, kind in zip(
                columns(slot), triple, (pa.string(), pa.float64(), pa.string()), strict=True
            ):
                if built is not None:
                    extra.append((column, built, kind))
        return extra

    def prepare_columns(self, conn: duckdb.DuckDBPyConnection, parts: Sequence[EventColumns]) -> None:
        """`prepare` for batches handed over as columns: slots for their new keys (most frequent first), and
        their columns, before the write transaction."""
        for part in parts:
            project = part.project_id
            if project in self._known and (self._closed(project) or self._settled_keys(project) >= part.by_key.keys()):
                continue
            settled = self._settled_keys(project)
            new = {key: n for key, n in part.counts.items() if key not in settled}
            self._add_slots(conn, project, sorted(new, key=lambda k: (-new[k], k)))
        needed = max((len(s) for s in self._slots.values()), default=0)
        if needed > self._width:
            widen(conn, needed)
            self._width = needed

    def rows_table(self, table: pa.Table, prepared: Prepared) -> pa.Table:
        """A prepared batch of rows (`table`, parsed) with its slot columns, for `insert_table`. Every
        document was parsed (`prepared.parsed`): valid JSON, not checked again (`json_text`)."""
        for column, built, kind in self._extras(prepared):
            table = table.append_column(column, pa.array(built, kind))
        at = table.column_names.index("properties")
        return table.set_column(at, "properties", json_text(table.column(at).combine_chunks()))

    def columns_table(self, part: EventColumns) -> pa.Table:
        """A batch handed over as columns (after `prepare_columns`), with the slot columns its keys fill,
        for `insert_table`: the split values are the slot columns as they are (no per-event work here)."""
        table = pa.table(
            {
                "project_id": pa.repeat(pa.scalar(part.project_id, pa.int64()), len(part)),
                "time_ms": part.time_ms,
                "event": part.event,
                "distinct_id": part.distinct_id,
                "insert_id": part.insert_id,
                # orjson wrote them: valid UTF-8 and JSON, neither checked again (`json_text`).
                "properties": json_text(part.properties),
            }
        )
        for key, slot in sorted(self._slots.get(part.project_id, {}).items(), key=lambda item: item[1]):
            kinds = part.by_key.get(key)  # every key of the batch is there (but the server's own)
            if kinds is None:
                continue
            for column, built in zip(columns(slot), kinds, strict=True):
                if built is not None:
                    table = table.append_column(column, built)
        return table

    @staticmethod
    def insert_table(
        conn: duckdb.DuckDBPyConnection, table: pa.Table, rest: str, returning: str = "", *, begin: bool
    ) -> dict[str, Any] | None:
        """INSERT `table` (the `insert` columns with seq, and any slot columns) into events; with `begin`,
        opening the caller's transaction in the same call. With `returning`, the inserted rows' values of it
        as numpy arrays by name. The statement reads `table` through DuckDB's scan of a Python variable by
        its name (a local of this function), not a registered view: registering and unregistering an Arrow
        table cost ~1 ms of the writer's CPU per commit, a fifth of a 2,000-event commit (bench/bench_writer.py)."""
        targets = "".join(f", {c}" for c in table.column_names if re.fullmatch(COLUMN_PATTERN, c))
        start = "BEGIN TRANSACTION; " if begin else ""
        tail = f" RETURNING {returning}" if returning else ""
        mh_incoming_rows = table  # noqa: F841 (read by the statement: DuckDB's scan of a local by its name)
        result = conn.execute(
            f"{start}INSERT INTO events ({_BASE}, user_key{targets}) SELECT {_BASE}, {rest}{targets} FROM mh_incoming_rows{tail}"
        )
        return result.fetchnumpy() if returning else None

    def _closed(self, project: int) -> bool:
        """Whether no key can get a slot any more and the project already knows some have none."""
        return project in self._overflow and len(self._slots.get(project, {})) >= SLOTS

    def _insert_sql(self, conn: duckdb.DuckDBPyConnection, table: str, projects: list[int], rest: str) -> None:
        """The same insert, with DuckDB splitting the values (`_split`)."""
        for project in projects:
            targets, values, extract = _fill(self._slots.get(project, {}))
            extra_t = "".join(f", {c}" for c in targets)
            extra_v = "".join(f", {v}" for v in values)
            where = f"WHERE project_id = {int(project)}" if len(projects) > 1 else ""
            conn.execute(
                f"""INSERT INTO events ({_BASE}, user_key{extra_t})
                    SELECT {_BASE}, {rest}{extra_v} FROM (SELECT *, {extract} AS mh_j FROM {table} {where})"""
            )

    def _assign(self, conn: duckdb.DuckDBPyConnection, table: str, projects: list[int]) -> None:
        """Slots for the keys first seen in `table`, while the project has free ones (most frequent first)."""
        open_ = [p for p in projects if p not in self._known or not self._closed(p)]
        if not open_:
            return
        rows = conn.execute(
            f"""SELECT project_id, list(name ORDER BY n DESC, name) FROM (
                    SELECT project_id, name, count(*) AS n
                    FROM (SELECT project_id, unnest(json_keys(properties)) AS name FROM {table}
                          WHERE project_id IN ({", ".join(str(int(p)) for p in open_)}))
                    GROUP BY ALL)
                GROUP BY project_id"""
        ).fetchall()
        for project in open_:
            self._add_slots(conn, project, [])
        for project, names in rows:
            self._add_slots(conn, int(project), names)

    def _add_slots(self, conn: duckdb.DuckDBPyConnection, project: int, names: Sequence[str]) -> None:
        """Slots for those of `names` (most frequent first) that have none, while slots are free."""
        if project not in self._known:
            conn.execute("INSERT OR IGNORE INTO property_layout VALUES (?, FALSE, NULL, NULL)", [project])
            self._known.add(project)
        slots = self._slots.setdefault(project, {})
        self._settled.pop(project, None)
        for name in names:
            if name in slots or name in UNSLOTTED:
                continue
            if len(slots) >= SLOTS or "\0" in name:  # a key with a NUL cannot be quoted in SQL
                if project not in self._overflow:
                    conn.execute("UPDATE property_layout SET overflow = TRUE WHERE project_id = ?", [project])
                    self._overflow.add(project)
                continue
            slot = len(slots)
            conn.execute("INSERT INTO property_slots VALUES (?, ?, ?)", [project, name, slot])
            slots[name] = slot


def migrate(conn: duckdb.DuckDBPyConnection, chunk_rows: int = BACKFILL_CHUNK_ROWS) -> None:
    """Upgrade a store to the slot layout; idempotent and resumable (each chunk commits its progress).

    Must run before the writer starts (as at server start): the census of a project's keys assumes no
    event of it arrives meanwhile."""
    ensure_tables(conn)
    # Census: projects with events and no layout yet get their most frequent keys as slots.
    pending = conn.execute(
        """SELECT DISTINCT project_id FROM events
           WHERE project_id NOT IN (SELECT project_id FROM property_layout) ORDER BY project_id"""
    ).fetchall()
    for (project,) in pending:
        conn.execute("BEGIN TRANSACTION")
        try:
            names = conn.execute(
                """SELECT name FROM (SELECT unnest(json_keys(properties)) AS name FROM events WHERE project_id = ?)
                   GROUP BY name ORDER BY count(*) DESC, name""",
                [project],
            ).fetchall()
            span = conn.execute("SELECT min(seq), max(seq) + 1 FROM events WHERE project_id = ?", [project]).fetchall()
            candidates = [n for (n,) in names if n not in UNSLOTTED]
            chosen = [n for n in candidates if "\0" not in n][:SLOTS]  # a key with a NUL cannot be quoted
            if chosen:
                conn.executemany(
                    "INSERT INTO property_slots VALUES (?, ?, ?)", [[project, n, i] for i, n in enumerate(chosen)]
                )
            lo, hi = span[0]
            widen(conn, len(chosen))
            overflow = len(chosen) < len(candidates)
            conn.execute("INSERT INTO property_layout VALUES (?, ?, ?, ?)", [project, overflow, lo, hi])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("property columns: project %s gets %d of its %d keys as columns", project, len(chosen), len(names))
    # Backfill, chunk by chunk.
    for project, start, end in conn.execute(
        "SELECT project_id, backfill_next, backfill_end FROM property_layout WHERE backfill_next IS NOT NULL"
    ).fetchall():
        slots = {
            r[0]: int(r[1])
            for r in conn.execute("SELECT name, slot FROM property_slots WHERE project_id = ?", [project]).fetchall()
        }
        targets, values, extract = _fill(slots)
        total = end - start
        while start < end:
            stop = min(start + chunk_rows, end)
            conn.execute("BEGIN TRANSACTION")
            try:
                if targets:
                    picked = ", ".join(f"{v} AS {t}" for t, v in zip(targets, values, strict=True))
                    assign = ", ".join(f"{t} = x.{t}" for t in targets)
                    conn.execute(
                        f"""UPDATE events SET {assign}
                            FROM (SELECT x_seq, {picked} FROM (
                                    SELECT seq AS x_seq, {extract} AS mh_j FROM events
                                    WHERE project_id = $p AND seq >= $lo AND seq < $hi)) x
                            WHERE events.project_id = $p AND events.seq = x.x_seq""",
                        {"p": project, "lo": start, "hi": stop},
                    )
                done = None if stop >= end else stop
                conn.execute("UPDATE property_layout SET backfill_next = ? WHERE project_id = ?", [done, project])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            start = stop
            log.info("property columns: project %s, %d of %d rows filled", project, total - (end - stop), total)
