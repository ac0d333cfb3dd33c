"""Users of the web app and their sessions, in the catalog database (beside projects and service accounts,
so that the CLI can add a user while a server runs and the server sees it at once).

Passwords are stored as argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommended setting).
A session is a random token held only by the browser, in an HttpOnly cookie; the database keeps its
SHA-256, so a copy of the database opens no session. Each session has a CSRF token of its own, which the
page reads once from `/web/session` and sends back in a header with every API call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mixhouse.catalog import Catalog
from mixhouse.catalogdb import Connection
from mixhouse.domain.project import Role
from mixhouse.errors import BadRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS web_users (
    email         TEXT PRIMARY KEY,   -- lower-cased
    password_hash TEXT NOT NULL,      -- argon2id, PHC string
    created_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS web_user_projects (
    email      TEXT NOT NULL REFERENCES web_users(email),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    role       TEXT NOT NULL,
    PRIMARY KEY (email, project_id)
);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_sha256 TEXT PRIMARY KEY,
    email        TEXT NOT NULL REFERENCES web_users(email),
    csrf_token   TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_by_expiry ON web_sessions(expires_at);
"""

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything; this only bounds the work a login request can ask for
DEFAULT_SESSION_SECONDS = 12 * 3600
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so that a login costs one argon2 verification either way.
    Made at the first such login, not at import: one hash with these parameters (64 MiB, 3 passes, 4 lanes)
    took 0.2 s of CPU and 1.4 s of wall time on the loaded 2-core machine, paid by every server start and
    every `mixhouse` command (they all import this module)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    email: str
    roles: dict[int, Role]  # project id -> role


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: float


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie only; never stored, never sent to the page's scripts
    session: Session


class Accounts:
    """Users, their roles and their sessions."""

    def __init__(self, catalog: Catalog, *, session_seconds: float = DEFAULT_SESSION_SECONDS) -> None:
        """`session_seconds`: how long a session lasts from login (the web_session_seconds setting)."""
        self._catalog = catalog
        self._session_seconds = session_seconds
        self._conn: Connection = catalog.connection()
        self._conn.executescript(_SCHEMA)

    # -- users ----------------------------------------------------------------------------------

    def create_user(self, *, email: str, password: str, project_id: int, role: Role) -> User:
        """Create the user, or give an existing one (same password) a role on one more project."""
        email = email.strip().lower()
        if not _EMAIL.fullmatch(email):
            raise BadRequest(f"not an email address: {email!r}")
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise BadRequest(f"the password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
        if self._catalog.project_by_id(project_id) is None:
            raise BadRequest(f"no project with id {project_id}")
        with self._conn.write() as conn:
            row = conn.execute("SELECT password_hash FROM web_users WHERE email = ?", (email,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO web_users VALUES (?,?,?)", (email, _hasher.hash(password), time.time()))
            elif not _verify(row[0], password):
                raise BadRequest(f"user {email!r} exists with another password")
            conn.execute(
                "INSERT INTO web_user_projects VALUES (?,?,?)"
                " ON CONFLICT (email, project_id) DO UPDATE SET role = excluded.role",
                (email, project_id, role.value),
            )
        user = self.user(email)
        assert user is not None
        return user

    def user(self, email: str) -> User | None:
        email = email.strip().lower()
        row = self._conn.execute("SELECT email FROM web_users WHERE email = ?", (email,)).fetchone()
        if row is None:
            return None
        grants = self._conn.execute(
            "SELECT project_id, role FROM web_user_projects WHERE email = ? ORDER BY project_id", (email,)
        ).fetchall()
        return User(email=email, roles={int(p): Role(r) for p, r in grants})

    def verify_password(self, email: str, password: str) -> User | None:
        """The user if the password is right, else None; the same argon2 work whether or not the email exists."""
        email = email.strip().lower()
        if len(password) > MAX_PASSWORD_LENGTH:
            return None
        row = self._conn.execute("SELECT password_hash FROM web_users WHERE email = ?", (email,)).fetchone()
        if row is None:
            _verify(_dummy_hash(), password)
            return None
        if not _verify(row[0], password):
            return None
        if _hasher.check_needs_rehash(row[0]):  # parameters raised since it was stored
            self._conn.execute(
                "UPDATE web_users SET password_hash = ? WHERE email = ?", (_hasher.hash(password), email)
            )
        return self.user(email)

    # -- sessions -------------------------------------------------------------------------------

    def open_session(self, user: User, *, now: float | None = None) -> NewSession:
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires_at = now + self._session_seconds
        self._conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
        self._conn.execute(
            "INSERT INTO web_sessions VALUES (?,?,?,?,?)", (_sha256(token), user.email, csrf, now, expires_at)
        )
        return NewSession(token, Session(user, csrf, expires_at))

    def session(self, token: str, *, now: float | None = None) -> Session | None:
        """The live session of a cookie's token, or None (unknown, expired, or its user is gone)."""
        now = time.time() if now is None else now
        row = self._conn.execute(
            "SELECT email, csrf_token, expires_at FROM web_sessions WHERE token_sha256 = ?", (_sha256(token),)
        ).fetchone()
        if row is None or row[2] <= now:
            return None
        user = self.user(row[0])
        return Session(user, row[1], row[2]) if user is not None else None

    def close_session(self, token: str) -> None:
        self._conn.execute("DELETE FROM web_sessions WHERE token_sha256 = ?", (_sha256(token),))


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def csrf_matches(session: Session, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf_token.encode(), sent.encode())
