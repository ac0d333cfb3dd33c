"""What an import has stored: the row hashes (= `$insert_id`s) it imported, with each row's key (the user or
group id; events: none), in Parquet files under `<data dir>/imports/<project>/<import>/`.

Each committed batch appends one file (written under a temporary name, then renamed: a crash leaves whole
files only). Mirror replaces the set at the end of a run: it writes the new set as the next file, then
removes the older ones; a crash in between leaves a union that the next run corrects (a hash found in the
warehouse is kept, one not found is deleted again, which deletes nothing)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([("hash", pa.string()), ("key", pa.string())])


class ImportState:
    def __init__(self, data_dir: Path, project_id: int, import_id: int) -> None:
        self.folder = data_dir / "imports" / str(project_id) / str(import_id)

    def _parts(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.glob("part-*.parquet"):
            stem = path.stem.removeprefix("part-")
            if stem.isdigit():
                found.append((int(stem), path))
        return sorted(found)

    def load(self) -> pa.Table:
        parts = self._parts()
        if not parts:
            return SCHEMA.empty_table()
        return pa.concat_tables([pq.read_table(p, schema=SCHEMA) for _, p in parts])

    def _write(self, table: pa.Table) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        parts = self._parts()
        seq = parts[-1][0] + 1 if parts else 1
        final = self.folder / f"part-{seq:08d}.parquet"
        temp = final.with_suffix(".tmp")
        pq.write_table(table.cast(SCHEMA), temp)
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temp, final)
        return seq

    def append(self, hashes: pa.Array, keys: pa.Array | None = None) -> None:
        if len(hashes) == 0:
            return
        if keys is None:
            keys = pa.nulls(len(hashes), pa.string())
        self._write(pa.table({"hash": hashes, "key": keys}))

    def replace(self, table: pa.Table) -> None:
        older = self._parts()
        seq = self._write(table)
        for number, path in older:
            if number < seq:
                path.unlink(missing_ok=True)

    def drop(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
