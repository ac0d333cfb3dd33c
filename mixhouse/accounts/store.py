"""Organisations' service accounts and their project roles, in the catalog's tables (schema.py).

The catalog creates accounts one project at a time for the CLI and verifies secrets on every request;
this store adds what the Service Accounts API and `mixhouse service-accounts list|delete|rotate` need:
accounts by numeric id within an organisation, several projects at once, membership changes, deletion
and a new secret. Every change that affects who may log in clears the catalog's cache of verified
secrets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mixhouse.accounts import hashing
from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from mixhouse.errors import BadRequest, NotFound

# Highest first.
ROLE_RANK = (Role.OWNER, Role.ADMIN, Role.ANALYST, Role.CONSUMER)


def outranks(role: Role, other: Role) -> bool:
    """`role` is at least as high as `other`."""
    return ROLE_RANK.index(role) <= ROLE_RANK.index(other)


@dataclass(frozen=True)
class AccountRecord:
    id: int
    username: str
    organization_id: int
    role: Role
    expires_at: float | None
    created_at: float
    last_used: float | None
    creator: int | None
    projects: dict[int, Role]


_COLUMNS = "id, username, organization_id, role, expires_at, created_at, last_used, creator"
_GRANT = (
    "INSERT INTO service_account_projects VALUES (?, ?, ?)"
    " ON CONFLICT (username, project_id) DO UPDATE SET role = excluded.role"
)


class AccountStore:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._conn = catalog.connection()

    def _records(self, where: str, args: tuple[object, ...]) -> list[AccountRecord]:
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM service_accounts WHERE {where} ORDER BY id", args).fetchall()
        grants: dict[str, dict[int, Role]] = {}
        for username, project_id, role in self._conn.execute(
            "SELECT username, project_id, role FROM service_account_projects ORDER BY project_id"
        ):
            grants.setdefault(str(username), {})[int(project_id)] = Role(role)
        return [
            AccountRecord(
                id=int(r[0]),
                username=str(r[1]),
                organization_id=int(r[2]),
                role=Role(r[3]),
                expires_at=r[4],
                created_at=float(r[5]),
                last_used=r[6],
                creator=int(r[7]) if r[7] is not None and str(r[7]).isdigit() else None,
                projects=grants.get(str(r[1]), {}),
            )
            for r in rows
        ]

    def organization_exists(self, organization_id: int) -> bool:
        row = self._conn.execute("SELECT 1 FROM organizations WHERE id = ?", (organization_id,)).fetchone()
        return row is not None

    def in_organization(self, organization_id: int) -> list[AccountRecord]:
        return self._records("organization_id = ?", (organization_id,))

    def all(self) -> list[AccountRecord]:
        return self._records("1 = 1", ())

    def get(self, organization_id: int, account_id: int) -> AccountRecord:
        found = self._records("organization_id = ? AND id = ?", (organization_id, account_id))
        if not found:
            raise NotFound(f"no service account with id {account_id} in organization {organization_id}")
        return found[0]

    def by_username(self, username: str) -> AccountRecord:
        found = self._records("username = ?", (username,))
        if not found:
            raise NotFound(f"no service account named {username!r}")
        return found[0]

    def in_project(self, project_id: int) -> list[tuple[AccountRecord, Role]]:
        return [(a, a.projects[project_id]) for a in self.all() if project_id in a.projects]

    def _check_projects(self, organization_id: int, project_ids: Iterable[int]) -> None:
        for project_id in project_ids:
            project = self._catalog.project_by_id(project_id)
            if project is None or project.organization_id != organization_id:
                raise NotFound(f"no project with id {project_id} in organization {organization_id}")

    def create(
        self,
        organization_id: int,
        *,
        username: str,
        role: Role,
        expires_at: float | None,
        projects: Sequence[tuple[int, Role]],
        creator: int | None,
    ) -> tuple[AccountRecord, str]:
        """A new account and its secret (shown once: only its argon2id hash is stored)."""
        self._check_projects(organization_id, (p for p, _ in projects))
        secret = hashing.new_secret()
        phc = hashing.hash_secret(secret)  # before the write lock: argon2 takes tens of milliseconds
        with self._conn.write() as conn:
            if conn.execute("SELECT 1 FROM service_accounts WHERE username = ?", (username,)).fetchone():
                raise BadRequest(f"a service account named {username!r} already exists")
            account_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM service_accounts").fetchone()[0])
            conn.execute(
                "INSERT INTO service_accounts (username, secret_salt, secret_hash, expires_at, created_at, id,"
                " organization_id, role, secret_phc, creator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    username,
                    b"",
                    b"",
                    expires_at,
                    time.time(),
                    account_id,
                    organization_id,
                    role.value,
                    phc,
                    None if creator is None else str(creator),  # a TEXT column (its older values are names)
                ),
            )
            conn.executemany(
                _GRANT,
                [(username, project_id, project_role.value) for project_id, project_role in projects],
            )
        return self.get(organization_id, account_id), secret

    def delete(self, account: AccountRecord) -> None:
        with self._conn.write() as conn:
            conn.execute("DELETE FROM service_account_projects WHERE username = ?", (account.username,))
            conn.execute("DELETE FROM service_accounts WHERE id = ?", (account.id,))
        self._catalog.forget_verified()

    def rotate(self, account: AccountRecord) -> str:
        """A new secret for the account; the old one stops working at once (in every process: the
        stored hash changes, and cached verifications are checked against it)."""
        secret = hashing.new_secret()
        self._conn.execute(
            "UPDATE service_accounts SET secret_phc = ?, secret_salt = ?, secret_hash = ? WHERE id = ?",
            (hashing.hash_secret(secret), b"", b"", account.id),
        )
        self._catalog.forget_verified()
        return secret

    def add_to_projects(
        self, organization_id: int, account_ids: Sequence[int], projects: Sequence[tuple[int, Role]]
    ) -> None:
        accounts = [self.get(organization_id, account_id) for account_id in account_ids]
        self._check_projects(organization_id, (p for p, _ in projects))
        self._conn.executemany(
            _GRANT,
            [(a.username, project_id, role.value) for a in accounts for project_id, role in projects],
        )

    def remove_from_projects(self, organization_id: int, removals: Sequence[tuple[int, Sequence[int]]]) -> None:
        self._check_projects(organization_id, (p for p, _ in removals))
        pairs = [
            (self.get(organization_id, account_id).username, project_id)
            for project_id, account_ids in removals
            for account_id in account_ids
        ]
        self._conn.executemany("DELETE FROM service_account_projects WHERE username = ? AND project_id = ?", pairs)
