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

Slots are handed out per project, first come first served, in the writer's transaction that first
stores the key (most frequent key of the batch first), so every stored row carrying a slotted key has
the slot filled. When a project's slots are full, later keys stay JSON-only (`property_layout.overflow`).

A store written before these columns existed is upgraded by `migrate`: it adds the columns and tables,
takes each project's census of keys (the most frequent get the slots) and fills the slots of the rows
already stored, in chunks, committing the progress with each chunk (`property_layout.backfill_next`),
so it can be killed and resumed. Until a project's backfill is complete, its queries read the JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import duckdb

from mixhouse.engine.duckdb.printer import quote

log = logging.getLogger(__name__)

# Column triples in the events table (a layout constant: changing it changes the table).
SLOTS = 32
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
    overflow      BOOLEAN NOT NULL,  -- a key was left without a slot: the slots are full
    backfill_next BIGINT,            -- rows with seq in [backfill_next, backfill_end) still to fill; NULL: done
    backfill_end  BIGINT
);
"""


def columns(i: int) -> tuple[str, str, str]:
    return f"ps{i}", f"pn{i}", f"po{i}"


def select_list(alias: str) -> str:
    """Every slot column of `alias`, for a relation that queries read properties from (unused columns
    cost nothing: DuckDB reads only the columns a query uses)."""
    return ", ".join(f"{alias}.{c}" for i in range(SLOTS) for c in columns(i))


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
    """The slot columns and tables (idempotent, cheap: added columns start NULL)."""
    conn.execute(LAYOUT_SCHEMA)
    have = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'"
        ).fetchall()
    }
    types = ("VARCHAR", "DOUBLE", "JSON")
    for i in range(SLOTS):
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


def complete(conn: duckdb.DuckDBPyConnection, project_id: int) -> bool:
    """Whether every key of the project's stored events has a readable slot (no overflow, no backfill):
    then the slot columns alone tell which keys an event has."""
    row = conn.execute(
        "SELECT NOT overflow AND backfill_next IS NULL FROM property_layout WHERE project_id = ?", [project_id]
    ).fetchall()
    return bool(row and row[0][0])


class SlotWriter:
    """The writer's side: hands out slots to new keys and fills them as events are inserted. Used on the
    writer thread only; `reload` after a rolled-back transaction."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._slots: dict[int, dict[str, int]] = {}
        self._overflow: set[int] = set()
        self._known: set[int] = set()
        self.reload(conn)

    def reload(self, conn: duckdb.DuckDBPyConnection) -> None:
        slots: dict[int, dict[str, int]] = {}
        for project, name, slot in conn.execute("SELECT project_id, name, slot FROM property_slots").fetchall():
            slots.setdefault(int(project), {})[name] = int(slot)
        overflow = {int(r[0]) for r in conn.execute("SELECT project_id FROM property_layout WHERE overflow").fetchall()}
        known = {int(r[0]) for r in conn.execute("SELECT project_id FROM property_layout").fetchall()}
        self._slots, self._overflow, self._known = slots, overflow, known

    def insert(self, conn: duckdb.DuckDBPyConnection, table: str, projects: Sequence[int], rest: str) -> None:
        """INSERT the rows of `table` (columns project_id, seq, time_ms, event, distinct_id, insert_id,
        properties) into events, followed by the column list `rest` (SQL over `table`'s columns, e.g. the
        user key), with the slot columns filled; runs inside the caller's transaction."""
        base = "project_id, seq, time_ms, event, distinct_id, insert_id, properties"
        wanted = sorted(set(projects))
        self._assign(conn, table, wanted)
        for project in wanted:
            targets, values, extract = _fill(self._slots.get(project, {}))
            extra_t = "".join(f", {c}" for c in targets)
            extra_v = "".join(f", {v}" for v in values)
            where = f"WHERE project_id = {int(project)}" if len(wanted) > 1 else ""
            conn.execute(
                f"""INSERT INTO events ({base}, user_key{extra_t})
                    SELECT {base}, {rest}{extra_v} FROM (SELECT *, {extract} AS mh_j FROM {table} {where})"""
            )

    def _assign(self, conn: duckdb.DuckDBPyConnection, table: str, projects: list[int]) -> None:
        """Slots for the keys first seen in this batch, while the project has free ones."""
        new = [p for p in projects if p not in self._known]
        for p in new:
            conn.execute("INSERT OR IGNORE INTO property_layout VALUES (?, FALSE, NULL, NULL)", [p])
            self._known.add(p)
        # A project whose slots are full and that already knows it has keys without one has nothing to do.
        open_ = [p for p in projects if not (p in self._overflow and len(self._slots.get(p, {})) >= SLOTS)]
        if not open_:
            return
        rows = conn.execute(
            f"""SELECT project_id, name, count(*) AS n
                FROM (SELECT project_id, unnest(json_keys(properties)) AS name FROM {table}
                      WHERE project_id IN ({", ".join(str(int(p)) for p in open_)}))
                GROUP BY ALL ORDER BY project_id, n DESC, name"""
        ).fetchall()
        for project, name, _ in rows:
            project = int(project)
            slots = self._slots.setdefault(project, {})
            if name in slots:
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
            chosen = [n for (n,) in names if "\0" not in n][:SLOTS]  # a key with a NUL cannot be quoted
            if chosen:
                conn.executemany(
                    "INSERT INTO property_slots VALUES (?, ?, ?)", [[project, n, i] for i, n in enumerate(chosen)]
                )
            lo, hi = span[0]
            overflow = len(chosen) < len(names)
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
