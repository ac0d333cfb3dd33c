"""Annotations and their tags in the catalog database. Every statement names the project, so an
id of another project is simply not found."""

from __future__ import annotations

from typing import Any

from mixhouse.annotations.model import Annotation, AnnotationUser, Tag
from mixhouse.catalogdb import Connection
from mixhouse.domain.catalog import CatalogStore
from mixhouse.errors import BadRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS annotation_users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE     -- the service account's username
);
CREATE TABLE IF NOT EXISTS annotations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    date        TEXT NOT NULL,           -- "YYYY-MM-DD HH:MM:SS", sorts as text
    description TEXT NOT NULL,
    user_id     INTEGER REFERENCES annotation_users (id)  -- NULL: made with project credentials
);
CREATE INDEX IF NOT EXISTS annotations_by_date ON annotations (project_id, date);
CREATE TABLE IF NOT EXISTS annotation_tags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS annotation_tag_links (
    annotation_id INTEGER NOT NULL REFERENCES annotations (id) ON DELETE CASCADE,
    tag_id        INTEGER NOT NULL REFERENCES annotation_tags (id) ON DELETE CASCADE,
    PRIMARY KEY (annotation_id, tag_id)
);
"""

_SELECT = (
    "SELECT a.id, a.project_id, a.date, a.description, u.id, u.name FROM annotations a"
    " LEFT JOIN annotation_users u ON u.id = a.user_id"
)


def _annotation(row: tuple[Any, ...], tags: list[Tag]) -> Annotation:
    user = AnnotationUser(int(row[4]), str(row[5])) if row[4] is not None else None
    return Annotation(row[0], row[1], row[2], row[3], user, tuple(tags))


class AnnotationStore(CatalogStore):
    schema = _SCHEMA

    def _tags_of(self, annotation_ids: list[int]) -> dict[int, list[Tag]]:
        found: dict[int, list[Tag]] = {i: [] for i in annotation_ids}
        for chunk in range(0, len(annotation_ids), 500):
            ids = annotation_ids[chunk : chunk + 500]
            rows = self._conn.execute(
                "SELECT l.annotation_id, t.id, t.project_id, t.name FROM annotation_tag_links l"
                " JOIN annotation_tags t ON t.id = l.tag_id"
                f" WHERE l.annotation_id IN ({','.join('?' * len(ids))}) ORDER BY t.id",
                ids,
            ).fetchall()
            for annotation_id, tag_id, project_id, name in rows:
                found[annotation_id].append(Tag(tag_id, project_id, name, True))
        return found

    def in_range(self, project_id: int, start: str | None = None, end: str | None = None) -> list[Annotation]:
        """Annotations dated within [start, end] (either open), oldest first."""
        rows = self._conn.execute(
            _SELECT + " WHERE a.project_id = ?"
            " AND (CAST(? AS TEXT) IS NULL OR a.date >= ?) AND (CAST(? AS TEXT) IS NULL OR a.date <= ?)"
            " ORDER BY a.date, a.id",
            (project_id, start, start, end, end),
        ).fetchall()
        tags = self._tags_of([r[0] for r in rows])
        return [_annotation(r, tags[r[0]]) for r in rows]

    def get(self, project_id: int, annotation_id: int) -> Annotation | None:
        row = self._conn.execute(
            _SELECT + " WHERE a.project_id = ? AND a.id = ?",
            (project_id, annotation_id),
        ).fetchone()
        if row is None:
            return None
        return _annotation(row, self._tags_of([row[0]])[row[0]])

    def _check_tags(self, conn: Connection, project_id: int, tag_ids: list[int]) -> None:
        for tag_id in tag_ids:
            row = conn.execute(
                "SELECT 1 FROM annotation_tags WHERE project_id = ? AND id = ?", (project_id, tag_id)
            ).fetchone()
            if row is None:
                raise BadRequest(f"no annotation tag with id {tag_id} in this project")

    def _link(self, conn: Connection, annotation_id: int, tag_ids: list[int]) -> None:
        conn.execute("DELETE FROM annotation_tag_links WHERE annotation_id = ?", (annotation_id,))
        conn.executemany(
            "INSERT INTO annotation_tag_links (annotation_id, tag_id) VALUES (?, ?)",
            [(annotation_id, t) for t in tag_ids],
        )

    def create(self, project_id: int, date: str, description: str, user: str | None, tag_ids: list[int]) -> int:
        with self._write() as conn:
            self._check_tags(conn, project_id, tag_ids)
            user_id = None
            if user is not None:
                conn.execute("INSERT INTO annotation_users (name) VALUES (?) ON CONFLICT DO NOTHING", (user,))
                user_id = conn.execute("SELECT id FROM annotation_users WHERE name = ?", (user,)).fetchone()[0]
            cursor = conn.execute(
                "INSERT INTO annotations (project_id, date, description, user_id) VALUES (?, ?, ?, ?) RETURNING id",
                (project_id, date, description, user_id),
            )
            annotation_id = int(cursor.fetchone()[0])
            self._link(conn, annotation_id, tag_ids)
        return annotation_id

    def update(
        self,
        project_id: int,
        annotation_id: int,
        *,
        date: str | None = None,
        description: str | None = None,
        tag_ids: list[int] | None = None,
    ) -> bool:
        """False when the project has no such annotation (nothing changed)."""
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM annotations WHERE project_id = ? AND id = ?", (project_id, annotation_id)
            ).fetchone()
            if exists is None:
                return False
            if tag_ids is not None:
                self._check_tags(conn, project_id, tag_ids)
                self._link(conn, annotation_id, tag_ids)
            conn.execute(
                "UPDATE annotations SET date = COALESCE(?, date), description = COALESCE(?, description)"
                " WHERE project_id = ? AND id = ?",
                (date, description, project_id, annotation_id),
            )
        return True

    def delete(self, project_id: int, annotation_id: int) -> bool:
        with self._write() as conn:
            deleted = conn.execute(
                "DELETE FROM annotations WHERE project_id = ? AND id = ?", (project_id, annotation_id)
            ).rowcount
            if deleted:
                conn.execute("DELETE FROM annotation_tag_links WHERE annotation_id = ?", (annotation_id,))
        return deleted > 0

    def tags(self, project_id: int) -> list[Tag]:
        rows = self._conn.execute(
            "SELECT t.id, t.project_id, t.name,"
            " EXISTS (SELECT 1 FROM annotation_tag_links l WHERE l.tag_id = t.id)"
            " FROM annotation_tags t WHERE t.project_id = ? ORDER BY t.id",
            (project_id,),
        ).fetchall()
        return [Tag(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def create_tag(self, project_id: int, name: str) -> Tag:
        with self._write() as conn:
            taken = conn.execute(
                "SELECT 1 FROM annotation_tags WHERE project_id = ? AND name = ?", (project_id, name)
            ).fetchone()
            if taken:
                raise BadRequest(f"an annotation tag named {name!r} already exists in this project")
            cursor = conn.execute(
                "INSERT INTO annotation_tags (project_id, name) VALUES (?, ?) RETURNING id", (project_id, name)
            )
            tag_id = int(cursor.fetchone()[0])
        return Tag(tag_id, project_id, name, False)
