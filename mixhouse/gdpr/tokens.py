"""GDPR OAuth tokens: bearer tokens for the GDPR API, one project each, valid for a year by default
(Mixpanel's personal GDPR tokens expire after one year:
https://docs.mixpanel.com/docs/privacy/end-user-data-management).

A token is 256 random bits; the catalog keeps only its SHA-256. A slow hash protects guessable secrets
(passwords); a random 256-bit token cannot be guessed, so a fast hash loses nothing and every request
stays cheap. A token is looked up by its hash, so no comparison of secrets happens at all."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from mixhouse.domain.catalog import CatalogPort, CatalogStore
from mixhouse.errors import BadRequest

DEFAULT_DAYS = 365
PREFIX = "mxg_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gdpr_tokens (
    token_sha256 TEXT PRIMARY KEY,
    project_id   INTEGER NOT NULL REFERENCES projects(id),
    "user"       TEXT NOT NULL,    -- `requesting_user` of the requests made with it
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL
);
"""


@dataclass(frozen=True)
class GdprToken:
    project_id: int
    user: str
    created_at: float
    expires_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class GdprTokens(CatalogStore):
    schema = _SCHEMA

    def __init__(self, catalog: CatalogPort) -> None:
        super().__init__(catalog)
        self._catalog = catalog

    def create(
        self, project_id: int, user: str, *, days: float = DEFAULT_DAYS, now: float | None = None
    ) -> tuple[str, GdprToken]:
        """A new token (shown once) and what it grants."""
        if self._catalog.project_by_id(project_id) is None:
            raise BadRequest(f"no project with id {project_id}")
        if not user or len(user) > 255:
            raise BadRequest("the user must be 1 to 255 characters")
        if days <= 0:
            raise BadRequest("a token must be valid for more than 0 days")
        now = time.time() if now is None else now
        token = PREFIX + secrets.token_urlsafe(32)
        grant = GdprToken(project_id, user, now, now + days * 86_400)
        self._conn.execute(
            "INSERT INTO gdpr_tokens VALUES (?, ?, ?, ?, ?)",
            [_digest(token), project_id, user, grant.created_at, grant.expires_at],
        )
        return token, grant

    def verify(self, token: str, *, now: float | None = None) -> GdprToken | None:
        """What the token grants, or None when it is unknown or expired."""
        rows = self._conn.execute(
            'SELECT project_id, "user", created_at, expires_at FROM gdpr_tokens WHERE token_sha256 = ?',
            [_digest(token)],
        ).fetchall()
        if not rows:
            return None
        grant = GdprToken(int(rows[0][0]), str(rows[0][1]), float(rows[0][2]), float(rows[0][3]))
        if grant.expires_at <= (time.time() if now is None else now):
            return None
        return grant
